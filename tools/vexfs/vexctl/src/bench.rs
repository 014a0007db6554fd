// SPDX-License-Identifier: GPL-2.0

//! `vexctl bench`: times inserts, the index build and searches of a
//! collection, and measures recall against precomputed ground truth.
//!
//! ```text
//! vexctl bench PATH [--base FILE] [--ids-from N] [--batch N] [--build-index]
//!              [--queries FILE] [--nq N] [--truth FILE] [-k K] [--ef N[,N...]]
//!              [--exact [--exact-nq N]] [--label TEXT] [--json]
//! ```
//!
//! `--base` vectors are inserted with ids `N, N+1, ...`; row `i` of `--truth`
//! (`.ivecs` or an integer `.npy`) holds the ids of the true nearest
//! neighbours of query `i`, nearest first. Each `--ef` value (and `--exact`)
//! is one search run over the first `--nq` queries (`--exact-nq` for the
//! exact one); latencies are those of the search ioctl alone.

use std::{collections::HashSet, path::Path, time::Instant};

use crate::{
    insert_matrix,
    json::Json,
    load_vectors,
    open,
    stats_json,
    usage,
    Args,
    Converted,
    Error,
    Result, //
};

/// Nearest-rank percentile `p` (0..=100) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Fraction of `truth[..k]` found in `found` (recall@k of one query).
pub fn recall_at(found: &[u64], truth: &[u64], k: usize) -> f64 {
    let t: HashSet<u64> = truth.iter().take(k).copied().collect();
    if t.is_empty() {
        return f64::NAN;
    }
    let hits = found.iter().take(k).filter(|id| t.contains(id)).count();
    #[allow(clippy::cast_precision_loss)]
    let r = hits as f64 / t.len() as f64;
    r
}

/// Summary of one search run.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchRun {
    /// `ef` (0: the kernel's default).
    pub ef: u32,
    /// Exact search.
    pub exact: bool,
    /// Queries run.
    pub queries: usize,
    /// Wall time of the run, seconds.
    pub seconds: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// Mean latency, microseconds.
    pub mean_us: f64,
    /// Mean recall@k, if ground truth was given.
    pub recall: Option<f64>,
}

impl SearchRun {
    /// Summarises the latencies (seconds) and recalls of a run.
    pub fn new(ef: u32, exact: bool, mut lat: Vec<f64>, seconds: f64, recalls: &[f64]) -> Self {
        lat.sort_by(f64::total_cmp);
        let n = lat.len();
        #[allow(clippy::cast_precision_loss)]
        let mean = lat.iter().sum::<f64>() / n.max(1) as f64;
        #[allow(clippy::cast_precision_loss)]
        let recall =
            (!recalls.is_empty()).then(|| recalls.iter().sum::<f64>() / recalls.len() as f64);
        SearchRun {
            ef,
            exact,
            queries: n,
            seconds,
            p50_us: percentile(&lat, 50.0) * 1e6,
            p99_us: percentile(&lat, 99.0) * 1e6,
            mean_us: mean * 1e6,
            recall,
        }
    }

    /// Queries per second.
    pub fn qps(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let q = self.queries as f64;
        if self.seconds > 0.0 {
            q / self.seconds
        } else {
            0.0
        }
    }

    fn json(&self, k: u32) -> Json {
        Json::obj()
            .set("ef", self.ef)
            .set("exact", self.exact)
            .set("k", k)
            .set("queries", self.queries)
            .set("seconds", self.seconds)
            .set("qps", self.qps())
            .set("p50_us", self.p50_us)
            .set("p99_us", self.p99_us)
            .set("mean_us", self.mean_us)
            .set("recall", self.recall)
    }
}

/// Parses `--ef 16,64,128`.
pub fn parse_ef_list(s: &str) -> Result<Vec<u32>> {
    s.split(',')
        .map(|t| match t.trim().parse::<u32>() {
            Ok(v) if v <= crate::uapi::MAX_EF => Ok(v),
            _ => usage(format!("bad --ef value '{}'", t)),
        })
        .collect()
}

/// Options of `vexctl bench` that take a value.
const BENCH_VALUES: &[&str] = &[
    "--base",
    "--ids-from",
    "--batch",
    "--queries",
    "--nq",
    "--exact-nq",
    "--truth",
    "-k",
    "--ef",
    "--label",
];

/// Flags of `vexctl bench`.
const BENCH_FLAGS: &[&str] = &["--build-index", "--exact", "--json", "--quiet", "-q"];

/// `vexctl bench`.
pub fn cmd_bench(args: &[String]) -> Result<()> {
    let a = Args::parse(args, BENCH_VALUES, BENCH_FLAGS)?;
    if a.pos.len() != 1 {
        return usage("expected bench PATH");
    }
    let path = Path::new(&a.pos[0]);
    let k: u32 = a.num("-k")?.unwrap_or(10);
    if k == 0 || k > crate::uapi::MAX_K {
        return usage("bad -k");
    }
    let batch: u32 = a.num("--batch")?.unwrap_or(1024);
    if batch == 0 || batch > crate::uapi::MAX_BATCH {
        return usage("bad --batch");
    }
    let efs = match a.get("--ef") {
        Some(s) => parse_ef_list(s)?,
        None => vec![0],
    };
    let quiet = a.flag("--quiet") || a.flag("-q") || a.flag("--json");
    let write = a.get("--base").is_some() || a.flag("--build-index");
    let c = open(path, write)?;
    let st = crate::ctx(path, c.stats())?;
    let dim = st.params.dim;
    let mut out = Json::obj().set("path", a.pos[0].as_str());
    if let Some(l) = a.get("--label") {
        out = out.set("label", l);
    }
    // The clock the times below come from: a reader of the results can
    // refuse latencies taken on a tick-based clock.
    let clock = crate::clock::clocksource();
    let coarse = clock.as_deref().is_some_and(crate::clock::is_coarse);
    out = out
        .set("clocksource", clock.clone())
        .set("coarse_clock", coarse);
    let mut text = String::new();
    let note = crate::clock::coarse_note(clock.as_deref());
    if !note.is_empty() {
        text += &note;
        text.push('\n');
    }

    if let Some(base) = a.get("--base") {
        let m = load_vectors(base, dim)?;
        let first: u64 = a.num("--ids-from")?.unwrap_or(0);
        let wall = Instant::now();
        let r = insert_matrix(&c, &st, &m, first, batch as usize, quiet, false)?;
        let wall = wall.elapsed().as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let rate = r.count as f64 / r.seconds.max(1e-9);
        out = out.set(
            "insert",
            Json::obj()
                .set("count", r.count)
                .set("batch", batch)
                .set("seconds", r.seconds)
                .set("wall_seconds", wall)
                .set("vectors_per_second", rate),
        );
        text += &format!(
            "insert: {} vectors in {:.3} s ({:.0} vectors/s, batches of {})\n",
            r.count, r.seconds, rate, batch
        );
    }
    if a.flag("--build-index") {
        let t = Instant::now();
        crate::ctx(path, c.build_index(false))?;
        let secs = t.elapsed().as_secs_f64();
        out = out.set("build_index_seconds", secs);
        text += &format!("build-index: {:.3} s\n", secs);
    }
    let st = crate::ctx(path, c.stats())?;
    out = out.set("stats", stats_json(&st));
    #[allow(clippy::cast_precision_loss)]
    if st.count > 0 {
        let n = st.count as f64;
        text += &format!(
            "collection: {} vectors, file {:.0} bytes/vector, index {:.0} bytes/vector ({})\n",
            st.count,
            st.file_bytes as f64 / n,
            st.index_bytes as f64 / n,
            crate::uapi::index_state_name(st.index_state)
        );
    }

    if let Some(qfile) = a.get("--queries") {
        let qm = load_vectors(qfile, dim)?;
        let nq = a.num::<usize>("--nq")?.unwrap_or(qm.rows).min(qm.rows);
        let truth = match a.get("--truth") {
            None => None,
            Some(f) => {
                let t = crate::vecfile::load(Path::new(f))?;
                if t.rows < nq || t.dim < k as usize {
                    return Err(Error::Fail(format!(
                        "{}: {} rows of {} ids, need {} rows of at least {}",
                        f, t.rows, t.dim, nq, k
                    )));
                }
                let rows: Vec<Vec<u64>> = (0..nq)
                    .map(|i| t.row_ids(i))
                    .collect::<std::result::Result<_, _>>()?;
                Some(rows)
            }
        };
        let queries: Vec<Converted> = (0..nq)
            .map(|i| Converted::new(&qm, st.params.elem_type, i, i + 1))
            .collect::<Result<_>>()?;
        let mut configs: Vec<(u32, bool, usize)> = efs.iter().map(|&ef| (ef, false, nq)).collect();
        if a.flag("--exact") {
            let n = a.num::<usize>("--exact-nq")?.unwrap_or(nq).min(nq);
            configs.push((0, true, n));
        }
        let mut runs = Vec::new();
        for (ef, exact, n) in configs {
            let mut lat = Vec::with_capacity(n);
            let mut recalls = Vec::new();
            // What the kernel reports of each search: its own time and counters.
            let mut klat = Vec::with_capacity(n);
            let (mut dists, mut rescored, mut passed) = (0u64, 0u64, 0u64);
            let wall = Instant::now();
            for (i, q) in queries.iter().take(n).enumerate() {
                let t = Instant::now();
                let hits = crate::ctx(path, c.search(q.data(), k, ef, exact, true))?;
                lat.push(t.elapsed().as_secs_f64());
                if let Some(s) = hits.stats {
                    #[allow(clippy::cast_precision_loss)]
                    klat.push(s.nanoseconds as f64 * 1e-9);
                    dists += s.distances;
                    rescored += s.rescored;
                    passed += s.passed;
                }
                if let Some(t) = &truth {
                    recalls.push(recall_at(&hits.ids, &t[i], k as usize));
                }
            }
            let run = SearchRun::new(ef, exact, lat, wall.elapsed().as_secs_f64(), &recalls);
            // The same queries in one VEXFS_IOC_SEARCH_BATCH (a call per MAX_RESULTS results).
            let all = Converted::new(&qm, st.params.elem_type, 0, n)?;
            let t = Instant::now();
            crate::ctx(path, c.search_batch(all.data(), n, k, ef, exact))?;
            #[allow(clippy::cast_precision_loss)]
            let batch_qps = n as f64 / t.elapsed().as_secs_f64();
            klat.sort_by(f64::total_cmp);
            #[allow(clippy::cast_precision_loss)]
            let per_query = |v: u64| v as f64 / run.queries.max(1) as f64;
            let kernel = Json::obj()
                .set("p50_us", percentile(&klat, 50.0) * 1e6)
                .set("p99_us", percentile(&klat, 99.0) * 1e6)
                .set("distances_per_query", per_query(dists))
                .set("rescored_per_query", per_query(rescored))
                .set("passed_per_query", per_query(passed));
            text += &format!(
                "search {}: {} queries, k {}, p50 {:.1} us, p99 {:.1} us, {:.0} QPS{}; \
                 in the kernel p50 {:.1} us, {:.0} distances a query; batch {:.0} QPS\n",
                if exact {
                    "exact".to_string()
                } else {
                    format!("ef {}", ef)
                },
                run.queries,
                k,
                run.p50_us,
                run.p99_us,
                run.qps(),
                run.recall
                    .map(|r| format!(", recall@{} {:.4}", k, r))
                    .unwrap_or_default(),
                percentile(&klat, 50.0) * 1e6,
                per_query(dists),
                batch_qps,
            );
            runs.push(
                run.json(k)
                    .set("kernel", kernel)
                    .set("batch_qps", batch_qps),
            );
        }
        out = out.set("search", runs);
    }
    if a.flag("--json") {
        println!("{}", out);
    } else {
        print!("{}", text);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn recall() {
        assert_eq!(recall_at(&[1, 2, 3], &[3, 2, 1], 3), 1.0);
        assert_eq!(recall_at(&[1, 9, 8, 7], &[1, 2, 3, 4], 4), 0.25);
        // Only the first k of either list count.
        assert_eq!(recall_at(&[5, 1], &[1, 5, 6], 1), 0.0);
        // Fewer results than k.
        assert_eq!(recall_at(&[1], &[1, 2], 2), 0.5);
    }

    #[test]
    fn runs() {
        let r = SearchRun::new(
            64,
            false,
            vec![0.003, 0.001, 0.002, 0.004],
            0.01,
            &[1.0, 0.5],
        );
        assert_eq!(r.queries, 4);
        assert!((r.p50_us - 2000.0).abs() < 1e-6);
        assert!((r.p99_us - 4000.0).abs() < 1e-6);
        assert!((r.mean_us - 2500.0).abs() < 1e-6);
        assert!((r.qps() - 400.0).abs() < 1e-9);
        assert_eq!(r.recall, Some(0.75));
        let j = r.json(10).to_string();
        assert!(
            j.starts_with(r#"{"ef": 64, "exact": false, "k": 10, "queries": 4"#),
            "{}",
            j
        );
        assert!(SearchRun::new(0, true, vec![], 0.0, &[]).recall.is_none());
    }

    #[test]
    fn every_documented_option_is_accepted() {
        let usage = crate::USAGE;
        let start = usage.find("  bench ").unwrap();
        for word in usage[start..].split(|c: char| c.is_whitespace() || "[]".contains(c)) {
            if word.starts_with('-') {
                assert!(
                    BENCH_VALUES.contains(&word) || BENCH_FLAGS.contains(&word),
                    "{}",
                    word
                );
            }
        }
    }

    #[test]
    fn ef_lists() {
        assert_eq!(parse_ef_list("16, 64,0").unwrap(), vec![16, 64, 0]);
        assert!(parse_ef_list("16,x").is_err());
        assert!(parse_ef_list("65537").is_err());
    }
}
