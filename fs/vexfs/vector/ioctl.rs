// SPDX-License-Identifier: GPL-2.0

//! The ioctls of `<linux/vexfs.h>` that change a collection or report on it, and their
//! dispatch.

use super::{
    compact::compact,
    header::{
        begin_overwrite,
        le32,
        le64,
        ne32,
        ne64,
        params_ok,
        put,
        read_header,
        record_size,
        write_header,
        ElemType,
        Header,
        Overwrite,
        FORMAT_VERSION,
        HEADER_SIZE, //
    },
    is_collection,
    load,
    loaded,
    records::{
        read_record,
        reserve_nodes,
        IO_CHUNK, //
    },
    saved::save_loaded,
    search::{
        put_scratch,
        search,
        search_batch,
        take_scratch,
        user_reader,
        with_index, //
    },
    with_state,
    Loaded,
    BATCH_LIMIT,
    BUILD_COMPACT,
    ID_MAX,
    INDEX_NONE,
    INDEX_READY,
    INDEX_RESTORED,
    INDEX_SAVED,
    INSERT_UPSERT,
    MAX_BATCH,
    TOMBSTONE,
    UAPI_VERSION, //
};
use crate::{
    format,
    hnsw::Index,
    vecmath::Metric,
    VexFs, //
};
use core::mem::offset_of;
use kernel::{
    alloc::{
        KVVec,
        KVec,
        VVec, //
    },
    fs::{
        inode::{
            flags::S_APPEND,
            INode, //
        },
        kernel_io::Writer,
        File, //
    },
    ioctl,
    prelude::*,
    transmute::{
        AsBytes,
        FromBytes, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    },
    uapi, //
};

const PARAMS_SIZE: usize = size_of::<uapi::vexfs_collection_params>();
const INSERT_SIZE: usize = size_of::<uapi::vexfs_insert>();
const DELETE_SIZE: usize = size_of::<uapi::vexfs_delete>();
const SEARCH_SIZE: usize = size_of::<uapi::vexfs_search>();
const BUILD_SIZE: usize = size_of::<uapi::vexfs_build_index>();
const STATS_SIZE: usize = size_of::<uapi::vexfs_stats>();
const SEARCH_STATS_SIZE: usize = size_of::<uapi::vexfs_search_stats>();
const SEARCH_BATCH_SIZE: usize = size_of::<uapi::vexfs_search_batch>();
const GET_SIZE: usize = size_of::<uapi::vexfs_get>();
const FILTER_SIZE: usize = size_of::<uapi::vexfs_filter>();
// The sizes the header promises, on every architecture.
const _: () = assert!(PARAMS_SIZE == 64 && INSERT_SIZE == 64 && DELETE_SIZE == 56);
const _: () = assert!(SEARCH_SIZE == 80 && BUILD_SIZE == 40 && STATS_SIZE == 136);
const _: () = assert!(SEARCH_STATS_SIZE == 64 && SEARCH_BATCH_SIZE == 80 && GET_SIZE == 64);
const _: () = assert!(FILTER_SIZE == 64);

const IOC_MAGIC: u32 = uapi::VEXFS_IOC_MAGIC;
pub(super) const IOC_CREATE: u32 = ioctl::_IOW::<uapi::vexfs_collection_params>(IOC_MAGIC, 1);
pub(super) const IOC_INSERT: u32 = ioctl::_IOW::<uapi::vexfs_insert>(IOC_MAGIC, 2);
pub(super) const IOC_DELETE: u32 = ioctl::_IOWR::<uapi::vexfs_delete>(IOC_MAGIC, 3);
pub(super) const IOC_SEARCH: u32 = ioctl::_IOWR::<uapi::vexfs_search>(IOC_MAGIC, 4);
pub(super) const IOC_BUILD_INDEX: u32 = ioctl::_IOW::<uapi::vexfs_build_index>(IOC_MAGIC, 5);
pub(super) const IOC_STATS: u32 = ioctl::_IOWR::<uapi::vexfs_stats>(IOC_MAGIC, 6);
pub(super) const IOC_SEARCH_BATCH: u32 = ioctl::_IOW::<uapi::vexfs_search_batch>(IOC_MAGIC, 7);
pub(super) const IOC_GET: u32 = ioctl::_IOW::<uapi::vexfs_get>(IOC_MAGIC, 8);

/// Reads the argument structure at user address `arg`.
pub(super) fn read_arg<T: FromBytes>(arg: usize) -> Result<T> {
    UserSlice::new(UserPtr::from_addr(arg), size_of::<T>())
        .reader()
        .read::<T>()
}

/// Writes `v` back to user address `addr` (`arg` plus the offset of an output field).
pub(super) fn write_field<T: AsBytes>(addr: usize, v: &T) -> Result {
    UserSlice::new(UserPtr::from_addr(addr), size_of::<T>())
        .writer()
        .write(v)
}

/// Writes `data` at user address `addr`.
pub(super) fn write_user(addr: u64, data: &[u8]) -> Result {
    let addr = usize::try_from(addr).map_err(|_| EFAULT)?;
    UserSlice::new(UserPtr::from_addr(addr), data.len())
        .writer()
        .write_slice(data)
}

pub(super) fn all_zero<T: Copy + Default + PartialEq>(b: &[T]) -> bool {
    b.iter().all(|&x| x == T::default())
}

/// Handles an ioctl on a regular file of VexFS.
/// Once the file system is shut down, every one fails with `EIO`.
pub(crate) fn ioctl(file: &File, inode: &INode<VexFs>, cmd: u32, arg: usize) -> Result<isize> {
    let op: fn(&File, &INode<VexFs>, usize) -> Result = match cmd {
        IOC_CREATE => create,
        IOC_INSERT => insert,
        IOC_DELETE => delete,
        IOC_SEARCH => search,
        IOC_BUILD_INDEX => build,
        IOC_STATS => stats,
        IOC_SEARCH_BATCH => search_batch,
        IOC_GET => get,
        _ => return Err(ENOTTY),
    };
    inode.super_block().data().check_live()?;
    match cmd {
        IOC_CREATE | IOC_INSERT => check_chattr(inode, true)?,
        IOC_DELETE => check_chattr(inode, false)?,
        _ => {}
    }
    op(file, inode, arg)?;
    Ok(0)
}

/// The `chattr` flags of a collection (checked by the ioctls, which the VFS does not check):
/// an immutable one only answers, an append-only one only grows. Fails with `EPERM` for a
/// change that `appends` (or not) when the flags forbid it.
fn check_chattr(inode: &INode<VexFs>, appends: bool) -> Result {
    crate::file::check_mutable(inode)?;
    if !appends && inode.flags() & S_APPEND != 0 {
        return Err(EPERM);
    }
    Ok(())
}

fn create(file: &File, inode: &INode<VexFs>, arg: usize) -> Result {
    let a: uapi::vexfs_collection_params = read_arg(arg)?;
    let (version, dim, elem_type, metric) = (a.version, a.dim, a.elem_type, a.metric);
    let (mut m, mut efc, flags) = (a.hnsw_m, a.hnsw_ef_construction, a.flags);
    if m == 0 {
        m = 16;
    }
    if efc == 0 {
        efc = 200.max(m);
    }
    let (elem_type, metric) = (ElemType::try_from(elem_type)?, Metric::try_from(metric)?);
    if version != UAPI_VERSION || !params_ok(dim, m, efc) || flags != 0 || !all_zero(&a.reserved) {
        return Err(EINVAL);
    }
    let hdr = Header {
        dim,
        elem_type,
        metric,
        m,
        ef_construction: efc,
        record_size: record_size(dim, elem_type, FORMAT_VERSION),
        records: 0,
        live: 0,
        index_off: 0,
        index_len: 0,
        generation: 1,
        index_generation: 0,
        version: FORMAT_VERSION,
        // Unique to the file: another file, or this inode number reused, gets another.
        salt: (u64::from(inode.generation()) << 32) ^ inode.ino(),
        durable: 0,
        base: HEADER_SIZE as u64,
        log_off: 0,
        log_len: 0,
    };
    let w = Writer::new(file)?;
    with_state(inode, |state, charge| {
        {
            let mut map = inode.data().map.lock();
            if map.flags & format::INODE_FLAG_COLLECTION != 0 {
                return Err(EEXIST);
            }
            if inode.size() != 0 {
                return Err(ENOTEMPTY);
            }
            // From now on write(2) is refused.
            map.flags |= format::INODE_FLAG_COLLECTION;
        }
        inode.mark_dirty();
        let res = (|| -> Result<KBox<Loaded>> {
            let index = Index::new(hdr.params());
            reserve_nodes(&index, charge, 0)?;
            let l = KBox::new(
                Loaded {
                    hdr,
                    index,
                    dirty: false,
                    restored: false,
                    saved_at: 0,
                    load_ns: 0,
                },
                GFP_KERNEL,
            )?;
            write_header(&w, &hdr)?;
            Ok(l)
        })();
        match res {
            Ok(l) => {
                state.index = Some(l);
                Ok(())
            }
            Err(e) => {
                inode.data().map.lock().flags &= !format::INODE_FLAG_COLLECTION;
                inode.mark_dirty();
                Err(e)
            }
        }
    })
}

fn insert(file: &File, inode: &INode<VexFs>, arg: usize) -> Result {
    let a: uapi::vexfs_insert = read_arg(arg)?;
    let (count, flags, ids_addr, vecs_addr) = (a.count, a.flags, a.ids, a.vectors);
    if a.version != UAPI_VERSION
        || count == 0
        || count > MAX_BATCH
        || flags & !INSERT_UPSERT != 0
        || a.__pad != 0
        || !all_zero(&a.reserved)
    {
        return Err(EINVAL);
    }
    if !is_collection(inode) {
        return Err(ENOTTY);
    }
    let count = count as usize;
    let upsert = flags & INSERT_UPSERT != 0;
    if upsert {
        // Replaces records.
        check_chattr(inode, false)?;
    }
    let w = Writer::new(file)?;
    with_state(inode, |state, charge| {
        let l = loaded(file, state, charge)?;
        let hdr = l.hdr;
        let dim = hdr.dim as usize;
        let esize = hdr.elem_size();
        if count.saturating_mul(dim).saturating_mul(4) > BATCH_LIMIT {
            return Err(E2BIG);
        }

        // The ids: valid, unique in the batch and new, or with an upsert the nodes they
        // replace.
        let mut ids: KVVec<u8> = KVVec::new();
        UserSlice::new(
            UserPtr::from_addr(usize::try_from(ids_addr).map_err(|_| EFAULT)?),
            count * 8,
        )
        .read_all(&mut ids, GFP_KERNEL)?;
        let mut sorted: KVVec<u64> = KVVec::with_capacity(count, GFP_KERNEL)?;
        let mut replaced: KVVec<u32> = KVVec::new();
        for c in ids.chunks_exact(8) {
            let id = ne64(c, 0);
            if id > ID_MAX {
                return Err(EINVAL);
            }
            if let Some(node) = l.index.find(id) {
                if !upsert {
                    return Err(EEXIST);
                }
                replaced.push(node, GFP_KERNEL)?;
            }
            sorted.push(id, GFP_KERNEL)?;
        }
        sorted.sort_unstable();
        if sorted.windows(2).any(|p| p[0] == p[1]) {
            return Err(EEXIST);
        }
        drop(sorted);

        // Memory: room in the budget for the index after the batch.
        reserve_nodes(&l.index, charge, count)?;
        l.index.reserve(count)?;

        // Convert and check every vector, building the records, before changing anything.
        let first = l.index.len();
        let rs = hdr.record_size as usize;
        let mut recs: VVec<u8> = VVec::with_capacity(count * rs, GFP_KERNEL)?;
        recs.resize(count * rs, 0, GFP_KERNEL)?;
        let mut m: KVec<i32> = KVec::with_capacity(dim, GFP_KERNEL)?;
        m.resize(dim, 0, GFP_KERNEL)?;
        let mut reader = UserSlice::new(
            UserPtr::from_addr(usize::try_from(vecs_addr).map_err(|_| EFAULT)?),
            count * dim * esize,
        )
        .reader();
        let res = (|| -> Result {
            for (i, r) in recs.chunks_exact_mut(rs).enumerate() {
                let id = ne64(&ids, i * 8);
                put(&mut r[0..8], &id.to_le_bytes());
                let raw = &mut r[8..8 + dim * esize];
                reader.read_slice(raw)?;
                if esize == 4 {
                    // User space passes native-endian patterns; the file holds little-endian.
                    for c in raw.chunks_exact_mut(4) {
                        let v = ne32(c, 0);
                        put(c, &v.to_le_bytes());
                    }
                }
                let scale = hdr.convert(raw, &mut m)?;
                let slot = hdr.records + i as u64;
                hdr.seal(slot, r);
                l.index.push(id, slot, &m, scale)?;
            }
            Ok(())
        })();
        if let Err(e) = res {
            l.index.truncate(first);
            return Err(e);
        }

        // Write the records, then the header.
        let mut new_hdr = hdr;
        new_hdr.records += count as u64;
        new_hdr.live += (count - replaced.len()) as u64;
        if u64::try_from(new_hdr.offset(new_hdr.records)?).map_err(|_| EFBIG)? > hdr.index_off {
            // The records overwrite the saved index (or there is none).
            new_hdr.drop_saved();
        }
        let res = (|| -> Result {
            let start = hdr.offset(hdr.records)?;
            let mut done = 0;
            while done < recs.len() {
                let n = (recs.len() - done).min(IO_CHUNK);
                w.write_all_at(start + done as i64, &recs[done..done + n])?;
                done += n;
            }
            write_header(&w, &new_hdr)
        })();
        if let Err(e) = res {
            l.index.truncate(first);
            return Err(e);
        }
        l.hdr = new_hdr;
        l.dirty = true;

        // The batch is in: an upsert's new records supersede the old ones (a later live
        // record of an id wins, see `supersede`), which are tombstoned once the new ones are
        // durable, unless that or marking the saved index stale fails (they are superseded
        // all the same).
        let tomb = TOMBSTONE.to_le_bytes();
        let stale = match replaced.is_empty() {
            true => Ok(()),
            false => l
                .hdr
                .offset(l.hdr.records)
                .and_then(|end| begin_overwrite(file, &w, &mut l.hdr, Overwrite::Replace(end))),
        };
        for &node in replaced.iter() {
            let slot = l.index.delete_node(node);
            let res = stale
                .and_then(|()| l.hdr.offset(slot))
                .and_then(|o| w.write_all_at(o, &tomb));
            if let Err(e) = res {
                if crate::super_block::log_ratelimit() {
                    pr_warn!(
                        "collection: replaced record {} not tombstoned (error {}); superseded\n",
                        slot,
                        e.to_errno()
                    );
                }
            }
        }

        // Link the new nodes into the graph. On failure the index is dropped: the file is right
        // and the next operation rebuilds it.
        let mut scratch = take_scratch(inode)?;
        let res = (first..l.index.len()).try_for_each(|n| l.index.link(n as u32, &mut scratch));
        put_scratch(inode, scratch);
        if res.is_err() {
            state.index = None;
        }
        Ok(())
    })
}

fn delete(file: &File, inode: &INode<VexFs>, arg: usize) -> Result {
    let a: uapi::vexfs_delete = read_arg(arg)?;
    let (count, ids_addr) = (a.count, a.ids);
    if a.version != UAPI_VERSION
        || count == 0
        || count > MAX_BATCH
        || a.__pad != 0
        || !all_zero(&a.reserved)
    {
        return Err(EINVAL);
    }
    if !is_collection(inode) {
        return Err(ENOTTY);
    }
    let mut ids: KVVec<u8> = KVVec::new();
    UserSlice::new(
        UserPtr::from_addr(usize::try_from(ids_addr).map_err(|_| EFAULT)?),
        count as usize * 8,
    )
    .read_all(&mut ids, GFP_KERNEL)?;
    let w = Writer::new(file)?;
    let deleted = with_state(inode, |state, charge| {
        let l = loaded(file, state, charge)?;
        let mut deleted = 0u32;
        let tomb = TOMBSTONE.to_le_bytes();
        let mut res = Ok(());
        for c in ids.chunks_exact(8) {
            let id = ne64(c, 0);
            let Some(node) = l.index.find(id) else {
                continue;
            };
            let slot_off = match l.index.slot(node).and_then(|s| l.hdr.offset(s)) {
                Ok(o) => o,
                Err(e) => {
                    res = Err(e);
                    break;
                }
            };
            if deleted == 0 {
                if let Err(e) = begin_overwrite(file, &w, &mut l.hdr, Overwrite::Delete) {
                    res = Err(e);
                    break;
                }
            }
            if let Err(e) = w.write_all_at(slot_off, &tomb) {
                res = Err(e);
                break;
            }
            l.index.delete(id);
            l.hdr.live -= 1;
            l.dirty = true;
            deleted += 1;
        }
        if deleted > 0 {
            let hdr = l.hdr;
            if let Err(e) = write_header(&w, &hdr) {
                // The records are tombstoned but the header says otherwise: drop the index so
                // that the next load reports the mismatch.
                state.index = None;
                return Err(e);
            }
        }
        res?;
        Ok(deleted)
    })?;
    write_field(arg + offset_of!(uapi::vexfs_delete, deleted), &deleted)
}

fn get(file: &File, inode: &INode<VexFs>, arg: usize) -> Result {
    let a: uapi::vexfs_get = read_arg(arg)?;
    let (count, ids_addr, vecs_addr) = (a.count, a.ids, a.vectors);
    if a.version != UAPI_VERSION || count == 0 || count > MAX_BATCH || !all_zero(&a.reserved) {
        return Err(EINVAL);
    }
    if !is_collection(inode) {
        return Err(ENOTTY);
    }
    let count = count as usize;
    let mut ids: KVVec<u8> = KVVec::new();
    user_reader(ids_addr, count * 8)?.read_all(&mut ids, GFP_KERNEL)?;
    with_index(file, inode, |l| {
        let hdr = &l.hdr;
        let vsize = hdr.dim as usize * hdr.elem_size();
        if count.saturating_mul(vsize) > BATCH_LIMIT {
            return Err(E2BIG);
        }
        let rs = hdr.record_size as usize;
        let mut rec: KVec<u8> = KVec::with_capacity(rs, GFP_KERNEL)?;
        rec.resize(rs, 0, GFP_KERNEL)?;
        let mut out: KVVec<u8> = KVVec::with_capacity(count * vsize, GFP_KERNEL)?;
        for c in ids.chunks_exact(8) {
            let id = ne64(c, 0);
            let node = l.index.find(id).ok_or(ENOENT)?;
            read_record(file, hdr, l.index.slot(node)?, &mut rec)?;
            if le64(&rec, 0) != id {
                // The record changed behind the index's back.
                return Err(EUCLEAN);
            }
            let v = &mut rec[8..8 + vsize];
            if hdr.elem_size() == 4 {
                for e in v.chunks_exact_mut(4) {
                    let x = le32(e, 0);
                    put(e, &x.to_ne_bytes());
                }
            }
            out.extend_from_slice(v, GFP_KERNEL)?;
        }
        write_user(vecs_addr, &out)
    })
}

fn build(file: &File, inode: &INode<VexFs>, arg: usize) -> Result {
    let a: uapi::vexfs_build_index = read_arg(arg)?;
    let flags = a.flags;
    if a.version != UAPI_VERSION || flags & !BUILD_COMPACT != 0 || !all_zero(&a.reserved) {
        return Err(EINVAL);
    }
    if !is_collection(inode) {
        return Err(ENOTTY);
    }
    let compacting = flags & BUILD_COMPACT != 0;
    if compacting {
        check_chattr(inode, false)?;
    }
    // Compaction needs write access; a rebuild saves the new index if it has it, and if the
    // collection is not immutable.
    let w = match Writer::new(file) {
        Ok(_) if !compacting && crate::file::is_immutable(inode) => None,
        Ok(w) => Some(w),
        Err(e) if e == EBADF && !compacting => None,
        Err(e) => return Err(e),
    };
    with_state(inode, |state, charge| {
        state.index = None;
        if let (Some(w), true) = (&w, flags & BUILD_COMPACT != 0) {
            let hdr = compact(file, inode, w)?;
            // Give the space of the dropped records and of the old saved index back.
            let end = hdr.offset(hdr.records)?;
            w.truncate(end, |size| crate::file::truncate(inode, size))?;
        }
        let l = state.index.insert(load(file, true, charge)?);
        match &w {
            Some(w) => save_loaded(file, inode, w, l),
            None => Ok(()),
        }
    })
}

pub(super) fn stats(file: &File, inode: &INode<VexFs>, arg: usize) -> Result {
    let a: uapi::vexfs_stats = read_arg(arg)?;
    // Fields that were reserved in the first version of the structure must still be zero
    // on the way in.
    if a.version != UAPI_VERSION
        || a.saved_bytes != 0
        || a.load_nanoseconds != 0
        || a.index_flags != 0
        || a.__pad != 0
        || a.mount_index_bytes != 0
    {
        return Err(EINVAL);
    }
    if !is_collection(inode) {
        return Err(ENOTTY);
    }
    let state = inode.data().vec.state.read();
    let (hdr, index_state, index_bytes, load_ns, mut iflags) = match state.index.as_deref() {
        Some(l) => {
            let mut f = 0;
            if l.restored {
                f |= INDEX_RESTORED;
            }
            if !l.dirty && l.hdr.index_off != 0 {
                f |= INDEX_SAVED;
            }
            (l.hdr, INDEX_READY, l.index.bytes() as u64, l.load_ns, f)
        }
        None => (read_header(file)?, INDEX_NONE, 0, 0, 0),
    };
    drop(state);
    if index_state == INDEX_NONE && hdr.index_off != 0 {
        iflags |= INDEX_SAVED;
    }
    let resident = inode.super_block().data().indexes.resident();
    let out = uapi::vexfs_stats {
        version: UAPI_VERSION,
        index_state,
        params: uapi::vexfs_collection_params {
            version: UAPI_VERSION,
            dim: hdr.dim,
            elem_type: u32::from(hdr.elem_type),
            metric: u32::from(hdr.metric),
            hnsw_m: hdr.m,
            hnsw_ef_construction: hdr.ef_construction,
            ..Default::default()
        },
        count: hdr.live,
        deleted: hdr.records - hdr.live,
        file_bytes: inode.size() as u64,
        index_bytes,
        saved_bytes: hdr.index_len,
        load_nanoseconds: load_ns,
        index_flags: iflags,
        mount_index_bytes: resident as u64,
        ..Default::default()
    };
    write_field(arg, &out)
}
