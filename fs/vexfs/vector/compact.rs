// SPDX-License-Identifier: GPL-2.0

//! Compaction of a collection file (`VEXFS_BUILD_COMPACT`).

use super::{
    header::{
        begin_overwrite,
        le64,
        read_header,
        record_state,
        write_header,
        Header,
        Overwrite,
        Rec,
        HEADER_SIZE, //
    },
    records::{
        for_each_record,
        IO_CHUNK, //
    },
    TOMBSTONE, //
};
use crate::VexFs;
use kernel::{
    alloc::{
        KVVec,
        VVec, //
    },
    fs::{
        fops,
        inode::INode,
        kernel_io::Writer,
        File, //
    },
    prelude::*, //
};

/// Moves the live records of the collection to the front, in order, and updates the header,
/// which it returns; the bytes after the last record are no longer part of the collection. A
/// live record that a later one of the same id supersedes (an interrupted upsert) and records
/// a crash left unwritten are dropped too.
///
/// The records are first copied past everything the file holds, and the header switched to them
/// ([`FORMAT_MOVED`](super::header::FORMAT_MOVED)) once they are durable; then they are copied back
/// to the front and the header switched back. At any point a crash leaves a header that names a
/// complete set of durable records: the old ones, or the copy. Version 1 records, which carry no
/// checksum that would tell a torn copy, move in place, and a crash can lose records that moved.
pub(super) fn compact(file: &File, inode: &INode<VexFs>, w: &Writer<'_>) -> Result<Header> {
    let mut hdr = read_header(file)?;
    // The records to drop: superseded and unwritten ones (and tombstones).
    let mut live: KVVec<(u64, u64)> = KVVec::new();
    let mut dropped: KVVec<u64> = KVVec::new();
    for_each_record(file, &hdr, 0, |slot, r| {
        match record_state(&hdr, slot, r)? {
            Rec::Live(id) => live.push((id, slot), GFP_KERNEL)?,
            Rec::Unwritten => dropped.push(slot, GFP_KERNEL)?,
            Rec::Deleted => (),
        }
        Ok(())
    })?;
    live.sort_unstable();
    for p in live.windows(2) {
        if p[0].0 == p[1].0 {
            dropped.push(p[0].1, GFP_KERNEL)?;
        }
    }
    drop(live);
    dropped.sort_unstable();
    let front = HEADER_SIZE as u64;
    let mut new_hdr = hdr;
    if hdr.checksummed() {
        let end = u64::try_from(hdr.offset(hdr.records)?).map_err(|_| EFBIG)?;
        let far = end
            .max(hdr.saved_end())
            .checked_next_multiple_of(4096)
            .ok_or(EFBIG)?;
        let size = inode.size();
        let copied = copy_records(w, file, &hdr, &dropped, far)
            .and_then(|out| crate::file::fsync(file, inode, 0, i64::MAX, false).map(|()| out));
        let out = match copied {
            Ok(out) => out,
            Err(e) => {
                // Nothing changed but the space the copy took (ENOSPC, most likely): give
                // it back.
                let _ = w.truncate(size, |size| crate::file::truncate(inode, size));
                return Err(e);
            }
        };
        new_hdr.base = far;
        new_hdr.records = out;
        new_hdr.live = out;
        new_hdr.durable = out;
        new_hdr.generation = hdr.generation.wrapping_add(1).max(1);
        // The saved index names records by number: it no longer fits.
        new_hdr.drop_saved();
        write_header(w, &new_hdr)?;
        fops::generic_fsync(file, 0, HEADER_SIZE as i64 - 1, true)?;
        hdr = new_hdr;
        copy_records(w, file, &hdr, &[], front)?;
        crate::file::fsync(file, inode, 0, i64::MAX, true)?;
    } else {
        begin_overwrite(file, w, &mut hdr, Overwrite::Move)?;
        let out = copy_records(w, file, &hdr, &dropped, front)?;
        new_hdr = hdr;
        new_hdr.records = out;
        new_hdr.live = out;
        new_hdr.drop_saved();
    }
    new_hdr.base = front;
    write_header(w, &new_hdr)?;
    // Before the caller truncates the file: a crash must not leave the header that names
    // the copy over a file cut short of it.
    fops::generic_fsync(file, 0, HEADER_SIZE as i64 - 1, true)?;
    Ok(new_hdr)
}

/// Writes the records of `hdr` that are neither deleted nor in `dropped` (record numbers,
/// ascending) one after another from file offset `to`, each sealed as the record it becomes;
/// returns how many. `to` is the offset of the first record or lies past the last one.
fn copy_records(
    w: &Writer<'_>,
    file: &File,
    hdr: &Header,
    dropped: &[u64],
    to: u64,
) -> Result<u64> {
    let rs = hdr.record_size as usize;
    let at = |n: u64| {
        n.checked_mul(rs as u64)
            .and_then(|o| o.checked_add(to))
            .and_then(|o| i64::try_from(o).ok())
            .ok_or(EFBIG)
    };
    // Records to write from record `first` on. Moving down in place, they are written at or
    // before where they were read, after the reads.
    let mut buf: VVec<u8> = VVec::with_capacity(IO_CHUNK.max(rs), GFP_KERNEL)?;
    let (mut first, mut out) = (0u64, 0u64);
    for_each_record(file, hdr, 0, |slot, r| {
        if le64(r, 0) == TOMBSTONE || dropped.binary_search(&slot).is_ok() {
            return Ok(());
        }
        let unmoved = at(out)? == hdr.offset(slot)?;
        if !buf.is_empty() && (unmoved || buf.len() + rs > buf.capacity()) {
            w.write_all_at(at(first)?, &buf)?;
            buf.clear();
        }
        if !unmoved {
            if buf.is_empty() {
                first = out;
            }
            let n = buf.len();
            buf.extend_from_slice(r, GFP_KERNEL)?;
            hdr.seal(out, &mut buf[n..]);
        }
        out += 1;
        Ok(())
    })?;
    w.write_all_at(at(first)?, &buf)?;
    if out != hdr.live {
        // A crash between a delete's tombstones and its header: the records are right.
        pr_warn!(
            "collection: {} live records, header says {}\n",
            out,
            hdr.live
        );
    }
    Ok(out)
}
