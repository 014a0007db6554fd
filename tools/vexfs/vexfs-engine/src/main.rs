// SPDX-License-Identifier: GPL-2.0

//! `vexfs-engine-bench`: the kernel's vector engine, built in user space,
//! benchmarked on the files `scripts/bench.py` writes.
//!
//! ```text
//! vexfs-engine-bench --base base.npy --queries queries.npy --truth truth.npy
//!     [--nq N] [--exact-nq N] [-k 10] [--ef 10,16,...] [--m 16]
//!     [--ef-construction 200] [--batch 1024] [--metric cosine] [--label NAME]
//!     [--filter NAME:range|list:IDS.npy:TRUTH.npy ...] [--filter-ef 64]
//! ```
//!
//! Base vectors and queries are 2-D float32 `.npy` arrays, the ground truth a
//! 2-D int32 or int64 array (ids of the base rows, nearest first). The index is
//! built through `VEXFS_IOC_INSERT`'s sequence of engine calls, `--batch`
//! vectors at a time (ids `0..n`), then every query is searched one at a time at
//! each ef, and exactly on the first `--exact-nq` queries. One JSON object goes
//! to standard output, in the row schema of bench.py's host engines, with the
//! build profile. Engine calls are all in `src/engine.rs`.
//!
//! Each `--filter` is a filtered search series at `--filter-ef`: `range` takes
//! the ids from the first to the last of `IDS`, `list` the ids in `IDS` (a 2-D int
//! `.npy`); `TRUTH` holds the nearest admitted ids of each query.

// Timing statistics are floating point; the engine (the library) has none.
#![allow(clippy::float_arithmetic, clippy::cast_lossless)]

use std::{
    fmt::Write as _,
    process::ExitCode,
    time::{Duration, Instant},
};
use vexfs_engine::engine::{self, Engine, Metric};

/// A 2-D `.npy` array: rows x cols, row-major.
struct Npy {
    rows: usize,
    cols: usize,
    data: Data,
}

enum Data {
    F32(Vec<u32>),
    Int(Vec<i64>),
}

fn load_npy(path: &str) -> Result<Npy, String> {
    let b = std::fs::read(path).map_err(|e| format!("{}: {}", path, e))?;
    let bad = |what: &str| format!("{}: not a supported .npy file ({})", path, what);
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return Err(bad("magic"));
    }
    let (hlen, start) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        2 | 3 if b.len() >= 12 => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
        _ => return Err(bad("version")),
    };
    let header = std::str::from_utf8(b.get(start..start + hlen).ok_or_else(|| bad("header"))?)
        .map_err(|_| bad("header"))?;
    let field = |key: &str| -> Option<&str> {
        let i = header.find(&format!("'{}':", key))? + key.len() + 3;
        Some(header[i..].trim_start())
    };
    let descr = field("descr").ok_or_else(|| bad("descr"))?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or_else(|| bad("descr"))?;
    if field("fortran_order").is_none_or(|f| !f.starts_with("False")) {
        return Err(bad("Fortran order"));
    }
    let shape = field("shape").ok_or_else(|| bad("shape"))?;
    let shape = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("shape"))?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad("shape")))
        .collect::<Result<_, _>>()?;
    let (rows, cols) = match dims[..] {
        [r, c] => (r, c),
        _ => return Err(bad("not 2-D")),
    };
    let body = &b[start + hlen..];
    let n = rows * cols;
    let words = |size: usize| -> Result<&[u8], String> {
        body.get(..n * size).ok_or_else(|| bad("short data"))
    };
    let data = match descr {
        "<f4" => Data::F32(
            words(4)?
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        "<i4" => Data::Int(
            words(4)?
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes(c.try_into().unwrap())))
                .collect(),
        ),
        "<i8" => Data::Int(
            words(8)?
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        d => return Err(bad(&format!("dtype {}", d))),
    };
    Ok(Npy { rows, cols, data })
}

struct Args {
    base: String,
    queries: String,
    truth: String,
    nq: usize,
    exact_nq: usize,
    k: usize,
    ef: Vec<usize>,
    m: usize,
    ef_construction: usize,
    batch: usize,
    metric: Metric,
    label: Option<String>,
    filters: Vec<FilterSpec>,
    filter_ef: usize,
}

/// A `--filter NAME:KIND:IDS:TRUTH`.
struct FilterSpec {
    name: String,
    range: bool,
    ids: String,
    truth: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        base: String::new(),
        queries: String::new(),
        truth: String::new(),
        nq: usize::MAX,
        exact_nq: 100,
        k: 10,
        ef: vec![10, 16, 24, 32, 48, 64, 96, 128, 192, 256],
        m: 16,
        ef_construction: 200,
        batch: 1024,
        metric: Metric::Cosine,
        label: None,
        filters: Vec::new(),
        filter_ef: 64,
    };
    let mut it = std::env::args().skip(1);
    while let Some(opt) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{} needs a value", opt));
        let num = |v: String| v.parse::<usize>().map_err(|_| format!("bad number: {}", v));
        match opt.as_str() {
            "--base" => a.base = val()?,
            "--queries" => a.queries = val()?,
            "--truth" => a.truth = val()?,
            "--nq" => a.nq = num(val()?)?,
            "--exact-nq" => a.exact_nq = num(val()?)?,
            "-k" | "--k" => a.k = num(val()?)?,
            "--m" => a.m = num(val()?)?,
            "--ef-construction" => a.ef_construction = num(val()?)?,
            "--batch" => a.batch = num(val()?)?.max(1),
            "--label" => a.label = Some(val()?),
            "--filter-ef" => a.filter_ef = num(val()?)?,
            "--filter" => {
                let v = val()?;
                let p: Vec<&str> = v.splitn(4, ':').collect();
                let [name, kind, ids, truth] = p[..] else {
                    return Err(format!("--filter {}: want NAME:KIND:IDS:TRUTH", v));
                };
                a.filters.push(FilterSpec {
                    name: name.into(),
                    range: match kind {
                        "range" => true,
                        "list" => false,
                        _ => return Err(format!("--filter {}: kind is range or list", v)),
                    },
                    ids: ids.into(),
                    truth: truth.into(),
                });
            }
            "--ef" => {
                a.ef = val()?
                    .split(',')
                    .map(|s| num(s.to_string()))
                    .collect::<Result<_, _>>()?
            }
            "--metric" => {
                a.metric = match val()?.as_str() {
                    "l2" => Metric::L2,
                    "ip" => Metric::Ip,
                    "cosine" => Metric::Cosine,
                    m => return Err(format!("unknown metric {}", m)),
                }
            }
            "-h" | "--help" => {
                println!("usage: vexfs-engine-bench --base B.npy --queries Q.npy --truth T.npy [--nq N] [--exact-nq N] [-k K] [--ef LIST] [--m M] [--ef-construction EF] [--batch N] [--metric l2|ip|cosine] [--label NAME]");
                std::process::exit(0);
            }
            o => return Err(format!("unknown option {}", o)),
        }
    }
    if a.base.is_empty() || a.queries.is_empty() || a.truth.is_empty() {
        return Err("--base, --queries and --truth are required".into());
    }
    Ok(a)
}

/// Percentile with linear interpolation between ranks (NumPy's default).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let x = p / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (x.floor() as usize, x.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (x - lo as f64)
}

/// One search series: every query once, one at a time.
struct Series {
    ef: usize,
    exact: bool,
    queries: usize,
    p50_us: f64,
    p99_us: f64,
    qps: f64,
    recall: f64,
    distances_per_query: f64,
    rescored_per_query: f64,
    passed_per_query: f64,
    ns_per_distance: f64,
}

#[allow(clippy::too_many_arguments)]
fn run_series(
    e: &Engine,
    queries: &[u32],
    truth: &[i64],
    tcols: usize,
    nq: usize,
    k: usize,
    ef: usize,
    exact: bool,
    filter: Option<&engine::IdFilter>,
) -> Result<Series, String> {
    let dim = e.dim();
    let (mut ids, mut dists) = (vec![0u64; k], vec![0u32; k]);
    let mut lat = Vec::with_capacity(nq);
    let mut hits = 0usize;
    let (d0, r0, p0) = (engine::distances(), engine::rescored(), engine::passed());
    let start = Instant::now();
    for q in 0..nq {
        let t = Instant::now();
        let n = e
            .search(
                &queries[q * dim..(q + 1) * dim],
                k,
                ef,
                exact,
                filter,
                &mut ids,
                &mut dists,
            )
            .map_err(|err| format!("search: {:?}", err))?;
        lat.push(t.elapsed());
        let want = &truth[q * tcols..q * tcols + k.min(tcols)];
        hits += ids[..n]
            .iter()
            .filter(|&&id| want.contains(&(id as i64)))
            .count();
    }
    let total = start.elapsed();
    let dist = engine::distances() - d0;
    let resc = engine::rescored() - r0;
    let mut us: Vec<f64> = lat
        .iter()
        .map(|d: &Duration| d.as_secs_f64() * 1e6)
        .collect();
    us.sort_by(f64::total_cmp);
    Ok(Series {
        ef,
        exact,
        queries: nq,
        p50_us: percentile(&us, 50.0),
        p99_us: percentile(&us, 99.0),
        qps: nq as f64 / total.as_secs_f64(),
        recall: hits as f64 / (nq * k) as f64,
        distances_per_query: dist as f64 / nq as f64,
        rescored_per_query: resc as f64 / nq as f64,
        passed_per_query: (engine::passed() - p0) as f64 / nq as f64,
        ns_per_distance: if dist > 0 {
            total.as_secs_f64() * 1e9 / dist as f64
        } else {
            f64::NAN
        },
    })
}

/// Whether this binary was built with overflow checks: a child process adds
/// one to `i32::MAX` (and aborts if they are on).
fn overflow_checks() -> Option<bool> {
    let exe = std::env::current_exe().ok()?;
    let st = std::process::Command::new(exe)
        .arg("--probe-overflow")
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    Some(!st.success())
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{}", v)
    } else {
        "null".into()
    }
}

fn run() -> Result<(), String> {
    let a = parse_args()?;
    let (base, queries, truth) = (
        load_npy(&a.base)?,
        load_npy(&a.queries)?,
        load_npy(&a.truth)?,
    );
    let (Data::F32(bv), Data::F32(qv), Data::Int(tv)) = (&base.data, &queries.data, &truth.data)
    else {
        return Err("base and queries must be float32, truth integer".into());
    };
    if base.cols != queries.cols || truth.rows < queries.rows.min(a.nq) || truth.cols < 1 {
        return Err("shapes do not match".into());
    }
    let (n, dim) = (base.rows, base.cols);
    let nq = a.nq.min(queries.rows);
    let k = a.k.min(truth.cols);
    let profile = env!("VEXFS_ENGINE_PROFILE");
    eprintln!(
        "[vexfs-engine-bench] {}: {} x {} base vectors, {} queries, profile {}",
        a.label.as_deref().unwrap_or("engine"),
        n,
        dim,
        nq,
        profile
    );

    // Build: VEXFS_IOC_INSERT batches.
    let mut e = Engine::new(dim, a.metric, a.m, a.ef_construction);
    let ids: Vec<u64> = (0..n as u64).collect();
    let d0 = engine::distances();
    let start = Instant::now();
    for (ic, vc) in ids.chunks(a.batch).zip(bv.chunks(a.batch * dim)) {
        e.insert(ic, vc)
            .map_err(|err| format!("insert: {:?}", err))?;
    }
    let build = start.elapsed().as_secs_f64();
    let build_dist = engine::distances() - d0;
    eprintln!("[vexfs-engine-bench] built in {:.2} s", build);
    // Build-index: the index as the kernel loads it after mount (exactly sized arrays; the
    // batches above leave the growth slack of their vectors).
    let inserted_bytes = e.bytes();
    drop(e);
    let start = Instant::now();
    let e = Engine::load(dim, a.metric, a.m, a.ef_construction, &ids, bv)
        .map_err(|err| format!("load: {:?}", err))?;
    let rebuild = start.elapsed().as_secs_f64();
    eprintln!(
        "[vexfs-engine-bench] rebuilt (build-index) in {:.2} s",
        rebuild
    );
    // Restore: the index as the kernel loads it from its saved copy after mount.
    let saved = e.save().map_err(|err| format!("save: {:?}", err))?;
    let start = Instant::now();
    let r = Engine::restore(
        dim,
        a.metric,
        a.m,
        a.ef_construction,
        &ids,
        bv,
        &saved,
        e.entry(),
    )
    .map_err(|err| format!("restore: {:?}", err))?;
    let restore = start.elapsed().as_secs_f64();
    drop(r);
    eprintln!(
        "[vexfs-engine-bench] restored from {} saved bytes in {:.3} s",
        saved.len(),
        restore
    );

    let mut series = Vec::new();
    for &ef in &a.ef {
        series.push(run_series(
            &e,
            qv,
            tv,
            truth.cols,
            nq,
            k,
            ef.max(k),
            false,
            None,
        )?);
        if let Some(s) = series.last_mut() {
            s.ef = ef;
        }
    }
    let enq = a.exact_nq.min(nq);
    if enq > 0 {
        series.push(run_series(&e, qv, tv, truth.cols, enq, k, 0, true, None)?);
        if let Some(s) = series.last_mut() {
            s.ef = 0;
        }
    }

    // Filtered series.
    let mut filtered = Vec::new();
    for fs in &a.filters {
        let (
            Data::Int(ids),
            Npy {
                data: Data::Int(ft),
                cols: fcols,
                rows: frows,
            },
        ) = (load_npy(&fs.ids)?.data, load_npy(&fs.truth)?)
        else {
            return Err(format!("{}: ids and truth must be integer", fs.name));
        };
        if frows < nq || fcols < 1 {
            return Err(format!("{}: truth too short", fs.name));
        }
        let ids: Vec<u64> = ids.iter().map(|&x| x as u64).collect();
        let f = if fs.range {
            let (&lo, &hi) = (ids.first().ok_or("empty range")?, ids.last().ok_or("")?);
            e.filter(lo, hi, None)
        } else {
            e.filter(0, u64::MAX, Some(&ids))
        }
        .map_err(|err| format!("filter: {:?}", err))?;
        let s = run_series(
            &e,
            qv,
            &ft,
            fcols,
            nq,
            k,
            a.filter_ef.max(k),
            false,
            Some(&f),
        )?;
        filtered.push((fs.name.clone(), s));
    }

    let mut o = String::new();
    let name = format!("VexFS engine (user space, {})", profile);
    let _ = write!(
        o,
        "{{\"engine\": {}, \"n\": {}, \"dim\": {}",
        json_str(&name),
        n,
        dim
    );
    if let Some(l) = &a.label {
        let _ = write!(o, ", \"label\": {}", json_str(l));
    }
    let _ = write!(
        o,
        ", \"insert\": {{\"seconds\": {}, \"vectors_per_second\": {}, \"batch\": {}, \
         \"distances_per_vector\": {}}}",
        json_num(build),
        json_num(n as f64 / build),
        a.batch,
        if engine::COUNTS_DISTANCES {
            json_num(build_dist as f64 / n as f64)
        } else {
            "null".into()
        }
    );
    let _ = write!(
        o,
        ", \"build_index_seconds\": {}, \"index_bytes\": {}, \"index_bytes_per_vector\": {}, \
         \"inserted_index_bytes_per_vector\": {}, \"file_bytes_per_vector\": {}, \
         \"restore_seconds\": {}, \"saved_bytes\": {}",
        json_num(rebuild),
        e.bytes(),
        json_num(e.bytes() as f64 / n as f64),
        json_num(inserted_bytes as f64 / n as f64),
        json_num(e.file_bytes() as f64 / n as f64),
        json_num(restore),
        saved.len()
    );
    o.push_str(", \"search\": [");
    for (i, s) in series.iter().enumerate() {
        let counted = engine::COUNTS_DISTANCES;
        let _ = write!(
            o,
            "{}{{\"ef\": {}, \"exact\": {}, \"queries\": {}, \"p50_us\": {}, \"p99_us\": {}, \
             \"qps\": {}, \"recall\": {}, \"distances_per_query\": {}, \"rescored_per_query\": {}, \
             \"passed_per_query\": {}, \"ns_per_distance\": {}}}",
            if i > 0 { ", " } else { "" },
            s.ef,
            s.exact,
            s.queries,
            json_num(s.p50_us),
            json_num(s.p99_us),
            json_num(s.qps),
            json_num(s.recall),
            if counted {
                json_num(s.distances_per_query)
            } else {
                "null".into()
            },
            if counted {
                json_num(s.rescored_per_query)
            } else {
                "null".into()
            },
            if counted {
                json_num(s.passed_per_query)
            } else {
                "null".into()
            },
            if counted {
                json_num(s.ns_per_distance)
            } else {
                "null".into()
            },
        );
    }
    o.push(']');
    o.push_str(", \"filtered\": [");
    for (i, (name, s)) in filtered.iter().enumerate() {
        let _ = write!(
            o,
            "{}{{\"name\": {}, \"ef\": {}, \"queries\": {}, \"p50_us\": {}, \"p99_us\": {}, \
             \"recall\": {}, \"distances_per_query\": {}}}",
            if i > 0 { ", " } else { "" },
            json_str(name),
            a.filter_ef,
            s.queries,
            json_num(s.p50_us),
            json_num(s.p99_us),
            json_num(s.recall),
            json_num(s.distances_per_query)
        );
    }
    o.push(']');
    let _ = write!(
        o,
        ", \"params\": {{\"m\": {}, \"ef_construction\": {}, \"k\": {}, \"metric\": {}}}",
        a.m,
        a.ef_construction,
        k,
        json_str(&format!("{:?}", a.metric).to_lowercase())
    );
    let _ = write!(
        o,
        ", \"profile\": {{\"name\": {}, \"where\": \"native user-space build\", \
         \"opt_level\": {}, \"debug_assertions\": {}, \"overflow_checks\": {}, \
         \"rustflags\": {}, \"rustc\": {}, \"counts_distances\": {}}}}}",
        json_str(profile),
        json_str(env!("VEXFS_ENGINE_OPT_LEVEL")),
        cfg!(debug_assertions),
        overflow_checks().map_or("null".into(), |b| b.to_string()),
        json_str(env!("VEXFS_ENGINE_RUSTFLAGS")),
        json_str(env!("VEXFS_ENGINE_RUSTC")),
        engine::COUNTS_DISTANCES
    );
    println!("{}", o);
    Ok(())
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--probe-overflow") {
        let x = std::hint::black_box(i32::MAX);
        std::hint::black_box(x + 1);
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vexfs-engine-bench: {}", e);
            ExitCode::FAILURE
        }
    }
}
