// SPDX-License-Identifier: GPL-2.0

//! `mkfs.vexfs`: creates a VexFS filesystem on a block device or image file.
//!
//! ```text
//! mkfs.vexfs [-f] [-L label] [-N inodes] [-q] DEVICE|IMAGE [SIZE]
//! ```
//!
//! The size of the filesystem is the size of the device or file, or `SIZE`
//! bytes (with an optional `K`, `M`, `G` or `T` binary suffix). A regular
//! file shorter than `SIZE` is created or extended. Like `mkfs.xfs`, it
//! refuses a target that already holds a filesystem it recognises (VexFS,
//! ext2/3/4, XFS, btrfs, F2FS, FAT, ISO 9660, squashfs, swap, LUKS) or a
//! partition table, unless `-f` is given. The library is also used by the
//! integration tests of `fsck.vexfs`.

use std::{
    ffi::OsString,
    fmt,
    fs::{
        self,
        File,
        OpenOptions, //
    },
    io::{
        self,
        Read,
        Seek,
        SeekFrom, //
    },
    os::unix::{
        ffi::OsStrExt,
        fs::{
            FileExt,
            FileTypeExt,
            OpenOptionsExt, //
        },
    },
    path::PathBuf,
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
    Geometry,
    Inode,
    Superblock,
    BITS_PER_BLOCK,
    BLOCK_SIZE,
    ROOT_INO,
    S_IFDIR, //
};

/// Usage line of `mkfs.vexfs`.
pub const USAGE: &str = "usage: mkfs.vexfs [-f] [-L label] [-N inodes] [-q] DEVICE|IMAGE [SIZE]";

/// `O_EXCL`: on a block device, fail if it is mounted or otherwise in use.
const O_EXCL: i32 = 0o200;

/// Bytes written at once when zeroing a region.
const ZERO_CHUNK: usize = 1 << 20;

/// Parsed command line of `mkfs.vexfs`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Volume label (`-L`), at most 32 bytes.
    pub label: Vec<u8>,
    /// Inode count (`-N`), or `None` for the default policy.
    pub inodes: Option<u64>,
    /// Print nothing on success (`-q`).
    pub quiet: bool,
    /// Overwrite an existing filesystem or partition table (`-f`).
    pub force: bool,
    /// Block device or image file.
    pub device: PathBuf,
    /// Filesystem size in bytes; a shorter regular file is created or extended.
    pub size: Option<u64>,
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Print the usage and exit successfully.
    Help,
    /// Create a filesystem.
    Format(Options),
}

/// Error of `mkfs.vexfs`, a message for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Builds an [`Error`] from anything printable.
fn err(msg: impl fmt::Display) -> Error {
    Error(msg.to_string())
}

/// Builds an [`Error`] for an I/O error on the device.
fn io_err(what: &str, path: &std::path::Path, e: io::Error) -> Error {
    Error(format!("{what} {}: {e}", path.display()))
}

/// Parses a size: a decimal number of bytes with an optional `K`, `M`, `G`
/// or `T` (binary) suffix.
pub fn parse_size(text: &str) -> Result<u64, Error> {
    let bad = || err(format!("invalid size '{text}'"));
    let (digits, shift) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(bad()),
            };
            (&text[..i], shift)
        }
        _ => (text, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let value: u64 = digits.parse().map_err(|_| bad())?;
    value.checked_mul(1 << shift).ok_or_else(bad)
}

/// Parses the arguments of `mkfs.vexfs`, without the program name.
pub fn parse_args(args: &[OsString]) -> Result<Command, Error> {
    let mut options = Options::default();
    let mut positional = Vec::new();
    let mut iter = args.iter();
    let mut only_positional = false;
    while let Some(arg) = iter.next() {
        let bytes = arg.as_bytes();
        if only_positional || bytes.len() < 2 || bytes[0] != b'-' {
            positional.push(arg.clone());
            continue;
        }
        match bytes {
            b"--" => only_positional = true,
            b"-h" | b"--help" => return Ok(Command::Help),
            b"-q" => options.quiet = true,
            b"-f" => options.force = true,
            [b'-', opt @ (b'L' | b'N'), rest @ ..] => {
                let value = if rest.is_empty() {
                    iter.next()
                        .map(|v| v.as_bytes().to_vec())
                        .ok_or_else(|| err(format!("option -{} needs a value", char::from(*opt))))?
                } else {
                    rest.to_vec()
                };
                if *opt == b'L' {
                    if value.len() > 32 {
                        return Err(err("label longer than 32 bytes"));
                    }
                    options.label = value;
                } else {
                    let text = String::from_utf8_lossy(&value);
                    let count = text
                        .parse::<u64>()
                        .map_err(|_| err(format!("invalid inode count '{text}'")))?;
                    options.inodes = Some(count);
                }
            }
            _ => return Err(err(format!("unknown option '{}'", arg.to_string_lossy()))),
        }
    }
    let mut positional = positional.into_iter();
    options.device = positional
        .next()
        .ok_or_else(|| err("no device or image given"))?
        .into();
    if let Some(size) = positional.next() {
        options.size = Some(parse_size(&size.to_string_lossy())?);
    }
    if positional.next().is_some() {
        return Err(err("too many arguments"));
    }
    Ok(Command::Format(options))
}

/// Result of a successful format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Number of blocks of the filesystem.
    pub block_count: u64,
    /// Number of inodes of the filesystem.
    pub inode_count: u64,
    /// First block of the inode bitmap.
    pub inode_bitmap_start: u64,
    /// First block of the block bitmap.
    pub block_bitmap_start: u64,
    /// First block of the inode table.
    pub inode_table_start: u64,
    /// Length of the inode table in blocks.
    pub inode_table_blocks: u64,
    /// First block of the data area.
    pub data_start: u64,
    /// Free blocks after formatting.
    pub free_blocks: u64,
    /// Free inodes after formatting.
    pub free_inodes: u64,
    /// Filesystem UUID.
    pub uuid: [u8; 16],
}

/// Formats a UUID in the usual 8-4-4-4-12 form.
pub fn format_uuid(uuid: &[u8; 16]) -> String {
    let hex: Vec<String> = uuid.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        hex[0..4].concat(),
        hex[4..6].concat(),
        hex[6..8].concat(),
        hex[8..10].concat(),
        hex[10..16].concat()
    )
}

/// Opens the target and returns it with the size of the filesystem in bytes.
fn open_target(options: &Options) -> Result<(File, u64), Error> {
    let path = &options.device;
    let metadata = match fs::metadata(path) {
        Ok(metadata) => Some(metadata),
        Err(e) if e.kind() == io::ErrorKind::NotFound && options.size.is_some() => None,
        Err(e) => return Err(io_err("cannot access", path, e)),
    };
    let is_block_device = metadata
        .as_ref()
        .is_some_and(|m| m.file_type().is_block_device());
    if let Some(metadata) = &metadata {
        if !is_block_device && !metadata.is_file() {
            return Err(err(format!(
                "{} is neither a block device nor a regular file",
                path.display()
            )));
        }
    }
    let mut open = OpenOptions::new();
    open.read(true).write(true);
    if is_block_device {
        open.custom_flags(O_EXCL);
    } else {
        open.create(options.size.is_some());
    }
    let mut file = open
        .open(path)
        .map_err(|e| io_err("cannot open", path, e))?;
    let length = file
        .seek(SeekFrom::End(0))
        .map_err(|e| io_err("cannot get the size of", path, e))?;
    let size = match options.size {
        None => length,
        Some(size) if is_block_device => {
            if size > length {
                return Err(err(format!(
                    "{} is only {length} bytes, smaller than {size}",
                    path.display()
                )));
            }
            size
        }
        Some(size) => {
            if length < size {
                file.set_len(size)
                    .map_err(|e| io_err("cannot extend", path, e))?;
            }
            size
        }
    };
    Ok((file, size))
}

/// Bytes at the start of a target that [`existing_signature`] looks at.
pub const PROBE_BYTES: usize = 68 << 10;

/// The kind of filesystem (or partition table) whose signature starts `head`
/// (the first [`PROBE_BYTES`] of a target, or fewer if it is shorter), if any.
pub fn existing_signature(head: &[u8]) -> Option<&'static str> {
    let at = |off: usize, magic: &[u8]| head.get(off..off + magic.len()) == Some(magic);
    let le32 = |off: usize| {
        head.get(off..off + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if le32(0) == Some(format::MAGIC) {
        return Some("a VexFS filesystem");
    }
    let signatures: [(usize, &[u8], &str); 10] = [
        (1080, &[0x53, 0xef], "an ext2/ext3/ext4 filesystem"),
        (0, b"XFSB", "an XFS filesystem"),
        (65536 + 64, b"_BHRfS_M", "a btrfs filesystem"),
        (1024, &[0x10, 0x20, 0xf5, 0xf2], "an F2FS filesystem"),
        (0, b"hsqs", "a squashfs filesystem"),
        (32769, b"CD001", "an ISO 9660 filesystem"),
        (4086, b"SWAPSPACE2", "swap space"),
        (4086, b"SWAP-SPACE", "swap space"),
        (0, b"LUKS\xba\xbe", "a LUKS volume"),
        (512, b"EFI PART", "a GPT partition table"),
    ];
    for (off, magic, what) in signatures {
        if at(off, magic) {
            return Some(what);
        }
    }
    if at(510, &[0x55, 0xaa]) {
        if at(54, b"FAT1") || at(82, b"FAT32") {
            return Some("a FAT filesystem");
        }
        // An MBR: a partition entry with a type and a non-zero size.
        let used = (0..4).any(|i| {
            let e = 446 + 16 * i;
            head[e + 4] != 0 && le32(e + 12).is_some_and(|n| n != 0)
        });
        if used {
            return Some("an MBR partition table");
        }
    }
    None
}

/// Refuses to overwrite a filesystem or partition table on `file` unless
/// `force`.
fn check_existing(file: &File, options: &Options) -> Result<(), Error> {
    if options.force {
        return Ok(());
    }
    let mut head = vec![0u8; PROBE_BYTES];
    let mut got = 0;
    while got < head.len() {
        match file.read_at(&mut head[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err("cannot read", &options.device, e)),
        }
    }
    head.truncate(got);
    match existing_signature(&head) {
        Some(what) => Err(err(format!(
            "{} contains {what}; use -f to overwrite it",
            options.device.display()
        ))),
        None => Ok(()),
    }
}

/// Reads a random version 4 UUID from `/dev/urandom`.
fn random_uuid() -> Result<[u8; 16], Error> {
    let mut uuid = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut uuid))
        .map_err(|e| err(format!("cannot read /dev/urandom: {e}")))?;
    uuid[6] = (uuid[6] & 0x0f) | 0x40;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    Ok(uuid)
}

/// Writer of whole blocks to the target.
struct Target<'a> {
    /// The device or image.
    file: &'a File,
    /// Its path, for error messages.
    path: &'a std::path::Path,
}

impl Target<'_> {
    /// Writes `data` at block `block`.
    fn write(&self, block: u64, data: &[u8]) -> Result<(), Error> {
        self.file
            .write_all_at(data, block * 4096)
            .map_err(|e| io_err("cannot write to", self.path, e))
    }

    /// Zeroes `count` blocks from block `start`.
    fn zero(&self, start: u64, count: u64) -> Result<(), Error> {
        let zeros = vec![0u8; ZERO_CHUNK];
        let per_chunk = u64::try_from(ZERO_CHUNK / BLOCK_SIZE).map_err(err)?;
        let mut block = start;
        let end = start + count;
        while block < end {
            let n = per_chunk.min(end - block);
            let len = usize::try_from(n).map_err(err)? * BLOCK_SIZE;
            self.write(block, &zeros[..len])?;
            block += n;
        }
        Ok(())
    }
}

/// Builds a bitmap of `blocks` blocks with bits `0..used` and
/// `limit..` set.
fn build_bitmap(blocks: u64, used: u64, limit: u64) -> Result<Vec<u8>, Error> {
    let bits = blocks * BITS_PER_BLOCK;
    let mut map = vec![0u8; usize::try_from(blocks).map_err(err)? * BLOCK_SIZE];
    for bit in (0..used).chain(limit..bits) {
        format::set_bit(&mut map, usize::try_from(bit).map_err(err)?).map_err(err)?;
    }
    Ok(map)
}

/// Creates the filesystem described by `options`.
pub fn mkfs(options: &Options) -> Result<Summary, Error> {
    if options.label.len() > 32 {
        return Err(err("label longer than 32 bytes"));
    }
    let (file, size) = open_target(options)?;
    check_existing(&file, options)?;
    let block_count = size / 4096;
    if block_count > format::MAX_BLOCKS {
        return Err(err(format!(
            "{} is too large: VexFS supports at most {} blocks (16 TiB), give a SIZE",
            options.device.display(),
            format::MAX_BLOCKS
        )));
    }
    let geometry = Geometry::new(block_count, options.inodes).map_err(|e| match e {
        format::FormatError::DeviceTooSmall => err(format!(
            "{} is too small: {block_count} blocks of 4096 bytes, need at least {} and room for the inode table",
            options.device.display(),
            format::MIN_BLOCKS
        )),
        other => err(format!("cannot create the filesystem: {other}")),
    })?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| err("the clock is before 1970"))?;
    let now_sec = now.as_secs();
    let target = Target {
        file: &file,
        path: &options.device,
    };

    // The root directory gets the first data block.
    let root_block = geometry.data_start;
    let mut sb = Superblock::from_geometry(&geometry);
    sb.free_blocks -= 1;
    sb.free_inodes -= 1;
    sb.mkfs_time = now_sec;
    sb.write_time = now_sec;
    sb.uuid = random_uuid()?;
    sb.label[..options.label.len()].copy_from_slice(&options.label);
    sb.validate(block_count).map_err(err)?;

    // Invalidate any previous superblock first, so that a failure leaves no
    // half-made filesystem that looks valid.
    let mut block = vec![0u8; BLOCK_SIZE];
    target.write(0, &block)?;

    target.zero(geometry.inode_table_start, geometry.inode_table_blocks)?;
    let inode_bitmap = build_bitmap(
        geometry.inode_bitmap_blocks,
        u64::from(ROOT_INO) + 1,
        geometry.inode_count,
    )?;
    target.write(geometry.inode_bitmap_start, &inode_bitmap)?;
    let block_bitmap = build_bitmap(
        geometry.block_bitmap_blocks,
        root_block + 1,
        geometry.block_count,
    )?;
    target.write(geometry.block_bitmap_start, &block_bitmap)?;

    format::init_dir(&mut block, ROOT_INO, ROOT_INO).map_err(err)?;
    target.write(root_block, &block)?;

    let nsec = now.subsec_nanos();
    let sec = i64::try_from(now_sec).map_err(err)?;
    let root = Inode {
        mode: S_IFDIR | 0o755,
        nlink: 2,
        size: 4096,
        atime_sec: sec,
        mtime_sec: sec,
        ctime_sec: sec,
        atime_nsec: nsec,
        mtime_nsec: nsec,
        ctime_nsec: nsec,
        blocks: 1,
        block: {
            let mut ptrs = [0; format::N_BLOCK_PTRS];
            ptrs[0] = u32::try_from(root_block).map_err(err)?;
            ptrs
        },
        ..Inode::default()
    };
    let (inode_block, offset) = sb.inode_location(u64::from(ROOT_INO)).map_err(err)?;
    block.fill(0);
    root.encode(&mut block[offset..]).map_err(err)?;
    target.write(inode_block, &block)?;

    // The superblock goes last.
    file.sync_all()
        .map_err(|e| io_err("cannot sync", &options.device, e))?;
    block.fill(0);
    sb.encode(&mut block).map_err(err)?;
    target.write(0, &block)?;
    file.sync_all()
        .map_err(|e| io_err("cannot sync", &options.device, e))?;

    Ok(Summary {
        block_count: geometry.block_count,
        inode_count: geometry.inode_count,
        inode_bitmap_start: geometry.inode_bitmap_start,
        block_bitmap_start: geometry.block_bitmap_start,
        inode_table_start: geometry.inode_table_start,
        inode_table_blocks: geometry.inode_table_blocks,
        data_start: geometry.data_start,
        free_blocks: sb.free_blocks,
        free_inodes: sb.free_inodes,
        uuid: sb.uuid,
    })
}

/// Runs `mkfs.vexfs` with `args` (without the program name) and returns the
/// exit status: 0 on success, 1 on error.
pub fn run(args: &[OsString]) -> i32 {
    let options = match parse_args(args) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            return 0;
        }
        Ok(Command::Format(options)) => options,
        Err(e) => {
            eprintln!("mkfs.vexfs: {e}");
            eprintln!("{USAGE}");
            return 1;
        }
    };
    match mkfs(&options) {
        Ok(summary) => {
            if !options.quiet {
                print_summary(&options, &summary);
            }
            0
        }
        Err(e) => {
            eprintln!("mkfs.vexfs: {e}");
            1
        }
    }
}

/// Prints what was created.
fn print_summary(options: &Options, s: &Summary) {
    println!(
        "Created VexFS {}.{} on {}: {} blocks of 4096 bytes ({} MiB), {} inodes",
        format::VERSION_MAJOR,
        format::VERSION_MINOR,
        options.device.display(),
        s.block_count,
        s.block_count / 256,
        s.inode_count
    );
    println!("UUID: {}", format_uuid(&s.uuid));
    if !options.label.is_empty() {
        println!("Label: {}", String::from_utf8_lossy(&options.label));
    }
    println!(
        "Inode bitmap at {}, block bitmap at {}, inode table at {} ({} blocks), data from {}",
        s.inode_bitmap_start,
        s.block_bitmap_start,
        s.inode_table_start,
        s.inode_table_blocks,
        s.data_start
    );
    println!(
        "{} free blocks, {} free inodes",
        s.free_blocks, s.free_inodes
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn options(list: &[&str]) -> Options {
        match parse_args(&args(list)).unwrap() {
            Command::Format(options) => options,
            Command::Help => panic!("help"),
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2t"), Ok(2 << 40));
        for bad in [
            "",
            "M",
            "1.5G",
            "-1",
            "12X",
            "1MB",
            " 1",
            "99999999999999999999",
            "16777216T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signatures() {
        let mut head = vec![0u8; PROBE_BYTES];
        assert_eq!(existing_signature(&head), None);
        assert_eq!(existing_signature(&[]), None);
        head[..4].copy_from_slice(&format::MAGIC.to_le_bytes());
        assert_eq!(existing_signature(&head), Some("a VexFS filesystem"));
        let cases: [(usize, &[u8], &str); 6] = [
            (1080, &[0x53, 0xef], "ext2/ext3/ext4"),
            (1024, &[0x10, 0x20, 0xf5, 0xf2], "F2FS"),
            (32769, b"CD001", "ISO 9660"),
            (0, b"hsqs", "squashfs"),
            (0, b"LUKS\xba\xbe", "LUKS"),
            (4086, b"SWAP-SPACE", "swap"),
        ];
        for (off, magic, what) in cases {
            head.fill(0);
            head[off..off + magic.len()].copy_from_slice(magic);
            assert!(
                existing_signature(&head).is_some_and(|s| s.contains(what)),
                "{what}"
            );
            // A target too short to hold the signature has none.
            assert_eq!(existing_signature(&head[..off]), None);
        }
        head.fill(0);
        head[510..512].copy_from_slice(&[0x55, 0xaa]);
        assert_eq!(existing_signature(&head), None, "boot signature alone");
        head[82..87].copy_from_slice(b"FAT32");
        assert_eq!(existing_signature(&head), Some("a FAT filesystem"));
        head[82..87].fill(0);
        head[446 + 4] = 0x83;
        head[446 + 12] = 1;
        assert_eq!(existing_signature(&head), Some("an MBR partition table"));
    }

    #[test]
    fn arguments() {
        assert_eq!(
            options(&["img"]),
            Options {
                device: "img".into(),
                ..Options::default()
            }
        );
        assert_eq!(
            options(&["-q", "-L", "my label", "-N", "1000", "img", "64M"]),
            Options {
                label: b"my label".to_vec(),
                inodes: Some(1000),
                quiet: true,
                force: false,
                device: "img".into(),
                size: Some(64 << 20),
            }
        );
        assert!(options(&["-f", "img"]).force);
        assert!(!options(&["img"]).force);
        let o = options(&["-Lx", "-N64", "--", "-img"]);
        assert_eq!(o.label, b"x");
        assert_eq!(o.inodes, Some(64));
        assert_eq!(o.device, PathBuf::from("-img"));
        assert_eq!(options(&["-L", "", "img"]).label, b"");
        assert_eq!(options(&["-L", &"x".repeat(32), "img"]).label.len(), 32);
        assert_eq!(parse_args(&args(&["-h"])), Ok(Command::Help));
        assert_eq!(parse_args(&args(&["img", "--help"])), Ok(Command::Help));
        for bad in [
            &[][..],
            &["-L"],
            &["-N", "img"],
            &["-N", "-5", "img"],
            &["-x", "img"],
            &["img", "1M", "extra"],
            &["img", "lots"],
            &["-L", "123456789012345678901234567890123", "img"],
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn uuid_format() {
        let uuid = *b"\x01\x23\x45\x67\x89\xab\xcd\xef\x01\x23\x45\x67\x89\xab\xcd\xef";
        assert_eq!(format_uuid(&uuid), "01234567-89ab-cdef-0123-456789abcdef");
    }

    #[test]
    fn bitmaps() {
        let map = build_bitmap(1, 3, 10).unwrap();
        assert_eq!(map.len(), BLOCK_SIZE);
        assert_eq!(map[0], 0b0000_0111);
        assert_eq!(map[1], 0b1111_1100);
        assert!(map[2..].iter().all(|&b| b == 0xff));
    }
}
