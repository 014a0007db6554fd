# SPDX-License-Identifier: GPL-2.0
#
# Helpers for VexFS VM tests (busybox sh). A test script sources this file,
# calls `ok`/`check`/`fail`, and ends with `finish`. Output is TAP.

_n=0
_failed=0
# Scratch disks of the VM: virtio-blk, in the order the host attached them.
DISK1=/dev/vda
DISK2=/dev/vdb
MNT=/mnt

ok() {
	_n=$((_n + 1))
	echo "ok $_n - $*"
}

fail() {
	_n=$((_n + 1))
	_failed=$((_failed + 1))
	echo "not ok $_n - $*"
}

# check DESCRIPTION COMMAND...: pass when COMMAND succeeds.
check() {
	_desc=$1
	shift
	if "$@"; then ok "$_desc"; else fail "$_desc"; fi
}

# check_fails DESCRIPTION COMMAND...: pass when COMMAND fails.
check_fails() {
	_desc=$1
	shift
	if "$@" 2>/dev/null; then fail "$_desc"; else ok "$_desc"; fi
}

# check_eq DESCRIPTION EXPECTED ACTUAL
check_eq() {
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		fail "$1: expected '$2', got '$3'"
	fi
}

finish() {
	echo "1..$_n"
	[ $_failed -eq 0 ]
}

# note TEXT...: a TAP comment (measurements, context); never a result.
note() {
	echo "# $*"
}

# now: seconds since boot, with centiseconds (for timings in notes).
now() {
	cut -d' ' -f1 /proc/uptime
}

# elapsed START: seconds since START (a value of `now`), with centiseconds.
elapsed() {
	awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.2f", e - s }'
}

# rate AMOUNT START: AMOUNT per second since START, for notes.
rate() {
	awk -v n="$1" -v s="$2" -v e="$(now)" \
		'BEGIN { d = e - s; if (d <= 0) d = 0.01; printf "%.1f", n / d }'
}

# drop_caches: write back and drop the page cache, dentries and inodes, so
# that what is read next comes from the disk.
drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# mount_opts: the mount options of $MNT, as /proc/mounts shows them.
mount_opts() {
	awk -v m=$MNT '$2 == m { print $4 }' /proc/mounts
}

# crash_after_phase: once every test of this phase has run and reported,
# crash the VM (sysrq b: immediate reboot, no sync, no unmount) instead of
# shutting it down cleanly. For crash tests; the next phase checks what
# survived.
crash_after_phase() {
	: >/tmp/vexfs-crash-after-phase
}
