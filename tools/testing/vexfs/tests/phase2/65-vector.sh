#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Needs: phase1/65-vector
# Vector collections after a reboot: the collection phase 1 left has the same
# statistics, exact results and recall, with the index restored from its saved
# copy (the same HNSW results as before the reboot).
. /vexfs/lib.sh
. /vexfs/tests/vector.inc

LOOP=$(vector_loop)
check "loop device on the end of the disk" test -b "$LOOP"
check "fsck.vexfs clean after the reboot" fsck.vexfs "$LOOP"
mkdir -p $VECTOR_MNT
check "mount" mount -t vexfs "$LOOP" $VECTOR_MNT
check "collection after the reboot, index restored" vexfs-ioctl-test persist-verify $VECTOR_MNT
check "umount" umount $VECTOR_MNT
losetup -d "$LOOP"
finish
