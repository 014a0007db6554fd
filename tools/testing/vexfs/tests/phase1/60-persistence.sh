#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Persistence, part 1: write a tree of files of every shape (empty, around a
# block, direct, indirect, double and triple indirect, sparse), directories,
# symbolic and hard links; check it after umount + mount. Phase 2 checks it
# again after a reboot.
. /vexfs/lib.sh
. /vexfs/tests/persist.inc

check "mkfs.vexfs (${PERSIST_MIB} MiB of the disk)" mkfs.vexfs -f -q -L persist $DISK1 ${PERSIST_MIB}M
check "mount" mount -t vexfs $DISK1 $MNT
T=$MNT/tree
mkdir -p $T/sizes $T/sparse $T/deep/a/b/c/d/e/f/g $T/links $T/many $T/modes

# Files around block and block-map boundaries (12 direct blocks, then 1024
# per indirect block).
for n in 0 1 511 4095 4096 4097 8191 8192 49151 49152 49153 4243456 4243457; do
	head -c $n /dev/urandom >$T/sizes/s$n
done
dd if=/dev/urandom of=/tmp/six bs=1024 count=6147 2>/dev/null
cp /tmp/six $T/sizes/double-indirect
check_eq "a 6 MiB file (double indirect) reads back before remount" \
	"$(md5sum </tmp/six)" "$(md5sum <$T/sizes/double-indirect)"

# Sparse files: data blocks in the direct, indirect, double and triple
# indirect ranges, holes between them.
truncate -s 100M $T/sparse/holes
for blk in 3 700 5000 20000; do
	dd if=/dev/urandom of=$T/sparse/holes bs=4096 seek=$blk count=1 conv=notrunc 2>/dev/null
done
: >$T/sparse/triple
for blk in 0 1049611 1049612 1100000; do
	echo "block $blk" | dd of=$T/sparse/triple bs=4096 seek=$blk conv=notrunc 2>/dev/null
done
truncate -s 200M $T/sparse/only-hole
check "a sparse file with a block past 4 GiB (triple indirect) allocates few blocks" \
	[ "$(stat -c %b $T/sparse/triple)" -lt 100 ]
check_eq "a block past 4 GiB reads back" "block 1100000" \
	"$(dd if=$T/sparse/triple bs=4096 skip=1100000 count=1 2>/dev/null | tr -d '\000')"

# Directories: deep, and one spanning several blocks.
for d in a b c d e f g; do
	echo "in $d" >$T/deep/$d.txt
done
i=0
while [ $i -lt 300 ]; do
	echo "many $i" >$T/many/a-rather-long-file-name-to-fill-directory-blocks-$i
	i=$((i + 1))
done

# Links.
echo "shared" >$T/links/target
ln $T/links/target $T/links/hard1
ln $T/links/target $T/deep/a/hard2
ln -s target $T/links/sym
ln -s ../deep/a/b $T/links/sym-dir
ln -s /does/not/exist $T/links/dangling
long=$(printf 'x%.0s' $(seq 1 1000))
ln -s "$long" $T/links/long-target
check_eq "hard links share one inode with 3 links" "3 $(stat -c %i $T/links/target)" \
	"$(stat -c %h $T/links/hard1) $(stat -c %i $T/deep/a/hard2)"

# Modes and owners; renames; files created and deleted.
for m in 600 644 755 1777 4755; do
	echo $m >$T/modes/m$m
	chmod $m $T/modes/m$m
done
mkdir $T/modes/dir700 && chmod 700 $T/modes/dir700
echo owned >$T/modes/owned && chown 1000:2000 $T/modes/owned
echo "renamed" >$T/before-rename && mv $T/before-rename $T/deep/a/b/after-rename
mkdir $T/gone && echo x >$T/gone/x && rm -r $T/gone
echo x >$T/many/deleted && rm $T/many/deleted

manifest >$MNT/MANIFEST
check_eq "the tree has $PERSIST_ENTRIES entries" $PERSIST_ENTRIES "$(wc -l <$MNT/MANIFEST)"
# The second copy, raw on the disk past the file system.
dd if=/dev/zero of=$DISK1 bs=1M seek=$MANIFEST_SEEK count=1 conv=notrunc 2>/dev/null
dd if=$MNT/MANIFEST of=$DISK1 bs=1M seek=$MANIFEST_SEEK conv=notrunc 2>/dev/null
sync
check_tree "before umount"

check "umount" umount $MNT
drop_caches
check "fsck.vexfs clean" fsck.vexfs $DISK1
check "mount again" mount -t vexfs $DISK1 $MNT
check_tree "after umount + mount"
check_eq "the 6 MiB file still matches its source" "$(md5sum </tmp/six)" \
	"$(md5sum <$T/sizes/double-indirect)"
check "umount" umount $MNT
check "fsck.vexfs clean, left for phase 2" fsck.vexfs $DISK1
finish
