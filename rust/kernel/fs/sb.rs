// SPDX-License-Identifier: GPL-2.0

//! Super blocks.
//!
//! A [`SuperBlock`] is one mounted instance of a file system. It is [`New`] while
//! [`FileSystem::fill_super`] sets it up, and [`Ready`] afterwards, when its
//! [`FileSystem::Data`] is available.
//!
//! C headers: [`include/linux/fs.h`](srctree/include/linux/fs.h) and
//! [`include/linux/fs/super_types.h`](srctree/include/linux/fs/super_types.h).

#[cfg(CONFIG_BUFFER_HEAD)]
use super::buffer::BufferHead;
use super::{
    inode::{
        self,
        INode, //
    },
    FileSystem,
};
use crate::{
    bindings,
    error::{
        from_result,
        to_result, //
    },
    prelude::*,
    seq_file::SeqFile,
    sync::aref::ARef,
    types::{
        ForeignOwnable,
        Opaque, //
    },
};
use core::{
    marker::PhantomData,
    ptr::NonNull, //
};

/// `SB_RDONLY`.
pub(crate) const SB_RDONLY: c_ulong = bindings::SB_RDONLY;

mod private {
    /// Keeps the typestates of a super block to this module: other code cannot add one.
    pub trait Sealed {}

    impl Sealed for super::New {}
    impl Sealed for super::Ready {}
}

/// A typestate of a [`SuperBlock`]: [`New`] or [`Ready`] (sealed).
pub trait State: private::Sealed {}

/// A super block being set up by [`FileSystem::fill_super`]: its parameters may be changed, and
/// its [`FileSystem::Data`] does not exist yet.
pub struct New;
impl State for New {}

/// A super block that is fully set up.
pub struct Ready;
impl State for Ready {}

/// A super block of file system `T`.
///
/// # Invariants
///
/// The wrapped `struct super_block` is valid and belongs to a file system of type `T`: its
/// `s_op` is the table built for `T`, and, in state [`Ready`], its `s_fs_info` holds a
/// `T::Data` created by [`FileSystem::fill_super`].
#[repr(transparent)]
pub struct SuperBlock<T: FileSystem, S: State = Ready>(
    Opaque<bindings::super_block>,
    PhantomData<(T, S)>,
);

// SAFETY: Super blocks may be used from any thread; their mutable state is protected by the
// VFS's locks, and the methods of `Ready` super blocks only read fields fixed at mount time.
unsafe impl<T: FileSystem, S: State> Sync for SuperBlock<T, S> {}

// SAFETY: As above.
unsafe impl<T: FileSystem, S: State> Send for SuperBlock<T, S> {}

/// File system statistics (`struct kstatfs`), returned by [`FileSystem::statfs`].
#[derive(Copy, Clone, Debug, Default)]
pub struct Kstatfs {
    /// Magic number of the file system.
    pub magic: usize,
    /// Maximum length of a file name.
    pub namelen: u32,
    /// Block size.
    pub bsize: u32,
    /// Total data blocks.
    pub blocks: u64,
    /// Free blocks.
    pub bfree: u64,
    /// Free blocks available to unprivileged users.
    pub bavail: u64,
    /// Total inodes.
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// File system ID (`f_fsid`): it tells file systems apart, for instance for fanotify;
    /// conventionally derived from the file system's UUID.
    pub fsid: u64,
}

/// The parameters of a call of the super block's shrinker (`struct shrink_control`), as passed
/// to [`FileSystem::nr_cached_objects`] and [`FileSystem::free_cached_objects`].
///
/// C header: [`include/linux/shrinker.h`](srctree/include/linux/shrinker.h)
///
/// # Invariants
///
/// The wrapped `struct shrink_control` is valid, and not changed by anyone else, while a
/// reference to the [`ShrinkControl`] exists.
#[repr(transparent)]
pub struct ShrinkControl(Opaque<bindings::shrink_control>);

impl ShrinkControl {
    /// Creates a reference to a shrink control from a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid, and not changed by anyone else, for the lifetime `'a`.
    unsafe fn from_raw<'a>(ptr: *const bindings::shrink_control) -> &'a Self {
        // SAFETY: `ShrinkControl` is a transparent wrapper; the caller guarantees the rest.
        unsafe { &*ptr.cast() }
    }

    /// How many objects the shrinker asks to free (`nr_to_scan`).
    pub fn nr_to_scan(&self) -> usize {
        // SAFETY: The struct is valid and not changed by anyone else (type invariant).
        unsafe { (*self.0.get()).nr_to_scan }
    }

    /// Whether this is reclaim for the whole system rather than for one memory cgroup
    /// (`mem_cgroup_shrink_is_root()`). Caches that are not charged to memory cgroups count no
    /// objects otherwise: freeing them would not help the cgroup that needs memory.
    pub fn is_root(&self) -> bool {
        // SAFETY: The struct is valid (type invariant); the helper only reads `memcg`.
        unsafe { bindings::mem_cgroup_shrink_is_root(self.0.get()) }
    }
}

impl<T: FileSystem, S: State> SuperBlock<T, S> {
    /// Creates a reference to a super block from a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for the lifetime `'a`, belong to a file system of type `T`, and be in
    /// state `S`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *const bindings::super_block) -> &'a Self {
        // SAFETY: `Self` is a transparent wrapper of `super_block`; validity is guaranteed by the
        // caller.
        unsafe { &*ptr.cast() }
    }

    /// Returns the raw C super block.
    pub fn as_raw(&self) -> *mut bindings::super_block {
        self.0.get()
    }

    /// Whether the super block is mounted read-only.
    pub fn rdonly(&self) -> bool {
        // SAFETY: `sb_rdonly()` only reads `s_flags` of the valid super block.
        unsafe { bindings::sb_rdonly(self.as_raw()) }
    }

    /// The largest file size the file system supports (`s_maxbytes`).
    pub fn max_bytes(&self) -> i64 {
        // SAFETY: `s_maxbytes` is set up at mount time and readable.
        unsafe { (*self.as_raw()).s_maxbytes }
    }

    /// The block size, in bytes.
    pub fn block_size(&self) -> u32 {
        // SAFETY: `s_blocksize` is set up at mount time and readable.
        unsafe { (*self.as_raw()).s_blocksize as u32 }
    }

    /// Size of the backing block device in blocks of [`SuperBlock::block_size`], or zero for
    /// super blocks without one.
    #[cfg(CONFIG_BLOCK)]
    pub fn device_blocks(&self) -> u64 {
        // SAFETY: `s_bdev` is either null or the block device held for the lifetime of the super
        // block.
        let bdev = unsafe { (*self.as_raw()).s_bdev };
        if bdev.is_null() {
            return 0;
        }
        // SAFETY: `bdev` is valid (see above).
        let bytes = unsafe { bindings::bdev_nr_bytes(bdev) };
        // SAFETY: `s_blocksize_bits` is set up at mount time.
        let bits = unsafe { (*self.as_raw()).s_blocksize_bits };
        (bytes as u64) >> bits
    }

    /// Reads block `block` of the backing device through the buffer cache.
    #[cfg(CONFIG_BUFFER_HEAD)]
    ///
    /// Fails with `EIO` if the block cannot be read.
    pub fn bread(&self, block: u64) -> Result<ARef<BufferHead>> {
        // SAFETY: The super block is valid and has a block device, `s_bdev`, which stays valid
        // while the super block is.
        let bh = unsafe {
            let sb = self.as_raw();
            bindings::__bread_gfp((*sb).s_bdev, block, (*sb).s_blocksize as u32, 0)
        };
        let bh = NonNull::new(bh).ok_or(EIO)?;
        // SAFETY: `__bread_gfp` returned a buffer head with a reference we now own.
        Ok(unsafe { ARef::from_raw(bh.cast()) })
    }

    #[cfg(CONFIG_BUFFER_HEAD)]
    /// Returns the buffer of block `block` without reading it from the device, for a block that
    /// is about to be overwritten completely. The buffer is marked up to date.
    pub fn getblk_zeroed(&self, block: u64) -> Result<ARef<BufferHead>> {
        // SAFETY: As in `bread`.
        let bh = unsafe { bindings::sb_getblk(self.as_raw(), block) };
        let bh = NonNull::new(bh).ok_or(ENOMEM)?;
        // SAFETY: `sb_getblk` returned a buffer head with a reference we now own.
        let bh: ARef<BufferHead> = unsafe { ARef::from_raw(bh.cast()) };
        {
            let mut guard = bh.lock();
            guard.data_mut().fill(0);
            guard.set_uptodate();
        }
        Ok(bh)
    }

    /// Writes all dirty buffers of the backing device and waits for them.
    #[cfg(CONFIG_BLOCK)]
    pub fn sync_blockdev(&self) -> Result {
        // SAFETY: `s_bdev` is valid (or null, which `sync_blockdev` accepts).
        to_result(unsafe { bindings::sync_blockdev((*self.as_raw()).s_bdev) })
    }

    /// Flushes the volatile write cache of the backing device (`blkdev_issue_flush()`), so
    /// that what was written to it before survives a power loss; nothing without a device.
    #[cfg(CONFIG_BLOCK)]
    pub fn blkdev_issue_flush(&self) -> Result {
        // SAFETY: The super block is valid, so reading its `s_bdev` is.
        let bdev = unsafe { (*self.as_raw()).s_bdev };
        if bdev.is_null() {
            return Ok(());
        }
        // SAFETY: `bdev` is the backing device of the super block, open while it is mounted.
        to_result(unsafe { bindings::blkdev_issue_flush(bdev) })
    }

    /// Writes zeroes to `count` blocks of the device from `block` on (`sb_issue_zeroout()`), or
    /// has the device unmap them where it guarantees that they then read as zeroes, and waits
    /// for the I/O. Bypasses the buffer and page caches: nothing may hold these blocks dirty in
    /// either. Fails with `EOPNOTSUPP` without a device.
    #[cfg(CONFIG_BLOCK)]
    pub fn issue_zeroout(&self, block: u64, count: u64) -> Result {
        // SAFETY: The super block is valid, so reading its `s_bdev` and `s_blocksize_bits` is;
        // the block size is at least a sector.
        let (bdev, bits) = unsafe { ((*self.as_raw()).s_bdev, (*self.as_raw()).s_blocksize_bits) };
        if bdev.is_null() {
            return Err(EOPNOTSUPP);
        }
        let shift = u32::from(bits) - bindings::SECTOR_SHIFT;
        let sectors = |n: u64| {
            n.checked_shl(shift)
                .filter(|s| s >> shift == n)
                .ok_or(EINVAL)
        };
        let (sector, nr_sects) = (sectors(block)?, sectors(count)?);
        // SAFETY: `bdev` is the backing device of the super block, open while it is mounted.
        to_result(unsafe {
            bindings::blkdev_issue_zeroout(bdev, sector, nr_sects, bindings::GFP_NOFS, 0)
        })
    }

    /// Looks up inode `ino` in the inode cache.
    ///
    /// Returns the cached inode, or a [`inode::New`] inode that the caller must initialise from
    /// the backing store (or drop, if that fails).
    pub fn iget(&self, ino: u64) -> Result<Either<ARef<INode<T>>, inode::New<T>>> {
        // SAFETY: The super block is valid.
        let ptr = unsafe { bindings::iget_locked(self.as_raw(), ino) };
        let ptr = NonNull::new(ptr).ok_or(ENOMEM)?;
        // SAFETY: `ptr` is a valid inode of this super block with a reference we now own.
        unsafe { inode::from_iget_locked(ptr) }
    }
}

/// A freeze of a super block's block device, taken by [`SuperBlock::bdev_freeze`] and thawed when
/// dropped.
///
/// # Invariants
///
/// The super block `.0` has a block device, which a `bdev_freeze()` of this guard froze; the
/// freeze is counted in the device's `bd_fsfreeze_count` until the guard is dropped.
#[cfg(CONFIG_BLOCK)]
#[must_use = "the file system is thawed when the guard is dropped"]
pub struct BdevFrozen<'a, T: FileSystem>(&'a SuperBlock<T>);

#[cfg(CONFIG_BLOCK)]
impl<T: FileSystem> Drop for BdevFrozen<'_, T> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant, `s_bdev` is valid and frozen by this guard, so
        // `bdev_thaw()` cannot fail with `EINVAL` (not frozen); it returns nothing else.
        unsafe { bindings::bdev_thaw((*self.0.as_raw()).s_bdev) };
    }
}

/// Either an existing (`Left`) or a new (`Right`) object.
pub enum Either<L, R> {
    /// An existing object.
    Left(L),
    /// A new object.
    Right(R),
}

impl<T: FileSystem> SuperBlock<T, New> {
    /// Creates a mutable reference to a new super block from a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must be a valid super block of file system type `T` that is being set up and is
    /// exclusively accessible to the caller for the lifetime `'a`.
    pub(crate) unsafe fn from_raw_mut<'a>(ptr: *mut bindings::super_block) -> &'a mut Self {
        // SAFETY: `Self` is a transparent wrapper of `super_block`; validity and exclusivity
        // are guaranteed by the caller.
        unsafe { &mut *ptr.cast() }
    }

    pub(crate) fn init_ops(&mut self) {
        // SAFETY: The super block is exclusively ours while it is being set up.
        unsafe { (*self.as_raw()).s_op = &Tables::<T>::SUPER_OPS };
    }

    /// Has the VFS check permissions against the POSIX ACLs of the file system's inodes
    /// (`SB_POSIXACL`). The file system then applies the umask itself when it creates inodes,
    /// with [`super::posix_acl::create`].
    #[cfg(CONFIG_FS_POSIX_ACL)]
    pub fn set_posix_acl(&mut self) -> &mut Self {
        // SAFETY: The super block is being set up and is ours alone.
        unsafe { (*self.as_raw()).s_flags |= bindings::SB_POSIXACL };
        self
    }

    /// Serves the extended attributes of the file system's inodes with `handlers` (`s_xattr`):
    /// inodes got from then on have `IOP_XATTR`, so set it before reading the root inode.
    pub fn set_xattr_handlers<const N: usize>(
        &mut self,
        handlers: &'static super::xattr::Handlers<T, N>,
    ) -> &mut Self {
        // SAFETY: The super block is being set up and is ours alone; `handlers` is a static,
        // NULL-terminated table of handlers of this file system (type invariant).
        unsafe { (*self.as_raw()).s_xattr = handlers.as_raw() };
        self
    }

    /// Sets the magic number reported by `statfs(2)`.
    pub fn set_magic(&mut self, magic: usize) -> &mut Self {
        // SAFETY: The super block is exclusively ours while it is being set up.
        unsafe { (*self.as_raw()).s_magic = magic as c_ulong };
        self
    }

    /// Sets the block size; it must be a power of two between 512 and the page size, and no
    /// smaller than the logical block size of the device.
    pub fn set_block_size(&mut self, size: u32) -> Result<&mut Self> {
        // SAFETY: The super block is valid; `sb_set_blocksize` validates `size`.
        if unsafe { bindings::sb_set_blocksize(self.as_raw(), size as c_int) } == 0 {
            return Err(EINVAL);
        }
        Ok(self)
    }

    /// Sets the largest file size the file system supports.
    pub fn set_max_bytes(&mut self, max: i64) -> &mut Self {
        // SAFETY: The super block is exclusively ours while it is being set up.
        unsafe { (*self.as_raw()).s_maxbytes = max };
        self
    }

    /// Sets the granularity of timestamps, in nanoseconds, and their range, in seconds.
    pub fn set_time_range(&mut self, gran_ns: u32, min: i64, max: i64) -> &mut Self {
        // SAFETY: The super block is exclusively ours while it is being set up.
        unsafe {
            let sb = self.as_raw();
            (*sb).s_time_gran = gran_ns;
            (*sb).s_time_min = min;
            (*sb).s_time_max = max;
        }
        self
    }

    /// Marks the super block read-only.
    pub fn set_rdonly(&mut self) -> &mut Self {
        // SAFETY: The super block is exclusively ours while it is being set up.
        unsafe { (*self.as_raw()).s_flags |= SB_RDONLY };
        self
    }
}

impl<T: FileSystem> SuperBlock<T, Ready> {
    /// Makes the file system read-only after an error, as `errors=remount-ro` asks for.
    pub fn force_rdonly(&self) {
        // SAFETY: The super block is valid; setting `SB_RDONLY` without `s_umount` is what the C
        // file systems do on errors too (e.g. `ext2_error()`).
        unsafe { (*self.as_raw()).s_flags |= SB_RDONLY };
    }

    /// Freezes the file system and its block device (`bdev_freeze()`): writes everything out
    /// and makes new writes, page faults for writing and inode changes wait, until the returned
    /// guard is dropped, which thaws them (`bdev_thaw()`). Freezes nest, with `FIFREEZE` too.
    ///
    /// Fails with `ENOTBLK` if the super block has no block device. The caller must hold
    /// neither `s_umount` nor anything a waiting writer may hold (an inode's lock): freezing
    /// waits for the writers already inside the file system.
    #[cfg(CONFIG_BLOCK)]
    pub fn bdev_freeze(&self) -> Result<BdevFrozen<'_, T>> {
        // SAFETY: `s_bdev` is either null or the block device held for the lifetime of the super
        // block.
        let bdev = unsafe { (*self.as_raw()).s_bdev };
        if bdev.is_null() {
            return Err(ENOTBLK);
        }
        // SAFETY: `bdev` is valid (see above).
        to_result(unsafe { bindings::bdev_freeze(bdev) })?;
        // INVARIANT: The freeze succeeded, for the block device of `self`.
        Ok(BdevFrozen(self))
    }

    /// Returns the data attached to the super block by [`FileSystem::fill_super`].
    pub fn data(&self) -> <T::Data as ForeignOwnable>::Borrowed<'_> {
        // SAFETY: By the type invariant, `s_fs_info` holds a `T::Data` in state `Ready`, and it
        // is released only in `kill_sb`, after which no reference to the super block remains.
        unsafe { T::Data::borrow((*self.as_raw()).s_fs_info.cast()) }
    }
}

struct Tables<T: FileSystem>(PhantomData<T>);

impl<T: FileSystem> Tables<T> {
    const SUPER_OPS: bindings::super_operations = bindings::super_operations {
        alloc_inode: Some(inode::alloc_inode_callback::<T>),
        destroy_inode: None,
        free_inode: Some(inode::free_inode_callback::<T>),
        dirty_inode: None,
        write_inode: if T::HAS_WRITE_INODE {
            Some(Self::write_inode_callback)
        } else {
            None
        },
        sync_inode_metadata: None,
        drop_inode: None,
        evict_inode: Some(Self::evict_inode_callback),
        put_super: if T::HAS_PUT_SUPER {
            Some(Self::put_super_callback)
        } else {
            None
        },
        shutdown: if T::HAS_SHUTDOWN {
            Some(Self::shutdown_callback)
        } else {
            None
        },
        sync_fs: if T::HAS_SYNC_FS {
            Some(Self::sync_fs_callback)
        } else {
            None
        },
        statfs: if T::HAS_STATFS {
            Some(Self::statfs_callback)
        } else {
            None
        },
        show_options: if T::HAS_SHOW_OPTIONS {
            Some(Self::show_options_callback)
        } else {
            None
        },
        nr_cached_objects: if Self::HAS_CACHE {
            Some(Self::nr_cached_objects_callback)
        } else {
            None
        },
        free_cached_objects: if Self::HAS_CACHE {
            Some(Self::free_cached_objects_callback)
        } else {
            None
        },
        // All other operations are optional and may be null.
        ..pin_init::zeroed()
    };

    /// Whether `T` has a cache for the super block's shrinker. The VFS calls
    /// `free_cached_objects` whenever `nr_cached_objects` counts objects, so a file system
    /// implements both or neither.
    const HAS_CACHE: bool = {
        assert!(
            T::HAS_NR_CACHED_OBJECTS == T::HAS_FREE_CACHED_OBJECTS,
            "nr_cached_objects and free_cached_objects go together"
        );
        T::HAS_NR_CACHED_OBJECTS
    };

    /// # Safety
    ///
    /// Called by the super block's shrinker (`super_cache_count()`, `super_cache_scan()`)
    /// with a valid super block of type `T` and a valid shrink control.
    unsafe extern "C" fn nr_cached_objects_callback(
        sb: *mut bindings::super_block,
        sc: *mut bindings::shrink_control,
    ) -> c_long {
        // SAFETY: The shrinker calls this only once `SB_BORN` is set, which `vfs_get_tree()`
        // does after `fill_super` succeeded, so the super block is `Ready`; and it is freed
        // (`shrinker_free()`) before `kill_sb` releases `s_fs_info`. The shrink control is
        // valid and the VFS does not change it during the call.
        let (sb, sc) = unsafe { (SuperBlock::from_raw(sb), ShrinkControl::from_raw(sc)) };
        c_long::try_from(T::nr_cached_objects(sb, sc)).unwrap_or(c_long::MAX)
    }

    /// # Safety
    ///
    /// As for `nr_cached_objects_callback`.
    unsafe extern "C" fn free_cached_objects_callback(
        sb: *mut bindings::super_block,
        sc: *mut bindings::shrink_control,
    ) -> c_long {
        // SAFETY: As in `nr_cached_objects_callback`; `super_cache_scan()` also holds
        // `s_umount` shared.
        let (sb, sc) = unsafe { (SuperBlock::from_raw(sb), ShrinkControl::from_raw(sc)) };
        c_long::try_from(T::free_cached_objects(sb, sc)).unwrap_or(c_long::MAX)
    }

    /// # Safety
    ///
    /// Called by the VFS with a valid inode of a super block of type `T`.
    unsafe extern "C" fn write_inode_callback(
        inode: *mut bindings::inode,
        wbc: *mut bindings::writeback_control,
    ) -> c_int {
        from_result(|| {
            // SAFETY: `wbc` is valid for the duration of the call.
            let sync = unsafe { (*wbc).sync_mode } == bindings::writeback_sync_modes_WB_SYNC_ALL;
            // SAFETY: The inode is valid and initialised: only initialised inodes get dirty.
            T::write_inode(unsafe { INode::from_raw(inode) }, sync)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the VFS with a valid inode of a super block of type `T` that is being evicted.
    unsafe extern "C" fn evict_inode_callback(inode: *mut bindings::inode) {
        // SAFETY: The inode is valid; its page cache can be dropped now.
        unsafe { bindings::truncate_inode_pages_final(&mut (*inode).i_data) };
        // SAFETY: The inode is valid. Inodes that failed initialisation (`iget_failed`) are
        // marked bad and never reach the file system.
        if T::HAS_EVICT_INODE && !unsafe { bindings::is_bad_inode(inode) } {
            // SAFETY: The inode was initialised (it is not bad).
            T::evict_inode(unsafe { INode::from_raw(inode) });
        }
        // SAFETY: The inode is valid and its pages are gone.
        unsafe { bindings::clear_inode(inode) };
    }

    /// # Safety
    ///
    /// Called by the VFS with a valid, fully set up super block of type `T`.
    unsafe extern "C" fn put_super_callback(sb: *mut bindings::super_block) {
        // SAFETY: The super block is valid and `Ready` (see above).
        T::put_super(unsafe { SuperBlock::from_raw(sb) });
    }

    /// # Safety
    ///
    /// Called by the VFS (`fs_bdev_mark_dead()`) with a valid super block of type `T` that has a
    /// root and is active, under `s_umount`.
    unsafe extern "C" fn shutdown_callback(sb: *mut bindings::super_block) {
        // SAFETY: An active super block with a root was set up by `fill_super`, so it is
        // `Ready`, and `s_umount` keeps `kill_sb` from releasing its data during the call.
        T::shutdown(unsafe { SuperBlock::from_raw(sb) });
    }

    /// # Safety
    ///
    /// Called by the VFS with a valid, fully set up super block of type `T`.
    unsafe extern "C" fn sync_fs_callback(sb: *mut bindings::super_block, wait: c_int) -> c_int {
        from_result(|| {
            // SAFETY: The super block is valid and `Ready` (see above).
            T::sync_fs(unsafe { SuperBlock::from_raw(sb) }, wait != 0)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the VFS with a valid dentry of a super block of type `T` and a valid buffer.
    unsafe extern "C" fn statfs_callback(
        dentry: *mut bindings::dentry,
        buf: *mut bindings::kstatfs,
    ) -> c_int {
        from_result(|| {
            // SAFETY: The dentry is valid and belongs to a `Ready` super block of type `T`.
            let sb = unsafe { SuperBlock::<T>::from_raw((*dentry).d_sb) };
            let s = T::statfs(sb)?;
            // SAFETY: `buf` is valid for writes for the duration of the call.
            let buf = unsafe { &mut *buf };
            buf.f_type = s.magic as c_long;
            buf.f_namelen = s.namelen as c_long;
            buf.f_bsize = s.bsize as c_long;
            buf.f_blocks = s.blocks;
            buf.f_bfree = s.bfree;
            buf.f_bavail = s.bavail;
            buf.f_files = s.files;
            buf.f_ffree = s.ffree;
            // `u64_to_fsid()`: the low and the high half.
            buf.f_fsid.val = [s.fsid as u32 as c_int, (s.fsid >> 32) as u32 as c_int];
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the VFS with a valid sequential file and the valid root dentry of a mounted
    /// super block of type `T`.
    unsafe extern "C" fn show_options_callback(
        m: *mut bindings::seq_file,
        root: *mut bindings::dentry,
    ) -> c_int {
        from_result(|| {
            // SAFETY: The root dentry is valid and belongs to a `Ready` super block of type
            // `T`; the sequential file is valid for the duration of the call.
            let (sb, m) = unsafe {
                (
                    SuperBlock::<T>::from_raw((*root).d_sb),
                    SeqFile::from_raw(m),
                )
            };
            T::show_options(sb, m)?;
            Ok(0)
        })
    }
}
