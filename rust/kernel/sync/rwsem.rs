// SPDX-License-Identifier: GPL-2.0

//! A kernel read-write semaphore.
//!
//! This module allows Rust code to use the kernel's `struct rw_semaphore`: any number of readers
//! or one writer hold it at a time, and waiters sleep.
//!
//! C header: [`include/linux/rwsem.h`](srctree/include/linux/rwsem.h)

use crate::{
    bindings,
    prelude::*,
    str::CStr,
    sync::LockClassKey,
    types::{
        NotThreadSafe,
        Opaque, //
    },
};
use core::{
    cell::UnsafeCell,
    marker::PhantomPinned,
    ops::{
        Deref,
        DerefMut, //
    },
};

/// Creates a [`RwSemaphore`] initialiser with the given name and a newly-created lock class.
///
/// It uses the name if one is given, otherwise it generates one based on the file name and line
/// number.
#[macro_export]
macro_rules! new_rwsem {
    ($inner:expr $(, $name:literal)? $(,)?) => {
        $crate::sync::rwsem::RwSemaphore::new(
            $inner, $crate::optional_name!($($name)?), $crate::static_lock_class!())
    };
}
pub use new_rwsem;

/// A read-write semaphore protecting data of type `T`.
///
/// Exposes the kernel's [`struct rw_semaphore`]: [`RwSemaphore::read`] gives shared access to
/// the data and may be held by several tasks at once; [`RwSemaphore::write`] gives exclusive,
/// mutable access. Both may sleep.
///
/// Instances need a lock class and to be pinned: create them with [`new_rwsem`] in a
/// [`pin_init`](pin_init::pin_init) initialiser.
///
/// # Examples
///
/// ```
/// use kernel::sync::rwsem::{new_rwsem, RwSemaphore};
///
/// let sem = KBox::pin_init(new_rwsem!(10u32), GFP_KERNEL)?;
/// assert_eq!(*sem.read(), 10);
/// *sem.write() += 1;
/// assert_eq!(*sem.read(), 11);
/// {
///     let r = sem.read();
///     assert!(sem.try_write().is_none());
///     assert_eq!(*r, 11);
/// }
/// *sem.try_write().ok_or(EBUSY)? += 1;
/// assert_eq!(*sem.read(), 12);
/// # Ok::<(), Error>(())
/// ```
///
/// # Invariants
///
/// `sem` is an initialised `struct rw_semaphore` for the whole life of the object.
///
/// [`struct rw_semaphore`]: srctree/include/linux/rwsem.h
#[pin_data]
pub struct RwSemaphore<T: ?Sized> {
    #[pin]
    sem: Opaque<bindings::rw_semaphore>,
    #[pin]
    _pin: PhantomPinned,
    data: UnsafeCell<T>,
}

// SAFETY: `RwSemaphore` can be transferred across thread boundaries iff the data it protects can.
unsafe impl<T: ?Sized + Send> Send for RwSemaphore<T> {}

// SAFETY: Readers share `&T` across threads, so `T` must be `Sync`; a writer gets `&mut T` on
// any thread, so `T` must be `Send`. The semaphore serialises writers against everyone else.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwSemaphore<T> {}

impl<T> RwSemaphore<T> {
    /// Constructs a new read-write semaphore initialiser.
    pub fn new(t: T, name: &'static CStr, key: Pin<&'static LockClassKey>) -> impl PinInit<Self> {
        pin_init!(Self {
            data: UnsafeCell::new(t),
            _pin: PhantomPinned,
            // SAFETY: `slot` is valid while the closure is called, and both `name` and `key`
            // have static lifetimes so they live as long as the semaphore.
            sem <- Opaque::ffi_init(|slot| unsafe {
                bindings::__init_rwsem(slot, name.as_char_ptr(), key.as_ptr())
            }),
        })
    }
}

impl<T: ?Sized> RwSemaphore<T> {
    /// Acquires the semaphore for reading, sleeping until no writer holds it.
    #[inline]
    pub fn read(&self) -> ReadGuard<'_, T> {
        // SAFETY: `sem` is initialised (type invariant).
        unsafe { bindings::down_read(self.sem.get()) };
        // INVARIANT: The semaphore was just acquired for reading.
        ReadGuard {
            sem: self,
            _not_send: NotThreadSafe,
        }
    }

    /// Acquires the semaphore for writing, sleeping until no one else holds it.
    #[inline]
    pub fn write(&self) -> WriteGuard<'_, T> {
        // SAFETY: `sem` is initialised (type invariant).
        unsafe { bindings::down_write(self.sem.get()) };
        // INVARIANT: The semaphore was just acquired for writing.
        WriteGuard {
            sem: self,
            _not_send: NotThreadSafe,
        }
    }

    /// Tries to acquire the semaphore for writing without sleeping (`down_write_trylock()`).
    ///
    /// Returns `None` if anyone else holds it, the current task included. For paths that must
    /// not wait for a holder, such as a shrinker, whose holder may be allocating memory.
    #[inline]
    pub fn try_write(&self) -> Option<WriteGuard<'_, T>> {
        // SAFETY: `sem` is initialised (type invariant).
        if unsafe { bindings::down_write_trylock(self.sem.get()) } == 0 {
            return None;
        }
        // INVARIANT: The semaphore was just acquired for writing.
        Some(WriteGuard {
            sem: self,
            _not_send: NotThreadSafe,
        })
    }
}

/// Shared access to the data of a [`RwSemaphore`], released when dropped.
///
/// # Invariants
///
/// `sem` is held for reading by the current task for the life of the guard.
#[must_use = "the semaphore is released when the guard is dropped"]
pub struct ReadGuard<'a, T: ?Sized> {
    sem: &'a RwSemaphore<T>,
    _not_send: NotThreadSafe,
}

impl<T: ?Sized> Deref for ReadGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: The semaphore is held for reading (type invariant), so no one has mutable
        // access to the data.
        unsafe { &*self.sem.data.get() }
    }
}

impl<T: ?Sized> Drop for ReadGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: The semaphore is held for reading by this task (type invariant).
        unsafe { bindings::up_read(self.sem.sem.get()) };
    }
}

/// Exclusive access to the data of a [`RwSemaphore`], released when dropped.
///
/// # Invariants
///
/// `sem` is held for writing by the current task for the life of the guard.
#[must_use = "the semaphore is released when the guard is dropped"]
pub struct WriteGuard<'a, T: ?Sized> {
    sem: &'a RwSemaphore<T>,
    _not_send: NotThreadSafe,
}

impl<T: ?Sized> Deref for WriteGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: The semaphore is held for writing (type invariant): access is exclusive.
        unsafe { &*self.sem.data.get() }
    }
}

impl<T: ?Sized> DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: The semaphore is held for writing (type invariant): access is exclusive.
        unsafe { &mut *self.sem.data.get() }
    }
}

impl<T: ?Sized> Drop for WriteGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: The semaphore is held for writing by this task (type invariant).
        unsafe { bindings::up_write(self.sem.sem.get()) };
    }
}
