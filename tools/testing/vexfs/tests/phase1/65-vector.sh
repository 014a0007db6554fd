#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Vector collections: exact search against a binary64 brute force within the
# documented error bound (every metric, f32 and i8), HNSW recall, delete,
# rebuild, compaction, upsert, statistics, and every rejection path of the
# ioctls; the index budget and the shrinker; the saved index across a remount,
# damaged and stale saved indexes.
# Leaves a collection that phase 2 checks after the reboot.
. /vexfs/lib.sh
. /vexfs/tests/vector.inc

LOOP=$(vector_loop)
check "loop device on the end of the disk" test -b "$LOOP"
check "mkfs.vexfs" mkfs.vexfs -f -q -L vector "$LOOP"
mkdir -p $VECTOR_MNT
check "mount" mount -t vexfs "$LOOP" $VECTOR_MNT
D=$VECTOR_MNT/scratch
mkdir -p $D
check "exact search matches the binary64 reference" vexfs-ioctl-test exact $D
check "HNSW recall@10 >= 0.95 (L2, IP, cosine)" vexfs-ioctl-test recall $D
check "delete, rebuild, compaction, statistics" vexfs-ioctl-test delete $D
check "malformed requests get the right errno" vexfs-ioctl-test errors $D
check "damaged collection files are refused" vexfs-ioctl-test corrupt $D
check "searches in parallel with changes" vexfs-ioctl-test concurrent $D
check "batch search and get by id" vexfs-ioctl-test batch $D
check "filtered search by id range and allow-list" vexfs-ioctl-test filter $D
check "upsert replaces vectors; an interrupted one resolves to the later record" \
	vexfs-ioctl-test upsert $D
rm -rf $D
check "umount" umount $VECTOR_MNT
check "mount with index_budget=2m" mount -t vexfs -o index_budget=2m "$LOOP" $VECTOR_MNT
mkdir -p $D
check "index budget and shrinker: LRU drop, restore, drop_caches, ENOMEM" \
	vexfs-ioctl-test budget $D
rm -rf $D
check "umount" umount $VECTOR_MNT
check "mount" mount -t vexfs "$LOOP" $VECTOR_MNT
check "collection for phase 2" vexfs-ioctl-test persist-write $VECTOR_MNT
mkdir -p $VECTOR_MNT/saved
check "saved indexes, damaged and stale" vexfs-ioctl-test saved-write $VECTOR_MNT/saved
check "umount" umount $VECTOR_MNT
check "fsck.vexfs clean" fsck.vexfs "$LOOP"
check "mount again" mount -t vexfs "$LOOP" $VECTOR_MNT
check "collection after remount, index restored" vexfs-ioctl-test persist-verify $VECTOR_MNT
check "damaged saved indexes rebuilt, stale one brought up to date" \
	vexfs-ioctl-test saved-verify $VECTOR_MNT/saved
rm -rf $VECTOR_MNT/saved
check "umount" umount $VECTOR_MNT
losetup -d "$LOOP"
finish
