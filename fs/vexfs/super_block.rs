// SPDX-License-Identifier: GPL-2.0

//! The VexFS super block: mounting, statistics and the super block on disk.

use crate::{
    alloc::{
        AllocState,
        Allocator, //
    },
    cache::{
        self,
        Cache, //
    },
    format::{
        self,
        Superblock, //
    },
    format_err, ErrorBehaviour, Options, VexFs,
};
use core::sync::atomic::{
    AtomicBool,
    AtomicU32,
    AtomicU64,
    Ordering, //
};
use kernel::{
    cred::{
        capable,
        Capability, //
    },
    fs::inode::Timespec,
    fs::sb::{
        self as vfs_sb,
        Kstatfs,
        SuperBlock, //
    },
    ioctl, new_mutex,
    prelude::*,
    sync::Mutex,
    uaccess::{
        UserPtr,
        UserSlice, //
    },
};

/// `statfs(2)` magic of VexFS (the on-disk magic number).
const STATFS_MAGIC: usize = format::MAGIC as usize;

/// The in-memory state of a mounted VexFS.
#[pin_data]
pub(crate) struct VexSuper {
    /// The super block as read at mount time; geometry fields never change.
    pub(crate) disk: Superblock,
    /// The block and inode allocators.
    #[pin]
    pub(crate) alloc: Mutex<AllocState>,
    /// `errors=remount-ro`: corruption makes the file system read-only (`errors=` can change
    /// on remount).
    remount_ro_on_error: AtomicBool,
    /// Set once the file system is shut down (`FS_IOC_SHUTDOWN`, or its device went away):
    /// from then on nothing is written to the device and changes fail with `EIO`.
    shut_down: AtomicBool,
    /// The loaded vector indexes and their budget.
    #[pin]
    pub(crate) indexes: Cache,
}

impl VexSuper {
    /// Returns the allocator, locked.
    pub(crate) fn allocator<'a>(&'a self, sb: &'a SuperBlock<VexFs>) -> Allocator<'a> {
        Allocator::new(sb, &self.disk, self.alloc.lock())
    }

    /// Fails with `EIO` once the file system has been shut down: called first by every
    /// operation that would change it.
    pub(crate) fn check_live(&self) -> Result {
        if self.is_shut_down() {
            return Err(EIO);
        }
        Ok(())
    }

    /// Whether the file system has been shut down.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    pub(crate) fn statfs(&self) -> Kstatfs {
        let a = self.alloc.lock();
        Kstatfs {
            magic: STATFS_MAGIC,
            namelen: format::MAX_NAME_LEN as u32,
            bsize: format::BLOCK_SIZE as u32,
            blocks: self.disk.block_count,
            bfree: a.free_blocks,
            bavail: a.free_blocks,
            // Inode 0 is reserved.
            files: self.disk.inode_count - 1,
            ffree: a.free_inodes,
            // As ext2 and ext4 derive it from their UUID.
            fsid: u64::from_le_bytes(self.disk.uuid[..8].try_into().unwrap_or([0; 8]))
                ^ u64::from_le_bytes(self.disk.uuid[8..].try_into().unwrap_or([0; 8])),
        }
    }

    /// Writes the mount options to `m`, for `/proc/mounts`: `errors=` if not the default.
    pub(crate) fn show_options(&self, m: &kernel::seq_file::SeqFile) {
        if self.remount_ro_on_error.load(Ordering::Relaxed) {
            kernel::seq_print!(m, ",errors=remount-ro");
        }
        // The budget in effect: given or the default.
        kernel::seq_print!(m, ",index_budget={}", self.indexes.budget());
    }
}

/// Messages about corrupted metadata logged at most per [`LOG_INTERVAL_SECS`].
const LOG_BURST: u32 = 10;
/// The interval of [`LOG_BURST`], in seconds.
const LOG_INTERVAL_SECS: u64 = 5;
/// Start of the current interval, in seconds since the epoch.
static LOG_START: AtomicU64 = AtomicU64::new(0);
/// Messages logged in the current interval.
static LOG_PRINTED: AtomicU32 = AtomicU32::new(0);
/// Messages not logged since the last report of them.
static LOG_SUPPRESSED: AtomicU32 = AtomicU32::new(0);

/// Returns whether a message about corrupted metadata may be logged now: at most [`LOG_BURST`]
/// every [`LOG_INTERVAL_SECS`] seconds, like `printk_ratelimit()`. A damaged image met by a loop
/// of user space (`find` or `ls -R` over a damaged tree) then cannot flood a slow console; the
/// operations still fail with `EUCLEAN` every time.
pub(crate) fn log_ratelimit() -> bool {
    let now = now_secs();
    let start = LOG_START.load(Ordering::Relaxed);
    if (now < start || now - start >= LOG_INTERVAL_SECS)
        && LOG_START
            .compare_exchange(start, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        LOG_PRINTED.store(0, Ordering::Relaxed);
        let missed = LOG_SUPPRESSED.swap(0, Ordering::Relaxed);
        if missed > 0 {
            pr_err!("{} messages about corrupted metadata suppressed\n", missed);
        }
    }
    if LOG_PRINTED.fetch_add(1, Ordering::Relaxed) < LOG_BURST {
        return true;
    }
    LOG_SUPPRESSED.fetch_add(1, Ordering::Relaxed);
    false
}

/// Reports corrupted metadata found in inode `ino` (0 if none) and returns `EUCLEAN`.
pub(crate) fn corrupted(sb: &SuperBlock<VexFs>, ino: u64, what: &str) -> Error {
    if log_ratelimit() {
        pr_err!("corrupted metadata (inode {}): {}\n", ino, what);
    }
    let data = sb.data();
    if data.remount_ro_on_error.load(Ordering::Relaxed) && !sb.rdonly() {
        pr_err!("remounting read-only\n");
        sb.force_rdonly();
    }
    EUCLEAN
}

pub(crate) fn fill_super(
    sb: &mut SuperBlock<VexFs, vfs_sb::New>,
    options: Options,
) -> Result<Pin<KBox<VexSuper>>> {
    sb.set_block_size(format::BLOCK_SIZE as u32)
        .inspect_err(|_| {
            pr_err!(
                "device does not support {}-byte blocks\n",
                format::BLOCK_SIZE
            );
        })?;
    let device_blocks = sb.device_blocks();
    let disk = {
        let bh = sb.bread(0)?;
        let guard = bh.lock();
        Superblock::decode(guard.data(), device_blocks).map_err(|e| {
            if e == format::FormatError::BadMagic {
                pr_err!("no VexFS found on the device\n");
            }
            format_err(e)
        })?
    };
    if disk.has_unknown_ro_compat() && !sb.rdonly() {
        pr_err!("unknown read-only features: mounting read-only\n");
        sb.set_rdonly();
    }
    sb.set_magic(STATFS_MAGIC)
        .set_max_bytes(format::MAX_FILE_SIZE.min(i64::MAX as u64) as i64)
        .set_time_range(1, i64::MIN, i64::MAX);
    if disk.features_ro_compat & format::FEATURE_RO_COMPAT_XATTR != 0 {
        sb.set_xattr_handlers(&crate::xattr::HANDLERS)
            .set_posix_acl();
    }

    let state = AllocState::scan(sb, &disk)?;
    pr_info!(
        "mounted: {} blocks ({} free), {} inodes ({} free){}\n",
        disk.block_count,
        state.free_blocks,
        disk.inode_count - 1,
        state.free_inodes,
        if sb.rdonly() { ", read-only" } else { "" }
    );
    let data = KBox::pin_init(
        try_pin_init!(VexSuper {
            disk,
            alloc <- new_mutex!(state),
            remount_ro_on_error: AtomicBool::new(
                options.errors == Some(ErrorBehaviour::RemountRo),
            ),
            shut_down: AtomicBool::new(false),
            indexes <- Cache::new(options.index_budget.unwrap_or_else(cache::default_budget)),
        }),
        GFP_KERNEL,
    )?;
    if !sb.rdonly() {
        let blk = sb.bread(0)?;
        let mut guard = blk.lock();
        let mut d = data.disk;
        d.state = format::STATE_DIRTY;
        d.mount_count = d.mount_count.wrapping_add(1);
        d.write_time = now_secs();
        d.encode(guard.data_mut()).map_err(format_err)?;
        guard.mark_dirty();
        drop(guard);
        blk.sync()?;
    }
    Ok(data)
}

/// Seconds since the epoch.
pub(crate) fn now_secs() -> u64 {
    Timespec::now().sec.max(0) as u64
}

/// Writes the super block with the current free counts and `state`; waits for it with `wait`.
/// Nothing on a read-only or shut down file system.
pub(crate) fn write_super(sb: &SuperBlock<VexFs>, state: u32, wait: bool) -> Result {
    if sb.rdonly() {
        return Ok(());
    }
    store_super(sb, state, wait)
}

/// `mount -o remount`: sets `errors=` if given, and when the file system changes between
/// read-write and read-only (`rdonly`), records it in the super block as a mount and an unmount
/// do: going read-only marks it cleanly unmounted, going read-write marks it in use, so that a
/// crash afterwards is noticed. A file system with unknown read-only compatible features, or
/// one that is shut down, cannot go read-write.
pub(crate) fn reconfigure(
    sb: &SuperBlock<VexFs>,
    errors: Option<ErrorBehaviour>,
    rdonly: bool,
) -> Result {
    let data = sb.data();
    match (sb.rdonly(), rdonly) {
        (false, true) => store_super(sb, format::STATE_CLEAN, true)?,
        (true, false) => {
            data.check_live().map_err(|_| EROFS)?;
            if data.disk.has_unknown_ro_compat() {
                pr_err!("unknown read-only compatible features: cannot remount read-write\n");
                return Err(EROFS);
            }
            store_super(sb, format::STATE_DIRTY, true)?;
        }
        _ => {}
    }
    if let Some(e) = errors {
        data.remount_ro_on_error
            .store(e == ErrorBehaviour::RemountRo, Ordering::Relaxed);
    }
    Ok(())
}

/// Writes the super block with the current free counts and `state`; waits for it with `wait`.
/// Nothing once the file system is shut down.
fn store_super(sb: &SuperBlock<VexFs>, state: u32, wait: bool) -> Result {
    let data = sb.data();
    if data.is_shut_down() {
        return Ok(());
    }
    let mut d = data.disk;
    {
        let a = data.alloc.lock();
        d.free_blocks = a.free_blocks;
        d.free_inodes = a.free_inodes;
    }
    d.state = state;
    d.write_time = now_secs();
    let bh = sb.bread(0)?;
    {
        let mut guard = bh.lock();
        // Keep the mount count written at mount time.
        if let Ok(cur) = Superblock::decode(guard.data(), sb.device_blocks()) {
            d.mount_count = cur.mount_count;
        }
        d.encode(guard.data_mut()).map_err(format_err)?;
        guard.mark_dirty();
    }
    if wait {
        sb.sync_blockdev()?;
        sb.blkdev_issue_flush()?;
    }
    Ok(())
}

/// `FS_IOC_SHUTDOWN` of `include/uapi/linux/fs.h`.
pub(crate) const FS_IOC_SHUTDOWN: u32 = ioctl::_IOR::<u32>(b'X' as u32, 125);
/// Write out everything, with the file system frozen, then shut down.
const FS_SHUTDOWN_FLAGS_DEFAULT: u32 = 0;
/// Write out the metadata blocks already changed, then shut down.
const FS_SHUTDOWN_FLAGS_LOGFLUSH: u32 = 1;
/// Shut down at once.
const FS_SHUTDOWN_FLAGS_NOLOGFLUSH: u32 = 2;

/// Handles `FS_IOC_SHUTDOWN` on a file or directory of `sb`: `arg` points to the flags.
pub(crate) fn ioctl_shutdown(sb: &SuperBlock<VexFs>, arg: usize) -> Result<isize> {
    if !capable(Capability::SYS_ADMIN) {
        return Err(EPERM);
    }
    let flags: u32 = UserSlice::new(UserPtr::from_addr(arg), 4).reader().read()?;
    shutdown(sb, flags)?;
    Ok(0)
}

/// Shuts the file system down, as ext4 and XFS do: operations that would change it fail with
/// `EIO` from now on, nothing more is written to the device (the super block keeps its "not
/// cleanly unmounted" state), and it can only be unmounted. `flags` says what is written
/// first; VexFS has no log, so:
/// - `FS_SHUTDOWN_FLAGS_DEFAULT`: everything, the file system frozen meanwhile (as `sync`
///   with no writer running): nothing written before the call is lost;
/// - `FS_SHUTDOWN_FLAGS_LOGFLUSH`: the metadata blocks already changed in the buffer cache,
///   not file data nor inodes changed only in memory;
/// - `FS_SHUTDOWN_FLAGS_NOLOGFLUSH`: nothing. VexFS writes nothing more itself, but the
///   metadata blocks it changed in the buffer cache before the call still reach the device,
///   through the block device's writeback or at the unmount, while inodes changed only in
///   memory and file data do not: the device then holds a state a crash can leave, which
///   `fsck.vexfs -p` repairs.
///
/// Shutting down a file system that is already shut down does nothing.
pub(crate) fn shutdown(sb: &SuperBlock<VexFs>, flags: u32) -> Result {
    if flags > FS_SHUTDOWN_FLAGS_NOLOGFLUSH {
        return Err(EINVAL);
    }
    let data = sb.data();
    if data.is_shut_down() {
        return Ok(());
    }
    pr_warn!("shut down requested ({})\n", flags);
    match flags {
        FS_SHUTDOWN_FLAGS_DEFAULT => {
            let _frozen = sb.bdev_freeze()?;
            data.shut_down.store(true, Ordering::Release);
        }
        FS_SHUTDOWN_FLAGS_LOGFLUSH => {
            data.shut_down.store(true, Ordering::Release);
            sb.sync_blockdev()?;
        }
        _ => data.shut_down.store(true, Ordering::Release),
    }
    Ok(())
}

/// Shuts the file system down because its device went away (`FileSystem::shutdown`).
pub(crate) fn device_gone(sb: &SuperBlock<VexFs>) {
    if !sb.data().shut_down.swap(true, Ordering::AcqRel) {
        pr_warn!("device gone: shut down\n");
    }
}
