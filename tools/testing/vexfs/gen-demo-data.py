#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Write the demo's vectors: 2000 points of dimension 16 around 8 centres
(point i belongs to centre i % 8), as .fvecs, deterministically."""
import random
import struct
import sys

r = random.Random(42)
centres = [[r.uniform(-1, 1) for _ in range(16)] for _ in range(8)]
with open(sys.argv[1], "wb") as f:
    for i in range(2000):
        v = [x + r.gauss(0, 0.1) for x in centres[i % 8]]
        f.write(struct.pack("<i", 16) + struct.pack("<16f", *v))
