// SPDX-License-Identifier: GPL-2.0

//! `vexfs-stress dio FILE`: direct I/O (`O_DIRECT`) on one file, checked against a model of
//! its contents and against buffered reads of it: writes past the end and into holes (which
//! the file system may route through the page cache), overwrites of existing blocks, sector-
//! but not block-aligned I/O, refused misaligned I/O, reads across the end and of holes,
//! coherence with buffered and `mmap` writes. Then, for the notes, the throughput of direct
//! and buffered writes and reads of `--mib` MiB (default 32); never asserted.

use crate::common::{
    errno,
    ioerr,
    Mapping, //
};
use std::fs::{
    File,
    OpenOptions, //
};
use std::os::unix::fs::{
    FileExt,
    OpenOptionsExt, //
};
use std::path::Path;
use std::time::Instant;

const BLOCK: usize = 4096;
const SECTOR: usize = 512;

fn open(path: &Path, direct: bool, truncate: bool) -> Result<File, String> {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create(true).truncate(truncate);
    if direct {
        o.custom_flags(libc::O_DIRECT);
    }
    o.open(path)
        .map_err(|e| ioerr(&format!("open {} (direct {direct})", path.display()), &e))
}

/// A page-aligned buffer of `len` bytes (direct I/O needs aligned memory).
fn buffer(len: usize) -> Result<Mapping, String> {
    Mapping::anon(len.next_multiple_of(BLOCK)).map_err(|e| ioerr("mmap", &e))
}

/// The test: the direct descriptor `d` and the model `m` of the file.
struct Dio {
    d: File,
    path: std::path::PathBuf,
    m: Vec<u8>,
    buf: Mapping,
    seed: u8,
}

impl Dio {
    /// Writes `len` bytes of a new pattern at `off` directly; checks the count and the size.
    fn write(&mut self, off: usize, len: usize) -> Result<(), String> {
        self.seed = self.seed.wrapping_add(37);
        let s = self.buf.slice_mut(len);
        for (i, b) in s.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(7).wrapping_add(self.seed) | 1;
        }
        let n = self
            .d
            .write_at(self.buf.slice(len), off as u64)
            .map_err(|e| ioerr(&format!("direct write {len} at {off}"), &e))?;
        if n != len {
            return Err(format!("direct write {len} at {off}: wrote {n}"));
        }
        if self.m.len() < off + len {
            self.m.resize(off + len, 0);
        }
        self.m[off..off + len].copy_from_slice(self.buf.slice(len));
        self.check_size()
    }

    fn check_size(&self) -> Result<(), String> {
        let size = self.d.metadata().map_err(|e| ioerr("fstat", &e))?.len();
        if size != self.m.len() as u64 {
            return Err(format!("size {size}, expected {}", self.m.len()));
        }
        Ok(())
    }

    /// Reads `len` bytes at `off` directly and compares them with the model.
    fn read(&mut self, off: usize, len: usize) -> Result<(), String> {
        let n = self
            .d
            .read_at(self.buf.slice_mut(len), off as u64)
            .map_err(|e| ioerr(&format!("direct read {len} at {off}"), &e))?;
        let want = &self.m[off.min(self.m.len())..(off + len).min(self.m.len())];
        if n != want.len() {
            return Err(format!(
                "direct read {len} at {off}: {n} bytes, expected {}",
                want.len()
            ));
        }
        if self.buf.slice(n) != want {
            return Err(format!("direct read {len} at {off}: wrong data"));
        }
        Ok(())
    }

    /// Reads the whole file through the page cache and compares it with the model.
    fn buffered_matches(&self) -> Result<(), String> {
        let got = std::fs::read(&self.path).map_err(|e| ioerr("buffered read", &e))?;
        if got != self.m {
            return Err("a buffered read of the file differs from what was written".into());
        }
        Ok(())
    }

    /// A misaligned direct I/O fails with `EINVAL`.
    fn misaligned(&mut self, off: u64, len: usize) -> Result<(), String> {
        let r = self.d.write_at(&self.buf.slice(len + 1)[1..], off);
        match r {
            Err(e) if errno(&e) == libc::EINVAL => Ok(()),
            other => Err(format!(
                "misaligned direct write ({off}, {len}): {other:?}, want EINVAL"
            )),
        }
    }
}

fn rate(mib: usize, t: Instant) -> String {
    let us = t.elapsed().as_micros().max(1);
    let tenths = mib as u128 * 10_000_000 / us;
    format!("{}.{} MiB/s", tenths / 10, tenths % 10)
}

/// Times writing and reading `mib` MiB in 1 MiB requests, direct and buffered.
fn throughput(path: &Path, mib: usize) -> Result<String, String> {
    let chunk = 1 << 20;
    let mut buf = buffer(chunk)?;
    buf.slice_mut(chunk).fill(0x5a);
    let mut out = Vec::new();
    for (what, direct) in [("buffered", false), ("direct", true)] {
        let f = open(path, direct, true)?;
        let t = Instant::now();
        for i in 0..mib {
            f.write_all_at(buf.slice(chunk), (i * chunk) as u64)
                .map_err(|e| ioerr("write", &e))?;
        }
        f.sync_all().map_err(|e| ioerr("fsync", &e))?;
        out.push(format!("{what} write (new file) {}", rate(mib, t)));
        let t = Instant::now();
        for i in 0..mib {
            f.write_all_at(buf.slice(chunk), (i * chunk) as u64)
                .map_err(|e| ioerr("write", &e))?;
        }
        f.sync_all().map_err(|e| ioerr("fsync", &e))?;
        out.push(format!("{what} overwrite {}", rate(mib, t)));
        crate::common::fadvise_dontneed(&f);
        let t = Instant::now();
        for i in 0..mib {
            let n = f
                .read_at(buf.slice_mut(chunk), (i * chunk) as u64)
                .map_err(|e| ioerr("read", &e))?;
            if n != chunk {
                return Err(format!("{what} read: {n} bytes"));
            }
        }
        out.push(format!("{what} read (cold) {}", rate(mib, t)));
    }
    let _ = std::fs::remove_file(path);
    Ok(out.join(", "))
}

/// Runs the test on `path`; returns a summary with the throughput figures.
pub(crate) fn run(path: &Path, mib: usize) -> Result<String, String> {
    let mut t = Dio {
        d: open(path, true, true)?,
        path: path.to_path_buf(),
        m: Vec::new(),
        buf: buffer(256 << 10)?,
        seed: 0,
    };
    let mut checks = 0;
    let mut step = |r: Result<(), String>| {
        checks += 1;
        r
    };
    // Past the end of an empty file, then over the blocks that now exist.
    step(t.write(0, 64 << 10))?;
    step(t.read(0, 64 << 10))?;
    step(t.write(8 << 10, 16 << 10))?;
    step(t.read(0, 64 << 10))?;
    // Sector-aligned, not block-aligned, inside existing blocks and across the end.
    step(t.write(SECTOR * 3, SECTOR * 2))?;
    step(t.read(SECTOR, SECTOR * 9))?;
    step(t.write((64 << 10) - SECTOR, SECTOR * 4))?;
    step(t.read(60 << 10, 16 << 10))?;
    // Reads across and past the end.
    let end = t.m.len();
    step(t.read(end - end % BLOCK, 2 * BLOCK))?;
    step(t.read(end.next_multiple_of(BLOCK) + BLOCK, BLOCK))?;
    // A hole: grow the file, write into the middle of the hole, read the hole around it.
    t.d.set_len(1 << 20).map_err(|e| ioerr("ftruncate", &e))?;
    t.m.resize(1 << 20, 0);
    step(t.write(512 << 10, 32 << 10))?;
    step(t.read(256 << 10, 256 << 10))?;
    step(t.read(512 << 10, 256 << 10))?;
    step(t.buffered_matches())?;
    // Misaligned buffer or offset.
    step(t.misaligned(4096, 4096))?;
    step(t.misaligned(4097, 4096))?;
    // Coherence: a buffered write, then a direct read; a direct write, then a buffered read.
    let b = open(path, false, false)?;
    b.write_all_at(&[0x77; 3000], 100)
        .map_err(|e| ioerr("buffered write", &e))?;
    t.m[100..3100].fill(0x77);
    step(t.read(0, 8 << 10))?;
    step(t.write(0, 4 << 10))?;
    step(t.buffered_matches())?;
    // A page written through mmap, not synced, then read directly.
    {
        let mut map = Mapping::file(&b, 0, BLOCK, true).map_err(|e| ioerr("mmap", &e))?;
        map.slice_mut(BLOCK)[..16].fill(0x33);
        t.m[..16].fill(0x33);
    }
    step(t.read(0, BLOCK))?;
    drop(b);
    // Durable: reopen directly after fsync and read everything.
    t.d.sync_all().map_err(|e| ioerr("fsync", &e))?;
    t.d = open(path, true, false)?;
    let len = t.m.len();
    for off in (0..len).step_by(256 << 10) {
        step(t.read(off, (256 << 10).min(len - off)))?;
    }
    let figures = throughput(path, mib)?;
    Ok(format!(
        "dio: {checks} checks passed; {mib} MiB in 1 MiB requests: {figures}"
    ))
}
