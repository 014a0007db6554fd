// SPDX-License-Identifier: GPL-2.0

//! Torture testers of VexFS, for the VM tests and longer runs.
//!
//! - `vexfs-stress fsstress DIR [--procs N] [--ops N] [--seed S]`: concurrent processes doing
//!   random file system operations, each on a subtree it owns and checks against an exact
//!   model, and all of them on a shared directory;
//! - `vexfs-stress fsx FILE [--ops N] [--seed S] [--max-size BYTES] [--extents 1]`: random
//!   writes, reads, truncates and memory-mapped I/O on one file against a byte-exact copy
//!   (and its extents, with `--extents 1`; a quarter of the I/O `O_DIRECT`, with
//!   `--direct 1`; `fallocate(2)` calls too, with `--falloc 1`);
//! - `vexfs-stress ioctl-fuzz DIR [--procs N] [--calls N] [--collections N] [--seed S]`:
//!   valid, half-valid and random calls of the vector ioctls, then a check of every
//!   collection against its owner's model;
//! - `vexfs-stress map FILE`: the data ranges (`SEEK_DATA`, `SEEK_HOLE`) and `FIEMAP` extents
//!   of a file, which fsx also checks against its model (and `seek`, `mmap-write`, `falloc`,
//!   small helpers of the extent tests);
//! - `vexfs-stress dio FILE [MIB]`: direct I/O checked against a model and buffered reads,
//!   then direct and buffered throughput;
//! - `vexfs-stress xattr FILE OP ...`: one extended attribute call, and
//!   `vexfs-stress xattr-model FILE [--ops N] [--seed S]`: random ones against a model.
//!
//! Every run prints its seed first (`seed S`); `--seed S` replays it. A failure prints the
//! seed, the process, the operation number and the last operations of that process, and the
//! exit status is 1 (2 for a usage error).

mod common;
mod dio;
mod extents;
mod fsstress;
mod fsx;
mod fuzz;
mod model;
mod xattr;

// The extended attribute block's limits, for the model of `xattr-model`.
#[allow(dead_code)]
#[path = "../../../../fs/vexfs/format.rs"]
mod format;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: vexfs-stress fsstress DIR [--procs N] [--ops N] [--seed S] [--verify-every N] [--timeout SECONDS]
       vexfs-stress fsx FILE [--ops N] [--seed S] [--max-size BYTES] [--max-len BYTES] [--timeout SECONDS] [--extents 0|1] [--direct 0|1] [--falloc 0|1]
       vexfs-stress ioctl-fuzz DIR [--procs N] [--calls N] [--collections N] [--seed S] [--timeout SECONDS]
       vexfs-stress map FILE
       vexfs-stress seek FILE data|hole OFFSET
       vexfs-stress mmap-write FILE OFFSET
       vexfs-stress falloc FILE [append-]MODE OFFSET LEN
       vexfs-stress dio FILE [MIB]
       vexfs-stress xattr FILE [as UID] [nofollow] set NAME VALUE [create|replace] | get|size|small|remove NAME | list | dump
                                        | setacl access|default SPEC | getacl|rmacl access|default | read | write
       vexfs-stress xattr-model FILE [--ops N] [--seed S]";

fn opt(o: &BTreeMap<String, u64>, name: &str, default: u64) -> u64 {
    o.get(name).copied().unwrap_or(default)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let path = PathBuf::from(&args[1]);
    let small = match (args[0].as_str(), args.len()) {
        ("map", 2) => Some(extents::print(&path)),
        ("seek", 4) => Some(extents::seek(&path, &args[2], &args[3])),
        ("mmap-write", 3) => Some(extents::mmap_write(&path, &args[2])),
        ("falloc", 5) => Some(extents::falloc(&path, &args[2], &args[3], &args[4])),
        ("dio", 2) => Some(dio::run(&path, 32)),
        ("dio", 3) => Some(
            args[2]
                .parse()
                .map_err(|_| format!("dio: bad size in MiB {}", args[2]))
                .and_then(|mib| dio::run(&path, mib)),
        ),
        _ => None,
    };
    if let Some(res) = small {
        return report(res);
    }
    if args[0] == "xattr" && args.len() >= 3 {
        return report(xattr::run(&path, &args[2..]));
    }
    let allowed: &[&str] = match args[0].as_str() {
        "fsstress" => &["procs", "ops", "seed", "verify-every", "timeout"],
        "fsx" => &[
            "ops", "seed", "max-size", "max-len", "timeout", "extents", "direct", "falloc",
        ],
        "ioctl-fuzz" => &["procs", "calls", "collections", "seed", "timeout"],
        "xattr-model" => &["ops", "seed"],
        _ => &[],
    };
    if allowed.is_empty() {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let o = match common::parse_opts(&args[2..], allowed) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("vexfs-stress: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let seed = o.get("seed").copied().unwrap_or_else(common::default_seed);
    let timeout = opt(&o, "timeout", 1800) as u32;
    let res = match args[0].as_str() {
        "fsstress" => fsstress::run(&fsstress::Config {
            dir: path,
            procs: opt(&o, "procs", 4).max(1) as usize,
            ops: opt(&o, "ops", 2000),
            seed,
            verify_every: opt(&o, "verify-every", 100).max(1),
            timeout,
        }),
        "fsx" => fsx::run(&fsx::Config {
            file: path,
            ops: opt(&o, "ops", 10000),
            seed,
            max_size: opt(&o, "max-size", 5 << 20).max(4096),
            max_len: opt(&o, "max-len", 256 << 10).max(1),
            timeout,
            extents: opt(&o, "extents", 0) != 0,
            direct: opt(&o, "direct", 0) != 0,
            falloc: opt(&o, "falloc", 0) != 0,
        }),
        "xattr-model" => xattr::model(&path, opt(&o, "ops", 2000), seed),
        _ => fuzz::run(&fuzz::Config {
            dir: path,
            procs: opt(&o, "procs", 3) as usize,
            calls: opt(&o, "calls", 20000),
            collections: opt(&o, "collections", 4) as usize,
            seed,
            timeout,
        }),
    };
    report(res)
}

/// Prints the summary of a run (or what failed) and returns the exit status.
fn report(res: Result<String, String>) -> ExitCode {
    match res {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
