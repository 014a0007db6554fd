// SPDX-License-Identifier: GPL-2.0

//! Vector collections: the collection file format and the ioctls of `<linux/vexfs.h>`.
//!
//! A collection is a regular file that `VEXFS_IOC_CREATE` turned into one (see [`header`] for
//! its layout); its in-memory state is a [`State`], shared with the index cache of the mount
//! ([`crate::cache`]). One job per file:
//!
//! - [`header`]: the collection header and the record codec, and the ordering of their writes;
//! - [`records`]: reading records back, and building an index from them;
//! - [`saved`]: the index saved in the file, restored at load and saved on `fsync(2)` and
//!   `close(2)`, whole or in place after a log;
//! - [`compact`]: dropping tombstones and superseded records from the file;
//! - [`search`]: the search ioctls;
//! - [`ioctl`]: the other ioctls and the dispatch of all of them;
//! - this file: the state of a collection, its locking and loading.
//!
//! # Index
//!
//! The HNSW graph and the vectors it is traversed on ([`crate::hnsw`]) live in kernel memory,
//! loaded on the first use after mount, kept in step with inserts and deletes, and charged against
//! the index budget of the mount ([`crate::cache`]), which drops clean indexes when it needs room
//! and under memory pressure. A cosine index keeps only compact copies: the exact vectors of the
//! candidates a search rescores are read back from their records through the page cache
//! ([`records::FileRecords`]). Loading restores the graph saved in the file if there is a usable
//! copy and otherwise builds it from the records (as `VEXFS_IOC_BUILD_INDEX` always does).
//!
//! The saved index starts at a multiple of [`saved::INDEX_ALIGN`] at least a quarter of the
//! records' size past the last record, so that inserts do not overwrite it: a
//! [`saved::SavedHeader`], then the entry of every node ([`Index::save_node`]), in node order. It
//! is written (by [`saved::save_loaded`]) when the index changed and a file descriptor open for
//! writing is closed or synced, or after `VEXFS_IOC_BUILD_INDEX`: the entries, their header, then
//! the collection header naming them. While the header names the copy the index was restored from
//! or last saved to, the copy stays where it is and a save writes only the entries that changed
//! ([`Index::unsaved`]), after a log of them ([`saved::SaveLog`]) that completes the copy if a
//! crash interrupts the save. Entries of a cosine index carry the nodes' traversal data (compact
//! copies, sign codes), so that a restore need not compute them again. [`saved::restore`] checks
//! the links and both checksums, or the index is rebuilt. Unless the header's generations show that
//! no record changed in place since the save ([`header::begin_overwrite`] moves the records to a
//! new generation, durably, before their first in-place change), every node must also match its
//! record and those deleted since are marked deleted; records inserted after the save are linked
//! in.
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

mod compact;
mod header;
mod ioctl;
mod records;
mod saved;
mod search;

use crate::{
    cache::Charge,
    format,
    hnsw::{
        Index,
        Scratch, //
    },
    VexFs, //
};
use header::{
    read_header,
    Header, //
};
use kernel::{
    alloc::KVec,
    fs::{
        inode::INode,
        kernel_io::Writer,
        File, //
    },
    prelude::*,
    time::{
        Instant,
        Monotonic, //
    },
    uapi, //
};
use records::rebuild;
use saved::{
    restore,
    save_loaded, //
};

pub(crate) use ioctl::ioctl;

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

/// Bytes the vectors of one insert batch may take in memory.
pub(crate) const BATCH_LIMIT: usize = 32 << 20;

/// Search scratch buffers kept for reuse ([`crate::inode::VexInode::scratch`]).
pub(crate) type ScratchPool = KVec<KBox<Scratch>>;

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

/// Whether `inode` is a collection.
pub(crate) fn is_collection(inode: &INode<VexFs>) -> bool {
    inode.data().map.lock().flags & format::INODE_FLAG_COLLECTION != 0
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

#[kunit_tests(vexfs_collection)]
mod tests {
    use super::{
        header::{
            header_buf,
            le32,
            le64,
            put,
            record_size,
            record_state, //
            ElemType,
            Header,
            Rec,
            FORMAT_MOVED,
            FORMAT_V1,
            FORMAT_VERSION,
            HEADER_SECTOR_CRC,
            HEADER_SIZE,
            MAGIC,
        },
        ioctl::{
            all_zero, //
            IOC_BUILD_INDEX,
            IOC_CREATE,
            IOC_DELETE,
            IOC_GET,
            IOC_INSERT,
            IOC_SEARCH,
            IOC_SEARCH_BATCH,
            IOC_STATS,
        },
        saved::{
            SavedHeader, //
            INDEX_HEADER,
        },
        Loaded, MAX_DIM, TOMBSTONE,
    };
    use crate::{format, hnsw::Index, vecmath::Metric};
    use kernel::prelude::*;

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
