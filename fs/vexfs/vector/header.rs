// SPDX-License-Identifier: GPL-2.0

//! The collection file: its header, records and their codec.
//!
//! A collection is a regular file, turned into one by `VEXFS_IOC_CREATE` while it is empty;
//! the inode then carries [`format::INODE_FLAG_COLLECTION`] in its on-disk flags. The file is
//! readable and copyable like any other (a copy is a plain file holding the same bytes); only
//! the ioctls change it: `write(2)`, `pwrite(2)`, splice and `copy_file_range(2)` into it and
//! size changes with `truncate(2)` fail with `EPERM`. All integers are little-endian.
//!
//! Header, 4096 bytes at offset 0:
//!
//! | offset | type     | field                                                   |
//! |--------|----------|---------------------------------------------------------|
//! | 0      | `[u8;8]` | magic, `"VEXFSCOL"`                                     |
//! | 8      | `u32`    | version, 2 (1: no record checksums, still read; 3: see  |
//! |        |          | [`compact`](super::compact))                            |
//! | 12     | `u32`    | header size, 4096                                       |
//! | 16     | `u32`    | dim, `1..=VEXFS_MAX_DIM`                                |
//! | 20     | `u32`    | element type, `VEXFS_ELEM_*`                            |
//! | 24     | `u32`    | metric, `VEXFS_METRIC_*`                                |
//! | 28     | `u32`    | HNSW M                                                  |
//! | 32     | `u32`    | HNSW ef_construction                                    |
//! | 36     | `u32`    | record size                                             |
//! | 40     | `u64`    | record count (deleted records included)                 |
//! | 48     | `u64`    | live count                                              |
//! | 56     | `u64`    | offset of the saved index (0: none)                     |
//! | 64     | `u64`    | size of the saved index                                 |
//! | 72     | `u64`    | generation of the records                               |
//! | 80     | `u64`    | generation the saved index was written at (0: unknown)  |
//! | 88     | `u64`    | salt of the record checksums                            |
//! | 96     | `u64`    | durable record count                                    |
//! | 104    | `u64`    | version 3: offset of record 0 (otherwise zero)          |
//! | 112    |          | zero up to 4092                                         |
//! | 4092   | `u32`    | CRC32C of bytes 0..4092                                 |
//!
//! Records follow from offset 4096, record `i` at `4096 + i * record size` (in version 3, from the
//! offset at byte 104). A record is a `u64` id (`u64::MAX`: deleted), then the `dim` elements
//! (binary32 bit patterns as `u32`, or `i8`), then the `u32` checksum of the record
//! ([`format::record_checksum`] of the salt, `i`, the id and the elements), then zero padding to a
//! multiple of 8 bytes. Bytes after the last record are not part of the collection. An insert
//! writes its records after the last one, then the header. Nothing orders their writeback: a crash
//! can leave the header counting records whose blocks never reached the disk (zeros, or what the
//! blocks held before). Such records fail their checksum and are ignored ([`record_state`]);
//! records before the durable count, which were written and flushed before a header naming that
//! count was written (by [`save_loaded`](super::saved::save_loaded)), must pass it. A delete
//! overwrites ids with `u64::MAX`. An upsert (`VEXFS_INSERT_UPSERT`) writes its records and the
//! header, waits until they are durable, then tombstones the records it replaced; of two live
//! records of one id, which only a crash in between can leave, the later one holds the id
//! ([`supersede`](super::records::supersede)).

use super::{
    ELEM_F32,
    ELEM_I8,
    MAX_DIM,
    MAX_EF,
    METRIC_COSINE,
    METRIC_IP,
    METRIC_L2,
    TOMBSTONE, //
};
use crate::{
    format,
    hnsw::Params,
    vecmath::{
        Fixed,
        Metric, //
    },
};
use kernel::{
    alloc::KVec,
    fs::{
        fops,
        kernel_io::{
            self,
            Writer, //
        },
        File, //
    },
    prelude::*, //
};

pub(super) const HEADER_SIZE: usize = 4096;
/// Offset of the checksum of the first sector of the collection header, which holds every
/// field: a header write torn at a 512-byte boundary leaves that sector whole, old or new.
pub(super) const HEADER_SECTOR_CRC: usize = 508;
pub(super) const MAGIC: &[u8; 8] = b"VEXFSCOL";
pub(super) const FORMAT_VERSION: u32 = 2;
/// The first version of the collection format: no record checksums, no salt, no durable
/// count.
pub(super) const FORMAT_V1: u32 = 1;
/// Version [`FORMAT_VERSION`] with the records at the offset in bytes 104..112 instead of
/// right after the header: where compaction copies them before copying them back.
pub(super) const FORMAT_MOVED: u32 = 3;

/// The element type of a collection's vectors (`VEXFS_ELEM_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ElemType {
    /// binary32 bit patterns.
    F32,
    /// Signed bytes.
    I8,
}

impl TryFrom<u32> for ElemType {
    type Error = Error;

    /// `EINVAL` for a value that is not a `VEXFS_ELEM_*`.
    fn try_from(v: u32) -> Result<Self> {
        match v {
            ELEM_F32 => Ok(Self::F32),
            ELEM_I8 => Ok(Self::I8),
            _ => Err(EINVAL),
        }
    }
}

impl From<ElemType> for u32 {
    fn from(e: ElemType) -> u32 {
        match e {
            ElemType::F32 => ELEM_F32,
            ElemType::I8 => ELEM_I8,
        }
    }
}

impl ElemType {
    /// Bytes of one element.
    pub(super) const fn size(self) -> u32 {
        match self {
            Self::F32 => 4,
            Self::I8 => 1,
        }
    }
}

impl TryFrom<u32> for Metric {
    type Error = Error;

    /// `EINVAL` for a value that is not a `VEXFS_METRIC_*`.
    fn try_from(v: u32) -> Result<Self> {
        match v {
            METRIC_L2 => Ok(Self::L2),
            METRIC_IP => Ok(Self::Ip),
            METRIC_COSINE => Ok(Self::Cosine),
            _ => Err(EINVAL),
        }
    }
}

impl From<Metric> for u32 {
    fn from(m: Metric) -> u32 {
        match m {
            Metric::L2 => METRIC_L2,
            Metric::Ip => METRIC_IP,
            Metric::Cosine => METRIC_COSINE,
        }
    }
}

/// Whether a collection of `dim` elements with `m` links per node and a candidate list of
/// `efc` while inserting may exist: the rules of `VEXFS_IOC_CREATE`, which a header read from
/// the disk must meet too (the element type and metric are checked by their `TryFrom`).
pub(super) fn params_ok(dim: u32, m: u32, efc: u32) -> bool {
    (1..=MAX_DIM).contains(&dim) && (2..=64).contains(&m) && (m..=MAX_EF).contains(&efc)
}

/// The collection header.
#[derive(Clone, Copy, Debug)]
pub(super) struct Header {
    pub(super) dim: u32,
    pub(super) elem_type: ElemType,
    pub(super) metric: Metric,
    pub(super) m: u32,
    pub(super) ef_construction: u32,
    pub(super) record_size: u32,
    pub(super) records: u64,
    pub(super) live: u64,
    /// Offset of the saved index (0: none).
    pub(super) index_off: u64,
    /// Size of the saved index.
    pub(super) index_len: u64,
    /// Generation of the records: changed (made durable first) before records are changed in
    /// place while the saved index is current ([`begin_overwrite`]). 0 in files of kernels
    /// that do not know it.
    pub(super) generation: u64,
    /// The generation the saved index was written at (0: unknown).
    pub(super) index_generation: u64,
    /// Format version, [`FORMAT_VERSION`] or [`FORMAT_V1`].
    pub(super) version: u32,
    /// Seed of the record checksums, chosen at creation (0 in version 1).
    pub(super) salt: u64,
    /// Records before this one were durable, with their checksums, when the header was
    /// written: one of them failing its checksum is damage, not a crash (0 in version 1).
    pub(super) durable: u64,
    /// Offset of record 0: [`HEADER_SIZE`] but while compaction has the records elsewhere
    /// ([`FORMAT_MOVED`] on disk).
    pub(super) base: u64,
    /// Offset of the log of a save over the saved index in place
    /// ([`SaveLog`](super::saved::SaveLog); 0: none).
    pub(super) log_off: u64,
    /// Size of that log.
    pub(super) log_len: u64,
}

pub(super) fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

pub(super) fn le64(b: &[u8], off: usize) -> u64 {
    u64::from(le32(b, off)) | (u64::from(le32(b, off + 4)) << 32)
}

pub(super) fn ne32(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

pub(super) fn ne64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    put(&mut a, &b[off..off + 8]);
    u64::from_ne_bytes(a)
}

/// Copies `src` to the start of `dst` (as much as fits).
pub(super) fn put(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
}

pub(super) fn record_size(dim: u32, elem_type: ElemType, version: u32) -> u32 {
    let esize = elem_type.size();
    let sum = if version == FORMAT_V1 { 0 } else { 4 };
    (8 + dim * esize + sum).next_multiple_of(8)
}

/// What a record holds, as [`record_state`] finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rec {
    /// A vector and its id.
    Live(u64),
    /// A tombstone.
    Deleted,
    /// Not a record: a block the header counts that a crash left unwritten.
    Unwritten,
}

impl Header {
    pub(super) fn encode(&self, out: &mut [u8]) {
        out.fill(0);
        put(&mut out[0..8], MAGIC);
        let moved = self.base != HEADER_SIZE as u64;
        if moved {
            put(&mut out[104..112], &self.base.to_le_bytes());
        }
        for (off, v) in [
            (8, if moved { FORMAT_MOVED } else { self.version }),
            (12, HEADER_SIZE as u32),
            (16, self.dim),
            (20, u32::from(self.elem_type)),
            (24, u32::from(self.metric)),
            (28, self.m),
            (32, self.ef_construction),
            (36, self.record_size),
        ] {
            put(&mut out[off..off + 4], &v.to_le_bytes());
        }
        put(&mut out[40..48], &self.records.to_le_bytes());
        put(&mut out[48..56], &self.live.to_le_bytes());
        put(&mut out[56..64], &self.index_off.to_le_bytes());
        put(&mut out[64..72], &self.index_len.to_le_bytes());
        put(&mut out[72..80], &self.generation.to_le_bytes());
        put(&mut out[80..88], &self.index_generation.to_le_bytes());
        put(&mut out[88..96], &self.salt.to_le_bytes());
        put(&mut out[96..104], &self.durable.to_le_bytes());
        put(&mut out[112..120], &self.log_off.to_le_bytes());
        put(&mut out[120..128], &self.log_len.to_le_bytes());
        let crc = format::crc32c(&out[..HEADER_SECTOR_CRC]);
        put(
            &mut out[HEADER_SECTOR_CRC..HEADER_SECTOR_CRC + 4],
            &crc.to_le_bytes(),
        );
        // Over the whole block, as kernels that do not know the first checksum check it.
        let crc = format::crc32c(&out[..HEADER_SIZE - 4]);
        put(&mut out[HEADER_SIZE - 4..], &crc.to_le_bytes());
    }

    pub(super) fn decode(b: &[u8]) -> Result<Self> {
        let bad = |what: &str| {
            pr_err!("collection header: {}\n", what);
            EUCLEAN
        };
        if b.len() != HEADER_SIZE {
            return Err(bad("short header"));
        }
        if &b[0..8] != MAGIC {
            return Err(bad("bad magic"));
        }
        // The first sector is enough; a header of a kernel that wrote no checksum there
        // must match the one over the whole block.
        if format::crc32c(&b[..HEADER_SECTOR_CRC]) != le32(b, HEADER_SECTOR_CRC)
            && format::crc32c(&b[..HEADER_SIZE - 4]) != le32(b, HEADER_SIZE - 4)
        {
            return Err(bad("bad checksum"));
        }
        let (version, base) = match le32(b, 8) {
            FORMAT_MOVED => (FORMAT_VERSION, le64(b, 104)),
            v => (v, HEADER_SIZE as u64),
        };
        if !matches!(version, FORMAT_V1 | FORMAT_VERSION) || le32(b, 12) != HEADER_SIZE as u32 {
            return Err(bad("unknown version"));
        }
        let h = Header {
            dim: le32(b, 16),
            elem_type: ElemType::try_from(le32(b, 20)).map_err(|_| bad("bad parameters"))?,
            metric: Metric::try_from(le32(b, 24)).map_err(|_| bad("bad parameters"))?,
            m: le32(b, 28),
            ef_construction: le32(b, 32),
            record_size: le32(b, 36),
            records: le64(b, 40),
            live: le64(b, 48),
            index_off: le64(b, 56),
            index_len: le64(b, 64),
            generation: le64(b, 72),
            index_generation: le64(b, 80),
            version,
            salt: le64(b, 88),
            durable: le64(b, 96),
            base,
            log_off: le64(b, 112),
            log_len: le64(b, 120),
        };
        if !params_ok(h.dim, h.m, h.ef_construction)
            || h.record_size != record_size(h.dim, h.elem_type, version)
            || h.live > h.records
            || h.durable > h.records
            || (version == FORMAT_V1 && (h.salt != 0 || h.durable != 0))
            || (base != HEADER_SIZE as u64 && (base % 4096 != 0 || base < 2 * HEADER_SIZE as u64))
            || (h.log_off == 0) != (h.log_len == 0)
            || (h.log_off != 0 && (h.index_off == 0 || h.log_off % 4096 != 0))
        {
            return Err(bad("bad parameters"));
        }
        Ok(h)
    }

    /// Whether the saved index reflects every record before its saved record count as it
    /// is: written at the current generation, and neither generation unknown (a kernel that
    /// does not know them writes zeros).
    pub(super) fn saved_current(&self) -> bool {
        self.index_off != 0
            && self.index_generation != 0
            && self.index_generation == self.generation
    }

    /// Names no saved index (nor a log of one).
    pub(super) fn drop_saved(&mut self) {
        self.index_off = 0;
        self.index_len = 0;
        self.log_off = 0;
        self.log_len = 0;
    }

    /// Where the saved index and the log of a save over it end (0: none).
    pub(super) fn saved_end(&self) -> u64 {
        let copy = self.index_off.saturating_add(self.index_len);
        let log = self.log_off.saturating_add(self.log_len);
        if self.index_off == 0 {
            0
        } else {
            copy.max(log)
        }
    }

    pub(super) fn params(&self) -> Params {
        Params {
            dim: self.dim as usize,
            metric: self.metric,
            m: self.m as usize,
            ef_construction: self.ef_construction as usize,
        }
    }

    pub(super) fn elem_size(&self) -> usize {
        self.elem_type.size() as usize
    }

    /// Offset of record `i`.
    pub(super) fn offset(&self, i: u64) -> Result<i64> {
        i.checked_mul(u64::from(self.record_size))
            .and_then(|o| o.checked_add(self.base))
            .and_then(|o| i64::try_from(o).ok())
            .ok_or(EFBIG)
    }

    /// Converts `dim` elements in their file/user representation (native = little-endian on
    /// the architectures VexFS supports for binary32 patterns) into mantissas; returns the
    /// scale.
    pub(super) fn convert(&self, raw: &[u8], out: &mut [i32]) -> Result<i32> {
        match self.elem_type {
            ElemType::F32 => {
                Fixed::from_f32_bits((0..raw.len() / 4).map(|i| le32(raw, 4 * i)), out)
            }
            ElemType::I8 => Ok(Fixed::from_i8(raw.iter().map(|&b| b as i8), out)),
        }
    }

    /// Whether records carry checksums (not in version 1).
    pub(super) fn checksummed(&self) -> bool {
        self.version != FORMAT_V1
    }

    /// Bytes of a record its checksum covers: the id and the elements.
    fn summed_len(&self) -> usize {
        8 + self.dim as usize * self.elem_size()
    }

    /// Sets the checksum of `r`, the bytes of record `slot` (nothing in version 1).
    pub(super) fn seal(&self, slot: u64, r: &mut [u8]) {
        if self.checksummed() {
            let n = self.summed_len();
            let sum = format::record_checksum(self.salt, slot, &r[..n]);
            put(&mut r[n..n + 4], &sum.to_le_bytes());
        }
    }
}

/// What record `slot` (bytes `r`) of the collection of `hdr` holds. A record that fails its
/// checksum at or past the durable count is one the header counts but whose blocks a crash
/// kept from the disk, and is ignored (logged); before it, the file is damaged (`EUCLEAN`).
pub(super) fn record_state(hdr: &Header, slot: u64, r: &[u8]) -> Result<Rec> {
    let id = le64(r, 0);
    if id == TOMBSTONE {
        return Ok(Rec::Deleted);
    }
    if hdr.checksummed() {
        let n = hdr.summed_len();
        if format::record_checksum(hdr.salt, slot, &r[..n]) != le32(r, n) {
            if slot < hdr.durable {
                pr_err!("collection: record {} fails its checksum\n", slot);
                return Err(EUCLEAN);
            }
            if crate::super_block::log_ratelimit() {
                pr_warn!(
                    "collection: record {} not written before a crash (bad checksum), ignored\n",
                    slot
                );
            }
            return Ok(Rec::Unwritten);
        }
    }
    // Every id but the tombstone's is valid (`ID_MAX`).
    Ok(Rec::Live(id))
}

pub(super) fn header_buf() -> Result<KVec<u8>> {
    let mut b = KVec::with_capacity(HEADER_SIZE, GFP_KERNEL)?;
    b.resize(HEADER_SIZE, 0, GFP_KERNEL)?;
    Ok(b)
}

/// Reads the header of the collection file.
pub(super) fn read_header(file: &File) -> Result<Header> {
    let mut b = header_buf()?;
    if kernel_io::read_at(file, 0, &mut b)? != HEADER_SIZE {
        pr_err!("collection header: short file\n");
        return Err(EUCLEAN);
    }
    Header::decode(&b)
}

/// A change of records in place, which [`begin_overwrite`] prepares.
#[derive(Clone, Copy)]
pub(super) enum Overwrite {
    /// Tombstones of deleted records.
    Delete,
    /// Tombstones of the records an upsert replaced; the new ones end at this file offset.
    Replace(i64),
    /// Compaction moves whole records.
    Move,
}

/// Called before records of the collection are changed in place (`what`), so that a crash in the
/// change is read right. If the saved index is current ([`Header::saved_current`]), moves `hdr` to
/// a new generation: [`restore`](super::saved::restore) then checks the saved index against every
/// record. If records move, clears the durable count, since a crash can leave any record torn,
/// which must then read as unwritten ([`record_state`]). Writes `hdr` if it changed, and waits
/// until it and, for an upsert, the new records are durable: a crash then leaves the replaced
/// records or their replacements, never neither. Costs one synchronous header write per save of the
/// index, not per change, and one flush per upsert that replaces.
pub(super) fn begin_overwrite(
    file: &File,
    w: &Writer<'_>,
    hdr: &mut Header,
    what: Overwrite,
) -> Result {
    let mut new_hdr = *hdr;
    if hdr.saved_current() {
        new_hdr.generation = hdr.generation.wrapping_add(1).max(1);
    }
    if let Overwrite::Move = what {
        new_hdr.durable = 0;
    }
    let changed = new_hdr.generation != hdr.generation || new_hdr.durable != hdr.durable;
    let end = match what {
        Overwrite::Replace(end) => end,
        _ if changed => HEADER_SIZE as i64,
        _ => return Ok(()),
    };
    if changed {
        write_header(w, &new_hdr)?;
    }
    fops::generic_fsync(file, 0, end - 1, true)?;
    *hdr = new_hdr;
    Ok(())
}

pub(super) fn write_header(w: &Writer<'_>, hdr: &Header) -> Result {
    let mut b = header_buf()?;
    hdr.encode(&mut b);
    w.write_all_at(0, &b)
}
