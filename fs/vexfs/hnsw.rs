// SPDX-License-Identifier: GPL-2.0

//! The in-memory index of a collection: its vectors in block floating point
//! ([`crate::vecmath`]), an id map, and a hierarchical navigable small world graph (HNSW,
//! Malkov and Yashunin, 2016).
//!
//! - Every live record of the collection file is a node; nodes are numbered in insertion order.
//!   Deleting a vector marks its node deleted: it still routes searches but is never returned.
//!   Rebuilding ([`crate::vector`], `VEXFS_IOC_BUILD_INDEX`) drops deleted nodes.
//! - The level of a node is a deterministic function of its id: a 64-bit mix of the id, whose
//!   leading zero bits, `floor(log2 M)` at a time, count the levels. That is a geometric
//!   distribution with `p = 2^-floor(log2 M)` (`1/M` for powers of two) and no floating point,
//!   and it makes the graph depend only on the order of insertion.
//! - A node has at most `2 M` links on level 0 and `M` above. New links are chosen with the
//!   paper's neighbour selection heuristic (keeping pruned candidates to fill up to `M`); a
//!   neighbour whose list overflows keeps its `M_max` nearest.
//! - Distances are exact ([`crate::vecmath::distance`]) and ordered by their `i64` key; ties
//!   are broken by node number (insertion order), so results are deterministic.
//!
//! All memory is allocated fallibly (`GFP_KERNEL`, vmalloc for the large arrays) and counted in
//! [`Index::bytes`].

use crate::vecmath::{
    distance,
    norm_factor,
    Metric,
    VecRef, //
};
use core::cmp::Reverse;
use kernel::{
    alloc::{
        KVVec,
        KVec,
        VVec, //
    },
    prelude::*,
};

/// Highest level of a node.
const MAX_LEVEL: u32 = 15;

/// A binary max-heap over a fallible vector.
pub(crate) struct Heap<T: Ord + Copy> {
    v: KVVec<T>,
}

impl<T: Ord + Copy> Heap<T> {
    /// An empty heap.
    pub(crate) fn new() -> Self {
        Self { v: KVVec::new() }
    }

    /// Number of items.
    pub(crate) fn len(&self) -> usize {
        self.v.len()
    }

    /// The largest item.
    pub(crate) fn peek(&self) -> Option<T> {
        self.v.first().copied()
    }

    /// Adds an item.
    pub(crate) fn push(&mut self, x: T) -> Result {
        self.v.push(x, GFP_KERNEL)?;
        let mut i = self.v.len() - 1;
        while i > 0 {
            let p = (i - 1) / 2;
            if self.v[p] >= self.v[i] {
                break;
            }
            self.v.swap(p, i);
            i = p;
        }
        Ok(())
    }

    /// Removes and returns the largest item.
    pub(crate) fn pop(&mut self) -> Option<T> {
        let n = self.v.len();
        if n == 0 {
            return None;
        }
        self.v.swap(0, n - 1);
        let top = self.v.pop();
        let n = n - 1;
        let mut i = 0;
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut m = i;
            if l < n && self.v[l] > self.v[m] {
                m = l;
            }
            if r < n && self.v[r] > self.v[m] {
                m = r;
            }
            if m == i {
                break;
            }
            self.v.swap(i, m);
            i = m;
        }
        top
    }
}

/// The `k` smallest items pushed into it.
pub(crate) struct TopK<T: Ord + Copy> {
    heap: Heap<T>,
    k: usize,
}

impl<T: Ord + Copy> TopK<T> {
    /// Keeps the `k` smallest items.
    pub(crate) fn new(k: usize) -> Self {
        Self {
            heap: Heap::new(),
            k,
        }
    }

    /// Offers an item.
    pub(crate) fn push(&mut self, x: T) -> Result {
        if self.heap.len() < self.k {
            return self.heap.push(x);
        }
        if let Some(top) = self.heap.peek() {
            if x < top {
                self.heap.pop();
                self.heap.push(x)?;
            }
        }
        Ok(())
    }

    /// The largest item kept, if `k` are kept.
    pub(crate) fn worst(&self) -> Option<T> {
        if self.heap.len() < self.k {
            None
        } else {
            self.heap.peek()
        }
    }

    /// The items kept, smallest first.
    pub(crate) fn into_sorted(mut self) -> Result<KVVec<T>> {
        let mut out = KVVec::with_capacity(self.heap.len(), GFP_KERNEL)?;
        while let Some(x) = self.heap.pop() {
            out.push(x, GFP_KERNEL)?;
        }
        out.reverse();
        Ok(out)
    }
}

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

/// A search result: distance key, then node for ties.
pub(crate) type Scored = (i64, u32);

/// The in-memory index of a collection.
pub(crate) struct Index {
    p: Params,
    /// Vector id of each node.
    ids: VVec<u64>,
    /// Record number in the collection file of each node.
    slots: VVec<u64>,
    /// Whether each node was deleted.
    deleted: VVec<bool>,
    /// Scale of each vector.
    scales: VVec<i32>,
    /// Cosine norm factor of each vector (cosine only).
    norms: VVec<u64>,
    /// Mantissas, `dim` per node.
    vecs: VVec<i32>,
    /// Level-0 links: per node, a count then `2 M` slots.
    links0: VVec<u32>,
    /// Links above level 0: per node, for each level `1..=level`, a count then `M` slots.
    upper: VVec<KVec<u32>>,
    /// Bytes of the `upper` lists.
    upper_bytes: usize,
    /// Entry point and its level.
    entry: Option<(u32, u32)>,
    /// Id map: open addressing, node + 1 (0 is empty), a power of two long.
    map: VVec<u32>,
    /// Number of live (not deleted) nodes.
    live: usize,
}

impl Index {
    /// An empty index.
    pub(crate) fn new(p: Params) -> Self {
        Self {
            p,
            ids: VVec::new(),
            slots: VVec::new(),
            deleted: VVec::new(),
            scales: VVec::new(),
            norms: VVec::new(),
            vecs: VVec::new(),
            links0: VVec::new(),
            upper: VVec::new(),
            upper_bytes: 0,
            entry: None,
            map: VVec::new(),
            live: 0,
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
        1 + 2 * self.p.m
    }

    /// Kernel memory held by the index, in bytes.
    pub(crate) fn bytes(&self) -> usize {
        core::mem::size_of::<Self>()
            + self.ids.capacity() * 8
            + self.slots.capacity() * 8
            + self.deleted.capacity()
            + self.scales.capacity() * 4
            + self.norms.capacity() * 8
            + self.vecs.capacity() * 4
            + self.links0.capacity() * 4
            + self.upper.capacity() * core::mem::size_of::<KVec<u32>>()
            + self.upper_bytes
            + self.map.capacity() * 4
    }

    /// Bytes `n` more nodes will need, roughly (for admission control).
    pub(crate) fn bytes_for(&self, n: usize) -> usize {
        let per = 8 + 8 + 1 + 4 + 8 + self.p.dim * 4 + self.stride0() * 4 + 24 + 16;
        n.saturating_mul(per)
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
        self.scales.reserve(n, GFP_KERNEL)?;
        if self.p.metric == Metric::Cosine {
            self.norms.reserve(n, GFP_KERNEL)?;
        }
        self.vecs
            .reserve(n.checked_mul(self.p.dim).ok_or(ENOMEM)?, GFP_KERNEL)?;
        self.links0
            .reserve(n.checked_mul(self.stride0()).ok_or(ENOMEM)?, GFP_KERNEL)?;
        self.upper.reserve(n, GFP_KERNEL)?;
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
        let node = u32::try_from(self.len()).map_err(|_| ENOMEM)?;
        // The id map must keep free slots (`reserve` sizes it).
        if (self.len() + 1) * 2 > self.map.len() || m.len() != self.p.dim {
            return Err(ENOMEM);
        }
        self.ids.push(id, GFP_KERNEL)?;
        self.slots.push(slot, GFP_KERNEL)?;
        self.deleted.push(false, GFP_KERNEL)?;
        self.scales.push(scale, GFP_KERNEL)?;
        if self.p.metric == Metric::Cosine {
            self.norms.push(norm_factor(m), GFP_KERNEL)?;
        }
        self.vecs.extend_from_slice(m, GFP_KERNEL)?;
        let stride = self.stride0();
        self.links0
            .resize(self.links0.len() + stride, 0, GFP_KERNEL)?;
        self.upper.push(KVec::new(), GFP_KERNEL)?;
        Self::map_put(&mut self.map, &self.ids, node);
        self.live += 1;
        Ok(node)
    }

    /// Removes the nodes from `len` on (added by `push` but not linked into the graph).
    pub(crate) fn truncate(&mut self, len: usize) {
        while self.len() > len {
            let node = self.len() - 1;
            self.live -= usize::from(!self.deleted[node]);
            self.ids.truncate(node);
            self.slots.truncate(node);
            self.deleted.truncate(node);
            self.scales.truncate(node);
            self.norms.truncate(node.min(self.norms.len()));
            self.vecs.truncate(node * self.p.dim);
            self.links0.truncate(node * self.stride0());
            self.upper.truncate(node);
        }
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
        let node = self.find(id)? as usize;
        self.deleted[node] = true;
        self.live -= 1;
        Some(self.slots[node])
    }

    fn vec(&self, node: u32) -> VecRef<'_> {
        let n = node as usize;
        let d = self.p.dim;
        VecRef {
            m: &self.vecs[n * d..(n + 1) * d],
            scale: self.scales[n],
            norm: if self.p.metric == Metric::Cosine {
                self.norms[n]
            } else {
                0
            },
        }
    }

    fn dist(&self, q: VecRef<'_>, node: u32) -> i64 {
        distance(self.p.metric, q, self.vec(node)).key()
    }

    fn links(&self, node: u32, level: u32) -> &[u32] {
        let n = node as usize;
        if level == 0 {
            let s = self.stride0();
            let base = n * s;
            let cnt = self.links0[base] as usize;
            &self.links0[base + 1..base + 1 + cnt]
        } else {
            let base = (level as usize - 1) * (1 + self.p.m);
            let l = &self.upper[n];
            let cnt = l[base] as usize;
            &l[base + 1..base + 1 + cnt]
        }
    }

    fn set_links(&mut self, node: u32, level: u32, new: &[u32]) {
        let n = node as usize;
        let (slice, base) = if level == 0 {
            let s = self.stride0();
            (&mut self.links0[..], n * s)
        } else {
            (
                &mut self.upper[n][..],
                (level as usize - 1) * (1 + self.p.m),
            )
        };
        slice[base] = new.len() as u32;
        for (d, s) in slice[base + 1..].iter_mut().zip(new) {
            *d = *s;
        }
    }

    fn max_links(&self, level: u32) -> usize {
        if level == 0 {
            2 * self.p.m
        } else {
            self.p.m
        }
    }

    fn query_ref<'a>(&self, m: &'a [i32], scale: i32) -> VecRef<'a> {
        VecRef {
            m,
            scale,
            norm: if self.p.metric == Metric::Cosine {
                norm_factor(m)
            } else {
                0
            },
        }
    }

    /// Greedy search on `level` from `ep` towards `q`.
    fn greedy(&self, q: VecRef<'_>, mut ep: Scored, level: u32) -> Scored {
        loop {
            let mut best = ep;
            for &nb in self.links(ep.1, level) {
                let c = (self.dist(q, nb), nb);
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

    /// Beam search on `level` from `ep`: the `ef` nearest nodes found, nearest first.
    fn search_layer(
        &self,
        q: VecRef<'_>,
        ep: Scored,
        ef: usize,
        level: u32,
        visited: &mut Visited,
    ) -> Result<KVVec<Scored>> {
        visited.clear();
        let mut cand: Heap<Reverse<Scored>> = Heap::new();
        let mut found: TopK<Scored> = TopK::new(ef.max(1));
        visited.set(ep.1);
        cand.push(Reverse(ep))?;
        found.push(ep)?;
        while let Some(Reverse(c)) = cand.pop() {
            if let Some(w) = found.worst() {
                if c > w {
                    break;
                }
            }
            for &nb in self.links(c.1, level) {
                if visited.set(nb) {
                    continue;
                }
                let e = (self.dist(q, nb), nb);
                if found.worst().is_none_or(|w| e < w) {
                    cand.push(Reverse(e))?;
                    found.push(e)?;
                }
            }
        }
        found.into_sorted()
    }

    /// The neighbour selection heuristic: from `cands` (nearest to the base first), up to `m`
    /// nodes that are nearer to the base than to any node already selected, filled up with
    /// the pruned ones if `keep_pruned`.
    fn select(&self, cands: &[Scored], m: usize, keep_pruned: bool) -> Result<KVec<u32>> {
        let mut sel: KVec<u32> = KVec::with_capacity(m, GFP_KERNEL)?;
        let mut pruned: KVec<u32> = KVec::new();
        for &(d, c) in cands {
            if sel.len() >= m {
                break;
            }
            let cv = self.vec(c);
            let good = sel.iter().all(|&s| self.dist(cv, s) >= d);
            if good {
                sel.push(c, GFP_KERNEL)?;
            } else {
                pruned.push(c, GFP_KERNEL)?;
            }
        }
        for &p in pruned.iter() {
            if sel.len() >= m || !keep_pruned {
                break;
            }
            sel.push(p, GFP_KERNEL)?;
        }
        Ok(sel)
    }

    /// Links node `node` (already pushed) into the graph. On error the graph may miss some
    /// links of the node but stays valid.
    pub(crate) fn link(&mut self, node: u32, visited: &mut Visited) -> Result {
        let level = level_for(self.ids[node as usize], self.p.m);
        if level > 0 {
            let mut l = KVec::new();
            l.resize(level as usize * (1 + self.p.m), 0, GFP_KERNEL)?;
            self.upper_bytes += l.capacity() * 4;
            self.upper[node as usize] = l;
        }
        let Some((entry, top)) = self.entry else {
            self.entry = Some((node, level));
            return Ok(());
        };
        visited.grow(self.len())?;
        let n = node as usize;
        let d = self.p.dim;
        // The query is the node's own vector: copy it out so the graph can be changed.
        let mut qm = KVec::with_capacity(d, GFP_KERNEL)?;
        qm.extend_from_slice(&self.vecs[n * d..(n + 1) * d], GFP_KERNEL)?;
        let (scale, norm) = {
            let v = self.vec(node);
            (v.scale, v.norm)
        };
        let q = VecRef {
            m: &qm,
            scale,
            norm,
        };
        let mut ep = (self.dist(q, entry), entry);
        let mut l = top;
        while l > level {
            ep = self.greedy(q, ep, l);
            l -= 1;
        }
        let mut lv = i64::from(level.min(top));
        while lv >= 0 {
            let l = lv as u32;
            let w = self.search_layer(q, ep, self.p.ef_construction, l, visited)?;
            let sel = self.select(&w, self.p.m, true)?;
            self.set_links(node, l, &sel);
            for &nb in sel.iter() {
                self.add_link(nb, node, l)?;
            }
            ep = w[0];
            lv -= 1;
        }
        if level > top {
            self.entry = Some((node, level));
        }
        Ok(())
    }

    /// Adds link `from -> to` on `level`; when the list is full, it is chosen again among the
    /// old links and the new one with the selection heuristic (without the pruned ones, which
    /// leaves room for later links).
    fn add_link(&mut self, from: u32, to: u32, level: u32) -> Result {
        let max = self.max_links(level);
        let cur = self.links(from, level);
        if cur.contains(&to) {
            return Ok(());
        }
        let mut all: KVec<Scored> = KVec::with_capacity(cur.len() + 1, GFP_KERNEL)?;
        let base = self.vec(from);
        if cur.len() < max {
            let mut l: KVec<u32> = KVec::with_capacity(cur.len() + 1, GFP_KERNEL)?;
            l.extend_from_slice(cur, GFP_KERNEL)?;
            l.push(to, GFP_KERNEL)?;
            self.set_links(from, level, &l);
            return Ok(());
        }
        for &c in Iterator::chain(cur.iter(), core::iter::once(&to)) {
            all.push((self.dist(base, c), c), GFP_KERNEL)?;
        }
        all.sort_unstable();
        let l = self.select(&all, max, false)?;
        self.set_links(from, level, &l);
        Ok(())
    }

    /// The `k` nearest live vectors to `q` (mantissas at `scale`), nearest first, as
    /// `(distance key, node)`. Exact: scans every node; otherwise an HNSW search with a
    /// candidate list of `ef`.
    pub(crate) fn search(
        &self,
        qm: &[i32],
        scale: i32,
        k: usize,
        ef: usize,
        exact: bool,
    ) -> Result<KVVec<(i64, u32)>> {
        let q = self.query_ref(qm, scale);
        let mut top: TopK<Scored> = TopK::new(k);
        if exact {
            for node in 0..self.len() as u32 {
                if !self.deleted[node as usize] {
                    top.push((self.dist(q, node), node))?;
                }
            }
            return top.into_sorted();
        }
        let Some((entry, level)) = self.entry else {
            return Ok(KVVec::new());
        };
        let mut visited = Visited::new();
        visited.grow(self.len())?;
        let mut ep = (self.dist(q, entry), entry);
        let mut l = level;
        while l > 0 {
            ep = self.greedy(q, ep, l);
            l -= 1;
        }
        let w = self.search_layer(q, ep, ef.max(k), 0, &mut visited)?;
        for &s in w.iter() {
            if !self.deleted[s.1 as usize] {
                top.push(s)?;
            }
        }
        top.into_sorted()
    }

    /// The exact distance between query `qm` (at `scale`) and node `node`.
    pub(crate) fn distance_value(
        &self,
        qm: &[i32],
        scale: i32,
        node: u32,
    ) -> crate::vecmath::Value {
        distance(self.p.metric, self.query_ref(qm, scale), self.vec(node))
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
        for node in 0..self.len() as u32 {
            let level = level_for(self.ids[node as usize], self.p.m);
            for l in 0..=level {
                let links = self.links(node, l);
                if links.len() > self.max_links(l) {
                    return Err(EUCLEAN);
                }
                for &nb in links {
                    if nb == node
                        || nb as usize >= self.len()
                        || level_for(self.ids[nb as usize], self.p.m) < l
                    {
                        return Err(EUCLEAN);
                    }
                }
            }
        }
        let Some((entry, _)) = self.entry else {
            return Ok(0);
        };
        let mut seen = Visited::new();
        seen.grow(self.len())?;
        let mut stack: KVec<u32> = KVec::new();
        stack.push(entry, GFP_KERNEL)?;
        seen.set(entry);
        let mut count = 0;
        while let Some(n) = stack.pop() {
            count += 1;
            for &nb in self.links(n, 0) {
                if !seen.set(nb) {
                    stack.push(nb, GFP_KERNEL)?;
                }
            }
        }
        Ok(count)
    }
}

/// A set of visited nodes: a bitmap.
pub(crate) struct Visited {
    bits: VVec<u64>,
}

impl Visited {
    /// An empty set.
    pub(crate) fn new() -> Self {
        Self { bits: VVec::new() }
    }

    /// Makes room for nodes `0..n`.
    pub(crate) fn grow(&mut self, n: usize) -> Result {
        let words = n.div_ceil(64);
        if words > self.bits.len() {
            self.bits.resize(words, 0, GFP_KERNEL)?;
        }
        Ok(())
    }

    fn clear(&mut self) {
        self.bits.iter_mut().for_each(|w| *w = 0);
    }

    /// Adds `n`; returns whether it was already there.
    fn set(&mut self, n: u32) -> bool {
        let (w, b) = ((n / 64) as usize, n % 64);
        let old = self.bits[w] & (1 << b) != 0;
        self.bits[w] |= 1 << b;
        old
    }
}

#[kunit_tests(vexfs_hnsw)]
mod tests {
    use super::*;
    use crate::vecmath::Fixed;

    #[test]
    fn heap_and_topk() {
        let mut t: TopK<(i64, u32)> = TopK::new(3);
        for (i, k) in [5i64, -1, 7, 3, 3, 9, -8, 0].iter().enumerate() {
            t.push((*k, i as u32)).unwrap();
        }
        let s = t.into_sorted().unwrap();
        assert_eq!(&s[..], &[(-8, 6), (-1, 1), (0, 7)]);
        let mut h: Heap<Reverse<i64>> = Heap::new();
        for k in [4, 1, 3, 2] {
            h.push(Reverse(k)).unwrap();
        }
        assert_eq!(h.pop(), Some(Reverse(1)));
        assert_eq!(h.pop(), Some(Reverse(2)));
        assert_eq!(h.len(), 2);
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

    fn build(n: u64, metric: Metric) -> Result<Index> {
        let mut idx = Index::new(Params {
            dim: DIM,
            metric,
            m: 8,
            ef_construction: 64,
        });
        idx.reserve(n as usize)?;
        let mut visited = Visited::new();
        let mut m = [0i32; DIM];
        for i in 0..n {
            let p = point(i);
            let s = Fixed::from_i8(p.iter().copied(), &mut m);
            let node = idx.push(i * 7 + 1, i, &m, s)?;
            idx.link(node, &mut visited)?;
        }
        Ok(idx)
    }

    #[test]
    fn graph_invariants_and_recall() {
        for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
            let idx = build(600, metric).unwrap();
            // Every list within bounds; every node reachable on level 0 for the metrics (the
            // inner product is none: nodes of small norm are nobody's nearest, and may only
            // be reached through their own links).
            let reachable = idx.check().unwrap();
            if metric == Metric::Ip {
                assert!(reachable >= 540);
            } else {
                assert_eq!(reachable, 600);
            }
            let mut hits = 0;
            let mut total = 0;
            let mut m = [0i32; DIM];
            for qi in 0..40u64 {
                let p = point(5000 + qi);
                let s = Fixed::from_i8(p.iter().copied(), &mut m);
                let exact = idx.search(&m, s, 10, 0, true).unwrap();
                let approx = idx.search(&m, s, 10, 64, false).unwrap();
                assert_eq!(exact.len(), 10);
                // Count hits by distance (ties make ids ambiguous).
                let worst = exact[9].0;
                hits += approx.iter().filter(|r| r.0 <= worst).count();
                total += 10;
            }
            assert!(hits * 100 >= total * 90);
        }
    }

    #[test]
    fn delete_and_find() {
        let mut idx = build(100, Metric::L2).unwrap();
        assert_eq!(idx.find(8), Some(1));
        assert_eq!(idx.delete(8), Some(1));
        assert_eq!(idx.find(8), None);
        assert_eq!(idx.delete(8), None);
        assert_eq!(idx.live(), 99);
        let mut m = [0i32; DIM];
        let s = Fixed::from_i8(point(1).iter().copied(), &mut m);
        let r = idx.search(&m, s, 100, 100, true).unwrap();
        assert_eq!(r.len(), 99);
        assert!(r.iter().all(|x| x.1 != 1));
        let r = idx.search(&m, s, 5, 64, false).unwrap();
        assert!(r.iter().all(|x| x.1 != 1));
        // Truncating pushed nodes restores the map.
        idx.reserve(1).unwrap();
        let node = idx.push(8, 100, &m, s).unwrap();
        assert_eq!(idx.find(8), Some(node));
        idx.truncate(100);
        assert_eq!(idx.find(8), None);
        assert_eq!(idx.find(15), Some(2));
    }
}
