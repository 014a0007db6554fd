#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot the VexFS kernel in QEMU with the initramfs and scratch disks.
#
#   scripts/vm.sh [options]
#     --mode test|demo|shell   what /init runs (default: shell)
#     --phase N                test phase (tests/phaseN)
#     --disk IMAGE             attach IMAGE as the next virtio-blk disk
#     --console FILE           kernel console to FILE instead of stdout
#     --results FILE           second serial port (test results) to FILE
#     --timeout SECONDS        kill the VM after this long (default 900)
#     --append ARGS            extra kernel command line
#     --mem MB                 guest memory (default 512)
#
# KVM is used only if a short probe boot under KVM succeeds on this machine
# (the result is cached in build/accel); otherwise QEMU's TCG emulation.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KERNEL=${KERNEL:-$BUILD/obj-x86/arch/x86/boot/bzImage}
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
	*) die "vm.sh: unknown option $1" ;;
	esac
	shift
done
[ -f "$KERNEL" ] || die "no kernel at $KERNEL: run 'make kernel'"
[ -f "$INITRD" ] || die "no initramfs at $INITRD"

qemu_cmd() {
	local accel=$1 con=$2 res=$3 cmdline=$4 d i=0
	local -a cmd=(qemu-system-x86_64 -machine q35,accel="$accel" -m "$mem" -smp 1
		-no-reboot -display none -monitor none -nodefaults
		-kernel "$KERNEL" -initrd "$INITRD" -append "$cmdline")
	[ "$accel" = kvm ] && cmd+=(-cpu host) || cmd+=(-cpu max)
	cmd+=(-serial "$con")
	[ -n "$res" ] && cmd+=(-serial "$res")
	for d in "${disks[@]}"; do
		cmd+=(-drive "file=$d,if=virtio,format=raw,cache=unsafe,index=$i")
		i=$((i + 1))
	done
	printf '%q ' "${cmd[@]}"
}

pick_accel() {
	local cache=$BUILD/accel probe=$BUILD/accel-probe.log
	if [ -f "$cache" ] && [ "$(cat "$cache.kernel" 2>/dev/null)" = "$(stat -c %Y "$KERNEL")" ]; then
		cat "$cache"
		return
	fi
	local accel=tcg
	if [ -w /dev/kvm ]; then
		rm -f "$probe"
		if timeout -k 2 20 bash -c "$(disks=() qemu_cmd kvm "file:$probe" "" \
			"console=ttyS0 panic=-1 kunit.enable=0 vexfs.mode=probe")" \
			>/dev/null 2>&1 && grep -q 'vexfs-vm: done' "$probe"; then
			accel=kvm
		fi
	fi
	echo "$accel" >"$cache"
	stat -c %Y "$KERNEL" >"$cache.kernel"
	echo "$accel"
}

accel=$(pick_accel)
cmdline="console=ttyS0 panic=-1 oops=panic vexfs.mode=$mode vexfs.phase=$phase $append"
con=stdio
[ -n "$console" ] && con="file:$console"
res=""
[ -n "$results" ] && res="file:$results"
log "booting ($accel, ${mem} MiB, ${#disks[@]} disk(s), mode $mode${results:+, phase $phase})"
set +e
eval "timeout -k 5 $timeout_s $(qemu_cmd "$accel" "$con" "$res" "$cmdline")" </dev/null
rc=$?
set -e
[ $rc -eq 124 ] && log "VM timed out after ${timeout_s}s"
exit $rc
