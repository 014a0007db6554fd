// SPDX-License-Identifier: GPL-2.0

//! POSIX access control lists of the inodes of a Rust file system.
//!
//! The VFS checks permissions against an inode's ACL ([`super::inode::Operations::get_inode_acl`],
//! cached in the inode) and changes it through [`super::inode::Operations::set_acl`]
//! (`setxattr(2)` of `system.posix_acl_access` and `system.posix_acl_default`); the file
//! system stores it, usually in the `struct posix_acl_xattr_header` form that
//! [`PosixAcl::from_xattr`] and [`PosixAcl::to_xattr`] convert, with ids in the initial user
//! namespace. A file system whose super block has [`super::sb::SuperBlock::set_posix_acl`]
//! also applies the umask itself, with [`create`] when it creates an inode, and keeps the
//! ACL in step with the mode with [`chmod`].
//!
//! C headers: [`include/linux/posix_acl.h`](srctree/include/linux/posix_acl.h) and
//! [`include/linux/posix_acl_xattr.h`](srctree/include/linux/posix_acl_xattr.h).

use super::{
    dentry::DEntry,
    inode::{
        INode,
        MntIdmap, //
    },
    FileSystem, //
};
use crate::{
    bindings,
    error::{
        from_err_ptr,
        to_result, //
    },
    prelude::*,
    sync::aref::{
        ARef,
        AlwaysRefCounted, //
    },
    types::Opaque,
};
use core::ptr::{
    self,
    NonNull, //
};

/// The two ACLs of an inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// The ACL that permission checks use (`ACL_TYPE_ACCESS`).
    Access,
    /// The ACL that new inodes of a directory inherit (`ACL_TYPE_DEFAULT`).
    Default,
}

impl Type {
    /// The C value (`ACL_TYPE_*`).
    pub fn as_raw(self) -> c_int {
        match self {
            Type::Access => bindings::ACL_TYPE_ACCESS as c_int,
            Type::Default => bindings::ACL_TYPE_DEFAULT as c_int,
        }
    }

    /// The type of C value `raw`; `EINVAL` for another value.
    pub fn from_raw(raw: c_int) -> Result<Self> {
        match u32::try_from(raw) {
            Ok(bindings::ACL_TYPE_ACCESS) => Ok(Type::Access),
            Ok(bindings::ACL_TYPE_DEFAULT) => Ok(Type::Default),
            _ => Err(EINVAL),
        }
    }
}

/// A POSIX ACL (`struct posix_acl`), reference counted.
///
/// # Invariants
///
/// The wrapped ACL is valid while its reference count is not zero; it never changes once
/// shared (the VFS replaces ACLs, it does not edit them).
#[repr(transparent)]
pub struct PosixAcl(Opaque<bindings::posix_acl>);

// SAFETY: An ACL is immutable once shared and freed through RCU when its last reference goes,
// from any thread.
unsafe impl Send for PosixAcl {}

// SAFETY: As above.
unsafe impl Sync for PosixAcl {}

// SAFETY: `posix_acl_dup()` and `posix_acl_release()` maintain the reference count; the ACL
// stays valid while it is not zero.
unsafe impl AlwaysRefCounted for PosixAcl {
    fn inc_ref(&self) {
        // SAFETY: The existence of `self` means the count is non-zero.
        unsafe { bindings::posix_acl_dup(self.0.get()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller owns a reference to give up.
        unsafe { bindings::posix_acl_release(obj.as_ptr().cast()) };
    }
}

impl PosixAcl {
    /// Takes ownership of the reference the C pointer `ptr` carries (`NULL`: no ACL).
    ///
    /// # Safety
    ///
    /// `ptr` must be null or a valid ACL whose reference the caller gives up.
    unsafe fn from_owned(ptr: *mut bindings::posix_acl) -> Option<ARef<Self>> {
        // SAFETY: `Self` is a transparent wrapper; the caller gives its reference to the
        // `ARef`.
        NonNull::new(ptr).map(|p| unsafe { ARef::from_raw(p.cast()) })
    }

    /// The raw C ACL.
    pub fn as_raw(&self) -> *mut bindings::posix_acl {
        self.0.get()
    }

    /// Decodes an ACL stored as `value`, in the `system.posix_acl_*` form with ids of the
    /// initial user namespace (`posix_acl_from_xattr()`); `None` for an empty one. Fails with
    /// `EINVAL` if the value is malformed.
    pub fn from_xattr(value: &[u8]) -> Result<Option<ARef<Self>>> {
        // SAFETY: `value` is valid for reads of its length; `init_user_ns` is a static object.
        let acl = unsafe {
            bindings::posix_acl_from_xattr(
                &raw mut bindings::init_user_ns,
                value.as_ptr().cast(),
                value.len(),
            )
        };
        let acl = from_err_ptr(acl)?;
        // SAFETY: `posix_acl_from_xattr()` returns a new reference, or null.
        Ok(unsafe { Self::from_owned(acl) })
    }

    /// Encodes the ACL in the `system.posix_acl_*` form, with ids of the initial user namespace
    /// (`posix_acl_to_xattr()`), for the file system to store.
    pub fn to_xattr(&self) -> Result<KVec<u8>> {
        let mut size = 0usize;
        // SAFETY: The ACL is valid (type invariant); `init_user_ns` is a static object. The
        // buffer returned is ours to free.
        let buf = unsafe {
            bindings::posix_acl_to_xattr(
                &raw mut bindings::init_user_ns,
                self.as_raw(),
                &mut size,
                bindings::GFP_NOFS,
            )
        };
        if buf.is_null() {
            return Err(ENOMEM);
        }
        let mut v = KVec::with_capacity(size, GFP_KERNEL);
        if let Ok(v) = &mut v {
            // SAFETY: `buf` holds `size` bytes written by `posix_acl_to_xattr()`.
            let bytes = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), size) };
            // The capacity is reserved: this does not allocate.
            let _ = v.extend_from_slice(bytes, GFP_KERNEL);
        }
        // SAFETY: `buf` was allocated by `posix_acl_to_xattr()` with kmalloc.
        unsafe { bindings::kfree(buf) };
        Ok(v?)
    }
}

/// The mode that ACL `acl` of `inode`, about to become its access ACL, gives it
/// (`posix_acl_update_mode()`), and whether the ACL is still needed: not if the mode says
/// all it says. The set-group-ID bit goes unless the caller may keep it. For
/// [`super::inode::Operations::set_acl`] of [`Type::Access`].
pub fn update_mode<T: FileSystem>(
    idmap: &MntIdmap,
    inode: &INode<T>,
    acl: &PosixAcl,
) -> Result<(u16, bool)> {
    let mut mode: bindings::umode_t = 0;
    let mut p = acl.as_raw();
    // SAFETY: All pointers are valid for the call; `posix_acl_update_mode()` may set `p` to
    // null, which takes no reference away (the caller still holds `acl`).
    to_result(unsafe {
        bindings::posix_acl_update_mode(idmap.as_raw(), inode.as_raw(), &mut mode, &mut p)
    })?;
    Ok((mode, !p.is_null()))
}

/// Brings the access ACL of the inode of `dentry` in line with its new mode `mode`
/// (`posix_acl_chmod()`), through the file system's ACL operations. Call it from `setattr`
/// after a change of mode, with the inode lock held (as `setattr` has it).
pub fn chmod<T: FileSystem>(idmap: &MntIdmap, dentry: &DEntry<T>, mode: u16) -> Result {
    // SAFETY: The idmap and the dentry are valid for the call.
    to_result(unsafe { bindings::posix_acl_chmod(idmap.as_raw(), dentry.as_raw(), mode) })
}

/// The ACLs of a new inode, from [`create`].
pub struct NewAcls {
    /// Its default ACL (a directory's, inherited from its parent).
    pub default: Option<ARef<PosixAcl>>,
    /// Its access ACL.
    pub access: Option<ARef<PosixAcl>>,
}

/// The ACLs of an inode about to be created in `dir` with `mode` (`posix_acl_create()`):
/// applies the default ACL of `dir` to `mode`, or the umask if it has none, and returns the
/// new inode's default and access ACLs, which the file system stores with it.
pub fn create<T: FileSystem>(dir: &INode<T>, mode: &mut u16) -> Result<NewAcls> {
    let (mut default, mut access) = (ptr::null_mut(), ptr::null_mut());
    // SAFETY: `dir` is valid for the call; the ACLs it returns are new references, or null.
    to_result(unsafe {
        bindings::posix_acl_create(dir.as_raw(), mode, &mut default, &mut access)
    })?;
    // SAFETY: As above: the references are ours.
    Ok(unsafe {
        NewAcls {
            default: PosixAcl::from_owned(default),
            access: PosixAcl::from_owned(access),
        }
    })
}

impl<T: FileSystem> INode<T> {
    /// Caches `acl` as the inode's ACL of type `typ` (`set_cached_acl()`), after the file
    /// system stored it; `None`: the inode has none.
    pub fn set_cached_acl(&self, typ: Type, acl: Option<&PosixAcl>) {
        let acl = acl.map_or(ptr::null_mut(), PosixAcl::as_raw);
        // SAFETY: The inode is valid; `set_cached_acl()` takes its own reference of `acl`.
        unsafe { bindings::set_cached_acl(self.as_raw(), typ.as_raw(), acl) };
    }
}
