// SPDX-License-Identifier: GPL-2.0

//! The index saved in the collection file: restoring it and saving it, whole or in place.

use super::{
    header::{
        le32,
        le64,
        put,
        record_state,
        write_header,
        Header,
        Rec, //
    },
    records::{
        for_each_record,
        push_record,
        record_vector,
        reserve_nodes,
        supersede,
        IO_CHUNK, //
    },
    search::new_scratch,
    Loaded,
    TOMBSTONE, //
};
use crate::{
    cache::Charge,
    format,
    hnsw::{
        Index,
        SAVED_HEAD, //
    },
    VexFs, //
};
use kernel::{
    alloc::{
        KVVec,
        KVec,
        VVec, //
    },
    fs::{
        inode::INode,
        kernel_io::{
            self,
            Writer, //
        },
        File, //
    },
    prelude::*, //
};

/// Magic of a saved index.
const INDEX_MAGIC: &[u8; 8] = b"VEXFSIDX";
const INDEX_VERSION: u32 = 2;
/// Size of the header of a saved index.
pub(super) const INDEX_HEADER: usize = 64;
/// Alignment of a saved index in the collection file.
const INDEX_ALIGN: u64 = 1 << 20;
/// Magic of the log of a save over the saved index in place ([`SaveLog`]).
const LOG_MAGIC: &[u8; 8] = b"VEXFSLOG";
/// Size of the header of a save log.
const LOG_HEADER: usize = 64;
/// Size of the head of a run of a save log.
const RUN_HEAD: usize = 16;

/// The header of a saved index ([`INDEX_HEADER`] bytes at the start of it).
#[derive(Clone, Copy, Debug)]
pub(super) struct SavedHeader {
    /// Nodes saved.
    pub(super) nodes: u64,
    /// The collection's record count when the index was saved.
    pub(super) records: u64,
    /// Entry point and its level.
    pub(super) entry: Option<(u32, u32)>,
    /// Bytes of node entries after the header.
    pub(super) payload: u64,
    /// CRC32C of the node entries.
    pub(super) payload_crc: u32,
}

impl SavedHeader {
    pub(super) fn encode(&self, hdr: &Header, out: &mut [u8; INDEX_HEADER]) {
        out.fill(0);
        put(&mut out[0..8], INDEX_MAGIC);
        put(&mut out[8..12], &INDEX_VERSION.to_le_bytes());
        put(&mut out[12..16], &(INDEX_HEADER as u32).to_le_bytes());
        put(&mut out[16..24], &self.nodes.to_le_bytes());
        put(&mut out[24..32], &self.records.to_le_bytes());
        let (entry, level) = self.entry.unwrap_or((u32::MAX, 0));
        put(&mut out[32..36], &entry.to_le_bytes());
        put(&mut out[36..40], &level.to_le_bytes());
        put(&mut out[40..48], &self.payload.to_le_bytes());
        put(&mut out[48..52], &hdr.m.to_le_bytes());
        put(&mut out[52..56], &hdr.dim.to_le_bytes());
        put(&mut out[56..60], &self.payload_crc.to_le_bytes());
        let crc = format::crc32c(&out[..INDEX_HEADER - 4]);
        put(&mut out[INDEX_HEADER - 4..], &crc.to_le_bytes());
    }

    /// Decodes and checks the header of the index saved for collection header `hdr`, a copy
    /// of `len` bytes.
    pub(super) fn decode(b: &[u8; INDEX_HEADER], hdr: &Header, len: u64) -> Result<Self> {
        if &b[0..8] != INDEX_MAGIC
            || format::crc32c(&b[..INDEX_HEADER - 4]) != le32(b, INDEX_HEADER - 4)
            // Version 1 copies (no traversal data in their entries) are read too.
            || !(1..=INDEX_VERSION).contains(&le32(b, 8))
            || le32(b, 12) != INDEX_HEADER as u32
            || le32(b, 48) != hdr.m
            || le32(b, 52) != hdr.dim
        {
            return Err(EUCLEAN);
        }
        let h = Self {
            nodes: le64(b, 16),
            records: le64(b, 24),
            entry: match le32(b, 32) {
                u32::MAX => None,
                e => Some((e, le32(b, 36))),
            },
            payload: le64(b, 40),
            payload_crc: le32(b, 56),
        };
        if h.records > hdr.records
            || h.nodes > h.records
            || h.payload.checked_add(INDEX_HEADER as u64) != Some(len)
        {
            return Err(EUCLEAN);
        }
        Ok(h)
    }
}

/// A sequential reader of part of the collection file.
struct Stream<'a> {
    pub(super) file: &'a File,
    /// The log laid over what is read, if any.
    log: Option<&'a SaveLog>,
    pos: i64,
    left: u64,
    pub(super) buf: VVec<u8>,
    at: usize,
    pub(super) len: usize,
}

impl<'a> Stream<'a> {
    /// Reads `len` bytes of `file` from `pos` on, with the runs of `log` laid over them.
    pub(super) fn new(
        file: &'a File,
        pos: i64,
        len: u64,
        log: Option<&'a SaveLog>,
    ) -> Result<Self> {
        let mut buf = VVec::with_capacity(IO_CHUNK, GFP_KERNEL)?;
        buf.resize(IO_CHUNK, 0, GFP_KERNEL)?;
        Ok(Self {
            file,
            log,
            pos,
            left: len,
            buf,
            at: 0,
            len: 0,
        })
    }

    /// The next `n` bytes, without consuming them; `EUCLEAN` past the end.
    fn peek(&mut self, n: usize) -> Result<&[u8]> {
        if self.len - self.at < n {
            self.buf.copy_within(self.at..self.len, 0);
            self.len -= self.at;
            self.at = 0;
            let room = self.buf.len() - self.len;
            let want = usize::try_from(self.left).map_or(room, |l| l.min(room));
            if self.len + want < n {
                return Err(EUCLEAN);
            }
            let dst = &mut self.buf[self.len..self.len + want];
            if kernel_io::read_at(self.file, self.pos, dst)? != want {
                return Err(EUCLEAN);
            }
            if let Some(log) = self.log {
                log.patch(self.file, self.pos, dst)?;
            }
            self.pos += want as i64;
            self.left -= want as u64;
            self.len += want;
        }
        Ok(&self.buf[self.at..self.at + n])
    }

    /// Consumes `n` bytes (after [`Stream::peek`] of at least `n`).
    fn consume(&mut self, n: usize) {
        self.at = (self.at + n).min(self.len);
    }

    /// Whether everything was read and consumed.
    fn at_end(&self) -> bool {
        self.left == 0 && self.at == self.len
    }
}

/// The CRC32C of the node entries of a saved index, from those of the entries in turn.
struct EntriesCrc {
    crc: u32,
    /// `format::crc32c_shift()` of the entry lengths met so far (one per level).
    shifts: KVec<(usize, u32)>,
}

impl EntriesCrc {
    pub(super) fn new() -> Self {
        Self {
            crc: 0,
            shifts: KVec::new(),
        }
    }

    /// Appends an entry of `len` bytes whose CRC32C is `entry_crc`.
    fn add(&mut self, len: usize, entry_crc: u32) -> Result {
        let shift = match self.shifts.iter().find(|s| s.0 == len) {
            Some(&(_, shift)) => shift,
            None => {
                let shift = format::crc32c_shift(len as u64);
                self.shifts.push((len, shift), GFP_KERNEL)?;
                shift
            }
        };
        self.crc = format::crc32c_combine(self.crc, entry_crc, shift);
        Ok(())
    }

    /// Appends `entry`, the saved entry of `node` just restored into `index`, noting its
    /// checksum there for the next save.
    pub(super) fn restored(&mut self, index: &mut Index, node: u32, entry: &[u8]) -> Result {
        let c = format::crc32c(entry);
        index.set_saved_crc(node, c)?;
        self.add(entry.len(), c)
    }
}

/// Adds record `slot` (bytes `r`), written after the saved index, to the restored `index`
/// unless it is a tombstone, superseding an older node of its id, and counts it in `live`;
/// `m` is room for its mantissas. Returns whether it was added.
fn restore_added(
    index: &mut Index,
    charge: &mut Charge<'_>,
    hdr: &Header,
    slot: u64,
    r: &[u8],
    m: &mut [i32],
    live: &mut u64,
) -> Result<bool> {
    let Rec::Live(id) = record_state(hdr, slot, r)? else {
        return Ok(false);
    };
    *live += u64::from(!supersede(index, id, slot));
    push_record(index, charge, hdr, slot, id, r, m)?;
    Ok(true)
}

/// Loads the index saved in the collection file. Unless the saved index is current
/// ([`Header::saved_current`]: no record before its saved record count changed since, and
/// every node entry carries its traversal data), every node is checked against its record
/// (same id, or deleted since), so that ids and vectors always come from the records; a
/// current one is taken as saved, without reading those records. Records added since the
/// save are linked in. A copy the header names with a [`SaveLog`] is read with the log laid
/// over it if the log is whole. Fails (`EUCLEAN`) if the saved index cannot be used.
#[inline(never)]
pub(super) fn restore(
    file: &File,
    hdr: &Header,
    charge: &mut Charge<'_>,
    why: &mut &'static str,
) -> Result<Restored> {
    *why = "bad header";
    let end = u64::try_from(hdr.offset(hdr.records)?).map_err(|_| EUCLEAN)?;
    if hdr.index_off % 4096 != 0 || hdr.index_off < end {
        return Err(EUCLEAN);
    }
    let off = i64::try_from(hdr.index_off).map_err(|_| EUCLEAN)?;
    // A save over the copy in place that a crash interrupted: the copy holds with its log.
    let log = SaveLog::read(file, hdr)?;
    let mut hb = [0u8; INDEX_HEADER];
    if kernel_io::read_at(file, off, &mut hb)? != INDEX_HEADER {
        return Err(EUCLEAN);
    }
    if let Some(log) = &log {
        log.patch(file, off, &mut hb)?;
    }
    let len = log.as_ref().map_or(hdr.index_len, |l| l.copy_len);
    let sh = SavedHeader::decode(&hb, hdr, len)?;
    let mut index = Index::new(hdr.params());
    let total =
        usize::try_from(sh.nodes.saturating_add(hdr.records - sh.records)).map_err(|_| ENOMEM)?;
    reserve_nodes(&index, charge, total)?;
    index.reserve(usize::try_from(sh.nodes).map_err(|_| ENOMEM)?)?;
    let mut saved = Stream::new(file, off + INDEX_HEADER as i64, sh.payload, log.as_ref())?;
    let mut m: KVec<i32> = KVec::with_capacity(hdr.dim as usize, GFP_KERNEL)?;
    m.resize(hdr.dim as usize, 0, GFP_KERNEL)?;
    let (mut restored, mut live, mut changed) = (0u64, 0u64, false);
    let mut crc = EntriesCrc::new();
    // Only a cosine index saves what it is traversed on; the others need their vectors.
    let current = hdr.saved_current() && index.saves_traversal_data();
    if current {
        *why = "bad node entry";
        let mut next = 0u64;
        while restored < sh.nodes {
            let len = index.saved_len_of(saved.peek(SAVED_HEAD)?)?;
            let e = saved.peek(len)?;
            let slot = Index::saved_slot(e);
            if slot < next || slot >= sh.records || !Index::saved_coded(e) {
                return Err(EUCLEAN);
            }
            let deleted = Index::saved_deleted(e);
            let node = index.restore_node(e, None, deleted)?;
            crc.restored(&mut index, node, e)?;
            live += u64::from(!deleted);
            saved.consume(len);
            restored += 1;
            next = slot + 1;
        }
        *why = "linking the records added since";
        for_each_record(file, hdr, sh.records, |slot, r| {
            changed |= restore_added(&mut index, charge, hdr, slot, r, &mut m, &mut live)?;
            Ok(())
        })?;
    } else {
        *why = "does not match the records";
        for_each_record(file, hdr, 0, |slot, r| {
            if slot >= sh.records {
                changed |= restore_added(&mut index, charge, hdr, slot, r, &mut m, &mut live)?;
                return Ok(());
            }
            // Records before the saved record count were durable when the index was saved.
            let (id, tomb) = match record_state(hdr, slot, r)? {
                Rec::Live(id) => (id, false),
                Rec::Deleted => (TOMBSTONE, true),
                Rec::Unwritten => return Err(EUCLEAN),
            };
            live += u64::from(!tomb);
            let next = if restored < sh.nodes {
                let len = index.saved_len_of(saved.peek(SAVED_HEAD)?)?;
                Some((Index::saved_slot(saved.peek(len)?), len))
            } else {
                None
            };
            match next {
                Some((s, len)) if s == slot => {
                    // Converted again only if the entry does not carry its traversal data.
                    let scale = match Index::saved_coded(saved.peek(len)?) {
                        true => None,
                        false => Some(record_vector(hdr, slot, r, &mut m)?),
                    };
                    let vector = scale.map(|scale| (&m[..], scale));
                    let e = saved.peek(len)?;
                    let was_deleted = Index::saved_deleted(e);
                    let node = index.restore_node(e, vector, tomb)?;
                    if !tomb && index.id(node) != id {
                        return Err(EUCLEAN);
                    }
                    crc.restored(&mut index, node, e)?;
                    changed |= tomb && !was_deleted;
                    saved.consume(len);
                    restored += 1;
                    Ok(())
                }
                Some((s, _)) if s < slot => Err(EUCLEAN),
                // A live record the saved index does not know.
                _ if !tomb => Err(EUCLEAN),
                _ => Ok(()),
            }
        })?;
    }
    if restored != sh.nodes || !saved.at_end() {
        return Err(EUCLEAN);
    }
    if crc.crc != sh.payload_crc {
        *why = "bad checksum";
        return Err(EUCLEAN);
    }
    *why = "bad links";
    index.restore_finish(restored as usize, sh.entry)?;
    *why = "linking the records added since";
    let mut scratch = new_scratch()?;
    for node in restored as usize..index.len() {
        index.link(node as u32, &mut scratch)?;
    }
    if log.is_some() {
        pr_info!("collection: saved index restored with the log of an interrupted save\n");
    }
    Ok(Restored {
        index,
        live,
        changed,
        logged: log.is_some(),
    })
}

/// An index [`restore`] read from its saved copy.
pub(super) struct Restored {
    pub(super) index: Index,
    /// Live records.
    pub(super) live: u64,
    /// Whether the index differs from the copy.
    pub(super) changed: bool,
    /// Whether the copy held only with the log of an interrupted save laid over it.
    pub(super) logged: bool,
}

/// Saves the index of `l` (collection `inode`, written through `w` of `file`) if it changed:
/// the node entries after the records of the collection (leaving room for a quarter more
/// records, which do not overwrite it), then their header; waits until the records and the
/// copy are durable, then writes the collection header naming it. So a header that names a
/// copy as current ([`Header::saved_current`]) never reaches the disk before the records the
/// copy describes. Over the copy the index was restored from or last saved to, while the
/// header still names it, only the entries that changed are written ([`Index::unsaved`]),
/// after a [`SaveLog`] of them, so that a crash in the middle does not cost the copy; when
/// the blocks they lie in and the log would take more than half the size of the copy, a new
/// copy is written instead.
pub(super) fn save_loaded(
    file: &File,
    inode: &INode<VexFs>,
    w: &Writer<'_>,
    l: &mut Loaded,
) -> Result {
    if !l.dirty {
        return Ok(());
    }
    let hdr = l.hdr;
    // Bytes of the copy, of the entries that changed, and of the blocks of the copy those are
    // in (the header's, block 0, among them; `next` is the first block not counted).
    let (mut copy_len, mut changed) = (INDEX_HEADER as u64, 0u64);
    let (mut blocks, mut next) = (1u64, 1u64);
    for node in 0..l.index.len() as u32 {
        let len = l.index.saved_entry_len(node) as u64;
        if l.index.unsaved(node) && len > 0 {
            let (first, end) = (copy_len / 4096, (copy_len + len - 1) / 4096 + 1);
            blocks += end.saturating_sub(first.max(next));
            next = next.max(end);
            changed += len;
        }
        copy_len = copy_len.checked_add(len).ok_or(EFBIG)?;
    }
    // In place while the header names the copy (inserts drop it once their records reach it)
    // and while the blocks written there and the log take at most half of a new copy.
    let in_place = hdr.index_off != 0
        && hdr.index_off == l.saved_at
        && blocks * 4096 + changed <= copy_len / 2;
    let off = if in_place {
        hdr.index_off
    } else {
        new_copy_offset(&hdr, copy_len)?
    };
    let end = off.checked_add(copy_len).ok_or(EFBIG)?;
    let off = i64::try_from(off).map_err(|_| EFBIG)?;
    let base = off.checked_add(INDEX_HEADER as i64).ok_or(EFBIG)?;
    if in_place {
        if hdr.durable < hdr.records {
            // A header naming a log must count only durable records.
            crate::file::fsync(file, inode, 0, i64::MAX, true)?;
        }
        let log_off = end.checked_next_multiple_of(4096).ok_or(EFBIG)?;
        let mut log = LogWriter::new(w, off, log_off)?;
        let (payload, crc) = save_entries(l, base, true, |at, b| log.run(at, b))?;
        log.run(off, &saved_header(l, &hdr, payload, crc))?;
        let mut logged = hdr;
        logged.log_off = log_off;
        logged.log_len = log.finish(copy_len)?;
        write_header(w, &logged)?;
        crate::file::fsync(file, inode, 0, i64::MAX, true)?;
        // From here until the save completes, the copy holds only with the log.
        l.hdr = logged;
        l.saved_at = 0;
    }
    let (payload, crc) = save_entries(l, base, in_place, |at, b| w.write_all_at(at, b))?;
    w.write_all_at(off, &saved_header(l, &hdr, payload, crc))?;
    crate::file::fsync(file, inode, 0, i64::MAX, true)?;
    let mut new_hdr = hdr;
    new_hdr.index_off = off as u64;
    new_hdr.index_len = copy_len;
    new_hdr.log_off = 0;
    new_hdr.log_len = 0;
    // The copy reflects the records as they are (the caller holds the collection's
    // semaphore exclusively).
    new_hdr.generation = hdr.generation.max(1);
    new_hdr.index_generation = new_hdr.generation;
    if hdr.checksummed() {
        new_hdr.durable = hdr.records;
    }
    write_header(w, &new_hdr)?;
    l.hdr = new_hdr;
    l.dirty = false;
    l.saved_at = new_hdr.index_off;
    l.index.mark_saved();
    Ok(())
}

/// Where a new saved copy of `len` bytes goes: at a multiple of [`INDEX_ALIGN`] at least a
/// quarter of the records' size past the last record (so that inserts do not reach it soon),
/// but never over the copy the header names or its log: a crash while the new copy is
/// written leaves that one whole.
fn new_copy_offset(hdr: &Header, len: u64) -> Result<u64> {
    let end = u64::try_from(hdr.offset(hdr.records)?).map_err(|_| EFBIG)?;
    let off = end
        .checked_add(end / 4)
        .and_then(|o| o.checked_next_multiple_of(INDEX_ALIGN))
        .ok_or(EFBIG)?;
    let named = hdr.saved_end();
    if hdr.index_off != 0 && off < named && off.checked_add(len).ok_or(EFBIG)? > hdr.index_off {
        return named.checked_next_multiple_of(INDEX_ALIGN).ok_or(EFBIG);
    }
    Ok(off)
}

/// The header of a saved copy of `l`'s index in collection `hdr`, whose node entries take
/// `payload` bytes with CRC32C `crc`.
fn saved_header(l: &Loaded, hdr: &Header, payload: u64, crc: u32) -> [u8; INDEX_HEADER] {
    let sh = SavedHeader {
        nodes: l.index.len() as u64,
        records: hdr.records,
        entry: l.index.entry(),
        payload,
        payload_crc: crc,
    };
    let mut hb = [0u8; INDEX_HEADER];
    sh.encode(hdr, &mut hb);
    hb
}

/// Encodes the node entries of `l`'s index for a copy whose first entry is at `base`, and
/// passes `out` the runs to write (their offset in the file and bytes): every entry, or with
/// `changed` those of the nodes [`Index::unsaved`] flags. Returns the bytes of all entries and
/// their CRC32C, which comes from the entries' own, known for those that did not change.
fn save_entries(
    l: &mut Loaded,
    base: i64,
    changed: bool,
    mut out: impl FnMut(i64, &[u8]) -> Result,
) -> Result<(u64, u32)> {
    let mut buf: VVec<u8> = VVec::with_capacity(IO_CHUNK, GFP_KERNEL)?;
    let mut e: KVec<u8> = KVec::new();
    // `buf` holds the entries to write from `at` on; `pos` is where the next entry goes.
    let (mut pos, mut at, mut crc) = (base, base, EntriesCrc::new());
    for node in 0..l.index.len() as u32 {
        let len = l.index.saved_entry_len(node);
        let write = !changed || l.index.unsaved(node);
        let entry_crc = match l.index.saved_crc(node) {
            Some(c) if !write => c,
            _ => {
                l.index.save_node(node, &mut e)?;
                if e.len() != len {
                    return Err(EINVAL);
                }
                let c = format::crc32c(&e);
                l.index.set_saved_crc(node, c)?;
                c
            }
        };
        if !buf.is_empty() && (!write || buf.len() + len > IO_CHUNK) {
            out(at, &buf)?;
            buf.clear();
        }
        if write {
            if buf.is_empty() {
                at = pos;
            }
            buf.extend_from_slice(&e, GFP_KERNEL)?;
        }
        crc.add(len, entry_crc)?;
        pos = pos.checked_add(len as i64).ok_or(EFBIG)?;
    }
    if !buf.is_empty() {
        out(at, &buf)?;
    }
    Ok(((pos - base) as u64, crc.crc))
}

/// The log of a save over the saved index in place, as [`restore`] reads it back.
///
/// Before [`save_loaded`] overwrites entries of the copy the header names, it writes them
/// and the copy's new header to a log after the copy's new end, then a collection header
/// naming the log, and waits until all of it (and every record the copy names) is durable.
/// A crash while the copy is overwritten leaves a copy that holds only with the runs of the
/// log laid over it; the header that completes the save names no log.
///
/// On disk, at a multiple of 4096: a header of [`LOG_HEADER`] bytes (the magic
/// [`LOG_MAGIC`], the offset of the copy, its size after the save, the bytes of runs that
/// follow, their number and CRC32C, each `__le64` but the CRC32C, then zeros and at byte 60 the
/// CRC32C of the bytes before it), then the runs, which do not overlap: each its offset in
/// the copy and its size (`__le64`), then its bytes, padded with zeros to a multiple of 8.
/// Those of the entries come in ascending order, the copy's header last.
struct SaveLog {
    /// Size of the copy after the save.
    copy_len: u64,
    runs: KVVec<LogRun>,
}

/// A run of a [`SaveLog`].
#[derive(Clone, Copy)]
struct LogRun {
    /// Offset in the file of the bytes of the copy it replaces.
    target: i64,
    /// Their number.
    pub(super) len: usize,
    /// Offset in the file of the bytes that replace them.
    at: i64,
}

impl SaveLog {
    /// The log collection header `hdr` names, if it is whole: a crash before it was durable
    /// leaves one that is not, and the copy as it was.
    pub(super) fn read(file: &File, hdr: &Header) -> Result<Option<Self>> {
        if hdr.log_off == 0 {
            return Ok(None);
        }
        let start = i64::try_from(hdr.log_off).map_err(|_| EUCLEAN)?;
        let mut h = [0u8; LOG_HEADER];
        if kernel_io::read_at(file, start, &mut h)? != LOG_HEADER
            || &h[0..8] != LOG_MAGIC
            || format::crc32c(&h[..LOG_HEADER - 4]) != le32(&h, LOG_HEADER - 4)
            || le64(&h, 8) != hdr.index_off
            || le64(&h, 24).checked_add(LOG_HEADER as u64) != Some(hdr.log_len)
            || le64(&h, 16) < INDEX_HEADER as u64
        {
            return Ok(None);
        }
        let (copy_len, body) = (le64(&h, 16), le64(&h, 24));
        let mut log = Self {
            copy_len,
            runs: KVVec::new(),
        };
        let mut at = start + LOG_HEADER as i64;
        let mut s = Stream::new(file, at, body, None)?;
        let mut crc = 0u32;
        let torn = |e: Error| if e == EUCLEAN { Ok(None) } else { Err(e) };
        while !s.at_end() {
            let head = match s.peek(RUN_HEAD) {
                Ok(head) => head,
                Err(e) => return torn(e),
            };
            let (rel, len) = (le64(head, 0), le64(head, 8));
            crc = format::crc32c_append(crc, head);
            s.consume(RUN_HEAD);
            if len == 0 || rel.checked_add(len).is_none_or(|e| e > copy_len) {
                return Ok(None);
            }
            let padded = len.next_multiple_of(8);
            let mut left = padded;
            while left > 0 {
                let n = left.min(IO_CHUNK as u64) as usize;
                match s.peek(n) {
                    Ok(b) => crc = format::crc32c_append(crc, b),
                    Err(e) => return torn(e),
                }
                s.consume(n);
                left -= n as u64;
            }
            log.runs.push(
                LogRun {
                    target: i64::try_from(hdr.index_off + rel).map_err(|_| EUCLEAN)?,
                    len: usize::try_from(len).map_err(|_| EUCLEAN)?,
                    at: at + RUN_HEAD as i64,
                },
                GFP_KERNEL,
            )?;
            at += (RUN_HEAD as u64 + padded) as i64;
        }
        if crc != le32(&h, 40) || log.runs.len() as u64 != le64(&h, 32) {
            return Ok(None);
        }
        log.runs.sort_unstable_by_key(|r| r.target);
        let overlap = log
            .runs
            .windows(2)
            .any(|p| p[0].target + p[0].len as i64 > p[1].target);
        Ok((!overlap).then_some(log))
    }

    /// Lays the runs over `buf`, which holds the bytes of `file` from `pos` on.
    fn patch(&self, file: &File, pos: i64, buf: &mut [u8]) -> Result {
        let end = pos + buf.len() as i64;
        let first = self
            .runs
            .partition_point(|r| r.target + r.len as i64 <= pos);
        for r in self.runs[first..].iter().take_while(|r| r.target < end) {
            let (from, to) = (r.target.max(pos), (r.target + r.len as i64).min(end));
            let dst = &mut buf[(from - pos) as usize..(to - pos) as usize];
            if kernel_io::read_at(file, r.at + (from - r.target), dst)? != dst.len() {
                return Err(EUCLEAN);
            }
        }
        Ok(())
    }
}

/// Writes a [`SaveLog`].
struct LogWriter<'a, 'b> {
    pub(super) w: &'a Writer<'b>,
    /// Offset of the copy the log applies to.
    copy: i64,
    /// Offset of the log.
    start: u64,
    /// Offset in the file of the bytes buffered in `buf`.
    pos: i64,
    pub(super) buf: VVec<u8>,
    crc: u32,
    runs: u64,
}

impl<'a, 'b> LogWriter<'a, 'b> {
    /// A log at `start` of a save over the copy at `copy`.
    pub(super) fn new(w: &'a Writer<'b>, copy: i64, start: u64) -> Result<Self> {
        let pos = start
            .checked_add(LOG_HEADER as u64)
            .and_then(|p| i64::try_from(p).ok())
            .ok_or(EFBIG)?;
        Ok(Self {
            w,
            copy,
            start,
            pos,
            buf: VVec::with_capacity(IO_CHUNK, GFP_KERNEL)?,
            crc: 0,
            runs: 0,
        })
    }

    pub(super) fn bytes(&mut self, b: &[u8]) -> Result {
        self.crc = format::crc32c_append(self.crc, b);
        if self.buf.len() + b.len() > IO_CHUNK {
            self.flush()?;
        }
        if b.len() >= IO_CHUNK {
            self.w.write_all_at(self.pos, b)?;
            self.pos = self.pos.checked_add(b.len() as i64).ok_or(EFBIG)?;
            return Ok(());
        }
        self.buf.extend_from_slice(b, GFP_KERNEL)?;
        Ok(())
    }

    fn flush(&mut self) -> Result {
        if !self.buf.is_empty() {
            self.w.write_all_at(self.pos, &self.buf)?;
            self.pos = self.pos.checked_add(self.buf.len() as i64).ok_or(EFBIG)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Adds a run: `b`, to be written at offset `at` of the file.
    fn run(&mut self, at: i64, b: &[u8]) -> Result {
        let mut head = [0u8; RUN_HEAD];
        put(&mut head[0..8], &((at - self.copy) as u64).to_le_bytes());
        put(&mut head[8..16], &(b.len() as u64).to_le_bytes());
        self.bytes(&head)?;
        self.bytes(b)?;
        self.bytes(&[0u8; 8][..b.len().next_multiple_of(8) - b.len()])?;
        self.runs += 1;
        Ok(())
    }

    /// Writes what is buffered and the log's header, for a copy of `copy_len` bytes after
    /// the save; returns the size of the log.
    fn finish(mut self, copy_len: u64) -> Result<u64> {
        self.flush()?;
        let body = self.pos as u64 - self.start - LOG_HEADER as u64;
        let mut h = [0u8; LOG_HEADER];
        put(&mut h[0..8], LOG_MAGIC);
        put(&mut h[8..16], &(self.copy as u64).to_le_bytes());
        put(&mut h[16..24], &copy_len.to_le_bytes());
        put(&mut h[24..32], &body.to_le_bytes());
        put(&mut h[32..40], &self.runs.to_le_bytes());
        put(&mut h[40..44], &self.crc.to_le_bytes());
        let crc = format::crc32c(&h[..LOG_HEADER - 4]);
        put(&mut h[LOG_HEADER - 4..], &crc.to_le_bytes());
        self.w.write_all_at(self.start as i64, &h)?;
        Ok(LOG_HEADER as u64 + body)
    }
}
