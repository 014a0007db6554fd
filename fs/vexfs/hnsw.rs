// SPDX-License-Identifier: GPL-2.0

//! The in-memory index of a collection: its vectors, an id map, and a hierarchical navigable
//! small world graph (HNSW, Malkov and Yashunin, 2016).
//!
//! - Every live record of the collection file is a node; nodes are numbered in insertion order.
//!   Deleting a vector marks its node deleted: it still routes searches but is never returned.
//!   Rebuilding ([`crate::vector`], `VEXFS_IOC_BUILD_INDEX`) drops deleted nodes.
//! - The level of a node is a deterministic function of its id: a 64-bit mix of the id, whose
//!   leading zero bits, `floor(log2 M)` at a time, count the levels. That is a geometric
//!   distribution with `p = 2^-floor(log2 M)` (`1/M` for powers of two) and no floating point,
//!   and it makes the graph depend only on the order of insertion. Under the cosine metric a
//!   zero vector (at distance 1 from everything) stays on level 0 and is never the entry point.
//! - A node has at most `2 M` links on level 0 and `M` above, stored contiguously (one array
//!   for level 0, one for the upper levels). New links are chosen with the paper's neighbour
//!   selection heuristic (under the inner product, which is no metric, filled up to `M` with
//!   pruned candidates); a neighbour whose list overflows keeps what the heuristic selects
//!   among its links and the new one. Of candidates holding the same vector, only the
//!   lowest-numbered and the newest are kept, so groups of duplicates do not fill the lists
//!   with copies of one point and stay reachable (each member links to the next inserted).
//!
//! # Vectors
//!
//! Under the cosine metric a node keeps only a *compact* copy of its vector, 8-bit codes and
//! a factor ([`vecmath::encode`]) of the unit vector, and the factor that normalises it
//! ([`vecmath::unit_factor`]); the graph is traversed on the compact copies. A search ranks
//! candidates by the compact inner product (exact integer arithmetic on the codes), then
//! computes the exact distance of the best candidates of the final list and returns the
//! nearest by exact distance. The exact vectors are not kept in memory: the caller gives the
//! search its [`Records`], from which it reads the few it rescores (the kernel reads them
//! from the collection file, through the page cache) and turns them into the same unit vectors
//! as at insertion ([`vecmath::apply_unit`] with the kept factor). Returned ids and distances
//! therefore carry the exact distance's error bound; only which candidates the traversal
//! finds depends on the compact copy. Exact search scans the compact copy and rescores
//! exactly every vector that the proven bound of the compact distance cannot rule out
//! ([`Index::search`]), so it returns the same results as a scan of the exact vectors.
//!
//! From [`SIGN_DIM`] elements on, a node also has a *sign code*: one bit per element of its
//! unit vector after a fixed rotation ([`vecmath::rotate`], [`vecmath::sign_code`]), an
//! estimate of the cosine six times smaller than the compact copy at 768 elements. Once a
//! beam search's list is full, a neighbour whose sign code puts it clearly beyond the list
//! ([`SIGN_MARGIN`]) is passed over without its compact copy being read; the others are
//! ranked on their compact copies as without sign codes. At these dimensions a compact copy
//! is 13 cache lines, and reading them is most of a search's time.
//!
//! L2 and inner-product collections keep their *exact* vectors ([`crate::vecmath`]: 30-bit
//! mantissas and a scale) in memory and are traversed on them.
//!
//! Distances are ordered by an `i64` key (the compact key, or [`vecmath::Value::key`] of the
//! exact distance); ties are broken by node number (insertion order), so results are
//! deterministic.
//!
//! # Memory
//!
//! All memory is allocated fallibly (`GFP_KERNEL`, vmalloc for the large arrays) and counted in
//! [`Index::bytes`]. Searches take a [`Scratch`] (visited tags by epoch, the candidate list,
//! the prepared query) that their caller keeps and reuses, so a search allocates nothing once
//! its scratch has grown to the index.

use crate::vecmath::{
    self,
    distance,
    dot_words,
    Metric,
    Value,
    VecRef, //
};
use core::{
    cell::Cell,
    cmp::Reverse, //
};
use kernel::{
    alloc::{
        KVVec,
        KVec,
        VVec, //
    },
    prefetch::prefetch,
    prelude::*,
};

/// Highest level of a node.
const MAX_LEVEL: u32 = 15;

/// Fewest elements for sign codes ([`vecmath::sign_code`]): below, their estimate is too
/// coarse to steer a search, and the compact copy is small anyway.
pub(crate) const SIGN_DIM: usize = 256;

/// How far beyond the farthest of a full candidate list, in cosine units times `sqrt(dim)`
/// (`SIGN_MARGIN.0 / SIGN_MARGIN.1`), a sign code's estimate must put a node for the beam
/// search to pass it over without its compact distance: about 1.7 times the typical error
/// (`0.75 / sqrt(dim)`). With it, recall on the benchmarks' data is that of the compact
/// copies alone; at 1 times, it began to drop.
const SIGN_MARGIN: (u128, u128) = (5, 4);

/// Bytes of the fixed part of a node's entry in a saved graph ([`Index::save_node`]).
pub(crate) const SAVED_HEAD: usize = 24;

/// Byte 18 of a saved entry: traversal data follow the links.
const SAVED_CODED: u8 = 1;

/// The little-endian `u64` at `off` of `b`.
fn le64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// Largest M (links per node and level above 0); the collection header enforces it.
pub(crate) const MAX_M: usize = 64;

/// 64-bit finaliser of SplitMix64: a bijective mix of `x`.
pub(crate) fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The HNSW level of the node of vector `id` for `m` links per level.
pub(crate) fn level_for(id: u64, m: usize) -> u32 {
    let bits = (usize::BITS - 1 - m.max(2).leading_zeros()).max(1);
    (mix64(id).leading_zeros() / bits).min(MAX_LEVEL)
}

/// The exact vectors of the nodes of a cosine index, which it does not keep in memory: the
/// records of the collection, by record number.
pub(crate) trait Records {
    /// Writes the `dim` mantissas of the vector of record `slot` into `m` and returns their
    /// scale, as converted when the vector was pushed ([`Index::push`]). `id` is the id the
    /// index has for the record: a record holding another one is damage (`EUCLEAN`).
    fn vector(&mut self, slot: u64, id: u64, m: &mut [i32]) -> Result<i32>;
}

/// Parameters of an index.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Params {
    /// Elements per vector.
    pub(crate) dim: usize,
    /// Distance metric.
    pub(crate) metric: Metric,
    /// Links per node and level (twice that on level 0).
    pub(crate) m: usize,
    /// Candidate list size while inserting.
    pub(crate) ef_construction: usize,
}

/// A candidate: distance key, then node (ties).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cand {
    key: i64,
    node: u32,
}

impl Cand {
    fn new(key: i64, node: u32) -> Self {
        Self { key, node }
    }

    fn order(&self) -> (i64, u32) {
        (self.key, self.node)
    }
}

/// A search result: the node and its exact distance.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hit {
    /// The node.
    pub(crate) node: u32,
    /// [`Value::key`] of the distance.
    key: i64,
    /// Its exact distance to the query.
    pub(crate) dist: Value,
}

/// Counters of one search, for callers tuning `ef` (and for benchmarks).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Stats {
    /// Distances computed on the traversal representation.
    pub(crate) distances: u64,
    /// Nodes passed over on their sign codes alone.
    pub(crate) passed: u64,
    /// Exact distances computed for the final ranking.
    pub(crate) rescored: u64,
    /// Nodes whose links were followed.
    pub(crate) expanded: u64,
    /// Vectors the search could return: the live ones, or those its filter admits.
    pub(crate) admitted: u64,
    /// Whether every admitted vector was considered (the results are exact).
    pub(crate) scanned: bool,
}

/// Which vectors a search may return: the live ones whose id is in `lo..=hi` and, with an
/// allow-list, in the list ([`Index::filter_begin`]).
///
/// # Invariants
///
/// With `listed`, `bits` has a bit for each node of the index it was made for, set exactly
/// for the nodes in `nodes`, which are live nodes of listed ids in `lo..=hi`, each once.
pub(crate) struct Filter {
    lo: u64,
    hi: u64,
    listed: bool,
    bits: KVVec<u64>,
    nodes: KVVec<u32>,
    /// Live vectors admitted: counted with a list, estimated without.
    admitted: usize,
}

/// Per-search working memory: kept by the caller and reused, so that a search allocates
/// nothing once the scratch has grown to the index.
pub(crate) struct Scratch {
    /// Visit tags: a node was visited in this pass if its tag equals `epoch`. One byte a
    /// node keeps them in the first cache levels; they are cleared every 255 passes.
    tags: VVec<u8>,
    epoch: u8,
    /// The candidate list, sorted by `(key, node)`.
    pool: KVVec<Cand>,
    /// The unvisited neighbours of the node being expanded, and their keys.
    batch: [u32; 2 * MAX_M],
    keys_batch: [i64; 2 * MAX_M],
    /// The candidates of a beam search, nearest on top, and the best found, farthest on top.
    near: KVVec<Reverse<(i64, u32)>>,
    best: KVVec<(i64, u32)>,
    /// The query: exact mantissas and scale, compact codes (in the query form of
    /// [`vecmath::query_form`]), factor and error bound.
    qm: KVec<i32>,
    qscale: i32,
    qcodes: KVec<u64>,
    qfactor: u32,
    qerr2: u128,
    /// The query for sign codes: the bit planes of [`vecmath::sign_query`], the sum of its
    /// codes, and room for the rotated query.
    qplanes: KVec<u64>,
    qsum: i64,
    qrot: KVec<i64>,
    /// What turns a sign key into an estimated compact key (times 2^16), and the margin of
    /// that estimate, in compact key units ([`Index::set_query_signs`]).
    qconv: u64,
    qmargin: i64,
    /// An exact vector read back from the records, for rescoring (cosine).
    xm: KVec<i32>,
    /// Results, nearest first.
    hits: KVVec<Hit>,
    /// Buffers of the neighbour selection: the selected nodes, their codes in query form,
    /// the candidates, the codes of the base in query form.
    sel: KVec<u32>,
    selq: KVVec<u64>,
    cands: KVVec<Cand>,
    baseq: KVec<u64>,
    /// Counters of the last search.
    pub(crate) stats: Stats,
}

impl Scratch {
    /// An empty scratch; it grows on first use. A constant, so that a scratch made on the
    /// heap (`KBox::new(const { Scratch::new() }, ..)`) is not made on the stack first.
    pub(crate) const fn new() -> Self {
        Self {
            tags: VVec::new(),
            epoch: 0,
            pool: KVVec::new(),
            batch: [0; 2 * MAX_M],
            keys_batch: [0; 2 * MAX_M],
            near: KVVec::new(),
            best: KVVec::new(),
            qm: KVec::new(),
            qscale: 0,
            qcodes: KVec::new(),
            qfactor: 0,
            qerr2: 0,
            qplanes: KVec::new(),
            qsum: 0,
            qrot: KVec::new(),
            qconv: 0,
            qmargin: 0,
            xm: KVec::new(),
            hits: KVVec::new(),
            sel: KVec::new(),
            selq: KVVec::new(),
            cands: KVVec::new(),
            baseq: KVec::new(),
            stats: Stats {
                distances: 0,
                passed: 0,
                rescored: 0,
                expanded: 0,
                admitted: 0,
                scanned: false,
            },
        }
    }

    /// Starts a new visiting pass over `n` nodes.
    fn begin(&mut self, n: usize) -> Result {
        if self.tags.len() < n {
            let grow = n - self.tags.len();
            self.tags.reserve(grow.max(n / 2), GFP_KERNEL)?;
            self.tags.resize(n, 0, GFP_KERNEL)?;
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.tags.iter_mut().for_each(|t| *t = 0);
            self.epoch = 1;
        }
        Ok(())
    }

    /// Marks `node` visited; returns whether it already was.
    #[inline(always)]
    fn visit(&mut self, node: u32) -> bool {
        let t = &mut self.tags[node as usize];
        let old = *t == self.epoch;
        *t = self.epoch;
        old
    }
}

/// Inserts `c` into the sorted candidate list `pool` of at most `cap` entries; returns its
/// position, or `None` if it was not nearer than the farthest of a full list. Room for `cap`
/// entries must have been reserved.
#[inline]
fn pool_insert(pool: &mut KVVec<Cand>, cap: usize, c: Cand) -> Result<Option<usize>> {
    let len = pool.len();
    if len == cap {
        match pool.last() {
            Some(w) if c.order() < w.order() => {}
            _ => return Ok(None),
        }
    }
    let pos = pool.partition_point(|x| x.order() < c.order());
    if len == cap {
        pool[len - 1] = c;
    } else {
        pool.push(c, GFP_KERNEL)?;
    }
    pool[pos..].rotate_right(1);
    Ok(Some(pos))
}

/// Adds `x` to the binary max-heap `h`.
#[inline(always)]
fn heap_push<T: Ord + Copy>(h: &mut KVVec<T>, x: T) -> Result {
    h.push(x, GFP_KERNEL)?;
    let mut i = h.len() - 1;
    while i > 0 {
        let p = (i - 1) / 2;
        if h[p] >= x {
            break;
        }
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
    Ok(())
}

/// Removes and returns the largest item of the binary max-heap `h`.
#[inline(always)]
fn heap_pop<T: Ord + Copy>(h: &mut KVVec<T>) -> Option<T> {
    let last = h.pop()?;
    let Some(&top) = h.first() else {
        return Some(last);
    };
    let n = h.len();
    let mut i = 0;
    loop {
        let l = 2 * i + 1;
        if l >= n {
            break;
        }
        let m = if l + 1 < n && h[l + 1] > h[l] {
            l + 1
        } else {
            l
        };
        if h[m] <= last {
            break;
        }
        h[i] = h[m];
        i = m;
    }
    h[i] = last;
    Some(top)
}

/// The in-memory index of a collection.
pub(crate) struct Index {
    p: Params,
    /// Vector id of each node.
    ids: VVec<u64>,
    /// Record number in the collection file of each node.
    slots: VVec<u64>,
    /// Whether each node was deleted.
    deleted: VVec<bool>,
    /// Level of each node.
    levels: VVec<u8>,
    /// Scale of each exact vector (L2 and inner product only).
    scales: VVec<i32>,
    /// Exact mantissas, `dim` per node (L2 and inner product only).
    vecs: VVec<i32>,
    /// The normalising factor of each vector ([`vecmath::unit_factor`]; cosine only).
    units: VVec<u64>,
    /// Room for one unit vector, for [`Index::push`] (cosine only).
    unit: KVec<i32>,
    /// Compact copies (cosine only), `code_stride` words per node: the `code_len` words of
    /// [`vecmath::encode`], then the factor, then zero padding to a multiple of 64 bytes, so
    /// that a distance reads whole cache lines of one node.
    codes: VVec<u64>,
    /// Largest error bound of a compact copy (cosine only; see [`vecmath::encode`]).
    max_err: u64,
    /// Sign codes (cosine, at least [`SIGN_DIM`] elements), `sign_stride` words per node:
    /// the reciprocal of the code's norm `2^62 / ||x||_1` with the number of set bits in
    /// the top 16 bits, then the `sign_len` words of [`vecmath::sign_code`], then zero
    /// padding to a multiple of 64 bytes. Beam searches pass over candidates on them.
    signs: VVec<u64>,
    /// Room for one rotated vector, for [`Index::push`].
    rot: KVec<i64>,
    /// Level-0 links: per node, `2 M` slots, the unused ones `u32::MAX` (a row of 128 bytes
    /// for M 16).
    links0: VVec<u32>,
    /// Links above level 0: for each node with a level above 0, from `upper_at[node]`, for
    /// each level `1..=level`, `M` slots, the unused ones `u32::MAX`.
    upper: VVec<u32>,
    /// Offset of each node's upper lists in `upper` (`u32::MAX`: none).
    upper_at: VVec<u32>,
    /// Entry point and its level.
    entry: Option<(u32, u32)>,
    /// Id map: open addressing, node + 1 (0 is empty), a power of two long.
    map: VVec<u32>,
    /// Number of live (not deleted) nodes.
    live: usize,
    /// One bit per node: set unless the node's saved entry ([`Index::save_node`]) is known to
    /// be what the last save wrote or the last restore read, so that a save can leave the
    /// others as they are ([`Index::unsaved`]).
    unsaved: VVec<u64>,
    /// The CRC32C of the saved entry of each node, from the first on, as the last save wrote
    /// or computed it; of the nodes [`Index::unsaved`] flags, stale.
    saved_crcs: VVec<u32>,
}

impl Index {
    /// An empty index.
    pub(crate) fn new(p: Params) -> Self {
        Self {
            p,
            ids: VVec::new(),
            slots: VVec::new(),
            deleted: VVec::new(),
            levels: VVec::new(),
            scales: VVec::new(),
            vecs: VVec::new(),
            units: VVec::new(),
            unit: KVec::new(),
            codes: VVec::new(),
            max_err: 0,
            signs: VVec::new(),
            rot: KVec::new(),
            links0: VVec::new(),
            upper: VVec::new(),
            upper_at: VVec::new(),
            entry: None,
            map: VVec::new(),
            live: 0,
            unsaved: VVec::new(),
            saved_crcs: VVec::new(),
        }
    }

    /// Number of nodes, deleted ones included.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Number of live vectors.
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    fn stride0(&self) -> usize {
        2 * self.p.m
    }

    fn compact(&self) -> bool {
        self.p.metric == Metric::Cosine
    }

    /// Words of a compact copy: eight codes a word.
    fn code_len(&self) -> usize {
        self.p.dim.div_ceil(vecmath::CODES_PER_WORD)
    }

    /// Words of the query form of a compact copy ([`vecmath::query_form`]).
    fn query_len(&self) -> usize {
        vecmath::QUERY_WORDS * self.code_len()
    }

    /// Words per node in `codes`: the copy and the factor, rounded up to 64 bytes.
    fn code_stride(&self) -> usize {
        (self.code_len() + 1).next_multiple_of(8)
    }

    /// Whether nodes have sign codes.
    fn signed(&self) -> bool {
        self.compact() && self.p.dim >= SIGN_DIM
    }

    /// Words of a sign code.
    fn sign_len(&self) -> usize {
        self.p.dim.div_ceil(64)
    }

    /// Words per node in `signs` (0 without sign codes).
    fn sign_stride(&self) -> usize {
        if self.signed() {
            (self.sign_len() + 1).next_multiple_of(8)
        } else {
            0
        }
    }

    /// Kernel memory held by the index, in bytes.
    pub(crate) fn bytes(&self) -> usize {
        size_of::<Self>()
            + self.ids.capacity() * 8
            + self.slots.capacity() * 8
            + self.deleted.capacity()
            + self.levels.capacity()
            + self.scales.capacity() * 4
            + self.vecs.capacity() * 4
            + self.units.capacity() * 8
            + self.unit.capacity() * 4
            + self.codes.capacity() * 8
            + self.signs.capacity() * 8
            + self.rot.capacity() * 8
            + self.links0.capacity() * 4
            + self.upper.capacity() * 4
            + self.upper_at.capacity() * 4
            + self.map.capacity() * 4
            + self.unsaved.capacity() * 8
            + self.saved_crcs.capacity() * 4
    }

    /// Bytes the index will hold once it has room for `n` more nodes, for admission control:
    /// its arrays grow as the kernel's vectors do, to the larger of twice their capacity and
    /// what they need; upper-level links are estimated for the expected number of levels,
    /// `1 / (M - 1)` per node, with the same headroom.
    pub(crate) fn bytes_after(&self, n: usize) -> usize {
        let cap = self.ids.capacity();
        let need = self.len().saturating_add(n);
        let nodes = if need <= cap {
            cap
        } else {
            need.max(cap.saturating_mul(2))
        };
        let vector = if self.compact() {
            self.code_stride() * 8 + 8 + self.sign_stride() * 8
        } else {
            4 + self.p.dim * 4
        };
        let upper = 2 * 4 * self.p.m / (self.p.m - 1).max(1);
        // And the saved entries' checksums, and a byte for every 8 nodes' unsaved bits.
        let per = 8 + 8 + 1 + 1 + 4 + vector + self.stride0() * 4 + upper + 4 + 1;
        let map = nodes
            .saturating_mul(2)
            .checked_next_power_of_two()
            .unwrap_or(usize::MAX)
            .max(16)
            .saturating_mul(4)
            .max(self.map.capacity() * 4);
        nodes
            .saturating_mul(per)
            .saturating_add(map)
            .saturating_add(size_of::<Self>() + self.unit.capacity().max(self.p.dim) * 4)
            .saturating_add(if self.signed() { self.p.dim * 8 } else { 0 })
    }

    /// The node of live vector `id`.
    pub(crate) fn find(&self, id: u64) -> Option<u32> {
        let n = self.find_any(id)?;
        if self.deleted[n as usize] {
            None
        } else {
            Some(n)
        }
    }

    /// The latest node of vector `id`, deleted or not.
    fn find_any(&self, id: u64) -> Option<u32> {
        if self.map.is_empty() {
            return None;
        }
        let mask = self.map.len() - 1;
        let mut i = mix64(id) as usize & mask;
        loop {
            let e = self.map[i];
            if e == 0 {
                return None;
            }
            if self.ids[(e - 1) as usize] == id {
                return Some(e - 1);
            }
            i = (i + 1) & mask;
        }
    }

    fn map_put(map: &mut [u32], ids: &[u64], node: u32) {
        let id = ids[node as usize];
        let mask = map.len() - 1;
        let mut i = mix64(id) as usize & mask;
        loop {
            let e = map[i];
            if e == 0 || ids[(e - 1) as usize] == id {
                map[i] = node + 1;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    /// Makes room for `n` more nodes in every array, so that adding them cannot fail.
    pub(crate) fn reserve(&mut self, n: usize) -> Result {
        let total = self.len().checked_add(n).ok_or(ENOMEM)?;
        self.ids.reserve(n, GFP_KERNEL)?;
        self.slots.reserve(n, GFP_KERNEL)?;
        self.deleted.reserve(n, GFP_KERNEL)?;
        self.levels.reserve(n, GFP_KERNEL)?;
        self.upper_at.reserve(n, GFP_KERNEL)?;
        self.unsaved.reserve(
            total.div_ceil(64).saturating_sub(self.unsaved.len()),
            GFP_KERNEL,
        )?;
        self.saved_crcs
            .reserve(total.saturating_sub(self.saved_crcs.len()), GFP_KERNEL)?;
        if self.compact() {
            self.units.reserve(n, GFP_KERNEL)?;
            self.codes
                .reserve(n.checked_mul(self.code_stride()).ok_or(ENOMEM)?, GFP_KERNEL)?;
            if self.unit.len() < self.p.dim {
                self.unit.resize(self.p.dim, 0, GFP_KERNEL)?;
            }
            if self.signed() {
                self.signs
                    .reserve(n.checked_mul(self.sign_stride()).ok_or(ENOMEM)?, GFP_KERNEL)?;
                if self.rot.len() < self.p.dim {
                    self.rot.resize(self.p.dim, 0, GFP_KERNEL)?;
                }
            }
        } else {
            self.scales.reserve(n, GFP_KERNEL)?;
            self.vecs
                .reserve(n.checked_mul(self.p.dim).ok_or(ENOMEM)?, GFP_KERNEL)?;
        }
        self.links0
            .reserve(n.checked_mul(self.stride0()).ok_or(ENOMEM)?, GFP_KERNEL)?;
        let want = total
            .checked_mul(2)
            .ok_or(ENOMEM)?
            .next_power_of_two()
            .max(16);
        if want > self.map.len() {
            // Rehash into a bigger table.
            let mut map = VVec::with_capacity(want, GFP_KERNEL)?;
            map.resize(want, 0, GFP_KERNEL)?;
            for node in 0..self.len() as u32 {
                Self::map_put(&mut map, &self.ids, node);
            }
            self.map = map;
        }
        Ok(())
    }

    /// Adds a vector to the store (not yet to the graph); `reserve` must have made room.
    /// `m` holds `dim` mantissas at `scale`. Returns the node.
    pub(crate) fn push(&mut self, id: u64, slot: u64, m: &[i32], scale: i32) -> Result<u32> {
        self.push_room()?;
        if m.len() != self.p.dim {
            return Err(ENOMEM);
        }
        let mut level = level_for(id, self.p.m);
        if self.compact() {
            let (cl, cs) = (self.code_len(), self.code_stride());
            let cstart = self.codes.len();
            self.codes.resize(cstart + cs, 0, GFP_KERNEL)?;
            let unit = self.unit.get_mut(..m.len()).ok_or(ENOMEM)?;
            unit.copy_from_slice(m);
            let f = vecmath::unit_factor(unit);
            vecmath::apply_unit(unit, f);
            let block = &mut self.codes[cstart..];
            let (factor, err2) = vecmath::encode(unit, &mut block[..cl]);
            let err = vecmath::err_bound(err2);
            block[cl] = u64::from(factor);
            self.raise_max_err(err);
            self.units.push(f, GFP_KERNEL)?;
            if self.signed() {
                let (ss, sl) = (self.sign_stride(), self.sign_len());
                let sstart = self.signs.len();
                self.signs.resize(sstart + ss, 0, GFP_KERNEL)?;
                let rot = self.rot.get_mut(..m.len()).ok_or(ENOMEM)?;
                for (r, &u) in rot.iter_mut().zip(self.unit.iter()) {
                    *r = i64::from(u);
                }
                vecmath::rotate(rot);
                let (l1, set) = vecmath::sign_code(rot, &mut self.signs[sstart + 1..][..sl]);
                let inv = (1u64 << 62).checked_div(l1).unwrap_or(0);
                // A nonzero unit vector has l1 >= 2^29, so inv <= 2^33.
                self.signs[sstart] = inv.min((1 << 48) - 1) | (u64::from(set) << 48);
            }
            if factor == 0 {
                // A zero vector: at distance 1 from everything, useless for routing.
                level = 0;
            }
        } else {
            self.vecs.extend_from_slice(m, GFP_KERNEL)?;
            self.scales.push(scale, GFP_KERNEL)?;
        }
        self.push_node(id, slot, level)
    }

    /// Fails with `ENOMEM` unless `reserve` made room for one more node.
    fn push_room(&self) -> Result {
        // The id map must keep free slots (`reserve` sizes it).
        if (self.len() + 1) * 2 > self.map.len() || u32::try_from(self.len()).is_err() {
            return Err(ENOMEM);
        }
        Ok(())
    }

    /// Ends a push: the node's id, record and level, no links yet.
    fn push_node(&mut self, id: u64, slot: u64, level: u32) -> Result<u32> {
        let node = self.len() as u32;
        self.ids.push(id, GFP_KERNEL)?;
        self.slots.push(slot, GFP_KERNEL)?;
        self.deleted.push(false, GFP_KERNEL)?;
        self.levels.push(level as u8, GFP_KERNEL)?;
        self.upper_at.push(u32::MAX, GFP_KERNEL)?;
        let stride = self.stride0();
        self.links0
            .resize(self.links0.len() + stride, u32::MAX, GFP_KERNEL)?;
        if self.unsaved.len() <= node as usize / 64 {
            self.unsaved.push(0, GFP_KERNEL)?;
        }
        self.touch(node);
        Self::map_put(&mut self.map, &self.ids, node);
        self.live += 1;
        Ok(node)
    }

    /// Notes that the saved entry of `node` changed.
    #[inline]
    fn touch(&mut self, node: u32) {
        if let Some(w) = self.unsaved.get_mut(node as usize / 64) {
            *w |= 1 << (node % 64);
        }
    }

    /// Whether the saved entry of `node` ([`Index::save_node`]) may differ from what the last
    /// save ([`Index::mark_saved`]) or restore ([`Index::restore_node`]) found it to be.
    pub(crate) fn unsaved(&self, node: u32) -> bool {
        self.unsaved
            .get(node as usize / 64)
            .is_none_or(|w| w & (1 << (node % 64)) != 0)
    }

    /// The CRC32C of the saved entry of `node`, if the last save found it and it did not
    /// change since ([`Index::unsaved`]).
    pub(crate) fn saved_crc(&self, node: u32) -> Option<u32> {
        match self.unsaved(node) {
            true => None,
            false => self.saved_crcs.get(node as usize).copied(),
        }
    }

    /// Notes the CRC32C of the saved entry of `node`, for [`Index::saved_crc`]; the nodes
    /// before it must have theirs.
    pub(crate) fn set_saved_crc(&mut self, node: u32, crc: u32) -> Result {
        let (n, known) = (node as usize, self.saved_crcs.len());
        match self.saved_crcs.get_mut(n) {
            Some(c) => *c = crc,
            None if n == known => self.saved_crcs.push(crc, GFP_KERNEL)?,
            None => return Err(EINVAL),
        }
        Ok(())
    }

    /// Bytes of the saved entry of `node` ([`Index::save_node`]).
    pub(crate) fn saved_entry_len(&self, node: u32) -> usize {
        self.saved_len(u32::from(self.levels[node as usize]), self.compact())
    }

    /// Notes that every node's saved entry is now what [`Index::save_node`] gives.
    pub(crate) fn mark_saved(&mut self) {
        self.unsaved.iter_mut().for_each(|w| *w = 0);
    }

    /// Raises the index's bound of the compact copies' error to `err`; every saved entry
    /// holds that bound, so all of them change.
    fn raise_max_err(&mut self, err: u64) {
        if err > self.max_err {
            self.max_err = err;
            self.unsaved.iter_mut().for_each(|w| *w = !0);
        }
    }

    /// Removes the nodes from `len` on (added by `push` but not linked into the graph).
    pub(crate) fn truncate(&mut self, len: usize) {
        if self.len() <= len {
            return;
        }
        for node in len..self.len() {
            self.live -= usize::from(!self.deleted[node]);
        }
        self.ids.truncate(len);
        self.slots.truncate(len);
        self.deleted.truncate(len);
        self.levels.truncate(len);
        self.scales.truncate(len);
        self.units.truncate(len);
        self.upper_at.truncate(len);
        self.unsaved.truncate(len.div_ceil(64));
        self.saved_crcs.truncate(len);
        self.vecs.truncate(len * self.p.dim);
        self.codes
            .truncate(self.codes.len().min(len * self.code_stride()));
        self.signs
            .truncate(self.signs.len().min(len * self.sign_stride()));
        self.links0.truncate(len * self.stride0());
        self.rehash();
    }

    /// Rebuilds the id map (after removing nodes).
    fn rehash(&mut self) {
        self.map.iter_mut().for_each(|e| *e = 0);
        for node in 0..self.len() as u32 {
            // Later nodes of the same id replace earlier (deleted) ones, as at insertion.
            Self::map_put(&mut self.map, &self.ids, node);
        }
    }

    /// Marks the node of live vector `id` deleted; returns its record number.
    pub(crate) fn delete(&mut self, id: u64) -> Option<u64> {
        let node = self.find(id)?;
        Some(self.delete_node(node))
    }

    /// Marks live `node` deleted (an upsert replacing it, after a newer node of its id was
    /// pushed); returns its record number.
    pub(crate) fn delete_node(&mut self, node: u32) -> u64 {
        let n = node as usize;
        if !self.deleted[n] {
            self.deleted[n] = true;
            self.live -= 1;
            self.touch(node);
        }
        self.slots[n]
    }

    /// The exact vector of `node` (L2 and inner product: a cosine index keeps none).
    #[inline]
    fn vec(&self, node: u32) -> VecRef<'_> {
        let d = self.p.dim;
        let n = node as usize;
        VecRef {
            m: &self.vecs[n * d..][..d],
            scale: self.scales[n],
        }
    }

    /// The compact codes of `node`.
    #[inline]
    fn codes_of(&self, node: u32) -> &[u64] {
        &self.codes[node as usize * self.code_stride()..][..self.code_len()]
    }

    /// The factor of the compact copy of `node`.
    #[inline]
    fn factor(&self, node: u32) -> u32 {
        self.codes[node as usize * self.code_stride() + self.code_len()] as u32
    }

    /// Prefetches the links of `node` on `level` (level 0 only: the upper levels are small).
    #[inline(always)]
    fn prefetch_links(&self, node: u32, level: u32) {
        if level == 0 {
            let s = self.stride0();
            if let Some(row) = self.links0.get(node as usize * s..(node as usize + 1) * s) {
                // 16 links a cache line.
                for l in row.iter().step_by(16) {
                    prefetch(l);
                }
                if let Some(l) = row.last() {
                    prefetch(l);
                }
            }
        }
    }

    /// Prefetches what a distance to `node` reads.
    #[inline(always)]
    fn prefetch_node(&self, node: u32) {
        if self.compact() {
            // Eight words a cache line.
            // Whole cache lines, eight words each.
            let cs = self.code_stride();
            let base = node as usize * cs;
            let mut i = 0;
            while i < cs {
                if let Some(w) = self.codes.get(base + i) {
                    prefetch(w);
                }
                i += 8;
            }
        } else {
            let v = self.vec(node).m;
            let mut i = 0;
            while i < v.len() {
                prefetch(&v[i]);
                i += 16;
            }
        }
    }

    /// The traversal key of `node` for the query in `s`: the compact key under cosine (minus
    /// the code dot product times the node's factor: it orders like the compact distance),
    /// the exact key otherwise.
    #[inline(always)]
    fn key(&self, s: &Scratch, node: u32) -> i64 {
        if self.compact() {
            let cs = self.code_stride();
            let cl = self.code_len();
            let block = &self.codes[node as usize * cs..][..cs];
            let dot = dot_words(&block[..cl], &s.qcodes);
            -(i64::from(dot) * i64::from(block[cl] as u32))
        } else {
            self.exact_kept(s, node).key()
        }
    }

    /// The sign key of `node` for the query in `s` (nodes with sign codes): minus `<s, q> /
    /// ||x||_1` ([`vecmath::sign_code`]) in units of the query's codes, which orders like the
    /// estimated distance (every rotated unit vector has the same norm).
    #[inline(always)]
    fn sign_key(&self, s: &Scratch, node: u32) -> i64 {
        let ss = self.sign_stride();
        let code = &self.signs[node as usize * ss..][..ss];
        let (inv, set) = ((code[0] & ((1 << 48) - 1)) as i64, (code[0] >> 48) as i64);
        let dot = vecmath::sign_dot(&code[1..][..self.sign_len()], &s.qplanes);
        // <s, q - 8> with s = +-1: 2 (sum of the codes where s = +1) - sum of all codes -
        // 8 (set - unset). At most 7 dim in magnitude, below 2^15.
        let n = 2 * dot - s.qsum - 16 * set + 8 * self.p.dim as i64;
        -(n * inv)
    }

    /// Prefetches the sign code of `node`.
    #[inline(always)]
    fn prefetch_sign(&self, node: u32) {
        let ss = self.sign_stride();
        let base = node as usize * ss;
        let mut i = 0;
        while i < ss {
            if let Some(w) = self.signs.get(base + i) {
                prefetch(w);
            }
            i += 8;
        }
    }

    /// An `i64` that orders exact distances like [`Value::key`]: under cosine every distance
    /// has the same exponent and its numerator (in `[0, 2^61]`) is enough.
    #[inline]
    fn rank_key(&self, v: Value) -> i64 {
        if self.compact() {
            v.v as i64
        } else {
            v.key()
        }
    }

    /// The exact distance of `node` to the query in `s` (L2 and inner product).
    #[inline]
    fn exact_kept(&self, s: &Scratch, node: u32) -> Value {
        let q = VecRef {
            m: &s.qm,
            scale: s.qscale,
        };
        distance(self.p.metric, q, self.vec(node))
    }

    /// The exact distance of `node` to the query in `s`; under cosine its vector is read
    /// from `recs` and normalised as at insertion.
    fn exact(&self, s: &mut Scratch, node: u32, recs: &mut impl Records) -> Result<Value> {
        if !self.compact() {
            return Ok(self.exact_kept(s, node));
        }
        let n = node as usize;
        let d = self.p.dim;
        if s.xm.len() != d {
            s.xm.resize(d, 0, GFP_KERNEL)?;
        }
        recs.vector(self.slots[n], self.ids[n], &mut s.xm)?;
        vecmath::apply_unit(&mut s.xm, self.units[n]);
        let x = VecRef {
            m: &s.xm,
            scale: vecmath::UNIT_BITS,
        };
        let q = VecRef {
            m: &s.qm,
            scale: s.qscale,
        };
        Ok(distance(self.p.metric, q, x))
    }

    /// The traversal key of node `b` with node `a` as the query (for the neighbour
    /// selection; like [`Index::key`], it leaves out the factor of `a`). `aq` holds the
    /// codes of `a` in query form (cosine only).
    #[inline]
    fn key_between(&self, a: u32, aq: &[u64], b: u32) -> i64 {
        if self.compact() {
            let dot = dot_words(self.codes_of(b), aq);
            -(i64::from(dot) * i64::from(self.factor(b)))
        } else {
            distance(self.p.metric, self.vec(a), self.vec(b)).key()
        }
    }

    /// Appends the codes of `node` in query form to `out` (cosine only).
    fn push_query_codes(&self, node: u32, out: &mut KVVec<u64>) -> Result {
        if self.compact() {
            let at = out.len();
            out.resize(at + self.query_len(), 0, GFP_KERNEL)?;
            vecmath::query_form(self.codes_of(node), &mut out[at..]);
        }
        Ok(())
    }

    #[inline(always)]
    fn links(&self, node: u32, level: u32) -> &[u32] {
        let row = self.row(node, level);
        let cnt = row.iter().position(|&x| x == u32::MAX).unwrap_or(row.len());
        &row[..cnt]
    }

    /// The link slots of `node` on `level`.
    #[inline(always)]
    fn row(&self, node: u32, level: u32) -> &[u32] {
        let n = node as usize;
        if level == 0 {
            let s = self.stride0();
            &self.links0[n * s..][..s]
        } else {
            let w = self.p.m;
            let at = self.upper_at[n] as usize + (level as usize - 1) * w;
            &self.upper[at..][..w]
        }
    }

    fn set_links(&mut self, node: u32, level: u32, new: &[u32]) {
        let n = node as usize;
        let row = if level == 0 {
            let s = self.stride0();
            &mut self.links0[n * s..][..s]
        } else {
            let w = self.p.m;
            let at = self.upper_at[n] as usize + (level as usize - 1) * w;
            &mut self.upper[at..][..w]
        };
        for (i, slot) in row.iter_mut().enumerate() {
            *slot = new.get(i).copied().unwrap_or(u32::MAX);
        }
        self.touch(node);
    }

    fn max_links(&self, level: u32) -> usize {
        if level == 0 {
            2 * self.p.m
        } else {
            self.p.m
        }
    }

    /// Prepares the query `m` (mantissas at `scale`) in `s`.
    pub(crate) fn set_query(&self, s: &mut Scratch, m: &[i32], scale: i32) -> Result {
        s.qm.clear();
        s.qm.extend_from_slice(m, GFP_KERNEL)?;
        s.qscale = scale;
        if self.compact() {
            vecmath::normalize(&mut s.qm);
            s.qscale = vecmath::UNIT_BITS;
            let l = self.code_len();
            s.baseq.clear();
            s.baseq.resize(l, 0, GFP_KERNEL)?;
            let (f, e) = vecmath::encode(&s.qm, &mut s.baseq);
            s.qcodes.clear();
            s.qcodes.resize(self.query_len(), 0, GFP_KERNEL)?;
            vecmath::query_form(&s.baseq, &mut s.qcodes);
            s.qfactor = f;
            s.qerr2 = e;
            if self.signed() {
                s.qrot.clear();
                s.qrot.reserve(s.qm.len(), GFP_KERNEL)?;
                for &x in s.qm.iter() {
                    s.qrot.push(i64::from(x), GFP_KERNEL)?;
                }
                self.set_query_signs(s)?;
            }
        }
        Ok(())
    }

    /// Makes the query form of sign codes from the query vector in `s.qrot` (the unit
    /// vector, or the codes of a node) and `s.qfactor`.
    ///
    /// A sign key `-n * inv` ([`Index::sign_key`]) estimates the cosine as `n * (max / 7) *
    /// |x| / (||x||_1 * |q|)` with `inv = 2^62 / ||x||_1`, `max` the largest rotated query
    /// element, `|q|` the rotated query's norm and `|x| = 2^30 sqrt(b)` that of every
    /// rotated unit vector (`b` the block of [`vecmath::rotate`]); a compact key is `-cos *
    /// 2^76 / qfactor`. So a sign key times `max sqrt(b) 2^44 / (7 |q| qfactor)` estimates
    /// the compact key, within about `0.75 / sqrt(dim)` in cosine (RaBitQ's bound, and what
    /// this data shows); the margin is [`SIGN_MARGIN`] of that.
    fn set_query_signs(&self, s: &mut Scratch) -> Result {
        vecmath::rotate(&mut s.qrot);
        s.qplanes.clear();
        s.qplanes.resize(4 * self.sign_len(), 0, GFP_KERNEL)?;
        s.qsum = vecmath::sign_query(&s.qrot, &mut s.qplanes);
        let max = s.qrot.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
        // Elements below 2^39: the squares add up below 2^90.
        let norm = vecmath::isqrt(
            s.qrot
                .iter()
                .map(|v| u128::from(v.unsigned_abs()).pow(2))
                .sum(),
        );
        let b = vecmath::rotate_block(self.p.dim) as u128;
        let den = 7 * norm * u128::from(s.qfactor);
        (s.qconv, s.qmargin) = if den == 0 {
            (0, 0)
        } else {
            // max * sqrt(b) * 2^16 < 2^59, times 2^44: below 2^103.
            let num = (u128::from(max) * vecmath::isqrt(b << 32)) << 44;
            let conv = vecmath::div_u128(num, den).min(u128::from(u64::MAX)) as u64;
            let unit = vecmath::div_u128(1 << 76, u128::from(s.qfactor));
            let margin = vecmath::div_u128(
                unit * SIGN_MARGIN.0,
                SIGN_MARGIN.1 * vecmath::isqrt(self.p.dim as u128),
            );
            (conv, margin.min(i64::MAX as u128 / 2) as i64)
        };
        Ok(())
    }

    /// Makes the query of `s` the vector of `node` (for linking it).
    fn set_query_node(&self, s: &mut Scratch, node: u32) -> Result {
        if self.compact() {
            // The traversal needs only the compact copy.
            s.qcodes.clear();
            s.qcodes.resize(self.query_len(), 0, GFP_KERNEL)?;
            vecmath::query_form(self.codes_of(node), &mut s.qcodes);
            s.qfactor = self.factor(node);
            if self.signed() {
                s.qrot.clear();
                s.qrot.reserve(self.p.dim, GFP_KERNEL)?;
                for &w in self.codes_of(node) {
                    for c in vecmath::unpack(w) {
                        if s.qrot.len() < self.p.dim {
                            s.qrot.push(c, GFP_KERNEL)?;
                        }
                    }
                }
                self.set_query_signs(s)?;
            }
        } else {
            let v = self.vec(node);
            s.qm.clear();
            s.qm.extend_from_slice(v.m, GFP_KERNEL)?;
            s.qscale = v.scale;
        }
        Ok(())
    }

    /// Greedy search on `level` from `ep` towards the query.
    fn greedy(&self, s: &mut Scratch, mut ep: (i64, u32), level: u32) -> (i64, u32) {
        loop {
            let mut best = ep;
            for &nb in self.links(ep.1, level) {
                self.prefetch_node(nb);
            }
            for &nb in self.links(ep.1, level) {
                let c = (self.key(s, nb), nb);
                s.stats.distances += 1;
                if c < best {
                    best = c;
                }
            }
            if best == ep {
                return ep;
            }
            ep = best;
        }
    }

    /// Beam search on `level` from `ep`: leaves the `ef` nearest nodes found for which
    /// `admit` holds in `s.best` (a max-heap: not sorted). Nodes `admit` rejects are
    /// traversed like the others but never enter `s.best` (the filtered search of
    /// hnswlib and FAISS): the graph stays connected, and the search goes on until it has
    /// `ef` admitted nodes nearer than every candidate left.
    fn search_layer(
        &self,
        s: &mut Scratch,
        ep: (i64, u32),
        ef: usize,
        level: u32,
        admit: impl Fn(u32) -> bool,
    ) -> Result {
        let ef = ef.max(1);
        let signed = self.signed();
        s.begin(self.len())?;
        s.near.clear();
        s.near.reserve(ef + 1, GFP_KERNEL)?;
        s.best.clear();
        s.best.reserve(ef + 1, GFP_KERNEL)?;
        s.visit(ep.1);
        heap_push(&mut s.near, Reverse(ep))?;
        if admit(ep.1) {
            heap_push(&mut s.best, ep)?;
        }
        while let Some(Reverse(c)) = heap_pop(&mut s.near) {
            if let Some(&w) = s.best.first() {
                if s.best.len() >= ef && c > w {
                    break;
                }
            }
            if let Some(&Reverse(n)) = s.near.first() {
                self.prefetch_links(n.1, level);
            }
            s.stats.expanded += 1;
            // The neighbours not seen yet, prefetched before their distances are taken.
            // Without a branch per link: which links were visited is unpredictable.
            let batch = &mut s.batch;
            let mut n = 0;
            for &nb in self.links(c.1, level) {
                let t = &mut s.tags[nb as usize];
                let new = *t != s.epoch;
                *t = s.epoch;
                if let Some(b) = batch.get_mut(n) {
                    *b = nb;
                    n += usize::from(new);
                }
            }
            // All distances first: they are independent, and the processor overlaps them
            // better without the heap updates in between.
            let worst = match s.best.first() {
                Some(&(w, _)) if signed && s.best.len() >= ef => Some(w),
                _ => None,
            };
            if let Some(worst) = worst {
                // With a full list and sign codes: nodes whose sign code puts them clearly
                // beyond the list are passed over; the others get their compact key below.
                for &nb in &s.batch[..n] {
                    self.prefetch_sign(nb);
                }
                let bar = i128::from(worst) + i128::from(s.qmargin);
                let mut kept = 0;
                for i in 0..n {
                    let nb = s.batch[i];
                    // Below 2^48 times below 2^64: the product cannot wrap.
                    let est =
                        i128::from(self.sign_key(s, nb)).wrapping_mul(i128::from(s.qconv)) >> 16;
                    if est <= bar {
                        s.batch[kept] = nb;
                        kept += 1;
                    }
                }
                s.stats.passed += (n - kept) as u64;
                n = kept;
            }
            for &nb in &s.batch[..n] {
                self.prefetch_node(nb);
            }
            for i in 0..n {
                s.keys_batch[i] = self.key(s, s.batch[i]);
            }
            s.stats.distances += n as u64;
            for i in 0..n {
                let (key, nb) = (s.keys_batch[i], s.batch[i]);
                let e = (key, nb);
                let full = s.best.len() >= ef;
                if full && s.best.first().is_some_and(|&w| e >= w) {
                    continue;
                }
                // Likely to be expanded soon.
                self.prefetch_links(nb, level);
                heap_push(&mut s.near, Reverse(e))?;
                if admit(nb) {
                    heap_push(&mut s.best, e)?;
                    if full {
                        heap_pop(&mut s.best);
                    }
                }
            }
        }
        Ok(())
    }

    /// The factor that makes traversal keys taken from different query nodes comparable
    /// (a compact key leaves out the query's factor).
    #[inline]
    fn query_factor(&self, node: u32) -> i128 {
        if self.compact() {
            i128::from(self.factor(node))
        } else {
            1
        }
    }

    /// Whether nodes `a` and `b` hold the same vector (for cosine: the same compact copy).
    #[inline]
    fn same(&self, a: u32, b: u32) -> bool {
        if self.compact() {
            self.factor(a) == self.factor(b) && self.codes_of(a) == self.codes_of(b)
        } else {
            let (x, y) = (self.vec(a), self.vec(b));
            x.scale == y.scale && x.m == y.m
        }
    }

    /// The neighbour selection heuristic: from `s.cands` (sorted, nearest to the base first;
    /// keys taken with the base as query, whose factor is `base`), into `s.sel`, up to `m`
    /// nodes that are not nearer to a node already selected than to the base, filled up with
    /// the pruned ones if `keep_pruned`. Of candidates holding the same vector (and zero
    /// vectors under cosine), at most two are kept (see below), never used to fill up: a
    /// list does not fill with copies of one point.
    fn select(&self, s: &mut Scratch, m: usize, keep_pruned: bool, base: i128) -> Result {
        s.sel.clear();
        s.sel.reserve(m, GFP_KERNEL)?;
        s.selq.clear();
        s.selq.reserve(m * self.query_len(), GFP_KERNEL)?;
        let l = self.query_len();
        let mut pruned = 0;
        for i in 0..s.cands.len() {
            if s.sel.len() >= m {
                break;
            }
            let c = s.cands[i];
            let from_base = i128::from(c.key) * base;
            let mut good = true;
            let (mut copies, mut last) = (0, 0);
            for (j, &x) in s.sel.iter().enumerate() {
                if self.same(x, c.node) {
                    copies += 1;
                    last = j;
                } else if good {
                    let xq = s.selq.get(j * l..(j + 1) * l).unwrap_or(&[]);
                    if i128::from(self.key_between(x, xq, c.node)) * self.query_factor(x)
                        < from_base
                    {
                        good = false;
                    }
                }
            }
            match copies {
                0 => {}
                // Of a group of equal vectors, keep the lowest-numbered and the newest: every
                // member then links to the first, and each to the next one inserted, so the
                // whole group stays reachable however large it is.
                1 => {
                    s.sel.push(c.node, GFP_KERNEL)?;
                    self.push_query_codes(c.node, &mut s.selq)?;
                    continue;
                }
                _ => {
                    // Same codes: the query form at `last` stays right.
                    s.sel[last] = c.node;
                    continue;
                }
            }
            if good {
                s.sel.push(c.node, GFP_KERNEL)?;
                self.push_query_codes(c.node, &mut s.selq)?;
            } else {
                // Keep the pruned ones in order at the front of the list.
                s.cands[pruned] = c;
                pruned += 1;
            }
        }
        if keep_pruned {
            for i in 0..pruned {
                if s.sel.len() >= m {
                    break;
                }
                let c = s.cands[i].node;
                if !s.sel.iter().any(|&x| self.same(x, c)) {
                    s.sel.push(c, GFP_KERNEL)?;
                }
            }
        }
        Ok(())
    }

    /// Links node `node` (already pushed) into the graph. On error the graph may miss some
    /// links of the node but stays valid.
    pub(crate) fn link(&mut self, node: u32, s: &mut Scratch) -> Result {
        let level = u32::from(self.levels[node as usize]);
        if level > 0 {
            let at = u32::try_from(self.upper.len()).map_err(|_| ENOMEM)?;
            let add = level as usize * self.p.m;
            self.upper
                .resize(self.upper.len() + add, u32::MAX, GFP_KERNEL)?;
            self.upper_at[node as usize] = at;
        }
        let Some((entry, top)) = self.entry else {
            self.entry = Some((node, level));
            return Ok(());
        };
        if self.compact() && self.factor(entry) == 0 && self.factor(node) != 0 {
            // The entry is a zero vector (only while nothing else was inserted): hand over.
            self.entry = Some((node, level));
            return self.link_from(node, entry, 0, s);
        }
        self.set_query_node(s, node)?;
        s.stats = Stats::default();
        let mut ep = (self.key(s, entry), entry);
        let mut l = top;
        while l > level {
            ep = self.greedy(s, ep, l);
            l -= 1;
        }
        let mut lv = i64::from(level.min(top));
        while lv >= 0 {
            let l = lv as u32;
            self.search_layer(s, ep, self.p.ef_construction, l, |_| true)?;
            s.best.sort_unstable();
            let first = s.best.first().copied().unwrap_or(ep);
            s.cands.clear();
            s.cands.reserve(s.best.len(), GFP_KERNEL)?;
            for i in 0..s.best.len() {
                let (key, c) = s.best[i];
                if c != node {
                    s.cands.push(Cand::new(key, c), GFP_KERNEL)?;
                }
            }
            // The inner product is no metric: its heuristic prunes so much that the lists are
            // filled up with pruned candidates, or nodes of small norm lose their links.
            let keep = self.p.metric == Metric::Ip;
            self.select(s, self.p.m, keep, self.query_factor(node))?;
            let mut sel: KVec<u32> = KVec::with_capacity(s.sel.len(), GFP_KERNEL)?;
            sel.extend_from_slice(&s.sel, GFP_KERNEL)?;
            self.set_links(node, l, &sel);
            for &nb in sel.iter() {
                self.add_link(nb, node, l, s)?;
            }
            ep = first;
            lv -= 1;
        }
        if level > top && !(self.compact() && self.factor(node) == 0) {
            self.entry = Some((node, level));
        }
        Ok(())
    }

    /// Links `node` and `other` both ways on `level` (the first links of a graph).
    fn link_from(&mut self, node: u32, other: u32, level: u32, s: &mut Scratch) -> Result {
        self.set_links(node, level, &[other]);
        self.add_link(other, node, level, s)
    }

    /// Adds link `from -> to` on `level`; when the list is full, it is chosen again among the
    /// old links and the new one with the selection heuristic (without the pruned ones, which
    /// leaves room for later links).
    fn add_link(&mut self, from: u32, to: u32, level: u32, s: &mut Scratch) -> Result {
        let max = self.max_links(level);
        let cur = self.links(from, level);
        if cur.contains(&to) {
            return Ok(());
        }
        if cur.len() < max {
            let mut l = [0u32; 2 * 64 + 1];
            let n = cur.len();
            l[..n].copy_from_slice(cur);
            l[n] = to;
            self.set_links(from, level, &l[..n + 1]);
            return Ok(());
        }
        s.cands.clear();
        s.cands.reserve(cur.len() + 1, GFP_KERNEL)?;
        s.baseq.clear();
        if self.compact() {
            s.baseq.resize(self.query_len(), 0, GFP_KERNEL)?;
            vecmath::query_form(self.codes_of(from), &mut s.baseq);
        }
        for &c in Iterator::chain(cur.iter(), core::iter::once(&to)) {
            let key = self.key_between(from, &s.baseq, c);
            s.cands.push(Cand::new(key, c), GFP_KERNEL)?;
        }
        s.cands.sort_unstable_by_key(|c| c.order());
        self.select(s, max, false, self.query_factor(from))?;
        let mut l = [0u32; 2 * 64 + 1];
        let n = s.sel.len().min(l.len());
        l[..n].copy_from_slice(&s.sel[..n]);
        self.set_links(from, level, &l[..n]);
        Ok(())
    }

    /// The `k` nearest live vectors to the query prepared in `s` ([`Index::set_query`]) that
    /// `filter` admits (all without one), nearest first, by exact distance. Exact: every
    /// admitted vector is considered; otherwise an HNSW search with a candidate list of `ef`
    /// (at least `k`), unless the filter admits so few vectors that considering each of them
    /// costs less ([`Index::scan_pays`]), which is then done instead. Under cosine the exact
    /// vectors of the candidates it rescores come from `recs`. The counters of the search are
    /// left in `s.stats`.
    pub(crate) fn search<'a>(
        &self,
        s: &'a mut Scratch,
        k: usize,
        ef: usize,
        exact: bool,
        filter: Option<&Filter>,
        recs: &mut impl Records,
    ) -> Result<&'a [Hit]> {
        s.stats = Stats::default();
        s.stats.admitted = filter.map_or(self.live, |f| f.admitted) as u64;
        s.hits.clear();
        s.hits.reserve(k + 1, GFP_KERNEL)?;
        if exact || filter.is_some_and(|f| self.scan_pays(f, ef.max(k))) {
            s.stats.scanned = true;
            self.scan(s, k, filter, recs)?;
        } else {
            self.search_graph(s, k, ef, filter, recs)?;
        }
        Ok(&s.hits)
    }

    /// Whether an exact scan of what `f` admits costs less than a filtered HNSW search at
    /// `ef`. An HNSW search computes about `16 ef` distances (M 16, ef 64: 1100 at 10^4
    /// vectors, 1300 at 10^5), and a filtered one admitting a share `a / n` of the `n`
    /// vectors about `n / a` times that; a scan computes `a` (distances to the vectors of an
    /// allow-list; a range is checked on the ids first, at a small fraction of a distance
    /// each). So a scan pays when `a^2 <= 16 ef n`: up to 40% of 10^4 vectors at ef 64, 10% of
    /// 10^5. Besides, it is exact.
    fn scan_pays(&self, f: &Filter, ef: usize) -> bool {
        let a = f.admitted as u64;
        a.saturating_mul(a)
            <= 16u64
                .saturating_mul(ef as u64)
                .saturating_mul(self.live as u64)
    }

    /// The HNSW search of [`Index::search`], into `s.hits`.
    fn search_graph(
        &self,
        s: &mut Scratch,
        k: usize,
        ef: usize,
        filter: Option<&Filter>,
        recs: &mut impl Records,
    ) -> Result {
        let Some((entry, level)) = self.entry else {
            return Ok(());
        };
        let mut ep = (self.key(s, entry), entry);
        let mut l = level;
        while l > 0 {
            ep = self.greedy(s, ep, l);
            l -= 1;
        }
        match filter {
            None => self.search_layer(s, ep, ef.max(k), 0, |_| true)?,
            Some(f) => self.search_layer(s, ep, ef.max(k), 0, |n| self.admits(f, n))?,
        }
        // Rescore the nearest candidates exactly: on the exact vectors, the traversal's
        // ranking errors only reorder candidates of nearly equal distance, so those beyond
        // the first `rescore(k)` live ones essentially never enter the k nearest.
        let want = if self.compact() {
            rescore(k)
        } else {
            usize::MAX
        };
        if want < s.best.len() && (self.live == self.len() || filter.is_some()) {
            // Without deleted nodes (a filter admits none) the `want` nearest suffice, in
            // any order.
            s.best.select_nth_unstable(want - 1);
        } else {
            s.best.sort_unstable();
            s.best.retain(|&mut (_, n)| !self.deleted[n as usize]);
        }
        s.best.truncate(want);
        if !self.compact() {
            for &(_, node) in s.best.iter() {
                self.prefetch_exact(node);
            }
        }
        for i in 0..s.best.len() {
            let node = s.best[i].1;
            let dist = self.exact(s, node, recs)?;
            s.stats.rescored += 1;
            hits_insert(&mut s.hits, k, node, self.rank_key(dist), dist)?;
        }
        Ok(())
    }

    /// A filter admitting the live vectors whose id is in `lo..=hi` and, with `listed`, in
    /// the list then given to [`Index::filter_allow`] (ids not in the index are ignored);
    /// [`Index::filter_end`] completes it.
    pub(crate) fn filter_begin(&self, lo: u64, hi: u64, listed: bool) -> Result<Filter> {
        let mut f = Filter {
            lo,
            hi,
            listed,
            bits: KVVec::new(),
            nodes: KVVec::new(),
            admitted: 0,
        };
        if listed {
            f.bits.resize(self.len().div_ceil(64), 0, GFP_KERNEL)?;
        }
        Ok(f)
    }

    /// Adds `id` to the allow-list of `f`.
    pub(crate) fn filter_allow(&self, f: &mut Filter, id: u64) -> Result {
        if !f.listed || id < f.lo || id > f.hi {
            return Ok(());
        }
        let Some(node) = self.find(id) else {
            return Ok(());
        };
        let (w, b) = (node as usize / 64, 1u64 << (node % 64));
        if f.bits[w] & b == 0 {
            f.bits[w] |= b;
            f.nodes.push(node, GFP_KERNEL)?;
        }
        Ok(())
    }

    /// Completes `f`: counts (with an allow-list) or estimates (from a sample of at most
    /// 4096 nodes) how many live vectors it admits.
    pub(crate) fn filter_end(&self, f: &mut Filter) {
        if f.listed {
            // Scanned in node order: the compact copies are then read in address order.
            f.nodes.sort_unstable();
            f.admitted = f.nodes.len();
            return;
        }
        let n = self.len();
        let step = n.div_ceil(4096).max(1);
        let (mut seen, mut hit) = (0usize, 0usize);
        for node in (0..n).step_by(step) {
            if !self.deleted[node] {
                seen += 1;
                hit += usize::from(self.admits(f, node as u32));
            }
        }
        f.admitted = if seen == 0 {
            0
        } else {
            // At most 4096 * live: no overflow.
            (hit * self.live).div_ceil(seen)
        };
    }

    /// Whether `f` admits `node`.
    #[inline(always)]
    fn admits(&self, f: &Filter, node: u32) -> bool {
        let n = node as usize;
        let id = self.ids[n];
        !self.deleted[n]
            && id >= f.lo
            && id <= f.hi
            && (!f.listed || f.bits[n / 64] & (1 << (n % 64)) != 0)
    }

    /// Prefetches the exact vector of `node` (L2 and inner product).
    fn prefetch_exact(&self, node: u32) {
        let v = self.vec(node).m;
        let mut i = 0;
        while i < v.len() {
            prefetch(&v[i]);
            i += 16;
        }
    }

    /// Exact search. Under cosine: a scan of the compact copy, then the exact distance of
    /// every vector whose compact key is within twice the proven error bound of the `k`-th
    /// smallest compact key (no other can be among the `k` nearest). Otherwise a scan of the
    /// exact vectors.
    fn scan(
        &self,
        s: &mut Scratch,
        k: usize,
        filter: Option<&Filter>,
        recs: &mut impl Records,
    ) -> Result {
        let all = 0..self.len() as u32;
        if !self.compact() {
            return match filter {
                None => self.scan_kept(s, k, all.filter(|&n| !self.deleted[n as usize])),
                Some(f) if f.listed => {
                    let nodes = f.nodes.iter().copied();
                    self.scan_kept(s, k, nodes.filter(|&n| self.admits(f, n)))
                }
                Some(f) => self.scan_kept(s, k, all.filter(|&n| self.admits(f, n))),
            };
        }
        let cs = self.code_stride();
        // The admitted nodes with their copies, counted.
        let seen = Cell::new(0u64);
        let code = |n: u32| {
            seen.set(seen.get() + 1);
            (n, &self.codes[n as usize * cs..][..cs])
        };
        match filter {
            // Every copy in order, and the deletion mark tested only for those within the
            // bound: the common case, kept tight.
            None => {
                let codes = self.codes.chunks_exact(cs).enumerate();
                let codes = codes.map(|(n, c)| (n as u32, c));
                self.scan_compact(s, k, codes, |n| self.deleted[n as usize], recs)?;
                seen.set(self.len() as u64);
            }
            // An allow-list names its nodes (ascending, admitted but for the range).
            Some(f) if f.listed => {
                let nodes = f.nodes.iter().copied().filter(|&n| self.admits(f, n));
                self.scan_compact(s, k, nodes.map(code), |_| false, recs)?;
            }
            Some(f) => {
                let nodes = all.filter(|&n| self.admits(f, n));
                self.scan_compact(s, k, nodes.map(code), |_| false, recs)?;
            }
        }
        s.stats.distances += seen.get();
        Ok(())
    }

    /// The exact search of [`Index::scan`] on the exact vectors kept in memory, over `nodes`.
    fn scan_kept(&self, s: &mut Scratch, k: usize, nodes: impl Iterator<Item = u32>) -> Result {
        for node in nodes {
            let dist = self.exact_kept(s, node);
            s.stats.rescored += 1;
            hits_insert(&mut s.hits, k, node, self.rank_key(dist), dist)?;
        }
        Ok(())
    }

    /// The exact search of [`Index::scan`] on the compact copies of `codes` (node and copy,
    /// ascending), but for those within the bound that `skip` holds for.
    fn scan_compact<'c>(
        &self,
        s: &mut Scratch,
        k: usize,
        codes: impl Iterator<Item = (u32, &'c [u64])>,
        skip: impl Fn(u32) -> bool,
        recs: &mut impl Records,
    ) -> Result {
        // One pass: the k smallest compact keys so far in s.pool (a sorted list), and in
        // s.cands every vector within the slack of the k-th smallest key at the time it is
        // seen (that key only decreases, so this keeps all the final pass needs).
        let slack = self.scan_slack(s);
        s.pool.clear();
        s.pool.reserve(k + 1, GFP_KERNEL)?;
        s.cands.clear();
        let cl = self.code_len();
        let mut bound = i64::MAX;
        for (node, c) in codes {
            let key = -(i64::from(dot_words(&c[..cl], &s.qcodes)) * i64::from(c[cl] as u32));
            if key > bound || skip(node) {
                continue;
            }
            if pool_insert(&mut s.pool, k, Cand::new(key, node))?.is_some() && s.pool.len() == k {
                bound = s
                    .pool
                    .last()
                    .map_or(i64::MAX, |w| w.key.saturating_add(slack));
            }
            s.cands.push(Cand::new(key, node), GFP_KERNEL)?;
        }
        let Some(kth) = s.pool.last().map(|c| c.key) else {
            return Ok(());
        };
        let limit = kth.saturating_add(slack);
        for i in 0..s.cands.len() {
            let Cand { key, node } = s.cands[i];
            if key <= limit {
                let dist = self.exact(s, node, recs)?;
                s.stats.rescored += 1;
                hits_insert(&mut s.hits, k, node, self.rank_key(dist), dist)?;
            }
        }
        Ok(())
    }

    /// Twice the bound, in units of compact keys, of the difference between a compact key
    /// and the exact distance (see [`Index::scan`]).
    ///
    /// With `x` and `q` the unit vectors, `x~` and `q~` their compact copies, `|x - x~| <=
    /// ex`, `|q - q~| <= eq` ([`vecmath::encode`]) and `|q| <= 1 + 2^-20` (rounding), the
    /// inner products differ by `|x.q - x~.q~| <= ex |q| + |x~| eq <= (1 + 2^-20) (ex + eq) +
    /// ex eq`. A compact key `k` stands for `x~.q~ = -k * qfactor * 2^-76`; the bound, in units
    /// of 2^-76, is divided by the query's factor.
    fn scan_slack(&self, s: &Scratch) -> i64 {
        if s.qfactor == 0 {
            // A zero query: every distance is 1; rescore everything.
            return i64::MAX;
        }
        let (ex, eq) = (
            u128::from(self.max_err),
            u128::from(vecmath::err_bound(s.qerr2)),
        );
        // The last term covers the clamping of exact cosine distances to [0, 2] (at most
        // 2^-23 for unit vectors rounded to 30 bits).
        let b = ((ex + eq) << 38) + (((ex + eq) << 38) >> 20) + ex * eq + (1 << 56);
        // Rounded up (the kernel has no 128-bit division instruction: a long division).
        let units = vecmath::div_u128(b, u128::from(s.qfactor)) + 1;
        i64::try_from(units.saturating_mul(2)).unwrap_or(i64::MAX)
    }

    /// Bytes of the saved traversal data of a node ([`Index::save_node`]): normalising
    /// factor, error bound and factor of the compact copy, the sign code's word and bits, and
    /// the codes of the compact copy, one byte each (padded to 8 bytes).
    fn saved_code_bytes(&self) -> usize {
        let signs = if self.signed() {
            self.sign_len() + 1
        } else {
            0
        };
        8 * (3 + signs) + self.p.dim.next_multiple_of(8)
    }

    /// Bytes of the saved entry of a node on `level`, with its traversal data if `coded`
    /// ([`Index::save_node`]).
    fn saved_len(&self, level: u32, coded: bool) -> usize {
        let code = if coded { self.saved_code_bytes() } else { 0 };
        SAVED_HEAD + 4 * (self.stride0() + level as usize * self.p.m) + code
    }

    /// Length of the saved entry that starts with `head` (at least [`SAVED_HEAD`] bytes), or
    /// `EUCLEAN` if the head is malformed.
    pub(crate) fn saved_len_of(&self, head: &[u8]) -> Result<usize> {
        let level = u32::from(*head.get(16).ok_or(EUCLEAN)?);
        let coded = head[18] == SAVED_CODED;
        if level > MAX_LEVEL
            || head[17] > 1
            || head[18] > SAVED_CODED
            || (coded && !self.compact())
            || head[19..SAVED_HEAD].iter().any(|&b| b != 0)
        {
            return Err(EUCLEAN);
        }
        Ok(self.saved_len(level, coded))
    }

    /// Whether the entries this index saves carry the traversal data of their nodes (a cosine
    /// index: compact copies), so that a restore can do without the vectors.
    pub(crate) fn saves_traversal_data(&self) -> bool {
        self.compact()
    }

    /// Whether a saved entry carries its node's traversal data, so that its restore needs
    /// no vector ([`Index::restore_node`]).
    pub(crate) fn saved_coded(entry: &[u8]) -> bool {
        entry.get(18) == Some(&SAVED_CODED)
    }

    /// Whether a saved entry says its node was deleted.
    pub(crate) fn saved_deleted(entry: &[u8]) -> bool {
        entry.get(17).is_some_and(|&b| b != 0)
    }

    /// The record number a saved entry belongs to.
    pub(crate) fn saved_slot(entry: &[u8]) -> u64 {
        le64(entry, 8)
    }

    /// The entry point and its level, for [`Index::restore_finish`].
    pub(crate) fn entry(&self) -> Option<(u32, u32)> {
        self.entry
    }

    /// Writes the saved entry of `node` into `out` (replacing its contents): id, record
    /// number, level, deleted flag, whether traversal data follows, the link slots of every
    /// level of the node (unused ones `u32::MAX`), then, in a cosine index, the traversal
    /// data: normalising factor, a bound of the compact copy's error (the index's), the
    /// compact copy and its factor, and the sign code word and bits if the index has sign
    /// codes. All integers little-endian.
    pub(crate) fn save_node(&self, node: u32, out: &mut KVec<u8>) -> Result {
        let n = node as usize;
        let level = u32::from(self.levels[n]);
        let coded = self.compact();
        out.clear();
        out.reserve(self.saved_len(level, coded), GFP_KERNEL)?;
        out.extend_from_slice(&self.ids[n].to_le_bytes(), GFP_KERNEL)?;
        out.extend_from_slice(&self.slots[n].to_le_bytes(), GFP_KERNEL)?;
        let mut flags = [0u8; 8];
        flags[0] = self.levels[n];
        flags[1] = u8::from(self.deleted[n]);
        flags[2] = if coded { SAVED_CODED } else { 0 };
        out.extend_from_slice(&flags, GFP_KERNEL)?;
        for l in 0..=level {
            if l > 0 && self.upper_at[n] == u32::MAX {
                // Not linked (cannot happen in an index in use): no links.
                for _ in 0..self.p.m {
                    out.extend_from_slice(&u32::MAX.to_le_bytes(), GFP_KERNEL)?;
                }
                continue;
            }
            for &x in self.row(node, l) {
                out.extend_from_slice(&x.to_le_bytes(), GFP_KERNEL)?;
            }
        }
        if coded {
            let (cl, cs, ss) = (self.code_len(), self.code_stride(), self.sign_stride());
            let code = &self.codes[n * cs..][..cl + 1];
            let sign = match self.signed() {
                true => &self.signs[n * ss..][..self.sign_len() + 1],
                false => &[],
            };
            for w in [self.units[n], self.max_err, code[cl]] {
                out.extend_from_slice(&w.to_le_bytes(), GFP_KERNEL)?;
            }
            for w in sign {
                out.extend_from_slice(&w.to_le_bytes(), GFP_KERNEL)?;
            }
            // The codes, in -CODE_MAX..=CODE_MAX: one signed byte each (zero past the
            // last element), `dim` rounded up to eight bytes in all.
            let mut bytes = [0u8; vecmath::CODES_PER_WORD];
            for &w in &code[..cl] {
                for (b, c) in bytes.iter_mut().zip(vecmath::unpack(w)) {
                    *b = c as i8 as u8;
                }
                out.extend_from_slice(&bytes, GFP_KERNEL)?;
            }
        }
        Ok(())
    }

    /// Adds a node's traversal data from the end of a saved entry (`saved`, the
    /// [`Index::saved_code_bytes`] bytes of [`Index::save_node`]) instead of computing it
    /// from the vector; `EUCLEAN` if a value is out of the range the computation gives, on
    /// which the arithmetic of the search relies. Returns whether the node is a zero vector.
    fn push_saved_code(&mut self, saved: &[u8]) -> Result<bool> {
        let (cl, cs, sl, ss) = (
            self.code_len(),
            self.code_stride(),
            self.sign_len(),
            self.sign_stride(),
        );
        if saved.len() != self.saved_code_bytes() {
            return Err(EUCLEAN);
        }
        let word = |i: usize| le64(saved, 8 * i);
        let (f, err, factor) = (word(0), word(1), word(2));
        // A unit factor packs a reciprocal in [2^56, 2^57] with a shift in 27..=63
        // (`vecmath::unit_factor`); it is zero only for the zero vector, whose codes and
        // compact factor are zero too.
        let (inv, sh) = (f >> 6, f & 0x3f);
        let zero = f == 0;
        let unit_ok = zero || ((1 << 56..=1 << 57).contains(&inv) && (27..=63).contains(&sh));
        if !unit_ok || zero != (factor == 0) || factor > u64::from(u32::MAX) {
            return Err(EUCLEAN);
        }
        let signs = if self.signed() { sl + 1 } else { 0 };
        let (codes, pad) = saved[8 * (3 + signs)..].split_at(self.p.dim);
        let max = if zero { 0 } else { vecmath::CODE_MAX };
        if codes.iter().any(|&b| (b as i8).unsigned_abs() > max as u8)
            || pad.iter().any(|&b| b != 0)
        {
            return Err(EUCLEAN);
        }
        if self.signed() {
            // The first word holds the reciprocal of the L1 norm and the number of bits set,
            // which must be that of the code; bits past the last element are clear.
            let (head, tail) = (word(3), self.p.dim % 64);
            let set: u32 = (1..=sl).map(|i| word(3 + i).count_ones()).sum();
            if u64::from(set) != head >> 48 || (tail != 0 && word(3 + sl) >> tail != 0) {
                return Err(EUCLEAN);
            }
            let start = self.signs.len();
            self.signs.resize(start + ss, 0, GFP_KERNEL)?;
            for (i, w) in self.signs[start..][..=sl].iter_mut().enumerate() {
                *w = word(3 + i);
            }
        }
        let start = self.codes.len();
        self.codes.resize(start + cs, 0, GFP_KERNEL)?;
        let block = &mut self.codes[start..][..=cl];
        for (w, c) in block.iter_mut().zip(codes.chunks(vecmath::CODES_PER_WORD)) {
            let mut q = [0i64; vecmath::CODES_PER_WORD];
            for (q, &b) in q.iter_mut().zip(c) {
                *q = i64::from(b as i8);
            }
            *w = vecmath::pack(q);
        }
        block[cl] = factor;
        self.units.push(f, GFP_KERNEL)?;
        self.raise_max_err(err);
        Ok(zero)
    }

    /// Adds a node from a saved graph: its links from the saved `entry`, and its traversal
    /// data from the entry too if it has them ([`Index::saved_coded`]: `vector` is `None`),
    /// or else computed from its vector, `Some((m, scale))`, read from the record the entry
    /// names; `tombstone` says whether that record is deleted now. `reserve` must have made
    /// room. Fails with `EUCLEAN` if the entry does not match (another level, a live record
    /// the entry says was deleted, the id of a live node, traversal data out of range or
    /// given twice). The links are checked by [`Index::restore_finish`].
    pub(crate) fn restore_node(
        &mut self,
        entry: &[u8],
        vector: Option<(&[i32], i32)>,
        tombstone: bool,
    ) -> Result<u32> {
        let len = self.saved_len_of(entry)?;
        if entry.len() != len {
            return Err(EUCLEAN);
        }
        let (id, slot) = (le64(entry, 0), le64(entry, 8));
        let (level, was_deleted) = (entry[16], Self::saved_deleted(entry));
        if (was_deleted && !tombstone) || self.find(id).is_some() {
            return Err(EUCLEAN);
        }
        let links = 4 * (self.stride0() + usize::from(level) * self.p.m);
        let node = match vector {
            Some((m, scale)) if !Self::saved_coded(entry) => self.push(id, slot, m, scale)?,
            None if Self::saved_coded(entry) => {
                self.push_room()?;
                let zero = self.push_saved_code(&entry[SAVED_HEAD + links..])?;
                // As `push`: a zero vector stays on level 0.
                let l = if zero { 0 } else { level_for(id, self.p.m) };
                self.push_node(id, slot, l)?
            }
            _ => return Err(EUCLEAN),
        };
        let n = node as usize;
        if self.levels[n] != level {
            return Err(EUCLEAN);
        }
        if tombstone {
            self.deleted[n] = true;
            self.live -= 1;
        }
        // Saved again as read, unless the deleted flag or the form of the traversal data
        // changed.
        if tombstone == was_deleted && Self::saved_coded(entry) == self.compact() {
            if let Some(w) = self.unsaved.get_mut(n / 64) {
                *w &= !(1 << (n % 64));
            }
        }
        let mut words = entry[SAVED_HEAD..SAVED_HEAD + links]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        let s = self.stride0();
        for (dst, w) in self.links0[n * s..][..s].iter_mut().zip(&mut words) {
            *dst = w;
        }
        if level > 0 {
            let at = u32::try_from(self.upper.len()).map_err(|_| ENOMEM)?;
            let add = usize::from(level) * self.p.m;
            self.upper.reserve(add, GFP_KERNEL)?;
            for w in words.take(add) {
                self.upper.push(w, GFP_KERNEL)?;
            }
            self.upper_at[n] = at;
        }
        Ok(node)
    }

    /// Ends a restore of the first `nodes` nodes (the later ones, pushed since, are not linked
    /// yet): checks every link of the saved graph ([`Index::check_links`]) and the entry point,
    /// and installs `entry`.
    pub(crate) fn restore_finish(&mut self, nodes: usize, entry: Option<(u32, u32)>) -> Result {
        self.check_links(nodes)?;
        match entry {
            Some((e, l)) if (e as usize) < nodes && u32::from(self.levels[e as usize]) == l => {}
            None if nodes == 0 => {}
            _ => return Err(EUCLEAN),
        }
        self.entry = entry;
        Ok(())
    }

    /// Checks the links of the first `nodes` nodes: within bounds, to nodes among them on
    /// their level, no self links; `EUCLEAN` otherwise.
    pub(crate) fn check_links(&self, nodes: usize) -> Result {
        let nodes = nodes.min(self.len());
        for node in 0..nodes as u32 {
            let level = u32::from(self.levels[node as usize]);
            if level > 0 && self.upper_at[node as usize] == u32::MAX {
                return Err(EUCLEAN);
            }
            for l in 0..=level {
                let links = self.links(node, l);
                for &nb in links {
                    if nb == node || nb as usize >= nodes || u32::from(self.levels[nb as usize]) < l
                    {
                        return Err(EUCLEAN);
                    }
                }
            }
        }
        Ok(())
    }

    /// The record number of node `node` in the collection file.
    pub(crate) fn slot(&self, node: u32) -> Result<u64> {
        self.slots.get(node as usize).copied().ok_or(EINVAL)
    }

    /// The id of node `node`.
    pub(crate) fn id(&self, node: u32) -> u64 {
        self.ids[node as usize]
    }

    /// Checks the graph invariants (for tests): link counts within bounds, links to existing
    /// nodes, no self links. Returns the number of nodes reachable from the entry on level 0.
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn check(&self) -> Result<usize> {
        self.check_links(self.len())?;
        let Some((entry, _)) = self.entry else {
            return Ok(0);
        };
        let mut seen: KVVec<bool> = KVVec::new();
        seen.resize(self.len(), false, GFP_KERNEL)?;
        let mut stack: KVec<u32> = KVec::new();
        stack.push(entry, GFP_KERNEL)?;
        seen[entry as usize] = true;
        let mut count = 0;
        while let Some(n) = stack.pop() {
            count += 1;
            for &nb in self.links(n, 0) {
                if !core::mem::replace(&mut seen[nb as usize], true) {
                    stack.push(nb, GFP_KERNEL)?;
                }
            }
        }
        Ok(count)
    }
}

/// How many candidates of an HNSW search on the compact copy get their exact distance, for
/// `k` results.
fn rescore(k: usize) -> usize {
    (k + k / 2).max(k + 4)
}

/// Inserts `node` at exact distance `dist` (ranked by `key`) into the results `hits` (sorted
/// by key, then node), keeping the `k` nearest.
fn hits_insert(hits: &mut KVVec<Hit>, k: usize, node: u32, key: i64, dist: Value) -> Result {
    let h = Hit { node, key, dist };
    let order = (h.key, node);
    let len = hits.len();
    if len == k {
        match hits.last() {
            Some(w) if order < (w.key, w.node) => {}
            _ => return Ok(()),
        }
    }
    let pos = hits.partition_point(|x| (x.key, x.node) < order);
    if len == k {
        hits[len - 1] = h;
    } else {
        hits.push(h, GFP_KERNEL)?;
    }
    hits[pos..].rotate_right(1);
    Ok(())
}

#[kunit_tests(vexfs_hnsw)]
mod tests {
    use super::*;
    use crate::vecmath::Fixed;

    #[test]
    fn candidate_list() -> Result {
        let mut pool: KVVec<Cand> = KVVec::with_capacity(4, GFP_KERNEL)?;
        let mut at = KVec::new();
        for (i, k) in [5i64, -1, 7, 3, 3, 9, -8, 0].iter().enumerate() {
            at.push(
                pool_insert(&mut pool, 3, Cand::new(*k, i as u32))?,
                GFP_KERNEL,
            )?;
        }
        let order: KVec<(i64, u32)> = {
            let mut v = KVec::new();
            for c in pool.iter() {
                v.push(c.order(), GFP_KERNEL)?;
            }
            v
        };
        assert_eq!(&order[..], &[(-8, 6), (-1, 1), (0, 7)]);
        assert_eq!(
            &at[..],
            &[
                Some(0),
                Some(0),
                Some(2),
                Some(1),
                Some(2),
                None,
                Some(0),
                Some(2)
            ]
        );
        Ok(())
    }

    #[test]
    fn levels() {
        // Deterministic, and about 1/16 of the ids above level 0 for M = 16.
        assert_eq!(level_for(12345, 16), level_for(12345, 16));
        let above = (0..4096u64).filter(|&id| level_for(id, 16) > 0).count();
        assert!((128..=384).contains(&above));
        assert!((0..100_000u64).all(|id| level_for(id, 2) <= MAX_LEVEL));
    }

    /// A deterministic pseudo-random clustered data set: `n` vectors of `DIM` small integers.
    const DIM: usize = 8;

    fn point(i: u64) -> [i8; DIM] {
        let c = mix64(i % 10);
        let r = mix64(i + 1000);
        let mut p = [0i8; DIM];
        for (j, e) in p.iter_mut().enumerate() {
            let centre = ((c >> (j * 6)) & 63) as i32 - 32;
            let noise = ((r >> (j * 8)) & 15) as i32 - 8;
            *e = (centre + noise) as i8;
        }
        p
    }

    fn build_from(n: u64, metric: Metric, f: impl Fn(u64) -> [i8; DIM]) -> Result<Index> {
        let mut idx = Index::new(Params {
            dim: DIM,
            metric,
            m: 8,
            ef_construction: 64,
        });
        idx.reserve(n as usize)?;
        let mut s = Scratch::new();
        let mut m = [0i32; DIM];
        for i in 0..n {
            let p = f(i);
            let sc = Fixed::from_i8(p.iter().copied(), &mut m);
            let node = idx.push(i * 7 + 1, i, &m, sc)?;
            idx.link(node, &mut s)?;
        }
        Ok(idx)
    }

    fn build(n: u64, metric: Metric) -> Result<Index> {
        build_from(n, metric, point)
    }

    /// The records of an index built by [`build_from`] with `f`: record `slot` holds `f(slot)`.
    struct Points<F>(F);

    impl<F: Fn(u64) -> [i8; DIM]> Records for Points<F> {
        fn vector(&mut self, slot: u64, id: u64, m: &mut [i32]) -> Result<i32> {
            if id != slot * 7 + 1 {
                return Err(EUCLEAN);
            }
            Ok(Fixed::from_i8((self.0)(slot).iter().copied(), m))
        }
    }

    /// The `k` nearest by brute force over the exact vectors: `(key, node)`.
    fn brute(
        idx: &Index,
        s: &mut Scratch,
        k: usize,
        recs: &mut impl Records,
    ) -> Result<KVec<(i64, u32)>> {
        let mut all = KVec::new();
        for node in 0..idx.len() as u32 {
            if !idx.deleted[node as usize] {
                let d = idx.exact(s, node, recs)?;
                all.push((idx.rank_key(d), node), GFP_KERNEL)?;
            }
        }
        all.sort_unstable();
        all.truncate(k);
        Ok(all)
    }

    /// Recall@10 of HNSW searches at `ef`, counting hits by distance (ties make ids
    /// ambiguous), and whether exact search equals brute force, over 40 queries.
    fn recall(
        idx: &Index,
        ef: usize,
        q: impl Fn(u64) -> [i8; DIM],
        recs: &mut impl Records,
    ) -> Result<usize> {
        let mut s = Scratch::new();
        let mut m = [0i32; DIM];
        let mut hits = 0;
        for qi in 0..40u64 {
            let p = q(qi);
            let sc = Fixed::from_i8(p.iter().copied(), &mut m);
            idx.set_query(&mut s, &m, sc)?;
            let want = brute(idx, &mut s, 10, recs)?;
            let exact = idx.search(&mut s, 10, 0, true, None, recs)?;
            assert_eq!(exact.len(), want.len());
            for (h, w) in exact.iter().zip(want.iter()) {
                assert_eq!((h.key, h.node), *w);
            }
            let worst = want[want.len() - 1].0;
            let approx = idx.search(&mut s, 10, ef, false, None, recs)?;
            hits += approx.iter().filter(|h| h.key <= worst).count();
        }
        Ok(hits)
    }

    #[test]
    fn graph_invariants_and_recall() -> Result {
        for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
            let idx = build(600, metric)?;
            // Every list within bounds; every node reachable on level 0 for the metrics (the
            // inner product is none: nodes of small norm are nobody's nearest, and may only
            // be reached through their own links).
            let reachable = idx.check()?;
            if metric == Metric::Ip {
                assert!(reachable >= 540);
            } else {
                assert_eq!(reachable, 600);
            }
            let hits = recall(&idx, 64, |qi| point(5000 + qi), &mut Points(point))?;
            assert!(hits * 100 >= 400 * 90);
        }
        Ok(())
    }

    #[test]
    fn duplicates_and_zero_vectors() -> Result {
        // 600 vectors drawn from only 30 distinct points, every tenth vector zero.
        let dup = |i: u64| {
            if i % 10 == 3 {
                [0i8; DIM]
            } else {
                point(mix64(i) % 30)
            }
        };
        for metric in [Metric::L2, Metric::Cosine] {
            let idx = build_from(600, metric, dup)?;
            // Every vector reachable; under cosine the 60 zero vectors (at distance 1 from
            // everything, found by exact search) need not be.
            let want = if metric == Metric::L2 { 600 } else { 540 };
            assert!(idx.check()? >= want);
            // Queries near the data: tie-aware recall at least 0.9.
            let hits = recall(&idx, 64, |qi| point(7000 + qi), &mut Points(dup))?;
            assert!(hits * 100 >= 400 * 90);
            // Queries that are data points: every hit at the nearest distance.
            let hits = recall(&idx, 64, |qi| point(qi % 30), &mut Points(dup))?;
            assert!(hits * 100 >= 400 * 90);
        }
        // A zero query under cosine: every distance is 1.
        let idx = build_from(100, Metric::Cosine, dup)?;
        let mut s = Scratch::new();
        idx.set_query(&mut s, &[0; DIM], 0)?;
        let r = idx.search(&mut s, 5, 0, true, None, &mut Points(dup))?;
        assert_eq!(r.len(), 5);
        assert!(r.iter().all(|h| h.dist.to_f32_bits() == 0x3f80_0000));
        Ok(())
    }

    /// Saves every node of `idx` into one buffer.
    fn save_all(idx: &Index) -> Result<KVec<u8>> {
        let mut all = KVec::new();
        let mut e = KVec::new();
        for node in 0..idx.len() as u32 {
            idx.save_node(node, &mut e)?;
            all.extend_from_slice(&e, GFP_KERNEL)?;
        }
        Ok(all)
    }

    /// Restores a saved graph over vectors `point(slot)`; `tombstones` are deleted now.
    fn restore_all(saved: &[u8], p: Params, tombstones: &[u64]) -> Result<Index> {
        let mut idx = Index::new(p);
        let mut m = [0i32; DIM];
        let mut at = 0;
        while at < saved.len() {
            idx.reserve(1)?;
            let len = idx.saved_len_of(saved.get(at..at + SAVED_HEAD).ok_or(EUCLEAN)?)?;
            let e = saved.get(at..at + len).ok_or(EUCLEAN)?;
            let slot = Index::saved_slot(e);
            let sc = Fixed::from_i8(point(slot).iter().copied(), &mut m);
            let v = (!Index::saved_coded(e)).then_some((&m[..], sc));
            idx.restore_node(e, v, tombstones.contains(&slot))?;
            at += len;
        }
        Ok(idx)
    }

    #[test]
    fn save_and_restore() -> Result {
        // One metric at a time, damage apart: the test's frames stay small (the kernel's
        // stack is 16 KiB).
        for metric in [Metric::L2, Metric::Cosine] {
            let mut idx = build(400, metric)?;
            idx.delete(8);
            let saved = save_all(&idx)?;
            restore_searches_alike(&mut idx, &saved)?;
            restore_links_added(&idx, &saved)?;
            restore_refuses_damage(&idx, &saved)?;
        }
        Ok(())
    }

    /// A restore of what `idx` saved, with a record deleted since (record 9, id 64, then
    /// deleted from `idx` too), holds the same graph and gives the same results.
    #[inline(never)]
    fn restore_searches_alike(idx: &mut Index, saved: &[u8]) -> Result {
        // Deleted since the save: record 9 (id 64).
        let mut back = restore_all(saved, idx.p, &[1, 9])?;
        back.restore_finish(back.len(), idx.entry())?;
        idx.delete(64);
        assert_eq!(back.live(), idx.live());
        assert_eq!(back.find(64), None);
        assert_eq!(&back.links0[..], &idx.links0[..]);
        assert_eq!(&back.upper[..], &idx.upper[..]);
        // The same graph gives the same results.
        let (mut s, mut t) = (Scratch::new(), Scratch::new());
        let mut m = [0i32; DIM];
        for qi in 0..20u64 {
            let sc = Fixed::from_i8(point(3000 + qi).iter().copied(), &mut m);
            idx.set_query(&mut s, &m, sc)?;
            back.set_query(&mut t, &m, sc)?;
            let a = idx.search(&mut s, 10, 32, false, None, &mut Points(point))?;
            let b = back.search(&mut t, 10, 32, false, None, &mut Points(point))?;
            assert_eq!(a.len(), b.len());
            assert!(a
                .iter()
                .zip(b.iter())
                .all(|(x, y)| (x.key, x.node) == (y.key, y.node)));
        }
        if idx.p.metric == Metric::Cosine {
            // A cosine index restores its traversal data as saved, without the vectors.
            assert!(Index::saved_coded(saved));
            assert!(back.codes[..] == idx.codes[..] && back.units[..] == idx.units[..]);
            assert_eq!(back.max_err, idx.max_err);
        }
        Ok(())
    }

    /// Records added after the save are pushed before the restore ends, linked after.
    #[inline(never)]
    fn restore_links_added(idx: &Index, saved: &[u8]) -> Result {
        let mut more = restore_all(saved, idx.p, &[1])?;
        more.reserve(20)?;
        let mut m = [0i32; DIM];
        for i in 400..420u64 {
            let sc = Fixed::from_i8(point(i).iter().copied(), &mut m);
            more.push(i * 7 + 1, i, &m, sc)?;
        }
        more.restore_finish(400, idx.entry())?;
        let mut s = Scratch::new();
        for node in 400..420 {
            more.link(node, &mut s)?;
        }
        assert!(more.check()? >= 419);
        Ok(())
    }

    /// A restore refuses damage, never trusts it: a link out of range, a level that does not
    /// match the vector, a live record saved as deleted, a wrong entry point, traversal
    /// data out of range or in an index that has none.
    #[inline(never)]
    fn restore_refuses_damage(idx: &Index, saved: &[u8]) -> Result {
        let metric = idx.p.metric;
        let row = SAVED_HEAD;
        let mut bad = KVec::new();
        bad.extend_from_slice(saved, GFP_KERNEL)?;
        bad[row..row + 4].copy_from_slice(&4000u32.to_le_bytes());
        let mut r = restore_all(&bad, idx.p, &[1])?;
        assert_eq!(r.restore_finish(r.len(), idx.entry()), Err(EUCLEAN));
        let mut bad = KVec::new();
        bad.extend_from_slice(saved, GFP_KERNEL)?;
        bad[16] = bad[16].wrapping_add(1);
        assert!(restore_all(&bad, idx.p, &[1]).is_err());
        assert_eq!(restore_all(saved, idx.p, &[]).err(), Some(EUCLEAN));
        let mut r = restore_all(saved, idx.p, &[1])?;
        assert_eq!(r.restore_finish(r.len(), Some((400, 0))), Err(EUCLEAN));
        if metric != Metric::Cosine {
            // Only cosine indexes save traversal data.
            assert!(!Index::saved_coded(saved));
            let mut bad = KVec::new();
            bad.extend_from_slice(saved, GFP_KERNEL)?;
            bad[18] = SAVED_CODED;
            assert_eq!(restore_all(&bad, idx.p, &[1]).err(), Some(EUCLEAN));
            return Ok(());
        }
        // Traversal data out of range are refused: a code beyond CODE_MAX, a normalising
        // factor with a shift no vector gives, a zero factor with a nonzero code.
        let tail = SAVED_HEAD + 4 * (idx.stride0() + usize::from(saved[16]) * idx.p.m);
        for (at, value) in [(tail + 24, 91u64), (tail, 0x4000_0000_0000_0000), (tail, 0)] {
            let mut bad = KVec::new();
            bad.extend_from_slice(saved, GFP_KERNEL)?;
            bad[at..at + 8].copy_from_slice(&value.to_le_bytes());
            assert_eq!(restore_all(&bad, idx.p, &[1]).err(), Some(EUCLEAN));
        }
        Ok(())
    }

    /// Counts the nodes of `idx` whose saved entries [`Index::unsaved`] says may have changed,
    /// and checks that every other one is as in `old` (entries in node order).
    fn count_unsaved(idx: &Index, old: &[u8]) -> Result<usize> {
        let (mut e, mut at, mut unsaved) = (KVec::new(), 0, 0);
        for node in 0..idx.len() as u32 {
            idx.save_node(node, &mut e)?;
            if idx.unsaved(node) {
                unsaved += 1;
            } else {
                assert!(old.get(at..at + e.len()) == Some(&e[..]));
            }
            at += e.len();
        }
        Ok(unsaved)
    }

    /// A save may leave out the entries [`Index::unsaved`] does not flag: they are as saved,
    /// after deletes, inserts and a restore.
    #[test]
    fn unsaved_entries() -> Result {
        for metric in [Metric::L2, Metric::Cosine] {
            let mut idx = build(300, metric)?;
            assert_eq!(count_unsaved(&idx, &[])?, 300);
            // Record 1 (id 8) deleted before the save.
            idx.delete(8);
            let saved = save_all(&idx)?;
            idx.mark_saved();
            assert_eq!(count_unsaved(&idx, &saved)?, 0);
            // A delete changes its node's entry only.
            idx.delete(64);
            idx.delete(8);
            assert_eq!(count_unsaved(&idx, &saved)?, 1);
            // An insert: the new node and the neighbours it was linked to; all nodes if it
            // raised the error bound every entry of a cosine index holds.
            let err = idx.max_err;
            idx.reserve(5)?;
            let (mut s, mut m) = (Scratch::new(), [0i32; DIM]);
            for i in 300..305u64 {
                let sc = Fixed::from_i8(point(i).iter().copied(), &mut m);
                let node = idx.push(i * 7 + 1, i, &m, sc)?;
                idx.link(node, &mut s)?;
            }
            let n = count_unsaved(&idx, &saved)?;
            if idx.max_err == err {
                assert!((1 + 5 + 5..idx.len() / 2).contains(&n));
            } else {
                assert_eq!(n, idx.len());
            }
            // A restore: as read, but for the nodes deleted since (record 9, id 64).
            let back = restore_all(&saved, idx.p, &[1, 9])?;
            assert_eq!(count_unsaved(&back, &saved)?, 1);
            assert!(back.unsaved(back.find_any(64).ok_or(EINVAL)?));
        }
        Ok(())
    }

    #[test]
    fn cosine_rescores_from_the_records() -> Result {
        let idx = build(200, Metric::Cosine)?;
        // No exact vector in memory: compact copies, normalising factors and links.
        assert!(idx.vecs.is_empty() && idx.scales.is_empty());
        assert_eq!(idx.units.len(), 200);
        let mut s = Scratch::new();
        let mut m = [0i32; DIM];
        let sc = Fixed::from_i8(point(3).iter().copied(), &mut m);
        idx.set_query(&mut s, &m, sc)?;
        // A vector read back from its record is the unit vector of `normalize`, so distances
        // are those of the exact unit vectors.
        let mut q = m;
        vecmath::normalize(&mut q);
        for node in [0u32, 3, 77, 199] {
            let mut x = [0i32; DIM];
            Fixed::from_i8(point(u64::from(node)).iter().copied(), &mut x);
            vecmath::normalize(&mut x);
            let (a, b) = (
                VecRef {
                    m: &q,
                    scale: vecmath::UNIT_BITS,
                },
                VecRef {
                    m: &x,
                    scale: vecmath::UNIT_BITS,
                },
            );
            let want = distance(Metric::Cosine, a, b);
            let got = idx.exact(&mut s, node, &mut Points(point))?;
            assert_eq!((got.v, got.e), (want.v, want.e));
        }
        let r = idx.search(&mut s, 1, 32, false, None, &mut Points(point))?;
        assert_eq!(r[0].node, 3);
        // A record that does not hold the vector the index has is damage, and reported.
        struct Damaged;
        impl Records for Damaged {
            fn vector(&mut self, _: u64, _: u64, _: &mut [i32]) -> Result<i32> {
                Err(EUCLEAN)
            }
        }
        assert_eq!(
            idx.search(&mut s, 5, 32, false, None, &mut Damaged).err(),
            Some(EUCLEAN)
        );
        assert_eq!(
            idx.search(&mut s, 5, 0, true, None, &mut Damaged).err(),
            Some(EUCLEAN)
        );
        Ok(())
    }

    #[test]
    fn filtered_search() -> Result {
        // 1000 vectors with ids 7 i + 1; filters admitting about 50%, 10% and 1% of them, by
        // id range and by allow-list, after deleting every 13th vector.
        for metric in [Metric::Cosine, Metric::L2] {
            let mut idx = build(1000, metric)?;
            for i in (0..1000u64).step_by(13) {
                idx.delete(i * 7 + 1);
            }
            let mut s = Scratch::new();
            let mut m = [0i32; DIM];
            for pct in [50u64, 10, 1] {
                for listed in [false, true] {
                    let mut f = if listed {
                        let mut f = idx.filter_begin(0, u64::MAX, true)?;
                        for i in 0..1000u64 {
                            if mix64(i) % 100 < pct {
                                // Listed twice, and with ids not in the index.
                                idx.filter_allow(&mut f, i * 7 + 1)?;
                                idx.filter_allow(&mut f, i * 7 + 1)?;
                                idx.filter_allow(&mut f, i * 7 + 2)?;
                            }
                        }
                        f
                    } else {
                        idx.filter_begin(1, pct * 10 * 7, false)?
                    };
                    idx.filter_end(&mut f);
                    let admitted = (0..1000u32).filter(|&n| idx.admits(&f, n)).count();
                    if listed {
                        assert_eq!(f.admitted, admitted);
                    }
                    let (mut hits, mut want_all) = (0, 0);
                    for qi in 0..20u64 {
                        let sc = Fixed::from_i8(point(5000 + qi).iter().copied(), &mut m);
                        idx.set_query(&mut s, &m, sc)?;
                        let mut want = KVec::new();
                        for node in 0..1000u32 {
                            if idx.admits(&f, node) {
                                let d = idx.exact(&mut s, node, &mut Points(point))?;
                                want.push((idx.rank_key(d), node), GFP_KERNEL)?;
                            }
                        }
                        want.sort_unstable();
                        want.truncate(10);
                        // Exact: the filtered brute force, whatever the selectivity.
                        let r = idx.search(&mut s, 10, 0, true, Some(&f), &mut Points(point))?;
                        assert_eq!(r.len(), want.len());
                        for (h, w) in r.iter().zip(want.iter()) {
                            assert_eq!((h.key, h.node), *w);
                        }
                        // HNSW, forced even where a scan would be chosen: only admitted
                        // nodes, and the nearest of them.
                        s.hits.clear();
                        idx.search_graph(&mut s, 10, 64, Some(&f), &mut Points(point))?;
                        assert!(s.hits.iter().all(|h| idx.admits(&f, h.node)));
                        if let Some(worst) = want.last().map(|w| w.0) {
                            hits += s.hits.iter().filter(|h| h.key <= worst).count();
                        }
                        want_all += want.len();
                        // Chosen by search(): a scan below the threshold, HNSW above.
                        let r = idx.search(&mut s, 10, 64, false, Some(&f), &mut Points(point))?;
                        assert!(r.iter().all(|h| idx.admits(&f, h.node)));
                        if idx.scan_pays(&f, 64) {
                            assert!(r.iter().zip(want.iter()).all(|(h, w)| h.node == w.1));
                        }
                        // The statistics name the admitted count and the path taken.
                        assert_eq!(s.stats.admitted, f.admitted as u64);
                        assert_eq!(s.stats.scanned, idx.scan_pays(&f, 64));
                    }
                    // Recall@10 of the forced HNSW search.
                    assert!(hits * 100 >= want_all * 90);
                }
            }
            // A list naming no vector admits none.
            let mut f = idx.filter_begin(0, u64::MAX, true)?;
            idx.filter_allow(&mut f, 2)?;
            idx.filter_end(&mut f);
            assert_eq!(f.admitted, 0);
            assert!(idx
                .search(&mut s, 10, 64, false, Some(&f), &mut Points(point))?
                .is_empty());
        }
        Ok(())
    }

    #[test]
    fn delete_and_find() -> Result {
        let mut idx = build(100, Metric::L2)?;
        assert_eq!(idx.find(8), Some(1));
        assert_eq!(idx.delete(8), Some(1));
        assert_eq!(idx.find(8), None);
        assert_eq!(idx.delete(8), None);
        assert_eq!(idx.live(), 99);
        let mut m = [0i32; DIM];
        let sc = Fixed::from_i8(point(1).iter().copied(), &mut m);
        let mut s = Scratch::new();
        idx.set_query(&mut s, &m, sc)?;
        let r = idx.search(&mut s, 100, 100, true, None, &mut Points(point))?;
        assert_eq!(r.len(), 99);
        assert!(r.iter().all(|x| x.node != 1));
        let r = idx.search(&mut s, 5, 64, false, None, &mut Points(point))?;
        assert!(r.iter().all(|x| x.node != 1));
        // Truncating pushed nodes restores the map.
        idx.reserve(1)?;
        let node = idx.push(8, 100, &m, sc)?;
        assert_eq!(idx.find(8), Some(node));
        idx.truncate(100);
        assert_eq!(idx.find(8), None);
        assert_eq!(idx.find(15), Some(2));
        Ok(())
    }

    /// Elements of the vectors of [`sign_codes_steer_the_search`].
    const WIDE: usize = 256;

    /// A clustered data set of `WIDE` elements: 12 centres, noise of a third of their spread.
    fn wide(i: u64) -> [i8; WIDE] {
        let mut p = [0i8; WIDE];
        for (j, e) in p.iter_mut().enumerate() {
            let c = mix64((i % 12) * 1000 + j as u64);
            let r = mix64(i * 1000 + j as u64 + 77);
            *e = ((c & 63) as i32 - 32 + ((r & 31) as i32 - 16) * 2 / 3) as i8;
        }
        p
    }

    struct Wide;

    impl Records for Wide {
        fn vector(&mut self, slot: u64, id: u64, m: &mut [i32]) -> Result<i32> {
            if id != slot + 1 {
                return Err(EUCLEAN);
            }
            Ok(Fixed::from_i8(wide(slot).iter().copied(), m))
        }
    }

    #[test]
    fn sign_codes_steer_the_search() -> Result {
        // A cosine index of this width passes over candidates on their sign codes: recall
        // as on the compact copies alone (on this data: every query finds its 10 nearest),
        // exact search unchanged, and the same codes and results after a save and restore.
        let p = Params {
            dim: WIDE,
            metric: Metric::Cosine,
            m: 8,
            ef_construction: 64,
        };
        let mut idx = Index::new(p);
        assert!(idx.signed() && idx.sign_stride() == 8);
        let n = 500;
        idx.reserve(n)?;
        let mut s = Scratch::new();
        let mut m = KVec::new();
        m.resize(WIDE, 0, GFP_KERNEL)?;
        for i in 0..n as u64 {
            let sc = Fixed::from_i8(wide(i).iter().copied(), &mut m);
            let node = idx.push(i + 1, i, &m, sc)?;
            idx.link(node, &mut s)?;
        }
        assert_eq!(idx.check()?, n);
        let mut hits = 0;
        let mut first = KVec::new();
        for qi in 0..20u64 {
            let sc = Fixed::from_i8(wide(10_000 + qi).iter().copied(), &mut m);
            idx.set_query(&mut s, &m, sc)?;
            let exact = idx.search(&mut s, 10, 0, true, None, &mut Wide)?;
            let worst = exact[exact.len() - 1].key;
            let approx = idx.search(&mut s, 10, 32, false, None, &mut Wide)?;
            assert_eq!(approx.len(), 10);
            hits += approx.iter().filter(|h| h.key <= worst).count();
            first.push(approx[0].node, GFP_KERNEL)?;
        }
        assert_eq!(hits, 200);
        let saved = save_all(&idx)?;
        let mut back = Index::new(p);
        let mut at = 0;
        while at < saved.len() {
            back.reserve(1)?;
            let len = back.saved_len_of(saved.get(at..at + SAVED_HEAD).ok_or(EUCLEAN)?)?;
            let e = saved.get(at..at + len).ok_or(EUCLEAN)?;
            // A cosine index saves its traversal data: no vector needed.
            assert!(Index::saved_coded(e));
            back.restore_node(e, None, false)?;
            at += len;
        }
        back.restore_finish(n, idx.entry())?;
        assert!(back.signs[..] == idx.signs[..]);
        for (qi, &f) in first.iter().enumerate() {
            let sc = Fixed::from_i8(wide(10_000 + qi as u64).iter().copied(), &mut m);
            back.set_query(&mut s, &m, sc)?;
            assert_eq!(
                back.search(&mut s, 10, 32, false, None, &mut Wide)?[0].node,
                f
            );
        }
        Ok(())
    }

    #[test]
    fn sign_codes_duplicates_and_zero_vectors() -> Result {
        // 300 vectors of 256 elements drawn from 15 points, every tenth one zero: a zero
        // vector's sign code estimates a cosine of 0, duplicates have equal codes.
        let dup = |i: u64| {
            if i % 10 == 3 {
                [0i8; WIDE]
            } else {
                wide(mix64(i) % 15)
            }
        };
        struct Dup<F>(F);
        impl<F: Fn(u64) -> [i8; WIDE]> Records for Dup<F> {
            fn vector(&mut self, slot: u64, id: u64, m: &mut [i32]) -> Result<i32> {
                if id != slot + 1 {
                    return Err(EUCLEAN);
                }
                Ok(Fixed::from_i8((self.0)(slot).iter().copied(), m))
            }
        }
        let mut idx = Index::new(Params {
            dim: WIDE,
            metric: Metric::Cosine,
            m: 8,
            ef_construction: 64,
        });
        idx.reserve(300)?;
        let mut s = Scratch::new();
        let mut m = KVec::new();
        m.resize(WIDE, 0, GFP_KERNEL)?;
        for i in 0..300u64 {
            let sc = Fixed::from_i8(dup(i).iter().copied(), &mut m);
            let node = idx.push(i + 1, i, &m, sc)?;
            idx.link(node, &mut s)?;
        }
        assert!(idx.check()? >= 270);
        // Queries that are data points: every hit at the nearest distance.
        let mut hits = 0;
        for qi in 0..15u64 {
            let sc = Fixed::from_i8(wide(qi).iter().copied(), &mut m);
            idx.set_query(&mut s, &m, sc)?;
            let exact = idx.search(&mut s, 10, 0, true, None, &mut Dup(dup))?;
            let worst = exact[exact.len() - 1].key;
            let approx = idx.search(&mut s, 10, 32, false, None, &mut Dup(dup))?;
            hits += approx.iter().filter(|h| h.key <= worst).count();
        }
        assert_eq!(hits, 150);
        // A zero query: every distance is 1.
        m.iter_mut().for_each(|v| *v = 0);
        idx.set_query(&mut s, &m, 0)?;
        let r = idx.search(&mut s, 5, 16, false, None, &mut Dup(dup))?;
        assert_eq!(r.len(), 5);
        assert!(r.iter().all(|h| h.dist.to_f32_bits() == 0x3f80_0000));
        Ok(())
    }
}
