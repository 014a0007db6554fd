// SPDX-License-Identifier: GPL-2.0

//! The ioctl interface of VexFS vector collections, from
//! `include/uapi/linux/vexfs.h`.
//!
//! The structures mirror the C header field for field; their sizes and field
//! offsets are checked at compile time and by the unit tests, and the ioctl
//! numbers are computed with the `_IOW`/`_IOWR` encoding of the generic
//! (x86, arm64, riscv) `asm-generic/ioctl.h`.

use std::mem::{
    offset_of,
    size_of, //
};

/// Version of the argument structures.
pub const VEXFS_UAPI_VERSION: u32 = 1;

/// Largest number of elements per vector.
pub const VEXFS_MAX_DIM: u32 = 4096;
/// Largest number of results per search.
pub const VEXFS_MAX_K: u32 = 4096;
/// Largest number of vectors per insert or delete.
pub const VEXFS_MAX_BATCH: u32 = 65536;
/// Largest HNSW candidate list size.
pub const VEXFS_MAX_EF: u32 = 65536;
/// Largest valid vector id.
pub const VEXFS_ID_MAX: u64 = u64::MAX - 1;

/// Element type: IEEE-754 binary32 bit patterns.
pub const VEXFS_ELEM_F32: u32 = 1;
/// Element type: signed 8-bit integers.
pub const VEXFS_ELEM_I8: u32 = 2;

/// Metric: squared Euclidean distance.
pub const VEXFS_METRIC_L2: u32 = 1;
/// Metric: negated inner product.
pub const VEXFS_METRIC_IP: u32 = 2;
/// Metric: 1 - cosine similarity.
pub const VEXFS_METRIC_COSINE: u32 = 3;

/// Search flag: scan every vector, no index.
pub const VEXFS_SEARCH_EXACT: u32 = 1 << 0;
/// Build flag: also drop deleted records from the file.
pub const VEXFS_BUILD_COMPACT: u32 = 1 << 0;

/// Index state: not built since mount (searches build it).
pub const VEXFS_INDEX_NONE: u32 = 0;
/// Index state: built and up to date.
pub const VEXFS_INDEX_READY: u32 = 1;

/// `struct vexfs_collection_params`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CollectionParams {
    /// `VEXFS_UAPI_VERSION`.
    pub version: u32,
    /// Elements per vector.
    pub dim: u32,
    /// `VEXFS_ELEM_*`.
    pub elem_type: u32,
    /// `VEXFS_METRIC_*`.
    pub metric: u32,
    /// HNSW links per node and layer (0: default).
    pub hnsw_m: u32,
    /// HNSW candidate list size while inserting (0: default).
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
    /// `VEXFS_UAPI_VERSION`.
    pub version: u32,
    /// Number of vectors.
    pub count: u32,
    /// Must be zero.
    pub flags: u32,
    /// Must be zero.
    pub pad: u32,
    /// User address of `count` ids.
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
    /// `VEXFS_UAPI_VERSION`.
    pub version: u32,
    /// Number of ids.
    pub count: u32,
    /// User address of `count` ids.
    pub ids: u64,
    /// Out: how many ids were deleted.
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
    /// `VEXFS_UAPI_VERSION`.
    pub version: u32,
    /// Neighbours wanted.
    pub k: u32,
    /// HNSW candidate list size (0: default).
    pub ef: u32,
    /// `VEXFS_SEARCH_*`.
    pub flags: u32,
    /// User address of the query vector.
    pub query: u64,
    /// User address of room for `k` ids.
    pub ids: u64,
    /// User address of room for `k` binary32 distances (0 to skip).
    pub distances: u64,
    /// Out: number of results written.
    pub count: u32,
    /// Must be zero.
    pub pad: u32,
    /// Must be zero.
    pub reserved: [u64; 4],
}

/// `struct vexfs_build_index`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuildIndex {
    /// `VEXFS_UAPI_VERSION`.
    pub version: u32,
    /// `VEXFS_BUILD_*`.
    pub flags: u32,
    /// Must be zero.
    pub reserved: [u64; 4],
}

/// `struct vexfs_stats`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// In: `VEXFS_UAPI_VERSION`.
    pub version: u32,
    /// Out: `VEXFS_INDEX_*`.
    pub index_state: u32,
    /// Out: the parameters of the collection.
    pub params: CollectionParams,
    /// Out: live vectors.
    pub count: u64,
    /// Out: deleted records still in the file or the index.
    pub deleted: u64,
    /// Out: size of the collection file.
    pub file_bytes: u64,
    /// Out: kernel memory used by the index.
    pub index_bytes: u64,
    /// Must be zero.
    pub reserved: [u64; 4],
}

const _: () = {
    assert!(size_of::<CollectionParams>() == 64);
    assert!(size_of::<Insert>() == 64);
    assert!(size_of::<Delete>() == 56);
    assert!(size_of::<Search>() == 80);
    assert!(size_of::<BuildIndex>() == 40);
    assert!(size_of::<Stats>() == 136);
    assert!(offset_of!(Insert, ids) == 16);
    assert!(offset_of!(Delete, deleted) == 16);
    assert!(offset_of!(Search, count) == 40);
    assert!(offset_of!(Stats, params) == 8);
    assert!(offset_of!(Stats, count) == 72);
};

const IOC_NRBITS: u32 = 8;
const IOC_TYPEBITS: u32 = 8;
const IOC_SIZEBITS: u32 = 14;
const IOC_NRSHIFT: u32 = 0;
const IOC_TYPESHIFT: u32 = IOC_NRSHIFT + IOC_NRBITS;
const IOC_SIZESHIFT: u32 = IOC_TYPESHIFT + IOC_TYPEBITS;
const IOC_DIRSHIFT: u32 = IOC_SIZESHIFT + IOC_SIZEBITS;
const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

/// `_IOC(dir, type, nr, size)`.
const fn ioc(dir: u32, ty: u32, nr: u32, size: usize) -> u32 {
    assert!(size < (1 << IOC_SIZEBITS));
    (dir << IOC_DIRSHIFT)
        | (ty << IOC_TYPESHIFT)
        | (nr << IOC_NRSHIFT)
        | ((size as u32) << IOC_SIZESHIFT)
}

/// Magic of the VexFS ioctls.
pub const VEXFS_IOC_MAGIC: u32 = 0xBE;
/// `_IOW(VEXFS_IOC_MAGIC, 1, struct vexfs_collection_params)`.
pub const VEXFS_IOC_CREATE: u32 = ioc(IOC_WRITE, VEXFS_IOC_MAGIC, 1, size_of::<CollectionParams>());
/// `_IOW(VEXFS_IOC_MAGIC, 2, struct vexfs_insert)`.
pub const VEXFS_IOC_INSERT: u32 = ioc(IOC_WRITE, VEXFS_IOC_MAGIC, 2, size_of::<Insert>());
/// `_IOWR(VEXFS_IOC_MAGIC, 3, struct vexfs_delete)`.
pub const VEXFS_IOC_DELETE: u32 = ioc(
    IOC_READ | IOC_WRITE,
    VEXFS_IOC_MAGIC,
    3,
    size_of::<Delete>(),
);
/// `_IOWR(VEXFS_IOC_MAGIC, 4, struct vexfs_search)`.
pub const VEXFS_IOC_SEARCH: u32 = ioc(
    IOC_READ | IOC_WRITE,
    VEXFS_IOC_MAGIC,
    4,
    size_of::<Search>(),
);
/// `_IOW(VEXFS_IOC_MAGIC, 5, struct vexfs_build_index)`.
pub const VEXFS_IOC_BUILD_INDEX: u32 = ioc(IOC_WRITE, VEXFS_IOC_MAGIC, 5, size_of::<BuildIndex>());
/// `_IOWR(VEXFS_IOC_MAGIC, 6, struct vexfs_stats)`.
pub const VEXFS_IOC_STATS: u32 = ioc(IOC_READ | IOC_WRITE, VEXFS_IOC_MAGIC, 6, size_of::<Stats>());

/// Name of an element type.
pub fn elem_type_name(t: u32) -> &'static str {
    match t {
        VEXFS_ELEM_F32 => "f32",
        VEXFS_ELEM_I8 => "i8",
        _ => "unknown",
    }
}

/// Name of a metric.
pub fn metric_name(m: u32) -> &'static str {
    match m {
        VEXFS_METRIC_L2 => "l2",
        VEXFS_METRIC_IP => "ip",
        VEXFS_METRIC_COSINE => "cosine",
        _ => "unknown",
    }
}

/// Name of an index state.
pub fn index_state_name(s: u32) -> &'static str {
    match s {
        VEXFS_INDEX_NONE => "none",
        VEXFS_INDEX_READY => "ready",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_header() {
        assert_eq!(size_of::<CollectionParams>(), 64);
        assert_eq!(size_of::<Insert>(), 64);
        assert_eq!(size_of::<Delete>(), 56);
        assert_eq!(size_of::<Search>(), 80);
        assert_eq!(size_of::<BuildIndex>(), 40);
        assert_eq!(size_of::<Stats>(), 136);
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
        assert_eq!(offset_of!(Search, reserved), 48);
        assert_eq!(offset_of!(BuildIndex, reserved), 8);
        assert_eq!(offset_of!(Stats, deleted), 80);
        assert_eq!(offset_of!(Stats, file_bytes), 88);
        assert_eq!(offset_of!(Stats, index_bytes), 96);
        assert_eq!(offset_of!(Stats, reserved), 104);
    }

    #[test]
    fn ioctl_numbers() {
        // Computed by hand from _IOW/_IOWR with the sizes above.
        assert_eq!(VEXFS_IOC_CREATE, 0x4040_be01);
        assert_eq!(VEXFS_IOC_INSERT, 0x4040_be02);
        assert_eq!(VEXFS_IOC_DELETE, 0xc038_be03);
        assert_eq!(VEXFS_IOC_SEARCH, 0xc050_be04);
        assert_eq!(VEXFS_IOC_BUILD_INDEX, 0x4028_be05);
        assert_eq!(VEXFS_IOC_STATS, 0xc088_be06);
    }
}
