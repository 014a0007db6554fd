#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# FS_IOC_SHUTDOWN: the three flags, what fails afterwards (EIO) and what the
# device then holds; and a crash loop built on it: rounds of a workload cut
# by a shutdown at a random moment, each followed by a mount without fsck
# (every fsync'd file intact), then fsck.vexfs -p and a clean check.
#
#   VEXFS_CRASH_ROUNDS=N   rounds of the crash loop (default 5)
#   VEXFS_CRASH_SEED=S     seed of the loop's random choices (default: random)
. /vexfs/lib.sh

ROUNDS=${VEXFS_CRASH_ROUNDS:-5}
SEED=${VEXFS_CRASH_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
RANDOM=$SEED

# repair WHAT: fsck.vexfs -p, as a boot script runs it after a crash, then a
# check that must be clean. What -p leaves (it refuses what could lose data)
# is repaired by -y and counted in $needed_y.
needed_y=0
repair() {
	fsck.vexfs -p $DISK2 >/tmp/fsck.out 2>&1
	_rc=$?
	case $_rc in
	0 | 1) ;;
	4)
		needed_y=$((needed_y + 1))
		note "$1: fsck.vexfs -p left problems for -y:"
		sed 's/^/#   /' /tmp/fsck.out | head -10
		fsck.vexfs -y $DISK2 >/tmp/fsck.out 2>&1
		;;
	*)
		fail "$1: fsck.vexfs -p exit $_rc"
		sed 's/^/# /' /tmp/fsck.out | head -10
		;;
	esac
	fsck.vexfs -n $DISK2 >/tmp/fsck.out 2>&1
	_rc=$?
	[ $_rc = 0 ] || sed 's/^/# /' /tmp/fsck.out | head -10
	check_eq "$1: clean after the repair" 0 $_rc
}

check "mkfs.vexfs" mkfs.vexfs -f -q -L shutdown $DISK2 64M

# NOLOGFLUSH: the errnos (vexfs-ioctl-test), then what the device holds.
mount -t vexfs $DISK2 $MNT
check "NOLOGFLUSH: refused without CAP_SYS_ADMIN or with bad flags; then changes fail with EIO" \
	vexfs-ioctl-test shutdown $MNT
check "NOLOGFLUSH: umount" umount $MNT
fsck.vexfs -n $DISK2 >/tmp/fsck.out 2>&1
check "NOLOGFLUSH: the super block says not cleanly unmounted" \
	grep -q "not cleanly unmounted" /tmp/fsck.out
repair "NOLOGFLUSH"
check "NOLOGFLUSH: mount" mount -t vexfs $DISK2 $MNT
check_eq "NOLOGFLUSH: the file synced before is intact" "kept before the shutdown" "$(cat $MNT/kept)"
check_eq "NOLOGFLUSH: so is the synced file written again after" 10000 "$(stat -c %s $MNT/cached)"
check "NOLOGFLUSH: the collection is usable" vexctl stats $MNT/coll
umount $MNT

# DEFAULT: everything written before the call is on the device.
mount -t vexfs $DISK2 $MNT
head -c 300000 /dev/urandom >/tmp/default.src
cp /tmp/default.src $MNT/default
mkdir $MNT/dd
echo a >$MNT/dd/a
rm $MNT/kept
check "DEFAULT: shutdown" vexfs-ioctl-test godown $MNT 0
check_fails "DEFAULT: a write afterwards fails" sh -c "echo x >$MNT/x"
check "DEFAULT: umount" umount $MNT
repair "DEFAULT"
mount -t vexfs $DISK2 $MNT
check "DEFAULT: the unsynced file written before is intact" cmp /tmp/default.src $MNT/default
check_eq "DEFAULT: so is the new directory" a "$(cat $MNT/dd/a)"
check_fails "DEFAULT: the unlink before is durable" test -e $MNT/kept
umount $MNT

# LOGFLUSH: metadata blocks written, data and in-memory inodes not.
mount -t vexfs $DISK2 $MNT
cp /tmp/default.src $MNT/logflush
mkdir $MNT/ld
check "LOGFLUSH: shutdown" vexfs-ioctl-test godown $MNT/ld 1
check "LOGFLUSH: umount" umount $MNT
repair "LOGFLUSH"
check "LOGFLUSH: mount" mount -t vexfs $DISK2 $MNT
check "LOGFLUSH: ls -lR" sh -c "ls -lR $MNT >/dev/null"
umount $MNT

# The crash loop. Each round runs a workload in its own directory: files
# written and fsync'd (with their directory) are recorded in /tmp/durable once
# fsync returned; others are written without sync, renamed, truncated and
# removed. A NOLOGFLUSH shutdown cuts it after 1 to 3 seconds.
note "crash loop: $ROUNDS rounds, seed $SEED (replay: VEXFS_CRASH_SEED=$SEED)"
workload() {
	_d=$MNT/r$1
	mkdir $_d && sync $MNT $_d || return
	_i=0
	while [ ! -e /tmp/stop ]; do
		_i=$((_i + 1))
		_f=$_d/f$_i
		head -c $(( (RANDOM % 64 + 1) * 1500 )) /dev/urandom >/tmp/src
		case $((_i % 4)) in
		0)
			if dd if=/tmp/src of=$_f bs=4k conv=fsync 2>/dev/null && sync $_d 2>/dev/null; then
				echo "$(md5sum </tmp/src | cut -d' ' -f1)  $_f" >>/tmp/durable
			fi
			;;
		1) cp /tmp/src $_f 2>/dev/null; rm -f $_d/f$((_i - 3)).moved 2>/dev/null ;;
		2) cp /tmp/src $_f 2>/dev/null && mv $_f $_f.moved 2>/dev/null ;;
		3) cp /tmp/src $_f 2>/dev/null && truncate -s 1000 $_f 2>/dev/null ;;
		esac
	done
}
: >/tmp/durable
start=$(now)
remount_bad=0 lost=0 read_errors=0
round=0
while [ $round -lt $ROUNDS ]; do
	round=$((round + 1))
	rm -f /tmp/stop
	mount -t vexfs $DISK2 $MNT
	workload $round &
	wl=$!
	sleep $((RANDOM % 3 + 1))
	vexfs-ioctl-test godown $MNT 2 || fail "round $round: shutdown"
	: >/tmp/stop
	wait $wl
	umount $MNT || fail "round $round: umount after the shutdown"
	# No fsck before this mount: the kernel copes with what the crash left.
	if ! mount -t vexfs $DISK2 $MNT; then
		remount_bad=$((remount_bad + 1))
		note "round $round: no mount after the shutdown"
		repair "round $round"
		continue
	fi
	if ! (cd / && md5sum -c -s /tmp/durable); then
		lost=$((lost + 1))
		note "round $round: fsync'd files damaged:"
		md5sum -c /tmp/durable 2>&1 | grep -v ': OK$' | sed 's/^/#   /' | head -10
	fi
	find $MNT -type f -exec cat {} + >/dev/null 2>&1 || read_errors=$((read_errors + 1))
	umount $MNT
	repair "round $round"
done
note "crash loop: $ROUNDS rounds, $(wc -l </tmp/durable) fsync'd files, $needed_y repairs needed -y, $read_errors rounds with read errors, $(elapsed $start) s"
check_eq "crash loop: every round mounts without fsck" 0 $remount_bad
check_eq "crash loop: every fsync'd file survives every shutdown" 0 $lost
mount -t vexfs $DISK2 $MNT
check "crash loop: the fsync'd files after all rounds" sh -c "cd / && md5sum -c -s /tmp/durable"
check "umount" umount $MNT
finish
