// SPDX-License-Identifier: GPL-2.0

//! Reading and writing the data of a regular file from kernel code, through the page cache.
//!
//! A file system that keeps structured data in its own regular files (an index, a journal, a
//! collection of records) reads and writes them like `read(2)` and `write(2)` would, but from
//! inside one of its operations, e.g. an ioctl. [`read_at`] and [`Writer::write_at`] go straight
//! to the generic page cache code (`generic_file_read_iter()`, `generic_perform_write()`) and
//! the inode's address space operations, not through the file's `f_op`: the file system can
//! thus refuse `write(2)` from user space on such files and still update them itself. They do
//! not check the file's access mode: the caller decides what access its operation needs.
//! [`read_cached`] copies from the page cache alone, for small reads of data it likely holds.
//!
//! C header: [`include/linux/fs.h`](srctree/include/linux/fs.h).

use super::{
    fops,
    File, //
};
use crate::{
    bindings,
    error::{
        from_err_ptr,
        to_result, //
    },
    ffi::c_ulong,
    prelude::*, //
};

/// Reads the data of regular file `file` at `pos` into `buf` through the page cache; returns
/// the number of bytes read, less than `buf.len()` only at the end of the file.
///
/// The file need not be open for reading. May sleep.
pub fn read_at(file: &File, pos: i64, buf: &mut [u8]) -> Result<usize> {
    fops::regular_inode(file)?;
    let mut done = 0usize;
    while done < buf.len() {
        let rest = &mut buf[done..];
        let pos = pos.checked_add(done as i64).ok_or(EINVAL)?;
        let kvec = bindings::kvec {
            iov_base: rest.as_mut_ptr().cast(),
            iov_len: rest.len(),
        };
        // SAFETY: All-zero is a valid `iov_iter` and `kiocb` (a synchronous one without flags).
        let (mut iter, mut kiocb): (bindings::iov_iter, bindings::kiocb) =
            unsafe { (core::mem::zeroed(), core::mem::zeroed()) };
        kiocb.ki_filp = file.as_ptr();
        kiocb.ki_pos = pos;
        // SAFETY: `kvec` describes `rest`, which is valid for writes for the whole call.
        unsafe { bindings::iov_iter_kvec(&mut iter, bindings::ITER_DEST, &kvec, 1, kvec.iov_len) };
        // SAFETY: `kiocb` is a synchronous kiocb of an open regular file whose address space
        // supports reading (checked by `regular_inode`), and `iter` is a valid destination.
        let ret = unsafe { bindings::generic_file_read_iter(&mut kiocb, &mut iter) };
        if ret < 0 {
            return Err(Error::from_errno(ret as i32));
        }
        if ret == 0 {
            break;
        }
        done += ret as usize;
    }
    Ok(done)
}

/// Copies the data of regular file `file` at `pos` into `buf` if the page cache holds all of it,
/// up to date and within the file's size, as `filemap_get_folio()` and `memcpy_from_folio()`
/// find it: without I/O, readahead or an access time update. Returns `false` otherwise (`buf`
/// then holds part of the data or none); the caller reads with [`read_at`] instead.
///
/// For data a file system reads back often and in small pieces (a record of a file it manages),
/// where the full read path would cost more than the copy. Like `read(2)`, it does not exclude
/// a concurrent write or truncation of the range: the caller's locks must, if it matters. Does
/// not sleep.
pub fn read_cached(file: &File, pos: i64, buf: &mut [u8]) -> Result<bool> {
    let inode = fops::regular_inode(file)?;
    let len = i64::try_from(buf.len()).map_err(|_| EINVAL)?;
    let end = pos.checked_add(len).ok_or(EINVAL)?;
    // SAFETY: `inode` is the valid inode of the open file `file`.
    if pos < 0 || end > unsafe { bindings::i_size_read(inode) } {
        return Ok(false);
    }
    // SAFETY: An open file has a valid mapping for its whole life.
    let mapping = unsafe { (*file.as_ptr()).f_mapping };
    let mut done = 0usize;
    while done < buf.len() {
        let at = pos + done as i64;
        let index = (at >> bindings::PAGE_SHIFT) as c_ulong;
        // SAFETY: `mapping` is valid (see above); the lookup takes a reference on the folio it
        // returns, and returns an error pointer if there is none.
        let Ok(folio) = from_err_ptr(unsafe { bindings::filemap_get_folio(mapping, index) }) else {
            return Ok(false);
        };
        // SAFETY: We hold a reference on `folio` until the `folio_put()` below.
        let uptodate = unsafe { bindings::folio_test_uptodate(folio) };
        let mut copied = 0;
        if uptodate {
            // SAFETY: As above.
            let (start, size) =
                unsafe { (bindings::folio_pos(folio), bindings::folio_size(folio)) };
            // The folio holds page `index`, which holds `at`.
            let off = (at - start) as usize;
            copied = (size - off).min(buf.len() - done);
            let dst = buf[done..].as_mut_ptr().cast();
            // SAFETY: `off + copied <= size`, so the range is within the folio, which we hold;
            // `buf[done..]` has at least `copied` bytes, valid for writes.
            unsafe { bindings::memcpy_from_folio(dst, folio, off, copied) };
        }
        // SAFETY: Drops the reference taken by `filemap_get_folio()`.
        unsafe { bindings::folio_put(folio) };
        if copied == 0 {
            return Ok(false);
        }
        done += copied;
    }
    Ok(true)
}

/// Write access to the data of a regular file, for kernel code.
///
/// Holds freeze protection (`file_start_write()`) while it lives: create it at the start of the
/// operation that writes, before taking the file system's own locks, and drop it at the end.
///
/// # Invariants
///
/// `file` is a regular file open for writing, whose address space supports writing, and
/// `file_start_write()` was called on it.
pub struct Writer<'a> {
    file: &'a File,
    inode: *mut bindings::inode,
}

impl<'a> Writer<'a> {
    /// Starts writing to `file`; fails with `EBADF` if it is not open for writing and with
    /// `EINVAL` if it is not a regular file with a writable address space. May sleep (while
    /// the file system is frozen).
    pub fn new(file: &'a File) -> Result<Self> {
        let inode = fops::regular_inode(file)?;
        let acc = file.flags() & super::file::flags::O_ACCMODE;
        if acc != super::file::flags::O_WRONLY && acc != super::file::flags::O_RDWR {
            return Err(EBADF);
        }
        // SAFETY: `file` is an open regular file.
        unsafe { bindings::file_start_write(file.as_ptr()) };
        // INVARIANT: Checked and started above.
        Ok(Self { file, inode })
    }

    /// Writes `buf` at `pos` of the file through the page cache, extending the file if needed,
    /// and updates its modification time. Takes the inode lock. Returns the number of bytes
    /// written, which may be short only on error after some progress.
    ///
    /// The data reaches the disk with the page cache's writeback, or an `fsync`.
    pub fn write_at(&self, pos: i64, buf: &[u8]) -> Result<usize> {
        let len = i64::try_from(buf.len()).map_err(|_| EFBIG)?;
        let end = pos.checked_add(len).ok_or(EFBIG)?;
        // SAFETY: The inode and its super block are valid while the file is open.
        let max = unsafe { (*(*self.inode).i_sb).s_maxbytes };
        if pos < 0 || end > max {
            return Err(EFBIG);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let kvec = bindings::kvec {
            iov_base: buf.as_ptr().cast_mut().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: All-zero is a valid `iov_iter` and `kiocb` (a synchronous one without flags).
        let (mut iter, mut kiocb): (bindings::iov_iter, bindings::kiocb) =
            unsafe { (core::mem::zeroed(), core::mem::zeroed()) };
        kiocb.ki_filp = self.file.as_ptr();
        kiocb.ki_pos = pos;
        // SAFETY: `kvec` describes `buf`, which is valid for reads for the whole call; with
        // `ITER_SOURCE` the data is only read.
        unsafe { bindings::iov_iter_kvec(&mut iter, bindings::ITER_SOURCE, &kvec, 1, buf.len()) };
        // SAFETY: The inode is valid (type invariant).
        unsafe { bindings::inode_lock(self.inode) };
        // SAFETY: The file is open for writing and the inode lock is held, as the VFS does for
        // `write_iter`.
        let ret =
            to_result(unsafe { bindings::file_update_time(self.file.as_ptr()) }).and_then(|()| {
                // SAFETY: As above; the address space supports writing (type invariant) and the
                // range is within `s_maxbytes`.
                let ret = unsafe { bindings::generic_perform_write(&mut kiocb, &mut iter) };
                if ret < 0 {
                    Err(Error::from_errno(ret as i32))
                } else {
                    Ok(ret as usize)
                }
            });
        // SAFETY: Locked above.
        unsafe { bindings::inode_unlock(self.inode) };
        ret
    }

    /// Shrinks the file to `size` bytes, as `truncate(2)` would but from kernel code: with the
    /// inode lock held, calls `shrink(size)`, the file system's own truncation, the part of its
    /// `setattr` that changes the size (zeroing the tail of the last block,
    /// `truncate_setsize()`, releasing the blocks beyond, updating the times). Does nothing if
    /// the file is not longer than `size`.
    ///
    /// Like [`Writer::write_at`], it does not go through `setattr`, so the file system may
    /// refuse size changes from user space on the file and still shrink it itself.
    pub fn truncate(&self, size: i64, shrink: impl FnOnce(i64) -> Result) -> Result {
        if size < 0 {
            return Err(EINVAL);
        }
        // SAFETY: The inode is valid (type invariant).
        unsafe { bindings::inode_lock(self.inode) };
        // SAFETY: The inode is valid and locked, which serialises `i_size` updates.
        let res = if unsafe { bindings::i_size_read(self.inode) } > size {
            shrink(size)
        } else {
            Ok(())
        };
        // SAFETY: Locked above.
        unsafe { bindings::inode_unlock(self.inode) };
        res
    }

    /// Writes all of `buf` at `pos`, failing with `EIO` on a short write.
    pub fn write_all_at(&self, pos: i64, buf: &[u8]) -> Result {
        if self.write_at(pos, buf)? != buf.len() {
            return Err(EIO);
        }
        Ok(())
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        // SAFETY: `file_start_write()` was called in `new` (type invariant).
        unsafe { bindings::file_end_write(self.file.as_ptr()) };
    }
}
