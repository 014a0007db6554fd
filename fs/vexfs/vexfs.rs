// SPDX-License-Identifier: GPL-2.0

//! VexFS: a vector-native file system.
//!
//! See `Documentation/filesystems/vexfs.rst`.

use kernel::{
    c_str,
    fs,
    prelude::*, //
};

kernel::module_fs! {
    type: VexFs,
    name: "vexfs",
    authors: ["VexFS Developers"],
    description: "VexFS vector-native file system",
    license: "GPL",
}

struct VexFs;

impl fs::FileSystem for VexFs {
    const NAME: &'static CStr = c_str!("vexfs");
    const SUPER_TYPE: fs::SuperType = fs::SuperType::BlockDev;
}
