#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Inode flags (FS_IOC_GETFLAGS/SETFLAGS, what chattr and lsattr use):
# vexfs-ioctl-test checks that they are kept, refused when unknown, inherited
# and enforced on files, directories and collections; here, that they
# survive a remount, that fsck.vexfs accepts them, and noatime.
. /vexfs/lib.sh

# FS_*_FL: sync 8, immutable 16, nodump 64, noatime 128.
check "mkfs.vexfs" mkfs.vexfs -f -q -L chattr $DISK2 32M
mount -t vexfs $DISK2 $MNT
mkdir $MNT/ct
check "chattr flags (vexfs-ioctl-test)" vexfs-ioctl-test chattr $MNT/ct

# noatime: under relatime a first read of a new file sets its atime; not
# with chattr +A.
echo a >$MNT/ct/plain
echo a >$MNT/ct/noatime
check "chattr +A" vexfs-ioctl-test chattr $MNT/ct/noatime 128
before_plain=$(stat -c %X $MNT/ct/plain)
before_noatime=$(stat -c %X $MNT/ct/noatime)
sleep 2
cat $MNT/ct/plain $MNT/ct/noatime >/dev/null
check_eq "noatime: a read leaves the atime" "$before_noatime" "$(stat -c %X $MNT/ct/noatime)"
if [ "$(stat -c %X $MNT/ct/plain)" != "$before_plain" ]; then
	ok "without noatime the same read sets the atime"
else
	fail "without noatime the same read sets the atime"
fi
umount $MNT
check "fsck.vexfs: clean with inode flags" fsck.vexfs -n $DISK2

mount -t vexfs $DISK2 $MNT
check_eq "after a remount: sync, nodump, noatime kept" 200 "$(vexfs-ioctl-test lsattr $MNT/ct/kept)"
check_eq "after a remount: immutable kept" 16 "$(vexfs-ioctl-test lsattr $MNT/ct/frozen)"
check_eq "after a remount: an immutable file reads" frozen "$(cat $MNT/ct/frozen)"
check_fails "after a remount: an immutable file cannot be removed" rm -f $MNT/ct/frozen
check_fails "after a remount: an immutable file cannot be written" sh -c "echo x >>$MNT/ct/frozen"
check "chattr -i" vexfs-ioctl-test chattr $MNT/ct/frozen 0
check "then it can be removed" rm $MNT/ct/frozen
umount $MNT
check "fsck.vexfs: clean at the end" fsck.vexfs -n $DISK2
finish
