// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of the on-disk format code, run inside the kernel.
//!
//! The user tools run a larger set of the same kind with `cargo test`; these check that the code
//! as compiled for the kernel (no_std, kernel allocation, the kernel's target) behaves the same.

use kernel::prelude::*;

#[kunit_tests(vexfs_format)]
mod tests {
    use crate::format::{
        self,
        FormatError,
        Geometry,
        Inode,
        Superblock, //
    };
    use kernel::prelude::*;

    /// A zeroed block in a kernel allocation.
    fn block() -> Result<KVec<u8>> {
        let mut v = KVec::with_capacity(format::BLOCK_SIZE, GFP_KERNEL)?;
        v.resize(format::BLOCK_SIZE, 0, GFP_KERNEL)?;
        Ok(v)
    }

    /// A copy of `buf` in a kernel allocation.
    fn copy(buf: &[u8]) -> Result<KVec<u8>> {
        let mut v = KVec::with_capacity(buf.len(), GFP_KERNEL)?;
        v.extend_from_slice(buf, GFP_KERNEL)?;
        Ok(v)
    }

    #[test]
    fn crc32c_vectors() {
        // The check value of CRC-32C (RFC 3720, B.4) and the empty input.
        assert_eq!(format::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(format::crc32c(b""), 0);
        assert_eq!(format::crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(format::crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        // In pieces.
        let c = format::crc32c_append(format::crc32c(b"1234"), b"56789");
        assert_eq!(c, 0xe306_9283);
        // From the checksums of the pieces.
        let data = b"123456789";
        for at in 0..=data.len() {
            let (a, b) = data.split_at(at);
            let shift = format::crc32c_shift(b.len() as u64);
            let c = format::crc32c_combine(format::crc32c(a), format::crc32c(b), shift);
            assert_eq!(c, 0xe306_9283);
        }
    }

    #[test]
    fn record_checksums() {
        // The CRC32C of salt, slot and data, as one stream.
        let mut all = [0u8; 20];
        all[..8].copy_from_slice(&7u64.to_le_bytes());
        all[8..16].copy_from_slice(&3u64.to_le_bytes());
        all[16..].copy_from_slice(b"data");
        let c = format::record_checksum(7, 3, b"data");
        assert_eq!(c, format::crc32c(&all));
        // Another slot or collection, or other data, does not pass.
        assert_ne!(c, format::record_checksum(7, 4, b"data"));
        assert_ne!(c, format::record_checksum(8, 3, b"data"));
        assert_ne!(c, format::record_checksum(7, 3, b"dat\0"));
        // Nor do the zeros of a record that never reached the disk.
        assert_ne!(format::record_checksum(0, 0, &[0; 16]), 0);
    }

    #[test]
    fn superblock_round_trip() -> Result {
        let geometry = Geometry::new(65536, None).map_err(|_| EINVAL)?;
        let mut sb = Superblock::from_geometry(&geometry);
        sb.state = format::STATE_CLEAN;
        sb.mount_count = 7;
        sb.mkfs_time = 1_700_000_000;
        sb.label[..4].copy_from_slice(b"test");
        let mut buf = block()?;
        sb.encode(&mut buf).map_err(|_| EINVAL)?;
        assert_eq!(Superblock::decode(&buf, 65536), Ok(sb));
        assert_eq!(Superblock::decode(&buf, 1 << 20), Ok(sb));
        // A device smaller than the file system.
        assert_eq!(
            Superblock::decode(&buf, 65535),
            Err(FormatError::DeviceTooSmall)
        );
        // Any changed byte of the checksummed part is caught.
        for offset in [8usize, 16, 100, 170, 507] {
            let mut bad = copy(&buf)?;
            bad[offset] ^= 0x10;
            assert!(Superblock::decode(&bad, 65536).is_err());
        }
        let mut bad = copy(&buf)?;
        bad[0] ^= 1;
        assert_eq!(Superblock::decode(&bad, 65536), Err(FormatError::BadMagic));
        Ok(())
    }

    #[test]
    fn superblock_rejects_garbage() -> Result {
        let mut buf = block()?;
        assert_eq!(Superblock::decode(&buf, 65536), Err(FormatError::BadMagic));
        // Deterministic pseudo-random garbage, with and without the magic number.
        let mut x = 0x1234_5678u32;
        for round in 0..64 {
            for byte in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *byte = x as u8;
            }
            if round % 2 == 0 {
                buf[..4].copy_from_slice(&format::MAGIC.to_le_bytes());
            }
            assert!(Superblock::decode(&buf, 65536).is_err());
        }
        assert_eq!(
            Superblock::decode(&buf[..100], 65536),
            Err(FormatError::ShortBuffer)
        );
        Ok(())
    }

    #[test]
    fn inode_round_trip() -> Result {
        let mut inode = Inode {
            mode: format::S_IFREG | 0o644,
            uid: 1000,
            gid: 100,
            nlink: 2,
            size: 123_456_789,
            atime_sec: -5,
            mtime_sec: 1_700_000_000,
            ctime_sec: 1_700_000_001,
            atime_nsec: 1,
            mtime_nsec: 999_999_999,
            ctime_nsec: 0,
            flags: 0,
            blocks: 30_200,
            generation: 0xdead_beef,
            block: [0; format::N_BLOCK_PTRS],
            xattr: 0,
        };
        for (i, p) in inode.block.iter_mut().enumerate() {
            *p = 100 + i as u32;
        }
        let mut buf = block()?;
        let slot = &mut buf[format::INODE_SIZE..2 * format::INODE_SIZE];
        inode.encode(slot).map_err(|_| EINVAL)?;
        assert_eq!(Inode::decode(slot), Ok(Some(inode)));
        // A free slot decodes to `None`, a flipped bit to a checksum error.
        assert_eq!(Inode::decode(&buf[..format::INODE_SIZE]), Ok(None));
        let slot = &mut buf[format::INODE_SIZE..2 * format::INODE_SIZE];
        slot[20] ^= 4;
        assert_eq!(Inode::decode(slot), Err(FormatError::BadChecksum));
        format::clear_inode_slot(slot).map_err(|_| EINVAL)?;
        assert_eq!(Inode::decode(slot), Ok(None));
        // Fields that would not decode are refused when encoding.
        inode.mtime_nsec = 1_000_000_000;
        assert!(inode.encode(slot).is_err());
        inode.mtime_nsec = 0;
        inode.mode = 0o644;
        assert!(inode.encode(slot).is_err());
        inode.mode = format::S_IFDIR | 0o755;
        inode.size = 100;
        assert!(inode.encode(slot).is_err());
        assert_eq!(Inode::decode(&slot[..10]), Err(FormatError::ShortBuffer));
        Ok(())
    }

    #[test]
    fn inode_checks_against_the_superblock() -> Result {
        // 1024 blocks: the data area starts after the bitmaps and inode table.
        let geometry = Geometry::new(1024, Some(64)).map_err(|_| EINVAL)?;
        let sb = Superblock::from_geometry(&geometry);
        let data = sb.data_blocks();
        let first = sb.data_start as u32;
        let mut dir = Inode {
            mode: format::S_IFDIR | 0o755,
            nlink: 2,
            size: format::BLOCK_SIZE as u64,
            blocks: 1,
            ..Inode::default()
        };
        dir.block[0] = first;
        assert_eq!(sb.check_inode(&dir), Ok(()));
        // A directory whose size claims more blocks than it owns, up to the largest size: every
        // walk over its blocks would be bounded by that size only.
        dir.size = format::MAX_FILE_SIZE;
        assert!(matches!(sb.check_inode(&dir), Err(FormatError::Corrupt(_))));
        dir.size = 2 * format::BLOCK_SIZE as u64;
        assert!(sb.check_inode(&dir).is_err());
        // Owning more blocks than the data area has.
        dir.blocks = data + 1;
        assert!(sb.check_inode(&dir).is_err());
        dir.blocks = 2;
        assert_eq!(sb.check_inode(&dir), Ok(()));
        // A pointer to the inode table, or past the end.
        dir.block[1] = first - 1;
        assert!(sb.check_inode(&dir).is_err());
        dir.block[1] = 1024;
        assert!(sb.check_inode(&dir).is_err());
        // A sparse regular file may be as large as a file can be.
        let mut file = Inode {
            mode: format::S_IFREG | 0o644,
            nlink: 1,
            size: format::MAX_FILE_SIZE,
            blocks: 1,
            ..Inode::default()
        };
        file.block[0] = first;
        assert_eq!(sb.check_inode(&file), Ok(()));
        // A symbolic link is 1 to 4095 bytes long.
        file.mode = format::S_IFLNK | 0o777;
        assert!(sb.check_inode(&file).is_err());
        file.size = 0;
        assert!(sb.check_inode(&file).is_err());
        file.size = 7;
        assert_eq!(sb.check_inode(&file), Ok(()));
        Ok(())
    }

    #[test]
    fn device_numbers() {
        let mkdev = |major: u32, minor: u32| (major << 20) | minor;
        // `makedev()` of user space: /dev/null, /dev/sda, and both numbers at their limits.
        assert_eq!(format::encode_dev(mkdev(1, 3)), 0x103);
        assert_eq!(format::encode_dev(mkdev(8, 0)), 0x800);
        assert_eq!(format::encode_dev(mkdev(0xfff, 0xfffff)), 0xffff_ffff);
        assert_eq!(format::encode_dev(mkdev(259, 0x12345)), 0x1231_0345);
        for dev in [
            0,
            mkdev(1, 3),
            mkdev(4095, 1),
            mkdev(7, 0xfffff),
            mkdev(0xfff, 0xfffff),
        ] {
            assert_eq!(format::decode_dev(format::encode_dev(dev)), dev);
        }
    }

    #[test]
    fn block_paths() {
        let path = |lblk: u64| format::block_path(lblk).map(|p| (p.depth, p.offsets));
        assert_eq!(path(0), Ok((1, [0, 0, 0, 0])));
        assert_eq!(path(11), Ok((1, [11, 0, 0, 0])));
        assert_eq!(path(12), Ok((2, [format::IND_INDEX, 0, 0, 0])));
        assert_eq!(path(12 + 1023), Ok((2, [format::IND_INDEX, 1023, 0, 0])));
        assert_eq!(path(12 + 1024), Ok((3, [format::DIND_INDEX, 0, 0, 0])));
        assert_eq!(
            path(12 + 1024 + 1025),
            Ok((3, [format::DIND_INDEX, 1, 1, 0]))
        );
        assert_eq!(
            path(12 + 1024 + (1 << 20)),
            Ok((4, [format::TIND_INDEX, 0, 0, 0]))
        );
        assert_eq!(
            path(format::MAX_FILE_BLOCKS - 1),
            Ok((4, [format::TIND_INDEX, 1023, 1023, 1023]))
        );
        assert_eq!(path(format::MAX_FILE_BLOCKS), Err(FormatError::FileTooBig));
        assert_eq!(path(u64::MAX), Err(FormatError::FileTooBig));
    }

    #[test]
    fn dir_block_insert_find_remove() -> Result {
        let mut buf = block()?;
        format::init_dir(&mut buf, 5, 1).map_err(|_| EINVAL)?;
        assert_eq!(format::read_dots(&buf), Ok((5, 1)));
        assert_eq!(format::is_empty_dir(&buf), Ok(true));
        assert_eq!(format::insert(&mut buf, b"a", 10, format::DT_REG), Ok(true));
        assert_eq!(
            format::insert(&mut buf, b"bb", 11, format::DT_DIR),
            Ok(true)
        );
        assert_eq!(
            format::insert(&mut buf, b"ccc", 12, format::DT_LNK),
            Ok(true)
        );
        assert_eq!(format::is_empty_dir(&buf), Ok(false));
        assert_eq!(
            format::find(&buf, b"bb").map(|f| f.map(|(_, i, t)| (i, t))),
            Ok(Some((11, format::DT_DIR)))
        );
        assert_eq!(format::find(&buf, b"b"), Ok(None));
        assert_eq!(format::remove(&mut buf, b"bb"), Ok(true));
        assert_eq!(format::remove(&mut buf, b"bb"), Ok(false));
        assert_eq!(format::find(&buf, b"bb"), Ok(None));
        assert_eq!(
            format::find(&buf, b"ccc").map(|f| f.map(|(_, i, _)| i)),
            Ok(Some(12))
        );
        assert_eq!(
            format::retarget(&mut buf, b"ccc", 13, format::DT_CHR),
            Ok(true)
        );
        assert_eq!(
            format::find(&buf, b"ccc").map(|f| f.map(|(_, i, t)| (i, t))),
            Ok(Some((13, format::DT_CHR)))
        );
        assert_eq!(
            format::retarget(&mut buf, b"bb", 13, format::DT_REG),
            Ok(false)
        );
        assert!(format::retarget(&mut buf, b"..", 13, format::DT_DIR).is_err());
        assert!(format::retarget(&mut buf, b"a", 0, format::DT_REG).is_err());
        assert!(format::validate_dir_block(&buf).is_ok());
        assert!(format::insert(&mut buf, b".", 3, format::DT_DIR).is_err());
        assert!(format::insert(&mut buf, b"x/y", 3, format::DT_REG).is_err());
        assert!(format::insert(&mut buf, b"x", 0, format::DT_REG).is_err());
        assert!(format::remove(&mut buf, b"..").is_err());
        format::set_dotdot(&mut buf, 9).map_err(|_| EINVAL)?;
        assert_eq!(format::read_dots(&buf), Ok((5, 9)));

        // Fill a block with 255-byte names until it is full, then empty it.
        let mut empty = block()?;
        format::init_empty_block(&mut empty).map_err(|_| EINVAL)?;
        let mut name = [b'n'; format::MAX_NAME_LEN];
        let mut n = 0u8;
        loop {
            name[0] = b'a' + n;
            if !format::insert(&mut empty, &name, 100 + u32::from(n), format::DT_REG)
                .map_err(|_| EINVAL)?
            {
                break;
            }
            n += 1;
        }
        assert_eq!(
            usize::from(n),
            format::BLOCK_SIZE / format::rec_len_for(format::MAX_NAME_LEN)
        );
        assert!(format::validate_dir_block(&empty).is_ok());
        for i in 0..n {
            name[0] = b'a' + i;
            assert_eq!(
                format::find(&empty, &name).map(|f| f.map(|(_, ino, _)| ino)),
                Ok(Some(100 + u32::from(i)))
            );
            assert_eq!(format::remove(&mut empty, &name), Ok(true));
        }
        assert!(format::dir_iter(&empty).all(|e| e.is_ok_and(|e| !e.is_live())));
        // Room again after the removals.
        assert_eq!(
            format::insert(&mut empty, &name, 7, format::DT_REG),
            Ok(true)
        );
        Ok(())
    }

    #[test]
    fn dir_block_rejects_garbage() -> Result {
        let mut buf = block()?;
        // An all-zero block has a record length of 0.
        assert!(format::validate_dir_block(&buf).is_err());
        assert!(format::find(&buf, b"a").is_err());
        assert!(format::insert(&mut buf, b"a", 1, format::DT_REG).is_err());
        format::init_dir(&mut buf, 2, 1).map_err(|_| EINVAL)?;
        // A record length running past the end of the block.
        let mut bad = copy(&buf)?;
        bad[12 + 4] = 0xfc;
        bad[12 + 5] = 0x1f;
        assert!(format::validate_dir_block(&bad).is_err());
        assert!(format::remove(&mut bad, b"x").is_err());
        // A name longer than its record, a misaligned record length.
        let mut bad = copy(&buf)?;
        bad[6] = 200;
        assert!(format::find(&bad, b"x").is_err());
        let mut bad = copy(&buf)?;
        bad[4] = 13;
        assert!(format::dir_iter(&bad).any(|e| e.is_err()));
        // A block of the wrong size.
        assert!(format::validate_dir_block(&buf[..100]).is_err());
        Ok(())
    }

    #[test]
    fn bitmaps() -> Result {
        let mut map = block()?;
        assert_eq!(format::count_set_bits(&map, 32768), 0);
        assert_eq!(format::find_next_zero_bit(&map, 0, 32768), Some(0));
        assert_eq!(format::set_bit(&mut map, 0), Ok(false));
        assert_eq!(format::set_bit(&mut map, 0), Ok(true));
        assert_eq!(format::test_bit(&map, 0), Ok(true));
        for bit in 1..100 {
            format::set_bit(&mut map, bit).map_err(|_| EINVAL)?;
        }
        assert_eq!(format::find_next_zero_bit(&map, 0, 32768), Some(100));
        assert_eq!(format::find_next_zero_bit(&map, 0, 100), None);
        assert_eq!(format::find_next_zero_bit(&map, 150, 32768), Some(150));
        assert_eq!(format::count_set_bits(&map, 32768), 100);
        assert_eq!(format::count_set_bits(&map, 37), 37);
        assert_eq!(format::clear_bit(&mut map, 50), Ok(true));
        assert_eq!(format::clear_bit(&mut map, 50), Ok(false));
        assert_eq!(format::find_next_zero_bit(&map, 0, 32768), Some(50));
        assert_eq!(format::find_next_zero_bit(&map, 51, 32768), Some(100));
        map.fill(0xff);
        assert_eq!(format::find_next_zero_bit(&map, 0, 32768), None);
        assert_eq!(format::count_set_bits(&map, 32768), 32768);
        // Limits past the end of the map are clamped; bits past it are refused.
        assert_eq!(format::count_set_bits(&map, 1 << 40), 32768);
        assert!(format::test_bit(&map, 32768).is_err());
        assert!(format::set_bit(&mut map, 32768).is_err());
        assert!(format::clear_bit(&mut map, usize::MAX).is_err());
        Ok(())
    }

    #[test]
    fn geometry() {
        assert_eq!(
            Geometry::new(63, None).map(|_| ()),
            Err(FormatError::DeviceTooSmall)
        );
        let g = Geometry::new(65536, None);
        assert!(g.is_ok_and(|g| g.validate().is_ok() && g.data_start < 65536));
        // A device of 1 GiB; inodes, bitmaps and the inode table in order.
        let g = Geometry::new(262_144, Some(1024));
        assert!(g.is_ok());
        if let Ok(g) = g {
            assert_eq!(g.inode_bitmap_start, 1);
            assert_eq!(g.inode_table_blocks, 1024 / format::INODES_PER_BLOCK);
            assert_eq!(g.data_start, g.inode_table_start + g.inode_table_blocks);
        }
    }

    #[test]
    fn xattr_block() -> Result {
        use format::{
            XattrSet,
            XATTR_INDEX_SECURITY as SECURITY,
            XATTR_INDEX_USER as USER, //
        };
        let mut b = block()?;
        format::xattr_init(&mut b, 12).map_err(|_| EINVAL)?;
        assert_eq!(
            format::xattr_set(&mut b, 12, USER, b"a", Some(b"one")),
            Ok(XattrSet::Done(1))
        );
        assert_eq!(
            format::xattr_set(&mut b, 12, SECURITY, b"a", Some(b"")),
            Ok(XattrSet::Done(2))
        );
        assert_eq!(
            format::xattr_set(&mut b, 12, USER, b"a", Some(b"three")),
            Ok(XattrSet::Done(2))
        );
        let value = format::xattr_get(&b, 12, USER, b"a").map(|e| e.map(|e| e.value));
        assert_eq!(value, Ok(Some(&b"three"[..])));
        // Another owner, a flipped bit: refused.
        assert!(format::xattr_get(&b, 13, USER, b"a").is_err());
        let mut c = copy(&b)?;
        c[40] ^= 1;
        assert_eq!(
            format::xattr_entries(&c, 12, |_| Ok(())),
            Err(FormatError::BadChecksum)
        );
        // A value that cannot fit leaves the block as it was.
        let big = KVec::from_elem(0u8, format::BLOCK_SIZE - 20, GFP_KERNEL)?;
        let before = copy(&b)?;
        assert_eq!(
            format::xattr_set(&mut b, 12, USER, b"big", Some(&big)),
            Ok(XattrSet::NoRoom)
        );
        assert!(b[..] == before[..]);
        assert_eq!(
            format::xattr_set(&mut b, 12, USER, b"a", None),
            Ok(XattrSet::Done(1))
        );
        Ok(())
    }
}
