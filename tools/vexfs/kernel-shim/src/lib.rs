// SPDX-License-Identifier: GPL-2.0

//! A user-space stand-in for the subset of the kernel crate (`rust/kernel/`)
//! that the in-kernel vector engine of VexFS (`fs/vexfs/vecmath.rs`,
//! `fs/vexfs/hnsw.rs`) uses, so that those files build unchanged in user space
//! (`tools/vexfs/vexfs-engine`) for their unit tests and for benchmarks.
//!
//! The signatures mirror the kernel's (Linux 7.3): fallible allocation taking
//! [`alloc::Flags`], [`error::Error`] with the errno constants, the `pr_*!`
//! macros, `#[kunit_tests]`. Behaviour mirrors it where it shows: a vector
//! grows to `max(2 * capacity, needed)` as in `rust/kernel/alloc/kvec.rs`,
//! allocation failure is an [`alloc::AllocError`] rather than an abort, and a
//! `kmalloc` allocation ([`KVec`](alloc::KVec), [`KBox`](alloc::KBox)) above
//! `KMALLOC_MAX_SIZE` fails as it does in the kernel.
//!
//! Only what the engine needs is here. To extend it, copy the signature from
//! the kernel crate (`build/linux/rust/kernel/` after `make tree`) and give it
//! the simplest user-space body.

pub mod alloc;
pub mod error;
pub mod prefetch;
pub mod prelude;
pub mod print;

/// The C types of the kernel's `ffi` crate (the user-space ones are the same on
/// the 64-bit architectures VexFS supports).
pub mod ffi {
    pub use core::ffi::{
        c_char, c_int, c_long, c_longlong, c_schar, c_short, c_uchar, c_uint, c_ulong, c_ulonglong,
        c_ushort, c_void, CStr,
    };
}
