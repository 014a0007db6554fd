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

    /// `IOC_INSERT` of `ids.len()` vectors of `dim` elements.
    pub fn insert(&self, ids: &[u64], dim: usize, vectors: VecData<'_>) -> io::Result<()> {
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
        let n = usize::try_from(k).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let mut ids = vec![0u64; n];
        let mut dist = vec![0u32; n];
        let mut st = SearchStats::default();
        let mut a = Search {
            version: UAPI_VERSION,
            k,
            ef,
            flags: if exact { SEARCH_EXACT } else { 0 } | if stats { SEARCH_STATS } else { 0 },
            stats: if stats {
                &mut st as *mut SearchStats as u64
            } else {
                0
            },
            query: query.addr(),
            ids: ids.as_mut_ptr() as u64,
            distances: dist.as_mut_ptr() as u64,
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
