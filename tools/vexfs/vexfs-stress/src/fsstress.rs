// SPDX-License-Identifier: GPL-2.0

//! `vexfs-stress fsstress DIR`: concurrent processes doing random file system operations,
//! each on a subtree `DIR/pN` it owns and checks against an exact model ([`crate::model`]),
//! and all of them on `DIR/shared`, where only the errors are checked.

use crate::common::{
    self,
    errno,
    errno_name,
    ioerr,
    Counts,
    Mapping,
    OpLog,
    Rng, //
};
use crate::model::{
    Expect,
    Id,
    Kind,
    Model,
    Path as MPath,
    ROOT, //
};
use std::collections::{
    BTreeSet,
    HashMap, //
};
use std::fs::{
    self,
    File,
    OpenOptions, //
};
use std::io::{
    self,
    Write, //
};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{
    DirBuilderExt,
    FileExt,
    MetadataExt,
    OpenOptionsExt,
    PermissionsExt, //
};
use std::path::{
    Path,
    PathBuf, //
};

/// The settings of a run.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// The directory the run works in.
    pub(crate) dir: PathBuf,
    /// Processes.
    pub(crate) procs: usize,
    /// Operations per process.
    pub(crate) ops: u64,
    /// The seed.
    pub(crate) seed: u64,
    /// Operations between two verifications of the whole owned subtree.
    pub(crate) verify_every: u64,
    /// Watchdog: seconds a worker may run (0: no limit).
    pub(crate) timeout: u32,
}

/// What a worker reports.
#[derive(Debug, Default)]
pub(crate) struct Report {
    verified: u64,
    tolerated: Counts,
    shared: Counts,
}

/// A file descriptor the worker keeps open.
#[derive(Debug)]
struct Open {
    file: File,
    id: Id,
    append: bool,
}

/// Model nodes to inode numbers and back, to check hard links.
type InoMap = (HashMap<Id, u64>, HashMap<u64, Id>);

/// The most descriptors a worker keeps open.
const MAX_OPEN: usize = 6;
/// Names in the tree above which the worker removes rather than creates.
const MAX_NAMES: usize = 80;
/// File data above which the worker shrinks rather than writes.
const MAX_BYTES: usize = 24 << 20;
/// Where the double-indirect blocks of VexFS start (12 direct blocks, 1024 pointers a block).
const DOUBLE_INDIRECT: u64 = (12 + 1024) * 4096;

const FILE_MODES: &[u32] = &[0o644, 0o600, 0o666, 0o640, 0o755, 0o700, 0o604, 0o660];
const DIR_MODES: &[u32] = &[0o755, 0o700, 0o775, 0o711, 0o750];

/// One worker: its subtree, the model of it and its descriptors.
struct Worker {
    idx: usize,
    base: PathBuf,
    shared: PathBuf,
    rng: Rng,
    model: Model,
    fds: Vec<Open>,
    log: OpLog,
    op: u64,
    names: u64,
    strict_dir_nlink: bool,
    report: Report,
}

/// A file to do I/O on: a kept descriptor or one opened for this operation.
enum Target {
    Fd(usize),
    Temp(File, Id),
}

/// A random length: mostly small, some up to ~200 KiB.
fn sample_len(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=39 => rng.range(1, 512) as usize,
        40..=74 => rng.range(1, 16 << 10) as usize,
        75..=96 => rng.range(16 << 10, 200 << 10) as usize,
        _ => rng.range(200 << 10, 256 << 10) as usize,
    }
}

/// A random offset for a write into a file of `size` bytes: mostly inside or just past it,
/// some around the end of the direct blocks and some in the double-indirect range.
fn sample_off(rng: &mut Rng, size: u64) -> u64 {
    match rng.below(100) {
        0..=3 => DOUBLE_INDIRECT - 8192 + rng.below(1 << 20),
        4..=13 => 12 * 4096 - 4096 + rng.below(8192),
        _ => rng.below(size.max(64 << 10) + 1),
    }
}

impl Worker {
    fn path(&self, p: &[String]) -> PathBuf {
        let mut b = self.base.clone();
        for n in p {
            b.push(n);
        }
        b
    }

    fn show(p: &[String]) -> String {
        if p.is_empty() {
            ".".to_string()
        } else {
            p.iter()
                .map(|n| {
                    if n.len() > 24 {
                        format!("{}..({})", &n[..12], n.len())
                    } else {
                        n.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join("/")
        }
    }

    fn fail<T>(&self, msg: String) -> Result<T, String> {
        Err(msg)
    }

    /// Checks the outcome of a namespace call against the prediction. Returns whether the
    /// model must apply the change.
    fn outcome(&mut self, what: &str, expect: Expect, res: io::Result<()>) -> Result<bool, String> {
        match (expect, res) {
            (Expect::Ok, Ok(())) => {
                self.log.note(" = ok");
                Ok(true)
            }
            (Expect::Noop, Ok(())) => {
                self.log.note(" = ok (no-op)");
                Ok(false)
            }
            (Expect::Err(want), Err(e)) if want.contains(&errno(&e)) => {
                self.log.note(&format!(" = {}", errno_name(errno(&e))));
                Ok(false)
            }
            (_, Err(e)) if common::tolerated(errno(&e)) => {
                self.log
                    .note(&format!(" = {} (tolerated)", errno_name(errno(&e))));
                *self.report.tolerated.entry(errno(&e)).or_default() += 1;
                Ok(false)
            }
            (Expect::Err(want), Ok(())) => self.fail(format!(
                "{what}: succeeded, expected {}",
                want.iter()
                    .map(|&e| errno_name(e))
                    .collect::<Vec<_>>()
                    .join("/")
            )),
            (_, Err(e)) => self.fail(format!(
                "{what}: {}",
                ioerr(
                    &format!(
                        "failed, expected {}",
                        match expect {
                            Expect::Err(w) => w
                                .iter()
                                .map(|&e| errno_name(e))
                                .collect::<Vec<_>>()
                                .join("/"),
                            _ => "success".to_string(),
                        }
                    ),
                    &e
                )
            )),
        }
    }

    /// A name for a new entry in directory `dir`: mostly fresh, sometimes an existing one.
    fn new_name(&mut self, dir: Id, prefix: &str) -> String {
        let existing: Vec<String> = self.model.entries_of(dir).keys().cloned().collect();
        if !existing.is_empty() && self.rng.chance(1, 5) {
            return self.rng.pick(&existing).cloned().unwrap_or_default();
        }
        self.names += 1;
        let mut n = format!("{prefix}{}", self.names);
        if self.rng.chance(1, 20) {
            n.push('-');
            let len = self.rng.range(150, 250) as usize;
            while n.len() < len {
                n.push(char::from(b'a' + (self.rng.below(26) as u8)));
            }
        }
        n
    }

    fn pick_dir(&mut self) -> (MPath, Id) {
        let d = self.model.dirs();
        let i = self.rng.index(d.len());
        d[i].clone()
    }

    fn pick_entry(&mut self, f: impl Fn(&Kind) -> bool) -> Option<(MPath, Id)> {
        let v: Vec<(MPath, Id)> = self
            .model
            .paths()
            .into_iter()
            .filter(|(_, id)| f(&self.model.node(*id).kind))
            .collect();
        self.rng.pick(&v).cloned()
    }

    fn pick_file_path(&mut self) -> Option<(MPath, Id)> {
        self.pick_entry(|k| matches!(k, Kind::File(_)))
    }

    /// A file to do I/O on: a kept descriptor (half of the time, if any) or a file opened
    /// read-write by a path now.
    fn pick_target(&mut self) -> Result<Option<(Target, String)>, String> {
        if !self.fds.is_empty() && self.rng.chance(1, 2) {
            let i = self.rng.index(self.fds.len());
            return Ok(Some((Target::Fd(i), format!("fd{i}"))));
        }
        let Some((p, id)) = self.pick_file_path() else {
            return Ok(None);
        };
        let path = self.path(&p);
        match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => Ok(Some((Target::Temp(f, id), Self::show(&p)))),
            Err(e) => Err(ioerr(&format!("open {}", Self::show(&p)), &e)),
        }
    }

    fn target_file<'a>(&'a self, t: &'a Target) -> (&'a File, Id, bool) {
        match t {
            Target::Fd(i) => (&self.fds[*i].file, self.fds[*i].id, self.fds[*i].append),
            Target::Temp(f, id) => (f, *id, false),
        }
    }

    fn size_of(&self, id: Id) -> u64 {
        self.model.data(id).len() as u64
    }

    /// Re-reads file `id` after a write failed part way (`ENOSPC`), so that the model holds
    /// what the file holds.
    fn resync(&mut self, f: &File, id: Id) -> Result<(), String> {
        let data = common::read_all(f).map_err(|e| ioerr("re-read after ENOSPC", &e))?;
        self.log.note(&format!(" [resynced: {} bytes]", data.len()));
        *self.model.data_mut(id) = data;
        Ok(())
    }

    fn op_create(&mut self) -> Result<(), String> {
        let (dp, d) = self.pick_dir();
        let name = self.new_name(d, "f");
        let mut p = dp.clone();
        p.push(name);
        let mode = *self.rng.pick(FILE_MODES).unwrap_or(&0o644);
        let keep = self.rng.chance(1, 2);
        self.log.push(
            self.op,
            format!(
                "creat {} {mode:o}{}",
                Self::show(&p),
                if keep { " (kept)" } else { "" }
            ),
        );
        let expect = self.model.predict_new(&p);
        let res = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(self.path(&p));
        let (res, file) = match res {
            Ok(f) => (Ok(()), Some(f)),
            Err(e) => (Err(e), None),
        };
        if self.outcome("creat", expect, res)? {
            let id = self.model.apply_create(&p, mode);
            if let (true, Some(f)) = (keep, file) {
                self.keep_fd(f, id, false);
            }
        }
        Ok(())
    }

    fn keep_fd(&mut self, file: File, id: Id, append: bool) {
        if self.fds.len() >= MAX_OPEN {
            let o = self.fds.remove(0);
            self.model.close(o.id);
        }
        self.model.open(id);
        self.fds.push(Open { file, id, append });
    }

    fn op_open(&mut self) -> Result<(), String> {
        let Some((p, id)) = self.pick_file_path() else {
            return Ok(());
        };
        let append = self.rng.chance(1, 3);
        self.log.push(
            self.op,
            format!(
                "open {}{}",
                Self::show(&p),
                if append { " O_APPEND" } else { "" }
            ),
        );
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .append(append)
            .open(self.path(&p))
            .map_err(|e| ioerr("open", &e))?;
        self.keep_fd(f, id, append);
        Ok(())
    }

    fn op_close(&mut self) -> Result<(), String> {
        if self.fds.is_empty() {
            return Ok(());
        }
        let i = self.rng.index(self.fds.len());
        self.log.push(self.op, format!("close fd{i}"));
        let o = self.fds.remove(i);
        drop(o.file);
        self.model.close(o.id);
        Ok(())
    }

    /// Writes `data` at `off` (or at the end, for an O_APPEND descriptor) to the target.
    fn write_target(&mut self, t: &Target, off: u64, data: &[u8]) -> Result<(), String> {
        let (f, id, append) = self.target_file(t);
        let f = f.try_clone().map_err(|e| ioerr("dup", &e))?;
        let start = if append { self.size_of(id) } else { off };
        let mut done = 0;
        while done < data.len() {
            let r = if append {
                let mut w: &File = &f;
                w.write(&data[done..])
            } else {
                f.write_at(&data[done..], off + done as u64)
            };
            match r {
                Ok(0) => return Err("write returned 0".to_string()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if common::tolerated(errno(&e)) => {
                    *self.report.tolerated.entry(errno(&e)).or_default() += 1;
                    self.log.note(&format!(
                        " = {} after {done} bytes (tolerated)",
                        errno_name(errno(&e))
                    ));
                    return self.resync(&f, id);
                }
                Err(e) => return Err(ioerr("write", &e)),
            }
        }
        self.model.write(id, start, data);
        Ok(())
    }

    fn op_write(&mut self, how: u32) -> Result<(), String> {
        if self.model.bytes() > MAX_BYTES {
            return self.op_truncate(true);
        }
        let Some((t, desc)) = self.pick_target()? else {
            return Ok(());
        };
        let (_, id, append) = self.target_file(&t);
        let size = self.size_of(id);
        let len = sample_len(&mut self.rng);
        let off = match how {
            // Past the end of the file: a hole.
            1 => {
                let span = if self.rng.chance(1, 10) {
                    2 << 20
                } else {
                    64 << 10
                };
                size + 1 + self.rng.below(span)
            }
            _ => sample_off(&mut self.rng, size),
        };
        let seed = self.rng.next();
        let data = Rng::new(seed).bytes(len);
        self.log.push(
            self.op,
            format!(
                "{} {desc} off {} len {len} (size {size})",
                if append { "append" } else { "pwrite" },
                if append { size } else { off }
            ),
        );
        self.write_target(&t, off, &data)
    }

    /// An O_APPEND write through a descriptor opened for it.
    fn op_append(&mut self) -> Result<(), String> {
        let Some((p, id)) = self.pick_file_path() else {
            return Ok(());
        };
        let len = sample_len(&mut self.rng).min(32 << 10);
        let seed = self.rng.next();
        let data = Rng::new(seed).bytes(len);
        self.log.push(
            self.op,
            format!(
                "append(O_APPEND) {} len {len} (size {})",
                Self::show(&p),
                self.size_of(id)
            ),
        );
        let f = OpenOptions::new()
            .read(true)
            .append(true)
            .open(self.path(&p))
            .map_err(|e| ioerr("open O_APPEND", &e))?;
        self.model.open(id);
        let t = Target::Fd(self.fds.len());
        self.fds.push(Open {
            file: f,
            id,
            append: true,
        });
        let r = self.write_target(&t, 0, &data);
        if let Some(o) = self.fds.pop() {
            self.model.close(o.id);
        }
        r
    }

    fn op_read(&mut self) -> Result<(), String> {
        let Some((t, desc)) = self.pick_target()? else {
            return Ok(());
        };
        let (_, id, _) = self.target_file(&t);
        let size = self.size_of(id);
        let off = self.rng.below(size + 4097);
        let len = sample_len(&mut self.rng);
        self.log.push(
            self.op,
            format!("read {desc} off {off} len {len} (size {size})"),
        );
        let (f, _, _) = self.target_file(&t);
        let mut buf = vec![0u8; len];
        let n = common::read_full_at(f, off, &mut buf).map_err(|e| ioerr("read", &e))?;
        let data = self.model.data(id);
        let lo = (off as usize).min(data.len());
        let hi = (off as usize + len).min(data.len());
        common::compare(&format!("read of {desc}"), off, &data[lo..hi], &buf[..n])?;
        self.report.verified += 1;
        Ok(())
    }

    fn op_truncate(&mut self, shrink: bool) -> Result<(), String> {
        let Some((t, desc)) = self.pick_target()? else {
            return Ok(());
        };
        let (f, id, _) = self.target_file(&t);
        let f = f.try_clone().map_err(|e| ioerr("dup", &e))?;
        let size = self.size_of(id);
        let len = if shrink || self.rng.chance(1, 2) {
            self.rng.below(size + 1)
        } else if self.rng.chance(1, 8) {
            DOUBLE_INDIRECT + self.rng.below(1 << 20)
        } else {
            size + self.rng.below(128 << 10)
        };
        self.log
            .push(self.op, format!("truncate {desc} {size} -> {len}"));
        match f.set_len(len) {
            Ok(()) => {
                self.model.truncate(id, len);
                Ok(())
            }
            Err(e) if common::tolerated(errno(&e)) => {
                *self.report.tolerated.entry(errno(&e)).or_default() += 1;
                self.resync(&f, id)
            }
            Err(e) => Err(ioerr("truncate", &e)),
        }
    }

    fn op_fsync(&mut self) -> Result<(), String> {
        let Some((t, desc)) = self.pick_target()? else {
            return Ok(());
        };
        let f = self
            .target_file(&t)
            .0
            .try_clone()
            .map_err(|e| ioerr("dup", &e))?;
        let kind = self.rng.below(3);
        self.log.push(
            self.op,
            format!(
                "{} {desc}",
                ["fsync", "fdatasync", "fdatasync+evict"][kind as usize]
            ),
        );
        let r = if kind == 0 {
            f.sync_all()
        } else {
            f.sync_data()
        };
        match r {
            Ok(()) => {}
            Err(e) if common::tolerated(errno(&e)) => {
                *self.report.tolerated.entry(errno(&e)).or_default() += 1;
            }
            Err(e) => return Err(ioerr("fsync", &e)),
        }
        if kind == 2 {
            common::fadvise_dontneed(&f);
        }
        Ok(())
    }

    fn op_mkdir(&mut self) -> Result<(), String> {
        let (dp, d) = self.pick_dir();
        if dp.len() >= 4 {
            return Ok(());
        }
        let name = self.new_name(d, "d");
        let mut p = dp;
        p.push(name);
        let mode = *self.rng.pick(DIR_MODES).unwrap_or(&0o755);
        self.log
            .push(self.op, format!("mkdir {} {mode:o}", Self::show(&p)));
        let expect = self.model.predict_new(&p);
        let res = fs::DirBuilder::new().mode(mode).create(self.path(&p));
        if self.outcome("mkdir", expect, res)? {
            self.model.apply_mkdir(&p, mode);
        }
        Ok(())
    }

    fn op_rmdir(&mut self) -> Result<(), String> {
        let Some((p, _)) = self.pick_entry(|k| matches!(k, Kind::Dir(_))) else {
            return Ok(());
        };
        self.log.push(self.op, format!("rmdir {}", Self::show(&p)));
        let expect = self.model.predict_rmdir(&p);
        let res = fs::remove_dir(self.path(&p));
        if self.outcome("rmdir", expect, res)? {
            self.model.apply_rmdir(&p);
        }
        Ok(())
    }

    fn op_rename(&mut self) -> Result<(), String> {
        let Some((from, _)) = self.pick_entry(|_| true) else {
            return Ok(());
        };
        let (dp, d) = self.pick_dir();
        let mut to = dp;
        let name = if self.rng.chance(1, 10) {
            from.last().cloned().unwrap_or_default()
        } else {
            self.new_name(d, "r")
        };
        to.push(name);
        self.log.push(
            self.op,
            format!("rename {} -> {}", Self::show(&from), Self::show(&to)),
        );
        let expect = self.model.predict_rename(&from, &to);
        let res = fs::rename(self.path(&from), self.path(&to));
        if self.outcome("rename", expect, res)? {
            self.model.apply_rename(&from, &to);
        }
        Ok(())
    }

    fn op_link(&mut self) -> Result<(), String> {
        let Some((from, id)) = self.pick_entry(|k| !matches!(k, Kind::Dir(_))) else {
            return Ok(());
        };
        if self.model.node(id).names >= 8 {
            return Ok(());
        }
        let (dp, d) = self.pick_dir();
        let mut to = dp;
        to.push(self.new_name(d, "h"));
        self.log.push(
            self.op,
            format!("link {} -> {}", Self::show(&from), Self::show(&to)),
        );
        let expect = self.model.predict_new(&to);
        let res = fs::hard_link(self.path(&from), self.path(&to));
        if self.outcome("link", expect, res)? {
            self.model.apply_link(id, &to);
        }
        Ok(())
    }

    fn op_unlink(&mut self) -> Result<(), String> {
        let Some((p, _)) = self.pick_entry(|k| !matches!(k, Kind::Dir(_))) else {
            return Ok(());
        };
        self.log.push(self.op, format!("unlink {}", Self::show(&p)));
        let res = fs::remove_file(self.path(&p));
        if self.outcome("unlink", Expect::Ok, res)? {
            self.model.apply_unlink(&p);
        }
        Ok(())
    }

    fn random_target(&mut self) -> String {
        const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789/._-";
        if self.rng.chance(1, 3) {
            if let Some((p, _)) = self.pick_entry(|_| true) {
                return Self::show(&p);
            }
        }
        let len = match self.rng.below(10) {
            0 => self.rng.range(200, 1000),
            1 => self.rng.range(3000, 4000),
            _ => self.rng.range(1, 60),
        };
        (0..len)
            .map(|_| char::from(CHARS[self.rng.index(CHARS.len())]))
            .collect()
    }

    fn op_symlink(&mut self) -> Result<(), String> {
        let (dp, d) = self.pick_dir();
        let mut p = dp;
        p.push(self.new_name(d, "s"));
        let target = self.random_target();
        self.log.push(
            self.op,
            format!("symlink {} -> ({} bytes)", Self::show(&p), target.len()),
        );
        let expect = self.model.predict_new(&p);
        let res = std::os::unix::fs::symlink(&target, self.path(&p));
        if self.outcome("symlink", expect, res)? {
            self.model.apply_symlink(&p, &target);
        }
        Ok(())
    }

    fn op_readlink(&mut self) -> Result<(), String> {
        let Some((p, id)) = self.pick_entry(|k| matches!(k, Kind::Sym(_))) else {
            return Ok(());
        };
        self.log
            .push(self.op, format!("readlink {}", Self::show(&p)));
        self.check_entry(&p, id, None)
    }

    fn op_readdir(&mut self) -> Result<(), String> {
        let (p, d) = self.pick_dir();
        self.log
            .push(self.op, format!("readdir {}", Self::show(&p)));
        self.check_dir(&p, d)
    }

    fn op_stat(&mut self) -> Result<(), String> {
        let Some((p, id)) = self.pick_entry(|_| true) else {
            return Ok(());
        };
        self.log.push(self.op, format!("stat {}", Self::show(&p)));
        self.check_entry(&p, id, None)
    }

    fn op_chmod(&mut self) -> Result<(), String> {
        let Some((p, id)) = self.pick_entry(|k| !matches!(k, Kind::Sym(_))) else {
            return Ok(());
        };
        let mode = if matches!(self.model.node(id).kind, Kind::Dir(_)) {
            *self.rng.pick(DIR_MODES).unwrap_or(&0o755)
        } else {
            *self.rng.pick(FILE_MODES).unwrap_or(&0o644)
        };
        self.log
            .push(self.op, format!("chmod {} {mode:o}", Self::show(&p)));
        fs::set_permissions(self.path(&p), fs::Permissions::from_mode(mode))
            .map_err(|e| ioerr("chmod", &e))?;
        self.model.node_mut(id).mode = mode;
        self.check_entry(&p, id, None)
    }

    fn op_utimes(&mut self) -> Result<(), String> {
        let Some((p, id)) = self.pick_entry(|_| true) else {
            return Ok(());
        };
        let t = |r: &mut Rng| libc::timespec {
            tv_sec: r.below(1 << 33) as libc::time_t,
            tv_nsec: r.below(1_000_000_000) as libc::c_long,
        };
        let times = [t(&mut self.rng), t(&mut self.rng)];
        let is_sym = matches!(self.model.node(id).kind, Kind::Sym(_));
        self.log.push(
            self.op,
            format!(
                "utimensat {} atime {}.{:09} mtime {}.{:09}",
                Self::show(&p),
                times[0].tv_sec,
                times[0].tv_nsec,
                times[1].tv_sec,
                times[1].tv_nsec
            ),
        );
        let c = std::ffi::CString::new(self.path(&p).as_os_str().as_bytes())
            .map_err(|_| "path with NUL".to_string())?;
        let flags = if is_sym { libc::AT_SYMLINK_NOFOLLOW } else { 0 };
        // SAFETY: `c` is a NUL-terminated path and `times` two timespecs, as utimensat(2) wants.
        let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), flags) };
        if r != 0 {
            let e = io::Error::last_os_error();
            if common::tolerated(errno(&e)) {
                return Ok(());
            }
            return Err(ioerr("utimensat", &e));
        }
        let m = fs::symlink_metadata(self.path(&p)).map_err(|e| ioerr("lstat", &e))?;
        let got = (m.atime(), m.atime_nsec(), m.mtime(), m.mtime_nsec());
        let want = (
            times[0].tv_sec,
            times[0].tv_nsec,
            times[1].tv_sec,
            times[1].tv_nsec,
        );
        if got != want {
            return Err(format!("utimensat: stat gives times {got:?}, set {want:?}"));
        }
        Ok(())
    }

    fn op_mmap(&mut self, write: bool) -> Result<(), String> {
        let Some((p, id)) = self.pick_file_path() else {
            return Ok(());
        };
        let size = self.size_of(id);
        if size == 0 {
            return Ok(());
        }
        let page = common::page_size() as u64;
        let off = self.rng.below(size.div_ceil(page)) * page;
        let len = (self.rng.range(1, size - off)).min(256 << 10) as usize;
        let sync = self.rng.chance(1, 2);
        self.log.push(
            self.op,
            format!(
                "mmap {} {} off {off} len {len} (size {size}){}",
                if write { "write" } else { "read" },
                Self::show(&p),
                if write && sync { " msync" } else { "" }
            ),
        );
        let f = OpenOptions::new()
            .read(true)
            .write(write)
            .open(self.path(&p))
            .map_err(|e| ioerr("open", &e))?;
        if common::free_bytes(&f) < len as u64 + common::MMAP_WRITE_MARGIN {
            self.log.note(" [skipped: low on space]");
            return Ok(());
        }
        let mut m = Mapping::file(&f, off, len, write).map_err(|e| ioerr("mmap", &e))?;
        if write {
            let seed = self.rng.next();
            let data = Rng::new(seed).bytes(len);
            m.slice_mut(len).copy_from_slice(&data);
            if sync {
                m.sync().map_err(|e| ioerr("msync", &e))?;
            }
            drop(m);
            self.model.write(id, off, &data);
        } else {
            let d = self.model.data(id);
            let r = common::compare(
                &format!("mmap read of {}", Self::show(&p)),
                off,
                &d[off as usize..off as usize + len],
                m.slice(len),
            );
            r?;
            self.report.verified += 1;
        }
        Ok(())
    }

    /// Checks one entry: type, permissions, size, link count, symlink target; and, given the
    /// map of model nodes to inode numbers, that hard links share an inode and nothing else.
    fn check_entry(&self, p: &[String], id: Id, inos: Option<&mut InoMap>) -> Result<(), String> {
        let path = self.path(p);
        let what = Self::show(p);
        let m = fs::symlink_metadata(&path).map_err(|e| ioerr(&format!("lstat {what}"), &e))?;
        let n = self.model.node(id);
        let ft = m.file_type();
        let (kind_ok, size) = match &n.kind {
            Kind::File(d) => (ft.is_file(), Some(d.len() as u64)),
            Kind::Dir(_) => (ft.is_dir(), None),
            Kind::Sym(t) => (ft.is_symlink(), Some(t.len() as u64)),
        };
        if !kind_ok {
            return Err(format!("{what}: wrong type (mode {:o})", m.mode()));
        }
        if !matches!(n.kind, Kind::Sym(_)) && m.mode() & 0o7777 != n.mode {
            return Err(format!(
                "{what}: mode {:o}, expected {:o}",
                m.mode() & 0o7777,
                n.mode
            ));
        }
        if let Some(s) = size {
            if m.size() != s {
                return Err(format!("{what}: size {}, expected {s}", m.size()));
            }
        }
        let is_dir = matches!(n.kind, Kind::Dir(_));
        if (!is_dir || self.strict_dir_nlink) && m.nlink() != u64::from(self.model.nlink(id)) {
            return Err(format!(
                "{what}: link count {}, expected {}",
                m.nlink(),
                self.model.nlink(id)
            ));
        }
        if let Kind::Sym(t) = &n.kind {
            let got = fs::read_link(&path).map_err(|e| ioerr(&format!("readlink {what}"), &e))?;
            if got.as_os_str().as_bytes() != t.as_bytes() {
                return Err(format!(
                    "{what}: symlink target {} bytes, expected {} bytes ({:?}...)",
                    got.as_os_str().len(),
                    t.len(),
                    &t[..t.len().min(40)]
                ));
            }
        }
        if let Some((by_id, by_ino)) = inos {
            let ino = m.ino();
            if let Some(&i) = by_id.get(&id) {
                if i != ino {
                    return Err(format!("{what}: inode {ino}, but its other names have {i}"));
                }
            }
            if let Some(&other) = by_ino.get(&ino) {
                if other != id {
                    return Err(format!("{what}: inode {ino} is also another file's"));
                }
            }
            by_id.insert(id, ino);
            by_ino.insert(ino, id);
        }
        Ok(())
    }

    /// Checks that directory `p` lists exactly the model's entries.
    fn check_dir(&self, p: &[String], d: Id) -> Result<(), String> {
        let what = Self::show(p);
        let mut got = BTreeSet::new();
        let rd = fs::read_dir(self.path(p)).map_err(|e| ioerr(&format!("opendir {what}"), &e))?;
        for e in rd {
            let e = e.map_err(|e| ioerr(&format!("readdir {what}"), &e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !got.insert(name.clone()) {
                return Err(format!("readdir {what}: {name} listed twice"));
            }
        }
        let want: BTreeSet<String> = self.model.entries_of(d).keys().cloned().collect();
        if got != want {
            let extra: Vec<_> = got.difference(&want).collect();
            let missing: Vec<_> = want.difference(&got).collect();
            return Err(format!(
                "readdir {what}: unexpected {extra:?}, missing {missing:?}"
            ));
        }
        Ok(())
    }

    fn check_content(&self, what: &str, f: &File, id: Id) -> Result<(), String> {
        let want = self.model.data(id);
        let got = common::read_all(f).map_err(|e| ioerr(&format!("read {what}"), &e))?;
        common::compare(&format!("contents of {what}"), 0, want, &got)
    }

    /// Verifies the whole owned subtree and the kept descriptors against the model.
    fn verify(&mut self) -> Result<(), String> {
        self.log.push(self.op, "verify".to_string());
        let mut inos = (HashMap::new(), HashMap::new());
        let rm = fs::symlink_metadata(&self.base).map_err(|e| ioerr("lstat of the root", &e))?;
        if rm.mode() & 0o7777 != self.model.node(ROOT).mode {
            return Err(format!("root: mode {:o}", rm.mode() & 0o7777));
        }
        for (p, d) in self.model.dirs() {
            self.check_dir(&p, d)?;
            for (name, &c) in self.model.entries_of(d) {
                let mut cp = p.clone();
                cp.push(name.clone());
                self.check_entry(&cp, c, Some(&mut inos))?;
                if matches!(self.model.node(c).kind, Kind::File(_)) {
                    let f = File::open(self.path(&cp))
                        .map_err(|e| ioerr(&format!("open {}", Self::show(&cp)), &e))?;
                    self.check_content(&Self::show(&cp), &f, c)?;
                }
            }
        }
        for (i, o) in self.fds.iter().enumerate() {
            let m = o.file.metadata().map_err(|e| ioerr("fstat", &e))?;
            let what = format!("fd{i}");
            if m.size() != self.size_of(o.id) {
                return Err(format!(
                    "{what}: size {}, expected {}",
                    m.size(),
                    self.size_of(o.id)
                ));
            }
            if m.nlink() != u64::from(self.model.nlink(o.id)) {
                return Err(format!(
                    "{what}: link count {}, expected {}",
                    m.nlink(),
                    self.model.nlink(o.id)
                ));
            }
            if let Some(&ino) = inos.0.get(&o.id) {
                if ino != m.ino() {
                    return Err(format!("{what}: inode {}, its name has {ino}", m.ino()));
                }
            }
            self.check_content(&what, &o.file, o.id)?;
        }
        self.log.note(" = ok");
        self.report.verified += 1;
        Ok(())
    }

    /// An operation on the shared directory: only the errors are checked.
    fn op_shared(&mut self) -> Result<(), String> {
        use libc::{
            EEXIST,
            EISDIR,
            EMLINK,
            ENOENT,
            ENOTDIR,
            ENOTEMPTY,
            EPERM, //
        };
        let top = |r: &mut Rng| format!("s{}", r.below(16));
        let sub = |r: &mut Rng| format!("s{}/x{}", r.below(16), r.below(4));
        let name = |r: &mut Rng| if r.chance(1, 3) { sub(r) } else { top(r) };
        let sh = self.shared.clone();
        let k = self.rng.below(10);
        let (what, res, extra): (String, io::Result<()>, &[i32]) = match k {
            0 | 1 => {
                let n = name(&mut self.rng);
                let len = self.rng.range(1, 8192) as usize;
                let data = self.rng.bytes(len);
                let r = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(self.rng.chance(1, 2))
                    .mode(0o644)
                    .open(sh.join(&n))
                    .and_then(|mut f| f.write_all(&data));
                (format!("create+write {n}"), r, &[])
            }
            2 => {
                let n = top(&mut self.rng);
                (format!("mkdir {n}"), fs::create_dir(sh.join(&n)), &[])
            }
            3 | 4 => {
                // Directories only move within the top level, so no move is into itself.
                let (a, b) = if self.rng.chance(1, 2) {
                    (top(&mut self.rng), top(&mut self.rng))
                } else {
                    (sub(&mut self.rng), sub(&mut self.rng))
                };
                (
                    format!("rename {a} {b}"),
                    fs::rename(sh.join(&a), sh.join(&b)),
                    &[],
                )
            }
            5 => {
                let n = name(&mut self.rng);
                (
                    format!("unlink {n}"),
                    fs::remove_file(sh.join(&n)),
                    &[EPERM],
                )
            }
            6 => {
                let n = top(&mut self.rng);
                (format!("rmdir {n}"), fs::remove_dir(sh.join(&n)), &[])
            }
            7 => {
                let (a, b) = (name(&mut self.rng), name(&mut self.rng));
                (
                    format!("link {a} {b}"),
                    fs::hard_link(sh.join(&a), sh.join(&b)),
                    &[EPERM],
                )
            }
            8 => {
                let n = name(&mut self.rng);
                (
                    format!("symlink {n}"),
                    std::os::unix::fs::symlink("../shared-target", sh.join(&n)),
                    &[],
                )
            }
            _ => {
                let n = if self.rng.chance(1, 2) {
                    String::new()
                } else {
                    top(&mut self.rng)
                };
                let r = self.list_shared(&sh.join(&n));
                (format!("readdir+stat shared/{n}"), r, &[])
            }
        };
        self.log.push(self.op, format!("shared: {what}"));
        let e = match res {
            Ok(()) => 0,
            Err(e) => errno(&e),
        };
        self.log.note(&format!(" = {}", errno_name(e)));
        *self.report.shared.entry(e).or_default() += 1;
        if e == 0
            || [ENOENT, EEXIST, ENOTEMPTY, EISDIR, ENOTDIR, EMLINK].contains(&e)
            || extra.contains(&e)
            || common::tolerated(e)
        {
            Ok(())
        } else {
            Err(format!("shared directory: {what}: {}", errno_name(e)))
        }
    }

    /// Lists a directory of the shared area and stats its entries (which may vanish meanwhile).
    fn list_shared(&self, dir: &Path) -> io::Result<()> {
        let mut seen = BTreeSet::new();
        for e in fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name();
            if !seen.insert(name.clone()) {
                return Err(io::Error::from_raw_os_error(libc::EUCLEAN));
            }
            match fs::symlink_metadata(e.path()) {
                Ok(_) => {}
                Err(e) if errno(&e) == libc::ENOENT => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn step(&mut self) -> Result<(), String> {
        let crowded = self.model.paths().len() > MAX_NAMES;
        let k = self.rng.below(100);
        match k {
            0..=6 if crowded => self.op_unlink(),
            0..=6 => self.op_create(),
            7..=9 => self.op_open(),
            10..=12 => self.op_close(),
            13..=25 => self.op_write(0),
            26..=29 => self.op_write(1),
            30..=32 => self.op_append(),
            33..=41 => self.op_read(),
            42..=47 => self.op_truncate(false),
            48..=50 => self.op_fsync(),
            51..=54 if crowded => self.op_rmdir(),
            51..=54 => self.op_mkdir(),
            55..=56 => self.op_rmdir(),
            57..=63 => self.op_rename(),
            64..=66 if crowded => self.op_unlink(),
            64..=66 => self.op_link(),
            67..=71 => self.op_unlink(),
            72..=74 if crowded => self.op_unlink(),
            72..=74 => self.op_symlink(),
            75..=76 => self.op_readlink(),
            77..=78 => self.op_readdir(),
            79..=81 => self.op_stat(),
            82..=83 => self.op_chmod(),
            84..=85 => self.op_utimes(),
            86..=88 => self.op_mmap(false),
            89..=91 => self.op_mmap(true),
            _ => self.op_shared(),
        }
    }
}

/// Detects whether the file system counts subdirectories in a directory's link count.
fn detect_dir_nlink(dir: &Path) -> io::Result<bool> {
    let probe = dir.join(".nlink-probe");
    let _ = fs::remove_dir(probe.join("sub"));
    let _ = fs::remove_dir(&probe);
    fs::create_dir(&probe)?;
    fs::create_dir(probe.join("sub"))?;
    let n = fs::metadata(&probe)?.nlink();
    fs::remove_dir(probe.join("sub"))?;
    fs::remove_dir(&probe)?;
    Ok(n == 3)
}

fn worker(cfg: &Config, idx: usize, strict: bool) -> Result<String, String> {
    common::watchdog(cfg.timeout);
    let base = cfg.dir.join(format!("p{idx}"));
    let mut w = Worker {
        idx,
        base: base.clone(),
        shared: cfg.dir.join("shared"),
        rng: Rng::for_worker(cfg.seed, idx),
        model: Model::new(0o755),
        fds: Vec::new(),
        log: OpLog::new(20),
        op: 0,
        names: 0,
        strict_dir_nlink: strict,
        report: Report::default(),
    };
    let mut res = fs::create_dir(&base)
        .and_then(|()| fs::set_permissions(&base, fs::Permissions::from_mode(0o755)))
        .map_err(|e| ioerr(&format!("mkdir {}", base.display()), &e));
    while res.is_ok() && w.op < cfg.ops {
        w.op += 1;
        res = w.step();
        if res.is_ok() && w.op % cfg.verify_every == 0 {
            res = w.verify();
        }
    }
    if res.is_ok() {
        w.op += 1;
        res = w.verify();
    }
    if res.is_ok() {
        // Close everything, then check again: what the descriptors held is now only in the
        // files.
        while let Some(o) = w.fds.pop() {
            w.model.close(o.id);
        }
        w.op += 1;
        res = w.verify();
    }
    match res {
        Ok(()) => Ok(format!(
            "{}\n{}\n{}",
            w.report.verified,
            common::encode_counts(&w.report.tolerated),
            common::encode_counts(&w.report.shared)
        )),
        Err(e) => {
            let msg = format!(
                "fsstress: FAILED: process {} operation {} (seed {}): {e}\nlast operations of process {}:\n{}",
                w.idx,
                w.op,
                cfg.seed,
                w.idx,
                w.log.dump()
            );
            eprint!("{msg}");
            Err(format!("process {} operation {}: {e}", w.idx, w.op))
        }
    }
}

/// Walks the shared directory after the run: every entry stat-able, every file readable.
fn check_shared(dir: &Path) -> Result<u64, String> {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).map_err(|e| ioerr(&format!("readdir {}", d.display()), &e))? {
            let e = e.map_err(|e| ioerr("readdir", &e))?;
            let p = e.path();
            let m = fs::symlink_metadata(&p)
                .map_err(|e| ioerr(&format!("lstat {}", p.display()), &e))?;
            n += 1;
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() {
                let data = fs::read(&p).map_err(|e| ioerr(&format!("read {}", p.display()), &e))?;
                if data.len() as u64 != m.size() {
                    return Err(format!(
                        "{}: read {} bytes of {}",
                        p.display(),
                        data.len(),
                        m.size()
                    ));
                }
            } else if m.file_type().is_symlink() {
                fs::read_link(&p).map_err(|e| ioerr(&format!("readlink {}", p.display()), &e))?;
            }
        }
    }
    Ok(n)
}

/// Runs fsstress; returns the summary line or what failed.
pub(crate) fn run(cfg: &Config) -> Result<String, String> {
    println!("seed {}", cfg.seed);
    common::clear_umask();
    fs::create_dir_all(&cfg.dir).map_err(|e| ioerr(&format!("mkdir {}", cfg.dir.display()), &e))?;
    for i in 0..cfg.procs {
        let p = cfg.dir.join(format!("p{i}"));
        if p.exists() {
            return Err(format!("{} exists: use an empty directory", p.display()));
        }
    }
    let shared = cfg.dir.join("shared");
    if !shared.exists() {
        fs::create_dir(&shared).map_err(|e| ioerr("mkdir shared", &e))?;
    }
    let strict = detect_dir_nlink(&cfg.dir).map_err(|e| ioerr("link count probe", &e))?;
    let results = common::run_workers(cfg.procs, |i| worker(cfg, i, strict));
    let mut failed = Vec::new();
    let (mut verified, mut tolerated, mut shared_counts) = (0, Counts::new(), Counts::new());
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(s) => {
                let mut lines = s.lines();
                verified += lines
                    .next()
                    .and_then(|l| l.parse::<u64>().ok())
                    .unwrap_or(0);
                common::decode_counts(lines.next().unwrap_or(""), &mut tolerated);
                common::decode_counts(lines.next().unwrap_or(""), &mut shared_counts);
            }
            Err(e) => failed.push(format!("process {i}: {e}")),
        }
    }
    if failed.is_empty() {
        match check_shared(&shared) {
            Ok(n) => println!(
                "fsstress: shared directory: {n} entries left, all readable; calls by result: {}",
                common::format_counts(&shared_counts)
            ),
            Err(e) => failed.push(format!("shared directory after the run: {e}")),
        }
    }
    if !failed.is_empty() {
        return Err(format!(
            "fsstress: FAILED (seed {}):\n  {}",
            cfg.seed,
            failed.join("\n  ")
        ));
    }
    let ntol: u64 = tolerated.values().sum();
    Ok(format!(
        "fsstress: {} procs, {} ops, {verified} verified, {ntol} tolerated errors ({}), seed {}",
        cfg.procs,
        cfg.procs as u64 * cfg.ops,
        common::format_counts(&tolerated),
        cfg.seed
    ))
}
