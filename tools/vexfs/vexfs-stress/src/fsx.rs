// SPDX-License-Identifier: GPL-2.0

//! `vexfs-stress fsx FILE`: random writes, reads, truncates and memory-mapped reads and writes
//! (and with `--direct 1` block-aligned `O_DIRECT` ones) of one file, against a byte-exact copy
//! of it in memory (as the classic fsx does). Every read is compared, and the whole file every
//! 50 operations and at the end, with `--extents 1` also its data ranges and extents
//! (`SEEK_DATA`/`SEEK_HOLE`, `FIEMAP`: [`crate::extents::check`]). With `--falloc 1` it also
//! preallocates, punches holes and zeroes ranges with `fallocate(2)`, and (with `--extents 1`)
//! checks that a punched range holds no data and an allocated one no hole.

use crate::common::{
    self,
    errno,
    ioerr,
    Mapping,
    OpLog,
    Rng, //
};
use std::fs::{
    File,
    OpenOptions, //
};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{
    FileExt,
    MetadataExt, //
};
use std::path::PathBuf;

/// The settings of a run.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// The file the run works on (created or truncated).
    pub(crate) file: PathBuf,
    /// Operations.
    pub(crate) ops: u64,
    /// The seed.
    pub(crate) seed: u64,
    /// Largest file size.
    pub(crate) max_size: u64,
    /// Largest length of one write or read.
    pub(crate) max_len: u64,
    /// Watchdog: seconds the run may take (0: no limit).
    pub(crate) timeout: u32,
    /// Whether the full compares check the extents too ([`crate::extents::check`]), which
    /// holds on VexFS but not on every file system (tmpfs has no `FIEMAP`).
    pub(crate) extents: bool,
    /// Whether a quarter of the writes and reads are block-aligned `O_DIRECT` ones, through a
    /// second descriptor (tmpfs refuses `O_DIRECT`).
    pub(crate) direct: bool,
    /// Whether some operations are `fallocate(2)` calls (tmpfs has no `FALLOC_FL_ZERO_RANGE`).
    pub(crate) falloc: bool,
}

/// The block size direct I/O is aligned to.
const DIRECT_BLOCK: u64 = 4096;

/// Operations between two full compares.
const FULL_EVERY: u64 = 50;

struct Fsx {
    cfg: Config,
    rng: Rng,
    file: File,
    model: Vec<u8>,
    log: OpLog,
    op: u64,
    reads: u64,
    enospc: u64,
    /// The `O_DIRECT` descriptor, opened on first use and again after a close and reopen.
    dfile: Option<File>,
    directs: u64,
    fallocs: u64,
}

fn open(path: &PathBuf, truncate: bool) -> Result<File, String> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .open(path)
        .map_err(|e| ioerr(&format!("open {}", path.display()), &e))
}

impl Fsx {
    fn size(&self) -> u64 {
        self.model.len() as u64
    }

    fn len(&mut self) -> u64 {
        match self.rng.below(10) {
            0..=3 => self.rng.range(1, 4096),
            4..=7 => self.rng.range(1, 64 << 10),
            _ => self.rng.range(1, self.cfg.max_len),
        }
    }

    fn op_write(&mut self) -> Result<(), String> {
        let len = self.len();
        let off = if self.rng.chance(1, 4) {
            // Around the end: extending writes and holes.
            self.size().saturating_sub(4096) + self.rng.below(128 << 10)
        } else {
            self.rng.below(self.cfg.max_size)
        };
        let len = len.min(self.cfg.max_size.saturating_sub(off)).max(1);
        let seed = self.rng.next();
        let data = Rng::new(seed).bytes(len as usize);
        self.log.push(
            self.op,
            format!("write off {off:#x} len {len:#x} (size {:#x})", self.size()),
        );
        let mut done = 0usize;
        while done < data.len() {
            match self.file.write_at(&data[done..], off + done as u64) {
                Ok(0) => return Err("write returned 0".to_string()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if common::tolerated(errno(&e)) => {
                    self.enospc += 1;
                    self.log
                        .note(&format!(" = ENOSPC after {done:#x} (re-read)"));
                    self.model = common::read_all(&self.file).map_err(|e| ioerr("re-read", &e))?;
                    return Ok(());
                }
                Err(e) => return Err(ioerr("write", &e)),
            }
        }
        let end = (off + len) as usize;
        if self.model.len() < end {
            self.model.resize(end, 0);
        }
        self.model[off as usize..end].copy_from_slice(&data);
        Ok(())
    }

    fn op_read(&mut self) -> Result<(), String> {
        let size = self.size();
        let off = self.rng.below(size + 4096);
        let len = self.len();
        self.log.push(
            self.op,
            format!("read off {off:#x} len {len:#x} (size {size:#x})"),
        );
        let mut buf = vec![0u8; len as usize];
        let n = common::read_full_at(&self.file, off, &mut buf).map_err(|e| ioerr("read", &e))?;
        let lo = (off as usize).min(self.model.len());
        let hi = ((off + len) as usize).min(self.model.len());
        common::compare("read", off, &self.model[lo..hi], &buf[..n])?;
        self.reads += 1;
        Ok(())
    }

    /// A block-aligned `O_DIRECT` write or read of 1 to 16 blocks (from an aligned buffer).
    fn op_direct(&mut self, write: bool) -> Result<(), String> {
        use std::os::unix::fs::OpenOptionsExt;
        let len = self.rng.range(1, 16) * DIRECT_BLOCK;
        let size = self.size();
        let off = if write {
            self.rng.below(self.cfg.max_size.saturating_sub(len).max(1)) / DIRECT_BLOCK
                * DIRECT_BLOCK
        } else {
            self.rng.below(size + DIRECT_BLOCK) / DIRECT_BLOCK * DIRECT_BLOCK
        };
        let what = if write { "write" } else { "read" };
        self.log.push(
            self.op,
            format!("direct {what} off {off:#x} len {len:#x} (size {size:#x})"),
        );
        if write && common::free_bytes(&self.file) < len + common::MMAP_WRITE_MARGIN {
            self.log.note(" [skipped: low on space]");
            return Ok(());
        }
        if self.dfile.is_none() {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(&self.cfg.file)
                .map_err(|e| ioerr("open O_DIRECT", &e))?;
            self.dfile = Some(f);
        }
        let mut buf = Mapping::anon(len as usize).map_err(|e| ioerr("mmap", &e))?;
        let Some(d) = self.dfile.as_ref() else {
            return Err("no O_DIRECT descriptor".to_string());
        };
        self.directs += 1;
        if write {
            let seed = self.rng.next();
            Rng::new(seed).fill(buf.slice_mut(len as usize));
            match d.write_at(buf.slice(len as usize), off) {
                Ok(n) if n as u64 == len => {}
                Ok(n) => return Err(format!("direct write: {n:#x} of {len:#x} bytes")),
                Err(e) if common::tolerated(errno(&e)) => {
                    self.enospc += 1;
                    self.log.note(" = ENOSPC (re-read)");
                    self.model = common::read_all(&self.file).map_err(|e| ioerr("re-read", &e))?;
                    return Ok(());
                }
                Err(e) => return Err(ioerr("direct write", &e)),
            }
            let end = (off + len) as usize;
            if self.model.len() < end {
                self.model.resize(end, 0);
            }
            self.model[off as usize..end].copy_from_slice(buf.slice(len as usize));
        } else {
            // One call: a direct read ends at the end of the file, and a second one from there
            // would not be aligned.
            let n = d
                .read_at(buf.slice_mut(len as usize), off)
                .map_err(|e| ioerr("direct read", &e))?;
            let lo = (off as usize).min(self.model.len());
            let hi = ((off + len) as usize).min(self.model.len());
            common::compare(
                "direct read",
                off,
                &self.model[lo..hi],
                &buf.slice(len as usize)[..n],
            )?;
            self.reads += 1;
        }
        Ok(())
    }

    fn op_truncate(&mut self) -> Result<(), String> {
        let size = self.size();
        let len = if self.rng.chance(1, 2) {
            self.rng.below(size + 1)
        } else {
            self.rng.below(self.cfg.max_size + 1)
        };
        self.log
            .push(self.op, format!("truncate {size:#x} -> {len:#x}"));
        self.file.set_len(len).map_err(|e| ioerr("truncate", &e))?;
        self.model.resize(len as usize, 0);
        Ok(())
    }

    /// One `fallocate(2)`: allocate (extending the file or not), punch a hole or zero a range
    /// (extending or not), anywhere up to the largest size.
    fn op_falloc(&mut self) -> Result<(), String> {
        let size = self.size();
        let max = self.cfg.max_size;
        let off = self.rng.below(max);
        let len = self.len().min(max - off).max(1);
        let keep = libc::FALLOC_FL_KEEP_SIZE;
        let (name, mode) = match self.rng.below(5) {
            0 => ("allocate", 0),
            1 => ("allocate keep-size", keep),
            2 => ("punch hole", libc::FALLOC_FL_PUNCH_HOLE | keep),
            3 => ("zero range", libc::FALLOC_FL_ZERO_RANGE),
            _ => ("zero range keep-size", libc::FALLOC_FL_ZERO_RANGE | keep),
        };
        self.log.push(
            self.op,
            format!("fallocate {name} off {off:#x} len {len:#x} (size {size:#x})"),
        );
        if mode & libc::FALLOC_FL_PUNCH_HOLE == 0
            && common::free_bytes(&self.file) < len + common::MMAP_WRITE_MARGIN
        {
            self.log.note(" [skipped: low on space]");
            return Ok(());
        }
        self.fallocs += 1;
        // SAFETY: fallocate(2) on a descriptor this function borrows; no memory is passed.
        let r = unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                mode,
                off as libc::off_t,
                len as libc::off_t,
            )
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            if common::tolerated(errno(&e)) {
                // Nothing changed (VexFS checks the space first).
                self.enospc += 1;
                self.log.note(" [ENOSPC]");
                return Ok(());
            }
            return Err(ioerr("fallocate", &e));
        }
        let end = off + len;
        if mode & (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE) != 0 {
            let hi = end.min(size) as usize;
            if (off as usize) < hi {
                self.model[off as usize..hi].fill(0);
            }
        }
        if mode & keep == 0 && end > size {
            self.model.resize(end as usize, 0);
        }
        if self.cfg.extents {
            self.check_falloc(mode, off, end)?;
        }
        Ok(())
    }

    /// After a `fallocate(2)` of `off..end`: the blocks a punched hole covers whole hold no
    /// data, and an allocated or zeroed range (within the file) no hole.
    fn check_falloc(&self, mode: i32, off: u64, end: u64) -> Result<(), String> {
        let size = self.size();
        let b = DIRECT_BLOCK;
        let seek = |at: u64, whence| {
            crate::extents::lseek(&self.file, at, whence).map_err(|e| ioerr("lseek", &e))
        };
        if mode & libc::FALLOC_FL_PUNCH_HOLE != 0 {
            let (first, last) = (off.div_ceil(b) * b, (end / b * b).min(size));
            if first < last {
                match seek(first, libc::SEEK_DATA)? {
                    Some(d) if d < last => {
                        return Err(format!("data at {d:#x} in the hole {first:#x}..{last:#x}"))
                    }
                    _ => {}
                }
            }
        } else {
            let (first, last) = (off / b * b, end.min(size));
            if first < last {
                match seek(first, libc::SEEK_HOLE)? {
                    Some(h) if h < last => {
                        return Err(format!(
                            "hole at {h:#x} in the allocated {first:#x}..{last:#x}"
                        ))
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn op_mmap(&mut self, write: bool) -> Result<(), String> {
        let size = self.size();
        if size == 0 {
            return Ok(());
        }
        let page = common::page_size() as u64;
        let off = self.rng.below(size) / page * page;
        let len = self.rng.range(1, (size - off).min(self.cfg.max_len));
        let sync = self.rng.chance(1, 2);
        self.log.push(
            self.op,
            format!(
                "mmap {} off {off:#x} len {len:#x} (size {size:#x}){}",
                if write { "write" } else { "read" },
                if write && sync { " msync" } else { "" }
            ),
        );
        if common::free_bytes(&self.file) < len + common::MMAP_WRITE_MARGIN {
            self.log.note(" [skipped: low on space]");
            return Ok(());
        }
        let mut m =
            Mapping::file(&self.file, off, len as usize, write).map_err(|e| ioerr("mmap", &e))?;
        let (lo, hi) = (off as usize, (off + len) as usize);
        if write {
            // Write a random part of the mapping.
            let a = self.rng.below(len) as usize;
            let b = self.rng.range(a as u64 + 1, len) as usize;
            let seed = self.rng.next();
            let data = Rng::new(seed).bytes(b - a);
            m.slice_mut(len as usize)[a..b].copy_from_slice(&data);
            if sync {
                m.sync().map_err(|e| ioerr("msync", &e))?;
            }
            self.model[lo + a..lo + b].copy_from_slice(&data);
            self.log
                .note(&format!(" [{:#x}..{:#x}]", off + a as u64, off + b as u64));
        } else {
            common::compare("mmap read", off, &self.model[lo..hi], m.slice(len as usize))?;
            self.reads += 1;
        }
        Ok(())
    }

    fn op_sync(&mut self) -> Result<(), String> {
        let k = self.rng.below(4);
        self.log.push(
            self.op,
            ["fsync", "fdatasync", "fdatasync+evict", "close+reopen"][k as usize].to_string(),
        );
        match k {
            0 => self.file.sync_all().map_err(|e| ioerr("fsync", &e)),
            1 => self.file.sync_data().map_err(|e| ioerr("fdatasync", &e)),
            2 => {
                self.file.sync_data().map_err(|e| ioerr("fdatasync", &e))?;
                common::fadvise_dontneed(&self.file);
                Ok(())
            }
            _ => {
                self.file = open(&self.cfg.file, false)?;
                self.dfile = None;
                Ok(())
            }
        }
    }

    fn check_size(&self) -> Result<(), String> {
        let m = self.file.metadata().map_err(|e| ioerr("fstat", &e))?;
        if m.size() != self.size() {
            return Err(format!("size {:#x}, expected {:#x}", m.size(), self.size()));
        }
        Ok(())
    }

    fn full_compare(&mut self) -> Result<(), String> {
        let got = common::read_all(&self.file).map_err(|e| ioerr("read", &e))?;
        common::compare("full compare", 0, &self.model, &got)?;
        if self.cfg.extents {
            crate::extents::check(&self.file, &self.model)?;
        }
        Ok(())
    }

    fn step(&mut self) -> Result<(), String> {
        let direct = self.cfg.direct;
        match self.rng.below(100) {
            0..=34 if direct && self.rng.chance(1, 4) => self.op_direct(true),
            0..=34 => self.op_write(),
            35..=59 if direct && self.rng.chance(1, 4) => self.op_direct(false),
            35..=59 => self.op_read(),
            60..=71 if self.cfg.falloc && self.rng.chance(1, 2) => self.op_falloc(),
            60..=71 => self.op_truncate(),
            72..=81 => self.op_mmap(false),
            82..=93 => self.op_mmap(true),
            _ => self.op_sync(),
        }?;
        self.check_size()
    }
}

/// Runs fsx; returns the summary line or what failed (after printing the operation log).
pub(crate) fn run(cfg: &Config) -> Result<String, String> {
    println!("seed {}", cfg.seed);
    common::watchdog(cfg.timeout);
    let file = open(&cfg.file, true)?;
    let mut x = Fsx {
        cfg: cfg.clone(),
        rng: Rng::new(cfg.seed),
        file,
        model: Vec::new(),
        log: OpLog::new(40),
        op: 0,
        reads: 0,
        enospc: 0,
        dfile: None,
        directs: 0,
        fallocs: 0,
    };
    let mut fulls = 0;
    let mut res = Ok(());
    while res.is_ok() && x.op < cfg.ops {
        x.op += 1;
        res = x.step();
        if res.is_ok() && x.op % FULL_EVERY == 0 {
            res = x.full_compare();
            fulls += 1;
        }
    }
    if res.is_ok() {
        x.op += 1;
        x.log.push(x.op, "close+reopen, full compare".to_string());
        res = open(&cfg.file, false).and_then(|f| {
            x.file = f;
            x.full_compare()
        });
        fulls += 1;
    }
    match res {
        Ok(()) => Ok(format!(
            "fsx: {} ops ({} O_DIRECT, {} fallocate), {} reads and {fulls} full compares \
             verified, final size {}, {} ENOSPC, seed {}",
            cfg.ops,
            x.directs,
            x.fallocs,
            x.reads,
            x.size(),
            x.enospc,
            cfg.seed
        )),
        Err(e) => Err(format!(
            "fsx: FAILED at operation {} (seed {}): {e}\nlast operations:\n{}",
            x.op,
            cfg.seed,
            x.log.dump()
        )),
    }
}
