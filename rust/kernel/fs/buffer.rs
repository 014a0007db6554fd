// SPDX-License-Identifier: GPL-2.0

//! Buffer heads: blocks of a block device in the buffer cache.
//!
//! File systems read and write their metadata blocks through buffer heads obtained from
//! [`SuperBlock::bread`](super::sb::SuperBlock::bread). The content of a buffer is only accessed
//! with the buffer locked, through a [`BufferGuard`].
//!
//! C header: [`include/linux/buffer_head.h`](srctree/include/linux/buffer_head.h).

use crate::{
    bindings,
    error::to_result,
    prelude::*,
    sync::aref::AlwaysRefCounted,
    types::Opaque, //
};
use core::ptr::NonNull;

/// A buffer head.
///
/// # Invariants
///
/// The wrapped `struct buffer_head` is valid and mapped to a block of a device, with `b_data`
/// pointing to `b_size` bytes, as long as a reference is held.
#[repr(transparent)]
pub struct BufferHead(Opaque<bindings::buffer_head>);

// SAFETY: Buffer heads may be used and released on any thread; their content is only accessed
// under the buffer lock.
unsafe impl Send for BufferHead {}

// SAFETY: As above.
unsafe impl Sync for BufferHead {}

// SAFETY: `get_bh`/`put_bh` maintain the reference count.
unsafe impl AlwaysRefCounted for BufferHead {
    fn inc_ref(&self) {
        // SAFETY: The existence of `self` means the count is non-zero.
        unsafe { bindings::get_bh(self.0.get()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller owns a reference to give up.
        unsafe { bindings::put_bh(obj.as_ptr().cast()) };
    }
}

impl BufferHead {
    /// Locks the buffer, waiting for I/O on it to complete, to access its content.
    pub fn lock(&self) -> BufferGuard<'_> {
        // SAFETY: The buffer head is valid.
        unsafe { bindings::lock_buffer(self.0.get()) };
        BufferGuard(self)
    }

    /// Writes the buffer if it is dirty and waits for the write to complete.
    ///
    /// The buffer must not be locked by the caller.
    pub fn sync(&self) -> Result {
        // SAFETY: The buffer head is valid.
        to_result(unsafe { bindings::sync_dirty_buffer(self.0.get()) })
    }
}

/// A locked buffer, giving access to its content.
///
/// # Invariants
///
/// The buffer is locked by this guard, which unlocks it when dropped.
pub struct BufferGuard<'a>(&'a BufferHead);

impl BufferGuard<'_> {
    /// The content of the block.
    pub fn data(&self) -> &[u8] {
        let bh = self.0 .0.get();
        // SAFETY: `b_data` points to `b_size` bytes, which nobody else accesses while the buffer
        // is locked by us.
        unsafe { core::slice::from_raw_parts((*bh).b_data.cast(), (*bh).b_size) }
    }

    /// The content of the block, for writing. Call [`BufferGuard::mark_dirty`] after a change.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let bh = self.0 .0.get();
        // SAFETY: As in `data`; the guard is borrowed mutably, so the slice is unique.
        unsafe { core::slice::from_raw_parts_mut((*bh).b_data.cast(), (*bh).b_size) }
    }

    /// Marks the buffer dirty, to be written back.
    pub fn mark_dirty(&mut self) {
        // SAFETY: The buffer head is valid.
        unsafe { bindings::mark_buffer_dirty(self.0 .0.get()) };
    }

    /// Marks the content as valid, for a buffer that was filled without reading it.
    pub fn set_uptodate(&mut self) {
        // SAFETY: The buffer head is valid and locked.
        unsafe { bindings::set_buffer_uptodate(self.0 .0.get()) };
    }
}

impl Drop for BufferGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: The buffer is locked by this guard (type invariant).
        unsafe { bindings::unlock_buffer(self.0 .0.get()) };
    }
}
