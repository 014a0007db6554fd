// SPDX-License-Identifier: GPL-2.0

//! Short runs of the testers on the host's file system (not VexFS): they check that the
//! models are right, so that a failure in the VM is the file system's.

use crate::{
    fsstress,
    fsx,
    fuzz, //
};
use std::path::PathBuf;

/// A fresh directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("vexfs-stress-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temporary directory");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn fsstress_on_the_host() {
    let t = TempDir::new("fsstress");
    for seed in [1, 2] {
        let dir = t.0.join(format!("run{seed}"));
        let cfg = fsstress::Config {
            dir,
            procs: 3,
            ops: 400,
            seed,
            verify_every: 50,
            timeout: 300,
        };
        let s = fsstress::run(&cfg).unwrap_or_else(|e| panic!("{e}"));
        assert!(s.starts_with("fsstress: 3 procs, 1200 ops, "), "{s}");
        assert!(s.ends_with(&format!("seed {seed}")), "{s}");
    }
}

#[test]
fn fsx_on_the_host() {
    let t = TempDir::new("fsx");
    for seed in [5, 6, 7] {
        let cfg = fsx::Config {
            file: t.0.join(format!("f{seed}")),
            ops: 400,
            seed,
            max_size: 5 << 20,
            max_len: 256 << 10,
            timeout: 300,
            extents: false,
            direct: false,
            falloc: false,
        };
        let s = fsx::run(&cfg).unwrap_or_else(|e| panic!("{e}"));
        assert!(s.starts_with("fsx: 400 ops"), "{s}");
    }
}

#[test]
fn ioctl_fuzz_fails_cleanly_off_vexfs() {
    let t = TempDir::new("fuzz");
    let cfg = fuzz::Config {
        dir: t.0.clone(),
        procs: 2,
        calls: 100,
        collections: 2,
        seed: 3,
        timeout: 60,
    };
    let e = fuzz::run(&cfg).expect_err("no VexFS on the host");
    assert!(
        e.contains("VEXFS_IOC_CREATE") && e.contains("ENOTTY"),
        "{e}"
    );
}
