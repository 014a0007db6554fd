// SPDX-License-Identifier: GPL-2.0

//! The ioctl interface of VexFS vector collections (the `vexfs-uapi` crate,
//! a mirror of `include/uapi/linux/vexfs.h`) and the names of its values.

pub use vexfs_uapi::*;

/// Name of an element type.
pub fn elem_type_name(t: u32) -> &'static str {
    match t {
        ELEM_F32 => "f32",
        ELEM_I8 => "i8",
        _ => "unknown",
    }
}

/// Name of a metric.
pub fn metric_name(m: u32) -> &'static str {
    match m {
        METRIC_L2 => "l2",
        METRIC_IP => "ip",
        METRIC_COSINE => "cosine",
        _ => "unknown",
    }
}

/// Name of an index state.
pub fn index_state_name(s: u32) -> &'static str {
    match s {
        INDEX_NONE => "none",
        INDEX_READY => "ready",
        _ => "unknown",
    }
}
