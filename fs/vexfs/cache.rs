// SPDX-License-Identifier: GPL-2.0

//! The memory of the vector indexes of a mount: a budget and the super block's shrinker.
//!
//! The indexes of the collections of one mounted VexFS share a budget, `index_budget=`
//! (default: a quarter of memory). Loading an index or growing it by an insert first charges
//! the bytes it will use against the budget ([`Charge::reserve`]); if the other loaded indexes
//! leave too little room, the least recently used clean ones are dropped, and if that is not
//! enough the operation fails with `ENOMEM`. Under memory pressure the super block's shrinker
//! ([`Cache::count`], [`Cache::scan`]) drops clean indexes too, least recently used first.
//!
//! Dropping an index loses nothing: a clean index equals the copy saved in the collection
//! file, which the next search restores. An index with unsaved changes (a file open for
//! writing that was neither synced nor closed since) and one in use are never dropped.
//!
//! # Locking
//!
//! A [`Slot`] holds the engine state of one collection behind its semaphore. The inode owns
//! it, and the mount's [`Cache`] holds a second reference while an index is loaded, so that
//! the shrinker reaches it without the inode. The cache's mutex nests inside a collection's
//! semaphore: an operation holding its semaphore for writing charges its index, and may then
//! drop the index of another collection, whose semaphore it only try-locks. The shrinker,
//! which may run in any task that allocates memory while it holds these locks, only try-locks
//! both.

use crate::vector;
use core::sync::atomic::{
    AtomicU64,
    AtomicUsize,
    Ordering, //
};
use kernel::{
    new_mutex, new_rwsem,
    page::PAGE_SHIFT,
    prelude::*,
    sync::{
        rwsem::RwSemaphore,
        Arc,
        Mutex, //
    },
};

/// Parses a size as `memparse()` does: a number with an optional suffix `k`, `m`, `g` or `t`
/// (either case) for a power of 1024. `None` if malformed or too large.
pub(crate) fn parse_size(s: &[u8]) -> Option<usize> {
    let (digits, shift) = match s.split_last()? {
        (b'k' | b'K', d) => (d, 10),
        (b'm' | b'M', d) => (d, 20),
        (b'g' | b'G', d) => (d, 30),
        (b't' | b'T', d) => (d, 40),
        _ => (s, 0),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: usize = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(usize::from(c - b'0'))?;
    }
    n.checked_mul(1 << shift)
}

/// The default index budget of a mount: a quarter of memory.
pub(crate) fn default_budget() -> usize {
    (kernel::mm::totalram_pages() / 4).saturating_mul(1 << PAGE_SHIFT)
}

/// The vector state of a collection, shared by its inode and the cache of its mount.
#[pin_data]
pub(crate) struct Slot {
    /// The engine state; searches share the semaphore, changes hold it exclusively.
    #[pin]
    pub(crate) state: RwSemaphore<vector::State>,
    /// Search scratch buffers, reused by the searches of the collection.
    #[pin]
    pub(crate) scratch: Mutex<vector::ScratchPool>,
    /// When the index was last used, in ticks of [`Cache::clock`].
    last_use: AtomicU64,
}

impl Slot {
    /// A slot with no index loaded.
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            state <- new_rwsem!(vector::State::new()),
            scratch <- new_mutex!(vector::ScratchPool::new()),
            last_use: AtomicU64::new(0),
        })
    }
}

/// A loaded index, charged against the budget.
struct Entry {
    slot: Arc<Slot>,
    /// Bytes charged: what the index uses or is about to use.
    bytes: usize,
}

impl Entry {
    /// The order in which indexes are dropped: least recently used first, ties broken by
    /// address (distinct for distinct slots).
    fn age(&self) -> (u64, usize) {
        (
            self.slot.last_use.load(Ordering::Relaxed),
            Arc::as_ptr(&self.slot) as usize,
        )
    }
}

/// The loaded indexes of a mount and their budget.
///
/// # Invariants
///
/// `bytes` is the sum of the `bytes` of the entries (written under `entries`' lock). A slot
/// has at most one entry.
#[pin_data]
pub(crate) struct Cache {
    /// Bytes the loaded indexes of the mount may use together.
    budget: usize,
    /// Bytes charged by the loaded indexes, readable without the lock.
    bytes: AtomicUsize,
    /// The clock of [`Slot::last_use`]: ticks once per use of an index.
    clock: AtomicU64,
    /// The loaded indexes.
    #[pin]
    entries: Mutex<KVec<Entry>>,
}

impl Cache {
    /// A cache for a mount whose indexes may use `budget` bytes.
    pub(crate) fn new(budget: usize) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            budget,
            bytes: AtomicUsize::new(0),
            clock: AtomicU64::new(0),
            entries <- new_mutex!(KVec::new()),
        })
    }

    /// The bytes the indexes of the mount may use.
    pub(crate) fn budget(&self) -> usize {
        self.budget
    }

    /// Bytes the loaded indexes of the mount use.
    pub(crate) fn resident(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Marks the index of `slot` as used now.
    pub(crate) fn touch(&self, slot: &Slot) {
        let now = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
        slot.last_use.store(now, Ordering::Relaxed);
    }

    /// Objects the shrinker may free: pages of loaded indexes.
    pub(crate) fn count(&self) -> usize {
        self.resident() >> PAGE_SHIFT
    }

    /// Drops clean indexes, least recently used first, until about `pages` pages are freed
    /// (the shrinker); returns the pages freed.
    pub(crate) fn scan(&self, pages: usize) -> usize {
        let Some(mut entries) = self.entries.try_lock() else {
            return 0;
        };
        let freed = self.evict(&mut entries, pages.saturating_mul(1 << PAGE_SHIFT));
        freed.div_ceil(1 << PAGE_SHIFT)
    }

    /// Drops clean indexes that nobody uses, least recently used first, until `want` bytes
    /// are freed or none is left to drop; returns the bytes freed.
    fn evict(&self, entries: &mut KVec<Entry>, want: usize) -> usize {
        let mut freed = 0;
        // The entries in age order without sorting (no allocation here): each round takes the
        // oldest entry younger than the last one tried. There are few loaded indexes. A search
        // may make an entry younger meanwhile: at most one round per entry all the same.
        let mut after = None;
        let mut rounds = entries.len();
        while freed < want && rounds > 0 {
            rounds -= 1;
            let Some((i, age)) = entries
                .iter()
                .enumerate()
                .map(|(i, e)| (i, e.age()))
                .filter(|&(_, age)| after.is_none_or(|a| age > a))
                .min_by_key(|&(_, age)| age)
            else {
                break;
            };
            after = Some(age);
            let slot = entries[i].slot.clone();
            // Whoever holds the semaphore uses the index (or is charging it: the caller).
            let Some(mut state) = slot.state.try_write() else {
                continue;
            };
            if !state.evict() {
                continue;
            }
            drop(state);
            if let Some(mut scratch) = slot.scratch.try_lock() {
                scratch.clear();
            }
            let e = entries.remove(i);
            if let Ok(e) = e {
                freed += e.bytes;
                self.bytes.fetch_sub(e.bytes, Ordering::Relaxed);
            }
        }
        freed
    }
}

/// The charge of one collection's index against the budget of its mount, for an operation
/// that holds the collection's semaphore for writing.
///
/// Whatever the operation did, it ends with [`Charge::settle`], which records what the index
/// then uses.
pub(crate) struct Charge<'a> {
    cache: &'a Cache,
    slot: &'a Arc<Slot>,
    /// Bytes reserved by this charge so far.
    reserved: usize,
}

impl<'a> Charge<'a> {
    /// A charge of the index in `slot`; the caller holds its semaphore for writing.
    pub(crate) fn new(cache: &'a Cache, slot: &'a Arc<Slot>) -> Self {
        cache.touch(slot);
        Self {
            cache,
            slot,
            reserved: 0,
        }
    }

    /// The position of this collection's entry in `entries`, if its index is charged.
    fn entry(&self, entries: &[Entry]) -> Option<usize> {
        entries.iter().position(|e| Arc::ptr_eq(&e.slot, self.slot))
    }

    /// The budget of the mount, in bytes.
    pub(crate) fn budget(&self) -> usize {
        self.cache.budget
    }

    /// Makes room for the index to use `bytes` in all: drops the least recently used clean
    /// indexes of other collections if needed. `ENOMEM` if the budget cannot hold it.
    pub(crate) fn reserve(&mut self, bytes: usize) -> Result {
        if bytes <= self.reserved {
            return Ok(());
        }
        let mut entries = self.cache.entries.lock();
        let own = self.entry(&entries).map_or(0, |i| entries[i].bytes);
        if bytes <= own {
            self.reserved = own;
            return Ok(());
        }
        if bytes > self.cache.budget {
            return Err(ENOMEM);
        }
        let others = self.cache.resident() - own;
        if others > self.cache.budget - bytes {
            // Our own semaphore is held: the eviction skips our index.
            self.cache
                .evict(&mut entries, others - (self.cache.budget - bytes));
            if self.cache.resident() - own > self.cache.budget - bytes {
                return Err(ENOMEM);
            }
        }
        // The eviction may have moved our entry.
        match self.entry(&entries) {
            Some(i) => entries[i].bytes = bytes,
            None => entries.push(
                Entry {
                    slot: self.slot.clone(),
                    bytes,
                },
                GFP_KERNEL,
            )?,
        }
        self.cache.bytes.fetch_add(bytes - own, Ordering::Relaxed);
        self.reserved = bytes;
        Ok(())
    }

    /// Records that the index now uses `bytes` (0: none is loaded).
    pub(crate) fn settle(self, bytes: usize) {
        let mut entries = self.cache.entries.lock();
        let Some(i) = self.entry(&entries) else {
            // Not charged: an index is loaded only after a reservation, so there is none.
            return;
        };
        let own = entries[i].bytes;
        if bytes == 0 {
            // Dropping the last reference here is fine: the inode holds another.
            let _ = entries.remove(i);
        } else {
            entries[i].bytes = bytes;
        }
        // At most `usize::MAX` in all (type invariant): neither wraps.
        self.cache.bytes.fetch_sub(own, Ordering::Relaxed);
        self.cache.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

#[kunit_tests(vexfs_cache)]
mod tests {
    use super::*;

    #[test]
    fn index_budget_sizes() {
        assert_eq!(parse_size(b"0"), Some(0));
        assert_eq!(parse_size(b"4096"), Some(4096));
        assert_eq!(parse_size(b"2m"), Some(2 << 20));
        assert_eq!(parse_size(b"64K"), Some(64 << 10));
        assert_eq!(parse_size(b"8g"), Some(8 << 30));
        assert_eq!(parse_size(b"1T"), Some(1 << 40));
        for bad in [
            &b""[..],
            b"m",
            b"12x",
            b"-1",
            b"1.5g",
            b" 1",
            b"1mb",
            b"99999999999999999999",
            b"17179869184g",
        ] {
            assert_eq!(parse_size(bad), None);
        }
    }
}
