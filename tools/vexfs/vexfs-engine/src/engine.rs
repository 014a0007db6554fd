// SPDX-License-Identifier: GPL-2.0

//! The adapter: every call the benchmark makes into the kernel's vector engine
//! is in this file, and makes the calls `fs/vexfs/vector/` makes for the
//! same operation, minus the file I/O and the user copies.
//!
//! | operation        | engine calls (as in `vector/`)                                     |
//! | ---------------- | ------------------------------------------------------------------ |
//! | [`Engine::new`]  | `hnsw::Index::new(Params { dim, metric, m, ef_construction })`    |
//! | [`Engine::insert`] | `VEXFS_IOC_INSERT`: `Index::find` per id, `Index::reserve(count)`, per vector `vecmath::Fixed::from_f32_bits` and `Index::push`, then `Index::link` per new node with one `Scratch` (`Index::truncate` on failure) |
//! | [`Engine::search`] | `VEXFS_IOC_SEARCH`: `Fixed::from_f32_bits` of the query, `Index::set_query` and `Index::search(scratch, k, ef, exact)` with a reused `Scratch` (the kernel keeps a pool per collection), per hit `Index::id` and `dist.to_f32_bits()` |
//! | [`Engine::filter`] | `VEXFS_SEARCH_FILTER`: `Index::filter_begin(lo, hi, listed)`, `Index::filter_allow` per listed id, `Index::filter_end` |
//! | [`Engine::bytes`]  | `Index::bytes()`                                                    |
//!
//! The collection file: [`Engine`] keeps every record (id and binary32 patterns) in one
//! array, the stand-in for the file's page cache, and gives searches a `hnsw::Records` over
//! it that converts a record as `FileRecords` in `vector/records.rs` does (`Fixed::from_f32_bits`,
//! after checking the id). The kernel reads the record through the page cache instead of
//! indexing an array: that cost is not in the native figures (UML shows it).
//! [`Engine::file_bytes`] is the size of those records, which the kernel keeps in the page
//! cache (reclaimable), not in the index.
//!
//! Counting: the engine's own `Stats` of each search (`distances` on the
//! traversal copy, `rescored` exact ones, `passed` nodes the sign codes ruled
//! out), summed into [`distances`], [`rescored`] and [`passed`]. For inserts, the stats the scratch gathers over the `link`
//! calls; the exact distances of the neighbour selection are not in them.
//!
//! Adapting to a new engine API: change the bodies here; `src/main.rs` only
//! uses the public items below.

use crate::hnsw::{Filter, Index, Params, Records, Scratch, Stats};
use crate::vecmath;
use core::cell::RefCell;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::prelude::*;

static DISTANCES: AtomicU64 = AtomicU64::new(0);
static RESCORED: AtomicU64 = AtomicU64::new(0);
static PASSED: AtomicU64 = AtomicU64::new(0);

fn add_stats(st: &Stats) {
    DISTANCES.fetch_add(st.distances, Ordering::Relaxed);
    RESCORED.fetch_add(st.rescored, Ordering::Relaxed);
    PASSED.fetch_add(st.passed, Ordering::Relaxed);
}

/// Distances (traversal and exact) computed so far by this process, as the
/// engine counts them.
pub fn distances() -> u64 {
    DISTANCES.load(Ordering::Relaxed) + RESCORED.load(Ordering::Relaxed)
}

/// Of [`distances`], the exact ones (the final ranking).
pub fn rescored() -> u64 {
    RESCORED.load(Ordering::Relaxed)
}

/// Nodes the searches passed over on their sign codes alone (not in
/// [`distances`]).
pub fn passed() -> u64 {
    PASSED.load(Ordering::Relaxed)
}

/// Whether distances are counted.
pub const COUNTS_DISTANCES: bool = true;

/// A search filter made by [`Engine::filter`].
pub struct IdFilter(Filter);

/// The distance metric of a collection (`VEXFS_METRIC_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Squared Euclidean distance.
    L2,
    /// Negated inner product.
    Ip,
    /// One minus the cosine similarity.
    Cosine,
}

/// A collection's in-memory index, driven as the ioctls drive it.
pub struct Engine {
    index: Index,
    /// The scratch of the searches, reused as the kernel's pool does.
    scratch: RefCell<Scratch>,
    dim: usize,
    /// Records of the collection file so far (the `slot` of the next vector).
    records: u64,
    /// The records' ids and vectors (`dim` binary32 patterns each): the collection file.
    file_ids: KVVec<u64>,
    file_bits: KVVec<u32>,
}

/// The records of an [`Engine`], as `FileRecords` in `vector/records.rs` serves them.
struct File<'a> {
    ids: &'a [u64],
    bits: &'a [u32],
    dim: usize,
}

impl Records for File<'_> {
    fn vector(&mut self, slot: u64, id: u64, m: &mut [i32]) -> Result<i32> {
        let i = usize::try_from(slot).map_err(|_| EUCLEAN)?;
        if self.ids.get(i) != Some(&id) {
            return Err(EUCLEAN);
        }
        let v = self
            .bits
            .get(i * self.dim..(i + 1) * self.dim)
            .ok_or(EUCLEAN)?;
        vecmath::Fixed::from_f32_bits(v.iter().copied(), m)
    }
}

impl Engine {
    /// An empty index (`Index::new`), as a collection is created with.
    pub fn new(dim: usize, metric: Metric, m: usize, ef_construction: usize) -> Self {
        let metric = match metric {
            Metric::L2 => vecmath::Metric::L2,
            Metric::Ip => vecmath::Metric::Ip,
            Metric::Cosine => vecmath::Metric::Cosine,
        };
        Self {
            index: Index::new(Params {
                dim,
                metric,
                m,
                ef_construction,
            }),
            scratch: RefCell::new(Scratch::new()),
            dim,
            records: 0,
            file_ids: KVVec::new(),
            file_bits: KVVec::new(),
        }
    }

    /// Appends records to the stand-in of the collection file.
    fn append(&mut self, ids: &[u64], bits: &[u32]) -> Result {
        self.file_ids.extend_from_slice(ids, GFP_KERNEL)?;
        self.file_bits.extend_from_slice(bits, GFP_KERNEL)?;
        self.records += ids.len() as u64;
        Ok(())
    }

    /// Bytes of the records of the collection file (id and vector each), which the kernel
    /// keeps in the page cache, not in the index.
    pub fn file_bytes(&self) -> usize {
        self.file_ids.len() * (8 + 4 * self.dim)
    }

    /// Elements per vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.index.len() == 0
    }

    /// Kernel memory held by the index (`Index::bytes`).
    pub fn bytes(&self) -> usize {
        self.index.bytes()
    }

    /// The index as `load()` in `vector.rs` builds it from the collection file on the first
    /// use after mount or on `VEXFS_IOC_BUILD_INDEX`: `Index::reserve(live)` once, then
    /// `push` and `link` record by record (so its arrays are exactly as large as needed).
    pub fn load(
        dim: usize,
        metric: Metric,
        m: usize,
        ef_construction: usize,
        ids: &[u64],
        bits: &[u32],
    ) -> Result<Self> {
        let mut e = Self::new(dim, metric, m, ef_construction);
        if bits.len() != ids.len().checked_mul(dim).ok_or(EINVAL)? {
            return Err(EINVAL);
        }
        e.index.reserve(ids.len())?;
        let mut mant: KVec<i32> = KVec::with_capacity(dim, GFP_KERNEL)?;
        mant.resize(dim, 0, GFP_KERNEL)?;
        let mut scratch = Scratch::new();
        for (i, v) in bits.chunks_exact(dim).enumerate() {
            let scale = vecmath::Fixed::from_f32_bits(v.iter().copied(), &mut mant)?;
            let node = e.index.push(ids[i], i as u64, &mant, scale)?;
            e.index.link(node, &mut scratch)?;
        }
        add_stats(&scratch.stats);
        e.append(ids, bits)?;
        Ok(e)
    }

    /// The saved graph, as `fs/vexfs/vector/saved.rs` writes it after the records of the collection
    /// file (the node entries, without their header).
    pub fn save(&self) -> Result<KVVec<u8>> {
        let mut all = KVVec::new();
        let mut e = KVec::new();
        for node in 0..self.index.len() as u32 {
            self.index.save_node(node, &mut e)?;
            all.extend_from_slice(&e, GFP_KERNEL)?;
        }
        Ok(all)
    }

    /// The index as the kernel restores it after mount from the saved graph `saved` of
    /// [`Engine::save`] and its entry point, and the records (`ids` and their vectors `bits`, all live): every
    /// vector converted again, the links read and checked.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        dim: usize,
        metric: Metric,
        m: usize,
        ef_construction: usize,
        ids: &[u64],
        bits: &[u32],
        saved: &[u8],
        entry: Option<(u32, u32)>,
    ) -> Result<Self> {
        let mut e = Self::new(dim, metric, m, ef_construction);
        e.index.reserve(ids.len())?;
        let mut mant: KVec<i32> = KVec::with_capacity(dim, GFP_KERNEL)?;
        mant.resize(dim, 0, GFP_KERNEL)?;
        let mut at = 0;
        while at < saved.len() {
            let head = saved.get(at..at + crate::hnsw::SAVED_HEAD).ok_or(EINVAL)?;
            let len = e.index.saved_len_of(head)?;
            let entry = saved.get(at..at + len).ok_or(EINVAL)?;
            let slot = usize::try_from(Index::saved_slot(entry)).map_err(|_| EINVAL)?;
            if ids.get(slot).is_none() {
                return Err(EINVAL);
            }
            let vector = if Index::saved_coded(entry) {
                None
            } else {
                let v = &bits[slot * dim..(slot + 1) * dim];
                let scale = vecmath::Fixed::from_f32_bits(v.iter().copied(), &mut mant)?;
                Some((&mant[..], scale))
            };
            e.index.restore_node(entry, vector, false)?;
            at += len;
        }
        e.index.restore_finish(e.index.len(), entry)?;
        e.append(ids, bits)?;
        Ok(e)
    }

    /// The entry point of the index, for [`Engine::restore`].
    pub fn entry(&self) -> Option<(u32, u32)> {
        self.index.entry()
    }

    /// One `VEXFS_IOC_INSERT` of `ids.len()` vectors given as binary32 bit
    /// patterns (`dim` per vector): checks the ids, reserves, converts and
    /// pushes every vector, then links the new nodes into the graph.
    pub fn insert(&mut self, ids: &[u64], bits: &[u32]) -> Result {
        let (dim, count) = (self.dim, ids.len());
        if bits.len() != count.checked_mul(dim).ok_or(EINVAL)? {
            return Err(EINVAL);
        }
        if ids.iter().any(|&id| self.index.find(id).is_some()) {
            return Err(EEXIST);
        }
        self.index.reserve(count)?;
        let first = self.index.len();
        let mut m: KVec<i32> = KVec::with_capacity(dim, GFP_KERNEL)?;
        m.resize(dim, 0, GFP_KERNEL)?;
        let records = self.records;
        let index = &mut self.index;
        let res = (|| -> Result {
            for (i, v) in bits.chunks_exact(dim).enumerate() {
                let scale = vecmath::Fixed::from_f32_bits(v.iter().copied(), &mut m)?;
                index.push(ids[i], records + i as u64, &m, scale)?;
            }
            Ok(())
        })();
        if let Err(e) = res {
            self.index.truncate(first);
            return Err(e);
        }
        self.append(ids, bits)?;
        let mut scratch = Scratch::new();
        let res =
            (first..self.index.len()).try_for_each(|n| self.index.link(n as u32, &mut scratch));
        add_stats(&scratch.stats);
        res
    }

    /// A filter for [`Engine::search`] (`VEXFS_SEARCH_FILTER`): ids in `lo..=hi` and, if
    /// given, in `list`.
    pub fn filter(&self, lo: u64, hi: u64, list: Option<&[u64]>) -> Result<IdFilter> {
        let mut f = self.index.filter_begin(lo, hi, list.is_some())?;
        for &id in list.unwrap_or(&[]) {
            self.index.filter_allow(&mut f, id)?;
        }
        self.index.filter_end(&mut f);
        Ok(IdFilter(f))
    }

    /// One `VEXFS_IOC_SEARCH`: the `k` nearest vectors to `query` (binary32 bit
    /// patterns) that `filter` admits, exact or with HNSW and candidate list `ef` (0: the
    /// kernel's default, `max(k, 64)`). Writes ids and distances (binary32 bit
    /// patterns) nearest first; returns how many.
    #[allow(clippy::too_many_arguments)]
    pub fn search(
        &self,
        query: &[u32],
        k: usize,
        ef: usize,
        exact: bool,
        filter: Option<&IdFilter>,
        ids: &mut [u64],
        dists: &mut [u32],
    ) -> Result<usize> {
        if query.len() != self.dim {
            return Err(EINVAL);
        }
        let mut m: KVec<i32> = KVec::with_capacity(self.dim, GFP_KERNEL)?;
        m.resize(self.dim, 0, GFP_KERNEL)?;
        let scale = vecmath::Fixed::from_f32_bits(query.iter().copied(), &mut m)?;
        let ef = if ef == 0 { k.max(64) } else { ef };
        let mut scratch = self.scratch.borrow_mut();
        let s = &mut *scratch;
        self.index.set_query(s, &m, scale)?;
        let mut file = File {
            ids: &self.file_ids,
            bits: &self.file_bits,
            dim: self.dim,
        };
        let res = self
            .index
            .search(s, k, ef, exact, filter.map(|f| &f.0), &mut file);
        let mut n = 0;
        if let Ok(hits) = &res {
            for ((h, id), d) in hits.iter().zip(ids.iter_mut()).zip(dists.iter_mut()) {
                *id = self.index.id(h.node);
                *d = h.dist.to_f32_bits();
                n += 1;
            }
        }
        let failed = res.err();
        add_stats(&s.stats);
        match failed {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_and_search_through_the_adapter() {
        let dim = 4;
        let mut e = Engine::new(dim, Metric::L2, 8, 32);
        let mut bits = std::vec::Vec::new();
        let ids: std::vec::Vec<u64> = (0..200).collect();
        for i in 0..200u32 {
            for j in 0..dim as u32 {
                bits.push(((i * 7 + j * 3) % 50) as f32 * 0.5);
            }
        }
        let bits: std::vec::Vec<u32> = bits.iter().map(|f| f.to_bits()).collect();
        e.insert(&ids[..100], &bits[..100 * dim]).unwrap();
        e.insert(&ids[100..], &bits[100 * dim..]).unwrap();
        assert_eq!(e.insert(&ids[..1], &bits[..dim]), Err(EEXIST));
        assert_eq!(e.len(), 200);
        assert!(e.bytes() > 200 * dim * 4);
        assert_eq!(e.file_bytes(), 200 * (8 + 4 * dim));
        let (mut out, mut d) = ([0u64; 5], [0u32; 5]);
        let before = distances();
        let n = e
            .search(&bits[7 * dim..8 * dim], 5, 0, true, None, &mut out, &mut d)
            .unwrap();
        assert_eq!(n, 5);
        assert_eq!(d[0], 0);
        assert!(d
            .windows(2)
            .all(|w| f32::from_bits(w[0]) <= f32::from_bits(w[1])));
        if COUNTS_DISTANCES {
            // Other tests may count at the same time.
            assert!(distances() - before >= 200);
        }
        let n = e
            .search(
                &bits[7 * dim..8 * dim],
                5,
                32,
                false,
                None,
                &mut out,
                &mut d,
            )
            .unwrap();
        assert_eq!((n, d[0]), (5, 0));
        let nan = [f32::NAN.to_bits(); 4];
        assert_eq!(
            e.search(&nan, 5, 0, true, None, &mut out, &mut d),
            Err(EINVAL)
        );
    }
}
