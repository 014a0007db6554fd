// SPDX-License-Identifier: GPL-2.0

//! An owned heap allocation (`rust/kernel/alloc/kbox.rs`), allocated fallibly.

use super::{allocator, AllocError, Allocator, Flags};
use core::{
    fmt,
    marker::PhantomData,
    ops::{Deref, DerefMut},
};

/// A pointer to a heap allocation of `T` made with allocator `A`.
pub struct Box<T: ?Sized, A: Allocator>(std::boxed::Box<T>, PhantomData<A>);

/// A [`Box`] allocated with `kmalloc()`.
pub type KBox<T> = Box<T, allocator::Kmalloc>;
/// A [`Box`] allocated with `vmalloc()`.
pub type VBox<T> = Box<T, allocator::Vmalloc>;
/// A [`Box`] allocated with `kvmalloc()`.
pub type KVBox<T> = Box<T, allocator::KVmalloc>;

impl<T, A: Allocator> Box<T, A> {
    /// Allocates memory with `A` and moves `x` into it.
    pub fn new(x: T, _flags: Flags) -> Result<Self, AllocError> {
        if core::mem::size_of::<T>() > A::MAX_SIZE {
            return Err(AllocError);
        }
        Ok(Self(std::boxed::Box::new(x), PhantomData))
    }

    /// Moves the value out of the box.
    pub fn into_inner(b: Self) -> T {
        *b.0
    }
}

impl<T: ?Sized, A: Allocator> Deref for Box<T, A> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: ?Sized, A: Allocator> DerefMut for Box<T, A> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: ?Sized + fmt::Debug, A: Allocator> fmt::Debug for Box<T, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
