#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Pack the VM's initramfs: busybox-static, the test harness and tests of
# tools/testing/vexfs, and the statically linked user tools.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

OUT=${1:-$BUILD/initramfs.cpio.gz}
STAGE=$BUILD/initramfs
T=$TOP/tools/testing/vexfs

rm -rf "$STAGE"
mkdir -p "$STAGE"/{bin,sbin,dev,proc,sys,tmp,mnt,vexfs/bin}
cp /bin/busybox "$STAGE/bin/busybox"
install -m 0755 "$T/init" "$STAGE/init"
cp "$T/lib.sh" "$T/run-tests.sh" "$STAGE/vexfs/"
[ -f "$T/demo.sh" ] && cp "$T/demo.sh" "$STAGE/vexfs/"
cp -r "$T/tests" "$STAGE/vexfs/tests"
mkdir -p "$STAGE/vexfs/data"
python3 "$T/gen-demo-data.py" "$STAGE/vexfs/data/demo.fvecs"
# The GloVe subset of the recall test, when scripts/glove-data.sh made it.
[ -d "$BUILD/glove" ] && cp -r "$BUILD/glove" "$STAGE/vexfs/data/glove"
for bin in "$BUILD"/cargo/x86_64-unknown-linux-gnu/release/*; do
	[ -f "$bin" ] && [ -x "$bin" ] || continue
	cp "$bin" "$STAGE/vexfs/bin/"
	# Cargo cannot name a binary mkfs.vexfs: install the usual names as links.
	case "$(basename "$bin")" in
	*-vexfs) ln -sf "$(basename "$bin")" "$STAGE/vexfs/bin/$(basename "$bin" -vexfs).vexfs" ;;
	esac
done
(cd "$STAGE" && find . -print0 | sort -z | cpio --null -o -H newc --quiet -R 0:0) |
	gzip -1 >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
