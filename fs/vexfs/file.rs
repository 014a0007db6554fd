// SPDX-License-Identifier: GPL-2.0

//! Regular files: data through the page cache, attributes, `fsync`.

use crate::{
    format,
    inode::{
        free_blocks,
        prealloc,
        truncate_blocks,
        Mapper,
        IOMAP_OPS, //
    },
    super_block::{
        ioctl_shutdown,
        FS_IOC_SHUTDOWN, //
    },
    VexFs, //
};
use kernel::{
    fs::{
        address_space,
        dentry::DEntry,
        fops::{
            self,
            falloc, //
        },
        inode::{
            self as vfs_inode,
            Attr,
            FiemapExtentInfo,
            FileAttr,
            INode,
            MntIdmap, //
        },
        iomap,
        posix_acl,
        File,
        Kiocb, //
    },
    iov::{
        IovIterDest,
        IovIterSource, //
    },
    prelude::*,
    sync::aref::ARef,
    uapi::{
        SEEK_DATA,
        SEEK_HOLE, //
    },
};

/// Inode operations of regular files, and of devices, named pipes and sockets (whose size the
/// VFS never changes).
pub(crate) const INODE_OPS: vfs_inode::Ops<VexFs> = vfs_inode::Ops::new::<FileInodeOps>();
/// File operations of regular files.
pub(crate) const FILE_OPS: fops::Ops<VexFs> = fops::Ops::new_regular::<FileOps>();
/// Address space operations of regular files and symbolic links.
pub(crate) const AOPS: address_space::Ops<VexFs> = address_space::Ops::new::<Mapper>();

/// The inode operations of regular files, devices, named pipes, sockets and (with the page
/// cache's `get_link`) symbolic links.
pub(crate) struct FileInodeOps;

#[vtable]
impl vfs_inode::Operations for FileInodeOps {
    type FileSystem = VexFs;

    fn setattr(idmap: &MntIdmap, dentry: &DEntry<VexFs>, attr: &Attr) -> Result {
        setattr(idmap, dentry, attr)
    }

    fn fileattr_get(dentry: &DEntry<VexFs>, fa: &mut FileAttr) -> Result {
        crate::inode::fileattr_get(dentry, fa)
    }

    fn fileattr_set(_idmap: &MntIdmap, dentry: &DEntry<VexFs>, fa: &FileAttr) -> Result {
        crate::inode::fileattr_set(dentry, fa)
    }

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

    /// The extents up to the end of the file, like `SEEK_DATA`: not the blocks preallocated
    /// past it (`FALLOC_FL_KEEP_SIZE`). A range that starts at or after the end reports none
    /// (`iomap_fiemap()` refuses a zero length).
    fn fiemap(inode: &INode<VexFs>, fi: &mut FiemapExtentInfo, start: u64, len: u64) -> Result {
        let size = u64::try_from(inode.size()).unwrap_or(0);
        if start >= size {
            return Ok(());
        }
        iomap::fiemap(inode, fi, start, len.min(size - start), IOMAP_OPS)
    }
}

/// Changes attributes; truncation releases the blocks beyond the new size.
pub(crate) fn setattr(idmap: &MntIdmap, dentry: &DEntry<VexFs>, attr: &Attr) -> Result {
    let inode = dentry.inode().ok_or(ENOENT)?;
    inode.super_block().data().check_live()?;
    // Also a truncation through a descriptor opened before `chattr +i` (the VFS checks the
    // other changes).
    check_mutable(inode)?;
    attr.prepare(idmap, dentry)?;
    if let Some(size) = attr.size() {
        if size != inode.size() {
            if crate::vector::is_collection(inode) {
                return Err(EPERM);
            }
            attr.newsize_ok(inode, size)?;
            truncate(inode, size)?;
        }
    }
    attr.copy(idmap, inode);
    inode.mark_dirty();
    // Symbolic links have no ACLs (`posix_acl_chmod()` refuses them).
    if attr.mode().is_some() && inode.typ() != vfs_inode::Type::Lnk {
        posix_acl::chmod(idmap, dentry, inode.mode())?;
    }
    Ok(())
}

/// Whether `inode` is immutable (`chattr +i`).
pub(crate) fn is_immutable(inode: &INode<VexFs>) -> bool {
    inode.flags() & vfs_inode::flags::S_IMMUTABLE != 0
}

/// Fails with `EPERM` if `inode` is immutable: the VFS refuses to open it for writing, but a
/// descriptor opened before the flag was set still could write.
pub(crate) fn check_mutable(inode: &INode<VexFs>) -> Result {
    if is_immutable(inode) {
        return Err(EPERM);
    }
    Ok(())
}

/// Changes the size of `inode` to `size`, with the inode lock held: zeroes the tail of the
/// block holding the new end, drops the page cache beyond it and releases the blocks beyond.
pub(crate) fn truncate(inode: &INode<VexFs>, size: i64) -> Result {
    address_space::truncate_page::<Mapper>(inode, size)?;
    inode.truncate_setsize(size);
    truncate_blocks(inode)?;
    inode.touch_mtime_ctime();
    inode.mark_dirty();
    Ok(())
}

struct FileOps;

#[vtable]
impl fops::Operations for FileOps {
    type FileSystem = VexFs;

    /// A collection saves its index first (`fsync(2)` makes the index durable too).
    fn fsync(file: &File, inode: &INode<VexFs>, start: i64, end: i64, datasync: bool) -> Result {
        crate::vector::save(file, inode)?;
        fsync(file, inode, start, end, datasync)
    }

    /// A collection saves its index when a file that may have changed it is closed.
    fn release(file: &File, inode: &INode<VexFs>) {
        crate::vector::release(file, inode)
    }

    /// `SEEK_HOLE` and `SEEK_DATA` find the holes of the block map (pages written through
    /// `mmap` got their blocks at the write fault); the rest is generic.
    fn llseek(file: &File, inode: &INode<VexFs>, offset: i64, whence: u32) -> Result<i64> {
        let pos = match whence {
            SEEK_HOLE => iomap::seek_hole(inode, offset, IOMAP_OPS)?,
            SEEK_DATA => iomap::seek_data(inode, offset, IOMAP_OPS)?,
            _ => return fops::generic_file_llseek(file, offset, whence),
        };
        fops::vfs_setpos(file, pos, inode.super_block().max_bytes())
    }

    fn ioctl(file: &File, inode: &INode<VexFs>, cmd: u32, arg: usize) -> Result<isize> {
        if cmd == FS_IOC_SHUTDOWN {
            return ioctl_shutdown(inode.super_block(), arg);
        }
        crate::vector::ioctl(file, inode, cmd, arg)
    }

    fn fallocate(_file: &File, inode: &INode<VexFs>, mode: i32, offset: i64, len: i64) -> Result {
        fallocate(inode, mode, offset, len)
    }

    const DIRECT_IO: bool = true;

    /// A write fault allocates the blocks of the page (`ENOSPC` fails the fault, not the
    /// writeback later).
    const VM_OPS: Option<fops::VmOps<VexFs>> = Some(address_space::vm_ops::<Mapper>());

    /// A collection changes only through its ioctls: it cannot be mapped shared and writable
    /// (`EPERM`, as `write(2)`).
    fn mmap_prepare(_file: &File, inode: &INode<VexFs>, desc: &fops::VmAreaDesc) -> Result {
        if desc.is_shared_maywrite() && crate::vector::is_collection(inode) {
            return Err(EPERM);
        }
        Ok(())
    }

    /// `O_DIRECT` reads go to the device through iomap.
    fn read_iter(
        inode: &INode<VexFs>,
        kiocb: Kiocb<'_, ()>,
        to: &mut IovIterDest<'_>,
    ) -> Result<usize> {
        if iomap::is_direct(&kiocb) {
            return iomap::dio_read(inode, kiocb, to, IOMAP_OPS);
        }
        fops::generic_file_read_iter(inode, kiocb, to)
    }

    /// `O_DIRECT` writes go to the device through iomap where blocks exist.
    ///
    /// Nothing is written once the file system is shut down; collections change only through
    /// their ioctls.
    fn write_iter(
        inode: &INode<VexFs>,
        kiocb: Kiocb<'_, ()>,
        from: &mut IovIterSource<'_>,
    ) -> Result<usize> {
        inode.super_block().data().check_live()?;
        check_mutable(inode)?;
        if crate::vector::is_collection(inode) {
            return Err(EPERM);
        }
        if iomap::is_direct(&kiocb) {
            return iomap::dio_write(inode, kiocb, from, IOMAP_OPS);
        }
        fops::generic_file_write_iter(inode, kiocb, from)
    }
}

/// `fallocate(2)`: allocates blocks that read as zeroes (mode 0, [`falloc::KEEP_SIZE`]),
/// punches holes ([`falloc::PUNCH_HOLE`]) and zeroes ranges ([`falloc::ZERO_RANGE`], which
/// leaves them allocated); the other modes fail with `EOPNOTSUPP`. Blocks allocated beyond the
/// end of the file with [`falloc::KEEP_SIZE`] stay until a truncation frees them.
fn fallocate(inode: &INode<VexFs>, mode: i32, offset: i64, len: i64) -> Result {
    let op = mode & falloc::MODE_MASK;
    if mode & !(falloc::MODE_MASK | falloc::KEEP_SIZE) != 0
        || !matches!(
            op,
            falloc::ALLOCATE_RANGE | falloc::PUNCH_HOLE | falloc::ZERO_RANGE
        )
    {
        return Err(EOPNOTSUPP);
    }
    let bs = format::BLOCK_SIZE as i64;
    let end = offset.checked_add(len).ok_or(EFBIG)?;
    if offset < 0 || len <= 0 {
        return Err(EINVAL);
    }
    let inode = inode.lock();
    inode.super_block().data().check_live()?;
    check_mutable(&inode)?;
    if crate::vector::is_collection(&inode) {
        return Err(EPERM);
    }
    let grow = mode & falloc::KEEP_SIZE == 0 && end > inode.size();
    if grow {
        inode.newsize_ok(end)?;
    }
    inode.dio_wait();
    // Logical blocks: all those the range touches, and those it covers whole (`offset` and
    // `end` are not negative).
    let ubs = bs as u64;
    let touched = offset as u64 / ubs..(end as u64).div_ceil(ubs);
    let whole = (offset as u64).div_ceil(ubs)..end as u64 / ubs;
    if op == falloc::ALLOCATE_RANGE {
        prealloc(&inode, touched, false)?;
    } else {
        let pages = inode.invalidate_lock();
        // The parts of the blocks at either end, within the file, in the page cache.
        let size = inode.size();
        let head = offset..end.min(whole.start as i64 * bs);
        let tail = (end - end % bs).max(head.end)..end;
        for part in [head, tail] {
            let part = part.start..part.end.min(size);
            if part.start < part.end {
                iomap::zero_range(&inode, part.start, part.end - part.start, IOMAP_OPS)?;
            }
        }
        if whole.start < whole.end {
            let bytes = whole.start as i64 * bs..whole.end as i64 * bs;
            pages.truncate_pagecache_range(bytes.start, bytes.end - 1);
        }
        if op == falloc::PUNCH_HOLE {
            if whole.start < whole.end {
                free_blocks(&inode, whole)?;
            }
        } else {
            // The blocks the range covers whole are zeroed on the device, those at its ends
            // through the page cache above; holes at the ends get zeroed blocks too.
            prealloc(&inode, touched.start..whole.start, false)?;
            prealloc(&inode, whole.clone(), true)?;
            prealloc(&inode, whole.end..touched.end, false)?;
        }
        drop(pages);
        inode.touch_mtime_ctime();
    }
    if grow {
        // Also write-protects the page that held the old end, as a truncation up does.
        inode.truncate_setsize(end);
        inode.touch_mtime_ctime();
    }
    inode.mark_dirty();
    Ok(())
}

/// Writes the file's data and inode, then every dirty metadata block of the file system
/// (indirect blocks, bitmaps, directories), and flushes the device's cache again, so that
/// what was written survives a crash: the flush of `generic_fsync` comes before the
/// metadata blocks are written.
pub(crate) fn fsync(
    file: &File,
    inode: &INode<VexFs>,
    start: i64,
    end: i64,
    datasync: bool,
) -> Result {
    let sb = inode.super_block();
    sb.data().check_live()?;
    fops::generic_fsync(file, start, end, datasync)?;
    sb.sync_blockdev()?;
    sb.blkdev_issue_flush()
}
