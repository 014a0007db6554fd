// SPDX-License-Identifier: GPL-2.0

//! Test client of the VexFS vector ioctls, run by the VM tests.
//!
//! `vexfs-ioctl-test TEST DIR` runs one test on collections it creates in directory `DIR` of a
//! mounted VexFS and exits with status 0 if it passed. Tests:
//!
//! - `exact`: every metric and element type, random data; exact search against a binary64
//!   brute force computed here, within the error bound documented in `fs/vexfs/vecmath.rs`;
//! - `recall`: HNSW recall@10 on clustered data against the binary64 brute force, >= 0.95
//!   (every metric at 32 elements, cosine at 256, where searches use sign codes);
//! - `delete`: delete, search, statistics, rebuild and compaction;
//! - `errors`: every rejection path of the ioctls gets its errno;
//! - `corrupt`: damaged collection files are refused with `EUCLEAN`;
//! - `concurrent`: searches in parallel with inserts, deletes and rebuilds;
//! - `batch`: batch search against one search per query, get by id, their errnos;
//! - `filter`: filtered search by id range and allow-list at several selectivities (exact
//!   against the binary64 brute force over the admitted vectors, HNSW recall), batch search
//!   with a filter, and the errnos of malformed filters;
//! - `persist-write` / `persist-verify`: a collection written in one boot and checked (stats,
//!   exact search, recall, the index restored from its saved copy with the same HNSW
//!   results) in the next;
//! - `saved-write` / `saved-verify`: saved indexes damaged or made stale behind the kernel's
//!   back, then, after a remount, detected and rebuilt or brought up to date;
//! - `fault-write` / `fault-change` / `fault-verify`: a save over a saved index in place, cut
//!   by block-layer fault injection after a given number of bytes, then, after a remount,
//!   what reached the disk restores (or rebuilds) with exact results; `fault-compact-write` /
//!   `fault-compact` / `fault-compact-verify`: the same for a compaction.
//!
//! Lines starting with `#` report measurements; failures are reported on standard error.

// The reference distances are computed in binary64 on purpose.
#![allow(clippy::float_arithmetic)]

use std::fs::{
    File,
    OpenOptions, //
};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;
use vexfs_uapi as u;

// The checksums of the collection file format.
#[allow(dead_code)]
#[path = "../../../../fs/vexfs/format.rs"]
mod format;

/// A deterministic pseudo-random generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    /// Roughly normal, mean 0, deviation `sd`.
    fn normal(&mut self, sd: f64) -> f64 {
        let s: f64 = (0..6).map(|_| self.unit()).sum();
        s * sd / 1.0
    }
}

/// A data set: ids and vectors (as f64 copies of the exact element values).
struct Data {
    elem: u32,
    ids: Vec<u64>,
    vecs: Vec<Vec<f64>>,
    /// Queries drawn from the same distribution (the same clusters).
    queries: Vec<Vec<f64>>,
}

/// Queries generated with each data set.
const QUERIES: usize = 64;

impl Data {
    fn random(elem: u32, dim: usize, n: usize, seed: u64, clusters: usize) -> Self {
        Self::random_spread(elem, dim, n, seed, clusters, 0.08)
    }

    /// `n` vectors (and [`QUERIES`] queries): uniform in [-1, 1) with some tiny and large
    /// elements if `clusters` is 0, else around `clusters` random centres with a deviation
    /// of `spread` per element.
    fn random_spread(
        elem: u32,
        dim: usize,
        n: usize,
        seed: u64,
        clusters: usize,
        spread: f64,
    ) -> Self {
        let mut r = Rng(seed);
        let centres: Vec<Vec<f64>> = (0..clusters.max(1))
            .map(|_| (0..dim).map(|_| r.unit()).collect())
            .collect();
        let mut ids = Vec::new();
        let mut vecs = Vec::new();
        let mut queries = Vec::new();
        for i in 0..n + QUERIES {
            let v: Vec<f64> = if clusters == 0 {
                (0..dim)
                    .map(|_| {
                        // Mix magnitudes: mostly O(1), some tiny, some large.
                        let x = r.unit();
                        match r.next() % 16 {
                            0 => x * 1e-6,
                            1 => x * 1e3,
                            _ => x,
                        }
                    })
                    .collect()
            } else {
                let c = &centres[(r.next() % clusters as u64) as usize];
                c.iter().map(|&x| x + r.normal(spread)).collect()
            };
            let v = v.into_iter().map(|x| quantise(elem, x)).collect();
            if i < n {
                ids.push(i as u64 * 3 + 7);
                vecs.push(v);
            } else {
                queries.push(v);
            }
        }
        Data {
            elem,
            ids,
            vecs,
            queries,
        }
    }

    fn bytes(&self, v: &[f64]) -> Vec<u8> {
        let mut out = Vec::new();
        for &x in v {
            if self.elem == u::ELEM_F32 {
                out.extend_from_slice(&(x as f32).to_bits().to_ne_bytes());
            } else {
                out.push(x as i8 as u8);
            }
        }
        out
    }
}

/// The value an element takes in the collection: rounded to binary32 or to an i8.
fn quantise(elem: u32, x: f64) -> f64 {
    if elem == u::ELEM_F32 {
        f64::from(x as f32)
    } else {
        (x * 60.0).round().clamp(-128.0, 127.0)
    }
}

/// Binary64 reference distance.
fn ref_dist(metric: u32, x: &[f64], y: &[f64]) -> f64 {
    match metric {
        u::METRIC_L2 => x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum(),
        u::METRIC_IP => -x.iter().zip(y).map(|(a, b)| a * b).sum::<f64>(),
        _ => {
            let d: f64 = x.iter().zip(y).map(|(a, b)| a * b).sum();
            let nx = x.iter().map(|a| a * a).sum::<f64>().sqrt();
            let ny = y.iter().map(|a| a * a).sum::<f64>().sqrt();
            if nx == 0.0 || ny == 0.0 {
                1.0
            } else {
                1.0 - d / (nx * ny)
            }
        }
    }
}

/// The largest error the kernel's quantisation of vector `x` makes per element: half the
/// grid step of its block floating-point representation (0 for i8).
fn delta(elem: u32, x: &[f64]) -> f64 {
    if elem != u::ELEM_F32 {
        return 0.0;
    }
    let mut top = i32::MIN;
    for &v in x {
        if v != 0.0 {
            // |v| in [2^k, 2^(k+1)): top = k + 1.
            let k = (v as f32).abs().log2().floor() as i32;
            top = top.max(k + 1);
        }
    }
    if top == i32::MIN {
        return 0.0;
    }
    2f64.powi(top - 31)
}

/// The documented error bound of the kernel's distance against [`ref_dist`].
fn bound(elem: u32, metric: u32, x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (dx, dy) = (delta(elem, x), delta(elem, y));
    let r = ref_dist(metric, x, y).abs();
    let round = r * 2f64.powi(-24) + 1e-300;
    let b = match metric {
        u::METRIC_L2 => {
            let d = dx.max(dy);
            let l1: f64 = x.iter().zip(y).map(|(a, b)| (a - b).abs()).sum();
            6.0 * d * l1 + 9.0 * n * d * d
        }
        u::METRIC_IP => {
            let l1x: f64 = x.iter().map(|a| a.abs()).sum();
            let l1y: f64 = y.iter().map(|a| a.abs()).sum();
            l1x * dy + l1y * dx + n * dx * dy
        }
        _ => {
            let nx = x.iter().map(|a| a * a).sum::<f64>().sqrt();
            let ny = y.iter().map(|a| a * a).sum::<f64>().sqrt();
            if nx == 0.0 || ny == 0.0 {
                0.0
            } else {
                // First order, with 1% for the second; the unit vectors the kernel keeps
                // are rounded to 2^-30 per element (sqrt(n) 2^-30 each in norm).
                2.02 * (n.sqrt() * dx / nx + n.sqrt() * dy / ny)
                    + 2.02 * n.sqrt() * 2f64.powi(-29)
                    + 2f64.powi(-44)
            }
        }
    };
    b + round
}

type Res<T> = Result<T, String>;

fn err<T>(msg: impl Into<String>) -> Res<T> {
    Err(msg.into())
}

fn ioctl<T: u::IoctlArg>(f: &File, cmd: u32, arg: &mut T) -> Res<()> {
    u::ioctl(f, cmd, arg)
        .map(|_| ())
        .map_err(|e| format!("ioctl {cmd:#x}: {e}"))
}

fn errno_of<T: u::IoctlArg>(f: &File, cmd: u32, arg: &mut T) -> i32 {
    match u::ioctl(f, cmd, arg) {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

fn open_rw(path: &Path, create: bool) -> Res<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .map_err(|e| format!("open {}: {e}", path.display()))
}

fn create(path: &Path, dim: usize, elem: u32, metric: u32, m: u32, efc: u32) -> Res<File> {
    let _ = std::fs::remove_file(path);
    let f = open_rw(path, true)?;
    let mut p = u::params(dim as u32, elem, metric);
    p.hnsw_m = m;
    p.hnsw_ef_construction = efc;
    ioctl(&f, u::IOC_CREATE, &mut p)?;
    Ok(f)
}

/// Inserts rows `range` of `d` with `flags`.
fn insert_flags(f: &File, d: &Data, range: std::ops::Range<usize>, flags: u32) -> Result<(), i32> {
    let ids = &d.ids[range.clone()];
    let mut bytes = Vec::new();
    for v in &d.vecs[range] {
        bytes.extend(d.bytes(v));
    }
    let mut a = u::Insert {
        version: u::UAPI_VERSION,
        count: ids.len() as u32,
        flags,
        ids: ids.as_ptr() as u64,
        vectors: bytes.as_ptr() as u64,
        ..Default::default()
    };
    match errno_of(f, u::IOC_INSERT, &mut a) {
        0 => Ok(()),
        e => Err(e),
    }
}

/// Inserts rows `range` of `d`.
fn insert(f: &File, d: &Data, range: std::ops::Range<usize>) -> Res<()> {
    insert_flags(f, d, range, 0).map_err(|e| {
        format!(
            "ioctl {:#x}: {}",
            u::IOC_INSERT,
            std::io::Error::from_raw_os_error(e)
        )
    })
}

fn insert_all(f: &File, d: &Data, batch: usize) -> Res<()> {
    let mut i = 0;
    while i < d.ids.len() {
        let j = (i + batch).min(d.ids.len());
        insert(f, d, i..j)?;
        i = j;
    }
    Ok(())
}

fn search(
    f: &File,
    d: &Data,
    q: &[f64],
    k: usize,
    ef: u32,
    exact: bool,
) -> Res<(Vec<u64>, Vec<f32>)> {
    let qb = d.bytes(q);
    let mut ids = vec![0u64; k];
    let mut dists = vec![0u32; k];
    let mut a = u::Search {
        version: u::UAPI_VERSION,
        k: k as u32,
        ef,
        flags: if exact { u::SEARCH_EXACT } else { 0 },
        query: qb.as_ptr() as u64,
        ids: ids.as_mut_ptr() as u64,
        distances: dists.as_mut_ptr() as u64,
        ..Default::default()
    };
    ioctl(f, u::IOC_SEARCH, &mut a)?;
    let n = a.count as usize;
    ids.truncate(n);
    Ok((ids, dists[..n].iter().map(|&b| f32::from_bits(b)).collect()))
}

fn stats(f: &File) -> Res<u::Stats> {
    let mut s = u::Stats {
        version: u::UAPI_VERSION,
        ..Default::default()
    };
    ioctl(f, u::IOC_STATS, &mut s)?;
    Ok(s)
}

/// Reference top-k: (distance, index into `d`), nearest first, over live entries.
fn brute(d: &Data, live: &[bool], metric: u32, q: &[f64], k: usize) -> Vec<(f64, usize)> {
    let mut all: Vec<(f64, usize)> = (0..d.ids.len())
        .filter(|&i| live[i])
        .map(|i| (ref_dist(metric, q, &d.vecs[i]), i))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.truncate(k);
    all
}

/// Error statistics of exact searches.
#[derive(Default)]
struct ErrStats {
    max_abs: f64,
    max_rel: f64,
    max_ratio: f64,
    results: usize,
    id_mismatch_ties: usize,
}

/// Checks an exact search against the reference; updates `st`.
fn check_exact(
    f: &File,
    d: &Data,
    live: &[bool],
    metric: u32,
    q: &[f64],
    k: usize,
    st: &mut ErrStats,
) -> Res<()> {
    let (ids, dists) = search(f, d, q, k, 0, true)?;
    let want = brute(d, live, metric, q, k);
    if ids.len() != want.len() {
        return err(format!(
            "exact search: {} results, want {}",
            ids.len(),
            want.len()
        ));
    }
    let index_of = |id: u64| d.ids.iter().position(|&x| x == id);
    let kth = want.last().map(|w| w.0).unwrap_or(0.0);
    let kth_b = want
        .last()
        .map(|w| bound(d.elem, metric, q, &d.vecs[w.1]))
        .unwrap_or(0.0);
    for (j, (&id, &dist)) in ids.iter().zip(&dists).enumerate() {
        let i = index_of(id).ok_or_else(|| format!("unknown id {id}"))?;
        if !live[i] {
            return err(format!("deleted id {id} returned"));
        }
        let r = ref_dist(metric, q, &d.vecs[i]);
        let b = bound(d.elem, metric, q, &d.vecs[i]);
        let e = (f64::from(dist) - r).abs();
        st.max_abs = st.max_abs.max(e);
        if r != 0.0 {
            st.max_rel = st.max_rel.max(e / r.abs());
        }
        st.max_ratio = st.max_ratio.max(e / b);
        st.results += 1;
        if e > b {
            return err(format!(
                "id {id}: distance {dist:e}, reference {r:e}, error {e:e} > bound {b:e}"
            ));
        }
        if j > 0 && dist < dists[j - 1] {
            return err("results not sorted".to_string());
        }
        if id != d.ids[want[j].1] {
            // Only a near tie may differ: within both bounds of the k-th distance.
            if r > kth + b + kth_b {
                return err(format!(
                    "id {id} (reference {r:e}) is not in the top {k} ({kth:e})"
                ));
            }
            st.id_mismatch_ties += 1;
        }
    }
    Ok(())
}

fn test_exact(dir: &Path) -> Res<()> {
    for (elem, ename) in [(u::ELEM_F32, "f32"), (u::ELEM_I8, "i8")] {
        for (metric, mname) in [
            (u::METRIC_L2, "l2"),
            (u::METRIC_IP, "ip"),
            (u::METRIC_COSINE, "cosine"),
        ] {
            let dim = 37;
            let d = Data::random(elem, dim, 1200, 1 + u64::from(elem * 10 + metric), 0);
            let f = create(
                &dir.join(format!("exact-{ename}-{mname}")),
                dim,
                elem,
                metric,
                8,
                32,
            )?;
            insert_all(&f, &d, 500)?;
            let live = vec![true; d.ids.len()];
            let mut st = ErrStats::default();
            for qv in d.queries.iter().take(25) {
                check_exact(&f, &d, &live, metric, qv, 10, &mut st)?;
            }
            // The data vectors themselves as queries (distance 0 / exact ties for L2).
            for qv in d.vecs.iter().take(5) {
                check_exact(&f, &d, &live, metric, qv, 10, &mut st)?;
            }
            println!(
                "# exact {ename} {mname}: {} results, max abs error {:.3e}, max rel error {:.3e}, \
                 max error/bound {:.3}, tie swaps {}",
                st.results, st.max_abs, st.max_rel, st.max_ratio, st.id_mismatch_ties
            );
        }
    }
    Ok(())
}

/// HNSW recall@k of `f` on `d` for `nq` clustered queries.
#[allow(clippy::too_many_arguments)]
fn recall(
    f: &File,
    d: &Data,
    live: &[bool],
    metric: u32,
    nq: usize,
    k: usize,
    ef: u32,
    seed: u64,
) -> Res<f64> {
    let mut hits = 0u32;
    let mut total = 0;
    let start = seed as usize % (QUERIES - nq + 1);
    for qv in &d.queries[start..start + nq] {
        let (ids, _) = search(f, d, qv, k, ef, false)?;
        let want = brute(d, live, metric, qv, k);
        let kth = want.last().map(|w| w.0).unwrap_or(0.0);
        for id in &ids {
            let i = d.ids.iter().position(|x| x == id).ok_or("unknown id")?;
            if !live[i] {
                return err(format!("deleted id {id} returned by HNSW"));
            }
            if ref_dist(metric, qv, &d.vecs[i]) <= kth + kth.abs() * 1e-6 + 1e-9 {
                hits += 1;
            }
        }
        total += want.len();
    }
    Ok(f64::from(hits) / total as f64)
}

fn test_recall(dir: &Path) -> Res<()> {
    for (metric, mname) in [
        (u::METRIC_L2, "l2"),
        (u::METRIC_IP, "ip"),
        (u::METRIC_COSINE, "cosine"),
    ] {
        let dim = 32;
        let n = 4000;
        // Overlapping clusters: the deviation is a fifth of the spread of the centres.
        let d = Data::random_spread(u::ELEM_F32, dim, n, 7 + u64::from(metric), 32, 0.12);
        let f = create(
            &dir.join(format!("recall-{mname}")),
            dim,
            u::ELEM_F32,
            metric,
            16,
            100,
        )?;
        let t = std::time::Instant::now();
        insert_all(&f, &d, 1000)?;
        let ins = t.elapsed();
        let live = vec![true; d.ids.len()];
        let r16 = recall(&f, &d, &live, metric, 64, 10, 16, 0)?;
        let t = std::time::Instant::now();
        let r = recall(&f, &d, &live, metric, 64, 10, 0, 0)?;
        let qt = t.elapsed();
        let s = stats(&f)?;
        println!(
            "# hnsw {mname}: n={n} dim={dim} M=16 ef_construction=100: recall@10 {r:.3} (ef 64), \
             {r16:.3} (ef 16); insert {:.2} s, 64 queries {:.2} s (TCG), index {} KiB",
            ins.as_secs_f64(),
            qt.as_secs_f64(),
            s.index_bytes / 1024
        );
        if r < 0.95 {
            return err(format!("{mname}: recall@10 {r:.3} < 0.95"));
        }
    }
    // From 256 elements on, cosine searches pass over candidates on their sign codes: the
    // same recall, on wider vectors.
    let (dim, n) = (256, 1500);
    let d = Data::random_spread(u::ELEM_F32, dim, n, 11, 24, 0.12);
    let f = create(
        &dir.join("recall-cosine-256"),
        dim,
        u::ELEM_F32,
        u::METRIC_COSINE,
        16,
        100,
    )?;
    insert_all(&f, &d, 500)?;
    let live = vec![true; d.ids.len()];
    let r = recall(&f, &d, &live, u::METRIC_COSINE, 32, 10, 0, 0)?;
    // The search statistics count the neighbours passed over.
    let (mut dists, mut passed) = (0, 0);
    for qv in d.queries.iter().take(10) {
        let mut st = u::SearchStats::default();
        let (q, mut ids) = (d.bytes(qv), [0u64; 10]);
        let mut a = u::Search {
            version: u::UAPI_VERSION,
            k: 10,
            ef: 64,
            flags: u::SEARCH_STATS,
            query: q.as_ptr() as u64,
            ids: ids.as_mut_ptr() as u64,
            stats: &mut st as *mut u::SearchStats as u64,
            ..Default::default()
        };
        ioctl(&f, u::IOC_SEARCH, &mut a)?;
        (dists, passed) = (dists + st.distances, passed + st.passed);
    }
    if passed == 0 {
        return err(format!(
            "cosine {dim}: no neighbour passed over on sign codes"
        ));
    }
    println!(
        "# hnsw cosine: n={n} dim={dim} M=16 ef_construction=100: recall@10 {r:.3} (ef 64); \
         10 searches: {dists} distances, {passed} neighbours passed over on sign codes"
    );
    if r < 0.95 {
        return err(format!("cosine {dim}: recall@10 {r:.3} < 0.95"));
    }
    Ok(())
}

fn delete(f: &File, ids: &[u64]) -> Res<u32> {
    let mut a = u::Delete {
        version: u::UAPI_VERSION,
        count: ids.len() as u32,
        ids: ids.as_ptr() as u64,
        ..Default::default()
    };
    ioctl(f, u::IOC_DELETE, &mut a)?;
    Ok(a.deleted)
}

fn build(f: &File, flags: u32) -> Res<()> {
    let mut a = u::BuildIndex {
        version: u::UAPI_VERSION,
        flags,
        ..Default::default()
    };
    ioctl(f, u::IOC_BUILD_INDEX, &mut a)
}

fn expect<T: PartialEq + std::fmt::Debug>(what: &str, want: T, got: T) -> Res<()> {
    if want != got {
        return err(format!("{what}: expected {want:?}, got {got:?}"));
    }
    Ok(())
}

fn test_delete(dir: &Path) -> Res<()> {
    let metric = u::METRIC_L2;
    let dim = 16;
    let d = Data::random(u::ELEM_F32, dim, 1000, 5, 10);
    let path = dir.join("delete");
    let f = create(&path, dim, u::ELEM_F32, metric, 8, 48)?;
    insert_all(&f, &d, 400)?;
    let mut live = vec![true; d.ids.len()];
    let gone: Vec<u64> = (0..d.ids.len()).step_by(7).map(|i| d.ids[i]).collect();
    expect("deleted", gone.len() as u32, delete(&f, &gone)?)?;
    expect("deleted again", 0, delete(&f, &gone)?)?;
    for i in (0..d.ids.len()).step_by(7) {
        live[i] = false;
    }
    let s = stats(&f)?;
    expect("count", (d.ids.len() - gone.len()) as u64, s.count)?;
    expect("deleted count", gone.len() as u64, s.deleted)?;
    expect("index state", u::INDEX_READY, s.index_state)?;
    expect(
        "file size",
        // Id, 16 elements, checksum and padding.
        4096 + d.ids.len() as u64 * (8 + 16 * 4 + 8),
        s.file_bytes,
    )?;
    let mut st = ErrStats::default();
    let q = &d.queries[..10];
    for qv in q {
        check_exact(&f, &d, &live, metric, qv, 10, &mut st)?;
    }
    let r = recall(&f, &d, &live, metric, 30, 10, 0, 78)?;
    println!("# after deleting {}: hnsw recall@10={r:.3}", gone.len());
    if r < 0.95 {
        return err(format!("recall after delete {r:.3}"));
    }
    // Rebuild: same results.
    build(&f, 0)?;
    expect(
        "state after rebuild",
        u::INDEX_READY,
        stats(&f)?.index_state,
    )?;
    for qv in q {
        check_exact(&f, &d, &live, metric, qv, 10, &mut st)?;
    }
    let r = recall(&f, &d, &live, metric, 30, 10, 0, 78)?;
    println!("# after rebuild: hnsw recall@10={r:.3}");
    // Compaction drops the tombstones from the file, which shrinks.
    let blocks = |f: &File| {
        f.metadata()
            .map(|m| std::os::unix::fs::MetadataExt::blocks(&m))
    };
    let before = (
        stats(&f)?.file_bytes,
        blocks(&f).map_err(|e| e.to_string())?,
    );
    build(&f, u::BUILD_COMPACT)?;
    let s = stats(&f)?;
    expect("deleted after compaction", 0, s.deleted)?;
    let after = (s.file_bytes, blocks(&f).map_err(|e| e.to_string())?);
    if after.0 > before.0 || after.1 >= before.1 {
        return err(format!(
            "compaction: (bytes, blocks) {before:?} -> {after:?}"
        ));
    }
    expect(
        "count after compaction",
        (d.ids.len() - gone.len()) as u64,
        s.count,
    )?;
    for qv in q {
        check_exact(&f, &d, &live, metric, qv, 10, &mut st)?;
    }
    // Re-insert a deleted id.
    insert(&f, &d, 0..1)?;
    live[0] = true;
    let (ids, _) = search(&f, &d, &d.vecs[0], 1, 0, true)?;
    expect("re-inserted id found", vec![d.ids[0]], ids)?;
    // The file is readable like any file and starts with the magic.
    let mut hdr = [0u8; 8];
    std::io::Read::read_exact(&mut File::open(&path).map_err(|e| e.to_string())?, &mut hdr)
        .map_err(|e| e.to_string())?;
    expect("magic", *b"VEXFSCOL", hdr)?;
    v1_compaction(dir)
}

/// A collection of format version 1 (records without checksums, as kernels before them
/// wrote), made by rewriting one behind the kernel's back: read, searched, and compacted in
/// place, keeping its version.
fn v1_compaction(dir: &Path) -> Res<()> {
    let (dim, n) = (16, 300);
    let metric = u::METRIC_L2;
    let d = Data::random(u::ELEM_F32, dim, n, 55, 6);
    let path = dir.join("v1");
    insert_all(&create(&path, dim, u::ELEM_F32, metric, 8, 48)?, &d, 100)?;
    {
        let f = open_rw(&path, false)?;
        let h = read_at(&f, 0, 4096)?;
        let (rs, v1rs, elems) = (le32_at(&h, 36) as usize, 8 + dim * 4, 8 + dim * 4);
        let recs = read_at(&f, 4096, n * rs)?;
        let mut body = vec![0u8; n * v1rs];
        for i in 0..n {
            body[i * v1rs..][..elems].copy_from_slice(&recs[i * rs..][..elems]);
        }
        poke(&f, 4096, &body)?;
        let mut h1 = vec![0u8; 4096];
        h1[..104].copy_from_slice(&h[..104]);
        h1[8..12].copy_from_slice(&1u32.to_le_bytes());
        h1[36..40].copy_from_slice(&(v1rs as u32).to_le_bytes());
        // No saved index, generations, salt or durable count.
        h1[56..104].fill(0);
        reseal_header(&mut h1);
        poke(&f, 0, &h1)?;
    }
    // The index, clean since the close that saved it, is dropped: the next use reads the file.
    drop_caches()?;
    expect("v1: index dropped", u::INDEX_NONE, residency(&path)?.0)?;
    let f = open_rw(&path, false)?;
    let mut live = vec![true; n];
    let mut st = ErrStats::default();
    for qv in &d.queries[..5] {
        check_exact(&f, &d, &live, metric, qv, 10, &mut st)?;
    }
    let gone: Vec<u64> = (0..n).step_by(5).map(|i| d.ids[i]).collect();
    expect("v1: deleted", gone.len() as u32, delete(&f, &gone)?)?;
    (0..n).step_by(5).for_each(|i| live[i] = false);
    build(&f, u::BUILD_COMPACT)?;
    let h = read_at(&f, 0, 4096)?;
    expect("v1: version after compaction", 1, le32_at(&h, 8))?;
    expect(
        "v1: records after compaction",
        (n - gone.len()) as u64,
        le64_at(&h, 40),
    )?;
    expect("v1: record 0", d.ids[1], le64_at(&read_at(&f, 4096, 8)?, 0))?;
    for qv in &d.queries[..5] {
        check_exact(&f, &d, &live, metric, qv, 10, &mut st)?;
    }
    println!("# version 1 collection: read, searched, compacted in place");
    Ok(())
}

fn test_errors(dir: &Path) -> Res<()> {
    use libc::{
        E2BIG,
        EBADF,
        EEXIST,
        EFAULT,
        EINVAL,
        ENOTEMPTY,
        ENOTTY,
        EPERM, //
    };
    let dim = 8usize;
    let path = dir.join("errors");
    let _ = std::fs::remove_file(&path);
    let f = open_rw(&path, true)?;
    let good = u::params(dim as u32, u::ELEM_F32, u::METRIC_L2);
    // Not a collection yet.
    let mut s = u::Stats {
        version: u::UAPI_VERSION,
        ..Default::default()
    };
    expect(
        "stats on a plain file",
        ENOTTY,
        errno_of(&f, u::IOC_STATS, &mut s),
    )?;
    // Malformed creation parameters.
    let bad: Vec<(&str, u::CollectionParams)> = vec![
        ("version", u::CollectionParams { version: 2, ..good }),
        ("dim 0", u::CollectionParams { dim: 0, ..good }),
        (
            "dim too big",
            u::CollectionParams {
                dim: u::MAX_DIM + 1,
                ..good
            },
        ),
        (
            "elem type",
            u::CollectionParams {
                elem_type: 3,
                ..good
            },
        ),
        ("metric 0", u::CollectionParams { metric: 0, ..good }),
        ("metric 4", u::CollectionParams { metric: 4, ..good }),
        ("m 1", u::CollectionParams { hnsw_m: 1, ..good }),
        ("m 65", u::CollectionParams { hnsw_m: 65, ..good }),
        (
            "ef < m",
            u::CollectionParams {
                hnsw_m: 16,
                hnsw_ef_construction: 8,
                ..good
            },
        ),
        (
            "ef too big",
            u::CollectionParams {
                hnsw_ef_construction: u::MAX_EF + 1,
                ..good
            },
        ),
        ("flags", u::CollectionParams { flags: 1, ..good }),
        (
            "reserved",
            u::CollectionParams {
                reserved: [0, 0, 0, 0, 0, 0, 0, 0, 1],
                ..good
            },
        ),
    ];
    for (what, mut p) in bad {
        expect(
            &format!("create: {what}"),
            EINVAL,
            errno_of(&f, u::IOC_CREATE, &mut p),
        )?;
    }
    expect(
        "create: bad pointer",
        EFAULT,
        u::ioctl_raw(&f, u::IOC_CREATE, 16)
            .err()
            .and_then(|e| e.raw_os_error())
            .unwrap_or(0),
    )?;
    // Read-only descriptor.
    let ro = File::open(&path).map_err(|e| e.to_string())?;
    expect(
        "create read-only",
        EBADF,
        errno_of(&ro, u::IOC_CREATE, &mut good.clone()),
    )?;
    ioctl(&f, u::IOC_CREATE, &mut good.clone())?;
    expect(
        "create twice",
        EEXIST,
        errno_of(&f, u::IOC_CREATE, &mut good.clone()),
    )?;
    // A non-empty plain file.
    let plain_path = dir.join("plain");
    std::fs::write(&plain_path, b"data").map_err(|e| e.to_string())?;
    let plain = open_rw(&plain_path, false)?;
    expect(
        "create non-empty",
        ENOTEMPTY,
        errno_of(&plain, u::IOC_CREATE, &mut good.clone()),
    )?;
    // Unknown ioctl.
    expect(
        "unknown ioctl",
        ENOTTY,
        u::ioctl_raw(&f, 0xc000_be7f, 0)
            .err()
            .and_then(|e| e.raw_os_error())
            .unwrap_or(0),
    )?;

    // Inserts.
    let ids = [1u64, 2, 3];
    let vals: Vec<u32> = (0..3 * dim).map(|i| (i as f32 * 0.5).to_bits()).collect();
    let ins = u::Insert {
        version: u::UAPI_VERSION,
        count: 3,
        ids: ids.as_ptr() as u64,
        vectors: vals.as_ptr() as u64,
        ..Default::default()
    };
    let bad_ins: Vec<(&str, u::Insert, i32)> = vec![
        ("version", u::Insert { version: 0, ..ins }, EINVAL),
        ("count 0", u::Insert { count: 0, ..ins }, EINVAL),
        (
            "count too big",
            u::Insert {
                count: u::MAX_BATCH + 1,
                ..ins
            },
            EINVAL,
        ),
        ("flags", u::Insert { flags: 4, ..ins }, EINVAL),
        ("pad", u::Insert { pad: 1, ..ins }, EINVAL),
        (
            "reserved",
            u::Insert {
                reserved: [0, 1, 0, 0],
                ..ins
            },
            EINVAL,
        ),
        ("bad ids pointer", u::Insert { ids: 8, ..ins }, EFAULT),
        (
            "bad vectors pointer",
            u::Insert { vectors: 8, ..ins },
            EFAULT,
        ),
        (
            "kernel vectors pointer",
            u::Insert {
                vectors: 0xffff_8000_0000_0000,
                ..ins
            },
            EFAULT,
        ),
    ];
    for (what, mut a, want) in bad_ins {
        expect(
            &format!("insert: {what}"),
            want,
            errno_of(&f, u::IOC_INSERT, &mut a),
        )?;
    }
    for (what, bits) in [
        ("NaN", 0x7fc0_0000u32),
        ("+inf", 0x7f80_0000),
        ("-inf", 0xff80_0000),
        ("sNaN", 0x7f80_0001),
    ] {
        let mut v = vals.clone();
        v[3 * dim - 1] = bits;
        let mut a = u::Insert {
            vectors: v.as_ptr() as u64,
            ..ins
        };
        expect(
            &format!("insert {what}"),
            EINVAL,
            errno_of(&f, u::IOC_INSERT, &mut a),
        )?;
    }
    let dup = [5u64, 6, 5];
    expect(
        "insert duplicate in batch",
        EEXIST,
        errno_of(
            &f,
            u::IOC_INSERT,
            &mut u::Insert {
                ids: dup.as_ptr() as u64,
                ..ins
            },
        ),
    )?;
    let maxid = [1u64, 2, u64::MAX];
    expect(
        "insert id u64::MAX",
        EINVAL,
        errno_of(
            &f,
            u::IOC_INSERT,
            &mut u::Insert {
                ids: maxid.as_ptr() as u64,
                ..ins
            },
        ),
    )?;
    expect(
        "insert read-only",
        EBADF,
        errno_of(&ro, u::IOC_INSERT, &mut ins.clone()),
    )?;
    expect("nothing inserted by failed batches", 0, stats(&f)?.count)?;
    ioctl(&f, u::IOC_INSERT, &mut ins.clone())?;
    expect(
        "insert existing",
        EEXIST,
        errno_of(&f, u::IOC_INSERT, &mut ins.clone()),
    )?;
    expect("count", 3, stats(&f)?.count)?;
    // A huge batch is refused before anything is read.
    let big = u::params(u::MAX_DIM, u::ELEM_F32, u::METRIC_L2);
    let big_f = create(
        &dir.join("big"),
        u::MAX_DIM as usize,
        big.elem_type,
        big.metric,
        0,
        0,
    )?;
    expect(
        "huge batch",
        E2BIG,
        errno_of(
            &big_f,
            u::IOC_INSERT,
            &mut u::Insert {
                count: u::MAX_BATCH,
                ids: 8,
                vectors: 8,
                ..ins
            },
        ),
    )?;

    // Searches.
    let q: Vec<u32> = (0..dim).map(|i| (i as f32).to_bits()).collect();
    let mut out_ids = [0u64; 4];
    let mut out_d = [0u32; 4];
    let se = u::Search {
        version: u::UAPI_VERSION,
        k: 4,
        query: q.as_ptr() as u64,
        ids: out_ids.as_mut_ptr() as u64,
        distances: out_d.as_mut_ptr() as u64,
        ..Default::default()
    };
    let bad_se: Vec<(&str, u::Search, i32)> = vec![
        ("version", u::Search { version: 7, ..se }, EINVAL),
        ("k 0", u::Search { k: 0, ..se }, EINVAL),
        (
            "k too big",
            u::Search {
                k: u::MAX_K + 1,
                ..se
            },
            EINVAL,
        ),
        (
            "ef too big",
            u::Search {
                ef: u::MAX_EF + 1,
                ..se
            },
            EINVAL,
        ),
        ("flags", u::Search { flags: 8, ..se }, EINVAL),
        ("pad", u::Search { pad: 1, ..se }, EINVAL),
        (
            "reserved",
            u::Search {
                reserved: [0, 9],
                ..se
            },
            EINVAL,
        ),
        (
            "stats without the flag",
            u::Search { stats: 4096, ..se },
            EINVAL,
        ),
        (
            "bad stats",
            u::Search {
                flags: u::SEARCH_STATS,
                stats: 16,
                ..se
            },
            EFAULT,
        ),
        ("bad query", u::Search { query: 16, ..se }, EFAULT),
        ("bad ids", u::Search { ids: 16, ..se }, EFAULT),
        (
            "bad distances",
            u::Search {
                distances: 16,
                ..se
            },
            EFAULT,
        ),
    ];
    for (what, mut a, want) in bad_se {
        expect(
            &format!("search: {what}"),
            want,
            errno_of(&f, u::IOC_SEARCH, &mut a),
        )?;
    }
    let mut qn = q.clone();
    qn[0] = 0x7fc0_0000;
    expect(
        "search NaN",
        EINVAL,
        errno_of(
            &f,
            u::IOC_SEARCH,
            &mut u::Search {
                query: qn.as_ptr() as u64,
                ..se
            },
        ),
    )?;
    let mut a = se;
    ioctl(&ro, u::IOC_SEARCH, &mut a)?;
    expect("search on a read-only descriptor: count", 3, a.count)?;
    let mut a = u::Search { distances: 0, ..se };
    ioctl(&f, u::IOC_SEARCH, &mut a)?;
    expect("search without distances", 3, a.count)?;
    // Search statistics: counters that add up, and a time.
    for exact in [false, true] {
        let mut st = u::SearchStats::default();
        let mut a = u::Search {
            flags: u::SEARCH_STATS | if exact { u::SEARCH_EXACT } else { 0 },
            stats: &mut st as *mut u::SearchStats as u64,
            ..se
        };
        ioctl(&f, u::IOC_SEARCH, &mut a)?;
        expect("search with stats: count", 3, a.count)?;
        // No check of the time: on a jiffies clock a search can take "0 ns".
        let scanned = st.flags == u::STATS_SCANNED;
        // 16 elements: no sign codes, nothing passed over.
        if st.rescored < 3 || st.reserved != 0 || st.pad != 0 || st.passed != 0 || scanned != exact
        {
            return err(format!("search stats (exact {exact}): {st:?}"));
        }
        expect("search stats: admitted (the live vectors)", 3, st.admitted)?;
        if !exact && (st.distances == 0 || st.expanded == 0) {
            return err(format!("HNSW search stats: {st:?}"));
        }
    }

    // Delete, build, stats.
    let del = u::Delete {
        version: u::UAPI_VERSION,
        count: 1,
        ids: ids.as_ptr() as u64,
        ..Default::default()
    };
    for (what, mut a, want) in [
        ("version", u::Delete { version: 0, ..del }, EINVAL),
        ("count 0", u::Delete { count: 0, ..del }, EINVAL),
        (
            "count too big",
            u::Delete {
                count: u::MAX_BATCH + 1,
                ..del
            },
            EINVAL,
        ),
        ("pad", u::Delete { pad: 1, ..del }, EINVAL),
        (
            "reserved",
            u::Delete {
                reserved: [1, 0, 0, 0],
                ..del
            },
            EINVAL,
        ),
        ("bad ids", u::Delete { ids: 24, ..del }, EFAULT),
    ] {
        expect(
            &format!("delete: {what}"),
            want,
            errno_of(&f, u::IOC_DELETE, &mut a),
        )?;
    }
    expect(
        "delete read-only",
        EBADF,
        errno_of(&ro, u::IOC_DELETE, &mut del.clone()),
    )?;
    for (what, mut a) in [
        (
            "version",
            u::BuildIndex {
                version: 3,
                ..Default::default()
            },
        ),
        (
            "flags",
            u::BuildIndex {
                version: 1,
                flags: 2,
                ..Default::default()
            },
        ),
        (
            "reserved",
            u::BuildIndex {
                version: 1,
                reserved: [0, 0, 1, 0],
                ..Default::default()
            },
        ),
    ] {
        expect(
            &format!("build: {what}"),
            EINVAL,
            errno_of(&f, u::IOC_BUILD_INDEX, &mut a),
        )?;
    }
    expect(
        "compact read-only",
        EBADF,
        errno_of(
            &ro,
            u::IOC_BUILD_INDEX,
            &mut u::BuildIndex {
                version: 1,
                flags: u::BUILD_COMPACT,
                ..Default::default()
            },
        ),
    )?;
    for (what, mut a) in [
        (
            "version",
            u::Stats {
                version: 0,
                ..Default::default()
            },
        ),
        (
            "mount_index_bytes set on input",
            u::Stats {
                version: 1,
                mount_index_bytes: 1,
                ..Default::default()
            },
        ),
    ] {
        expect(
            &format!("stats: {what}"),
            EINVAL,
            errno_of(&f, u::IOC_STATS, &mut a),
        )?;
    }
    expect(
        "stats bad pointer",
        EFAULT,
        u::ioctl_raw(&f, u::IOC_STATS, 8)
            .err()
            .and_then(|e| e.raw_os_error())
            .unwrap_or(0),
    )?;
    let s = stats(&f)?;
    let with_defaults = u::CollectionParams {
        hnsw_m: 16,
        hnsw_ef_construction: 200,
        ..good
    };
    expect("stats params", with_defaults, s.params)?;

    // write(2) and truncate are refused; reading works.
    let mut w = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| e.to_string())?;
    expect(
        "write(2) to a collection",
        Some(EPERM),
        w.write(b"x").err().and_then(|e| e.raw_os_error()),
    )?;
    expect(
        "truncate a collection",
        Some(EPERM),
        w.set_len(10).err().and_then(|e| e.raw_os_error()),
    )?;
    expect(
        "O_TRUNC on a collection",
        Some(EPERM),
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .err()
            .and_then(|e| e.raw_os_error()),
    )?;
    let data = std::fs::read(&path).map_err(|e| e.to_string())?;
    // The header, three records, and the saved index (written when a descriptor was closed).
    if data.len() < 4096 + 3 * (8 + 8 * 4) {
        return err(format!("collection file of {} bytes", data.len()));
    }
    expect("records in the header", 3, le64_at(&data, 40))?;
    let off = le64_at(&data, 56) as usize;
    if off != 0 {
        expect(
            "saved index magic",
            b"VEXFSIDX".as_slice(),
            data.get(off..off + 8).unwrap_or(&[]),
        )?;
    }
    // A copy is a plain file.
    std::fs::copy(&path, dir.join("copy")).map_err(|e| e.to_string())?;
    let copy = open_rw(&dir.join("copy"), false)?;
    expect(
        "stats on a copy",
        ENOTTY,
        errno_of(
            &copy,
            u::IOC_STATS,
            &mut u::Stats {
                version: 1,
                ..Default::default()
            },
        ),
    )?;
    expect(
        "ioctl on a directory",
        ENOTTY,
        errno_of(
            &File::open(dir).map_err(|e| e.to_string())?,
            u::IOC_STATS,
            &mut u::Stats {
                version: 1,
                ..Default::default()
            },
        ),
    )?;
    println!("# every rejection path returned the expected errno");
    Ok(())
}

/// Damages the collection file behind the kernel's back (on the device, [`poke`]) and checks
/// that a rebuild from the file refuses it with `EUCLEAN`, without an oops, and that
/// repairing it makes it usable again. A record past the durable count that fails its
/// checksum (as a crash leaves a record whose block never reached the disk) is ignored, and
/// so is the header block past its first sector (as a header write torn there leaves it).
fn test_corrupt(dir: &Path) -> Res<()> {
    let dim = 8;
    let d = Data::random(u::ELEM_F32, dim, 55, 11, 0);
    let path = dir.join("corrupt");
    let f = create(&path, dim, u::ELEM_F32, u::METRIC_L2, 0, 0)?;
    insert(&f, &d, 0..50)?;
    // The first 50 records are durable; the last 5 are not.
    f.sync_all().map_err(|e| e.to_string())?;
    insert(&f, &d, 50..55)?;
    // Id, elements, checksum, padding.
    let rs = 8 + dim * 4 + 8;
    let cases: [(&str, usize, u8); 7] = [
        ("header checksum", 20, 0xff),
        ("header torn after its first sector", 512, 0x5a),
        ("element NaN", 4096 + 3 * rs + 8 + 3, 0x7f),
        ("id changed", 4096 + 5 * rs + 7, 0xff),
        ("record checksum", 4096 + 7 * rs + 8 + dim * 4, 0x5a),
        ("record count", 40, 0x7f),
        ("unwritten record", 4096 + 52 * rs, 0),
    ];
    let mut res = Ok(());
    for (what, off, byte) in cases {
        let before = read_at(&f, 0, 4096 + 55 * rs)?;
        let mut map = before.clone();
        map[off] = byte;
        if what == "element NaN" {
            // Make the element a NaN: exponent all ones, mantissa non-zero.
            map[off - 1] = 0xc0;
        }
        if what == "unwritten record" {
            map[off..off + rs].fill(0);
        }
        if what.starts_with("header torn") {
            // What a crash in the middle of a header write can leave on a device with
            // 512-byte sectors: the header lies in its first sector.
            map[off..4096].fill(byte);
        }
        poke(&f, 0, &map)?;
        let mut b = u::BuildIndex {
            version: u::UAPI_VERSION,
            ..Default::default()
        };
        let e = errno_of(&f, u::IOC_BUILD_INDEX, &mut b);
        let count = stats(&f).map(|s| s.count);
        poke(&f, 0, &before)?;
        // A durable record that fails its checksum is damage; one past the durable count was
        // lost by a crash, and the collection goes on without it.
        let want = if what == "unwritten record" || what.starts_with("header torn") {
            0
        } else {
            libc::EUCLEAN
        };
        let want_count = if what == "unwritten record" { 54 } else { 55 };
        if e != want {
            res = err(format!("{what}: rebuild gave errno {e}, want {want}"));
            break;
        }
        if want == 0 && count != Ok(want_count) {
            res = err(format!(
                "{what}: count {count:?} after the rebuild, want {want_count}"
            ));
            break;
        }
        let mut s = u::Search {
            version: u::UAPI_VERSION,
            k: 1,
            ..Default::default()
        };
        let q: Vec<u32> = vec![0; dim];
        let mut ids = [0u64; 1];
        s.query = q.as_ptr() as u64;
        s.ids = ids.as_mut_ptr() as u64;
        let e = errno_of(&f, u::IOC_SEARCH, &mut s);
        if e != 0 {
            // The damage is undone: the search rebuilt the index from the repaired file.
            res = err(format!("{what}: search after repair gave errno {e}"));
            break;
        }
    }
    res?;
    // The last case's index was built without the record it hid.
    let mut b = u::BuildIndex {
        version: u::UAPI_VERSION,
        ..Default::default()
    };
    expect(
        "rebuild after repairs",
        0,
        errno_of(&f, u::IOC_BUILD_INDEX, &mut b),
    )?;
    let s = stats(&f)?;
    expect("count after repairs", 55, s.count)?;
    println!("# damaged collection files are refused with EUCLEAN, and usable once repaired");
    Ok(())
}

/// Searches from several threads while another inserts, deletes and rebuilds: every search
/// succeeds and returns live-or-recently-deleted ids, and the final state is right.
fn test_concurrent(dir: &Path) -> Res<()> {
    let dim = 16;
    let d = std::sync::Arc::new(Data::random(u::ELEM_F32, dim, 1500, 21, 8));
    let path = dir.join("concurrent");
    let f = create(&path, dim, u::ELEM_F32, u::METRIC_L2, 8, 32)?;
    insert(&f, &d, 0..100)?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut searchers = Vec::new();
    for t in 0..3u64 {
        let (d, stop, path) = (d.clone(), stop.clone(), path.clone());
        searchers.push(std::thread::spawn(move || -> Res<usize> {
            let f = File::open(&path).map_err(|e| e.to_string())?;
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let q = &d.queries[(n + t as usize) % QUERIES];
                let (ids, _) = search(&f, &d, q, 10, 32, n % 2 == 0)?;
                if ids.is_empty() || ids.iter().any(|id| !d.ids.contains(id)) {
                    return err(format!("bad result {ids:?}"));
                }
                n += 1;
            }
            Ok(n)
        }));
    }
    let mut i = 100;
    while i < d.ids.len() {
        insert(&f, &d, i..i + 100)?;
        let gone: Vec<u64> = d.ids[i - 100..i].iter().step_by(10).copied().collect();
        delete(&f, &gone)?;
        if i % 500 == 0 {
            build(&f, 0)?;
        }
        i += 100;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for s in searchers {
        total += s.join().map_err(|_| "searcher panicked".to_string())??;
    }
    let s = stats(&f)?;
    expect("count", 1500 - 140, s.count)?;
    println!("# {total} searches from 3 threads during 14 inserts, 14 deletes and 2 rebuilds");
    Ok(())
}

const PERSIST_DIM: usize = 20;
const PERSIST_N: usize = 1500;

fn persist_data() -> Data {
    Data::random(u::ELEM_F32, PERSIST_DIM, PERSIST_N, 4242, 12)
}

fn persist_live() -> Vec<bool> {
    (0..PERSIST_N).map(|i| i % 5 != 3).collect()
}

fn test_persist_write(dir: &Path) -> Res<()> {
    let d = persist_data();
    let f = create(
        &dir.join("persist"),
        PERSIST_DIM,
        u::ELEM_F32,
        u::METRIC_COSINE,
        16,
        64,
    )?;
    insert_all(&f, &d, 700)?;
    let live = persist_live();
    let gone: Vec<u64> = (0..PERSIST_N)
        .filter(|&i| !live[i])
        .map(|i| d.ids[i])
        .collect();
    expect("deleted", gone.len() as u32, delete(&f, &gone)?)?;
    f.sync_all().map_err(|e| e.to_string())?;
    let s = stats(&f)?;
    if s.saved_bytes == 0 || s.index_flags & u::INDEX_SAVED == 0 {
        return err(format!("index not saved by fsync: {s:?}"));
    }
    // The HNSW results of this graph, to compare with the restored one's.
    std::fs::write(dir.join("persist.expect"), hnsw_results(&f, &d)?).map_err(|e| e.to_string())?;
    verify_persist(&f, &d, &live)
}

/// The ids of HNSW searches (ef 32) for 20 queries, one line each.
fn hnsw_results(f: &File, d: &Data) -> Res<String> {
    let mut out = String::new();
    for qv in d.queries.iter().take(20) {
        let (ids, _) = search(f, d, qv, 10, 32, false)?;
        let line: Vec<String> = ids.iter().map(u64::to_string).collect();
        out.push_str(&line.join(" "));
        out.push('\n');
    }
    Ok(out)
}

/// Times the first search on `f` (which loads the index) and reports how the index was
/// loaded; returns whether it was restored from its saved copy.
fn first_search(f: &File, d: &Data, what: &str) -> Res<bool> {
    let t = std::time::Instant::now();
    search(f, d, &d.queries[0], 10, 0, false)?;
    let wall = t.elapsed();
    let s = stats(f)?;
    expect("index loaded", u::INDEX_READY, s.index_state)?;
    let restored = s.index_flags & u::INDEX_RESTORED != 0;
    println!(
        "# {what}: first search {:.1} ms, index {} in {:.1} ms ({} vectors, saved index {} bytes)",
        wall.as_secs_f64() * 1e3,
        if restored { "restored" } else { "rebuilt" },
        s.load_nanoseconds as f64 / 1e6,
        s.count,
        s.saved_bytes
    );
    Ok(restored)
}

fn verify_persist(f: &File, d: &Data, live: &[bool]) -> Res<()> {
    let s = stats(f)?;
    let n_live = live.iter().filter(|&&l| l).count() as u64;
    expect("live count", n_live, s.count)?;
    expect("deleted count", PERSIST_N as u64 - n_live, s.deleted)?;
    let mut st = ErrStats::default();
    for qv in d.queries.iter().take(20) {
        check_exact(f, d, live, u::METRIC_COSINE, qv, 10, &mut st)?;
    }
    let r = recall(f, d, live, u::METRIC_COSINE, 30, 10, 0, 4444)?;
    println!(
        "# persistent collection: {} live, max error/bound {:.3}, recall@10={r:.3}",
        s.count, st.max_ratio
    );
    if r < 0.95 {
        return err(format!("recall {r:.3}"));
    }
    Ok(())
}

fn test_persist_verify(dir: &Path) -> Res<()> {
    let f = File::open(dir.join("persist")).map_err(|e| e.to_string())?;
    let s = stats(&f)?;
    expect("index not loaded after mount", u::INDEX_NONE, s.index_state)?;
    expect(
        "saved index",
        u::INDEX_SAVED,
        s.index_flags & u::INDEX_SAVED,
    )?;
    let d = persist_data();
    expect(
        "index restored, not rebuilt",
        true,
        first_search(&f, &d, "persistent collection")?,
    )?;
    let want = std::fs::read_to_string(dir.join("persist.expect")).map_err(|e| e.to_string())?;
    expect(
        "HNSW results of the restored graph",
        want,
        hnsw_results(&f, &d)?,
    )?;
    verify_persist(&f, &d, &persist_live())
}

/// One batch search of `queries` (rows of `d`'s element type): ids, distances, counts.
fn search_batch(
    f: &File,
    d: &Data,
    queries: &[Vec<f64>],
    k: usize,
    ef: u32,
    exact: bool,
) -> Res<(Vec<u64>, Vec<u32>, Vec<u32>)> {
    let qb: Vec<u8> = queries.iter().flat_map(|q| d.bytes(q)).collect();
    let nq = queries.len();
    let mut ids = vec![u64::MAX; nq * k];
    let mut dists = vec![u32::MAX; nq * k];
    let mut counts = vec![u32::MAX; nq];
    let mut a = u::SearchBatch {
        version: u::UAPI_VERSION,
        k: k as u32,
        ef,
        flags: if exact { u::SEARCH_EXACT } else { 0 },
        nq: nq as u32,
        queries: qb.as_ptr() as u64,
        ids: ids.as_mut_ptr() as u64,
        distances: dists.as_mut_ptr() as u64,
        counts: counts.as_mut_ptr() as u64,
        ..Default::default()
    };
    ioctl(f, u::IOC_SEARCH_BATCH, &mut a)?;
    Ok((ids, dists, counts))
}

/// A search of `q` with `flags` and the filter `flt`; returns the ids, or the errno.
fn search_filtered(
    f: &File,
    d: &Data,
    q: &[f64],
    k: usize,
    flags: u32,
    flt: &u::Filter,
) -> Result<Vec<u64>, i32> {
    let qb = d.bytes(q);
    let mut ids = vec![0u64; k];
    let mut a = u::Search {
        version: u::UAPI_VERSION,
        k: k as u32,
        flags: flags | u::SEARCH_FILTER,
        query: qb.as_ptr() as u64,
        ids: ids.as_mut_ptr() as u64,
        filter: flt as *const u::Filter as u64,
        ..Default::default()
    };
    match errno_of(f, u::IOC_SEARCH, &mut a) {
        0 => {
            ids.truncate(a.count as usize);
            Ok(ids)
        }
        e => Err(e),
    }
}

/// Filtered searches: by id range, by allow-list and by both, admitting about 50%, 10% and
/// 1% of a collection with deleted vectors. Exact ones return the brute force over the
/// admitted vectors (by distance: ties make ids ambiguous); HNSW ones return only admitted
/// ids with recall@10 >= 0.95; a batch search with a filter gives what single searches give.
fn test_filter(dir: &Path) -> Res<()> {
    use libc::{
        E2BIG,
        EFAULT,
        EINVAL, //
    };
    for (metric, mname) in [(u::METRIC_COSINE, "cosine"), (u::METRIC_L2, "l2")] {
        let (dim, n) = (16, 2000);
        let d = Data::random_spread(u::ELEM_F32, dim, n, 91 + u64::from(metric), 24, 0.12);
        let f = create(
            &dir.join(format!("filter-{mname}")),
            dim,
            u::ELEM_F32,
            metric,
            16,
            100,
        )?;
        insert_all(&f, &d, 1000)?;
        let mut live = vec![true; n];
        let gone: Vec<u64> = (0..n).step_by(17).map(|i| d.ids[i]).collect();
        delete(&f, &gone)?;
        for i in (0..n).step_by(17) {
            live[i] = false;
        }
        let mut r = Rng(5);
        for pct in [50u64, 10, 1] {
            // Ids are 3 i + 7: the range admits the first pct% of them.
            let hi = d.ids[(n as u64 * pct / 100) as usize - 1];
            let list: Vec<u64> = d
                .ids
                .iter()
                .copied()
                .filter(|_| r.next() % 100 < pct)
                .chain([1, 2, u64::MAX - 1])
                .collect();
            let range = u::Filter {
                version: u::UAPI_VERSION,
                flags: u::FILTER_RANGE,
                id_min: 0,
                id_max: hi,
                ..Default::default()
            };
            let listed = u::Filter {
                version: u::UAPI_VERSION,
                flags: u::FILTER_IDS,
                ids: list.as_ptr() as u64,
                count: list.len() as u32,
                ..Default::default()
            };
            let both = u::Filter {
                flags: u::FILTER_RANGE | u::FILTER_IDS,
                id_min: d.ids[n / 4],
                id_max: u64::MAX,
                ..listed
            };
            for (fname, flt) in [("range", range), ("list", listed), ("both", both)] {
                let admits = |id: u64| {
                    (flt.flags & u::FILTER_RANGE == 0 || (id >= flt.id_min && id <= flt.id_max))
                        && (flt.flags & u::FILTER_IDS == 0 || list.contains(&id))
                };
                let allowed: Vec<bool> = (0..n).map(|i| live[i] && admits(d.ids[i])).collect();
                let (mut hits, mut total) = (0, 0);
                for q in &d.queries[..16] {
                    let want = brute(&d, &allowed, metric, q, 10);
                    let exact = search_filtered(&f, &d, q, 10, u::SEARCH_EXACT, &flt)
                        .map_err(|e| format!("{mname} {fname} {pct}%: errno {e}"))?;
                    if exact.len() != want.len() {
                        return err(format!(
                            "{mname} {fname} {pct}%: {} exact results, want {}",
                            exact.len(),
                            want.len()
                        ));
                    }
                    let kth = want.last().map_or(0.0, |w| w.0);
                    let tol = kth.abs() * 1e-5 + 1e-6;
                    for (id, w) in exact.iter().zip(&want) {
                        let i = d.ids.iter().position(|x| x == id).ok_or("unknown id")?;
                        if !allowed[i] || (ref_dist(metric, q, &d.vecs[i]) - w.0).abs() > tol {
                            return err(format!("{mname} {fname} {pct}%: exact id {id} wrong"));
                        }
                    }
                    let approx = search_filtered(&f, &d, q, 10, 0, &flt)
                        .map_err(|e| format!("{mname} {fname} {pct}%: errno {e}"))?;
                    for id in &approx {
                        let i = d.ids.iter().position(|x| x == id).ok_or("unknown id")?;
                        if !allowed[i] {
                            return err(format!("{mname} {fname} {pct}%: id {id} not admitted"));
                        }
                        if ref_dist(metric, q, &d.vecs[i]) <= kth + tol {
                            hits += 1;
                        }
                    }
                    total += want.len();
                }
                let rec = f64::from(hits) / total.max(1) as f64;
                println!("# filter {mname} {fname} {pct}%: recall@10 {rec:.3} (ef 64)");
                if rec < 0.95 {
                    return err(format!("{mname} {fname} {pct}%: recall@10 {rec:.3} < 0.95"));
                }
            }
            // A batch search with the filter gives what single searches give.
            let qs = &d.queries[..8];
            let qb: Vec<u8> = qs.iter().flat_map(|q| d.bytes(q)).collect();
            let (mut ids, mut counts) = (vec![0u64; 8 * 10], vec![0u32; 8]);
            let mut a = u::SearchBatch {
                version: u::UAPI_VERSION,
                k: 10,
                flags: u::SEARCH_FILTER,
                nq: 8,
                queries: qb.as_ptr() as u64,
                ids: ids.as_mut_ptr() as u64,
                counts: counts.as_mut_ptr() as u64,
                filter: &listed as *const u::Filter as u64,
                ..Default::default()
            };
            ioctl(&f, u::IOC_SEARCH_BATCH, &mut a)?;
            for (i, q) in qs.iter().enumerate() {
                let one =
                    search_filtered(&f, &d, q, 10, 0, &listed).map_err(|e| format!("errno {e}"))?;
                if ids[i * 10..i * 10 + counts[i] as usize] != one[..] {
                    return err(format!("{mname} {pct}%: batch query {i} differs"));
                }
            }
        }
        // Malformed filters.
        let list = [d.ids[0]];
        let ok = u::Filter {
            version: u::UAPI_VERSION,
            flags: u::FILTER_IDS,
            ids: list.as_ptr() as u64,
            count: 1,
            ..Default::default()
        };
        let q = &d.queries[0];
        for (what, flt, want) in [
            ("version", u::Filter { version: 0, ..ok }, EINVAL),
            ("no flag", u::Filter { flags: 0, ..ok }, EINVAL),
            (
                "unknown flag",
                u::Filter {
                    flags: 4 | u::FILTER_IDS,
                    ..ok
                },
                EINVAL,
            ),
            ("count 0", u::Filter { count: 0, ..ok }, EINVAL),
            (
                "count too big",
                u::Filter {
                    count: u::MAX_FILTER_IDS + 1,
                    ..ok
                },
                E2BIG,
            ),
            ("bad list", u::Filter { ids: 8, ..ok }, EFAULT),
            (
                "range fields without the flag",
                u::Filter { id_max: 5, ..ok },
                EINVAL,
            ),
            (
                "empty range",
                u::Filter {
                    flags: u::FILTER_RANGE,
                    id_min: 9,
                    id_max: 8,
                    ids: 0,
                    count: 0,
                    ..ok
                },
                EINVAL,
            ),
            ("pad", u::Filter { pad: 1, ..ok }, EINVAL),
            (
                "reserved",
                u::Filter {
                    reserved: [0, 0, 1],
                    ..ok
                },
                EINVAL,
            ),
        ] {
            match search_filtered(&f, &d, q, 10, 0, &flt) {
                Err(e) if e == want => {}
                got => return err(format!("filter {what}: {got:?}, want errno {want}")),
            }
        }
        // The filter's address: bad with the flag, nonzero without it.
        let qb = d.bytes(q);
        let mut ids = [0u64; 10];
        let base = u::Search {
            version: u::UAPI_VERSION,
            k: 10,
            query: qb.as_ptr() as u64,
            ids: ids.as_mut_ptr() as u64,
            ..Default::default()
        };
        for (what, mut a, want) in [
            (
                "filter address 8",
                u::Search {
                    flags: u::SEARCH_FILTER,
                    filter: 8,
                    ..base
                },
                EFAULT,
            ),
            (
                "filter without the flag",
                u::Search {
                    filter: &ok as *const u::Filter as u64,
                    ..base
                },
                EINVAL,
            ),
        ] {
            expect(what, want, errno_of(&f, u::IOC_SEARCH, &mut a))?;
        }
    }
    Ok(())
}

/// The vectors of `ids`, as `VEXFS_IOC_GET` returns them.
fn get_vectors(f: &File, ids: &[u64], bytes_per_vector: usize) -> Result<Vec<u8>, i32> {
    let mut out = vec![0u8; ids.len() * bytes_per_vector];
    let mut a = u::Get {
        version: u::UAPI_VERSION,
        count: ids.len() as u32,
        ids: ids.as_ptr() as u64,
        vectors: out.as_mut_ptr() as u64,
        ..Default::default()
    };
    match errno_of(f, u::IOC_GET, &mut a) {
        0 => Ok(out),
        e => Err(e),
    }
}

/// Batch search gives what one search per query gives; get returns the vectors bit for bit;
/// their rejection paths.
fn test_batch(dir: &Path) -> Res<()> {
    use libc::{
        E2BIG,
        EFAULT,
        EINVAL,
        ENOENT, //
    };
    for (elem, metric, dim) in [
        (u::ELEM_F32, u::METRIC_COSINE, 24),
        (u::ELEM_F32, u::METRIC_L2, 24),
        (u::ELEM_I8, u::METRIC_IP, 17),
    ] {
        let d = Data::random(elem, dim, 3000, 97 + u64::from(metric), 10);
        let f = create(&dir.join("batch"), dim, elem, metric, 0, 0)?;
        insert_all(&f, &d, 1000)?;
        let gone: Vec<u64> = d.ids.iter().step_by(11).copied().collect();
        delete(&f, &gone)?;
        let qs = &d.queries[..40];
        for (exact, ef, k) in [(false, 32, 10), (false, 0, 7), (true, 0, 10)] {
            let (ids, dists, counts) = search_batch(&f, &d, qs, k, ef, exact)?;
            for (i, q) in qs.iter().enumerate() {
                let (want_ids, want_d) = search(&f, &d, q, k, ef, exact)?;
                let n = counts[i] as usize;
                expect("batch count", want_ids.len(), n)?;
                expect("batch ids", &want_ids[..], &ids[i * k..i * k + n])?;
                let got: Vec<f32> = dists[i * k..i * k + n]
                    .iter()
                    .map(|&b| f32::from_bits(b))
                    .collect();
                expect("batch distances", want_d, got)?;
            }
        }
        // Get: every live id gives its vector bit for bit, in the order asked.
        let vb = d.bytes(&d.vecs[0]).len();
        let live: Vec<usize> = (0..d.ids.len())
            .filter(|i| i % 11 != 0)
            .rev()
            .take(500)
            .collect();
        let ids: Vec<u64> = live.iter().map(|&i| d.ids[i]).collect();
        let got = get_vectors(&f, &ids, vb).map_err(|e| format!("get: errno {e}"))?;
        let want: Vec<u8> = live.iter().flat_map(|&i| d.bytes(&d.vecs[i])).collect();
        expect("get: vectors as inserted", true, got == want)?;
        expect(
            "get: deleted id",
            Err(ENOENT),
            get_vectors(&f, &gone[..1], vb).map(|_| ()),
        )?;
        expect(
            "get: unknown id",
            Err(ENOENT),
            get_vectors(&f, &[u64::MAX - 7], vb).map(|_| ()),
        )?;
        // Rejections.
        let q = d.bytes(&d.queries[0]);
        let mut ids = vec![0u64; 10];
        let mut counts = [0u32; 1];
        let ok = u::SearchBatch {
            version: u::UAPI_VERSION,
            k: 10,
            nq: 1,
            queries: q.as_ptr() as u64,
            ids: ids.as_mut_ptr() as u64,
            counts: counts.as_mut_ptr() as u64,
            ..Default::default()
        };
        for (what, mut a, want) in [
            ("version", u::SearchBatch { version: 0, ..ok }, EINVAL),
            ("k 0", u::SearchBatch { k: 0, ..ok }, EINVAL),
            ("nq 0", u::SearchBatch { nq: 0, ..ok }, EINVAL),
            (
                "stats flag",
                u::SearchBatch {
                    flags: u::SEARCH_STATS,
                    ..ok
                },
                EINVAL,
            ),
            ("pad", u::SearchBatch { pad: 1, ..ok }, EINVAL),
            (
                "reserved",
                u::SearchBatch {
                    reserved: [0, 1],
                    ..ok
                },
                EINVAL,
            ),
            (
                "too many results",
                u::SearchBatch {
                    k: 4096,
                    nq: 257,
                    ..ok
                },
                E2BIG,
            ),
            ("bad queries", u::SearchBatch { queries: 8, ..ok }, EFAULT),
            ("bad counts", u::SearchBatch { counts: 8, ..ok }, EFAULT),
        ] {
            expect(
                &format!("batch: {what}"),
                want,
                errno_of(&f, u::IOC_SEARCH_BATCH, &mut a),
            )?;
        }
        let mut out = vec![0u8; vb];
        let okg = u::Get {
            version: u::UAPI_VERSION,
            count: 1,
            ids: d.ids[1..].as_ptr() as u64,
            vectors: out.as_mut_ptr() as u64,
            ..Default::default()
        };
        for (what, mut a, want) in [
            ("version", u::Get { version: 0, ..okg }, EINVAL),
            ("count 0", u::Get { count: 0, ..okg }, EINVAL),
            (
                "count",
                u::Get {
                    count: u::MAX_BATCH + 1,
                    ..okg
                },
                EINVAL,
            ),
            (
                "reserved",
                u::Get {
                    reserved: [0, 0, 0, 0, 1],
                    ..okg
                },
                EINVAL,
            ),
            ("bad ids", u::Get { ids: 8, ..okg }, EFAULT),
            ("bad vectors", u::Get { vectors: 8, ..okg }, EFAULT),
        ] {
            expect(
                &format!("get: {what}"),
                want,
                errno_of(&f, u::IOC_GET, &mut a),
            )?;
        }
    }
    println!("# batch search equals one search per query (HNSW and exact); get returns vectors as inserted");
    Ok(())
}

/// The cases of `saved-write` / `saved-verify`.
const SAVED_CASES: [&str; 11] = [
    "intact",
    "payload",
    "header",
    "codes",
    "stale",
    "appended",
    "l2",
    "incremental",
    "moved",
    "torn",
    "torn-log",
];

/// The metric of saved-index case `case`: cosine, whose saved entries carry the nodes'
/// traversal data, but for `l2`, whose restore converts the vectors of the records again.
fn saved_metric(case: &str) -> u32 {
    if case == "l2" {
        u::METRIC_L2
    } else {
        u::METRIC_COSINE
    }
}
const SAVED_DIM: usize = 16;
const SAVED_N: usize = 2000;
const SAVED_MORE: usize = 200;

fn saved_data(case: usize) -> Data {
    Data::random(
        u::ELEM_F32,
        SAVED_DIM,
        SAVED_N + SAVED_MORE,
        600 + case as u64,
        12,
    )
}

/// Which vectors of case `case` are live after `saved-write`.
fn saved_live(case: usize) -> Vec<bool> {
    let stale = SAVED_CASES[case] == "stale";
    let incremental = SAVED_CASES[case] == "incremental";
    let more =
        stale || incremental || matches!(SAVED_CASES[case], "appended" | "torn" | "torn-log");
    (0..SAVED_N + SAVED_MORE)
        .map(|i| {
            if i < SAVED_N {
                (!stale || i % 67 != 5) && (!incremental || i % 500 != 7)
            } else {
                more
            }
        })
        .collect()
}

/// Bytes written so far to the block device that holds `f` (`/sys/dev/block/M:N/stat`).
fn device_bytes_written(f: &File) -> Res<u64> {
    use std::os::unix::fs::MetadataExt;
    let dev = f.metadata().map_err(|e| e.to_string())?.dev();
    let path = format!(
        "/sys/dev/block/{}:{}/stat",
        libc::major(dev),
        libc::minor(dev)
    );
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    // The seventh field counts the 512-byte sectors written.
    match stat.split_whitespace().nth(6).map(str::parse::<u64>) {
        Some(Ok(sectors)) => Ok(sectors * 512),
        _ => err(format!("{path}: {stat}")),
    }
}

/// The `incremental` case of `saved-write`: a change to a collection with a current saved
/// index rewrites only the entries it changed, in place, unless that would write more than
/// half as much as a new copy. Four deletes, saved by a `close(2)`: in place. Then the
/// inserts of the last `SAVED_MORE` vectors but ten, in one batch: a new copy, elsewhere.
/// Then the last ten in batches of two ([`saved_small_inserts`]): in place again.
fn saved_incremental(path: &Path, case: usize, d: &Data, off: usize, len: usize) -> Res<()> {
    let live = saved_live(case);
    let gone: Vec<u64> = (0..SAVED_N)
        .filter(|&i| !live[i])
        .map(|i| d.ids[i])
        .collect();
    let mut at = off;
    for what in ["4 deletes", "190 inserts", "10 inserts in 5 batches"] {
        // SAFETY: sync(2) takes no arguments and cannot fail.
        unsafe { libc::sync() };
        let before = device_bytes_written(&File::open(path).map_err(|e| e.to_string())?)?;
        match what {
            "4 deletes" => {
                let f = open_rw(path, false)?;
                expect("deleted", gone.len() as u32, delete(&f, &gone)?)?;
            }
            "190 inserts" => insert(&open_rw(path, false)?, d, SAVED_N..SAVED_N + 190)?,
            _ => saved_small_inserts(path, d)?,
        }
        let f = File::open(path).map_err(|e| e.to_string())?;
        let written = device_bytes_written(&f)? - before;
        let h = read_at(&f, 0, 4096)?;
        let (now_off, now_len) = (le64_at(&h, 56) as usize, le64_at(&h, 64) as usize);
        println!(
            "# saved index after {what}: {written} bytes written to the disk for a copy of {now_len} bytes"
        );
        expect(
            &format!("incremental {what}: no log named"),
            0,
            le64_at(&h, 112),
        )?;
        if what == "190 inserts" {
            if now_off == at {
                return err("incremental 190 inserts: saved over the copy in place");
            }
            at = now_off;
        }
        expect(&format!("incremental {what}: offset"), at, now_off)?;
        if now_len < len {
            return err(format!(
                "incremental {what}: copy shrank to {now_len} bytes"
            ));
        }
        if what == "4 deletes" && written >= len as u64 / 4 {
            return err(format!(
                "incremental {what}: {written} bytes written for a copy of {len}"
            ));
        }
    }
    Ok(())
}

/// Inserts the last ten vectors of the saved-index data in batches of two, each saved by a
/// `close(2)` over the copy in place; the copy stays where it is.
fn saved_small_inserts(path: &Path, d: &Data) -> Res<()> {
    let first = SAVED_N + SAVED_MORE - 10;
    let off = le64_at(
        &read_at(&File::open(path).map_err(|e| e.to_string())?, 0, 4096)?,
        56,
    );
    for i in (first..SAVED_N + SAVED_MORE).step_by(2) {
        insert(&open_rw(path, false)?, d, i..i + 2)?;
        let h = read_at(&File::open(path).map_err(|e| e.to_string())?, 0, 4096)?;
        expect("small inserts: offset", off, le64_at(&h, 56))?;
    }
    Ok(())
}

/// The `incremental` case of `saved-verify`, after the checks of every case: the first save
/// after the restore, which writes only what changed and checksums the rest from what the
/// restore read, gives a copy the next load restores (once the clean index is dropped).
fn saved_incremental_verify(path: &Path, d: &Data, live: &mut [bool]) -> Res<()> {
    let i = live.iter().position(|&l| l).unwrap_or(0);
    {
        let f = open_rw(path, false)?;
        expect("deleted after the restore", 1, delete(&f, &[d.ids[i]])?)?;
    }
    live[i] = false;
    drop_caches()?;
    expect(
        "incremental: index dropped",
        u::INDEX_NONE,
        residency(path)?.0,
    )?;
    let f = File::open(path).map_err(|e| e.to_string())?;
    let restored = first_search(
        &f,
        d,
        "saved index incremental, saved again after a restore",
    )?;
    expect("incremental: restored again", true, restored)?;
    let mut st = ErrStats::default();
    for qv in d.queries.iter().take(10) {
        check_exact(&f, d, live, u::METRIC_COSINE, qv, 10, &mut st)?;
    }
    Ok(())
}

/// The `moved` case of `saved-write`: the state a crash leaves while a compaction copies the
/// records back to the front: a header of version 3 naming a copy of the records elsewhere
/// (here where the saved index was: the header no longer names one), each with the checksum
/// of its number, and the front partly overwritten (here: zeros).
fn saved_moved(f: &File, h: &[u8], off: usize, len: usize) -> Res<()> {
    let (rs, n) = (le32_at(h, 36) as usize, le64_at(h, 40) as usize);
    if n * rs > len {
        return err("moved: the records do not fit where the saved index is");
    }
    let recs = read_at(f, 4096, n * rs)?;
    poke(f, off, &recs)?;
    poke(f, 4096, &vec![0u8; n * rs])?;
    let mut h = h.to_vec();
    h[8..12].copy_from_slice(&3u32.to_le_bytes());
    h[104..112].copy_from_slice(&(off as u64).to_le_bytes());
    // No saved index; every record durable; a new generation.
    h[56..72].fill(0);
    let gen = le64_at(&h, 72) + 1;
    h[72..80].copy_from_slice(&gen.to_le_bytes());
    h[96..104].copy_from_slice(&(n as u64).to_le_bytes());
    reseal_header(&mut h);
    poke(f, 0, &h)
}

/// The `moved` case of `saved-verify`, after the checks of every case: inserts append after
/// the moved records; compaction brings them back behind a version 2 header.
fn saved_moved_verify(path: &Path, d: &Data, live: &mut [bool]) -> Res<()> {
    let f = open_rw(path, false)?;
    insert(&f, d, SAVED_N..SAVED_N + SAVED_MORE)?;
    live[SAVED_N..].iter_mut().for_each(|l| *l = true);
    let h = read_at(&f, 0, 4096)?;
    let (rs, base) = (u64::from(le32_at(&h, 36)), le64_at(&h, 104));
    expect("moved: version", 3, le32_at(&h, 8))?;
    let last = read_at(&f, base + (SAVED_N + SAVED_MORE - 1) as u64 * rs, 8)?;
    expect(
        "moved: last record, after the moved ones",
        d.ids[SAVED_N + SAVED_MORE - 1],
        le64_at(&last, 0),
    )?;
    build(&f, u::BUILD_COMPACT)?;
    let h = read_at(&f, 0, 4096)?;
    expect("compacted: version", 2, le32_at(&h, 8))?;
    expect("compacted: bytes 104..112", 0, le64_at(&h, 104))?;
    let first = read_at(&f, 4096, 8)?;
    expect("compacted: record 0", d.ids[0], le64_at(&first, 0))?;
    expect(
        "compacted: live count",
        (SAVED_N + SAVED_MORE) as u64,
        stats(&f)?.count,
    )?;
    let mut st = ErrStats::default();
    for qv in d.queries.iter().take(20) {
        check_exact(&f, d, live, u::METRIC_COSINE, qv, 10, &mut st)?;
    }
    println!("# moved records: read where the header says, inserted after, compacted back");
    Ok(())
}

/// The `torn` and `torn-log` cases of `saved-write`: the state a crash leaves while a save
/// overwrites the saved index in place. The last `SAVED_MORE` vectors are inserted, all but
/// two in one batch (saved as a new copy), then two, saved by a `close(2)` over the copy in
/// place after a log of what it writes (the log stays past the copy). Then, as the crash
/// would leave it: the header names the log again, with the copy's size before that save,
/// and every range the log replaces is zeroed in the copy; with `bad_log`, a byte of the
/// log's last run is flipped too (a crash before the log was durable, but after the copy was
/// overwritten, which the order of the writes rules out: the copy is then rebuilt, not
/// trusted).
fn saved_torn(path: &Path, d: &Data, bad_log: bool) -> Res<()> {
    insert(&open_rw(path, false)?, d, SAVED_N..SAVED_N + SAVED_MORE - 2)?;
    let before = le64_at(
        &read_at(&File::open(path).map_err(|e| e.to_string())?, 0, 4096)?,
        64,
    );
    insert(
        &open_rw(path, false)?,
        d,
        SAVED_N + SAVED_MORE - 2..SAVED_N + SAVED_MORE,
    )?;
    let f = open_rw(path, false)?;
    let mut h = read_at(&f, 0, 4096)?;
    let (off, len) = (le64_at(&h, 56) as usize, le64_at(&h, 64) as usize);
    expect("torn: no log named after the save", 0, le64_at(&h, 112))?;
    let log_off = (off + len).next_multiple_of(4096);
    let lh = read_at(&f, log_off as u64, 64)?;
    expect("torn: log magic", b"VEXFSLOG".as_slice(), &lh[0..8])?;
    expect("torn: log of the copy", off as u64, le64_at(&lh, 8))?;
    expect("torn: copy size in the log", len as u64, le64_at(&lh, 16))?;
    let body = le64_at(&lh, 24) as usize;
    let runs = read_at(&f, (log_off + 64) as u64, body)?;
    let (mut at, mut n, mut last) = (0, 0, 0);
    while at < body {
        let (rel, rlen) = (le64_at(&runs, at) as usize, le64_at(&runs, at + 8) as usize);
        poke(&f, off + rel, &vec![0u8; rlen])?;
        last = log_off + 64 + at + 16;
        at += 16 + rlen.next_multiple_of(8);
        n += 1;
    }
    expect("torn: runs", le64_at(&lh, 32), n)?;
    println!("# torn save: {n} runs, {body} bytes of log for a copy of {len} bytes");
    if bad_log {
        let b = read_at(&f, last as u64, 1)?;
        poke(&f, last, &[b[0] ^ 0x40])?;
    }
    h[64..72].copy_from_slice(&before.to_le_bytes());
    h[112..120].copy_from_slice(&(log_off as u64).to_le_bytes());
    h[120..128].copy_from_slice(&((64 + body) as u64).to_le_bytes());
    reseal_header(&mut h);
    poke(&f, 0, &h)
}

/// The `torn` case of `saved-verify`, after the checks of every case: the first save after a
/// restore through the log writes a whole new copy, not over the one the log completes, and
/// a header that names no log; the next load restores it.
fn saved_torn_verify(path: &Path, d: &Data, live: &mut [bool]) -> Res<()> {
    let old = le64_at(
        &read_at(&File::open(path).map_err(|e| e.to_string())?, 0, 4096)?,
        56,
    );
    let i = live.iter().position(|&l| l).unwrap_or(0);
    {
        let f = open_rw(path, false)?;
        expect("deleted after the restore", 1, delete(&f, &[d.ids[i]])?)?;
    }
    live[i] = false;
    let f = File::open(path).map_err(|e| e.to_string())?;
    let h = read_at(&f, 0, 4096)?;
    expect("torn: log named after the next save", 0, le64_at(&h, 112))?;
    if le64_at(&h, 56) == old {
        return err("torn: the save after the restore wrote over the copy the log completes");
    }
    drop(f);
    drop_caches()?;
    let f = File::open(path).map_err(|e| e.to_string())?;
    let restored = first_search(&f, d, "saved index torn, saved again after the restore")?;
    expect("torn: restored again", true, restored)?;
    let mut st = ErrStats::default();
    for qv in d.queries.iter().take(10) {
        check_exact(&f, d, live, u::METRIC_COSINE, qv, 10, &mut st)?;
    }
    Ok(())
}

/// Sets the checksums of collection header `h` (4096 bytes) after a change: of the first
/// sector, then of the block.
fn reseal_header(h: &mut [u8]) {
    let crc = format::crc32c(&h[..508]);
    h[508..512].copy_from_slice(&crc.to_le_bytes());
    let crc = format::crc32c(&h[..4092]);
    h[4092..4096].copy_from_slice(&crc.to_le_bytes());
}

fn le32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap_or([0; 4]))
}

fn read_at(f: &File, off: u64, len: usize) -> Res<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut b = vec![0u8; len];
    f.read_exact_at(&mut b, off).map_err(|e| e.to_string())?;
    Ok(b)
}

/// The block device of the file system holding `f`, from `/proc/self/mountinfo`.
fn device_of(f: &File) -> Res<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dev = f.metadata().map_err(|e| e.to_string())?.dev();
    let want = format!("{}:{}", libc::major(dev), libc::minor(dev));
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields.iter().position(|&x| x == "-");
        if fields.get(2) == Some(&want.as_str()) {
            if let Some(src) = sep.and_then(|i| fields.get(i + 2)) {
                return Ok(std::path::PathBuf::from(src));
            }
        }
    }
    err(format!("no mount of device {want} in /proc/self/mountinfo"))
}

/// Overwrites `data` at `off` of collection file `f` on the device, behind the file system's
/// back, as a damaged disk would (`write(2)` and writable shared mappings of a collection are
/// refused): the file's dirty pages are written back first (`sync_file_range(2)`, which,
/// unlike `fsync(2)`, does not save the index), the bytes are written to the blocks `FIBMAP`
/// names through the block device, and the page cache is dropped, so that the next read sees
/// them.
fn poke(f: &File, off: usize, data: &[u8]) -> Res<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    const BLOCK: usize = 4096;
    let len = f.metadata().map_err(|e| e.to_string())?.len() as usize;
    if off + data.len() > len {
        return err("poke past the end of the file");
    }
    let fd = f.as_raw_fd();
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    // SAFETY: `sync_file_range` on a descriptor this function borrows; no memory is passed.
    if unsafe { libc::sync_file_range(fd, 0, 0, flags) } != 0 {
        return err(format!(
            "sync_file_range: {}",
            std::io::Error::last_os_error()
        ));
    }
    let dev = OpenOptions::new()
        .read(true)
        .write(true)
        .open(device_of(f)?)
        .map_err(|e| format!("open the device: {e}"))?;
    let mut done = 0;
    while done < data.len() {
        let pos = off + done;
        let n = (BLOCK - pos % BLOCK).min(data.len() - done);
        let mut block = libc::c_int::try_from(pos / BLOCK).map_err(|e| e.to_string())?;
        // SAFETY: `FIBMAP` reads and writes the `int` it is given, which lives on the stack.
        if unsafe { libc::ioctl(fd, FIBMAP, &mut block) } != 0 || block <= 0 {
            return err(format!(
                "FIBMAP of block {}: {}",
                pos / BLOCK,
                std::io::Error::last_os_error()
            ));
        }
        let at = block as u64 * BLOCK as u64 + (pos % BLOCK) as u64;
        dev.write_all_at(&data[done..done + n], at)
            .map_err(|e| format!("write to the device: {e}"))?;
        done += n;
    }
    dev.sync_all()
        .map_err(|e| format!("fsync of the device: {e}"))?;
    // The file's pages are clean and unmapped: dropping the page cache drops them.
    std::fs::write("/proc/sys/vm/drop_caches", "1\n").map_err(|e| format!("drop_caches: {e}"))
}

/// `FIBMAP`: `_IO(0x00, 1)`.
const FIBMAP: libc::c_ulong = 1;

fn le64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap_or([0; 8]))
}

/// Collections with a saved index, then damaged or made stale behind the kernel's back:
/// - `intact`: left alone;
/// - `payload`, `header`: a byte of the saved node entries or of their header flipped;
/// - `codes`: a compact code of the first node out of range, under checksums made to match
///   (only the range check of the traversal data can tell);
/// - `stale`: 200 inserts and 30 deletes after the save, and the collection header pointing
///   at the older saved index again, as a crash between the records and the new index leaves it
///   (the deletes moved the records to a new generation first: the header keeps the older
///   index's generation);
/// - `appended`: the same with 200 inserts only: the older index is still current, and its
///   records are not read again;
/// - `l2`: an L2 collection left alone (its saved entries have no traversal data);
/// - `incremental`: four deletes, then 200 inserts, each saved by a `close(2)` over the copy
///   in place, writing only the entries that changed ([`saved_incremental`]);
/// - `moved`: as a crash in the middle of a compaction leaves it ([`saved_moved`]);
/// - `torn`, `torn-log`: as a crash in the middle of a save over the copy in place leaves it,
///   with its log whole or not ([`saved_torn`]).
fn test_saved_write(dir: &Path) -> Res<()> {
    for (c, case) in SAVED_CASES.iter().enumerate() {
        let d = saved_data(c);
        let path = dir.join(format!("saved-{case}"));
        {
            let f = create(&path, SAVED_DIM, u::ELEM_F32, saved_metric(case), 16, 64)?;
            for i in (0..SAVED_N).step_by(500) {
                insert(&f, &d, i..i + 500)?;
            }
        }
        // Closing the file saved the index.
        let f = open_rw(&path, false)?;
        let s = stats(&f)?;
        if s.saved_bytes == 0 || s.index_flags & u::INDEX_SAVED == 0 {
            return err(format!("{case}: index not saved at close: {s:?}"));
        }
        let h = read_at(&f, 0, 4096)?;
        let (off, len) = (le64_at(&h, 56) as usize, le64_at(&h, 64) as usize);
        match *case {
            "payload" => {
                let b = read_at(&f, (off + 64 + 1000) as u64, 1)?;
                poke(&f, off + 64 + 1000, &[b[0] ^ 0x10])?;
            }
            "header" => {
                let b = read_at(&f, (off + 20) as u64, 1)?;
                poke(&f, off + 20, &[b[0] ^ 1])?;
            }
            "codes" => {
                // The first entry: 24 bytes of head, 2 M + level M link slots, then the
                // normalising factor, the error bound, the compact copy's factor and (no sign
                // code at 16 dimensions) its codes, a byte each.
                let mut idx = read_at(&f, off as u64, len)?;
                let level = idx[64 + 16] as usize;
                let code = 64 + 24 + 4 * (2 * 16 + level * 16) + 24;
                idx[code..code + 8].copy_from_slice(&91u64.to_le_bytes());
                let crc = format::crc32c(&idx[64..]);
                idx[56..60].copy_from_slice(&crc.to_le_bytes());
                let crc = format::crc32c(&idx[..60]);
                idx[60..64].copy_from_slice(&crc.to_le_bytes());
                poke(&f, off, &idx)?;
            }
            "stale" | "appended" => {
                let old = read_at(&f, off as u64, len)?;
                insert(&f, &d, SAVED_N..SAVED_N + SAVED_MORE)?;
                let live = saved_live(c);
                let gone: Vec<u64> = (0..SAVED_N)
                    .filter(|&i| !live[i])
                    .map(|i| d.ids[i])
                    .collect();
                if !gone.is_empty() {
                    expect("deleted", gone.len() as u32, delete(&f, &gone)?)?;
                }
                drop(f);
                // The new index is saved; put the old one back and point the header at it,
                // with the generation it was saved at (bytes 80..88).
                let f = open_rw(&path, false)?;
                let mut h2 = read_at(&f, 0, 4096)?;
                let (gen, old_gen) = (le64_at(&h2, 72), le64_at(&h, 80));
                let want = if gone.is_empty() {
                    old_gen
                } else {
                    old_gen + 1
                };
                expect(&format!("{case}: generation"), want, gen)?;
                h2[56..64].copy_from_slice(&(off as u64).to_le_bytes());
                h2[64..72].copy_from_slice(&(len as u64).to_le_bytes());
                h2[80..88].copy_from_slice(&old_gen.to_le_bytes());
                let mut h = h2;
                reseal_header(&mut h);
                poke(&f, off, &old)?;
                poke(&f, 0, &h)?;
            }
            "incremental" => saved_incremental(&path, c, &d, off, len)?,
            "moved" => saved_moved(&f, &h, off, len)?,
            "torn" | "torn-log" => {
                drop(f);
                saved_torn(&path, &d, case == &"torn-log")?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// After a remount: the intact saved index is restored, the damaged ones are detected and the
/// index rebuilt, the stale one restored with the later changes applied; every search is right.
fn test_saved_verify(dir: &Path) -> Res<()> {
    for (c, case) in SAVED_CASES.iter().enumerate() {
        let d = saved_data(c);
        let mut live = saved_live(c);
        let path = dir.join(format!("saved-{case}"));
        let f = File::open(&path).map_err(|e| e.to_string())?;
        let restored = first_search(&f, &d, &format!("saved index {case}"))?;
        expect(
            &format!("{case}: restored"),
            matches!(
                *case,
                "intact" | "stale" | "appended" | "l2" | "incremental" | "torn"
            ),
            restored,
        )?;
        let s = stats(&f)?;
        expect(
            &format!("{case}: live count"),
            live.iter().filter(|&&l| l).count() as u64,
            s.count,
        )?;
        let mut st = ErrStats::default();
        for qv in d.queries.iter().take(20) {
            check_exact(&f, &d, &live, saved_metric(case), qv, 10, &mut st)?;
        }
        let r = recall(&f, &d, &live, saved_metric(case), 30, 10, 0, 4545)?;
        println!("# saved index {case}: recall@10={r:.3}");
        if r < 0.95 {
            return err(format!("{case}: recall {r:.3}"));
        }
        if *case == "moved" {
            drop(f);
            saved_moved_verify(&path, &d, &mut live)?;
        } else if *case == "incremental" {
            drop(f);
            saved_incremental_verify(&path, &d, &mut live)?;
        } else if *case == "torn" {
            drop(f);
            saved_torn_verify(&path, &d, &mut live)?;
        }
    }
    Ok(())
}

const FAULT_DIM: usize = 16;
const FAULT_N: usize = 2000;

fn fault_data() -> Data {
    Data::random(u::ELEM_F32, FAULT_DIM, FAULT_N, 700, 12)
}

/// The vectors `fault-change` deletes: few enough that the save goes over the copy in place.
fn fault_gone(d: &Data) -> Vec<u64> {
    (0..FAULT_N)
        .filter(|i| i % 500 == 7)
        .map(|i| d.ids[i])
        .collect()
}

/// Fault injection, part 1: a collection with a saved index (made durable by `fsync(2)`).
fn test_fault_write(dir: &Path) -> Res<()> {
    let d = fault_data();
    let f = create(
        &dir.join("fault"),
        FAULT_DIM,
        u::ELEM_F32,
        u::METRIC_COSINE,
        16,
        64,
    )?;
    insert_all(&f, &d, 500)?;
    f.sync_all().map_err(|e| e.to_string())?;
    let h = read_at(&f, 0, 4096)?;
    if le64_at(&h, 56) == 0 {
        return err("fault: no saved index after fsync");
    }
    Ok(())
}

/// Writes `val` to the fault injection file `path` (debugfs or sysfs).
fn fault_set(path: &str, val: &str) -> Res<()> {
    std::fs::write(path, format!("{val}\n")).map_err(|e| format!("{path}: {e}"))
}

const FAIL_MAKE_REQUEST: &str = "/sys/kernel/debug/fail_make_request";

/// Lets the next `budget` bytes of I/O reach disk `dev` (`/sys/block/DEV`) and fails every
/// bio after them (`fail_make_request` with `space`).
fn fault_arm(dev: &str, budget: &str) -> Res<()> {
    fault_set(&format!("{FAIL_MAKE_REQUEST}/verbose"), "0")?;
    fault_set(&format!("{FAIL_MAKE_REQUEST}/interval"), "1")?;
    fault_set(&format!("{FAIL_MAKE_REQUEST}/times"), "-1")?;
    fault_set(&format!("{FAIL_MAKE_REQUEST}/space"), budget)?;
    fault_set(&format!("{FAIL_MAKE_REQUEST}/probability"), "100")?;
    fault_set(&format!("/sys/block/{dev}/make-it-fail"), "1")
}

/// After [`fault_arm`]: from here on nothing reaches the disk (the fault stays armed).
fn fault_stop() -> Res<()> {
    fault_set(&format!("{FAIL_MAKE_REQUEST}/space"), "0")
}

/// What an operation cut by [`fault_arm`] may return: success, or `EIO`.
fn fault_result(what: &str, r: std::io::Result<()>, armed: bool) -> Res<&'static str> {
    match r {
        Ok(()) => Ok("ok"),
        Err(e) if armed && e.raw_os_error() == Some(libc::EIO) => Ok("EIO"),
        Err(e) => err(format!("fault: {what}: {e}")),
    }
}

/// Fault injection, part 2: deletes [`fault_gone`] from the collection of `fault-write`
/// (restored after a mount, so the save of `fsync(2)` goes over its copy in place), then lets
/// the next `budget` bytes of I/O reach disk `dev` (`/sys/block/DEV`) and fails every bio
/// after them, as if the machine stopped there (`fail_make_request`, with `space`), and
/// syncs. The failure stays armed: what the caller does next (`umount`) reaches the disk no
/// more than after a crash. A `budget` of `-` syncs without a fault and reports the bytes the
/// save wrote.
fn test_fault_change(dir: &Path, dev: &str, budget: &str) -> Res<()> {
    let d = fault_data();
    let path = dir.join("fault");
    let f = open_rw(&path, false)?;
    let h = read_at(&f, 0, 4096)?;
    let off = le64_at(&h, 56);
    expect("fault: deleted", 4, delete(&f, &fault_gone(&d))?)?;
    let before = device_bytes_written(&f)?;
    let armed = budget != "-";
    if armed {
        fault_arm(dev, budget)?;
    }
    let synced = f.sync_all();
    if armed {
        fault_stop()?;
    }
    let written = device_bytes_written(&f)? - before;
    let synced = fault_result("fsync", synced, armed)?;
    if !armed {
        let h = read_at(&f, 0, 4096)?;
        expect("fault: saved in place", off, le64_at(&h, 56))?;
        expect("fault: no log named after the save", 0, le64_at(&h, 112))?;
    }
    println!("# fault: budget {budget}: fsync {synced}, {written} bytes reached the disk");
    drop(f);
    Ok(())
}

/// Whether collection header `h` names a log that is whole (magic, checksums, length): one
/// the restore applies. A cut before the log was durable can leave a header naming a torn
/// one, which the restore ignores (the copy was not written over yet).
fn fault_log_whole(f: &File, h: &[u8]) -> Res<bool> {
    let (off, len) = (le64_at(h, 112), le64_at(h, 120));
    if off == 0 || len < 64 || f.metadata().map_err(|e| e.to_string())?.len() < off + len {
        return Ok(false);
    }
    let log = read_at(f, off, len as usize)?;
    Ok(&log[..8] == b"VEXFSLOG"
        && format::crc32c(&log[..60]) == le32_at(&log, 60)
        && le64_at(&log, 24) + 64 == len
        && format::crc32c(&log[64..]) == le32_at(&log, 40))
}

/// Fault injection, part 3, after a remount: the collection holds every vector but those of
/// [`fault_gone`] that the interrupted save made durable; its saved index is restored where
/// the disk holds one that is whole (with the log of the interrupted save, if the header
/// names one), else rebuilt; searches are exact either way. Prints `outcome: restored with
/// the log`, `restored` or `rebuilt`.
fn test_fault_verify(dir: &Path) -> Res<()> {
    let d = fault_data();
    let path = dir.join("fault");
    let f = File::open(&path).map_err(|e| e.to_string())?;
    let h = read_at(&f, 0, 4096)?;
    let logged = fault_log_whole(&f, &h)?;
    let restored = first_search(&f, &d, "fault")?;
    let gone = fault_gone(&d);
    let mut live = vec![true; FAULT_N];
    let mut durable = 0;
    for (i, l) in live.iter_mut().enumerate() {
        if !gone.contains(&d.ids[i]) {
            continue;
        }
        match get_vectors(&f, &[d.ids[i]], FAULT_DIM * 4) {
            Ok(_) => {}
            Err(e) if e == libc::ENOENT => {
                *l = false;
                durable += 1;
            }
            Err(e) => return err(format!("fault: get {}: errno {e}", d.ids[i])),
        }
    }
    let s = stats(&f)?;
    expect(
        "fault: live count",
        live.iter().filter(|&&l| l).count() as u64,
        s.count,
    )?;
    let mut st = ErrStats::default();
    for qv in d.queries.iter().take(20) {
        check_exact(&f, &d, &live, u::METRIC_COSINE, qv, 10, &mut st)?;
    }
    let r = recall(&f, &d, &live, u::METRIC_COSINE, 30, 10, 0, 4646)?;
    if r < 0.95 {
        return err(format!("fault: recall {r:.3}"));
    }
    println!(
        "# fault: {durable} of {} deletes durable, recall@10={r:.3}",
        gone.len()
    );
    println!(
        "outcome: {}",
        match (restored, logged) {
            (true, true) => "restored with the log",
            (true, false) => "restored",
            (false, _) => "rebuilt",
        }
    );
    Ok(())
}

/// Whether vector `i` of [`fault_data`] is deleted before `fault-compact`.
fn compact_gone(i: usize) -> bool {
    i % 3 == 1
}

/// Fault injection on a compaction, part 1: besides the collection of `fault-write`, one of
/// the same vectors with every third deleted, durable, not compacted yet.
fn test_fault_compact_write(dir: &Path) -> Res<()> {
    let d = fault_data();
    let f = create(
        &dir.join("compact"),
        FAULT_DIM,
        u::ELEM_F32,
        u::METRIC_COSINE,
        16,
        64,
    )?;
    insert_all(&f, &d, 500)?;
    let gone: Vec<u64> = (0..FAULT_N)
        .filter(|&i| compact_gone(i))
        .map(|i| d.ids[i])
        .collect();
    expect("compact: deleted", gone.len() as u32, delete(&f, &gone)?)?;
    f.sync_all().map_err(|e| e.to_string())
}

/// Fault injection on a compaction, part 2: the compaction of `BUILD_INDEX` with
/// `VEXFS_BUILD_COMPACT` and an `fsync(2)`, cut after `budget` bytes ([`fault_arm`]; `-`:
/// uncut, reporting the bytes it wrote).
fn test_fault_compact(dir: &Path, dev: &str, budget: &str) -> Res<()> {
    let f = open_rw(&dir.join("compact"), false)?;
    let before = device_bytes_written(&f)?;
    let armed = budget != "-";
    if armed {
        fault_arm(dev, budget)?;
    }
    let mut a = u::BuildIndex {
        version: u::UAPI_VERSION,
        flags: u::BUILD_COMPACT,
        ..Default::default()
    };
    let built = match errno_of(&f, u::IOC_BUILD_INDEX, &mut a) {
        0 => Ok(()),
        e => Err(std::io::Error::from_raw_os_error(e)),
    };
    let synced = f.sync_all();
    if armed {
        fault_stop()?;
    }
    let written = device_bytes_written(&f)? - before;
    let built = fault_result("compaction", built, armed)?;
    let synced = fault_result("fsync", synced, armed)?;
    println!(
        "# fault: budget {budget}: compaction {built}, fsync {synced}, {written} bytes reached the disk"
    );
    if !armed {
        let h = read_at(&f, 0, 4096)?;
        expect("compact: version after the compaction", 2, le32_at(&h, 8))?;
    }
    Ok(())
}

/// Fault injection on a compaction, part 3, after a remount: whatever the cut left (the file
/// as it was, the kept records copied out and named by a version 3 header, or copied back),
/// every live vector is there bit for bit and no deleted one, and searches are exact; then a
/// compaction completes, to a version 2 header and a file of the live records. Prints
/// `outcome: version V, RECORDS records`.
fn test_fault_compact_verify(dir: &Path) -> Res<()> {
    let d = fault_data();
    let path = dir.join("compact");
    let live: Vec<bool> = (0..FAULT_N).map(|i| !compact_gone(i)).collect();
    let n_live = live.iter().filter(|&&l| l).count();
    let f = open_rw(&path, false)?;
    let h = read_at(&f, 0, 4096)?;
    let (version, records) = (le32_at(&h, 8), le64_at(&h, 40));
    let vb = FAULT_DIM * 4;
    for pass in ["after the cut", "after a compaction"] {
        let s = stats(&f)?;
        expect(
            &format!("compact {pass}: live count"),
            n_live as u64,
            s.count,
        )?;
        let ids: Vec<u64> = (0..FAULT_N)
            .filter(|&i| live[i])
            .map(|i| d.ids[i])
            .collect();
        let got = get_vectors(&f, &ids, vb).map_err(|e| format!("compact {pass}: get: {e}"))?;
        let want: Vec<u8> = (0..FAULT_N)
            .filter(|&i| live[i])
            .flat_map(|i| d.bytes(&d.vecs[i]))
            .collect();
        if got != want {
            return err(format!(
                "compact {pass}: vectors differ from those inserted"
            ));
        }
        for i in (0..FAULT_N).filter(|&i| !live[i]).step_by(50) {
            expect(
                &format!("compact {pass}: deleted id {} gone", d.ids[i]),
                Err(libc::ENOENT),
                get_vectors(&f, &[d.ids[i]], vb).map(|_| ()),
            )?;
        }
        let mut st = ErrStats::default();
        for qv in d.queries.iter().take(10) {
            check_exact(&f, &d, &live, u::METRIC_COSINE, qv, 10, &mut st)?;
        }
        if pass == "after the cut" {
            build(&f, u::BUILD_COMPACT)?;
            f.sync_all().map_err(|e| e.to_string())?;
            let h = read_at(&f, 0, 4096)?;
            expect("compact: version", 2, le32_at(&h, 8))?;
            expect("compact: records", n_live as u64, le64_at(&h, 40))?;
        }
    }
    println!("outcome: version {version}, {records} records");
    Ok(())
}

const CRASH_DIM: usize = 24;
const CRASH_N: usize = 3000;
const CRASH_MORE: usize = 3000;

fn crash_data() -> Data {
    Data::random(u::ELEM_F32, CRASH_DIM, CRASH_N + CRASH_MORE, 900, 8)
}

/// Crash, part 1: a collection whose first `CRASH_N` vectors are inserted, then every 11th
/// (from the 4th on) deleted, each made durable by `fsync(2)` (which also saves the index);
/// then every 11th from the 6th deleted without a sync.
fn test_crash_write(dir: &Path) -> Res<()> {
    let d = crash_data();
    let f = create(
        &dir.join("crash"),
        CRASH_DIM,
        u::ELEM_F32,
        u::METRIC_COSINE,
        16,
        64,
    )?;
    for i in (0..CRASH_N).step_by(500) {
        insert(&f, &d, i..i + 500)?;
    }
    f.sync_all().map_err(|e| e.to_string())?;
    // Its directory entry too.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| e.to_string())?;
    let gone = |r: usize| -> Vec<u64> {
        (0..CRASH_N)
            .filter(|i| i % 11 == r)
            .map(|i| d.ids[i])
            .collect()
    };
    let durable = gone(3);
    expect(
        "durable deletes",
        durable.len() as u32,
        delete(&f, &durable)?,
    )?;
    f.sync_all().map_err(|e| e.to_string())?;
    let volatile = gone(5);
    expect(
        "volatile deletes",
        volatile.len() as u32,
        delete(&f, &volatile)?,
    )?;
    Ok(())
}

/// Crash, part 1, in the background until the VM crashes: inserts the other vectors in small
/// batches, deletes and replaces some of them, syncs now and then and compacts the collection
/// every other batch, so that the crash finds the collection in the middle of a change, now
/// and then of a compaction.
fn test_crash_run(dir: &Path) -> Res<()> {
    let d = crash_data();
    let f = open_rw(&dir.join("crash"), false)?;
    let mut round = 0u64;
    loop {
        for i in (CRASH_N..CRASH_N + CRASH_MORE).step_by(50) {
            if round == 0 {
                insert(&f, &d, i..i + 50)?;
            } else {
                // Later rounds replace the batch's vectors by themselves.
                insert_flags(&f, &d, i..i + 50, u::INSERT_UPSERT)
                    .map_err(|e| format!("upsert: errno {e}"))?;
            }
            let some: Vec<u64> = (i..i + 50).step_by(7).map(|j| d.ids[j]).collect();
            delete(&f, &some)?;
            if i % 500 == 0 {
                f.sync_all().map_err(|e| e.to_string())?;
            }
            if i % 100 == 0 {
                build(&f, u::BUILD_COMPACT)?;
            }
        }
        round += 1;
    }
}

/// The live records of a collection file of binary32 vectors, read from the file itself:
/// ids and their vectors (a later record of an id wins, as after an interrupted upsert), as a
/// [`Data`] with the queries of `queries`. Records past the durable count that fail their
/// checksum are left out, as the kernel leaves them out; `unwritten` counts them.
fn file_data(path: &Path, queries: &Data, unwritten: &mut usize) -> Res<Data> {
    let b = std::fs::read(path).map_err(|e| e.to_string())?;
    if b.len() < 4096 {
        return err("collection file shorter than its header");
    }
    let (dim, rs, records) = (
        le32_at(&b, 16) as usize,
        le32_at(&b, 36) as usize,
        le64_at(&b, 40) as usize,
    );
    // Version 3: a compaction that the crash interrupted has the records elsewhere.
    let base = match le32_at(&b, 8) {
        2 => 4096,
        3 => le64_at(&b, 104) as usize,
        v => return err(format!("collection format version {v}")),
    };
    let (salt, durable) = (le64_at(&b, 88), le64_at(&b, 96));
    let mut by_id = std::collections::BTreeMap::new();
    for r in 0..records {
        let rec = b
            .get(base + r * rs..base + (r + 1) * rs)
            .ok_or("file shorter than its records")?;
        let id = le64_at(rec, 0);
        if id == u64::MAX {
            continue;
        }
        let n = 8 + 4 * dim;
        let sum = u32::from_le_bytes([rec[n], rec[n + 1], rec[n + 2], rec[n + 3]]);
        if format::record_checksum(salt, r as u64, &rec[..n]) != sum {
            if (r as u64) < durable {
                return err(format!("durable record {r} fails its checksum"));
            }
            *unwritten += 1;
            continue;
        }
        let v: Vec<f64> = (0..dim)
            .map(|e| {
                let w = &rec[8 + 4 * e..12 + 4 * e];
                f64::from(f32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            })
            .collect();
        by_id.insert(id, v);
    }
    let (ids, vecs) = by_id.into_iter().unzip();
    Ok(Data {
        elem: u::ELEM_F32,
        ids,
        vecs,
        queries: queries.queries.clone(),
    })
}

/// Crash, part 2: after the crash, the durable inserts and deletes are there, and searches
/// agree with the records the file holds: exact search with a brute force over them, HNSW
/// search (restored or rebuilt) returns only ids the file holds live, at a good recall. A
/// compaction after that brings back a version 2 file, whatever the crash left.
fn test_crash_verify(dir: &Path) -> Res<()> {
    let d = crash_data();
    let path = dir.join("crash");
    let f = open_rw(&path, false)?;
    let h = read_at(&f, 0, 4096)?;
    let (version, base) = (le32_at(&h, 8), le64_at(&h, 104));
    let end = if version == 3 { base } else { 4096 } + le64_at(&h, 40) * u64::from(le32_at(&h, 36));
    let saved_end = (le64_at(&h, 56) + le64_at(&h, 64)).max(le64_at(&h, 112) + le64_at(&h, 120));
    let size = f.metadata().map_err(|e| e.to_string())?.len();
    // Version 3: the crash came while compaction copied the records back; a file longer than
    // its records and saved index: while it copied them out.
    println!(
        "# after the crash: collection format version {version}, records end at {end}, saved index at {saved_end}, file size {size}"
    );
    first_search(&f, &d, "collection after the crash")?;
    let mut unwritten = 0;
    let fd = file_data(&path, &d, &mut unwritten)?;
    let present: std::collections::BTreeSet<u64> = fd.ids.iter().copied().collect();
    for i in 0..CRASH_N {
        let (id, want) = (d.ids[i], i % 11 != 3);
        if i % 11 != 5 && present.contains(&id) != want {
            return err(format!(
                "id {id} (vector {i}): present {}, durable {want}",
                !want
            ));
        }
    }
    // Records the header counts but whose blocks the crash kept from the disk fail their
    // checksum: every record that passes holds a vector as it was inserted.
    println!("# records the crash left unwritten: {unwritten}");
    let want: std::collections::BTreeMap<u64, &Vec<f64>> =
        d.ids.iter().copied().zip(d.vecs.iter()).collect();
    for (id, v) in fd.ids.iter().zip(fd.vecs.iter()) {
        match want.get(id) {
            None => return err(format!("record of id {id}, never inserted")),
            Some(w) if *w != v => return err(format!("id {id}: a vector never inserted")),
            Some(_) => (),
        }
    }
    let s = stats(&f)?;
    expect("live count", fd.ids.len() as u64, s.count)?;
    let live = vec![true; fd.ids.len()];
    let mut st = ErrStats::default();
    for qv in fd.queries.iter().take(20) {
        check_exact(&f, &fd, &live, u::METRIC_COSINE, qv, 10, &mut st)?;
    }
    let r = recall(&f, &fd, &live, u::METRIC_COSINE, 30, 10, 64, 77)?;
    println!(
        "# after the crash: {} live vectors of {}, recall@10={r:.3}",
        fd.ids.len(),
        CRASH_N + CRASH_MORE
    );
    if r < 0.9 {
        return err(format!("recall {r:.3}"));
    }
    // The collection takes changes again, and compacts to version 2.
    let more: Vec<u64> = fd.ids.iter().copied().take(5).collect();
    expect("deletes after the crash", 5, delete(&f, &more)?)?;
    build(&f, u::BUILD_COMPACT)?;
    expect(
        "version after a compaction",
        2,
        le32_at(&read_at(&f, 0, 4096)?, 8),
    )?;
    expect(
        "live count after a compaction",
        fd.ids.len() as u64 - 5,
        stats(&f)?.count,
    )?;
    Ok(())
}

/// Upsert (`VEXFS_INSERT_UPSERT`): present ids get their new vector, new ids are added, the
/// old vectors are gone from exact and HNSW search, get and a rebuild; a batch naming an id
/// twice or an unknown flag is refused whole. An interrupted upsert (the replaced record
/// still live, as a crash between the header and the tombstones leaves it) is resolved at
/// load: the later record wins.
fn test_upsert(dir: &Path) -> Res<()> {
    let dim = 16;
    let n = 400;
    let old = Data::random(u::ELEM_F32, dim, n, 77, 8);
    // New vectors for the first 100 ids and 50 new ids.
    let mut new = Data::random(u::ELEM_F32, dim, 150, 78, 8);
    for (i, id) in new.ids.iter_mut().enumerate() {
        *id = if i < 100 {
            old.ids[i]
        } else {
            1_000_000 + i as u64
        };
    }
    let path = dir.join("upsert");
    let f = create(&path, dim, u::ELEM_F32, u::METRIC_L2, 16, 64)?;
    insert(&f, &old, 0..n)?;
    expect(
        "insert of present ids",
        Err(libc::EEXIST),
        insert_flags(&f, &new, 0..150, 0),
    )?;
    expect(
        "unknown insert flag",
        Err(libc::EINVAL),
        insert_flags(&f, &new, 0..150, 2),
    )?;
    let mut twice = Data::random(u::ELEM_F32, dim, 2, 79, 8);
    twice.ids = vec![old.ids[0], old.ids[0]];
    expect(
        "an id twice in one upsert",
        Err(libc::EEXIST),
        insert_flags(&f, &twice, 0..2, 1),
    )?;
    expect("count after refused batches", n as u64, stats(&f)?.count)?;
    insert_flags(&f, &new, 0..150, u::INSERT_UPSERT).map_err(|e| format!("upsert: {e}"))?;
    let s = stats(&f)?;
    expect("count after the upsert", (n + 50) as u64, s.count)?;
    expect("records replaced", 100, s.deleted)?;

    let check = |what: &str, f: &File| -> Res<()> {
        let bpv = dim * 4;
        let got = get_vectors(f, &new.ids, bpv).map_err(|e| format!("{what}: get: {e}"))?;
        for (i, v) in new.vecs.iter().enumerate() {
            if got[i * bpv..(i + 1) * bpv] != new.bytes(v)[..] {
                return err(format!(
                    "{what}: get {} returned another vector",
                    new.ids[i]
                ));
            }
        }
        for exact in [true, false] {
            for (i, v) in new.vecs.iter().enumerate().step_by(7) {
                let (ids, dists) = search(f, &new, v, 5, 64, exact)?;
                if ids.first() != Some(&new.ids[i]) || dists[0] != 0.0 {
                    return err(format!(
                        "{what}: the new vector of {} not found",
                        new.ids[i]
                    ));
                }
                let mut sorted = ids.clone();
                sorted.sort_unstable();
                sorted.dedup();
                if sorted.len() != ids.len() {
                    return err(format!("{what}: an id twice in {ids:?}"));
                }
            }
            for (i, v) in old.vecs.iter().enumerate().take(100).step_by(7) {
                let (_, dists) = search(f, &old, v, 1, 64, exact)?;
                if dists.first() == Some(&0.0) && old.vecs[i] != new.vecs[i] {
                    return err(format!(
                        "{what}: the old vector of {} still found",
                        old.ids[i]
                    ));
                }
            }
        }
        Ok(())
    };
    check("after the upsert", &f)?;
    build(&f, 0)?;
    check("after a rebuild", &f)?;

    // Undo one tombstone (record 0), as a crash before it was written would have left it:
    // the rebuild keeps the later record, compaction drops the earlier one.
    poke(&f, 4096, &old.ids[0].to_le_bytes())?;
    build(&f, 0)?;
    check("with an interrupted upsert", &f)?;
    expect(
        "count with an interrupted upsert",
        (n + 50) as u64,
        stats(&f)?.count,
    )?;
    build(&f, u::BUILD_COMPACT)?;
    check("after compaction", &f)?;
    expect("records after compaction", 0, stats(&f)?.deleted)?;
    println!("# upsert: 100 vectors replaced, 50 added; interrupted upsert resolved");
    Ok(())
}

/// The `index_budget=` the VM test mounts with for [`test_budget`].
const BUDGET: u64 = 2 << 20;
/// Vectors per collection of [`test_budget`]: two indexes fit in [`BUDGET`], three do not.
const BUDGET_N: usize = 2400;

/// Drops clean caches as `echo 2 > /proc/sys/vm/drop_caches` does: the slab shrinkers, and
/// with them the super block's, which drops clean indexes.
fn drop_caches() -> Res<()> {
    std::fs::write("/proc/sys/vm/drop_caches", "2\n").map_err(|e| format!("drop_caches: {e}"))
}

/// The index state of the collection at `path`, and the index memory of the mount.
fn residency(path: &Path) -> Res<(u32, u64)> {
    let s = stats(&File::open(path).map_err(|e| e.to_string())?)?;
    Ok((s.index_state, s.mount_index_bytes))
}

/// Checks which of `names` (in `dir`) have their index loaded, and that the mount stays in
/// its budget.
fn expect_resident(dir: &Path, what: &str, names: &[(&str, bool)]) -> Res<u64> {
    let mut total = 0;
    for &(name, want) in names {
        let (state, mount) = residency(&dir.join(name))?;
        if (state == u::INDEX_READY) != want {
            return err(format!(
                "{what}: index of {name} {}loaded",
                if want { "not " } else { "" }
            ));
        }
        if mount > BUDGET {
            return err(format!("{what}: {mount} bytes of indexes, budget {BUDGET}"));
        }
        total = mount;
    }
    Ok(total)
}

/// The index budget of a mount (`index_budget=2m`) and the shrinker: the least recently used
/// clean index makes room for another, a dropped index comes back from its saved copy with
/// the same results, an index with unsaved changes is never dropped, `drop_caches` drops the
/// clean ones, a collection larger than the budget gets `ENOMEM` and stays intact, and an
/// unlinked collection gives its memory back.
fn test_budget(dir: &Path) -> Res<()> {
    // 64 elements: a compact copy of two cache lines, about 310 bytes a vector in all.
    let dim = 64;
    let data: Vec<Data> = (0..3)
        .map(|i| Data::random(u::ELEM_F32, dim, BUDGET_N, 900 + i, 16))
        .collect();
    let names = ["a", "b", "c"];
    let mut before = Vec::new();
    for (name, d) in names.iter().zip(&data) {
        let f = create(&dir.join(name), dim, u::ELEM_F32, u::METRIC_COSINE, 16, 64)?;
        insert_all(&f, d, 1200)?;
        before.push(hnsw_results(&f, d)?);
        // Closing the writer saves the index: it is clean from now on.
    }
    let first = stats(&File::open(dir.join("c")).map_err(|e| e.to_string())?)?;
    let one = first.index_bytes.max(1);
    if BUDGET / one != 2 {
        return err(format!(
            "{} bytes per index: BUDGET_N is off",
            first.index_bytes
        ));
    }
    // c's insert made room by dropping a, the least recently used.
    expect_resident(
        dir,
        "after three inserts",
        &[("a", false), ("b", true), ("c", true)],
    )?;

    // A search of a restores it (same results), dropping b.
    let fa = File::open(dir.join("a")).map_err(|e| e.to_string())?;
    expect(
        "results of a after its reload",
        &before[0],
        &hnsw_results(&fa, &data[0])?,
    )?;
    let s = stats(&fa)?;
    if s.index_flags & u::INDEX_RESTORED == 0 {
        return err("a was rebuilt, not restored from its saved copy");
    }
    expect_resident(dir, "a searched", &[("a", true), ("b", false), ("c", true)])?;

    // Unsaved changes pin c (a delete: no growth): b's reload drops a, not c.
    let fc = open_rw(&dir.join("c"), false)?;
    expect("deleted from c", 1, delete(&fc, &data[2].ids[..1])?)?;
    let fb = File::open(dir.join("b")).map_err(|e| e.to_string())?;
    expect(
        "results of b after its reload",
        &before[1],
        &hnsw_results(&fb, &data[1])?,
    )?;
    expect_resident(dir, "b searched", &[("a", false), ("b", true), ("c", true)])?;
    drop_caches()?;
    let left = expect_resident(
        dir,
        "drop_caches",
        &[("a", false), ("b", false), ("c", true)],
    )?;
    if left == 0 {
        return err("drop_caches: the index of c is loaded but not counted");
    }
    drop(fc);
    drop_caches()?;
    let left = expect_resident(
        dir,
        "drop_caches",
        &[("a", false), ("b", false), ("c", false)],
    )?;
    expect("index bytes after drop_caches", 0, left)?;
    expect(
        "results of a after drop_caches",
        &before[0],
        &hnsw_results(&fa, &data[0])?,
    )?;

    // Larger than the budget: ENOMEM, and the collection keeps what it had.
    let big = Data::random(u::ELEM_F32, dim, 3 * BUDGET_N, 999, 16);
    let fd = create(&dir.join("d"), dim, u::ELEM_F32, u::METRIC_COSINE, 16, 64)?;
    let mut done = 0;
    let res = loop {
        let end = (done + 1200).min(big.ids.len());
        if let Err(e) = insert_flags(&fd, &big, done..end, 0) {
            break e;
        }
        done = end;
        if done == big.ids.len() {
            return err("3x the vectors that fit the budget: inserted");
        }
    };
    expect("insert beyond the budget", libc::ENOMEM, res)?;
    let s = stats(&fd)?;
    expect("vectors kept after ENOMEM", done as u64, s.count)?;
    let (ids, _) = search(&fd, &big, &big.vecs[0], 1, 64, true)?;
    expect("exact search after ENOMEM", vec![big.ids[0]], ids)?;
    drop(fd);

    // Unlinking a collection gives its index memory back.
    drop(fa);
    drop(fb);
    drop_caches()?;
    let fa = File::open(dir.join("a")).map_err(|e| e.to_string())?;
    hnsw_results(&fa, &data[0])?;
    drop(fa);
    let (_, with_a) = residency(&dir.join("b"))?;
    std::fs::remove_file(dir.join("a")).map_err(|e| e.to_string())?;
    let (_, without) = residency(&dir.join("b"))?;
    if with_a == 0 || without >= with_a {
        return err(format!("unlink: {with_a} -> {without} bytes of indexes"));
    }
    println!(
        "# {} bytes per index of {BUDGET_N} x {dim}, budget {BUDGET}: evicted and restored",
        first.index_bytes
    );
    Ok(())
}

/// The errno of an `io::Result`, 0 for success.
fn errno<T>(r: std::io::Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

/// `FS_IOC_SHUTDOWN` with `flags` from an unprivileged child (uid and gid 65534): the errno.
fn shutdown_unprivileged(f: &File, flags: u32) -> Res<i32> {
    // SAFETY: The child only makes system calls and exits; it touches no locks or allocator
    // state that the fork could have copied in an inconsistent state.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return err("fork failed");
    }
    if pid == 0 {
        // SAFETY: Plain system calls in the child.
        let code = unsafe {
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                255
            } else {
                errno(u::shutdown(f, flags))
            }
        };
        // SAFETY: Leaves the child without running the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: `pid` is our child and `status` a valid int.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid || !libc::WIFEXITED(status) {
        return err("the unprivileged child did not exit");
    }
    Ok(libc::WEXITSTATUS(status))
}

/// `FS_IOC_SHUTDOWN` on a mounted VexFS at `dir`, shut down with `NOLOGFLUSH`: the checks
/// before, then every kind of change fails with `EIO` while reads of what is cached work. The
/// test script unmounts, checks and repairs the file system afterwards; `dir/kept` was synced.
fn test_shutdown(dir: &Path) -> Res<()> {
    use libc::{
        EFAULT,
        EINVAL,
        EIO,
        EPERM, //
    };
    let d = Data::random(u::ELEM_F32, 8, 200, 77, 4);
    let coll = create(&dir.join("coll"), 8, u::ELEM_F32, u::METRIC_L2, 8, 32)?;
    insert(&coll, &d, 0..200)?;
    std::fs::write(dir.join("kept"), b"kept before the shutdown").map_err(|e| e.to_string())?;
    std::fs::create_dir(dir.join("sub")).map_err(|e| e.to_string())?;
    let mut cached = open_rw(&dir.join("cached"), true)?;
    cached.write_all(&[7u8; 10000]).map_err(|e| e.to_string())?;
    // SAFETY: `sync()` has no preconditions.
    unsafe { libc::sync() };
    let root = File::open(dir).map_err(|e| e.to_string())?;

    // Refused without changing anything.
    expect(
        "shutdown as an unprivileged user",
        EPERM,
        shutdown_unprivileged(&root, 2)?,
    )?;
    expect(
        "shutdown with unknown flags",
        EINVAL,
        errno(u::shutdown(&root, 3)),
    )?;
    expect(
        "shutdown with a bad address",
        EFAULT,
        errno(u::ioctl_raw(&root, u::FS_IOC_SHUTDOWN, 16)),
    )?;
    std::fs::write(dir.join("still-live"), b"x")
        .map_err(|e| format!("a write after the refused shutdowns: {e}"))?;

    // Shut down through a directory; a second shutdown, through a file, does nothing.
    u::shutdown(&root, u::FS_SHUTDOWN_FLAGS_NOLOGFLUSH).map_err(|e| format!("shutdown: {e}"))?;
    expect("a second shutdown", 0, errno(u::shutdown(&cached, 0)))?;
    expect(
        "shutdown with unknown flags, after",
        EINVAL,
        errno(u::shutdown(&cached, 3)),
    )?;

    let cases: Vec<(&str, i32)> = vec![
        ("create", errno(File::create(dir.join("new")))),
        ("mkdir", errno(std::fs::create_dir(dir.join("newdir")))),
        ("unlink", errno(std::fs::remove_file(dir.join("kept")))),
        ("rmdir", errno(std::fs::remove_dir(dir.join("sub")))),
        (
            "rename",
            errno(std::fs::rename(dir.join("kept"), dir.join("moved"))),
        ),
        (
            "link",
            errno(std::fs::hard_link(dir.join("kept"), dir.join("link"))),
        ),
        (
            "symlink",
            errno(std::os::unix::fs::symlink("kept", dir.join("sym"))),
        ),
        ("write", errno(cached.write_all(b"more"))),
        ("truncate", errno(cached.set_len(10))),
        (
            "chmod",
            errno(std::fs::set_permissions(
                dir.join("kept"),
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )),
        ),
        ("fsync", errno(cached.sync_all())),
        ("fsync of a directory", errno(root.sync_all())),
    ];
    for (what, e) in cases {
        expect(&format!("{what} after the shutdown"), EIO, e)?;
    }
    let q = d.vecs[3].clone();
    let r = search(&coll, &d, &q, 5, 0, true);
    match r {
        Err(e) if e.contains("Input/output error") => {}
        other => return err(format!("a search after the shutdown: {other:?}")),
    }
    expect(
        "an insert after the shutdown",
        Err(EIO),
        insert_flags(&coll, &d, 0..1, 0),
    )?;
    let mut back = [0u8; 10000];
    std::io::Read::read_exact(
        &mut File::open(dir.join("cached")).map_err(|e| e.to_string())?,
        &mut back,
    )
    .map_err(|e| format!("reading a cached file after the shutdown: {e}"))?;
    expect(
        "the cached file reads back",
        true,
        back.iter().all(|&b| b == 7),
    )?;
    let names = std::fs::read_dir(dir).map_err(|e| e.to_string())?.count();
    expect("readdir after the shutdown", true, names >= 5)?;
    Ok(())
}

/// `godown PATH FLAGS`: shuts down the file system of PATH, like xfstests' godown.
fn godown(path: &Path, flags: &str) -> Res<()> {
    let flags: u32 = flags.parse().map_err(|_| format!("bad flags {flags}"))?;
    let f = File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    u::shutdown(&f, flags).map_err(|e| format!("FS_IOC_SHUTDOWN: {e}"))
}

/// `mksock PATH`: makes a socket inode at PATH with `mknod(2)`, which busybox's mknod cannot
/// (and the test kernel has no networking for `bind(2)`; both end in the file system's
/// `mknod`).
fn mksock(path: &Path) -> Res<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| "a NUL in the path".to_string())?;
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::mknod(c.as_ptr(), libc::S_IFSOCK | 0o755, 0) } != 0 {
        return err(format!(
            "mknod {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// `rename2 OLD NEW FLAGS`: `renameat2(2)` with FLAGS (1 noreplace, 2 exchange, 4 whiteout),
/// which busybox's mv cannot pass.
fn rename2(old: &str, new: &str, flags: &str) -> Res<()> {
    let flags: u32 = flags.parse().map_err(|_| format!("bad flags {flags}"))?;
    let c = |p: &str| std::ffi::CString::new(p).map_err(|_| "a NUL in a path".to_string());
    let (o, n) = (c(old)?, c(new)?);
    // SAFETY: Both paths are valid NUL-terminated strings.
    let ret = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            o.as_ptr(),
            libc::AT_FDCWD,
            n.as_ptr(),
            flags,
        )
    };
    if ret != 0 {
        return err(format!("renameat2: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// `FS_IOC_GETFLAGS` and `FS_IOC_SETFLAGS` (`<linux/fs.h>`; the argument is an `int`).
const FS_IOC_GETFLAGS: u32 = 0x8008_6601;
const FS_IOC_SETFLAGS: u32 = 0x4008_6602;
/// The `chattr` flags VexFS keeps.
const FS_SYNC_FL: u32 = 0x8;
const FS_IMMUTABLE_FL: u32 = 0x10;
const FS_APPEND_FL: u32 = 0x20;
const FS_NODUMP_FL: u32 = 0x40;
const FS_NOATIME_FL: u32 = 0x80;
/// A flag VexFS does not keep (compression).
const FS_COMPR_FL: u32 = 0x4;

fn getflags(f: &File) -> std::io::Result<u32> {
    let mut v: libc::c_int = 0;
    u::ioctl_raw(f, FS_IOC_GETFLAGS, &mut v as *mut libc::c_int as usize)?;
    Ok(v as u32)
}

fn setflags(f: &File, flags: u32) -> std::io::Result<()> {
    let v = flags as libc::c_int;
    u::ioctl_raw(f, FS_IOC_SETFLAGS, &v as *const libc::c_int as usize).map(|_| ())
}

/// Opens `path` read-only, also a directory.
fn open_ro(path: &Path) -> Res<File> {
    File::open(path).map_err(|e| format!("open {}: {e}", path.display()))
}

/// `chattr` flags on a mounted VexFS at `dir`: kept and reported, refused when unknown, inherited
/// from directories, and enforced: an immutable file or directory cannot change, an
/// append-only one only grows, through the VFS and through the collection ioctls. Leaves
/// `dir/kept` (sync, nodump, noatime) and `dir/frozen` (immutable) for the script to check
/// after a remount.
fn test_chattr(dir: &Path) -> Res<()> {
    use libc::{
        EOPNOTSUPP,
        EPERM, //
    };
    let io = |e: std::io::Error| e.to_string();
    let path = dir.join("f");
    std::fs::write(&path, b"data").map_err(io)?;
    let f = open_ro(&path)?;
    expect("flags of a new file", 0, getflags(&f).map_err(io)?)?;
    let kept = FS_SYNC_FL | FS_NODUMP_FL | FS_NOATIME_FL;
    setflags(&f, kept).map_err(|e| format!("set sync, nodump, noatime: {e}"))?;
    expect("flags after chattr +Sd A", kept, getflags(&f).map_err(io)?)?;
    expect(
        "an unknown flag",
        EOPNOTSUPP,
        errno(setflags(&f, kept | FS_COMPR_FL)),
    )?;
    expect("flags after the refusal", kept, getflags(&f).map_err(io)?)?;
    // Sync writes still write.
    std::fs::write(&path, b"synced").map_err(io)?;
    expect(
        "a sync file's data",
        b"synced".to_vec(),
        std::fs::read(&path).map_err(io)?,
    )?;

    // Immutable: also a descriptor opened before refuses to write.
    let mut w = open_rw(&path, false)?;
    setflags(&f, FS_IMMUTABLE_FL).map_err(|e| format!("chattr +i: {e}"))?;
    let cases: Vec<(&str, i32)> = vec![
        (
            "open for writing",
            errno(OpenOptions::new().write(true).open(&path)),
        ),
        (
            "write through an older descriptor",
            errno(w.write_all(b"x")),
        ),
        ("truncate", errno(w.set_len(0))),
        ("unlink", errno(std::fs::remove_file(&path))),
        ("rename", errno(std::fs::rename(&path, dir.join("g")))),
        ("link", errno(std::fs::hard_link(&path, dir.join("h")))),
        (
            "chmod",
            errno(std::fs::set_permissions(
                &path,
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )),
        ),
    ];
    for (what, e) in cases {
        expect(&format!("immutable: {what}"), EPERM, e)?;
    }
    expect(
        "an immutable file's data",
        b"synced".to_vec(),
        std::fs::read(&path).map_err(io)?,
    )?;

    // Append-only: writes through O_APPEND only, no truncation or removal.
    setflags(&f, FS_APPEND_FL).map_err(|e| format!("chattr -i +a: {e}"))?;
    expect(
        "append-only: open for writing without O_APPEND",
        EPERM,
        errno(OpenOptions::new().write(true).open(&path)),
    )?;
    OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut a| a.write_all(b"+more"))
        .map_err(|e| format!("append-only: an appending write: {e}"))?;
    expect(
        "an append-only file's data",
        b"synced+more".to_vec(),
        std::fs::read(&path).map_err(io)?,
    )?;
    expect(
        "append-only: unlink",
        EPERM,
        errno(std::fs::remove_file(&path)),
    )?;
    expect(
        "append-only: truncate",
        EPERM,
        errno(
            OpenOptions::new()
                .append(true)
                .open(&path)
                .and_then(|a| a.set_len(0)),
        ),
    )?;
    setflags(&f, 0).map_err(|e| format!("chattr -a: {e}"))?;
    drop((f, w));
    std::fs::remove_file(&path).map_err(|e| format!("unlink after chattr -a: {e}"))?;

    // Directories: immutable ones refuse new entries, append-only ones removals; new inodes
    // take sync, nodump and noatime from their directory, not immutable or append-only.
    let d = dir.join("d");
    std::fs::create_dir(&d).map_err(io)?;
    std::fs::write(d.join("old"), b"old").map_err(io)?;
    let df = open_ro(&d)?;
    setflags(&df, FS_IMMUTABLE_FL).map_err(|e| format!("chattr +i on a directory: {e}"))?;
    expect(
        "immutable directory: create",
        EPERM,
        errno(File::create(d.join("new"))),
    )?;
    expect(
        "immutable directory: unlink",
        EPERM,
        errno(std::fs::remove_file(d.join("old"))),
    )?;
    setflags(&df, FS_APPEND_FL | kept).map_err(|e| format!("chattr +a on a directory: {e}"))?;
    std::fs::write(d.join("new"), b"new")
        .map_err(|e| format!("append-only directory: create: {e}"))?;
    expect(
        "append-only directory: unlink",
        EPERM,
        errno(std::fs::remove_file(d.join("old"))),
    )?;
    expect(
        "flags inherited by a new file",
        kept,
        getflags(&open_ro(&d.join("new"))?).map_err(io)?,
    )?;
    std::fs::create_dir(d.join("sub")).map_err(io)?;
    expect(
        "flags inherited by a new directory",
        kept,
        getflags(&open_ro(&d.join("sub"))?).map_err(io)?,
    )?;
    setflags(&df, 0).map_err(io)?;
    std::fs::remove_dir_all(&d).map_err(|e| format!("rm -r after chattr -a: {e}"))?;

    // Collections: immutable ones only answer, append-only ones only grow.
    let data = Data::random(u::ELEM_F32, 8, 200, 91, 4);
    let coll = create(&dir.join("coll"), 8, u::ELEM_F32, u::METRIC_L2, 8, 32)?;
    insert(&coll, &data, 0..100)?;
    setflags(&coll, FS_IMMUTABLE_FL).map_err(|e| format!("chattr +i on a collection: {e}"))?;
    expect(
        "immutable collection: insert",
        Err(EPERM),
        insert_flags(&coll, &data, 100..110, 0),
    )?;
    let mut del = u::Delete {
        version: u::UAPI_VERSION,
        count: 1,
        ids: data.ids.as_ptr() as u64,
        ..Default::default()
    };
    expect(
        "immutable collection: delete",
        EPERM,
        errno_of(&coll, u::IOC_DELETE, &mut del),
    )?;
    let mut compact = u::BuildIndex {
        version: u::UAPI_VERSION,
        flags: u::BUILD_COMPACT,
        ..Default::default()
    };
    expect(
        "immutable collection: compaction",
        EPERM,
        errno_of(&coll, u::IOC_BUILD_INDEX, &mut compact),
    )?;
    build(&coll, 0).map_err(|e| format!("immutable collection: build-index: {e}"))?;
    let (ids, _) = search(&coll, &data, &data.vecs[3], 1, 32, true)?;
    expect("immutable collection: exact search", vec![data.ids[3]], ids)?;
    expect("immutable collection: live", 100, stats(&coll)?.count)?;
    setflags(&coll, FS_APPEND_FL).map_err(|e| format!("chattr +a on a collection: {e}"))?;
    insert(&coll, &data, 100..150).map_err(|e| format!("append-only collection: insert: {e}"))?;
    expect(
        "append-only collection: upsert",
        Err(EPERM),
        insert_flags(&coll, &data, 0..10, u::INSERT_UPSERT),
    )?;
    expect(
        "append-only collection: delete",
        EPERM,
        errno_of(&coll, u::IOC_DELETE, &mut del),
    )?;
    expect(
        "append-only collection: compaction",
        EPERM,
        errno_of(&coll, u::IOC_BUILD_INDEX, &mut compact),
    )?;
    setflags(&coll, 0).map_err(io)?;
    expect("delete after chattr -a", 1, delete(&coll, &data.ids[..1])?)?;
    expect("live after all that", 149, stats(&coll)?.count)?;
    drop(coll);
    std::fs::remove_file(dir.join("coll")).map_err(io)?;

    // For the script, across a remount.
    std::fs::write(dir.join("kept"), b"kept").map_err(io)?;
    setflags(&open_ro(&dir.join("kept"))?, kept).map_err(io)?;
    std::fs::write(dir.join("frozen"), b"frozen").map_err(io)?;
    setflags(&open_ro(&dir.join("frozen"))?, FS_IMMUTABLE_FL).map_err(io)?;
    Ok(())
}

/// `lsattr PATH`: prints the `FS_IOC_GETFLAGS` flags of PATH in decimal.
fn lsattr(path: &Path) -> Res<()> {
    let flags = getflags(&open_ro(path)?).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("{flags}");
    Ok(())
}

/// `chattr PATH FLAGS`: sets the `FS_IOC_SETFLAGS` flags of PATH to FLAGS (decimal).
fn chattr(path: &Path, flags: &str) -> Res<()> {
    let flags: u32 = flags.parse().map_err(|_| format!("bad flags {flags}"))?;
    setflags(&open_ro(path)?, flags).map_err(|e| format!("{}: {e}", path.display()))
}

/// The exit status of command or test `name`, which ended with `res` (reported if an error).
fn exit_status(name: &str, res: Res<()>) -> ExitCode {
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vexfs-ioctl-test {name}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 5 && args[1] == "rename2" {
        return exit_status("rename2", rename2(&args[2], &args[3], &args[4]));
    }
    if args.len() == 3 && args[1] == "mksock" {
        return exit_status("mksock", mksock(Path::new(&args[2])));
    }
    if args.len() == 3 && args[1] == "lsattr" {
        return exit_status("lsattr", lsattr(Path::new(&args[2])));
    }
    if args.len() == 4 && args[1] == "chattr" {
        return exit_status("chattr", chattr(Path::new(&args[2]), &args[3]));
    }
    if args.len() == 4 && args[1] == "godown" {
        return exit_status("godown", godown(Path::new(&args[2]), &args[3]));
    }
    if args.len() == 5 && args[1] == "fault-change" {
        return exit_status(
            "fault-change",
            test_fault_change(Path::new(&args[2]), &args[3], &args[4]),
        );
    }
    if args.len() == 5 && args[1] == "fault-compact" {
        return exit_status(
            "fault-compact",
            test_fault_compact(Path::new(&args[2]), &args[3], &args[4]),
        );
    }
    if args.len() != 3 {
        eprintln!(
            "usage: vexfs-ioctl-test exact|recall|delete|errors|corrupt|concurrent|batch|filter|\
             budget|upsert|shutdown|chattr|persist-write|persist-verify|saved-write|saved-verify|\
             crash-write|crash-run|crash-verify|fault-write|fault-verify|\
             fault-compact-write|fault-compact-verify DIR\n\
             \x20      vexfs-ioctl-test fault-change|fault-compact DIR DEV BUDGET|-\n\
             \x20      vexfs-ioctl-test godown PATH FLAGS\n\
             \x20      vexfs-ioctl-test lsattr PATH\n\
             \x20      vexfs-ioctl-test chattr PATH FLAGS\n\
             \x20      vexfs-ioctl-test mksock PATH\n\
             \x20      vexfs-ioctl-test rename2 OLD NEW FLAGS"
        );
        return ExitCode::from(2);
    }
    let dir = Path::new(&args[2]);
    let res = match args[1].as_str() {
        "exact" => test_exact(dir),
        "recall" => test_recall(dir),
        "delete" => test_delete(dir),
        "errors" => test_errors(dir),
        "corrupt" => test_corrupt(dir),
        "concurrent" => test_concurrent(dir),
        "persist-write" => test_persist_write(dir),
        "persist-verify" => test_persist_verify(dir),
        "batch" => test_batch(dir),
        "filter" => test_filter(dir),
        "budget" => test_budget(dir),
        "upsert" => test_upsert(dir),
        "shutdown" => test_shutdown(dir),
        "chattr" => test_chattr(dir),
        "saved-write" => test_saved_write(dir),
        "saved-verify" => test_saved_verify(dir),
        "crash-write" => test_crash_write(dir),
        "crash-run" => test_crash_run(dir),
        "crash-verify" => test_crash_verify(dir),
        "fault-write" => test_fault_write(dir),
        "fault-verify" => test_fault_verify(dir),
        "fault-compact-write" => test_fault_compact_write(dir),
        "fault-compact-verify" => test_fault_compact_verify(dir),
        t => err(format!("unknown test {t}")),
    };
    exit_status(&args[1], res)
}
