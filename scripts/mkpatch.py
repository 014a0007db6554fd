#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Write a patch of one kernel file from two versions of it.

    mkpatch.py PATH OLD NEW OUT   (PATH is the file's path in the kernel tree)
"""
import subprocess
import sys

path, old, new, out = sys.argv[1:5]
r = subprocess.run(["git", "diff", "--no-index", "--no-prefix", old, new],
                   capture_output=True, text=True).stdout
lines = []
for line in r.splitlines():
    if line.startswith("diff --git"):
        line = f"diff --git a/{path} b/{path}"
    elif line.startswith("index "):
        continue
    elif line.startswith("--- "):
        line = f"--- a/{path}"
    elif line.startswith("+++ "):
        line = f"+++ b/{path}"
    lines.append(line)
open(out, "w").write("\n".join(lines) + "\n")
