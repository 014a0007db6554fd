// SPDX-License-Identifier: GPL-2.0

//! User-space build of the in-kernel vector engine of VexFS:
//! `fs/vexfs/vecmath.rs` (integer distance arithmetic) and `fs/vexfs/hnsw.rs`
//! (the HNSW index), compiled unchanged against `kernel-shim`, a user-space
//! stand-in for the kernel crate.
//!
//! - `cargo test` runs the engine's KUnit cases (`#[kunit_tests]` modules
//!   become `#[cfg(test)]` modules; the test names carry the module path).
//! - [`engine`] is the only code that calls into the engine: the benchmark
//!   (`vexfs-engine-bench`) goes through it. When the engine's API changes,
//!   that one file follows.
//!
//! Like the kernel crate, this library is `no_std` outside the tests.

#![cfg_attr(not(test), no_std)]

// Items unused here are used by fs/vexfs/vector/ in the kernel.
#[allow(dead_code)]
#[path = "../../../../fs/vexfs/vecmath.rs"]
mod vecmath;

#[allow(dead_code)]
#[path = "../../../../fs/vexfs/hnsw.rs"]
mod hnsw;

pub mod engine;
