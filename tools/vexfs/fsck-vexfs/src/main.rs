// SPDX-License-Identifier: GPL-2.0

//! `fsck.vexfs`: checks and repairs a VexFS filesystem.
//!
//! ```text
//! fsck.vexfs [-n|-p|-y] [-v] DEVICE|IMAGE
//! ```
//!
//! Every problem is printed as a line `fsck.vexfs: <problem>`, with `: fixed`
//! appended when it was repaired; warnings as `fsck.vexfs: warning:
//! <problem>`. With `-v` a summary line `N inodes, N blocks used of N`
//! follows.
//!
//! - Without an option, or with `-n`, nothing is written.
//! - `-p` (preen, `-a` is the same) repairs what loses nothing: the bitmaps
//!   and free counts, link and block counts, the superblock state, entries
//!   naming free inodes, wrong `..` and file types, blocks mapped past the
//!   end of a file (but the zeroed ones of a regular file, which fallocate
//!   preallocated), holes in directories, and inodes no directory names
//!   (connected to `/lost+found`). Damage whose repair drops something
//!   (an inode that does not decode, a block pointer outside the data area
//!   or shared by two files, a malformed directory block or extended
//!   attribute block) makes it stop without writing anything: run with
//!   `-y`.
//! - `-y` repairs everything: undecodable inodes are cleared, bad and
//!   shared block pointers are cleared (the file keeps a hole there), a
//!   bad extended attribute block is dropped with its attributes, the
//!   intact entries of a malformed directory block are kept and the rest
//!   dropped, and every inode left unnamed goes to `/lost+found` as `#INO`.
//!
//! Repairs are made in memory, written at the end, and the filesystem is then
//! checked again (and repaired again, a few rounds at most) until a check
//! finds nothing. A block device is opened exclusively for a repair, so a
//! mounted filesystem is refused. The exit status follows e2fsck: 0 clean,
//! 1 errors corrected, 4 errors left uncorrected, 8 operational error (cannot
//! open or read, not a VexFS filesystem), 16 usage error.
//!
//! The contents of vector collections (records, saved index) are not checked
//! here: the kernel checks them, with their checksums, when it loads them.

use std::{
    collections::{
        BTreeMap,
        BTreeSet,
        HashSet,
        VecDeque, //
    },
    ffi::OsString,
    fmt,
    fs::{
        File,
        OpenOptions, //
    },
    io::{
        self,
        Seek,
        SeekFrom, //
    },
    os::unix::fs::{
        FileExt,
        FileTypeExt,
        OpenOptionsExt, //
    },
    path::PathBuf,
    process::ExitCode,
    time::{
        SystemTime,
        UNIX_EPOCH, //
    },
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
    STATE_CLEAN,
    STATE_DIRTY,
    STATE_ERRORS, //
};

/// Exit status: no problem found.
const EXIT_OK: u8 = 0;
/// Exit status: errors found and corrected.
const EXIT_CORRECTED: u8 = 1;
/// Exit status: errors found and left uncorrected.
const EXIT_UNCORRECTED: u8 = 4;
/// Exit status: operational error.
const EXIT_OPERATIONAL: u8 = 8;
/// Exit status: usage error.
const EXIT_USAGE: u8 = 16;

/// Usage line.
const USAGE: &str = "usage: fsck.vexfs [-n|-p|-y] [-v] DEVICE|IMAGE";

/// Problem lines printed at most; the rest are only counted.
const MAX_REPORTED: u64 = 1000;

/// Rounds of repair and check at most.
const MAX_PASSES: u32 = 4;

/// A directory's holes are filled with empty blocks if there are at most
/// this many; with more, the directory is cut at its first hole (the entries
/// behind it are lost, their inodes go to `/lost+found`).
const MAX_HOLES_FILLED: usize = 16;

/// `O_EXCL`: on a block device, fails with `EBUSY` if it is mounted.
const O_EXCL: i32 = 0o200;

/// Name of the directory that receives the inodes no directory names.
const LOST_FOUND: &[u8] = b"lost+found";

/// What fsck may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Nothing (`-n`, or no option).
    Check,
    /// What loses nothing (`-p`, `-a`).
    Preen,
    /// Everything (`-y`).
    Yes,
}

/// What the repair of a problem costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fix {
    /// Nothing of any file is lost: `-p` repairs it.
    Safe,
    /// Something damaged is dropped: only `-y` repairs it.
    Drop,
}

/// Command line options.
struct Options {
    /// Print a summary (`-v`).
    verbose: bool,
    /// What may be changed.
    mode: Mode,
    /// Device or image to check.
    device: PathBuf,
}

/// Parses the arguments, without the program name.
fn parse_args(args: &[OsString]) -> Result<Options, String> {
    let mut verbose = false;
    let mut mode = None;
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
                let chosen = match flag {
                    'v' => {
                        verbose = true;
                        continue;
                    }
                    // Every check is always made.
                    'f' => continue,
                    'n' => Mode::Check,
                    'p' | 'a' => Mode::Preen,
                    'y' => Mode::Yes,
                    _ => return Err(format!("unknown option '-{flag}'")),
                };
                if mode.is_some_and(|m| m != chosen) {
                    return Err("only one of -n, -p and -y can be given".into());
                }
                mode = Some(chosen);
            }
        } else if device.replace(PathBuf::from(arg)).is_some() {
            return Err("more than one device given".into());
        }
    }
    let device = device.ok_or("no device or image given")?;
    Ok(Options {
        verbose,
        mode: mode.unwrap_or(Mode::Check),
        device,
    })
}

/// Operational error: the check cannot go on.
struct Fatal(String);

impl From<io::Error> for Fatal {
    fn from(e: io::Error) -> Self {
        Self(format!("read error: {e}"))
    }
}

impl From<FormatError> for Fatal {
    fn from(e: FormatError) -> Self {
        Self(format!("cannot encode metadata: {e}"))
    }
}

/// Access to the device, with the blocks changed by repairs kept in memory
/// until [`Device::commit`].
struct Device {
    /// The device or image.
    file: File,
    /// Its size in blocks.
    blocks: u64,
    /// Blocks written, not yet on the device.
    changed: BTreeMap<u64, Vec<u8>>,
}

impl Device {
    /// Opens `path`, read-only for [`Mode::Check`]; for a repair read-write,
    /// and exclusively if it is a block device (which refuses a mounted one).
    fn open(path: &PathBuf, mode: Mode) -> Result<Self, Fatal> {
        let cannot = |e: io::Error| Fatal(format!("cannot open {}: {e}", path.display()));
        let mut file = if mode == Mode::Check {
            File::open(path).map_err(cannot)?
        } else {
            let block_device = std::fs::metadata(path)
                .map_err(cannot)?
                .file_type()
                .is_block_device();
            let mut options = OpenOptions::new();
            options.read(true).write(true);
            if block_device {
                options.custom_flags(O_EXCL);
            }
            options.open(path).map_err(|e| {
                if e.raw_os_error() == Some(16) {
                    Fatal(format!(
                        "{} is in use (mounted?): not repairing it",
                        path.display()
                    ))
                } else {
                    cannot(e)
                }
            })?
        };
        let size = file
            .seek(SeekFrom::End(0))
            .map_err(|e| Fatal(format!("cannot get the size of {}: {e}", path.display())))?;
        Ok(Self {
            file,
            blocks: size / 4096,
            changed: BTreeMap::new(),
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
        for (&b, data) in self.changed.range(block..block.saturating_add(count)) {
            let at = usize::try_from(b - block).unwrap_or(0) * BLOCK_SIZE;
            buf[at..at + BLOCK_SIZE].copy_from_slice(data);
        }
        Ok(buf)
    }

    /// Replaces block `block` (in memory until [`Device::commit`]).
    fn write(&mut self, block: u64, data: Vec<u8>) {
        self.changed.insert(block, data);
    }

    /// Writes the changed blocks to the device and flushes it; returns
    /// whether anything was written.
    fn commit(&mut self) -> Result<bool, Fatal> {
        if self.changed.is_empty() {
            return Ok(false);
        }
        for (&block, data) in &self.changed {
            self.file
                .write_all_at(data, block * 4096)
                .map_err(|e| Fatal(format!("write error: {e}")))?;
        }
        self.file
            .sync_all()
            .map_err(|e| Fatal(format!("cannot flush the device: {e}")))?;
        self.changed.clear();
        Ok(true)
    }
}

/// Where a block pointer is stored.
#[derive(Clone, Copy, Debug)]
enum Slot {
    /// In the inode, at this index of its block pointers.
    Inode(usize),
    /// In this indirect block, at this index.
    Indirect(u32, usize),
}

/// Entries naming an inode: the directory and the name.
type Names = Vec<(u32, Vec<u8>)>;

/// State of one in-use inode.
struct InodeInfo {
    /// The decoded inode, `None` if it could not be decoded.
    inode: Option<Inode>,
    /// Number of directory entries naming it, `.` and `..` included.
    refs: u64,
    /// Directories with an entry (other than `.` and `..`) naming it, and
    /// the names.
    parents: Names,
    /// For a directory, the inode number of its `..` entry.
    dotdot: Option<u32>,
    /// For a directory, the inodes its entries (other than `.` and `..`) name.
    children: Vec<u32>,
    /// For a directory, its logical and physical data blocks below its size,
    /// in logical order (holes left out).
    dir_blocks: Vec<(u64, u32)>,
    /// The blocks it was granted, data and indirect.
    owned: Vec<u32>,
}

impl InodeInfo {
    /// A new entry for `inode`, named by nothing yet.
    fn new(inode: Option<Inode>) -> Self {
        Self {
            inode,
            refs: 0,
            parents: Vec::new(),
            dotdot: None,
            children: Vec::new(),
            dir_blocks: Vec::new(),
            owned: Vec::new(),
        }
    }
}

/// What [`Checker::claim`] decided about a block pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Claim {
    /// The block is the inode's.
    Granted,
    /// The pointer is bad and stays.
    Refused,
    /// The pointer is bad and is cleared.
    Cleared,
}

/// What [`Checker::add_ref`] found about a directory entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ref {
    /// It names an inode in use, with this file type (corrected if it was
    /// wrong and that is repaired).
    Live(u8),
    /// It names no inode in use and stays.
    Dangling,
    /// It names no inode in use and is removed.
    Removed,
}

/// The checker.
struct Checker {
    /// The device.
    dev: Device,
    /// The superblock.
    sb: Superblock,
    /// What may be changed.
    mode: Mode,
    /// Problems found and left.
    errors: u64,
    /// Problems found and repaired.
    fixed: u64,
    /// Problem lines so far.
    reported: u64,
    /// Number of warnings.
    warnings: u64,
    /// In [`Mode::Preen`]: a problem needs `-y`, nothing is written.
    manual: bool,
    /// Inode bitmap.
    inode_bitmap: Vec<u8>,
    /// Block bitmap.
    block_bitmap: Vec<u8>,
    /// Blocks claimed by inodes so far; after the repairs, the blocks in use.
    claimed: Vec<u8>,
    /// In-use inodes.
    inodes: BTreeMap<u32, InodeInfo>,
    /// Inodes whose decoded fields changed.
    dirty_inodes: BTreeSet<u32>,
    /// Inode slots to zero.
    cleared_slots: BTreeSet<u32>,
    /// Directory holes to fill: directory and logical block.
    holes: Vec<(u32, u64)>,
    /// `/lost+found`, once found or made.
    lost_found: Option<u32>,
    /// The next block [`Checker::alloc_block`] tries.
    next_block: u64,
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
    /// Reports a problem whose repair costs `fix`; returns whether to repair
    /// it now.
    fn problem(&mut self, fix: Fix, msg: impl fmt::Display) -> bool {
        let repair = match self.mode {
            Mode::Check => false,
            Mode::Preen => fix == Fix::Safe,
            Mode::Yes => true,
        };
        if repair {
            self.fixed += 1;
        } else {
            self.errors += 1;
            if self.mode == Mode::Preen {
                self.manual = true;
            }
        }
        self.report(msg, if repair { ": fixed" } else { "" });
        repair
    }

    /// Reports a problem that is never repaired.
    fn error(&mut self, msg: impl fmt::Display) {
        self.errors += 1;
        self.report(msg, "");
    }

    /// Prints the line of a problem, `msg` and `suffix`, unless
    /// [`MAX_REPORTED`] lines were printed already.
    fn report(&mut self, msg: impl fmt::Display, suffix: &str) {
        self.reported += 1;
        if self.reported <= MAX_REPORTED {
            println!("fsck.vexfs: {msg}{suffix}");
        }
    }

    /// Reports a problem of inode `ino` whose repair costs `fix` and, if it
    /// is repaired, applies `repair` to the inode.
    fn repair_inode(
        &mut self,
        ino: u32,
        fix: Fix,
        msg: impl fmt::Display,
        repair: impl FnOnce(&mut Inode),
    ) {
        if self.problem(fix, msg) {
            if let Some(inode) = self.inode_mut(ino) {
                repair(inode);
            }
        }
    }

    /// Reports a warning, which does not change the exit status.
    fn warn(&mut self, msg: impl fmt::Display) {
        self.warnings += 1;
        println!("fsck.vexfs: warning: {msg}");
    }

    /// Returns whether repairs are being made.
    fn repairing(&self) -> bool {
        self.mode != Mode::Check
    }

    /// Returns whether bit `n` of `map` is set (out of range bits are not).
    fn test(map: &[u8], n: u64) -> bool {
        format::test_bit(map, bit(n)).unwrap_or(false)
    }

    /// Reads the superblock and the bitmaps.
    fn new(dev: Device, mode: Mode) -> Result<Self, (u8, String)> {
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
        if mode != Mode::Check && sb.has_unknown_ro_compat() {
            return Err((
                EXIT_UNCORRECTED,
                format!(
                    "unknown read-only compatible features {:#x}: cannot repair this filesystem",
                    sb.features_ro_compat
                ),
            ));
        }
        let read = |start, count| {
            dev.read_blocks(start, count)
                .map_err(|Fatal(e)| (EXIT_OPERATIONAL, e))
        };
        let inode_bitmap = read(sb.inode_bitmap_start, sb.inode_bitmap_blocks)?;
        let block_bitmap = read(sb.block_bitmap_start, sb.block_bitmap_blocks)?;
        let claimed = vec![0u8; block_bitmap.len()];
        let next_block = sb.data_start;
        Ok(Self {
            dev,
            sb,
            mode,
            errors: 0,
            fixed: 0,
            reported: 0,
            warnings: 0,
            manual: false,
            inode_bitmap,
            block_bitmap,
            claimed,
            inodes: BTreeMap::new(),
            dirty_inodes: BTreeSet::new(),
            cleared_slots: BTreeSet::new(),
            holes: Vec::new(),
            lost_found: None,
            next_block,
        })
    }

    /// Checks the superblock fields the decoder accepts but fsck cares about.
    fn check_superblock(&mut self, block0: &[u8]) {
        match self.sb.state {
            // Set clean when everything is repaired.
            STATE_ERRORS => {
                self.problem(Fix::Safe, "the filesystem is marked as having errors");
            }
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
            // The superblock is written back into a zeroed block.
            self.problem(Fix::Safe, "block 0 is not zero after the superblock");
        }
    }

    /// Checks the bits of the bitmaps that do not depend on the inodes (the
    /// repair rewrites both bitmaps).
    fn check_bitmap_fixed_bits(&mut self) {
        if !Self::test(&self.inode_bitmap, 0) {
            self.problem(
                Fix::Safe,
                "inode 0 is not marked in use in the inode bitmap",
            );
        }
        let inode_bits = self.sb.inode_bitmap_blocks * format::BITS_PER_BLOCK;
        let mut clear = RangeSet::default();
        for n in self.sb.inode_count..inode_bits {
            if !Self::test(&self.inode_bitmap, n) {
                clear.push(n);
            }
        }
        if !clear.0.is_empty() {
            let msg = format!(
                "inode bitmap bits past the last inode are clear: {}",
                Ranges(&clear.0)
            );
            self.problem(Fix::Safe, msg);
        }
        let mut clear = RangeSet::default();
        for n in 0..self.sb.data_start {
            if !Self::test(&self.block_bitmap, n) {
                clear.push(n);
            }
        }
        if !clear.0.is_empty() {
            let msg = format!(
                "metadata blocks not marked in the block bitmap: {}",
                Ranges(&clear.0)
            );
            self.problem(Fix::Safe, msg);
        }
        let block_bits = self.sb.block_bitmap_blocks * format::BITS_PER_BLOCK;
        let mut clear = RangeSet::default();
        for n in self.sb.block_count..block_bits {
            if !Self::test(&self.block_bitmap, n) {
                clear.push(n);
            }
        }
        if !clear.0.is_empty() {
            let msg = format!(
                "block bitmap bits past the last block are clear: {}",
                Ranges(&clear.0)
            );
            self.problem(Fix::Safe, msg);
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
            if slot.iter().any(|&b| b != 0) && self.problem(Fix::Safe, "inode slot 0 is not zeroed")
            {
                self.cleared_slots.insert(0);
            }
            return;
        }
        let Ok(ino32) = u32::try_from(ino) else {
            return;
        };
        let inode = match Inode::decode(slot) {
            Ok(None) => {
                if marked {
                    self.problem(
                        Fix::Safe,
                        format!("inode {ino} is marked in the inode bitmap but free"),
                    );
                }
                return;
            }
            Ok(Some(inode)) => Some(inode),
            Err(e) => {
                if self.problem(Fix::Drop, format!("inode {ino}: {e}")) {
                    // Cleared: entries naming it are removed later.
                    self.cleared_slots.insert(ino32);
                    return;
                }
                None
            }
        };
        if !marked {
            self.problem(
                Fix::Safe,
                format!("inode {ino} is in use but not marked in the inode bitmap"),
            );
        }
        self.inodes.insert(ino32, InodeInfo::new(inode));
    }

    /// Returns inode `ino` for a change, and marks it to be written.
    fn inode_mut(&mut self, ino: u32) -> Option<&mut Inode> {
        self.dirty_inodes.insert(ino);
        self.inodes.get_mut(&ino).and_then(|i| i.inode.as_mut())
    }

    /// Frees inode `ino`: its blocks are released, its slot zeroed.
    fn drop_inode(&mut self, ino: u32) {
        if let Some(info) = self.inodes.remove(&ino) {
            for block in info.owned {
                let _ = format::clear_bit(&mut self.claimed, bit(u64::from(block)));
            }
        }
        self.dirty_inodes.remove(&ino);
        self.cleared_slots.insert(ino);
    }

    /// Allocates a data block no inode claims; `None` if the disk is full.
    fn alloc_block(&mut self) -> Option<u32> {
        let limit = bit(self.sb.block_count);
        let found = format::find_next_zero_bit(&self.claimed, bit(self.next_block), limit)
            .or_else(|| {
                format::find_next_zero_bit(&self.claimed, bit(self.sb.data_start), limit)
            })?;
        format::set_bit(&mut self.claimed, found).ok()?;
        let block = u64::try_from(found).ok()?;
        self.next_block = block + 1;
        u32::try_from(block).ok()
    }

    /// Allocates a free inode number; `None` if there is none.
    fn alloc_inode(&mut self) -> Option<u32> {
        let ino = (ROOT_INO + 1..u32::try_from(self.sb.inode_count).unwrap_or(u32::MAX))
            .find(|ino| !self.inodes.contains_key(ino))?;
        self.cleared_slots.remove(&ino);
        Some(ino)
    }

    /// Claims block `block` for inode `ino`.
    fn claim(&mut self, ino: u32, block: u32, what: &str) -> Claim {
        let block64 = u64::from(block);
        if !self.sb.is_data_block(block64) {
            let msg = format!("inode {ino}: {what} block {block} is outside the data area");
            return if self.problem(Fix::Drop, msg) {
                Claim::Cleared
            } else {
                Claim::Refused
            };
        }
        if format::test_bit(&self.claimed, bit(block64)).unwrap_or(true) {
            let msg = format!(
                "inode {ino}: {what} block {block} is also used by another inode or pointer"
            );
            return if self.problem(Fix::Drop, msg) {
                Claim::Cleared
            } else {
                Claim::Refused
            };
        }
        let _ = format::set_bit(&mut self.claimed, bit(block64));
        if !Self::test(&self.block_bitmap, block64) {
            self.problem(
                Fix::Safe,
                format!("inode {ino}: {what} block {block} is not marked in the block bitmap"),
            );
        }
        Claim::Granted
    }

    /// Clears the block pointer of inode `ino` at `slot`.
    fn clear_pointer(&mut self, ino: u32, slot: Slot) -> Result<(), Fatal> {
        match slot {
            Slot::Inode(index) => {
                if let Some(inode) = self.inode_mut(ino) {
                    inode.block[index] = 0;
                }
            }
            Slot::Indirect(block, index) => {
                let mut data = self.dev.read(u64::from(block))?;
                format::write_indirect(&mut data, index, 0)?;
                self.dev.write(u64::from(block), data);
            }
        }
        Ok(())
    }

    /// Walks the block tree of pointer `ptr`, stored at `slot`, at `level`
    /// (0 for a data block), whose first logical block is `base`.
    fn walk(
        &mut self,
        ino: u32,
        ptr: u32,
        slot: Slot,
        level: u32,
        base: u64,
        acc: &mut Walk,
    ) -> Result<(), Fatal> {
        let what = if level == 0 { "data" } else { "indirect" };
        match self.claim(ino, ptr, what) {
            Claim::Cleared => return self.clear_pointer(ino, slot),
            Claim::Refused => {
                acc.blocks += 1;
                return Ok(());
            }
            Claim::Granted => {
                acc.blocks += 1;
                acc.owned.push(ptr);
            }
        }
        if level == 0 {
            acc.mapped.push((base, ptr, slot));
            return Ok(());
        }
        let data = self.dev.read(u64::from(ptr))?;
        let span = 1u64 << (10 * (level - 1));
        for index in 0..PTRS_PER_BLOCK {
            let child = format::read_indirect(&data, index).unwrap_or(0);
            if child != 0 {
                let lblk = base + u64::try_from(index).unwrap_or(0) * span;
                self.walk(ino, child, Slot::Indirect(ptr, index), level - 1, lblk, acc)?;
            }
        }
        Ok(())
    }

    /// Checks the block map and size of every decoded inode, then fills the
    /// directory holes to be filled (only now is every claimed block known).
    fn check_block_maps(&mut self) -> Result<(), Fatal> {
        let inos: Vec<u32> = self.inodes.keys().copied().collect();
        for ino in inos {
            let Some(inode) = self.inodes.get(&ino).and_then(|i| i.inode) else {
                continue;
            };
            self.check_block_map(ino, &inode)?;
        }
        if !self.manual {
            self.fill_holes()?;
        }
        Ok(())
    }

    /// Checks the extended attribute block of inode `ino`, if it has one, and
    /// returns the blocks it counts for in the inode (0 or 1).
    fn check_xattr(&mut self, ino: u32, inode: &Inode) -> Result<u64, Fatal> {
        let x = inode.xattr;
        if x == 0 {
            return Ok(0);
        }
        if self.sb.features_ro_compat & format::FEATURE_RO_COMPAT_XATTR == 0 {
            let msg = format!(
                "inode {ino}: extended attribute block {x} without the extended attribute feature"
            );
            self.repair_inode(ino, Fix::Drop, msg, |i| i.xattr = 0);
            return Ok(0);
        }
        match self.claim(ino, x, "extended attribute") {
            Claim::Cleared => {
                if let Some(i) = self.inode_mut(ino) {
                    i.xattr = 0;
                }
                return Ok(0);
            }
            Claim::Refused => return Ok(1),
            Claim::Granted => {}
        }
        let data = self.dev.read(u64::from(x))?;
        if let Err(e) = format::xattr_entries(&data, ino, |_| Ok(())) {
            let msg = format!("inode {ino}: extended attribute block {x}: {e}");
            if self.problem(Fix::Drop, msg) {
                // The block goes back to the free ones.
                let _ = format::clear_bit(&mut self.claimed, bit(u64::from(x)));
                if let Some(i) = self.inode_mut(ino) {
                    i.xattr = 0;
                }
                return Ok(0);
            }
        }
        if let Some(info) = self.inodes.get_mut(&ino) {
            info.owned.push(x);
        }
        Ok(1)
    }

    /// Checks the block map and size of inode `ino`.
    fn check_block_map(&mut self, ino: u32, inode: &Inode) -> Result<(), Fatal> {
        if let Some(info) = self.inodes.get_mut(&ino) {
            info.owned.clear();
        }
        let xattr_blocks = self.check_xattr(ino, inode)?;
        if !inode.has_data_blocks() {
            // Block pointer 0 of a device holds its device number.
            let first = if matches!(inode.file_type(), format::DT_CHR | format::DT_BLK) {
                1
            } else {
                0
            };
            if inode.block[first..].iter().any(|&p| p != 0) {
                let msg = format!("inode {ino}: special file with block pointers");
                self.repair_inode(ino, Fix::Drop, msg, |i| i.block[first..].fill(0));
            }
            if inode.size != 0 {
                let msg = format!("inode {ino}: special file with size {}", inode.size);
                self.repair_inode(ino, Fix::Safe, msg, |i| i.size = 0);
            }
            if inode.blocks != xattr_blocks {
                let msg = format!("inode {ino}: special file owns {} blocks", inode.blocks);
                self.repair_inode(ino, Fix::Safe, msg, |i| i.blocks = xattr_blocks);
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
            self.walk(ino, ptr, Slot::Inode(index), level, base, &mut walk)?;
        }
        walk.blocks += xattr_blocks;
        if let Some(info) = self.inodes.get_mut(&ino) {
            info.owned.append(&mut walk.owned);
        }
        let mut size = inode.size;
        if inode.is_dir() {
            size = self.check_dir_size(ino, size, &walk)?;
        }
        let size_blocks = size.div_ceil(4096);
        let mut past: Vec<(u64, u32, Slot)> = walk
            .mapped
            .iter()
            .copied()
            .filter(|&(lblk, _, _)| lblk >= size_blocks)
            .collect();
        if inode.is_reg() {
            // Blocks preallocated past the end (fallocate with FALLOC_FL_KEEP_SIZE) read as
            // zeroes: they stay. Others hold data a crash kept from reaching the size.
            let mut keep = HashSet::new();
            for &(_, block, _) in &past {
                if self.dev.read(u64::from(block))?.iter().all(|&b| b == 0) {
                    keep.insert(block);
                }
            }
            past.retain(|(_, block, _)| !keep.contains(block));
        }
        if !past.is_empty() {
            let msg = format!(
                "inode {ino}: {} blocks mapped past the end of the file (size {}, first at logical block {})",
                past.len(),
                size,
                past[0].0
            );
            if self.problem(Fix::Safe, msg) {
                // What a truncation would have freed.
                for &(_, block, slot) in &past {
                    self.clear_pointer(ino, slot)?;
                    let _ = format::clear_bit(&mut self.claimed, bit(u64::from(block)));
                    walk.blocks -= 1;
                }
                walk.mapped.retain(|&(lblk, _, _)| lblk < size_blocks);
                if let Some(info) = self.inodes.get_mut(&ino) {
                    let gone: HashSet<u32> = past.iter().map(|&(_, b, _)| b).collect();
                    info.owned.retain(|b| !gone.contains(b));
                }
            }
        }
        if walk.blocks != inode.blocks {
            let msg = format!(
                "inode {ino}: block count is {}, counted {}",
                inode.blocks, walk.blocks
            );
            let blocks = walk.blocks;
            self.repair_inode(ino, Fix::Safe, msg, |i| i.blocks = blocks);
        }
        if inode.is_symlink() {
            let msg = if inode.size == 0 || inode.size >= 4096 {
                Some(format!("inode {ino}: symbolic link of size {}", inode.size))
            } else if !walk.mapped.iter().any(|&(lblk, _, _)| lblk == 0) {
                Some(format!("inode {ino}: symbolic link without data block"))
            } else {
                None
            };
            if let Some(msg) = msg {
                if self.problem(Fix::Drop, msg) {
                    self.drop_inode(ino);
                }
            }
        }
        if inode.is_dir() {
            // Only the mapped blocks: a damaged size may claim billions of
            // blocks, more than fit in memory.
            let mut blocks: Vec<(u64, u32)> = walk
                .mapped
                .iter()
                .filter(|&&(lblk, _, _)| lblk < size_blocks)
                .map(|&(lblk, block, _)| (lblk, block))
                .collect();
            blocks.sort_unstable();
            if let Some(info) = self.inodes.get_mut(&ino) {
                info.dir_blocks = blocks;
            }
        }
        Ok(())
    }

    /// Checks the size of directory `ino` against its mapped blocks; returns
    /// the size it keeps (changed by a repair).
    fn check_dir_size(&mut self, ino: u32, size: u64, walk: &Walk) -> Result<u64, Fatal> {
        let size_blocks = size.div_ceil(4096);
        let mut mapped: Vec<u64> = walk.mapped.iter().map(|&(lblk, _, _)| lblk).collect();
        mapped.sort_unstable();
        let mut repair = false;
        if size == 0 {
            repair |= self.problem(Fix::Safe, format!("directory {ino} is empty (size 0)"));
        }
        let below = mapped.iter().take_while(|&&lblk| lblk < size_blocks);
        let hole = below
            .enumerate()
            .find(|&(i, &lblk)| u64::try_from(i).unwrap_or(u64::MAX) != lblk)
            .map_or_else(
                || u64::try_from(mapped.partition_point(|&l| l < size_blocks)).unwrap_or(u64::MAX),
                |(i, _)| u64::try_from(i).unwrap_or(u64::MAX),
            );
        if hole < size_blocks {
            repair |= self.problem(
                Fix::Safe,
                format!("directory {ino} has a hole at logical block {hole}"),
            );
        }
        if !repair {
            return Ok(size);
        }
        // Keep every mapped block if few holes are between them; otherwise
        // cut the directory at its first hole.
        let end = mapped.last().map_or(1, |&last| last + 1);
        let present: HashSet<u64> = mapped.iter().copied().collect();
        let missing: Vec<u64> = (0..end)
            .filter(|l| !present.contains(l))
            .take(MAX_HOLES_FILLED + 1)
            .collect();
        let new_blocks = if missing.len() <= MAX_HOLES_FILLED {
            end
        } else {
            missing[0].max(1)
        };
        for lblk in missing.into_iter().filter(|&l| l < new_blocks) {
            self.holes.push((ino, lblk));
        }
        let new_size = new_blocks * 4096;
        if let Some(i) = self.inode_mut(ino) {
            i.size = new_size;
        }
        Ok(new_size)
    }

    /// Fills the holes of directories recorded by [`Checker::check_dir_size`]
    /// with empty directory blocks.
    fn fill_holes(&mut self) -> Result<(), Fatal> {
        for (dir, lblk) in std::mem::take(&mut self.holes) {
            let mut data = vec![0u8; BLOCK_SIZE];
            if lblk == 0 {
                // `..` is set right when the tree is checked.
                format::init_dir(&mut data, dir, ROOT_INO)?;
            } else {
                format::init_empty_block(&mut data)?;
            }
            let Some(block) = self.map_new_block(dir, lblk, data)? else {
                self.error(format!(
                    "directory {dir}: no free block to fill the hole at logical block {lblk}"
                ));
                continue;
            };
            if let Some(info) = self.inodes.get_mut(&dir) {
                let at = info.dir_blocks.partition_point(|&(l, _)| l < lblk);
                info.dir_blocks.insert(at, (lblk, block));
            }
        }
        Ok(())
    }

    /// Maps logical block `lblk` of inode `ino`, a hole, to a new block
    /// holding `data`, with the indirect blocks it needs; returns the block,
    /// `None` if the disk is full or the path to it is damaged.
    fn map_new_block(&mut self, ino: u32, lblk: u64, data: Vec<u8>) -> Result<Option<u32>, Fatal> {
        let Some(mut inode) = self.inodes.get(&ino).and_then(|i| i.inode) else {
            return Ok(None);
        };
        let path = format::block_path(lblk)?;
        let offsets = path.as_slice();
        // The indirect blocks on the path that exist already.
        let mut tables = Vec::new();
        let mut current = inode.block[offsets[0]];
        for &offset in &offsets[1..] {
            if current == 0 {
                break;
            }
            if !self.sb.is_data_block(u64::from(current)) {
                return Ok(None);
            }
            tables.push(current);
            current = format::read_indirect(&self.dev.read(u64::from(current))?, offset)?;
        }
        if current != 0 {
            return Ok(None);
        }
        let present = tables.len();
        let needed = offsets.len() - present;
        let mut new = Vec::with_capacity(needed);
        for _ in 0..needed {
            match self.alloc_block() {
                Some(block) => new.push(block),
                None => {
                    for block in new {
                        let _ = format::clear_bit(&mut self.claimed, bit(u64::from(block)));
                    }
                    return Ok(None);
                }
            }
        }
        // New indirect blocks, each pointing to the next, then the data.
        let mut data = Some(data);
        for i in 0..needed {
            let content = if i + 1 == needed {
                data.take().unwrap_or_default()
            } else {
                let mut table = vec![0u8; BLOCK_SIZE];
                format::write_indirect(&mut table, offsets[present + i + 1], new[i + 1])?;
                table
            };
            self.dev.write(u64::from(new[i]), content);
        }
        match tables.last() {
            None => inode.block[offsets[0]] = new[0],
            Some(&table) => {
                let mut content = self.dev.read(u64::from(table))?;
                format::write_indirect(&mut content, offsets[present], new[0])?;
                self.dev.write(u64::from(table), content);
            }
        }
        inode.blocks += u64::try_from(needed).unwrap_or(0);
        if let Some(info) = self.inodes.get_mut(&ino) {
            info.inode = Some(inode);
            info.owned.extend_from_slice(&new);
        }
        self.dirty_inodes.insert(ino);
        Ok(new.last().copied())
    }

    /// Checks that every block marked in the bitmap is used (the repair
    /// rewrites the bitmap).
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
            let msg = format!(
                "{} blocks marked in the block bitmap but not used: {}",
                leaked.count(),
                Ranges(&leaked.0)
            );
            self.problem(Fix::Safe, msg);
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

    /// Checks directory `dir`; a block with a repaired problem is rebuilt
    /// from the entries it keeps.
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
            let mut rebuild = false;
            if let Err(e) = format::validate_dir_block(&data) {
                if !self.problem(
                    Fix::Drop,
                    format!("directory {dir}, logical block {lblk}: {e}"),
                ) {
                    continue;
                }
                rebuild = true;
            }
            // The live records, up to the first damaged one.
            let records: Vec<(Vec<u8>, u32, u8)> = format::dir_iter(&data)
                .map_while(|e| e.ok())
                .filter(|e| e.is_live())
                .map(|e| (e.name.to_vec(), e.ino, e.file_type))
                .collect();
            let mut skip = 0;
            let mut dotdot = ROOT_INO;
            if lblk == 0 {
                let dots = if rebuild {
                    match records.get(..2) {
                        Some([(a, dot, _), (b, dd, _)]) if a == b"." && b == b".." => {
                            Ok((*dot, *dd))
                        }
                        _ => Err(None),
                    }
                } else {
                    format::read_dots(&data).map_err(Some)
                };
                match dots {
                    Ok((dot, dd)) => {
                        let mut dot = dot;
                        if dot != dir
                            && self
                                .problem(Fix::Safe, format!("directory {dir}: '.' is inode {dot}"))
                        {
                            rebuild = true;
                            dot = dir;
                        }
                        self.add_ref(dir, dot, b".", DT_DIR);
                        let live = matches!(self.add_ref(dir, dd, b"..", DT_DIR), Ref::Live(_));
                        dotdot = dd;
                        if let Some(info) = self.inodes.get_mut(&dir) {
                            info.dotdot = live.then_some(dd);
                        }
                        skip = 2;
                    }
                    Err(e) => {
                        // A damaged block is rebuilt with new dots, `..`
                        // set right when the tree is checked.
                        let rebuilt = match e {
                            None => true,
                            Some(e) => self.problem(Fix::Drop, format!("directory {dir}: {e}")),
                        };
                        if rebuilt {
                            rebuild = true;
                            self.add_ref(dir, dir, b".", DT_DIR);
                            let live =
                                matches!(self.add_ref(dir, ROOT_INO, b"..", DT_DIR), Ref::Live(_));
                            if let Some(info) = self.inodes.get_mut(&dir) {
                                info.dotdot = live.then_some(ROOT_INO);
                            }
                        }
                    }
                }
            }
            let mut keep: Vec<(Vec<u8>, u32, u8)> = Vec::new();
            for (name, ino, file_type) in records.into_iter().skip(skip) {
                let shown = String::from_utf8_lossy(&name).into_owned();
                if name == b"." || name == b".." {
                    if self.problem(
                        Fix::Drop,
                        format!("directory {dir}: misplaced '{shown}' entry"),
                    ) {
                        rebuild = true;
                    } else {
                        keep.push((name, ino, file_type));
                    }
                    continue;
                }
                if !seen.insert(name.clone())
                    && self.problem(
                        Fix::Drop,
                        format!("directory {dir}: duplicate entry '{shown}'"),
                    )
                {
                    rebuild = true;
                    continue;
                }
                match self.add_ref(dir, ino, &name, file_type) {
                    Ref::Live(t) => {
                        rebuild |= t != file_type;
                        if let Some(info) = self.inodes.get_mut(&ino) {
                            info.parents.push((dir, name.clone()));
                        }
                        if let Some(info) = self.inodes.get_mut(&dir) {
                            info.children.push(ino);
                        }
                        keep.push((name, ino, t));
                    }
                    Ref::Dangling => keep.push((name, ino, file_type)),
                    Ref::Removed => rebuild = true,
                }
            }
            if rebuild {
                let mut new = vec![0u8; BLOCK_SIZE];
                if lblk == 0 {
                    format::init_dir(&mut new, dir, dotdot)?;
                } else {
                    format::init_empty_block(&mut new)?;
                }
                for (name, ino, t) in &keep {
                    if !format::insert(&mut new, name, *ino, *t).unwrap_or(false) {
                        let shown = String::from_utf8_lossy(name).into_owned();
                        self.error(format!(
                            "directory {dir}: entry '{shown}' does not fit its rebuilt block"
                        ));
                    }
                }
                self.dev.write(u64::from(pblk), new);
            }
        }
        Ok(())
    }

    /// Records that directory `dir` has an entry `name` of type `file_type`
    /// for inode `ino`.
    fn add_ref(&mut self, dir: u32, ino: u32, name: &[u8], file_type: u8) -> Ref {
        let shown = String::from_utf8_lossy(name).into_owned();
        let msg = if !self.sb.is_valid_ino(u64::from(ino)) {
            format!("directory {dir}: entry '{shown}' has invalid inode number {ino}")
        } else if !self.inodes.contains_key(&ino) {
            format!("directory {dir}: entry '{shown}' refers to free inode {ino}")
        } else {
            let actual = self.inodes.get_mut(&ino).and_then(|info| {
                info.refs += 1;
                info.inode.map(|i| i.file_type())
            });
            if let Some(expected) = actual.filter(|&t| t != file_type) {
                if self.problem(
                    Fix::Safe,
                    format!(
                        "directory {dir}: entry '{shown}' has file type {file_type}, inode {ino} has type {expected}"
                    ),
                ) {
                    return Ref::Live(expected);
                }
            }
            return Ref::Live(file_type);
        };
        if self.problem(Fix::Safe, msg) {
            Ref::Removed
        } else {
            Ref::Dangling
        }
    }

    /// Checks the tree structure, reachability and link counts.
    fn check_tree(&mut self) -> Result<(), Fatal> {
        self.check_root()?;
        self.check_names()?;
        self.check_reachable()?;
        self.check_dotdot()?;
        self.check_links();
        Ok(())
    }

    /// Checks that the root inode is a directory; a repair makes a new one.
    fn check_root(&mut self) -> Result<(), Fatal> {
        let msg = match self.inodes.get(&ROOT_INO).map(|i| i.inode) {
            None => "the root inode is not in use",
            Some(Some(inode)) if !inode.is_dir() => "the root inode is not a directory",
            _ => return Ok(()),
        };
        if self.problem(Fix::Drop, msg) {
            self.drop_inode(ROOT_INO);
            if !self.make_dir(ROOT_INO, ROOT_INO, 0o755)? {
                self.error("no free block for a new root directory");
            }
        }
        Ok(())
    }

    /// Makes directory `ino` with `..` naming `parent` and permissions
    /// `perm`, named by nothing yet; returns false if the disk is full.
    fn make_dir(&mut self, ino: u32, parent: u32, perm: u16) -> Result<bool, Fatal> {
        let Some(block) = self.alloc_block() else {
            return Ok(false);
        };
        let mut data = vec![0u8; BLOCK_SIZE];
        format::init_dir(&mut data, ino, parent)?;
        self.dev.write(u64::from(block), data);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
        let mut inode = Inode {
            mode: format::S_IFDIR | perm,
            nlink: 2,
            size: 4096,
            blocks: 1,
            atime_sec: now,
            mtime_sec: now,
            ctime_sec: now,
            ..Inode::default()
        };
        inode.block[0] = block;
        let mut info = InodeInfo::new(Some(inode));
        info.refs = 1;
        info.dotdot = Some(parent);
        info.dir_blocks = vec![(0, block)];
        info.owned = vec![block];
        self.cleared_slots.remove(&ino);
        self.inodes.insert(ino, info);
        self.dirty_inodes.insert(ino);
        if let Some(p) = self.inodes.get_mut(&parent) {
            p.refs += 1;
        }
        Ok(true)
    }

    /// Checks that every directory has one name and the root none; a repair
    /// removes the extra entries.
    fn check_names(&mut self) -> Result<(), Fatal> {
        let named: Vec<(u32, Names)> = self
            .inodes
            .iter()
            .filter(|(&ino, info)| {
                info.inode.is_some_and(|i| i.is_dir())
                    && (info.parents.len() > 1 || (ino == ROOT_INO && !info.parents.is_empty()))
            })
            .map(|(&ino, info)| (ino, info.parents.clone()))
            .collect();
        for (ino, parents) in named {
            let (msg, extra) = if ino == ROOT_INO {
                (
                    format!("the root directory is named by directory {}", parents[0].0),
                    parents,
                )
            } else {
                (
                    format!("directory {ino} is named by {} entries", parents.len()),
                    parents[1..].to_vec(),
                )
            };
            if self.problem(Fix::Drop, msg) {
                for (dir, name) in extra {
                    self.unlink(dir, &name, ino)?;
                }
            }
        }
        Ok(())
    }

    /// Removes the entry `name` of directory `dir`, which names `ino`.
    fn unlink(&mut self, dir: u32, name: &[u8], ino: u32) -> Result<(), Fatal> {
        let blocks = self
            .inodes
            .get(&dir)
            .map(|i| i.dir_blocks.clone())
            .unwrap_or_default();
        for (_, block) in blocks {
            let mut data = self.dev.read(u64::from(block))?;
            if format::remove(&mut data, name).unwrap_or(false) {
                self.dev.write(u64::from(block), data);
                break;
            }
        }
        if let Some(info) = self.inodes.get_mut(&ino) {
            info.refs = info.refs.saturating_sub(1);
            if let Some(at) = info
                .parents
                .iter()
                .position(|(d, n)| *d == dir && n.as_slice() == name)
            {
                info.parents.remove(at);
            }
        }
        if let Some(info) = self.inodes.get_mut(&dir) {
            if let Some(at) = info.children.iter().position(|&c| c == ino) {
                info.children.remove(at);
            }
        }
        Ok(())
    }

    /// Returns the inodes reached from the root directory.
    fn reached(&self) -> HashSet<u32> {
        let mut reached = HashSet::new();
        if self.inodes.contains_key(&ROOT_INO) {
            reached.insert(ROOT_INO);
            self.reach(ROOT_INO, &mut reached);
        }
        reached
    }

    /// Adds what directory `from` reaches to `reached`.
    fn reach(&self, from: u32, reached: &mut HashSet<u32>) {
        let mut queue = VecDeque::from([from]);
        while let Some(dir) = queue.pop_front() {
            if let Some(info) = self.inodes.get(&dir) {
                for &child in &info.children {
                    if reached.insert(child) {
                        queue.push_back(child);
                    }
                }
            }
        }
    }

    /// Checks that every inode is reached from the root; a repair connects
    /// the top of each detached tree to `/lost+found`.
    fn check_reachable(&mut self) -> Result<(), Fatal> {
        let mut reached = self.reached();
        let detached: Vec<u32> = self
            .inodes
            .keys()
            .copied()
            .filter(|ino| !reached.contains(ino))
            .collect();
        let mut repair = false;
        for &ino in &detached {
            repair |= self.problem(
                Fix::Safe,
                format!("inode {ino} is not connected to the root directory"),
            );
        }
        if !repair {
            return Ok(());
        }
        for ino in detached {
            if reached.contains(&ino) {
                continue;
            }
            // Climb to the top of its tree (a cycle stops the climb).
            let mut top = ino;
            let mut climbed = HashSet::from([ino]);
            while let Some(parent) = self
                .inodes
                .get(&top)
                .and_then(|i| i.parents.first())
                .map(|&(p, _)| p)
            {
                if reached.contains(&parent) || !climbed.insert(parent) {
                    break;
                }
                top = parent;
            }
            let Some(lost_found) = self.lost_and_found(&mut reached)? else {
                self.error(format!(
                    "inode {top}: cannot be connected, no /lost+found could be made"
                ));
                return Ok(());
            };
            let is_dir = self
                .inodes
                .get(&top)
                .and_then(|i| i.inode)
                .is_some_and(|i| i.is_dir());
            if is_dir {
                // A directory has one name: break the cycle it is in.
                let parents = self
                    .inodes
                    .get(&top)
                    .map(|i| i.parents.clone())
                    .unwrap_or_default();
                for (dir, name) in parents {
                    self.unlink(dir, &name, top)?;
                }
            }
            self.connect(lost_found, top)?;
            reached.insert(top);
            self.reach(top, &mut reached);
        }
        Ok(())
    }

    /// Returns `/lost+found`, made if there is none.
    fn lost_and_found(&mut self, reached: &mut HashSet<u32>) -> Result<Option<u32>, Fatal> {
        if self.lost_found.is_some() {
            return Ok(self.lost_found);
        }
        let Some(root) = self.inodes.get(&ROOT_INO) else {
            return Ok(None);
        };
        let existing = root.children.iter().copied().find(|c| {
            self.inodes.get(c).is_some_and(|i| {
                i.parents
                    .iter()
                    .any(|(d, n)| *d == ROOT_INO && n.as_slice() == LOST_FOUND)
            })
        });
        if let Some(ino) = existing {
            let is_dir = self
                .inodes
                .get(&ino)
                .and_then(|i| i.inode)
                .is_some_and(|i| i.is_dir());
            if !is_dir {
                return Ok(None);
            }
            self.lost_found = Some(ino);
            return Ok(self.lost_found);
        }
        let Some(ino) = self.alloc_inode() else {
            return Ok(None);
        };
        if !self.make_dir(ino, ROOT_INO, 0o700)? {
            return Ok(None);
        }
        if !self.add_entry(ROOT_INO, LOST_FOUND, ino, DT_DIR)? {
            self.drop_inode(ino);
            if let Some(r) = self.inodes.get_mut(&ROOT_INO) {
                r.refs -= 1;
            }
            return Ok(None);
        }
        if let Some(info) = self.inodes.get_mut(&ino) {
            info.refs += 1;
            info.parents.push((ROOT_INO, LOST_FOUND.to_vec()));
        }
        if let Some(r) = self.inodes.get_mut(&ROOT_INO) {
            r.children.push(ino);
        }
        reached.insert(ino);
        self.lost_found = Some(ino);
        Ok(self.lost_found)
    }

    /// Returns whether directory `dir` has an entry `name`.
    fn has_entry(&self, dir: u32, name: &[u8]) -> Result<bool, Fatal> {
        let blocks = self
            .inodes
            .get(&dir)
            .map(|i| i.dir_blocks.clone())
            .unwrap_or_default();
        for (_, block) in blocks {
            let data = self.dev.read(u64::from(block))?;
            if format::find(&data, name).ok().flatten().is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Adds the entry `name` for `ino` of type `file_type` to directory
    /// `dir`, growing it by a block if needed; returns false if the disk is
    /// full.
    fn add_entry(&mut self, dir: u32, name: &[u8], ino: u32, file_type: u8) -> Result<bool, Fatal> {
        let Some(info) = self.inodes.get(&dir) else {
            return Ok(false);
        };
        let blocks = info.dir_blocks.clone();
        let size = info.inode.map_or(0, |i| i.size);
        for (_, block) in blocks {
            let mut data = self.dev.read(u64::from(block))?;
            if format::insert(&mut data, name, ino, file_type).unwrap_or(false) {
                self.dev.write(u64::from(block), data);
                return Ok(true);
            }
        }
        let lblk = size / 4096;
        let mut data = vec![0u8; BLOCK_SIZE];
        format::init_empty_block(&mut data)?;
        if !format::insert(&mut data, name, ino, file_type)? {
            return Ok(false);
        }
        let Some(block) = self.map_new_block(dir, lblk, data)? else {
            return Ok(false);
        };
        if let Some(i) = self.inode_mut(dir) {
            i.size += 4096;
        }
        if let Some(info) = self.inodes.get_mut(&dir) {
            info.dir_blocks.push((lblk, block));
        }
        Ok(true)
    }

    /// Names `ino` in `/lost+found` (directory `lost_found`) as `#INO`.
    fn connect(&mut self, lost_found: u32, ino: u32) -> Result<(), Fatal> {
        let Some(inode) = self.inodes.get(&ino).and_then(|i| i.inode) else {
            self.error(format!(
                "inode {ino}: cannot be connected, it does not decode"
            ));
            return Ok(());
        };
        let mut name = format!("#{ino}").into_bytes();
        let mut n = 1;
        while self.has_entry(lost_found, &name)? {
            name = format!("#{ino}.{n}").into_bytes();
            n += 1;
        }
        if !self.add_entry(lost_found, &name, ino, inode.file_type())? {
            self.error(format!("inode {ino}: no room in /lost+found"));
            return Ok(());
        }
        if let Some(info) = self.inodes.get_mut(&ino) {
            info.refs += 1;
            info.parents.push((lost_found, name));
        }
        if let Some(info) = self.inodes.get_mut(&lost_found) {
            info.children.push(ino);
        }
        if inode.is_dir() {
            self.set_dotdot(ino, lost_found)?;
        }
        Ok(())
    }

    /// Sets `..` of directory `dir` to `parent`.
    fn set_dotdot(&mut self, dir: u32, parent: u32) -> Result<(), Fatal> {
        let Some(info) = self.inodes.get(&dir) else {
            return Ok(());
        };
        let old = info.dotdot;
        let Some(&(0, block)) = info.dir_blocks.first() else {
            return Ok(());
        };
        let mut data = self.dev.read(u64::from(block))?;
        if format::set_dotdot(&mut data, parent).is_err() {
            return Ok(());
        }
        self.dev.write(u64::from(block), data);
        if let Some(old) = old.and_then(|o| self.inodes.get_mut(&o)) {
            old.refs = old.refs.saturating_sub(1);
        }
        if let Some(p) = self.inodes.get_mut(&parent) {
            p.refs += 1;
        }
        if let Some(info) = self.inodes.get_mut(&dir) {
            info.dotdot = Some(parent);
        }
        Ok(())
    }

    /// Checks that `..` of every directory names its parent.
    fn check_dotdot(&mut self) -> Result<(), Fatal> {
        let dirs: Vec<(u32, Option<u32>, u32)> = self
            .inodes
            .iter()
            .filter(|(_, info)| info.inode.is_some_and(|i| i.is_dir()))
            .filter_map(|(&ino, info)| {
                let expected = if ino == ROOT_INO {
                    Some(ROOT_INO)
                } else {
                    info.parents.first().map(|&(p, _)| p)
                };
                expected.map(|e| (ino, info.dotdot, e))
            })
            .filter(|&(_, dotdot, expected)| dotdot != Some(expected))
            .collect();
        for (ino, dotdot, expected) in dirs {
            let repair = match dotdot {
                Some(_) if ino == ROOT_INO => {
                    self.problem(Fix::Safe, "the root directory's '..' is not itself")
                }
                Some(d) => self.problem(
                    Fix::Safe,
                    format!("directory {ino}: '..' is inode {d}, its parent is {expected}"),
                ),
                // A `..` naming no inode in use: reported already.
                None => self.repairing() && !self.manual,
            };
            if repair {
                self.set_dotdot(ino, expected)?;
            }
        }
        Ok(())
    }

    /// Checks the link count of every inode against its entries.
    fn check_links(&mut self) {
        let wrong: Vec<(u32, String, u64)> = self
            .inodes
            .iter()
            .filter_map(|(&ino, info)| {
                let inode = info.inode?;
                let msg = if inode.nlink == 0 {
                    format!("inode {ino} is in use with no links")
                } else if u64::from(inode.nlink) != info.refs {
                    format!(
                        "inode {ino}: link count is {}, counted {}",
                        inode.nlink, info.refs
                    )
                } else {
                    return None;
                };
                Some((ino, msg, info.refs))
            })
            .collect();
        for (ino, msg, refs) in wrong {
            // Everything is named once repaired: no count stays 0.
            self.repair_inode(ino, Fix::Safe, msg, |i| {
                if refs > 0 {
                    i.nlink = u32::try_from(refs).unwrap_or(u32::MAX);
                }
            });
        }
    }

    /// Compares the free counts of the superblock with the bitmaps
    /// `block_map` and `inode_map`; returns the number of blocks in use, the
    /// free block and inode counts, and a line for each count that differs.
    fn free_counts(&self, block_map: &[u8], inode_map: &[u8]) -> (u64, u64, u64, Vec<String>) {
        let used_blocks = format::count_set_bits(block_map, bit(self.sb.block_count));
        let used_inodes = format::count_set_bits(inode_map, bit(self.sb.inode_count));
        let free_blocks = self.sb.block_count.saturating_sub(used_blocks);
        let free_inodes = self.sb.inode_count.saturating_sub(used_inodes);
        let mut wrong = Vec::new();
        if free_blocks != self.sb.free_blocks {
            wrong.push(format!(
                "free block count is {} in the superblock, counted {free_blocks}",
                self.sb.free_blocks
            ));
        }
        if free_inodes != self.sb.free_inodes {
            wrong.push(format!(
                "free inode count is {} in the superblock, counted {free_inodes}",
                self.sb.free_inodes
            ));
        }
        (used_blocks, free_blocks, free_inodes, wrong)
    }

    /// Warns of free counts of the superblock that disagree with the
    /// bitmaps; returns the number of blocks in use.
    fn check_counts(&mut self) -> u64 {
        let (used_blocks, _, _, wrong) = self.free_counts(&self.block_bitmap, &self.inode_bitmap);
        for msg in wrong {
            self.warn(msg);
        }
        used_blocks
    }

    /// Returns the inode table block holding slot `ino` and the offset of
    /// the slot in it.
    fn slot_location(&self, ino: u32) -> (u64, usize) {
        let ino = u64::from(ino);
        let index = usize::try_from(ino % INODES_PER_BLOCK).unwrap_or(0);
        (
            self.sb.inode_table_start + ino / INODES_PER_BLOCK,
            index * INODE_SIZE,
        )
    }

    /// Writes the repairs: the inodes, bitmaps rebuilt from what is in use,
    /// the free counts and a clean state. Returns the number of blocks in
    /// use and whether anything was written.
    fn commit(&mut self) -> Result<(u64, bool), Fatal> {
        for ino in self.cleared_slots.clone() {
            let (block, offset) = self.slot_location(ino);
            let mut data = self.dev.read(block)?;
            format::clear_inode_slot(&mut data[offset..])?;
            self.dev.write(block, data);
        }
        for ino in self.dirty_inodes.clone() {
            let Some(inode) = self.inodes.get(&ino).and_then(|i| i.inode) else {
                continue;
            };
            let (block, offset) = self.slot_location(ino);
            let mut data = self.dev.read(block)?;
            inode.encode(&mut data[offset..])?;
            self.dev.write(block, data);
        }
        let mut inode_map = vec![0u8; self.inode_bitmap.len()];
        let inode_bits = self.sb.inode_bitmap_blocks * format::BITS_PER_BLOCK;
        for n in std::iter::once(0)
            .chain(self.inodes.keys().map(|&i| u64::from(i)))
            .chain(self.sb.inode_count..inode_bits)
        {
            let _ = format::set_bit(&mut inode_map, bit(n));
        }
        let mut block_map = self.claimed.clone();
        let block_bits = self.sb.block_bitmap_blocks * format::BITS_PER_BLOCK;
        for n in (0..self.sb.data_start).chain(self.sb.block_count..block_bits) {
            let _ = format::set_bit(&mut block_map, bit(n));
        }
        for (start, old, new) in [
            (self.sb.inode_bitmap_start, &self.inode_bitmap, &inode_map),
            (self.sb.block_bitmap_start, &self.block_bitmap, &block_map),
        ] {
            for (i, (o, n)) in old
                .chunks_exact(BLOCK_SIZE)
                .zip(new.chunks_exact(BLOCK_SIZE))
                .enumerate()
            {
                if o != n {
                    let block = start + u64::try_from(i).unwrap_or(0);
                    self.dev.changed.insert(block, n.to_vec());
                }
            }
        }
        let (used_blocks, free_blocks, free_inodes, wrong) =
            self.free_counts(&block_map, &inode_map);
        for msg in wrong {
            self.problem(Fix::Safe, msg);
        }
        self.sb.free_blocks = free_blocks;
        self.sb.free_inodes = free_inodes;
        if self.errors == 0 {
            self.sb.state = STATE_CLEAN;
        }
        let mut block0 = vec![0u8; BLOCK_SIZE];
        self.sb.encode(&mut block0)?;
        if block0 != self.dev.read(0)? {
            self.dev.write(0, block0);
        }
        Ok((used_blocks, self.dev.commit()?))
    }
}

/// Accumulator of the block tree walk of one inode.
#[derive(Default)]
struct Walk {
    /// Blocks referenced, data and indirect.
    blocks: u64,
    /// Logical and physical block numbers of the data blocks, and where
    /// their pointers are.
    mapped: Vec<(u64, u32, Slot)>,
    /// Blocks granted.
    owned: Vec<u32>,
}

/// Outcome of one round of checks (and repairs).
struct Round {
    /// Problems left.
    errors: u64,
    /// Problems repaired.
    fixed: u64,
    /// Whether anything was written.
    written: bool,
    /// Whether a problem needs `-y` (in [`Mode::Preen`]).
    manual: bool,
    /// In-use inodes, blocks in use and blocks in all.
    summary: (usize, u64, u64),
}

/// Returns the loop device backed by the image `path`, if any (it may be
/// mounted).
fn loop_device_of(path: &PathBuf) -> Option<String> {
    let wanted = std::fs::canonicalize(path).ok()?;
    for entry in std::fs::read_dir("/sys/block").ok()?.flatten() {
        let backing = entry.path().join("loop/backing_file");
        if let Ok(file) = std::fs::read_to_string(&backing) {
            if std::path::Path::new(file.trim_end()) == wanted {
                return Some(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    None
}

/// Checks (and repairs) the filesystem on `options.device` once.
fn round(options: &Options) -> Result<Round, u8> {
    let dev = Device::open(&options.device, options.mode).map_err(|Fatal(e)| {
        eprintln!("fsck.vexfs: {e}");
        EXIT_OPERATIONAL
    })?;
    let mut checker = Checker::new(dev, options.mode).map_err(|(code, msg)| {
        if code == EXIT_OPERATIONAL {
            eprintln!("fsck.vexfs: {}: {msg}", options.device.display());
        } else {
            println!("fsck.vexfs: {msg}");
        }
        code
    })?;
    let result = (|| -> Result<(u64, bool), Fatal> {
        let block0 = checker.dev.read(0)?;
        checker.check_superblock(&block0);
        checker.check_bitmap_fixed_bits();
        checker.scan_inodes()?;
        checker.check_block_maps()?;
        checker.check_leaks();
        checker.check_directories()?;
        checker.check_tree()?;
        if checker.mode == Mode::Check || checker.manual {
            Ok((checker.check_counts(), false))
        } else {
            checker.commit()
        }
    })();
    let (used_blocks, written) = result.map_err(|Fatal(e)| {
        eprintln!("fsck.vexfs: {}: {e}", options.device.display());
        EXIT_OPERATIONAL
    })?;
    if checker.reported > MAX_REPORTED {
        println!(
            "fsck.vexfs: {} more problems not shown",
            checker.reported - MAX_REPORTED
        );
    }
    Ok(Round {
        errors: checker.errors,
        fixed: checker.fixed,
        written,
        manual: checker.manual,
        summary: (checker.inodes.len(), used_blocks, checker.sb.block_count),
    })
}

/// Checks (and repairs) the filesystem on `options.device`; returns the exit
/// status.
fn check(options: &Options) -> u8 {
    if options.mode != Mode::Check {
        if let Some(dev) = loop_device_of(&options.device) {
            eprintln!(
                "fsck.vexfs: {} is in use by /dev/{dev}: not repairing it",
                options.device.display()
            );
            return EXIT_OPERATIONAL;
        }
    }
    let mut fixed = 0;
    for _ in 0..MAX_PASSES {
        let r = match round(options) {
            Ok(r) => r,
            Err(code) => return code,
        };
        fixed += r.fixed;
        if options.mode == Mode::Check || r.manual || r.errors > 0 || !r.written {
            if options.verbose {
                let (inodes, used, all) = r.summary;
                println!("{inodes} inodes, {used} blocks used of {all}");
            }
            if r.manual {
                println!(
                    "fsck.vexfs: {}: UNEXPECTED INCONSISTENCY; RUN fsck.vexfs MANUALLY (-y)",
                    options.device.display()
                );
            }
            return if r.errors > 0 {
                EXIT_UNCORRECTED
            } else if fixed > 0 {
                EXIT_CORRECTED
            } else {
                EXIT_OK
            };
        }
    }
    println!("fsck.vexfs: the repairs do not converge after {MAX_PASSES} rounds");
    EXIT_UNCORRECTED
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
