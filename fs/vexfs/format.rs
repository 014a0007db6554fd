// SPDX-License-Identifier: GPL-2.0

//! VexFS on-disk format, version 1.0.
//!
//! This module is shared verbatim between the kernel (as `mod format;` of the
//! `vexfs` module) and the user-space tools under `tools/vexfs/` (through a
//! `#[path]` module). It only uses `core`, contains no `unsafe` code, never
//! panics and checks the bounds of every access to on-disk bytes: garbage
//! input yields a [`FormatError`].
//!
//! All integers are little-endian. The block size is 4096 bytes
//! ([`BLOCK_SIZE`]); format version 1 accepts no other. Block numbers are
//! stored as `u32`, 0 meaning "hole" or "none", so a filesystem has at most
//! 2^32 blocks (16 TiB).
//!
//! # Layout
//!
//! The device is split into consecutive regions, in this order:
//!
//! | Region       | Blocks                                            |
//! |--------------|---------------------------------------------------|
//! | Superblock   | block 0                                           |
//! | Inode bitmap | `inode_bitmap_start`, `inode_bitmap_blocks` long  |
//! | Block bitmap | `block_bitmap_start`, `block_bitmap_blocks` long  |
//! | Inode table  | `inode_table_start`, `inode_table_blocks` long    |
//! | Data         | `data_start` up to `block_count`                  |
//!
//! `mkfs.vexfs` packs them without gaps (see [`Geometry::new`]); a reader only
//! requires them to be in order, non-overlapping and inside the device.
//!
//! # Superblock
//!
//! Block 0 holds the superblock in its first [`SUPERBLOCK_SIZE`] bytes; the
//! rest of the block is zero.
//!
//! | Offset | Type       | Field                                         |
//! |--------|------------|-----------------------------------------------|
//! | 0      | `u32`      | magic, [`MAGIC`]                              |
//! | 4      | `u32`      | version_major, [`VERSION_MAJOR`]              |
//! | 8      | `u32`      | version_minor, [`VERSION_MINOR`]              |
//! | 12     | `u32`      | block_size, [`BLOCK_SIZE`]                    |
//! | 16     | `u64`      | block_count                                   |
//! | 24     | `u64`      | inode_count (inode numbers are below it)      |
//! | 32     | `u64`      | free_blocks                                   |
//! | 40     | `u64`      | free_inodes                                   |
//! | 48     | `u64`      | inode_bitmap_start                            |
//! | 56     | `u64`      | inode_bitmap_blocks                           |
//! | 64     | `u64`      | block_bitmap_start                            |
//! | 72     | `u64`      | block_bitmap_blocks                           |
//! | 80     | `u64`      | inode_table_start                             |
//! | 88     | `u64`      | inode_table_blocks                            |
//! | 96     | `u64`      | data_start                                    |
//! | 104    | `u64`      | root_ino, [`ROOT_INO`]                        |
//! | 112    | `u32`      | state, `STATE_*`                              |
//! | 116    | `u32`      | features_incompat                             |
//! | 120    | `u32`      | features_compat                               |
//! | 124    | `u32`      | features_ro_compat                            |
//! | 128    | `u64`      | mkfs_time (seconds since the epoch)           |
//! | 136    | `u64`      | write_time (seconds since the epoch)          |
//! | 144    | `u32`      | mount_count                                   |
//! | 148    | `u32`      | inode_size, [`INODE_SIZE`]                    |
//! | 152    | `[u8; 16]` | uuid                                          |
//! | 168    | `[u8; 32]` | label (NUL-padded)                            |
//! | 200    |            | reserved, zero                                |
//! | 508    | `u32`      | checksum, [`crc32c`] of bytes 0..508          |
//!
//! Unknown incompatible features make the superblock unreadable; unknown
//! read-only compatible features only allow a read-only mount (see
//! [`Superblock::has_unknown_ro_compat`]); unknown compatible features are
//! ignored. Version 1.0 defines one feature, the read-only compatible
//! [`FEATURE_RO_COMPAT_XATTR`] (extended attribute blocks), which new file
//! systems have. The free counters are
//! advisory: the kernel recounts them from the bitmaps when mounting.
//!
//! # Bitmaps
//!
//! Bit `n` of the inode bitmap is set when inode `n` is in use, bit `b` of the
//! block bitmap when absolute block `b` is in use. Bits are numbered LSB-first
//! within each byte and bytes in increasing address order, across the blocks
//! of the bitmap. Inode 0 is reserved and always marked in use, so is every
//! metadata block (below `data_start`). Bits past `inode_count`
//! (respectively `block_count`) up to the end of the bitmap are set.
//!
//! # Inodes
//!
//! Inode `n` is the [`INODE_SIZE`]-byte slot `n` of the inode table
//! ([`INODES_PER_BLOCK`] per block); slot 0 is never used. A free slot is all
//! zeros. See [`Inode`] for the layout.
//!
//! | Offset | Type        | Field                                        |
//! |--------|-------------|----------------------------------------------|
//! | 0      | `u16`       | mode (`S_IF*` type and permission bits)      |
//! | 2      | `u16`       | reserved, zero                               |
//! | 4      | `u32`       | uid                                          |
//! | 8      | `u32`       | gid                                          |
//! | 12     | `u32`       | nlink                                        |
//! | 16     | `u64`       | size in bytes                                |
//! | 24     | `i64`       | atime seconds                                |
//! | 32     | `i64`       | mtime seconds                                |
//! | 40     | `i64`       | ctime seconds                                |
//! | 48     | `u32`       | atime nanoseconds (below 10^9)               |
//! | 52     | `u32`       | mtime nanoseconds (below 10^9)               |
//! | 56     | `u32`       | ctime nanoseconds (below 10^9)               |
//! | 60     | `u32`       | flags, `INODE_FLAG_*`                        |
//! | 64     | `u64`       | blocks owned, data and indirect              |
//! | 72     | `u32`       | generation                                   |
//! | 76     | `u32`       | extended attribute block, 0 for none         |
//! | 80     | `[u32; 15]` | block pointers                               |
//! | 140    |             | reserved, zero                               |
//! | 252    | `u32`       | checksum, [`crc32c`] of bytes 0..252         |
//!
//! Block pointers 0 to 11 map the first 12 logical blocks directly, pointer
//! 12 is a single indirect block, 13 a double and 14 a triple one. An indirect
//! block is an array of [`PTRS_PER_BLOCK`] `u32` block numbers. Every pointer
//! is either 0 (a hole) or a block of the data area. See [`block_path`].
//!
//! Regular files, directories and symbolic links store their contents in
//! data blocks; no block is mapped at or past the block containing byte
//! `size` (rounded up to a block), but by a regular file, with blocks
//! preallocated by `fallocate(2)` with `FALLOC_FL_KEEP_SIZE` (zeroed when
//! linked). A symbolic link stores its target
//! (`size` bytes, 1 to 4095, no NUL) at the start of logical block 0.
//! Device, FIFO and socket inodes own no data block and have size 0; a
//! character or block device stores its device number, in the Linux
//! `new_encode_dev()` encoding, in block pointer 0, which then is not a block
//! number.
//!
//! # Directories
//!
//! A directory has no hole and its size is a multiple of [`BLOCK_SIZE`]. Each
//! of its blocks is covered exactly by variable-length records, which never
//! cross a block boundary:
//!
//! | Offset | Type  | Field                                                 |
//! |--------|-------|-------------------------------------------------------|
//! | 0      | `u32` | ino, 0 for an unused record                           |
//! | 4      | `u16` | rec_len, multiple of 4, at least `8 + name_len` rounded up to 4 |
//! | 6      | `u8`  | name_len, 1 to 255 (any value fitting rec_len if unused) |
//! | 7      | `u8`  | file_type, a Linux `DT_*` value                       |
//! | 8      |       | name, no `/` and no NUL, not NUL-terminated           |
//!
//! The first block of every directory starts with the records `.` (the
//! directory itself) and `..` (its parent; the root is its own parent); no
//! other record is named `.` or `..`. The link count of a directory is 2 plus
//! the number of its subdirectories.

use core::fmt;

/// Magic number of the superblock (the bytes `FXEV` on disk).
pub(crate) const MAGIC: u32 = 0x5645_5846;
/// Major format version; any other major version is incompatible.
pub(crate) const VERSION_MAJOR: u32 = 1;
/// Minor format version written by this implementation.
pub(crate) const VERSION_MINOR: u32 = 0;

/// Base-2 logarithm of [`BLOCK_SIZE`].
pub(crate) const BLOCK_SHIFT: u32 = 12;
/// Size of a block in bytes, the only one supported by format version 1.
pub(crate) const BLOCK_SIZE: usize = 1 << BLOCK_SHIFT;
/// Number of bits in one bitmap block.
pub(crate) const BITS_PER_BLOCK: u64 = 8 << BLOCK_SHIFT;
/// [`BLOCK_SIZE`] as a `u32`, as stored in the superblock.
const BLOCK_SIZE_U32: u32 = 1 << BLOCK_SHIFT;

/// Size of the encoded superblock at the start of block 0, in bytes.
pub(crate) const SUPERBLOCK_SIZE: usize = 512;
/// Offset of the checksum in the superblock.
const SB_CHECKSUM_OFFSET: usize = 508;

/// Inode number of the root directory.
pub(crate) const ROOT_INO: u32 = 1;
/// Size of an inode slot in the inode table, in bytes.
pub(crate) const INODE_SIZE: usize = 256;
/// [`INODE_SIZE`] as a `u32`, as stored in the superblock.
const INODE_SIZE_U32: u32 = 256;
/// Number of inode slots per inode table block.
pub(crate) const INODES_PER_BLOCK: u64 = 16;
/// Offset of the checksum in an inode slot.
const INODE_CHECKSUM_OFFSET: usize = 252;
/// Offset of the block pointers in an inode slot.
const INODE_BLOCK_OFFSET: usize = 80;

/// Superblock state: cleanly unmounted.
pub(crate) const STATE_CLEAN: u32 = 1;
/// Superblock state: mounted read-write, or not cleanly unmounted.
pub(crate) const STATE_DIRTY: u32 = 2;
/// Superblock state: errors were detected.
pub(crate) const STATE_ERRORS: u32 = 3;

/// Incompatible features understood by this implementation (none in 1.0).
pub(crate) const FEATURES_INCOMPAT_SUPPORTED: u32 = 0;
/// Read-only compatible feature: an inode may own an extended attribute block
/// (its field at offset 76). Code without it could read such a file system
/// but would leak or lose the blocks when it changes an inode.
pub(crate) const FEATURE_RO_COMPAT_XATTR: u32 = 1;
/// Read-only compatible features understood by this implementation.
pub(crate) const FEATURES_RO_COMPAT_SUPPORTED: u32 = FEATURE_RO_COMPAT_XATTR;

/// Smallest filesystem accepted, in blocks.
pub(crate) const MIN_BLOCKS: u64 = 64;
/// Largest filesystem, in blocks: every block number must fit in a `u32`.
pub(crate) const MAX_BLOCKS: u64 = 1 << 32;
/// Largest inode count: every inode number must fit in a `u32`.
pub(crate) const MAX_INODES: u64 = 0xffff_ffff;
/// Smallest inode count accepted by [`Geometry::new`] (one inode table block).
pub(crate) const MIN_INODES: u64 = INODES_PER_BLOCK;
/// Bytes of device per inode of the default inode count policy.
pub(crate) const BYTES_PER_INODE: u64 = 16384;
/// Smallest inode count chosen by the default policy.
pub(crate) const DEFAULT_MIN_INODES: u64 = 64;

/// Inode flag reserved for the vector engine: the inode is a collection.
pub(crate) const INODE_FLAG_COLLECTION: u32 = 1 << 0;
/// Inode flag (`chattr +S`): writes to the file are synchronous. The bits of this and the
/// following flags are those of the `FS_*_FL` flags of `<uapi/linux/fs.h>` (as on ext2).
pub(crate) const INODE_FLAG_SYNC: u32 = 0x8;
/// Inode flag (`chattr +i`): the inode cannot be changed, linked, renamed or removed.
pub(crate) const INODE_FLAG_IMMUTABLE: u32 = 0x10;
/// Inode flag (`chattr +a`): the file can only be appended to, not renamed or removed.
pub(crate) const INODE_FLAG_APPEND: u32 = 0x20;
/// Inode flag (`chattr +d`): backup programs skip the file.
pub(crate) const INODE_FLAG_NODUMP: u32 = 0x40;
/// Inode flag (`chattr +A`): reads do not update the access time.
pub(crate) const INODE_FLAG_NOATIME: u32 = 0x80;
/// The inode flags that `FS_IOC_SETFLAGS` changes.
pub(crate) const INODE_FLAGS_USER: u32 = INODE_FLAG_SYNC
    | INODE_FLAG_IMMUTABLE
    | INODE_FLAG_APPEND
    | INODE_FLAG_NODUMP
    | INODE_FLAG_NOATIME;
/// The inode flags a new inode takes from its directory (as ext4 does).
pub(crate) const INODE_FLAGS_INHERITED: u32 =
    INODE_FLAG_SYNC | INODE_FLAG_NODUMP | INODE_FLAG_NOATIME;
/// All inode flags defined by this format version.
pub(crate) const INODE_FLAGS_KNOWN: u32 = INODE_FLAG_COLLECTION | INODE_FLAGS_USER;

/// Number of direct block pointers in an inode.
pub(crate) const N_DIRECT: usize = 12;
/// [`N_DIRECT`] as a `u64`.
const N_DIRECT_U64: u64 = 12;
/// Index of the single indirect block pointer.
pub(crate) const IND_INDEX: usize = 12;
/// Index of the double indirect block pointer.
pub(crate) const DIND_INDEX: usize = 13;
/// Index of the triple indirect block pointer.
pub(crate) const TIND_INDEX: usize = 14;
/// Number of block pointers in an inode.
pub(crate) const N_BLOCK_PTRS: usize = 15;
/// Number of block numbers in an indirect block.
pub(crate) const PTRS_PER_BLOCK: usize = BLOCK_SIZE / 4;
/// [`PTRS_PER_BLOCK`] as a `u64`.
const PTRS: u64 = 1 << (BLOCK_SHIFT - 2);
/// Largest number of logical blocks of a file.
pub(crate) const MAX_FILE_BLOCKS: u64 = N_DIRECT_U64 + PTRS + PTRS * PTRS + PTRS * PTRS * PTRS;
/// Largest file size in bytes.
pub(crate) const MAX_FILE_SIZE: u64 = MAX_FILE_BLOCKS << BLOCK_SHIFT;

/// Mask of the file type bits of a mode.
pub(crate) const S_IFMT: u16 = 0o170000;
/// File type: socket.
pub(crate) const S_IFSOCK: u16 = 0o140000;
/// File type: symbolic link.
pub(crate) const S_IFLNK: u16 = 0o120000;
/// File type: regular file.
pub(crate) const S_IFREG: u16 = 0o100000;
/// File type: block device.
pub(crate) const S_IFBLK: u16 = 0o060000;
/// File type: directory.
pub(crate) const S_IFDIR: u16 = 0o040000;
/// File type: character device.
pub(crate) const S_IFCHR: u16 = 0o020000;
/// File type: FIFO.
pub(crate) const S_IFIFO: u16 = 0o010000;

/// Directory entry file type: unknown.
pub(crate) const DT_UNKNOWN: u8 = 0;
/// Directory entry file type: FIFO.
pub(crate) const DT_FIFO: u8 = 1;
/// Directory entry file type: character device.
pub(crate) const DT_CHR: u8 = 2;
/// Directory entry file type: directory.
pub(crate) const DT_DIR: u8 = 4;
/// Directory entry file type: block device.
pub(crate) const DT_BLK: u8 = 6;
/// Directory entry file type: regular file.
pub(crate) const DT_REG: u8 = 8;
/// Directory entry file type: symbolic link.
pub(crate) const DT_LNK: u8 = 10;
/// Directory entry file type: socket.
pub(crate) const DT_SOCK: u8 = 12;

/// Size of a directory record header, in bytes.
pub(crate) const DIRENT_HEADER_SIZE: usize = 8;
/// Longest name of a directory entry, in bytes.
pub(crate) const MAX_NAME_LEN: usize = 255;

/// Error returned when decoding or updating on-disk structures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FormatError {
    /// The superblock magic number is not [`MAGIC`].
    BadMagic,
    /// The major format version is not [`VERSION_MAJOR`].
    BadVersion,
    /// The block size is not [`BLOCK_SIZE`].
    BadBlockSize,
    /// A checksum does not match the contents.
    BadChecksum,
    /// The superblock requires incompatible features this code does not know.
    UnsupportedFeatures,
    /// On-disk metadata is inconsistent; the string says what is wrong.
    Corrupt(&'static str),
    /// A buffer is shorter than the structure it should hold.
    ShortBuffer,
    /// The device is too small for the requested or recorded geometry.
    DeviceTooSmall,
    /// A file offset is past [`MAX_FILE_SIZE`].
    FileTooBig,
    /// A name is longer than [`MAX_NAME_LEN`].
    NameTooLong,
    /// An argument is invalid; the string says which.
    Invalid(&'static str),
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadMagic => f.write_str("bad magic number"),
            Self::BadVersion => f.write_str("unsupported format version"),
            Self::BadBlockSize => f.write_str("unsupported block size"),
            Self::BadChecksum => f.write_str("checksum mismatch"),
            Self::UnsupportedFeatures => f.write_str("unsupported incompatible features"),
            Self::Corrupt(what) => write!(f, "corrupt metadata: {what}"),
            Self::ShortBuffer => f.write_str("buffer too short"),
            Self::DeviceTooSmall => f.write_str("device too small"),
            Self::FileTooBig => f.write_str("file offset too large"),
            Self::NameTooLong => f.write_str("name too long"),
            Self::Invalid(what) => write!(f, "invalid argument: {what}"),
        }
    }
}

/// Result type of this module.
pub(crate) type Result<T = ()> = core::result::Result<T, FormatError>;

/// Builds the CRC32C lookup tables at compile time, for eight bytes at a time ("slicing by
/// 8"): `table[0][b]` is the CRC register after byte `b`, `table[k][b]` after byte `b`
/// followed by `k` zero bytes.
const fn crc32c_tables() -> [[u32; 256]; 8] {
    let mut table = [[0u32; 256]; 8];
    let mut i = 0;
    // `value` is `i` as a `u32`.
    let mut value = 0u32;
    while i < 256 {
        let mut crc = value;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[0][i] = crc;
        i += 1;
        value += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = table[k - 1][i];
            table[k][i] = (prev >> 8) ^ table[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    table
}

/// Lookup tables of the reflected CRC32C (Castagnoli) polynomial.
static CRC32C_TABLES: [[u32; 256]; 8] = crc32c_tables();

/// Returns the CRC32C (Castagnoli) checksum of `data`.
///
/// The initial value and the final XOR are `!0`, so that
/// `crc32c(b"123456789") == 0xE306_9283`.
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    crc32c_append(0, data)
}

/// Returns the CRC32C of the bytes `crc` is the CRC32C of, followed by `data`: the checksum of
/// data that arrives in pieces, starting from 0 (the checksum of nothing).
pub(crate) fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    let t = &CRC32C_TABLES;
    let mut crc = !crc;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        // The register absorbs the first four bytes; each byte then passes through the
        // table of the bytes that follow it. `u8` indexes are always inside the tables.
        let [a0, a1, a2, a3] = (crc ^ u32::from_le_bytes([w[0], w[1], w[2], w[3]])).to_le_bytes();
        crc = t[7][usize::from(a0)]
            ^ t[6][usize::from(a1)]
            ^ t[5][usize::from(a2)]
            ^ t[4][usize::from(a3)]
            ^ t[3][usize::from(w[4])]
            ^ t[2][usize::from(w[5])]
            ^ t[1][usize::from(w[6])]
            ^ t[0][usize::from(w[7])];
    }
    for &byte in words.remainder() {
        let [low, ..] = crc.to_le_bytes();
        crc = (crc >> 8) ^ t[0][usize::from(low ^ byte)];
    }
    !crc
}

/// The CRC32C polynomial, reflected.
const CRC32C_POLY: u32 = 0x82f6_3b78;

/// The product of `a` and `b`, polynomials over GF(2) in the reflected order of CRC32C (bit 31
/// the coefficient of `x^0`), modulo the CRC32C polynomial.
fn crc32c_mul(a: u32, mut b: u32) -> u32 {
    let mut p = 0;
    for i in (0..32).rev() {
        // All ones where bit i of a is set, and where b has an `x^31` term to reduce.
        p ^= b & 0u32.wrapping_sub((a >> i) & 1);
        b = (b >> 1) ^ (CRC32C_POLY & 0u32.wrapping_sub(b & 1));
    }
    p
}

/// `x^(8 n)` modulo the CRC32C polynomial: what the checksum of some bytes is multiplied by
/// when `n` bytes follow, for [`crc32c_combine`].
pub(crate) fn crc32c_shift(mut n: u64) -> u32 {
    // The product of `x^(8 * 2^k)` over the bits k of n, squaring from `x^8`.
    let (mut p, mut sq) = (1u32 << 31, 1u32 << 23);
    while n != 0 {
        if n & 1 != 0 {
            p = crc32c_mul(p, sq);
        }
        sq = crc32c_mul(sq, sq);
        n >>= 1;
    }
    p
}

/// Returns the CRC32C of the bytes `a` is the CRC32C of, followed by `n` bytes whose CRC32C is
/// `b`, given `shift = crc32c_shift(n)`: the checksum of data whose pieces' checksums are
/// known, without reading the data again.
pub(crate) fn crc32c_combine(a: u32, b: u32, shift: u32) -> u32 {
    crc32c_mul(shift, a) ^ b
}

/// Returns the checksum of record `slot` of a vector collection whose header holds `salt`:
/// the CRC32C of the salt and the slot number (little-endian `u64`s) followed by `data`, the
/// record's id and elements. The seed makes a record written for another collection or for
/// another slot of this one fail the check: the stale contents of a block that a crash left
/// unwritten.
pub(crate) fn record_checksum(salt: u64, slot: u64, data: &[u8]) -> u32 {
    let seed = crc32c_append(crc32c(&salt.to_le_bytes()), &slot.to_le_bytes());
    crc32c_append(seed, data)
}

/// Converts a `u64` into a `usize`, failing with [`FormatError::Corrupt`].
fn to_usize(value: u64) -> Result<usize> {
    usize::try_from(value).map_err(|_| FormatError::Corrupt("value out of range"))
}

/// Adds two `u64`s, failing with [`FormatError::Corrupt`] on overflow.
fn add(a: u64, b: u64) -> Result<u64> {
    a.checked_add(b)
        .ok_or(FormatError::Corrupt("arithmetic overflow"))
}

/// Returns the `N` bytes of `buf` at `offset`.
fn get_bytes<const N: usize>(buf: &[u8], offset: usize) -> Result<[u8; N]> {
    let end = offset.checked_add(N).ok_or(FormatError::ShortBuffer)?;
    let bytes = buf.get(offset..end).ok_or(FormatError::ShortBuffer)?;
    <[u8; N]>::try_from(bytes).map_err(|_| FormatError::ShortBuffer)
}

/// Copies `bytes` into `buf` at `offset`.
fn put_bytes(buf: &mut [u8], offset: usize, bytes: &[u8]) -> Result {
    let end = offset
        .checked_add(bytes.len())
        .ok_or(FormatError::ShortBuffer)?;
    buf.get_mut(offset..end)
        .ok_or(FormatError::ShortBuffer)?
        .copy_from_slice(bytes);
    Ok(())
}

/// Reads a little-endian `u8` at `offset`.
fn get_u8(buf: &[u8], offset: usize) -> Result<u8> {
    buf.get(offset).copied().ok_or(FormatError::ShortBuffer)
}

/// Reads a little-endian `u16` at `offset`.
fn get_u16(buf: &[u8], offset: usize) -> Result<u16> {
    get_bytes(buf, offset).map(u16::from_le_bytes)
}

/// Reads a little-endian `u32` at `offset`.
fn get_u32(buf: &[u8], offset: usize) -> Result<u32> {
    get_bytes(buf, offset).map(u32::from_le_bytes)
}

/// Reads a little-endian `u64` at `offset`.
fn get_u64(buf: &[u8], offset: usize) -> Result<u64> {
    get_bytes(buf, offset).map(u64::from_le_bytes)
}

/// Reads a little-endian `i64` at `offset`.
fn get_i64(buf: &[u8], offset: usize) -> Result<i64> {
    get_bytes(buf, offset).map(i64::from_le_bytes)
}

/// Writes a `u8` at `offset`.
fn put_u8(buf: &mut [u8], offset: usize, value: u8) -> Result {
    put_bytes(buf, offset, &[value])
}

/// Writes a little-endian `u16` at `offset`.
fn put_u16(buf: &mut [u8], offset: usize, value: u16) -> Result {
    put_bytes(buf, offset, &value.to_le_bytes())
}

/// Writes a little-endian `u32` at `offset`.
fn put_u32(buf: &mut [u8], offset: usize, value: u32) -> Result {
    put_bytes(buf, offset, &value.to_le_bytes())
}

/// Writes a little-endian `u64` at `offset`.
fn put_u64(buf: &mut [u8], offset: usize, value: u64) -> Result {
    put_bytes(buf, offset, &value.to_le_bytes())
}

/// Writes a little-endian `i64` at `offset`.
fn put_i64(buf: &mut [u8], offset: usize, value: i64) -> Result {
    put_bytes(buf, offset, &value.to_le_bytes())
}

/// Returns the first `len` bytes of `buf`.
fn prefix(buf: &[u8], len: usize) -> Result<&[u8]> {
    buf.get(..len).ok_or(FormatError::ShortBuffer)
}

/// Returns the first `len` bytes of `buf`, mutably.
fn prefix_mut(buf: &mut [u8], len: usize) -> Result<&mut [u8]> {
    buf.get_mut(..len).ok_or(FormatError::ShortBuffer)
}

/// Placement of the regions of a filesystem, in blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Number of blocks of the filesystem.
    pub(crate) block_count: u64,
    /// Number of inode slots, including the reserved inode 0.
    pub(crate) inode_count: u64,
    /// First block of the inode bitmap.
    pub(crate) inode_bitmap_start: u64,
    /// Length of the inode bitmap in blocks.
    pub(crate) inode_bitmap_blocks: u64,
    /// First block of the block bitmap.
    pub(crate) block_bitmap_start: u64,
    /// Length of the block bitmap in blocks.
    pub(crate) block_bitmap_blocks: u64,
    /// First block of the inode table.
    pub(crate) inode_table_start: u64,
    /// Length of the inode table in blocks.
    pub(crate) inode_table_blocks: u64,
    /// First block of the data area.
    pub(crate) data_start: u64,
}

impl Geometry {
    /// Returns the default inode count for a filesystem of `block_count` blocks.
    ///
    /// That is one inode per [`BYTES_PER_INODE`] bytes, rounded up to fill
    /// the last inode table block, at least [`DEFAULT_MIN_INODES`] and at most
    /// `u32::MAX - 1`.
    pub(crate) fn default_inode_count(block_count: u64) -> u64 {
        let per_inode = BYTES_PER_INODE >> BLOCK_SHIFT;
        let count = (block_count / per_inode).max(DEFAULT_MIN_INODES);
        count
            .div_ceil(INODES_PER_BLOCK)
            .saturating_mul(INODES_PER_BLOCK)
            .min(MAX_INODES - 1)
    }

    /// Computes the packed layout used by `mkfs` for a device of `block_count`
    /// blocks and `inode_count` inodes ([`Geometry::default_inode_count`] if
    /// `None`).
    ///
    /// Fails with [`FormatError::DeviceTooSmall`] if the device has fewer than
    /// [`MIN_BLOCKS`] blocks or no data block would be left, and with
    /// [`FormatError::Invalid`] if a count is out of range.
    pub(crate) fn new(block_count: u64, inode_count: Option<u64>) -> Result<Self> {
        if block_count < MIN_BLOCKS {
            return Err(FormatError::DeviceTooSmall);
        }
        if block_count > MAX_BLOCKS {
            return Err(FormatError::Invalid("too many blocks"));
        }
        let inode_count = inode_count.unwrap_or_else(|| Self::default_inode_count(block_count));
        if !(MIN_INODES..=MAX_INODES).contains(&inode_count) {
            return Err(FormatError::Invalid("inode count out of range"));
        }
        let inode_bitmap_start = 1;
        let inode_bitmap_blocks = inode_count.div_ceil(BITS_PER_BLOCK);
        let block_bitmap_start = inode_bitmap_start + inode_bitmap_blocks;
        let block_bitmap_blocks = block_count.div_ceil(BITS_PER_BLOCK);
        let inode_table_start = block_bitmap_start + block_bitmap_blocks;
        let inode_table_blocks = inode_count.div_ceil(INODES_PER_BLOCK);
        let data_start = inode_table_start + inode_table_blocks;
        if data_start >= block_count {
            return Err(FormatError::DeviceTooSmall);
        }
        let geometry = Self {
            block_count,
            inode_count,
            inode_bitmap_start,
            inode_bitmap_blocks,
            block_bitmap_start,
            block_bitmap_blocks,
            inode_table_start,
            inode_table_blocks,
            data_start,
        };
        geometry.validate()?;
        Ok(geometry)
    }

    /// Checks that the regions are sound: counts in range, bitmaps large
    /// enough, inode table of the right size, regions in order,
    /// non-overlapping and inside the filesystem, with at least one data block.
    pub(crate) fn validate(&self) -> Result {
        if !(MIN_BLOCKS..=MAX_BLOCKS).contains(&self.block_count) {
            return Err(FormatError::Corrupt("block count out of range"));
        }
        if self.inode_count <= u64::from(ROOT_INO) || self.inode_count > MAX_INODES {
            return Err(FormatError::Corrupt("inode count out of range"));
        }
        let inode_bits = self
            .inode_bitmap_blocks
            .checked_mul(BITS_PER_BLOCK)
            .ok_or(FormatError::Corrupt("inode bitmap too large"))?;
        if inode_bits < self.inode_count {
            return Err(FormatError::Corrupt("inode bitmap too small"));
        }
        let block_bits = self
            .block_bitmap_blocks
            .checked_mul(BITS_PER_BLOCK)
            .ok_or(FormatError::Corrupt("block bitmap too large"))?;
        if block_bits < self.block_count {
            return Err(FormatError::Corrupt("block bitmap too small"));
        }
        if self.inode_table_blocks != self.inode_count.div_ceil(INODES_PER_BLOCK) {
            return Err(FormatError::Corrupt("inode table size mismatch"));
        }
        let order = FormatError::Corrupt("regions overlap or are out of order");
        if self.inode_bitmap_start < 1 {
            return Err(order);
        }
        let inode_bitmap_end = add(self.inode_bitmap_start, self.inode_bitmap_blocks)?;
        if inode_bitmap_end > self.block_bitmap_start {
            return Err(order);
        }
        let block_bitmap_end = add(self.block_bitmap_start, self.block_bitmap_blocks)?;
        if block_bitmap_end > self.inode_table_start {
            return Err(order);
        }
        let inode_table_end = add(self.inode_table_start, self.inode_table_blocks)?;
        if inode_table_end > self.data_start {
            return Err(order);
        }
        if self.data_start >= self.block_count {
            return Err(FormatError::Corrupt("no data area"));
        }
        Ok(())
    }
}

/// Decoded superblock.
///
/// The magic number and the checksum are not stored: [`Superblock::encode`]
/// writes [`MAGIC`] and computes the checksum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Superblock {
    /// Major format version.
    pub(crate) version_major: u32,
    /// Minor format version.
    pub(crate) version_minor: u32,
    /// Block size in bytes.
    pub(crate) block_size: u32,
    /// Number of blocks of the filesystem.
    pub(crate) block_count: u64,
    /// Number of inode slots, including the reserved inode 0.
    pub(crate) inode_count: u64,
    /// Number of free blocks (advisory).
    pub(crate) free_blocks: u64,
    /// Number of free inodes (advisory).
    pub(crate) free_inodes: u64,
    /// First block of the inode bitmap.
    pub(crate) inode_bitmap_start: u64,
    /// Length of the inode bitmap in blocks.
    pub(crate) inode_bitmap_blocks: u64,
    /// First block of the block bitmap.
    pub(crate) block_bitmap_start: u64,
    /// Length of the block bitmap in blocks.
    pub(crate) block_bitmap_blocks: u64,
    /// First block of the inode table.
    pub(crate) inode_table_start: u64,
    /// Length of the inode table in blocks.
    pub(crate) inode_table_blocks: u64,
    /// First block of the data area.
    pub(crate) data_start: u64,
    /// Inode number of the root directory, [`ROOT_INO`].
    pub(crate) root_ino: u64,
    /// Filesystem state, one of the `STATE_*` constants.
    pub(crate) state: u32,
    /// Incompatible features.
    pub(crate) features_incompat: u32,
    /// Compatible features.
    pub(crate) features_compat: u32,
    /// Read-only compatible features.
    pub(crate) features_ro_compat: u32,
    /// Creation time, in seconds since the epoch.
    pub(crate) mkfs_time: u64,
    /// Last write time of the superblock, in seconds since the epoch.
    pub(crate) write_time: u64,
    /// Number of mounts since creation.
    pub(crate) mount_count: u32,
    /// Size of an inode slot, [`INODE_SIZE`].
    pub(crate) inode_size: u32,
    /// Filesystem UUID.
    pub(crate) uuid: [u8; 16],
    /// Volume label, NUL-padded.
    pub(crate) label: [u8; 32],
}

impl Superblock {
    /// Returns a clean superblock for `geometry`.
    ///
    /// The free counts assume that only the metadata blocks and inode 0 are
    /// in use; times, UUID and label are zero.
    pub(crate) fn from_geometry(geometry: &Geometry) -> Self {
        Self {
            version_major: VERSION_MAJOR,
            version_minor: VERSION_MINOR,
            block_size: BLOCK_SIZE_U32,
            block_count: geometry.block_count,
            inode_count: geometry.inode_count,
            free_blocks: geometry.block_count.saturating_sub(geometry.data_start),
            free_inodes: geometry.inode_count.saturating_sub(1),
            inode_bitmap_start: geometry.inode_bitmap_start,
            inode_bitmap_blocks: geometry.inode_bitmap_blocks,
            block_bitmap_start: geometry.block_bitmap_start,
            block_bitmap_blocks: geometry.block_bitmap_blocks,
            inode_table_start: geometry.inode_table_start,
            inode_table_blocks: geometry.inode_table_blocks,
            data_start: geometry.data_start,
            root_ino: u64::from(ROOT_INO),
            state: STATE_CLEAN,
            inode_size: INODE_SIZE_U32,
            features_ro_compat: FEATURE_RO_COMPAT_XATTR,
            ..Self::default()
        }
    }

    /// Returns the region layout recorded in the superblock.
    pub(crate) fn geometry(&self) -> Geometry {
        Geometry {
            block_count: self.block_count,
            inode_count: self.inode_count,
            inode_bitmap_start: self.inode_bitmap_start,
            inode_bitmap_blocks: self.inode_bitmap_blocks,
            block_bitmap_start: self.block_bitmap_start,
            block_bitmap_blocks: self.block_bitmap_blocks,
            inode_table_start: self.inode_table_start,
            inode_table_blocks: self.inode_table_blocks,
            data_start: self.data_start,
        }
    }

    /// Decodes and validates the superblock at the start of `buf`.
    ///
    /// `buf` must hold at least [`SUPERBLOCK_SIZE`] bytes (normally block 0).
    /// `device_blocks` is the size of the device in [`BLOCK_SIZE`] blocks; a
    /// superblock claiming more blocks fails with
    /// [`FormatError::DeviceTooSmall`]. See [`Superblock::validate`] for the
    /// other checks.
    pub(crate) fn decode(buf: &[u8], device_blocks: u64) -> Result<Self> {
        let buf = prefix(buf, SUPERBLOCK_SIZE)?;
        if get_u32(buf, 0)? != MAGIC {
            return Err(FormatError::BadMagic);
        }
        let version_major = get_u32(buf, 4)?;
        if version_major != VERSION_MAJOR {
            return Err(FormatError::BadVersion);
        }
        let block_size = get_u32(buf, 12)?;
        if block_size != BLOCK_SIZE_U32 {
            return Err(FormatError::BadBlockSize);
        }
        if crc32c(prefix(buf, SB_CHECKSUM_OFFSET)?) != get_u32(buf, SB_CHECKSUM_OFFSET)? {
            return Err(FormatError::BadChecksum);
        }
        let sb = Self {
            version_major,
            version_minor: get_u32(buf, 8)?,
            block_size,
            block_count: get_u64(buf, 16)?,
            inode_count: get_u64(buf, 24)?,
            free_blocks: get_u64(buf, 32)?,
            free_inodes: get_u64(buf, 40)?,
            inode_bitmap_start: get_u64(buf, 48)?,
            inode_bitmap_blocks: get_u64(buf, 56)?,
            block_bitmap_start: get_u64(buf, 64)?,
            block_bitmap_blocks: get_u64(buf, 72)?,
            inode_table_start: get_u64(buf, 80)?,
            inode_table_blocks: get_u64(buf, 88)?,
            data_start: get_u64(buf, 96)?,
            root_ino: get_u64(buf, 104)?,
            state: get_u32(buf, 112)?,
            features_incompat: get_u32(buf, 116)?,
            features_compat: get_u32(buf, 120)?,
            features_ro_compat: get_u32(buf, 124)?,
            mkfs_time: get_u64(buf, 128)?,
            write_time: get_u64(buf, 136)?,
            mount_count: get_u32(buf, 144)?,
            inode_size: get_u32(buf, 148)?,
            uuid: get_bytes(buf, 152)?,
            label: get_bytes(buf, 168)?,
        };
        sb.validate(device_blocks)?;
        Ok(sb)
    }

    /// Validates the fields of the superblock.
    ///
    /// Checks the version, block size, incompatible features, inode size,
    /// state, root inode number and the geometry (see [`Geometry::validate`]),
    /// and that the filesystem fits in `device_blocks` blocks. The free counts
    /// are not checked.
    pub(crate) fn validate(&self, device_blocks: u64) -> Result {
        if self.version_major != VERSION_MAJOR {
            return Err(FormatError::BadVersion);
        }
        if self.block_size != BLOCK_SIZE_U32 {
            return Err(FormatError::BadBlockSize);
        }
        if self.features_incompat & !FEATURES_INCOMPAT_SUPPORTED != 0 {
            return Err(FormatError::UnsupportedFeatures);
        }
        if self.inode_size != INODE_SIZE_U32 {
            return Err(FormatError::Corrupt("bad inode size"));
        }
        if !(STATE_CLEAN..=STATE_ERRORS).contains(&self.state) {
            return Err(FormatError::Corrupt("bad state"));
        }
        self.geometry().validate()?;
        if self.root_ino != u64::from(ROOT_INO) {
            return Err(FormatError::Corrupt("bad root inode number"));
        }
        if self.block_count > device_blocks {
            return Err(FormatError::DeviceTooSmall);
        }
        Ok(())
    }

    /// Encodes the superblock into the first [`SUPERBLOCK_SIZE`] bytes of
    /// `buf`, with [`MAGIC`], zeroed reserved bytes and the checksum.
    ///
    /// The fields are not validated.
    pub(crate) fn encode(&self, buf: &mut [u8]) -> Result {
        let buf = prefix_mut(buf, SUPERBLOCK_SIZE)?;
        buf.fill(0);
        put_u32(buf, 0, MAGIC)?;
        put_u32(buf, 4, self.version_major)?;
        put_u32(buf, 8, self.version_minor)?;
        put_u32(buf, 12, self.block_size)?;
        put_u64(buf, 16, self.block_count)?;
        put_u64(buf, 24, self.inode_count)?;
        put_u64(buf, 32, self.free_blocks)?;
        put_u64(buf, 40, self.free_inodes)?;
        put_u64(buf, 48, self.inode_bitmap_start)?;
        put_u64(buf, 56, self.inode_bitmap_blocks)?;
        put_u64(buf, 64, self.block_bitmap_start)?;
        put_u64(buf, 72, self.block_bitmap_blocks)?;
        put_u64(buf, 80, self.inode_table_start)?;
        put_u64(buf, 88, self.inode_table_blocks)?;
        put_u64(buf, 96, self.data_start)?;
        put_u64(buf, 104, self.root_ino)?;
        put_u32(buf, 112, self.state)?;
        put_u32(buf, 116, self.features_incompat)?;
        put_u32(buf, 120, self.features_compat)?;
        put_u32(buf, 124, self.features_ro_compat)?;
        put_u64(buf, 128, self.mkfs_time)?;
        put_u64(buf, 136, self.write_time)?;
        put_u32(buf, 144, self.mount_count)?;
        put_u32(buf, 148, self.inode_size)?;
        put_bytes(buf, 152, &self.uuid)?;
        put_bytes(buf, 168, &self.label)?;
        let checksum = crc32c(prefix(buf, SB_CHECKSUM_OFFSET)?);
        put_u32(buf, SB_CHECKSUM_OFFSET, checksum)
    }

    /// Returns whether the superblock has read-only compatible features this
    /// code does not know, in which case it may only be mounted read-only.
    pub(crate) fn has_unknown_ro_compat(&self) -> bool {
        self.features_ro_compat & !FEATURES_RO_COMPAT_SUPPORTED != 0
    }

    /// Returns whether `ino` is a valid inode number (1 to `inode_count - 1`).
    pub(crate) fn is_valid_ino(&self, ino: u64) -> bool {
        ino != 0 && ino < self.inode_count
    }

    /// Returns whether `block` lies in the data area.
    pub(crate) fn is_data_block(&self, block: u64) -> bool {
        block >= self.data_start && block < self.block_count
    }

    /// Returns the number of blocks of the data area.
    pub(crate) fn data_blocks(&self) -> u64 {
        self.block_count.saturating_sub(self.data_start)
    }

    /// Checks the fields of `inode` that depend on the filesystem: the block
    /// pointers of a file with data blocks lie in the data area, no inode
    /// owns more blocks than the data area holds, a directory owns a block
    /// for each block of its size (it has no hole) and a symbolic link is 1 to
    /// 4095 bytes long.
    ///
    /// With this, the number of blocks of a directory is bounded by the size
    /// of the device (which [`Superblock::decode`] checked), not only by
    /// fields read from the disk, and so is every walk over its blocks: a
    /// damaged size cannot make a lookup or a `readdir` go over billions of
    /// blocks.
    ///
    /// Fails with [`FormatError::Corrupt`] saying what is wrong.
    pub(crate) fn check_inode(&self, inode: &Inode) -> Result {
        if inode.has_data_blocks()
            && inode
                .block
                .iter()
                .any(|&p| p != 0 && !self.is_data_block(u64::from(p)))
        {
            return Err(FormatError::Corrupt("block pointer outside the data area"));
        }
        if inode.xattr != 0 {
            if self.features_ro_compat & FEATURE_RO_COMPAT_XATTR == 0 {
                return Err(FormatError::Corrupt(
                    "extended attribute block without the feature",
                ));
            }
            if !self.is_data_block(u64::from(inode.xattr)) {
                return Err(FormatError::Corrupt(
                    "extended attribute block outside the data area",
                ));
            }
        }
        if inode.blocks > self.data_blocks() {
            return Err(FormatError::Corrupt(
                "block count larger than the data area",
            ));
        }
        if inode.is_dir() && inode.size / u64::from(BLOCK_SIZE_U32) > inode.blocks {
            return Err(FormatError::Corrupt("directory larger than its blocks"));
        }
        if inode.is_symlink() && (inode.size == 0 || inode.size >= u64::from(BLOCK_SIZE_U32)) {
            return Err(FormatError::Corrupt("bad symbolic link size"));
        }
        Ok(())
    }

    /// Returns the inode table block holding inode `ino` and the byte offset
    /// of its slot in that block.
    ///
    /// Fails with [`FormatError::Invalid`] if `ino` is not a valid inode
    /// number.
    pub(crate) fn inode_location(&self, ino: u64) -> Result<(u64, usize)> {
        if !self.is_valid_ino(ino) {
            return Err(FormatError::Invalid("inode number out of range"));
        }
        let block = add(self.inode_table_start, ino / INODES_PER_BLOCK)?;
        let slot = to_usize(ino % INODES_PER_BLOCK)?;
        Ok((block, slot * INODE_SIZE))
    }

    /// Returns the inode bitmap block holding the bit of inode `ino` and the
    /// index of the bit in that block.
    ///
    /// Fails with [`FormatError::Invalid`] if `ino` is not below `inode_count`.
    pub(crate) fn inode_bitmap_location(&self, ino: u64) -> Result<(u64, usize)> {
        if ino >= self.inode_count {
            return Err(FormatError::Invalid("inode number out of range"));
        }
        let block = add(self.inode_bitmap_start, ino / BITS_PER_BLOCK)?;
        Ok((block, to_usize(ino % BITS_PER_BLOCK)?))
    }

    /// Returns the block bitmap block holding the bit of block `block` and
    /// the index of the bit in that block.
    ///
    /// Fails with [`FormatError::Invalid`] if `block` is not below
    /// `block_count`.
    pub(crate) fn block_bitmap_location(&self, block: u64) -> Result<(u64, usize)> {
        if block >= self.block_count {
            return Err(FormatError::Invalid("block number out of range"));
        }
        let bitmap_block = add(self.block_bitmap_start, block / BITS_PER_BLOCK)?;
        Ok((bitmap_block, to_usize(block % BITS_PER_BLOCK)?))
    }
}

/// Returns the `DT_*` directory entry type matching the file type of `mode`,
/// or [`DT_UNKNOWN`] if the type is invalid.
pub(crate) fn file_type_of_mode(mode: u16) -> u8 {
    match mode & S_IFMT {
        S_IFREG => DT_REG,
        S_IFDIR => DT_DIR,
        S_IFLNK => DT_LNK,
        S_IFCHR => DT_CHR,
        S_IFBLK => DT_BLK,
        S_IFIFO => DT_FIFO,
        S_IFSOCK => DT_SOCK,
        _ => DT_UNKNOWN,
    }
}

/// Bits of the minor number in the kernel's in-memory device number (`MINORBITS`).
const MINOR_BITS: u32 = 20;

/// Encodes the kernel's device number `dev` (`MKDEV(major, minor)`) for block pointer 0 of a
/// device inode, as `new_encode_dev()` does: the low byte of the minor, the 12-bit major, then
/// the other 12 bits of the minor (the encoding of user space's `makedev()` for such values).
pub(crate) fn encode_dev(dev: u32) -> u32 {
    let (major, minor) = (dev >> MINOR_BITS, dev & ((1 << MINOR_BITS) - 1));
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

/// Decodes a device number stored by [`encode_dev`] (`new_decode_dev()`).
pub(crate) fn decode_dev(raw: u32) -> u32 {
    let major = (raw & 0xfff00) >> 8;
    let minor = (raw & 0xff) | ((raw >> 12) & 0xfff00);
    (major << MINOR_BITS) | minor
}

/// Returns whether `file_type` is one of the `DT_*` values.
pub(crate) fn is_valid_file_type(file_type: u8) -> bool {
    matches!(
        file_type,
        DT_UNKNOWN | DT_FIFO | DT_CHR | DT_DIR | DT_BLK | DT_REG | DT_LNK | DT_SOCK
    )
}

/// Decoded inode.
///
/// The checksum is not stored: [`Inode::encode`] computes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Inode {
    /// File type (`S_IF*`) and permission bits; never 0 for a used inode.
    pub(crate) mode: u16,
    /// Owner user id.
    pub(crate) uid: u32,
    /// Owner group id.
    pub(crate) gid: u32,
    /// Number of hard links.
    pub(crate) nlink: u32,
    /// Size in bytes.
    pub(crate) size: u64,
    /// Access time, seconds.
    pub(crate) atime_sec: i64,
    /// Modification time, seconds.
    pub(crate) mtime_sec: i64,
    /// Change time, seconds.
    pub(crate) ctime_sec: i64,
    /// Access time, nanoseconds (below 10^9).
    pub(crate) atime_nsec: u32,
    /// Modification time, nanoseconds (below 10^9).
    pub(crate) mtime_nsec: u32,
    /// Change time, nanoseconds (below 10^9).
    pub(crate) ctime_nsec: u32,
    /// Flags, `INODE_FLAG_*`.
    pub(crate) flags: u32,
    /// Number of blocks owned, data and indirect blocks.
    pub(crate) blocks: u64,
    /// Generation number, for NFS file handles.
    pub(crate) generation: u32,
    /// Block pointers: [`N_DIRECT`] direct ones, then the single, double and
    /// triple indirect ones.
    pub(crate) block: [u32; N_BLOCK_PTRS],
    /// The extended attribute block (see [`xattr_get`]), 0 for none; only
    /// with [`FEATURE_RO_COMPAT_XATTR`].
    pub(crate) xattr: u32,
}

impl Inode {
    /// Decodes the inode slot at the start of `buf` (at least [`INODE_SIZE`]
    /// bytes).
    ///
    /// Returns `None` for a free (all-zero) slot. Fails with
    /// [`FormatError::BadChecksum`] if the checksum does not match and with
    /// [`FormatError::Corrupt`] if a field is invalid (see
    /// [`Inode::validate`]).
    pub(crate) fn decode(buf: &[u8]) -> Result<Option<Self>> {
        let buf = prefix(buf, INODE_SIZE)?;
        if buf.iter().all(|&byte| byte == 0) {
            return Ok(None);
        }
        if crc32c(prefix(buf, INODE_CHECKSUM_OFFSET)?) != get_u32(buf, INODE_CHECKSUM_OFFSET)? {
            return Err(FormatError::BadChecksum);
        }
        let mut inode = Self {
            mode: get_u16(buf, 0)?,
            uid: get_u32(buf, 4)?,
            gid: get_u32(buf, 8)?,
            nlink: get_u32(buf, 12)?,
            size: get_u64(buf, 16)?,
            atime_sec: get_i64(buf, 24)?,
            mtime_sec: get_i64(buf, 32)?,
            ctime_sec: get_i64(buf, 40)?,
            atime_nsec: get_u32(buf, 48)?,
            mtime_nsec: get_u32(buf, 52)?,
            ctime_nsec: get_u32(buf, 56)?,
            flags: get_u32(buf, 60)?,
            blocks: get_u64(buf, 64)?,
            generation: get_u32(buf, 72)?,
            block: [0; N_BLOCK_PTRS],
            xattr: get_u32(buf, 76)?,
        };
        for (i, ptr) in inode.block.iter_mut().enumerate() {
            *ptr = get_u32(buf, INODE_BLOCK_OFFSET + 4 * i)?;
        }
        inode.validate()?;
        Ok(Some(inode))
    }

    /// Validates the fields of the inode.
    ///
    /// The file type must be valid, the nanoseconds below 10^9, the flags
    /// known and the size at most [`MAX_FILE_SIZE`] (a multiple of
    /// [`BLOCK_SIZE`] for a directory). Block pointers are not checked, as
    /// that needs the [`Superblock`] (see [`Superblock::is_data_block`]).
    pub(crate) fn validate(&self) -> Result {
        if file_type_of_mode(self.mode) == DT_UNKNOWN {
            return Err(FormatError::Corrupt("bad inode mode"));
        }
        let nsec_limit = 1_000_000_000;
        if self.atime_nsec >= nsec_limit
            || self.mtime_nsec >= nsec_limit
            || self.ctime_nsec >= nsec_limit
        {
            return Err(FormatError::Corrupt("bad inode timestamp"));
        }
        if self.flags & !INODE_FLAGS_KNOWN != 0 {
            return Err(FormatError::Corrupt("unknown inode flags"));
        }
        if self.size > MAX_FILE_SIZE {
            return Err(FormatError::Corrupt("inode size too large"));
        }
        if self.is_dir() && self.size % u64::from(BLOCK_SIZE_U32) != 0 {
            return Err(FormatError::Corrupt(
                "directory size not a multiple of the block size",
            ));
        }
        Ok(())
    }

    /// Encodes the inode into the first [`INODE_SIZE`] bytes of `buf`, with
    /// zeroed reserved bytes and the checksum.
    ///
    /// Fails with [`FormatError::Invalid`] if the inode would not decode (see
    /// [`Inode::validate`]); use [`clear_inode_slot`] to free a slot.
    pub(crate) fn encode(&self, buf: &mut [u8]) -> Result {
        if self.validate().is_err() {
            return Err(FormatError::Invalid("inode fields out of range"));
        }
        let buf = prefix_mut(buf, INODE_SIZE)?;
        buf.fill(0);
        put_u16(buf, 0, self.mode)?;
        put_u32(buf, 4, self.uid)?;
        put_u32(buf, 8, self.gid)?;
        put_u32(buf, 12, self.nlink)?;
        put_u64(buf, 16, self.size)?;
        put_i64(buf, 24, self.atime_sec)?;
        put_i64(buf, 32, self.mtime_sec)?;
        put_i64(buf, 40, self.ctime_sec)?;
        put_u32(buf, 48, self.atime_nsec)?;
        put_u32(buf, 52, self.mtime_nsec)?;
        put_u32(buf, 56, self.ctime_nsec)?;
        put_u32(buf, 60, self.flags)?;
        put_u64(buf, 64, self.blocks)?;
        put_u32(buf, 72, self.generation)?;
        put_u32(buf, 76, self.xattr)?;
        for (i, &ptr) in self.block.iter().enumerate() {
            put_u32(buf, INODE_BLOCK_OFFSET + 4 * i, ptr)?;
        }
        let checksum = crc32c(prefix(buf, INODE_CHECKSUM_OFFSET)?);
        put_u32(buf, INODE_CHECKSUM_OFFSET, checksum)
    }

    /// Returns the `DT_*` type of the inode.
    pub(crate) fn file_type(&self) -> u8 {
        file_type_of_mode(self.mode)
    }

    /// Returns whether the inode is a directory.
    pub(crate) fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }

    /// Returns whether the inode is a regular file.
    pub(crate) fn is_reg(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }

    /// Returns whether the inode is a symbolic link.
    pub(crate) fn is_symlink(&self) -> bool {
        self.mode & S_IFMT == S_IFLNK
    }

    /// Returns whether the block pointers of the inode map data blocks, that
    /// is whether it is a regular file, a directory or a symbolic link.
    pub(crate) fn has_data_blocks(&self) -> bool {
        self.is_reg() || self.is_dir() || self.is_symlink()
    }
}

/// Marks the inode slot at the start of `buf` free by zeroing it.
pub(crate) fn clear_inode_slot(buf: &mut [u8]) -> Result {
    prefix_mut(buf, INODE_SIZE)?.fill(0);
    Ok(())
}

/// Path from an inode to a logical block through the block pointers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlockPath {
    /// Number of pointers to follow: 1 for a direct block, 2 through the
    /// single indirect block, 3 through the double and 4 through the triple.
    pub(crate) depth: usize,
    /// `offsets[0]` indexes the inode's block pointers, `offsets[1..depth]`
    /// index successive indirect blocks; the rest is zero.
    pub(crate) offsets: [usize; 4],
}

impl BlockPath {
    /// Returns the meaningful offsets, `&offsets[..depth]`.
    pub(crate) fn as_slice(&self) -> &[usize] {
        self.offsets.get(..self.depth).unwrap_or(&[])
    }
}

/// Returns the path to logical block `lblk` of a file.
///
/// Fails with [`FormatError::FileTooBig`] if `lblk` is not below
/// [`MAX_FILE_BLOCKS`].
pub(crate) fn block_path(lblk: u64) -> Result<BlockPath> {
    let digit = |value: u64| to_usize(value % PTRS);
    let mut rest = lblk;
    if rest < N_DIRECT_U64 {
        return Ok(BlockPath {
            depth: 1,
            offsets: [to_usize(rest)?, 0, 0, 0],
        });
    }
    rest -= N_DIRECT_U64;
    if rest < PTRS {
        return Ok(BlockPath {
            depth: 2,
            offsets: [IND_INDEX, digit(rest)?, 0, 0],
        });
    }
    rest -= PTRS;
    if rest < PTRS * PTRS {
        return Ok(BlockPath {
            depth: 3,
            offsets: [DIND_INDEX, digit(rest / PTRS)?, digit(rest)?, 0],
        });
    }
    rest -= PTRS * PTRS;
    if rest < PTRS * PTRS * PTRS {
        return Ok(BlockPath {
            depth: 4,
            offsets: [
                TIND_INDEX,
                digit(rest / (PTRS * PTRS))?,
                digit(rest / PTRS)?,
                digit(rest)?,
            ],
        });
    }
    Err(FormatError::FileTooBig)
}

/// Returns block number `index` of the indirect block `block`.
pub(crate) fn read_indirect(block: &[u8], index: usize) -> Result<u32> {
    if index >= PTRS_PER_BLOCK {
        return Err(FormatError::Invalid("indirect index out of range"));
    }
    get_u32(block, index * 4)
}

/// Sets block number `index` of the indirect block `block` to `value`.
pub(crate) fn write_indirect(block: &mut [u8], index: usize, value: u32) -> Result {
    if index >= PTRS_PER_BLOCK {
        return Err(FormatError::Invalid("indirect index out of range"));
    }
    put_u32(block, index * 4, value)
}

/// Returns the byte index and mask of `bit` in a bitmap.
fn bit_position(bit: usize) -> (usize, u8) {
    (bit / 8, 1 << (bit % 8))
}

/// Returns whether bit `bit` of `map` is set.
///
/// Fails with [`FormatError::Invalid`] if `bit` is past the end of `map`.
pub(crate) fn test_bit(map: &[u8], bit: usize) -> Result<bool> {
    let (index, mask) = bit_position(bit);
    let byte = map
        .get(index)
        .ok_or(FormatError::Invalid("bit out of range"))?;
    Ok(byte & mask != 0)
}

/// Sets bit `bit` of `map` and returns its previous value.
///
/// Fails with [`FormatError::Invalid`] if `bit` is past the end of `map`.
pub(crate) fn set_bit(map: &mut [u8], bit: usize) -> Result<bool> {
    let (index, mask) = bit_position(bit);
    let byte = map
        .get_mut(index)
        .ok_or(FormatError::Invalid("bit out of range"))?;
    let old = *byte & mask != 0;
    *byte |= mask;
    Ok(old)
}

/// Clears bit `bit` of `map` and returns its previous value.
///
/// Fails with [`FormatError::Invalid`] if `bit` is past the end of `map`.
pub(crate) fn clear_bit(map: &mut [u8], bit: usize) -> Result<bool> {
    let (index, mask) = bit_position(bit);
    let byte = map
        .get_mut(index)
        .ok_or(FormatError::Invalid("bit out of range"))?;
    let old = *byte & mask != 0;
    *byte &= !mask;
    Ok(old)
}

/// Returns the first clear bit of `map` at or after `start` and below
/// `limit`, or `None` if there is none.
///
/// `limit` is clamped to the size of `map` in bits. The search does not wrap
/// around: search again from 0 to scan the bits before `start`.
pub(crate) fn find_next_zero_bit(map: &[u8], start: usize, limit: usize) -> Option<usize> {
    let limit = limit.min(map.len().saturating_mul(8));
    let mut bit = start;
    while bit < limit {
        let (index, mask) = bit_position(bit);
        let byte = *map.get(index)?;
        if byte == 0xff && bit % 8 == 0 {
            bit += 8;
            continue;
        }
        if byte & mask == 0 {
            return Some(bit);
        }
        bit += 1;
    }
    None
}

/// Returns the number of set bits of `map` below `limit`.
///
/// `limit` is clamped to the size of `map` in bits.
pub(crate) fn count_set_bits(map: &[u8], limit: usize) -> u64 {
    let limit = limit.min(map.len().saturating_mul(8));
    let full = limit / 8;
    let mut count: u64 = map
        .get(..full)
        .unwrap_or(&[])
        .iter()
        .map(|byte| u64::from(byte.count_ones()))
        .sum();
    let rest = limit % 8;
    if rest != 0 {
        if let Some(&byte) = map.get(full) {
            let mask = (1u8 << rest) - 1;
            count += u64::from((byte & mask).count_ones());
        }
    }
    count
}

/// Returns the smallest record length holding a name of `name_len` bytes.
pub(crate) const fn rec_len_for(name_len: usize) -> usize {
    DIRENT_HEADER_SIZE
        .saturating_add(name_len)
        .saturating_add(3)
        & !3
}

/// Checks that `name` can be stored in a directory entry.
///
/// Fails with [`FormatError::NameTooLong`] if it is longer than
/// [`MAX_NAME_LEN`], and with [`FormatError::Invalid`] if it is empty or
/// holds a `/` or a NUL.
pub(crate) fn check_name(name: &[u8]) -> Result {
    if name.is_empty() {
        return Err(FormatError::Invalid("empty name"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(FormatError::NameTooLong);
    }
    if name.iter().any(|&c| c == b'/' || c == 0) {
        return Err(FormatError::Invalid("name contains '/' or NUL"));
    }
    Ok(())
}

/// Returns whether `name` is `.` or `..`.
fn is_dot_or_dotdot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

/// One record of a directory block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DirEntry<'a> {
    /// Byte offset of the record in the block.
    pub(crate) offset: usize,
    /// Length of the record in bytes.
    pub(crate) rec_len: usize,
    /// Inode number, 0 for an unused record.
    pub(crate) ino: u32,
    /// `DT_*` type of the inode.
    pub(crate) file_type: u8,
    /// Name; meaningless for an unused record.
    pub(crate) name: &'a [u8],
}

impl DirEntry<'_> {
    /// Returns whether the record holds an entry (its inode number is not 0).
    pub(crate) fn is_live(&self) -> bool {
        self.ino != 0
    }

    /// Returns the number of bytes of the record not needed by its entry.
    fn slack(&self) -> usize {
        if self.is_live() {
            self.rec_len.saturating_sub(rec_len_for(self.name.len()))
        } else {
            self.rec_len
        }
    }
}

/// Validating iterator over the records of a directory block.
///
/// Yields every record, unused ones included (see [`DirEntry::is_live`]), in
/// order. After yielding an error it stops.
#[derive(Clone, Debug)]
pub(crate) struct DirIter<'a> {
    /// The directory block.
    block: &'a [u8],
    /// Offset of the next record.
    pos: usize,
    /// Set after the last record or an error.
    done: bool,
}

impl<'a> DirIter<'a> {
    /// Decodes the record at `self.pos`.
    fn record(&self) -> Result<DirEntry<'a>> {
        let pos = self.pos;
        if self.block.len() != BLOCK_SIZE {
            return Err(FormatError::Invalid("directory block of wrong size"));
        }
        if pos % 4 != 0 || pos + DIRENT_HEADER_SIZE > self.block.len() {
            return Err(FormatError::Corrupt(
                "directory record header past block end",
            ));
        }
        let ino = get_u32(self.block, pos)?;
        let rec_len = usize::from(get_u16(self.block, pos + 4)?);
        let name_len = usize::from(get_u8(self.block, pos + 6)?);
        let file_type = get_u8(self.block, pos + 7)?;
        if rec_len % 4 != 0 || rec_len < DIRENT_HEADER_SIZE {
            return Err(FormatError::Corrupt("bad directory record length"));
        }
        if rec_len > self.block.len() - pos {
            return Err(FormatError::Corrupt("directory record past block end"));
        }
        if rec_len < rec_len_for(name_len) {
            return Err(FormatError::Corrupt("directory name longer than record"));
        }
        let name_start = pos + DIRENT_HEADER_SIZE;
        let name = self
            .block
            .get(name_start..name_start + name_len)
            .ok_or(FormatError::Corrupt("directory name past block end"))?;
        if ino != 0 {
            if check_name(name).is_err() {
                return Err(FormatError::Corrupt("bad directory entry name"));
            }
            if !is_valid_file_type(file_type) {
                return Err(FormatError::Corrupt("bad directory entry file type"));
            }
        }
        Ok(DirEntry {
            offset: pos,
            rec_len,
            ino,
            file_type,
            name,
        })
    }
}

impl<'a> Iterator for DirIter<'a> {
    type Item = Result<DirEntry<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.record() {
            Ok(entry) => {
                self.pos += entry.rec_len;
                if self.pos >= self.block.len() {
                    self.done = true;
                }
                Some(Ok(entry))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Returns a validating iterator over the records of the directory block
/// `block`, which must be [`BLOCK_SIZE`] bytes long.
pub(crate) fn dir_iter(block: &[u8]) -> DirIter<'_> {
    DirIter {
        block,
        pos: 0,
        done: false,
    }
}

/// Checks that the directory block `block` is well-formed.
pub(crate) fn validate_dir_block(block: &[u8]) -> Result {
    for entry in dir_iter(block) {
        entry?;
    }
    Ok(())
}

/// Looks up `name` in the directory block `block`.
///
/// Returns the offset of the record, the inode number and the `DT_*` type of
/// the entry, or `None` if there is no such entry. The whole block is
/// validated even if the name is found early.
pub(crate) fn find(block: &[u8], name: &[u8]) -> Result<Option<(usize, u32, u8)>> {
    let mut found = None;
    for entry in dir_iter(block) {
        let entry = entry?;
        if found.is_none() && entry.is_live() && entry.name == name {
            found = Some((entry.offset, entry.ino, entry.file_type));
        }
    }
    Ok(found)
}

/// Writes a record header and name at `offset` of `block`, zeroing the rest
/// of the record.
fn write_record(
    block: &mut [u8],
    offset: usize,
    rec_len: usize,
    ino: u32,
    file_type: u8,
    name: &[u8],
) -> Result {
    let rec_len_u16 =
        u16::try_from(rec_len).map_err(|_| FormatError::Invalid("record too long"))?;
    let name_len = u8::try_from(name.len()).map_err(|_| FormatError::NameTooLong)?;
    let end = offset
        .checked_add(rec_len)
        .ok_or(FormatError::Invalid("record past block end"))?;
    block
        .get_mut(offset..end)
        .ok_or(FormatError::Invalid("record past block end"))?
        .fill(0);
    put_u32(block, offset, ino)?;
    put_u16(block, offset + 4, rec_len_u16)?;
    put_u8(block, offset + 6, name_len)?;
    put_u8(block, offset + 7, file_type)?;
    put_bytes(block, offset + DIRENT_HEADER_SIZE, name)
}

/// Adds the entry `name` for inode `ino` of type `file_type` to the
/// directory block `block`.
///
/// Reuses the first unused record large enough, or splits the first live
/// record with enough slack. Returns `false`, leaving the block unchanged, if
/// there is no room. The caller must make sure that `name` is not already in
/// the directory. `.` and `..` are refused: [`init_dir`] creates them.
pub(crate) fn insert(block: &mut [u8], name: &[u8], ino: u32, file_type: u8) -> Result<bool> {
    check_name(name)?;
    if is_dot_or_dotdot(name) {
        return Err(FormatError::Invalid("cannot insert '.' or '..'"));
    }
    if ino == 0 {
        return Err(FormatError::Invalid("inode number 0"));
    }
    if !is_valid_file_type(file_type) {
        return Err(FormatError::Invalid("bad file type"));
    }
    let needed = rec_len_for(name.len());
    let mut slot = None;
    for entry in dir_iter(block) {
        let entry = entry?;
        if slot.is_none() && entry.slack() >= needed {
            slot = Some((entry.offset, entry.rec_len, entry.ino, entry.name.len()));
        }
    }
    let Some((offset, rec_len, old_ino, old_name_len)) = slot else {
        return Ok(false);
    };
    if old_ino == 0 {
        write_record(block, offset, rec_len, ino, file_type, name)?;
    } else {
        let used = rec_len_for(old_name_len);
        put_u16(
            block,
            offset + 4,
            u16::try_from(used).map_err(|_| FormatError::Corrupt("bad record length"))?,
        )?;
        write_record(block, offset + used, rec_len - used, ino, file_type, name)?;
    }
    Ok(true)
}

/// Points the entry `name` of the directory block `block` at inode `ino` of
/// type `file_type`, in place (for renames that replace or exchange names).
/// Returns `false` if there is no such entry. `.` and `..` are refused.
pub(crate) fn retarget(block: &mut [u8], name: &[u8], ino: u32, file_type: u8) -> Result<bool> {
    check_name(name)?;
    if is_dot_or_dotdot(name) {
        return Err(FormatError::Invalid("cannot retarget '.' or '..'"));
    }
    if ino == 0 {
        return Err(FormatError::Invalid("inode number 0"));
    }
    if !is_valid_file_type(file_type) {
        return Err(FormatError::Invalid("bad file type"));
    }
    let Some((offset, _, _)) = find(block, name)? else {
        return Ok(false);
    };
    put_u32(block, offset, ino)?;
    put_u8(block, offset + 7, file_type)?;
    Ok(true)
}

/// Removes the entry `name` from the directory block `block`.
///
/// The record is merged into the previous one or, if it is the first of the
/// block, marked unused. Returns `false` if there is no such entry. `.` and
/// `..` are refused.
pub(crate) fn remove(block: &mut [u8], name: &[u8]) -> Result<bool> {
    check_name(name)?;
    if is_dot_or_dotdot(name) {
        return Err(FormatError::Invalid("cannot remove '.' or '..'"));
    }
    let mut prev = None;
    let mut target = None;
    for entry in dir_iter(block) {
        let entry = entry?;
        if target.is_none() {
            if entry.is_live() && entry.name == name {
                target = Some((prev, entry.offset, entry.rec_len));
            } else {
                prev = Some((entry.offset, entry.rec_len));
            }
        }
    }
    match target {
        None => Ok(false),
        Some((None, offset, rec_len)) => {
            // Keep the record length, wipe the rest.
            write_record(block, offset, rec_len, 0, DT_UNKNOWN, &[])?;
            Ok(true)
        }
        Some((Some((prev_offset, prev_len)), offset, rec_len)) => {
            let merged = u16::try_from(prev_len + rec_len)
                .map_err(|_| FormatError::Corrupt("bad record length"))?;
            put_u16(block, prev_offset + 4, merged)?;
            // Do not leave the removed name behind in the slack.
            block
                .get_mut(offset..offset + rec_len)
                .ok_or(FormatError::Corrupt("directory record past block end"))?
                .fill(0);
            Ok(true)
        }
    }
}

/// Formats `block` as an empty directory block: one unused record covering
/// the whole block.
pub(crate) fn init_empty_block(block: &mut [u8]) -> Result {
    if block.len() != BLOCK_SIZE {
        return Err(FormatError::Invalid("directory block of wrong size"));
    }
    write_record(block, 0, BLOCK_SIZE, 0, DT_UNKNOWN, &[])
}

/// Formats `block` as the first block of a new directory: the `.` entry for
/// `self_ino` followed by the `..` entry for `parent_ino`, covering the rest
/// of the block.
pub(crate) fn init_dir(block: &mut [u8], self_ino: u32, parent_ino: u32) -> Result {
    if block.len() != BLOCK_SIZE {
        return Err(FormatError::Invalid("directory block of wrong size"));
    }
    if self_ino == 0 || parent_ino == 0 {
        return Err(FormatError::Invalid("inode number 0"));
    }
    let dot_len = rec_len_for(1);
    write_record(block, 0, dot_len, self_ino, DT_DIR, b".")?;
    write_record(
        block,
        dot_len,
        BLOCK_SIZE - dot_len,
        parent_ino,
        DT_DIR,
        b"..",
    )
}

/// Returns the `.` and `..` records of `block`, the first block of a
/// directory, after validating the whole block.
fn dot_entries(block: &[u8]) -> Result<(DirEntry<'_>, DirEntry<'_>)> {
    let mut iter = dir_iter(block);
    let dot = iter
        .next()
        .ok_or(FormatError::Corrupt("missing '.' entry"))??;
    if !dot.is_live() || dot.name != b"." {
        return Err(FormatError::Corrupt("missing '.' entry"));
    }
    let dotdot = iter
        .next()
        .ok_or(FormatError::Corrupt("missing '..' entry"))??;
    if !dotdot.is_live() || dotdot.name != b".." {
        return Err(FormatError::Corrupt("missing '..' entry"));
    }
    for entry in iter {
        entry?;
    }
    Ok((dot, dotdot))
}

/// Returns the inode numbers of the `.` and `..` entries of `block`, the
/// first block of a directory.
///
/// Fails with [`FormatError::Corrupt`] if the block is malformed or does not
/// start with live `.` and `..` records.
pub(crate) fn read_dots(block: &[u8]) -> Result<(u32, u32)> {
    let (dot, dotdot) = dot_entries(block)?;
    Ok((dot.ino, dotdot.ino))
}

/// Sets the inode number of the `..` entry of `block`, the first block of a
/// directory, to `parent_ino`.
///
/// Fails like [`read_dots`] if the block does not start with `.` and `..`.
pub(crate) fn set_dotdot(block: &mut [u8], parent_ino: u32) -> Result {
    if parent_ino == 0 {
        return Err(FormatError::Invalid("inode number 0"));
    }
    let offset = dot_entries(block)?.1.offset;
    put_u32(block, offset, parent_ino)
}

/// Returns whether the directory block `block` holds no entry besides `.`
/// and `..`.
///
/// For the first block of a directory that means only `.` and `..`; for the
/// other blocks, no live record at all.
pub(crate) fn is_empty_dir(block: &[u8]) -> Result<bool> {
    let mut empty = true;
    for entry in dir_iter(block) {
        let entry = entry?;
        if entry.is_live() && !is_dot_or_dotdot(entry.name) {
            empty = false;
        }
    }
    Ok(empty)
}

// Extended attributes.

/// Magic number of an extended attribute block (`"VXAT"`).
pub(crate) const XATTR_MAGIC: u32 = 0x5441_5856;
/// Size of the header of an extended attribute block.
pub(crate) const XATTR_HEADER: usize = 16;
/// Size of the fixed part of an extended attribute entry.
const XATTR_ENTRY_HEADER: usize = 4;
/// Name index of `user.` attributes.
pub(crate) const XATTR_INDEX_USER: u8 = 1;
/// Name index of `trusted.` attributes.
pub(crate) const XATTR_INDEX_TRUSTED: u8 = 2;
/// Name index of `security.` attributes.
pub(crate) const XATTR_INDEX_SECURITY: u8 = 3;
/// Name index of `system.` attributes: the POSIX ACLs (`posix_acl_access`,
/// `posix_acl_default`), in the form of `struct posix_acl_xattr_header`.
pub(crate) const XATTR_INDEX_SYSTEM: u8 = 4;
/// Longest name of an attribute, without its prefix.
pub(crate) const XATTR_NAME_MAX: usize = 255;
/// The prefixes of the name indexes, index 1 first.
pub(crate) const XATTR_PREFIXES: [&[u8]; 4] = [b"user.", b"trusted.", b"security.", b"system."];

/// Bytes an entry with `name_len` and `value_len` takes in a block.
pub(crate) const fn xattr_entry_size(name_len: usize, value_len: usize) -> usize {
    (XATTR_ENTRY_HEADER + name_len + value_len).next_multiple_of(4)
}

/// One extended attribute of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct XattrEntry<'a> {
    /// The name index, `XATTR_INDEX_*`.
    pub(crate) index: u8,
    /// The name, without the prefix of its index.
    pub(crate) name: &'a [u8],
    /// The value.
    pub(crate) value: &'a [u8],
    /// Offset of the entry in the block.
    offset: usize,
    /// Bytes the entry takes.
    size: usize,
}

/// `buf[start..end]`, or [`FormatError::ShortBuffer`].
fn range(buf: &[u8], start: usize, end: usize) -> Result<&[u8]> {
    buf.get(start..end).ok_or(FormatError::ShortBuffer)
}

/// `buf[start..end]`, mutably, or [`FormatError::ShortBuffer`].
fn range_mut(buf: &mut [u8], start: usize, end: usize) -> Result<&mut [u8]> {
    buf.get_mut(start..end).ok_or(FormatError::ShortBuffer)
}

/// The checksum of an extended attribute block: [`crc32c`] of the block
/// with the checksum field (offset 12) taken as zero.
fn xattr_checksum(block: &[u8]) -> Result<u32> {
    let crc = crc32c_append(crc32c(range(block, 0, 12)?), &[0; 4]);
    Ok(crc32c_append(crc, range(block, 16, BLOCK_SIZE)?))
}

/// Makes `block` an empty extended attribute block of inode `owner`.
pub(crate) fn xattr_init(block: &mut [u8], owner: u32) -> Result {
    let block = prefix_mut(block, BLOCK_SIZE)?;
    block.fill(0);
    put_u32(block, 0, XATTR_MAGIC)?;
    put_u32(block, 8, owner)?;
    let crc = xattr_checksum(block)?;
    put_u32(block, 12, crc)
}

/// Decodes the entry at offset `at` of an extended attribute block, checking
/// its fields and that it fits.
fn xattr_entry(block: &[u8], at: usize) -> Result<XattrEntry<'_>> {
    let bad = FormatError::Corrupt("malformed extended attribute entry");
    let index = get_u8(block, at).map_err(|_| bad)?;
    let name_len = usize::from(get_u8(block, at + 1).map_err(|_| bad)?);
    let value_len = usize::from(get_u16(block, at + 2).map_err(|_| bad)?);
    let size = xattr_entry_size(name_len, value_len);
    if !(1..=XATTR_PREFIXES.len() as u8).contains(&index) || name_len == 0 || at + size > BLOCK_SIZE
    {
        return Err(bad);
    }
    let name_at = at + XATTR_ENTRY_HEADER;
    let value_at = name_at + name_len;
    if range(block, value_at + value_len, at + size)?
        .iter()
        .any(|&b| b != 0)
    {
        return Err(bad);
    }
    Ok(XattrEntry {
        index,
        name: range(block, name_at, value_at)?,
        value: range(block, value_at, value_at + value_len)?,
        offset: at,
        size,
    })
}

/// Decodes and checks the extended attribute block `block` of inode `owner`
/// and calls `f` for each attribute, in the order of the block; returns the
/// number of bytes the entries take.
///
/// | Offset | Type  | Field                                              |
/// |--------|-------|----------------------------------------------------|
/// | 0      | `u32` | magic, [`XATTR_MAGIC`]                             |
/// | 4      | `u16` | count of entries                                   |
/// | 6      | `u16` | reserved, zero                                     |
/// | 8      | `u32` | owner: the inode number                            |
/// | 12     | `u32` | checksum, [`crc32c`] of the block with this field zero |
///
/// The entries follow from offset [`XATTR_HEADER`] on, back to back, the rest
/// of the block zero. An entry is an index (`u8`, `XATTR_INDEX_*`), a name
/// length (`u8`, 1 to [`XATTR_NAME_MAX`]), a value length (`u16`), the name,
/// the value, and zeroes to a multiple of 4 bytes. No two entries have the
/// same index and name.
pub(crate) fn xattr_entries<'a>(
    block: &'a [u8],
    owner: u32,
    mut f: impl FnMut(XattrEntry<'a>) -> Result,
) -> Result<usize> {
    let block = prefix(block, BLOCK_SIZE)?;
    if get_u32(block, 0)? != XATTR_MAGIC {
        return Err(FormatError::Corrupt("bad extended attribute block magic"));
    }
    if get_u32(block, 12)? != xattr_checksum(block)? {
        return Err(FormatError::BadChecksum);
    }
    if get_u32(block, 8)? != owner || get_u16(block, 6)? != 0 {
        return Err(FormatError::Corrupt(
            "extended attribute block of another inode",
        ));
    }
    let count = get_u16(block, 4)?;
    let mut at = XATTR_HEADER;
    for i in 0..count {
        let entry = xattr_entry(block, at)?;
        // A duplicate: compare with the entries before (at most a few hundred).
        let mut seen = XATTR_HEADER;
        for _ in 0..i {
            let e = xattr_entry(block, seen)?;
            if e.index == entry.index && e.name == entry.name {
                return Err(FormatError::Corrupt("duplicate extended attribute"));
            }
            seen += e.size;
        }
        f(entry)?;
        at += entry.size;
    }
    if range(block, at, BLOCK_SIZE)?.iter().any(|&b| b != 0) {
        return Err(FormatError::Corrupt("data after the extended attributes"));
    }
    Ok(at - XATTR_HEADER)
}

/// The attribute `name` of index `index` in the extended attribute block
/// `block` of inode `owner`, `None` if there is none.
pub(crate) fn xattr_get<'a>(
    block: &'a [u8],
    owner: u32,
    index: u8,
    name: &[u8],
) -> Result<Option<XattrEntry<'a>>> {
    let mut found = None;
    xattr_entries(block, owner, |e| {
        if e.index == index && e.name == name {
            found = Some(e);
        }
        Ok(())
    })?;
    Ok(found)
}

/// What [`xattr_set`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum XattrSet {
    /// The attribute was set or removed; the block holds this many entries.
    Done(u16),
    /// The block has no room for the attribute; it is unchanged.
    NoRoom,
}

/// Sets attribute `name` of index `index` to `value` in the extended
/// attribute block `block` of inode `owner`, replacing the attribute of the
/// same name, or with `None` removes it (nothing to remove is not an error).
/// Fails with [`FormatError::Invalid`] for an empty or too long name, a bad
/// index or a value longer than a block could hold.
pub(crate) fn xattr_set(
    block: &mut [u8],
    owner: u32,
    index: u8,
    name: &[u8],
    value: Option<&[u8]>,
) -> Result<XattrSet> {
    if name.is_empty() || name.len() > XATTR_NAME_MAX {
        return Err(FormatError::Invalid("extended attribute name length"));
    }
    if !(1..=XATTR_PREFIXES.len() as u8).contains(&index) {
        return Err(FormatError::Invalid("extended attribute index"));
    }
    let value_len = match value {
        Some(v) => Some(
            u16::try_from(v.len())
                .map_err(|_| FormatError::Invalid("extended attribute value length"))?,
        ),
        None => None,
    };
    // One pass finds the attribute and the end of the entries.
    let mut old = None;
    let used = xattr_entries(block, owner, |e| {
        if e.index == index && e.name == name {
            old = Some((e.offset, e.size));
        }
        Ok(())
    })?;
    let block = prefix_mut(block, BLOCK_SIZE)?;
    let mut count = get_u16(block, 4)?;
    let mut end = XATTR_HEADER + used;
    let new_size = value.map_or(0, |v| xattr_entry_size(name.len(), v.len()));
    let old_size = old.map_or(0, |(_, size)| size);
    if end - old_size + new_size > BLOCK_SIZE {
        return Ok(XattrSet::NoRoom);
    }
    if let Some((offset, size)) = old {
        range_mut(block, offset, end)?.copy_within(size.., 0);
        range_mut(block, end - size, end)?.fill(0);
        end -= size;
        count -= 1;
    }
    if let (Some(v), Some(len)) = (value, value_len) {
        let e = range_mut(block, end, end + new_size)?;
        put_u8(e, 0, index)?;
        put_u8(e, 1, name.len() as u8)?;
        put_u16(e, 2, len)?;
        put_bytes(e, XATTR_ENTRY_HEADER, name)?;
        put_bytes(e, XATTR_ENTRY_HEADER + name.len(), v)?;
        count += 1;
    }
    put_u16(block, 4, count)?;
    let crc = xattr_checksum(block)?;
    put_u32(block, 12, crc)?;
    Ok(XattrSet::Done(count))
}
