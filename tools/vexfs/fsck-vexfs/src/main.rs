// SPDX-License-Identifier: GPL-2.0

//! `fsck.vexfs`: checks a VexFS filesystem, read-only.
//!
//! ```text
//! fsck.vexfs [-n] [-v] DEVICE|IMAGE
//! ```
//!
//! Every problem is printed as a line `fsck.vexfs: <problem>`; warnings as
//! `fsck.vexfs: warning: <problem>`. With `-v` a summary line
//! `N inodes, N blocks used of N` follows. `-n` (answer "no", change nothing)
//! is accepted for compatibility: the check never writes. The exit status
//! follows e2fsck: 0 clean, 4 errors left uncorrected, 8 operational error
//! (cannot open or read, not a VexFS filesystem), 16 usage error.

use std::{
    collections::{
        BTreeMap,
        HashSet,
        VecDeque, //
    },
    ffi::OsString,
    fmt,
    fs::File,
    io::{
        self,
        Seek,
        SeekFrom, //
    },
    os::unix::fs::FileExt,
    path::PathBuf,
    process::ExitCode,
};

// Only part of the shared format module is needed here.
#[allow(dead_code)]
#[path = "../../../../fs/vexfs/format.rs"]
mod format;

use format::{
    FormatError,
    Inode,
    Superblock,
    BLOCK_SIZE,
    DT_DIR,
    INODES_PER_BLOCK,
    INODE_SIZE,
    N_DIRECT,
    PTRS_PER_BLOCK,
    ROOT_INO,
    STATE_DIRTY,
    STATE_ERRORS, //
};

/// Exit status: no problem found.
const EXIT_OK: u8 = 0;
/// Exit status: errors found and left uncorrected.
const EXIT_UNCORRECTED: u8 = 4;
/// Exit status: operational error.
const EXIT_OPERATIONAL: u8 = 8;
/// Exit status: usage error.
const EXIT_USAGE: u8 = 16;

/// Usage line.
const USAGE: &str = "usage: fsck.vexfs [-n] [-v] DEVICE|IMAGE";

/// Problem lines printed at most; the rest are only counted.
const MAX_REPORTED: u64 = 1000;

/// Command line options.
struct Options {
    /// Print a summary (`-v`).
    verbose: bool,
    /// Device or image to check.
    device: PathBuf,
}

/// Parses the arguments, without the program name.
fn parse_args(args: &[OsString]) -> Result<Options, String> {
    let mut verbose = false;
    let mut device = None;
    let mut only_positional = false;
    for arg in args {
        let text = arg.to_string_lossy();
        if !only_positional && text.len() > 1 && text.starts_with('-') {
            if text == "--" {
                only_positional = true;
                continue;
            }
            for flag in text.chars().skip(1) {
                match flag {
                    'v' => verbose = true,
                    // Nothing is ever changed, and every check is forced.
                    'n' | 'f' | 'p' | 'a' => {}
                    'y' => return Err("repairs are not supported".into()),
                    _ => return Err(format!("unknown option '-{flag}'")),
                }
            }
        } else if device.replace(PathBuf::from(arg)).is_some() {
            return Err("more than one device given".into());
        }
    }
    let device = device.ok_or("no device or image given")?;
    Ok(Options { verbose, device })
}

/// Operational error: the check cannot go on.
struct Fatal(String);

impl From<io::Error> for Fatal {
    fn from(e: io::Error) -> Self {
        Self(format!("read error: {e}"))
    }
}

/// Read-only access to the device.
struct Device {
    /// The device or image.
    file: File,
    /// Its size in blocks.
    blocks: u64,
}

impl Device {
    /// Opens `path` read-only.
    fn open(path: &PathBuf) -> Result<Self, Fatal> {
        let mut file =
            File::open(path).map_err(|e| Fatal(format!("cannot open {}: {e}", path.display())))?;
        let size = file
            .seek(SeekFrom::End(0))
            .map_err(|e| Fatal(format!("cannot get the size of {}: {e}", path.display())))?;
        Ok(Self {
            file,
            blocks: size / 4096,
        })
    }

    /// Reads block `block` into a new buffer.
    fn read(&self, block: u64) -> Result<Vec<u8>, Fatal> {
        self.read_blocks(block, 1)
    }

    /// Reads `count` blocks from block `block` into a new buffer.
    fn read_blocks(&self, block: u64, count: u64) -> Result<Vec<u8>, Fatal> {
        let len = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(BLOCK_SIZE))
            .ok_or_else(|| Fatal("metadata too large".into()))?;
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, block * 4096)?;
        Ok(buf)
    }
}

/// State of one in-use inode.
struct InodeInfo {
    /// The decoded inode, `None` if it could not be decoded.
    inode: Option<Inode>,
    /// Number of directory entries naming it, `.` and `..` included.
    refs: u64,
    /// Directories with an entry (other than `.` and `..`) naming it.
    parents: Vec<u32>,
    /// For a directory, the inode number of its `..` entry.
    dotdot: Option<u32>,
    /// For a directory, the inodes its entries (other than `.` and `..`) name.
    children: Vec<u32>,
    /// For a directory, its logical and physical data blocks below its size,
    /// in logical order (holes left out).
    dir_blocks: Vec<(u64, u32)>,
}

/// The checker.
struct Checker {
    /// The device.
    dev: Device,
    /// The superblock.
    sb: Superblock,
    /// Number of errors found.
    errors: u64,
    /// Number of warnings.
    warnings: u64,
    /// Inode bitmap.
    inode_bitmap: Vec<u8>,
    /// Block bitmap.
    block_bitmap: Vec<u8>,
    /// Blocks claimed by inodes so far.
    claimed: Vec<u8>,
    /// In-use inodes.
    inodes: BTreeMap<u32, InodeInfo>,
}

/// Prints ranges of numbers compactly: `5`, `5-9`.
struct Ranges<'a>(&'a [(u64, u64)]);

impl fmt::Display for Ranges<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(start, end)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if i == 20 {
                return write!(f, "... ({} ranges)", self.0.len());
            }
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        Ok(())
    }
}

/// Collects numbers into ranges of consecutive values.
#[derive(Default)]
struct RangeSet(Vec<(u64, u64)>);

impl RangeSet {
    /// Adds `n`, which must be above every number added before.
    fn push(&mut self, n: u64) {
        match self.0.last_mut() {
            Some((_, end)) if *end + 1 == n => *end = n,
            _ => self.0.push((n, n)),
        }
    }

    /// Returns the number of values.
    fn count(&self) -> u64 {
        self.0.iter().map(|(s, e)| e - s + 1).sum()
    }
}

/// Converts a bit number into a bitmap index.
fn bit(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

impl Checker {
    /// Reports an error.
    fn error(&mut self, msg: impl fmt::Display) {
        self.errors += 1;
        if self.errors <= MAX_REPORTED {
            println!("fsck.vexfs: {msg}");
        }
    }

    /// Reports a warning, which does not change the exit status.
    fn warn(&mut self, msg: impl fmt::Display) {
        self.warnings += 1;
        println!("fsck.vexfs: warning: {msg}");
    }

    /// Returns whether bit `n` of `map` is set (out of range bits are not).
    fn test(map: &[u8], n: u64) -> bool {
        format::test_bit(map, bit(n)).unwrap_or(false)
    }

    /// Reads the superblock and the bitmaps.
    fn new(dev: Device) -> Result<Self, (u8, String)> {
        let block0 = dev
            .read(0)
            .map_err(|Fatal(e)| (EXIT_OPERATIONAL, format!("cannot read the superblock: {e}")))?;
        let sb = Superblock::decode(&block0, dev.blocks).map_err(|e| match e {
            FormatError::BadMagic => (
                EXIT_OPERATIONAL,
                "not a VexFS filesystem (bad magic number)".to_string(),
            ),
            FormatError::BadVersion | FormatError::UnsupportedFeatures => (
                EXIT_OPERATIONAL,
                format!("superblock: {e}, cannot check this filesystem"),
            ),
            FormatError::DeviceTooSmall => (
                EXIT_UNCORRECTED,
                "superblock: the filesystem is larger than the device".to_string(),
            ),
            _ => (EXIT_UNCORRECTED, format!("superblock: {e}")),
        })?;
        let read = |start, count| {
            dev.read_blocks(start, count)
                .map_err(|Fatal(e)| (EXIT_OPERATIONAL, e))
        };
        let inode_bitmap = read(sb.inode_bitmap_start, sb.inode_bitmap_blocks)?;
        let block_bitmap = read(sb.block_bitmap_start, sb.block_bitmap_blocks)?;
        let claimed = vec![0u8; block_bitmap.len()];
        Ok(Self {
            dev,
            sb,
            errors: 0,
            warnings: 0,
            inode_bitmap,
            block_bitmap,
            claimed,
            inodes: BTreeMap::new(),
        })
    }

    /// Checks the superblock fields the decoder accepts but fsck cares about.
    fn check_superblock(&mut self, block0: &[u8]) {
        match self.sb.state {
            STATE_ERRORS => self.error("the filesystem is marked as having errors"),
            STATE_DIRTY => self.warn("the filesystem is mounted or was not cleanly unmounted"),
            _ => {}
        }
        if self.sb.has_unknown_ro_compat() {
            self.warn(format!(
                "unknown read-only compatible features {:#x}",
                self.sb.features_ro_compat
            ));
        }
        if block0
            .get(format::SUPERBLOCK_SIZE..)
            .is_some_and(|rest| rest.iter().any(|&b| b != 0))
        {
            self.error("block 0 is not zero after the superblock");
        }
    }

    /// Checks the bits of the bitmaps that do not depend on the inodes.
    fn check_bitmap_fixed_bits(&mut self) {
        if !Self::test(&self.inode_bitmap, 0) {
            self.error("inode 0 is not marked in use in the inode bitmap");
        }
        let inode_bits = self.sb.inode_bitmap_blocks * format::BITS_PER_BLOCK;
        let mut clear = RangeSet::default();
        for n in self.sb.inode_count..inode_bits {
            if !Self::test(&self.inode_bitmap, n) {
                clear.push(n);
            }
        }
        if !clear.0.is_empty() {
            self.error(format!(
                "inode bitmap bits past the last inode are clear: {}",
                Ranges(&clear.0)
            ));
        }
        let mut clear = RangeSet::default();
        for n in 0..self.sb.data_start {
            if !Self::test(&self.block_bitmap, n) {
                clear.push(n);
            }
        }
        if !clear.0.is_empty() {
            self.error(format!(
                "metadata blocks not marked in the block bitmap: {}",
                Ranges(&clear.0)
            ));
        }
        let block_bits = self.sb.block_bitmap_blocks * format::BITS_PER_BLOCK;
        let mut clear = RangeSet::default();
        for n in self.sb.block_count..block_bits {
            if !Self::test(&self.block_bitmap, n) {
                clear.push(n);
            }
        }
        if !clear.0.is_empty() {
            self.error(format!(
                "block bitmap bits past the last block are clear: {}",
                Ranges(&clear.0)
            ));
        }
    }

    /// Reads the inode table and checks every slot against the inode bitmap.
    fn scan_inodes(&mut self) -> Result<(), Fatal> {
        // Read a few hundred kilobytes at a time.
        let chunk = 64;
        let mut table_block = 0;
        while table_block < self.sb.inode_table_blocks {
            let count = chunk.min(self.sb.inode_table_blocks - table_block);
            let data = self
                .dev
                .read_blocks(self.sb.inode_table_start + table_block, count)?;
            for (i, slot) in data.chunks_exact(INODE_SIZE).enumerate() {
                let ino = table_block * INODES_PER_BLOCK + u64::try_from(i).unwrap_or(u64::MAX);
                if ino >= self.sb.inode_count {
                    break;
                }
                self.scan_slot(ino, slot);
            }
            table_block += count;
        }
        Ok(())
    }

    /// Checks inode slot `ino`.
    fn scan_slot(&mut self, ino: u64, slot: &[u8]) {
        let marked = Self::test(&self.inode_bitmap, ino);
        if ino == 0 {
            if slot.iter().any(|&b| b != 0) {
                self.error("inode slot 0 is not zeroed");
            }
            return;
        }
        let Ok(ino32) = u32::try_from(ino) else {
            return;
        };
        let inode = match Inode::decode(slot) {
            Ok(None) => {
                if marked {
                    self.error(format!(
                        "inode {ino} is marked in the inode bitmap but free"
                    ));
                }
                return;
            }
            Ok(Some(inode)) => Some(inode),
            Err(e) => {
                self.error(format!("inode {ino}: {e}"));
                None
            }
        };
        if !marked {
            self.error(format!(
                "inode {ino} is in use but not marked in the inode bitmap"
            ));
        }
        self.inodes.insert(
            ino32,
            InodeInfo {
                inode,
                refs: 0,
                parents: Vec::new(),
                dotdot: None,
                children: Vec::new(),
                dir_blocks: Vec::new(),
            },
        );
    }

    /// Claims block `block` for inode `ino`; returns whether it may be read.
    fn claim(&mut self, ino: u32, block: u32, what: &str) -> bool {
        let block64 = u64::from(block);
        if !self.sb.is_data_block(block64) {
            self.error(format!(
                "inode {ino}: {what} block {block} is outside the data area"
            ));
            return false;
        }
        if format::set_bit(&mut self.claimed, bit(block64)).unwrap_or(true) {
            self.error(format!(
                "inode {ino}: {what} block {block} is also used by another inode or pointer"
            ));
            return false;
        }
        if !Self::test(&self.block_bitmap, block64) {
            self.error(format!(
                "inode {ino}: {what} block {block} is not marked in the block bitmap"
            ));
        }
        true
    }

    /// Walks the block tree of pointer `ptr` at `level` (0 for a data block),
    /// whose first logical block is `base`.
    fn walk(
        &mut self,
        ino: u32,
        ptr: u32,
        level: u32,
        base: u64,
        acc: &mut Walk,
    ) -> Result<(), Fatal> {
        let what = if level == 0 { "data" } else { "indirect" };
        acc.blocks += 1;
        if !self.claim(ino, ptr, what) {
            return Ok(());
        }
        if level == 0 {
            acc.mapped.push((base, ptr));
            return Ok(());
        }
        let data = self.dev.read(u64::from(ptr))?;
        let span = 1u64 << (10 * (level - 1));
        for index in 0..PTRS_PER_BLOCK {
            let child = format::read_indirect(&data, index).unwrap_or(0);
            if child != 0 {
                let lblk = base + u64::try_from(index).unwrap_or(0) * span;
                self.walk(ino, child, level - 1, lblk, acc)?;
            }
        }
        Ok(())
    }

    /// Checks the block map and size of every decoded inode.
    fn check_block_maps(&mut self) -> Result<(), Fatal> {
        let inos: Vec<u32> = self.inodes.keys().copied().collect();
        for ino in inos {
            let Some(inode) = self.inodes.get(&ino).and_then(|i| i.inode) else {
                continue;
            };
            self.check_block_map(ino, &inode)?;
        }
        Ok(())
    }

    /// Checks the block map and size of inode `ino`.
    fn check_block_map(&mut self, ino: u32, inode: &Inode) -> Result<(), Fatal> {
        if !inode.has_data_blocks() {
            // Block pointer 0 of a device holds its device number.
            let first = if matches!(inode.file_type(), format::DT_CHR | format::DT_BLK) {
                1
            } else {
                0
            };
            if inode.block[first..].iter().any(|&p| p != 0) {
                self.error(format!("inode {ino}: special file with block pointers"));
            }
            if inode.size != 0 {
                self.error(format!(
                    "inode {ino}: special file with size {}",
                    inode.size
                ));
            }
            if inode.blocks != 0 {
                self.error(format!(
                    "inode {ino}: special file owns {} blocks",
                    inode.blocks
                ));
            }
            return Ok(());
        }
        let mut walk = Walk::default();
        for (index, &ptr) in inode.block.iter().enumerate() {
            if ptr == 0 {
                continue;
            }
            let (level, base) = match index {
                i if i < N_DIRECT => (0, u64::try_from(i).unwrap_or(0)),
                format::IND_INDEX => (1, 12),
                format::DIND_INDEX => (2, 12 + 1024),
                _ => (3, 12 + 1024 + 1024 * 1024),
            };
            self.walk(ino, ptr, level, base, &mut walk)?;
        }
        if walk.blocks != inode.blocks {
            self.error(format!(
                "inode {ino}: block count is {}, counted {}",
                inode.blocks, walk.blocks
            ));
        }
        let size_blocks = inode.size.div_ceil(4096);
        let past: Vec<u64> = walk
            .mapped
            .iter()
            .map(|&(lblk, _)| lblk)
            .filter(|&lblk| lblk >= size_blocks)
            .collect();
        if !past.is_empty() {
            self.error(format!(
                "inode {ino}: {} blocks mapped past the end of the file (size {}, first at logical block {})",
                past.len(),
                inode.size,
                past[0]
            ));
        }
        if inode.is_symlink() {
            if inode.size == 0 || inode.size >= 4096 {
                self.error(format!("inode {ino}: symbolic link of size {}", inode.size));
            } else if !walk.mapped.iter().any(|&(lblk, _)| lblk == 0) {
                self.error(format!("inode {ino}: symbolic link without data block"));
            }
        }
        if inode.is_dir() {
            if inode.size == 0 {
                self.error(format!("directory {ino} is empty (size 0)"));
            }
            // Only the mapped blocks: a damaged size may claim billions of
            // blocks, more than fit in memory.
            let mut blocks: Vec<(u64, u32)> = walk
                .mapped
                .iter()
                .copied()
                .filter(|&(lblk, _)| lblk < size_blocks)
                .collect();
            blocks.sort_unstable();
            let hole = blocks
                .iter()
                .enumerate()
                .find(|&(i, &(lblk, _))| u64::try_from(i).unwrap_or(u64::MAX) != lblk)
                .map_or(u64::try_from(blocks.len()).unwrap_or(u64::MAX), |(i, _)| {
                    u64::try_from(i).unwrap_or(u64::MAX)
                });
            if hole < size_blocks {
                self.error(format!(
                    "directory {ino} has a hole at logical block {hole}"
                ));
            }
            if let Some(info) = self.inodes.get_mut(&ino) {
                info.dir_blocks = blocks;
            }
        }
        Ok(())
    }

    /// Checks that every block marked in the bitmap is used.
    fn check_leaks(&mut self) {
        let mut leaked = RangeSet::default();
        let (start, limit) = (self.sb.data_start, self.sb.block_count);
        for (index, (&marked, &claimed)) in self.block_bitmap.iter().zip(&self.claimed).enumerate()
        {
            // Blocks marked and not claimed.
            let mut bits = marked & !claimed;
            let first = u64::try_from(index).unwrap_or(u64::MAX) * 8;
            while bits != 0 {
                let block = first + u64::from(bits.trailing_zeros());
                bits &= bits - 1;
                if block >= start && block < limit {
                    leaked.push(block);
                }
            }
        }
        if !leaked.0.is_empty() {
            self.error(format!(
                "{} blocks marked in the block bitmap but not used: {}",
                leaked.count(),
                Ranges(&leaked.0)
            ));
        }
    }

    /// Checks every directory and collects the references between inodes.
    fn check_directories(&mut self) -> Result<(), Fatal> {
        let dirs: Vec<u32> = self
            .inodes
            .iter()
            .filter(|(_, info)| info.inode.is_some_and(|i| i.is_dir()))
            .map(|(&ino, _)| ino)
            .collect();
        for dir in dirs {
            self.check_directory(dir)?;
        }
        Ok(())
    }

    /// Checks directory `dir`.
    fn check_directory(&mut self, dir: u32) -> Result<(), Fatal> {
        let blocks = self
            .inodes
            .get(&dir)
            .map(|i| i.dir_blocks.clone())
            .unwrap_or_default();
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        for &(lblk, pblk) in &blocks {
            if pblk == 0 || !self.sb.is_data_block(u64::from(pblk)) {
                continue;
            }
            let data = self.dev.read(u64::from(pblk))?;
            if let Err(e) = format::validate_dir_block(&data) {
                self.error(format!("directory {dir}, logical block {lblk}: {e}"));
                continue;
            }
            let mut skip = 0;
            if lblk == 0 {
                match format::read_dots(&data) {
                    Ok((dot, dotdot)) => {
                        if dot != dir {
                            self.error(format!("directory {dir}: '.' is inode {dot}"));
                        }
                        self.add_ref(dir, dot, b".", DT_DIR);
                        self.add_ref(dir, dotdot, b"..", DT_DIR);
                        if let Some(info) = self.inodes.get_mut(&dir) {
                            info.dotdot = Some(dotdot);
                        }
                        skip = 2;
                    }
                    Err(e) => {
                        self.error(format!("directory {dir}: {e}"));
                    }
                }
            }
            let entries: Vec<(Vec<u8>, u32, u8)> = format::dir_iter(&data)
                .filter_map(|e| e.ok())
                .filter(|e| e.is_live())
                .skip(skip)
                .map(|e| (e.name.to_vec(), e.ino, e.file_type))
                .collect();
            for (name, ino, file_type) in entries {
                let shown = String::from_utf8_lossy(&name).into_owned();
                if name == b"." || name == b".." {
                    self.error(format!("directory {dir}: misplaced '{shown}' entry"));
                    continue;
                }
                if !seen.insert(name.clone()) {
                    self.error(format!("directory {dir}: duplicate entry '{shown}'"));
                }
                if self.add_ref(dir, ino, &name, file_type) {
                    if let Some(info) = self.inodes.get_mut(&ino) {
                        info.parents.push(dir);
                    }
                    if let Some(info) = self.inodes.get_mut(&dir) {
                        info.children.push(ino);
                    }
                }
            }
        }
        Ok(())
    }

    /// Records that directory `dir` has an entry `name` of type `file_type`
    /// for inode `ino`; returns whether that inode is in use.
    fn add_ref(&mut self, dir: u32, ino: u32, name: &[u8], file_type: u8) -> bool {
        let shown = String::from_utf8_lossy(name).into_owned();
        if !self.sb.is_valid_ino(u64::from(ino)) {
            self.error(format!(
                "directory {dir}: entry '{shown}' has invalid inode number {ino}"
            ));
            return false;
        }
        let Some(info) = self.inodes.get_mut(&ino) else {
            self.error(format!(
                "directory {dir}: entry '{shown}' refers to free inode {ino}"
            ));
            return false;
        };
        info.refs += 1;
        if let Some(inode) = info.inode {
            if inode.file_type() != file_type {
                let expected = inode.file_type();
                self.error(format!(
                    "directory {dir}: entry '{shown}' has file type {file_type}, inode {ino} has type {expected}"
                ));
            }
        }
        true
    }

    /// Checks the tree structure, reachability and link counts.
    fn check_tree(&mut self) {
        let root = ROOT_INO;
        match self.inodes.get(&root).map(|i| i.inode) {
            None => self.error("the root inode is not in use"),
            Some(Some(inode)) if !inode.is_dir() => self.error("the root inode is not a directory"),
            _ => {}
        }
        let mut problems = Vec::new();
        for (&ino, info) in &self.inodes {
            let Some(inode) = info.inode else {
                continue;
            };
            if inode.is_dir() {
                if ino == root {
                    if !info.parents.is_empty() {
                        problems.push(format!(
                            "the root directory is named by directory {}",
                            info.parents[0]
                        ));
                    }
                    if info.dotdot.is_some_and(|p| p != root) {
                        problems.push("the root directory's '..' is not itself".to_string());
                    }
                } else {
                    if info.parents.len() > 1 {
                        problems.push(format!(
                            "directory {ino} is named by {} entries",
                            info.parents.len()
                        ));
                    }
                    if let (Some(&parent), Some(dotdot)) = (info.parents.first(), info.dotdot) {
                        if parent != dotdot {
                            problems.push(format!(
                                "directory {ino}: '..' is inode {dotdot}, its parent is {parent}"
                            ));
                        }
                    }
                }
            }
            if inode.nlink == 0 {
                problems.push(format!("inode {ino} is in use with no links"));
            } else if u64::from(inode.nlink) != info.refs {
                problems.push(format!(
                    "inode {ino}: link count is {}, counted {}",
                    inode.nlink, info.refs
                ));
            }
        }
        // Reachability from the root.
        let mut reached = HashSet::new();
        let mut queue = VecDeque::new();
        if self.inodes.contains_key(&root) {
            reached.insert(root);
            queue.push_back(root);
        }
        while let Some(dir) = queue.pop_front() {
            if let Some(info) = self.inodes.get(&dir) {
                for &child in &info.children {
                    if reached.insert(child) {
                        queue.push_back(child);
                    }
                }
            }
        }
        for &ino in self.inodes.keys() {
            if !reached.contains(&ino) {
                problems.push(format!(
                    "inode {ino} is not connected to the root directory"
                ));
            }
        }
        for p in problems {
            self.error(p);
        }
    }

    /// Compares the free counts of the superblock with the bitmaps.
    fn check_counts(&mut self) -> (u64, u64) {
        let used_blocks = format::count_set_bits(&self.block_bitmap, bit(self.sb.block_count));
        let used_inodes = format::count_set_bits(&self.inode_bitmap, bit(self.sb.inode_count));
        let free_blocks = self.sb.block_count.saturating_sub(used_blocks);
        let free_inodes = self.sb.inode_count.saturating_sub(used_inodes);
        if free_blocks != self.sb.free_blocks {
            self.warn(format!(
                "free block count is {} in the superblock, counted {free_blocks}",
                self.sb.free_blocks
            ));
        }
        if free_inodes != self.sb.free_inodes {
            self.warn(format!(
                "free inode count is {} in the superblock, counted {free_inodes}",
                self.sb.free_inodes
            ));
        }
        (used_blocks, used_inodes)
    }
}

/// Accumulator of the block tree walk of one inode.
#[derive(Default)]
struct Walk {
    /// Blocks referenced, data and indirect.
    blocks: u64,
    /// Logical and physical block numbers of the data blocks.
    mapped: Vec<(u64, u32)>,
}

/// Checks the filesystem on `options.device`; returns the exit status.
fn check(options: &Options) -> u8 {
    let dev = match Device::open(&options.device) {
        Ok(dev) => dev,
        Err(Fatal(e)) => {
            eprintln!("fsck.vexfs: {e}");
            return EXIT_OPERATIONAL;
        }
    };
    let mut checker = match Checker::new(dev) {
        Ok(checker) => checker,
        Err((code, msg)) => {
            if code == EXIT_OPERATIONAL {
                eprintln!("fsck.vexfs: {}: {msg}", options.device.display());
            } else {
                println!("fsck.vexfs: {msg}");
            }
            return code;
        }
    };
    let result = (|| -> Result<(u64, u64), Fatal> {
        let block0 = checker.dev.read(0)?;
        checker.check_superblock(&block0);
        checker.check_bitmap_fixed_bits();
        checker.scan_inodes()?;
        checker.check_block_maps()?;
        checker.check_leaks();
        checker.check_directories()?;
        checker.check_tree();
        Ok(checker.check_counts())
    })();
    let (used_blocks, _) = match result {
        Ok(counts) => counts,
        Err(Fatal(e)) => {
            eprintln!("fsck.vexfs: {}: {e}", options.device.display());
            return EXIT_OPERATIONAL;
        }
    };
    if checker.errors > MAX_REPORTED {
        println!(
            "fsck.vexfs: {} more problems not shown",
            checker.errors - MAX_REPORTED
        );
    }
    if options.verbose {
        println!(
            "{} inodes, {} blocks used of {}",
            checker.inodes.len(),
            used_blocks,
            checker.sb.block_count
        );
    }
    if checker.errors > 0 {
        EXIT_UNCORRECTED
    } else {
        EXIT_OK
    }
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let options = match parse_args(&args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("fsck.vexfs: {e}");
            eprintln!("{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    ExitCode::from(check(&options))
}
