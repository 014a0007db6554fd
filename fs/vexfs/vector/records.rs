// SPDX-License-Identifier: GPL-2.0

//! Reading the records of a collection, and building its index from them.

use super::{
    header::{
        le64,
        record_state,
        Header,
        Rec, //
    },
    search::new_scratch,
    Loaded, //
};
use crate::{
    cache::Charge,
    hnsw::{
        Index,
        Records, //
    },
};
use kernel::{
    alloc::{
        KVec,
        VVec, //
    },
    fs::{
        kernel_io,
        File, //
    },
    prelude::*, //
};

/// Size of the buffer records are read and written through.
pub(super) const IO_CHUNK: usize = 64 << 10;

/// Calls `f` with the number and the bytes of every record of the collection from record
/// `first` on, in order.
pub(super) fn for_each_record(
    file: &File,
    hdr: &Header,
    first: u64,
    mut f: impl FnMut(u64, &[u8]) -> Result,
) -> Result {
    let rs = hdr.record_size as usize;
    let per_chunk = (IO_CHUNK / rs).max(1);
    let mut buf: VVec<u8> = VVec::with_capacity(per_chunk * rs, GFP_KERNEL)?;
    buf.resize(per_chunk * rs, 0, GFP_KERNEL)?;
    let mut rec = first;
    while rec < hdr.records {
        let n = (hdr.records - rec).min(per_chunk as u64) as usize;
        let want = n * rs;
        if kernel_io::read_at(file, hdr.offset(rec)?, &mut buf[..want])? != want {
            pr_err!("collection: file shorter than its records\n");
            return Err(EUCLEAN);
        }
        for (i, r) in buf[..want].chunks_exact(rs).enumerate() {
            f(rec + i as u64, r)?;
        }
        rec += n as u64;
    }
    Ok(())
}

/// Converts the vector of record `r` (number `slot`) into `m`; returns its scale.
pub(super) fn record_vector(hdr: &Header, slot: u64, r: &[u8], m: &mut [i32]) -> Result<i32> {
    let n = hdr.dim as usize * hdr.elem_size();
    hdr.convert(&r[8..8 + n], m).map_err(|_| {
        pr_err!("collection: invalid element in record {}\n", slot);
        EUCLEAN
    })
}

/// Reads record `slot` into `rec` (`record_size` bytes): straight from the page cache when it
/// holds it (records are read back soon after they were written or last read), else through
/// the read path. `EUCLEAN` if the file ends before the record.
pub(super) fn read_record(file: &File, hdr: &Header, slot: u64, rec: &mut [u8]) -> Result {
    let off = hdr.offset(slot)?;
    if !kernel_io::read_cached(file, off, rec)? && kernel_io::read_at(file, off, rec)? != rec.len()
    {
        return Err(EUCLEAN);
    }
    Ok(())
}

/// The records of a collection, read back through the page cache for the exact distances a
/// cosine index computes (it keeps no exact vectors in memory).
pub(super) struct FileRecords<'a> {
    pub(super) file: &'a File,
    pub(super) hdr: &'a Header,
    pub(super) rec: KVec<u8>,
}

impl<'a> FileRecords<'a> {
    pub(super) fn new(file: &'a File, hdr: &'a Header) -> Result<Self> {
        let rs = hdr.record_size as usize;
        let mut rec = KVec::with_capacity(rs, GFP_KERNEL)?;
        rec.resize(rs, 0, GFP_KERNEL)?;
        Ok(Self { file, hdr, rec })
    }
}

impl Records for FileRecords<'_> {
    fn vector(&mut self, slot: u64, id: u64, m: &mut [i32]) -> Result<i32> {
        read_record(self.file, self.hdr, slot, &mut self.rec)?;
        if le64(&self.rec, 0) != id {
            // The record changed behind the index's back.
            return Err(EUCLEAN);
        }
        record_vector(self.hdr, slot, &self.rec, m)
    }
}

/// Adds live record `slot` (vector `id`, bytes `r`) to `index`, growing it within the budget
/// (`charge`); `m` is room for the mantissas. Returns the node, not linked yet.
pub(super) fn push_record(
    index: &mut Index,
    charge: &mut Charge<'_>,
    hdr: &Header,
    slot: u64,
    id: u64,
    r: &[u8],
    m: &mut [i32],
) -> Result<u32> {
    let scale = record_vector(hdr, slot, r, m)?;
    charge.reserve(size_of::<Loaded>() + index.bytes_after(1))?;
    index.reserve(1)?;
    index.push(id, slot, m, scale)
}

/// Marks deleted the node of `id` if `index` has one: record `slot`, a later record of the same
/// id, supersedes it. An upsert writes its records and the header before it tombstones the
/// records it replaces, so a crash in between leaves both live, the newer winning. Returns
/// whether a node was superseded.
pub(super) fn supersede(index: &mut Index, id: u64, slot: u64) -> bool {
    let Some(old) = index.find(id) else {
        return false;
    };
    let was = index.delete_node(old);
    if crate::super_block::log_ratelimit() {
        pr_warn!(
            "collection: record {} supersedes record {} of the same id (an interrupted upsert)\n",
            slot,
            was
        );
    }
    true
}

/// Makes room in the budget (`charge`) for `n` more nodes in `index`; logs the first refusal
/// of a collection too large for the budget.
pub(super) fn reserve_nodes(index: &Index, charge: &mut Charge<'_>, n: usize) -> Result {
    let bytes = size_of::<Loaded>() + index.bytes_after(n);
    charge.reserve(bytes).inspect_err(|_| {
        if bytes > charge.budget() {
            kernel::pr_warn_once!(
                "collection of {} vectors needs {} bytes of index memory: above index_budget\n",
                n,
                bytes
            );
        }
    })
}

/// Builds the index of a collection from its records. Returns it and the live count.
// Not inlined, like restore(): each has its own buffers and scratch, which would otherwise
// all sit in the frame of load() at once (3.9 KiB of a kernel stack).
#[inline(never)]
pub(super) fn rebuild(file: &File, hdr: &Header, charge: &mut Charge<'_>) -> Result<(Index, u64)> {
    let mut index = Index::new(hdr.params());
    let live = usize::try_from(hdr.live).map_err(|_| ENOMEM)?;
    reserve_nodes(&index, charge, live)?;
    index.reserve(live)?;
    let mut m: KVec<i32> = KVec::with_capacity(hdr.dim as usize, GFP_KERNEL)?;
    m.resize(hdr.dim as usize, 0, GFP_KERNEL)?;
    let mut scratch = new_scratch()?;
    let mut seen_live = 0u64;
    for_each_record(file, hdr, 0, |slot, r| {
        let Rec::Live(id) = record_state(hdr, slot, r)? else {
            return Ok(());
        };
        seen_live += 1;
        if supersede(&mut index, id, slot) {
            seen_live -= 1;
        }
        // More live records than the header says (see `load`) get room as they come.
        let node = push_record(&mut index, charge, hdr, slot, id, r, &mut m)?;
        index.link(node, &mut scratch)
    })?;
    Ok((index, seen_live))
}
