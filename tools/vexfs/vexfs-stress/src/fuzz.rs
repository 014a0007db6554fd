// SPDX-License-Identifier: GPL-2.0

//! `vexfs-stress ioctl-fuzz DIR`: concurrent processes calling the vector ioctls of
//! `<linux/vexfs.h>` on a few collections with valid, half-valid (one field wrong) and random
//! arguments, random ioctl numbers, and on files that are not collections.
//!
//! A valid call must succeed (or fail with `ENOSPC`/`ENOMEM`); a call the header says the
//! kernel must reject (a reserved field not zero, a bad pointer, ...) must fail; `EIO` and
//! `EUCLEAN` are always failures. Each collection has one owner, the only process that changes
//! it: it keeps a model (id -> vector) and checks searches, gets and statistics against it as
//! it goes and, at the end, the whole collection. Argument buffers live in mappings followed by
//! an inaccessible page, so that a buffer one byte too short reliably faults.

use crate::common::{
    self,
    errno_name,
    Counts,
    Mapping,
    OpLog,
    Rng, //
};
use std::collections::{
    BTreeMap,
    BTreeSet, //
};
use std::fs::{
    self,
    File,
    OpenOptions, //
};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use vexfs_uapi as u;

/// The settings of a run.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// The directory of the collections.
    pub(crate) dir: PathBuf,
    /// Processes.
    pub(crate) procs: usize,
    /// Calls in all.
    pub(crate) calls: u64,
    /// Collections.
    pub(crate) collections: usize,
    /// The seed.
    pub(crate) seed: u64,
    /// Watchdog: seconds a process may run (0: no limit).
    pub(crate) timeout: u32,
}

/// The collections' parameters, in turn: dim, element type, metric, HNSW M, ef_construction.
const KINDS: &[(u32, u32, u32, u32, u32)] = &[
    (8, u::ELEM_F32, u::METRIC_L2, 8, 32),
    (16, u::ELEM_I8, u::METRIC_IP, 6, 24),
    (5, u::ELEM_F32, u::METRIC_COSINE, 4, 16),
    (24, u::ELEM_I8, u::METRIC_L2, 12, 40),
    (12, u::ELEM_F32, u::METRIC_IP, 2, 8),
    (7, u::ELEM_I8, u::METRIC_COSINE, 16, 0),
];

/// Live vectors above which the owner deletes rather than inserts.
const MAX_LIVE: usize = 400;

/// A collection of the run.
#[derive(Clone, Debug)]
struct Coll {
    path: PathBuf,
    dim: u32,
    elem: u32,
    metric: u32,
    /// Its ids are `base + 1 ..`.
    base: u64,
    owner: usize,
}

impl Coll {
    fn vbytes(&self) -> usize {
        self.dim as usize * if self.elem == u::ELEM_F32 { 4 } else { 1 }
    }

    fn in_range(&self, id: u64) -> bool {
        id > self.base && id < self.base + (1 << 40)
    }
}

/// What the owner of a collection knows of it.
#[derive(Debug, Default)]
struct Owned {
    live: BTreeMap<u64, Vec<u8>>,
    gone: BTreeSet<u64>,
    next: u64,
}

/// A mapping whose last page is inaccessible; buffers are placed to end at that page.
struct Arena {
    map: Mapping,
    size: usize,
}

/// Arena sizes (bytes usable).
const ARENA: usize = 1 << 20;

/// Where a buffer goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// Ends at the guard page.
    Good,
    /// One byte before the end (an odd address): still valid.
    Unaligned,
    /// One byte too short: the last byte is in the guard page.
    Short,
    /// NULL.
    Null,
    /// A kernel address.
    Kernel,
    /// A non-canonical address.
    NonCanonical,
    /// The guard page itself.
    Guard,
}

impl Place {
    fn bad(rng: &mut Rng) -> Place {
        [
            Place::Short,
            Place::Null,
            Place::Kernel,
            Place::NonCanonical,
            Place::Guard,
        ][rng.index(5)]
    }
}

impl Arena {
    fn new() -> std::io::Result<Self> {
        let page = common::page_size();
        let mut map = Mapping::anon(ARENA + page)?;
        map.guard_tail(page)?;
        Ok(Arena { map, size: ARENA })
    }

    /// Places `data` as `how` says; returns its address.
    fn put(&mut self, data: &[u8], how: Place) -> u64 {
        let (data, slack) = match how {
            Place::Good => (data, 0),
            Place::Unaligned => (data, 1),
            Place::Short => (&data[..data.len().saturating_sub(1)], 0),
            Place::Null => return 0,
            Place::Kernel => return 0xffff_8880_0000_0000,
            Place::NonCanonical => return 0x8000_0000_0000_0000,
            Place::Guard => return self.map.addr() + self.size as u64,
        };
        let len = data.len().min(self.size - slack);
        let start = self.size - len - slack;
        self.map.slice_mut(self.size)[start..start + len].copy_from_slice(&data[..len]);
        self.map.addr() + start as u64
    }

    /// Room for `len` bytes (filled with a pattern), placed as `how` says.
    fn room(&mut self, len: usize, how: Place) -> u64 {
        self.put(&vec![0xa5; len], how)
    }

    /// `len` bytes at `addr` (an address [`Arena::put`] returned for a good placement).
    fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let start = (addr - self.map.addr()) as usize;
        self.map.slice(self.size)[start..start + len].to_vec()
    }
}

/// The argument structures (and the filter, which an argument points to): `repr(C)` structures
/// of integers with explicit padding.
trait Plain: Copy + Default {}
impl Plain for u::CollectionParams {}
impl Plain for u::Insert {}
impl Plain for u::Delete {}
impl Plain for u::Search {}
impl Plain for u::SearchBatch {}
impl Plain for u::Get {}
impl Plain for u::Stats {}
impl Plain for u::BuildIndex {}
impl Plain for u::Filter {}

/// The bytes of an argument structure.
fn bytes_of<T: Plain>(t: &T) -> Vec<u8> {
    // SAFETY: The argument structures are `repr(C)` with explicit padding fields (their sizes
    // are asserted against the header), so every byte is initialised.
    unsafe { std::slice::from_raw_parts((t as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

/// An argument structure from its bytes.
fn from_bytes<T: Plain>(b: &[u8]) -> T {
    let mut t = T::default();
    let n = b.len().min(size_of::<T>());
    // SAFETY: Copies at most `size_of::<T>()` bytes into `t`; every bit pattern is valid for
    // these structures of integers.
    unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), (&mut t as *mut T).cast::<u8>(), n) };
    t
}

/// What a call must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Succeed,
    Fail,
    Any,
}

/// Where the argument structure goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ArgAt {
    Good,
    Unaligned,
    Truncated,
    Null,
    Kernel,
}

impl ArgAt {
    fn bad(rng: &mut Rng) -> ArgAt {
        [ArgAt::Truncated, ArgAt::Null, ArgAt::Kernel][rng.index(3)]
    }
}

/// Which file a call goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum On {
    /// The collection, through a read-write descriptor.
    Rw,
    /// The collection, through a read-only descriptor.
    Ro,
    /// A plain, non-empty file.
    Plain,
    /// The directory.
    Dir,
}

const ARG: usize = 0;
const IDS: usize = 1;
const VECS: usize = 2;
const OUT: usize = 3;
const DIST: usize = 4;
const AUX: usize = 5;
const FILT: usize = 6;
const FIDS: usize = 7;

struct Fuzzer {
    idx: usize,
    seed: u64,
    rng: Rng,
    colls: Vec<Coll>,
    rw: Vec<File>,
    ro: Vec<File>,
    plain: File,
    dir: File,
    arenas: Vec<Arena>,
    owned: BTreeMap<usize, Owned>,
    counts: Counts,
    tolerated: u64,
    log: OpLog,
    call: u64,
    /// Set while the current operation goes to a file that is not a collection.
    other: Option<On>,
}

/// A filter and how to check results against it.
#[derive(Clone, Debug, Default)]
struct FilterSpec {
    range: Option<(u64, u64)>,
    list: Option<Vec<u64>>,
}

impl FilterSpec {
    fn admits(&self, id: u64) -> bool {
        self.range.is_none_or(|(lo, hi)| lo <= id && id <= hi)
            && self.list.as_ref().is_none_or(|l| l.contains(&id))
    }
}

fn nonzero(rng: &mut Rng) -> u64 {
    rng.next() | 1 << rng.below(64)
}

impl Fuzzer {
    fn owner(&self, c: usize) -> bool {
        self.colls[c].owner == self.idx && self.other.is_none()
    }

    fn fd(&self, c: usize, on: On) -> &File {
        match self.other.unwrap_or(on) {
            On::Rw => &self.rw[c],
            On::Ro => &self.ro[c],
            On::Plain => &self.plain,
            On::Dir => &self.dir,
        }
    }

    /// A random vector of collection `c`, never zero (cosine) and finite.
    fn vector(&mut self, c: usize) -> Vec<u8> {
        let (dim, elem) = (self.colls[c].dim as usize, self.colls[c].elem);
        let mut vals: Vec<i32> = (0..dim)
            .map(|_| self.rng.range(0, 128) as i32 - 64)
            .collect();
        if vals.iter().all(|&v| v == 0) {
            vals[0] = 1;
        }
        let mut out = Vec::new();
        for v in vals {
            if elem == u::ELEM_F32 {
                out.extend_from_slice(&(v as f32).to_bits().to_ne_bytes());
            } else {
                out.push(v as i8 as u8);
            }
        }
        out
    }

    /// Puts a NaN or an infinity into an f32 vector buffer; false for i8 collections.
    fn poison(&mut self, c: usize, v: &mut [u8]) -> bool {
        if self.colls[c].elem != u::ELEM_F32 || v.len() < 4 {
            return false;
        }
        let i = self.rng.index(v.len() / 4);
        let bits: u32 = [0x7fc0_0000, 0x7f80_0000, 0xff80_0000, 0x7fa0_0001][self.rng.index(4)];
        v[4 * i..4 * i + 4].copy_from_slice(&bits.to_ne_bytes());
        true
    }

    /// Issues `cmd` with argument `arg` placed as `at` on `fd`; returns the errno (0: success)
    /// and the argument as the kernel left it (for good placements).
    fn call(
        &mut self,
        c: usize,
        on: On,
        cmd: u32,
        arg: &[u8],
        at: ArgAt,
    ) -> Result<(i32, Vec<u8>), String> {
        let addr = match at {
            ArgAt::Good => self.arenas[ARG].put(arg, Place::Good),
            ArgAt::Unaligned => self.arenas[ARG].put(arg, Place::Unaligned),
            ArgAt::Truncated => self.arenas[ARG].put(arg, Place::Short),
            ArgAt::Null => 0,
            ArgAt::Kernel => 0xffff_8880_0000_0000,
        };
        let res = u::ioctl_raw(self.fd(c, on), cmd, addr as usize);
        let e = match res {
            Ok(_) => 0,
            Err(e) => common::errno(&e),
        };
        *self.counts.entry(e).or_default() += 1;
        self.log.note(&format!(" = {}", errno_name(e)));
        if e == libc::EIO || e == libc::EUCLEAN {
            return Err(format!("ioctl {cmd:#x}: {}", errno_name(e)));
        }
        let back = if matches!(at, ArgAt::Good | ArgAt::Unaligned) {
            self.arenas[ARG].read(addr, arg.len())
        } else {
            Vec::new()
        };
        Ok((e, back))
    }

    /// Checks errno `e` against `want`; returns whether the call succeeded.
    fn judge(&mut self, what: &str, want: Want, e: i32) -> Result<bool, String> {
        let want = if self.other.is_some() {
            Want::Fail
        } else {
            want
        };
        match (want, e) {
            (Want::Fail, 0) => Err(format!("{what}: a call that must be rejected succeeded")),
            (Want::Succeed, 0) => Ok(true),
            (Want::Succeed, e) if e == libc::ENOSPC || e == libc::ENOMEM || e == libc::EDQUOT => {
                self.tolerated += 1;
                Ok(false)
            }
            (Want::Succeed, e) => Err(format!(
                "{what}: a valid call failed with {}",
                errno_name(e)
            )),
            (_, 0) => Ok(true),
            _ => Ok(false),
        }
    }

    fn fresh_id(&mut self, c: usize) -> u64 {
        let base = self.colls[c].base;
        if self.owner(c) {
            let o = self.owned.entry(c).or_default();
            if !o.gone.is_empty() && self.rng.chance(1, 4) {
                let g: Vec<u64> = o.gone.iter().copied().collect();
                return g[self.rng.index(g.len())];
            }
            o.next += 1;
            return base + o.next;
        }
        base + 1 + self.rng.below(100_000)
    }

    fn live_ids(&self, c: usize) -> Vec<u64> {
        self.owned
            .get(&c)
            .map_or(Vec::new(), |o| o.live.keys().copied().collect())
    }

    fn op_insert(&mut self, c: usize, fault: bool, upsert: bool) -> Result<(), String> {
        let owner = self.owner(c);
        if owner && !upsert && self.owned.get(&c).is_some_and(|o| o.live.len() > MAX_LIVE) {
            return self.op_delete(c, fault);
        }
        let fault = fault || !owner;
        let n = self.rng.range(1, 16) as usize;
        let live = self.live_ids(c);
        let mut ids: Vec<u64> = Vec::new();
        while ids.len() < n {
            let id = if upsert && !live.is_empty() && self.rng.chance(1, 2) {
                live[self.rng.index(live.len())]
            } else {
                self.fresh_id(c)
            };
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let mut vecs: Vec<Vec<u8>> = (0..n).map(|_| self.vector(c)).collect();
        let mut a = u::Insert {
            version: u::UAPI_VERSION,
            count: n as u32,
            flags: if upsert { u::INSERT_UPSERT } else { 0 },
            ..Default::default()
        };
        let (mut idp, mut vp, mut at, mut on) = (Place::Good, Place::Good, ArgAt::Good, On::Rw);
        let mut want = Want::Succeed;
        let mut f = u64::MAX;
        if self.rng.chance(1, 8) {
            (idp, vp, at) = (Place::Unaligned, Place::Unaligned, ArgAt::Unaligned);
        }
        if fault {
            want = Want::Fail;
            f = self.rng.below(16);
            match f {
                0 => a.version = (self.rng.next() as u32) | 2,
                1 => a.count = 0,
                2 => {
                    a.count = u::MAX_BATCH
                        + 1
                        + self.rng.below(u64::from(u32::MAX - u::MAX_BATCH - 1)) as u32
                }
                3 => a.flags |= 1 << self.rng.range(1, 31),
                4 => a.pad = nonzero(&mut self.rng) as u32 | 1,
                5 => a.reserved[self.rng.index(4)] = nonzero(&mut self.rng),
                6 => idp = Place::bad(&mut self.rng),
                7 => vp = Place::bad(&mut self.rng),
                8 => a.count = n as u32 + 1,
                9 => {
                    let i = self.rng.index(n);
                    if !self.poison(c, &mut vecs[i]) {
                        ids[i] = u64::MAX;
                    }
                }
                10 => ids[self.rng.index(n)] = u64::MAX,
                11 => {
                    ids.push(ids[0]);
                    vecs.push(self.vector(c));
                    a.count += 1;
                }
                12 => on = On::Ro,
                13 => at = ArgAt::bad(&mut self.rng),
                14 if owner && !upsert && !live.is_empty() => {
                    ids[0] = live[self.rng.index(live.len())];
                }
                14 => {
                    // One element short: the dimension of another collection.
                    let v: Vec<u8> = vecs.concat();
                    let short = v.len() - 1;
                    let ids_b: Vec<u8> = ids.iter().flat_map(|i| i.to_ne_bytes()).collect();
                    a.ids = self.arenas[IDS].put(&ids_b, Place::Good);
                    a.vectors = self.arenas[VECS].put(&v[..short], Place::Good);
                    return self.finish_insert(c, on, a, at, want, &ids, &vecs, f, true);
                }
                _ if owner => {
                    (idp, vp, at) = (Place::Unaligned, Place::Unaligned, ArgAt::Unaligned);
                    want = Want::Succeed;
                }
                _ => on = On::Ro,
            }
        }
        let ids_b: Vec<u8> = ids.iter().flat_map(|i| i.to_ne_bytes()).collect();
        a.ids = self.arenas[IDS].put(&ids_b, idp);
        a.vectors = self.arenas[VECS].put(&vecs.concat(), vp);
        self.finish_insert(c, on, a, at, want, &ids, &vecs, f, false)
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_insert(
        &mut self,
        c: usize,
        on: On,
        a: u::Insert,
        at: ArgAt,
        want: Want,
        ids: &[u64],
        vecs: &[Vec<u8>],
        f: u64,
        _short: bool,
    ) -> Result<(), String> {
        self.log.push(
            self.call,
            format!(
                "c{c} {} n={} fault={f} on={on:?} arg={at:?}",
                if a.flags & u::INSERT_UPSERT != 0 {
                    "upsert"
                } else {
                    "insert"
                },
                a.count
            ),
        );
        let (e, _) = self.call(c, on, u::IOC_INSERT, &bytes_of(&a), at)?;
        if self.judge("insert", want, e)? && self.owner(c) {
            let o = self.owned.entry(c).or_default();
            for (id, v) in ids.iter().zip(vecs) {
                o.live.insert(*id, v.clone());
                o.gone.remove(id);
            }
        }
        Ok(())
    }

    fn op_delete(&mut self, c: usize, fault: bool) -> Result<(), String> {
        let owner = self.owner(c);
        let fault = fault || !owner;
        let live = self.live_ids(c);
        let n = self.rng.range(1, 16) as usize;
        let mut ids = Vec::new();
        for _ in 0..n {
            let id = if !live.is_empty() && self.rng.chance(3, 4) {
                live[self.rng.index(live.len())]
            } else {
                self.colls[c].base + 1 + self.rng.below(1 << 20)
            };
            ids.push(id);
        }
        let expect: BTreeSet<u64> = ids
            .iter()
            .copied()
            .filter(|id| self.owned.get(&c).is_some_and(|o| o.live.contains_key(id)))
            .collect();
        let mut a = u::Delete {
            version: u::UAPI_VERSION,
            count: n as u32,
            ..Default::default()
        };
        let (mut idp, mut at, mut on, mut want) = (Place::Good, ArgAt::Good, On::Rw, Want::Succeed);
        if self.rng.chance(1, 8) {
            (idp, at) = (Place::Unaligned, ArgAt::Unaligned);
        }
        let mut f = u64::MAX;
        if fault {
            want = Want::Fail;
            f = self.rng.below(9);
            match f {
                0 => a.version = 0,
                1 => a.count = 0,
                2 => a.count = u::MAX_BATCH + 1 + self.rng.below(1 << 20) as u32,
                3 => a.pad = nonzero(&mut self.rng) as u32 | 1,
                4 => a.reserved[self.rng.index(4)] = nonzero(&mut self.rng),
                5 => idp = Place::bad(&mut self.rng),
                6 => a.count = n as u32 + 1 + self.rng.below(100) as u32,
                7 => on = On::Ro,
                _ => at = ArgAt::bad(&mut self.rng),
            }
        }
        let ids_b: Vec<u8> = ids.iter().flat_map(|i| i.to_ne_bytes()).collect();
        a.ids = self.arenas[IDS].put(&ids_b, idp);
        self.log.push(
            self.call,
            format!(
                "c{c} delete n={n} fault={f} on={on:?} arg={at:?} (live {})",
                expect.len()
            ),
        );
        let (e, back) = self.call(c, on, u::IOC_DELETE, &bytes_of(&a), at)?;
        if self.judge("delete", want, e)? && self.owner(c) {
            let d: u::Delete = from_bytes(&back);
            if d.deleted as usize != expect.len() {
                return Err(format!(
                    "delete: deleted {}, expected {}",
                    d.deleted,
                    expect.len()
                ));
            }
            let o = self.owned.entry(c).or_default();
            for id in expect {
                o.live.remove(&id);
                o.gone.insert(id);
            }
        } else if want == Want::Succeed && e != 0 && self.owner(c) {
            // A tolerated failure may have deleted some of the ids: ask.
            self.resync_ids(c, &ids)?;
        }
        Ok(())
    }

    /// Learns which of `ids` are still in collection `c` (after a delete that failed).
    fn resync_ids(&mut self, c: usize, ids: &[u64]) -> Result<(), String> {
        for &id in ids {
            if let Ok(None) = self.get_one(c, id) {
                let o = self.owned.entry(c).or_default();
                if o.live.remove(&id).is_some() {
                    o.gone.insert(id);
                }
            }
        }
        Ok(())
    }

    /// Gets one vector by id: `Some(bytes)`, or `None` for ENOENT.
    fn get_one(&mut self, c: usize, id: u64) -> Result<Option<Vec<u8>>, String> {
        let vb = self.colls[c].vbytes();
        let ids = self.arenas[IDS].put(&id.to_ne_bytes(), Place::Good);
        let out = self.arenas[OUT].room(vb, Place::Good);
        let mut a = u::Get {
            version: u::UAPI_VERSION,
            count: 1,
            ids,
            vectors: out,
            ..Default::default()
        };
        match u::ioctl(&self.rw[c], u::IOC_GET, &mut a) {
            Ok(_) => Ok(Some(self.arenas[OUT].read(out, vb))),
            Err(e) if common::errno(&e) == libc::ENOENT => Ok(None),
            Err(e) => Err(format!("get of id {id}: {}", errno_name(common::errno(&e)))),
        }
    }

    fn make_filter(&mut self, c: usize) -> FilterSpec {
        let base = self.colls[c].base;
        let mut s = FilterSpec::default();
        let k = self.rng.below(3);
        if k != 1 {
            let lo = base + self.rng.below(300);
            s.range = Some((lo, lo + self.rng.below(400)));
        }
        if k != 0 {
            let live = self.live_ids(c);
            let n = self.rng.range(1, 40) as usize;
            let l = (0..n)
                .map(|_| {
                    if !live.is_empty() && self.rng.chance(1, 2) {
                        live[self.rng.index(live.len())]
                    } else {
                        base + 1 + self.rng.below(500)
                    }
                })
                .collect();
            s.list = Some(l);
        }
        s
    }

    /// The `vexfs_filter` of `s`; `fault` breaks one field (a rejected filter).
    fn filter_arg(&mut self, s: &FilterSpec, fault: Option<u64>) -> u64 {
        let mut f = u::Filter {
            version: u::UAPI_VERSION,
            ..Default::default()
        };
        if let Some((lo, hi)) = s.range {
            f.flags |= u::FILTER_RANGE;
            (f.id_min, f.id_max) = (lo, hi);
        }
        let mut lp = Place::Good;
        let mut list: Vec<u8> = Vec::new();
        if let Some(l) = &s.list {
            f.flags |= u::FILTER_IDS;
            f.count = l.len() as u32;
            list = l.iter().flat_map(|i| i.to_ne_bytes()).collect();
        }
        let mut fp = Place::Good;
        match fault {
            Some(0) => f.version = 2,
            Some(1) => f.flags |= 1 << self.rng.range(2, 31),
            Some(2) => f.flags = 0,
            Some(3) => {
                f.flags |= u::FILTER_RANGE;
                f.id_min = f.id_max.max(5) + 1 + self.rng.below(100);
            }
            Some(4) if f.flags & u::FILTER_RANGE == 0 => f.id_min = 1,
            Some(4) => {
                f.flags &= !u::FILTER_RANGE;
                f.flags |= u::FILTER_IDS;
                f.id_max = f.id_max.max(1);
                if f.count == 0 {
                    f.count = 1;
                    list = 1u64.to_ne_bytes().to_vec();
                }
            }
            Some(5) => {
                f.flags |= u::FILTER_IDS;
                f.count = 0;
            }
            Some(6) if f.flags & u::FILTER_IDS == 0 => f.ids = 0x1000,
            Some(6) => lp = Place::bad(&mut self.rng),
            Some(7) => f.pad = 1,
            Some(8) => f.reserved[self.rng.index(3)] = nonzero(&mut self.rng),
            Some(9) => {
                f.flags |= u::FILTER_IDS;
                f.count = u::MAX_FILTER_IDS + 1 + self.rng.below(1000) as u32;
            }
            Some(_) => fp = Place::bad(&mut self.rng),
            None => {}
        }
        if f.flags & u::FILTER_IDS != 0 && f.ids == 0 {
            if list.is_empty() {
                list = vec![0; 8];
            }
            f.ids = self.arenas[FIDS].put(&list, lp);
        }
        self.arenas[FILT].put(&bytes_of(&f), fp)
    }

    /// Checks search results: within the collection, admitted by the filter, distances in
    /// order; for the owner, live.
    fn check_results(
        &self,
        c: usize,
        what: &str,
        ids: &[u64],
        dists: Option<&[u32]>,
        filter: Option<&FilterSpec>,
    ) -> Result<(), String> {
        let col = &self.colls[c];
        for &id in ids {
            if !col.in_range(id) {
                return Err(format!(
                    "{what}: id {id:#x} was never inserted in collection {c}"
                ));
            }
            if filter.is_some_and(|f| !f.admits(id)) {
                return Err(format!("{what}: id {id:#x} is not admitted by the filter"));
            }
            if self.owner(c) && !self.owned.get(&c).is_some_and(|o| o.live.contains_key(&id)) {
                return Err(format!("{what}: id {id:#x} is not live"));
            }
        }
        let mut seen = BTreeSet::new();
        if let Some(&dup) = ids.iter().find(|id| !seen.insert(**id)) {
            return Err(format!("{what}: id {dup:#x} returned twice"));
        }
        if let Some(d) = dists {
            let d: Vec<f32> = d.iter().map(|&b| f32::from_bits(b)).collect();
            if d.iter().any(|x| x.is_nan()) {
                return Err(format!("{what}: NaN distance"));
            }
            if d.windows(2).any(|w| w[0] > w[1]) {
                return Err(format!("{what}: distances out of order: {d:?}"));
            }
        }
        Ok(())
    }

    /// How many live vectors filter `f` admits (owner only).
    fn admitted(&self, c: usize, f: Option<&FilterSpec>) -> usize {
        self.owned.get(&c).map_or(0, |o| {
            o.live
                .keys()
                .filter(|&&id| f.is_none_or(|f| f.admits(id)))
                .count()
        })
    }

    fn query(&mut self, c: usize) -> Vec<u8> {
        if let Some(o) = self.owned.get(&c) {
            if !o.live.is_empty() && self.rng.chance(1, 2) {
                let v: Vec<&Vec<u8>> = o.live.values().collect();
                return v[self.rng.index(v.len())].clone();
            }
        }
        self.vector(c)
    }

    fn op_search(&mut self, c: usize, fault: bool) -> Result<(), String> {
        let mut k = if self.rng.chance(1, 10) {
            self.rng.range(33, 300)
        } else {
            self.rng.range(1, 32)
        } as u32;
        let mut ef = if self.rng.chance(1, 3) {
            0
        } else {
            self.rng.range(1, 200) as u32
        };
        let mut flags = 0;
        if self.rng.chance(1, 2) {
            flags |= u::SEARCH_EXACT;
        }
        if self.rng.chance(1, 4) {
            flags |= u::SEARCH_STATS;
        }
        let spec = if self.rng.chance(1, 4) {
            flags |= u::SEARCH_FILTER;
            Some(self.make_filter(c))
        } else {
            None
        };
        let mut q = self.query(c);
        let (mut qp, mut op, mut dp, mut sp, mut at) = (
            Place::Good,
            Place::Good,
            Place::Good,
            Place::Good,
            ArgAt::Good,
        );
        if self.rng.chance(1, 8) {
            (qp, op, dp, at) = (
                Place::Unaligned,
                Place::Unaligned,
                Place::Unaligned,
                ArgAt::Unaligned,
            );
        }
        let with_dist = self.rng.chance(7, 8);
        let mut want = Want::Succeed;
        let mut ffault = None;
        let mut extra = (0u32, 0u64, 0u64, 0u64);
        let mut f = u64::MAX;
        if fault {
            want = Want::Fail;
            f = self.rng.below(20);
            match f {
                0 => extra.0 = 1,
                1 => k = 0,
                2 => k = u::MAX_K + 1 + self.rng.below(1 << 20) as u32,
                3 => ef = u::MAX_EF + 1 + self.rng.below(1 << 20) as u32,
                4 => flags |= 1 << self.rng.range(3, 31),
                5 => extra.1 = 1,
                6 => extra.2 = nonzero(&mut self.rng),
                7 => {
                    flags &= !u::SEARCH_STATS;
                    extra.3 = 1;
                }
                8 => {
                    flags &= !u::SEARCH_FILTER;
                    extra.3 = 2;
                }
                9 | 10 => {
                    flags |= u::SEARCH_FILTER;
                    ffault = Some(self.rng.below(11));
                }
                11 => qp = Place::bad(&mut self.rng),
                12 if self.poison(c, &mut q) => {}
                12 | 13 => at = ArgAt::bad(&mut self.rng),
                14 => {
                    want = Want::Succeed;
                    k = u::MAX_K;
                }
                15 => {
                    want = Want::Succeed;
                    ef = u::MAX_EF;
                }
                16 => {
                    want = Want::Any;
                    op = Place::bad(&mut self.rng);
                }
                17 => {
                    want = Want::Any;
                    dp = Place::bad(&mut self.rng);
                }
                18 => {
                    want = Want::Any;
                    flags |= u::SEARCH_STATS;
                    sp = Place::bad(&mut self.rng);
                }
                _ => {
                    want = Want::Succeed;
                    (qp, op, dp, at) = (
                        Place::Unaligned,
                        Place::Unaligned,
                        Place::Unaligned,
                        ArgAt::Unaligned,
                    );
                }
            }
        }
        let room = (k as usize).min(u::MAX_K as usize);
        let mut a = u::Search {
            version: u::UAPI_VERSION + extra.0,
            k,
            ef,
            flags,
            query: self.arenas[VECS].put(&q, qp),
            ids: self.arenas[OUT].room(room * 8, op),
            distances: if with_dist || dp != Place::Good {
                self.arenas[DIST].room(room * 4, dp)
            } else {
                0
            },
            pad: extra.1 as u32,
            ..Default::default()
        };
        a.reserved[1] = extra.2;
        if flags & u::SEARCH_STATS != 0 {
            a.stats = self.arenas[AUX].room(size_of::<u::SearchStats>(), sp);
        } else if extra.3 == 1 {
            a.stats = self.arenas[AUX].room(size_of::<u::SearchStats>(), Place::Good);
        }
        let spec_used = if flags & u::SEARCH_FILTER != 0 {
            let s = spec.clone().unwrap_or_else(|| self.make_filter(c));
            a.filter = self.filter_arg(&s, ffault);
            Some(s)
        } else {
            if extra.3 == 2 {
                let s = self.make_filter(c);
                a.filter = self.filter_arg(&s, None);
            }
            None
        };
        self.log.push(
            self.call,
            format!("c{c} search k={k} ef={ef} flags={flags:#x} fault={f}/{ffault:?} arg={at:?}"),
        );
        let (e, back) = self.call(c, On::Ro, u::IOC_SEARCH, &bytes_of(&a), at)?;
        if !self.judge("search", want, e)? || want == Want::Any {
            return Ok(());
        }
        let r: u::Search = from_bytes(&back);
        let n = r.count as usize;
        if n > k as usize {
            return Err(format!("search: {n} results for k={k}"));
        }
        let ids: Vec<u64> = self.arenas[OUT]
            .read(a.ids, n * 8)
            .chunks_exact(8)
            .map(|b| u64::from_ne_bytes(b.try_into().unwrap_or([0; 8])))
            .collect();
        let dists: Option<Vec<u32>> = (a.distances != 0).then(|| {
            self.arenas[DIST]
                .read(a.distances, n * 4)
                .chunks_exact(4)
                .map(|b| u32::from_ne_bytes(b.try_into().unwrap_or([0; 4])))
                .collect()
        });
        self.check_results(c, "search", &ids, dists.as_deref(), spec_used.as_ref())?;
        if self.owner(c) {
            let adm = self.admitted(c, spec_used.as_ref());
            let expect = adm.min(k as usize);
            if flags & u::SEARCH_EXACT != 0 && n != expect {
                return Err(format!(
                    "exact search: {n} results, expected {expect} (k={k}, {adm} admitted)"
                ));
            }
            if n > expect {
                return Err(format!("search: {n} results, at most {expect} admitted"));
            }
        }
        Ok(())
    }

    fn op_search_batch(&mut self, c: usize, fault: bool) -> Result<(), String> {
        let mut nq = self.rng.range(1, 6) as u32;
        let mut k = self.rng.range(1, 16) as u32;
        let mut ef = if self.rng.chance(1, 2) {
            0
        } else {
            self.rng.range(1, 100) as u32
        };
        let mut flags = if self.rng.chance(1, 2) {
            u::SEARCH_EXACT
        } else {
            0
        };
        let spec = if self.rng.chance(1, 4) {
            flags |= u::SEARCH_FILTER;
            Some(self.make_filter(c))
        } else {
            None
        };
        let mut qs: Vec<u8> = (0..nq).flat_map(|_| self.query(c)).collect();
        let (mut qp, mut op, mut cp, mut at) = (Place::Good, Place::Good, Place::Good, ArgAt::Good);
        let mut want = Want::Succeed;
        let mut ffault = None;
        let (mut version, mut pad, mut resv) = (u::UAPI_VERSION, 0u32, 0u64);
        let mut f = u64::MAX;
        if fault {
            want = Want::Fail;
            f = self.rng.below(16);
            match f {
                0 => version = 0,
                1 => k = 0,
                2 => k = u::MAX_K + 1,
                3 => ef = u::MAX_EF + 1,
                4 => {
                    // VEXFS_SEARCH_STATS is not a flag of the batch search.
                    let bit = [1, self.rng.range(3, 31)][self.rng.index(2)];
                    flags |= 1 << bit;
                }
                5 => nq = 0,
                6 => nq = u::MAX_BATCH + 1 + self.rng.below(1000) as u32,
                7 => pad = 1,
                8 => resv = nonzero(&mut self.rng),
                9 => {
                    // nq * k above VEXFS_MAX_RESULTS: E2BIG.
                    k = u::MAX_K;
                    nq = u::MAX_RESULTS / u::MAX_K + 1 + self.rng.below(100) as u32;
                }
                10 => {
                    flags |= u::SEARCH_FILTER;
                    ffault = Some(self.rng.below(11));
                }
                11 => qp = Place::bad(&mut self.rng),
                12 if self.poison(c, &mut qs) => {}
                12 => at = ArgAt::bad(&mut self.rng),
                13 => {
                    want = Want::Any;
                    op = Place::bad(&mut self.rng);
                }
                14 => {
                    want = Want::Any;
                    cp = Place::bad(&mut self.rng);
                }
                _ => {
                    want = Want::Succeed;
                    (qp, op, cp, at) = (
                        Place::Unaligned,
                        Place::Unaligned,
                        Place::Unaligned,
                        ArgAt::Unaligned,
                    );
                }
            }
        }
        let room_q = (nq as usize).min(8);
        let room_k = (k as usize).min(u::MAX_K as usize);
        let rooms = if f == 9 { 8 } else { room_q * room_k };
        let mut a = u::SearchBatch {
            version,
            k,
            ef,
            flags,
            nq,
            pad,
            queries: self.arenas[VECS].put(&qs, qp),
            ids: self.arenas[OUT].room(rooms * 8, op),
            distances: self.arenas[DIST].room(rooms * 4, Place::Good),
            counts: self.arenas[AUX].room(room_q * 4, cp),
            ..Default::default()
        };
        a.reserved[0] = resv;
        let spec_used = if flags & u::SEARCH_FILTER != 0 {
            let s = spec.clone().unwrap_or_else(|| self.make_filter(c));
            a.filter = self.filter_arg(&s, ffault);
            Some(s)
        } else {
            None
        };
        self.log.push(
            self.call,
            format!("c{c} search-batch nq={nq} k={k} ef={ef} flags={flags:#x} fault={f}/{ffault:?} arg={at:?}"),
        );
        let (e, _) = self.call(c, On::Ro, u::IOC_SEARCH_BATCH, &bytes_of(&a), at)?;
        if !self.judge("search batch", want, e)? || want == Want::Any {
            return Ok(());
        }
        let counts: Vec<u32> = self.arenas[AUX]
            .read(a.counts, nq as usize * 4)
            .chunks_exact(4)
            .map(|b| u32::from_ne_bytes(b.try_into().unwrap_or([0; 4])))
            .collect();
        let all_ids = self.arenas[OUT].read(a.ids, nq as usize * k as usize * 8);
        let all_d = self.arenas[DIST].read(a.distances, nq as usize * k as usize * 4);
        for (i, &n) in counts.iter().enumerate() {
            if n > k {
                return Err(format!("search batch: query {i}: {n} results for k={k}"));
            }
            let ids: Vec<u64> = all_ids[i * k as usize * 8..][..n as usize * 8]
                .chunks_exact(8)
                .map(|b| u64::from_ne_bytes(b.try_into().unwrap_or([0; 8])))
                .collect();
            let d: Vec<u32> = all_d[i * k as usize * 4..][..n as usize * 4]
                .chunks_exact(4)
                .map(|b| u32::from_ne_bytes(b.try_into().unwrap_or([0; 4])))
                .collect();
            self.check_results(c, "search batch", &ids, Some(&d), spec_used.as_ref())?;
            if self.owner(c) && flags & u::SEARCH_EXACT != 0 {
                let expect = self.admitted(c, spec_used.as_ref()).min(k as usize);
                if n as usize != expect {
                    return Err(format!(
                        "exact search batch: query {i}: {n} results, expected {expect}"
                    ));
                }
            }
        }
        Ok(())
    }

    fn op_get(&mut self, c: usize, fault: bool) -> Result<(), String> {
        let owner = self.owner(c);
        let live = self.live_ids(c);
        let n = self.rng.range(1, 8) as usize;
        let mut ids = Vec::new();
        let mut want = if owner { Want::Succeed } else { Want::Any };
        for _ in 0..n {
            if owner && !live.is_empty() {
                ids.push(live[self.rng.index(live.len())]);
            } else {
                ids.push(self.colls[c].base + 1 + self.rng.below(500));
            }
        }
        if owner && live.is_empty() {
            want = Want::Fail;
        }
        let vb = self.colls[c].vbytes();
        let mut a = u::Get {
            version: u::UAPI_VERSION,
            count: n as u32,
            ..Default::default()
        };
        let (mut idp, mut vp, mut at) = (Place::Good, Place::Good, ArgAt::Good);
        let mut f = u64::MAX;
        if fault {
            f = self.rng.below(9);
            want = Want::Fail;
            match f {
                0 => a.version = 3,
                1 => a.count = 0,
                2 => a.count = u::MAX_BATCH + 1,
                3 => a.reserved[self.rng.index(5)] = nonzero(&mut self.rng),
                4 => idp = Place::bad(&mut self.rng),
                5 => a.count = n as u32 + 1,
                6 => at = ArgAt::bad(&mut self.rng),
                7 if owner => {
                    // An id that is not in the collection: ENOENT.
                    let id = self.fresh_id(c) + (1 << 30);
                    ids[self.rng.index(n)] = id;
                }
                7 => want = Want::Any,
                _ => {
                    want = Want::Any;
                    vp = Place::bad(&mut self.rng);
                }
            }
        } else if self.rng.chance(1, 8) {
            (idp, vp, at) = (Place::Unaligned, Place::Unaligned, ArgAt::Unaligned);
        }
        let ids_b: Vec<u8> = ids.iter().flat_map(|i| i.to_ne_bytes()).collect();
        a.ids = self.arenas[IDS].put(&ids_b, idp);
        a.vectors = self.arenas[OUT].room(n * vb, vp);
        self.log
            .push(self.call, format!("c{c} get n={n} fault={f} arg={at:?}"));
        let (e, _) = self.call(c, On::Ro, u::IOC_GET, &bytes_of(&a), at)?;
        if want == Want::Fail && f == 7 && e != libc::ENOENT && self.other.is_none() {
            return Err(format!(
                "get of a missing id: {}, expected ENOENT",
                errno_name(e)
            ));
        }
        if self.judge("get", want, e)? && owner && want == Want::Succeed {
            let got = self.arenas[OUT].read(a.vectors, n * vb);
            let o = &self.owned[&c];
            for (i, id) in ids.iter().enumerate() {
                if got[i * vb..(i + 1) * vb] != o.live[id][..] {
                    return Err(format!(
                        "get: vector of id {id:#x} differs from what was inserted"
                    ));
                }
            }
        }
        Ok(())
    }

    fn op_stats(&mut self, c: usize, fault: bool) -> Result<(), String> {
        let mut a = u::Stats {
            version: u::UAPI_VERSION,
            ..Default::default()
        };
        let mut b;
        let mut at = ArgAt::Good;
        let mut want = Want::Succeed;
        let mut f = u64::MAX;
        if fault {
            f = self.rng.below(5);
            want = Want::Fail;
            b = bytes_of(&a);
            match f {
                0 => b[0] = 7,
                1 | 2 => {
                    // Input must be zero from saved_bytes on.
                    let i = self.rng.range(104, 135) as usize;
                    b[i] = self.rng.range(1, 255) as u8;
                }
                3 => at = ArgAt::bad(&mut self.rng),
                _ => {
                    // Bytes 4..104 are output only: garbage there is fine.
                    want = Want::Succeed;
                    self.rng.fill(&mut b[4..104]);
                    at = ArgAt::Unaligned;
                }
            }
        } else {
            b = bytes_of(&a);
        }
        self.log
            .push(self.call, format!("c{c} stats fault={f} arg={at:?}"));
        let (e, back) = self.call(c, On::Ro, u::IOC_STATS, &b, at)?;
        if self.judge("stats", want, e)? {
            a = from_bytes(&back);
            let col = &self.colls[c];
            if (a.params.dim, a.params.elem_type, a.params.metric)
                != (col.dim, col.elem, col.metric)
            {
                return Err(format!(
                    "stats: parameters {:?} are not the collection's",
                    a.params
                ));
            }
            if self.owner(c) {
                let live = self.owned.get(&c).map_or(0, |o| o.live.len()) as u64;
                if a.count != live {
                    return Err(format!("stats: {} live vectors, expected {live}", a.count));
                }
            }
        }
        Ok(())
    }

    fn op_build(&mut self, c: usize, fault: bool) -> Result<(), String> {
        let mut a = u::BuildIndex {
            version: u::UAPI_VERSION,
            flags: if self.rng.chance(1, 2) {
                u::BUILD_COMPACT
            } else {
                0
            },
            ..Default::default()
        };
        let (mut at, mut on, mut want) = (ArgAt::Good, On::Rw, Want::Succeed);
        let mut f = u64::MAX;
        if fault {
            want = Want::Fail;
            f = self.rng.below(5);
            match f {
                0 => a.version = 0,
                1 => a.flags |= 1 << self.rng.range(1, 31),
                2 => a.reserved[self.rng.index(4)] = nonzero(&mut self.rng),
                3 => {
                    a.flags = u::BUILD_COMPACT;
                    on = On::Ro;
                }
                _ => at = ArgAt::bad(&mut self.rng),
            }
        } else if a.flags == 0 && self.rng.chance(1, 2) {
            on = On::Ro;
        }
        self.log.push(
            self.call,
            format!(
                "c{c} build flags={:#x} fault={f} on={on:?} arg={at:?}",
                a.flags
            ),
        );
        let (e, _) = self.call(c, on, u::IOC_BUILD_INDEX, &bytes_of(&a), at)?;
        self.judge("build", want, e)?;
        Ok(())
    }

    fn op_create(&mut self, c: usize) -> Result<(), String> {
        let col = self.colls[c].clone();
        let mut p = u::params(col.dim, col.elem, col.metric);
        let f = self.rng.below(8);
        match f {
            0 => p.version = 0,
            1 => p.dim = 0,
            2 => p.dim = u::MAX_DIM + 1 + self.rng.below(1000) as u32,
            3 => p.elem_type = 3 + self.rng.below(100) as u32,
            4 => p.metric = [0, 4, 99][self.rng.index(3)],
            5 => p.hnsw_m = [1, 65, 1000][self.rng.index(3)],
            6 => p.reserved[self.rng.index(9)] = 1,
            _ => {}
        }
        self.log.push(self.call, format!("c{c} create fault={f}"));
        let (e, _) = self.call(c, On::Rw, u::IOC_CREATE, &bytes_of(&p), ArgAt::Good)?;
        self.judge("create on a collection", Want::Fail, e)?;
        Ok(())
    }

    /// Random bytes as the argument of one of the VexFS ioctls: reserved fields random, so
    /// the kernel must refuse it.
    fn op_random_bytes(&mut self, c: usize, on: On) -> Result<(), String> {
        let cmds = [
            (u::IOC_CREATE, 64),
            (u::IOC_INSERT, 64),
            (u::IOC_DELETE, 56),
            (u::IOC_SEARCH, 80),
            (u::IOC_BUILD_INDEX, 40),
            (u::IOC_STATS, 136),
            (u::IOC_SEARCH_BATCH, 80),
            (u::IOC_GET, 64),
        ];
        let (cmd, size) = cmds[self.rng.index(cmds.len())];
        let mut b = self.rng.bytes(size);
        if self.rng.chance(1, 2) {
            b[..4].copy_from_slice(&u::UAPI_VERSION.to_ne_bytes());
        }
        // The reserved fields (the last 8 bytes of every structure) never all zero.
        b[size - 1] |= 1;
        self.log.push(
            self.call,
            format!("c{c} random bytes cmd={cmd:#x} on={on:?}"),
        );
        let (e, _) = self.call(c, on, cmd, &b, ArgAt::Good)?;
        self.judge("random argument", Want::Fail, e)?;
        Ok(())
    }

    /// A random ioctl number near the VexFS ones (type 0xbd..=0xbf).
    fn op_random_cmd(&mut self, c: usize, on: On) -> Result<(), String> {
        let known = [
            u::IOC_CREATE,
            u::IOC_INSERT,
            u::IOC_DELETE,
            u::IOC_SEARCH,
            u::IOC_BUILD_INDEX,
            u::IOC_STATS,
            u::IOC_SEARCH_BATCH,
            u::IOC_GET,
        ];
        let ty = [0xbe, 0xbe, 0xbd, 0xbf][self.rng.index(4)] as u32;
        let nr = self.rng.below(16) as u32;
        let dir = self.rng.below(4) as u32;
        let size = if self.rng.chance(1, 2) {
            [0, 40, 56, 64, 80, 136][self.rng.index(6)]
        } else {
            self.rng.below(1 << 14) as u32
        };
        let cmd = (dir << 30) | (size << 16) | (ty << 8) | nr;
        if known.contains(&cmd) {
            return self.op_random_bytes(c, on);
        }
        let mut b = self.rng.bytes(256);
        b[255] |= 1;
        let at = match self.rng.below(4) {
            0 => ArgAt::Null,
            1 => ArgAt::Kernel,
            _ => ArgAt::Good,
        };
        self.log.push(
            self.call,
            format!("c{c} random cmd {cmd:#x} on={on:?} arg={at:?}"),
        );
        let (e, _) = self.call(c, on, cmd, &b, at)?;
        self.judge("unknown ioctl", Want::Fail, e)?;
        Ok(())
    }

    fn op_on_collection(&mut self, c: usize) -> Result<(), String> {
        let fault = self.rng.chance(1, 2);
        match self.rng.below(100) {
            0..=21 => self.op_insert(c, fault, false),
            22..=27 => self.op_insert(c, fault, true),
            28..=37 => self.op_delete(c, fault),
            38..=59 => self.op_search(c, fault),
            60..=69 => self.op_search_batch(c, fault),
            70..=81 => self.op_get(c, fault),
            82..=91 => self.op_stats(c, fault),
            92..=96 => self.op_build(c, fault),
            _ => self.op_create(c),
        }
    }

    fn step(&mut self) -> Result<(), String> {
        let c = self.rng.index(self.colls.len());
        let on = [On::Rw, On::Ro, On::Rw, On::Ro, On::Plain, On::Dir][self.rng.index(6)];
        match self.rng.below(100) {
            0..=5 => {
                // The same calls on a plain file or the directory: none may succeed.
                self.other = Some(if self.rng.chance(1, 2) {
                    On::Plain
                } else {
                    On::Dir
                });
                let r = self.op_on_collection(c);
                self.other = None;
                r
            }
            6..=11 => self.op_random_bytes(c, on),
            12..=17 => self.op_random_cmd(c, on),
            _ => self.op_on_collection(c),
        }
    }

    /// Exact search of collection `c` for `q`, k=1, optionally restricted to `only`:
    /// (id, distance).
    fn nearest(
        &mut self,
        c: usize,
        q: &[u8],
        only: Option<u64>,
    ) -> Result<Option<(u64, f32)>, String> {
        let ids = self.arenas[OUT].room(8, Place::Good);
        let d = self.arenas[DIST].room(4, Place::Good);
        let mut a = u::Search {
            version: u::UAPI_VERSION,
            k: 1,
            flags: u::SEARCH_EXACT,
            query: self.arenas[VECS].put(q, Place::Good),
            ids,
            distances: d,
            ..Default::default()
        };
        if let Some(id) = only {
            a.flags |= u::SEARCH_FILTER;
            let spec = FilterSpec {
                range: None,
                list: Some(vec![id]),
            };
            a.filter = self.filter_arg(&spec, None);
        }
        u::ioctl(&self.ro[c], u::IOC_SEARCH, &mut a)
            .map_err(|e| format!("exact search: {}", errno_name(common::errno(&e))))?;
        if a.count == 0 {
            return Ok(None);
        }
        let id = u64::from_ne_bytes(self.arenas[OUT].read(ids, 8).try_into().unwrap_or([0; 8]));
        let dist = u32::from_ne_bytes(self.arenas[DIST].read(d, 4).try_into().unwrap_or([0; 4]));
        Ok(Some((id, f32::from_bits(dist))))
    }

    fn stats_of(&mut self, c: usize) -> Result<u::Stats, String> {
        let mut s = u::Stats {
            version: u::UAPI_VERSION,
            ..Default::default()
        };
        u::ioctl(&self.ro[c], u::IOC_STATS, &mut s)
            .map_err(|e| format!("stats: {}", errno_name(common::errno(&e))))?;
        Ok(s)
    }

    /// The owner's final check of collection `c` against its model.
    fn verify(&mut self, c: usize) -> Result<String, String> {
        self.log.push(self.call, format!("c{c} final verification"));
        let live = self.live_ids(c);
        let s = self.stats_of(c)?;
        if s.count != live.len() as u64 {
            return Err(format!(
                "collection {c}: {} live vectors, the model has {}",
                s.count,
                live.len()
            ));
        }
        for &id in &live {
            match self.get_one(c, id)? {
                Some(v) if v == self.owned[&c].live[&id] => {}
                Some(_) => return Err(format!("collection {c}: id {id:#x}: vector differs")),
                None => {
                    return Err(format!(
                        "collection {c}: id {id:#x}: ENOENT, but it is live"
                    ))
                }
            }
        }
        let gone: Vec<u64> = self.owned.get(&c).map_or(Vec::new(), |o| {
            o.gone
                .iter()
                .copied()
                .filter(|id| !o.live.contains_key(id))
                .take(100)
                .collect()
        });
        for &id in &gone {
            if self.get_one(c, id)?.is_some() {
                return Err(format!("collection {c}: deleted id {id:#x} still there"));
            }
        }
        let metric = self.colls[c].metric;
        let mut sampled = 0;
        for _ in 0..50.min(live.len()) {
            let id = live[self.rng.index(live.len())];
            let v = self.owned[&c].live[&id].clone();
            let Some((sid, dself)) = self.nearest(c, &v, Some(id))? else {
                return Err(format!(
                    "collection {c}: search admitting only {id:#x} found nothing"
                ));
            };
            if sid != id {
                return Err(format!(
                    "collection {c}: search admitting only {id:#x} returned {sid:#x}"
                ));
            }
            if (metric == u::METRIC_L2 && dself != 0.0)
                || (metric == u::METRIC_COSINE && dself > 1e-3)
            {
                return Err(format!(
                    "collection {c}: distance of {id:#x} to itself is {dself}"
                ));
            }
            let Some((nid, d)) = self.nearest(c, &v, None)? else {
                return Err(format!("collection {c}: exact search found nothing"));
            };
            if !self.owned[&c].live.contains_key(&nid) {
                return Err(format!(
                    "collection {c}: exact search returned {nid:#x}, not live"
                ));
            }
            if nid != id && d > dself {
                return Err(format!(
                    "collection {c}: exact search for {id:#x} returned {nid:#x} at {d}, itself is at {dself}"
                ));
            }
            sampled += 1;
        }
        for i in 0..20 {
            let q = self.vector(c);
            let ids = self.arenas[OUT].room(10 * 8, Place::Good);
            let mut a = u::Search {
                version: u::UAPI_VERSION,
                k: 10,
                query: self.arenas[VECS].put(&q, Place::Good),
                ids,
                ..Default::default()
            };
            u::ioctl(&self.ro[c], u::IOC_SEARCH, &mut a)
                .map_err(|e| format!("HNSW search: {}", errno_name(common::errno(&e))))?;
            let got: Vec<u64> = self.arenas[OUT]
                .read(ids, a.count as usize * 8)
                .chunks_exact(8)
                .map(|b| u64::from_ne_bytes(b.try_into().unwrap_or([0; 8])))
                .collect();
            self.check_results(c, &format!("final HNSW search {i}"), &got, None, None)?;
        }
        Ok(format!(
            "collection {c}: {} live, {} deleted records, {} gets, {sampled} self-searches, consistent",
            s.count,
            s.deleted,
            live.len() + gone.len()
        ))
    }

    /// Compacts collection `c` and checks it again.
    fn compact_and_verify(&mut self, c: usize) -> Result<String, String> {
        let mut b = u::BuildIndex {
            version: u::UAPI_VERSION,
            flags: u::BUILD_COMPACT,
            ..Default::default()
        };
        u::ioctl(&self.rw[c], u::IOC_BUILD_INDEX, &mut b)
            .map_err(|e| format!("compact: {}", errno_name(common::errno(&e))))?;
        let s = self.stats_of(c)?;
        if s.deleted != 0 || s.index_state != u::INDEX_READY {
            return Err(format!(
                "collection {c} after compaction: {} deleted records, index state {}",
                s.deleted, s.index_state
            ));
        }
        self.verify(c)
    }
}

fn open_rw(path: &PathBuf) -> Result<File, String> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("open {}: {e}", path.display()))
}

fn worker(cfg: &Config, colls: &[Coll], idx: usize) -> Result<String, String> {
    common::watchdog(cfg.timeout);
    let mut rw = Vec::new();
    let mut ro = Vec::new();
    for c in colls {
        rw.push(open_rw(&c.path)?);
        ro.push(File::open(&c.path).map_err(|e| format!("open {}: {e}", c.path.display()))?);
    }
    let mut arenas = Vec::new();
    for _ in 0..8 {
        arenas.push(Arena::new().map_err(|e| format!("mmap: {e}"))?);
    }
    let mut calls = cfg.calls / cfg.procs as u64;
    if (idx as u64) < cfg.calls % cfg.procs as u64 {
        calls += 1;
    }
    let mut fz = Fuzzer {
        idx,
        seed: cfg.seed,
        rng: Rng::for_worker(cfg.seed, idx),
        colls: colls.to_vec(),
        rw,
        ro,
        plain: open_rw(&cfg.dir.join("plain"))?,
        dir: File::open(&cfg.dir).map_err(|e| format!("open {}: {e}", cfg.dir.display()))?,
        arenas,
        owned: BTreeMap::new(),
        counts: Counts::new(),
        tolerated: 0,
        log: OpLog::new(20),
        call: 0,
        other: None,
    };
    let mut res = Ok(());
    while res.is_ok() && fz.call < calls {
        fz.call += 1;
        res = fz.step();
    }
    let mut lines = Vec::new();
    if res.is_ok() {
        for (c, col) in colls.iter().enumerate() {
            if col.owner != idx {
                continue;
            }
            fz.call += 1;
            match fz.verify(c).and_then(|a| {
                fz.compact_and_verify(c)
                    .map(|b| format!("{a}; after compaction: {b}"))
            }) {
                Ok(s) => lines.push(s),
                Err(e) => {
                    res = Err(e);
                    break;
                }
            }
        }
    }
    match res {
        Ok(()) => Ok(format!(
            "{calls}\n{}\n{}\n{}",
            common::encode_counts(&fz.counts),
            fz.tolerated,
            lines.join("\n")
        )),
        Err(e) => {
            eprint!(
                "ioctl-fuzz: FAILED: process {} call {} (seed {}): {e}\nlast calls of process {}:\n{}",
                fz.idx,
                fz.call,
                fz.seed,
                fz.idx,
                fz.log.dump()
            );
            Err(format!("process {} call {}: {e}", fz.idx, fz.call))
        }
    }
}

/// Runs the fuzzer; returns the summary or what failed.
pub(crate) fn run(cfg: &Config) -> Result<String, String> {
    println!("seed {}", cfg.seed);
    if cfg.procs == 0 || cfg.collections == 0 {
        return Err("ioctl-fuzz: --procs and --collections must be at least 1".to_string());
    }
    fs::create_dir_all(&cfg.dir).map_err(|e| format!("mkdir {}: {e}", cfg.dir.display()))?;
    let mut colls = Vec::new();
    for i in 0..cfg.collections {
        let (dim, elem, metric, m, efc) = KINDS[i % KINDS.len()];
        let path = cfg.dir.join(format!("coll{i}"));
        let _ = fs::remove_file(&path);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
            .map_err(|e| format!("create {}: {e}", path.display()))?;
        let mut p = u::params(dim, elem, metric);
        p.hnsw_m = m;
        p.hnsw_ef_construction = efc;
        if let Err(e) = u::ioctl(&f, u::IOC_CREATE, &mut p) {
            let n = common::errno(&e);
            let why = if n == libc::ENOTTY {
                format!(" ({} is not on a VexFS file system)", cfg.dir.display())
            } else {
                String::new()
            };
            return Err(format!(
                "ioctl-fuzz: VEXFS_IOC_CREATE on {}: {}{why}",
                path.display(),
                errno_name(n)
            ));
        }
        colls.push(Coll {
            path,
            dim,
            elem,
            metric,
            base: (i as u64 + 1) << 40,
            owner: i % cfg.procs,
        });
    }
    fs::write(cfg.dir.join("plain"), b"a plain file, not a collection\n")
        .map_err(|e| format!("write plain: {e}"))?;
    let results = common::run_workers(cfg.procs, |i| worker(cfg, &colls, i));
    let (mut total, mut counts, mut tolerated) = (0u64, Counts::new(), 0u64);
    let mut failed = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(s) => {
                let mut l = s.lines();
                let n = l.next().and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
                let mut pc = Counts::new();
                common::decode_counts(l.next().unwrap_or(""), &mut pc);
                tolerated += l.next().and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
                println!("process {i}: {n} calls: {}", common::format_counts(&pc));
                for line in l {
                    println!("process {i}: {line}");
                }
                total += n;
                for (e, k) in pc {
                    *counts.entry(e).or_default() += k;
                }
            }
            Err(e) => failed.push(format!("process {i}: {e}")),
        }
    }
    if !failed.is_empty() {
        return Err(format!(
            "ioctl-fuzz: FAILED (seed {}):\n  {}",
            cfg.seed,
            failed.join("\n  ")
        ));
    }
    Ok(format!(
        "ioctl-fuzz: {total} calls, by errno: {}, {tolerated} valid calls tolerated (ENOSPC/ENOMEM), \
         collections consistent, seed {}",
        common::format_counts(&counts),
        cfg.seed
    ))
}
