// SPDX-License-Identifier: GPL-2.0

//! Vector collections: the collection file format and the ioctls of `<linux/vexfs.h>`.
//!
//! # Collection file layout
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
//! |        |          | [`compact`])                                            |
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
//! Records follow from offset 4096, record `i` at `4096 + i * record size` (in version 3,
//! from the offset at byte 104). A record is a
//! `u64` id (`u64::MAX`: deleted), then the `dim` elements (binary32 bit patterns as `u32`, or
//! `i8`), then the `u32` checksum of the record ([`format::record_checksum`] of the salt, `i`,
//! the id and the elements), then zero padding to a multiple of 8 bytes. Bytes after the last
//! record are not part of the collection. An insert writes its records after the last one,
//! then the header. Nothing orders their writeback: a crash can leave the header counting
//! records whose blocks never reached the disk (zeros, or what the blocks held before). Such
//! records fail their checksum and are ignored ([`record_state`]); records before the durable
//! count, which were written and flushed before a header naming that count was written (by
//! [`save_loaded`]), must pass it. A delete overwrites ids with `u64::MAX`. An
//! upsert (`VEXFS_INSERT_UPSERT`) writes its records and the header, waits until they are
//! durable, then tombstones the records it replaced; of two live records of one id, which
//! only a crash in between can leave, the later one holds the id ([`supersede`]).
//!
//! # Index
//!
//! The HNSW graph and the vectors it is traversed on ([`crate::hnsw`]) live in kernel memory,
//! loaded on the first use after mount, kept in step with inserts and deletes, and charged
//! against the index budget of the mount ([`crate::cache`]), which drops clean indexes when it
//! needs room and under memory pressure. A cosine index keeps only compact copies: the exact
//! vectors of the candidates a search rescores are read back from their records through the
//! page cache ([`FileRecords`]). Loading restores the graph saved in the file if there is a
//! usable copy and otherwise builds it from the records (as `VEXFS_IOC_BUILD_INDEX` always
//! does).
//!
//! The saved index starts at a multiple of [`INDEX_ALIGN`] at least a quarter of the records'
//! size past the last record, so that inserts do not overwrite it: a [`SavedHeader`], then
//! the entry of every node ([`Index::save_node`]), in node order. It is written (by
//! [`save_loaded`]) when the index changed and a file descriptor open for writing is closed
//! or synced, or after `VEXFS_IOC_BUILD_INDEX`: the entries, their header, then the collection
//! header naming them. While the header names the copy the index was restored from or last
//! saved to, the copy stays where it is and a save writes only the entries that changed
//! ([`Index::unsaved`]), after a log of them ([`SaveLog`]) that completes the copy if a crash
//! interrupts the save. Entries of a cosine index carry the nodes' traversal data (compact
//! copies, sign codes), so that a restore need not compute them again. [`restore`] checks the
//! links and both checksums, or the index is rebuilt. Unless the header's generations show
//! that no record changed in place since the save ([`begin_overwrite`] moves the records to
//! a new generation, durably, before their first in-place change), every node must also
//! match its record and those deleted since are marked deleted; records inserted after the
//! save are linked in.
//!
//! Searches hold the
//! collection's read-write semaphore shared and run in parallel; inserts, deletes and builds
//! hold it exclusively. Lock order: freeze protection, the collection semaphore, the inode
//! lock, the block map mutex.
//!
//! # Errors
//!
//! Malformed arguments (version, reserved fields and padding not zero, unknown flags, counts
//! and `k` out of range, NaN or infinite elements) give `EINVAL`; unreadable or unwritable user
//! buffers `EFAULT`; an ioctl other than `VEXFS_IOC_CREATE` on a file that is not a collection
//! `ENOTTY`; `VEXFS_IOC_CREATE` on a collection `EEXIST` and on a non-empty file `ENOTEMPTY`;
//! changes through a file not open for writing `EBADF`; an id already present `EEXIST`; a
//! batch whose vectors alone exceed [`BATCH_LIMIT`] bytes `E2BIG`; an index that does not fit
//! in the index budget of the mount `ENOMEM`; a damaged collection file `EUCLEAN`.

use crate::{
    cache::Charge,
    format,
    hnsw::{
        Filter,
        Index,
        Params,
        Records,
        Scratch,
        SAVED_HEAD, //
    },
    vecmath::{
        Fixed,
        Metric, //
    },
    VexFs,
};
use core::mem::offset_of;
use kernel::{
    alloc::{
        KVVec,
        KVec,
        VVec, //
    },
    fs::{
        fops,
        inode::{
            flags::S_APPEND,
            INode, //
        },
        kernel_io::{
            self,
            Writer, //
        },
        File,
    },
    ioctl,
    prelude::*,
    time::{
        Instant,
        Monotonic, //
    },
    transmute::{
        AsBytes,
        FromBytes, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    },
    uapi,
};

// The ABI comes from include/uapi/linux/vexfs.h through bindgen (`kernel::uapi`).
const UAPI_VERSION: u32 = uapi::VEXFS_UAPI_VERSION;
const MAX_DIM: u32 = uapi::VEXFS_MAX_DIM;
const MAX_K: u32 = uapi::VEXFS_MAX_K;
const MAX_BATCH: u32 = uapi::VEXFS_MAX_BATCH;
const MAX_EF: u32 = uapi::VEXFS_MAX_EF;
const MAX_RESULTS: u32 = uapi::VEXFS_MAX_RESULTS;
/// `VEXFS_ID_MAX` (a cast expression, which bindgen does not evaluate).
const ID_MAX: u64 = u64::MAX - 1;
/// The id of a deleted record.
const TOMBSTONE: u64 = u64::MAX;
const ELEM_F32: u32 = uapi::VEXFS_ELEM_F32;
const ELEM_I8: u32 = uapi::VEXFS_ELEM_I8;
const METRIC_L2: u32 = uapi::VEXFS_METRIC_L2;
const METRIC_IP: u32 = uapi::VEXFS_METRIC_IP;
const METRIC_COSINE: u32 = uapi::VEXFS_METRIC_COSINE;
const INSERT_UPSERT: u32 = uapi::VEXFS_INSERT_UPSERT;
const SEARCH_EXACT: u32 = uapi::VEXFS_SEARCH_EXACT;
const SEARCH_STATS: u32 = uapi::VEXFS_SEARCH_STATS;
const SEARCH_FILTER: u32 = uapi::VEXFS_SEARCH_FILTER;
const STATS_SCANNED: u32 = uapi::VEXFS_STATS_SCANNED;
const FILTER_RANGE: u32 = uapi::VEXFS_FILTER_RANGE;
const FILTER_IDS: u32 = uapi::VEXFS_FILTER_IDS;
const MAX_FILTER_IDS: u32 = uapi::VEXFS_MAX_FILTER_IDS;
const BUILD_COMPACT: u32 = uapi::VEXFS_BUILD_COMPACT;
const INDEX_NONE: u32 = uapi::VEXFS_INDEX_NONE;
const INDEX_READY: u32 = uapi::VEXFS_INDEX_READY;
const INDEX_RESTORED: u32 = uapi::VEXFS_INDEX_RESTORED;
const INDEX_SAVED: u32 = uapi::VEXFS_INDEX_SAVED;

const PARAMS_SIZE: usize = size_of::<uapi::vexfs_collection_params>();
const INSERT_SIZE: usize = size_of::<uapi::vexfs_insert>();
const DELETE_SIZE: usize = size_of::<uapi::vexfs_delete>();
const SEARCH_SIZE: usize = size_of::<uapi::vexfs_search>();
const BUILD_SIZE: usize = size_of::<uapi::vexfs_build_index>();
const STATS_SIZE: usize = size_of::<uapi::vexfs_stats>();
const SEARCH_STATS_SIZE: usize = size_of::<uapi::vexfs_search_stats>();
const SEARCH_BATCH_SIZE: usize = size_of::<uapi::vexfs_search_batch>();
const GET_SIZE: usize = size_of::<uapi::vexfs_get>();
const FILTER_SIZE: usize = size_of::<uapi::vexfs_filter>();
// The sizes the header promises, on every architecture.
const _: () = assert!(PARAMS_SIZE == 64 && INSERT_SIZE == 64 && DELETE_SIZE == 56);
const _: () = assert!(SEARCH_SIZE == 80 && BUILD_SIZE == 40 && STATS_SIZE == 136);
const _: () = assert!(SEARCH_STATS_SIZE == 64 && SEARCH_BATCH_SIZE == 80 && GET_SIZE == 64);
const _: () = assert!(FILTER_SIZE == 64);

const IOC_MAGIC: u32 = uapi::VEXFS_IOC_MAGIC;
const IOC_CREATE: u32 = ioctl::_IOW::<uapi::vexfs_collection_params>(IOC_MAGIC, 1);
const IOC_INSERT: u32 = ioctl::_IOW::<uapi::vexfs_insert>(IOC_MAGIC, 2);
const IOC_DELETE: u32 = ioctl::_IOWR::<uapi::vexfs_delete>(IOC_MAGIC, 3);
const IOC_SEARCH: u32 = ioctl::_IOWR::<uapi::vexfs_search>(IOC_MAGIC, 4);
const IOC_BUILD_INDEX: u32 = ioctl::_IOW::<uapi::vexfs_build_index>(IOC_MAGIC, 5);
const IOC_STATS: u32 = ioctl::_IOWR::<uapi::vexfs_stats>(IOC_MAGIC, 6);
const IOC_SEARCH_BATCH: u32 = ioctl::_IOW::<uapi::vexfs_search_batch>(IOC_MAGIC, 7);
const IOC_GET: u32 = ioctl::_IOW::<uapi::vexfs_get>(IOC_MAGIC, 8);

/// Bytes the vectors of one insert batch may take in memory.
pub(crate) const BATCH_LIMIT: usize = 32 << 20;

const HEADER_SIZE: usize = 4096;
/// Offset of the checksum of the first sector of the collection header, which holds every
/// field: a header write torn at a 512-byte boundary leaves that sector whole, old or new.
const HEADER_SECTOR_CRC: usize = 508;
const MAGIC: &[u8; 8] = b"VEXFSCOL";
const FORMAT_VERSION: u32 = 2;
/// The first version of the collection format: no record checksums, no salt, no durable
/// count.
const FORMAT_V1: u32 = 1;
/// Version [`FORMAT_VERSION`] with the records at the offset in bytes 104..112 instead of
/// right after the header: where compaction copies them before copying them back.
const FORMAT_MOVED: u32 = 3;
/// Magic of a saved index.
const INDEX_MAGIC: &[u8; 8] = b"VEXFSIDX";
const INDEX_VERSION: u32 = 2;
/// Size of the header of a saved index.
const INDEX_HEADER: usize = 64;
/// Alignment of a saved index in the collection file.
const INDEX_ALIGN: u64 = 1 << 20;
/// Magic of the log of a save over the saved index in place ([`SaveLog`]).
const LOG_MAGIC: &[u8; 8] = b"VEXFSLOG";
/// Size of the header of a save log.
const LOG_HEADER: usize = 64;
/// Size of the head of a run of a save log.
const RUN_HEAD: usize = 16;
/// Size of the buffer records are read and written through.
const IO_CHUNK: usize = 64 << 10;

/// Search scratch buffers kept for reuse ([`crate::inode::VexInode::scratch`]).
pub(crate) type ScratchPool = KVec<KBox<Scratch>>;

/// Scratch buffers kept per collection: about one per concurrent searcher.
const SCRATCH_KEEP: usize = 4;

/// The per-inode state of the vector engine, behind the inode's read-write semaphore.
pub(crate) struct State {
    index: Option<KBox<Loaded>>,
}

impl State {
    /// No index loaded.
    pub(crate) const fn new() -> Self {
        Self { index: None }
    }

    /// Kernel memory held by the loaded index, in bytes (0: none).
    fn bytes(&self) -> usize {
        self.index
            .as_deref()
            .map_or(0, |l| size_of::<Loaded>() + l.index.bytes())
    }

    /// Drops the index if it is loaded and equals its saved copy (or is empty), which the
    /// next use then restores; returns whether it dropped it.
    pub(crate) fn evict(&mut self) -> bool {
        if self.index.as_deref().is_some_and(|l| !l.dirty) {
            self.index = None;
            return true;
        }
        false
    }
}

/// A loaded collection: its header and index.
struct Loaded {
    hdr: Header,
    index: Index,
    /// Whether the index changed since it was loaded or saved.
    dirty: bool,
    /// Whether the index was restored from its saved copy (not rebuilt).
    restored: bool,
    /// Offset of the saved copy that the entries of the nodes [`Index::unsaved`] leaves out
    /// hold as they are (0: none): the one this index was restored from or last saved to.
    saved_at: u64,
    /// How long loading the index took, in nanoseconds.
    load_ns: u64,
}

/// The element type of a collection's vectors (`VEXFS_ELEM_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ElemType {
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
    const fn size(self) -> u32 {
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
fn params_ok(dim: u32, m: u32, efc: u32) -> bool {
    (1..=MAX_DIM).contains(&dim) && (2..=64).contains(&m) && (m..=MAX_EF).contains(&efc)
}

/// The collection header.
#[derive(Clone, Copy, Debug)]
struct Header {
    dim: u32,
    elem_type: ElemType,
    metric: Metric,
    m: u32,
    ef_construction: u32,
    record_size: u32,
    records: u64,
    live: u64,
    /// Offset of the saved index (0: none).
    index_off: u64,
    /// Size of the saved index.
    index_len: u64,
    /// Generation of the records: changed (made durable first) before records are changed in
    /// place while the saved index is current ([`begin_overwrite`]). 0 in files of kernels
    /// that do not know it.
    generation: u64,
    /// The generation the saved index was written at (0: unknown).
    index_generation: u64,
    /// Format version, [`FORMAT_VERSION`] or [`FORMAT_V1`].
    version: u32,
    /// Seed of the record checksums, chosen at creation (0 in version 1).
    salt: u64,
    /// Records before this one were durable, with their checksums, when the header was
    /// written: one of them failing its checksum is damage, not a crash (0 in version 1).
    durable: u64,
    /// Offset of record 0: [`HEADER_SIZE`] but while compaction has the records elsewhere
    /// ([`FORMAT_MOVED`] on disk).
    base: u64,
    /// Offset of the log of a save over the saved index in place ([`SaveLog`]; 0: none).
    log_off: u64,
    /// Size of that log.
    log_len: u64,
}

fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn le64(b: &[u8], off: usize) -> u64 {
    u64::from(le32(b, off)) | (u64::from(le32(b, off + 4)) << 32)
}

fn ne32(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn ne64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    put(&mut a, &b[off..off + 8]);
    u64::from_ne_bytes(a)
}

/// Copies `src` to the start of `dst` (as much as fits).
fn put(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
}

fn record_size(dim: u32, elem_type: ElemType, version: u32) -> u32 {
    let esize = elem_type.size();
    let sum = if version == FORMAT_V1 { 0 } else { 4 };
    (8 + dim * esize + sum).next_multiple_of(8)
}

/// What a record holds, as [`record_state`] finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rec {
    /// A vector and its id.
    Live(u64),
    /// A tombstone.
    Deleted,
    /// Not a record: a block the header counts that a crash left unwritten.
    Unwritten,
}

impl Header {
    fn encode(&self, out: &mut [u8]) {
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

    fn decode(b: &[u8]) -> Result<Self> {
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
    fn saved_current(&self) -> bool {
        self.index_off != 0
            && self.index_generation != 0
            && self.index_generation == self.generation
    }

    /// Names no saved index (nor a log of one).
    fn drop_saved(&mut self) {
        self.index_off = 0;
        self.index_len = 0;
        self.log_off = 0;
        self.log_len = 0;
    }

    /// Where the saved index and the log of a save over it end (0: none).
    fn saved_end(&self) -> u64 {
        let copy = self.index_off.saturating_add(self.index_len);
        let log = self.log_off.saturating_add(self.log_len);
        if self.index_off == 0 {
            0
        } else {
            copy.max(log)
        }
    }

    fn params(&self) -> Params {
        Params {
            dim: self.dim as usize,
            metric: self.metric,
            m: self.m as usize,
            ef_construction: self.ef_construction as usize,
        }
    }

    fn elem_size(&self) -> usize {
        self.elem_type.size() as usize
    }

    /// Offset of record `i`.
    fn offset(&self, i: u64) -> Result<i64> {
        i.checked_mul(u64::from(self.record_size))
            .and_then(|o| o.checked_add(self.base))
            .and_then(|o| i64::try_from(o).ok())
            .ok_or(EFBIG)
    }

    /// Converts `dim` elements in their file/user representation (native = little-endian on
    /// the architectures VexFS supports for binary32 patterns) into mantissas; returns the
    /// scale.
    fn convert(&self, raw: &[u8], out: &mut [i32]) -> Result<i32> {
        match self.elem_type {
            ElemType::F32 => {
                Fixed::from_f32_bits((0..raw.len() / 4).map(|i| le32(raw, 4 * i)), out)
            }
            ElemType::I8 => Ok(Fixed::from_i8(raw.iter().map(|&b| b as i8), out)),
        }
    }

    /// Whether records carry checksums (not in version 1).
    fn checksummed(&self) -> bool {
        self.version != FORMAT_V1
    }

    /// Bytes of a record its checksum covers: the id and the elements.
    fn summed_len(&self) -> usize {
        8 + self.dim as usize * self.elem_size()
    }

    /// Sets the checksum of `r`, the bytes of record `slot` (nothing in version 1).
    fn seal(&self, slot: u64, r: &mut [u8]) {
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
fn record_state(hdr: &Header, slot: u64, r: &[u8]) -> Result<Rec> {
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

fn header_buf() -> Result<KVec<u8>> {
    let mut b = KVec::with_capacity(HEADER_SIZE, GFP_KERNEL)?;
    b.resize(HEADER_SIZE, 0, GFP_KERNEL)?;
    Ok(b)
}

/// Reads the header of the collection file.
fn read_header(file: &File) -> Result<Header> {
    let mut b = header_buf()?;
    if kernel_io::read_at(file, 0, &mut b)? != HEADER_SIZE {
        pr_err!("collection header: short file\n");
        return Err(EUCLEAN);
    }
    Header::decode(&b)
}

/// A change of records in place, which [`begin_overwrite`] prepares.
#[derive(Clone, Copy)]
enum Overwrite {
    /// Tombstones of deleted records.
    Delete,
    /// Tombstones of the records an upsert replaced; the new ones end at this file offset.
    Replace(i64),
    /// Compaction moves whole records.
    Move,
}

/// Called before records of the collection are changed in place (`what`), so that a crash
/// in the change is read right. If the saved index is current ([`Header::saved_current`]),
/// moves `hdr` to a new generation: [`restore`] then checks the saved index against every
/// record. If records move, clears the durable count, since a crash can leave any record
/// torn, which must then read as unwritten ([`record_state`]). Writes `hdr` if it changed,
/// and waits until it and, for an upsert, the new records are durable: a crash then leaves
/// the replaced records or their replacements, never neither. Costs one synchronous header
/// write per save of the index, not per change, and one flush per upsert that replaces.
fn begin_overwrite(file: &File, w: &Writer<'_>, hdr: &mut Header, what: Overwrite) -> Result {
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

fn write_header(w: &Writer<'_>, hdr: &Header) -> Result {
    let mut b = header_buf()?;
    hdr.encode(&mut b);
    w.write_all_at(0, &b)
}

/// Whether `inode` is a collection.
pub(crate) fn is_collection(inode: &INode<VexFs>) -> bool {
    inode.data().map.lock().flags & format::INODE_FLAG_COLLECTION != 0
}

/// Calls `f` with the number and the bytes of every record of the collection from record
/// `first` on, in order.
fn for_each_record(
    file: &File,
    hdr: &Header,
    first: u64,
    mut f: impl FnMut(u64, &[u8]) -> Result,
) -> Result {
    let rs = hdr.record_size as usize;
    let per_chunk = (IO_CHUNK / rs).max(1);
    let mut buf: VVec<u8> = VVec::with_capacity(per_chunk * rs, GFP_KERNEL)?;
    buf.resize(per_chunk * rs, 0, GFP_KERNEL)?;
    let mut rec = first;
    while rec < hdr.records {
        let n = (hdr.records - rec).min(per_chunk as u64) as usize;
        let want = n * rs;
        if kernel_io::read_at(file, hdr.offset(rec)?, &mut buf[..want])? != want {
            pr_err!("collection: file shorter than its records\n");
            return Err(EUCLEAN);
        }
        for (i, r) in buf[..want].chunks_exact(rs).enumerate() {
            f(rec + i as u64, r)?;
        }
        rec += n as u64;
    }
    Ok(())
}

/// Converts the vector of record `r` (number `slot`) into `m`; returns its scale.
fn record_vector(hdr: &Header, slot: u64, r: &[u8], m: &mut [i32]) -> Result<i32> {
    let n = hdr.dim as usize * hdr.elem_size();
    hdr.convert(&r[8..8 + n], m).map_err(|_| {
        pr_err!("collection: invalid element in record {}\n", slot);
        EUCLEAN
    })
}

/// Reads record `slot` into `rec` (`record_size` bytes): straight from the page cache when it
/// holds it (records are read back soon after they were written or last read), else through
/// the read path. `EUCLEAN` if the file ends before the record.
fn read_record(file: &File, hdr: &Header, slot: u64, rec: &mut [u8]) -> Result {
    let off = hdr.offset(slot)?;
    if !kernel_io::read_cached(file, off, rec)? && kernel_io::read_at(file, off, rec)? != rec.len()
    {
        return Err(EUCLEAN);
    }
    Ok(())
}

/// The records of a collection, read back through the page cache for the exact distances a
/// cosine index computes (it keeps no exact vectors in memory).
struct FileRecords<'a> {
    file: &'a File,
    hdr: &'a Header,
    rec: KVec<u8>,
}

impl<'a> FileRecords<'a> {
    fn new(file: &'a File, hdr: &'a Header) -> Result<Self> {
        let rs = hdr.record_size as usize;
        let mut rec = KVec::with_capacity(rs, GFP_KERNEL)?;
        rec.resize(rs, 0, GFP_KERNEL)?;
        Ok(Self { file, hdr, rec })
    }
}

impl Records for FileRecords<'_> {
    fn vector(&mut self, slot: u64, id: u64, m: &mut [i32]) -> Result<i32> {
        read_record(self.file, self.hdr, slot, &mut self.rec)?;
        if le64(&self.rec, 0) != id {
            // The record changed behind the index's back.
            return Err(EUCLEAN);
        }
        record_vector(self.hdr, slot, &self.rec, m)
    }
}

/// Adds live record `slot` (vector `id`, bytes `r`) to `index`, growing it within the budget
/// (`charge`); `m` is room for the mantissas. Returns the node, not linked yet.
fn push_record(
    index: &mut Index,
    charge: &mut Charge<'_>,
    hdr: &Header,
    slot: u64,
    id: u64,
    r: &[u8],
    m: &mut [i32],
) -> Result<u32> {
    let scale = record_vector(hdr, slot, r, m)?;
    charge.reserve(size_of::<Loaded>() + index.bytes_after(1))?;
    index.reserve(1)?;
    index.push(id, slot, m, scale)
}

/// Marks deleted the node of `id` if `index` has one: record `slot`, a later record of the same
/// id, supersedes it. An upsert writes its records and the header before it tombstones the
/// records it replaces, so a crash in between leaves both live, the newer winning. Returns
/// whether a node was superseded.
fn supersede(index: &mut Index, id: u64, slot: u64) -> bool {
    let Some(old) = index.find(id) else {
        return false;
    };
    let was = index.delete_node(old);
    if crate::super_block::log_ratelimit() {
        pr_warn!(
            "collection: record {} supersedes record {} of the same id (an interrupted upsert)\n",
            slot,
            was
        );
    }
    true
}

/// Makes room in the budget (`charge`) for `n` more nodes in `index`; logs the first refusal
/// of a collection too large for the budget.
fn reserve_nodes(index: &Index, charge: &mut Charge<'_>, n: usize) -> Result {
    let bytes = size_of::<Loaded>() + index.bytes_after(n);
    charge.reserve(bytes).inspect_err(|_| {
        if bytes > charge.budget() {
            kernel::pr_warn_once!(
                "collection of {} vectors needs {} bytes of index memory: above index_budget\n",
                n,
                bytes
            );
        }
    })
}

/// Builds the index of a collection from its records. Returns it and the live count.
// Not inlined, like restore(): each has its own buffers and scratch, which would otherwise
// all sit in the frame of load() at once (3.9 KiB of a kernel stack).
#[inline(never)]
fn rebuild(file: &File, hdr: &Header, charge: &mut Charge<'_>) -> Result<(Index, u64)> {
    let mut index = Index::new(hdr.params());
    let live = usize::try_from(hdr.live).map_err(|_| ENOMEM)?;
    reserve_nodes(&index, charge, live)?;
    index.reserve(live)?;
    let mut m: KVec<i32> = KVec::with_capacity(hdr.dim as usize, GFP_KERNEL)?;
    m.resize(hdr.dim as usize, 0, GFP_KERNEL)?;
    let mut scratch = new_scratch()?;
    let mut seen_live = 0u64;
    for_each_record(file, hdr, 0, |slot, r| {
        let Rec::Live(id) = record_state(hdr, slot, r)? else {
            return Ok(());
        };
        seen_live += 1;
        if supersede(&mut index, id, slot) {
            seen_live -= 1;
        }
        // More live records than the header says (see `load`) get room as they come.
        let node = push_record(&mut index, charge, hdr, slot, id, r, &mut m)?;
        index.link(node, &mut scratch)
    })?;
    Ok((index, seen_live))
}

/// The header of a saved index ([`INDEX_HEADER`] bytes at the start of it).
#[derive(Clone, Copy, Debug)]
struct SavedHeader {
    /// Nodes saved.
    nodes: u64,
    /// The collection's record count when the index was saved.
    records: u64,
    /// Entry point and its level.
    entry: Option<(u32, u32)>,
    /// Bytes of node entries after the header.
    payload: u64,
    /// CRC32C of the node entries.
    payload_crc: u32,
}

impl SavedHeader {
    fn encode(&self, hdr: &Header, out: &mut [u8; INDEX_HEADER]) {
        out.fill(0);
        put(&mut out[0..8], INDEX_MAGIC);
        put(&mut out[8..12], &INDEX_VERSION.to_le_bytes());
        put(&mut out[12..16], &(INDEX_HEADER as u32).to_le_bytes());
        put(&mut out[16..24], &self.nodes.to_le_bytes());
        put(&mut out[24..32], &self.records.to_le_bytes());
        let (entry, level) = self.entry.unwrap_or((u32::MAX, 0));
        put(&mut out[32..36], &entry.to_le_bytes());
        put(&mut out[36..40], &level.to_le_bytes());
        put(&mut out[40..48], &self.payload.to_le_bytes());
        put(&mut out[48..52], &hdr.m.to_le_bytes());
        put(&mut out[52..56], &hdr.dim.to_le_bytes());
        put(&mut out[56..60], &self.payload_crc.to_le_bytes());
        let crc = format::crc32c(&out[..INDEX_HEADER - 4]);
        put(&mut out[INDEX_HEADER - 4..], &crc.to_le_bytes());
    }

    /// Decodes and checks the header of the index saved for collection header `hdr`, a copy
    /// of `len` bytes.
    fn decode(b: &[u8; INDEX_HEADER], hdr: &Header, len: u64) -> Result<Self> {
        if &b[0..8] != INDEX_MAGIC
            || format::crc32c(&b[..INDEX_HEADER - 4]) != le32(b, INDEX_HEADER - 4)
            // Version 1 copies (no traversal data in their entries) are read too.
            || !(1..=INDEX_VERSION).contains(&le32(b, 8))
            || le32(b, 12) != INDEX_HEADER as u32
            || le32(b, 48) != hdr.m
            || le32(b, 52) != hdr.dim
        {
            return Err(EUCLEAN);
        }
        let h = Self {
            nodes: le64(b, 16),
            records: le64(b, 24),
            entry: match le32(b, 32) {
                u32::MAX => None,
                e => Some((e, le32(b, 36))),
            },
            payload: le64(b, 40),
            payload_crc: le32(b, 56),
        };
        if h.records > hdr.records
            || h.nodes > h.records
            || h.payload.checked_add(INDEX_HEADER as u64) != Some(len)
        {
            return Err(EUCLEAN);
        }
        Ok(h)
    }
}

/// A sequential reader of part of the collection file.
struct Stream<'a> {
    file: &'a File,
    /// The log laid over what is read, if any.
    log: Option<&'a SaveLog>,
    pos: i64,
    left: u64,
    buf: VVec<u8>,
    at: usize,
    len: usize,
}

impl<'a> Stream<'a> {
    /// Reads `len` bytes of `file` from `pos` on, with the runs of `log` laid over them.
    fn new(file: &'a File, pos: i64, len: u64, log: Option<&'a SaveLog>) -> Result<Self> {
        let mut buf = VVec::with_capacity(IO_CHUNK, GFP_KERNEL)?;
        buf.resize(IO_CHUNK, 0, GFP_KERNEL)?;
        Ok(Self {
            file,
            log,
            pos,
            left: len,
            buf,
            at: 0,
            len: 0,
        })
    }

    /// The next `n` bytes, without consuming them; `EUCLEAN` past the end.
    fn peek(&mut self, n: usize) -> Result<&[u8]> {
        if self.len - self.at < n {
            self.buf.copy_within(self.at..self.len, 0);
            self.len -= self.at;
            self.at = 0;
            let room = self.buf.len() - self.len;
            let want = usize::try_from(self.left).map_or(room, |l| l.min(room));
            if self.len + want < n {
                return Err(EUCLEAN);
            }
            let dst = &mut self.buf[self.len..self.len + want];
            if kernel_io::read_at(self.file, self.pos, dst)? != want {
                return Err(EUCLEAN);
            }
            if let Some(log) = self.log {
                log.patch(self.file, self.pos, dst)?;
            }
            self.pos += want as i64;
            self.left -= want as u64;
            self.len += want;
        }
        Ok(&self.buf[self.at..self.at + n])
    }

    /// Consumes `n` bytes (after [`Stream::peek`] of at least `n`).
    fn consume(&mut self, n: usize) {
        self.at = (self.at + n).min(self.len);
    }

    /// Whether everything was read and consumed.
    fn at_end(&self) -> bool {
        self.left == 0 && self.at == self.len
    }
}

/// The CRC32C of the node entries of a saved index, from those of the entries in turn.
struct EntriesCrc {
    crc: u32,
    /// `format::crc32c_shift()` of the entry lengths met so far (one per level).
    shifts: KVec<(usize, u32)>,
}

impl EntriesCrc {
    fn new() -> Self {
        Self {
            crc: 0,
            shifts: KVec::new(),
        }
    }

    /// Appends an entry of `len` bytes whose CRC32C is `entry_crc`.
    fn add(&mut self, len: usize, entry_crc: u32) -> Result {
        let shift = match self.shifts.iter().find(|s| s.0 == len) {
            Some(&(_, shift)) => shift,
            None => {
                let shift = format::crc32c_shift(len as u64);
                self.shifts.push((len, shift), GFP_KERNEL)?;
                shift
            }
        };
        self.crc = format::crc32c_combine(self.crc, entry_crc, shift);
        Ok(())
    }

    /// Appends `entry`, the saved entry of `node` just restored into `index`, noting its
    /// checksum there for the next save.
    fn restored(&mut self, index: &mut Index, node: u32, entry: &[u8]) -> Result {
        let c = format::crc32c(entry);
        index.set_saved_crc(node, c)?;
        self.add(entry.len(), c)
    }
}

/// Adds record `slot` (bytes `r`), written after the saved index, to the restored `index`
/// unless it is a tombstone, superseding an older node of its id, and counts it in `live`;
/// `m` is room for its mantissas. Returns whether it was added.
fn restore_added(
    index: &mut Index,
    charge: &mut Charge<'_>,
    hdr: &Header,
    slot: u64,
    r: &[u8],
    m: &mut [i32],
    live: &mut u64,
) -> Result<bool> {
    let Rec::Live(id) = record_state(hdr, slot, r)? else {
        return Ok(false);
    };
    *live += u64::from(!supersede(index, id, slot));
    push_record(index, charge, hdr, slot, id, r, m)?;
    Ok(true)
}

/// Loads the index saved in the collection file. Unless the saved index is current
/// ([`Header::saved_current`]: no record before its saved record count changed since, and
/// every node entry carries its traversal data), every node is checked against its record
/// (same id, or deleted since), so that ids and vectors always come from the records; a
/// current one is taken as saved, without reading those records. Records added since the
/// save are linked in. A copy the header names with a [`SaveLog`] is read with the log laid
/// over it if the log is whole. Fails (`EUCLEAN`) if the saved index cannot be used.
#[inline(never)]
fn restore(
    file: &File,
    hdr: &Header,
    charge: &mut Charge<'_>,
    why: &mut &'static str,
) -> Result<Restored> {
    *why = "bad header";
    let end = u64::try_from(hdr.offset(hdr.records)?).map_err(|_| EUCLEAN)?;
    if hdr.index_off % 4096 != 0 || hdr.index_off < end {
        return Err(EUCLEAN);
    }
    let off = i64::try_from(hdr.index_off).map_err(|_| EUCLEAN)?;
    // A save over the copy in place that a crash interrupted: the copy holds with its log.
    let log = SaveLog::read(file, hdr)?;
    let mut hb = [0u8; INDEX_HEADER];
    if kernel_io::read_at(file, off, &mut hb)? != INDEX_HEADER {
        return Err(EUCLEAN);
    }
    if let Some(log) = &log {
        log.patch(file, off, &mut hb)?;
    }
    let len = log.as_ref().map_or(hdr.index_len, |l| l.copy_len);
    let sh = SavedHeader::decode(&hb, hdr, len)?;
    let mut index = Index::new(hdr.params());
    let total =
        usize::try_from(sh.nodes.saturating_add(hdr.records - sh.records)).map_err(|_| ENOMEM)?;
    reserve_nodes(&index, charge, total)?;
    index.reserve(usize::try_from(sh.nodes).map_err(|_| ENOMEM)?)?;
    let mut saved = Stream::new(file, off + INDEX_HEADER as i64, sh.payload, log.as_ref())?;
    let mut m: KVec<i32> = KVec::with_capacity(hdr.dim as usize, GFP_KERNEL)?;
    m.resize(hdr.dim as usize, 0, GFP_KERNEL)?;
    let (mut restored, mut live, mut changed) = (0u64, 0u64, false);
    let mut crc = EntriesCrc::new();
    // Only a cosine index saves what it is traversed on; the others need their vectors.
    let current = hdr.saved_current() && index.saves_traversal_data();
    if current {
        *why = "bad node entry";
        let mut next = 0u64;
        while restored < sh.nodes {
            let len = index.saved_len_of(saved.peek(SAVED_HEAD)?)?;
            let e = saved.peek(len)?;
            let slot = Index::saved_slot(e);
            if slot < next || slot >= sh.records || !Index::saved_coded(e) {
                return Err(EUCLEAN);
            }
            let deleted = Index::saved_deleted(e);
            let node = index.restore_node(e, None, deleted)?;
            crc.restored(&mut index, node, e)?;
            live += u64::from(!deleted);
            saved.consume(len);
            restored += 1;
            next = slot + 1;
        }
        *why = "linking the records added since";
        for_each_record(file, hdr, sh.records, |slot, r| {
            changed |= restore_added(&mut index, charge, hdr, slot, r, &mut m, &mut live)?;
            Ok(())
        })?;
    } else {
        *why = "does not match the records";
        for_each_record(file, hdr, 0, |slot, r| {
            if slot >= sh.records {
                changed |= restore_added(&mut index, charge, hdr, slot, r, &mut m, &mut live)?;
                return Ok(());
            }
            // Records before the saved record count were durable when the index was saved.
            let (id, tomb) = match record_state(hdr, slot, r)? {
                Rec::Live(id) => (id, false),
                Rec::Deleted => (TOMBSTONE, true),
                Rec::Unwritten => return Err(EUCLEAN),
            };
            live += u64::from(!tomb);
            let next = if restored < sh.nodes {
                let len = index.saved_len_of(saved.peek(SAVED_HEAD)?)?;
                Some((Index::saved_slot(saved.peek(len)?), len))
            } else {
                None
            };
            match next {
                Some((s, len)) if s == slot => {
                    // Converted again only if the entry does not carry its traversal data.
                    let scale = match Index::saved_coded(saved.peek(len)?) {
                        true => None,
                        false => Some(record_vector(hdr, slot, r, &mut m)?),
                    };
                    let vector = scale.map(|scale| (&m[..], scale));
                    let e = saved.peek(len)?;
                    let was_deleted = Index::saved_deleted(e);
                    let node = index.restore_node(e, vector, tomb)?;
                    if !tomb && index.id(node) != id {
                        return Err(EUCLEAN);
                    }
                    crc.restored(&mut index, node, e)?;
                    changed |= tomb && !was_deleted;
                    saved.consume(len);
                    restored += 1;
                    Ok(())
                }
                Some((s, _)) if s < slot => Err(EUCLEAN),
                // A live record the saved index does not know.
                _ if !tomb => Err(EUCLEAN),
                _ => Ok(()),
            }
        })?;
    }
    if restored != sh.nodes || !saved.at_end() {
        return Err(EUCLEAN);
    }
    if crc.crc != sh.payload_crc {
        *why = "bad checksum";
        return Err(EUCLEAN);
    }
    *why = "bad links";
    index.restore_finish(restored as usize, sh.entry)?;
    *why = "linking the records added since";
    let mut scratch = new_scratch()?;
    for node in restored as usize..index.len() {
        index.link(node as u32, &mut scratch)?;
    }
    if log.is_some() {
        pr_info!("collection: saved index restored with the log of an interrupted save\n");
    }
    Ok(Restored {
        index,
        live,
        changed,
        logged: log.is_some(),
    })
}

/// An index [`restore`] read from its saved copy.
struct Restored {
    index: Index,
    /// Live records.
    live: u64,
    /// Whether the index differs from the copy.
    changed: bool,
    /// Whether the copy held only with the log of an interrupted save laid over it.
    logged: bool,
}

/// Loads the index of a collection: restores its saved copy if there is a usable one (unless
/// `rebuild`), or builds it from the records.
fn load(file: &File, rebuild_it: bool, charge: &mut Charge<'_>) -> Result<KBox<Loaded>> {
    let mut hdr = read_header(file)?;
    let start = Instant::<Monotonic>::now();
    let mut got = None;
    if hdr.index_off != 0 && !rebuild_it {
        let mut why = "";
        match restore(file, &hdr, charge, &mut why) {
            Ok(r) => got = Some(r),
            Err(e) if e == ENOMEM => return Err(e),
            Err(e) => pr_warn!(
                "collection: saved index unusable ({}, error {}), rebuilding it\n",
                why,
                e.to_errno()
            ),
        }
    }
    let restored = got.is_some();
    // The copy on disk holds only with a log: the next save writes a whole new one.
    let saved_at = match &got {
        Some(r) if !r.logged => hdr.index_off,
        _ => 0,
    };
    let (index, seen_live, changed) = match got {
        Some(r) => (r.index, r.live, r.changed),
        None => {
            let (index, live) = rebuild(file, &hdr, charge)?;
            let changed = index.len() > 0;
            (index, live, changed)
        }
    };
    if seen_live != hdr.live {
        // A delete writes its tombstones before the header: a crash in between leaves the
        // header's count behind. The records are right; the next change rewrites the header.
        pr_warn!(
            "collection: {} live records, header says {}\n",
            seen_live,
            hdr.live
        );
        hdr.live = seen_live;
    }
    let load_ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    Ok(KBox::new(
        Loaded {
            hdr,
            index,
            dirty: changed,
            restored,
            saved_at,
            load_ns,
        },
        GFP_KERNEL,
    )?)
}

/// Saves the index of `l` (collection `inode`, written through `w` of `file`) if it changed:
/// the node entries after the records of the collection (leaving room for a quarter more
/// records, which do not overwrite it), then their header; waits until the records and the
/// copy are durable, then writes the collection header naming it. So a header that names a
/// copy as current ([`Header::saved_current`]) never reaches the disk before the records the
/// copy describes. Over the copy the index was restored from or last saved to, while the
/// header still names it, only the entries that changed are written ([`Index::unsaved`]),
/// after a [`SaveLog`] of them, so that a crash in the middle does not cost the copy; when
/// the blocks they lie in and the log would take more than half the size of the copy, a new
/// copy is written instead.
fn save_loaded(file: &File, inode: &INode<VexFs>, w: &Writer<'_>, l: &mut Loaded) -> Result {
    if !l.dirty {
        return Ok(());
    }
    let hdr = l.hdr;
    // Bytes of the copy, of the entries that changed, and of the blocks of the copy those are
    // in (the header's, block 0, among them; `next` is the first block not counted).
    let (mut copy_len, mut changed) = (INDEX_HEADER as u64, 0u64);
    let (mut blocks, mut next) = (1u64, 1u64);
    for node in 0..l.index.len() as u32 {
        let len = l.index.saved_entry_len(node) as u64;
        if l.index.unsaved(node) && len > 0 {
            let (first, end) = (copy_len / 4096, (copy_len + len - 1) / 4096 + 1);
            blocks += end.saturating_sub(first.max(next));
            next = next.max(end);
            changed += len;
        }
        copy_len = copy_len.checked_add(len).ok_or(EFBIG)?;
    }
    // In place while the header names the copy (inserts drop it once their records reach it)
    // and while the blocks written there and the log take at most half of a new copy.
    let in_place = hdr.index_off != 0
        && hdr.index_off == l.saved_at
        && blocks * 4096 + changed <= copy_len / 2;
    let off = if in_place {
        hdr.index_off
    } else {
        new_copy_offset(&hdr, copy_len)?
    };
    let end = off.checked_add(copy_len).ok_or(EFBIG)?;
    let off = i64::try_from(off).map_err(|_| EFBIG)?;
    let base = off.checked_add(INDEX_HEADER as i64).ok_or(EFBIG)?;
    if in_place {
        if hdr.durable < hdr.records {
            // A header naming a log must count only durable records.
            crate::file::fsync(file, inode, 0, i64::MAX, true)?;
        }
        let log_off = end.checked_next_multiple_of(4096).ok_or(EFBIG)?;
        let mut log = LogWriter::new(w, off, log_off)?;
        let (payload, crc) = save_entries(l, base, true, |at, b| log.run(at, b))?;
        log.run(off, &saved_header(l, &hdr, payload, crc))?;
        let mut logged = hdr;
        logged.log_off = log_off;
        logged.log_len = log.finish(copy_len)?;
        write_header(w, &logged)?;
        crate::file::fsync(file, inode, 0, i64::MAX, true)?;
        // From here until the save completes, the copy holds only with the log.
        l.hdr = logged;
        l.saved_at = 0;
    }
    let (payload, crc) = save_entries(l, base, in_place, |at, b| w.write_all_at(at, b))?;
    w.write_all_at(off, &saved_header(l, &hdr, payload, crc))?;
    crate::file::fsync(file, inode, 0, i64::MAX, true)?;
    let mut new_hdr = hdr;
    new_hdr.index_off = off as u64;
    new_hdr.index_len = copy_len;
    new_hdr.log_off = 0;
    new_hdr.log_len = 0;
    // The copy reflects the records as they are (the caller holds the collection's
    // semaphore exclusively).
    new_hdr.generation = hdr.generation.max(1);
    new_hdr.index_generation = new_hdr.generation;
    if hdr.checksummed() {
        new_hdr.durable = hdr.records;
    }
    write_header(w, &new_hdr)?;
    l.hdr = new_hdr;
    l.dirty = false;
    l.saved_at = new_hdr.index_off;
    l.index.mark_saved();
    Ok(())
}

/// Where a new saved copy of `len` bytes goes: at a multiple of [`INDEX_ALIGN`] at least a
/// quarter of the records' size past the last record (so that inserts do not reach it soon),
/// but never over the copy the header names or its log: a crash while the new copy is
/// written leaves that one whole.
fn new_copy_offset(hdr: &Header, len: u64) -> Result<u64> {
    let end = u64::try_from(hdr.offset(hdr.records)?).map_err(|_| EFBIG)?;
    let off = end
        .checked_add(end / 4)
        .and_then(|o| o.checked_next_multiple_of(INDEX_ALIGN))
        .ok_or(EFBIG)?;
    let named = hdr.saved_end();
    if hdr.index_off != 0 && off < named && off.checked_add(len).ok_or(EFBIG)? > hdr.index_off {
        return named.checked_next_multiple_of(INDEX_ALIGN).ok_or(EFBIG);
    }
    Ok(off)
}

/// The header of a saved copy of `l`'s index in collection `hdr`, whose node entries take
/// `payload` bytes with CRC32C `crc`.
fn saved_header(l: &Loaded, hdr: &Header, payload: u64, crc: u32) -> [u8; INDEX_HEADER] {
    let sh = SavedHeader {
        nodes: l.index.len() as u64,
        records: hdr.records,
        entry: l.index.entry(),
        payload,
        payload_crc: crc,
    };
    let mut hb = [0u8; INDEX_HEADER];
    sh.encode(hdr, &mut hb);
    hb
}

/// Encodes the node entries of `l`'s index for a copy whose first entry is at `base`, and
/// passes `out` the runs to write (their offset in the file and bytes): every entry, or with
/// `changed` those of the nodes [`Index::unsaved`] flags. Returns the bytes of all entries and
/// their CRC32C, which comes from the entries' own, known for those that did not change.
fn save_entries(
    l: &mut Loaded,
    base: i64,
    changed: bool,
    mut out: impl FnMut(i64, &[u8]) -> Result,
) -> Result<(u64, u32)> {
    let mut buf: VVec<u8> = VVec::with_capacity(IO_CHUNK, GFP_KERNEL)?;
    let mut e: KVec<u8> = KVec::new();
    // `buf` holds the entries to write from `at` on; `pos` is where the next entry goes.
    let (mut pos, mut at, mut crc) = (base, base, EntriesCrc::new());
    for node in 0..l.index.len() as u32 {
        let len = l.index.saved_entry_len(node);
        let write = !changed || l.index.unsaved(node);
        let entry_crc = match l.index.saved_crc(node) {
            Some(c) if !write => c,
            _ => {
                l.index.save_node(node, &mut e)?;
                if e.len() != len {
                    return Err(EINVAL);
                }
                let c = format::crc32c(&e);
                l.index.set_saved_crc(node, c)?;
                c
            }
        };
        if !buf.is_empty() && (!write || buf.len() + len > IO_CHUNK) {
            out(at, &buf)?;
            buf.clear();
        }
        if write {
            if buf.is_empty() {
                at = pos;
            }
            buf.extend_from_slice(&e, GFP_KERNEL)?;
        }
        crc.add(len, entry_crc)?;
        pos = pos.checked_add(len as i64).ok_or(EFBIG)?;
    }
    if !buf.is_empty() {
        out(at, &buf)?;
    }
    Ok(((pos - base) as u64, crc.crc))
}

/// The log of a save over the saved index in place, as [`restore`] reads it back.
///
/// Before [`save_loaded`] overwrites entries of the copy the header names, it writes them
/// and the copy's new header to a log after the copy's new end, then a collection header
/// naming the log, and waits until all of it (and every record the copy names) is durable.
/// A crash while the copy is overwritten leaves a copy that holds only with the runs of the
/// log laid over it; the header that completes the save names no log.
///
/// On disk, at a multiple of 4096: a header of [`LOG_HEADER`] bytes (the magic
/// [`LOG_MAGIC`], the offset of the copy, its size after the save, the bytes of runs that
/// follow, their number and CRC32C, each `__le64` but the CRC32C, then zeros and at byte 60 the
/// CRC32C of the bytes before it), then the runs, which do not overlap: each its offset in
/// the copy and its size (`__le64`), then its bytes, padded with zeros to a multiple of 8.
/// Those of the entries come in ascending order, the copy's header last.
struct SaveLog {
    /// Size of the copy after the save.
    copy_len: u64,
    runs: KVVec<LogRun>,
}

/// A run of a [`SaveLog`].
#[derive(Clone, Copy)]
struct LogRun {
    /// Offset in the file of the bytes of the copy it replaces.
    target: i64,
    /// Their number.
    len: usize,
    /// Offset in the file of the bytes that replace them.
    at: i64,
}

impl SaveLog {
    /// The log collection header `hdr` names, if it is whole: a crash before it was durable
    /// leaves one that is not, and the copy as it was.
    fn read(file: &File, hdr: &Header) -> Result<Option<Self>> {
        if hdr.log_off == 0 {
            return Ok(None);
        }
        let start = i64::try_from(hdr.log_off).map_err(|_| EUCLEAN)?;
        let mut h = [0u8; LOG_HEADER];
        if kernel_io::read_at(file, start, &mut h)? != LOG_HEADER
            || &h[0..8] != LOG_MAGIC
            || format::crc32c(&h[..LOG_HEADER - 4]) != le32(&h, LOG_HEADER - 4)
            || le64(&h, 8) != hdr.index_off
            || le64(&h, 24).checked_add(LOG_HEADER as u64) != Some(hdr.log_len)
            || le64(&h, 16) < INDEX_HEADER as u64
        {
            return Ok(None);
        }
        let (copy_len, body) = (le64(&h, 16), le64(&h, 24));
        let mut log = Self {
            copy_len,
            runs: KVVec::new(),
        };
        let mut at = start + LOG_HEADER as i64;
        let mut s = Stream::new(file, at, body, None)?;
        let mut crc = 0u32;
        let torn = |e: Error| if e == EUCLEAN { Ok(None) } else { Err(e) };
        while !s.at_end() {
            let head = match s.peek(RUN_HEAD) {
                Ok(head) => head,
                Err(e) => return torn(e),
            };
            let (rel, len) = (le64(head, 0), le64(head, 8));
            crc = format::crc32c_append(crc, head);
            s.consume(RUN_HEAD);
            if len == 0 || rel.checked_add(len).is_none_or(|e| e > copy_len) {
                return Ok(None);
            }
            let padded = len.next_multiple_of(8);
            let mut left = padded;
            while left > 0 {
                let n = left.min(IO_CHUNK as u64) as usize;
                match s.peek(n) {
                    Ok(b) => crc = format::crc32c_append(crc, b),
                    Err(e) => return torn(e),
                }
                s.consume(n);
                left -= n as u64;
            }
            log.runs.push(
                LogRun {
                    target: i64::try_from(hdr.index_off + rel).map_err(|_| EUCLEAN)?,
                    len: usize::try_from(len).map_err(|_| EUCLEAN)?,
                    at: at + RUN_HEAD as i64,
                },
                GFP_KERNEL,
            )?;
            at += (RUN_HEAD as u64 + padded) as i64;
        }
        if crc != le32(&h, 40) || log.runs.len() as u64 != le64(&h, 32) {
            return Ok(None);
        }
        log.runs.sort_unstable_by_key(|r| r.target);
        let overlap = log
            .runs
            .windows(2)
            .any(|p| p[0].target + p[0].len as i64 > p[1].target);
        Ok((!overlap).then_some(log))
    }

    /// Lays the runs over `buf`, which holds the bytes of `file` from `pos` on.
    fn patch(&self, file: &File, pos: i64, buf: &mut [u8]) -> Result {
        let end = pos + buf.len() as i64;
        let first = self
            .runs
            .partition_point(|r| r.target + r.len as i64 <= pos);
        for r in self.runs[first..].iter().take_while(|r| r.target < end) {
            let (from, to) = (r.target.max(pos), (r.target + r.len as i64).min(end));
            let dst = &mut buf[(from - pos) as usize..(to - pos) as usize];
            if kernel_io::read_at(file, r.at + (from - r.target), dst)? != dst.len() {
                return Err(EUCLEAN);
            }
        }
        Ok(())
    }
}

/// Writes a [`SaveLog`].
struct LogWriter<'a, 'b> {
    w: &'a Writer<'b>,
    /// Offset of the copy the log applies to.
    copy: i64,
    /// Offset of the log.
    start: u64,
    /// Offset in the file of the bytes buffered in `buf`.
    pos: i64,
    buf: VVec<u8>,
    crc: u32,
    runs: u64,
}

impl<'a, 'b> LogWriter<'a, 'b> {
    /// A log at `start` of a save over the copy at `copy`.
    fn new(w: &'a Writer<'b>, copy: i64, start: u64) -> Result<Self> {
        let pos = start
            .checked_add(LOG_HEADER as u64)
            .and_then(|p| i64::try_from(p).ok())
            .ok_or(EFBIG)?;
        Ok(Self {
            w,
            copy,
            start,
            pos,
            buf: VVec::with_capacity(IO_CHUNK, GFP_KERNEL)?,
            crc: 0,
            runs: 0,
        })
    }

    fn bytes(&mut self, b: &[u8]) -> Result {
        self.crc = format::crc32c_append(self.crc, b);
        if self.buf.len() + b.len() > IO_CHUNK {
            self.flush()?;
        }
        if b.len() >= IO_CHUNK {
            self.w.write_all_at(self.pos, b)?;
            self.pos = self.pos.checked_add(b.len() as i64).ok_or(EFBIG)?;
            return Ok(());
        }
        self.buf.extend_from_slice(b, GFP_KERNEL)?;
        Ok(())
    }

    fn flush(&mut self) -> Result {
        if !self.buf.is_empty() {
            self.w.write_all_at(self.pos, &self.buf)?;
            self.pos = self.pos.checked_add(self.buf.len() as i64).ok_or(EFBIG)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Adds a run: `b`, to be written at offset `at` of the file.
    fn run(&mut self, at: i64, b: &[u8]) -> Result {
        let mut head = [0u8; RUN_HEAD];
        put(&mut head[0..8], &((at - self.copy) as u64).to_le_bytes());
        put(&mut head[8..16], &(b.len() as u64).to_le_bytes());
        self.bytes(&head)?;
        self.bytes(b)?;
        self.bytes(&[0u8; 8][..b.len().next_multiple_of(8) - b.len()])?;
        self.runs += 1;
        Ok(())
    }

    /// Writes what is buffered and the log's header, for a copy of `copy_len` bytes after
    /// the save; returns the size of the log.
    fn finish(mut self, copy_len: u64) -> Result<u64> {
        self.flush()?;
        let body = self.pos as u64 - self.start - LOG_HEADER as u64;
        let mut h = [0u8; LOG_HEADER];
        put(&mut h[0..8], LOG_MAGIC);
        put(&mut h[8..16], &(self.copy as u64).to_le_bytes());
        put(&mut h[16..24], &copy_len.to_le_bytes());
        put(&mut h[24..32], &body.to_le_bytes());
        put(&mut h[32..40], &self.runs.to_le_bytes());
        put(&mut h[40..44], &self.crc.to_le_bytes());
        let crc = format::crc32c(&h[..LOG_HEADER - 4]);
        put(&mut h[LOG_HEADER - 4..], &crc.to_le_bytes());
        self.w.write_all_at(self.start as i64, &h)?;
        Ok(LOG_HEADER as u64 + body)
    }
}

/// Saves the index of collection `inode` if it changed since it was loaded or saved, through
/// `file` if it is open for writing (`fsync(2)`, `close(2)`).
pub(crate) fn save(file: &File, inode: &INode<VexFs>) -> Result {
    if !is_collection(inode) {
        return Ok(());
    }
    inode.super_block().data().check_live()?;
    {
        // Without a change there is nothing to write (nor to wait for on a frozen file system).
        let state = inode.data().vec.state.read();
        if !state.index.as_deref().is_some_and(|l| l.dirty) {
            return Ok(());
        }
    }
    let w = match Writer::new(file) {
        Ok(w) => w,
        Err(e) if e == EBADF => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut state = inode.data().vec.state.write();
    match state.index.as_deref_mut() {
        Some(l) => save_loaded(file, inode, &w, l),
        None => Ok(()),
    }
}

/// Saves the index of collection `inode` when `file` is closed; on failure the index stays in
/// memory and the next load after an unmount rebuilds it.
pub(crate) fn release(file: &File, inode: &INode<VexFs>) {
    if inode.super_block().data().is_shut_down() {
        return;
    }
    if let Err(e) = save(file, inode) {
        pr_warn!(
            "collection: index not saved (error {}); it will be rebuilt\n",
            e.to_errno()
        );
    }
}

/// Reads the argument structure at user address `arg`.
fn read_arg<T: FromBytes>(arg: usize) -> Result<T> {
    UserSlice::new(UserPtr::from_addr(arg), size_of::<T>())
        .reader()
        .read::<T>()
}

/// Writes `v` back to user address `addr` (`arg` plus the offset of an output field).
fn write_field<T: AsBytes>(addr: usize, v: &T) -> Result {
    UserSlice::new(UserPtr::from_addr(addr), size_of::<T>())
        .writer()
        .write(v)
}

/// Writes `data` at user address `addr`.
fn write_user(addr: u64, data: &[u8]) -> Result {
    let addr = usize::try_from(addr).map_err(|_| EFAULT)?;
    UserSlice::new(UserPtr::from_addr(addr), data.len())
        .writer()
        .write_slice(data)
}

fn all_zero<T: Copy + Default + PartialEq>(b: &[T]) -> bool {
    b.iter().all(|&x| x == T::default())
}

/// Handles an ioctl on a regular file of VexFS.
/// Once the file system is shut down, every one fails with `EIO`.
pub(crate) fn ioctl(file: &File, inode: &INode<VexFs>, cmd: u32, arg: usize) -> Result<isize> {
    let op: fn(&File, &INode<VexFs>, usize) -> Result = match cmd {
        IOC_CREATE => create,
        IOC_INSERT => insert,
        IOC_DELETE => delete,
        IOC_SEARCH => search,
        IOC_BUILD_INDEX => build,
        IOC_STATS => stats,
        IOC_SEARCH_BATCH => search_batch,
        IOC_GET => get,
        _ => return Err(ENOTTY),
    };
    inode.super_block().data().check_live()?;
    match cmd {
        IOC_CREATE | IOC_INSERT => check_chattr(inode, true)?,
        IOC_DELETE => check_chattr(inode, false)?,
        _ => {}
    }
    op(file, inode, arg)?;
    Ok(0)
}

/// The `chattr` flags of a collection (checked by the ioctls, which the VFS does not check):
/// an immutable one only answers, an append-only one only grows. Fails with `EPERM` for a
/// change that `appends` (or not) when the flags forbid it.
fn check_chattr(inode: &INode<VexFs>, appends: bool) -> Result {
    crate::file::check_mutable(inode)?;
    if !appends && inode.flags() & S_APPEND != 0 {
        return Err(EPERM);
    }
    Ok(())
}

fn create(file: &File, inode: &INode<VexFs>, arg: usize) -> Result {
    let a: uapi::vexfs_collection_params = read_arg(arg)?;
    let (version, dim, elem_type, metric) = (a.version, a.dim, a.elem_type, a.metric);
    let (mut m, mut efc, flags) = (a.hnsw_m, a.hnsw_ef_construction, a.flags);
    if m == 0 {
        m = 16;
    }
    if efc == 0 {
        efc = 200.max(m);
    }
    let (elem_type, metric) = (ElemType::try_from(elem_type)?, Metric::try_from(metric)?);
    if version != UAPI_VERSION || !params_ok(dim, m, efc) || flags != 0 || !all_zero(&a.reserved) {
        return Err(EINVAL);
    }
    let hdr = Header {
        dim,
        elem_type,
        metric,
        m,
        ef_construction: efc,
        record_size: record_size(dim, elem_type, FORMAT_VERSION),
        records: 0,
        live: 0,
        index_off: 0,
        index_len: 0,
        generation: 1,
        index_generation: 0,
        version: FORMAT_VERSION,
        // Unique to the file: another file, or this inode number reused, gets another.
        salt: (u64::from(inode.generation()) << 32) ^ inode.ino(),
        durable: 0,
        base: HEADER_SIZE as u64,
        log_off: 0,
        log_len: 0,
    };
    let w = Writer::new(file)?;
    with_state(inode, |state, charge| {
        {
            let mut map = inode.data().map.lock();
            if map.flags & format::INODE_FLAG_COLLECTION != 0 {
                return Err(EEXIST);
            }
            if inode.size() != 0 {
                return Err(ENOTEMPTY);
            }
            // From now on write(2) is refused.
            map.flags |= format::INODE_FLAG_COLLECTION;
        }
        inode.mark_dirty();
        let res = (|| -> Result<KBox<Loaded>> {
            let index = Index::new(hdr.params());
            reserve_nodes(&index, charge, 0)?;
            let l = KBox::new(
                Loaded {
                    hdr,
                    index,
                    dirty: false,
                    restored: false,
                    saved_at: 0,
                    load_ns: 0,
                },
                GFP_KERNEL,
            )?;
            write_header(&w, &hdr)?;
            Ok(l)
        })();
        match res {
            Ok(l) => {
                state.index = Some(l);
                Ok(())
            }
            Err(e) => {
                inode.data().map.lock().flags &= !format::INODE_FLAG_COLLECTION;
                inode.mark_dirty();
                Err(e)
            }
        }
    })
}

/// Makes sure the index is loaded, with the semaphore held for writing.
fn loaded<'a>(
    file: &File,
    state: &'a mut State,
    charge: &mut Charge<'_>,
) -> Result<&'a mut Loaded> {
    if state.index.is_none() {
        state.index = Some(load(file, false, charge)?);
    }
    state.index.as_deref_mut().ok_or(EINVAL)
}

/// Runs `f` on the state of collection `inode` with its semaphore held for writing, then
/// charges what its index uses against the budget of the mount, whatever `f` did.
fn with_state<R>(
    inode: &INode<VexFs>,
    f: impl FnOnce(&mut State, &mut Charge<'_>) -> Result<R>,
) -> Result<R> {
    let slot = &inode.data().vec;
    let sbi = inode.super_block().data();
    let mut state = slot.state.write();
    let mut charge = Charge::new(&sbi.indexes, slot);
    let res = f(&mut state, &mut charge);
    charge.settle(state.bytes());
    res
}

/// Drops the index of `inode`, which is being evicted.
pub(crate) fn evict(inode: &INode<VexFs>) {
    if !is_collection(inode) {
        return;
    }
    let _ = with_state(inode, |state, _| {
        state.index = None;
        Ok(())
    });
    inode.data().vec.scratch.lock().clear();
}

fn insert(file: &File, inode: &INode<VexFs>, arg: usize) -> Result {
    let a: uapi::vexfs_insert = read_arg(arg)?;
    let (count, flags, ids_addr, vecs_addr) = (a.count, a.flags, a.ids, a.vectors);
    if a.version != UAPI_VERSION
        || count == 0
        || count > MAX_BATCH
        || flags & !INSERT_UPSERT != 0
        || a.__pad != 0
        || !all_zero(&a.reserved)
    {
        return Err(EINVAL);
    }
    if !is_collection(inode) {
        return Err(ENOTTY);
    }
    let count = count as usize;
    let upsert = flags & INSERT_UPSERT != 0;
    if upsert {
        // Replaces records.
        check_chattr(inode, false)?;
    }
    let w = Writer::new(file)?;
    with_state(inode, |state, charge| {
        let l = loaded(file, state, charge)?;
        let hdr = l.hdr;
        let dim = hdr.dim as usize;
        let esize = hdr.elem_size();
        if count.saturating_mul(dim).saturating_mul(4) > BATCH_LIMIT {
            return Err(E2BIG);
        }

        // The ids: valid, unique in the batch and new, or with an upsert the nodes they
        // replace.
        let mut ids: KVVec<u8> = KVVec::new();
        UserSlice::new(
            UserPtr::from_addr(usize::try_from(ids_addr).map_err(|_| EFAULT)?),
            count * 8,
        )
        .read_all(&mut ids, GFP_KERNEL)?;
        let mut sorted: KVVec<u64> = KVVec::with_capacity(count, GFP_KERNEL)?;
        let mut replaced: KVVec<u32> = KVVec::new();
        for c in ids.chunks_exact(8) {
            let id = ne64(c, 0);
            if id > ID_MAX {
                return Err(EINVAL);
            }
            if let Some(node) = l.index.find(id) {
                if !upsert {
                    return Err(EEXIST);
                }
                replaced.push(node, GFP_KERNEL)?;
            }
            sorted.push(id, GFP_KERNEL)?;
        }
        sorted.sort_unstable();
        if sorted.windows(2).any(|p| p[0] == p[1]) {
            return Err(EEXIST);
        }
        drop(sorted);

        // Memory: room in the budget for the index after the batch.
        reserve_nodes(&l.index, charge, count)?;
        l.index.reserve(count)?;

        // Convert and check every vector, building the records, before changing anything.
        let first = l.index.len();
        let rs = hdr.record_size as usize;
        let mut recs: VVec<u8> = VVec::with_capacity(count * rs, GFP_KERNEL)?;
        recs.resize(count * rs, 0, GFP_KERNEL)?;
        let mut m: KVec<i32> = KVec::with_capacity(dim, GFP_KERNEL)?;
        m.resize(dim, 0, GFP_KERNEL)?;
        let mut reader = UserSlice::new(
            UserPtr::from_addr(usize::try_from(vecs_addr).map_err(|_| EFAULT)?),
            count * dim * esize,
        )
        .reader();
        let res = (|| -> Result {
            for (i, r) in recs.chunks_exact_mut(rs).enumerate() {
                let id = ne64(&ids, i * 8);
                put(&mut r[0..8], &id.to_le_bytes());
                let raw = &mut r[8..8 + dim * esize];
                reader.read_slice(raw)?;
                if esize == 4 {
                    // User space passes native-endian patterns; the file holds little-endian.
                    for c in raw.chunks_exact_mut(4) {
                        let v = ne32(c, 0);
                        put(c, &v.to_le_bytes());
                    }
                }
                let scale = hdr.convert(raw, &mut m)?;
                let slot = hdr.records + i as u64;
                hdr.seal(slot, r);
                l.index.push(id, slot, &m, scale)?;
            }
            Ok(())
        })();
        if let Err(e) = res {
            l.index.truncate(first);
            return Err(e);
        }

        // Write the records, then the header.
        let mut new_hdr = hdr;
        new_hdr.records += count as u64;
        new_hdr.live += (count - replaced.len()) as u64;
        if u64::try_from(new_hdr.offset(new_hdr.records)?).map_err(|_| EFBIG)? > hdr.index_off {
            // The records overwrite the saved index (or there is none).
            new_hdr.drop_saved();
        }
        let res = (|| -> Result {
            let start = hdr.offset(hdr.records)?;
            let mut done = 0;
            while done < recs.len() {
                let n = (recs.len() - done).min(IO_CHUNK);
                w.write_all_at(start + done as i64, &recs[done..done + n])?;
                done += n;
            }
            write_header(&w, &new_hdr)
        })();
        if let Err(e) = res {
            l.index.truncate(first);
            return Err(e);
        }
        l.hdr = new_hdr;
        l.dirty = true;

        // The batch is in: an upsert's new records supersede the old ones (a later live
        // record of an id wins, see `supersede`), which are tombstoned once the new ones are
        // durable, unless that or marking the saved index stale fails (they are superseded
        // all the same).
        let tomb = TOMBSTONE.to_le_bytes();
        let stale = match replaced.is_empty() {
            true => Ok(()),
            false => l
                .hdr
                .offset(l.hdr.records)
                .and_then(|end| begin_overwrite(file, &w, &mut l.hdr, Overwrite::Replace(end))),
        };
        for &node in replaced.iter() {
            let slot = l.index.delete_node(node);
            let res = stale
                .and_then(|()| l.hdr.offset(slot))
                .and_then(|o| w.write_all_at(o, &tomb));
            if let Err(e) = res {
                if crate::super_block::log_ratelimit() {
                    pr_warn!(
                        "collection: replaced record {} not tombstoned (error {}); superseded\n",
                        slot,
                        e.to_errno()
                    );
                }
            }
        }

        // Link the new nodes into the graph. On failure the index is dropped: the file is right
        // and the next operation rebuilds it.
        let mut scratch = take_scratch(inode)?;
        let res = (first..l.index.len()).try_for_each(|n| l.index.link(n as u32, &mut scratch));
        put_scratch(inode, scratch);
        if res.is_err() {
            state.index = None;
        }
        Ok(())
    })
}

fn delete(file: &File, inode: &INode<VexFs>, arg: usize) -> Result {
    let a: uapi::vexfs_delete = read_arg(arg)?;
    let (count, ids_addr) = (a.count, a.ids);
    if a.version != UAPI_VERSION
        || count == 0
        || count > MAX_BATCH
        || a.__pad != 0
        || !all_zero(&a.reserved)
    {
        return Err(EINVAL);
    }
    if !is_collection(inode) {
        return Err(ENOTTY);
    }
    let mut ids: KVVec<u8> = KVVec::new();
    UserSlice::new(
        UserPtr::from_addr(usize::try_from(ids_addr).map_err(|_| EFAULT)?),
        count as usize * 8,
    )
    .read_all(&mut ids, GFP_KERNEL)?;
    let w = Writer::new(file)?;
    let deleted = with_state(inode, |state, charge| {
        let l = loaded(file, state, charge)?;
        let mut deleted = 0u32;
        let tomb = TOMBSTONE.to_le_bytes();
        let mut res = Ok(());
        for c in ids.chunks_exact(8) {
            let id = ne64(c, 0);
            let Some(node) = l.index.find(id) else {
                continue;
            };
            let slot_off = match l.index.slot(node).and_then(|s| l.hdr.offset(s)) {
                Ok(o) => o,
                Err(e) => {
                    res = Err(e);
                    break;
                }
            };
            if deleted == 0 {
                if let Err(e) = begin_overwrite(file, &w, &mut l.hdr, Overwrite::Delete) {
                    res = Err(e);
                    break;
                }
            }
            if let Err(e) = w.write_all_at(slot_off, &tomb) {
                res = Err(e);
                break;
            }
            l.index.delete(id);
            l.hdr.live -= 1;
            l.dirty = true;
            deleted += 1;
        }
        if deleted > 0 {
            let hdr = l.hdr;
            if let Err(e) = write_header(&w, &hdr) {
                // The records are tombstoned but the header says otherwise: drop the index so
                // that the next load reports the mismatch.
                state.index = None;
                return Err(e);
            }
        }
        res?;
        Ok(deleted)
    })?;
    write_field(arg + offset_of!(uapi::vexfs_delete, deleted), &deleted)
}

fn search(file: &File, inode: &INode<VexFs>, arg: usize) -> Result {
    let u: uapi::vexfs_search = read_arg(arg)?;
    let (k, ef, flags) = (u.k, u.ef, u.flags);
    if u.version != UAPI_VERSION
        || k == 0
        || k > MAX_K
        || ef > MAX_EF
        || flags & !(SEARCH_EXACT | SEARCH_STATS | SEARCH_FILTER) != 0
        || u.__pad != 0
        || (flags & SEARCH_STATS == 0 && u.stats != 0)
        || !all_zero(&u.reserved)
    {
        return Err(EINVAL);
    }
    let a = SearchArgs {
        k,
        ef,
        flags,
        q_addr: u.query,
        ids_addr: u.ids,
        dist_addr: u.distances,
        stats_addr: u.stats,
        filter: FilterArgs::read(flags, u.filter)?,
        arg,
    };
    if !is_collection(inode) {
        return Err(ENOTTY);
    }
    with_index(file, inode, |l| search_loaded(file, inode, l, &a))
}

/// Calls `f` with the loaded index of collection `inode`, with the semaphore shared; if the
/// index is not loaded, loads it and calls `f` with the semaphore held exclusively.
fn with_index<R>(
    file: &File,
    inode: &INode<VexFs>,
    f: impl FnOnce(&Loaded) -> Result<R>,
) -> Result<R> {
    let slot = &inode.data().vec;
    {
        let state = slot.state.read();
        if let Some(l) = state.index.as_deref() {
            inode.super_block().data().indexes.touch(slot);
            return f(l);
        }
    }
    // Used right away, before the shrinker could drop it again.
    with_state(inode, |state, charge| f(loaded(file, state, charge)?))
}

/// A scratch of an earlier search of `inode`, or a new one.
fn take_scratch(inode: &INode<VexFs>) -> Result<KBox<Scratch>> {
    let popped = inode.data().vec.scratch.lock().pop();
    match popped {
        Some(s) => Ok(s),
        None => new_scratch(),
    }
}

/// A new scratch, on the heap: at about 2 KiB, it does not belong in a stack frame.
fn new_scratch() -> Result<KBox<Scratch>> {
    Ok(KBox::new(const { Scratch::new() }, GFP_KERNEL)?)
}

/// Gives a scratch back to the pool of `inode`.
fn put_scratch(inode: &INode<VexFs>, s: KBox<Scratch>) {
    let mut pool = inode.data().vec.scratch.lock();
    if pool.len() < SCRATCH_KEEP {
        // Keeping it is an optimisation: if there is no room, it is freed.
        let _ = pool.push(s, GFP_KERNEL);
    }
}

/// Reads `dim` elements of a query from `reader` into `raw` (in the file's representation:
/// user space passes native-endian patterns) and converts them into `m`; returns the scale.
fn read_query(
    hdr: &Header,
    reader: &mut kernel::uaccess::UserSliceReader,
    raw: &mut [u8],
    m: &mut [i32],
) -> Result<i32> {
    reader.read_slice(raw)?;
    if hdr.elem_size() == 4 {
        for c in raw.chunks_exact_mut(4) {
            let v = ne32(c, 0);
            put(c, &v.to_le_bytes());
        }
    }
    hdr.convert(raw, m)
}

/// Searches the query prepared in `m` at `scale`, appending the ids (`u64`) and distances
/// (binary32 patterns as `u32`), native-endian, to `ids` and `dists`. Returns the count.
#[allow(clippy::too_many_arguments)]
fn search_one(
    l: &Loaded,
    recs: &mut FileRecords<'_>,
    s: &mut Scratch,
    m: &[i32],
    scale: i32,
    k: usize,
    ef: usize,
    exact: bool,
    filter: Option<&Filter>,
    ids: &mut KVVec<u8>,
    dists: &mut KVVec<u8>,
) -> Result<usize> {
    l.index.set_query(s, m, scale)?;
    let res = l.index.search(s, k, ef, exact, filter, recs)?;
    ids.reserve(res.len() * 8, GFP_KERNEL)?;
    dists.reserve(res.len() * 4, GFP_KERNEL)?;
    for h in res.iter() {
        ids.extend_from_slice(&l.index.id(h.node).to_ne_bytes(), GFP_KERNEL)?;
        dists.extend_from_slice(&h.dist.to_f32_bits().to_ne_bytes(), GFP_KERNEL)?;
    }
    Ok(res.len())
}

/// The arguments of a search, checked.
struct SearchArgs {
    k: u32,
    ef: u32,
    flags: u32,
    q_addr: u64,
    ids_addr: u64,
    dist_addr: u64,
    stats_addr: u64,
    filter: Option<FilterArgs>,
    arg: usize,
}

/// A `struct vexfs_filter`, checked.
#[derive(Clone, Copy)]
struct FilterArgs {
    lo: u64,
    hi: u64,
    /// With `VEXFS_FILTER_IDS`: the list's user address and length.
    list: Option<(u64, u32)>,
}

impl FilterArgs {
    /// Reads and checks the filter at user address `addr` of a search with `flags` (none
    /// without `VEXFS_SEARCH_FILTER`, whose `addr` must then be zero).
    fn read(flags: u32, addr: u64) -> Result<Option<Self>> {
        if flags & SEARCH_FILTER == 0 {
            return if addr == 0 { Ok(None) } else { Err(EINVAL) };
        }
        let a: uapi::vexfs_filter = read_arg(usize::try_from(addr).map_err(|_| EFAULT)?)?;
        let (fl, lo, hi, ids, count) = (a.flags, a.id_min, a.id_max, a.ids, a.count);
        let (range, listed) = (fl & FILTER_RANGE != 0, fl & FILTER_IDS != 0);
        if a.version != UAPI_VERSION
            || fl & !(FILTER_RANGE | FILTER_IDS) != 0
            || fl == 0
            || (range && lo > hi)
            || (!range && (lo != 0 || hi != 0))
            || (listed && count == 0)
            || (!listed && (ids != 0 || count != 0))
            || a.__pad != 0
            || !all_zero(&a.reserved)
        {
            return Err(EINVAL);
        }
        if count > MAX_FILTER_IDS {
            return Err(E2BIG);
        }
        let (lo, hi) = if range { (lo, hi) } else { (0, u64::MAX) };
        Ok(Some(Self {
            lo,
            hi,
            list: listed.then_some((ids, count)),
        }))
    }

    /// The filter for `index`: the allow-list is read from user space in pages.
    fn make(&self, index: &Index) -> Result<Filter> {
        let mut f = index.filter_begin(self.lo, self.hi, self.list.is_some())?;
        if let Some((addr, count)) = self.list {
            let len = count as usize * 8;
            let mut reader = user_reader(addr, len)?;
            let mut buf: KVec<u8> = KVec::with_capacity(len.min(4096), GFP_KERNEL)?;
            buf.resize(len.min(4096), 0, GFP_KERNEL)?;
            let mut left = len;
            while left > 0 {
                let n = left.min(buf.len());
                reader.read_slice(&mut buf[..n])?;
                for c in buf[..n].chunks_exact(8) {
                    index.filter_allow(&mut f, ne64(c, 0))?;
                }
                left -= n;
            }
        }
        index.filter_end(&mut f);
        Ok(f)
    }
}

/// The candidate list size of a search for `k` neighbours that asked for `ef` (0: the
/// default of the uapi, `max(k, 64)`).
fn default_ef(ef: u32, k: usize) -> usize {
    if ef == 0 {
        k.max(64)
    } else {
        ef as usize
    }
}

fn user_reader(addr: u64, len: usize) -> Result<kernel::uaccess::UserSliceReader> {
    let addr = usize::try_from(addr).map_err(|_| EFAULT)?;
    Ok(UserSlice::new(UserPtr::from_addr(addr), len).reader())
}

fn search_loaded(file: &File, inode: &INode<VexFs>, l: &Loaded, a: &SearchArgs) -> Result {
    let SearchArgs {
        k,
        ef,
        flags,
        q_addr,
        ids_addr,
        dist_addr,
        stats_addr,
        filter,
        arg,
    } = *a;
    let dim = l.hdr.dim as usize;
    let mut raw: KVec<u8> = KVec::with_capacity(dim * l.hdr.elem_size(), GFP_KERNEL)?;
    raw.resize(dim * l.hdr.elem_size(), 0, GFP_KERNEL)?;
    let mut m: KVec<i32> = KVec::with_capacity(dim, GFP_KERNEL)?;
    m.resize(dim, 0, GFP_KERNEL)?;
    let scale = read_query(
        &l.hdr,
        &mut user_reader(q_addr, raw.len())?,
        &mut raw,
        &mut m,
    )?;
    let k = k as usize;
    let ef = default_ef(ef, k);
    let filter = filter.map(|f| f.make(&l.index)).transpose()?;
    let mut recs = FileRecords::new(file, &l.hdr)?;
    let mut s = take_scratch(inode)?;
    let (mut ids, mut dists) = (KVVec::new(), KVVec::new());
    let start = Instant::<Monotonic>::now();
    let res = search_one(
        l,
        &mut recs,
        &mut s,
        &m,
        scale,
        k,
        ef,
        flags & SEARCH_EXACT != 0,
        filter.as_ref(),
        &mut ids,
        &mut dists,
    );
    let ns = start.elapsed().as_nanos();
    let st = s.stats;
    put_scratch(inode, s);
    let count = res?;
    write_user(ids_addr, &ids)?;
    if dist_addr != 0 {
        write_user(dist_addr, &dists)?;
    }
    if flags & SEARCH_STATS != 0 {
        let out = uapi::vexfs_search_stats {
            distances: st.distances,
            rescored: st.rescored,
            expanded: st.expanded,
            nanoseconds: u64::try_from(ns).unwrap_or(0),
            admitted: st.admitted,
            flags: if st.scanned { STATS_SCANNED } else { 0 },
            passed: st.passed,
            ..Default::default()
        };
        write_field(usize::try_from(stats_addr).map_err(|_| EFAULT)?, &out)?;
    }
    write_field(arg + offset_of!(uapi::vexfs_search, count), &(count as u32))
}

fn search_batch(file: &File, inode: &INode<VexFs>, arg: usize) -> Result {
    let a: uapi::vexfs_search_batch = read_arg(arg)?;
    let (k, ef, flags, nq) = (a.k, a.ef, a.flags, a.nq);
    let (q_addr, ids_addr, dist_addr, counts_addr) = (a.queries, a.ids, a.distances, a.counts);
    if a.version != UAPI_VERSION
        || k == 0
        || k > MAX_K
        || ef > MAX_EF
        || flags & !(SEARCH_EXACT | SEARCH_FILTER) != 0
        || nq == 0
        || nq > MAX_BATCH
        || a.__pad != 0
        || !all_zero(&a.reserved)
    {
        return Err(EINVAL);
    }
    if u64::from(nq) * u64::from(k) > u64::from(MAX_RESULTS) {
        return Err(E2BIG);
    }
    let filter = FilterArgs::read(flags, a.filter)?;
    if !is_collection(inode) {
        return Err(ENOTTY);
    }
    with_index(file, inode, |l| {
        let dim = l.hdr.dim as usize;
        let qsize = dim * l.hdr.elem_size();
        let (nq, k) = (nq as usize, k as usize);
        let ef = default_ef(ef, k);
        let filter = filter.map(|f| f.make(&l.index)).transpose()?;
        let mut reader = user_reader(q_addr, nq * qsize)?;
        let mut raw: KVec<u8> = KVec::with_capacity(qsize, GFP_KERNEL)?;
        raw.resize(qsize, 0, GFP_KERNEL)?;
        let mut m: KVec<i32> = KVec::with_capacity(dim, GFP_KERNEL)?;
        m.resize(dim, 0, GFP_KERNEL)?;
        let mut counts: KVVec<u8> = KVVec::with_capacity(nq * 4, GFP_KERNEL)?;
        let (mut ids, mut dists) = (KVVec::new(), KVVec::new());
        let mut recs = FileRecords::new(file, &l.hdr)?;
        let mut s = take_scratch(inode)?;
        let res = (|| -> Result {
            for i in 0..nq {
                let scale = read_query(&l.hdr, &mut reader, &mut raw, &mut m)?;
                ids.clear();
                dists.clear();
                let n = search_one(
                    l,
                    &mut recs,
                    &mut s,
                    &m,
                    scale,
                    k,
                    ef,
                    flags & SEARCH_EXACT != 0,
                    filter.as_ref(),
                    &mut ids,
                    &mut dists,
                )?;
                write_user(ids_addr + (i * k * 8) as u64, &ids)?;
                if dist_addr != 0 {
                    write_user(dist_addr + (i * k * 4) as u64, &dists)?;
                }
                counts.extend_from_slice(&(n as u32).to_ne_bytes(), GFP_KERNEL)?;
            }
            Ok(())
        })();
        put_scratch(inode, s);
        res?;
        write_user(counts_addr, &counts)
    })
}

fn get(file: &File, inode: &INode<VexFs>, arg: usize) -> Result {
    let a: uapi::vexfs_get = read_arg(arg)?;
    let (count, ids_addr, vecs_addr) = (a.count, a.ids, a.vectors);
    if a.version != UAPI_VERSION || count == 0 || count > MAX_BATCH || !all_zero(&a.reserved) {
        return Err(EINVAL);
    }
    if !is_collection(inode) {
        return Err(ENOTTY);
    }
    let count = count as usize;
    let mut ids: KVVec<u8> = KVVec::new();
    user_reader(ids_addr, count * 8)?.read_all(&mut ids, GFP_KERNEL)?;
    with_index(file, inode, |l| {
        let hdr = &l.hdr;
        let vsize = hdr.dim as usize * hdr.elem_size();
        if count.saturating_mul(vsize) > BATCH_LIMIT {
            return Err(E2BIG);
        }
        let rs = hdr.record_size as usize;
        let mut rec: KVec<u8> = KVec::with_capacity(rs, GFP_KERNEL)?;
        rec.resize(rs, 0, GFP_KERNEL)?;
        let mut out: KVVec<u8> = KVVec::with_capacity(count * vsize, GFP_KERNEL)?;
        for c in ids.chunks_exact(8) {
            let id = ne64(c, 0);
            let node = l.index.find(id).ok_or(ENOENT)?;
            read_record(file, hdr, l.index.slot(node)?, &mut rec)?;
            if le64(&rec, 0) != id {
                // The record changed behind the index's back.
                return Err(EUCLEAN);
            }
            let v = &mut rec[8..8 + vsize];
            if hdr.elem_size() == 4 {
                for e in v.chunks_exact_mut(4) {
                    let x = le32(e, 0);
                    put(e, &x.to_ne_bytes());
                }
            }
            out.extend_from_slice(v, GFP_KERNEL)?;
        }
        write_user(vecs_addr, &out)
    })
}

fn build(file: &File, inode: &INode<VexFs>, arg: usize) -> Result {
    let a: uapi::vexfs_build_index = read_arg(arg)?;
    let flags = a.flags;
    if a.version != UAPI_VERSION || flags & !BUILD_COMPACT != 0 || !all_zero(&a.reserved) {
        return Err(EINVAL);
    }
    if !is_collection(inode) {
        return Err(ENOTTY);
    }
    let compacting = flags & BUILD_COMPACT != 0;
    if compacting {
        check_chattr(inode, false)?;
    }
    // Compaction needs write access; a rebuild saves the new index if it has it, and if the
    // collection is not immutable.
    let w = match Writer::new(file) {
        Ok(_) if !compacting && crate::file::is_immutable(inode) => None,
        Ok(w) => Some(w),
        Err(e) if e == EBADF && !compacting => None,
        Err(e) => return Err(e),
    };
    with_state(inode, |state, charge| {
        state.index = None;
        if let (Some(w), true) = (&w, flags & BUILD_COMPACT != 0) {
            let hdr = compact(file, inode, w)?;
            // Give the space of the dropped records and of the old saved index back.
            let end = hdr.offset(hdr.records)?;
            w.truncate(end, |size| crate::file::truncate(inode, size))?;
        }
        let l = state.index.insert(load(file, true, charge)?);
        match &w {
            Some(w) => save_loaded(file, inode, w, l),
            None => Ok(()),
        }
    })
}

/// Moves the live records of the collection to the front, in order, and updates the header,
/// which it returns; the bytes after the last record are no longer part of the collection. A
/// live record that a later one of the same id supersedes (an interrupted upsert) and records
/// a crash left unwritten are dropped too.
///
/// The records are first copied past everything the file holds, and the header switched to
/// them ([`FORMAT_MOVED`]) once they are durable; then they are copied back to the front and
/// the header switched back. At any point a crash leaves a header that names a complete set
/// of durable records: the old ones, or the copy. Version 1 records, which carry no checksum
/// that would tell a torn copy, move in place, and a crash can lose records that moved.
fn compact(file: &File, inode: &INode<VexFs>, w: &Writer<'_>) -> Result<Header> {
    let mut hdr = read_header(file)?;
    // The records to drop: superseded and unwritten ones (and tombstones).
    let mut live: KVVec<(u64, u64)> = KVVec::new();
    let mut dropped: KVVec<u64> = KVVec::new();
    for_each_record(file, &hdr, 0, |slot, r| {
        match record_state(&hdr, slot, r)? {
            Rec::Live(id) => live.push((id, slot), GFP_KERNEL)?,
            Rec::Unwritten => dropped.push(slot, GFP_KERNEL)?,
            Rec::Deleted => (),
        }
        Ok(())
    })?;
    live.sort_unstable();
    for p in live.windows(2) {
        if p[0].0 == p[1].0 {
            dropped.push(p[0].1, GFP_KERNEL)?;
        }
    }
    drop(live);
    dropped.sort_unstable();
    let front = HEADER_SIZE as u64;
    let mut new_hdr = hdr;
    if hdr.checksummed() {
        let end = u64::try_from(hdr.offset(hdr.records)?).map_err(|_| EFBIG)?;
        let far = end
            .max(hdr.saved_end())
            .checked_next_multiple_of(4096)
            .ok_or(EFBIG)?;
        let size = inode.size();
        let copied = copy_records(w, file, &hdr, &dropped, far)
            .and_then(|out| crate::file::fsync(file, inode, 0, i64::MAX, false).map(|()| out));
        let out = match copied {
            Ok(out) => out,
            Err(e) => {
                // Nothing changed but the space the copy took (ENOSPC, most likely): give
                // it back.
                let _ = w.truncate(size, |size| crate::file::truncate(inode, size));
                return Err(e);
            }
        };
        new_hdr.base = far;
        new_hdr.records = out;
        new_hdr.live = out;
        new_hdr.durable = out;
        new_hdr.generation = hdr.generation.wrapping_add(1).max(1);
        // The saved index names records by number: it no longer fits.
        new_hdr.drop_saved();
        write_header(w, &new_hdr)?;
        fops::generic_fsync(file, 0, HEADER_SIZE as i64 - 1, true)?;
        hdr = new_hdr;
        copy_records(w, file, &hdr, &[], front)?;
        crate::file::fsync(file, inode, 0, i64::MAX, true)?;
    } else {
        begin_overwrite(file, w, &mut hdr, Overwrite::Move)?;
        let out = copy_records(w, file, &hdr, &dropped, front)?;
        new_hdr = hdr;
        new_hdr.records = out;
        new_hdr.live = out;
        new_hdr.drop_saved();
    }
    new_hdr.base = front;
    write_header(w, &new_hdr)?;
    // Before the caller truncates the file: a crash must not leave the header that names
    // the copy over a file cut short of it.
    fops::generic_fsync(file, 0, HEADER_SIZE as i64 - 1, true)?;
    Ok(new_hdr)
}

/// Writes the records of `hdr` that are neither deleted nor in `dropped` (record numbers,
/// ascending) one after another from file offset `to`, each sealed as the record it becomes;
/// returns how many. `to` is the offset of the first record or lies past the last one.
fn copy_records(
    w: &Writer<'_>,
    file: &File,
    hdr: &Header,
    dropped: &[u64],
    to: u64,
) -> Result<u64> {
    let rs = hdr.record_size as usize;
    let at = |n: u64| {
        n.checked_mul(rs as u64)
            .and_then(|o| o.checked_add(to))
            .and_then(|o| i64::try_from(o).ok())
            .ok_or(EFBIG)
    };
    // Records to write from record `first` on. Moving down in place, they are written at or
    // before where they were read, after the reads.
    let mut buf: VVec<u8> = VVec::with_capacity(IO_CHUNK.max(rs), GFP_KERNEL)?;
    let (mut first, mut out) = (0u64, 0u64);
    for_each_record(file, hdr, 0, |slot, r| {
        if le64(r, 0) == TOMBSTONE || dropped.binary_search(&slot).is_ok() {
            return Ok(());
        }
        let unmoved = at(out)? == hdr.offset(slot)?;
        if !buf.is_empty() && (unmoved || buf.len() + rs > buf.capacity()) {
            w.write_all_at(at(first)?, &buf)?;
            buf.clear();
        }
        if !unmoved {
            if buf.is_empty() {
                first = out;
            }
            let n = buf.len();
            buf.extend_from_slice(r, GFP_KERNEL)?;
            hdr.seal(out, &mut buf[n..]);
        }
        out += 1;
        Ok(())
    })?;
    w.write_all_at(at(first)?, &buf)?;
    if out != hdr.live {
        // A crash between a delete's tombstones and its header: the records are right.
        pr_warn!(
            "collection: {} live records, header says {}\n",
            out,
            hdr.live
        );
    }
    Ok(out)
}

fn stats(file: &File, inode: &INode<VexFs>, arg: usize) -> Result {
    let a: uapi::vexfs_stats = read_arg(arg)?;
    // Fields that were reserved in the first version of the structure must still be zero
    // on the way in.
    if a.version != UAPI_VERSION
        || a.saved_bytes != 0
        || a.load_nanoseconds != 0
        || a.index_flags != 0
        || a.__pad != 0
        || a.mount_index_bytes != 0
    {
        return Err(EINVAL);
    }
    if !is_collection(inode) {
        return Err(ENOTTY);
    }
    let state = inode.data().vec.state.read();
    let (hdr, index_state, index_bytes, load_ns, mut iflags) = match state.index.as_deref() {
        Some(l) => {
            let mut f = 0;
            if l.restored {
                f |= INDEX_RESTORED;
            }
            if !l.dirty && l.hdr.index_off != 0 {
                f |= INDEX_SAVED;
            }
            (l.hdr, INDEX_READY, l.index.bytes() as u64, l.load_ns, f)
        }
        None => (read_header(file)?, INDEX_NONE, 0, 0, 0),
    };
    drop(state);
    if index_state == INDEX_NONE && hdr.index_off != 0 {
        iflags |= INDEX_SAVED;
    }
    let resident = inode.super_block().data().indexes.resident();
    let out = uapi::vexfs_stats {
        version: UAPI_VERSION,
        index_state,
        params: uapi::vexfs_collection_params {
            version: UAPI_VERSION,
            dim: hdr.dim,
            elem_type: u32::from(hdr.elem_type),
            metric: u32::from(hdr.metric),
            hnsw_m: hdr.m,
            hnsw_ef_construction: hdr.ef_construction,
            ..Default::default()
        },
        count: hdr.live,
        deleted: hdr.records - hdr.live,
        file_bytes: inode.size() as u64,
        index_bytes,
        saved_bytes: hdr.index_len,
        load_nanoseconds: load_ns,
        index_flags: iflags,
        mount_index_bytes: resident as u64,
        ..Default::default()
    };
    write_field(arg, &out)
}

#[kunit_tests(vexfs_collection)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            dim: 100,
            elem_type: ElemType::F32,
            metric: Metric::Cosine,
            m: 16,
            ef_construction: 200,
            record_size: record_size(100, ElemType::F32, FORMAT_VERSION),
            records: 12345,
            live: 12000,
            index_off: 4 << 20,
            index_len: 4160,
            generation: 7,
            index_generation: 7,
            version: FORMAT_VERSION,
            salt: 0x0123_4567_89ab_cdef,
            durable: 12000,
            base: HEADER_SIZE as u64,
            log_off: 0,
            log_len: 0,
        }
    }

    #[test]
    fn generations() -> Result {
        let hdr = header();
        let mut b = header_buf()?;
        hdr.encode(&mut b);
        let back = Header::decode(&b)?;
        assert_eq!((back.generation, back.index_generation), (7, 7));
        assert!(back.saved_current());
        // Records changed in place since the save, no saved index, or a header of a kernel
        // that does not know generations: the saved index must be checked against the records.
        for h in [
            Header {
                generation: 8,
                ..hdr
            },
            Header {
                index_off: 0,
                ..hdr
            },
            Header {
                generation: 0,
                index_generation: 0,
                ..hdr
            },
        ] {
            assert!(!h.saved_current());
        }
        Ok(())
    }

    #[test]
    fn saved_index_header() {
        let hdr = header();
        let sh = SavedHeader {
            nodes: 12000,
            records: 12345,
            entry: Some((17, 3)),
            payload: 4096,
            payload_crc: 0x1234_5678,
        };
        let mut b = [0u8; INDEX_HEADER];
        sh.encode(&hdr, &mut b);
        let len = hdr.index_len;
        let back = SavedHeader::decode(&b, &hdr, len).unwrap_or(SavedHeader { nodes: 0, ..sh });
        assert_eq!(back.nodes, 12000);
        assert_eq!(back.entry, Some((17, 3)));
        assert_eq!(back.payload_crc, 0x1234_5678);
        // A flipped bit, another M, more records than the collection, a wrong length.
        let mut bad = b;
        bad[20] ^= 1;
        assert!(SavedHeader::decode(&bad, &hdr, len).is_err());
        let other = Header { m: 8, ..hdr };
        assert!(SavedHeader::decode(&b, &other, len).is_err());
        let fewer = Header {
            records: 100,
            ..hdr
        };
        assert!(SavedHeader::decode(&b, &fewer, len).is_err());
        assert!(SavedHeader::decode(&b, &hdr, 8192).is_err());
    }

    #[test]
    fn record_sizes() {
        let v = FORMAT_VERSION;
        assert_eq!(record_size(1, ElemType::F32, v), 16);
        assert_eq!(record_size(2, ElemType::F32, v), 24);
        assert_eq!(record_size(3, ElemType::F32, v), 24);
        assert_eq!(record_size(1, ElemType::I8, v), 16);
        assert_eq!(record_size(4, ElemType::I8, v), 16);
        assert_eq!(record_size(5, ElemType::I8, v), 24);
        assert_eq!(record_size(MAX_DIM, ElemType::F32, v), 8 + 4 * MAX_DIM + 8);
        // Version 1: no checksum.
        assert_eq!(record_size(2, ElemType::F32, FORMAT_V1), 16);
        assert_eq!(record_size(8, ElemType::I8, FORMAT_V1), 16);
        assert_eq!(
            record_size(MAX_DIM, ElemType::F32, FORMAT_V1),
            8 + 4 * MAX_DIM
        );
    }

    #[test]
    fn record_states() -> Result {
        let hdr = Header {
            dim: 2,
            record_size: record_size(2, ElemType::F32, FORMAT_VERSION),
            records: 10,
            durable: 4,
            ..header()
        };
        let mut r = [0u8; 24];
        put(&mut r, &42u64.to_le_bytes());
        put(&mut r[8..], &0x3f80_0000u32.to_le_bytes());
        hdr.seal(6, &mut r);
        assert_eq!(record_state(&hdr, 6, &r)?, Rec::Live(42));
        // The checksum covers the id and every element, not the padding.
        for off in [0, 7, 8, 15, 16] {
            let mut bad = r;
            bad[off] ^= 1;
            assert_eq!(record_state(&hdr, 6, &bad)?, Rec::Unwritten);
        }
        let mut pad = r;
        pad[23] = 1;
        assert_eq!(record_state(&hdr, 6, &pad)?, Rec::Live(42));
        // Sealed for another slot or another collection: stale contents.
        assert_eq!(record_state(&hdr, 7, &r)?, Rec::Unwritten);
        let other = Header { salt: 1, ..hdr };
        assert_eq!(record_state(&other, 6, &r)?, Rec::Unwritten);
        // Zeros, where a crash lost the record's block.
        assert_eq!(record_state(&hdr, 6, &[0; 24])?, Rec::Unwritten);
        // A tombstone needs no checksum.
        let mut tomb = r;
        put(&mut tomb, &TOMBSTONE.to_le_bytes());
        assert_eq!(record_state(&hdr, 6, &tomb)?, Rec::Deleted);
        // Before the durable count a bad checksum is damage.
        let mut r2 = r;
        hdr.seal(2, &mut r2);
        assert_eq!(record_state(&hdr, 2, &r2)?, Rec::Live(42));
        r2[9] ^= 1;
        assert_eq!(record_state(&hdr, 2, &r2).err(), Some(EUCLEAN));
        // Version 1 records carry no checksum.
        let v1 = Header {
            version: FORMAT_V1,
            record_size: record_size(2, ElemType::F32, FORMAT_V1),
            salt: 0,
            durable: 0,
            ..hdr
        };
        let mut r1 = [0u8; 16];
        put(&mut r1, &42u64.to_le_bytes());
        v1.seal(6, &mut r1);
        assert!(all_zero(&r1[8..]));
        assert_eq!(record_state(&v1, 6, &r1)?, Rec::Live(42));
        Ok(())
    }

    #[test]
    fn header_round_trip() -> Result {
        let mut b = header_buf()?;
        let h = header();
        h.encode(&mut b);
        assert_eq!(&b[0..8], MAGIC);
        let d = Header::decode(&b)?;
        assert_eq!(
            (d.dim, d.elem_type, d.metric),
            (100, ElemType::F32, Metric::Cosine)
        );
        assert_eq!((d.m, d.ef_construction), (16, 200));
        assert_eq!((d.records, d.live), (12345, 12000));
        assert_eq!(
            (d.version, d.salt, d.durable),
            (2, 0x0123_4567_89ab_cdef, 12000)
        );
        assert_eq!(d.offset(2)?, 4096 + 2 * 416);
        // Records moved by a compaction: version 3 on disk, version 2 records.
        Header { base: 5 << 20, ..h }.encode(&mut b);
        assert_eq!((le32(&b, 8), le64(&b, 104)), (FORMAT_MOVED, 5 << 20));
        let m = Header::decode(&b)?;
        assert_eq!((m.version, m.base), (FORMAT_VERSION, 5 << 20));
        assert_eq!(m.offset(2)?, (5 << 20) + 2 * 416);
        h.encode(&mut b);
        assert_eq!((le32(&b, 8), le64(&b, 104)), (FORMAT_VERSION, 0));
        // A save in progress over the saved index in place: its log.
        let logged = Header {
            log_off: 5 << 20,
            log_len: 8192,
            ..h
        };
        logged.encode(&mut b);
        let l = Header::decode(&b)?;
        assert_eq!((l.log_off, l.log_len), (5 << 20, 8192));
        h.encode(&mut b);
        assert_eq!((le64(&b, 112), le64(&b, 120)), (0, 0));
        // Any flipped bit of the first sector is caught by the checksums.
        for off in [
            0,
            9,
            16,
            40,
            48,
            100,
            300,
            HEADER_SECTOR_CRC,
            HEADER_SECTOR_CRC + 3,
        ] {
            b[off] ^= 0x10;
            assert_eq!(Header::decode(&b).err(), Some(EUCLEAN));
            b[off] ^= 0x10;
        }
        // The rest of the block holds no field: a write torn after the first sector leaves
        // the header it wrote, torn before it the one it overwrote.
        let mut other = header_buf()?;
        Header {
            records: 20000,
            ..h
        }
        .encode(&mut other);
        let mut torn = header_buf()?;
        torn[..512].copy_from_slice(&other[..512]);
        torn[512..].copy_from_slice(&b[512..]);
        assert_eq!(Header::decode(&torn)?.records, 20000);
        torn[..512].copy_from_slice(&b[..512]);
        torn[512..].copy_from_slice(&other[512..]);
        assert_eq!(Header::decode(&torn)?.records, 12345);
        b[HEADER_SIZE - 1] ^= 0x10;
        assert_eq!(Header::decode(&b)?.records, 12345);
        // A header of a kernel that checksummed only the whole block.
        b[HEADER_SECTOR_CRC..HEADER_SECTOR_CRC + 4].fill(0);
        let crc = format::crc32c(&b[..HEADER_SIZE - 4]);
        b[HEADER_SIZE - 4..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(Header::decode(&b)?.records, 12345);
        b[100] ^= 0x10;
        assert_eq!(Header::decode(&b).err(), Some(EUCLEAN));
        b[100] ^= 0x10;
        // Valid checksum, invalid fields.
        for bad in [
            Header { dim: 0, ..h },
            Header {
                dim: MAX_DIM + 1,
                ..h
            },
            Header { m: 1, ..h },
            Header {
                ef_construction: 8,
                ..h
            },
            Header {
                record_size: 8,
                ..h
            },
            Header { live: 12346, ..h },
            Header {
                durable: 12346,
                ..h
            },
            Header { version: 4, ..h },
            // Records moved (version 3) into the header, or not to a block boundary.
            Header { base: 0, ..h },
            Header {
                base: 4096 + 512,
                ..h
            },
            // Version 1 has no checksums: its own record size, no salt or durable count.
            Header {
                version: FORMAT_V1,
                ..h
            },
            Header {
                version: FORMAT_V1,
                record_size: record_size(100, ElemType::F32, FORMAT_V1),
                ..h
            },
            // A log without a size, or a size without a log, not on a block boundary, or
            // without the saved index it applies to.
            Header { log_off: 8192, ..h },
            Header { log_len: 4096, ..h },
            Header {
                log_off: 8192 + 512,
                log_len: 4096,
                ..h
            },
            Header {
                log_off: 8192,
                log_len: 4096,
                index_off: 0,
                ..h
            },
        ] {
            bad.encode(&mut b);
            assert_eq!(Header::decode(&b).err(), Some(EUCLEAN));
        }
        // An element type or a metric that is not one of the uapi's, behind valid checksums.
        for (off, v) in [(20, 3u32), (20, 0), (24, 0), (24, 4)] {
            h.encode(&mut b);
            put(&mut b[off..off + 4], &v.to_le_bytes());
            let crc = format::crc32c(&b[..HEADER_SECTOR_CRC]);
            put(
                &mut b[HEADER_SECTOR_CRC..HEADER_SECTOR_CRC + 4],
                &crc.to_le_bytes(),
            );
            let crc = format::crc32c(&b[..HEADER_SIZE - 4]);
            put(&mut b[HEADER_SIZE - 4..], &crc.to_le_bytes());
            assert_eq!(Header::decode(&b).err(), Some(EUCLEAN));
        }
        assert_eq!(Header::decode(&b[..100]).err(), Some(EUCLEAN));
        Ok(())
    }

    #[test]
    fn element_conversion() -> Result {
        let h = header();
        let mut raw = [0u8; 400];
        put(&mut raw[4..8], &0x3f80_0000u32.to_le_bytes());
        let mut m = [0i32; 100];
        assert_eq!(h.convert(&raw, &mut m)?, 29);
        assert_eq!(m[1], 1 << 29);
        put(&mut raw[8..12], &0x7fc0_0000u32.to_le_bytes());
        assert_eq!(h.convert(&raw, &mut m).err(), Some(EINVAL));
        let h8 = Header {
            elem_type: ElemType::I8,
            ..h
        };
        let raw8 = [0xffu8; 100];
        assert_eq!(h8.convert(&raw8, &mut m)?, 29);
        assert_eq!(m[99], -(1 << 29));
        Ok(())
    }

    #[test]
    fn ioctl_numbers() {
        // The values of the C macros of <linux/vexfs.h> on x86-64.
        assert_eq!(IOC_CREATE, 0x4040_be01);
        assert_eq!(IOC_INSERT, 0x4040_be02);
        assert_eq!(IOC_DELETE, 0xc038_be03);
        assert_eq!(IOC_SEARCH, 0xc050_be04);
        assert_eq!(IOC_BUILD_INDEX, 0x4028_be05);
        assert_eq!(IOC_STATS, 0xc088_be06);
        assert_eq!(IOC_SEARCH_BATCH, 0x4050_be07);
        assert_eq!(IOC_GET, 0x4040_be08);
    }

    /// The index budget of a mount: the least recently used clean index makes room; one with
    /// unsaved changes or in use stays; an index that does not fit is refused; the shrinker
    /// drops what is clean; the accounting follows.
    #[test]
    fn index_budget() -> Result {
        use crate::cache::{
            Cache,
            Charge,
            Slot, //
        };
        use kernel::{
            page::PAGE_SIZE,
            sync::Arc, //
        };
        const P: usize = PAGE_SIZE;
        let cache = KBox::pin_init(Cache::new(10 * P), GFP_KERNEL)?;
        let slot = || Arc::pin_init(Slot::new(), GFP_KERNEL);
        let (a, b, c, d) = (slot()?, slot()?, slot()?, slot()?);
        // Loads an index charged `bytes` into `s`, as `with_state()` does.
        let load = |s: &Arc<Slot>, bytes: usize| -> Result {
            let mut state = s.state.write();
            let mut charge = Charge::new(&cache, s);
            charge.reserve(bytes)?;
            let index = Index::new(header().params());
            let l = Loaded {
                hdr: header(),
                index,
                dirty: false,
                restored: false,
                saved_at: 0,
                load_ns: 0,
            };
            state.index = Some(KBox::new(l, GFP_KERNEL)?);
            charge.settle(bytes);
            Ok(())
        };
        let loaded = |s: &Arc<Slot>| s.state.read().index.is_some();

        load(&a, 4 * P)?;
        load(&b, 4 * P)?;
        assert_eq!(cache.resident(), 8 * P);
        // a, the least recently used, makes room for c.
        load(&c, 4 * P)?;
        assert!(!loaded(&a) && loaded(&b) && loaded(&c));
        assert_eq!(cache.resident(), 8 * P);
        // b has unsaved changes: d's load drops c instead.
        if let Some(l) = b.state.write().index.as_deref_mut() {
            l.dirty = true;
        }
        load(&d, 4 * P)?;
        assert!(loaded(&b) && !loaded(&c) && loaded(&d));
        // d in use (a search holds its semaphore), b dirty: nothing to drop. Only the
        // shrinker's try-locks can meet a busy index in one task (lockdep would rightly
        // object to taking a second collection's semaphore here).
        {
            let _search = d.state.read();
            assert_eq!(cache.scan(100), 0);
        }
        // d dirty too: no room for a, and nothing changes.
        let dirty = |s: &Arc<Slot>, yes: bool| {
            if let Some(l) = s.state.write().index.as_deref_mut() {
                l.dirty = yes;
            }
        };
        dirty(&d, true);
        assert_eq!(load(&a, 4 * P), Err(ENOMEM));
        assert!(!loaded(&a) && loaded(&b) && loaded(&d));
        assert_eq!(cache.resident(), 8 * P);
        dirty(&d, false);
        // Larger than the whole budget.
        assert_eq!(load(&a, 11 * P), Err(ENOMEM));
        // The shrinker counts pages and frees the clean index, d.
        assert_eq!(cache.count(), 8);
        assert_eq!(cache.scan(100), 4);
        assert!(loaded(&b) && !loaded(&d));
        assert_eq!(cache.resident(), 4 * P);
        // Dropping an index (eviction of the inode) gives its charge back.
        let mut state = b.state.write();
        state.index = None;
        Charge::new(&cache, &b).settle(0);
        drop(state);
        assert_eq!(cache.resident(), 0);
        assert_eq!(cache.scan(100), 0);
        Ok(())
    }
}
