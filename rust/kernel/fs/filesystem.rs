// SPDX-License-Identifier: GPL-2.0

//! File system types and their registration.
//!
//! A file system implements [`FileSystem`] and is registered with the VFS by a [`Registration`],
//! usually through the [`module_fs!`](crate::module_fs) macro. Mounting goes through the
//! `fs_context` API: mount options are parsed into [`FileSystem::Options`], then
//! [`FileSystem::fill_super`] sets up a new super block and [`FileSystem::init_root`] returns its
//! root directory.
//!
//! C headers: [`include/linux/fs.h`](srctree/include/linux/fs.h) and
//! [`include/linux/fs_context.h`](srctree/include/linux/fs_context.h).

use super::{
    dentry::Root,
    inode::INode,
    param,
    sb::{
        self,
        Kstatfs,
        SuperBlock, //
    },
};
use crate::{
    bindings,
    error::{
        from_result,
        to_result, //
    },
    prelude::*,
    seq_file::SeqFile,
    types::{
        ForeignOwnable,
        Opaque, //
    },
};
use core::{
    marker::PhantomData,
    ptr, //
};

/// How the super blocks of a file system type find their backing store.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SuperType {
    /// Each super block is backed by a block device, named by the mount source
    /// (`get_tree_bdev()`). Other kinds (`get_tree_nodev()` for in-memory file systems, ...)
    /// are to come with their first user.
    BlockDev,
}

/// A file system type.
///
/// Callbacks run in process context and may sleep. The VFS serialises them as documented on each
/// method; the implementer protects its own state (allocators, caches) with its own locks.
#[vtable]
pub trait FileSystem: Sized + Send + Sync + 'static {
    /// Data attached to each super block (`s_fs_info`), created by [`FileSystem::fill_super`]
    /// and dropped after the super block has been shut down.
    type Data: ForeignOwnable + Send + Sync;

    /// Data embedded in each in-memory inode of this file system, set when the inode is
    /// initialised (see [`crate::fs::inode::New::init`]) and dropped when the inode is freed.
    type INodeData: Send + Sync;

    /// The mount options, parsed from the mount parameters before the super block is filled.
    type Options: Default + Send;

    /// The name of the file system type, as shown in `/proc/filesystems` and used by `mount -t`.
    const NAME: &'static CStr;

    /// The backing store of super blocks of this type.
    const SUPER_TYPE: SuperType;

    /// The mount parameters this file system accepts.
    const PARAMS: param::SpecTable<'static> = param::SpecTable::empty();

    /// Parses one mount parameter into `options`.
    ///
    /// `opt` is the value of [`param::Spec`] of the matched entry of [`FileSystem::PARAMS`].
    fn parse_param(_options: &mut Self::Options, _opt: u32, _value: param::Value<'_>) -> Result {
        Err(ENOPARAM)
    }

    /// Sets up a new super block: validates the backing store, sets the super block parameters
    /// and returns the per-super-block data.
    fn fill_super(sb: &mut SuperBlock<Self, sb::New>, options: Self::Options)
        -> Result<Self::Data>;

    /// Returns the root directory of a super block that [`FileSystem::fill_super`] set up.
    fn init_root(sb: &SuperBlock<Self>) -> Result<Root<Self>>;

    /// Returns file system statistics (`statfs(2)`).
    fn statfs(_sb: &SuperBlock<Self>) -> Result<Kstatfs> {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Changes the mount of `sb` (`mount -o remount`, `fsconfig(FSCONFIG_CMD_RECONFIGURE)`),
    /// after the VFS synced it: `options` holds the parameters given, parsed by
    /// [`FileSystem::parse_param`] into a default [`FileSystem::Options`], and `rdonly` says
    /// whether the super block is read-only afterwards. The VFS changes `SB_RDONLY` once this
    /// returns success, so [`SuperBlock::rdonly`] still tells the state before; for a change
    /// to read-only it has already made sure that no file is open for writing. Without this
    /// method, a remount only syncs the file system and changes the flags.
    ///
    /// Called with `s_umount` held exclusively.
    fn reconfigure(_sb: &SuperBlock<Self>, _options: Self::Options, _rdonly: bool) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Shows the file system's mount options in `/proc/mounts` and `/proc/self/mountinfo`:
    /// writes those that are not the defaults, and any other worth showing, to `m` as `,name`
    /// or `,name=value` with [`seq_print!`](crate::seq_print), so that `mount(8)` can mount
    /// again with them.
    fn show_options(_sb: &SuperBlock<Self>, _m: &SeqFile) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Writes the in-memory state of `inode` to the backing store. With `sync`, the write must
    /// have completed when this returns (`WB_SYNC_ALL`).
    fn write_inode(_inode: &INode<Self>, _sync: bool) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Called when the last reference to `inode` is dropped and it leaves the inode cache, after
    /// its page cache was truncated. If the inode has no links left, this is where its storage is
    /// released.
    fn evict_inode(_inode: &INode<Self>) {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Writes out all dirty file system metadata; waits for it if `wait` is true.
    fn sync_fs(_sb: &SuperBlock<Self>, _wait: bool) -> Result {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Called at unmount, after all inodes were evicted and before the backing device is
    /// released: the last chance to write to it.
    fn put_super(_sb: &SuperBlock<Self>) {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Shuts the file system down because its block device is going away (it was removed, or
    /// its driver found it dead: `fs_bdev_mark_dead()`). From now on the file system must not
    /// write to the device, and operations that would should fail with `EIO`.
    ///
    /// Called with `s_umount` held shared, on a mounted super block, after the VFS synced it
    /// (unless the removal was a surprise) and evicted its unused inodes. Without this method
    /// the file system carries on against a device that fails every request.
    fn shutdown(_sb: &SuperBlock<Self>) {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Returns how many objects of the file system's own caches the super block's shrinker
    /// may ask [`FileSystem::free_cached_objects`] to free, in units of the file system's
    /// choice (the shrinker scans them in proportion to the super block's dentries and
    /// inodes).
    ///
    /// Called under memory pressure, from any task that allocates memory, without locks:
    /// concurrently with any other operation, while the super block is mounted. It should
    /// only read counters. A file system implements both methods or neither.
    fn nr_cached_objects(_sb: &SuperBlock<Self>, _sc: &sb::ShrinkControl) -> usize {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }

    /// Frees about [`sb::ShrinkControl::nr_to_scan`] objects of the caches that
    /// [`FileSystem::nr_cached_objects`] counts, and returns how many it freed.
    ///
    /// Called with `s_umount` held shared, only from allocations that may enter the file
    /// system (`__GFP_FS`), but possibly by a task that holds any of this file system's locks
    /// while it allocates: it must only try-lock them, and skip what it cannot lock.
    fn free_cached_objects(_sb: &SuperBlock<Self>, _sc: &sb::ShrinkControl) -> usize {
        build_error!(crate::error::VTABLE_DEFAULT_ERROR)
    }
}

/// A registration of a file system type.
///
/// The registration must live in static storage (the lock class keys embedded in the C
/// `file_system_type` must be static objects), which is what [`module_fs!`](crate::module_fs)
/// provides.
///
/// # Invariants
///
/// `fs` is a `struct file_system_type` registered with `register_filesystem()`; it is
/// unregistered exactly once, when the [`Registration`] is dropped.
#[pin_data(PinnedDrop)]
pub struct Registration<T: FileSystem> {
    #[pin]
    fs: Opaque<bindings::file_system_type>,
    _p: PhantomData<T>,
}

// SAFETY: `Registration` has no `&self` methods; `unregister_filesystem()` may be called from any
// thread.
unsafe impl<T: FileSystem> Send for Registration<T> {}

// SAFETY: `Registration` has no `&self` methods, so sharing references to it is harmless.
unsafe impl<T: FileSystem> Sync for Registration<T> {}

impl<T: FileSystem> Registration<T> {
    /// Creates a registration of the file system type `T`, owned by `module`.
    pub fn new(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            fs <- Opaque::try_ffi_init(|fs_ptr: *mut bindings::file_system_type| {
                // SAFETY: `try_ffi_init` hands us a valid pointer to uninitialised memory for a
                // `file_system_type`, which can be initialised with zeroes.
                unsafe { fs_ptr.write(pin_init::zeroed()) };

                // SAFETY: `fs_ptr` is valid and was initialised above; nothing else refers to it
                // until it is registered below.
                let fs = unsafe { &mut *fs_ptr };
                fs.owner = module.as_ptr();
                fs.name = T::NAME.as_char_ptr();
                fs.fs_flags = match T::SUPER_TYPE {
                    SuperType::BlockDev => bindings::FS_REQUIRES_DEV as c_int,
                };
                fs.init_fs_context = Some(Self::init_fs_context_callback);
                fs.kill_sb = Some(Self::kill_sb_callback);
                fs.parameters = T::PARAMS.as_ptr();

                // SAFETY: `fs_ptr` points to a fully initialised `file_system_type` that is
                // pinned (it is inside `Opaque` in a pinned `Registration`) and stays valid until
                // `unregister_filesystem()` in `drop`.
                to_result(unsafe { bindings::register_filesystem(fs_ptr) })
            }),
            _p: PhantomData,
        })
    }

    const CONTEXT_OPS: bindings::fs_context_operations = bindings::fs_context_operations {
        free: Some(Self::free_callback),
        dup: None,
        parse_param: Some(Self::parse_param_callback),
        parse_monolithic: None,
        get_tree: Some(Self::get_tree_callback),
        reconfigure: Some(Self::reconfigure_callback),
    };

    /// # Safety
    ///
    /// Called by the VFS with a valid `fs_context` for this file system type.
    unsafe extern "C" fn init_fs_context_callback(fc: *mut bindings::fs_context) -> c_int {
        from_result(|| {
            let options = KBox::new(T::Options::default(), GFP_KERNEL)?;
            // SAFETY: `fc` is valid (function safety requirement) and not yet shared.
            unsafe {
                (*fc).fs_private = options.into_foreign().cast();
                (*fc).ops = &Self::CONTEXT_OPS;
            }
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the VFS with a valid `fs_context` whose `ops` were set by
    /// [`Self::init_fs_context_callback`].
    unsafe extern "C" fn free_callback(fc: *mut bindings::fs_context) {
        // SAFETY: `fc` is valid (function safety requirement).
        let private = unsafe { (*fc).fs_private };
        if !private.is_null() {
            // SAFETY: `fs_private` was set by `init_fs_context_callback` from
            // `KBox<T::Options>::into_foreign` and is released only here.
            drop(unsafe { KBox::<T::Options>::from_foreign(private.cast()) });
        }
    }

    /// # Safety
    ///
    /// Called by the VFS with a valid `fs_context` of this type and a valid parameter.
    unsafe extern "C" fn parse_param_callback(
        fc: *mut bindings::fs_context,
        param: *mut bindings::fs_parameter,
    ) -> c_int {
        from_result(|| {
            let mut result = pin_init::zeroed::<bindings::fs_parse_result>();
            // SAFETY: `fc` and `param` are valid; `T::PARAMS` is a terminated table.
            let opt = unsafe {
                bindings::__fs_parse(
                    ptr::addr_of_mut!((*fc).log),
                    T::PARAMS.as_ptr(),
                    param,
                    &mut result,
                )
            };
            if opt < 0 {
                return Err(Error::from_errno(opt));
            }
            // SAFETY: `param` is valid for the duration of this callback, and `__fs_parse()`
            // matched it against `T::PARAMS`.
            let value = unsafe { param::Value::from_raw(&*param) };
            // SAFETY: `fs_private` was set by `init_fs_context_callback` and the VFS serialises
            // calls on one context, so this is the only reference.
            let options = unsafe { &mut *(*fc).fs_private.cast::<T::Options>() };
            T::parse_param(options, opt as u32, value)?;
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the VFS with a valid `fs_context` of this type.
    unsafe extern "C" fn get_tree_callback(fc: *mut bindings::fs_context) -> c_int {
        match T::SUPER_TYPE {
            // SAFETY: `fc` is valid and `fill_super_callback` has the right signature.
            #[cfg(CONFIG_BLOCK)]
            SuperType::BlockDev => unsafe {
                bindings::get_tree_bdev(fc, Some(Self::fill_super_callback))
            },
            #[cfg(not(CONFIG_BLOCK))]
            SuperType::BlockDev => EOPNOTSUPP.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the VFS with a valid `fs_context` of this type.
    unsafe extern "C" fn reconfigure_callback(fc: *mut bindings::fs_context) -> c_int {
        from_result(|| {
            // SAFETY: `fc` and its root are valid during reconfiguration.
            let sb_ptr = unsafe { (*(*fc).root).d_sb };
            // SAFETY: The super block is valid and mounted, with `s_umount` held.
            to_result(unsafe { bindings::sync_filesystem(sb_ptr) })?;
            if T::HAS_RECONFIGURE {
                // SAFETY: The super block of a mounted file system of type `T` is `Ready`.
                let sb = unsafe { SuperBlock::<T>::from_raw(sb_ptr) };
                // SAFETY: `fc` is valid; `fs_private` was set by `init_fs_context_callback`, and
                // the context is not used concurrently.
                let (options, mask, flags) = unsafe {
                    (
                        core::mem::take(&mut *(*fc).fs_private.cast::<T::Options>()),
                        (*fc).sb_flags_mask,
                        (*fc).sb_flags,
                    )
                };
                let ro = sb::SB_RDONLY as c_uint;
                let rdonly = if mask & ro != 0 {
                    flags & ro != 0
                } else {
                    sb.rdonly()
                };
                T::reconfigure(sb, options, rdonly)?;
            }
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by `get_tree_bdev()` with a new, locked super block and the
    /// context it is created from.
    unsafe extern "C" fn fill_super_callback(
        sb_ptr: *mut bindings::super_block,
        fc: *mut bindings::fs_context,
    ) -> c_int {
        from_result(|| {
            // SAFETY: `fs_private` was set by `init_fs_context_callback`; the context is not
            // used concurrently while the tree is being created.
            let options = core::mem::take(unsafe { &mut *(*fc).fs_private.cast::<T::Options>() });

            // SAFETY: The super block is valid, new and exclusively ours until this returns.
            let new_sb = unsafe { SuperBlock::<T, sb::New>::from_raw_mut(sb_ptr) };
            new_sb.init_ops();
            let data = T::fill_super(new_sb, options)?;

            // SAFETY: `s_fs_info` is ours; `kill_sb_callback` releases it.
            unsafe { (*sb_ptr).s_fs_info = data.into_foreign().cast() };

            // SAFETY: The super block is now fully set up, `s_fs_info` included.
            let sb = unsafe { SuperBlock::<T>::from_raw(sb_ptr) };
            let root = T::init_root(sb)?;
            // SAFETY: The super block is exclusively ours during `fill_super`.
            unsafe { (*sb_ptr).s_root = root.into_raw() };
            Ok(0)
        })
    }

    /// # Safety
    ///
    /// Called by the VFS with a valid super block of this file system type that is being
    /// destroyed.
    unsafe extern "C" fn kill_sb_callback(sb_ptr: *mut bindings::super_block) {
        match T::SUPER_TYPE {
            // SAFETY: The super block was created by `get_tree_bdev()`.
            #[cfg(CONFIG_BLOCK)]
            SuperType::BlockDev => unsafe { bindings::kill_block_super(sb_ptr) },
            // Without block support, no block-device super block can be created.
            #[cfg(not(CONFIG_BLOCK))]
            SuperType::BlockDev => (),
        }

        // SAFETY: The super block is still valid (its memory is freed later by the VFS), and no
        // other callback can run on it anymore.
        let data = unsafe { (*sb_ptr).s_fs_info };
        if !data.is_null() {
            // SAFETY: `s_fs_info` was set by `fill_super_callback` from `T::Data::into_foreign`
            // and is released only here.
            drop(unsafe { T::Data::from_foreign(data.cast()) });
        }
    }
}

#[pinned_drop]
impl<T: FileSystem> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariant, `self.fs` was registered by `register_filesystem()`
        // and has not been unregistered yet.
        unsafe { bindings::unregister_filesystem(self.fs.get()) };
    }
}

/// Declares a kernel module that exposes a single file system type.
///
/// The `type` argument must implement [`FileSystem`].
///
/// # Examples
///
/// ```ignore
/// use kernel::prelude::*;
/// use kernel::fs;
///
/// kernel::module_fs! {
///     type: MyFs,
///     name: "myfs",
///     authors: ["Rust for Linux Contributors"],
///     description: "My Rust fs",
///     license: "GPL",
/// }
///
/// struct MyFs;
///
/// #[vtable]
/// impl fs::FileSystem for MyFs {
///     // ...
/// }
/// ```
#[macro_export]
macro_rules! module_fs {
    (type: $type:ty, $($f:tt)*) => {
        #[$crate::prelude::pin_data]
        struct FsModule {
            #[pin]
            _fs: $crate::fs::Registration<$type>,
        }

        impl $crate::InPlaceModule for FsModule {
            fn init(
                module: &'static $crate::ThisModule,
            ) -> impl ::pin_init::PinInit<Self, $crate::error::Error> {
                $crate::try_pin_init!(Self {
                    _fs <- $crate::fs::Registration::new(module),
                })
            }
        }

        $crate::prelude::module! {
            type: FsModule,
            $($f)*
        }
    }
}
