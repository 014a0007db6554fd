// SPDX-License-Identifier: GPL-2.0

//! Searching a collection: `VEXFS_IOC_SEARCH` and `VEXFS_IOC_SEARCH_BATCH`.

use super::{
    header::{
        ne32,
        ne64,
        put,
        Header, //
    },
    ioctl::{
        all_zero,
        read_arg,
        write_field,
        write_user, //
    },
    is_collection,
    loaded,
    records::FileRecords,
    with_state,
    Loaded,
    FILTER_IDS,
    FILTER_RANGE,
    MAX_BATCH,
    MAX_EF,
    MAX_FILTER_IDS,
    MAX_K,
    MAX_RESULTS,
    SEARCH_EXACT,
    SEARCH_FILTER,
    SEARCH_STATS,
    STATS_SCANNED,
    UAPI_VERSION, //
};
use crate::{
    hnsw::{
        Filter,
        Index,
        Scratch, //
    },
    VexFs, //
};
use core::mem::offset_of;
use kernel::{
    alloc::{
        KVVec,
        KVec, //
    },
    fs::{
        inode::INode,
        File, //
    },
    prelude::*,
    time::{
        Instant,
        Monotonic, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    },
    uapi, //
};

/// Scratch buffers kept per collection: about one per concurrent searcher.
const SCRATCH_KEEP: usize = 4;

pub(super) fn search(file: &File, inode: &INode<VexFs>, arg: usize) -> Result {
    let u: uapi::vexfs_search = read_arg(arg)?;
    let (k, ef, flags) = (u.k, u.ef, u.flags);
    if u.version != UAPI_VERSION
        || k == 0
        || k > MAX_K
        || ef > MAX_EF
        || flags & !(SEARCH_EXACT | SEARCH_STATS | SEARCH_FILTER) != 0
        || u.__pad != 0
        || (flags & SEARCH_STATS == 0 && u.stats != 0)
        || !all_zero(&u.reserved)
    {
        return Err(EINVAL);
    }
    let a = SearchArgs {
        k,
        ef,
        flags,
        q_addr: u.query,
        ids_addr: u.ids,
        dist_addr: u.distances,
        stats_addr: u.stats,
        filter: FilterArgs::read(flags, u.filter)?,
        arg,
    };
    if !is_collection(inode) {
        return Err(ENOTTY);
    }
    with_index(file, inode, |l| search_loaded(file, inode, l, &a))
}

/// Calls `f` with the loaded index of collection `inode`, with the semaphore shared; if the
/// index is not loaded, loads it and calls `f` with the semaphore held exclusively.
pub(super) fn with_index<R>(
    file: &File,
    inode: &INode<VexFs>,
    f: impl FnOnce(&Loaded) -> Result<R>,
) -> Result<R> {
    let slot = &inode.data().vec;
    {
        let state = slot.state.read();
        if let Some(l) = state.index.as_deref() {
            inode.super_block().data().indexes.touch(slot);
            return f(l);
        }
    }
    // Used right away, before the shrinker could drop it again.
    with_state(inode, |state, charge| f(loaded(file, state, charge)?))
}

/// A scratch of an earlier search of `inode`, or a new one.
pub(super) fn take_scratch(inode: &INode<VexFs>) -> Result<KBox<Scratch>> {
    let popped = inode.data().vec.scratch.lock().pop();
    match popped {
        Some(s) => Ok(s),
        None => new_scratch(),
    }
}

/// A new scratch, on the heap: at about 2 KiB, it does not belong in a stack frame.
pub(super) fn new_scratch() -> Result<KBox<Scratch>> {
    Ok(KBox::new(const { Scratch::new() }, GFP_KERNEL)?)
}

/// Gives a scratch back to the pool of `inode`.
pub(super) fn put_scratch(inode: &INode<VexFs>, s: KBox<Scratch>) {
    let mut pool = inode.data().vec.scratch.lock();
    if pool.len() < SCRATCH_KEEP {
        // Keeping it is an optimisation: if there is no room, it is freed.
        let _ = pool.push(s, GFP_KERNEL);
    }
}

/// Reads `dim` elements of a query from `reader` into `raw` (in the file's representation:
/// user space passes native-endian patterns) and converts them into `m`; returns the scale.
fn read_query(
    hdr: &Header,
    reader: &mut kernel::uaccess::UserSliceReader,
    raw: &mut [u8],
    m: &mut [i32],
) -> Result<i32> {
    reader.read_slice(raw)?;
    if hdr.elem_size() == 4 {
        for c in raw.chunks_exact_mut(4) {
            let v = ne32(c, 0);
            put(c, &v.to_le_bytes());
        }
    }
    hdr.convert(raw, m)
}

/// Searches the query prepared in `m` at `scale`, appending the ids (`u64`) and distances
/// (binary32 patterns as `u32`), native-endian, to `ids` and `dists`. Returns the count.
#[allow(clippy::too_many_arguments)]
fn search_one(
    l: &Loaded,
    recs: &mut FileRecords<'_>,
    s: &mut Scratch,
    m: &[i32],
    scale: i32,
    k: usize,
    ef: usize,
    exact: bool,
    filter: Option<&Filter>,
    ids: &mut KVVec<u8>,
    dists: &mut KVVec<u8>,
) -> Result<usize> {
    l.index.set_query(s, m, scale)?;
    let res = l.index.search(s, k, ef, exact, filter, recs)?;
    ids.reserve(res.len() * 8, GFP_KERNEL)?;
    dists.reserve(res.len() * 4, GFP_KERNEL)?;
    for h in res.iter() {
        ids.extend_from_slice(&l.index.id(h.node).to_ne_bytes(), GFP_KERNEL)?;
        dists.extend_from_slice(&h.dist.to_f32_bits().to_ne_bytes(), GFP_KERNEL)?;
    }
    Ok(res.len())
}

/// The arguments of a search, checked.
struct SearchArgs {
    k: u32,
    ef: u32,
    pub(super) flags: u32,
    q_addr: u64,
    pub(super) ids_addr: u64,
    dist_addr: u64,
    stats_addr: u64,
    filter: Option<FilterArgs>,
    pub(super) arg: usize,
}

/// A `struct vexfs_filter`, checked.
#[derive(Clone, Copy)]
struct FilterArgs {
    lo: u64,
    hi: u64,
    /// With `VEXFS_FILTER_IDS`: the list's user address and length.
    list: Option<(u64, u32)>,
}

impl FilterArgs {
    /// Reads and checks the filter at user address `addr` of a search with `flags` (none
    /// without `VEXFS_SEARCH_FILTER`, whose `addr` must then be zero).
    pub(super) fn read(flags: u32, addr: u64) -> Result<Option<Self>> {
        if flags & SEARCH_FILTER == 0 {
            return if addr == 0 { Ok(None) } else { Err(EINVAL) };
        }
        let a: uapi::vexfs_filter = read_arg(usize::try_from(addr).map_err(|_| EFAULT)?)?;
        let (fl, lo, hi, ids, count) = (a.flags, a.id_min, a.id_max, a.ids, a.count);
        let (range, listed) = (fl & FILTER_RANGE != 0, fl & FILTER_IDS != 0);
        if a.version != UAPI_VERSION
            || fl & !(FILTER_RANGE | FILTER_IDS) != 0
            || fl == 0
            || (range && lo > hi)
            || (!range && (lo != 0 || hi != 0))
            || (listed && count == 0)
            || (!listed && (ids != 0 || count != 0))
            || a.__pad != 0
            || !all_zero(&a.reserved)
        {
            return Err(EINVAL);
        }
        if count > MAX_FILTER_IDS {
            return Err(E2BIG);
        }
        let (lo, hi) = if range { (lo, hi) } else { (0, u64::MAX) };
        Ok(Some(Self {
            lo,
            hi,
            list: listed.then_some((ids, count)),
        }))
    }

    /// The filter for `index`: the allow-list is read from user space in pages.
    fn make(&self, index: &Index) -> Result<Filter> {
        let mut f = index.filter_begin(self.lo, self.hi, self.list.is_some())?;
        if let Some((addr, count)) = self.list {
            let len = count as usize * 8;
            let mut reader = user_reader(addr, len)?;
            let mut buf: KVec<u8> = KVec::with_capacity(len.min(4096), GFP_KERNEL)?;
            buf.resize(len.min(4096), 0, GFP_KERNEL)?;
            let mut left = len;
            while left > 0 {
                let n = left.min(buf.len());
                reader.read_slice(&mut buf[..n])?;
                for c in buf[..n].chunks_exact(8) {
                    index.filter_allow(&mut f, ne64(c, 0))?;
                }
                left -= n;
            }
        }
        index.filter_end(&mut f);
        Ok(f)
    }
}

/// The candidate list size of a search for `k` neighbours that asked for `ef` (0: the
/// default of the uapi, `max(k, 64)`).
fn default_ef(ef: u32, k: usize) -> usize {
    if ef == 0 {
        k.max(64)
    } else {
        ef as usize
    }
}

pub(super) fn user_reader(addr: u64, len: usize) -> Result<kernel::uaccess::UserSliceReader> {
    let addr = usize::try_from(addr).map_err(|_| EFAULT)?;
    Ok(UserSlice::new(UserPtr::from_addr(addr), len).reader())
}

fn search_loaded(file: &File, inode: &INode<VexFs>, l: &Loaded, a: &SearchArgs) -> Result {
    let SearchArgs {
        k,
        ef,
        flags,
        q_addr,
        ids_addr,
        dist_addr,
        stats_addr,
        filter,
        arg,
    } = *a;
    let dim = l.hdr.dim as usize;
    let mut raw: KVec<u8> = KVec::with_capacity(dim * l.hdr.elem_size(), GFP_KERNEL)?;
    raw.resize(dim * l.hdr.elem_size(), 0, GFP_KERNEL)?;
    let mut m: KVec<i32> = KVec::with_capacity(dim, GFP_KERNEL)?;
    m.resize(dim, 0, GFP_KERNEL)?;
    let scale = read_query(
        &l.hdr,
        &mut user_reader(q_addr, raw.len())?,
        &mut raw,
        &mut m,
    )?;
    let k = k as usize;
    let ef = default_ef(ef, k);
    let filter = filter.map(|f| f.make(&l.index)).transpose()?;
    let mut recs = FileRecords::new(file, &l.hdr)?;
    let mut s = take_scratch(inode)?;
    let (mut ids, mut dists) = (KVVec::new(), KVVec::new());
    let start = Instant::<Monotonic>::now();
    let res = search_one(
        l,
        &mut recs,
        &mut s,
        &m,
        scale,
        k,
        ef,
        flags & SEARCH_EXACT != 0,
        filter.as_ref(),
        &mut ids,
        &mut dists,
    );
    let ns = start.elapsed().as_nanos();
    let st = s.stats;
    put_scratch(inode, s);
    let count = res?;
    write_user(ids_addr, &ids)?;
    if dist_addr != 0 {
        write_user(dist_addr, &dists)?;
    }
    if flags & SEARCH_STATS != 0 {
        let out = uapi::vexfs_search_stats {
            distances: st.distances,
            rescored: st.rescored,
            expanded: st.expanded,
            nanoseconds: u64::try_from(ns).unwrap_or(0),
            admitted: st.admitted,
            flags: if st.scanned { STATS_SCANNED } else { 0 },
            passed: st.passed,
            ..Default::default()
        };
        write_field(usize::try_from(stats_addr).map_err(|_| EFAULT)?, &out)?;
    }
    write_field(arg + offset_of!(uapi::vexfs_search, count), &(count as u32))
}

pub(super) fn search_batch(file: &File, inode: &INode<VexFs>, arg: usize) -> Result {
    let a: uapi::vexfs_search_batch = read_arg(arg)?;
    let (k, ef, flags, nq) = (a.k, a.ef, a.flags, a.nq);
    let (q_addr, ids_addr, dist_addr, counts_addr) = (a.queries, a.ids, a.distances, a.counts);
    if a.version != UAPI_VERSION
        || k == 0
        || k > MAX_K
        || ef > MAX_EF
        || flags & !(SEARCH_EXACT | SEARCH_FILTER) != 0
        || nq == 0
        || nq > MAX_BATCH
        || a.__pad != 0
        || !all_zero(&a.reserved)
    {
        return Err(EINVAL);
    }
    if u64::from(nq) * u64::from(k) > u64::from(MAX_RESULTS) {
        return Err(E2BIG);
    }
    let filter = FilterArgs::read(flags, a.filter)?;
    if !is_collection(inode) {
        return Err(ENOTTY);
    }
    with_index(file, inode, |l| {
        let dim = l.hdr.dim as usize;
        let qsize = dim * l.hdr.elem_size();
        let (nq, k) = (nq as usize, k as usize);
        let ef = default_ef(ef, k);
        let filter = filter.map(|f| f.make(&l.index)).transpose()?;
        let mut reader = user_reader(q_addr, nq * qsize)?;
        let mut raw: KVec<u8> = KVec::with_capacity(qsize, GFP_KERNEL)?;
        raw.resize(qsize, 0, GFP_KERNEL)?;
        let mut m: KVec<i32> = KVec::with_capacity(dim, GFP_KERNEL)?;
        m.resize(dim, 0, GFP_KERNEL)?;
        let mut counts: KVVec<u8> = KVVec::with_capacity(nq * 4, GFP_KERNEL)?;
        let (mut ids, mut dists) = (KVVec::new(), KVVec::new());
        let mut recs = FileRecords::new(file, &l.hdr)?;
        let mut s = take_scratch(inode)?;
        let res = (|| -> Result {
            for i in 0..nq {
                let scale = read_query(&l.hdr, &mut reader, &mut raw, &mut m)?;
                ids.clear();
                dists.clear();
                let n = search_one(
                    l,
                    &mut recs,
                    &mut s,
                    &m,
                    scale,
                    k,
                    ef,
                    flags & SEARCH_EXACT != 0,
                    filter.as_ref(),
                    &mut ids,
                    &mut dists,
                )?;
                write_user(ids_addr + (i * k * 8) as u64, &ids)?;
                if dist_addr != 0 {
                    write_user(dist_addr + (i * k * 4) as u64, &dists)?;
                }
                counts.extend_from_slice(&(n as u32).to_ne_bytes(), GFP_KERNEL)?;
            }
            Ok(())
        })();
        put_scratch(inode, s);
        res?;
        write_user(counts_addr, &counts)
    })
}
