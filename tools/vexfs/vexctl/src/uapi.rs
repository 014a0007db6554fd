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

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{
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
        assert_eq!(IOC_CREATE, 0x4040_be01);
        assert_eq!(IOC_INSERT, 0x4040_be02);
        assert_eq!(IOC_DELETE, 0xc038_be03);
        assert_eq!(IOC_SEARCH, 0xc050_be04);
        assert_eq!(IOC_BUILD_INDEX, 0x4028_be05);
        assert_eq!(IOC_STATS, 0xc088_be06);
    }
}
