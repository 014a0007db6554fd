# SPDX-License-Identifier: GPL-2.0
"""VexFS vector collections from Python.

A thin client of the ioctls of ``include/uapi/linux/vexfs.h``: the argument
structures are ``ctypes`` mirrors of the C ones and the calls go through
``fcntl.ioctl``. It needs nothing outside the standard library; with NumPy
installed, vectors may be NumPy arrays and searches return NumPy arrays
(lists otherwise).

Example (on a mounted VexFS file system)::

    import numpy as np
    from vexfs import Collection

    c = Collection("/mnt/vexfs/words")
    c.create(50, metric="cosine", m=16, ef_construction=200)
    vectors = np.random.default_rng(0).random((1000, 50), dtype=np.float32)
    c.insert(np.arange(1000), vectors)
    ids, distances = c.search(vectors[7], k=10)          # HNSW index
    ids, distances = c.search(vectors[7], 10, exact=True)  # full scan
    ids, distances = c.search(vectors[7], 10, ids=[3, 5, 8])  # among these
    D, I = c.search_batch(vectors[:5], 10, id_range=(0, 499))
    c.delete([3, 4])
    print(c.stats())   # {'dim': 50, 'metric': 'cosine', 'count': 998, ...}
    c.close()

Distances are those of the collection's metric: squared Euclidean (``l2``),
negated inner product (``ip``) or 1 - cosine similarity (``cosine``).
"""

import ctypes
import errno
import fcntl
import os
import struct

try:  # NumPy is optional.
    import numpy as np
except ImportError:  # pragma: no cover - depends on the host
    np = None

__all__ = ["Collection", "VexfsError", "CollectionParams", "Insert", "Delete",
           "Search", "Filter", "BuildIndex", "Stats"]

UAPI_VERSION = 1
MAX_DIM = 4096
MAX_K = 4096
MAX_BATCH = 65536
MAX_RESULTS = 1 << 20
MAX_EF = 65536
MAX_FILTER_IDS = 1 << 20
ID_MAX = 2**64 - 2

ELEM_TYPES = {"f32": 1, "i8": 2}
METRICS = {"l2": 1, "ip": 2, "cosine": 3}
INSERT_UPSERT = 1 << 0
SEARCH_EXACT = 1 << 0
SEARCH_STATS = 1 << 1
SEARCH_FILTER = 1 << 2
FILTER_RANGE = 1 << 0
FILTER_IDS = 1 << 1
BUILD_COMPACT = 1 << 0
INDEX_STATES = {0: "none", 1: "ready"}
# The id search_batch() pads missing results with (no vector has it).
MISSING = (1 << 64) - 1
INDEX_RESTORED = 1 << 0
INDEX_SAVED = 1 << 1

u32 = ctypes.c_uint32
u64 = ctypes.c_uint64


class CollectionParams(ctypes.Structure):
    """struct vexfs_collection_params (64 bytes)."""
    _fields_ = [("version", u32), ("dim", u32), ("elem_type", u32), ("metric", u32),
                ("hnsw_m", u32), ("hnsw_ef_construction", u32), ("flags", u32),
                ("reserved", u32 * 9)]


class Insert(ctypes.Structure):
    """struct vexfs_insert (64 bytes)."""
    _fields_ = [("version", u32), ("count", u32), ("flags", u32), ("pad", u32),
                ("ids", u64), ("vectors", u64), ("reserved", u64 * 4)]


class Delete(ctypes.Structure):
    """struct vexfs_delete (56 bytes)."""
    _fields_ = [("version", u32), ("count", u32), ("ids", u64), ("deleted", u32),
                ("pad", u32), ("reserved", u64 * 4)]


class Search(ctypes.Structure):
    """struct vexfs_search (80 bytes)."""
    _fields_ = [("version", u32), ("k", u32), ("ef", u32), ("flags", u32),
                ("query", u64), ("ids", u64), ("distances", u64), ("count", u32),
                ("pad", u32), ("stats", u64), ("filter", u64), ("reserved", u64 * 2)]


class Filter(ctypes.Structure):
    """struct vexfs_filter (64 bytes): which vectors a search may return."""
    _fields_ = [("version", u32), ("flags", u32), ("id_min", u64), ("id_max", u64),
                ("ids", u64), ("count", u32), ("pad", u32), ("reserved", u64 * 3)]


class SearchStats(ctypes.Structure):
    """struct vexfs_search_stats (64 bytes): what one search did."""
    _fields_ = [("distances", u64), ("rescored", u64), ("expanded", u64),
                ("nanoseconds", u64), ("admitted", u64), ("flags", u32), ("_pad", u32),
                ("passed", u64), ("reserved", u64)]


class SearchBatch(ctypes.Structure):
    """struct vexfs_search_batch (80 bytes)."""
    _fields_ = [("version", u32), ("k", u32), ("ef", u32), ("flags", u32), ("nq", u32),
                ("pad", u32), ("queries", u64), ("ids", u64), ("distances", u64),
                ("counts", u64), ("filter", u64), ("reserved", u64 * 2)]


class Get(ctypes.Structure):
    """struct vexfs_get (64 bytes)."""
    _fields_ = [("version", u32), ("count", u32), ("ids", u64), ("vectors", u64),
                ("reserved", u64 * 5)]


class BuildIndex(ctypes.Structure):
    """struct vexfs_build_index (40 bytes)."""
    _fields_ = [("version", u32), ("flags", u32), ("reserved", u64 * 4)]


class Stats(ctypes.Structure):
    """struct vexfs_stats (136 bytes)."""
    _fields_ = [("version", u32), ("index_state", u32), ("params", CollectionParams),
                ("count", u64), ("deleted", u64), ("file_bytes", u64),
                ("index_bytes", u64), ("saved_bytes", u64), ("load_nanoseconds", u64),
                ("index_flags", u32), ("_pad", u32), ("mount_index_bytes", u64)]


def _ioc(direction, nr, size):
    """_IOC() of asm-generic/ioctl.h (x86, arm64, riscv...)."""
    return (direction << 30) | (size << 16) | (0xBE << 8) | nr


_W, _RW = 1, 3
IOC_CREATE = _ioc(_W, 1, ctypes.sizeof(CollectionParams))
IOC_INSERT = _ioc(_W, 2, ctypes.sizeof(Insert))
IOC_DELETE = _ioc(_RW, 3, ctypes.sizeof(Delete))
IOC_SEARCH = _ioc(_RW, 4, ctypes.sizeof(Search))
IOC_BUILD_INDEX = _ioc(_W, 5, ctypes.sizeof(BuildIndex))
IOC_STATS = _ioc(_RW, 6, ctypes.sizeof(Stats))
IOC_SEARCH_BATCH = _ioc(_W, 7, ctypes.sizeof(SearchBatch))
IOC_GET = _ioc(_W, 8, ctypes.sizeof(Get))


class VexfsError(OSError):
    """A VexFS ioctl failed; ``errno`` is the kernel's error."""


def _name(table, value):
    for k, v in table.items():
        if v == value:
            return k
    return "unknown(%d)" % value


def _ids_buffer(ids):
    """(owner, address, count) of ids as contiguous unsigned 64-bit integers."""
    if np is not None:
        a = np.ascontiguousarray(ids, dtype=np.uint64).reshape(-1)
        return a, a.ctypes.data, a.size
    vals = [ids] if isinstance(ids, int) else list(ids)
    for v in vals:
        if not 0 <= v <= ID_MAX:
            raise ValueError("bad id %r" % (v,))
    a = (u64 * len(vals))(*vals)
    return a, ctypes.addressof(a), len(vals)


def _vectors_buffer(vectors, dim, elem_type):
    """(owner, address, rows) of vectors in the collection's element type."""
    if np is not None:
        dtype = np.float32 if elem_type == ELEM_TYPES["f32"] else np.int8
        v = np.asarray(vectors)
        if elem_type == ELEM_TYPES["i8"] and v.dtype != np.int8:
            if v.size and (not np.all(np.isfinite(v)) or np.any(v != np.round(v))
                           or v.min() < -128 or v.max() > 127):
                raise ValueError("i8 collection: elements must be integers in -128..127")
        v = np.ascontiguousarray(v, dtype=dtype)
        if v.ndim == 1:
            v = v.reshape(1, -1)
        if v.ndim != 2 or v.shape[1] != dim:
            raise ValueError("expected vectors of %d elements, got shape %s" % (dim, v.shape))
        return v, v.ctypes.data, v.shape[0]
    rows = [list(r) for r in vectors]
    flat = []
    for r in rows:
        if len(r) != dim:
            raise ValueError("expected vectors of %d elements, got %d" % (dim, len(r)))
        flat.extend(r)
    if elem_type == ELEM_TYPES["f32"]:
        a = (ctypes.c_float * len(flat))(*flat)
    else:
        for x in flat:
            if x != int(x) or not -128 <= x <= 127:
                raise ValueError("i8 collection: elements must be integers in -128..127")
        a = (ctypes.c_int8 * len(flat))(*[int(x) for x in flat])
    return a, ctypes.addressof(a), len(rows)


def _filter(id_range, ids):
    """(keep-alive, struct address, search flag) of a filter: ids in
    ``id_range`` (inclusive ``(lo, hi)``) and/or in ``ids``; (None, 0, 0)
    without either."""
    if id_range is None and ids is None:
        return None, 0, 0
    f = Filter(version=UAPI_VERSION)
    own = [f]
    if id_range is not None:
        lo, hi = (int(x) for x in id_range)
        if not 0 <= lo <= hi <= ID_MAX:
            raise ValueError("id_range must be (lo, hi) with 0 <= lo <= hi <= ID_MAX")
        f.flags |= FILTER_RANGE
        f.id_min, f.id_max = lo, hi
    if ids is not None:
        iown, iaddr, n = _ids_buffer(ids)
        if not 1 <= n <= MAX_FILTER_IDS:
            raise ValueError("ids must hold 1..%d ids" % MAX_FILTER_IDS)
        own.append(iown)
        f.flags |= FILTER_IDS
        f.ids, f.count = iaddr, n
    return own, ctypes.addressof(f), SEARCH_FILTER


def _check_k_ef(k, ef):
    """Checks ``k`` and ``ef`` of a search; returns ``ef`` for the kernel
    (0: its default)."""
    if not 1 <= k <= MAX_K:
        raise ValueError("k must be 1..%d" % MAX_K)
    ef = 0 if ef is None else ef
    if not 0 <= ef <= MAX_EF:
        raise ValueError("ef must be 0..%d" % MAX_EF)
    return ef


def _as_rows(vectors):
    """Normalise a single vector (list of numbers) to a list of rows."""
    if np is not None:
        return vectors
    vectors = list(vectors)
    if vectors and not hasattr(vectors[0], "__len__"):
        return [vectors]
    return vectors


class Collection:
    """A vector collection: a regular file of a mounted VexFS file system."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._fd = None
        self._params = None

    # File descriptor handling.
    def _open(self, create=False):
        if self._fd is None:
            flags = os.O_RDWR | (os.O_CREAT if create else 0)
            try:
                self._fd = os.open(self.path, flags, 0o644)
            except OSError as e:
                if create or e.errno not in (errno.EACCES, errno.EROFS, errno.EPERM):
                    raise
                self._fd = os.open(self.path, os.O_RDONLY)
        return self._fd

    def close(self):
        """Closes the file descriptor (reopened when needed)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # pragma: no cover
            pass

    def _ioctl(self, request, arg, create=False):
        fd = self._open(create)
        try:
            fcntl.ioctl(fd, request, arg, True)
        except OSError as e:
            raise VexfsError(e.errno, "%s: %s" % (self.path, os.strerror(e.errno))) from None

    def _info(self):
        if self._params is None:
            self.stats()
        return self._params

    # The ioctls.
    def create(self, dim, metric="l2", dtype="f32", m=0, ef_construction=0):
        """Turns the (empty or new) file into a collection of ``dim``-element
        vectors. ``metric``: l2, ip or cosine; ``dtype``: f32 or i8; ``m`` and
        ``ef_construction``: HNSW parameters (0: the kernel's defaults)."""
        if metric not in METRICS:
            raise ValueError("metric must be one of %s" % ", ".join(METRICS))
        if dtype not in ELEM_TYPES:
            raise ValueError("dtype must be one of %s" % ", ".join(ELEM_TYPES))
        p = CollectionParams(version=UAPI_VERSION, dim=dim, elem_type=ELEM_TYPES[dtype],
                             metric=METRICS[metric], hnsw_m=m,
                             hnsw_ef_construction=ef_construction)
        self._ioctl(IOC_CREATE, p, create=True)
        self._params = None
        return self

    def stats(self):
        """The collection's parameters and state, as a dict."""
        s = Stats(version=UAPI_VERSION)
        self._ioctl(IOC_STATS, s)
        p = s.params
        self._params = (p.dim, p.elem_type)
        return {
            "dim": p.dim,
            "dtype": _name(ELEM_TYPES, p.elem_type),
            "metric": _name(METRICS, p.metric),
            "m": p.hnsw_m,
            "ef_construction": p.hnsw_ef_construction,
            "count": s.count,
            "deleted": s.deleted,
            "file_bytes": s.file_bytes,
            "index_bytes": s.index_bytes,
            "index_state": INDEX_STATES.get(s.index_state, "unknown"),
            "saved_bytes": s.saved_bytes,
            "load_seconds": s.load_nanoseconds / 1e9,
            "restored": bool(s.index_flags & INDEX_RESTORED),
            "saved": bool(s.index_flags & INDEX_SAVED),
            "mount_index_bytes": s.mount_index_bytes,
        }

    def insert(self, ids, vectors, batch=MAX_BATCH, upsert=False):
        """Inserts ``vectors`` (rows) with ``ids``, ``batch`` per ioctl. Each
        batch is inserted whole or not at all. With ``upsert``, the vectors of
        ids already in the collection are replaced (otherwise they fail the
        batch with EEXIST). Returns the number inserted."""
        dim, elem_type = self._info()
        vectors = _as_rows(vectors)
        vown, vaddr, rows = _vectors_buffer(vectors, dim, elem_type)
        iown, iaddr, n = _ids_buffer(ids)
        if n != rows:
            raise ValueError("%d ids for %d vectors" % (n, rows))
        esize = 4 if elem_type == ELEM_TYPES["f32"] else 1
        batch = max(1, min(batch, MAX_BATCH))
        for start in range(0, rows, batch):
            cnt = min(batch, rows - start)
            a = Insert(version=UAPI_VERSION, count=cnt, ids=iaddr + 8 * start,
                       vectors=vaddr + start * dim * esize,
                       flags=INSERT_UPSERT if upsert else 0)
            self._ioctl(IOC_INSERT, a)
        del vown, iown
        return rows

    def delete(self, ids):
        """Deletes vectors by id; returns how many were in the collection."""
        own, addr, n = _ids_buffer(ids)
        deleted = 0
        for start in range(0, n, MAX_BATCH):
            a = Delete(version=UAPI_VERSION, count=min(MAX_BATCH, n - start),
                       ids=addr + 8 * start)
            self._ioctl(IOC_DELETE, a)
            deleted += a.deleted
        del own
        return deleted

    def search(self, query, k=10, ef=None, exact=False, id_range=None, ids=None):
        """The ``k`` nearest neighbours of ``query``: (ids, distances), nearest
        first, NumPy arrays (uint64, float32) if NumPy is installed, else
        lists. ``ef``: HNSW candidate list size (None: the kernel's default);
        ``exact``: scan every vector instead of using the index;
        ``id_range`` (inclusive ``(lo, hi)``) and ``ids`` (an allow-list):
        only vectors whose id passes both (FAISS's IDSelectorRange and
        IDSelectorBatch)."""
        ef = _check_k_ef(k, ef)
        dim, elem_type = self._info()
        fown, faddr, fflag = _filter(id_range, ids)
        qown, qaddr, rows = _vectors_buffer(_as_rows(query), dim, elem_type)
        if rows != 1:
            raise ValueError("search takes one query vector")
        ids = (u64 * k)()
        dist = (u32 * k)()
        a = Search(version=UAPI_VERSION, k=k, ef=ef,
                   flags=(SEARCH_EXACT if exact else 0) | fflag, filter=faddr,
                   query=qaddr, ids=ctypes.addressof(ids), distances=ctypes.addressof(dist))
        self._ioctl(IOC_SEARCH, a)
        del qown, fown
        n = min(a.count, k)
        if np is not None:
            return (np.frombuffer(ids, dtype=np.uint64, count=n).copy(),
                    np.frombuffer(dist, dtype=np.float32, count=n).copy())
        raw = struct.pack("<%dI" % n, *dist[:n])
        return list(ids[:n]), list(struct.unpack("<%df" % n, raw))

    def search_batch(self, queries, k=10, ef=None, exact=False, id_range=None, ids=None):
        """FAISS-style ``D, I = c.search_batch(xq, k)``: the ``k`` nearest
        neighbours of each row of ``queries``, in as few ioctls as the limits
        allow, among the vectors ``id_range`` and ``ids`` admit (as in
        search()). With NumPy, ``D`` is a float32 and ``I`` a uint64 array of
        shape (nq, k); rows with fewer than ``k`` results are padded with
        ``inf`` and ``MISSING``. Without NumPy, lists of lists of the results
        found."""
        ef = _check_k_ef(k, ef)
        dim, elem_type = self._info()
        fown, faddr, fflag = _filter(id_range, ids)
        qown, qaddr, nq = _vectors_buffer(_as_rows(queries), dim, elem_type)
        esize = 4 if elem_type == ELEM_TYPES["f32"] else 1
        per_call = max(1, min(MAX_BATCH, MAX_RESULTS // k))
        ids = (u64 * (nq * k))(*([MISSING] * (nq * k)))
        dist = (u32 * (nq * k))(*([0x7F800000] * (nq * k)))
        counts = (u32 * max(nq, 1))()
        for start in range(0, nq, per_call):
            n = min(per_call, nq - start)
            a = SearchBatch(version=UAPI_VERSION, k=k, ef=ef,
                            flags=(SEARCH_EXACT if exact else 0) | fflag,
                            filter=faddr, nq=n,
                            queries=qaddr + start * dim * esize,
                            ids=ctypes.addressof(ids) + 8 * start * k,
                            distances=ctypes.addressof(dist) + 4 * start * k,
                            counts=ctypes.addressof(counts) + 4 * start)
            self._ioctl(IOC_SEARCH_BATCH, a)
        del qown, fown
        if np is not None:
            return (np.frombuffer(dist, dtype=np.float32).reshape(nq, k).copy(),
                    np.frombuffer(ids, dtype=np.uint64).reshape(nq, k).copy())
        flat = struct.unpack("<%df" % (nq * k), struct.pack("<%dI" % (nq * k), *dist))
        return ([list(flat[i * k:i * k + counts[i]]) for i in range(nq)],
                [list(ids[i * k:i * k + counts[i]]) for i in range(nq)])

    def get(self, ids):
        """The vectors of ``ids``, bit for bit as inserted: a NumPy array of
        shape (n, dim) (float32 or int8) if NumPy is installed, else a list of
        lists. Raises VexfsError (ENOENT) if an id is not in the collection."""
        dim, elem_type = self._info()
        iown, iaddr, n = _ids_buffer(ids)
        f32 = elem_type == ELEM_TYPES["f32"]
        out = ((ctypes.c_float if f32 else ctypes.c_int8) * max(n * dim, 1))()
        for start in range(0, n, MAX_BATCH):
            c = min(MAX_BATCH, n - start)
            self._ioctl(IOC_GET, Get(version=UAPI_VERSION, count=c, ids=iaddr + 8 * start,
                                     vectors=ctypes.addressof(out)
                                     + start * dim * ctypes.sizeof(out._type_)))
        del iown
        if np is not None:
            return np.frombuffer(out, dtype=np.float32 if f32 else np.int8,
                                 count=n * dim).reshape(n, dim).copy()
        return [list(out[i * dim:(i + 1) * dim]) for i in range(n)]

    def build_index(self, compact=False):
        """(Re)builds the HNSW index; ``compact`` also drops deleted records
        from the file."""
        self._ioctl(IOC_BUILD_INDEX, BuildIndex(version=UAPI_VERSION,
                                                flags=BUILD_COMPACT if compact else 0))
