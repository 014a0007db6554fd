// SPDX-License-Identifier: GPL-2.0

//! Inodes.
//!
//! Every in-memory inode of a Rust file system embeds the file system's
//! [`FileSystem::INodeData`]. Inodes are looked up in the inode cache with
//! [`SuperBlock::iget`](super::sb::SuperBlock::iget); one that is not cached yet comes back as a
//! [`New`] inode that must be initialised with [`New::init`].
//!
//! C header: [`include/linux/fs.h`](srctree/include/linux/fs.h).

#[cfg(CONFIG_BUFFER_HEAD)]
use super::address_space;
#[cfg(CONFIG_FS_POSIX_ACL)]
use super::posix_acl;
use super::{
    dentry::{
        DEntry,
        Unhashed, //
    },
    fops,
    sb::{
        Either,
        SuperBlock, //
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
    sync::aref::{
        ARef,
        AlwaysRefCounted, //
    },
    types::Opaque,
};
use core::{
    cell::UnsafeCell,
    marker::PhantomData,
    mem::{
        ManuallyDrop,
        MaybeUninit, //
    },
    ops::Deref,
    ptr::{
        self,
        NonNull, //
    },
};

/// Flags of an in-memory inode (`i_flags`), which the VFS acts on: [`INode::flags`],
/// [`INode::set_flags`].
pub mod flags {
    use crate::bindings;

    /// Writes are synchronous (`IS_SYNC()`).
    pub const S_SYNC: u32 = bindings::S_SYNC;

    /// Reads do not update the access time (`IS_NOATIME()`).
    pub const S_NOATIME: u32 = bindings::S_NOATIME;

    /// Only appending writes: `open(2)` for writing needs `O_APPEND`, and no truncation,
    /// unlink, rename or attribute change (`IS_APPEND()`).
    pub const S_APPEND: u32 = bindings::S_APPEND;

    /// No change at all: `open(2)` for writing, truncation, unlink, rename, link and attribute
    /// changes fail with `EPERM` (`IS_IMMUTABLE()`).
    pub const S_IMMUTABLE: u32 = bindings::S_IMMUTABLE;
}

/// The type of an inode, from the `S_IFMT` bits of its mode.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Type {
    /// A directory.
    Dir,
    /// A regular file.
    Reg,
    /// A symbolic link.
    Lnk,
    /// A character device.
    Chr,
    /// A block device.
    Blk,
    /// A named pipe.
    Fifo,
    /// A socket.
    Sock,
}

impl Type {
    /// Returns the type encoded in `mode`, or `None` for an invalid one.
    pub fn from_mode(mode: u16) -> Option<Self> {
        Some(match u32::from(mode) & bindings::S_IFMT {
            bindings::S_IFDIR => Self::Dir,
            bindings::S_IFREG => Self::Reg,
            bindings::S_IFLNK => Self::Lnk,
            bindings::S_IFCHR => Self::Chr,
            bindings::S_IFBLK => Self::Blk,
            bindings::S_IFIFO => Self::Fifo,
            bindings::S_IFSOCK => Self::Sock,
            _ => return None,
        })
    }

    /// The `S_IFMT` bits of this type.
    pub fn mode_bits(self) -> u16 {
        (match self {
            Self::Dir => bindings::S_IFDIR,
            Self::Reg => bindings::S_IFREG,
            Self::Lnk => bindings::S_IFLNK,
            Self::Chr => bindings::S_IFCHR,
            Self::Blk => bindings::S_IFBLK,
            Self::Fifo => bindings::S_IFIFO,
            Self::Sock => bindings::S_IFSOCK,
        }) as u16
    }

    /// The `DT_*` value of this type, as stored in directory entries and reported by `getdents`.
    pub fn dirent_type(self) -> u8 {
        (match self {
            Self::Dir => bindings::DT_DIR,
            Self::Reg => bindings::DT_REG,
            Self::Lnk => bindings::DT_LNK,
            Self::Chr => bindings::DT_CHR,
            Self::Blk => bindings::DT_BLK,
            Self::Fifo => bindings::DT_FIFO,
            Self::Sock => bindings::DT_SOCK,
        }) as u8
    }
}

/// A point in time, as stored in inode timestamps.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Timespec {
    /// Seconds since the epoch.
    pub sec: i64,
    /// Nanoseconds, below 10^9.
    pub nsec: u32,
}

impl Timespec {
    /// The current wall-clock time.
    pub fn now() -> Self {
        let mut ts = bindings::timespec64::default();
        // SAFETY: `ts` is valid for writes.
        unsafe { bindings::ktime_get_real_ts64(&mut ts) };
        ts.into()
    }
}

impl From<bindings::timespec64> for Timespec {
    fn from(ts: bindings::timespec64) -> Self {
        Self {
            sec: ts.tv_sec,
            nsec: ts.tv_nsec as u32,
        }
    }
}

impl From<Timespec> for bindings::timespec64 {
    fn from(ts: Timespec) -> Self {
        Self {
            tv_sec: ts.sec,
            tv_nsec: ts.nsec as c_long,
        }
    }
}

/// An ID-mapping of a mount (`struct mnt_idmap`).
///
/// # Invariants
///
/// The wrapped object is a valid `mnt_idmap` for the lifetime of the reference.
#[repr(transparent)]
pub struct MntIdmap(Opaque<bindings::mnt_idmap>);

impl MntIdmap {
    /// # Safety
    ///
    /// `ptr` must be a valid `mnt_idmap` for the lifetime `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::mnt_idmap) -> &'a Self {
        // SAFETY: `Self` is transparent; validity is guaranteed by the caller.
        unsafe { &*ptr.cast() }
    }

    /// Returns the raw C object.
    pub fn as_raw(&self) -> *mut bindings::mnt_idmap {
        self.0.get()
    }
}

/// An in-memory inode of file system `T`.
///
/// # Invariants
///
/// The wrapped `struct inode` is valid, belongs to a super block of type `T`, is embedded in an
/// `INodeWithData<T>` (it was allocated by `alloc_inode_callback::<T>`), and its
/// `T::INodeData` was initialised by [`New::init`].
#[repr(transparent)]
pub struct INode<T: FileSystem>(Opaque<bindings::inode>, PhantomData<T>);

// SAFETY: Inodes are reference counted and may be released on any thread; the fields the methods
// touch are protected by the VFS's locks or accessed with the C accessors that handle races.
unsafe impl<T: FileSystem> Send for INode<T> {}

// SAFETY: As above; `T::INodeData` is `Sync`.
unsafe impl<T: FileSystem> Sync for INode<T> {}

// SAFETY: `ihold`/`iput` maintain the reference count; the inode stays valid while it is not zero.
unsafe impl<T: FileSystem> AlwaysRefCounted for INode<T> {
    fn inc_ref(&self) {
        // SAFETY: The existence of `self` means the count is non-zero.
        unsafe { bindings::ihold(self.as_raw()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller owns a reference to give up.
        unsafe { bindings::iput(obj.as_ptr().cast()) };
    }
}

impl<T: FileSystem> INode<T> {
    /// Creates a reference to an inode from a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for `'a` and satisfy the type invariants.
    pub(crate) unsafe fn from_raw<'a>(ptr: *const bindings::inode) -> &'a Self {
        // SAFETY: `Self` is transparent; validity is guaranteed by the caller.
        unsafe { &*ptr.cast() }
    }

    /// Returns the raw C inode.
    pub fn as_raw(&self) -> *mut bindings::inode {
        self.0.get()
    }

    /// The inode number.
    pub fn ino(&self) -> u64 {
        // SAFETY: `i_ino` never changes after initialisation.
        unsafe { (*self.as_raw()).i_ino }
    }

    /// The super block the inode belongs to.
    pub fn super_block(&self) -> &SuperBlock<T> {
        // SAFETY: `i_sb` is valid and set up for as long as the inode exists.
        unsafe { SuperBlock::from_raw((*self.as_raw()).i_sb) }
    }

    /// The file system's data of this inode.
    pub fn data(&self) -> &T::INodeData {
        // SAFETY: By the type invariants, the inode is embedded in an `INodeWithData<T>` whose
        // data was initialised; it is dropped only when the inode is freed.
        unsafe {
            let outer = crate::container_of!(self.as_raw(), INodeWithData<T>, inode);
            (*(*outer).data.get()).assume_init_ref()
        }
    }

    /// The mode: type and permission bits.
    pub fn mode(&self) -> u16 {
        // SAFETY: The inode is valid; `i_mode` is read racily like the C code does.
        unsafe { (*self.as_raw()).i_mode }
    }

    /// Sets the permission bits (and set-ID and sticky bits) of the mode to those of `mode`;
    /// the file type stays. The caller holds the inode lock.
    pub fn set_mode(&self, mode: u16) {
        let typ = self.mode() & bindings::S_IFMT as u16;
        // SAFETY: `self` is a valid inode for the borrow (type invariant); mode changes are
        // serialised by the inode lock its caller holds.
        unsafe { (*self.as_raw()).i_mode = typ | (mode & !(bindings::S_IFMT as u16)) };
    }

    /// The type of the inode.
    pub fn typ(&self) -> Type {
        // An initialised inode always has a valid type (`New::init` checks it).
        Type::from_mode(self.mode()).unwrap_or(Type::Reg)
    }

    /// The number of hard links.
    pub fn nlink(&self) -> u32 {
        // SAFETY: `self` is a valid inode for the borrow (type invariant); `i_nlink` is read
        // without the inode lock, as C readers do.
        unsafe { (*self.as_raw()).__bindgen_anon_1.i_nlink }
    }

    /// Sets the number of hard links. The caller holds the inode lock.
    pub fn set_nlink(&self, nlink: u32) {
        // SAFETY: `self` is a valid inode for the borrow (type invariant); `set_nlink()` updates
        // the count of unlinked inodes atomically, so a change without the inode lock is a race
        // on the value, not on memory.
        unsafe { bindings::set_nlink(self.as_raw(), nlink) };
    }

    /// Adds a hard link. The caller holds the inode lock.
    pub fn inc_nlink(&self) {
        // SAFETY: As in `set_nlink`.
        unsafe { bindings::inc_nlink(self.as_raw()) };
    }

    /// Drops a hard link. The caller holds the inode lock.
    pub fn drop_nlink(&self) {
        if self.nlink() > 0 {
            // SAFETY: The inode is valid and has a link to drop.
            unsafe { bindings::drop_nlink(self.as_raw()) };
        }
    }

    /// The owner's user ID, in the initial user namespace.
    pub fn uid(&self) -> u32 {
        // SAFETY: `self` is a valid inode for the borrow (type invariant); `i_uid_read()` needs no
        // lock.
        unsafe { bindings::i_uid_read(self.as_raw()) }
    }

    /// The owner's group ID, in the initial user namespace.
    pub fn gid(&self) -> u32 {
        // SAFETY: `self` is a valid inode for the borrow (type invariant); `i_gid_read()` needs no
        // lock.
        unsafe { bindings::i_gid_read(self.as_raw()) }
    }

    /// The size in bytes.
    pub fn size(&self) -> i64 {
        // SAFETY: The inode is valid; `i_size_read` handles concurrent updates.
        unsafe { bindings::i_size_read(self.as_raw()) }
    }

    /// Sets the size in bytes. The caller holds the inode lock.
    pub fn set_size(&self, size: i64) {
        // SAFETY: `self` is a valid inode for the borrow (type invariant); size changes are
        // serialised by the inode lock its caller holds.
        unsafe { bindings::i_size_write(self.as_raw(), size) };
    }

    /// The number of 512-byte sectors allocated to the inode.
    pub fn blocks(&self) -> u64 {
        // SAFETY: `self` is a valid inode for the borrow (type invariant); `i_blocks` is read
        // racily, as `stat(2)` does.
        unsafe { (*self.as_raw()).i_blocks }
    }

    /// Sets the number of 512-byte sectors allocated to the inode.
    pub fn set_blocks(&self, blocks: u64) {
        // SAFETY: The inode is valid; the file system serialises its block accounting.
        unsafe { (*self.as_raw()).i_blocks = blocks };
    }

    /// The device number of a character or block device inode (`i_rdev`, the kernel's
    /// `dev_t`: `MKDEV(major, minor)`); zero for other inodes.
    pub fn rdev(&self) -> u32 {
        // SAFETY: The inode is valid; `i_rdev` is set when it is initialised and never changes.
        unsafe { (*self.as_raw()).i_rdev }
    }

    /// The inode's VFS flags (`i_flags`: [`flags`]).
    pub fn flags(&self) -> u32 {
        // SAFETY: The inode is valid; `i_flags` is read racily like `IS_IMMUTABLE()` does: it
        // only changes by whole-word updates (`inode_set_flags()`).
        unsafe { (*self.as_raw()).i_flags }
    }

    /// Sets the VFS flags in `mask` to their value in `flags`, leaving the others
    /// (`inode_set_flags()`, which updates `i_flags` atomically).
    pub fn set_flags(&self, flags: u32, mask: u32) {
        // SAFETY: The inode is valid; `inode_set_flags()` changes the bits with `cmpxchg()`.
        unsafe { bindings::inode_set_flags(self.as_raw(), flags, mask) };
    }

    /// The inode generation number.
    pub fn generation(&self) -> u32 {
        // SAFETY: `self` is a valid inode for the borrow (type invariant); `i_generation` is set
        // once, when the inode is created.
        unsafe { (*self.as_raw()).i_generation }
    }

    /// Last access time.
    pub fn atime(&self) -> Timespec {
        // SAFETY: `self` is a valid inode for the borrow (type invariant); the timestamp accessors
        // need no lock.
        unsafe { bindings::inode_get_atime(self.as_raw()) }.into()
    }

    /// Last modification time.
    pub fn mtime(&self) -> Timespec {
        // SAFETY: `self` is a valid inode for the borrow (type invariant); the timestamp accessors
        // need no lock.
        unsafe { bindings::inode_get_mtime(self.as_raw()) }.into()
    }

    /// Last status change time.
    pub fn ctime(&self) -> Timespec {
        // SAFETY: `self` is a valid inode for the borrow (type invariant); the timestamp accessors
        // need no lock.
        unsafe { bindings::inode_get_ctime(self.as_raw()) }.into()
    }

    /// Sets the modification and status change times to now.
    pub fn touch_mtime_ctime(&self) {
        // SAFETY: `self` is a valid inode for the borrow (type invariant); the timestamp setters
        // need no lock.
        unsafe {
            let now = bindings::inode_set_ctime_current(self.as_raw());
            bindings::inode_set_mtime_to_ts(self.as_raw(), now);
        }
    }

    /// Sets the status change time to now.
    pub fn touch_ctime(&self) {
        // SAFETY: `self` is a valid inode for the borrow (type invariant); the timestamp setters
        // need no lock.
        unsafe { bindings::inode_set_ctime_current(self.as_raw()) };
    }

    /// Marks the inode dirty, so that [`FileSystem::write_inode`] writes it back.
    pub fn mark_dirty(&self) {
        // SAFETY: `self` is a valid inode for the borrow (type invariant); `mark_inode_dirty()`
        // takes the locks it needs.
        unsafe { bindings::mark_inode_dirty(self.as_raw()) };
    }

    /// Shrinks or grows the file to `size`: updates `i_size` and drops the page cache beyond it.
    /// The caller holds the inode lock, and releases the blocks beyond `size` afterwards.
    pub fn truncate_setsize(&self, size: i64) {
        // SAFETY: The inode is valid and locked by the caller.
        unsafe { bindings::truncate_setsize(self.as_raw(), size) };
    }

    /// Creates a symbolic link target as the content of this inode, through the page cache,
    /// which must be backed by address space operations (for instance a block mapping, see
    /// `address_space::Ops`).
    pub fn page_symlink(&self, target: &[u8]) -> Result {
        let len = c_int::try_from(target.len() + 1).map_err(|_| ENAMETOOLONG)?;
        let mut buf = KVec::with_capacity(target.len() + 1, GFP_KERNEL)?;
        buf.extend_from_slice(target, GFP_KERNEL)?;
        buf.push(0, GFP_KERNEL)?;
        // SAFETY: The inode is valid, `buf` is NUL-terminated and `len` bytes long.
        to_result(unsafe { bindings::page_symlink(self.as_raw(), buf.as_ptr().cast(), len) })
    }
}

impl<T: FileSystem> INode<T> {
    /// Locks the inode (`inode_lock()`: its `i_rwsem`, for writing) until the returned guard is
    /// dropped. May sleep.
    ///
    /// For the operations that the VFS calls without the inode lock and that change the file,
    /// as `fallocate` does.
    pub fn lock(&self) -> Locked<'_, T> {
        // SAFETY: `self` is a valid inode for the borrow (type invariant); the guard unlocks it.
        unsafe { bindings::inode_lock(self.as_raw()) };
        // INVARIANT: Locked above, by the current task.
        Locked(self)
    }
}

/// An inode whose `i_rwsem` the current task holds for writing (`inode_lock()`), released
/// when the guard is dropped. It dereferences to the inode.
///
/// # Invariants
///
/// The current task holds the `i_rwsem` of `0` for writing, from [`INode::lock`] until the
/// guard is dropped.
pub struct Locked<'a, T: FileSystem>(&'a INode<T>);

impl<T: FileSystem> Deref for Locked<'_, T> {
    type Target = INode<T>;

    fn deref(&self) -> &INode<T> {
        self.0
    }
}

impl<T: FileSystem> Drop for Locked<'_, T> {
    fn drop(&mut self) {
        // SAFETY: The current task holds the lock (type invariant).
        unsafe { bindings::inode_unlock(self.0.as_raw()) };
    }
}

impl<T: FileSystem> Locked<'_, T> {
    /// Waits until the direct I/O in flight on the inode has completed (`inode_dio_wait()`).
    /// No new direct I/O starts while the inode lock is held.
    pub fn dio_wait(&self) {
        // SAFETY: The inode is valid and locked (type invariant).
        unsafe { bindings::inode_dio_wait(self.0.as_raw()) };
    }

    /// Checks that the file may change its size to `size` (`inode_newsize_ok()`): the file size
    /// limit of the task (`SIGXFSZ`, `EFBIG`) and of the file system.
    pub fn newsize_ok(&self, size: i64) -> Result {
        // SAFETY: The inode is valid and locked (type invariant).
        to_result(unsafe { bindings::inode_newsize_ok(self.0.as_raw(), size) })
    }

    /// Takes the invalidate lock of the inode's page cache (`filemap_invalidate_lock()`) until
    /// the returned guard is dropped: page faults and reads cannot bring pages of the file back
    /// into the page cache, so that ranges dropped from it stay dropped while the file system
    /// changes the blocks under them. May sleep.
    pub fn invalidate_lock(&self) -> InvalidateLocked<'_, T> {
        // SAFETY: The inode is valid (type invariant), so is its mapping; the guard unlocks it.
        unsafe { bindings::filemap_invalidate_lock((*self.0.as_raw()).i_mapping) };
        // INVARIANT: Locked above; the inode lock outlives the borrow of `self`.
        InvalidateLocked(self.0)
    }
}

/// An inode whose `i_rwsem` and whose page cache's `invalidate_lock` the current task holds
/// for writing, released when the guard is dropped (the `invalidate_lock`; the inode lock
/// stays with its [`Locked`] guard). It dereferences to the inode.
///
/// # Invariants
///
/// The current task holds the inode lock and the `invalidate_lock` of `0`'s mapping for
/// writing, from [`Locked::invalidate_lock`] until the guard is dropped.
pub struct InvalidateLocked<'a, T: FileSystem>(&'a INode<T>);

impl<T: FileSystem> Deref for InvalidateLocked<'_, T> {
    type Target = INode<T>;

    fn deref(&self) -> &INode<T> {
        self.0
    }
}

impl<T: FileSystem> Drop for InvalidateLocked<'_, T> {
    fn drop(&mut self) {
        // SAFETY: The current task holds the lock (type invariant).
        unsafe { bindings::filemap_invalidate_unlock((*self.0.as_raw()).i_mapping) };
    }
}

impl<T: FileSystem> InvalidateLocked<'_, T> {
    /// Unmaps and drops the pages of bytes `start..=end` from the page cache
    /// (`truncate_pagecache_range()`), before the file system frees or rewrites the blocks
    /// under them. Dirty pages are dropped unwritten; the parts of partial pages at either end
    /// are zeroed in memory only, so a caller that keeps the rest of such a page zeroes its part
    /// on the device itself.
    pub fn truncate_pagecache_range(&self, start: i64, end: i64) {
        // SAFETY: The inode is valid, and both locks are held (type invariant).
        unsafe { bindings::truncate_pagecache_range(self.0.as_raw(), start, end) };
    }
}

/// The allocation that holds a C inode and the file system's data for it.
///
/// # Invariants
///
/// `data` is initialised if and only if `data_init` is true; `data_init` is written only while
/// the inode is new (locked with `I_NEW`, owned by one [`New`]) and read when it is freed.
#[repr(C)]
pub(crate) struct INodeWithData<T: FileSystem> {
    data_init: UnsafeCell<bool>,
    data: UnsafeCell<MaybeUninit<T::INodeData>>,
    inode: bindings::inode,
}

/// # Safety
///
/// Called by the VFS with a valid super block of type `T`.
pub(crate) unsafe extern "C" fn alloc_inode_callback<T: FileSystem>(
    _sb: *mut bindings::super_block,
) -> *mut bindings::inode {
    let Ok(b) = KBox::<INodeWithData<T>>::new_uninit(GFP_KERNEL) else {
        return ptr::null_mut();
    };
    let outer = KBox::into_raw(b).cast::<INodeWithData<T>>();
    // SAFETY: `outer` is valid for writes; the fields are initialised before use: `data_init`
    // here, `data` by `New::init`, and `inode` by `inode_init_once` and then `inode_init_always`
    // in the VFS.
    unsafe {
        ptr::addr_of_mut!((*outer).data_init).write(UnsafeCell::new(false));
        let inode = ptr::addr_of_mut!((*outer).inode);
        bindings::inode_init_once(inode);
        inode
    }
}

/// # Safety
///
/// Called by the VFS with an inode allocated by [`alloc_inode_callback`] for the same `T`, after
/// an RCU grace period, when nothing refers to it anymore.
pub(crate) unsafe extern "C" fn free_inode_callback<T: FileSystem>(inode: *mut bindings::inode) {
    // SAFETY: The inode was allocated by `alloc_inode_callback`, so it is embedded in an
    // `INodeWithData<T>` that came from `KBox::into_raw`, and nothing else refers to it anymore.
    unsafe {
        let outer = crate::container_of!(inode, INodeWithData<T>, inode);
        if *(*outer).data_init.get() {
            (*(*outer).data.get()).assume_init_drop();
        }
        drop(KBox::<MaybeUninit<INodeWithData<T>>>::from_raw(
            outer.cast(),
        ));
    }
}

/// Returns the result of `iget_locked()` as an existing or a new inode.
///
/// # Safety
///
/// `ptr` must be a valid inode of a super block of type `T`, returned by `iget_locked()`, with a
/// reference that is transferred to the result.
pub(crate) unsafe fn from_iget_locked<T: FileSystem>(
    ptr: NonNull<bindings::inode>,
) -> Result<Either<ARef<INode<T>>, New<T>>> {
    // SAFETY: `ptr` is the referenced inode `iget_locked()` just returned.
    if unsafe { bindings::inode_is_new(ptr.as_ptr()) } {
        return Ok(Either::Right(New(ptr, PhantomData)));
    }
    // SAFETY: The inode is valid, not new, so initialised; the reference is ours.
    let inode: ARef<INode<T>> = unsafe { ARef::from_raw(ptr.cast()) };
    // SAFETY: `inode` holds a reference to a valid inode.
    if unsafe { bindings::is_bad_inode(inode.as_raw()) } {
        return Err(EIO);
    }
    Ok(Either::Left(inode))
}

/// How the owner of a new inode is set.
pub enum Owner<'a, T: FileSystem> {
    /// From values read from the backing store.
    Ids {
        /// The owning user.
        uid: u32,
        /// The owning group.
        gid: u32,
    },

    /// For an inode being created in directory `dir`: the caller's file system IDs, with the
    /// group inherited from a set-group-ID directory (`inode_init_owner()`).
    Caller {
        /// The ID mapping of the mount the inode is created through.
        idmap: &'a MntIdmap,
        /// The parent directory.
        dir: &'a INode<T>,
    },
}

/// The initial state of a [`New`] inode.
pub struct Params<'a, T: FileSystem> {
    /// Mode: type and permission bits.
    pub mode: u16,
    /// Owner.
    pub owner: Owner<'a, T>,
    /// Number of hard links.
    pub nlink: u32,
    /// Size in bytes.
    pub size: i64,
    /// Allocated 512-byte sectors.
    pub blocks: u64,
    /// Generation number.
    pub generation: u32,
    /// VFS flags ([`flags`]), set before other lookups can see the inode.
    pub flags: u32,
    /// Last access time; `None` for now.
    pub atime: Option<Timespec>,
    /// Last modification time; `None` for now.
    pub mtime: Option<Timespec>,
    /// Last status change time; `None` for now.
    pub ctime: Option<Timespec>,
}

/// An inode that is new in the inode cache and not initialised yet.
///
/// It is locked (`I_NEW`): other lookups of the same inode number wait until it is initialised
/// with [`New::init`], or fail if it is dropped instead.
///
/// # Invariants
///
/// `0` is a valid inode with state `I_NEW`, allocated by `alloc_inode_callback::<T>`, with a
/// reference owned by this object.
pub struct New<T: FileSystem>(NonNull<bindings::inode>, PhantomData<T>);

impl<T: FileSystem> New<T> {
    /// The inode number.
    pub fn ino(&self) -> u64 {
        // SAFETY: `self` owns a referenced, locked new inode (type invariant).
        unsafe { (*self.0.as_ptr()).i_ino }
    }

    /// Sets the inode operations.
    pub fn set_inode_ops(&mut self, ops: Ops<T>) -> &mut Self {
        // SAFETY: The new inode is exclusively ours.
        unsafe { (*self.0.as_ptr()).i_op = ops.0 };
        self
    }

    /// Sets the file operations.
    pub fn set_file_ops(&mut self, ops: fops::Ops<T>) -> &mut Self {
        // SAFETY: The new inode is exclusively ours.
        unsafe { (*self.0.as_ptr()).__bindgen_anon_3.i_fop = ops.as_raw() };
        self
    }

    /// Sets the address space operations, which back the page cache of the inode.
    #[cfg(CONFIG_BUFFER_HEAD)]
    pub fn set_aops(&mut self, ops: address_space::Ops<T>) -> &mut Self {
        // SAFETY: The new inode is exclusively ours.
        unsafe { (*self.0.as_ptr()).i_data.a_ops = ops.as_raw() };
        self
    }

    /// Makes the inode a symbolic link whose target is its content, read through the page cache
    /// backed by `aops` (`page_get_link()`, see [`INode::page_symlink`]); the other inode
    /// operations (attributes, extended attributes, ACLs) are `U`'s.
    #[cfg(CONFIG_BUFFER_HEAD)]
    pub fn set_page_symlink<U: Operations<FileSystem = T> + ?Sized>(
        &mut self,
        aops: address_space::Ops<T>,
    ) -> &mut Self {
        self.set_inode_ops(Ops::page_symlink::<U>()).set_aops(aops);
        // SAFETY: The new inode is exclusively ours; `page_get_link` needs a mapping without
        // highmem pages.
        unsafe { bindings::inode_nohighmem(self.0.as_ptr()) };
        self
    }

    /// Makes the inode a special file of type `typ`, a character or block device with device
    /// number `rdev` (`MKDEV(major, minor)`, ignored for the other types), a named pipe or a
    /// socket (`init_special_inode()`): opening it opens the device or the pipe, not the file
    /// system. Fails with `EINVAL` for the other types.
    pub fn init_special_inode(&mut self, typ: Type, rdev: u32) -> Result<&mut Self> {
        if !matches!(typ, Type::Chr | Type::Blk | Type::Fifo | Type::Sock) {
            return Err(EINVAL);
        }
        // SAFETY: The new inode is exclusively ours; the mode is that of a special file.
        unsafe { bindings::init_special_inode(self.0.as_ptr(), typ.mode_bits(), rdev) };
        Ok(self)
    }

    /// Initialises the inode from `params` and its file system data with `value`, and makes
    /// it available to other lookups.
    ///
    /// On failure, the inode is released and lookups waiting for it fail.
    pub fn init(
        self,
        params: Params<'_, T>,
        value: impl PinInit<T::INodeData, Error>,
    ) -> Result<ARef<INode<T>>> {
        if Type::from_mode(params.mode).is_none() {
            return Err(EFSCORRUPTED);
        }
        let inode = self.0.as_ptr();
        // SAFETY: The inode was allocated by `alloc_inode_callback` (type invariant), so it is
        // embedded in an `INodeWithData<T>`.
        let outer = unsafe { crate::container_of!(inode, INodeWithData<T>, inode) };
        // SAFETY: The inode is new and exclusively ours (type invariant), so the data beside it
        // may be initialised in place; it does not move until the inode is freed. If this
        // fails, `self` is dropped, which fails the inode.
        unsafe { value.__init((*(*outer).data.get()).as_mut_ptr())? };
        let this = ManuallyDrop::new(self);
        // SAFETY: As above: the inode and the data beside it are exclusively ours.
        unsafe {
            *(*outer).data_init.get() = true;

            match params.owner {
                Owner::Ids { uid, gid } => {
                    (*inode).i_mode = params.mode;
                    bindings::i_uid_write(inode, uid);
                    bindings::i_gid_write(inode, gid);
                }
                Owner::Caller { idmap, dir } => {
                    bindings::inode_init_owner(idmap.as_raw(), inode, dir.as_raw(), params.mode);
                }
            }
            bindings::set_nlink(inode, params.nlink);
            bindings::i_size_write(inode, params.size);
            (*inode).i_blocks = params.blocks;
            (*inode).i_generation = params.generation;
            (*inode).i_flags = params.flags;
            let now = bindings::inode_set_ctime_current(inode);
            let ts = |t: Option<Timespec>| t.map_or(now, Into::into);
            bindings::inode_set_atime_to_ts(inode, ts(params.atime));
            bindings::inode_set_mtime_to_ts(inode, ts(params.mtime));
            bindings::inode_set_ctime_to_ts(inode, ts(params.ctime));
            bindings::unlock_new_inode(inode);
        }
        // SAFETY: The inode is now initialised, and we transfer our reference.
        Ok(unsafe { ARef::from_raw(this.0.cast()) })
    }
}

impl<T: FileSystem> Drop for New<T> {
    fn drop(&mut self) {
        // SAFETY: The inode is new and was not initialised: `iget_failed` marks it bad, unlocks
        // it and drops our reference.
        unsafe { bindings::iget_failed(self.0.as_ptr()) };
    }
}

/// The attributes to change in a [`Operations::setattr`] call (`struct iattr`).
#[repr(transparent)]
pub struct Attr(Opaque<bindings::iattr>);

impl Attr {
    fn raw(&self) -> &bindings::iattr {
        // SAFETY: The attributes are valid for the duration of the callback.
        unsafe { &*self.0.get() }
    }

    /// The new size, if the size changes.
    pub fn size(&self) -> Option<i64> {
        let a = self.raw();
        (a.ia_valid & bindings::ATTR_SIZE != 0).then_some(a.ia_size)
    }

    /// The new mode, if the mode changes.
    pub fn mode(&self) -> Option<u16> {
        let a = self.raw();
        (a.ia_valid & bindings::ATTR_MODE != 0).then_some(a.ia_mode)
    }

    /// Checks that the caller may make the change to `dentry` (`setattr_prepare()`).
    pub fn prepare<T: FileSystem>(&self, idmap: &MntIdmap, dentry: &DEntry<T>) -> Result {
        // SAFETY: All pointers are valid for the duration of the callback.
        to_result(unsafe {
            bindings::setattr_prepare(idmap.as_raw(), dentry.as_raw(), self.0.get())
        })
    }

    /// Checks that `inode` may take the new size (`inode_newsize_ok()`).
    pub fn newsize_ok<T: FileSystem>(&self, inode: &INode<T>, size: i64) -> Result {
        // SAFETY: `inode` is a valid inode for the borrow (type invariant of `INode`).
        to_result(unsafe { bindings::inode_newsize_ok(inode.as_raw(), size) })
    }

    /// Copies the attributes other than the size to `inode` (`setattr_copy()`).
    pub fn copy<T: FileSystem>(&self, idmap: &MntIdmap, inode: &INode<T>) {
        // SAFETY: All pointers are valid; the VFS holds the inode lock.
        unsafe { bindings::setattr_copy(idmap.as_raw(), inode.as_raw(), self.0.get()) };
    }
}

/// Miscellaneous inode attributes (`struct file_kattr`), in a [`Operations::fileattr_get`] or
/// [`Operations::fileattr_set`] call: the inode flags of `FS_IOC_GETFLAGS`/`FS_IOC_SETFLAGS`
/// (`FS_*_FL` of `<uapi/linux/fs.h>`) and the attributes of `FS_IOC_FSGETXATTR`/
/// `FS_IOC_FSSETXATTR`, which the VFS translates into each other.
#[repr(transparent)]
pub struct FileAttr(Opaque<bindings::file_kattr>);

impl FileAttr {
    /// The `FS_*_FL` inode flags.
    pub fn flags(&self) -> u32 {
        // SAFETY: The attributes are valid for the duration of the callback.
        unsafe { (*self.0.get()).flags }
    }

    /// Whether the attributes hold more than the `FS_*_FL` flags express: an extended flag
    /// without a counterpart among them, an extent size or a project ID (`fileattr_has_fsx()`).
    /// A file system that supports only the flags refuses those with `EOPNOTSUPP`.
    pub fn has_fsx(&self) -> bool {
        // SAFETY: The attributes are valid for the duration of the callback.
        unsafe { bindings::fileattr_has_fsx(self.0.get()) }
    }

    /// Reports the `FS_*_FL` inode flags `flags`, and the extended flags they correspond to
    /// (`fileattr_fill_flags()`).
    pub fn fill_flags(&mut self, flags: u32) {
        // SAFETY: The attributes are valid for the duration of the callback, and ours to fill
        // in during a `fileattr_get` call.
        unsafe { bindings::fileattr_fill_flags(self.0.get(), flags) };
    }
}

/// Where `FIEMAP` reports the extents of a file (`struct fiemap_extent_info`), in an
/// [`Operations::fiemap`] call; [`super::iomap::fiemap`] fills it.
#[repr(transparent)]
pub struct FiemapExtentInfo(Opaque<bindings::fiemap_extent_info>);

impl FiemapExtentInfo {
    /// Returns the raw C `fiemap_extent_info`.
    pub fn as_raw(&mut self) -> *mut bindings::fiemap_extent_info {
        self.0.get()
    }
}

/// Inode operations.
///
/// The VFS holds the locks documented in `Documentation/filesystems/locking.rst`: the directory
/// operations run with the parent's `i_rwsem` held exclusively (shared for `lookup`), `rename`
/// with both parents locked and the file system's rename lock held.
#[vtable]
pub trait Operations {
    /// The file system the inodes belong to.
    type FileSystem: FileSystem;

    /// Looks up `dentry`'s name in `parent`, and binds it to the inode found, if any.
    fn lookup(
        _parent: &INode<Self::FileSystem>,
        _dentry: Unhashed<'_, Self::FileSystem>,
    ) -> Result<Option<ARef<DEntry<Self::FileSystem>>>> {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Creates a regular file for the negative `dentry` in `dir`.
    fn create(
        _idmap: &MntIdmap,
        _dir: &INode<Self::FileSystem>,
        _dentry: &DEntry<Self::FileSystem>,
        _mode: u16,
    ) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Creates a directory for the negative `dentry` in `dir`.
    fn mkdir(
        _idmap: &MntIdmap,
        _dir: &INode<Self::FileSystem>,
        _dentry: &DEntry<Self::FileSystem>,
        _mode: u16,
    ) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Creates a special file for the negative `dentry` in `dir`: a character or block device
    /// with device number `rdev` (the kernel's `dev_t`), a named pipe or a socket, as the type
    /// bits of `mode` say (`mknod(2)`, `mkfifo(3)`, `bind(2)` of a Unix socket; regular files
    /// go to [`Operations::create`]).
    fn mknod(
        _idmap: &MntIdmap,
        _dir: &INode<Self::FileSystem>,
        _dentry: &DEntry<Self::FileSystem>,
        _mode: u16,
        _rdev: u32,
    ) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Creates a symbolic link to `target` for the negative `dentry` in `dir`.
    fn symlink(
        _idmap: &MntIdmap,
        _dir: &INode<Self::FileSystem>,
        _dentry: &DEntry<Self::FileSystem>,
        _target: &CStr,
    ) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Adds a hard link `dentry` in `dir` to the inode of `old_dentry`.
    fn link(
        _old_dentry: &DEntry<Self::FileSystem>,
        _dir: &INode<Self::FileSystem>,
        _dentry: &DEntry<Self::FileSystem>,
    ) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Removes the non-directory `dentry` from `dir`.
    fn unlink(_dir: &INode<Self::FileSystem>, _dentry: &DEntry<Self::FileSystem>) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Removes the empty directory `dentry` from `dir`.
    fn rmdir(_dir: &INode<Self::FileSystem>, _dentry: &DEntry<Self::FileSystem>) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Renames `old_dentry` in `old_dir` to `new_dentry` in `new_dir`, replacing the inode of
    /// `new_dentry` if it is positive. `flags` are `RENAME_*` flags.
    fn rename(
        _idmap: &MntIdmap,
        _old_dir: &INode<Self::FileSystem>,
        _old_dentry: &DEntry<Self::FileSystem>,
        _new_dir: &INode<Self::FileSystem>,
        _new_dentry: &DEntry<Self::FileSystem>,
        _flags: u32,
    ) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Changes the attributes of the inode of `dentry` (`chmod`, `chown`, `truncate`, ...).
    fn setattr(_idmap: &MntIdmap, _dentry: &DEntry<Self::FileSystem>, _attr: &Attr) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Reports the attributes of the inode of `dentry` in `fa`, with [`FileAttr::fill_flags`]
    /// (`FS_IOC_GETFLAGS`, `FS_IOC_FSGETXATTR`; also called by `FS_IOC_SETFLAGS` for the
    /// attributes before the change).
    fn fileattr_get(_dentry: &DEntry<Self::FileSystem>, _fa: &mut FileAttr) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Changes the attributes of the inode of `dentry` to `fa` (`FS_IOC_SETFLAGS`,
    /// `FS_IOC_FSSETXATTR`). The VFS holds the inode lock, has checked that the caller owns the
    /// inode, and that it may change the immutable and append-only flags
    /// (`CAP_LINUX_IMMUTABLE`); requires [`Operations::fileattr_get`].
    fn fileattr_set(
        _idmap: &MntIdmap,
        _dentry: &DEntry<Self::FileSystem>,
        _fa: &FileAttr,
    ) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// The ACL of type `typ` of `inode` (`get_inode_acl`), for the VFS's permission checks,
    /// which cache it in the inode; `None` if it has none. With `rcu` the call must not sleep:
    /// a file system that must read the ACL fails with `ECHILD`, and is called again without.
    #[cfg(CONFIG_FS_POSIX_ACL)]
    fn get_inode_acl(
        _inode: &INode<Self::FileSystem>,
        _typ: posix_acl::Type,
        _rcu: bool,
    ) -> Result<Option<ARef<posix_acl::PosixAcl>>> {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Stores `acl` as the ACL of type `typ` of the inode of `dentry`, or removes it with
    /// `None` (`set_acl`), and caches it ([`INode::set_cached_acl`]). The VFS has checked
    /// that the caller owns the inode and holds the inode lock; a file system updates the
    /// mode for [`posix_acl::Type::Access`] with [`posix_acl::update_mode`].
    #[cfg(CONFIG_FS_POSIX_ACL)]
    fn set_acl(
        _idmap: &MntIdmap,
        _dentry: &DEntry<Self::FileSystem>,
        _acl: Option<&posix_acl::PosixAcl>,
        _typ: posix_acl::Type,
    ) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Lists the names of the extended attributes of the inode of `dentry` (`listxattr`:
    /// `listxattr(2)`), each with its prefix and a NUL, into `buf`, and returns their length;
    /// with an empty `buf` it only returns the length. Fails with `ERANGE` if they do not fit.
    /// The handlers of [`super::xattr`] serve the attributes themselves.
    fn listxattr(_dentry: &DEntry<Self::FileSystem>, _buf: &mut [u8]) -> Result<usize> {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Reports the extents of `inode` in `start..start + len` to `FIEMAP` in `fi`, usually
    /// with [`super::iomap::fiemap`]. The VFS has checked the request's flags against
    /// `FIEMAP_FLAGS_COMPAT` and holds no lock.
    fn fiemap(
        _inode: &INode<Self::FileSystem>,
        _fi: &mut FiemapExtentInfo,
        _start: u64,
        _len: u64,
    ) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }
}

/// A table of inode operations for inodes of file system `T`.
#[derive(Copy, Clone)]
pub struct Ops<T: FileSystem>(*const bindings::inode_operations, PhantomData<T>);

impl<T: FileSystem> Ops<T> {
    /// Builds the table of the operations implemented by `U`.
    pub const fn new<U: Operations<FileSystem = T> + ?Sized>() -> Self {
        Self(&OpsTable::<U>::TABLE, PhantomData)
    }

    /// Operations for symbolic links whose target is the content of the inode, read through
    /// the page cache (see [`New::set_page_symlink`]), and `U`'s other operations.
    #[cfg(CONFIG_BUFFER_HEAD)]
    const fn page_symlink<U: Operations<FileSystem = T> + ?Sized>() -> Self {
        Self(&OpsTable::<U>::PAGE_SYMLINK, PhantomData)
    }
}

struct OpsTable<U: Operations + ?Sized>(PhantomData<U>);

impl<U: Operations + ?Sized> OpsTable<U> {
    const TABLE: bindings::inode_operations = bindings::inode_operations {
        lookup: if U::HAS_LOOKUP {
            Some(Self::lookup_callback)
        } else {
            None
        },
        create: if U::HAS_CREATE {
            Some(Self::create_callback)
        } else {
            None
        },
        mkdir: if U::HAS_MKDIR {
            Some(Self::mkdir_callback)
        } else {
            None
        },
        symlink: if U::HAS_SYMLINK {
            Some(Self::symlink_callback)
        } else {
            None
        },
        mknod: if U::HAS_MKNOD {
            Some(Self::mknod_callback)
        } else {
            None
        },
        link: if U::HAS_LINK {
            Some(Self::link_callback)
        } else {
            None
        },
        unlink: if U::HAS_UNLINK {
            Some(Self::unlink_callback)
        } else {
            None
        },
        rmdir: if U::HAS_RMDIR {
            Some(Self::rmdir_callback)
        } else {
            None
        },
        rename: if U::HAS_RENAME {
            Some(Self::rename_callback)
        } else {
            None
        },
        setattr: if U::HAS_SETATTR {
            Some(Self::setattr_callback)
        } else {
            None
        },
        fileattr_get: if U::HAS_FILEATTR_GET {
            Some(Self::fileattr_get_callback)
        } else {
            None
        },
        fileattr_set: if Self::HAS_FILEATTR_SET {
            Some(Self::fileattr_set_callback)
        } else {
            None
        },
        fiemap: if U::HAS_FIEMAP {
            Some(Self::fiemap_callback)
        } else {
            None
        },
        listxattr: if U::HAS_LISTXATTR {
            Some(Self::listxattr_callback)
        } else {
            None
        },
        #[cfg(CONFIG_FS_POSIX_ACL)]
        get_inode_acl: if U::HAS_GET_INODE_ACL {
            Some(Self::get_inode_acl_callback)
        } else {
            None
        },
        #[cfg(CONFIG_FS_POSIX_ACL)]
        set_acl: if U::HAS_SET_ACL {
            Some(Self::set_acl_callback)
        } else {
            None
        },
        // All other operations are optional and may be null.
        ..pin_init::zeroed()
    };

    /// The table of a symbolic link whose target is read through the page cache: `U`'s, with
    /// `page_get_link()`. A symbolic link has no directory operations.
    #[cfg(CONFIG_BUFFER_HEAD)]
    const PAGE_SYMLINK: bindings::inode_operations = {
        assert!(
            !U::HAS_LOOKUP && !U::HAS_CREATE && !U::HAS_MKDIR,
            "symbolic links have no directory operations"
        );
        bindings::inode_operations {
            get_link: Some(bindings::page_get_link),
            ..Self::TABLE
        }
    };

    /// Whether `U` changes attributes. `vfs_fileattr_set()` reads the old ones first, so it
    /// needs `fileattr_get` too.
    const HAS_FILEATTR_SET: bool = {
        assert!(
            !U::HAS_FILEATTR_SET || U::HAS_FILEATTR_GET,
            "fileattr_set needs fileattr_get"
        );
        U::HAS_FILEATTR_SET
    };

    /// # Safety
    ///
    /// The C callbacks below are called by the VFS with valid, initialised inodes and valid
    /// dentries of a super block of type `U::FileSystem`, holding the locks documented on
    /// [`Operations`], for the duration of the call. This applies to each of them.
    unsafe extern "C" fn lookup_callback(
        parent: *mut bindings::inode,
        dentry: *mut bindings::dentry,
        _flags: c_uint,
    ) -> *mut bindings::dentry {
        // SAFETY: See the safety section above.
        let (parent, dentry) = unsafe { (INode::from_raw(parent), Unhashed::from_raw(dentry)) };
        match U::lookup(parent, dentry) {
            Err(e) => e.to_ptr(),
            Ok(None) => ptr::null_mut(),
            Ok(Some(d)) => ARef::into_raw(d).as_ptr().cast(),
        }
    }

    /// # Safety
    ///
    /// See [`Self::lookup_callback`].
    unsafe extern "C" fn create_callback(
        idmap: *mut bindings::mnt_idmap,
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
        mode: bindings::umode_t,
    ) -> c_int {
        from_result(|| {
            // SAFETY: See `lookup_callback`.
            let (idmap, dir, dentry) = unsafe {
                (
                    MntIdmap::from_raw(idmap),
                    INode::from_raw(dir),
                    DEntry::from_raw(dentry),
                )
            };
            U::create(idmap, dir, dentry, mode)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// See [`Self::lookup_callback`].
    unsafe extern "C" fn mkdir_callback(
        idmap: *mut bindings::mnt_idmap,
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
        mode: bindings::umode_t,
    ) -> *mut bindings::dentry {
        // SAFETY: See `lookup_callback`.
        let (idmap, dir, d) = unsafe {
            (
                MntIdmap::from_raw(idmap),
                INode::from_raw(dir),
                DEntry::from_raw(dentry),
            )
        };
        match U::mkdir(idmap, dir, d, mode | bindings::S_IFDIR as u16) {
            // The dentry passed in was instantiated.
            Ok(()) => ptr::null_mut(),
            Err(e) => e.to_ptr(),
        }
    }

    /// # Safety
    ///
    /// See [`Self::lookup_callback`]; `target` is a valid NUL-terminated string.
    unsafe extern "C" fn symlink_callback(
        idmap: *mut bindings::mnt_idmap,
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
        target: *const c_char,
    ) -> c_int {
        from_result(|| {
            // SAFETY: See above.
            let (idmap, dir, dentry, target) = unsafe {
                (
                    MntIdmap::from_raw(idmap),
                    INode::from_raw(dir),
                    DEntry::from_raw(dentry),
                    CStr::from_char_ptr(target),
                )
            };
            U::symlink(idmap, dir, dentry, target)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// See [`Self::lookup_callback`].
    unsafe extern "C" fn mknod_callback(
        idmap: *mut bindings::mnt_idmap,
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
        mode: bindings::umode_t,
        rdev: bindings::dev_t,
    ) -> c_int {
        from_result(|| {
            // SAFETY: See `lookup_callback`.
            let (idmap, dir, dentry) = unsafe {
                (
                    MntIdmap::from_raw(idmap),
                    INode::from_raw(dir),
                    DEntry::from_raw(dentry),
                )
            };
            U::mknod(idmap, dir, dentry, mode, rdev)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// See [`Self::lookup_callback`].
    unsafe extern "C" fn link_callback(
        old_dentry: *mut bindings::dentry,
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
    ) -> c_int {
        from_result(|| {
            // SAFETY: See `lookup_callback`.
            let (old, dir, dentry) = unsafe {
                (
                    DEntry::from_raw(old_dentry),
                    INode::from_raw(dir),
                    DEntry::from_raw(dentry),
                )
            };
            U::link(old, dir, dentry)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// See [`Self::lookup_callback`].
    unsafe extern "C" fn unlink_callback(
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
    ) -> c_int {
        from_result(|| {
            // SAFETY: See `lookup_callback`.
            let (dir, dentry) = unsafe { (INode::from_raw(dir), DEntry::from_raw(dentry)) };
            U::unlink(dir, dentry)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// See [`Self::lookup_callback`].
    unsafe extern "C" fn rmdir_callback(
        dir: *mut bindings::inode,
        dentry: *mut bindings::dentry,
    ) -> c_int {
        from_result(|| {
            // SAFETY: See `lookup_callback`.
            let (dir, dentry) = unsafe { (INode::from_raw(dir), DEntry::from_raw(dentry)) };
            U::rmdir(dir, dentry)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// See [`Self::lookup_callback`].
    unsafe extern "C" fn rename_callback(
        idmap: *mut bindings::mnt_idmap,
        old_dir: *mut bindings::inode,
        old_dentry: *mut bindings::dentry,
        new_dir: *mut bindings::inode,
        new_dentry: *mut bindings::dentry,
        flags: c_uint,
    ) -> c_int {
        from_result(|| {
            // SAFETY: See `lookup_callback`.
            let (idmap, od, ode, nd, nde) = unsafe {
                (
                    MntIdmap::from_raw(idmap),
                    INode::from_raw(old_dir),
                    DEntry::from_raw(old_dentry),
                    INode::from_raw(new_dir),
                    DEntry::from_raw(new_dentry),
                )
            };
            U::rename(idmap, od, ode, nd, nde, flags)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// See [`Self::lookup_callback`]; `attr` is valid for the duration of the call.
    unsafe extern "C" fn setattr_callback(
        idmap: *mut bindings::mnt_idmap,
        dentry: *mut bindings::dentry,
        attr: *mut bindings::iattr,
    ) -> c_int {
        from_result(|| {
            // SAFETY: See above; `Attr` is a transparent wrapper of `iattr`.
            let (idmap, dentry, attr) = unsafe {
                (
                    MntIdmap::from_raw(idmap),
                    DEntry::from_raw(dentry),
                    &*attr.cast::<Attr>(),
                )
            };
            U::setattr(idmap, dentry, attr)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// See [`Self::lookup_callback`]; `fa` is valid for the duration of the call.
    unsafe extern "C" fn fileattr_get_callback(
        dentry: *mut bindings::dentry,
        fa: *mut bindings::file_kattr,
    ) -> c_int {
        from_result(|| {
            // SAFETY: See above; `FileAttr` is a transparent wrapper of `file_kattr`, which
            // nothing else accesses during the call.
            let (dentry, fa) = unsafe { (DEntry::from_raw(dentry), &mut *fa.cast::<FileAttr>()) };
            U::fileattr_get(dentry, fa)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// See [`Self::lookup_callback`]; `fa` is valid for the duration of the call.
    unsafe extern "C" fn fileattr_set_callback(
        idmap: *mut bindings::mnt_idmap,
        dentry: *mut bindings::dentry,
        fa: *mut bindings::file_kattr,
    ) -> c_int {
        from_result(|| {
            // SAFETY: See above; `FileAttr` is a transparent wrapper of `file_kattr`.
            let (idmap, dentry, fa) = unsafe {
                (
                    MntIdmap::from_raw(idmap),
                    DEntry::from_raw(dentry),
                    &*fa.cast::<FileAttr>(),
                )
            };
            U::fileattr_set(idmap, dentry, fa)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// See [`Self::lookup_callback`]; `fi` is valid for the duration of the call.
    unsafe extern "C" fn fiemap_callback(
        inode: *mut bindings::inode,
        fi: *mut bindings::fiemap_extent_info,
        start: u64,
        len: u64,
    ) -> c_int {
        from_result(|| {
            // SAFETY: See above; `FiemapExtentInfo` is a transparent wrapper of
            // `fiemap_extent_info`, which nothing else accesses during the call.
            let (inode, fi) =
                unsafe { (INode::from_raw(inode), &mut *fi.cast::<FiemapExtentInfo>()) };
            U::fiemap(inode, fi, start, len)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the VFS with a valid inode of this file system.
    #[cfg(CONFIG_FS_POSIX_ACL)]
    unsafe extern "C" fn get_inode_acl_callback(
        inode: *mut bindings::inode,
        typ: c_int,
        rcu: bool,
    ) -> *mut bindings::posix_acl {
        // SAFETY: See the safety section of this function.
        let inode = unsafe { INode::from_raw(inode) };
        let acl = posix_acl::Type::from_raw(typ).and_then(|typ| U::get_inode_acl(inode, typ, rcu));
        match acl {
            // The reference goes to the caller.
            Ok(Some(acl)) => ARef::into_raw(acl).as_ptr().cast(),
            Ok(None) => ptr::null_mut(),
            Err(e) => e.to_ptr(),
        }
    }

    /// # Safety
    ///
    /// Called by the VFS (`vfs_set_acl()`, `posix_acl_chmod()`) with a valid idmap, a valid
    /// positive dentry of this file system, and `acl` valid or null, with the inode locked.
    #[cfg(CONFIG_FS_POSIX_ACL)]
    unsafe extern "C" fn set_acl_callback(
        idmap: *mut bindings::mnt_idmap,
        dentry: *mut bindings::dentry,
        acl: *mut bindings::posix_acl,
        typ: c_int,
    ) -> c_int {
        from_result(|| {
            // SAFETY: See the safety section of this function; `PosixAcl` is a transparent
            // wrapper of `posix_acl`, and the caller holds a reference for the call.
            let (idmap, dentry, acl) = unsafe {
                (
                    MntIdmap::from_raw(idmap),
                    DEntry::from_raw(dentry),
                    acl.cast::<posix_acl::PosixAcl>().as_ref(),
                )
            };
            U::set_acl(idmap, dentry, acl, posix_acl::Type::from_raw(typ)?)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the VFS (`vfs_listxattr()`) with a valid positive dentry of this file system
    /// and `buffer` valid for writes of `size` bytes, or null with a `size` of 0.
    unsafe extern "C" fn listxattr_callback(
        dentry: *mut bindings::dentry,
        buffer: *mut c_char,
        size: usize,
    ) -> isize {
        // SAFETY: See the safety section of this function.
        let dentry = unsafe { DEntry::from_raw(dentry) };
        // SAFETY: See the safety section; nothing else accesses the buffer during the call.
        let buf = unsafe { super::xattr::out_buffer(buffer.cast(), size) };
        match U::listxattr(dentry, buf) {
            // At most `size` bytes, or the length of the names (below `XATTR_LIST_MAX`).
            Ok(n) => n as isize,
            Err(e) => e.to_errno() as isize,
        }
    }
}
