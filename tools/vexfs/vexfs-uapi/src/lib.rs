// SPDX-License-Identifier: GPL-2.0

//! User-space mirror of `include/uapi/linux/vexfs.h`: the VexFS vector collection ioctls.
//!
//! The structures are `#[repr(C)]` copies of the C ones, with their sizes asserted at compile
//! time; the ioctl numbers are computed like `_IOW`/`_IOWR` do. [`ioctl`] issues one of them on
//! an open file descriptor and maps a failure to [`std::io::Error`] (whose `raw_os_error()` is
//! the errno). Floating-point values are IEEE-754 binary32 bit patterns in `u32` fields: use
//! `f32::to_bits` and `f32::from_bits`.

use std::io;
use std::os::fd::AsRawFd;

/// `VEXFS_UAPI_VERSION`.
pub const UAPI_VERSION: u32 = 1;

/// Largest number of elements per vector.
pub const MAX_DIM: u32 = 4096;
/// Largest number of results per search.
pub const MAX_K: u32 = 4096;
/// Largest number of vectors per insert or delete.
pub const MAX_BATCH: u32 = 65536;
/// Most results of one batch search (`nq * k`).
pub const MAX_RESULTS: u32 = 1 << 20;
/// Largest HNSW candidate list size.
pub const MAX_EF: u32 = 65536;
/// Most ids in the allow-list of a [`Filter`].
pub const MAX_FILTER_IDS: u32 = 1 << 20;
/// Largest valid vector id (`u64::MAX` is reserved).
pub const ID_MAX: u64 = u64::MAX - 1;

/// Element type: IEEE-754 binary32 bit patterns.
pub const ELEM_F32: u32 = 1;
/// Element type: signed 8-bit integers.
pub const ELEM_I8: u32 = 2;

/// Metric: squared Euclidean distance.
pub const METRIC_L2: u32 = 1;
/// Metric: negated inner product.
pub const METRIC_IP: u32 = 2;
/// Metric: 1 - cosine similarity.
pub const METRIC_COSINE: u32 = 3;

/// `vexfs_insert.flags`: replace the vectors of ids already in the collection.
pub const INSERT_UPSERT: u32 = 1 << 0;
/// `vexfs_search.flags`: scan every vector, no index.
pub const SEARCH_EXACT: u32 = 1 << 0;
/// `vexfs_search.flags`: fill in `vexfs_search.stats`.
pub const SEARCH_STATS: u32 = 1 << 1;
/// `vexfs_search.flags`: return only what `vexfs_search.filter` admits.
pub const SEARCH_FILTER: u32 = 1 << 2;
/// `vexfs_search_stats.flags`: every admitted vector was considered.
pub const STATS_SCANNED: u32 = 1 << 0;
/// `vexfs_filter.flags`: ids from `id_min` to `id_max`.
pub const FILTER_RANGE: u32 = 1 << 0;
/// `vexfs_filter.flags`: ids in the list at `ids`.
pub const FILTER_IDS: u32 = 1 << 1;
/// `vexfs_build_index.flags`: also drop deleted records from the file.
pub const BUILD_COMPACT: u32 = 1 << 0;

/// `vexfs_stats.index_state`: not built since mount.
pub const INDEX_NONE: u32 = 0;
/// `vexfs_stats.index_state`: built and up to date.
pub const INDEX_READY: u32 = 1;
/// `VEXFS_INDEX_RESTORED`: the index was loaded from its saved copy.
pub const INDEX_RESTORED: u32 = 1 << 0;
/// `VEXFS_INDEX_SAVED`: the saved copy of the index is up to date.
pub const INDEX_SAVED: u32 = 1 << 1;

/// `struct vexfs_collection_params`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CollectionParams {
    /// [`UAPI_VERSION`].
    pub version: u32,
    /// Elements per vector, 1..=[`MAX_DIM`].
    pub dim: u32,
    /// `ELEM_*`.
    pub elem_type: u32,
    /// `METRIC_*`.
    pub metric: u32,
    /// HNSW links per node and layer (0: default 16; 2..=64).
    pub hnsw_m: u32,
    /// HNSW candidate list size while inserting (0: default 200).
    pub hnsw_ef_construction: u32,
    /// Must be zero.
    pub flags: u32,
    /// Must be zero.
    pub reserved: [u32; 9],
}

/// `struct vexfs_insert`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Insert {
    /// [`UAPI_VERSION`].
    pub version: u32,
    /// Number of vectors, 1..=[`MAX_BATCH`].
    pub count: u32,
    /// Must be zero.
    pub flags: u32,
    /// Must be zero.
    pub pad: u32,
    /// User address of `count` `u64` ids.
    pub ids: u64,
    /// User address of `count * dim` elements.
    pub vectors: u64,
    /// Must be zero.
    pub reserved: [u64; 4],
}

/// `struct vexfs_delete`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delete {
    /// [`UAPI_VERSION`].
    pub version: u32,
    /// Number of ids, 1..=[`MAX_BATCH`].
    pub count: u32,
    /// User address of `count` `u64` ids.
    pub ids: u64,
    /// Out: how many ids were found and deleted.
    pub deleted: u32,
    /// Must be zero.
    pub pad: u32,
    /// Must be zero.
    pub reserved: [u64; 4],
}

/// `struct vexfs_search`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Search {
    /// [`UAPI_VERSION`].
    pub version: u32,
    /// Neighbours wanted, 1..=[`MAX_K`].
    pub k: u32,
    /// HNSW candidate list size (0: `max(k, 64)`).
    pub ef: u32,
    /// `SEARCH_*`.
    pub flags: u32,
    /// User address of the query vector.
    pub query: u64,
    /// User address of room for `k` `u64` ids.
    pub ids: u64,
    /// User address of room for `k` `u32` binary32 distances (0 to skip).
    pub distances: u64,
    /// Out: number of results written.
    pub count: u32,
    /// Must be zero.
    pub pad: u32,
    /// With [`SEARCH_STATS`]: user address of a [`SearchStats`]; zero otherwise.
    pub stats: u64,
    /// With [`SEARCH_FILTER`]: user address of a [`Filter`]; zero otherwise.
    pub filter: u64,
    /// Must be zero.
    pub reserved: [u64; 2],
}

/// `struct vexfs_filter`: which vectors a search may return ([`SEARCH_FILTER`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// [`UAPI_VERSION`].
    pub version: u32,
    /// `FILTER_*`, at least one (with both, an id must pass both).
    pub flags: u32,
    /// With [`FILTER_RANGE`]: the smallest id admitted; zero otherwise.
    pub id_min: u64,
    /// With [`FILTER_RANGE`]: the largest id admitted; zero otherwise.
    pub id_max: u64,
    /// With [`FILTER_IDS`]: user address of `count` `u64` ids; zero otherwise.
    pub ids: u64,
    /// With [`FILTER_IDS`]: 1..=[`MAX_FILTER_IDS`]; zero otherwise.
    pub count: u32,
    /// Must be zero.
    pub pad: u32,
    /// Must be zero.
    pub reserved: [u64; 3],
}

/// `struct vexfs_search_batch`: `nq` searches in one call.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SearchBatch {
    /// [`UAPI_VERSION`].
    pub version: u32,
    /// Neighbours wanted per query, 1..=[`MAX_K`].
    pub k: u32,
    /// HNSW candidate list size (0: `max(k, 64)`).
    pub ef: u32,
    /// [`SEARCH_EXACT`], [`SEARCH_FILTER`].
    pub flags: u32,
    /// Number of queries, 1..=[`MAX_BATCH`], `nq * k <=` [`MAX_RESULTS`].
    pub nq: u32,
    /// Must be zero.
    pub pad: u32,
    /// User address of the `nq` query vectors.
    pub queries: u64,
    /// User address of room for `nq * k` `u64` ids, query `i` from `i * k`.
    pub ids: u64,
    /// User address of room for `nq * k` `u32` binary32 distances (0 to skip).
    pub distances: u64,
    /// User address of room for `nq` `u32` result counts.
    pub counts: u64,
    /// With [`SEARCH_FILTER`]: user address of a [`Filter`] for every query; zero otherwise.
    pub filter: u64,
    /// Must be zero.
    pub reserved: [u64; 2],
}

/// `struct vexfs_get`: vectors by id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Get {
    /// [`UAPI_VERSION`].
    pub version: u32,
    /// Number of ids, 1..=[`MAX_BATCH`].
    pub count: u32,
    /// User address of `count` `u64` ids.
    pub ids: u64,
    /// User address of room for `count` vectors, filled bit for bit as inserted.
    pub vectors: u64,
    /// Must be zero.
    pub reserved: [u64; 5],
}

/// `struct vexfs_search_stats`: what one search did.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SearchStats {
    /// Distances computed while searching.
    pub distances: u64,
    /// Exact distances computed for the final ranking.
    pub rescored: u64,
    /// HNSW nodes whose links were followed.
    pub expanded: u64,
    /// Time in the search, in the kernel, in nanoseconds.
    pub nanoseconds: u64,
    /// Vectors the search could return: the live ones, or those its filter admits.
    pub admitted: u64,
    /// [`STATS_SCANNED`] if every admitted vector was considered (exact results).
    pub flags: u32,
    /// Zero.
    pub pad: u32,
    /// HNSW neighbours passed over on their sign codes alone (cosine, 256 elements or more).
    pub passed: u64,
    /// Zero.
    pub reserved: u64,
}

/// `struct vexfs_build_index`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuildIndex {
    /// [`UAPI_VERSION`].
    pub version: u32,
    /// `BUILD_*`.
    pub flags: u32,
    /// Must be zero.
    pub reserved: [u64; 4],
}

/// `struct vexfs_stats`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// In: [`UAPI_VERSION`].
    pub version: u32,
    /// Out: `INDEX_*`.
    pub index_state: u32,
    /// Out: the collection's parameters.
    pub params: CollectionParams,
    /// Out: live vectors.
    pub count: u64,
    /// Out: deleted records still in the file or the index.
    pub deleted: u64,
    /// Out: size of the collection file.
    pub file_bytes: u64,
    /// Out: kernel memory used by the index.
    pub index_bytes: u64,
    /// Out: size of the index saved in the collection file (0: none).
    pub saved_bytes: u64,
    /// Out: how long the last load of the index took, restored or rebuilt.
    pub load_nanoseconds: u64,
    /// Out: `INDEX_RESTORED`, `INDEX_SAVED`.
    pub index_flags: u32,
    /// Must be zero.
    pub pad: u32,
    /// Out: kernel memory used by the indexes of all collections of the file system, which
    /// share its index budget (mount option `index_budget=`).
    pub mount_index_bytes: u64,
}

const _: () = {
    assert!(core::mem::size_of::<CollectionParams>() == 64);
    assert!(core::mem::size_of::<Insert>() == 64);
    assert!(core::mem::size_of::<Delete>() == 56);
    assert!(core::mem::size_of::<Search>() == 80);
    assert!(core::mem::size_of::<BuildIndex>() == 40);
    assert!(core::mem::size_of::<Stats>() == 136);
    assert!(core::mem::size_of::<SearchBatch>() == 80);
    assert!(core::mem::size_of::<Get>() == 64);
    assert!(core::mem::size_of::<Filter>() == 64);
};

/// The ioctl magic number, `VEXFS_IOC_MAGIC`.
pub const IOC_MAGIC: u32 = 0xBE;

const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | (IOC_MAGIC << 8) | nr
}
const IOC_WRITE: u32 = 1;
const IOC_READWRITE: u32 = 3;

/// `VEXFS_IOC_CREATE`.
pub const IOC_CREATE: u32 = ioc(IOC_WRITE, 1, core::mem::size_of::<CollectionParams>());
/// `VEXFS_IOC_INSERT`.
pub const IOC_INSERT: u32 = ioc(IOC_WRITE, 2, core::mem::size_of::<Insert>());
/// `VEXFS_IOC_DELETE`.
pub const IOC_DELETE: u32 = ioc(IOC_READWRITE, 3, core::mem::size_of::<Delete>());
/// `VEXFS_IOC_SEARCH`.
pub const IOC_SEARCH: u32 = ioc(IOC_READWRITE, 4, core::mem::size_of::<Search>());
/// `VEXFS_IOC_BUILD_INDEX`.
pub const IOC_BUILD_INDEX: u32 = ioc(IOC_WRITE, 5, core::mem::size_of::<BuildIndex>());
/// `VEXFS_IOC_STATS`.
pub const IOC_STATS: u32 = ioc(IOC_READWRITE, 6, core::mem::size_of::<Stats>());
/// `VEXFS_IOC_SEARCH_BATCH`.
pub const IOC_SEARCH_BATCH: u32 = ioc(IOC_WRITE, 7, core::mem::size_of::<SearchBatch>());
/// `VEXFS_IOC_GET`.
pub const IOC_GET: u32 = ioc(IOC_WRITE, 8, core::mem::size_of::<Get>());

/// Marker for the argument structures of the VexFS ioctls.
pub trait IoctlArg: Copy {}
impl IoctlArg for CollectionParams {}
impl IoctlArg for Insert {}
impl IoctlArg for Delete {}
impl IoctlArg for Search {}
impl IoctlArg for BuildIndex {}
impl IoctlArg for Stats {}
impl IoctlArg for SearchBatch {}
impl IoctlArg for Get {}

/// Issues ioctl `cmd` on `fd` with `arg` (read and, for `_IOWR` ones, written by the kernel).
///
/// The user addresses inside `arg` (ids, vectors, ...) must point to buffers of the sizes the
/// ioctl documents, or be deliberately bad: the kernel checks them and fails with `EFAULT`, so
/// this function is safe to call with any values.
pub fn ioctl<T: IoctlArg>(fd: &impl AsRawFd, cmd: u32, arg: &mut T) -> io::Result<i32> {
    // SAFETY: `arg` is a valid, writable structure of the size encoded in `cmd` (the `IOC_*`
    // constants are built from the sizes of these types); the kernel validates every user
    // address it contains and does not keep any of them.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::Ioctl::from(cmd), arg as *mut T) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Issues a raw ioctl with an arbitrary command and argument, for tests of the rejection paths.
pub fn ioctl_raw(fd: &impl AsRawFd, cmd: u32, arg: usize) -> io::Result<i32> {
    // SAFETY: The kernel validates `arg` as a user address; a bad one only yields `EFAULT`.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::Ioctl::from(cmd), arg) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `struct vexfs_collection_params` for `dim`, `elem_type` and `metric` with default HNSW
/// parameters.
pub fn params(dim: u32, elem_type: u32, metric: u32) -> CollectionParams {
    CollectionParams {
        version: UAPI_VERSION,
        dim,
        elem_type,
        metric,
        ..Default::default()
    }
}

/// `FS_IOC_SHUTDOWN` of `<linux/fs.h>` (`_IOR('X', 125, __u32)`), which VexFS supports.
pub const FS_IOC_SHUTDOWN: u32 = (2 << 30) | (4 << 16) | ((b'X' as u32) << 8) | 125;
/// `FS_SHUTDOWN_FLAGS_DEFAULT`: write everything out, frozen, then shut down.
pub const FS_SHUTDOWN_FLAGS_DEFAULT: u32 = 0;
/// `FS_SHUTDOWN_FLAGS_LOGFLUSH`: write out the changed metadata blocks, then shut down.
pub const FS_SHUTDOWN_FLAGS_LOGFLUSH: u32 = 1;
/// `FS_SHUTDOWN_FLAGS_NOLOGFLUSH`: shut down at once.
pub const FS_SHUTDOWN_FLAGS_NOLOGFLUSH: u32 = 2;

/// Shuts down the file system of `fd` (`FS_IOC_SHUTDOWN`) with `flags`.
pub fn shutdown(fd: &impl AsRawFd, flags: u32) -> io::Result<()> {
    let mut flags = flags;
    // SAFETY: The argument is a valid `__u32` that the kernel only reads.
    let ret = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::Ioctl::from(FS_IOC_SHUTDOWN),
            &mut flags as *mut u32,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{
        offset_of,
        size_of, //
    };

    #[test]
    fn sizes_match_the_header() {
        assert_eq!(size_of::<CollectionParams>(), 64);
        assert_eq!(size_of::<Insert>(), 64);
        assert_eq!(size_of::<Delete>(), 56);
        assert_eq!(size_of::<Search>(), 80);
        assert_eq!(size_of::<BuildIndex>(), 40);
        assert_eq!(size_of::<Stats>(), 136);
        assert_eq!(size_of::<SearchStats>(), 64);
    }

    #[test]
    fn offsets_match_the_header() {
        assert_eq!(offset_of!(CollectionParams, flags), 24);
        assert_eq!(offset_of!(CollectionParams, reserved), 28);
        assert_eq!(offset_of!(Insert, vectors), 24);
        assert_eq!(offset_of!(Insert, reserved), 32);
        assert_eq!(offset_of!(Delete, ids), 8);
        assert_eq!(offset_of!(Delete, reserved), 24);
        assert_eq!(offset_of!(Search, query), 16);
        assert_eq!(offset_of!(Search, ids), 24);
        assert_eq!(offset_of!(Search, distances), 32);
        assert_eq!(offset_of!(Search, stats), 48);
        assert_eq!(offset_of!(Search, filter), 56);
        assert_eq!(offset_of!(Search, reserved), 64);
        assert_eq!(offset_of!(SearchBatch, filter), 56);
        assert_eq!(offset_of!(Filter, ids), 24);
        assert_eq!(offset_of!(Filter, count), 32);
        assert_eq!(offset_of!(Filter, reserved), 40);
        assert_eq!(offset_of!(SearchStats, nanoseconds), 24);
        assert_eq!(offset_of!(SearchStats, admitted), 32);
        assert_eq!(offset_of!(SearchStats, flags), 40);
        assert_eq!(offset_of!(SearchStats, passed), 48);
        assert_eq!(offset_of!(BuildIndex, reserved), 8);
        assert_eq!(offset_of!(Stats, deleted), 80);
        assert_eq!(offset_of!(Stats, file_bytes), 88);
        assert_eq!(offset_of!(Stats, index_bytes), 96);
        assert_eq!(offset_of!(SearchBatch, queries), 24);
        assert_eq!(offset_of!(SearchBatch, counts), 48);
        assert_eq!(offset_of!(Get, vectors), 16);
        assert_eq!(offset_of!(Stats, saved_bytes), 104);
        assert_eq!(offset_of!(Stats, load_nanoseconds), 112);
        assert_eq!(offset_of!(Stats, index_flags), 120);
        assert_eq!(offset_of!(Stats, mount_index_bytes), 128);
    }

    #[test]
    fn ioctl_numbers() {
        // Values computed by the C macros of <linux/ioctl.h> on x86_64.
        assert_eq!(IOC_CREATE, 0x4040_be01);
        assert_eq!(IOC_INSERT, 0x4040_be02);
        assert_eq!(IOC_DELETE, 0xc038_be03);
        assert_eq!(IOC_SEARCH, 0xc050_be04);
        assert_eq!(IOC_BUILD_INDEX, 0x4028_be05);
        assert_eq!(IOC_STATS, 0xc088_be06);
        assert_eq!(IOC_SEARCH_BATCH, 0x4050_be07);
        assert_eq!(IOC_GET, 0x4040_be08);
    }
}
