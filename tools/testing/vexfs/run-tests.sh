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
#
# A watchdog bounds each test script (VEXFS_TEST_TIMEOUT seconds, default
# 900; vexfs.test_timeout= on the kernel command line): a test still running
# then fails as timed out, after the stacks of the blocked tasks went to the
# kernel log (sysrq w) and its process group was killed, and the phase goes
# on with the next test. A hang thus names its test and leaves its traces
# instead of stopping the whole run at the harness's timeout.
phase=${1:-1}
dir=${VEXFS_TESTS:-/vexfs/tests}/phase$phase
limit=${VEXFS_TEST_TIMEOUT:-900}
sysrq=${VEXFS_SYSRQ:-/proc/sysrq-trigger}
# VEXFS_ONLY (vexfs.only= on the kernel command line): the scripts to run, as
# names or shell patterns separated by commas; all of them by default.
set -f
patterns=$(echo "${VEXFS_ONLY:-*}" | tr , ' ')
set --
for p in $patterns; do
	set +f
	for t in "$dir"/$p.sh; do
		[ -e "$t" ] && set -- "$@" "$t"
	done
	set -f
done
set +f
echo "TAP version 13"
echo "1..$#"
n=0
for t in "$@"; do
	n=$((n + 1))
	name=$(basename "$t" .sh)
	out=/tmp/$name.out
	echo "# running $name"
	rm -f "/tmp/$name.timeout"
	started=$(cut -d. -f1 /proc/uptime)
	# In a session of its own, so that the watchdog can kill all of it.
	VEXFS_PHASE=$phase setsid sh "$t" >"$out" 2>&1 &
	pid=$!
	(
		sleep "$limit"
		: >"/tmp/$name.timeout"
		echo w >"$sysrq" 2>/dev/null
		kill -KILL -"$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
	) &
	watchdog=$!
	wait "$pid" 2>/dev/null
	rc=$?
	kill "$watchdog" 2>/dev/null
	sed 's/^/    /' "$out"
	echo "# $name took $(($(cut -d. -f1 /proc/uptime) - started)) s"
	if [ -e "/tmp/$name.timeout" ]; then
		echo "not ok $n - $name (timed out after $limit s; blocked tasks in the kernel log)"
	elif [ $rc -eq 0 ] && ! grep -q '^not ok' "$out"; then
		echo "ok $n - $name"
	else
		echo "not ok $n - $name (exit $rc)"
	fi
done
# The debug kernel's leak detector: a scan after the tests, its reports (if
# any) to the console, where the harness fails on them.
if [ -e /sys/kernel/debug ] && mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null &&
	[ -e /sys/kernel/debug/kmemleak ]; then
	echo scan >/sys/kernel/debug/kmemleak
	sleep 5
	echo scan >/sys/kernel/debug/kmemleak
	leaks=$(grep -c "unreferenced object" /sys/kernel/debug/kmemleak)
	echo "# kmemleak: $leaks unreferenced objects"
	[ "$leaks" = 0 ] || head -c 20000 /sys/kernel/debug/kmemleak >/dev/kmsg
fi
echo "# phase $phase done"
if [ -e /tmp/vexfs-crash-after-phase ]; then
	echo "# crashing the VM (sysrq b) as a test asked"
	# Let the serial port drain: sysrq b does not wait for it.
	sleep 2
	echo b >/proc/sysrq-trigger
fi
