// SPDX-License-Identifier: GPL-2.0

//! Extended attributes of the inodes of a Rust file system.
//!
//! The VFS finds the handler of an attribute by the prefix of its name (`user.`, `trusted.`,
//! `security.`, ...) in the NULL-terminated table of handlers of the super block (`s_xattr`),
//! checks the caller's permission for that namespace (`xattr_permission()`: `trusted.` needs
//! `CAP_SYS_ADMIN`, `user.` a regular file or directory the caller may write, and so on) and
//! calls the handler's get or set with the rest of the name. A file system implements
//! [`Operations`] once and makes one [`Handler`] per prefix it stores, telling them apart by
//! the index each handler carries (the handler's `flags`); listing the names is an inode
//! operation ([`super::inode::Operations::listxattr`]).
//!
//! C header: [`include/linux/xattr.h`](srctree/include/linux/xattr.h).

use super::{
    inode::{
        INode,
        MntIdmap, //
    },
    FileSystem, //
};
use crate::{
    bindings,
    error::from_result,
    prelude::*, //
};
use core::{
    marker::PhantomData,
    ptr, //
};

/// The flags of [`Operations::set`] (`XATTR_*` of `<uapi/linux/xattr.h>`).
pub mod flags {
    use crate::bindings;

    /// Fail with `EEXIST` if the attribute exists (`XATTR_CREATE`).
    pub const CREATE: i32 = bindings::XATTR_CREATE as i32;
    /// Fail with `ENODATA` if the attribute does not exist (`XATTR_REPLACE`).
    pub const REPLACE: i32 = bindings::XATTR_REPLACE as i32;
}

/// The largest value of an attribute that the VFS passes to a file system
/// (`XATTR_SIZE_MAX`); larger ones fail with `E2BIG` before.
pub const SIZE_MAX: usize = bindings::XATTR_SIZE_MAX as usize;

/// The operations behind the attribute handlers of a file system.
#[vtable]
pub trait Operations {
    /// The file system whose inodes have the attributes.
    type FileSystem: FileSystem;

    /// Reads attribute `name` (without its prefix) of the namespace `index` of `inode` into
    /// `buf` and returns the length of its value; with an empty `buf` it only returns the
    /// length. Fails with `ENODATA` if there is no such attribute and with `ERANGE` if the
    /// value does not fit. Called without the inode lock.
    fn get(
        inode: &INode<Self::FileSystem>,
        index: i32,
        name: &[u8],
        buf: &mut [u8],
    ) -> Result<usize>;

    /// Sets attribute `name` (without its prefix) of the namespace `index` of `inode` to
    /// `value`, or removes it if `value` is `None`, as [`flags`] ask. The VFS has checked the
    /// caller's permission and holds the inode lock.
    fn set(
        idmap: &MntIdmap,
        inode: &INode<Self::FileSystem>,
        index: i32,
        name: &[u8],
        value: Option<&[u8]>,
        flags: i32,
    ) -> Result;
}

/// The handler of the attributes whose names start with one prefix (`struct xattr_handler`),
/// for a [`Handlers`] table.
///
/// # Invariants
///
/// `0` is a handler whose callbacks serve inodes of file system `T`; it never changes.
#[repr(transparent)]
pub struct Handler<T: FileSystem>(bindings::xattr_handler, PhantomData<T>);

// SAFETY: A handler is immutable (type invariant) and holds only pointers to static data and
// functions, so it may be shared between threads.
unsafe impl<T: FileSystem> Sync for Handler<T> {}

impl<T: FileSystem> Handler<T> {
    /// A handler of the attributes whose names start with `prefix` (`"user."`, ...), served
    /// by `U` with `index`, which [`Operations::get`] and [`Operations::set`] receive.
    pub const fn new<U: Operations<FileSystem = T> + ?Sized>(
        prefix: &'static CStr,
        index: i32,
    ) -> Self {
        // INVARIANT: The callbacks are `U`'s, which serve `T`.
        Self(
            bindings::xattr_handler {
                name: ptr::null(),
                prefix: crate::str::as_char_ptr_in_const_context(prefix),
                flags: index,
                list: None,
                get: Some(Callbacks::<U>::get_callback),
                set: Some(Callbacks::<U>::set_callback),
            },
            PhantomData,
        )
    }
}

/// The NULL-terminated table of the attribute handlers of a file system, for
/// [`super::sb::SuperBlock::set_xattr_handlers`].
///
/// # Invariants
///
/// The last of the `N` entries is `None`.
#[repr(transparent)]
pub struct Handlers<T: FileSystem, const N: usize>([Option<&'static Handler<T>>; N]);

impl<T: FileSystem, const N: usize> Handlers<T, N> {
    /// A table of `handlers`, whose last entry must be `None` (checked when the constant is
    /// evaluated).
    pub const fn new(handlers: [Option<&'static Handler<T>>; N]) -> Self {
        assert!(
            N > 0 && handlers[N - 1].is_none(),
            "the handler table must end with None"
        );
        // INVARIANT: Checked above.
        Self(handlers)
    }

    /// The table as `s_xattr` takes it.
    pub(crate) fn as_raw(&'static self) -> *const *const bindings::xattr_handler {
        // `Option<&Handler<T>>` has the layout of a nullable pointer to the transparent
        // `Handler<T>`, so the array is one of `*const xattr_handler`, terminated by null
        // (type invariant).
        self.0.as_ptr().cast()
    }
}

/// The caller's buffer of a get or list call (`getxattr()`, `listxattr()`): empty when the call
/// only asks for the length (a null buffer or a size of 0).
///
/// # Safety
///
/// `buffer` must be null or valid for writes of `size` bytes, which nothing else accesses, for
/// `'a`.
pub(super) unsafe fn out_buffer<'a>(buffer: *mut c_void, size: usize) -> &'a mut [u8] {
    if buffer.is_null() || size == 0 {
        return &mut [];
    }
    // SAFETY: Guaranteed by the caller.
    unsafe { core::slice::from_raw_parts_mut(buffer.cast(), size) }
}

struct Callbacks<U: Operations + ?Sized>(PhantomData<U>);

impl<U: Operations + ?Sized> Callbacks<U> {
    /// # Safety
    ///
    /// Called by the VFS (`__vfs_getxattr()`) with a handler made by [`Handler::new`] for `U`,
    /// a valid inode of `U::FileSystem`, a NUL-terminated name and `buffer` valid for writes of
    /// `size` bytes (or null with a `size` of 0).
    unsafe extern "C" fn get_callback(
        handler: *const bindings::xattr_handler,
        _dentry: *mut bindings::dentry,
        inode: *mut bindings::inode,
        name: *const c_char,
        buffer: *mut c_void,
        size: usize,
    ) -> c_int {
        from_result(|| {
            // SAFETY: See the safety section of this function.
            let (index, inode, name) = unsafe {
                (
                    (*handler).flags,
                    INode::from_raw(inode),
                    CStr::from_char_ptr(name),
                )
            };
            // SAFETY: See the safety section; nothing else accesses the buffer during the call.
            let buf = unsafe { out_buffer(buffer, size) };
            let n = U::get(inode, index, name.to_bytes(), buf)?;
            c_int::try_from(n).map_err(|_| E2BIG)
        })
    }

    /// # Safety
    ///
    /// Called by the VFS (`__vfs_setxattr()`, `__vfs_removexattr()`) with a handler made by
    /// [`Handler::new`] for `U`, a valid idmap, a valid inode of `U::FileSystem`, a
    /// NUL-terminated name, and `buffer` valid for reads of `size` bytes, or null for a
    /// removal.
    unsafe extern "C" fn set_callback(
        handler: *const bindings::xattr_handler,
        idmap: *mut bindings::mnt_idmap,
        _dentry: *mut bindings::dentry,
        inode: *mut bindings::inode,
        name: *const c_char,
        buffer: *const c_void,
        size: usize,
        flags: c_int,
    ) -> c_int {
        from_result(|| {
            // SAFETY: See the safety section of this function.
            let (index, idmap, inode, name) = unsafe {
                (
                    (*handler).flags,
                    MntIdmap::from_raw(idmap),
                    INode::from_raw(inode),
                    CStr::from_char_ptr(name),
                )
            };
            let value: Option<&[u8]> = if buffer.is_null() {
                None
            } else if size == 0 {
                Some(&[])
            } else {
                // SAFETY: See the safety section; the VFS does not change the value during the
                // call.
                Some(unsafe { core::slice::from_raw_parts(buffer.cast(), size) })
            };
            U::set(idmap, inode, index, name.to_bytes(), value, flags)?;
            Ok(0)
        })
    }
}
