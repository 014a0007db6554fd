// SPDX-License-Identifier: GPL-2.0

//! The extents of a file as `lseek(2)` (`SEEK_DATA`, `SEEK_HOLE`) and `FS_IOC_FIEMAP` report
//! them, and a check of both against the file's contents.
//!
//! `vexfs-stress map FILE` prints them (`data START END` per data range, then `extent LOGICAL
//! PHYSICAL LENGTH FLAGS` per FIEMAP extent); fsx checks them against its model.
//! `vexfs-stress seek FILE data|hole OFFSET` prints what one `lseek(2)` returns (or `ENXIO`),
//! `vexfs-stress mmap-write FILE OFFSET` writes a page through a shared mapping.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// `FS_IOC_FIEMAP`: `_IOWR('f', 11, struct fiemap)`.
const FS_IOC_FIEMAP: libc::c_ulong = 0xc020_660b;
const FIEMAP_FLAG_SYNC: u32 = 1;
/// The last extent of the file.
pub(crate) const FIEMAP_EXTENT_LAST: u32 = 1;
/// Size of `struct fiemap` before its extents, and of one `struct fiemap_extent`.
const FIEMAP_HEAD: usize = 32;
const FIEMAP_EXTENT: usize = 56;
/// Extents asked for per call.
const BATCH: usize = 64;
/// The block size of VexFS: data ranges start and end at multiples of it (or at the end of
/// the file).
const BLOCK: u64 = 4096;

/// One extent reported by `FS_IOC_FIEMAP`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Extent {
    pub(crate) logical: u64,
    pub(crate) physical: u64,
    pub(crate) length: u64,
    pub(crate) flags: u32,
}

pub(crate) fn lseek(f: &File, off: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    let off = libc::off_t::try_from(off).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `lseek` on a descriptor this function borrows; no memory is passed.
    let r = unsafe { libc::lseek(f.as_raw_fd(), off, whence) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENXIO) {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(Some(r as u64))
}

/// The data ranges of `f` (`size` bytes long) by `SEEK_DATA` and `SEEK_HOLE`, in order.
pub(crate) fn data_ranges(f: &File, size: u64) -> Result<Vec<(u64, u64)>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < size {
        let Some(start) =
            lseek(f, pos, libc::SEEK_DATA).map_err(|e| format!("SEEK_DATA {pos:#x}: {e}"))?
        else {
            break;
        };
        let end = lseek(f, start, libc::SEEK_HOLE)
            .map_err(|e| format!("SEEK_HOLE {start:#x}: {e}"))?
            .ok_or_else(|| format!("SEEK_HOLE {start:#x}: ENXIO inside the file"))?;
        if start < pos || end <= start || end > size {
            return Err(format!(
                "SEEK_DATA {pos:#x} gave {start:#x}, SEEK_HOLE then {end:#x} (size {size:#x})"
            ));
        }
        out.push((start, end));
        pos = end;
    }
    // Past the end there is neither data nor a hole.
    if lseek(f, size, libc::SEEK_DATA)
        .map_err(|e| format!("SEEK_DATA at the end: {e}"))?
        .is_some()
    {
        return Err(format!(
            "SEEK_DATA at the end ({size:#x}) did not fail with ENXIO"
        ));
    }
    Ok(out)
}

fn ne64(b: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(b[off..off + 8].try_into().unwrap_or([0; 8]))
}

fn ne32(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().unwrap_or([0; 4]))
}

/// The extents of `f` by `FS_IOC_FIEMAP` (with `FIEMAP_FLAG_SYNC`), in order.
pub(crate) fn fiemap(f: &File) -> Result<Vec<Extent>, String> {
    let mut out: Vec<Extent> = Vec::new();
    let mut start = 0u64;
    loop {
        let mut buf = vec![0u8; FIEMAP_HEAD + BATCH * FIEMAP_EXTENT];
        buf[0..8].copy_from_slice(&start.to_ne_bytes());
        buf[8..16].copy_from_slice(&u64::MAX.to_ne_bytes());
        buf[16..20].copy_from_slice(&FIEMAP_FLAG_SYNC.to_ne_bytes());
        buf[24..28].copy_from_slice(&(BATCH as u32).to_ne_bytes());
        // SAFETY: `buf` holds a `struct fiemap` with room for `BATCH` extents, as its
        // `fm_extent_count` says; the kernel writes only inside it.
        let r = unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_FIEMAP, buf.as_mut_ptr()) };
        if r != 0 {
            return Err(format!("FS_IOC_FIEMAP: {}", io::Error::last_os_error()));
        }
        let n = ne32(&buf, 20) as usize;
        if n > BATCH {
            return Err(format!(
                "FS_IOC_FIEMAP: {n} extents mapped, room for {BATCH}"
            ));
        }
        for i in 0..n {
            let e = &buf[FIEMAP_HEAD + i * FIEMAP_EXTENT..];
            out.push(Extent {
                logical: ne64(e, 0),
                physical: ne64(e, 8),
                length: ne64(e, 16),
                flags: ne32(e, 40),
            });
        }
        match out.last() {
            Some(last) if n == BATCH && last.flags & FIEMAP_EXTENT_LAST == 0 => {
                start = last.logical + last.length;
            }
            _ => return Ok(out),
        }
    }
}

/// Checks what `SEEK_DATA`/`SEEK_HOLE` and `FIEMAP` say about `f` against `model`, its
/// contents: data ranges and extents in order, disjoint, block-aligned, inside the file;
/// both tell the same ranges; every non-zero byte lies in one; extents do not share device
/// bytes and the last one says so.
pub(crate) fn check(f: &File, model: &[u8]) -> Result<(), String> {
    let size = model.len() as u64;
    let data = data_ranges(f, size)?;
    let ext = fiemap(f)?;
    for (i, &(s, e)) in data.iter().enumerate() {
        if s % BLOCK != 0 || (e % BLOCK != 0 && e != size) {
            return Err(format!("data range {s:#x}..{e:#x} not block-aligned"));
        }
        if i > 0 && data[i - 1].1 >= s {
            return Err(format!(
                "data ranges {:?} and {:?} touch",
                data[i - 1],
                (s, e)
            ));
        }
    }
    // Every non-zero byte is in a data range.
    let mut r = data.iter().peekable();
    for (off, _) in model.iter().enumerate().filter(|(_, &b)| b != 0) {
        let off = off as u64;
        while r.peek().is_some_and(|&&(_, e)| e <= off) {
            r.next();
        }
        match r.peek() {
            Some(&&(s, _)) if s <= off => {}
            _ => return Err(format!("byte {off:#x} is not zero but lies in a hole")),
        }
    }
    // FIEMAP: ordered, disjoint, block-aligned, ending with the LAST flag.
    for (i, x) in ext.iter().enumerate() {
        if x.logical % BLOCK != 0 || x.physical % BLOCK != 0 || x.length % BLOCK != 0 {
            return Err(format!("extent {x:?} not block-aligned"));
        }
        if x.length == 0 || x.logical >= size.next_multiple_of(BLOCK) {
            return Err(format!("extent {x:?} empty or past the end ({size:#x})"));
        }
        if i > 0 && ext[i - 1].logical + ext[i - 1].length > x.logical {
            return Err(format!("extents {:?} and {x:?} overlap", ext[i - 1]));
        }
        if (x.flags & FIEMAP_EXTENT_LAST != 0) != (i == ext.len() - 1) {
            return Err(format!(
                "extent {i} of {}: FIEMAP_EXTENT_LAST wrong",
                ext.len()
            ));
        }
    }
    let mut phys: Vec<(u64, u64)> = ext.iter().map(|x| (x.physical, x.length)).collect();
    phys.sort_unstable();
    for w in phys.windows(2) {
        if w[0].0 + w[0].1 > w[1].0 {
            return Err(format!("extents share device bytes: {:?} {:?}", w[0], w[1]));
        }
    }
    // The same ranges both ways: merge adjacent extents, clip them to the file.
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for x in &ext {
        let (s, e) = (x.logical, (x.logical + x.length).min(size));
        match merged.last_mut() {
            Some(last) if last.1 == s => last.1 = e,
            _ => merged.push((s, e)),
        }
    }
    if merged != data {
        return Err(format!(
            "FIEMAP says {merged:x?}, SEEK_DATA/SEEK_HOLE say {data:x?}"
        ));
    }
    Ok(())
}

/// `vexfs-stress map FILE`: prints the data ranges and the extents of `path`.
pub(crate) fn print(path: &std::path::Path) -> Result<String, String> {
    let f = File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let size = f.metadata().map_err(|e| format!("fstat: {e}"))?.len();
    let data = data_ranges(&f, size)?;
    let ext = fiemap(&f)?;
    for (s, e) in &data {
        println!("data {s} {e}");
    }
    for x in &ext {
        println!(
            "extent {} {} {} {:#x}",
            x.logical, x.physical, x.length, x.flags
        );
    }
    Ok(format!(
        "map: {} data ranges, {} extents, size {size}",
        data.len(),
        ext.len()
    ))
}

/// `vexfs-stress seek FILE data|hole OFFSET`.
pub(crate) fn seek(path: &std::path::Path, what: &str, off: &str) -> Result<String, String> {
    let f = File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let whence = match what {
        "data" => libc::SEEK_DATA,
        "hole" => libc::SEEK_HOLE,
        _ => return Err(format!("seek: {what}: not data or hole")),
    };
    let off: u64 = off.parse().map_err(|_| format!("seek: bad offset {off}"))?;
    Ok(
        match lseek(&f, off, whence).map_err(|e| format!("lseek: {e}"))? {
            Some(pos) => pos.to_string(),
            None => "ENXIO".to_string(),
        },
    )
}

/// `vexfs-stress mmap-write FILE OFFSET`: fills the page at `OFFSET` (inside the file) with
/// `0xa5` through a shared mapping, without `msync(2)`.
pub(crate) fn mmap_write(path: &std::path::Path, off: &str) -> Result<String, String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    let off: u64 = off
        .parse()
        .map_err(|_| format!("mmap-write: bad offset {off}"))?;
    let page = crate::common::page_size();
    let mut m =
        crate::common::Mapping::file(&f, off, page, true).map_err(|e| format!("mmap: {e}"))?;
    m.slice_mut(page).fill(0xa5);
    Ok(format!("wrote {page} bytes at {off} through mmap"))
}

/// `vexfs-stress falloc FILE MODE OFFSET LEN`: one `fallocate(2)` on `FILE` (opened for
/// reading and writing, or for appending with the `append-` prefix of `MODE`); prints `ok` or
/// the errno's name (`open: ` and the name if the open fails). `MODE`: `allocate`, `keep-size`, `punch`, `punch-no-keep` (which the VFS
/// refuses), `zero`, `zero-keep`, `collapse`, `insert`.
pub(crate) fn falloc(
    path: &std::path::Path,
    mode: &str,
    off: &str,
    len: &str,
) -> Result<String, String> {
    let (append, mode) = match mode.strip_prefix("append-") {
        Some(m) => (true, m),
        None => (false, mode),
    };
    let keep = libc::FALLOC_FL_KEEP_SIZE;
    let flags = match mode {
        "allocate" => 0,
        "keep-size" => keep,
        "punch" => libc::FALLOC_FL_PUNCH_HOLE | keep,
        "punch-no-keep" => libc::FALLOC_FL_PUNCH_HOLE,
        "zero" => libc::FALLOC_FL_ZERO_RANGE,
        "zero-keep" => libc::FALLOC_FL_ZERO_RANGE | keep,
        "collapse" => libc::FALLOC_FL_COLLAPSE_RANGE,
        "insert" => libc::FALLOC_FL_INSERT_RANGE,
        _ => return Err(format!("falloc: unknown mode {mode}")),
    };
    let num = |s: &str| {
        s.parse::<libc::off_t>()
            .map_err(|_| format!("falloc: bad number {s}"))
    };
    let (off, len) = (num(off)?, num(len)?);
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .write(!append)
        .append(append)
        .open(path)
    {
        Ok(f) => f,
        Err(e) => {
            return Ok(format!(
                "open: {}",
                crate::common::errno_name(crate::common::errno(&e))
            ))
        }
    };
    // SAFETY: fallocate(2) on a descriptor this function owns; no memory is passed.
    if unsafe { libc::fallocate(f.as_raw_fd(), flags, off, len) } == 0 {
        return Ok("ok".to_string());
    }
    Ok(crate::common::errno_name(crate::common::errno(
        &io::Error::last_os_error(),
    )))
}
