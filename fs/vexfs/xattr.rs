// SPDX-License-Identifier: GPL-2.0

//! Extended attributes: `user.`, `trusted.` and `security.` ones, in one block per inode.
//!
//! The block (see [`format::xattr_entries`]) is metadata: it is read and changed through the
//! buffer cache under the inode's block map mutex, which also serialises its allocation with
//! that of the file's other blocks, and counts in the inode's blocks. An inode gets it with
//! its first attribute and loses it with its last one. All the names and values of an inode
//! share the block: a change that does not fit fails with `ENOSPC`.

use crate::{
    format::{
        self,
        XattrSet, //
    },
    format_err,
    inode::{
        alloc_for,
        check_ptr,
        free_for, //
    },
    VexFs, //
};
use kernel::{
    cred::{
        capable,
        Capability, //
    },
    fs::{
        dentry::DEntry,
        inode::{
            INode,
            MntIdmap, //
        },
        xattr::{
            self,
            Handler,
            Handlers, //
        },
    },
    prelude::*,
};

/// The operations behind the handlers.
struct XattrOps;

static USER: Handler<VexFs> = Handler::new::<XattrOps>(c"user.", format::XATTR_INDEX_USER as i32);
static TRUSTED: Handler<VexFs> =
    Handler::new::<XattrOps>(c"trusted.", format::XATTR_INDEX_TRUSTED as i32);
static SECURITY: Handler<VexFs> =
    Handler::new::<XattrOps>(c"security.", format::XATTR_INDEX_SECURITY as i32);

/// The handlers of a file system with [`format::FEATURE_RO_COMPAT_XATTR`], for
/// [`SuperBlock::set_xattr_handlers`](kernel::fs::sb::SuperBlock::set_xattr_handlers).
pub(crate) static HANDLERS: Handlers<VexFs, 4> =
    Handlers::new([Some(&USER), Some(&TRUSTED), Some(&SECURITY), None]);

/// The inode number as the block's owner field holds it.
fn owner(inode: &INode<VexFs>) -> Result<u32> {
    u32::try_from(inode.ino()).map_err(|_| EINVAL)
}

/// The name index of a handler's `index`.
fn name_index(index: i32) -> Result<u8> {
    u8::try_from(index).map_err(|_| EINVAL)
}

#[vtable]
impl xattr::Operations for XattrOps {
    type FileSystem = VexFs;

    fn get(inode: &INode<VexFs>, index: i32, name: &[u8], buf: &mut [u8]) -> Result<usize> {
        get(inode, name_index(index)?, name, buf)
    }

    fn set(
        _idmap: &MntIdmap,
        inode: &INode<VexFs>,
        index: i32,
        name: &[u8],
        value: Option<&[u8]>,
        flags: i32,
    ) -> Result {
        set(inode, name_index(index)?, name, value, flags)
    }
}

/// Reads attribute `name` of index `index` of `inode` into `buf`, or with an empty `buf` only
/// returns its length.
pub(crate) fn get(inode: &INode<VexFs>, index: u8, name: &[u8], buf: &mut [u8]) -> Result<usize> {
    with_value(inode, index, name, |value| {
        if !buf.is_empty() {
            buf.get_mut(..value.len())
                .ok_or(ERANGE)?
                .copy_from_slice(value);
        }
        Ok(value.len())
    })
}

/// Calls `f` with the value of attribute `name` of index `index` of `inode`, under the block
/// map mutex (so that the value is whole); `ENODATA` if there is none.
pub(crate) fn with_value<R>(
    inode: &INode<VexFs>,
    index: u8,
    name: &[u8],
    f: impl FnOnce(&[u8]) -> Result<R>,
) -> Result<R> {
    let map = inode.data().map.lock();
    if map.xattr == 0 {
        return Err(ENODATA);
    }
    let bh = inode.super_block().bread(check_ptr(inode, map.xattr)?)?;
    let guard = bh.lock();
    let entry = format::xattr_get(guard.data(), owner(inode)?, index, name)
        .map_err(|e| bad_block(inode, e))?
        .ok_or(ENODATA)?;
    f(entry.value)
}

/// Sets attribute `name` of index `index` of `inode` to `value`, or removes it if `value` is
/// `None`, as `flags` (`xattr::flags`) ask. A name longer than [`format::XATTR_NAME_MAX`] or a
/// value that would not fit in an empty block fails with `ERANGE`, as on ext2; a value that
/// does not fit beside the other attributes with `ENOSPC`.
pub(crate) fn set(
    inode: &INode<VexFs>,
    index: u8,
    name: &[u8],
    value: Option<&[u8]>,
    flags: i32,
) -> Result {
    let sb = inode.super_block();
    sb.data().check_live()?;
    if sb.rdonly() {
        return Err(EROFS);
    }
    if name.is_empty() {
        return Err(EINVAL);
    }
    let too_big = value.is_some_and(|v| {
        format::xattr_entry_size(name.len(), v.len()) > format::BLOCK_SIZE - format::XATTR_HEADER
    });
    if name.len() > format::XATTR_NAME_MAX || too_big {
        return Err(ERANGE);
    }
    let create = flags & xattr::flags::CREATE != 0;
    let replace = value.is_none() || flags & xattr::flags::REPLACE != 0;
    let owner = owner(inode)?;
    let mut map = inode.data().map.lock();
    let fresh = map.xattr == 0;
    if fresh {
        // Nothing to replace or remove.
        if replace {
            return Err(ENODATA);
        }
        map.xattr = alloc_for(inode, &mut map, true)?;
    }
    let block = check_ptr(inode, map.xattr)?;
    let bh = sb.bread(block)?;
    let mut guard = bh.lock();
    let mut change = || -> Result<u16> {
        if fresh {
            format::xattr_init(guard.data_mut(), owner).map_err(format_err)?;
        } else {
            let found = format::xattr_get(guard.data(), owner, index, name)
                .map_err(|e| bad_block(inode, e))?
                .is_some();
            if found && create {
                return Err(EEXIST);
            }
            if !found && replace {
                return Err(ENODATA);
            }
        }
        match format::xattr_set(guard.data_mut(), owner, index, name, value) {
            Ok(XattrSet::Done(count)) => Ok(count),
            // Cannot be for a fresh block: `too_big` is false.
            Ok(XattrSet::NoRoom) => Err(ENOSPC),
            Err(e) => Err(bad_block(inode, e)),
        }
    };
    let left = change();
    if left.is_ok() {
        guard.mark_dirty();
    }
    drop(guard);
    // The block goes with its last attribute, and a fresh one that got none.
    if left == Ok(0) || (fresh && left.is_err()) {
        map.xattr = 0;
        free_for(inode, &mut map, block)?;
    }
    left?;
    drop(map);
    inode.touch_ctime();
    inode.mark_dirty();
    Ok(())
}

/// Reports a damaged attribute block of `inode`.
fn bad_block(inode: &INode<VexFs>, e: format::FormatError) -> Error {
    match e {
        format::FormatError::Invalid(_) => ERANGE,
        e => crate::super_block::corrupted(inode.super_block(), inode.ino(), crate::describe(e)),
    }
}

/// Frees the attribute block of `inode` (which is being deleted), if it has one.
pub(crate) fn free(inode: &INode<VexFs>) -> Result {
    let mut map = inode.data().map.lock();
    if map.xattr == 0 {
        return Ok(());
    }
    let block = check_ptr(inode, map.xattr)?;
    map.xattr = 0;
    free_for(inode, &mut map, block)
}

/// `listxattr(2)`: the names of the attributes of the inode of `dentry`, with their prefixes,
/// each followed by a NUL; `trusted.` ones only for a caller with `CAP_SYS_ADMIN`, who may
/// read them.
pub(crate) fn list(dentry: &DEntry<VexFs>, buf: &mut [u8]) -> Result<usize> {
    let inode = dentry.inode().ok_or(ENOENT)?;
    let owner = owner(inode)?;
    let map = inode.data().map.lock();
    if map.xattr == 0 {
        return Ok(0);
    }
    let bh = inode.super_block().bread(check_ptr(inode, map.xattr)?)?;
    let guard = bh.lock();
    let mut trusted = None;
    let mut len = 0usize;
    let mut room = true;
    format::xattr_entries(guard.data(), owner, |e| {
        if e.index == format::XATTR_INDEX_TRUSTED
            && !*trusted.get_or_insert_with(|| capable(Capability::SYS_ADMIN))
        {
            return Ok(());
        }
        let prefix = format::XATTR_PREFIXES
            .get(usize::from(e.index).wrapping_sub(1))
            .ok_or(format::FormatError::Corrupt("bad extended attribute index"))?;
        let n = prefix.len() + e.name.len() + 1;
        if !buf.is_empty() {
            match buf.get_mut(len..len + n) {
                Some(out) => {
                    let (p, rest) = out.split_at_mut(prefix.len());
                    let (name, nul) = rest.split_at_mut(e.name.len());
                    p.copy_from_slice(prefix);
                    name.copy_from_slice(e.name);
                    nul.fill(0);
                }
                None => room = false,
            }
        }
        len += n;
        Ok(())
    })
    .map_err(|e| bad_block(inode, e))?;
    if !room {
        return Err(ERANGE);
    }
    Ok(len)
}
