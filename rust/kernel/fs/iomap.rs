// SPDX-License-Identifier: GPL-2.0

//! File mappings for the iomap code: `FIEMAP`, `SEEK_HOLE`, `SEEK_DATA` and direct I/O.
//!
//! A file system describes the extents of a file with one callback, [`Operations::iomap_begin`],
//! which maps a range of the file to a range of the device or reports a hole there; the iomap
//! code of the kernel (`fs/iomap/`) iterates over a range with it. This is how ext2 reports its
//! extents and does direct I/O while its buffered I/O stays on buffer heads
//! ([`super::address_space`]).
//!
//! C header: [`include/linux/iomap.h`](srctree/include/linux/iomap.h).

use super::{
    fops::{
        kiocb_of,
        to_bytes, //
    },
    inode::{
        FiemapExtentInfo,
        INode,
        Locked, //
    },
    FileSystem,
    Kiocb, //
};
use crate::{
    bindings,
    error::{
        from_result,
        to_result, //
    },
    iov::{
        IovIterDest,
        IovIterSource, //
    },
    prelude::*, //
};
use core::{
    marker::PhantomData,
    ptr, //
};

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

    /// Says that the inode's metadata must be written for the data of the mapping to be
    /// readable after a crash (`IOMAP_F_DIRTY`): for a direct write that extends the file,
    /// so that `O_DSYNC` writes the new size.
    pub fn set_dirty(&mut self) {
        self.raw.flags |= bindings::IOMAP_F_DIRTY as u16;
    }

    /// Says that the file's page cache keeps buffer heads (`IOMAP_F_BUFFER_HEAD`), as the
    /// address space operations of [`super::address_space`] attach them: a write through the
    /// page cache by iomap, as [`zero_range`] does, then maps the folio's buffers from this
    /// mapping instead of iomap's own per-folio state. Needed on every mapping of such a file
    /// that such a write uses.
    pub fn set_buffer_head(&mut self) {
        self.raw.flags |= bindings::IOMAP_F_BUFFER_HEAD as u16;
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
    /// For a direct write ([`flags::WRITE`] and [`flags::DIRECT`]) a hole may instead fail
    /// with `ENOTBLK`: [`dio_write`] then writes the rest through the page cache.
    ///
    /// Called with no lock of the file system held (and the inode lock for direct I/O): the
    /// file system serialises access to its block map itself.
    fn iomap_begin(
        inode: &INode<Self::FileSystem>,
        pos: i64,
        length: i64,
        flags: u32,
        map: &mut IoMap<'_>,
    ) -> Result;
}

/// Whether `kiocb` asks for direct I/O (`IOCB_DIRECT`: the file is open with `O_DIRECT`).
pub fn is_direct(kiocb: &Kiocb<'_, ()>) -> bool {
    // SAFETY: The kiocb is valid for its lifetime.
    let flags = unsafe { (*kiocb.as_raw()).ki_flags };
    flags & bindings::IOCB_DIRECT as c_int != 0
}

/// Reads from `inode` at the position of `kiocb` into `to` with direct I/O
/// (`iomap_dio_rw()`, the inode lock held shared, as ext2 does), for a file system's
/// `read_iter` of an [`is_direct`] kiocb; returns the bytes read. The position and the buffer
/// must be aligned to the logical block size of the device (`EINVAL`). Holes read as zeroes.
/// The read completes before the call returns, also for an asynchronous kiocb.
pub fn dio_read<T: FileSystem>(
    inode: &INode<T>,
    kiocb: Kiocb<'_, ()>,
    to: &mut IovIterDest<'_>,
    ops: Ops<T>,
) -> Result<usize> {
    let iocb = kiocb_of(inode, &kiocb)?;
    let raw = inode.as_raw();
    // SAFETY: `raw` is a valid inode; the lock is released below.
    unsafe { bindings::inode_lock_shared(raw) };
    // SAFETY: `kiocb` is a direct read of `inode` (checked above), `to` a valid destination
    // iterator, `ops.0` a static table of the file system of `inode`; the inode lock is held.
    let ret = unsafe {
        bindings::iomap_dio_rw(
            iocb,
            to.as_raw(),
            ops.0,
            ptr::null(),
            bindings::IOMAP_DIO_FORCE_WAIT,
            ptr::null_mut(),
            0,
        )
    };
    // SAFETY: Taken above.
    unsafe { bindings::inode_unlock_shared(raw) };
    to_bytes(ret)
}

/// Writes `from` to `inode` at the position of `kiocb` with direct I/O, as ext2 does, for a
/// file system's `write_iter` of an [`is_direct`] kiocb; returns the bytes written.
///
/// Under the inode lock: `generic_write_checks()` (`O_APPEND`, limits) and `kiocb_modified()`
/// (privileges, times), then `iomap_dio_rw()`, which writes the page cache of the range back
/// and drops it first; the file size follows a write past the end. What the mapping cannot
/// take directly (holes, for which [`Operations::iomap_begin`] fails with `ENOTBLK`) goes
/// through the page cache and is written back and dropped from it before the call returns,
/// so that the data is on the device either way. The position and the buffer must be aligned
/// to the logical block size of the device (`EINVAL`). The write completes before the call
/// returns, also for an asynchronous kiocb.
pub fn dio_write<T: FileSystem>(
    inode: &INode<T>,
    mut kiocb: Kiocb<'_, ()>,
    from: &mut IovIterSource<'_>,
    ops: Ops<T>,
) -> Result<usize> {
    let iocb = kiocb_of(inode, &kiocb)?;
    let raw = inode.as_raw();
    // SAFETY: `raw` is a valid inode; the lock is released below.
    unsafe { bindings::inode_lock(raw) };
    let res = (|| -> Result<usize> {
        // SAFETY: `iocb` is a write of `inode`, whose lock is held, and `from` a valid source
        // iterator.
        let n = to_bytes(unsafe { bindings::generic_write_checks(iocb, from.as_raw()) })?;
        if n == 0 {
            return Ok(0);
        }
        // SAFETY: As above.
        to_result(unsafe { bindings::kiocb_modified(iocb) })?;
        // SAFETY: As above; `ops.0` is a static table of the file system of `inode`, and
        // `DIO_WRITE_OPS` a static table whose `end_io` updates the size.
        let ret = unsafe {
            bindings::iomap_dio_rw(
                iocb,
                from.as_raw(),
                ops.0,
                &DIO_WRITE_OPS,
                bindings::IOMAP_DIO_FORCE_WAIT,
                ptr::null_mut(),
                0,
            )
        };
        // `ENOTBLK`: nothing written directly, all of it goes through the page cache.
        let mut done = if ret == -(bindings::ENOTBLK as isize) {
            0
        } else {
            to_bytes(ret)?
        };
        if from.is_empty() {
            return Ok(done);
        }
        let pos = *kiocb.ki_pos_mut();
        // SAFETY: `iocb` is valid; clearing `IOCB_DIRECT` makes the rest a buffered write.
        unsafe { (*iocb).ki_flags &= !(bindings::IOCB_DIRECT as c_int) };
        // SAFETY: As above.
        let buffered = to_bytes(unsafe { bindings::generic_perform_write(iocb, from.as_raw()) })?;
        if buffered == 0 {
            return Ok(done);
        }
        done += buffered;
        let end = pos + buffered as i64 - 1;
        // SAFETY: The inode and its mapping are valid; the range was just written.
        unsafe {
            let mapping = (*raw).i_mapping;
            to_result(bindings::filemap_write_and_wait_range(mapping, pos, end))?;
            bindings::invalidate_mapping_pages(
                mapping,
                (pos >> bindings::PAGE_SHIFT) as c_ulong,
                (end >> bindings::PAGE_SHIFT) as c_ulong,
            );
        }
        // SAFETY: `iocb` is valid; `O_SYNC`/`O_DSYNC` for the buffered part.
        to_bytes(unsafe { bindings::generic_write_sync(iocb, done as isize) })
    })();
    // SAFETY: Taken above.
    unsafe { bindings::inode_unlock(raw) };
    res
}

/// The completion of direct writes: the size follows a write past the end of the file.
const DIO_WRITE_OPS: bindings::iomap_dio_ops = bindings::iomap_dio_ops {
    end_io: Some(dio_write_end_io),
    submit_io: None,
    bio_set: ptr::null_mut(),
};

/// # Safety
///
/// Called by the iomap code with the valid kiocb of a completed direct write, before the page
/// cache of the range is dropped; [`dio_write`] holds the inode lock and waits for the
/// completion, so the size cannot change under it.
unsafe extern "C" fn dio_write_end_io(
    iocb: *mut bindings::kiocb,
    size: isize,
    error: c_int,
    _flags: c_uint,
) -> c_int {
    if error != 0 {
        return error;
    }
    // SAFETY: See the safety section of this function; the file holds its inode.
    unsafe {
        let inode = (*(*iocb).ki_filp).f_inode;
        let end = (*iocb).ki_pos + size as i64;
        if end > bindings::i_size_read(inode) {
            bindings::i_size_write(inode, end);
            bindings::mark_inode_dirty(inode);
        }
    }
    0
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

/// Zeroes bytes `pos..pos + len` of `inode` through its page cache (`iomap_zero_range()`):
/// what [`Operations::iomap_begin`] maps (called with [`flags::WRITE`] and [`flags::ZERO`]) is
/// read in where needed, zeroed and dirtied, and reaches the device with writeback; holes
/// stay holes. The mappings must be [`IoMap::set_buffer_head`] ones if the file's page cache
/// keeps buffer heads.
///
/// The range must end within the file's size (writeback writes nothing beyond it): `EINVAL`
/// otherwise. Called with the inode lock held, which the type of `inode` proves.
pub fn zero_range<T: FileSystem>(inode: &Locked<'_, T>, pos: i64, len: i64, ops: Ops<T>) -> Result {
    let end = pos.checked_add(len).ok_or(EINVAL)?;
    if pos < 0 || len < 0 || end > inode.size() {
        return Err(EINVAL);
    }
    if len == 0 {
        return Ok(());
    }
    // SAFETY: `inode` is valid and locked for the call; `ops.0` is a static table of its file
    // system; without write operations iomap uses its generic folio helpers, and without a
    // `did_zero` it reports nothing back.
    to_result(unsafe {
        bindings::iomap_zero_range(
            inode.as_raw(),
            pos,
            len,
            ptr::null_mut(),
            ops.0,
            ptr::null(),
            ptr::null_mut(),
        )
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
