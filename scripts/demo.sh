#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# make run: build everything, boot the VM and run the demo on its console.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

bash "$TOP/scripts/setup.sh"
bash "$TOP/scripts/assemble.sh"
log "building the kernel (the first build takes about 5 minutes on 2 cores)"
bash "$TOP/scripts/build-kernel.sh" x86 >"$BUILD/build-kernel.log" 2>&1 ||
	{ tail -40 "$BUILD/build-kernel.log"; die "kernel build failed (log: build/build-kernel.log)"; }
bash "$TOP/scripts/build-tools.sh"
bash "$TOP/scripts/initramfs.sh"
mkdir -p "$BUILD/vm"
rm -f "$BUILD/vm/demo.img"
truncate -s 256M "$BUILD/vm/demo.img"
bash "$TOP/scripts/vm.sh" --mode demo --disk "$BUILD/vm/demo.img" --timeout 600 \
	--append "quiet kunit.enable=0"
