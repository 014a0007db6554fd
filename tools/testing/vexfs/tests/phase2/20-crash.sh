#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Needs: phase1/99-crash
# Crash, part 2: after the crash at the end of phase 1 (see
# phase1/99-crash.sh), the file system mounts and every file that was made
# durable (fsync, sync) is intact.
#
# VexFS has no journal: after a crash, fsck.vexfs may find blocks or inodes
# marked in use that nothing references any more (leaks: exit status 4) and
# free counts that disagree, but it must not find damage to what was made
# durable: the checks below read every durable file and its manifest. Then
# fsck.vexfs -p, as a boot script runs it, repairs the rest.
. /vexfs/lib.sh

fsck.vexfs $DISK2 >/tmp/fsck.out 2>&1
rc=$?
note "fsck.vexfs after the crash: exit $rc"
cp /tmp/fsck.out /tmp/fsck.crash
sed 's/^/# /' /tmp/fsck.out | head -20
case $rc in
0 | 4) ok "fsck.vexfs after the crash: clean or problems to repair (0 or 4), exit $rc" ;;
*) fail "fsck.vexfs after the crash: exit $rc" ;;
esac
check "the file system is marked as not cleanly unmounted" \
	grep -q "not cleanly unmounted" /tmp/fsck.out
# What a boot script does after a crash: fsck -p, the repairs that lose
# nothing. Without a journal a crash can also leave what only -y repairs (a
# block freed and reused by another file before the first file's inode was
# written): noted, then repaired with -y.
fsck.vexfs -p $DISK2 >/tmp/fsck.out 2>&1
rc=$?
sed 's/^/# /' /tmp/fsck.out | head -20
case $rc in
0 | 1) ok "fsck.vexfs -p repairs what the crash left, exit $rc" ;;
4)
	ok "fsck.vexfs -p repairs what it can, exit 4"
	fsck.vexfs -y $DISK2 >/tmp/fsck.out 2>&1
	note "fsck.vexfs -p left problems for -y; -y: exit $?"
	sed 's/^/# /' /tmp/fsck.out | head -20
	;;
*) fail "fsck.vexfs -p repairs what the crash left: exit $rc" ;;
esac
fsck.vexfs -n $DISK2 >/tmp/fsck.out 2>&1
rc=$?
sed 's/^/# /' /tmp/fsck.out | head -20
check_eq "fsck.vexfs -n is clean after the repair" 0 $rc
check "mount after the crash" mount -t vexfs $DISK2 $MNT
check_eq "the manifest of durable files is intact" 12 "$(wc -l <$MNT/durable.md5)"
if (cd $MNT/durable && md5sum -c $MNT/durable.md5) >/tmp/md5.out 2>&1; then
	ok "every fsync'd and sync'd file is intact"
else
	fail "every fsync'd and sync'd file is intact"
	grep -v ': OK$' /tmp/md5.out | sed 's/^/# /'
fi
check_eq "the symlink written before sync" s1 "$(readlink $MNT/durable/synced/link)"
# What fsck.vexfs found concerns none of the durable files.
bad=
for ino in $(find $MNT/durable $MNT/durable.md5 -exec stat -c %i {} +); do
	grep -qE "(inode|directory) $ino([^0-9]|$)" /tmp/fsck.crash && bad="$bad $ino"
done
check_eq "fsck.vexfs found no problem in a durable file or directory" "" "$bad"
# Whatever survived of the rest reads without errors or oopses.
check "ls -lR of everything" sh -c "ls -lR $MNT >/dev/null"
check "reading every file" sh -c "find $MNT -type f -exec cat {} + >/dev/null"
note "survivors: $(ls $MNT/volatile 2>/dev/null | tr '\n' ' ')"
# The collection: durable changes kept, searches agree with its records.
check "collection after the crash" vexfs-ioctl-test crash-verify $MNT/vectors
# The file system stays usable: remove everything, write again.
check "rm -rf of everything" rm -rf $MNT/durable $MNT/volatile $MNT/durable.md5 $MNT/vectors
echo after >$MNT/after
check_eq "writing after the crash" after "$(cat $MNT/after)"
check "umount" umount $MNT
fsck.vexfs $DISK2 >/tmp/fsck.out 2>&1
rc=$?
sed 's/^/# /' /tmp/fsck.out | head -20
check_eq "fsck.vexfs is clean after cleaning up" 0 $rc
finish
