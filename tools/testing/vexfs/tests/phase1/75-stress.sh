#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Torture testers of our own (vexfs-stress): fsstress (concurrent processes, each
# checking its subtree against an exact model, plus a shared directory), fsx (one
# file against a byte-exact copy, with mmap, O_DIRECT and fallocate, and its extents), and a
# fuzzer of the vector ioctls whose collections are checked against their owners'
# models at the end; fsck after each clean unmount.
#
# Knobs (environment, e.g. for a longer `make torture`):
#   VEXFS_STRESS_OPS=N      fsstress operations per process (default 800)
#   VEXFS_STRESS_PROCS=N    fsstress processes (default 4)
#   VEXFS_FSX_OPS=N         fsx operations (default 3000)
#   VEXFS_FUZZ_CALLS=N      ioctl-fuzz calls in all (default 8000)
#   VEXFS_STRESS_SEED=S     the seed of all three (default: random); a failure
#                           replays with the same seed and counts
#   VEXFS_STRESS_LIMIT=SEC  each tester's own watchdog (default 400)
. /vexfs/lib.sh

OPS=${VEXFS_STRESS_OPS:-800}
PROCS=${VEXFS_STRESS_PROCS:-4}
FSX_OPS=${VEXFS_FSX_OPS:-3000}
CALLS=${VEXFS_FUZZ_CALLS:-8000}
SEED=${VEXFS_STRESS_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
# Each tester's own watchdog, below the one of the test script.
LIMIT=${VEXFS_STRESS_LIMIT:-400}
note "seed $SEED (replay: VEXFS_STRESS_SEED=$SEED VEXFS_STRESS_OPS=$OPS" \
	"VEXFS_FSX_OPS=$FSX_OPS VEXFS_FUZZ_CALLS=$CALLS)"

# stress NAME ARGS...: runs vexfs-stress; its summary (or, if it fails, the end
# of its output: the seed, the failing operation and the ones before it) as notes.
stress() {
	_name=$1
	_log=/tmp/stress-$_name.log
	_start=$(now)
	vexfs-stress "$@" >$_log 2>&1
	_st=$?
	if [ $_st -eq 0 ]; then
		grep -v '^seed ' $_log | tail -n 12 | sed 's/^/# /'
	else
		tail -n 60 $_log | sed 's/^/# /'
	fi
	note "vexfs-stress $_name: $(elapsed $_start) s, exit $_st"
	return $_st
}

check "mkfs.vexfs" mkfs.vexfs -f -q -L stress $DISK2
check "mount" mount -t vexfs $DISK2 $MNT

check "fsstress: $PROCS processes x $OPS operations, model exact" \
	stress fsstress $MNT/fsstress --procs $PROCS --ops $OPS --seed $SEED --timeout $LIMIT
check "umount after fsstress" umount $MNT
check "fsck.vexfs clean after fsstress" fsck.vexfs $DISK2
check "mount again" mount -t vexfs $DISK2 $MNT
# Everything fsstress left must still be readable after the remount.
check "every file fsstress left readable after remount" \
	sh -c "find $MNT/fsstress -type f -exec cat {} + >/dev/null"
check "fsstress trees removable" rm -rf $MNT/fsstress

check "fsx: $FSX_OPS operations with fallocate, byte-exact, extents as SEEK_DATA and FIEMAP say" \
	stress fsx $MNT/fsx.file --ops $FSX_OPS --seed $SEED --timeout $LIMIT --extents 1 --direct 1 --falloc 1
rm -f $MNT/fsx.file

check "ioctl-fuzz: $CALLS calls from 3 processes, collections consistent" \
	stress ioctl-fuzz $MNT/fuzz --procs 3 --calls $CALLS --collections 4 --seed $SEED \
	--timeout $LIMIT
check "umount after the fuzz" umount $MNT
check "fsck.vexfs clean after the fuzz" fsck.vexfs $DISK2
finish
