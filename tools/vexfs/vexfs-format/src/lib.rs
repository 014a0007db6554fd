// SPDX-License-Identifier: GPL-2.0

//! User-space build of the VexFS on-disk format module, `fs/vexfs/format.rs`.
//!
//! The module is shared verbatim with the kernel, where it is a private
//! module and its items are `pub(crate)`. Such items cannot be re-exported
//! from a library, so every tool includes the module itself with
//! `#[path = "../../../../fs/vexfs/format.rs"] mod format;`. This crate builds
//! it as `no_std`, exactly as in the kernel, and holds its unit tests.

#![cfg_attr(not(test), no_std)]

// Items unused outside of the tests are still part of the kernel's API.
#[cfg_attr(not(test), allow(dead_code))]
#[path = "../../../../fs/vexfs/format.rs"]
mod format;

#[cfg(test)]
mod tests;
