// SPDX-License-Identifier: GPL-2.0

//! `vexctl`: manages and searches VexFS vector collections.
//!
//! ```text
//! vexctl create PATH --dim N [--type f32|i8] [--metric l2|ip|cosine] [--m M] [--ef-construction N]
//! vexctl insert PATH FILE [--ids-from N] [--batch N] [--upsert] [--quiet]
//! vexctl search PATH --query Q [-k K] [--ef N] [--exact] [--id-range LO:HI] [--ids LIST|@FILE]
//! vexctl delete PATH ID...
//! vexctl get PATH ID...
//! vexctl stats PATH
//! vexctl build-index PATH [--compact]
//! vexctl bench PATH [--base FILE] [--queries FILE] [--truth FILE] ...
//! ```
//!
//! Every command also takes `--json` to print one JSON object instead of
//! text. Vector files are `.npy`, `.fvecs` or `.bvecs` (see [`vecfile`]).

// User space may use floating point freely; the workspace denies it for the
// on-disk format module shared with the kernel, which has no FPU access.
#![allow(clippy::float_arithmetic)]

pub mod bench;
pub mod clock;
pub mod json;
pub mod progress;
pub mod sys;
pub mod uapi;
pub mod vecfile;

use std::{
    ffi::OsString,
    fmt,
    path::{
        Path,
        PathBuf, //
    },
    str::FromStr,
    time::Instant,
};

use json::Json;
use sys::{
    Collection,
    IdFilter,
    VecData,
    VecDataMut, //
};
use uapi::*;
use vecfile::Matrix;

/// Usage text of `vexctl`.
pub const USAGE: &str = "\
usage: vexctl COMMAND [ARGS] [--json]

  create PATH --dim N [--type f32|i8] [--metric l2|ip|cosine] [--m M]
         [--ef-construction N]       turn an empty file into a collection
  insert PATH FILE [--ids-from N] [--batch N] [--upsert] [--quiet] [--sync]
                                     insert the vectors of FILE (.npy, .fvecs,
                                     .bvecs) with ids N, N+1, ... (default 0);
                                     --upsert replaces ids already present;
                                     --sync: fsync (saving the index), timed
  search PATH --query Q [-k K] [--ef N] [--exact]
         [--id-range LO:HI] [--ids ID,ID,...|@FILE]
                                     the K (default 10) nearest neighbours of Q:
                                     FILE[:ROW] (a row of a vector file, or
                                     --row ROW) or an inline list 0.1,0.2,...;
                                     only ids in LO..=HI and/or in the list
                                     (FILE: one id per line)
  delete PATH ID... [--sync]         delete vectors by id
  get PATH ID...                     print vectors by id, as inserted
  stats PATH                         show the collection's state
  build-index PATH [--compact]       (re)build the HNSW index
  bench PATH [--base FILE] [--ids-from N] [--batch N] [--build-index]
        [--queries FILE] [--nq N] [--truth FILE.ivecs|.npy] [-k K]
        [--ef N[,N...]] [--exact [--exact-nq N]] [--label TEXT]
                                     time inserts and searches, recall@K
";

/// A failure of a command.
#[derive(Debug)]
pub enum Error {
    /// Bad command line: print the usage.
    Usage(String),
    /// The command failed.
    Fail(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) | Error::Fail(m) => f.write_str(m),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Fail(e.to_string())
    }
}

impl From<String> for Error {
    fn from(e: String) -> Self {
        Error::Fail(e)
    }
}

/// Result of a command.
pub type Result<T> = std::result::Result<T, Error>;

fn usage<T>(m: impl Into<String>) -> Result<T> {
    Err(Error::Usage(m.into()))
}

/// A parsed command line: positional arguments and options.
#[derive(Debug, Default)]
pub struct Args {
    /// Positional arguments.
    pub pos: Vec<String>,
    opts: Vec<(String, Option<String>)>,
}

impl Args {
    /// Parses `args` with the options that take a value (`values`) and the
    /// flags (`flags`) of a command. `--opt=value` is accepted too; `--`
    /// ends the options.
    pub fn parse(args: &[String], values: &[&str], flags: &[&str]) -> Result<Self> {
        let mut a = Args::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            if arg == "--" {
                a.pos.extend(it.by_ref().cloned());
                break;
            }
            if !arg.starts_with('-') || arg.len() == 1 {
                a.pos.push(arg.clone());
                continue;
            }
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
                _ => (arg.as_str(), None),
            };
            if values.contains(&name) {
                let v = match inline {
                    Some(v) => v,
                    None => match it.next() {
                        Some(v) => v.clone(),
                        None => return usage(format!("option {} needs a value", name)),
                    },
                };
                a.opts.push((name.to_string(), Some(v)));
            } else if flags.contains(&name) && inline.is_none() {
                a.opts.push((name.to_string(), None));
            } else {
                return usage(format!("unknown option {}", arg));
            }
        }
        Ok(a)
    }

    /// The last value of option `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Whether flag `name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.opts.iter().any(|(n, _)| n == name)
    }

    /// The value of option `name` as a number.
    pub fn num<T: FromStr>(&self, name: &str) -> Result<Option<T>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.parse() {
                Ok(n) => Ok(Some(n)),
                Err(_) => usage(format!("bad value '{}' for {}", v, name)),
            },
        }
    }
}

/// Runs `vexctl` with the given arguments; returns the exit status.
pub fn run(args: &[OsString]) -> i32 {
    let args: Option<Vec<String>> = args.iter().map(|a| a.to_str().map(String::from)).collect();
    let r = match args {
        Some(a) => main(&a),
        None => usage("arguments must be valid UTF-8"),
    };
    match r {
        Ok(()) => 0,
        Err(Error::Usage(m)) => {
            eprintln!("vexctl: {}\n\n{}", m, USAGE);
            2
        }
        Err(Error::Fail(m)) => {
            eprintln!("vexctl: {}", m);
            1
        }
    }
}

fn main(args: &[String]) -> Result<()> {
    let Some((cmd, rest)) = args.split_first() else {
        return usage("no command");
    };
    match cmd.as_str() {
        "-h" | "--help" | "help" => {
            print!("{}", USAGE);
            Ok(())
        }
        "--version" => {
            println!("vexctl {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        "create" => cmd_create(rest),
        "insert" => cmd_insert(rest),
        "search" => cmd_search(rest),
        "delete" => cmd_delete(rest),
        "get" => cmd_get(rest),
        "stats" => cmd_stats(rest),
        "build-index" => cmd_build_index(rest),
        "bench" => bench::cmd_bench(rest),
        c => usage(format!("unknown command '{}'", c)),
    }
}

/// The single positional PATH argument (and `n - 1` more).
fn path_arg(a: &Args, n: usize, what: &str) -> Result<PathBuf> {
    if a.pos.len() != n {
        return usage(format!("expected {}", what));
    }
    Ok(PathBuf::from(&a.pos[0]))
}

fn open(path: &Path, write: bool) -> Result<Collection> {
    Collection::open(path, write).map_err(|e| Error::Fail(format!("{}: {}", path.display(), e)))
}

fn ctx<T>(path: &Path, r: std::io::Result<T>) -> Result<T> {
    r.map_err(|e| Error::Fail(format!("{}: {}", path.display(), e)))
}

/// Parses a metric name.
pub fn parse_metric(s: &str) -> Option<u32> {
    match s {
        "l2" => Some(METRIC_L2),
        "ip" => Some(METRIC_IP),
        "cosine" | "cos" => Some(METRIC_COSINE),
        _ => None,
    }
}

/// Parses an element type name.
pub fn parse_elem_type(s: &str) -> Option<u32> {
    match s {
        "f32" => Some(ELEM_F32),
        "i8" => Some(ELEM_I8),
        _ => None,
    }
}

/// The parameters of `vexctl create`.
pub fn create_params(a: &Args) -> Result<CollectionParams> {
    let dim: u32 = match a.num("--dim")? {
        Some(d) if (1..=MAX_DIM).contains(&d) => d,
        Some(_) => return usage(format!("--dim must be 1..{}", MAX_DIM)),
        None => return usage("create needs --dim"),
    };
    let elem_type = match a.get("--type") {
        None => ELEM_F32,
        Some(t) => match parse_elem_type(t) {
            Some(t) => t,
            None => return usage(format!("unknown type '{}' (f32 or i8)", t)),
        },
    };
    let metric = match a.get("--metric") {
        None => METRIC_L2,
        Some(m) => match parse_metric(m) {
            Some(m) => m,
            None => return usage(format!("unknown metric '{}' (l2, ip or cosine)", m)),
        },
    };
    Ok(CollectionParams {
        version: UAPI_VERSION,
        dim,
        elem_type,
        metric,
        hnsw_m: a.num("--m")?.unwrap_or(0),
        hnsw_ef_construction: a.num("--ef-construction")?.unwrap_or(0),
        ..Default::default()
    })
}

fn params_json(p: &CollectionParams) -> Json {
    Json::obj()
        .set("dim", p.dim)
        .set("type", elem_type_name(p.elem_type))
        .set("metric", metric_name(p.metric))
        .set("hnsw_m", p.hnsw_m)
        .set("hnsw_ef_construction", p.hnsw_ef_construction)
}

/// The JSON object of `vexctl stats`.
pub fn stats_json(s: &Stats) -> Json {
    let per = |b: u64| {
        if s.count == 0 {
            Json::Null
        } else {
            #[allow(clippy::cast_precision_loss)]
            Json::Num(b as f64 / s.count as f64)
        }
    };
    #[allow(clippy::cast_precision_loss)]
    let load_s = Json::Num(s.load_nanoseconds as f64 / 1e9);
    Json::obj()
        .set("params", params_json(&s.params))
        .set("count", s.count)
        .set("deleted", s.deleted)
        .set("file_bytes", s.file_bytes)
        .set("index_bytes", s.index_bytes)
        .set("index_state", index_state_name(s.index_state))
        .set("saved_bytes", s.saved_bytes)
        .set("index_restored", s.index_flags & INDEX_RESTORED != 0)
        .set("index_saved", s.index_flags & INDEX_SAVED != 0)
        .set("load_seconds", load_s)
        .set("file_bytes_per_vector", per(s.file_bytes))
        .set("index_bytes_per_vector", per(s.index_bytes))
        .set("mount_index_bytes", s.mount_index_bytes)
}

/// `1.5 MiB`-style sizes.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    #[allow(clippy::cast_precision_loss)]
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{} B", b)
    } else {
        format!("{:.1} {}", v, UNITS[u])
    }
}

/// The text of `vexctl stats`.
pub fn stats_text(path: &str, s: &Stats) -> String {
    let p = &s.params;
    let per = |b: u64| {
        if s.count == 0 {
            String::new()
        } else {
            #[allow(clippy::cast_precision_loss)]
            let v = b as f64 / s.count as f64;
            format!(" ({:.0} bytes/vector)", v)
        }
    };
    let dflt = |v: u32| {
        if v == 0 {
            "default".to_string()
        } else {
            v.to_string()
        }
    };
    format!(
        "collection {}\n  dimension        {}\n  element type     {}\n  metric           {}\n  \
         HNSW M           {}\n  ef_construction  {}\n  vectors          {}\n  deleted          {}\n  \
         file size        {}{}\n  index            {}, {}{}\n  saved index      {}\n  \
         all indexes      {} in memory on this file system\n",
        path,
        p.dim,
        elem_type_name(p.elem_type),
        metric_name(p.metric),
        dflt(p.hnsw_m),
        dflt(p.hnsw_ef_construction),
        s.count,
        s.deleted,
        human_bytes(s.file_bytes),
        per(s.file_bytes),
        index_state_name(s.index_state),
        human_bytes(s.index_bytes),
        per(s.index_bytes),
        saved_text(s),
        human_bytes(s.mount_index_bytes),
    )
}

/// The `saved index` line of `vexctl stats`: the on-disk copy, and how the index was loaded.
fn saved_text(s: &Stats) -> String {
    let mut t = if s.saved_bytes == 0 {
        "none".to_string()
    } else if s.index_flags & INDEX_SAVED != 0 {
        format!("{}, up to date", human_bytes(s.saved_bytes))
    } else {
        format!("{}, behind the collection", human_bytes(s.saved_bytes))
    };
    if s.index_state == INDEX_READY {
        let how = if s.index_flags & INDEX_RESTORED != 0 {
            "restored"
        } else {
            "built"
        };
        #[allow(clippy::cast_precision_loss)]
        let ms = s.load_nanoseconds as f64 / 1e6;
        t.push_str(&format!("; loaded ({how}) in {ms:.1} ms"));
    }
    t
}

fn cmd_create(args: &[String]) -> Result<()> {
    let a = Args::parse(
        args,
        &["--dim", "--type", "--metric", "--m", "--ef-construction"],
        &["--json"],
    )?;
    let path = path_arg(&a, 1, "create PATH --dim N")?;
    let params = create_params(&a)?;
    let c = ctx(&path, Collection::open_new(&path))?;
    ctx(&path, c.create(&params))?;
    let s = c.stats().unwrap_or(Stats {
        params,
        ..Default::default()
    });
    if a.flag("--json") {
        println!("{}", stats_json(&s));
    } else {
        let p = &s.params;
        println!(
            "created {}: dimension {}, {}, {}, M {}, ef_construction {}",
            path.display(),
            p.dim,
            elem_type_name(p.elem_type),
            metric_name(p.metric),
            if p.hnsw_m == 0 {
                "default".to_string()
            } else {
                p.hnsw_m.to_string()
            },
            if p.hnsw_ef_construction == 0 {
                "default".to_string()
            } else {
                p.hnsw_ef_construction.to_string()
            },
        );
    }
    Ok(())
}

/// Elements of rows `start..end` of `m`, converted to the collection's type.
pub enum Converted {
    /// Binary32 bit patterns.
    F32(Vec<u32>),
    /// Signed bytes.
    I8(Vec<i8>),
}

impl Converted {
    /// Converts rows `start..end` of `m` for a collection of `elem_type`.
    pub fn new(m: &Matrix, elem_type: u32, start: usize, end: usize) -> Result<Self> {
        match elem_type {
            ELEM_F32 => Ok(Converted::F32(m.f32_bits(start, end)?)),
            ELEM_I8 => Ok(Converted::I8(m.i8s(start, end)?)),
            t => Err(Error::Fail(format!("unsupported element type {}", t))),
        }
    }

    /// The data for [`Collection`].
    pub fn data(&self) -> VecData<'_> {
        match self {
            Converted::F32(v) => VecData::F32(v),
            Converted::I8(v) => VecData::I8(v),
        }
    }
}

/// Loads a vector file whose dimension must be `dim`.
pub fn load_vectors(file: &str, dim: u32) -> Result<Matrix> {
    let m = vecfile::load(Path::new(file))?;
    if u32::try_from(m.dim).ok() != Some(dim) {
        return Err(Error::Fail(format!(
            "{}: vectors have {} elements, the collection {}",
            file, m.dim, dim
        )));
    }
    if m.rows == 0 {
        return Err(Error::Fail(format!("{}: no vectors", file)));
    }
    Ok(m)
}

/// Outcome of inserting a file.
pub struct Inserted {
    /// Vectors inserted.
    pub count: usize,
    /// Seconds taken by the ioctls.
    pub seconds: f64,
}

/// Inserts every row of `m` with ids `first_id..`, `batch` at a time; with `upsert`, the
/// vectors of ids already present are replaced.
pub fn insert_matrix(
    c: &Collection,
    st: &Stats,
    m: &Matrix,
    first_id: u64,
    batch: usize,
    quiet: bool,
    upsert: bool,
) -> Result<Inserted> {
    let flags = if upsert { INSERT_UPSERT } else { 0 };
    let rows = u64::try_from(m.rows).map_err(|_| Error::Fail("too many vectors".into()))?;
    match first_id.checked_add(rows - 1) {
        Some(last) if last <= ID_MAX => {}
        _ => return Err(Error::Fail("ids would exceed the largest valid id".into())),
    }
    let mut progress = progress::Progress::new("insert", rows, quiet);
    let mut seconds = 0.0;
    let mut done = 0;
    while done < m.rows {
        let end = (done + batch).min(m.rows);
        let data = Converted::new(m, st.params.elem_type, done, end)?;
        let ids: Vec<u64> = (done..end).map(|i| first_id + i as u64).collect();
        let t = Instant::now();
        if let Err(e) = c.insert(&ids, m.dim, data.data(), flags) {
            progress.finish(done as u64);
            return Err(Error::Fail(format!(
                "{} (vectors {}..{}; {} inserted before)",
                e,
                done,
                end - 1,
                done
            )));
        }
        seconds += t.elapsed().as_secs_f64();
        done = end;
        progress.update(done as u64);
    }
    progress.finish(done as u64);
    Ok(Inserted {
        count: done,
        seconds,
    })
}

fn cmd_insert(args: &[String]) -> Result<()> {
    let a = Args::parse(
        args,
        &["--ids-from", "--batch"],
        &["--json", "--quiet", "-q", "--upsert", "--sync"],
    )?;
    let path = path_arg(&a, 2, "insert PATH FILE")?;
    let first: u64 = a.num("--ids-from")?.unwrap_or(0);
    let batch: u32 = a.num("--batch")?.unwrap_or(1024);
    if batch == 0 || batch > MAX_BATCH {
        return usage(format!("--batch must be 1..{}", MAX_BATCH));
    }
    let c = open(&path, true)?;
    let st = ctx(&path, c.stats())?;
    let m = load_vectors(&a.pos[1], st.params.dim)?;
    let quiet = a.flag("--quiet") || a.flag("-q");
    let upsert = a.flag("--upsert");
    let r = insert_matrix(&c, &st, &m, first, batch as usize, quiet, upsert)?;
    let synced = sync_if(&a, &path, &c)?;
    let last = first + r.count as u64 - 1;
    #[allow(clippy::cast_precision_loss)]
    let rate = if r.seconds > 0.0 {
        r.count as f64 / r.seconds
    } else {
        0.0
    };
    if a.flag("--json") {
        let j = Json::obj()
            .set("inserted", r.count)
            .set("first_id", first)
            .set("last_id", last)
            .set("seconds", r.seconds)
            .set("vectors_per_second", rate);
        println!("{}", with_sync(j, synced));
    } else {
        println!(
            "inserted {} vectors (ids {}..{}) in {:.3} s, {:.0} vectors/s{}",
            r.count,
            first,
            last,
            r.seconds,
            rate,
            sync_text(synced)
        );
    }
    Ok(())
}

/// With `--sync`, makes `c` durable (`fsync(2)`, which saves its index) and returns how long
/// that took, in seconds.
fn sync_if(a: &Args, path: &Path, c: &Collection) -> Result<Option<f64>> {
    if !a.flag("--sync") {
        return Ok(None);
    }
    let t = Instant::now();
    ctx(path, c.sync())?;
    Ok(Some(t.elapsed().as_secs_f64()))
}

fn with_sync(j: Json, synced: Option<f64>) -> Json {
    match synced {
        Some(s) => j.set("sync_seconds", s),
        None => j,
    }
}

fn sync_text(synced: Option<f64>) -> String {
    synced.map_or(String::new(), |s| format!(", synced in {:.3} s", s))
}

/// A query vector from `--query SPEC` (and `--row`).
pub fn parse_query(spec: &str, row: Option<usize>) -> Result<Vec<f32>> {
    let looks_inline = spec.contains(',') || spec.parse::<f32>().is_ok();
    if looks_inline && !Path::new(spec).exists() {
        if row.is_some() {
            return usage("--row applies to a query file");
        }
        return Ok(vecfile::parse_inline(spec)?);
    }
    let (file, row) = match (spec.rsplit_once(':'), row) {
        (Some((f, r)), None) if !Path::new(spec).exists() && r.parse::<usize>().is_ok() => {
            (f, r.parse::<usize>().unwrap_or(0))
        }
        (_, r) => (spec, r.unwrap_or(0)),
    };
    let m = vecfile::load(Path::new(file))?;
    if row >= m.rows {
        return Err(Error::Fail(format!(
            "{}: no row {} ({} vectors)",
            file, row, m.rows
        )));
    }
    Ok(m.row_f32(row))
}

fn cmd_search(args: &[String]) -> Result<()> {
    let a = Args::parse(
        args,
        &[
            "--query",
            "-q",
            "--row",
            "-k",
            "--ef",
            "--id-range",
            "--ids",
        ],
        &["--exact", "--json"],
    )?;
    let path = path_arg(&a, 1, "search PATH --query Q")?;
    let filter = parse_filter(a.get("--id-range"), a.get("--ids"))?;
    let k: u32 = a.num("-k")?.unwrap_or(10);
    if k == 0 || k > MAX_K {
        return usage(format!("-k must be 1..{}", MAX_K));
    }
    let ef: u32 = a.num("--ef")?.unwrap_or(0);
    let exact = a.flag("--exact");
    let Some(spec) = a.get("--query").or(a.get("-q")) else {
        return usage("search needs --query");
    };
    let q = parse_query(spec, a.num("--row")?)?;
    let c = open(&path, false)?;
    let st = ctx(&path, c.stats())?;
    if u32::try_from(q.len()).ok() != Some(st.params.dim) {
        return Err(Error::Fail(format!(
            "the query has {} elements, the collection {}",
            q.len(),
            st.params.dim
        )));
    }
    let qm = Matrix::from_f32(q.len(), q);
    let qc = Converted::new(&qm, st.params.elem_type, 0, 1)?;
    let t = Instant::now();
    let hits = ctx(
        &path,
        c.search_filtered(qc.data(), k, ef, exact, true, filter.as_ref()),
    )?;
    let secs = t.elapsed().as_secs_f64();
    // What the kernel did: how many vectors it could return, and whether it looked at each.
    let (admitted, scanned, distances) = hits.stats.map_or((None, exact, None), |s| {
        (
            Some(s.admitted),
            s.flags & STATS_SCANNED != 0,
            Some(s.distances),
        )
    });
    if a.flag("--json") {
        let results: Vec<Json> = hits
            .ids
            .iter()
            .zip(&hits.distances)
            .map(|(&id, &d)| Json::obj().set("id", id).set("distance", d))
            .collect();
        let mut j = Json::obj()
            .set("count", hits.ids.len())
            .set("exact", exact)
            .set("scanned", scanned)
            .set("seconds", secs);
        if let (Some(a), Some(d)) = (admitted, distances) {
            j = j.set("admitted", a).set("distances", d);
        }
        let j = j.set("results", results);
        println!("{}", j);
    } else {
        println!("rank                    id  distance");
        for (i, (id, d)) in hits.ids.iter().zip(&hits.distances).enumerate() {
            println!("{:>4}  {:>20}  {}", i + 1, id, d);
        }
        let how = match (exact, scanned) {
            (true, _) => "exact",
            (false, true) => "exact: the filter admits few enough vectors to scan them",
            (false, false) => "index",
        };
        let of = admitted.map_or(String::new(), |a| format!(" of {a} admitted"));
        println!(
            "{} results{} in {:.3} ms ({})",
            hits.ids.len(),
            of,
            secs * 1e3,
            how
        );
        let note = clock::coarse_note(clock::clocksource().as_deref());
        if !note.is_empty() {
            println!("{}", note);
        }
    }
    Ok(())
}

/// The filter of `--id-range LO:HI` and `--ids ID,ID,...|@FILE` (one id per line), if any.
fn parse_filter(range: Option<&str>, ids: Option<&str>) -> Result<Option<IdFilter>> {
    let id = |s: &str| match s.trim().parse::<u64>() {
        Ok(id) if id <= ID_MAX => Ok(id),
        _ => usage(format!("bad id '{}'", s.trim())),
    };
    let range = match range {
        None => None,
        Some(r) => {
            let Some((lo, hi)) = r.split_once(':') else {
                return usage(format!("--id-range wants LO:HI, not '{}'", r));
            };
            let (lo, hi) = (id(lo)?, id(hi)?);
            if lo > hi {
                return usage(format!("--id-range {}: LO is above HI", r));
            }
            Some((lo, hi))
        }
    };
    let ids = match ids {
        None => None,
        Some(spec) => {
            let text = match spec.strip_prefix('@') {
                Some(file) => std::fs::read_to_string(file)
                    .map_err(|e| Error::Fail(format!("{}: {}", file, e)))?,
                None => spec.replace(',', "\n"),
            };
            let list: Vec<u64> = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(id)
                .collect::<Result<_>>()?;
            if list.is_empty() || list.len() > MAX_FILTER_IDS as usize {
                return usage(format!("--ids wants 1 to {} ids", MAX_FILTER_IDS));
            }
            Some(list)
        }
    };
    Ok((range.is_some() || ids.is_some()).then_some(IdFilter { range, ids }))
}

/// Vector ids from the command line, each at most `ID_MAX`.
fn parse_ids(args: &[String]) -> Result<Vec<u64>> {
    args.iter()
        .map(|s| match s.parse::<u64>() {
            Ok(id) if id <= ID_MAX => Ok(id),
            _ => usage(format!("bad id '{}'", s)),
        })
        .collect()
}

fn cmd_delete(args: &[String]) -> Result<()> {
    let a = Args::parse(args, &[], &["--json", "--sync"])?;
    if a.pos.len() < 2 {
        return usage("expected delete PATH ID...");
    }
    let path = PathBuf::from(&a.pos[0]);
    let ids = parse_ids(&a.pos[1..])?;
    let c = open(&path, true)?;
    let mut deleted = 0u64;
    for chunk in ids.chunks(MAX_BATCH as usize) {
        deleted += u64::from(ctx(&path, c.delete(chunk))?);
    }
    let synced = sync_if(&a, &path, &c)?;
    if a.flag("--json") {
        let j = Json::obj()
            .set("requested", ids.len())
            .set("deleted", deleted);
        println!("{}", with_sync(j, synced));
    } else {
        println!(
            "deleted {} of {} ids{}",
            deleted,
            ids.len(),
            sync_text(synced)
        );
    }
    Ok(())
}

fn cmd_get(args: &[String]) -> Result<()> {
    let a = Args::parse(args, &[], &["--json"])?;
    if a.pos.len() < 2 {
        return usage("expected get PATH ID...");
    }
    let path = PathBuf::from(&a.pos[0]);
    let ids = parse_ids(&a.pos[1..])?;
    let c = open(&path, false)?;
    let st = ctx(&path, c.stats())?;
    let dim = st.params.dim as usize;
    let rows: Vec<Vec<Json>> = if st.params.elem_type == ELEM_F32 {
        let mut v = vec![0u32; ids.len() * dim];
        for (ic, vc) in ids
            .chunks(MAX_BATCH as usize)
            .zip(v.chunks_mut(MAX_BATCH as usize * dim))
        {
            ctx(&path, c.get(ic, VecDataMut::F32(vc)))?;
        }
        v.chunks(dim.max(1))
            .map(|r| r.iter().map(|&b| Json::from(f32::from_bits(b))).collect())
            .collect()
    } else {
        let mut v = vec![0i8; ids.len() * dim];
        for (ic, vc) in ids
            .chunks(MAX_BATCH as usize)
            .zip(v.chunks_mut(MAX_BATCH as usize * dim))
        {
            ctx(&path, c.get(ic, VecDataMut::I8(vc)))?;
        }
        v.chunks(dim.max(1))
            .map(|r| r.iter().map(|&x| Json::Num(f64::from(x))).collect())
            .collect()
    };
    if a.flag("--json") {
        let vectors: Vec<Json> = ids
            .iter()
            .zip(rows)
            .map(|(&id, r)| Json::obj().set("id", id).set("vector", r))
            .collect();
        println!("{}", Json::obj().set("vectors", vectors));
    } else {
        for (id, r) in ids.iter().zip(rows) {
            let elems: Vec<String> = r.iter().map(|x| x.to_string()).collect();
            println!("{} {}", id, elems.join(","));
        }
    }
    Ok(())
}

fn cmd_stats(args: &[String]) -> Result<()> {
    let a = Args::parse(args, &[], &["--json"])?;
    let path = path_arg(&a, 1, "stats PATH")?;
    let c = open(&path, false)?;
    let s = ctx(&path, c.stats())?;
    if a.flag("--json") {
        println!("{}", stats_json(&s));
    } else {
        print!("{}", stats_text(&a.pos[0], &s));
    }
    Ok(())
}

fn cmd_build_index(args: &[String]) -> Result<()> {
    let a = Args::parse(args, &[], &["--compact", "--json"])?;
    let path = path_arg(&a, 1, "build-index PATH")?;
    let c = open(&path, true)?;
    let t = Instant::now();
    ctx(&path, c.build_index(a.flag("--compact")))?;
    let secs = t.elapsed().as_secs_f64();
    let s = ctx(&path, c.stats())?;
    if a.flag("--json") {
        println!(
            "{}",
            Json::obj()
                .set("seconds", secs)
                .set("stats", stats_json(&s))
        );
    } else {
        println!("index built in {:.3} s", secs);
        print!("{}", stats_text(&a.pos[0], &s));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_options() {
        let a = Args::parse(
            &strs(&["p", "--dim", "50", "--metric=cosine", "--json", "--", "--x"]),
            &["--dim", "--metric"],
            &["--json"],
        )
        .unwrap();
        assert_eq!(a.pos, strs(&["p", "--x"]));
        assert_eq!(a.num::<u32>("--dim").unwrap(), Some(50));
        assert_eq!(a.get("--metric"), Some("cosine"));
        assert!(a.flag("--json"));
        assert!(!a.flag("--exact"));
        assert!(Args::parse(&strs(&["--bogus"]), &[], &[]).is_err());
        assert!(Args::parse(&strs(&["--dim"]), &["--dim"], &[]).is_err());
        assert!(Args::parse(&strs(&["--json=1"]), &[], &["--json"]).is_err());
        let a = Args::parse(
            &strs(&["-k", "5", "--query", "-0.5,1"]),
            &["-k", "--query"],
            &[],
        )
        .unwrap();
        assert_eq!(a.get("--query"), Some("-0.5,1"));
        assert!(a.num::<u32>("--query").is_err());
    }

    #[test]
    fn create_parameters() {
        let a = Args::parse(
            &strs(&[
                "p",
                "--dim",
                "50",
                "--metric",
                "cosine",
                "--m",
                "16",
                "--ef-construction",
                "200",
            ]),
            &["--dim", "--type", "--metric", "--m", "--ef-construction"],
            &[],
        )
        .unwrap();
        let p = create_params(&a).unwrap();
        assert_eq!(
            p,
            CollectionParams {
                version: 1,
                dim: 50,
                elem_type: ELEM_F32,
                metric: METRIC_COSINE,
                hnsw_m: 16,
                hnsw_ef_construction: 200,
                ..Default::default()
            }
        );
        let opts = ["--dim", "--type", "--metric"];
        let p = |v: &[&str]| create_params(&Args::parse(&strs(v), &opts, &[]).unwrap());
        assert_eq!(
            p(&["--dim", "8", "--type", "i8"]).unwrap().elem_type,
            ELEM_I8
        );
        assert_eq!(p(&["--dim", "8"]).unwrap().metric, METRIC_L2);
        assert!(p(&[]).is_err());
        assert!(p(&["--dim", "0"]).is_err());
        assert!(p(&["--dim", "4097"]).is_err());
        assert!(p(&["--dim", "8", "--type", "f16"]).is_err());
        assert!(p(&["--dim", "8", "--metric", "hamming"]).is_err());
    }

    #[test]
    fn stats_output() {
        let s = Stats {
            version: 1,
            index_state: INDEX_READY,
            params: CollectionParams {
                dim: 50,
                elem_type: ELEM_F32,
                metric: METRIC_COSINE,
                hnsw_m: 16,
                ..Default::default()
            },
            count: 1000,
            deleted: 2,
            file_bytes: 204800,
            index_bytes: 150000,
            ..Default::default()
        };
        let t = stats_text("/mnt/c", &s);
        assert!(t.contains("dimension        50\n"), "{}", t);
        assert!(t.contains("metric           cosine\n"));
        assert!(t.contains("ef_construction  default\n"));
        assert!(
            t.contains("file size        200.0 KiB (205 bytes/vector)\n"),
            "{}",
            t
        );
        assert!(
            t.contains("index            ready, 146.5 KiB (150 bytes/vector)\n"),
            "{}",
            t
        );
        let j = stats_json(&s).to_string();
        assert!(
            j.starts_with(
                r#"{"params": {"dim": 50, "type": "f32", "metric": "cosine", "hnsw_m": 16"#
            ),
            "{}",
            j
        );
        assert!(j.contains(r#""count": 1000, "deleted": 2"#));
        assert!(j.contains(r#""index_bytes_per_vector": 150"#));
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }

    #[test]
    fn query_specs() {
        assert_eq!(parse_query("1,2.5,-3", None).unwrap(), vec![1.0, 2.5, -3.0]);
        assert_eq!(parse_query("7", None).unwrap(), vec![7.0]);
        assert!(parse_query("1,2", Some(3)).is_err());
        let dir = std::env::temp_dir().join(format!("vexctl-q-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("q.fvecs");
        std::fs::write(&p, vecfile::write::fvecs(&[&[1.0, 2.0], &[3.0, 4.0]])).unwrap();
        let ps = p.to_str().unwrap();
        assert_eq!(parse_query(ps, None).unwrap(), vec![1.0, 2.0]);
        assert_eq!(
            parse_query(&format!("{}:1", ps), None).unwrap(),
            vec![3.0, 4.0]
        );
        assert_eq!(parse_query(ps, Some(1)).unwrap(), vec![3.0, 4.0]);
        assert!(parse_query(&format!("{}:2", ps), None).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn conversion_to_collection_type() {
        let m = Matrix::from_f32(2, vec![1.0, -2.0, 0.5, 3.0]);
        match Converted::new(&m, ELEM_F32, 0, 2).unwrap() {
            Converted::F32(v) => assert_eq!(
                v,
                vec![
                    1.0f32.to_bits(),
                    (-2.0f32).to_bits(),
                    0.5f32.to_bits(),
                    3.0f32.to_bits()
                ]
            ),
            Converted::I8(_) => panic!(),
        }
        match Converted::new(&m, ELEM_I8, 0, 1).unwrap() {
            Converted::I8(v) => assert_eq!(v, vec![1, -2]),
            Converted::F32(_) => panic!(),
        }
        assert!(Converted::new(&m, ELEM_I8, 1, 2).is_err());
        assert!(Converted::new(&m, 9, 0, 1).is_err());
    }

    #[test]
    fn filters() {
        assert_eq!(parse_filter(None, None).unwrap(), None);
        let f = parse_filter(Some("3:9"), Some("4,5, 6")).unwrap().unwrap();
        assert_eq!(f.range, Some((3, 9)));
        assert_eq!(f.ids, Some(vec![4, 5, 6]));
        assert!(parse_filter(Some("9:3"), None).is_err());
        assert!(parse_filter(Some("3"), None).is_err());
        assert!(parse_filter(None, Some("1,x")).is_err());
        assert!(parse_filter(None, Some(",")).is_err());
        assert!(parse_filter(None, Some("@/nonexistent/ids")).is_err());
    }

    #[test]
    fn usage_errors_exit_2() {
        let r = |v: &[&str]| run(&v.iter().map(OsString::from).collect::<Vec<_>>());
        assert_eq!(r(&[]), 2);
        assert_eq!(r(&["frobnicate"]), 2);
        assert_eq!(r(&["create", "/nonexistent/x"]), 2);
        assert_eq!(r(&["search", "x", "-k", "0", "--query", "1"]), 2);
        assert_eq!(r(&["delete", "x", "abc"]), 2);
        assert_eq!(r(&["--help"]), 0);
        // Not a VexFS file: ENOTTY from the ioctl, or ENOENT.
        assert_eq!(r(&["stats", "/nonexistent/x"]), 1);
    }
}
