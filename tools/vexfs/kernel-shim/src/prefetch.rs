// SPDX-License-Identifier: GPL-2.0

//! Cache prefetch hints (the kernel's `kernel::prefetch`).

/// Hints that the memory of `r` will be read soon: `prefetcht0` on x86_64 (all
/// cache levels), nothing elsewhere. Only the first cache line of `r` is
/// fetched.
#[inline(always)]
pub fn prefetch<T: ?Sized>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        let p: *const u8 = (r as *const T).cast();
        // SAFETY: `prefetcht0` is a hint: it does not fault, writes nothing and
        // changes no flags; `p` comes from a reference anyway.
        unsafe {
            core::arch::asm!("prefetcht0 [{}]", in(reg) p,
                             options(nostack, preserves_flags, readonly));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefetch_is_harmless() {
        let v = [1u64, 2, 3];
        super::prefetch(&v);
        super::prefetch(&v[..]);
        super::prefetch("str");
        assert_eq!(v[2], 3);
    }
}
