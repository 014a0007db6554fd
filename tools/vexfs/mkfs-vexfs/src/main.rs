// SPDX-License-Identifier: GPL-2.0

//! `mkfs.vexfs`: creates a VexFS filesystem. See the `mkfs_vexfs` library.

fn main() {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    std::process::exit(mkfs_vexfs::run(&args));
}
