// SPDX-License-Identifier: GPL-2.0

//! File system types and their registration.
//!
//! A file system implements [`FileSystem`] and is registered with the VFS by a [`Registration`],
//! usually through the [`module_fs!`](crate::module_fs) macro.
//!
//! C headers: [`include/linux/fs.h`](srctree/include/linux/fs.h) and
//! [`include/linux/fs_context.h`](srctree/include/linux/fs_context.h).

use crate::{
    bindings,
    error::to_result,
    prelude::*,
    types::Opaque, //
};
use core::marker::PhantomData;

/// How the super blocks of a file system type find their backing store.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SuperType {
    /// Each super block is backed by a block device, named by the mount source.
    BlockDev,

    /// Super blocks have no backing device; every mount creates a new one.
    Independent,
}

/// A file system type.
///
/// Implementers describe the file system to the VFS; the kernel calls back into them when a
/// super block of this type is created and destroyed.
pub trait FileSystem: Sized + Send + Sync + 'static {
    /// The name of the file system type, as shown in `/proc/filesystems` and used by `mount -t`.
    const NAME: &'static CStr;

    /// The backing store of super blocks of this type.
    const SUPER_TYPE: SuperType;
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
                    SuperType::BlockDev => bindings::FS_REQUIRES_DEV as i32,
                    SuperType::Independent => 0,
                };
                fs.init_fs_context = Some(Self::init_fs_context_callback);
                fs.kill_sb = Some(Self::kill_sb_callback);

                // SAFETY: `fs_ptr` points to a fully initialised `file_system_type` that is
                // pinned (it is inside `Opaque` in a pinned `Registration`) and stays valid until
                // `unregister_filesystem()` in `drop`.
                to_result(unsafe { bindings::register_filesystem(fs_ptr) })
            }),
            _p: PhantomData,
        })
    }

    /// # Safety
    ///
    /// Called by the VFS with a valid `fs_context` for this file system type.
    unsafe extern "C" fn init_fs_context_callback(_fc: *mut bindings::fs_context) -> c_int {
        EOPNOTSUPP.to_errno()
    }

    /// # Safety
    ///
    /// Called by the VFS with a valid super block of this file system type that is being
    /// destroyed.
    unsafe extern "C" fn kill_sb_callback(sb_ptr: *mut bindings::super_block) {
        match T::SUPER_TYPE {
            // SAFETY: The C side calls `kill_sb` with a valid super block of this type, which
            // was created by `get_tree_bdev()` for block-device file systems.
            SuperType::BlockDev => unsafe { bindings::kill_block_super(sb_ptr) },
            // SAFETY: As above; independent super blocks are created by `get_tree_nodev()`.
            SuperType::Independent => unsafe { bindings::kill_anon_super(sb_ptr) },
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
/// use kernel::{c_str, fs};
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
/// impl fs::FileSystem for MyFs {
///     const NAME: &'static CStr = c_str!("myfs");
///     const SUPER_TYPE: fs::SuperType = fs::SuperType::Independent;
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
