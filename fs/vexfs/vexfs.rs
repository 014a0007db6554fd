// SPDX-License-Identifier: GPL-2.0

//! VexFS: a vector-native file system.
//!
//! The on-disk format is described in [`format`] and in `Documentation/filesystems/vexfs.rst`.
//! This crate is the kernel side: it mounts a VexFS image from a block device and serves files
//! and directories through the page cache, using only the safe `kernel::fs` abstractions.

use kernel::{
    c_str,
    fs::{
        self,
        dentry::Root,
        inode::INode,
        param,
        sb::{
            self as vfs_sb,
            Kstatfs,
            SuperBlock, //
        },
    },
    prelude::*,
};

mod acl;
mod alloc;
mod cache;
mod dir;
mod file;
// The on-disk format is shared with the user tools (mkfs.vexfs, fsck.vexfs), which use the
// parts the kernel does not.
#[allow(dead_code)]
mod format;
mod format_test;
mod hnsw;
mod inode;
mod super_block;
mod vecmath;
mod vector;
mod xattr;

use super_block::VexSuper;

kernel::module_fs! {
    type: VexFs,
    name: "vexfs",
    authors: ["VexFS Developers"],
    description: "VexFS vector-native file system",
    license: "GPL",
}

/// The VexFS file system type.
struct VexFs;

/// What to do when corrupted metadata is found (`errors=` mount option).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum ErrorBehaviour {
    /// Return `EUCLEAN` for the operation and carry on (the default).
    Continue,
    /// Return `EUCLEAN` and make the file system read-only.
    RemountRo,
}

/// Mount options.
#[derive(Default)]
struct Options {
    /// `errors=`; `None` if not given: the default at mount time, unchanged by a remount.
    errors: Option<ErrorBehaviour>,
    /// Bytes the vector indexes of the mount may use (`index_budget=`); default: a quarter of
    /// memory.
    index_budget: Option<usize>,
}

const OPT_ERRORS: u8 = 0;
const OPT_INDEX_BUDGET: u8 = 1;

#[vtable]
impl fs::FileSystem for VexFs {
    type Data = Pin<KBox<VexSuper>>;
    type INodeData = inode::VexInode;
    type Options = Options;

    const NAME: &'static CStr = c_str!("vexfs");
    const SUPER_TYPE: fs::SuperType = fs::SuperType::BlockDev;
    const PARAMS: param::SpecTable<'static> = param::SpecTable::new(&[
        param::Spec::string(c_str!("errors"), OPT_ERRORS),
        param::Spec::string(c_str!("index_budget"), OPT_INDEX_BUDGET),
        param::Spec::END,
    ]);

    fn parse_param(options: &mut Options, opt: u32, value: param::Value<'_>) -> Result {
        if opt == u32::from(OPT_ERRORS) {
            options.errors = match value.as_str().map(|s| s.to_bytes()) {
                Some(b"continue") => Some(ErrorBehaviour::Continue),
                Some(b"remount-ro") => Some(ErrorBehaviour::RemountRo),
                _ => {
                    pr_err!("errors= takes continue or remount-ro\n");
                    return Err(EINVAL);
                }
            };
            return Ok(());
        }
        if opt == u32::from(OPT_INDEX_BUDGET) {
            let size = value.as_str().and_then(|s| cache::parse_size(s.to_bytes()));
            let Some(size) = size else {
                pr_err!("index_budget= takes a size in bytes, with an optional k, m, g or t\n");
                return Err(EINVAL);
            };
            options.index_budget = Some(size);
            return Ok(());
        }
        Err(ENOPARAM)
    }

    fn fill_super(sb: &mut SuperBlock<Self, vfs_sb::New>, options: Options) -> Result<Self::Data> {
        super_block::fill_super(sb, options)
    }

    fn init_root(sb: &SuperBlock<Self>) -> Result<Root<Self>> {
        let root = inode::iget(sb, u64::from(format::ROOT_INO))?;
        if root.typ() != fs::inode::Type::Dir {
            pr_err!("root inode is not a directory\n");
            return Err(EUCLEAN);
        }
        Root::try_new(root)
    }

    fn statfs(sb: &SuperBlock<Self>) -> Result<Kstatfs> {
        Ok(sb.data().statfs())
    }

    /// `mount -o remount`: `errors=` and read-only or read-write.
    fn reconfigure(sb: &SuperBlock<Self>, options: Options, rdonly: bool) -> Result {
        if let Some(budget) = options.index_budget {
            if budget != sb.data().indexes.budget() {
                pr_err!("index_budget= cannot change on remount\n");
                return Err(EINVAL);
            }
        }
        super_block::reconfigure(sb, options.errors, rdonly)
    }

    fn show_options(sb: &SuperBlock<Self>, m: &kernel::seq_file::SeqFile) -> Result {
        sb.data().show_options(m);
        Ok(())
    }

    fn write_inode(inode: &INode<Self>, sync: bool) -> Result {
        inode::write_inode(inode, sync)
    }

    fn evict_inode(inode: &INode<Self>) {
        inode::evict_inode(inode);
    }

    /// Writes the super block; nothing once shut down.
    fn sync_fs(sb: &SuperBlock<Self>, wait: bool) -> Result {
        super_block::write_super(sb, format::STATE_DIRTY, wait)
    }

    /// Marks the file system cleanly unmounted, unless it is read-only or shut down.
    fn put_super(sb: &SuperBlock<Self>) {
        let _ = super_block::write_super(sb, format::STATE_CLEAN, true);
    }

    fn shutdown(sb: &SuperBlock<Self>) {
        super_block::device_gone(sb);
    }

    /// Pages of vector indexes, for global reclaim only: they are not charged to memory
    /// cgroups.
    fn nr_cached_objects(sb: &SuperBlock<Self>, sc: &vfs_sb::ShrinkControl) -> usize {
        if !sc.is_root() {
            return 0;
        }
        sb.data().indexes.count()
    }

    fn free_cached_objects(sb: &SuperBlock<Self>, sc: &vfs_sb::ShrinkControl) -> usize {
        sb.data().indexes.scan(sc.nr_to_scan())
    }
}

/// Converts an on-disk format error to an errno, logging corruption.
fn format_err(e: format::FormatError) -> Error {
    use format::FormatError as F;
    match e {
        F::BadMagic => EINVAL,
        F::FileTooBig => EFBIG,
        F::NameTooLong => ENAMETOOLONG,
        F::Invalid(_) => EINVAL,
        F::ShortBuffer => EIO,
        F::DeviceTooSmall => EINVAL,
        F::BadVersion | F::BadBlockSize | F::UnsupportedFeatures => {
            pr_err!("unsupported file system: {}\n", describe(e));
            EINVAL
        }
        F::BadChecksum | F::Corrupt(_) => {
            if super_block::log_ratelimit() {
                pr_err!("corrupted metadata: {}\n", describe(e));
            }
            EUCLEAN
        }
    }
}

/// A description of an on-disk format error, for the kernel log.
fn describe(e: format::FormatError) -> &'static str {
    use format::FormatError as F;
    match e {
        F::BadMagic => "bad magic number",
        F::BadVersion => "unsupported format version",
        F::BadBlockSize => "unsupported block size",
        F::BadChecksum => "checksum mismatch",
        F::UnsupportedFeatures => "unsupported incompatible features",
        F::Corrupt(what) | F::Invalid(what) => what,
        F::ShortBuffer => "buffer too short",
        F::DeviceTooSmall => "device too small",
        F::FileTooBig => "file offset too large",
        F::NameTooLong => "name too long",
    }
}
