// SPDX-License-Identifier: GPL-2.0

//! Directory entries.
//!
//! C header: [`include/linux/dcache.h`](srctree/include/linux/dcache.h).

use super::{
    inode::INode,
    FileSystem, //
};
use crate::{
    bindings,
    error::from_err_ptr,
    prelude::*,
    sync::aref::{
        ARef,
        AlwaysRefCounted, //
    },
    types::Opaque,
};
use core::{
    marker::PhantomData,
    ptr::NonNull, //
};

/// A directory entry of file system `T`.
///
/// # Invariants
///
/// The wrapped `struct dentry` is valid and belongs to a super block of type `T`.
#[repr(transparent)]
pub struct DEntry<T: FileSystem>(Opaque<bindings::dentry>, PhantomData<T>);

// SAFETY: Dentries are reference counted and may be released on any thread.
unsafe impl<T: FileSystem> Send for DEntry<T> {}

// SAFETY: The methods only read fields that are stable while the caller holds the locks the VFS
// documents, or use the C accessors.
unsafe impl<T: FileSystem> Sync for DEntry<T> {}

// SAFETY: `dget`/`dput` maintain the reference count.
unsafe impl<T: FileSystem> AlwaysRefCounted for DEntry<T> {
    fn inc_ref(&self) {
        // SAFETY: The existence of `self` means the count is non-zero.
        unsafe { bindings::dget(self.as_raw()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller owns a reference to give up.
        unsafe { bindings::dput(obj.as_ptr().cast()) };
    }
}

impl<T: FileSystem> DEntry<T> {
    /// # Safety
    ///
    /// `ptr` must be a valid dentry of a super block of type `T` for the lifetime `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::dentry) -> &'a Self {
        // SAFETY: `Self` is transparent; validity is guaranteed by the caller.
        unsafe { &*ptr.cast() }
    }

    /// Returns the raw C dentry.
    pub fn as_raw(&self) -> *mut bindings::dentry {
        self.0.get()
    }

    /// The name of the entry.
    ///
    /// Stable while the caller holds the parent directory's lock, as in all inode operations.
    pub fn name(&self) -> &[u8] {
        // SAFETY: The name is valid and not renamed while the parent is locked.
        unsafe {
            let name = &(*self.as_raw()).__bindgen_anon_1.d_name;
            core::slice::from_raw_parts(
                name.name,
                name.__bindgen_anon_1.__bindgen_anon_1.len as usize,
            )
        }
    }

    /// The inode of the entry, or `None` for a negative entry.
    pub fn inode(&self) -> Option<&INode<T>> {
        // SAFETY: The dentry is valid; `d_inode` is stable while the parent is locked.
        let inode = unsafe { (*self.as_raw()).d_inode };
        if inode.is_null() {
            None
        } else {
            // SAFETY: The inode belongs to the same super block and is initialised.
            Some(unsafe { INode::from_raw(inode) })
        }
    }

    /// Binds the negative entry to `inode`, consuming the reference (`d_instantiate()`).
    pub fn instantiate(&self, inode: ARef<INode<T>>) {
        // SAFETY: The dentry is valid and negative; `d_instantiate` takes over our reference.
        unsafe { bindings::d_instantiate(self.as_raw(), ARef::into_raw(inode).as_ptr().cast()) };
    }
}

/// A dentry being looked up, not yet hashed in the dentry cache.
pub struct Unhashed<'a, T: FileSystem>(&'a DEntry<T>);

impl<'a, T: FileSystem> Unhashed<'a, T> {
    /// # Safety
    ///
    /// `ptr` must be a valid unhashed dentry of a super block of type `T`, being looked up, for
    /// the lifetime `'a`.
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::dentry) -> Self {
        // SAFETY: Guaranteed by the caller.
        Self(unsafe { DEntry::from_raw(ptr) })
    }

    /// The name being looked up.
    pub fn name(&self) -> &'a [u8] {
        self.0.name()
    }

    /// Binds the dentry to `inode` (or records a negative entry for `None`) and hashes it
    /// (`d_splice_alias()`). For directories, an existing alias may be returned instead.
    pub fn splice_alias(self, inode: Option<ARef<INode<T>>>) -> Result<Option<ARef<DEntry<T>>>> {
        let inode_ptr = inode.map_or(core::ptr::null_mut(), |i| ARef::into_raw(i).as_ptr().cast());
        // SAFETY: The dentry is valid and unhashed; `d_splice_alias` takes over the inode
        // reference (also on failure).
        let ret = unsafe { bindings::d_splice_alias(inode_ptr, self.0.as_raw()) };
        let ret = from_err_ptr(ret)?;
        // SAFETY: A non-null result is an existing dentry with a reference we now own.
        Ok(NonNull::new(ret).map(|d| unsafe { ARef::from_raw(d.cast()) }))
    }
}

/// The root dentry of a super block, returned by [`FileSystem::init_root`].
///
/// # Invariants
///
/// `0` is a valid root dentry made by `d_make_root()` with a reference owned by this object.
pub struct Root<T: FileSystem>(NonNull<bindings::dentry>, PhantomData<T>);

impl<T: FileSystem> Root<T> {
    /// Makes the root dentry of a super block from its root directory inode.
    pub fn try_new(inode: ARef<INode<T>>) -> Result<Self> {
        // SAFETY: `d_make_root` takes over the inode reference, also on failure.
        let d = unsafe { bindings::d_make_root(ARef::into_raw(inode).as_ptr().cast()) };
        Ok(Self(NonNull::new(d).ok_or(ENOMEM)?, PhantomData))
    }

    pub(crate) fn into_raw(self) -> *mut bindings::dentry {
        let p = self.0.as_ptr();
        core::mem::forget(self);
        p
    }
}

impl<T: FileSystem> Drop for Root<T> {
    fn drop(&mut self) {
        // SAFETY: We own a reference to the dentry.
        unsafe { bindings::dput(self.0.as_ptr()) };
    }
}
