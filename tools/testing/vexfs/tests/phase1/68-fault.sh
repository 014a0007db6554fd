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
umount $M
losetup -d $LOOP
cp $IMG $IMG.pristine

# attach: the pristine image on the loop device, mounted.
attach() {
	cp $IMG.pristine $IMG &&
		losetup $LOOP $IMG &&
		mount -t vexfs $LOOP $M
}

# The bytes an uncut save writes.
attach || fail "attach"
vexfs-ioctl-test fault-change $M $DEV - >/tmp/fault.out 2>&1
rc=$?
sed -n 's/^# /# uncut: /p' /tmp/fault.out
check_eq "the uncut save goes over the copy in place" 0 $rc
total=$(sed -n 's/.*, \([0-9]*\) bytes reached the disk/\1/p' /tmp/fault.out)
umount $M
losetup -d $LOOP
[ -n "$total" ] || total=65536
step=$(((total / 24 + 4095) / 4096 * 4096))
[ $step -ge 4096 ] || step=4096

bad=0
rounds=0
with_log=0
restored=0
rebuilt=0
budget=0
while [ $budget -le $((total + step)) ]; do
	rounds=$((rounds + 1))
	if ! attach; then
		fail "budget $budget: attach"
		bad=$((bad + 1))
		break
	fi
	vexfs-ioctl-test fault-change $M $DEV $budget >/tmp/fault.out 2>&1
	rc=$?
	# Nothing of the unmount reaches the disk either; then the fault is off.
	umount $M 2>/dev/null || umount $M
	echo 0 >/sys/block/$DEV/make-it-fail
	echo 0 >$FI/probability
	losetup -d $LOOP
	if [ $rc != 0 ]; then
		fail "budget $budget: fault-change"
		sed 's/^/# /' /tmp/fault.out | head -5
		bad=$((bad + 1))
		budget=$((budget + step))
		continue
	fi
	losetup $LOOP $IMG && mount -t vexfs $LOOP $M
	vexfs-ioctl-test fault-verify $M >/tmp/fault.out 2>&1
	rc=$?
	out=$(sed -n 's/^outcome: //p' /tmp/fault.out)
	if [ $rc != 0 ]; then
		fail "budget $budget: fault-verify"
		sed 's/^/# /' /tmp/fault.out | head -5
		bad=$((bad + 1))
	fi
	case "$out" in
	"restored with the log") with_log=$((with_log + 1)) ;;
	restored) restored=$((restored + 1)) ;;
	rebuilt) rebuilt=$((rebuilt + 1)) ;;
	esac
	note "budget $budget: $out;" $(sed -n 's/^# fault: //p' /tmp/fault.out | tr '\n' ' ')
	umount $M
	losetup -d $LOOP
	budget=$((budget + step))
done
note "$rounds cuts of a $total-byte save, every $step bytes:" \
	"$with_log restored with the log, $restored restored as saved, $rebuilt rebuilt"
check_eq "every cut save leaves the vectors that were there and exact searches" 0 $bad
check "some cuts fall in the writes over the copy, and those restore with the log" \
	[ $with_log -gt 0 ]
# The device fails whole bios, never part of one, so no cut tears a header:
# what it leaves always names a whole copy, or one that its log makes whole.
check_eq "no cut makes the index rebuild" 0 $rebuilt
rm -f $IMG $IMG.pristine
finish
