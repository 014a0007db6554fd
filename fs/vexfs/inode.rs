// SPDX-License-Identifier: GPL-2.0

//! VexFS inodes: reading and writing the inode table, and the block map of each file.

use crate::{
    cache, dir, file,
    format::{
        self,
        Inode, //
    },
    format_err,
    super_block::corrupted,
    vector, VexFs,
};
use core::ops::Range;
use kernel::{
    fs::{
        address_space::{
            self,
            Mapping, //
        },
        buffer::BufferHead,
        inode::{
            self as vfs_inode,
            INode,
            Locked,
            Owner,
            Params,
            Timespec,
            Type, //
        },
        iomap::{
            self,
            IoMap, //
        },
        posix_acl,
        sb::{
            Either,
            SuperBlock, //
        },
    },
    new_mutex,
    prelude::*,
    sync::{
        aref::ARef,
        Arc,
        Mutex, //
    },
};

/// The block map of an inode: the on-disk fields VexFS keeps beside the VFS inode.
pub(crate) struct BlockMap {
    /// The block pointers: 12 direct, single, double and triple indirect.
    pub(crate) ptrs: [u32; format::N_BLOCK_PTRS],
    /// Blocks allocated to the inode, indirect blocks included.
    pub(crate) blocks: u64,
    /// On-disk inode flags.
    pub(crate) flags: u32,
    /// The extended attribute block, 0 for none (see [`crate::xattr`]).
    pub(crate) xattr: u32,
}

/// The VexFS part of an in-memory inode.
#[pin_data]
pub(crate) struct VexInode {
    /// The block map; its mutex serialises allocation and truncation for the file.
    #[pin]
    pub(crate) map: Mutex<BlockMap>,
    /// The vector engine's state of a collection, shared with the index cache of the mount.
    pub(crate) vec: Arc<cache::Slot>,
}

impl VexInode {
    fn new(map: BlockMap) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            map <- new_mutex!(map),
            vec: Arc::pin_init(cache::Slot::new(), GFP_KERNEL)?,
        })
    }
}

/// Sets the operations of a new inode according to its type.
/// Sets the operations of a new inode of type `typ`; `rdev` is the device number of a device.
fn set_ops(new: &mut vfs_inode::New<VexFs>, typ: Type, rdev: u32) -> Result {
    match typ {
        Type::Dir => {
            new.set_inode_ops(dir::INODE_OPS)
                .set_file_ops(dir::FILE_OPS);
        }
        Type::Reg => {
            new.set_inode_ops(file::INODE_OPS)
                .set_file_ops(file::FILE_OPS)
                .set_aops(file::AOPS);
        }
        Type::Lnk => {
            new.set_page_symlink::<file::FileInodeOps>(file::AOPS);
        }
        Type::Chr | Type::Blk | Type::Fifo | Type::Sock => {
            new.set_inode_ops(file::INODE_OPS)
                .init_special_inode(typ, rdev)?;
        }
    }
    Ok(())
}

fn ts(sec: i64, nsec: u32) -> Option<Timespec> {
    Some(Timespec { sec, nsec })
}

/// Returns inode `ino`, reading it from the inode table if it is not cached.
pub(crate) fn iget(sb: &SuperBlock<VexFs>, ino: u64) -> Result<ARef<INode<VexFs>>> {
    let disk = &sb.data().disk;
    if ino < u64::from(format::ROOT_INO) || !disk.is_valid_ino(ino) {
        return Err(corrupted(sb, ino, "invalid inode number"));
    }
    let mut new = match sb.iget(ino)? {
        Either::Left(inode) => return Ok(inode),
        Either::Right(new) => new,
    };
    let (block, offset) = disk.inode_location(ino).map_err(format_err)?;
    let raw = {
        let bh = sb.bread(block)?;
        let guard = bh.lock();
        let slot = guard
            .data()
            .get(offset..offset + format::INODE_SIZE)
            .ok_or(EIO)?;
        match Inode::decode(slot) {
            Ok(Some(raw)) => raw,
            Ok(None) => return Err(corrupted(sb, ino, "directory entry to a free inode")),
            Err(e) => return Err(corrupted(sb, ino, crate::describe(e))),
        }
    };
    // Block pointers, block count, and a directory size bounded by its blocks: what bounds the
    // walks over its blocks in `dir`.
    disk.check_inode(&raw)
        .map_err(|e| corrupted(sb, ino, crate::describe(e)))?;
    let typ = Type::from_mode(raw.mode).ok_or_else(|| corrupted(sb, ino, "bad mode"))?;
    if raw.nlink == 0 || (typ == Type::Dir && raw.nlink < 2) {
        return Err(corrupted(sb, ino, "bad link count"));
    }
    if raw.size > format::MAX_FILE_SIZE
        || (typ == Type::Dir && raw.size % format::BLOCK_SIZE as u64 != 0)
    {
        return Err(corrupted(sb, ino, "bad size"));
    }
    // Block pointer 0 of a device holds its number, not a block.
    let mut ptrs = raw.block;
    let rdev = if raw.has_data_blocks() {
        0
    } else {
        let dev = format::decode_dev(ptrs[0]);
        ptrs = [0; format::N_BLOCK_PTRS];
        dev
    };
    set_ops(&mut new, typ, rdev).map_err(|_| corrupted(sb, ino, "unsupported file type"))?;
    new.init(
        Params {
            mode: raw.mode,
            owner: Owner::Ids {
                uid: raw.uid,
                gid: raw.gid,
            },
            nlink: raw.nlink,
            size: raw.size as i64,
            blocks: raw.blocks << (format::BLOCK_SHIFT - 9),
            generation: raw.generation,
            flags: vfs_flags(raw.flags),
            atime: ts(raw.atime_sec, raw.atime_nsec),
            mtime: ts(raw.mtime_sec, raw.mtime_nsec),
            ctime: ts(raw.ctime_sec, raw.ctime_nsec),
        },
        VexInode::new(BlockMap {
            ptrs,
            blocks: raw.blocks,
            flags: raw.flags,
            xattr: raw.xattr,
        }),
    )
}

/// Creates a new inode of `mode` in directory `dir`: allocates its number and, for a directory,
/// its first block with `.` and `..`. `rdev` is the device number of a device.
pub(crate) fn new_inode(
    idmap: &vfs_inode::MntIdmap,
    dir: &INode<VexFs>,
    mut mode: u16,
    rdev: u32,
) -> Result<ARef<INode<VexFs>>> {
    let sb = dir.super_block();
    let typ = Type::from_mode(mode).ok_or(EINVAL)?;
    // The default ACL of `dir`, or the umask (not applied by the VFS on a file system with
    // ACLs), decides the mode.
    let acls = posix_acl::create(dir, &mut mode)?;
    let data = sb.data();
    let ino = data.allocator(sb).alloc_inode()?;
    let mut new = match sb.iget(ino) {
        Ok(Either::Right(new)) => new,
        Ok(Either::Left(_)) => {
            let _ = data.allocator(sb).free_inode(ino);
            return Err(corrupted(sb, ino, "free inode is in use"));
        }
        Err(e) => {
            let _ = data.allocator(sb).free_inode(ino);
            return Err(e);
        }
    };
    set_ops(&mut new, typ, rdev)?;
    let flags = dir.data().map.lock().flags & format::INODE_FLAGS_INHERITED;
    let now = Timespec::now();
    let inode = new.init(
        Params {
            mode,
            owner: Owner::Caller { idmap, dir },
            nlink: if typ == Type::Dir { 2 } else { 1 },
            size: 0,
            blocks: 0,
            generation: (now.nsec ^ (ino as u32)).wrapping_mul(2_654_435_761),
            flags: vfs_flags(flags),
            atime: None,
            mtime: None,
            ctime: None,
        },
        VexInode::new(BlockMap {
            ptrs: [0; format::N_BLOCK_PTRS],
            blocks: 0,
            flags,
            xattr: 0,
        }),
    );
    let inode = match inode {
        Ok(i) => i,
        Err(e) => {
            let _ = data.allocator(sb).free_inode(ino);
            return Err(e);
        }
    };
    if typ == Type::Dir {
        // On failure, dropping the inode with no links frees it in `evict_inode`.
        let init = || -> Result {
            let m = get_block(&inode, 0, true)?.ok_or(EIO)?;
            let bh = sb.getblk_zeroed(m.block)?;
            let mut guard = bh.lock();
            format::init_dir(guard.data_mut(), ino as u32, dir.ino() as u32).map_err(format_err)?;
            guard.mark_dirty();
            inode.set_size(format::BLOCK_SIZE as i64);
            Ok(())
        };
        if let Err(e) = init() {
            inode.set_nlink(0);
            return Err(e);
        }
    }
    if let Err(e) = crate::acl::init(&inode, acls) {
        inode.set_nlink(0);
        return Err(e);
    }
    inode.mark_dirty();
    Ok(inode)
}

/// Writes `inode` to its slot in the inode table.
pub(crate) fn write_inode(inode: &INode<VexFs>, sync: bool) -> Result {
    let sb = inode.super_block();
    if sb.rdonly() {
        return Ok(());
    }
    sb.data().check_live()?;
    let (block, offset) = sb
        .data()
        .disk
        .inode_location(inode.ino())
        .map_err(format_err)?;
    let raw = {
        let map = inode.data().map.lock();
        let (a, m, c) = (inode.atime(), inode.mtime(), inode.ctime());
        let mut block = map.ptrs;
        if matches!(inode.typ(), Type::Chr | Type::Blk) {
            block[0] = format::encode_dev(inode.rdev());
        }
        Inode {
            mode: inode.mode(),
            uid: inode.uid(),
            gid: inode.gid(),
            nlink: inode.nlink(),
            size: inode.size() as u64,
            atime_sec: a.sec,
            mtime_sec: m.sec,
            ctime_sec: c.sec,
            atime_nsec: a.nsec,
            mtime_nsec: m.nsec,
            ctime_nsec: c.nsec,
            flags: map.flags,
            blocks: map.blocks,
            generation: inode.generation(),
            block,
            xattr: map.xattr,
        }
    };
    let bh = update_slot(sb, block, offset, |slot| raw.encode(slot))?;
    if sync {
        bh.sync()?;
    }
    Ok(())
}

/// Changes the inode table slot at `offset` of block `block` with `f` and marks the block dirty.
/// Returns the buffer, for callers that wait for the write.
fn update_slot(
    sb: &SuperBlock<VexFs>,
    block: u64,
    offset: usize,
    f: impl FnOnce(&mut [u8]) -> format::Result,
) -> Result<ARef<BufferHead>> {
    let bh = sb.bread(block)?;
    {
        let mut guard = bh.lock();
        let slot = guard
            .data_mut()
            .get_mut(offset..offset + format::INODE_SIZE)
            .ok_or(EIO)?;
        f(slot).map_err(format_err)?;
        guard.mark_dirty();
    }
    Ok(bh)
}

/// Releases the storage of an inode without links when it leaves the cache.
pub(crate) fn evict_inode(inode: &INode<VexFs>) {
    vector::evict(inode);
    let sb = inode.super_block();
    if inode.nlink() != 0 || sb.rdonly() || sb.data().is_shut_down() {
        return;
    }
    let ino = inode.ino();
    inode.set_size(0);
    if let Err(e) = truncate_blocks(inode).and_then(|()| crate::xattr::free(inode)) {
        pr_warn!("inode {}: blocks not freed ({:?})\n", ino, e);
    }
    let clear = || -> Result {
        let (block, offset) = sb.data().disk.inode_location(ino).map_err(format_err)?;
        update_slot(sb, block, offset, format::clear_inode_slot).map(drop)
    };
    if let Err(e) = clear().and_then(|()| sb.data().allocator(sb).free_inode(ino)) {
        pr_warn!("inode {}: not freed ({:?})\n", ino, e);
    }
}

/// Checks a block pointer read from disk.
pub(crate) fn check_ptr(inode: &INode<VexFs>, p: u32) -> Result<u64> {
    let b = u64::from(p);
    if inode.super_block().data().disk.is_data_block(b) {
        Ok(b)
    } else {
        Err(corrupted(
            inode.super_block(),
            inode.ino(),
            "block pointer outside the data area",
        ))
    }
}

/// Counts one more block of `inode` (data or indirect) in its block map and `i_blocks`.
fn account(inode: &INode<VexFs>, map: &mut BlockMap) {
    map.blocks += 1;
    inode.set_blocks(map.blocks << (format::BLOCK_SHIFT - 9));
    inode.mark_dirty();
}

/// Allocates a block for `inode` (`zero` for metadata: through the buffer cache, zeroed).
pub(crate) fn alloc_for(inode: &INode<VexFs>, map: &mut BlockMap, zero: bool) -> Result<u32> {
    let sb = inode.super_block();
    sb.data().check_live()?;
    let b = sb.data().allocator(sb).alloc_block()?;
    if zero {
        let zeroed = sb.getblk_zeroed(b).map(|bh| bh.lock().mark_dirty());
        if let Err(e) = zeroed {
            let _ = sb.data().allocator(sb).free_block(b);
            return Err(e);
        }
    }
    account(inode, map);
    Ok(b as u32)
}

/// Frees block `block` of `inode`, which the caller has unlinked from `map`, and stops
/// counting it: the reverse of [`alloc_for`].
pub(crate) fn free_for(inode: &INode<VexFs>, map: &mut BlockMap, block: u64) -> Result {
    let sb = inode.super_block();
    map.blocks = map.blocks.saturating_sub(1);
    inode.set_blocks(map.blocks << (format::BLOCK_SHIFT - 9));
    inode.mark_dirty();
    sb.data().allocator(sb).free_block(block)
}

/// The block for an empty slot of the block map: an indirect block allocated and zeroed, or
/// for a data block (`leaf`) the caller's `data` (then `*used` is set) or a new one.
fn fill_slot(
    inode: &INode<VexFs>,
    map: &mut BlockMap,
    leaf: bool,
    data: Option<u32>,
    used: &mut bool,
) -> Result<u32> {
    match data {
        Some(b) if leaf => {
            inode.super_block().data().check_live()?;
            account(inode, map);
            *used = true;
            Ok(b)
        }
        _ => alloc_for(inode, map, !leaf),
    }
}

/// Maps logical block `lblk` of `inode`, allocating it (and indirect blocks) with `create`;
/// without, it is a [`lookup`].
pub(crate) fn get_block(inode: &INode<VexFs>, lblk: u64, create: bool) -> Result<Option<Mapping>> {
    if !create {
        let block = lookup(inode, lblk)?.ok();
        return Ok(block.map(|block| Mapping { block, new: false }));
    }
    map_create(inode, lblk, None).map(|(m, _)| Some(m))
}

/// Maps logical block `lblk` of `inode`, allocating the indirect blocks missing on its path.
/// A missing data block becomes `data` if given (a block the caller allocated and zeroed; the
/// second result says whether it was used, i.e. the slot was still empty), otherwise a newly
/// allocated one.
fn map_create(inode: &INode<VexFs>, lblk: u64, data: Option<u32>) -> Result<(Mapping, bool)> {
    let sb = inode.super_block();
    if sb.rdonly() {
        return Err(EROFS);
    }
    let path = format::block_path(lblk).map_err(|_| EFBIG)?;
    let offsets = path.as_slice();
    let mut map = inode.data().map.lock();
    let mut new = false;
    let mut used = false;
    // Top level: a slot of the inode itself.
    let mut cur = map.ptrs[offsets[0]];
    if cur == 0 {
        let is_leaf = offsets.len() == 1;
        cur = fill_slot(inode, &mut map, is_leaf, data, &mut used)?;
        map.ptrs[offsets[0]] = cur;
        new = is_leaf;
    }
    let mut block = check_ptr(inode, cur)?;
    for (level, &off) in offsets.iter().enumerate().skip(1) {
        let is_leaf = level == offsets.len() - 1;
        let bh = sb.bread(block)?;
        let mut guard = bh.lock();
        let mut next = format::read_indirect(guard.data(), off).map_err(format_err)?;
        if next == 0 {
            drop(guard);
            next = fill_slot(inode, &mut map, is_leaf, data, &mut used)?;
            guard = bh.lock();
            format::write_indirect(guard.data_mut(), off, next).map_err(format_err)?;
            guard.mark_dirty();
            new = is_leaf;
        }
        block = check_ptr(inode, next)?;
    }
    Ok((Mapping { block, new }, used))
}

/// Where logical block `lblk` of `inode` lives: `Ok(block)`, or `Err(n)` for a hole of `n`
/// blocks from `lblk` on (to the end of the subtree of the missing pointer), without
/// allocating.
fn lookup(inode: &INode<VexFs>, lblk: u64) -> Result<core::result::Result<u64, u64>> {
    let sb = inode.super_block();
    let path = format::block_path(lblk).map_err(|_| EFBIG)?;
    let offsets = path.as_slice();
    let ptrs = format::PTRS_PER_BLOCK as u64;
    // Blocks from `lblk` to the end of the subtree of the pointer at `level`.
    let hole = |level: usize| {
        let below = &offsets[level + 1..];
        let within = below.iter().fold(0u64, |acc, &o| acc * ptrs + o as u64);
        ptrs.pow(below.len() as u32) - within
    };
    let map = inode.data().map.lock();
    let cur = map.ptrs[offsets[0]];
    if cur == 0 {
        return Ok(Err(hole(0)));
    }
    let mut block = check_ptr(inode, cur)?;
    for (level, &off) in offsets.iter().enumerate().skip(1) {
        let bh = sb.bread(block)?;
        let next = format::read_indirect(bh.lock().data(), off).map_err(format_err)?;
        if next == 0 {
            return Ok(Err(hole(level)));
        }
        block = check_ptr(inode, next)?;
    }
    Ok(Ok(block))
}

/// The longest blocks of a mapped extent that one call to [`Mapper::iomap_begin`] reports
/// (64 MiB): it looks the blocks up one by one.
const MAX_EXTENT: u64 = 16384;

/// The extent of `inode` that starts at logical block `lblk`, at most `max` (at least 1)
/// blocks long: `(Some(block), n)` for `n` blocks stored contiguously from device block
/// `block` on, `(None, n)` for a hole of `n` blocks.
pub(crate) fn extent(inode: &INode<VexFs>, lblk: u64, max: u64) -> Result<(Option<u64>, u64)> {
    let max = max.max(1);
    match lookup(inode, lblk)? {
        Ok(first) => {
            let mut n = 1;
            while n < max.min(MAX_EXTENT) && lookup(inode, lblk + n)? == Ok(first + n) {
                n += 1;
            }
            Ok((Some(first), n))
        }
        Err(mut n) => {
            while n < max {
                match lookup(inode, lblk + n)? {
                    Err(more) => n += more,
                    Ok(_) => break,
                }
            }
            Ok((None, n.min(max)))
        }
    }
}

/// Frees the blocks of the subtree under `block` at `depth` (0: a data block) that map logical
/// blocks in `range`, where the subtree starts at logical block `first`. Returns whether the
/// whole subtree was freed (an indirect block only goes with its whole subtree).
fn free_tree(
    inode: &INode<VexFs>,
    map: &mut BlockMap,
    block: u32,
    depth: u32,
    first: u64,
    range: &Range<u64>,
) -> Result<bool> {
    let sb = inode.super_block();
    let span = (format::PTRS_PER_BLOCK as u64).pow(depth);
    if first + span <= range.start || first >= range.end {
        return Ok(false);
    }
    let b = check_ptr(inode, block)?;
    if depth > 0 {
        let child_span = span / format::PTRS_PER_BLOCK as u64;
        let bh = sb.bread(b)?;
        let mut all = true;
        for i in 0..format::PTRS_PER_BLOCK {
            let child_first = first + i as u64 * child_span;
            let child = format::read_indirect(bh.lock().data(), i).map_err(format_err)?;
            if child == 0 {
                continue;
            }
            if free_tree(inode, map, child, depth - 1, child_first, range)? {
                let mut guard = bh.lock();
                format::write_indirect(guard.data_mut(), i, 0).map_err(format_err)?;
                guard.mark_dirty();
            } else {
                all = false;
            }
        }
        if !all || first < range.start || first + span > range.end {
            return Ok(false);
        }
    }
    sb.data().allocator(sb).free_block(b)?;
    map.blocks = map.blocks.saturating_sub(1);
    Ok(true)
}

/// Frees the blocks of `inode` beyond its size.
pub(crate) fn truncate_blocks(inode: &INode<VexFs>) -> Result {
    let keep = (inode.size() as u64).div_ceil(format::BLOCK_SIZE as u64);
    free_blocks(inode, keep..u64::MAX)
}

/// Frees the blocks of `inode` that map the logical blocks in `range`, and the indirect blocks
/// whose whole subtree goes with them. Their pages must have been dropped from the page cache.
pub(crate) fn free_blocks(inode: &INode<VexFs>, range: Range<u64>) -> Result {
    let mut map = inode.data().map.lock();
    let ptrs = format::PTRS_PER_BLOCK as u64;
    let mut first = 0u64;
    for i in 0..format::N_BLOCK_PTRS {
        let depth = match i {
            i if i < format::N_DIRECT => 0,
            format::IND_INDEX => 1,
            format::DIND_INDEX => 2,
            _ => 3,
        };
        let p = map.ptrs[i];
        if p != 0 && free_tree(inode, &mut map, p, depth, first, &range)? {
            map.ptrs[i] = 0;
        }
        first += ptrs.pow(depth);
    }
    inode.set_blocks(map.blocks << (format::BLOCK_SHIFT - 9));
    drop(map);
    inode.mark_dirty();
    Ok(())
}

/// The data blocks that one round of [`prealloc`] allocates and zeroes before it links them.
const PREALLOC_BATCH: u64 = 256;

/// Gives the holes among logical blocks `range` of `inode` blocks that read as zeroes, and with
/// `zero_mapped` also zeroes the blocks already there, on the device (their pages must have
/// been dropped from the page cache).
///
/// A new block is zeroed on the device before it is linked into the block map, so that
/// neither a reader nor a crash can find old data in it. Fails with `ENOSPC` before allocating
/// anything if the holes need more blocks than are free.
pub(crate) fn prealloc(inode: &Locked<'_, VexFs>, range: Range<u64>, zero_mapped: bool) -> Result {
    let sb = inode.super_block();
    sb.data().check_live()?;
    let mut holes = 0u64;
    let mut lblk = range.start;
    while lblk < range.end {
        let (block, n) = extent(inode, lblk, range.end - lblk)?;
        if block.is_none() {
            holes += n;
        }
        lblk += n;
    }
    let data = sb.data();
    if holes > data.allocator(sb).free_blocks() {
        return Err(ENOSPC);
    }
    let mut blocks = KVec::with_capacity(PREALLOC_BATCH as usize, GFP_KERNEL)?;
    let mut lblk = range.start;
    while lblk < range.end {
        let (block, n) = extent(inode, lblk, range.end - lblk)?;
        match block {
            Some(b) if zero_mapped => sb.issue_zeroout(b, n)?,
            Some(_) => {}
            None => {
                let mut done = 0;
                while done < n {
                    let k = (n - done).min(PREALLOC_BATCH);
                    fill_holes(inode, lblk + done, k, &mut blocks)?;
                    done += k;
                }
            }
        }
        lblk += n;
    }
    Ok(())
}

/// Fills the `n` (at most [`PREALLOC_BATCH`]) holes from logical block `lblk` on with blocks
/// allocated and zeroed first; `blocks` is scratch space.
fn fill_holes(inode: &INode<VexFs>, lblk: u64, n: u64, blocks: &mut KVec<u32>) -> Result {
    let sb = inode.super_block();
    let data = sb.data();
    let free = |blocks: &[u32]| {
        let mut alloc = data.allocator(sb);
        for &b in blocks {
            let _ = alloc.free_block(u64::from(b));
        }
    };
    blocks.clear();
    {
        let mut alloc = data.allocator(sb);
        for _ in 0..n {
            let got = alloc.alloc_block().and_then(|b| {
                blocks.push(b as u32, GFP_KERNEL).map_err(|_| {
                    let _ = alloc.free_block(b);
                    ENOMEM
                })
            });
            if let Err(e) = got {
                drop(alloc);
                free(blocks);
                return Err(e);
            }
        }
    }
    // Zero each run of consecutive blocks with one request.
    let mut i = 0;
    while i < blocks.len() {
        let mut j = i + 1;
        while j < blocks.len() && blocks[j] == blocks[j - 1] + 1 {
            j += 1;
        }
        if let Err(e) = sb.issue_zeroout(u64::from(blocks[i]), (j - i) as u64) {
            free(blocks);
            return Err(e);
        }
        i = j;
    }
    for (i, &b) in blocks.iter().enumerate() {
        match map_create(inode, lblk + i as u64, Some(b)) {
            Ok((_, true)) => {}
            // A write fault allocated the block meanwhile.
            Ok((_, false)) => free(&[b]),
            Err(e) => {
                free(&blocks[i..]);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// The block mapping of VexFS files, for the page cache.
pub(crate) struct Mapper;

#[vtable]
impl address_space::Operations for Mapper {
    type FileSystem = VexFs;

    fn get_block(inode: &INode<VexFs>, block: u64, create: bool) -> Result<Option<Mapping>> {
        get_block(inode, block, create)
    }

    fn truncate_blocks(inode: &INode<VexFs>) -> Result {
        truncate_blocks(inode)
    }

    /// Nothing is written once the file system is shut down.
    fn check_writeback(inode: &INode<VexFs>) -> Result {
        inode.super_block().data().check_live()
    }

    /// Pages are written through shared mappings as through `write(2)`: not once the file
    /// system is shut down, not into an immutable file or a collection.
    fn page_mkwrite(inode: &INode<VexFs>) -> Result {
        inode.super_block().data().check_live()?;
        file::check_mutable(inode)?;
        if vector::is_collection(inode) {
            return Err(EPERM);
        }
        Ok(())
    }
}

/// The extents of VexFS files, for `FIEMAP`, `SEEK_HOLE`, `SEEK_DATA` and direct I/O.
#[vtable]
impl iomap::Operations for Mapper {
    type FileSystem = VexFs;

    /// Reports the extent at `pos`: the blocks stored contiguously from there, or the hole.
    /// Writes map only for direct I/O and only over blocks that exist: a hole fails with
    /// `ENOTBLK`, so that the page cache and [`get_block`] allocate it (as ext2 does for holes,
    /// here also past the end of the file, so that allocation has one path). Zeroing
    /// ([`iomap::zero_range`]) writes through the page cache, whose folios carry buffer heads,
    /// and leaves holes alone.
    fn iomap_begin(
        inode: &INode<VexFs>,
        pos: i64,
        length: i64,
        flags: u32,
        map: &mut IoMap<'_>,
    ) -> Result {
        let write = flags & iomap::flags::WRITE != 0;
        let zero = flags & iomap::flags::ZERO != 0;
        if write && !zero && flags & iomap::flags::DIRECT == 0 {
            return Err(EOPNOTSUPP);
        }
        if write && pos.saturating_add(length) > inode.size() {
            map.set_dirty();
        }
        let pos = u64::try_from(pos).map_err(|_| EINVAL)?;
        let length = u64::try_from(length).map_err(|_| EINVAL)?;
        let bs = format::BLOCK_SIZE as u64;
        let first = pos / bs;
        let blocks = pos.saturating_add(length).div_ceil(bs) - first;
        let (block, n) = extent(inode, first, blocks)?;
        let offset = i64::try_from(first * bs).map_err(|_| EFBIG)?;
        match block {
            Some(b) => {
                map.set_mapped(offset, n * bs, b);
                map.set_merged();
                if zero {
                    map.set_buffer_head();
                }
            }
            None if write && !zero => return Err(ENOTBLK),
            None => map.set_hole(offset, n.saturating_mul(bs)),
        }
        Ok(())
    }
}

/// The extent operations of VexFS files.
pub(crate) const IOMAP_OPS: iomap::Ops<VexFs> = iomap::Ops::new::<Mapper>();

/// The VFS flags that VexFS sets from the on-disk inode flags.
const VFS_FLAGS: u32 = vfs_inode::flags::S_SYNC
    | vfs_inode::flags::S_NOATIME
    | vfs_inode::flags::S_APPEND
    | vfs_inode::flags::S_IMMUTABLE;

/// The VFS flags (`S_*`) of an inode with on-disk flags `flags`.
fn vfs_flags(flags: u32) -> u32 {
    [
        (format::INODE_FLAG_SYNC, vfs_inode::flags::S_SYNC),
        (format::INODE_FLAG_NOATIME, vfs_inode::flags::S_NOATIME),
        (format::INODE_FLAG_APPEND, vfs_inode::flags::S_APPEND),
        (format::INODE_FLAG_IMMUTABLE, vfs_inode::flags::S_IMMUTABLE),
    ]
    .iter()
    .filter(|(on_disk, _)| flags & on_disk != 0)
    .fold(0, |acc, (_, vfs)| acc | vfs)
}

// The on-disk bits of the `chattr` flags are those of `FS_IOC_GETFLAGS`.
const _: () = assert!(
    format::INODE_FLAG_SYNC == kernel::uapi::FS_SYNC_FL
        && format::INODE_FLAG_IMMUTABLE == kernel::uapi::FS_IMMUTABLE_FL
        && format::INODE_FLAG_APPEND == kernel::uapi::FS_APPEND_FL
        && format::INODE_FLAG_NODUMP == kernel::uapi::FS_NODUMP_FL
        && format::INODE_FLAG_NOATIME == kernel::uapi::FS_NOATIME_FL
);

/// `FS_IOC_GETFLAGS`, `FS_IOC_FSGETXATTR` (`lsattr`): the `chattr` flags of the inode.
pub(crate) fn fileattr_get(
    dentry: &kernel::fs::dentry::DEntry<VexFs>,
    fa: &mut vfs_inode::FileAttr,
) -> Result {
    let inode = dentry.inode().ok_or(ENOENT)?;
    let flags = inode.data().map.lock().flags;
    fa.fill_flags(flags & format::INODE_FLAGS_USER);
    Ok(())
}

/// `FS_IOC_SETFLAGS`, `FS_IOC_FSSETXATTR` (`chattr`): sets the `chattr` flags of the inode.
/// VexFS keeps synchronous writes, no access time updates, append-only, immutable and no-dump;
/// others fail with `EOPNOTSUPP`, as extent sizes and project IDs do. The VFS enforces them
/// from the inode's VFS flags; the collection ioctls check them too.
pub(crate) fn fileattr_set(
    dentry: &kernel::fs::dentry::DEntry<VexFs>,
    fa: &vfs_inode::FileAttr,
) -> Result {
    let inode = dentry.inode().ok_or(ENOENT)?;
    inode.super_block().data().check_live()?;
    let new = fa.flags();
    if fa.has_fsx() || new & !format::INODE_FLAGS_USER != 0 {
        return Err(EOPNOTSUPP);
    }
    {
        let mut map = inode.data().map.lock();
        map.flags = (map.flags & !format::INODE_FLAGS_USER) | new;
        inode.set_flags(vfs_flags(map.flags), VFS_FLAGS);
    }
    inode.touch_ctime();
    inode.mark_dirty();
    Ok(())
}
