// SPDX-License-Identifier: GPL-2.0

//! A contiguous growable array with fallible allocation
//! (`rust/kernel/alloc/kvec.rs`).

use super::{allocator, flags::__GFP_ZERO, AllocError, Allocator, Flags};
use crate::error::{code::EINVAL, Error};
use core::{
    fmt,
    marker::PhantomData,
    ops::{Deref, DerefMut},
};

/// The errors of the vector operations that do not allocate.
pub mod errors {
    use super::*;

    /// Error of [`Vec::push_within_capacity`]: the element that did not fit.
    pub struct PushError<T>(pub T);

    impl<T> fmt::Debug for PushError<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "Not enough capacity")
        }
    }

    impl<T> From<PushError<T>> for Error {
        #[inline]
        fn from(_: PushError<T>) -> Error {
            EINVAL
        }
    }

    /// Error of [`Vec::remove`]: index out of bounds.
    pub struct RemoveError;

    impl fmt::Debug for RemoveError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "Index out of bounds")
        }
    }

    impl From<RemoveError> for Error {
        #[inline]
        fn from(_: RemoveError) -> Error {
            EINVAL
        }
    }
}

use errors::{PushError, RemoveError};

/// The kernel's `Vec<T, A>`: every allocating method takes [`Flags`] and fails
/// with [`AllocError`] instead of aborting.
pub struct Vec<T, A: Allocator> {
    v: std::vec::Vec<T>,
    _a: PhantomData<A>,
}

/// A [`Vec`] allocated with `kmalloc()` (at most `KMALLOC_MAX_SIZE` bytes).
pub type KVec<T> = Vec<T, allocator::Kmalloc>;
/// A [`Vec`] allocated with `vmalloc()`.
pub type VVec<T> = Vec<T, allocator::Vmalloc>;
/// A [`Vec`] allocated with `kvmalloc()`.
pub type KVVec<T> = Vec<T, allocator::KVmalloc>;

impl<T, A: Allocator> Vec<T, A> {
    /// Number of elements that can be stored without reallocating.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.v.capacity()
    }

    /// Number of elements stored.
    #[inline]
    pub fn len(&self) -> usize {
        self.v.len()
    }

    /// Whether the vector is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.v.is_empty()
    }

    /// The elements as a slice.
    #[inline]
    pub fn as_slice(&self) -> &[T] {
        &self.v
    }

    /// The elements as a mutable slice.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.v
    }

    /// A raw pointer to the buffer.
    #[inline]
    pub fn as_ptr(&self) -> *const T {
        self.v.as_ptr()
    }

    /// A raw mutable pointer to the buffer.
    #[inline]
    pub fn as_mut_ptr(&mut self) -> *mut T {
        self.v.as_mut_ptr()
    }

    /// An empty vector; allocates nothing.
    #[inline]
    pub const fn new() -> Self {
        Self {
            v: std::vec::Vec::new(),
            _a: PhantomData,
        }
    }

    /// Appends an element.
    pub fn push(&mut self, v: T, flags: Flags) -> Result<(), AllocError> {
        self.reserve(1, flags)?;
        self.v.push(v);
        Ok(())
    }

    /// Appends an element if there is room for it without reallocating.
    pub fn push_within_capacity(&mut self, v: T) -> Result<(), PushError<T>> {
        if self.len() < self.capacity() {
            self.v.push(v);
            Ok(())
        } else {
            Err(PushError(v))
        }
    }

    /// Removes the last element and returns it.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        self.v.pop()
    }

    /// Removes the element at index `i`, shifting the following ones down.
    pub fn remove(&mut self, i: usize) -> Result<T, RemoveError> {
        if i >= self.len() {
            return Err(RemoveError);
        }
        Ok(self.v.remove(i))
    }

    /// A vector with room for at least `capacity` elements.
    pub fn with_capacity(capacity: usize, flags: Flags) -> Result<Self, AllocError> {
        let mut v = Self::new();
        v.reserve(capacity, flags)?;
        Ok(v)
    }

    /// Removes every element; keeps the allocation.
    #[inline]
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// Makes room for at least `additional` more elements. Grows like the
    /// kernel's vector: to `max(2 * capacity, len + additional)` elements.
    pub fn reserve(&mut self, additional: usize, flags: Flags) -> Result<(), AllocError> {
        let _ = flags;
        let (len, cap) = (self.len(), self.capacity());
        if cap - len >= additional {
            return Ok(());
        }
        if core::mem::size_of::<T>() == 0 {
            return Err(AllocError);
        }
        let new_cap = core::cmp::max(cap * 2, len.checked_add(additional).ok_or(AllocError)?);
        let bytes = new_cap
            .checked_mul(core::mem::size_of::<T>())
            .ok_or(AllocError)?;
        if bytes > A::MAX_SIZE || bytes > isize::MAX as usize {
            return Err(AllocError);
        }
        self.v
            .try_reserve_exact(new_cap - len)
            .map_err(|_| AllocError)
    }

    /// Shortens the vector to `len` elements (no effect if it is not longer).
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        self.v.truncate(len);
    }

    /// Keeps only the elements for which `f` returns true.
    pub fn retain(&mut self, mut f: impl FnMut(&mut T) -> bool) {
        self.v.retain_mut(|x| f(x));
    }
}

impl<T: Clone, A: Allocator> Vec<T, A> {
    /// Appends `n` clones of `value`.
    pub fn extend_with(&mut self, n: usize, value: T, flags: Flags) -> Result<(), AllocError> {
        if n == 0 {
            return Ok(());
        }
        self.reserve(n, flags)?;
        let len = self.len();
        self.v.resize(len + n, value);
        Ok(())
    }

    /// Appends clones of the elements of `other`.
    pub fn extend_from_slice(&mut self, other: &[T], flags: Flags) -> Result<(), AllocError> {
        self.reserve(other.len(), flags)?;
        self.v.extend_from_slice(other);
        Ok(())
    }

    /// A vector of `n` clones of `value`.
    pub fn from_elem(value: T, n: usize, flags: Flags) -> Result<Self, AllocError> {
        let mut v = Self::with_capacity(n, flags)?;
        v.extend_with(n, value, flags)?;
        Ok(v)
    }

    /// Resizes to `new_len` elements, appending clones of `value` or truncating.
    pub fn resize(&mut self, new_len: usize, value: T, flags: Flags) -> Result<(), AllocError> {
        match new_len.checked_sub(self.len()) {
            Some(n) => self.extend_with(n, value, flags),
            None => {
                self.truncate(new_len);
                Ok(())
            }
        }
    }
}

impl<T: Default + Clone, A: Allocator> Vec<T, A> {
    /// A vector of `n` zeroed elements (the kernel's requires `T: Zeroable`;
    /// here the default value stands for zero).
    pub fn zeroed(n: usize, flags: Flags) -> Result<Self, AllocError> {
        Self::from_elem(T::default(), n, flags | __GFP_ZERO)
    }
}

impl<T, A: Allocator> Default for Vec<T, A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: fmt::Debug, A: Allocator> fmt::Debug for Vec<T, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T, A: Allocator> Deref for Vec<T, A> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        &self.v
    }
}

impl<T, A: Allocator> DerefMut for Vec<T, A> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.v
    }
}

impl<T, A: Allocator> core::borrow::Borrow<[T]> for Vec<T, A> {
    fn borrow(&self) -> &[T] {
        self
    }
}

impl<T, A: Allocator> core::borrow::BorrowMut<[T]> for Vec<T, A> {
    fn borrow_mut(&mut self) -> &mut [T] {
        self
    }
}

impl<T: Eq, A: Allocator> Eq for Vec<T, A> {}

impl<T, I: core::slice::SliceIndex<[T]>, A: Allocator> core::ops::Index<I> for Vec<T, A> {
    type Output = I::Output;
    #[inline]
    fn index(&self, index: I) -> &Self::Output {
        core::ops::Index::index(&**self, index)
    }
}

impl<T, I: core::slice::SliceIndex<[T]>, A: Allocator> core::ops::IndexMut<I> for Vec<T, A> {
    #[inline]
    fn index_mut(&mut self, index: I) -> &mut Self::Output {
        core::ops::IndexMut::index_mut(&mut **self, index)
    }
}

macro_rules! impl_slice_eq {
    ($([$($vars:tt)*] $lhs:ty, $rhs:ty,)*) => {
        $(
            impl<T, U, $($vars)*> PartialEq<$rhs> for $lhs
            where
                T: PartialEq<U>,
            {
                #[inline]
                fn eq(&self, other: &$rhs) -> bool { self[..] == other[..] }
            }
        )*
    }
}

impl_slice_eq! {
    [A1: Allocator, A2: Allocator] Vec<T, A1>, Vec<U, A2>,
    [A: Allocator] Vec<T, A>, &[U],
    [A: Allocator] Vec<T, A>, &mut [U],
    [A: Allocator] &[T], Vec<U, A>,
    [A: Allocator] &mut [T], Vec<U, A>,
    [A: Allocator] Vec<T, A>, [U],
    [A: Allocator] [T], Vec<U, A>,
    [A: Allocator, const N: usize] Vec<T, A>, [U; N],
    [A: Allocator, const N: usize] Vec<T, A>, &[U; N],
}

impl<'a, T, A: Allocator> IntoIterator for &'a Vec<T, A> {
    type Item = &'a T;
    type IntoIter = core::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, T, A: Allocator> IntoIterator for &'a mut Vec<T, A> {
    type Item = &'a mut T;
    type IntoIter = core::slice::IterMut<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

/// An iterator that moves out of a [`Vec`].
pub struct IntoIter<T, A: Allocator> {
    it: std::vec::IntoIter<T>,
    _a: PhantomData<A>,
}

impl<T, A: Allocator> IntoIter<T, A> {
    /// The remaining elements, as a vector.
    pub fn collect(self, flags: Flags) -> Vec<T, A> {
        let _ = flags;
        Vec {
            v: self.it.collect(),
            _a: PhantomData,
        }
    }
}

impl<T, A: Allocator> Iterator for IntoIter<T, A> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.it.next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.it.size_hint()
    }
}

impl<T, A: Allocator> IntoIterator for Vec<T, A> {
    type Item = T;
    type IntoIter = IntoIter<T, A>;
    fn into_iter(self) -> Self::IntoIter {
        IntoIter {
            it: self.v.into_iter(),
            _a: PhantomData,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;

    #[test]
    fn grows_like_the_kernel() {
        let mut v: KVec<u32> = KVec::new();
        assert_eq!(v.capacity(), 0);
        v.push(1, GFP_KERNEL).unwrap();
        assert_eq!(v.capacity(), 1);
        v.push(2, GFP_KERNEL).unwrap();
        assert_eq!(v.capacity(), 2);
        v.push(3, GFP_KERNEL).unwrap();
        assert_eq!(v.capacity(), 4);
        v.reserve(10, GFP_KERNEL).unwrap();
        assert_eq!(v.capacity(), 13);
        v.extend_from_slice(&[4, 5], GFP_KERNEL).unwrap();
        assert_eq!(v, [1, 2, 3, 4, 5]);
        v.resize(7, 9, GFP_KERNEL).unwrap();
        assert_eq!(&v[5..], &[9, 9]);
        v.truncate(2);
        assert_eq!(v.pop(), Some(2));
        v.clear();
        assert!(v.is_empty());
        let w: VVec<u8> = VVec::with_capacity(5, GFP_KERNEL).unwrap();
        assert_eq!(w.capacity(), 5);
    }

    #[test]
    fn kmalloc_limit() {
        let mut k: KVec<u8> = KVec::new();
        assert!(k
            .reserve(crate::alloc::KMALLOC_MAX_SIZE, GFP_KERNEL)
            .is_ok());
        assert_eq!(
            k.reserve(crate::alloc::KMALLOC_MAX_SIZE + 1, GFP_KERNEL),
            Err(crate::alloc::AllocError)
        );
        let mut v: VVec<u8> = VVec::new();
        assert!(v
            .reserve(crate::alloc::KMALLOC_MAX_SIZE + 1, GFP_KERNEL)
            .is_ok());
        let e: Result<KVVec<u64>> =
            KVVec::with_capacity(usize::MAX / 4, GFP_KERNEL).map_err(Error::from);
        assert_eq!(e.err(), Some(ENOMEM));
        assert!(KBox::new([0u8; 16], GFP_KERNEL).is_ok());
    }

    #[test]
    fn within_capacity() {
        let mut v: KVec<u32> = KVec::with_capacity(1, GFP_KERNEL).unwrap();
        assert!(v.push_within_capacity(1).is_ok());
        let e = v.push_within_capacity(2).unwrap_err();
        assert_eq!(Error::from(e), EINVAL);
        assert_eq!(v.remove(0).unwrap(), 1);
        assert!(v.remove(0).is_err());
        let mut it = KVec::<u8>::from_elem(3, 2, GFP_KERNEL).unwrap().into_iter();
        assert_eq!(it.next(), Some(3));
        assert_eq!(it.collect(GFP_KERNEL), [3]);
    }
}
