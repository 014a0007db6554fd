// SPDX-License-Identifier: GPL-2.0

//! Cache prefetch hints.
//!
//! C header: [`include/linux/prefetch.h`](srctree/include/linux/prefetch.h)

/// Hints the processor to fetch the cache line holding `r` for reading, like the C
/// `prefetch()`: code that walks a pointer-chasing structure (a graph, a hash chain) can issue
/// it for the next nodes while it works on the current one.
///
/// It is only a hint: it never faults, changes no memory, and has no effect on correctness.
/// On x86 it is `prefetcht0`, which touches no FPU or SSE state and is therefore usable in
/// kernels built without them; elsewhere it does nothing for now.
#[inline(always)]
pub fn prefetch<T: ?Sized>(r: &T) {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    // SAFETY: `prefetcht0` reads no memory architecturally, writes none, cannot fault (not
    // even on an invalid address, and `r` is a valid reference anyway), leaves the flags and
    // every register but its address operand alone and does not use the stack.
    unsafe {
        core::arch::asm!(
            "prefetcht0 [{}]",
            in(reg) core::ptr::from_ref(r).cast::<u8>(),
            options(nostack, readonly, preserves_flags)
        );
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
    let _ = r;
}
