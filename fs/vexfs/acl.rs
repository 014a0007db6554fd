// SPDX-License-Identifier: GPL-2.0

//! POSIX ACLs, kept as the `system.posix_acl_access` and `system.posix_acl_default` extended
//! attributes of an inode (see [`crate::xattr`]), in the form of `struct
//! posix_acl_xattr_header` with ids of the initial user namespace, as ext4 keeps them.

use crate::{
    format,
    xattr,
    VexFs, //
};
use kernel::{
    fs::{
        dentry::DEntry,
        inode::{
            INode,
            MntIdmap,
            Type as FileType, //
        },
        posix_acl::{
            self,
            PosixAcl,
            Type, //
        },
    },
    prelude::*,
    sync::aref::ARef,
};

/// The attribute name, without its `system.` prefix, of the ACL of type `typ`.
fn name(typ: Type) -> &'static [u8] {
    match typ {
        Type::Access => b"posix_acl_access",
        Type::Default => b"posix_acl_default",
    }
}

/// The ACL of type `typ` of `inode`; `None` if it has none. Reading it may sleep, so an RCU
/// walk gets `ECHILD`.
pub(crate) fn get(inode: &INode<VexFs>, typ: Type, rcu: bool) -> Result<Option<ARef<PosixAcl>>> {
    if rcu {
        return Err(ECHILD);
    }
    match xattr::with_value(
        inode,
        format::XATTR_INDEX_SYSTEM,
        name(typ),
        PosixAcl::from_xattr,
    ) {
        Err(e) if e == ENODATA => Ok(None),
        r => r,
    }
}

/// Stores `acl` of type `typ` on `inode` (or removes it with `None`) and caches it.
fn store(inode: &INode<VexFs>, typ: Type, acl: Option<&PosixAcl>) -> Result {
    let value = acl.map(PosixAcl::to_xattr).transpose()?;
    let res = xattr::set(
        inode,
        format::XATTR_INDEX_SYSTEM,
        name(typ),
        value.as_deref(),
        0,
    );
    match res {
        // Removing an ACL the inode does not have.
        Err(e) if e == ENODATA && acl.is_none() => {}
        r => r?,
    }
    inode.set_cached_acl(typ, acl);
    Ok(())
}

/// `set_acl`: stores `acl` as the ACL of type `typ` of the inode of `dentry`. An access ACL
/// also sets the mode, and is not stored if the mode says all it says.
pub(crate) fn set(
    idmap: &MntIdmap,
    dentry: &DEntry<VexFs>,
    acl: Option<&PosixAcl>,
    typ: Type,
) -> Result {
    let inode = dentry.inode().ok_or(ENOENT)?;
    let mut acl = acl;
    let mut mode = None;
    match typ {
        Type::Access => {
            if let Some(a) = acl {
                let (m, keep) = posix_acl::update_mode(idmap, inode, a)?;
                mode = Some(m);
                if !keep {
                    acl = None;
                }
            }
        }
        Type::Default if inode.typ() != FileType::Dir && acl.is_some() => return Err(EACCES),
        Type::Default => {}
    }
    store(inode, typ, acl)?;
    if let Some(m) = mode {
        inode.set_mode(m);
    }
    inode.touch_ctime();
    inode.mark_dirty();
    Ok(())
}

/// Stores the ACLs that [`posix_acl::create`] gave a new inode.
pub(crate) fn init(inode: &INode<VexFs>, acls: posix_acl::NewAcls) -> Result {
    for (typ, acl) in [(Type::Default, acls.default), (Type::Access, acls.access)] {
        match acl.as_deref() {
            Some(acl) => store(inode, typ, Some(acl))?,
            // Nothing to remove from a new inode: only the cache learns there is none.
            None => inode.set_cached_acl(typ, None),
        }
    }
    Ok(())
}
