// SPDX-License-Identifier: GPL-2.0

//! File mappings for the iomap code: `FIEMAP`, `SEEK_HOLE` and `SEEK_DATA`.
//!
//! A file system describes the extents of a file with one callback, [`Operations::iomap_begin`],
//! which maps a range of the file to a range of the device or reports a hole there; the iomap
//! code of the kernel (`fs/iomap/`) iterates over a range with it. This is how ext2 reports its
//! extents while its buffered I/O stays on buffer heads ([`super::address_space`]).
//!
//! C header: [`include/linux/iomap.h`](srctree/include/linux/iomap.h).

use super::{
    inode::{
        FiemapExtentInfo,
        INode, //
    },
    FileSystem,
};
use crate::{
    bindings,
    error::from_result,
    prelude::*, //
};
use core::marker::PhantomData;

/// The flags of an iomap operation, passed to [`Operations::iomap_begin`] (`IOMAP_*` of
/// `iomap.h`); no flag means a read.
pub mod flags {
    /// The range is about to be written: holes must get blocks.
    pub const WRITE: u32 = bindings::IOMAP_WRITE;
    /// Zeroing: holes may stay holes.
    pub const ZERO: u32 = bindings::IOMAP_ZERO;
    /// Only reporting the extents (`FIEMAP`, `SEEK_HOLE`, `SEEK_DATA`, `bmap`).
    pub const REPORT: u32 = bindings::IOMAP_REPORT;
    /// Direct I/O.
    pub const DIRECT: u32 = bindings::IOMAP_DIRECT;
    /// The caller cannot block (`IOCB_NOWAIT`): fail with `EAGAIN` rather than wait.
    pub const NOWAIT: u32 = bindings::IOMAP_NOWAIT;
}

/// The mapping [`Operations::iomap_begin`] fills for the range starting at a file position:
/// a hole, or blocks of the device of the file system.
///
/// # Invariants
///
/// `raw` is a `struct iomap` exclusively lent to the callback for its duration, with `bdev`
/// set to the file system's block device; `blkbits` is the inode's `i_blkbits`.
pub struct IoMap<'a> {
    raw: &'a mut bindings::iomap,
    blkbits: u32,
}

impl IoMap<'_> {
    /// Reports a hole of `length` bytes at file offset `offset`.
    pub fn set_hole(&mut self, offset: i64, length: u64) {
        self.raw.type_ = bindings::IOMAP_HOLE as u16;
        self.raw.addr = bindings::IOMAP_NULL_ADDR as u64;
        self.raw.offset = offset;
        self.raw.length = length;
    }

    /// Reports `length` bytes at file offset `offset` stored from device block `block` on,
    /// contiguously.
    pub fn set_mapped(&mut self, offset: i64, length: u64, block: u64) {
        self.raw.type_ = bindings::IOMAP_MAPPED as u16;
        self.raw.addr = block << self.blkbits;
        self.raw.offset = offset;
        self.raw.length = length;
    }

    /// Says that the mapping is the merge of several of the file system's own extents
    /// (`IOMAP_F_MERGED`, reported as `FIEMAP_EXTENT_MERGED`), as block-pointer file systems
    /// do.
    pub fn set_merged(&mut self) {
        self.raw.flags |= bindings::IOMAP_F_MERGED as u16;
    }
}

/// The extent mapping of a file system's files.
#[vtable]
pub trait Operations {
    /// The file system the files belong to.
    type FileSystem: FileSystem;

    /// Maps the range of `length` bytes at `pos` of `inode`, or the part of it that one
    /// mapping can describe, into `map` (`iomap_begin`). The mapping must start at or before
    /// `pos` and end after it; otherwise the operation fails with `EIO`. `flags` are
    /// [`flags`].
    ///
    /// Called with no lock of the file system held: the file system serialises access to its
    /// block map itself.
    fn iomap_begin(
        inode: &INode<Self::FileSystem>,
        pos: i64,
        length: i64,
        flags: u32,
        map: &mut IoMap<'_>,
    ) -> Result;
}

/// A table of iomap operations for inodes of file system `T`.
#[derive(Copy, Clone)]
pub struct Ops<T: FileSystem>(*const bindings::iomap_ops, PhantomData<T>);

impl<T: FileSystem> Ops<T> {
    /// Builds the table for the mapping `U`.
    pub const fn new<U: Operations<FileSystem = T> + ?Sized>() -> Self {
        Self(&Table::<U>::TABLE, PhantomData)
    }
}

/// Reports the extents of `inode` in `start..start + len` to `FIEMAP` (`iomap_fiemap()`),
/// for an inode's [`super::inode::Operations::fiemap`].
pub fn fiemap<T: FileSystem>(
    inode: &INode<T>,
    fi: &mut FiemapExtentInfo,
    start: u64,
    len: u64,
    ops: Ops<T>,
) -> Result {
    // SAFETY: `inode` and `fi` are valid for the call; `ops.0` is a static table of the file
    // system of `inode`.
    crate::error::to_result(unsafe {
        bindings::iomap_fiemap(inode.as_raw(), fi.as_raw(), start, len, ops.0)
    })
}

/// The first hole at or after `offset` in `inode` (`iomap_seek_hole()`): the end of the file
/// if there is none before it; `ENXIO` if `offset` is not before the end of the file.
pub fn seek_hole<T: FileSystem>(inode: &INode<T>, offset: i64, ops: Ops<T>) -> Result<i64> {
    // SAFETY: `inode` is valid for the call; `ops.0` is a static table of its file system.
    let ret = unsafe { bindings::iomap_seek_hole(inode.as_raw(), offset, ops.0) };
    if ret < 0 {
        return Err(Error::from_errno(ret as i32));
    }
    Ok(ret)
}

/// The first data at or after `offset` in `inode` (`iomap_seek_data()`); `ENXIO` if there is
/// none before the end of the file.
pub fn seek_data<T: FileSystem>(inode: &INode<T>, offset: i64, ops: Ops<T>) -> Result<i64> {
    // SAFETY: `inode` is valid for the call; `ops.0` is a static table of its file system.
    let ret = unsafe { bindings::iomap_seek_data(inode.as_raw(), offset, ops.0) };
    if ret < 0 {
        return Err(Error::from_errno(ret as i32));
    }
    Ok(ret)
}

struct Table<U: Operations + ?Sized>(PhantomData<U>);

impl<U: Operations + ?Sized> Table<U> {
    const TABLE: bindings::iomap_ops = bindings::iomap_ops {
        iomap_begin: Some(Self::iomap_begin_callback),
        iomap_end: None,
        iomap_next: None,
    };

    /// # Safety
    ///
    /// Called by the iomap code with a valid, referenced inode of `U::FileSystem` and a mapping
    /// to fill that is exclusively ours for the call.
    unsafe extern "C" fn iomap_begin_callback(
        inode: *mut bindings::inode,
        pos: bindings::loff_t,
        length: bindings::loff_t,
        flags: c_uint,
        iomap: *mut bindings::iomap,
        _srcmap: *mut bindings::iomap,
    ) -> c_int {
        from_result(|| {
            // SAFETY: See the safety section of this function.
            let (i, raw) = unsafe { (INode::<U::FileSystem>::from_raw(inode), &mut *iomap) };
            // SAFETY: The inode is valid, and so is its super block, whose block device is set
            // for the life of the mount.
            let (bdev, blkbits) = unsafe { ((*(*inode).i_sb).s_bdev, (*inode).i_blkbits) };
            raw.bdev = bdev;
            raw.flags = 0;
            let mut map = IoMap {
                raw,
                blkbits: u32::from(blkbits),
            };
            U::iomap_begin(i, pos, length, flags, &mut map)?;
            // The iomap code warns about a mapping that does not cover `pos`: refuse it here.
            let (off, len) = (map.raw.offset, map.raw.length);
            let end = i64::try_from(len)
                .ok()
                .and_then(|l| off.checked_add(l))
                .ok_or(EIO)?;
            if off > pos || end <= pos {
                return Err(EIO);
            }
            Ok(0)
        })
    }
}
