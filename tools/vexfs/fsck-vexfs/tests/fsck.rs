// SPDX-License-Identifier: GPL-2.0

//! Integration tests of `fsck-vexfs`: images made by the mkfs library, then
//! populated and corrupted through the shared format module.

// Only part of the shared format module is needed here.
#[allow(dead_code)]
#[path = "../../../../fs/vexfs/format.rs"]
mod format;

use format::*;
use std::{
    fs::{
        self,
        File,
        OpenOptions, //
    },
    os::unix::fs::FileExt,
    path::{
        Path,
        PathBuf, //
    },
    process::Command,
};

/// Runs `fsck-vexfs` with `args`; returns the exit status and stdout.
fn fsck(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fsck-vexfs"))
        .args(args)
        .output()
        .expect("run fsck-vexfs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}{stderr}");
    (out.status.code().expect("exit status"), stdout)
}

/// A test image, removed when dropped.
struct Image {
    path: PathBuf,
    file: File,
    sb: Superblock,
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn image_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fsck-{name}-{}.img", std::process::id()))
}

impl Image {
    /// Formats a new image of `size` bytes.
    fn new(name: &str, size: u64) -> Self {
        let path = image_path(name);
        let _ = fs::remove_file(&path);
        let options = mkfs_vexfs::Options {
            device: path.clone(),
            size: Some(size),
            quiet: true,
            label: b"test".to_vec(),
            inodes: None,
            force: true,
        };
        mkfs_vexfs::mkfs(&options).expect("mkfs");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut block0 = vec![0u8; BLOCK_SIZE];
        file.read_exact_at(&mut block0, 0).unwrap();
        let sb = Superblock::decode(&block0, size / 4096).unwrap();
        Self { path, file, sb }
    }

    fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }

    fn fsck(&self) -> (i32, String) {
        fsck(&["-v", self.path()])
    }

    /// Asserts that fsck finds errors, one of them containing `what`.
    fn expect_error(&self, what: &str) {
        let (code, out) = self.fsck();
        assert_eq!(code, 4, "expected errors, got:\n{out}");
        assert!(
            out.lines()
                .any(|l| l.starts_with("fsck.vexfs: ") && l.contains(what)),
            "no problem line with '{what}' in:\n{out}"
        );
    }

    /// Asserts that fsck finds no problem at all.
    fn expect_clean(&self) {
        let (code, out) = self.fsck();
        assert_eq!(code, 0, "expected a clean check, got:\n{out}");
        assert!(!out.contains("fsck.vexfs:"), "unexpected output:\n{out}");
    }

    fn read(&self, block: u64) -> Vec<u8> {
        let mut buf = vec![0u8; BLOCK_SIZE];
        self.file.read_exact_at(&mut buf, block * 4096).unwrap();
        buf
    }

    fn write(&self, block: u64, data: &[u8]) {
        self.file.write_all_at(data, block * 4096).unwrap();
    }

    /// Applies `f` to block `block`.
    fn edit(&self, block: u64, f: impl FnOnce(&mut [u8])) {
        let mut data = self.read(block);
        f(&mut data);
        self.write(block, &data);
    }

    fn write_sb(&self) {
        self.edit(0, |b| self.sb.encode(b).unwrap());
    }

    fn inode(&self, ino: u32) -> Inode {
        let (block, offset) = self.sb.inode_location(u64::from(ino)).unwrap();
        Inode::decode(&self.read(block)[offset..]).unwrap().unwrap()
    }

    fn put_inode(&self, ino: u32, inode: &Inode) {
        let (block, offset) = self.sb.inode_location(u64::from(ino)).unwrap();
        self.edit(block, |b| inode.encode(&mut b[offset..]).unwrap());
    }

    fn update_inode(&self, ino: u32, f: impl FnOnce(&mut Inode)) {
        let mut inode = self.inode(ino);
        f(&mut inode);
        self.put_inode(ino, &inode);
    }

    fn set_inode_bit(&self, ino: u64, value: bool) {
        let (block, bit) = self.sb.inode_bitmap_location(ino).unwrap();
        self.edit(block, |b| {
            if value {
                set_bit(b, bit).unwrap();
            } else {
                clear_bit(b, bit).unwrap();
            }
        });
    }

    fn set_block_bit(&self, block: u64, value: bool) {
        let (bitmap, bit) = self.sb.block_bitmap_location(block).unwrap();
        self.edit(bitmap, |b| {
            if value {
                set_bit(b, bit).unwrap();
            } else {
                clear_bit(b, bit).unwrap();
            }
        });
    }

    /// Allocates a free inode number.
    fn alloc_inode(&mut self) -> u32 {
        let map = self.read(self.sb.inode_bitmap_start);
        let limit = usize::try_from(self.sb.inode_count).unwrap();
        let ino = find_next_zero_bit(&map, 0, limit).expect("free inode");
        self.set_inode_bit(u64::try_from(ino).unwrap(), true);
        self.sb.free_inodes -= 1;
        self.write_sb();
        u32::try_from(ino).unwrap()
    }

    /// Allocates a free data block.
    fn alloc_block(&mut self) -> u32 {
        let map = self.read(self.sb.block_bitmap_start);
        let limit = usize::try_from(self.sb.block_count).unwrap();
        let start = usize::try_from(self.sb.data_start).unwrap();
        let block = find_next_zero_bit(&map, start, limit).expect("free block");
        let block64 = u64::try_from(block).unwrap();
        self.set_block_bit(block64, true);
        self.sb.free_blocks -= 1;
        self.write_sb();
        self.write(block64, &[0u8; BLOCK_SIZE]);
        u32::try_from(block).unwrap()
    }

    /// Returns the physical block of logical block `lblk` of `inode`.
    fn bmap(&self, inode: &Inode, lblk: u64) -> u32 {
        let path = block_path(lblk).unwrap();
        let mut ptr = inode.block[path.offsets[0]];
        for &offset in &path.as_slice()[1..] {
            if ptr == 0 {
                return 0;
            }
            ptr = read_indirect(&self.read(u64::from(ptr)), offset).unwrap();
        }
        ptr
    }

    /// Maps logical block `lblk` of inode `ino` to a new block.
    fn map_new_block(&mut self, ino: u32, lblk: u64) -> u32 {
        let mut inode = self.inode(ino);
        let path = block_path(lblk).unwrap();
        let offsets = path.as_slice().to_vec();
        if inode.block[offsets[0]] == 0 {
            inode.block[offsets[0]] = self.alloc_block();
            inode.blocks += 1;
        }
        let mut ptr = inode.block[offsets[0]];
        for &offset in &offsets[1..] {
            let mut data = self.read(u64::from(ptr));
            let mut next = read_indirect(&data, offset).unwrap();
            if next == 0 {
                next = self.alloc_block();
                inode.blocks += 1;
                write_indirect(&mut data, offset, next).unwrap();
                self.write(u64::from(ptr), &data);
            }
            ptr = next;
        }
        self.put_inode(ino, &inode);
        ptr
    }

    /// Adds the entry `name` to directory `dir`, growing it if needed.
    fn add_entry(&mut self, dir: u32, name: &str, ino: u32, file_type: u8) {
        let inode = self.inode(dir);
        let nblocks = inode.size / 4096;
        for lblk in 0..nblocks {
            let block = u64::from(self.bmap(&inode, lblk));
            let mut data = self.read(block);
            if insert(&mut data, name.as_bytes(), ino, file_type).unwrap() {
                self.write(block, &data);
                return;
            }
        }
        let block = u64::from(self.map_new_block(dir, nblocks));
        let mut data = vec![0u8; BLOCK_SIZE];
        init_empty_block(&mut data).unwrap();
        assert!(insert(&mut data, name.as_bytes(), ino, file_type).unwrap());
        self.write(block, &data);
        self.update_inode(dir, |i| i.size += 4096);
    }

    /// Creates a directory.
    fn mkdir(&mut self, parent: u32, name: &str) -> u32 {
        let ino = self.alloc_inode();
        self.put_inode(
            ino,
            &Inode {
                mode: S_IFDIR | 0o755,
                nlink: 2,
                size: 4096,
                ..Inode::default()
            },
        );
        let block = u64::from(self.map_new_block(ino, 0));
        let mut data = vec![0u8; BLOCK_SIZE];
        init_dir(&mut data, ino, parent).unwrap();
        self.write(block, &data);
        self.add_entry(parent, name, ino, DT_DIR);
        self.update_inode(parent, |i| i.nlink += 1);
        ino
    }

    /// Creates a regular file of `size` bytes with every block mapped.
    fn create_file(&mut self, parent: u32, name: &str, size: u64) -> u32 {
        self.create(parent, name, S_IFREG | 0o644, size)
    }

    fn create(&mut self, parent: u32, name: &str, mode: u16, size: u64) -> u32 {
        let ino = self.alloc_inode();
        self.put_inode(
            ino,
            &Inode {
                mode,
                nlink: 1,
                ..Inode::default()
            },
        );
        if mode & S_IFMT == S_IFREG || mode & S_IFMT == S_IFLNK {
            for lblk in 0..size.div_ceil(4096) {
                let block = self.map_new_block(ino, lblk);
                if mode & S_IFMT == S_IFREG {
                    // Data, not zeroes: zeroed blocks past the end are preallocated ones.
                    self.write(u64::from(block), &[0xa5; 4096]);
                }
            }
            self.update_inode(ino, |i| i.size = size);
        }
        self.add_entry(parent, name, ino, file_type_of_mode(mode));
        ino
    }

    /// Adds a hard link to `ino`.
    fn link(&mut self, parent: u32, name: &str, ino: u32) {
        let t = self.inode(ino).file_type();
        self.add_entry(parent, name, ino, t);
        self.update_inode(ino, |i| i.nlink += 1);
    }

    /// Returns the first block of directory `dir`.
    fn dir_block(&self, dir: u32) -> u64 {
        u64::from(self.inode(dir).block[0])
    }
}

/// An image with a bit of everything, which must check clean.
struct Populated {
    img: Image,
    sub: u32,
    subsub: u32,
    small: u32,
    big: u32,
    link: u32,
}

fn populated(name: &str) -> Populated {
    let mut img = Image::new(name, 16 << 20);
    let sub = img.mkdir(ROOT_INO, "sub");
    let subsub = img.mkdir(sub, "subsub");
    img.mkdir(sub, "other");
    img.create_file(ROOT_INO, "empty", 0);
    let small = img.create_file(sub, "small", 100);
    img.create_file(ROOT_INO, "twelve", 12 * 4096);
    img.create_file(subsub, "thirteen", 12 * 4096 + 1);
    // Through the double indirect block.
    let big = img.create_file(ROOT_INO, "big", 1100 * 4096 - 10);
    let link = img.create(ROOT_INO, "link", S_IFLNK | 0o777, 9);
    img.create(sub, "fifo", S_IFIFO | 0o600, 0);
    img.create(sub, "socket", S_IFSOCK | 0o600, 0);
    let chr = img.create(sub, "null", S_IFCHR | 0o666, 0);
    img.update_inode(chr, |i| i.block[0] = (1 << 8) | 3);
    img.link(subsub, "hardlink", small);
    // Enough entries for a second and third root directory block.
    for i in 0..40 {
        img.create_file(ROOT_INO, &format!("{i:0>200}"), 0);
    }
    Populated {
        img,
        sub,
        subsub,
        small,
        big,
        link,
    }
}

#[test]
fn fresh_image_is_clean() {
    let img = Image::new("fresh", 8 << 20);
    let (code, out) = img.fsck();
    assert_eq!(code, 0, "{out}");
    // 2048 blocks, 512 inodes: 1 + 1 + 1 + 32 metadata blocks and the root.
    assert_eq!(out, "1 inodes, 36 blocks used of 2048\n");
    let (code, out) = fsck(&["-n", img.path()]);
    assert_eq!((code, out.as_str()), (0, ""));
}

#[test]
fn populated_image_is_clean() {
    let p = populated("populated");
    assert_eq!(p.img.inode(ROOT_INO).size, 3 * 4096);
    assert_eq!(p.img.inode(ROOT_INO).nlink, 3);
    assert_eq!(p.img.inode(p.sub).nlink, 4);
    assert_eq!(p.img.inode(p.small).nlink, 2);
    assert!(p.img.inode(p.big).block[DIND_INDEX] != 0);
    p.img.expect_clean();
    let (_, out) = p.img.fsck();
    assert!(out.starts_with("53 inodes, "), "{out}");
}

#[test]
fn usage_and_operational_errors() {
    assert_eq!(fsck(&[]).0, 16);
    assert_eq!(fsck(&["-x", "img"]).0, 16);
    assert_eq!(fsck(&["-n", "-y", "img"]).0, 16);
    assert_eq!(fsck(&["-y", "/nonexistent/vexfs.img"]).0, 8);
    assert_eq!(fsck(&["a", "b"]).0, 16);
    assert_eq!(fsck(&["/nonexistent/vexfs.img"]).0, 8);

    let path = image_path("zeros");
    fs::write(&path, vec![0u8; 1 << 20]).unwrap();
    let (code, _) = fsck(&[path.to_str().unwrap()]);
    fs::write(&path, b"short").unwrap();
    let (short, _) = fsck(&[path.to_str().unwrap()]);
    fs::remove_file(&path).unwrap();
    assert_eq!(code, 8, "not a VexFS image");
    assert_eq!(short, 8, "too short to hold a superblock");

    let img = Image::new("newmajor", 1 << 20);
    img.edit(0, |b| {
        b[4] = 2;
        let crc = crc32c(&b[..508]);
        b[508..512].copy_from_slice(&crc.to_le_bytes());
    });
    assert_eq!(img.fsck().0, 8);
    let img = Image::new("incompat", 1 << 20);
    let mut sb = img.sb;
    sb.features_incompat = 4;
    img.edit(0, |b| sb.encode(b).unwrap());
    assert_eq!(img.fsck().0, 8);
}

#[test]
fn superblock_corruption() {
    let img = Image::new("sbcrc", 1 << 20);
    img.edit(0, |b| b[40] ^= 1);
    img.expect_error("superblock: checksum mismatch");

    let img = Image::new("sbgeom", 1 << 20);
    let mut sb = img.sb;
    sb.data_start -= 1;
    img.edit(0, |b| sb.encode(b).unwrap());
    img.expect_error("superblock: corrupt metadata");

    let img = Image::new("truncated", 1 << 20);
    img.file.set_len(512 << 10).unwrap();
    img.expect_error("larger than the device");

    let mut img = Image::new("errors", 1 << 20);
    img.sb.state = STATE_ERRORS;
    img.write_sb();
    img.expect_error("marked as having errors");
    img.expect_repaired(true);

    let img = Image::new("block0", 1 << 20);
    img.edit(0, |b| b[4000] = 1);
    img.expect_error("block 0 is not zero");
    img.expect_repaired(true);
}

#[test]
fn superblock_warnings_only() {
    let mut img = Image::new("counts", 1 << 20);
    img.sb.free_blocks += 3;
    img.sb.free_inodes = 0;
    img.sb.state = STATE_DIRTY;
    img.sb.features_ro_compat = 0x8000_0000 | FEATURE_RO_COMPAT_XATTR;
    img.sb.features_compat = 1;
    img.write_sb();
    let (code, out) = img.fsck();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("fsck.vexfs: warning: free block count is"),
        "{out}"
    );
    assert!(
        out.contains("fsck.vexfs: warning: free inode count is"),
        "{out}"
    );
    assert!(
        out.contains("fsck.vexfs: warning: the filesystem is mounted"),
        "{out}"
    );
    assert!(
        out.contains("fsck.vexfs: warning: unknown read-only"),
        "{out}"
    );
}

#[test]
fn inode_bitmap_corruption() {
    let img = Image::new("ibit-free", 1 << 20);
    img.set_inode_bit(5, true);
    img.expect_error("inode 5 is marked in the inode bitmap but free");
    img.expect_repaired(true);

    let img = Image::new("ibit-root", 1 << 20);
    img.set_inode_bit(1, false);
    img.expect_error("inode 1 is in use but not marked in the inode bitmap");
    img.expect_repaired(true);

    let img = Image::new("ibit-zero", 1 << 20);
    img.set_inode_bit(0, false);
    img.expect_error("inode 0 is not marked in use");
    img.expect_repaired(true);

    let img = Image::new("ibit-pad", 1 << 20);
    img.edit(img.sb.inode_bitmap_start, |b| {
        let bit = usize::try_from(img.sb.inode_count).unwrap() + 3;
        clear_bit(b, bit).unwrap();
    });
    img.expect_error("inode bitmap bits past the last inode are clear");
    img.expect_repaired(true);
}

#[test]
fn block_bitmap_corruption() {
    let img = Image::new("bbit-root", 1 << 20);
    let root_block = img.dir_block(ROOT_INO);
    img.set_block_bit(root_block, false);
    img.expect_error(&format!(
        "inode 1: data block {root_block} is not marked in the block bitmap"
    ));
    img.expect_repaired(true);

    let img = Image::new("bbit-leak", 1 << 20);
    img.set_block_bit(200, true);
    img.set_block_bit(201, true);
    img.set_block_bit(255, true);
    img.expect_error("3 blocks marked in the block bitmap but not used: 200-201, 255");
    img.expect_repaired(true);

    let img = Image::new("bbit-meta", 1 << 20);
    img.set_block_bit(2, false);
    img.expect_error("metadata blocks not marked in the block bitmap: 2");
    img.expect_repaired(true);

    let img = Image::new("bbit-pad", 1 << 20);
    img.edit(img.sb.block_bitmap_start, |b| {
        clear_bit(b, 300).unwrap();
    });
    img.expect_error("block bitmap bits past the last block are clear: 300");
    img.expect_repaired(true);
}

#[test]
fn inode_corruption() {
    let img = Image::new("icrc", 1 << 20);
    let (block, offset) = img.sb.inode_location(1).unwrap();
    img.edit(block, |b| b[offset + 20] ^= 0x80);
    img.expect_error("inode 1: checksum mismatch");
    img.expect_repaired(false);

    let img = Image::new("islot0", 1 << 20);
    img.edit(img.sb.inode_table_start, |b| b[10] = 1);
    img.expect_error("inode slot 0 is not zeroed");
    img.expect_repaired(true);

    let img = Image::new("iflags", 1 << 20);
    let (block, offset) = img.sb.inode_location(1).unwrap();
    img.edit(block, |b| {
        b[offset + 60] = 0x4;
        let crc = crc32c(&b[offset..offset + 252]);
        b[offset + 252..offset + 256].copy_from_slice(&crc.to_le_bytes());
    });
    img.expect_error("inode 1: corrupt metadata: unknown inode flags");
    img.expect_repaired(false);
}

#[test]
fn dangling_entry() {
    let img = Image::new("dangling", 1 << 20);
    img.edit(img.dir_block(ROOT_INO), |b| {
        assert!(insert(b, b"ghost", 9, DT_REG).unwrap());
    });
    img.expect_error("directory 1: entry 'ghost' refers to free inode 9");
    img.expect_repaired(true);

    let img = Image::new("badino", 1 << 20);
    img.edit(img.dir_block(ROOT_INO), |b| {
        assert!(insert(b, b"far", 1_000_000, DT_REG).unwrap());
    });
    img.expect_error("entry 'far' has invalid inode number 1000000");
    img.expect_repaired(true);
}

#[test]
fn wrong_link_counts() {
    let img = Image::new("nlink-root", 1 << 20);
    img.update_inode(ROOT_INO, |i| i.nlink = 3);
    img.expect_error("inode 1: link count is 3, counted 2");
    img.expect_repaired(true);

    let p = populated("nlink-file");
    p.img.update_inode(p.small, |i| i.nlink = 1);
    p.img
        .expect_error(&format!("inode {}: link count is 1, counted 2", p.small));
    p.img.expect_repaired(true);
    assert_eq!(p.img.inode(p.small).nlink, 2);

    let p = populated("nlink-dir");
    p.img.update_inode(p.sub, |i| i.nlink = 2);
    p.img
        .expect_error(&format!("inode {}: link count is 2, counted 4", p.sub));
    p.img.expect_repaired(true);

    let mut img = Image::new("nlink-zero", 1 << 20);
    let ino = img.create_file(ROOT_INO, "f", 0);
    img.update_inode(ino, |i| i.nlink = 0);
    img.expect_error(&format!("inode {ino} is in use with no links"));
    img.expect_repaired(true);
}

#[test]
fn unreachable_inode() {
    let mut img = Image::new("orphan", 1 << 20);
    let ino = img.alloc_inode();
    img.put_inode(
        ino,
        &Inode {
            mode: S_IFREG | 0o600,
            nlink: 1,
            ..Inode::default()
        },
    );
    img.expect_error(&format!(
        "inode {ino} is not connected to the root directory"
    ));
    img.expect_repaired(true);

    // A directory cycle detached from the root.
    let mut p = populated("cycle");
    let root_block = p.img.dir_block(ROOT_INO);
    p.img
        .edit(root_block, |b| assert!(remove(b, b"sub").unwrap()));
    p.img.update_inode(ROOT_INO, |i| i.nlink -= 1);
    let (sub, subsub) = (p.sub, p.subsub);
    p.img.add_entry(subsub, "loop", sub, DT_DIR);
    p.img.update_inode(subsub, |i| i.nlink += 1);
    p.img
        .edit(p.img.dir_block(sub), |b| set_dotdot(b, subsub).unwrap());
    p.img.expect_error(&format!(
        "inode {sub} is not connected to the root directory"
    ));
    p.img.expect_repaired(true);
}

#[test]
fn block_map_corruption() {
    let p = populated("dup");
    let other = p.img.inode(p.big).block[0];
    p.img.update_inode(p.small, |i| i.block[0] = other);
    p.img
        .expect_error(&format!("data block {other} is also used"));
    p.img.expect_repaired(false);

    let p = populated("range");
    p.img.update_inode(p.small, |i| i.block[0] = 3);
    p.img.expect_error("data block 3 is outside the data area");
    p.img.expect_repaired(false);
    assert_eq!(p.img.inode(p.small).block[0], 0);

    let p = populated("range-ind");
    let ind = u64::from(p.img.inode(p.big).block[IND_INDEX]);
    p.img
        .edit(ind, |b| write_indirect(b, 7, 0xffff_fff0).unwrap());
    p.img
        .expect_error("data block 4294967280 is outside the data area");
    p.img.expect_repaired(false);

    let p = populated("count");
    p.img.update_inode(p.big, |i| i.blocks -= 1);
    p.img.expect_error(&format!(
        "inode {}: block count is 1102, counted 1103",
        p.big
    ));
    p.img.expect_repaired(true);

    let p = populated("pastsize");
    p.img.update_inode(p.big, |i| i.size = 12 * 4096);
    p.img.expect_error(&format!(
        "inode {}: 1088 blocks mapped past the end of the file",
        p.big
    ));
    p.img.expect_repaired(true);
    // 12 data blocks; the emptied indirect blocks stay, as holes.
    assert_eq!(p.img.inode(p.big).blocks, 15);

    // Zeroed blocks past the end of a regular file were preallocated (fallocate with
    // FALLOC_FL_KEEP_SIZE): they stay.
    let p = populated("prealloc");
    let small_block = u64::from(p.img.inode(p.small).block[0]);
    p.img.edit(small_block, |b| b.fill(0));
    p.img.update_inode(p.small, |i| i.size = 0);
    p.img.expect_clean();
    assert_eq!(p.img.inode(p.small).blocks, 1);

    let p = populated("symlink");
    p.img.update_inode(p.link, |i| i.size = 0);
    p.img.expect_error("symbolic link of size 0");
    p.img.expect_repaired(false);

    let p = populated("special");
    let small_block = p.img.inode(p.small).block[0];
    let sub_block = p.img.dir_block(p.sub);
    let fifo = find(&p.img.read(sub_block), b"fifo").unwrap().unwrap().1;
    p.img.update_inode(fifo, |i| i.block[3] = small_block);
    p.img.expect_error("special file with block pointers");
    p.img.expect_repaired(false);

    let p = populated("dirhole");
    let root_block_1 = {
        let inode = p.img.inode(ROOT_INO);
        p.img.bmap(&inode, 1)
    };
    p.img.update_inode(ROOT_INO, |i| {
        i.block[1] = 0;
        i.blocks -= 1;
    });
    p.img.set_block_bit(u64::from(root_block_1), false);
    p.img
        .expect_error("directory 1 has a hole at logical block 1");
    p.img.expect_repaired(true);

    // A directory claiming the largest size: reported as a hole, without
    // a table of its billion blocks.
    let p = populated("dirhuge");
    p.img.update_inode(p.sub, |i| {
        i.size = format::MAX_FILE_SIZE;
    });
    let start = std::time::Instant::now();
    p.img.expect_error(&format!(
        "directory {} has a hole at logical block 1",
        p.sub
    ));
    p.img.expect_repaired(true);
    assert_eq!(p.img.inode(p.sub).size, 4096);
    assert!(start.elapsed().as_secs() < 10);
}

#[test]
fn directory_corruption() {
    let p = populated("ftype");
    p.img.edit(p.img.dir_block(p.sub), |b| {
        assert!(remove(b, b"small").unwrap());
        assert!(insert(b, b"small", p.small, DT_DIR).unwrap());
    });
    p.img.expect_error(&format!(
        "entry 'small' has file type 4, inode {} has type 8",
        p.small
    ));
    p.img.expect_repaired(true);

    let p = populated("dotdot");
    p.img.edit(p.img.dir_block(p.subsub), |b| {
        set_dotdot(b, ROOT_INO).unwrap()
    });
    p.img.expect_error(&format!(
        "directory {}: '..' is inode 1, its parent is {}",
        p.subsub, p.sub
    ));
    p.img.expect_repaired(true);

    let p = populated("dot");
    p.img.edit(p.img.dir_block(p.sub), |b| b[0] = 1);
    p.img
        .expect_error(&format!("directory {}: '.' is inode 1", p.sub));
    p.img.expect_repaired(true);

    let p = populated("malformed");
    p.img.edit(p.img.dir_block(p.sub), |b| b[16] = 0x13);
    p.img.expect_error(&format!(
        "directory {}, logical block 0: corrupt metadata",
        p.sub
    ));
    p.img.expect_repaired(false);

    let p = populated("nodots");
    p.img.edit(p.img.dir_block(p.sub), |b| {
        let mut fresh = vec![0u8; BLOCK_SIZE];
        init_empty_block(&mut fresh).unwrap();
        b.copy_from_slice(&fresh);
    });
    p.img.expect_error("missing '.' entry");
    p.img.expect_repaired(false);

    let p = populated("duplicate");
    p.img.edit(p.img.dir_block(p.sub), |b| {
        assert!(insert(b, b"small", p.small, DT_REG).unwrap());
    });
    p.img.update_inode(p.small, |i| i.nlink += 1);
    p.img
        .expect_error(&format!("directory {}: duplicate entry 'small'", p.sub));
    p.img.expect_repaired(false);

    let mut p = populated("dirlink");
    let (sub, root) = (p.sub, ROOT_INO);
    p.img.add_entry(root, "sub-again", sub, DT_DIR);
    p.img.update_inode(sub, |i| i.nlink += 1);
    p.img
        .expect_error(&format!("directory {sub} is named by 2 entries"));
    p.img.expect_repaired(false);

    let p = populated("rootdotdot");
    p.img
        .edit(p.img.dir_block(ROOT_INO), |b| set_dotdot(b, p.sub).unwrap());
    p.img
        .expect_error("the root directory's '..' is not itself");
    p.img.expect_repaired(true);
}

impl Image {
    /// Asserts that `-p` repairs the image (`preen`), or refuses to and
    /// writes nothing, after which `-y` repairs it; then it checks clean.
    fn expect_repaired(&self, preen: bool) {
        let before = fs::read(&self.path).unwrap();
        let (code, out) = fsck(&["-p", self.path()]);
        if preen {
            assert_eq!(code, 1, "-p should repair:\n{out}");
        } else {
            assert_eq!(code, 4, "-p should refuse:\n{out}");
            assert!(out.contains("UNEXPECTED INCONSISTENCY"), "{out}");
            assert!(fs::read(&self.path).unwrap() == before, "-p wrote");
            let (code, out) = fsck(&["-y", self.path()]);
            assert_eq!(code, 1, "-y should repair:\n{out}");
        }
        self.expect_clean();
        let (code, out) = fsck(&["-y", self.path()]);
        assert_eq!((code, out.as_str()), (0, ""));
    }
}

/// Repairs beyond those of the check tests above, which repair every image
/// they damage.
#[test]
fn repairs() {
    // Detached from the root: to /lost+found, directory and all.
    let p = populated("r-orphan");
    p.img.edit(p.img.dir_block(ROOT_INO), |b| {
        assert!(remove(b, b"sub").unwrap())
    });
    p.img.update_inode(ROOT_INO, |i| i.nlink -= 1);
    p.img.expect_repaired(true);
    let root = p.img.inode(ROOT_INO);
    let mut lf = None;
    for lblk in 0..root.size / 4096 {
        let block = p.img.read(u64::from(p.img.bmap(&root, lblk)));
        if let Some((_, ino, _)) = find(&block, b"lost+found").unwrap() {
            lf = Some(ino);
        }
    }
    let lf = lf.expect("lost+found made");
    let block = p.img.dir_block(lf);
    let name = format!("#{}", p.sub);
    assert_eq!(
        find(&p.img.read(block), name.as_bytes())
            .unwrap()
            .map(|e| e.1),
        Some(p.sub)
    );
    assert_eq!(
        read_dots(&p.img.read(p.img.dir_block(p.sub))).unwrap().1,
        lf
    );

    // A damaged inode other than the root: cleared, only by -y.
    let p = populated("r-icrc");
    let (block, offset) = p.img.sb.inode_location(u64::from(p.small)).unwrap();
    p.img.edit(block, |b| b[offset + 20] ^= 0x80);
    p.img.expect_repaired(false);
}

/// A xorshift64 generator from `seed` (non-zero): replayable random damage.
fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// Random damage to the metadata of a populated image: `-y` always ends in
/// a filesystem that checks clean, unless the superblock itself is lost.
#[test]
fn random_damage_is_repaired() {
    let p = populated("r-random");
    let pristine = fs::read(&p.img.path).unwrap();
    let span = p.img.sb.data_start + 40;
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    let (mut repaired, mut lost_sb) = (0, 0);
    for _ in 0..150 {
        fs::write(&p.img.path, &pristine).unwrap();
        for _ in 0..(1 + next() % 8) {
            let block = next() % span;
            let at = next() % 4096;
            let byte = u8::try_from(next() % 256).unwrap();
            p.img.file.write_all_at(&[byte], block * 4096 + at).unwrap();
            // Reach behind the inode checksums too.
            if block >= p.img.sb.inode_table_start && block < p.img.sb.data_start {
                let slot = usize::try_from(at).unwrap() / 256 * 256;
                p.img.edit(block, |b| {
                    let crc = crc32c(&b[slot..slot + 252]);
                    b[slot + 252..slot + 256].copy_from_slice(&crc.to_le_bytes());
                });
            }
        }
        let (code, out) = fsck(&["-y", p.img.path()]);
        match code {
            0 | 1 => {
                repaired += 1;
                let (code, out2) = fsck(&["-n", p.img.path()]);
                assert_eq!(code, 0, "not clean after -y:\n{out}\nthen:\n{out2}");
            }
            4 | 8 => {
                assert!(out.contains("superblock") || out.is_empty(), "{out}");
                lost_sb += 1;
            }
            _ => panic!("exit {code}:\n{out}"),
        }
    }
    assert!(
        repaired > 100,
        "{repaired} repaired, {lost_sb} superblocks lost"
    );
}

/// Damage to the fields and block pointers of one inode behind a good
/// checksum, which the checksum cannot catch: `-y` always repairs it.
#[test]
fn random_inode_damage_is_repaired() {
    let p = populated("r-inode");
    let pristine = fs::read(&p.img.path).unwrap();
    let used: Vec<u32> = (1..=u32::try_from(p.img.sb.inode_count).unwrap())
        .filter(|&ino| {
            let Ok((block, offset)) = p.img.sb.inode_location(u64::from(ino)) else {
                return false;
            };
            matches!(Inode::decode(&p.img.read(block)[offset..]), Ok(Some(_)))
        })
        .collect();
    let mut next = xorshift(
        std::env::var("FSCK_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x2545_f491_4f6c_dd1d),
    );
    let rounds: usize = std::env::var("FSCK_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    for round in 0..rounds {
        fs::write(&p.img.path, &pristine).unwrap();
        let ino = used[usize::try_from(next()).unwrap() % used.len()];
        let (block, offset) = p.img.sb.inode_location(u64::from(ino)).unwrap();
        let mut what = Vec::new();
        p.img.edit(block, |b| {
            for _ in 0..(1 + next() % 3) {
                let at = usize::try_from(next() % 140).unwrap();
                let byte = u8::try_from(next() % 256).unwrap();
                b[offset + at] = byte;
                what.push((at, byte));
            }
            let crc = crc32c(&b[offset..offset + 252]);
            b[offset + 252..offset + 256].copy_from_slice(&crc.to_le_bytes());
        });
        let ctx = format!("round {round}, inode {ino}, bytes {what:?}");
        let (code, out) = fsck(&["-y", p.img.path()]);
        assert!(code == 0 || code == 1, "{ctx}: -y exit {code}:\n{out}");
        let (code, out2) = fsck(&["-n", p.img.path()]);
        assert_eq!(code, 0, "{ctx}: not clean after -y:\n{out}\nthen:\n{out2}");
    }
}

/// Gives inode `ino` of `p` an extended attribute block with one attribute.
fn add_xattr_block(img: &mut Image, ino: u32) -> u64 {
    let block = img.alloc_block();
    let mut data = vec![0; 4096];
    xattr_init(&mut data, ino).unwrap();
    xattr_set(&mut data, ino, XATTR_INDEX_USER, b"a", Some(b"value")).unwrap();
    img.write(u64::from(block), &data);
    img.update_inode(ino, |i| {
        i.xattr = block;
        i.blocks += 1;
    });
    u64::from(block)
}

#[test]
fn xattr_blocks() {
    // A valid attribute block, on a file and on a FIFO (no data blocks).
    let mut p = populated("xattr");
    let (small, sub) = (p.small, p.sub);
    add_xattr_block(&mut p.img, small);
    let fifo_block = p.img.dir_block(sub);
    let fifo = find(&p.img.read(fifo_block), b"fifo").unwrap().unwrap().1;
    add_xattr_block(&mut p.img, fifo);
    p.img.expect_clean();

    // Damaged contents: -p refuses, -y drops the block with its attributes.
    let mut p = populated("xattr-bad");
    let small = p.small;
    let block = add_xattr_block(&mut p.img, small);
    p.img.edit(block, |b| b[20] ^= 0xff);
    p.img
        .expect_error(&format!("inode {small}: extended attribute block {block}"));
    p.img.expect_repaired(false);
    assert_eq!(p.img.inode(small).xattr, 0);

    // Another inode's block, and a block shared with file data.
    let mut p = populated("xattr-owner");
    let (small, big) = (p.small, p.big);
    let block = add_xattr_block(&mut p.img, small);
    p.img.update_inode(big, |i| {
        i.xattr = block as u32;
        i.blocks += 1;
    });
    p.img.expect_error("also used by another inode or pointer");
    p.img.expect_repaired(false);

    // Not counted in the inode's blocks: a safe repair.
    let mut p = populated("xattr-count");
    let small = p.small;
    add_xattr_block(&mut p.img, small);
    p.img.update_inode(small, |i| i.blocks -= 1);
    p.img
        .expect_error(&format!("inode {small}: block count is 1, counted 2"));
    p.img.expect_repaired(true);

    // Without the feature in the super block.
    let mut p = populated("xattr-feature");
    let small = p.small;
    add_xattr_block(&mut p.img, small);
    p.img.sb.features_ro_compat = 0;
    p.img.write_sb();
    p.img.expect_error("without the extended attribute feature");
    p.img.expect_repaired(false);
}
