// SPDX-License-Identifier: GPL-2.0

//! Directories: lookup, creation and removal of entries, rename, iteration.
//!
//! Directory blocks are read and written through the buffer cache of the device, found through
//! the directory's block map. The VFS serialises changes to a directory with its `i_rwsem`;
//! lookups and iteration hold it shared.

use crate::{
    file,
    format::{
        self, //
    },
    format_err,
    inode::{
        get_block,
        iget,
        new_inode, //
    },
    super_block::{
        corrupted,
        ioctl_shutdown,
        FS_IOC_SHUTDOWN, //
    },
    VexFs,
};
use kernel::{
    fs::{
        buffer::BufferHead,
        dentry::{
            DEntry,
            Unhashed, //
        },
        fops::{
            self,
            DirContext, //
        },
        inode::{
            self as vfs_inode,
            Attr,
            FileAttr,
            INode,
            MntIdmap,
            Type, //
        },
        posix_acl,
        File, //
    },
    prelude::*,
    sync::aref::ARef,
    // `renameat2(2)` flags: fail if the target exists, exchange the two names, leave a
    // whiteout at the old name (for overlayfs).
    uapi::{
        RENAME_EXCHANGE,
        RENAME_NOREPLACE,
        RENAME_WHITEOUT, //
    },
};

/// Inode operations of directories.
pub(crate) const INODE_OPS: vfs_inode::Ops<VexFs> = vfs_inode::Ops::new::<DirOps>();
/// File operations of directories.
pub(crate) const FILE_OPS: fops::Ops<VexFs> = fops::Ops::new_dir::<DirFileOps>();

/// Most hard links an inode may have.
const LINK_MAX: u32 = 65000;
/// The mode and device number of a whiteout: a character device 0:0 (`WHITEOUT_MODE`,
/// `WHITEOUT_DEV`).
const WHITEOUT_MODE: u16 = format::S_IFCHR;
const WHITEOUT_DEV: u32 = 0;

fn nblocks(dir: &INode<VexFs>) -> u64 {
    dir.size() as u64 / format::BLOCK_SIZE as u64
}

/// Reads block `i` of directory `dir`.
fn dir_block(dir: &INode<VexFs>, i: u64) -> Result<ARef<BufferHead>> {
    match get_block(dir, i, false)? {
        Some(m) => dir.super_block().bread(m.block),
        None => Err(corrupted(
            dir.super_block(),
            dir.ino(),
            "hole in a directory",
        )),
    }
}

fn check_name(name: &[u8]) -> Result {
    format::check_name(name).map_err(format_err)
}

/// Checks that `inode`, about to lose a link, has one: on a corrupted file system, two entries
/// may name an inode that counts one link.
fn check_linked(inode: &INode<VexFs>) -> Result {
    let min = if inode.typ() == Type::Dir { 2 } else { 1 };
    if inode.nlink() < min {
        return Err(corrupted(
            inode.super_block(),
            inode.ino(),
            "link count too low",
        ));
    }
    Ok(())
}

/// Checks that directory `dir`, about to lose a subdirectory, counts its link.
fn check_parent_linked(dir: &INode<VexFs>) -> Result {
    if dir.nlink() <= 2 {
        return Err(corrupted(
            dir.super_block(),
            dir.ino(),
            "directory link count too low",
        ));
    }
    Ok(())
}

/// Where an entry was found: the block index, the inode number and the `DT_*` type.
struct Found {
    block: u64,
    ino: u64,
    dtype: u8,
}

fn find_entry(dir: &INode<VexFs>, name: &[u8]) -> Result<Option<Found>> {
    for i in 0..nblocks(dir) {
        let bh = dir_block(dir, i)?;
        let guard = bh.lock();
        match format::find(guard.data(), name) {
            Ok(Some((_, ino, dtype))) => {
                return Ok(Some(Found {
                    block: i,
                    ino: u64::from(ino),
                    dtype,
                }))
            }
            Ok(None) => {}
            Err(_) => {
                return Err(corrupted(
                    dir.super_block(),
                    dir.ino(),
                    "bad directory block",
                ))
            }
        }
    }
    Ok(None)
}

/// Adds the entry `name` -> `ino` to `dir`, growing the directory if needed.
fn add_entry(dir: &INode<VexFs>, name: &[u8], ino: u64, typ: Type) -> Result {
    check_name(name)?;
    let ino32 = u32::try_from(ino).map_err(|_| EINVAL)?;
    let n = nblocks(dir);
    for i in 0..n {
        let bh = dir_block(dir, i)?;
        let mut guard = bh.lock();
        match format::insert(guard.data_mut(), name, ino32, typ.dirent_type()) {
            Ok(true) => {
                guard.mark_dirty();
                dir.touch_mtime_ctime();
                dir.mark_dirty();
                return Ok(());
            }
            Ok(false) => {}
            Err(_) => {
                return Err(corrupted(
                    dir.super_block(),
                    dir.ino(),
                    "bad directory block",
                ))
            }
        }
    }
    // No room: append a block.
    let m = get_block(dir, n, true)?.ok_or(EIO)?;
    let bh = dir.super_block().getblk_zeroed(m.block)?;
    {
        let mut guard = bh.lock();
        format::init_empty_block(guard.data_mut()).map_err(format_err)?;
        format::insert(guard.data_mut(), name, ino32, typ.dirent_type()).map_err(format_err)?;
        guard.mark_dirty();
    }
    dir.set_size(((n + 1) * format::BLOCK_SIZE as u64) as i64);
    dir.touch_mtime_ctime();
    dir.mark_dirty();
    Ok(())
}

/// Points the existing entry `name` of `dir` at `inode`, in place.
fn set_entry(dir: &INode<VexFs>, name: &[u8], inode: &INode<VexFs>) -> Result {
    let found = find_entry(dir, name)?.ok_or(ENOENT)?;
    let ino = u32::try_from(inode.ino()).map_err(|_| EOVERFLOW)?;
    let bh = dir_block(dir, found.block)?;
    let mut guard = bh.lock();
    if !format::retarget(guard.data_mut(), name, ino, inode.typ().dirent_type())
        .map_err(format_err)?
    {
        return Err(ENOENT);
    }
    guard.mark_dirty();
    dir.touch_mtime_ctime();
    dir.mark_dirty();
    Ok(())
}

/// Points the `..` of directory `inode` at `parent`.
fn set_parent(inode: &INode<VexFs>, parent: &INode<VexFs>) -> Result {
    let bh = dir_block(inode, 0)?;
    let mut guard = bh.lock();
    format::set_dotdot(guard.data_mut(), parent.ino() as u32).map_err(format_err)?;
    guard.mark_dirty();
    Ok(())
}

/// Exchanges the inodes of two existing names (`RENAME_EXCHANGE`). A directory that moves to
/// another parent takes its `..` along, and the parents' link counts follow the directories.
fn exchange(
    old_dir: &INode<VexFs>,
    old_dentry: &DEntry<VexFs>,
    new_dir: &INode<VexFs>,
    new_dentry: &DEntry<VexFs>,
) -> Result {
    let a = old_dentry.inode().ok_or(ENOENT)?;
    let b = new_dentry.inode().ok_or(ENOENT)?;
    check_linked(a)?;
    check_linked(b)?;
    let (a_dir, b_dir) = (a.typ() == Type::Dir, b.typ() == Type::Dir);
    let cross = !core::ptr::eq(old_dir, new_dir);
    if cross && a_dir != b_dir {
        // One directory changes parent: the new one gains a link, the old one loses it.
        let (gains, loses) = if a_dir {
            (new_dir, old_dir)
        } else {
            (old_dir, new_dir)
        };
        if gains.nlink() >= LINK_MAX {
            return Err(EMLINK);
        }
        check_parent_linked(loses)?;
    }
    set_entry(old_dir, old_dentry.name(), b)?;
    set_entry(new_dir, new_dentry.name(), a)?;
    if cross {
        if a_dir {
            set_parent(a, new_dir)?;
        }
        if b_dir {
            set_parent(b, old_dir)?;
        }
        if a_dir && !b_dir {
            new_dir.inc_nlink();
            old_dir.drop_nlink();
        } else if b_dir && !a_dir {
            old_dir.inc_nlink();
            new_dir.drop_nlink();
        }
    }
    for inode in [a, b, old_dir, new_dir] {
        inode.touch_ctime();
        inode.mark_dirty();
    }
    Ok(())
}

/// Removes the entry `name` from `dir`.
fn remove_entry(dir: &INode<VexFs>, name: &[u8]) -> Result {
    let found = find_entry(dir, name)?.ok_or(ENOENT)?;
    let bh = dir_block(dir, found.block)?;
    let mut guard = bh.lock();
    if !format::remove(guard.data_mut(), name).map_err(format_err)? {
        return Err(ENOENT);
    }
    guard.mark_dirty();
    dir.touch_mtime_ctime();
    dir.mark_dirty();
    Ok(())
}

/// Whether directory `dir` has no entries but `.` and `..`.
fn is_empty(dir: &INode<VexFs>) -> Result<bool> {
    for i in 0..nblocks(dir) {
        let bh = dir_block(dir, i)?;
        let guard = bh.lock();
        let data = guard.data();
        let empty = if i == 0 {
            format::is_empty_dir(data)
        } else {
            format::dir_iter(data).try_fold(true, |acc, e| e.map(|e| acc && !e.is_live()))
        };
        match empty {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(_) => {
                return Err(corrupted(
                    dir.super_block(),
                    dir.ino(),
                    "bad directory block",
                ))
            }
        }
    }
    Ok(true)
}

/// Creates an inode of `mode` and links it as `dentry` in `dir`.
fn create_common(
    idmap: &MntIdmap,
    dir: &INode<VexFs>,
    dentry: &DEntry<VexFs>,
    mode: u16,
    target: Option<&CStr>,
    rdev: u32,
) -> Result {
    dir.super_block().data().check_live()?;
    let name = dentry.name();
    check_name(name)?;
    let typ = Type::from_mode(mode).ok_or(EINVAL)?;
    if typ == Type::Dir && dir.nlink() >= LINK_MAX {
        return Err(EMLINK);
    }
    let inode = new_inode(idmap, dir, mode, rdev)?;
    let result = (|| -> Result {
        if let Some(target) = target {
            inode.page_symlink(target.to_bytes())?;
        }
        add_entry(dir, name, inode.ino(), typ)
    })();
    if let Err(e) = result {
        // The inode has no entry: dropping it with no links frees it.
        inode.set_nlink(0);
        return Err(e);
    }
    if typ == Type::Dir {
        dir.inc_nlink();
        dir.mark_dirty();
    }
    dentry.instantiate(inode);
    Ok(())
}

struct DirOps;

#[vtable]
impl vfs_inode::Operations for DirOps {
    type FileSystem = VexFs;

    fn listxattr(dentry: &DEntry<VexFs>, buf: &mut [u8]) -> Result<usize> {
        crate::xattr::list(dentry, buf)
    }

    fn get_inode_acl(
        inode: &INode<VexFs>,
        typ: posix_acl::Type,
        rcu: bool,
    ) -> Result<Option<ARef<posix_acl::PosixAcl>>> {
        crate::acl::get(inode, typ, rcu)
    }

    fn set_acl(
        idmap: &MntIdmap,
        dentry: &DEntry<VexFs>,
        acl: Option<&posix_acl::PosixAcl>,
        typ: posix_acl::Type,
    ) -> Result {
        crate::acl::set(idmap, dentry, acl, typ)
    }

    fn lookup(
        parent: &INode<VexFs>,
        dentry: Unhashed<'_, VexFs>,
    ) -> Result<Option<ARef<DEntry<VexFs>>>> {
        let name = dentry.name();
        if name.len() > format::MAX_NAME_LEN {
            return Err(ENAMETOOLONG);
        }
        let inode = match find_entry(parent, name)? {
            Some(f) => {
                let inode = iget(parent.super_block(), f.ino)?;
                if inode.typ().dirent_type() != f.dtype {
                    return Err(corrupted(
                        parent.super_block(),
                        f.ino,
                        "entry type mismatch",
                    ));
                }
                Some(inode)
            }
            None => None,
        };
        dentry.splice_alias(inode)
    }

    fn create(idmap: &MntIdmap, dir: &INode<VexFs>, dentry: &DEntry<VexFs>, mode: u16) -> Result {
        create_common(idmap, dir, dentry, mode, None, 0)
    }

    fn mkdir(idmap: &MntIdmap, dir: &INode<VexFs>, dentry: &DEntry<VexFs>, mode: u16) -> Result {
        create_common(idmap, dir, dentry, mode, None, 0)
    }

    fn mknod(
        idmap: &MntIdmap,
        dir: &INode<VexFs>,
        dentry: &DEntry<VexFs>,
        mode: u16,
        rdev: u32,
    ) -> Result {
        match Type::from_mode(mode) {
            Some(Type::Chr | Type::Blk | Type::Fifo | Type::Sock) => {
                create_common(idmap, dir, dentry, mode, None, rdev)
            }
            _ => Err(EINVAL),
        }
    }

    fn symlink(
        idmap: &MntIdmap,
        dir: &INode<VexFs>,
        dentry: &DEntry<VexFs>,
        target: &CStr,
    ) -> Result {
        if target.to_bytes().len() >= format::BLOCK_SIZE {
            return Err(ENAMETOOLONG);
        }
        create_common(
            idmap,
            dir,
            dentry,
            Type::Lnk.mode_bits() | 0o777,
            Some(target),
            0,
        )
    }

    fn link(old_dentry: &DEntry<VexFs>, dir: &INode<VexFs>, dentry: &DEntry<VexFs>) -> Result {
        dir.super_block().data().check_live()?;
        let inode = old_dentry.inode().ok_or(ENOENT)?;
        if inode.nlink() >= LINK_MAX {
            return Err(EMLINK);
        }
        add_entry(dir, dentry.name(), inode.ino(), inode.typ())?;
        inode.inc_nlink();
        inode.touch_ctime();
        inode.mark_dirty();
        dentry.instantiate(inode.into());
        Ok(())
    }

    fn unlink(dir: &INode<VexFs>, dentry: &DEntry<VexFs>) -> Result {
        dir.super_block().data().check_live()?;
        let inode = dentry.inode().ok_or(ENOENT)?;
        check_linked(inode)?;
        remove_entry(dir, dentry.name())?;
        inode.touch_ctime();
        inode.drop_nlink();
        inode.mark_dirty();
        Ok(())
    }

    fn rmdir(dir: &INode<VexFs>, dentry: &DEntry<VexFs>) -> Result {
        dir.super_block().data().check_live()?;
        let inode = dentry.inode().ok_or(ENOENT)?;
        if !is_empty(inode)? {
            return Err(ENOTEMPTY);
        }
        check_linked(inode)?;
        check_parent_linked(dir)?;
        remove_entry(dir, dentry.name())?;
        inode.touch_ctime();
        inode.set_nlink(0);
        inode.mark_dirty();
        dir.drop_nlink();
        dir.mark_dirty();
        Ok(())
    }

    fn rename(
        idmap: &MntIdmap,
        old_dir: &INode<VexFs>,
        old_dentry: &DEntry<VexFs>,
        new_dir: &INode<VexFs>,
        new_dentry: &DEntry<VexFs>,
        flags: u32,
    ) -> Result {
        if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT) != 0 {
            return Err(EINVAL);
        }
        old_dir.super_block().data().check_live()?;
        check_name(new_dentry.name())?;
        if flags & RENAME_EXCHANGE != 0 {
            // The VFS refuses it with the other flags.
            return exchange(old_dir, old_dentry, new_dir, new_dentry);
        }
        let inode = old_dentry.inode().ok_or(ENOENT)?;
        let is_dir = inode.typ() == Type::Dir;
        let new_name = new_dentry.name();

        check_linked(inode)?;
        if is_dir && !core::ptr::eq(old_dir, new_dir) {
            check_parent_linked(old_dir)?;
        }
        let target = new_dentry.inode();
        if let Some(target) = target {
            if target.typ() == Type::Dir && !is_empty(target)? {
                return Err(ENOTEMPTY);
            }
            check_linked(target)?;
        } else if is_dir && !core::ptr::eq(old_dir, new_dir) && new_dir.nlink() >= LINK_MAX {
            return Err(EMLINK);
        }
        // The whiteout first: failing to make it changes nothing.
        let whiteout = if flags & RENAME_WHITEOUT != 0 {
            Some(new_inode(idmap, old_dir, WHITEOUT_MODE, WHITEOUT_DEV)?)
        } else {
            None
        };
        let moved = (|| -> Result {
            if let Some(target) = target {
                set_entry(new_dir, new_name, inode)?;
                target.touch_ctime();
                if target.typ() == Type::Dir {
                    // The directory moved in takes the place of the target in the link count
                    // of `new_dir`.
                    target.set_nlink(0);
                } else {
                    target.drop_nlink();
                }
                target.mark_dirty();
            } else {
                add_entry(new_dir, new_name, inode.ino(), inode.typ())?;
                if is_dir {
                    new_dir.inc_nlink();
                }
            }
            match &whiteout {
                Some(w) => set_entry(old_dir, old_dentry.name(), w),
                None => remove_entry(old_dir, old_dentry.name()),
            }
        })();
        if let Err(e) = moved {
            if let Some(w) = whiteout {
                // Not linked anywhere: dropping it frees it.
                w.set_nlink(0);
            }
            return Err(e);
        }
        if is_dir {
            old_dir.drop_nlink();
            if !core::ptr::eq(old_dir, new_dir) {
                set_parent(inode, new_dir)?;
            }
        }
        inode.touch_ctime();
        inode.mark_dirty();
        old_dir.mark_dirty();
        new_dir.mark_dirty();
        Ok(())
    }

    fn setattr(idmap: &MntIdmap, dentry: &DEntry<VexFs>, attr: &Attr) -> Result {
        if attr.size().is_some() {
            return Err(EISDIR);
        }
        file::setattr(idmap, dentry, attr)
    }

    fn fileattr_get(dentry: &DEntry<VexFs>, fa: &mut FileAttr) -> Result {
        crate::inode::fileattr_get(dentry, fa)
    }

    fn fileattr_set(_idmap: &MntIdmap, dentry: &DEntry<VexFs>, fa: &FileAttr) -> Result {
        crate::inode::fileattr_set(dentry, fa)
    }
}

struct DirFileOps;

#[vtable]
impl fops::Operations for DirFileOps {
    type FileSystem = VexFs;

    fn iterate_shared(_file: &File, inode: &INode<VexFs>, ctx: &mut DirContext<'_>) -> Result {
        let bs = format::BLOCK_SIZE as i64;
        let size = inode.size();
        let mut copy = KVec::with_capacity(format::BLOCK_SIZE, GFP_KERNEL)?;
        while ctx.pos() >= 0 && ctx.pos() < size {
            let blk = (ctx.pos() / bs) as u64;
            let start = (ctx.pos() % bs) as usize;
            // Copy the block, so that no buffer lock is held while emitting to user space.
            copy.clear();
            {
                let bh = dir_block(inode, blk)?;
                let guard = bh.lock();
                copy.extend_from_slice(guard.data(), GFP_KERNEL)?;
            }
            for entry in format::dir_iter(&copy) {
                let e = entry.map_err(|_| {
                    corrupted(inode.super_block(), inode.ino(), "bad directory block")
                })?;
                if e.offset < start {
                    continue;
                }
                if e.is_live() && !ctx.emit(e.name, u64::from(e.ino), e.file_type) {
                    return Ok(());
                }
                ctx.set_pos(blk as i64 * bs + (e.offset + e.rec_len) as i64);
            }
            ctx.set_pos((blk as i64 + 1) * bs);
        }
        Ok(())
    }

    fn fsync(file: &File, inode: &INode<VexFs>, start: i64, end: i64, datasync: bool) -> Result {
        file::fsync(file, inode, start, end, datasync)
    }

    fn ioctl(_file: &File, inode: &INode<VexFs>, cmd: u32, arg: usize) -> Result<isize> {
        if cmd == FS_IOC_SHUTDOWN {
            return ioctl_shutdown(inode.super_block(), arg);
        }
        Err(ENOTTY)
    }
}
