// SPDX-License-Identifier: GPL-2.0

//! Address space operations on top of a block mapping.
//!
//! A block-based file system describes where the data of its files lives with one callback,
//! [`Operations::get_block`], and the generic page cache and buffer head code of the kernel
//! (`block_read_full_folio()`, `block_write_begin()`, `mpage_writepages()`, ...) does the data
//! path: reads, writes, `mmap`, writeback and `bmap`.
//!
//! C headers: [`include/linux/fs.h`](srctree/include/linux/fs.h),
//! [`include/linux/buffer_head.h`](srctree/include/linux/buffer_head.h) and
//! [`include/linux/mpage.h`](srctree/include/linux/mpage.h).

use super::{
    inode::INode,
    FileSystem, //
};
use crate::{
    bindings,
    prelude::*, //
};
use core::marker::PhantomData;

/// Where a logical block of a file lives on the device.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The device block, in units of the super block's block size.
    pub block: u64,
    /// Whether the block was just allocated: its old content is garbage and the page cache
    /// must not read it.
    pub new: bool,
}

/// The block mapping of a file system's files.
#[vtable]
pub trait Operations {
    /// The file system the files belong to.
    type FileSystem: FileSystem;

    /// Maps logical block `block` of `inode` to a device block: the `get_block_t` of the buffer
    /// head helpers, which then map the buffer head to it.
    ///
    /// Returns `None` for a hole. With `create`, a hole gets a newly allocated block instead
    /// (returned with [`Mapping::new`] set), or the call fails (`ENOSPC`, `EFBIG`, ...).
    ///
    /// Called with the folio being read or written locked, but not necessarily the inode: the
    /// file system serialises changes to its block map itself.
    fn get_block(
        inode: &INode<Self::FileSystem>,
        block: u64,
        create: bool,
    ) -> Result<Option<Mapping>>;

    /// Releases the blocks of `inode` beyond its size. Called with the inode locked after a
    /// write that wanted to extend the file failed, so that blocks allocated for it do not leak.
    fn truncate_blocks(_inode: &INode<Self::FileSystem>) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Decides whether a shared mapping of `inode` may start writing a page (`page_mkwrite`),
    /// before [`vm_ops`] allocates its blocks: an error fails the write fault (`SIGBUS`;
    /// `ENOMEM`: out of memory). Called with the mmap lock held.
    fn page_mkwrite(_inode: &INode<Self::FileSystem>) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Decides whether writeback may write the dirty folios of `inode` now (`writepages`). An
    /// error fails the writeback before any folio is written, and the folios stay dirty: a
    /// file system that has been shut down returns `EIO`, as ext4 does, so that nothing it
    /// caches reaches the device any more.
    ///
    /// Called from writeback, `sync(2)` and `fsync(2)`, without locks held.
    fn check_writeback(_inode: &INode<Self::FileSystem>) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }
}

/// A table of address space operations for inodes of file system `T`.
#[derive(Copy, Clone)]
pub struct Ops<T: FileSystem>(*const bindings::address_space_operations, PhantomData<T>);

impl<T: FileSystem> Ops<T> {
    /// Builds the table for the block mapping `U`.
    pub const fn new<U: Operations<FileSystem = T> + ?Sized>() -> Self {
        Self(&Table::<U>::TABLE, PhantomData)
    }

    pub(crate) fn as_raw(&self) -> *const bindings::address_space_operations {
        self.0
    }
}

/// The memory-mapping operations of regular files whose blocks `U` maps, for
/// [`super::fops::Operations::VM_OPS`]: faults through the page cache (`filemap_fault()`,
/// `filemap_map_pages()`), and `page_mkwrite` with `block_page_mkwrite()`, which allocates the
/// blocks of a page when a shared mapping first writes it, so that a full file system fails
/// that write fault (`SIGBUS`) instead of the writeback of the page later, and updates the
/// file's times, under freeze protection. [`Operations::page_mkwrite`] may refuse it first.
pub const fn vm_ops<U: Operations + ?Sized>() -> super::fops::VmOps<U::FileSystem> {
    // SAFETY: `VM_OPS` is a static table whose callbacks serve files mapped by `U`.
    unsafe { super::fops::VmOps::from_raw(&Table::<U>::VM_OPS) }
}

/// Zeroes the part of the block that holds byte `size` of `inode` beyond `size`, and marks it
/// dirty (`block_truncate_page()`): used before shrinking a file to a size that is not a multiple
/// of the block size, so that growing it again reads zeroes. The caller holds the inode lock.
pub fn truncate_page<U: Operations + ?Sized>(inode: &INode<U::FileSystem>, size: i64) -> Result {
    // SAFETY: The inode and its mapping are valid; `get_block_callback` matches `get_block_t`.
    crate::error::to_result(unsafe {
        bindings::block_truncate_page(
            &mut (*inode.as_raw()).i_data,
            size,
            Some(Table::<U>::get_block_callback),
        )
    })
}

struct Table<U: Operations + ?Sized>(PhantomData<U>);

impl<U: Operations + ?Sized> Table<U> {
    const TABLE: bindings::address_space_operations = bindings::address_space_operations {
        read_folio: Some(Self::read_folio_callback),
        readahead: Some(Self::readahead_callback),
        writepages: Some(Self::writepages_callback),
        dirty_folio: Some(bindings::block_dirty_folio),
        invalidate_folio: Some(bindings::block_invalidate_folio),
        write_begin: Some(Self::write_begin_callback),
        write_end: Some(bindings::generic_write_end),
        bmap: Some(Self::bmap_callback),
        is_partially_uptodate: Some(bindings::block_is_partially_uptodate),
        error_remove_folio: Some(bindings::generic_error_remove_folio),
        // All other operations are optional and may be null.
        ..pin_init::zeroed()
    };

    const VM_OPS: bindings::vm_operations_struct = bindings::vm_operations_struct {
        fault: Some(bindings::filemap_fault),
        map_pages: Some(bindings::filemap_map_pages),
        page_mkwrite: Some(Self::page_mkwrite_callback),
        // All other operations are optional and may be null.
        ..pin_init::zeroed()
    };

    /// # Safety
    ///
    /// Called by the VM for a write fault on a page of a shared mapping of a regular file of
    /// `U::FileSystem`, with the mmap lock held.
    unsafe extern "C" fn page_mkwrite_callback(
        vmf: *mut bindings::vm_fault,
    ) -> bindings::vm_fault_t {
        // SAFETY: See the safety section of this function: the fault, its mapping and the
        // mapped file are valid, and the file holds its inode and super block.
        let (vma, file, inode, sb) = unsafe {
            let vma = (*vmf).__bindgen_anon_1.vma;
            let file = (*vma).vm_file;
            let inode = (*file).f_inode;
            (vma, file, inode, (*inode).i_sb)
        };
        if U::HAS_PAGE_MKWRITE {
            // SAFETY: As above; the inode is initialised (it is open).
            if let Err(e) = U::page_mkwrite(unsafe { INode::from_raw(inode) }) {
                // SAFETY: `vmf_fs_error()` only maps the errno.
                return unsafe { bindings::vmf_fs_error(e.to_errno()) };
            }
        }
        // SAFETY: `sb` and the inode's mapping are valid; the freeze protection and the
        // invalidate lock are released below. The invalidate lock keeps a hole punched or a
        // range zeroed meanwhile from dropping the page while its blocks are allocated.
        unsafe {
            bindings::sb_start_pagefault(sb);
            bindings::filemap_invalidate_lock_shared((*inode).i_mapping);
        }
        // SAFETY: As above; `get_block_callback` matches `get_block_t`. A failure of
        // `file_update_time()` does not fail the fault, as in the C file systems.
        let err = unsafe {
            let _ = bindings::file_update_time(file);
            bindings::block_page_mkwrite(vma, vmf, Some(Self::get_block_callback))
        };
        // SAFETY: Taken above.
        unsafe {
            bindings::filemap_invalidate_unlock_shared((*inode).i_mapping);
            bindings::sb_end_pagefault(sb);
        }
        // SAFETY: `vmf_fs_error()` only maps the errno (0: the folio is locked, as
        // `block_page_mkwrite()` leaves it).
        unsafe { bindings::vmf_fs_error(err) }
    }

    /// The `get_block_t` callback the generic helpers call.
    ///
    /// # Safety
    ///
    /// Called by the buffer head code with a valid inode of `U::FileSystem` and a valid buffer
    /// head to map.
    unsafe extern "C" fn get_block_callback(
        inode: *mut bindings::inode,
        iblock: bindings::sector_t,
        bh: *mut bindings::buffer_head,
        create: c_int,
    ) -> c_int {
        // SAFETY: The inode is valid and initialised (it has a page cache in use).
        let i = unsafe { INode::<U::FileSystem>::from_raw(inode) };
        match U::get_block(i, iblock, create != 0) {
            Ok(Some(m)) => {
                // SAFETY: `bh` and the inode's super block are valid.
                unsafe {
                    bindings::map_bh(bh, (*inode).i_sb, m.block);
                    if m.new {
                        bindings::set_buffer_new(bh);
                    }
                }
                0
            }
            Ok(None) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the page cache with a locked folio of an inode of `U::FileSystem`.
    unsafe extern "C" fn read_folio_callback(
        _file: *mut bindings::file,
        folio: *mut bindings::folio,
    ) -> c_int {
        // SAFETY: The folio is valid and locked; `get_block_callback` matches `get_block_t`.
        unsafe { bindings::block_read_full_folio(folio, Some(Self::get_block_callback)) }
    }

    /// # Safety
    ///
    /// Called by the page cache with a valid readahead control of an inode of `U::FileSystem`.
    unsafe extern "C" fn readahead_callback(rac: *mut bindings::readahead_control) {
        // SAFETY: `rac` is valid; `get_block_callback` matches `get_block_t`.
        unsafe { bindings::mpage_readahead(rac, Some(Self::get_block_callback)) }
    }

    /// # Safety
    ///
    /// Called by writeback with a valid mapping of an inode of `U::FileSystem`.
    unsafe extern "C" fn writepages_callback(
        mapping: *mut bindings::address_space,
        wbc: *mut bindings::writeback_control,
    ) -> c_int {
        if U::HAS_CHECK_WRITEBACK {
            // SAFETY: `mapping` belongs to a valid, initialised inode (it has dirty folios).
            let inode = unsafe { INode::<U::FileSystem>::from_raw((*mapping).host) };
            if let Err(e) = U::check_writeback(inode) {
                return e.to_errno();
            }
        }
        // SAFETY: `mapping` and `wbc` are valid; `get_block_callback` matches `get_block_t`.
        unsafe { bindings::mpage_writepages(mapping, wbc, Some(Self::get_block_callback)) }
    }

    /// # Safety
    ///
    /// Called by the generic write path with the inode of `mapping` locked.
    unsafe extern "C" fn write_begin_callback(
        _iocb: *const bindings::kiocb,
        mapping: *mut bindings::address_space,
        pos: bindings::loff_t,
        len: c_uint,
        foliop: *mut *mut bindings::folio,
        _fsdata: *mut *mut c_void,
    ) -> c_int {
        // SAFETY: All pointers are valid; `get_block_callback` matches `get_block_t`.
        let ret = unsafe {
            bindings::block_write_begin(mapping, pos, len, foliop, Some(Self::get_block_callback))
        };
        if ret != 0 {
            // SAFETY: The mapping belongs to a valid, locked inode.
            let inode = unsafe { (*mapping).host };
            // SAFETY: As above.
            let size = unsafe { bindings::i_size_read(inode) };
            if pos + bindings::loff_t::from(len) > size {
                // Blocks may have been allocated past the end of the file: release them.
                // SAFETY: The inode is valid and locked.
                unsafe { bindings::truncate_pagecache(inode, size) };
                if U::HAS_TRUNCATE_BLOCKS {
                    // SAFETY: The inode is valid and initialised.
                    let _ = U::truncate_blocks(unsafe { INode::from_raw(inode) });
                }
            }
        }
        ret
    }

    /// # Safety
    ///
    /// Called for `FIBMAP` with a valid mapping of an inode of `U::FileSystem`.
    unsafe extern "C" fn bmap_callback(
        mapping: *mut bindings::address_space,
        block: bindings::sector_t,
    ) -> bindings::sector_t {
        // SAFETY: `mapping` is valid; `get_block_callback` matches `get_block_t`.
        unsafe { bindings::generic_block_bmap(mapping, block, Some(Self::get_block_callback)) }
    }
}
