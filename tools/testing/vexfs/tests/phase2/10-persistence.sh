#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Needs: phase1/60-persistence
# Persistence, part 2: after a reboot, the tree phase 1 wrote is intact.
. /vexfs/lib.sh
. /vexfs/tests/persist.inc

check "fsck.vexfs clean after the reboot" fsck.vexfs $DISK1
check "mount" mount -t vexfs $DISK1 $MNT
check_tree "after a reboot"
check_eq "triple indirect block after a reboot" "block 1049612" \
	"$(dd if=$MNT/tree/sparse/triple bs=4096 skip=1049612 count=1 2>/dev/null | tr -d '\000')"
# Still writable: change the tree, then remove it all.
echo more >>$MNT/tree/links/hard1
check_eq "append through a hard link" "shared
more" "$(cat $MNT/tree/deep/a/hard2)"
rm -rf $MNT/tree $MNT/MANIFEST
check_eq "everything removed" "" "$(ls -A $MNT)"
check_eq "every inode free" "$(($(stat -f -c %c $MNT) - 1))" "$(stat -f -c %d $MNT)"
check "umount" umount $MNT
check "fsck.vexfs clean after removing the tree" fsck.vexfs $DISK1
finish
