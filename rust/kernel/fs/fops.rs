// SPDX-License-Identifier: GPL-2.0

//! File operations of the inodes of a Rust file system.
//!
//! Regular files of block-based file systems normally read and write through the page cache,
//! which the generic C helpers implement on top of the inode's address space operations
//! ([`super::address_space`]); a file system adds what is its own: directory iteration, ioctls,
//! its `fsync` semantics.
//!
//! C header: [`include/linux/fs.h`](srctree/include/linux/fs.h).

use super::{
    file::File,
    inode::INode,
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
    prelude::*,
    types::Opaque, //
};
use core::marker::PhantomData;

/// The position and output of a directory iteration (`struct dir_context`), as
/// `iterate_shared` gets it.
///
/// # Invariants
///
/// `0` is a valid `dir_context` for the duration of the iteration.
pub struct DirContext<'a>(&'a mut bindings::dir_context);

impl DirContext<'_> {
    /// The current position in the directory: a cookie chosen by the file system, which starts
    /// at zero.
    pub fn pos(&self) -> i64 {
        self.0.pos
    }

    /// Sets the position to resume from.
    pub fn set_pos(&mut self, pos: i64) {
        self.0.pos = pos;
    }

    /// Emits one entry (`dir_emit()`). Returns `false` when the caller's buffer is full: the
    /// iteration must stop and resume from the current position (not advanced past this
    /// entry) next time.
    pub fn emit(&mut self, name: &[u8], ino: u64, dirent_type: u8) -> bool {
        let Ok(len) = c_int::try_from(name.len()) else {
            return false;
        };
        // SAFETY: `self.0` is a valid context (type invariant) and `name` is valid for `len`
        // bytes.
        unsafe {
            bindings::dir_emit(
                self.0,
                name.as_ptr().cast(),
                len,
                ino,
                c_uint::from(dirent_type),
            )
        }
    }
}

/// File operations of a file system's inodes.
#[vtable]
pub trait Operations {
    /// The file system the files belong to.
    type FileSystem: FileSystem;

    /// Emits the entries of directory `inode` from `ctx`'s position on (`iterate_shared`).
    ///
    /// Runs with the directory's `i_rwsem` held shared.
    fn iterate_shared(
        _file: &File,
        _inode: &INode<Self::FileSystem>,
        _ctx: &mut DirContext<'_>,
    ) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Handles an `ioctl(2)` on `file`. `arg` is the raw argument (often a user pointer).
    fn ioctl(
        _file: &File,
        _inode: &INode<Self::FileSystem>,
        _cmd: u32,
        _arg: usize,
    ) -> Result<isize> {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Whether [`Operations::read_iter`] and [`Operations::write_iter`] serve direct I/O
    /// (`IOCB_DIRECT`, with [`super::iomap::dio_read`] and [`super::iomap::dio_write`]): regular
    /// files then open with `O_DIRECT` (`FMODE_CAN_ODIRECT`); otherwise that fails with
    /// `EINVAL`.
    const DIRECT_IO: bool = false;

    /// The memory-mapping operations of regular files, from
    /// [`super::address_space::vm_ops`]; `None`: the generic ones, whose `page_mkwrite` leaves
    /// block allocation to writeback.
    const VM_OPS: Option<VmOps<Self::FileSystem>> = None;

    /// Decides whether regular file `inode` may be mapped as `desc` asks (`mmap(2)`, before
    /// `generic_file_mmap_prepare()`): an error fails the `mmap(2)`. Called with the mmap lock
    /// held.
    fn mmap_prepare(_file: &File, _inode: &INode<Self::FileSystem>, _desc: &VmAreaDesc) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Reads from regular file `inode` at the position of `kiocb` into `to` (`read_iter`:
    /// `read(2)`, `pread(2)`, splice) and returns the bytes read.
    ///
    /// Without it, reads go to `generic_file_read_iter()`. A file system that does direct I/O
    /// implements it and reads the rest with [`generic_file_read_iter`]. Called without locks
    /// held.
    fn read_iter(
        _inode: &INode<Self::FileSystem>,
        _kiocb: Kiocb<'_, ()>,
        _to: &mut IovIterDest<'_>,
    ) -> Result<usize> {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Writes `from` to regular file `inode` at the position of `kiocb` (`write_iter`:
    /// `write(2)`, `pwrite(2)`, splice, copy) and returns the bytes written.
    ///
    /// Without it, writes go to `generic_file_write_iter()`. A file system with checks of its
    /// own to make first implements it and writes with [`generic_file_write_iter`]. Called
    /// without locks held. Writes of the kernel itself through [`super::kernel_io::Writer`]
    /// do not come here.
    fn write_iter(
        _inode: &INode<Self::FileSystem>,
        _kiocb: Kiocb<'_, ()>,
        _from: &mut IovIterSource<'_>,
    ) -> Result<usize> {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Moves the position of regular file `file` (`llseek`: `lseek(2)`) by `offset` from
    /// `whence` (`SEEK_SET`, `SEEK_CUR`, `SEEK_END`, `SEEK_DATA`, `SEEK_HOLE`) and returns
    /// the new position, for a file system that knows where the holes of its files are;
    /// [`generic_file_llseek`] serves the rest.
    ///
    /// Without it, regular files use `generic_file_llseek()`. Called without locks held but
    /// `f_pos_lock` where the file needs it.
    fn llseek(
        _file: &File,
        _inode: &INode<Self::FileSystem>,
        _offset: i64,
        _whence: u32,
    ) -> Result<i64> {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Allocates, frees or zeroes the blocks of bytes `offset..offset + len` of regular file
    /// `inode` (`fallocate`: `fallocate(2)`) as `mode` asks: one of the operations of
    /// [`falloc`] (`mode & falloc::MODE_MASK`), with [`falloc::KEEP_SIZE`] or not. A mode the
    /// file system does not implement fails with `EOPNOTSUPP`.
    ///
    /// Without it, `fallocate(2)` fails with `EOPNOTSUPP`. The VFS has checked the mode's
    /// combination of flags ([`falloc::PUNCH_HOLE`] always comes with
    /// [`falloc::KEEP_SIZE`]), that `file` is open for writing, that the inode is neither
    /// immutable nor, unless the call only allocates with [`falloc::KEEP_SIZE`], append-only,
    /// and that the range is within the file system's size limit. Called without locks held
    /// but freeze protection (`file_start_write()`): the file system takes the inode lock.
    fn fallocate(
        _file: &File,
        _inode: &INode<Self::FileSystem>,
        _mode: i32,
        _offset: i64,
        _len: i64,
    ) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Called when the last reference to `file` is dropped (`release`), in process context and
    /// without locks held; the file is still open for the call. It cannot fail: the VFS ignores
    /// the C callback's return value, so there is none.
    fn release(_file: &File, _inode: &INode<Self::FileSystem>) {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Makes the data in `start..=end` and the metadata needed to reach it durable. Only the
    /// data and the metadata needed to read it if `datasync`.
    fn fsync(
        _file: &File,
        _inode: &INode<Self::FileSystem>,
        _start: i64,
        _end: i64,
        _datasync: bool,
    ) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }
}

/// The modes of [`Operations::fallocate`] (`FALLOC_FL_*` of `<uapi/linux/falloc.h>`).
pub mod falloc {
    use crate::bindings;

    /// Allocates the range: afterwards writes to it do not fail for lack of space, and what was
    /// not written reads as zeroes (`FALLOC_FL_ALLOCATE_RANGE`).
    pub const ALLOCATE_RANGE: i32 = bindings::FALLOC_FL_ALLOCATE_RANGE as i32;
    /// Leaves the file's size as it is, also if the range ends beyond it
    /// (`FALLOC_FL_KEEP_SIZE`).
    pub const KEEP_SIZE: i32 = bindings::FALLOC_FL_KEEP_SIZE as i32;
    /// Frees the range: it reads as zeroes and holds no blocks but at its partial ends
    /// (`FALLOC_FL_PUNCH_HOLE`).
    pub const PUNCH_HOLE: i32 = bindings::FALLOC_FL_PUNCH_HOLE as i32;
    /// Zeroes the range and leaves it allocated (`FALLOC_FL_ZERO_RANGE`).
    pub const ZERO_RANGE: i32 = bindings::FALLOC_FL_ZERO_RANGE as i32;
    /// The bits of a mode that select the operation (`FALLOC_FL_MODE_MASK`); the rest are
    /// modifiers such as [`KEEP_SIZE`].
    pub const MODE_MASK: i32 = bindings::FALLOC_FL_MODE_MASK as i32;
}

/// A mapping about to be created (`struct vm_area_desc`), in an [`Operations::mmap_prepare`]
/// call.
#[repr(transparent)]
pub struct VmAreaDesc(Opaque<bindings::vm_area_desc>);

impl VmAreaDesc {
    /// Whether the mapping is shared and may be written (`is_shared_maywrite()`): writes through
    /// it change the file.
    pub fn is_shared_maywrite(&self) -> bool {
        // SAFETY: The descriptor is valid for the duration of the callback.
        unsafe { bindings::is_shared_maywrite(&raw const (*self.0.get()).vma_flags) }
    }
}

/// The memory-mapping operations (`vm_operations_struct`) of the regular files of file system
/// `T`, for [`Operations::VM_OPS`].
#[derive(Copy, Clone)]
pub struct VmOps<T: FileSystem>(*const bindings::vm_operations_struct, PhantomData<T>);

impl<T: FileSystem> VmOps<T> {
    /// # Safety
    ///
    /// `ops` must be a static table whose callbacks serve the files of `T`.
    #[cfg(CONFIG_BUFFER_HEAD)]
    pub(crate) const unsafe fn from_raw(ops: *const bindings::vm_operations_struct) -> Self {
        Self(ops, PhantomData)
    }
}

/// Returns the inode of `file` if it is a regular file whose address space can be read and
/// written with the generic page cache helpers.
pub(super) fn regular_inode(file: &File) -> Result<*mut bindings::inode> {
    // SAFETY: An open file has a valid inode and mapping for its whole life.
    let (inode, aops) = unsafe {
        let f = file.as_ptr();
        ((*f).f_inode, (*(*f).f_mapping).a_ops)
    };
    // SAFETY: `inode` is valid (see above); `i_mode` does not change once set.
    let mode = u32::from(unsafe { (*inode).i_mode });
    if mode & bindings::S_IFMT != bindings::S_IFREG || aops.is_null() {
        return Err(EINVAL);
    }
    // SAFETY: `aops` is a valid, static operations table.
    let aops = unsafe { &*aops };
    if aops.read_folio.is_none() || aops.write_begin.is_none() || aops.write_end.is_none() {
        return Err(EINVAL);
    }
    Ok(inode)
}

/// Reads from regular file `inode` through the page cache at the position of `kiocb` into `to`
/// (`generic_file_read_iter()`), for a [`Operations::read_iter`] that leaves buffered reads to
/// it. Returns the bytes read.
///
/// Fails with `EINVAL` if `kiocb` is not a read of `inode`, `inode` is not a regular file, or
/// `kiocb` asks for direct I/O (the page cache helpers do not serve it for Rust file systems).
pub fn generic_file_read_iter<T: FileSystem>(
    inode: &INode<T>,
    kiocb: Kiocb<'_, ()>,
    to: &mut IovIterDest<'_>,
) -> Result<usize> {
    let iocb = kiocb_of(inode, &kiocb)?;
    // SAFETY: `iocb` is valid for the lifetime of `kiocb`.
    if unsafe { (*iocb).ki_flags } & bindings::IOCB_DIRECT as c_int != 0 {
        return Err(EINVAL);
    }
    // SAFETY: `iocb` is a valid, buffered kiocb of an open regular file whose address space
    // reads with the generic page cache helpers (checked above), and `to` a valid destination
    // iterator.
    to_bytes(unsafe { bindings::generic_file_read_iter(iocb, to.as_raw()) })
}

/// Returns the raw kiocb of `kiocb` if it is an I/O of regular file `inode`, whose address
/// space reads and writes with the generic page cache helpers ([`regular_inode`]); `EINVAL`
/// otherwise.
pub(super) fn kiocb_of<T: FileSystem>(
    inode: &INode<T>,
    kiocb: &Kiocb<'_, ()>,
) -> Result<*mut bindings::kiocb> {
    let iocb = kiocb.as_raw();
    // SAFETY: `kiocb` refers to a valid kiocb of an open file for its lifetime.
    let file = unsafe { File::from_raw_file((*iocb).ki_filp) };
    if regular_inode(file)? != inode.as_raw() {
        return Err(EINVAL);
    }
    Ok(iocb)
}

/// Converts what a C read or write function returned: a byte count or a negative errno.
pub(super) fn to_bytes(ret: isize) -> Result<usize> {
    if ret < 0 {
        return Err(Error::from_errno(ret as i32));
    }
    Ok(ret as usize)
}

/// Writes `from` to regular file `inode` through the page cache at the position of `kiocb`
/// (`generic_file_write_iter()`: the inode lock, the permission and size checks, the write and
/// `O_SYNC` handling), for a [`Operations::write_iter`] once its own checks passed. Returns the
/// bytes written.
///
/// Fails with `EINVAL` if `kiocb` is not a write to `inode` or `inode` is not a regular file.
pub fn generic_file_write_iter<T: FileSystem>(
    inode: &INode<T>,
    kiocb: Kiocb<'_, ()>,
    from: &mut IovIterSource<'_>,
) -> Result<usize> {
    let iocb = kiocb_of(inode, &kiocb)?;
    // SAFETY: `iocb` is a valid kiocb of an open regular file whose address space reads and
    // writes with the generic page cache helpers (checked above), and `from` a valid source
    // iterator.
    to_bytes(unsafe { bindings::generic_file_write_iter(iocb, from.as_raw()) })
}

/// Moves the position of `file` as `lseek(2)` does for a file without holes
/// (`generic_file_llseek()`), for an [`Operations::llseek`] that handles only some `whence`.
pub fn generic_file_llseek(file: &File, offset: i64, whence: u32) -> Result<i64> {
    let whence = c_int::try_from(whence).map_err(|_| EINVAL)?;
    // SAFETY: `file` is an open file, whose position `llseek` may change.
    let ret = unsafe { bindings::generic_file_llseek(file.as_ptr(), offset, whence) };
    if ret < 0 {
        return Err(Error::from_errno(ret as i32));
    }
    Ok(ret)
}

/// Moves the position of `file` to `offset` (`vfs_setpos()`), for an [`Operations::llseek`]
/// that computed it; `EINVAL` if it is negative or past `max`.
pub fn vfs_setpos(file: &File, offset: i64, max: i64) -> Result<i64> {
    // SAFETY: `file` is an open file, whose position `llseek` may change (its caller holds
    // `f_pos_lock` where the file needs it).
    let ret = unsafe { bindings::vfs_setpos(file.as_ptr(), offset, max) };
    if ret < 0 {
        return Err(Error::from_errno(ret as i32));
    }
    Ok(ret)
}

/// Writes the file's dirty data in `start..=end` and its inode, waits for them and flushes the
/// device's cache (`simple_fsync()`). Metadata in other blocks is the file system's concern.
pub fn generic_fsync(file: &File, start: i64, end: i64, datasync: bool) -> Result {
    // SAFETY: The file is valid for the duration of the call.
    to_result(unsafe { bindings::simple_fsync(file.as_ptr(), start, end, c_int::from(datasync)) })
}

/// A table of file operations for inodes of file system `T`.
#[derive(Copy, Clone)]
pub struct Ops<T: FileSystem>(*const bindings::file_operations, PhantomData<T>);

impl<T: FileSystem> Ops<T> {
    /// Operations for directories: iteration with [`Operations::iterate_shared`], `lseek`, and the
    /// optional `ioctl` and `fsync` of `U`.
    pub const fn new_dir<U: Operations<FileSystem = T> + ?Sized>() -> Self {
        Self(&Tables::<U>::DIR, PhantomData)
    }

    /// Operations for regular files that go through the page cache: `read`, `write`, `mmap`,
    /// `splice`, `lseek` with the generic helpers, and the optional `ioctl` and `fsync` of `U`
    /// (without `fsync`, [`generic_fsync`]).
    pub const fn new_regular<U: Operations<FileSystem = T> + ?Sized>() -> Self {
        Self(&Tables::<U>::REGULAR, PhantomData)
    }

    pub(crate) fn as_raw(&self) -> *const bindings::file_operations {
        self.0
    }
}

type IoctlFn = unsafe extern "C" fn(*mut bindings::file, c_uint, c_ulong) -> c_long;

/// 32-bit processes use the same ioctl handler: the ioctls of Rust file systems must take
/// pointer arguments only, with 32-bit clean layouts.
#[cfg(CONFIG_COMPAT)]
const COMPAT_PTR_IOCTL: Option<IoctlFn> = Some(bindings::compat_ptr_ioctl);
#[cfg(not(CONFIG_COMPAT))]
const COMPAT_PTR_IOCTL: Option<IoctlFn> = None;

struct Tables<U: Operations + ?Sized>(PhantomData<U>);

impl<U: Operations + ?Sized> Tables<U> {
    const DIR: bindings::file_operations = bindings::file_operations {
        llseek: Some(bindings::generic_file_llseek),
        read: Some(bindings::generic_read_dir),
        iterate_shared: if U::HAS_ITERATE_SHARED {
            Some(Self::iterate_shared_callback)
        } else {
            None
        },
        unlocked_ioctl: if U::HAS_IOCTL {
            Some(Self::ioctl_callback)
        } else {
            None
        },
        compat_ioctl: if U::HAS_IOCTL { COMPAT_PTR_IOCTL } else { None },
        fsync: if U::HAS_FSYNC {
            Some(Self::fsync_callback)
        } else {
            Some(bindings::simple_fsync)
        },
        release: if U::HAS_RELEASE {
            Some(Self::release_callback)
        } else {
            None
        },
        // All other operations are optional and may be null.
        ..pin_init::zeroed()
    };

    const REGULAR: bindings::file_operations = bindings::file_operations {
        llseek: if U::HAS_LLSEEK {
            Some(Self::llseek_callback)
        } else {
            Some(bindings::generic_file_llseek)
        },
        open: if U::DIRECT_IO {
            Some(Self::open_direct_callback)
        } else {
            Some(bindings::generic_file_open)
        },
        read_iter: if U::HAS_READ_ITER {
            Some(Self::read_iter_callback)
        } else {
            Some(bindings::generic_file_read_iter)
        },
        write_iter: if U::HAS_WRITE_ITER {
            Some(Self::write_iter_callback)
        } else {
            Some(bindings::generic_file_write_iter)
        },
        mmap_prepare: if U::HAS_MMAP_PREPARE || U::VM_OPS.is_some() {
            Some(Self::mmap_prepare_callback)
        } else {
            Some(bindings::generic_file_mmap_prepare)
        },
        splice_read: Some(bindings::filemap_splice_read),
        splice_write: Some(bindings::iter_file_splice_write),
        unlocked_ioctl: if U::HAS_IOCTL {
            Some(Self::ioctl_callback)
        } else {
            None
        },
        compat_ioctl: if U::HAS_IOCTL { COMPAT_PTR_IOCTL } else { None },
        fsync: if U::HAS_FSYNC {
            Some(Self::fsync_callback)
        } else {
            Some(bindings::simple_fsync)
        },
        fallocate: if U::HAS_FALLOCATE {
            Some(Self::fallocate_callback)
        } else {
            None
        },
        release: if U::HAS_RELEASE {
            Some(Self::release_callback)
        } else {
            None
        },
        // All other operations are optional and may be null.
        ..pin_init::zeroed()
    };

    /// Returns the inode of a file of this file system.
    ///
    /// # Safety
    ///
    /// `file` must be a valid, open file whose inode belongs to `U::FileSystem`.
    unsafe fn inode<'a>(file: *mut bindings::file) -> &'a INode<U::FileSystem> {
        // SAFETY: An open file holds a reference to its inode.
        unsafe { INode::from_raw((*file).f_inode) }
    }

    /// # Safety
    ///
    /// Called by the VFS with an open directory of this file system and a valid context.
    unsafe extern "C" fn iterate_shared_callback(
        file: *mut bindings::file,
        ctx: *mut bindings::dir_context,
    ) -> c_int {
        from_result(|| {
            // SAFETY: See the safety section of this function.
            let (f, inode) = unsafe { (File::from_raw_file(file), Self::inode(file)) };
            // SAFETY: `ctx` is valid and exclusively ours for the duration of the call.
            let mut ctx = DirContext(unsafe { &mut *ctx });
            U::iterate_shared(f, inode, &mut ctx)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the VFS with an open file of this file system.
    unsafe extern "C" fn ioctl_callback(
        file: *mut bindings::file,
        cmd: c_uint,
        arg: c_ulong,
    ) -> c_long {
        // SAFETY: See the safety section of this function.
        let (f, inode) = unsafe { (File::from_raw_file(file), Self::inode(file)) };
        match U::ioctl(f, inode, cmd, arg) {
            Ok(ret) => ret as c_long,
            Err(e) => e.to_errno() as c_long,
        }
    }

    /// `mmap_prepare`: the file system's check, `generic_file_mmap_prepare()`, then its
    /// memory-mapping operations.
    ///
    /// # Safety
    ///
    /// Called by the VM with a valid descriptor of a mapping of an open regular file of this
    /// file system, which nothing else uses during the call.
    unsafe extern "C" fn mmap_prepare_callback(desc: *mut bindings::vm_area_desc) -> c_int {
        // SAFETY: See the safety section of this function.
        let file = unsafe { (*desc).file };
        // SAFETY: As above: the file is open.
        let (f, inode) = unsafe { (File::from_raw_file(file), Self::inode(file)) };
        if U::HAS_MMAP_PREPARE {
            // SAFETY: `VmAreaDesc` is a transparent wrapper of `vm_area_desc`, valid for the
            // call.
            let d = unsafe { &*desc.cast::<VmAreaDesc>() };
            if let Err(e) = U::mmap_prepare(f, inode, d) {
                return e.to_errno();
            }
        }
        // SAFETY: As above.
        let ret = unsafe { bindings::generic_file_mmap_prepare(desc) };
        if ret == 0 {
            if let Some(ops) = U::VM_OPS {
                // SAFETY: As above; `ops.0` is a static table serving files of this file
                // system (an invariant of `VmOps::from_raw`'s callers).
                unsafe { (*desc).vm_ops = ops.0 };
            }
        }
        ret
    }

    /// `generic_file_open()` for a file system that does direct I/O: files may be opened with
    /// `O_DIRECT`.
    ///
    /// # Safety
    ///
    /// Called by the VFS (`do_dentry_open()`) with a regular inode of this file system and the
    /// file being opened, which nothing else uses yet.
    unsafe extern "C" fn open_direct_callback(
        inode: *mut bindings::inode,
        file: *mut bindings::file,
    ) -> c_int {
        // SAFETY: See the safety section of this function.
        let ret = unsafe { bindings::generic_file_open(inode, file) };
        if ret == 0 {
            // SAFETY: As above: the file is not visible to anyone else yet.
            unsafe { (*file).f_mode |= bindings::FMODE_CAN_ODIRECT };
        }
        ret
    }

    /// # Safety
    ///
    /// Called by the VFS with a valid kiocb of an open regular file of this file system and a
    /// valid destination iterator.
    unsafe extern "C" fn read_iter_callback(
        iocb: *mut bindings::kiocb,
        to: *mut bindings::iov_iter,
    ) -> isize {
        // SAFETY: `iocb` is valid and refers to an open file.
        let file = unsafe { (*iocb).ki_filp };
        // SAFETY: See the safety section of this function.
        let inode = unsafe { Self::inode(file) };
        // SAFETY: `iocb` is valid for the call; the file's private data is not used as a `()`.
        let kiocb = unsafe { Kiocb::<()>::from_raw(iocb) };
        // SAFETY: The VFS passes a destination iterator it owns for the call, writable with the
        // C helpers.
        let to = unsafe { IovIterDest::from_raw(to) };
        match U::read_iter(inode, kiocb, to) {
            // A read never exceeds `MAX_RW_COUNT`, far below `isize::MAX`.
            Ok(n) => n as isize,
            Err(e) => e.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// Called by the VFS with a valid kiocb of an open regular file of this file system and a
    /// valid source iterator.
    unsafe extern "C" fn write_iter_callback(
        iocb: *mut bindings::kiocb,
        from: *mut bindings::iov_iter,
    ) -> isize {
        // SAFETY: `iocb` is valid and refers to an open file.
        let file = unsafe { (*iocb).ki_filp };
        // SAFETY: See the safety section of this function.
        let inode = unsafe { Self::inode(file) };
        // SAFETY: `iocb` is valid for the call; the file's private data is not used as a `()`.
        let kiocb = unsafe { Kiocb::<()>::from_raw(iocb) };
        // SAFETY: The VFS passes a source iterator it owns for the call, readable with the C
        // helpers.
        let from = unsafe { IovIterSource::from_raw(from) };
        match U::write_iter(inode, kiocb, from) {
            // A write never exceeds `MAX_RW_COUNT`, far below `isize::MAX`.
            Ok(n) => n as isize,
            Err(e) => e.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// Called by the VFS with an open regular file of this file system.
    unsafe extern "C" fn llseek_callback(
        file: *mut bindings::file,
        offset: bindings::loff_t,
        whence: c_int,
    ) -> bindings::loff_t {
        // SAFETY: See the safety section of this function.
        let (f, inode) = unsafe { (File::from_raw_file(file), Self::inode(file)) };
        let Ok(whence) = u32::try_from(whence) else {
            return EINVAL.to_errno().into();
        };
        match U::llseek(f, inode, offset, whence) {
            Ok(pos) => pos,
            Err(e) => e.to_errno().into(),
        }
    }

    /// # Safety
    ///
    /// Called by the VFS (`vfs_fallocate()`) with an open regular file of this file system.
    unsafe extern "C" fn fallocate_callback(
        file: *mut bindings::file,
        mode: c_int,
        offset: bindings::loff_t,
        len: bindings::loff_t,
    ) -> c_long {
        // SAFETY: See the safety section of this function.
        let (f, inode) = unsafe { (File::from_raw_file(file), Self::inode(file)) };
        match U::fallocate(f, inode, mode, offset, len) {
            Ok(()) => 0,
            Err(e) => e.to_errno() as c_long,
        }
    }

    /// # Safety
    ///
    /// Called by the VFS (`__fput()`) with `file`, a file of this file system being released,
    /// and its inode.
    unsafe extern "C" fn release_callback(
        _inode: *mut bindings::inode,
        file: *mut bindings::file,
    ) -> c_int {
        // SAFETY: The file and its inode stay valid until `release` returns, and `__fput()`
        // holds the only access to the file: there is no active `fdget_pos` region on it.
        let (f, inode) = unsafe { (File::from_raw_file(file), Self::inode(file)) };
        U::release(f, inode);
        0
    }

    /// # Safety
    ///
    /// Called by the VFS with an open file of this file system.
    unsafe extern "C" fn fsync_callback(
        file: *mut bindings::file,
        start: bindings::loff_t,
        end: bindings::loff_t,
        datasync: c_int,
    ) -> c_int {
        from_result(|| {
            // SAFETY: See the safety section of this function.
            let (f, inode) = unsafe { (File::from_raw_file(file), Self::inode(file)) };
            U::fsync(f, inode, start, end, datasync != 0)?;
            Ok(0)
        })
    }
}
