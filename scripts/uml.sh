#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Run the VexFS kernel as User-Mode Linux (build/obj-um/vmlinux, built by
# `scripts/build-kernel.sh um`): the same initramfs and /init as the QEMU VM,
# at native speed as a host process, with ubd disks instead of virtio-blk
# (/dev/ubda, /dev/ubdb). Options as scripts/vm.sh:
#
#   scripts/uml.sh [--mode test|demo|shell] [--phase N] [--disk IMAGE]...
#                  [--console FILE] [--results FILE] [--timeout S]
#                  [--append ARGS] [--mem MB]
set -euo pipefail
. "$(dirname "$0")/lib.sh"

UML=${UML:-$BUILD/obj-um/vmlinux}
INITRD=${INITRD:-$BUILD/initramfs.cpio.gz}
mode=shell phase=1 console="" results="" timeout_s=900 append="" mem=512
disks=()
while [ $# -gt 0 ]; do
	case "$1" in
	--mode) mode=$2; shift ;;
	--phase) phase=$2; shift ;;
	--disk) disks+=("$2"); shift ;;
	--console) console=$2; shift ;;
	--results) results=$2; shift ;;
	--timeout) timeout_s=$2; shift ;;
	--append) append=$2; shift ;;
	--mem) mem=$2; shift ;;
	*) die "uml.sh: unknown option $1" ;;
	esac
	shift
done
[ -x "$UML" ] || die "no UML kernel at $UML: run 'scripts/build-kernel.sh um'"
[ -f "$INITRD" ] || die "no initramfs at $INITRD"

# UML backs its memory with a file in TMPDIR.
export TMPDIR=${UML_TMPDIR:-/dev/shm}
cmd=("$UML" "mem=${mem}M" "initrd=$INITRD" panic=-1 oops=panic
	"vexfs.mode=$mode" "vexfs.phase=$phase")
i=0
for d in "${disks[@]}"; do
	cmd+=("ubd$i=$d")
	i=$((i + 1))
done
# The console on fd 3 (a file, or the terminal), the TAP port (ttyS1) on fd 4.
cmd+=(con=null "con0=fd:0,fd:3" ssl=null "ssl1=null,fd:4")
# shellcheck disable=SC2206
cmd+=($append)
exec 3>"${console:-/dev/stdout}" 4>"${results:-/dev/null}"
log "booting UML (${mem} MiB, ${#disks[@]} disk(s), mode $mode${results:+, phase $phase})"
set +e
if [ "$mode" = shell ]; then
	"${cmd[@]}"
else
	timeout -k 5 "$timeout_s" "${cmd[@]}" </dev/null
fi
rc=$?
set -e
[ $rc -eq 124 ] && log "UML timed out after ${timeout_s}s"
# UML may leave the terminal in raw mode.
[ -t 0 ] && stty sane 2>/dev/null
exit $rc
