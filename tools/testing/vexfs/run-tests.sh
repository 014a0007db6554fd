#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Run every test of one phase inside the VM and report TAP: one top-level
# result per test script, its own results indented below it as subtests.
#
# A test may ask for the VM to crash once the phase is over (lib.sh:
# crash_after_phase): the phase still reports every result and
# "# phase N done", then the VM reboots at once through sysrq, without
# syncing or unmounting anything, and the next phase checks what survived.
phase=${1:-1}
dir=/vexfs/tests/phase$phase
set -- "$dir"/${VEXFS_ONLY:-*}.sh
[ -e "$1" ] || set --
echo "TAP version 13"
echo "1..$#"
n=0
for t in "$@"; do
	n=$((n + 1))
	name=$(basename "$t" .sh)
	out=/tmp/$name.out
	echo "# running $name"
	VEXFS_PHASE=$phase sh "$t" >"$out" 2>&1
	rc=$?
	sed 's/^/    /' "$out"
	if [ $rc -eq 0 ] && ! grep -q '^not ok' "$out"; then
		echo "ok $n - $name"
	else
		echo "not ok $n - $name (exit $rc)"
	fi
done
echo "# phase $phase done"
if [ -e /tmp/vexfs-crash-after-phase ]; then
	echo "# crashing the VM (sysrq b) as a test asked"
	# Let the serial port drain: sysrq b does not wait for it.
	sleep 2
	echo b >/proc/sysrq-trigger
fi
