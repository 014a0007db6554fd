// SPDX-License-Identifier: GPL-2.0

//! Memory allocation (`rust/kernel/alloc.rs`): fallible, with [`Flags`].
//!
//! Memory comes from the user-space global allocator whatever the
//! [`Allocator`]; the allocator types only select the kernel's limits:
//! [`allocator::Kmalloc`] refuses more than [`KMALLOC_MAX_SIZE`] bytes, as
//! `kmalloc()` does, the vmalloc-backed ones do not.

pub mod kbox;
pub mod kvec;

/// The global allocator of every program built on the shim: the system allocator, with the
/// alignment the kernel's allocators give. `vmalloc()` memory starts on a page, and large
/// `kmalloc()` blocks come from the page allocator; glibc's `malloc()` instead returns 16-byte
/// aligned blocks (a large one starts 16 bytes into its `mmap()`). The engine lays out its
/// arrays in whole cache lines (a node's compact copy is one 128-byte block, say): with
/// `malloc()`'s alignment such a block would straddle three lines instead of two, and the
/// user-space figures would depend on where an allocation happened to land.
struct KernelAligned;

impl KernelAligned {
    /// The layout `l` with the kernel's alignment: a page from 4096 bytes on, a cache line
    /// from 64 bytes on.
    fn layout(l: core::alloc::Layout) -> core::alloc::Layout {
        let align = match l.size() {
            4096.. => 4096,
            64.. => 64,
            _ => 1,
        };
        core::alloc::Layout::from_size_align(l.size(), l.align().max(align)).unwrap_or(l)
    }
}

// SAFETY: Every block comes from `System` with a layout at least as aligned as asked, and
// goes back to it with the same layout (`layout()` is a function of the size and alignment
// the caller gives both times); `realloc` is the trait's default (alloc, copy, dealloc).
unsafe impl std::alloc::GlobalAlloc for KernelAligned {
    unsafe fn alloc(&self, l: core::alloc::Layout) -> *mut u8 {
        // SAFETY: `layout()` keeps the size (non-zero, the caller's promise) and only raises
        // the alignment to a power of two.
        unsafe { std::alloc::System.alloc(Self::layout(l)) }
    }

    unsafe fn alloc_zeroed(&self, l: core::alloc::Layout) -> *mut u8 {
        // SAFETY: As for `alloc`.
        unsafe { std::alloc::System.alloc_zeroed(Self::layout(l)) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: core::alloc::Layout) {
        // SAFETY: `p` was allocated by `alloc`/`alloc_zeroed` with `Self::layout(l)`.
        unsafe { std::alloc::System.dealloc(p, Self::layout(l)) }
    }
}

#[global_allocator]
static GLOBAL: KernelAligned = KernelAligned;

pub use self::kbox::{Box, KBox, KVBox, VBox};
pub use self::kvec::{IntoIter, KVVec, KVec, VVec, Vec};

/// Indicates an allocation error.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct AllocError;

/// Flags for an allocation (`gfp_t`). The values are the shim's own: only
/// `__GFP_ZERO` changes anything here.
#[derive(Clone, Copy, PartialEq)]
pub struct Flags(u32);

impl Flags {
    /// The raw representation of the flags.
    pub fn as_raw(self) -> u32 {
        self.0
    }

    /// Whether `flags` are all set in `self`.
    pub fn contains(self, flags: Flags) -> bool {
        (self & flags) == flags
    }
}

impl core::ops::BitOr for Flags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self::Output {
        Self(self.0 | rhs.0)
    }
}

impl core::ops::BitAnd for Flags {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self::Output {
        Self(self.0 & rhs.0)
    }
}

impl core::ops::Not for Flags {
    type Output = Self;
    fn not(self) -> Self::Output {
        Self(!self.0)
    }
}

/// Allocation flags (`GFP_*`).
pub mod flags {
    use super::Flags;

    /// Zero the allocated memory.
    pub const __GFP_ZERO: Flags = Flags(1 << 0);
    /// Allocate from high memory.
    pub const __GFP_HIGHMEM: Flags = Flags(1 << 1);
    /// No allocation failure reports.
    pub const __GFP_NOWARN: Flags = Flags(1 << 2);
    /// Callers cannot sleep.
    pub const GFP_ATOMIC: Flags = Flags(1 << 3);
    /// Typical for kernel-internal allocations.
    pub const GFP_KERNEL: Flags = Flags(1 << 4);
    /// `GFP_KERNEL`, charged to the memory cgroup.
    pub const GFP_KERNEL_ACCOUNT: Flags = Flags(1 << 4 | 1 << 5);
    /// Neither sleeps nor uses emergency reserves.
    pub const GFP_NOWAIT: Flags = Flags(1 << 6);
}

/// `KMALLOC_MAX_SIZE` on x86_64 (`1 << (MAX_PAGE_ORDER + PAGE_SHIFT)`, 4 MiB):
/// the largest `kmalloc()` allocation.
pub const KMALLOC_MAX_SIZE: usize = 1 << (10 + 12);

/// The kernel's allocators, as types that only carry their size limit.
pub trait Allocator {
    /// The largest allocation, in bytes.
    const MAX_SIZE: usize;
}

/// The allocator types (`rust/kernel/alloc/allocator.rs`).
pub mod allocator {
    /// `kmalloc()`: physically contiguous, at most [`super::KMALLOC_MAX_SIZE`].
    pub struct Kmalloc;
    /// `vmalloc()`: virtually contiguous.
    pub struct Vmalloc;
    /// `kvmalloc()`: `kmalloc()`, falling back to `vmalloc()`.
    pub struct KVmalloc;

    impl super::Allocator for Kmalloc {
        const MAX_SIZE: usize = super::KMALLOC_MAX_SIZE;
    }
    impl super::Allocator for Vmalloc {
        const MAX_SIZE: usize = isize::MAX as usize;
    }
    impl super::Allocator for KVmalloc {
        const MAX_SIZE: usize = isize::MAX as usize;
    }
}
