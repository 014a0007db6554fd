// SPDX-License-Identifier: GPL-2.0

//! Unit tests of the VexFS on-disk format module.

use crate::format::*;
use std::collections::{
    hash_map::Entry,
    HashMap, //
};

/// A named test case editing a superblock.
type SbCase = (&'static str, fn(&mut Superblock));

/// A named test case editing raw bytes.
type RawCase = (&'static str, fn(&mut [u8]));

/// Small deterministic xorshift64* generator for the fuzz loops.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.byte();
        }
    }
}

fn block() -> Vec<u8> {
    vec![0u8; BLOCK_SIZE]
}

// CRC32C.

#[test]
fn crc32c_vectors() {
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(crc32c(b""), 0);
    // RFC 3720, B.4: 32 bytes of zeros and of ones.
    assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
}

#[test]
fn crc32c_matches_bitwise() {
    // Bit at a time, as the polynomial defines it.
    fn bitwise(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut rng = Rng(0x5eed);
    let data: Vec<u8> = (0..4096).map(|_| rng.next() as u8).collect();
    for len in (0..64).chain([255, 256, 1000, 4095, 4096]) {
        for start in [0, 1, 3, 7] {
            let d = &data[start..(start + len).min(data.len())];
            assert_eq!(crc32c(d), bitwise(d), "len {len} start {start}");
            let (a, b) = d.split_at(d.len() / 3);
            assert_eq!(crc32c_append(crc32c(a), b), bitwise(d));
            let shift = crc32c_shift(b.len() as u64);
            assert_eq!(crc32c_combine(crc32c(a), crc32c(b), shift), bitwise(d));
        }
    }
    // Pieces of many lengths, combined one after another.
    let (mut crc, mut at) = (0, 0);
    for len in [0, 1, 7, 64, 300, 1, 1000, 2723] {
        let piece = &data[at..at + len];
        crc = crc32c_combine(crc, crc32c(piece), crc32c_shift(len as u64));
        at += len;
    }
    assert_eq!(crc, bitwise(&data[..at]));
}

#[test]
fn record_checksums() {
    // The CRC32C of salt, slot and data as one stream; any of them changed, a mismatch.
    let mut all = Vec::new();
    all.extend_from_slice(&7u64.to_le_bytes());
    all.extend_from_slice(&3u64.to_le_bytes());
    all.extend_from_slice(b"data");
    let c = record_checksum(7, 3, b"data");
    assert_eq!(c, crc32c(&all));
    assert_ne!(c, record_checksum(7, 4, b"data"));
    assert_ne!(c, record_checksum(8, 3, b"data"));
    assert_ne!(c, record_checksum(7, 3, b"dat\0"));
    // A zeroed record (checksum 0) fails for every slot of a salt.
    let zeros = [0u8; 104];
    assert!((0..100_000).all(|slot| record_checksum(0x1234, slot, &zeros) != 0));
}

// Geometry.

#[test]
fn default_inode_count_policy() {
    assert_eq!(Geometry::default_inode_count(64), 64);
    assert_eq!(Geometry::default_inode_count(256), 64);
    assert_eq!(Geometry::default_inode_count(257), 64);
    // 64 MiB: one inode per 16 KiB.
    assert_eq!(Geometry::default_inode_count(16384), 4096);
    // Rounded up to fill the last inode table block.
    assert_eq!(Geometry::default_inode_count(4 * 1001), 1008);
    assert_eq!(Geometry::default_inode_count(MAX_BLOCKS), 1 << 30);
    assert_eq!(
        Geometry::default_inode_count(u64::MAX),
        u64::from(u32::MAX) - 1
    );
}

#[test]
fn geometry_layout() {
    let g = Geometry::new(16384, None).unwrap();
    assert_eq!(
        g,
        Geometry {
            block_count: 16384,
            inode_count: 4096,
            inode_bitmap_start: 1,
            inode_bitmap_blocks: 1,
            block_bitmap_start: 2,
            block_bitmap_blocks: 1,
            inode_table_start: 3,
            inode_table_blocks: 256,
            data_start: 259,
        }
    );
    g.validate().unwrap();

    let g = Geometry::new(64, None).unwrap();
    assert_eq!(g.inode_count, 64);
    assert_eq!(g.data_start, 1 + 1 + 1 + 4);

    // Several bitmap blocks.
    let g = Geometry::new(100_000, Some(70_000)).unwrap();
    assert_eq!(g.inode_bitmap_blocks, 3);
    assert_eq!(g.block_bitmap_blocks, 4);
    assert_eq!(g.block_bitmap_start, 4);
    assert_eq!(g.inode_table_start, 8);
    assert_eq!(g.inode_table_blocks, 4375);
    assert_eq!(g.data_start, 8 + 4375);

    // Largest filesystem.
    let g = Geometry::new(MAX_BLOCKS, None).unwrap();
    assert_eq!(g.block_bitmap_blocks, MAX_BLOCKS / BITS_PER_BLOCK);
    let g = Geometry::new(MAX_BLOCKS, Some(MAX_INODES)).unwrap();
    assert_eq!(g.inode_table_blocks, MAX_INODES.div_ceil(16));
}

#[test]
fn geometry_errors() {
    assert_eq!(Geometry::new(0, None), Err(FormatError::DeviceTooSmall));
    assert_eq!(Geometry::new(63, None), Err(FormatError::DeviceTooSmall));
    assert!(matches!(
        Geometry::new(MAX_BLOCKS + 1, None),
        Err(FormatError::Invalid(_))
    ));
    assert!(matches!(
        Geometry::new(1000, Some(15)),
        Err(FormatError::Invalid(_))
    ));
    assert!(matches!(
        Geometry::new(1000, Some(MAX_INODES + 1)),
        Err(FormatError::Invalid(_))
    ));
    // The inode table does not fit.
    assert_eq!(
        Geometry::new(64, Some(16 * 61)),
        Err(FormatError::DeviceTooSmall)
    );
    // Exactly one data block left.
    let g = Geometry::new(64, Some(16 * 60)).unwrap();
    assert_eq!(g.data_start, 63);
}

// Superblock.

fn sample_superblock() -> Superblock {
    let mut sb = Superblock::from_geometry(&Geometry::new(16384, None).unwrap());
    sb.mkfs_time = 1_700_000_000;
    sb.write_time = 1_700_000_123;
    sb.mount_count = 7;
    sb.uuid = *b"0123456789abcdef";
    sb.label[..5].copy_from_slice(b"vexfs");
    sb.free_blocks -= 1;
    sb.free_inodes -= 1;
    sb
}

fn encode_sb(sb: &Superblock) -> Vec<u8> {
    let mut buf = block();
    sb.encode(&mut buf).unwrap();
    buf
}

/// Recomputes the checksum of an encoded superblock after a raw edit.
fn fix_sb_checksum(buf: &mut [u8]) {
    let crc = crc32c(&buf[..508]);
    buf[508..512].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn superblock_round_trip() {
    let sb = sample_superblock();
    let buf = encode_sb(&sb);
    assert_eq!(&buf[0..4], b"FXEV");
    assert_eq!(u32::from_le_bytes(buf[0..4].try_into().unwrap()), MAGIC);
    assert!(buf[200..508].iter().all(|&b| b == 0));
    assert!(buf[512..].iter().all(|&b| b == 0));
    assert_eq!(
        u32::from_le_bytes(buf[508..512].try_into().unwrap()),
        crc32c(&buf[..508])
    );
    let decoded = Superblock::decode(&buf, 16384).unwrap();
    assert_eq!(decoded, sb);
    assert_eq!(decoded.geometry(), Geometry::new(16384, None).unwrap());
    // Only the first 512 bytes are needed.
    assert_eq!(Superblock::decode(&buf[..512], 16384).unwrap(), sb);
    assert!(!decoded.has_unknown_ro_compat());
}

#[test]
fn superblock_field_offsets() {
    let sb = sample_superblock();
    let buf = encode_sb(&sb);
    let u32_at = |o: usize| u32::from_le_bytes(buf[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(buf[o..o + 8].try_into().unwrap());
    assert_eq!(u32_at(4), 1);
    assert_eq!(u32_at(8), 0);
    assert_eq!(u32_at(12), 4096);
    assert_eq!(u64_at(16), 16384);
    assert_eq!(u64_at(24), 4096);
    assert_eq!(u64_at(32), sb.free_blocks);
    assert_eq!(u64_at(40), sb.free_inodes);
    assert_eq!(u64_at(48), 1);
    assert_eq!(u64_at(56), 1);
    assert_eq!(u64_at(64), 2);
    assert_eq!(u64_at(72), 1);
    assert_eq!(u64_at(80), 3);
    assert_eq!(u64_at(88), 256);
    assert_eq!(u64_at(96), 259);
    assert_eq!(u64_at(104), 1);
    assert_eq!(u32_at(112), STATE_CLEAN);
    assert_eq!(u64_at(128), 1_700_000_000);
    assert_eq!(u64_at(136), 1_700_000_123);
    assert_eq!(u32_at(144), 7);
    assert_eq!(u32_at(148), 256);
    assert_eq!(&buf[152..168], b"0123456789abcdef");
    assert_eq!(&buf[168..173], b"vexfs");
}

#[test]
fn superblock_header_errors() {
    let good = encode_sb(&sample_superblock());

    let mut buf = good.clone();
    buf[0] ^= 1;
    assert_eq!(Superblock::decode(&buf, 16384), Err(FormatError::BadMagic));

    let mut buf = good.clone();
    buf[4] = 2;
    fix_sb_checksum(&mut buf);
    assert_eq!(
        Superblock::decode(&buf, 16384),
        Err(FormatError::BadVersion)
    );

    // A newer minor version is fine.
    let mut buf = good.clone();
    buf[8] = 5;
    fix_sb_checksum(&mut buf);
    assert_eq!(Superblock::decode(&buf, 16384).unwrap().version_minor, 5);

    let mut buf = good.clone();
    buf[12..16].copy_from_slice(&1024u32.to_le_bytes());
    fix_sb_checksum(&mut buf);
    assert_eq!(
        Superblock::decode(&buf, 16384),
        Err(FormatError::BadBlockSize)
    );

    for offset in [16, 100, 200, 300, 507, 508, 511] {
        let mut buf = good.clone();
        buf[offset] ^= 0x40;
        assert_eq!(
            Superblock::decode(&buf, 16384),
            Err(FormatError::BadChecksum),
            "offset {offset}"
        );
    }

    assert_eq!(
        Superblock::decode(&good[..511], 16384),
        Err(FormatError::ShortBuffer)
    );
    assert_eq!(
        Superblock::decode(&[], 16384),
        Err(FormatError::ShortBuffer)
    );
    let mut short = [0u8; 100];
    assert_eq!(
        sample_superblock().encode(&mut short),
        Err(FormatError::ShortBuffer)
    );
}

fn decode_modified(f: impl FnOnce(&mut Superblock)) -> Result<Superblock> {
    let mut sb = sample_superblock();
    f(&mut sb);
    Superblock::decode(&encode_sb(&sb), 1 << 40)
}

fn is_corrupt<T: std::fmt::Debug>(r: Result<T>) -> bool {
    matches!(r, Err(FormatError::Corrupt(_)))
}

#[test]
fn superblock_validation_errors() {
    assert_eq!(
        decode_modified(|sb| sb.features_incompat = 1),
        Err(FormatError::UnsupportedFeatures)
    );
    assert_eq!(
        decode_modified(|sb| sb.features_incompat = 1 << 31),
        Err(FormatError::UnsupportedFeatures)
    );
    // Unknown compatible and read-only compatible features are accepted.
    assert!(decode_modified(|sb| sb.features_compat = 0xffff_ffff).is_ok());
    let sb = decode_modified(|sb| sb.features_ro_compat = 2).unwrap();
    assert!(sb.has_unknown_ro_compat());

    assert!(is_corrupt(decode_modified(|sb| sb.inode_size = 128)));
    assert!(is_corrupt(decode_modified(|sb| sb.state = 0)));
    assert!(is_corrupt(decode_modified(|sb| sb.state = 4)));
    for state in [STATE_CLEAN, STATE_DIRTY, STATE_ERRORS] {
        assert!(decode_modified(|sb| sb.state = state).is_ok());
    }
    assert!(is_corrupt(decode_modified(|sb| sb.root_ino = 2)));
    assert!(is_corrupt(decode_modified(|sb| sb.root_ino = 0)));

    // Device size.
    let buf = encode_sb(&sample_superblock());
    assert!(Superblock::decode(&buf, 16384).is_ok());
    assert_eq!(
        Superblock::decode(&buf, 16383),
        Err(FormatError::DeviceTooSmall)
    );
    assert_eq!(
        Superblock::decode(&buf, 0),
        Err(FormatError::DeviceTooSmall)
    );

    // The free counts are advisory.
    assert!(decode_modified(|sb| sb.free_blocks = u64::MAX).is_ok());
    assert!(decode_modified(|sb| sb.free_inodes = u64::MAX).is_ok());
}

#[test]
fn superblock_geometry_errors() {
    let cases: &[SbCase] = &[
        ("block count too small", |sb| sb.block_count = 63),
        ("block count too large", |sb| {
            sb.block_count = MAX_BLOCKS + 1
        }),
        ("block count huge", |sb| sb.block_count = u64::MAX),
        ("inode count 0", |sb| sb.inode_count = 0),
        ("inode count 1", |sb| sb.inode_count = 1),
        ("inode count too large", |sb| {
            sb.inode_count = MAX_INODES + 1;
        }),
        ("inode bitmap too small", |sb| sb.inode_bitmap_blocks = 0),
        ("inode bitmap overflow", |sb| {
            sb.inode_bitmap_blocks = u64::MAX
        }),
        ("block bitmap too small", |sb| sb.block_bitmap_blocks = 0),
        ("block bitmap overflow", |sb| {
            sb.block_bitmap_blocks = u64::MAX
        }),
        ("inode table too small", |sb| sb.inode_table_blocks = 255),
        ("inode table too large", |sb| sb.inode_table_blocks = 257),
        ("inode bitmap over superblock", |sb| {
            sb.inode_bitmap_start = 0
        }),
        ("inode bitmap over block bitmap", |sb| {
            sb.inode_bitmap_blocks = 2;
        }),
        ("block bitmap over inode table", |sb| {
            sb.block_bitmap_blocks = 2;
        }),
        ("inode table over data", |sb| sb.data_start = 258),
        ("regions out of order", |sb| {
            sb.block_bitmap_start = 1;
            sb.inode_bitmap_start = 2;
        }),
        ("start overflow", |sb| sb.inode_table_start = u64::MAX),
        ("data start past end", |sb| sb.data_start = 16384),
        ("data start far past end", |sb| sb.data_start = u64::MAX),
    ];
    for (what, f) in cases {
        let r = decode_modified(f);
        assert!(is_corrupt(r), "{what}: {r:?}");
    }

    // Gaps between the regions are allowed.
    let sb = decode_modified(|sb| {
        sb.inode_bitmap_start = 2;
        sb.block_bitmap_start = 4;
        sb.inode_table_start = 10;
        sb.data_start = 300;
    })
    .unwrap();
    assert_eq!(sb.data_start, 300);
    // So are oversized bitmaps.
    assert!(decode_modified(|sb| {
        sb.block_bitmap_blocks = 1;
        sb.inode_bitmap_blocks = 1;
        sb.block_count = BITS_PER_BLOCK;
    })
    .is_ok());
    assert!(is_corrupt(decode_modified(|sb| {
        sb.block_count = BITS_PER_BLOCK + 1;
    })));
}

#[test]
fn superblock_locations() {
    let sb = sample_superblock();
    assert!(!sb.is_valid_ino(0));
    assert!(sb.is_valid_ino(1));
    assert!(sb.is_valid_ino(4095));
    assert!(!sb.is_valid_ino(4096));
    assert!(!sb.is_data_block(258));
    assert!(sb.is_data_block(259));
    assert!(sb.is_data_block(16383));
    assert!(!sb.is_data_block(16384));

    assert_eq!(sb.inode_location(1), Ok((3, 256)));
    assert_eq!(sb.inode_location(15), Ok((3, 15 * 256)));
    assert_eq!(sb.inode_location(16), Ok((4, 0)));
    assert_eq!(sb.inode_location(4095), Ok((258, 15 * 256)));
    assert!(matches!(sb.inode_location(0), Err(FormatError::Invalid(_))));
    assert!(matches!(
        sb.inode_location(4096),
        Err(FormatError::Invalid(_))
    ));
    assert!(matches!(
        sb.inode_location(u64::MAX),
        Err(FormatError::Invalid(_))
    ));

    assert_eq!(sb.inode_bitmap_location(0), Ok((1, 0)));
    assert_eq!(sb.inode_bitmap_location(4095), Ok((1, 4095)));
    assert!(sb.inode_bitmap_location(4096).is_err());
    assert_eq!(sb.block_bitmap_location(16383), Ok((2, 16383)));
    assert!(sb.block_bitmap_location(16384).is_err());

    let g = Geometry::new(100_000, Some(70_000)).unwrap();
    let sb = Superblock::from_geometry(&g);
    assert_eq!(sb.inode_bitmap_location(69_999), Ok((3, 69_999 - 65_536)));
    assert_eq!(sb.block_bitmap_location(99_999), Ok((7, 99_999 - 98_304)));
}

#[test]
fn superblock_from_geometry() {
    let g = Geometry::new(16384, None).unwrap();
    let sb = Superblock::from_geometry(&g);
    assert_eq!(sb.free_blocks, 16384 - 259);
    assert_eq!(sb.free_inodes, 4095);
    assert_eq!(sb.state, STATE_CLEAN);
    assert_eq!(sb.root_ino, 1);
    assert_eq!(sb.inode_size, 256);
    assert_eq!(sb.block_size, 4096);
    sb.validate(16384).unwrap();
}

// Inodes.

fn sample_inode() -> Inode {
    let mut block = [0u32; N_BLOCK_PTRS];
    for (i, b) in block.iter_mut().enumerate() {
        *b = 1000 + u32::try_from(i).unwrap();
    }
    Inode {
        mode: S_IFREG | 0o644,
        uid: 1000,
        gid: 100,
        nlink: 1,
        size: 123_456_789,
        atime_sec: -5,
        mtime_sec: 1_700_000_000,
        ctime_sec: i64::MAX,
        atime_nsec: 999_999_999,
        mtime_nsec: 0,
        ctime_nsec: 1,
        flags: INODE_FLAG_COLLECTION,
        blocks: 30_200,
        generation: 0xdead_beef,
        block,
        xattr: 4321,
    }
}

fn encode_inode(inode: &Inode) -> Vec<u8> {
    let mut buf = vec![0xa5u8; INODE_SIZE];
    inode.encode(&mut buf).unwrap();
    buf
}

fn fix_inode_checksum(buf: &mut [u8]) {
    let crc = crc32c(&buf[..252]);
    buf[252..256].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn inode_round_trip() {
    let inode = sample_inode();
    let buf = encode_inode(&inode);
    assert_eq!(Inode::decode(&buf), Ok(Some(inode)));
    // Reserved bytes are zeroed.
    assert_eq!(&buf[2..4], &[0, 0]);
    assert!(buf[140..252].iter().all(|&b| b == 0));
    // Field offsets.
    assert_eq!(u16::from_le_bytes([buf[0], buf[1]]), S_IFREG | 0o644);
    assert_eq!(&buf[12..16], &1u32.to_le_bytes());
    assert_eq!(&buf[24..32], &(-5i64).to_le_bytes());
    assert_eq!(&buf[48..52], &999_999_999u32.to_le_bytes());
    assert_eq!(&buf[60..64], &1u32.to_le_bytes());
    assert_eq!(&buf[64..72], &30_200u64.to_le_bytes());
    assert_eq!(&buf[72..76], &0xdead_beefu32.to_le_bytes());
    assert_eq!(&buf[76..80], &4321u32.to_le_bytes());
    assert_eq!(&buf[80..84], &1000u32.to_le_bytes());
    assert_eq!(&buf[136..140], &1014u32.to_le_bytes());

    for mode in [
        S_IFDIR | 0o755,
        S_IFLNK | 0o777,
        S_IFCHR,
        S_IFBLK | 0o600,
        S_IFIFO | 0o600,
        S_IFSOCK | 0o755,
    ] {
        let inode = Inode {
            mode,
            size: 0,
            ..sample_inode()
        };
        assert_eq!(Inode::decode(&encode_inode(&inode)), Ok(Some(inode)));
    }
    let dir = Inode {
        mode: S_IFDIR | 0o755,
        size: 8192,
        ..sample_inode()
    };
    assert!(dir.is_dir() && !dir.is_reg() && !dir.is_symlink());
    assert_eq!(dir.file_type(), DT_DIR);
    assert!(dir.has_data_blocks());
    assert_eq!(Inode::decode(&encode_inode(&dir)), Ok(Some(dir)));
    let fifo = Inode {
        mode: S_IFIFO,
        ..Default::default()
    };
    assert!(!fifo.has_data_blocks());
}

#[test]
fn inode_free_slot() {
    assert_eq!(Inode::decode(&[0u8; INODE_SIZE]), Ok(None));
    let mut buf = encode_inode(&sample_inode());
    clear_inode_slot(&mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0));
    assert_eq!(Inode::decode(&buf), Ok(None));
    // A slot with mode 0 and a valid checksum is not free.
    let mut buf = [0u8; INODE_SIZE];
    buf[4] = 1;
    fix_inode_checksum(&mut buf);
    assert!(is_corrupt(Inode::decode(&buf)));
    // Nor is one with a single stray byte.
    let mut buf = [0u8; INODE_SIZE];
    buf[200] = 1;
    assert_eq!(Inode::decode(&buf), Err(FormatError::BadChecksum));
    let mut short = [0u8; 10];
    assert_eq!(clear_inode_slot(&mut short), Err(FormatError::ShortBuffer));
}

#[test]
fn inode_errors() {
    let good = encode_inode(&sample_inode());
    for offset in [0, 17, 100, 139, 140, 251, 252, 255] {
        let mut buf = good.clone();
        buf[offset] ^= 0x10;
        assert_eq!(
            Inode::decode(&buf),
            Err(FormatError::BadChecksum),
            "offset {offset}"
        );
    }
    assert_eq!(Inode::decode(&good[..255]), Err(FormatError::ShortBuffer));

    let bad: &[RawCase] = &[
        ("mode 0", |b| {
            b[0..2].copy_from_slice(&0o644u16.to_le_bytes())
        }),
        ("mode type 0o030000", |b| {
            b[0..2].copy_from_slice(&0o030644u16.to_le_bytes());
        }),
        ("mode type 0o170000", |b| {
            b[0..2].copy_from_slice(&0o170644u16.to_le_bytes());
        }),
        ("atime nsec", |b| {
            b[48..52].copy_from_slice(&1_000_000_000u32.to_le_bytes());
        }),
        ("mtime nsec", |b| {
            b[52..56].copy_from_slice(&u32::MAX.to_le_bytes());
        }),
        ("ctime nsec", |b| {
            b[56..60].copy_from_slice(&1_000_000_000u32.to_le_bytes());
        }),
        ("flags", |b| b[60..64].copy_from_slice(&2u32.to_le_bytes())),
        ("flags high", |b| {
            b[60..64].copy_from_slice(&0x8000_0001u32.to_le_bytes());
        }),
        ("size", |b| {
            b[16..24].copy_from_slice(&(MAX_FILE_SIZE + 1).to_le_bytes());
        }),
        ("directory size", |b| {
            b[0..2].copy_from_slice(&(S_IFDIR | 0o755).to_le_bytes());
            b[16..24].copy_from_slice(&4097u64.to_le_bytes());
        }),
    ];
    for (what, f) in bad {
        let mut buf = good.clone();
        f(&mut buf);
        fix_inode_checksum(&mut buf);
        let r = Inode::decode(&buf);
        assert!(is_corrupt(r), "{what}: {r:?}");
    }
    let mut buf = good.clone();
    buf[16..24].copy_from_slice(&MAX_FILE_SIZE.to_le_bytes());
    fix_inode_checksum(&mut buf);
    assert_eq!(Inode::decode(&buf).unwrap().unwrap().size, MAX_FILE_SIZE);
}

#[test]
fn inode_chattr_flags() {
    // The chattr flags are the FS_*_FL bits of <uapi/linux/fs.h>.
    assert_eq!(
        (
            INODE_FLAG_SYNC,
            INODE_FLAG_IMMUTABLE,
            INODE_FLAG_APPEND,
            INODE_FLAG_NODUMP,
            INODE_FLAG_NOATIME
        ),
        (0x8, 0x10, 0x20, 0x40, 0x80)
    );
    assert_eq!(INODE_FLAGS_INHERITED & !INODE_FLAGS_USER, 0);
    assert_eq!(
        INODE_FLAGS_INHERITED & (INODE_FLAG_IMMUTABLE | INODE_FLAG_APPEND),
        0
    );
    for flags in [
        INODE_FLAGS_USER,
        INODE_FLAG_IMMUTABLE,
        INODE_FLAG_APPEND | INODE_FLAG_COLLECTION,
        INODE_FLAGS_KNOWN,
    ] {
        let inode = Inode {
            flags,
            ..sample_inode()
        };
        let mut buf = [0u8; INODE_SIZE];
        inode.encode(&mut buf).unwrap();
        assert_eq!(Inode::decode(&buf).unwrap().unwrap().flags, flags);
    }
}

#[test]
fn inode_encode_refuses_invalid() {
    let mut buf = [0u8; INODE_SIZE];
    let invalid = [
        Inode {
            mode: 0,
            ..sample_inode()
        },
        Inode {
            atime_nsec: 1_000_000_000,
            ..sample_inode()
        },
        Inode {
            flags: 4,
            ..sample_inode()
        },
        Inode {
            size: u64::MAX,
            ..sample_inode()
        },
        Inode {
            mode: S_IFDIR,
            size: 1,
            ..sample_inode()
        },
    ];
    for inode in invalid {
        assert!(matches!(
            inode.encode(&mut buf),
            Err(FormatError::Invalid(_))
        ));
        assert!(buf.iter().all(|&b| b == 0), "buffer untouched");
    }
    assert_eq!(
        sample_inode().encode(&mut [0u8; 255]),
        Err(FormatError::ShortBuffer)
    );
}

#[test]
fn inode_checks_against_the_superblock() {
    // 1024 blocks: the data area starts after the bitmaps and inode table.
    let geometry = Geometry::new(1024, Some(64)).unwrap();
    let sb = Superblock::from_geometry(&geometry);
    let data = sb.data_blocks();
    let first = sb.data_start as u32;
    let mut dir = Inode {
        mode: S_IFDIR | 0o755,
        nlink: 2,
        size: BLOCK_SIZE as u64,
        blocks: 1,
        ..Inode::default()
    };
    dir.block[0] = first;
    assert_eq!(sb.check_inode(&dir), Ok(()));
    // A directory whose size claims more blocks than it owns, up to the largest size: every
    // walk over its blocks would be bounded by that size only.
    dir.size = MAX_FILE_SIZE;
    assert!(matches!(sb.check_inode(&dir), Err(FormatError::Corrupt(_))));
    dir.size = 2 * BLOCK_SIZE as u64;
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
        mode: S_IFREG | 0o644,
        nlink: 1,
        size: MAX_FILE_SIZE,
        blocks: 1,
        ..Inode::default()
    };
    file.block[0] = first;
    assert_eq!(sb.check_inode(&file), Ok(()));
    // A symbolic link is 1 to 4095 bytes long.
    file.mode = S_IFLNK | 0o777;
    assert!(sb.check_inode(&file).is_err());
    file.size = 0;
    assert!(sb.check_inode(&file).is_err());
    file.size = 7;
    assert_eq!(sb.check_inode(&file), Ok(()));
}

#[test]
fn file_types() {
    assert_eq!(file_type_of_mode(S_IFREG | 0o777), DT_REG);
    assert_eq!(file_type_of_mode(S_IFDIR), DT_DIR);
    assert_eq!(file_type_of_mode(S_IFLNK), DT_LNK);
    assert_eq!(file_type_of_mode(S_IFCHR), DT_CHR);
    assert_eq!(file_type_of_mode(S_IFBLK), DT_BLK);
    assert_eq!(file_type_of_mode(S_IFIFO), DT_FIFO);
    assert_eq!(file_type_of_mode(S_IFSOCK), DT_SOCK);
    assert_eq!(file_type_of_mode(0o644), DT_UNKNOWN);
    assert_eq!(file_type_of_mode(0o170000), DT_UNKNOWN);
    let valid: Vec<u8> = (0..=255).filter(|&t| is_valid_file_type(t)).collect();
    assert_eq!(valid, [0, 1, 2, 4, 6, 8, 10, 12]);
}

// Block map.

#[test]
fn block_path_boundaries() {
    let p = |l: u64| {
        let path = block_path(l).unwrap();
        (path.depth, path.as_slice().to_vec())
    };
    assert_eq!(p(0), (1, vec![0]));
    assert_eq!(p(11), (1, vec![11]));
    assert_eq!(p(12), (2, vec![12, 0]));
    assert_eq!(p(12 + 1023), (2, vec![12, 1023]));
    assert_eq!(p(12 + 1024), (3, vec![13, 0, 0]));
    assert_eq!(p(12 + 1024 + 1023), (3, vec![13, 0, 1023]));
    assert_eq!(p(12 + 1024 + 1024), (3, vec![13, 1, 0]));
    assert_eq!(p(12 + 1024 + 1024 * 1024 - 1), (3, vec![13, 1023, 1023]));
    assert_eq!(p(12 + 1024 + 1024 * 1024), (4, vec![14, 0, 0, 0]));
    assert_eq!(
        p(12 + 1024 + 1024 * 1024 + 1024 * 1024 + 5),
        (4, vec![14, 1, 0, 5])
    );
    assert_eq!(p(MAX_FILE_BLOCKS - 1), (4, vec![14, 1023, 1023, 1023]));
    assert_eq!(block_path(MAX_FILE_BLOCKS), Err(FormatError::FileTooBig));
    assert_eq!(block_path(u64::MAX), Err(FormatError::FileTooBig));
    assert_eq!(block_path(5).unwrap().offsets, [5, 0, 0, 0]);

    assert_eq!(MAX_FILE_BLOCKS, 12 + 1024 + (1 << 20) + (1 << 30));
    assert_eq!(MAX_FILE_SIZE, MAX_FILE_BLOCKS * 4096);
    assert!(i64::try_from(MAX_FILE_SIZE).is_ok());
    assert_eq!(PTRS_PER_BLOCK, 1024);
    assert_eq!(
        (N_DIRECT, IND_INDEX, DIND_INDEX, TIND_INDEX),
        (12, 12, 13, 14)
    );
}

#[test]
fn block_path_exhaustive_order() {
    // Consecutive logical blocks walk the tree in lexicographic order.
    let mut last: Option<(usize, [usize; 4])> = None;
    let samples = (0..5000u64)
        .chain((1_049_000..1_050_000).map(|x| x + 12))
        .chain(MAX_FILE_BLOCKS - 3000..MAX_FILE_BLOCKS);
    for l in samples {
        let path = block_path(l).unwrap();
        assert!(path.as_slice().iter().skip(1).all(|&o| o < 1024));
        assert!(path.as_slice()[0] < N_BLOCK_PTRS);
        if let Some(prev) = last {
            assert!((path.depth, path.offsets) > prev || path.depth > prev.0);
        }
        last = Some((path.depth, path.offsets));
    }
}

#[test]
fn indirect_blocks() {
    let mut b = block();
    write_indirect(&mut b, 0, 7).unwrap();
    write_indirect(&mut b, 1023, 0xffff_ffff).unwrap();
    assert_eq!(read_indirect(&b, 0), Ok(7));
    assert_eq!(read_indirect(&b, 1), Ok(0));
    assert_eq!(read_indirect(&b, 1023), Ok(0xffff_ffff));
    assert_eq!(&b[4092..], &[0xff; 4]);
    assert!(matches!(
        read_indirect(&b, 1024),
        Err(FormatError::Invalid(_))
    ));
    assert!(matches!(
        write_indirect(&mut b, usize::MAX, 1),
        Err(FormatError::Invalid(_))
    ));
    assert_eq!(read_indirect(&b[..100], 30), Err(FormatError::ShortBuffer));
    assert_eq!(
        write_indirect(&mut b[..100], 30, 1),
        Err(FormatError::ShortBuffer)
    );
}

// Bitmaps.

#[test]
fn bitmap_bits() {
    let mut map = [0u8; 4];
    assert_eq!(set_bit(&mut map, 0), Ok(false));
    assert_eq!(set_bit(&mut map, 0), Ok(true));
    assert_eq!(set_bit(&mut map, 9), Ok(false));
    assert_eq!(set_bit(&mut map, 31), Ok(false));
    assert_eq!(map, [0x01, 0x02, 0x00, 0x80]);
    assert_eq!(test_bit(&map, 9), Ok(true));
    assert_eq!(test_bit(&map, 10), Ok(false));
    assert_eq!(clear_bit(&mut map, 9), Ok(true));
    assert_eq!(clear_bit(&mut map, 9), Ok(false));
    assert_eq!(map, [0x01, 0x00, 0x00, 0x80]);
    assert!(matches!(test_bit(&map, 32), Err(FormatError::Invalid(_))));
    assert!(matches!(
        set_bit(&mut map, usize::MAX),
        Err(FormatError::Invalid(_))
    ));
    assert!(matches!(
        clear_bit(&mut map, 32),
        Err(FormatError::Invalid(_))
    ));
    assert!(matches!(test_bit(&[], 0), Err(FormatError::Invalid(_))));
}

#[test]
fn bitmap_find_and_count() {
    let mut map = vec![0xffu8; BLOCK_SIZE];
    assert_eq!(find_next_zero_bit(&map, 0, usize::MAX), None);
    assert_eq!(count_set_bits(&map, usize::MAX), 32768);
    assert_eq!(count_set_bits(&map, 13), 13);
    clear_bit(&mut map, 20_001).unwrap();
    clear_bit(&mut map, 5).unwrap();
    assert_eq!(find_next_zero_bit(&map, 0, 32768), Some(5));
    assert_eq!(find_next_zero_bit(&map, 5, 32768), Some(5));
    assert_eq!(find_next_zero_bit(&map, 6, 32768), Some(20_001));
    assert_eq!(find_next_zero_bit(&map, 6, 20_001), None);
    assert_eq!(find_next_zero_bit(&map, 6, 20_002), Some(20_001));
    assert_eq!(find_next_zero_bit(&map, 20_002, usize::MAX), None);
    assert_eq!(find_next_zero_bit(&map, usize::MAX, usize::MAX), None);
    assert_eq!(count_set_bits(&map, 32768), 32766);
    assert_eq!(count_set_bits(&map, 6), 5);
    assert_eq!(count_set_bits(&map, 5), 5);
    assert_eq!(count_set_bits(&map, 0), 0);

    let map = [0b1011_0111u8, 0x00];
    assert_eq!(find_next_zero_bit(&map, 0, 16), Some(3));
    assert_eq!(find_next_zero_bit(&map, 4, 16), Some(6));
    assert_eq!(find_next_zero_bit(&map, 7, 16), Some(8));
    assert_eq!(find_next_zero_bit(&map, 7, 8), None);
    assert_eq!(find_next_zero_bit(&[], 0, 100), None);
    assert_eq!(count_set_bits(&map, 3), 3);
    assert_eq!(count_set_bits(&map, 100), 6);
    assert_eq!(count_set_bits(&[], 100), 0);

    // Against a naive model.
    let mut rng = Rng::new(7);
    for _ in 0..200 {
        let mut map = vec![0u8; 1 + rng.below(64)];
        rng.fill(&mut map);
        for b in map.iter_mut() {
            if rng.below(2) == 0 {
                *b = 0xff;
            }
        }
        let bits = map.len() * 8;
        let start = rng.below(bits + 10);
        let limit = rng.below(bits + 10);
        let naive = (start..limit.min(bits)).find(|&i| !test_bit(&map, i).unwrap());
        assert_eq!(find_next_zero_bit(&map, start, limit), naive);
        let naive_count = (0..limit.min(bits))
            .filter(|&i| test_bit(&map, i).unwrap())
            .count();
        assert_eq!(
            count_set_bits(&map, limit),
            u64::try_from(naive_count).unwrap()
        );
    }
}

// Directories.

fn names(block: &[u8]) -> Vec<(Vec<u8>, u32, u8)> {
    dir_iter(block)
        .map(|e| e.unwrap())
        .filter(|e| e.is_live())
        .map(|e| (e.name.to_vec(), e.ino, e.file_type))
        .collect()
}

fn assert_covers(block: &[u8]) {
    let mut expect = 0;
    for e in dir_iter(block) {
        let e = e.unwrap();
        assert_eq!(e.offset, expect);
        assert_eq!(e.rec_len % 4, 0);
        expect += e.rec_len;
    }
    assert_eq!(expect, BLOCK_SIZE);
}

#[test]
fn dir_empty_block() {
    let mut b = vec![0xeeu8; BLOCK_SIZE];
    init_empty_block(&mut b).unwrap();
    let all: Vec<_> = dir_iter(&b).map(|e| e.unwrap()).collect();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].offset, 0);
    assert_eq!(all[0].rec_len, BLOCK_SIZE);
    assert!(!all[0].is_live());
    assert_eq!(is_empty_dir(&b), Ok(true));
    assert_eq!(find(&b, b"x"), Ok(None));
    assert!(b[8..].iter().all(|&x| x == 0));
    assert!(is_corrupt(read_dots(&b)));
    assert!(matches!(
        init_empty_block(&mut b[..100]),
        Err(FormatError::Invalid(_))
    ));
}

#[test]
fn dir_init_and_dots() {
    let mut b = block();
    init_dir(&mut b, 5, 2).unwrap();
    assert_eq!(
        names(&b),
        [(b".".to_vec(), 5, DT_DIR), (b"..".to_vec(), 2, DT_DIR)]
    );
    assert_eq!(&b[0..8], &[5, 0, 0, 0, 12, 0, 1, DT_DIR]);
    assert_eq!(b[8], b'.');
    assert_eq!(&b[12..20], &[2, 0, 0, 0, 0xf4, 0x0f, 2, DT_DIR]);
    assert_covers(&b);
    assert_eq!(read_dots(&b), Ok((5, 2)));
    assert_eq!(is_empty_dir(&b), Ok(true));
    assert_eq!(find(&b, b".."), Ok(Some((12, 2, DT_DIR))));
    assert_eq!(find(&b, b"."), Ok(Some((0, 5, DT_DIR))));

    set_dotdot(&mut b, 9).unwrap();
    assert_eq!(read_dots(&b), Ok((5, 9)));
    assert!(insert(&mut b, b"file", 6, DT_REG).unwrap());
    assert_eq!(is_empty_dir(&b), Ok(false));
    set_dotdot(&mut b, 1).unwrap();
    assert_eq!(read_dots(&b), Ok((5, 1)));
    assert_eq!(find(&b, b"file"), Ok(Some((24, 6, DT_REG))));
    assert!(remove(&mut b, b"file").unwrap());
    assert_eq!(is_empty_dir(&b), Ok(true));
    assert_covers(&b);

    assert!(matches!(
        init_dir(&mut b, 0, 1),
        Err(FormatError::Invalid(_))
    ));
    assert!(matches!(
        init_dir(&mut b, 1, 0),
        Err(FormatError::Invalid(_))
    ));
    assert!(matches!(
        init_dir(&mut b[..4095], 1, 1),
        Err(FormatError::Invalid(_))
    ));
    assert!(matches!(
        set_dotdot(&mut b, 0),
        Err(FormatError::Invalid(_))
    ));

    // `set_dotdot` and `read_dots` need a first directory block.
    let mut e = block();
    init_empty_block(&mut e).unwrap();
    assert!(insert(&mut e, b"a", 3, DT_REG).unwrap());
    assert!(is_corrupt(set_dotdot(&mut e, 4)));
    assert!(is_corrupt(read_dots(&e)));
    let mut only_dot = block();
    init_empty_block(&mut only_dot).unwrap();
    only_dot[0] = 1;
    only_dot[6] = 1;
    only_dot[7] = DT_DIR;
    only_dot[8] = b'.';
    assert!(is_corrupt(read_dots(&only_dot)));
}

#[test]
fn dir_insert_until_full() {
    let mut b = block();
    init_dir(&mut b, 1, 1).unwrap();
    let mut inserted = Vec::new();
    for i in 0u32.. {
        let name = format!("file-{i:05}");
        let ino = i + 10;
        let before = b.clone();
        if !insert(&mut b, name.as_bytes(), ino, DT_REG).unwrap() {
            assert_eq!(b, before, "a failed insert leaves the block unchanged");
            break;
        }
        assert_covers(&b);
        inserted.push((name, ino));
    }
    // "." (12) + ".." (12) + 20 bytes per 10-byte name.
    assert_eq!(inserted.len(), (BLOCK_SIZE - 24) / 20);
    for (name, ino) in &inserted {
        let (_, found, t) = find(&b, name.as_bytes()).unwrap().unwrap();
        assert_eq!((found, t), (*ino, DT_REG));
    }
    assert_eq!(find(&b, b"file-99999"), Ok(None));

    // Removing every other entry makes room for shorter names only where
    // records were merged.
    for (name, _) in inserted.iter().step_by(2) {
        assert!(remove(&mut b, name.as_bytes()).unwrap());
        assert_covers(&b);
    }
    for (i, (name, ino)) in inserted.iter().enumerate() {
        let found = find(&b, name.as_bytes()).unwrap();
        if i % 2 == 0 {
            assert_eq!(found, None);
        } else {
            assert_eq!(found.map(|f| f.1), Some(*ino));
        }
    }
    let mut reinserted = 0;
    while insert(&mut b, format!("n{reinserted:09}").as_bytes(), 7, DT_LNK).unwrap() {
        reinserted += 1;
        assert_covers(&b);
    }
    assert_eq!(reinserted, inserted.len().div_ceil(2));
    assert_eq!(is_empty_dir(&b), Ok(false));
}

#[test]
fn dir_long_names() {
    let mut b = block();
    init_empty_block(&mut b).unwrap();
    let mut count = 0u32;
    loop {
        let mut name = vec![b'a' + u8::try_from(count % 26).unwrap(); 255];
        name[0] = b'0' + u8::try_from(count).unwrap();
        if !insert(&mut b, &name, count + 2, DT_DIR).unwrap() {
            break;
        }
        count += 1;
    }
    // 264 bytes per record.
    assert_eq!(count, 15);
    assert_covers(&b);
    // The last record has the slack, enough for a small name.
    assert!(insert(&mut b, b"x", 99, DT_FIFO).unwrap());
    assert!(!insert(&mut b, &[b'y'; 200], 99, DT_FIFO).unwrap());
    assert_eq!(find(&b, b"x"), Ok(Some((15 * 264, 99, DT_FIFO))));
}

#[test]
fn dir_remove_first_record() {
    let mut b = block();
    init_empty_block(&mut b).unwrap();
    assert!(insert(&mut b, b"first", 2, DT_REG).unwrap());
    assert!(insert(&mut b, b"second", 3, DT_REG).unwrap());
    assert!(remove(&mut b, b"first").unwrap());
    let all: Vec<_> = dir_iter(&b).map(|e| e.unwrap()).collect();
    assert_eq!(all.len(), 2);
    assert!(!all[0].is_live());
    assert_eq!(all[0].rec_len, 16);
    assert_eq!(names(&b), [(b"second".to_vec(), 3, DT_REG)]);
    assert_eq!(is_empty_dir(&b), Ok(false));
    // The unused first record is reused by a name that fits.
    assert!(insert(&mut b, b"abcdefgh", 4, DT_SOCK).unwrap());
    assert_eq!(find(&b, b"abcdefgh"), Ok(Some((0, 4, DT_SOCK))));
    assert!(remove(&mut b, b"abcdefgh").unwrap());
    // A longer one goes to the slack of the last record.
    assert!(insert(&mut b, b"abcdefghi", 4, DT_SOCK).unwrap());
    assert_eq!(find(&b, b"abcdefghi"), Ok(Some((32, 4, DT_SOCK))));
    assert!(remove(&mut b, b"second").unwrap());
    assert!(remove(&mut b, b"abcdefghi").unwrap());
    assert_eq!(is_empty_dir(&b), Ok(true));
    assert_covers(&b);
    let all: Vec<_> = dir_iter(&b).map(|e| e.unwrap()).collect();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].rec_len, BLOCK_SIZE);
    assert!(b[8..].iter().all(|&x| x == 0), "removed names are wiped");
    assert_eq!(remove(&mut b, b"second"), Ok(false));
}

#[test]
fn dir_argument_errors() {
    let mut b = block();
    init_dir(&mut b, 1, 1).unwrap();
    let orig = b.clone();
    assert!(matches!(
        insert(&mut b, b"", 2, DT_REG),
        Err(FormatError::Invalid(_))
    ));
    assert!(matches!(
        insert(&mut b, b"a/b", 2, DT_REG),
        Err(FormatError::Invalid(_))
    ));
    assert!(matches!(
        insert(&mut b, b"a\0b", 2, DT_REG),
        Err(FormatError::Invalid(_))
    ));
    assert_eq!(
        insert(&mut b, &[b'x'; 256], 2, DT_REG),
        Err(FormatError::NameTooLong)
    );
    assert!(matches!(
        insert(&mut b, b".", 2, DT_DIR),
        Err(FormatError::Invalid(_))
    ));
    assert!(matches!(
        insert(&mut b, b"..", 2, DT_DIR),
        Err(FormatError::Invalid(_))
    ));
    assert!(matches!(
        insert(&mut b, b"ok", 0, DT_REG),
        Err(FormatError::Invalid(_))
    ));
    assert!(matches!(
        insert(&mut b, b"ok", 2, 3),
        Err(FormatError::Invalid(_))
    ));
    assert!(matches!(remove(&mut b, b"."), Err(FormatError::Invalid(_))));
    assert!(matches!(
        remove(&mut b, b".."),
        Err(FormatError::Invalid(_))
    ));
    assert_eq!(remove(&mut b, &[b'x'; 300]), Err(FormatError::NameTooLong));
    assert_eq!(b, orig);
    assert!(insert(&mut b, &[b'x'; 255], 2, DT_REG).unwrap());
    assert!(insert(&mut b, b"...", 3, DT_REG).unwrap());
    assert!(matches!(
        insert(&mut b[..1000], b"y", 2, DT_REG),
        Err(FormatError::Invalid(_))
    ));
    assert_eq!(check_name(b"\xff\xfe"), Ok(()));
    assert_eq!(rec_len_for(0), 8);
    assert_eq!(rec_len_for(1), 12);
    assert_eq!(rec_len_for(4), 12);
    assert_eq!(rec_len_for(5), 16);
    assert_eq!(rec_len_for(255), 264);
}

/// Writes a raw record header.
fn raw_record(b: &mut [u8], offset: usize, ino: u32, rec_len: u16, name_len: u8, t: u8) {
    b[offset..offset + 4].copy_from_slice(&ino.to_le_bytes());
    b[offset + 4..offset + 6].copy_from_slice(&rec_len.to_le_bytes());
    b[offset + 6] = name_len;
    b[offset + 7] = t;
}

#[test]
fn dir_malformed_blocks() {
    let mut good = block();
    init_dir(&mut good, 1, 1).unwrap();
    assert!(insert(&mut good, b"abc", 2, DT_REG).unwrap());
    validate_dir_block(&good).unwrap();

    let cases: &[RawCase] = &[
        ("rec_len 0", |b| raw_record(b, 0, 1, 0, 1, DT_DIR)),
        ("rec_len 4", |b| raw_record(b, 0, 1, 4, 0, DT_DIR)),
        ("rec_len not a multiple of 4", |b| {
            raw_record(b, 0, 1, 13, 1, DT_DIR);
        }),
        ("rec_len past the end", |b| {
            raw_record(b, 24, 2, 4096, 3, DT_REG);
        }),
        ("rec_len huge", |b| raw_record(b, 24, 2, 0xfffc, 3, DT_REG)),
        ("records end short", |b| {
            raw_record(b, 24, 2, 4068, 3, DT_REG)
        }),
        ("name_len too big for rec_len", |b| {
            raw_record(b, 0, 1, 12, 5, DT_DIR);
        }),
        ("name_len 0 in a live record", |b| {
            raw_record(b, 0, 1, 12, 0, DT_DIR);
        }),
        ("bad file type", |b| raw_record(b, 24, 2, 4072, 3, 3)),
        ("file type 255", |b| raw_record(b, 24, 2, 4072, 3, 255)),
        ("slash in name", |b| b[32] = b'/'),
        ("NUL in name", |b| b[33] = 0),
        ("last record ends short", |b| {
            raw_record(b, 24, 2, 4064, 3, DT_REG);
        }),
    ];
    for (what, f) in cases {
        let mut b = good.clone();
        f(&mut b);
        assert!(is_corrupt(validate_dir_block(&b)), "{what}");
        assert!(is_corrupt(find(&b, b"abc")), "{what}");
        assert!(is_corrupt(is_empty_dir(&b)), "{what}");
        assert!(is_corrupt(read_dots(&b)), "{what}");
        let before = b.clone();
        assert!(is_corrupt(insert(&mut b, b"new", 5, DT_REG)), "{what}");
        assert!(is_corrupt(remove(&mut b, b"abc")), "{what}");
        assert!(is_corrupt(set_dotdot(&mut b, 3)), "{what}");
        assert_eq!(b, before, "{what}: corrupt block modified");
        // The iterator stops after the error.
        let items: Vec<_> = dir_iter(&b).collect();
        assert!(items.last().unwrap().is_err(), "{what}");
        assert_eq!(items.iter().filter(|i| i.is_err()).count(), 1);
    }

    // An unused record may hold any name bytes that fit.
    let mut b = block();
    init_empty_block(&mut b).unwrap();
    raw_record(&mut b, 0, 0, 4096, 20, 99);
    b[8..28].fill(b'/');
    validate_dir_block(&b).unwrap();
    raw_record(&mut b, 0, 0, 4096, 255, 0);
    validate_dir_block(&b).unwrap();
    raw_record(&mut b, 0, 0, 12, 5, 0);
    assert!(is_corrupt(validate_dir_block(&b)));

    // Blocks of the wrong size.
    assert!(matches!(
        validate_dir_block(&good[..2048]),
        Err(FormatError::Invalid(_))
    ));
    assert!(matches!(
        validate_dir_block(&[]),
        Err(FormatError::Invalid(_))
    ));
    let mut big = good.clone();
    big.extend_from_slice(&[0; 4096]);
    assert!(matches!(find(&big, b"abc"), Err(FormatError::Invalid(_))));
    // All zeros: rec_len 0.
    assert!(is_corrupt(validate_dir_block(&block())));
}

#[test]
fn dir_model_random_ops() {
    let mut rng = Rng::new(0x5eed);
    for round in 0..20 {
        let mut b = block();
        let first = round % 2 == 0;
        if first {
            init_dir(&mut b, 1, 2).unwrap();
        } else {
            init_empty_block(&mut b).unwrap();
        }
        let mut model: HashMap<Vec<u8>, (u32, u8)> = HashMap::new();
        let types = [DT_REG, DT_DIR, DT_LNK, DT_CHR, DT_BLK, DT_FIFO, DT_SOCK];
        for _ in 0..2000 {
            let max = if rng.below(4) == 0 { 255 } else { 12 };
            let len = 1 + rng.below(max);
            let name: Vec<u8> = (0..len).map(|_| b"abcdefgh.-_"[rng.below(11)]).collect();
            if name == b"." || name == b".." {
                continue;
            }
            if rng.below(3) == 0 {
                let removed = remove(&mut b, &name).unwrap();
                assert_eq!(removed, model.remove(&name).is_some());
            } else if let Entry::Vacant(slot) = model.entry(name.clone()) {
                let ino = 3 + u32::try_from(rng.below(1000)).unwrap();
                let t = types[rng.below(types.len())];
                if insert(&mut b, &name, ino, t).unwrap() {
                    slot.insert((ino, t));
                } else {
                    // No record has enough room.
                    for e in dir_iter(&b) {
                        let e = e.unwrap();
                        let used = if e.is_live() {
                            rec_len_for(e.name.len())
                        } else {
                            0
                        };
                        assert!(e.rec_len - used < rec_len_for(len));
                    }
                }
            }
            assert_covers(&b);
        }
        let mut listed: Vec<_> = names(&b)
            .into_iter()
            .filter(|(n, _, _)| n != b"." && n != b"..")
            .collect();
        listed.sort();
        let mut expected: Vec<_> = model
            .iter()
            .map(|(n, &(ino, t))| (n.clone(), ino, t))
            .collect();
        expected.sort();
        assert_eq!(listed, expected);
        for (name, &(ino, t)) in &model {
            let (_, i, ty) = find(&b, name).unwrap().unwrap();
            assert_eq!((i, ty), (ino, t));
        }
        if first {
            assert_eq!(read_dots(&b), Ok((1, 2)));
        }
        assert_eq!(is_empty_dir(&b), Ok(model.is_empty()));
    }
}

// Fuzzing: garbage never panics.

#[test]
fn fuzz_superblock() {
    let mut rng = Rng::new(1);
    let good = encode_sb(&sample_superblock());
    let mut accepted = 0;
    for i in 0..20_000 {
        let mut buf = good.clone();
        if i % 4 == 0 {
            rng.fill(&mut buf[..512]);
        } else {
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(508);
                buf[at] = rng.byte();
            }
            if i % 4 != 1 {
                // Keep the magic and version to reach the deeper checks.
                buf[..8].copy_from_slice(&good[..8]);
                buf[12..16].copy_from_slice(&good[12..16]);
            }
            fix_sb_checksum(&mut buf);
        }
        let len = if i % 50 == 0 { rng.below(600) } else { 512 };
        let device = if i % 3 == 0 { rng.next() } else { u64::MAX };
        if let Ok(sb) = Superblock::decode(&buf[..len.min(buf.len())], device) {
            accepted += 1;
            // Anything accepted is consistent.
            sb.geometry().validate().unwrap();
            assert!(sb.block_count <= device);
            let _ = sb.inode_location(rng.next() % (sb.inode_count + 2));
            let _ = sb.block_bitmap_location(rng.next());
            let _ = sb.inode_bitmap_location(rng.next());
            let mut again = block();
            sb.encode(&mut again).unwrap();
            assert_eq!(Superblock::decode(&again, device), Ok(sb));
        }
    }
    assert!(accepted > 100, "the fuzzer reaches valid superblocks");
}

#[test]
fn fuzz_inode() {
    let mut rng = Rng::new(2);
    let good = encode_inode(&sample_inode());
    let mut accepted = 0;
    for i in 0..20_000 {
        let mut buf = good.clone();
        if i % 4 == 0 {
            rng.fill(&mut buf);
        } else {
            for _ in 0..1 + rng.below(6) {
                let at = rng.below(252);
                buf[at] = rng.byte();
            }
            fix_inode_checksum(&mut buf);
        }
        if i % 10 == 0 {
            fix_inode_checksum(&mut buf);
        }
        let len = if i % 50 == 0 { rng.below(300) } else { 256 };
        match Inode::decode(&buf[..len.min(buf.len())]) {
            Ok(Some(inode)) => {
                accepted += 1;
                let mut again = [0u8; INODE_SIZE];
                inode.encode(&mut again).unwrap();
                assert_eq!(Inode::decode(&again), Ok(Some(inode)));
            }
            Ok(None) => panic!("non-zero slot decoded as free"),
            Err(_) => {}
        }
    }
    assert!(accepted > 1000);
}

#[test]
fn fuzz_dir_blocks() {
    let mut rng = Rng::new(3);
    let mut good = block();
    init_dir(&mut good, 1, 1).unwrap();
    for i in 0..40 {
        insert(&mut good, format!("entry{i}").as_bytes(), 10 + i, DT_REG).unwrap();
    }
    for i in (0..40).step_by(3) {
        remove(&mut good, format!("entry{i}").as_bytes()).unwrap();
    }
    let mut valid = 0;
    for i in 0..10_000 {
        let mut b = good.clone();
        match i % 4 {
            0 => rng.fill(&mut b),
            1 => {
                // Plausible headers everywhere.
                rng.fill(&mut b);
                let mut at = 0;
                while at + 8 <= BLOCK_SIZE {
                    let len = 4 * (2 + rng.below(40));
                    let rec = u16::try_from(len).unwrap();
                    let name_len = u8::try_from(rng.below(len)).unwrap_or(255);
                    let ino = u32::try_from(rng.below(3)).unwrap();
                    raw_record(&mut b, at, ino, rec, name_len, 8);
                    at += len;
                }
            }
            _ => {
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(BLOCK_SIZE);
                    b[at] = rng.byte();
                }
            }
        }
        let valid_before = validate_dir_block(&b).is_ok();
        if valid_before {
            valid += 1;
        }
        let _ = find(&b, b"entry5");
        let _ = is_empty_dir(&b);
        let _ = read_dots(&b);
        for e in dir_iter(&b) {
            if e.is_err() {
                assert!(!valid_before);
            }
        }
        let mut m = b.clone();
        let name = format!("n{}", rng.below(100));
        let inserted = insert(&mut m, name.as_bytes(), 77, DT_DIR);
        let removed = remove(&mut m, b"entry7");
        let _ = set_dotdot(&mut m, 4);
        if valid_before {
            // Updates keep a valid block valid.
            inserted.unwrap();
            removed.unwrap();
            validate_dir_block(&m).unwrap();
        } else {
            assert!(inserted.is_err() && removed.is_err());
            assert_eq!(m, b);
        }
    }
    assert!(valid > 1000);
}

#[test]
fn errors_display() {
    let all = [
        FormatError::BadMagic,
        FormatError::BadVersion,
        FormatError::BadBlockSize,
        FormatError::BadChecksum,
        FormatError::UnsupportedFeatures,
        FormatError::Corrupt("x"),
        FormatError::ShortBuffer,
        FormatError::DeviceTooSmall,
        FormatError::FileTooBig,
        FormatError::NameTooLong,
        FormatError::Invalid("y"),
    ];
    for e in all {
        assert!(!e.to_string().is_empty());
    }
    assert_eq!(
        FormatError::Corrupt("bad thing").to_string(),
        "corrupt metadata: bad thing"
    );
}

#[test]
fn device_numbers() {
    let mkdev = |major: u32, minor: u32| (major << 20) | minor;
    // What glibc's makedev() gives for these.
    assert_eq!(encode_dev(mkdev(1, 3)), 0x103);
    assert_eq!(encode_dev(mkdev(8, 17)), 0x811);
    assert_eq!(encode_dev(mkdev(259, 0x12345)), 0x1231_0345);
    assert_eq!(encode_dev(mkdev(0xfff, 0xfffff)), 0xffff_ffff);
    let mut rng = Rng::new(7);
    for _ in 0..10000 {
        let dev = mkdev(rng.below(0x1000) as u32, rng.below(0x10_0000) as u32);
        assert_eq!(decode_dev(encode_dev(dev)), dev);
    }
}

#[test]
fn dir_block_retarget() {
    let mut buf = block();
    init_dir(&mut buf, 5, 1).unwrap();
    assert!(insert(&mut buf, b"a", 10, DT_REG).unwrap());
    assert!(insert(&mut buf, b"bb", 11, DT_DIR).unwrap());
    let before: Vec<(usize, usize)> = dir_iter(&buf)
        .map(|e| e.map(|e| (e.offset, e.rec_len)).unwrap())
        .collect();
    assert!(retarget(&mut buf, b"bb", 12, DT_CHR).unwrap());
    assert_eq!(
        find(&buf, b"bb").unwrap().map(|(_, i, t)| (i, t)),
        Some((12, DT_CHR))
    );
    assert_eq!(
        find(&buf, b"a").unwrap().map(|(_, i, t)| (i, t)),
        Some((10, DT_REG))
    );
    let after: Vec<(usize, usize)> = dir_iter(&buf)
        .map(|e| e.map(|e| (e.offset, e.rec_len)).unwrap())
        .collect();
    assert_eq!(before, after, "records stay where they were");
    assert!(!retarget(&mut buf, b"c", 12, DT_REG).unwrap());
    assert!(retarget(&mut buf, b".", 12, DT_DIR).is_err());
    assert!(retarget(&mut buf, b"a", 0, DT_REG).is_err());
    assert!(retarget(&mut buf, b"a", 3, 99).is_err());
    assert!(validate_dir_block(&buf).is_ok());
}

// Extended attributes.

fn xattr_block(owner: u32) -> Vec<u8> {
    let mut b = vec![0xa5; BLOCK_SIZE];
    xattr_init(&mut b, owner).unwrap();
    b
}

fn xattr_list(b: &[u8], owner: u32) -> Vec<(u8, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    xattr_entries(b, owner, |e| {
        out.push((e.index, e.name.to_vec(), e.value.to_vec()));
        Ok(())
    })
    .unwrap();
    out
}

#[test]
fn xattr_set_get_replace_remove() {
    let mut b = xattr_block(7);
    assert_eq!(xattr_list(&b, 7), vec![]);
    assert_eq!(
        xattr_set(&mut b, 7, XATTR_INDEX_USER, b"a", Some(b"one")),
        Ok(XattrSet::Done(1))
    );
    assert_eq!(
        xattr_set(&mut b, 7, XATTR_INDEX_TRUSTED, b"a", Some(b"")),
        Ok(XattrSet::Done(2))
    );
    assert_eq!(
        xattr_set(&mut b, 7, XATTR_INDEX_USER, b"b", Some(&[0; 300])),
        Ok(XattrSet::Done(3))
    );
    // Same name, other index: another attribute; an empty value is a value.
    let e = xattr_get(&b, 7, XATTR_INDEX_TRUSTED, b"a")
        .unwrap()
        .unwrap();
    assert_eq!(e.value, b"");
    assert_eq!(xattr_get(&b, 7, XATTR_INDEX_SECURITY, b"a").unwrap(), None);
    // Replacing moves the attribute to the end, with its new value.
    assert_eq!(
        xattr_set(&mut b, 7, XATTR_INDEX_USER, b"a", Some(b"two!")),
        Ok(XattrSet::Done(3))
    );
    let names: Vec<_> = xattr_list(&b, 7)
        .into_iter()
        .map(|(i, n, v)| (i, n, v.len()))
        .collect();
    assert_eq!(
        names,
        vec![
            (XATTR_INDEX_TRUSTED, b"a".to_vec(), 0),
            (XATTR_INDEX_USER, b"b".to_vec(), 300),
            (XATTR_INDEX_USER, b"a".to_vec(), 4)
        ]
    );
    assert_eq!(
        xattr_set(&mut b, 7, XATTR_INDEX_USER, b"b", None),
        Ok(XattrSet::Done(2))
    );
    // Removing what is not there changes nothing.
    let before = b.clone();
    assert_eq!(
        xattr_set(&mut b, 7, XATTR_INDEX_USER, b"zz", None),
        Ok(XattrSet::Done(2))
    );
    assert_eq!(b, before);
    assert_eq!(
        xattr_set(&mut b, 7, XATTR_INDEX_USER, b"a", None),
        Ok(XattrSet::Done(1))
    );
    assert_eq!(
        xattr_set(&mut b, 7, XATTR_INDEX_TRUSTED, b"a", None),
        Ok(XattrSet::Done(0))
    );
    // Back to an empty block: the same bytes as a fresh one.
    assert_eq!(b, xattr_block(7));
}

#[test]
fn xattr_limits() {
    let mut b = xattr_block(3);
    let name = [b'n'; XATTR_NAME_MAX];
    assert!(xattr_set(&mut b, 3, XATTR_INDEX_USER, &name, Some(b"x")).is_ok());
    // The last index: system. (the POSIX ACLs).
    assert!(xattr_set(
        &mut b,
        3,
        XATTR_INDEX_SYSTEM,
        b"posix_acl_access",
        Some(b"acl")
    )
    .is_ok());
    assert!(matches!(
        xattr_set(&mut b, 3, XATTR_INDEX_USER, &[b'n'; 256], Some(b"x")),
        Err(FormatError::Invalid(_))
    ));
    assert!(matches!(
        xattr_set(&mut b, 3, XATTR_INDEX_USER, b"", Some(b"x")),
        Err(FormatError::Invalid(_))
    ));
    assert!(matches!(
        xattr_set(&mut b, 3, 0, b"a", Some(b"x")),
        Err(FormatError::Invalid(_))
    ));
    assert!(matches!(
        xattr_set(&mut b, 3, XATTR_INDEX_SYSTEM + 1, b"a", Some(b"x")),
        Err(FormatError::Invalid(_))
    ));
    // The largest value of an empty block fills it exactly.
    let mut b = xattr_block(3);
    let max = BLOCK_SIZE - XATTR_HEADER - 4 - 1;
    assert_eq!(
        xattr_set(&mut b, 3, XATTR_INDEX_USER, b"v", Some(&vec![1; max])),
        Ok(XattrSet::Done(1))
    );
    assert_eq!(
        xattr_set(&mut b, 3, XATTR_INDEX_USER, b"w", Some(b"")),
        Ok(XattrSet::NoRoom)
    );
    let mut c = xattr_block(3);
    assert_eq!(
        xattr_set(&mut c, 3, XATTR_INDEX_USER, b"v", Some(&vec![1; max + 1])),
        Ok(XattrSet::NoRoom)
    );
    assert_eq!(c, xattr_block(3));
    // Replacing the big value by a small one works although both would not fit.
    assert_eq!(
        xattr_set(&mut b, 3, XATTR_INDEX_USER, b"v", Some(b"small")),
        Ok(XattrSet::Done(1))
    );
}

#[test]
fn xattr_damage_is_refused() {
    let mut b = xattr_block(9);
    xattr_set(&mut b, 9, XATTR_INDEX_USER, b"a", Some(b"1")).unwrap();
    xattr_set(&mut b, 9, XATTR_INDEX_SECURITY, b"selinux", Some(b"ctx")).unwrap();
    assert!(matches!(
        xattr_entries(&b, 10, |_| Ok(())),
        Err(FormatError::Corrupt(_))
    ));
    let mut c = b.clone();
    c[0] ^= 1;
    assert!(xattr_entries(&c, 9, |_| Ok(())).is_err());
    let mut c = b.clone();
    c[100] ^= 1;
    assert_eq!(
        xattr_entries(&c, 9, |_| Ok(())),
        Err(FormatError::BadChecksum)
    );
    assert!(xattr_entries(&b[..100], 9, |_| Ok(())).is_err());
    // Damage behind a valid checksum: a duplicate, a bad index, a count too large, trailing
    // bytes.
    let fix = |c: &mut Vec<u8>| {
        c[12..16].fill(0);
        let crc = crc32c(c);
        c[12..16].copy_from_slice(&crc.to_le_bytes());
    };
    let cases: [RawCase; 5] = [
        ("duplicate", |c| c[16 + 8] = XATTR_INDEX_USER),
        ("index", |c| c[16] = 9),
        ("count", |c| c[4] = 3),
        ("trailing", |c| c[4000] = 1),
        ("padding", |c| c[16 + 6] = 1),
    ];
    // Entry 2 ("selinux" under security.) starts at 16 + 8; making its index user. and its
    // name "a" makes a duplicate.
    for (what, f) in cases {
        let mut c = b.clone();
        f(&mut c);
        if what == "duplicate" {
            c[16 + 9] = 1;
            c[16 + 12] = b'a';
            c[16 + 13..16 + 24].fill(0);
            c[16 + 10] = 0;
            c[16 + 11] = 0;
        }
        fix(&mut c);
        let got = xattr_entries(&c, 9, |_| Ok(()));
        assert!(matches!(got, Err(FormatError::Corrupt(_))), "{what}");
        if what == "duplicate" {
            assert_eq!(
                got,
                Err(FormatError::Corrupt("duplicate extended attribute"))
            );
        }
    }
}

#[test]
fn xattr_random_against_a_model() {
    let mut rng = Rng::new(42);
    let mut b = xattr_block(5);
    let mut model: HashMap<(u8, Vec<u8>), Vec<u8>> = HashMap::new();
    for _ in 0..20_000 {
        let index = 1 + (rng.next() % 3) as u8;
        let name = format!("n{}", rng.next() % 40).into_bytes();
        let key = (index, name.clone());
        if rng.next() % 3 == 0 {
            assert!(matches!(
                xattr_set(&mut b, 5, index, &name, None),
                Ok(XattrSet::Done(_))
            ));
            model.remove(&key);
        } else {
            let len = (rng.next() % 400) as usize;
            let value: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            match xattr_set(&mut b, 5, index, &name, Some(&value)).unwrap() {
                XattrSet::Done(n) => {
                    model.insert(key, value);
                    assert_eq!(usize::from(n), model.len());
                }
                XattrSet::NoRoom => {
                    let used: usize = model
                        .iter()
                        .filter(|(k, _)| **k != key)
                        .map(|((_, n), v)| xattr_entry_size(n.len(), v.len()))
                        .sum();
                    assert!(used + xattr_entry_size(name.len(), len) > BLOCK_SIZE - XATTR_HEADER);
                }
            }
        }
        let got: HashMap<_, _> = xattr_list(&b, 5)
            .into_iter()
            .map(|(i, n, v)| ((i, n), v))
            .collect();
        assert_eq!(got, model);
    }
}

#[test]
fn xattr_garbage_never_panics() {
    let mut rng = Rng::new(7);
    let mut b = xattr_block(1);
    for i in 0..30u8 {
        xattr_set(&mut b, 1, 1 + i % 3, &[b'a' + i; 3], Some(&[i; 20])).unwrap();
    }
    for _ in 0..20_000 {
        let mut c = b.clone();
        for _ in 0..1 + rng.next() % 4 {
            let at = (rng.next() % 700) as usize;
            c[at] = rng.next() as u8;
        }
        c[12..16].fill(0);
        let crc = crc32c(&c);
        c[12..16].copy_from_slice(&crc.to_le_bytes());
        let _ = xattr_entries(&c, 1, |_| Ok(()));
        let _ = xattr_set(&mut c, 1, 1, b"new", Some(b"v"));
    }
}
