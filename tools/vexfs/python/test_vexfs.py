# SPDX-License-Identifier: GPL-2.0
"""Host-side tests of the VexFS Python client: structure layout, ioctl
numbers, and the marshalling of every call against a fake kernel that
reads and writes the caller's buffers like the real one does.

Run: python3 -m unittest discover -s tools/vexfs/python -v
"""

import ctypes
import errno
import os
import struct
import tempfile
import unittest
from unittest import mock

import vexfs


class Layout(unittest.TestCase):
    def test_sizes(self):
        sizes = {vexfs.CollectionParams: 64, vexfs.Insert: 64, vexfs.Delete: 56,
                 vexfs.Search: 80, vexfs.BuildIndex: 40, vexfs.Stats: 136,
                 vexfs.SearchBatch: 80, vexfs.Get: 64, vexfs.Filter: 64}
        for t, size in sizes.items():
            self.assertEqual(ctypes.sizeof(t), size, t.__name__)

    def test_offsets(self):
        off = lambda t, f: getattr(t, f).offset
        self.assertEqual(off(vexfs.CollectionParams, "reserved"), 28)
        self.assertEqual(off(vexfs.Insert, "ids"), 16)
        self.assertEqual(off(vexfs.Insert, "vectors"), 24)
        self.assertEqual(off(vexfs.Delete, "ids"), 8)
        self.assertEqual(off(vexfs.Delete, "deleted"), 16)
        self.assertEqual(off(vexfs.Search, "query"), 16)
        self.assertEqual(off(vexfs.Search, "distances"), 32)
        self.assertEqual(off(vexfs.Search, "count"), 40)
        self.assertEqual(off(vexfs.Search, "stats"), 48)
        self.assertEqual(off(vexfs.Search, "filter"), 56)
        self.assertEqual(off(vexfs.SearchBatch, "filter"), 56)
        self.assertEqual(off(vexfs.Filter, "ids"), 24)
        self.assertEqual(off(vexfs.Filter, "count"), 32)
        self.assertEqual(ctypes.sizeof(vexfs.SearchStats), 64)
        self.assertEqual(off(vexfs.Stats, "params"), 8)
        self.assertEqual(off(vexfs.Stats, "count"), 72)
        self.assertEqual(off(vexfs.Stats, "index_bytes"), 96)
        self.assertEqual(off(vexfs.SearchBatch, "queries"), 24)
        self.assertEqual(off(vexfs.SearchBatch, "counts"), 48)
        self.assertEqual(off(vexfs.Get, "vectors"), 16)
        self.assertEqual(off(vexfs.Stats, "saved_bytes"), 104)
        self.assertEqual(off(vexfs.Stats, "index_flags"), 120)
        self.assertEqual(ctypes.sizeof(vexfs.Stats), 136)

    def test_ioctl_numbers(self):
        self.assertEqual(vexfs.IOC_CREATE, 0x4040BE01)
        self.assertEqual(vexfs.IOC_INSERT, 0x4040BE02)
        self.assertEqual(vexfs.IOC_DELETE, 0xC038BE03)
        self.assertEqual(vexfs.IOC_SEARCH, 0xC050BE04)
        self.assertEqual(vexfs.IOC_BUILD_INDEX, 0x4028BE05)
        self.assertEqual(vexfs.IOC_STATS, 0xC088BE06)
        self.assertEqual(vexfs.IOC_SEARCH_BATCH, 0x4050BE07)
        self.assertEqual(vexfs.IOC_GET, 0x4040BE08)

    def test_params_bytes(self):
        p = vexfs.CollectionParams(version=1, dim=50, elem_type=1, metric=3, hnsw_m=16,
                                   hnsw_ef_construction=200)
        self.assertEqual(bytes(p), struct.pack("<16I", 1, 50, 1, 3, 16, 200, 0, *[0] * 9))

    def test_search_bytes(self):
        s = vexfs.Search(version=1, k=10, ef=64, flags=vexfs.SEARCH_EXACT, query=0x1000,
                         ids=0x2000, distances=0x3000)
        self.assertEqual(bytes(s), struct.pack("<4I3Q2I4Q", 1, 10, 64, 1, 0x1000, 0x2000,
                                               0x3000, 0, 0, 0, 0, 0, 0))


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def from_bits(b):
    return struct.unpack("<f", struct.pack("<I", b))[0]


class FakeKernel:
    """Answers the VexFS ioctls from memory, reading and writing the user
    buffers whose addresses the structures hold, with the kernel's checks."""

    def __init__(self):
        self.params = None
        self.vectors = {}
        self.calls = []

    def fail(self, e):
        raise OSError(e, os.strerror(e))

    def check_zero(self, arg, *fields):
        for f in fields:
            v = getattr(arg, f)
            if (list(v) if hasattr(v, "__len__") else [v]) != [0] * (len(v) if hasattr(v, "__len__") else 1):
                self.fail(errno.EINVAL)

    def ioctl(self, fd, request, arg, mutate=True):
        self.calls.append((request, bytes(arg)))
        if not mutate or arg.version != 1:
            self.fail(errno.EINVAL)
        if request == vexfs.IOC_CREATE:
            self.check_zero(arg, "flags", "reserved")
            if self.params is not None:
                self.fail(errno.EEXIST)
            self.params = vexfs.CollectionParams.from_buffer_copy(bytes(arg))
        elif self.params is None:
            self.fail(errno.EINVAL)
        elif request == vexfs.IOC_STATS:
            self.check_zero(arg, "mount_index_bytes")
            arg.index_state = 1
            arg.params = self.params
            arg.count = len(self.vectors)
            arg.file_bytes = 4096 + len(self.vectors) * ((8 + 4 * self.params.dim + 4 + 7) // 8 * 8)
        elif request == vexfs.IOC_INSERT:
            self.check_zero(arg, "pad", "reserved")
            if arg.flags & ~vexfs.INSERT_UPSERT:
                self.fail(errno.EINVAL)
            n, dim = arg.count, self.params.dim
            ids = list((ctypes.c_uint64 * n).from_address(arg.ids))
            if self.params.elem_type == 1:
                raw = list((ctypes.c_uint32 * (n * dim)).from_address(arg.vectors))
                vals = [from_bits(b) for b in raw]
            else:
                vals = list((ctypes.c_int8 * (n * dim)).from_address(arg.vectors))
            present = any(i in self.vectors for i in ids)
            if (present and not arg.flags & vexfs.INSERT_UPSERT) or len(set(ids)) != n:
                self.fail(errno.EEXIST)
            for j, i in enumerate(ids):
                self.vectors[i] = vals[j * dim:(j + 1) * dim]
        elif request == vexfs.IOC_DELETE:
            self.check_zero(arg, "pad", "reserved")
            ids = list((ctypes.c_uint64 * arg.count).from_address(arg.ids))
            arg.deleted = sum(1 for i in set(ids) if self.vectors.pop(i, None) is not None)
        elif request == vexfs.IOC_SEARCH:
            self.check_zero(arg, "pad", "reserved")
            if (arg.flags & ~(vexfs.SEARCH_EXACT | vexfs.SEARCH_FILTER)
                    or not 1 <= arg.k <= vexfs.MAX_K):
                self.fail(errno.EINVAL)
            admit = self.filter(arg.flags, arg.filter)
            arg.count = self.search_one(arg.query, arg.k, arg.ids, arg.distances, admit)
        elif request == vexfs.IOC_SEARCH_BATCH:
            self.check_zero(arg, "pad", "reserved")
            if (arg.flags & ~(vexfs.SEARCH_EXACT | vexfs.SEARCH_FILTER)
                    or not 1 <= arg.k <= vexfs.MAX_K or not 1 <= arg.nq <= vexfs.MAX_BATCH):
                self.fail(errno.EINVAL)
            if arg.nq * arg.k > vexfs.MAX_RESULTS:
                self.fail(errno.E2BIG)
            admit = self.filter(arg.flags, arg.filter)
            qsize = self.params.dim * (4 if self.params.elem_type == 1 else 1)
            counts = (ctypes.c_uint32 * arg.nq).from_address(arg.counts)
            for i in range(arg.nq):
                counts[i] = self.search_one(
                    arg.queries + i * qsize, arg.k, arg.ids + 8 * i * arg.k,
                    arg.distances + 4 * i * arg.k if arg.distances else 0, admit)
        elif request == vexfs.IOC_GET:
            self.check_zero(arg, "reserved")
            dim = self.params.dim
            ids = list((ctypes.c_uint64 * arg.count).from_address(arg.ids))
            if any(i not in self.vectors for i in ids):
                self.fail(errno.ENOENT)
            for j, i in enumerate(ids):
                if self.params.elem_type == 1:
                    out = (ctypes.c_uint32 * dim).from_address(arg.vectors + 4 * j * dim)
                    out[:] = [f32_bits(x) for x in self.vectors[i]]
                else:
                    out = (ctypes.c_int8 * dim).from_address(arg.vectors + j * dim)
                    out[:] = [int(x) for x in self.vectors[i]]
        elif request == vexfs.IOC_BUILD_INDEX:
            self.check_zero(arg, "reserved")
            if arg.flags & ~vexfs.BUILD_COMPACT:
                self.fail(errno.EINVAL)
        else:
            self.fail(errno.ENOTTY)
        return 0


    def filter(self, flags, addr):
        """The id predicate of the struct vexfs_filter at addr, checked like
        the kernel checks it."""
        if not flags & vexfs.SEARCH_FILTER:
            if addr:
                self.fail(errno.EINVAL)
            return lambda i: True
        f = vexfs.Filter.from_address(addr)
        rng, listed = f.flags & vexfs.FILTER_RANGE, f.flags & vexfs.FILTER_IDS
        self.check_zero(f, "pad", "reserved")
        if (f.version != 1 or f.flags & ~3 or not f.flags or (rng and f.id_min > f.id_max)
                or (not rng and (f.id_min or f.id_max)) or (listed and not f.count)
                or (not listed and (f.ids or f.count))):
            self.fail(errno.EINVAL)
        allowed = set((ctypes.c_uint64 * f.count).from_address(f.ids)) if listed else None
        lo, hi = (f.id_min, f.id_max) if rng else (0, vexfs.ID_MAX)
        return lambda i: lo <= i <= hi and (allowed is None or i in allowed)

    def search_one(self, qaddr, k, ids_addr, dist_addr, admit=lambda i: True):
        """One exact L2 search of the query at qaddr among the ids admit
        admits; returns the count."""
        dim = self.params.dim
        if self.params.elem_type == 1:
            q = [from_bits(b) for b in (ctypes.c_uint32 * dim).from_address(qaddr)]
        else:
            q = list((ctypes.c_int8 * dim).from_address(qaddr))
        d = sorted((sum((a - b) ** 2 for a, b in zip(q, v)), i)
                   for i, v in self.vectors.items() if admit(i))[:k]
        out_ids = (ctypes.c_uint64 * k).from_address(ids_addr)
        for j, (dist, i) in enumerate(d):
            out_ids[j] = i
            if dist_addr:
                (ctypes.c_uint32 * k).from_address(dist_addr)[j] = f32_bits(dist)
        return len(d)


class ClientBase:
    """Tests of Collection against FakeKernel; run with and without NumPy."""
    use_numpy = True

    def setUp(self):
        if self.use_numpy and vexfs.np is None:
            self.skipTest("numpy is not installed")
        self.np = vexfs.np if self.use_numpy else None
        patches = [mock.patch.object(vexfs, "np", self.np)]
        self.kernel = FakeKernel()
        patches.append(mock.patch.object(vexfs.fcntl, "ioctl", self.kernel.ioctl))
        for p in patches:
            p.start()
            self.addCleanup(p.stop)
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.path = os.path.join(self.dir.name, "c")

    def vecs(self, rows):
        return self.np.array(rows, dtype=self.np.float32) if self.np else rows

    def test_create_and_stats(self):
        with vexfs.Collection(self.path) as c:
            c.create(3, metric="cosine", m=16, ef_construction=100)
            s = c.stats()
        self.assertTrue(os.path.exists(self.path))
        self.assertEqual(self.kernel.calls[0],
                         (vexfs.IOC_CREATE, struct.pack("<16I", 1, 3, 1, 3, 16, 100, 0, *[0] * 9)))
        self.assertEqual(s["dim"], 3)
        self.assertEqual(s["metric"], "cosine")
        self.assertEqual(s["dtype"], "f32")
        self.assertEqual(s["m"], 16)
        self.assertEqual(s["count"], 0)
        self.assertEqual(s["index_state"], "ready")
        with self.assertRaises(vexfs.VexfsError) as e:
            vexfs.Collection(self.path).create(3)
        self.assertEqual(e.exception.errno, errno.EEXIST)
        with self.assertRaises(ValueError):
            vexfs.Collection(self.path).create(3, metric="hamming")

    def test_insert_search_delete(self):
        c = vexfs.Collection(self.path).create(2)
        rows = [[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [-1.5, 0.5]]
        self.assertEqual(c.insert([10, 11, 12, 13, 14], self.vecs(rows), batch=2), 5)
        inserts = [b for r, b in self.kernel.calls if r == vexfs.IOC_INSERT]
        self.assertEqual(len(inserts), 3)  # batches of 2, 2 and 1
        self.assertEqual(struct.unpack_from("<4I", inserts[2]), (1, 1, 0, 0))
        self.assertEqual(c.stats()["count"], 5)
        ids, dist = c.search(self.vecs([0.9, 0.1]), k=3)
        self.assertEqual(list(ids), [11, 10, 12])
        self.assertAlmostEqual(float(dist[0]), 0.02, places=6)
        self.assertEqual(len(dist), 3)
        if self.np is not None:
            self.assertEqual(ids.dtype, self.np.uint64)
            self.assertEqual(dist.dtype, self.np.float32)
        ids, _ = c.search([3.0, 3.0], 10, ef=32, exact=True)
        self.assertEqual(len(ids), 5)  # fewer vectors than k
        req = [b for r, b in self.kernel.calls if r == vexfs.IOC_SEARCH][-1]
        self.assertEqual(struct.unpack_from("<4I", req), (1, 10, 32, vexfs.SEARCH_EXACT))
        self.assertEqual(c.delete([12, 99, 12]), 1)
        self.assertEqual(c.stats()["count"], 4)
        with self.assertRaises(vexfs.VexfsError) as e:
            c.insert([10], self.vecs([[1.0, 1.0]]))
        self.assertEqual(e.exception.errno, errno.EEXIST)
        self.assertEqual(c.insert([10, 500], self.vecs([[7.0, 7.0], [8.0, 8.0]]), upsert=True), 2)
        self.assertEqual(self.kernel.vectors[10], [7.0, 7.0])
        self.assertEqual(c.stats()["count"], 5)
        c.build_index(compact=True)
        self.assertEqual(self.kernel.calls[-1],
                         (vexfs.IOC_BUILD_INDEX, struct.pack("<2I4Q", 1, 1, 0, 0, 0, 0)))
        c.close()

    def test_search_batch_and_get(self):
        c = vexfs.Collection(self.path).create(2)
        rows = [[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [-1.5, 0.5]]
        c.insert([10, 11, 12, 13, 14], self.vecs(rows))
        queries = self.vecs([[0.9, 0.1], [3.0, 2.9], [-1.0, 0.0]])
        D, I = c.search_batch(queries, k=2)
        want = [c.search(q, k=2) for q in ([0.9, 0.1], [3.0, 2.9], [-1.0, 0.0])]
        for row, (ids, dist) in enumerate(want):
            self.assertEqual([int(x) for x in I[row]], [int(x) for x in ids])
            self.assertEqual([float(x) for x in D[row]], [float(x) for x in dist])
        if self.np is not None:
            self.assertEqual(I.shape, (3, 2))
            self.assertEqual(D.dtype, self.np.float32)
            # Fewer vectors than k: padded.
            D, I = c.search_batch(queries, k=7)
            self.assertEqual(int(I[0][6]), vexfs.MISSING)
            self.assertEqual(float(D[0][6]), float("inf"))
        req = [b for r, b in self.kernel.calls if r == vexfs.IOC_SEARCH_BATCH][0]
        self.assertEqual(struct.unpack_from("<6I", req), (1, 2, 0, 0, 3, 0))
        got = c.get([13, 10])
        self.assertEqual([[float(x) for x in r] for r in got], [[3.0, 3.0], [0.0, 0.0]])
        with self.assertRaises(vexfs.VexfsError) as e:
            c.get([99])
        self.assertEqual(e.exception.errno, errno.ENOENT)
        c.close()

    def test_filtered_search(self):
        c = vexfs.Collection(self.path).create(2)
        c.insert(range(10, 20), self.vecs([[float(i), 0.0] for i in range(10)]))
        ids, _ = c.search([0.0, 0.0], k=3, id_range=(14, 100))
        self.assertEqual([int(i) for i in ids], [14, 15, 16])
        ids, _ = c.search([0.0, 0.0], k=3, ids=[19, 12, 99], exact=True)
        self.assertEqual([int(i) for i in ids], [12, 19])
        ids, _ = c.search([0.0, 0.0], k=3, ids=[19, 12, 13], id_range=(13, 19))
        self.assertEqual([int(i) for i in ids], [13, 19])
        d, i = c.search_batch(self.vecs([[0.0, 0.0], [9.0, 0.0]]), k=2, id_range=(12, 13))
        rows = [[int(x) for x in r] for r in i]
        self.assertEqual(rows, [[12, 13], [13, 12]])
        with self.assertRaises(ValueError):
            c.search([0.0, 0.0], id_range=(5, 4))
        with self.assertRaises(ValueError):
            c.search([0.0, 0.0], ids=[])

    def test_bad_arguments(self):
        c = vexfs.Collection(self.path).create(2)
        with self.assertRaises(ValueError):
            c.insert([1, 2], self.vecs([[1.0, 2.0]]))
        with self.assertRaises(ValueError):
            c.insert([1], self.vecs([[1.0, 2.0, 3.0]]))
        with self.assertRaises(ValueError):
            c.search([1.0, 2.0], k=0)
        with self.assertRaises(ValueError):
            c.search([1.0, 2.0], k=1, ef=-1)
        with self.assertRaises(ValueError):
            c.search(self.vecs([[1.0, 2.0], [3.0, 4.0]]), k=1)
        with self.assertRaises((ValueError, OverflowError)):
            c.delete([-1])

    def test_i8_collection(self):
        c = vexfs.Collection(self.path).create(3, dtype="i8")
        c.insert([1, 2], [[1, -2, 3], [-128, 127, 0]])
        ins = [b for r, b in self.kernel.calls if r == vexfs.IOC_INSERT][0]
        self.assertEqual(struct.unpack_from("<2I", ins), (1, 2))
        self.assertEqual(self.kernel.vectors[2], [-128, 127, 0])
        ids, _ = c.search([1, -2, 2], k=1)
        self.assertEqual(list(ids), [1])
        with self.assertRaises(ValueError):
            c.insert([3], [[1, 2, 200]])
        with self.assertRaises(ValueError):
            c.insert([3], [[1, 2, 0.5]])

    def test_not_a_collection(self):
        with open(self.path, "wb"):
            pass
        with self.assertRaises(vexfs.VexfsError) as e:
            vexfs.Collection(self.path).stats()
        self.assertEqual(e.exception.errno, errno.EINVAL)


class ClientNumpy(ClientBase, unittest.TestCase):
    use_numpy = True


class ClientPlain(ClientBase, unittest.TestCase):
    use_numpy = False


class RealIoctl(unittest.TestCase):
    def test_regular_file_is_refused(self):
        # A file of another file system answers ENOTTY (or EINVAL): the
        # request numbers and buffers go through fcntl.ioctl unharmed.
        with tempfile.NamedTemporaryFile() as f:
            with self.assertRaises(vexfs.VexfsError) as e:
                vexfs.Collection(f.name).stats()
            self.assertIn(e.exception.errno, (errno.ENOTTY, errno.EINVAL, errno.EOPNOTSUPP))


if __name__ == "__main__":
    unittest.main()
