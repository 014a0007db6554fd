#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# A save over a saved index in place, cut by the block layer at every point
# of its writes. The collection of `vexfs-ioctl-test fault-write` lives on a
# loop device (a tmpfs image, restored before each round); after a mount,
# `fault-change` deletes a few vectors and syncs with fail_make_request
# letting only the next BUDGET bytes of I/O reach the device and failing all
# after them (the state a crash leaves, with any subset of the writes since
# the last cache flush: the block layer may reorder those). The unmount then
# writes nothing either. After a clean remount, `fault-verify` checks that
# every vector is there but the deletes that reached the disk, that searches
# are exact, and whether the saved index restored (with the log of the cut
# save, or as it was) or had to be rebuilt. The budgets run from 0 to past
# the bytes of an uncut save, so that some round cuts the writes over the
# copy itself: those must restore with the log. None may need a rebuild.
#
# Then the same for a compaction (BUILD_INDEX with VEXFS_BUILD_COMPACT, and an
# fsync), of a collection with every third vector deleted: the kept records
# are copied past the end and made durable, a version 3 header names them,
# they are copied back and made durable, a version 2 header follows, then
# the truncation. Whatever a cut leaves, `fault-compact-verify` finds every
# live vector bit for bit and no deleted one, exact searches, and then
# compacts to a version 2 file of the live records. Some cuts must fall in
# the copy back, with a version 3 header on the disk.
. /vexfs/lib.sh

FI=/sys/kernel/debug/fail_make_request
grep -q " /sys/kernel/debug " /proc/mounts || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
if [ ! -d $FI ]; then
	ok "# SKIP no fail_make_request (CONFIG_FAIL_MAKE_REQUEST, debugfs)"
	finish
	exit
fi

IMG=/tmp/fault.img
M=/tmp/fault-mnt
truncate -s 16M $IMG
LOOP=$(losetup -f)
DEV=${LOOP#/dev/}
check "loop device" losetup $LOOP $IMG
check "mkfs.vexfs" mkfs.vexfs -f -q $LOOP
mkdir -p $M
check "mount" mount -t vexfs $LOOP $M
check "a collection with a saved index" vexfs-ioctl-test fault-write $M
check "a collection with deleted records" vexfs-ioctl-test fault-compact-write $M
umount $M
losetup -d $LOOP
cp $IMG $IMG.pristine

# attach: the pristine image on the loop device, mounted.
attach() {
	cp $IMG.pristine $IMG &&
		losetup $LOOP $IMG &&
		mount -t vexfs $LOOP $M
}

# detach: unmount (with the fault still armed: nothing of it reaches the
# disk), then the fault off and the loop device released.
detach() {
	umount $M 2>/dev/null || umount $M
	echo 0 >/sys/block/$DEV/make-it-fail
	echo 0 >$FI/probability
	losetup -d $LOOP
}

# sweep WHAT CUT VERIFY: the bytes an uncut run of `vexfs-ioctl-test CUT`
# writes, then rounds cutting it every 1/24 of that (at least 4 KiB) up to
# past its end, each verified by `vexfs-ioctl-test VERIFY` after a clean
# remount. Leaves the outcomes VERIFY printed, one a line, in
# /tmp/fault.outcomes; counts failed rounds in $bad.
sweep() {
	: >/tmp/fault.outcomes
	bad=0
	attach || fail "$1: attach"
	vexfs-ioctl-test $2 $M $DEV - >/tmp/fault.out 2>&1
	_rc=$?
	sed -n "s/^# /# $1 uncut: /p" /tmp/fault.out
	check_eq "$1: uncut" 0 $_rc
	total=$(sed -n 's/.*, \([0-9]*\) bytes reached the disk/\1/p' /tmp/fault.out)
	umount $M
	losetup -d $LOOP
	[ -n "$total" ] || total=65536
	step=$(((total / 24 + 4095) / 4096 * 4096))
	rounds=0
	budget=0
	while [ $budget -le $((total + step)) ]; do
		rounds=$((rounds + 1))
		if ! attach; then
			fail "$1, budget $budget: attach"
			bad=$((bad + 1))
			break
		fi
		vexfs-ioctl-test $2 $M $DEV $budget >/tmp/fault.out 2>&1
		_rc=$?
		detach
		if [ $_rc != 0 ]; then
			fail "$1, budget $budget: $2"
			sed 's/^/# /' /tmp/fault.out | head -5
			bad=$((bad + 1))
			budget=$((budget + step))
			continue
		fi
		losetup $LOOP $IMG && mount -t vexfs $LOOP $M
		vexfs-ioctl-test $3 $M >/tmp/fault.out 2>&1
		_rc=$?
		_out=$(sed -n 's/^outcome: //p' /tmp/fault.out)
		if [ $_rc != 0 ]; then
			fail "$1, budget $budget: $3"
			sed 's/^/# /' /tmp/fault.out | head -5
			bad=$((bad + 1))
		fi
		echo "$_out" >>/tmp/fault.outcomes
		note "$1, budget $budget: $_out;" $(sed -n 's/^# fault: //p' /tmp/fault.out | tr '\n' ' ')
		umount $M
		losetup -d $LOOP
		budget=$((budget + step))
	done
}

# count PATTERN: outcomes of the last sweep matching PATTERN.
count() {
	grep -c "$1" /tmp/fault.outcomes
}

sweep save fault-change fault-verify
with_log=$(count "^restored with the log$")
note "$rounds cuts of a $total-byte save, every $step bytes: $with_log restored with the log," \
	"$(count "^restored$") restored as saved, $(count "^rebuilt$") rebuilt"
check_eq "every cut save leaves the vectors that were there and exact searches" 0 $bad
check "some cuts fall in the writes over the copy, and those restore with the log" \
	[ $with_log -gt 0 ]
# The device fails whole bios, never part of one, so no cut tears a header:
# what it leaves always names a whole copy, or one that its log makes whole.
check_eq "no cut makes the index rebuild" 0 "$(count "^rebuilt$")"

sweep compaction fault-compact fault-compact-verify
moved=$(count "^version 3,")
note "$rounds cuts of a $total-byte compaction, every $step bytes: $moved left the records" \
	"moved (version 3), $(count "^version 2, 2000 records") the file as it was," \
	"$(count "^version 2, 1333 records") the file compacted"
check_eq "every cut compaction leaves the live vectors, no deleted one, exact searches" 0 $bad
check "some cuts fall in the copy back, with the records moved" [ $moved -gt 0 ]
rm -f $IMG $IMG.pristine /tmp/fault.out /tmp/fault.outcomes
finish
