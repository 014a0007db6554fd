// SPDX-License-Identifier: GPL-2.0

//! A VexFS collection file and its ioctls.

use std::{
    fs::{
        File,
        OpenOptions, //
    },
    io,
    path::Path,
};

use crate::uapi::*;

/// An open collection file.
pub struct Collection {
    file: File,
}

/// Results of a search.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hits {
    /// Ids of the neighbours, nearest first.
    pub ids: Vec<u64>,
    /// Their distances.
    pub distances: Vec<f32>,
    /// What the search did in the kernel, if asked for.
    pub stats: Option<SearchStats>,
}

/// Which vectors a search may return (`VEXFS_SEARCH_FILTER`): with both parts, an id must
/// pass both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdFilter {
    /// Only ids from `.0` to `.1`, inclusive.
    pub range: Option<(u64, u64)>,
    /// Only these ids (at most `MAX_FILTER_IDS`, any order).
    pub ids: Option<Vec<u64>>,
}

impl IdFilter {
    /// The `struct vexfs_filter` of this filter; it points into `self`.
    fn raw(&self) -> io::Result<Filter> {
        let mut f = Filter {
            version: UAPI_VERSION,
            ..Default::default()
        };
        if let Some((lo, hi)) = self.range {
            f.flags |= FILTER_RANGE;
            f.id_min = lo;
            f.id_max = hi;
        }
        if let Some(ids) = &self.ids {
            f.flags |= FILTER_IDS;
            f.ids = ids.as_ptr() as u64;
            f.count = u32::try_from(ids.len())
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        }
        Ok(f)
    }
}

/// Vector elements in the collection's type, ready for the kernel.
#[derive(Clone, Copy, Debug)]
pub enum VecData<'a> {
    /// Binary32 bit patterns.
    F32(&'a [u32]),
    /// Signed bytes.
    I8(&'a [i8]),
}

impl VecData<'_> {
    fn addr(&self) -> u64 {
        match self {
            VecData::F32(v) => v.as_ptr() as u64,
            VecData::I8(v) => v.as_ptr() as u64,
        }
    }

    fn len(&self) -> usize {
        match self {
            VecData::F32(v) => v.len(),
            VecData::I8(v) => v.len(),
        }
    }

    fn elem_size(&self) -> usize {
        match self {
            VecData::F32(_) => 4,
            VecData::I8(_) => 1,
        }
    }
}

/// Room for vector elements in the collection's type, for the kernel to fill.
#[derive(Debug)]
pub enum VecDataMut<'a> {
    /// Binary32 bit patterns.
    F32(&'a mut [u32]),
    /// Signed bytes.
    I8(&'a mut [i8]),
}

/// Explains the errors the VexFS ioctls commonly fail with.
fn explain(op: &str, e: io::Error) -> io::Error {
    let hint = match e.raw_os_error() {
        Some(25) => " (not a VexFS collection: create it first, on a VexFS file system)",
        Some(17) if op == "create" => " (already a collection)",
        Some(17) => " (an id is already in the collection)",
        Some(39) => " (create needs an empty file)",
        Some(7) => " (batch too large: use a smaller --batch)",
        Some(9) => " (the file must be open for writing)",
        Some(117) => " (the collection file is damaged)",
        Some(2) if op == "get" => " (an id is not in the collection)",
        _ => "",
    };
    io::Error::new(e.kind(), format!("{}: {}{}", op, e, hint))
}

impl Collection {
    /// Opens a collection, for writing if `write`.
    pub fn open(path: &Path, write: bool) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(write).open(path)?;
        Ok(Collection { file })
    }

    /// Makes the collection durable with `fsync(2)`, which also saves its index if it
    /// changed (the collection must be open for writing).
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    /// Opens (creating it if needed) an empty file for [`Collection::create`].
    pub fn open_new(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        Ok(Collection { file })
    }

    fn ioctl<T: IoctlArg>(&self, op: &str, request: u32, arg: &mut T) -> io::Result<()> {
        // The buffers whose addresses `arg` holds belong to the callers and
        // outlive the call.
        vexfs_uapi::ioctl(&self.file, request, arg)
            .map(drop)
            .map_err(|e| explain(op, e))
    }

    /// `IOC_CREATE`.
    pub fn create(&self, params: &CollectionParams) -> io::Result<()> {
        let mut p = *params;
        p.version = UAPI_VERSION;
        self.ioctl("create", IOC_CREATE, &mut p)
    }

    /// `IOC_STATS`.
    pub fn stats(&self) -> io::Result<Stats> {
        let mut s = Stats {
            version: UAPI_VERSION,
            ..Default::default()
        };
        self.ioctl("stats", IOC_STATS, &mut s)?;
        Ok(s)
    }

    /// `IOC_INSERT` of `ids.len()` vectors of `dim` elements, with `flags` (`INSERT_UPSERT`).
    pub fn insert(
        &self,
        ids: &[u64],
        dim: usize,
        vectors: VecData<'_>,
        flags: u32,
    ) -> io::Result<()> {
        if Some(vectors.len()) != ids.len().checked_mul(dim) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "insert: ids and vectors differ in number",
            ));
        }
        let mut a = Insert {
            version: UAPI_VERSION,
            count: u32::try_from(ids.len())
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
            flags,
            ids: ids.as_ptr() as u64,
            vectors: vectors.addr(),
            ..Default::default()
        };
        self.ioctl("insert", IOC_INSERT, &mut a)
    }

    /// `IOC_DELETE`: returns how many of `ids` were deleted.
    pub fn delete(&self, ids: &[u64]) -> io::Result<u32> {
        let mut a = Delete {
            version: UAPI_VERSION,
            count: u32::try_from(ids.len())
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
            ids: ids.as_ptr() as u64,
            ..Default::default()
        };
        self.ioctl("delete", IOC_DELETE, &mut a)?;
        Ok(a.deleted)
    }

    /// `IOC_SEARCH` for the `k` nearest neighbours of `query`; with `stats`, also the
    /// kernel's counters and time of the search (`SEARCH_STATS`).
    pub fn search(
        &self,
        query: VecData<'_>,
        k: u32,
        ef: u32,
        exact: bool,
        stats: bool,
    ) -> io::Result<Hits> {
        self.search_filtered(query, k, ef, exact, stats, None)
    }

    /// [`Collection::search`] among the vectors `filter` admits.
    pub fn search_filtered(
        &self,
        query: VecData<'_>,
        k: u32,
        ef: u32,
        exact: bool,
        stats: bool,
        filter: Option<&IdFilter>,
    ) -> io::Result<Hits> {
        let n = usize::try_from(k).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let mut ids = vec![0u64; n];
        let mut dist = vec![0u32; n];
        let mut st = SearchStats::default();
        let raw = filter.map(IdFilter::raw).transpose()?;
        let mut a = Search {
            version: UAPI_VERSION,
            k,
            ef,
            flags: if exact { SEARCH_EXACT } else { 0 }
                | if stats { SEARCH_STATS } else { 0 }
                | if raw.is_some() { SEARCH_FILTER } else { 0 },
            stats: if stats {
                &mut st as *mut SearchStats as u64
            } else {
                0
            },
            query: query.addr(),
            ids: ids.as_mut_ptr() as u64,
            distances: dist.as_mut_ptr() as u64,
            filter: raw.as_ref().map_or(0, |f| f as *const Filter as u64),
            ..Default::default()
        };
        self.ioctl("search", IOC_SEARCH, &mut a)?;
        let count = usize::try_from(a.count).unwrap_or(usize::MAX).min(n);
        ids.truncate(count);
        dist.truncate(count);
        Ok(Hits {
            ids,
            distances: dist.into_iter().map(f32::from_bits).collect(),
            stats: stats.then_some(st),
        })
    }

    /// `IOC_SEARCH_BATCH` for the `k` nearest neighbours of each of the `nq` queries in
    /// `queries`, in calls of at most `MAX_RESULTS` results: per query, its ids and
    /// distances, nearest first.
    pub fn search_batch(
        &self,
        queries: VecData<'_>,
        nq: usize,
        k: u32,
        ef: u32,
        exact: bool,
    ) -> io::Result<Vec<(Vec<u64>, Vec<f32>)>> {
        let kk = usize::try_from(k).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        if kk == 0 || nq == 0 || queries.len() % nq != 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let dim = queries.len() / nq;
        let per_call = (MAX_RESULTS as usize / kk).clamp(1, MAX_BATCH as usize);
        let mut out = Vec::with_capacity(nq);
        let mut start = 0;
        while start < nq {
            let n = per_call.min(nq - start);
            let mut ids = vec![0u64; n * kk];
            let mut dist = vec![0u32; n * kk];
            let mut counts = vec![0u32; n];
            let mut a = SearchBatch {
                version: UAPI_VERSION,
                k,
                ef,
                flags: if exact { SEARCH_EXACT } else { 0 },
                nq: u32::try_from(n).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
                queries: queries.addr() + (start * dim * queries.elem_size()) as u64,
                ids: ids.as_mut_ptr() as u64,
                distances: dist.as_mut_ptr() as u64,
                counts: counts.as_mut_ptr() as u64,
                ..Default::default()
            };
            self.ioctl("search", IOC_SEARCH_BATCH, &mut a)?;
            for (i, &c) in counts.iter().enumerate() {
                let c = (c as usize).min(kk);
                out.push((
                    ids[i * kk..i * kk + c].to_vec(),
                    dist[i * kk..i * kk + c]
                        .iter()
                        .map(|&b| f32::from_bits(b))
                        .collect(),
                ));
            }
            start += n;
        }
        Ok(out)
    }

    /// `IOC_GET`: the vectors of `ids` (`dim` elements each), as inserted, into `out`.
    pub fn get(&self, ids: &[u64], out: VecDataMut<'_>) -> io::Result<()> {
        let mut a = Get {
            version: UAPI_VERSION,
            count: u32::try_from(ids.len())
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
            ids: ids.as_ptr() as u64,
            vectors: match out {
                VecDataMut::F32(v) => v.as_mut_ptr() as u64,
                VecDataMut::I8(v) => v.as_mut_ptr() as u64,
            },
            ..Default::default()
        };
        self.ioctl("get", IOC_GET, &mut a)
    }

    /// `IOC_BUILD_INDEX`.
    pub fn build_index(&self, compact: bool) -> io::Result<()> {
        let mut a = BuildIndex {
            version: UAPI_VERSION,
            flags: if compact { BUILD_COMPACT } else { 0 },
            ..Default::default()
        };
        self.ioctl("build-index", IOC_BUILD_INDEX, &mut a)
    }
}
