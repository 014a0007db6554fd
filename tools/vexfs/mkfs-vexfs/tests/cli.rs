// SPDX-License-Identifier: GPL-2.0

//! Integration tests of the `mkfs-vexfs` command.

// Only part of the shared format module is needed here.
#[allow(dead_code)]
#[path = "../../../../fs/vexfs/format.rs"]
mod format;

use format::*;
use std::{
    fs,
    os::unix::fs::FileExt,
    path::{
        Path,
        PathBuf, //
    },
    process::Command,
};

/// Runs `mkfs-vexfs`; returns the exit status, stdout and stderr.
fn mkfs(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mkfs-vexfs"))
        .args(args)
        .output()
        .expect("run mkfs-vexfs");
    (
        out.status.code().expect("exit status"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A temporary path, removed when dropped.
struct TempPath(PathBuf);

impl TempPath {
    fn new(name: &str) -> Self {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("mkfs-{name}-{}.img", std::process::id()));
        let _ = fs::remove_file(&path);
        Self(path)
    }

    fn as_str(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn block(image: &[u8], n: u64) -> &[u8] {
    let start = usize::try_from(n).unwrap() * BLOCK_SIZE;
    &image[start..start + BLOCK_SIZE]
}

/// Reads the metadata blocks of an image and the root directory block.
fn read_metadata(path: &TempPath) -> Vec<u8> {
    let file = fs::File::open(&path.0).unwrap();
    let mut block0 = vec![0u8; BLOCK_SIZE];
    file.read_exact_at(&mut block0, 0).unwrap();
    let sb = Superblock::decode(&block0, u64::MAX).unwrap();
    let mut image = vec![0u8; usize::try_from(sb.data_start + 1).unwrap() * BLOCK_SIZE];
    file.read_exact_at(&mut image, 0).unwrap();
    image
}

/// Checks the layout written by mkfs and returns the superblock.
fn check_image(path: &TempPath) -> Superblock {
    let image = read_metadata(path);
    let blocks = fs::metadata(&path.0).unwrap().len() / 4096;
    let sb = Superblock::decode(&image, blocks).unwrap();
    assert_eq!(sb.state, STATE_CLEAN);
    assert_eq!(sb.free_blocks, sb.block_count - sb.data_start - 1);
    assert_eq!(sb.free_inodes, sb.inode_count - 2);
    assert!(sb.mkfs_time > 1_600_000_000);
    assert_eq!(sb.write_time, sb.mkfs_time);
    assert_eq!(sb.uuid[6] >> 4, 4, "version 4 UUID");
    assert!(block(&image, 0)[SUPERBLOCK_SIZE..].iter().all(|&b| b == 0));

    // Bitmaps.
    let ibits: Vec<u8> = (0..sb.inode_bitmap_blocks)
        .flat_map(|i| block(&image, sb.inode_bitmap_start + i).to_vec())
        .collect();
    let ilimit = usize::try_from(sb.inode_count).unwrap();
    assert_eq!(count_set_bits(&ibits, ilimit), 2);
    assert!(test_bit(&ibits, 0).unwrap() && test_bit(&ibits, 1).unwrap());
    assert_eq!(
        count_set_bits(&ibits, usize::MAX),
        2 + u64::try_from(ibits.len() * 8 - ilimit).unwrap()
    );
    let bbits: Vec<u8> = (0..sb.block_bitmap_blocks)
        .flat_map(|i| block(&image, sb.block_bitmap_start + i).to_vec())
        .collect();
    let blimit = usize::try_from(sb.block_count).unwrap();
    assert_eq!(count_set_bits(&bbits, blimit), sb.data_start + 1);
    assert_eq!(
        find_next_zero_bit(&bbits, 0, blimit),
        Some(usize::try_from(sb.data_start).unwrap() + 1)
    );
    assert_eq!(
        count_set_bits(&bbits, usize::MAX),
        sb.data_start + 1 + u64::try_from(bbits.len() * 8 - blimit).unwrap()
    );

    // Inode table: only the root.
    for i in 0..sb.inode_table_blocks {
        for (slot, raw) in block(&image, sb.inode_table_start + i)
            .chunks(INODE_SIZE)
            .enumerate()
        {
            let ino = i * 16 + u64::try_from(slot).unwrap();
            let inode = Inode::decode(raw).unwrap();
            assert_eq!(inode.is_some(), ino == 1, "inode {ino}");
        }
    }
    let (b, offset) = sb.inode_location(1).unwrap();
    let root = Inode::decode(&block(&image, b)[offset..]).unwrap().unwrap();
    assert_eq!(root.mode, S_IFDIR | 0o755);
    assert_eq!((root.nlink, root.size, root.blocks), (2, 4096, 1));
    assert_eq!(u64::from(root.block[0]), sb.data_start);
    assert!(root.block[1..].iter().all(|&p| p == 0));
    assert_eq!(root.mtime_sec, i64::try_from(sb.mkfs_time).unwrap());
    let dir = block(&image, sb.data_start);
    assert_eq!(read_dots(dir), Ok((1, 1)));
    assert_eq!(is_empty_dir(dir), Ok(true));
    sb
}

#[test]
fn creates_image() {
    let path = TempPath::new("create");
    let (code, out, err) = mkfs(&["-L", "data", path.as_str(), "64M"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("16384 blocks of 4096 bytes (64 MiB), 4096 inodes"),
        "{out}"
    );
    assert!(out.contains("Label: data"), "{out}");
    assert_eq!(fs::metadata(&path.0).unwrap().len(), 64 << 20);
    let sb = check_image(&path);
    assert_eq!(sb.block_count, 16384);
    assert_eq!(sb.inode_count, 4096);
    assert_eq!(&sb.label[..5], b"data\0");
}

#[test]
fn options() {
    let path = TempPath::new("options");
    let (code, out, err) = mkfs(&["-q", "-N", "100000", path.as_str(), "600M"]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    let sb = check_image(&path);
    assert_eq!(sb.inode_count, 100_000);
    assert_eq!(sb.inode_bitmap_blocks, 4);
    assert_eq!(sb.block_bitmap_blocks, 5);
    assert_eq!(sb.label, [0; 32]);

    // Reformat in place with the size of the existing file.
    let (code, _, err) = mkfs(&["-q", "-f", "-L", &"L".repeat(32), path.as_str()]);
    assert_eq!(code, 0, "{err}");
    let sb = check_image(&path);
    assert_eq!(sb.block_count, 153_600);
    assert_eq!(sb.label, [b'L'; 32]);

    // A smaller SIZE does not truncate the file.
    let (code, _, err) = mkfs(&["-q", "-f", path.as_str(), "1M"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(fs::metadata(&path.0).unwrap().len(), 600 << 20);
    let image = read_metadata(&path);
    assert_eq!(
        Superblock::decode(&image, 1 << 30).unwrap().block_count,
        256
    );

    // A larger one extends it.
    let (code, _, err) = mkfs(&["-f", "-q", path.as_str(), "700M"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(fs::metadata(&path.0).unwrap().len(), 700 << 20);
    check_image(&path);

    // The size is rounded down to whole blocks.
    let odd = TempPath::new("odd");
    let (code, _, err) = mkfs(&["-q", odd.as_str(), "1000000"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(check_image(&odd).block_count, 244);
}

#[test]
fn errors() {
    let path = TempPath::new("errors");
    for args in [
        &[][..],
        &["-x", path.as_str()],
        &["-N", "lots", path.as_str(), "1M"],
        &["-L", &"x".repeat(33), path.as_str(), "1M"],
        &[path.as_str(), "1Q"],
        &[path.as_str(), "1M", "2M"],
    ] {
        let (code, _, err) = mkfs(args);
        assert_eq!(code, 1, "{args:?}");
        assert!(err.contains("usage: mkfs.vexfs"), "{err}");
    }
    assert!(!path.0.exists());

    // The file does not exist and no size is given.
    let (code, _, err) = mkfs(&[path.as_str()]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot access"), "{err}");

    let (code, _, err) = mkfs(&[path.as_str(), "255K"]);
    assert_eq!(code, 1);
    assert!(err.contains("too small"), "{err}");
    let (code, _, err) = mkfs(&["-N", "100000", path.as_str(), "1M"]);
    assert_eq!(code, 1);
    assert!(err.contains("too small"), "{err}");
    let (code, _, err) = mkfs(&["-N", "5", path.as_str(), "1M"]);
    assert_eq!(code, 1);
    assert!(err.contains("inode count"), "{err}");
    let (code, _, err) = mkfs(&[path.as_str(), "17T"]);
    assert_eq!(code, 1);
    assert!(err.contains("too large"), "{err}");

    let (code, _, err) = mkfs(&[env!("CARGO_TARGET_TMPDIR")]);
    assert_eq!(code, 1);
    assert!(
        err.contains("neither a block device nor a regular file"),
        "{err}"
    );

    let (code, out, _) = mkfs(&["-h"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("usage: mkfs.vexfs"));
}

#[test]
fn refuses_existing_filesystems() {
    let path = TempPath::new("existing");
    let (code, _, err) = mkfs(&["-q", path.as_str(), "4M"]);
    assert_eq!(code, 0, "{err}");
    let before = read_metadata(&path);

    // A VexFS: refused without -f, and left as it was.
    let (code, _, err) = mkfs(&["-q", path.as_str()]);
    assert_eq!(code, 1);
    assert!(err.contains("contains a VexFS filesystem; use -f"), "{err}");
    assert_eq!(read_metadata(&path), before);
    let (code, _, err) = mkfs(&["-q", "-f", path.as_str()]);
    assert_eq!(code, 0, "{err}");
    assert_ne!(read_metadata(&path), before, "a new UUID at least");

    // Other filesystems and partition tables.
    let file = fs::OpenOptions::new().write(true).open(&path.0).unwrap();
    for (off, magic, what) in [
        (1080u64, &[0x53u8, 0xef][..], "ext2/ext3/ext4"),
        (0, b"XFSB", "XFS"),
        (65536 + 64, b"_BHRfS_M", "btrfs"),
        (4086, b"SWAPSPACE2", "swap space"),
        (512, b"EFI PART", "GPT partition table"),
    ] {
        file.write_all_at(&[0; 128 << 10], 0).unwrap();
        file.write_all_at(magic, off).unwrap();
        let (code, _, err) = mkfs(&["-q", path.as_str()]);
        assert_eq!(code, 1, "{what}");
        assert!(err.contains(what), "{what}: {err}");
        let (code, _, err) = mkfs(&["-q", "-f", path.as_str()]);
        assert_eq!(code, 0, "{what}: {err}");
        check_image(&path);
    }

    // Zeros or unrecognised data are overwritten without -f.
    file.write_all_at(&[0x5a; 128 << 10], 0).unwrap();
    let (code, _, err) = mkfs(&["-q", path.as_str()]);
    assert_eq!(code, 0, "{err}");
}
