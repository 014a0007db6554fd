// SPDX-License-Identifier: GPL-2.0

//! The structures of the VexFS ioctls as plain data.
//!
//! [`FromBytes`] and [`AsBytes`] for the structures of `include/uapi/linux/vexfs.h`, so that
//! VexFS reads its ioctl arguments with [`UserSliceReader::read`] and writes them back with
//! [`UserSliceWriter::write`], field by field and without `unsafe` code of its own (binder
//! does the same for its structures in `drivers/android/binder/defs.rs`).
//!
//! Each structure is listed with its fields and their types, which are checked at compile
//! time: the types against the bindings, the offsets against a tiling of the structure with no
//! gap and no tail. So every structure is integers (or arrays or structures of them) without
//! padding: every bit pattern is valid and every byte is initialised.
//!
//! C header: [`include/uapi/linux/vexfs.h`](srctree/include/uapi/linux/vexfs.h)
//!
//! [`UserSliceReader::read`]: crate::uaccess::UserSliceReader::read
//! [`UserSliceWriter::write`]: crate::uaccess::UserSliceWriter::write

use crate::{
    transmute::{
        AsBytes,
        FromBytes, //
    },
    uapi,
};
use core::mem::{
    offset_of,
    size_of, //
};

macro_rules! plain {
    ($($t:ident { $($f:ident: $ft:ty),* $(,)? })*) => {$(
        const _: () = {
            // The fields have these types...
            $(let _: fn(&uapi::$t) -> &$ft = |s| &s.$f;)*
            // ...and tile the structure.
            let mut at = 0;
            $(
                assert!(offset_of!(uapi::$t, $f) == at);
                at += size_of::<$ft>();
            )*
            assert!(at == size_of::<uapi::$t>());
        };
        // SAFETY: The fields of `uapi::$t` are integers, arrays of integers or structures
        // listed here, whose every bit pattern is valid (checked above); it has no interior
        // mutability.
        unsafe impl FromBytes for uapi::$t {}
        // SAFETY: The fields tile the structure without padding (checked above) and are
        // integers, arrays of integers or structures listed here: no byte is uninitialised.
        // No interior mutability.
        unsafe impl AsBytes for uapi::$t {}
    )*};
}

plain! {
    vexfs_collection_params {
        version: u32,
        dim: u32,
        elem_type: u32,
        metric: u32,
        hnsw_m: u32,
        hnsw_ef_construction: u32,
        flags: u32,
        reserved: [u32; 9],
    }
    vexfs_insert {
        version: u32,
        count: u32,
        flags: u32,
        __pad: u32,
        ids: u64,
        vectors: u64,
        reserved: [u64; 4],
    }
    vexfs_delete {
        version: u32,
        count: u32,
        ids: u64,
        deleted: u32,
        __pad: u32,
        reserved: [u64; 4],
    }
    vexfs_filter {
        version: u32,
        flags: u32,
        id_min: u64,
        id_max: u64,
        ids: u64,
        count: u32,
        __pad: u32,
        reserved: [u64; 3],
    }
    vexfs_search_stats {
        distances: u64,
        rescored: u64,
        expanded: u64,
        nanoseconds: u64,
        admitted: u64,
        flags: u32,
        __pad: u32,
        passed: u64,
        reserved: u64,
    }
    vexfs_search {
        version: u32,
        k: u32,
        ef: u32,
        flags: u32,
        query: u64,
        ids: u64,
        distances: u64,
        count: u32,
        __pad: u32,
        stats: u64,
        filter: u64,
        reserved: [u64; 2],
    }
    vexfs_search_batch {
        version: u32,
        k: u32,
        ef: u32,
        flags: u32,
        nq: u32,
        __pad: u32,
        queries: u64,
        ids: u64,
        distances: u64,
        counts: u64,
        filter: u64,
        reserved: [u64; 2],
    }
    vexfs_get {
        version: u32,
        count: u32,
        ids: u64,
        vectors: u64,
        reserved: [u64; 5],
    }
    vexfs_build_index {
        version: u32,
        flags: u32,
        reserved: [u64; 4],
    }
    vexfs_stats {
        version: u32,
        index_state: u32,
        params: uapi::vexfs_collection_params,
        count: u64,
        deleted: u64,
        file_bytes: u64,
        index_bytes: u64,
        saved_bytes: u64,
        load_nanoseconds: u64,
        index_flags: u32,
        __pad: u32,
        mount_index_bytes: u64,
    }
}
