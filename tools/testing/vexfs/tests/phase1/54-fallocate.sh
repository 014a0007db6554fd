#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# fallocate(2): preallocation (with and without FALLOC_FL_KEEP_SIZE),
# PUNCH_HOLE and ZERO_RANGE, at block-aligned and unaligned offsets: the
# contents against a copy edited with dd, the blocks with st_blocks and
# SEEK_DATA/SEEK_HOLE, the refused modes and files, ENOSPC that allocates
# nothing, and all of it again after a remount and a clean fsck (which
# keeps the zeroed blocks preallocated past the end of a file). fsx
# (75-stress) runs the same calls at random against its model.
. /vexfs/lib.sh

check "mkfs.vexfs" mkfs.vexfs -f -q -L falloc $DISK2 64M
mount -t vexfs $DISK2 $MNT
fa() { vexfs-stress falloc "$@"; }
zeroes() { tr -d '\000' <"$1" | wc -c; }
blocks() { stat -c %b "$1"; }

# 1 MiB preallocated: 256 data blocks and one indirect block, all zeroes,
# no hole.
: >$MNT/pre
check_eq "allocate 1 MiB" ok "$(fa $MNT/pre allocate 0 1048576)"
check_eq "allocate: the size grows to the end of the range" 1048576 "$(stat -c %s $MNT/pre)"
check_eq "allocate: 257 blocks (2056 sectors)" 2056 "$(blocks $MNT/pre)"
check_eq "allocate: reads as zeroes" 0 "$(zeroes $MNT/pre)"
check_eq "allocate: SEEK_HOLE finds no hole before the end" 1048576 \
	"$(vexfs-stress seek $MNT/pre hole 0)"

# KEEP_SIZE past the end: the size stays, the blocks are there and read as
# zeroes once a truncation up reaches them.
printf hello >$MNT/keep
check_eq "allocate 64 KiB with KEEP_SIZE" ok "$(fa $MNT/keep keep-size 0 65536)"
check_eq "KEEP_SIZE: the size stays 5" 5 "$(stat -c %s $MNT/keep)"
check_eq "KEEP_SIZE: 16 data blocks and an indirect one (136 sectors)" 136 "$(blocks $MNT/keep)"
check_eq "FIEMAP stops at the end of the file: one block" "0 4096 0x1001" \
	"$(vexfs-stress map $MNT/keep | grep ^extent | cut -d' ' -f2,4,5)"
: >$MNT/keep0
check_eq "KEEP_SIZE on an empty file" ok "$(fa $MNT/keep0 keep-size 0 8192)"
check_eq "FIEMAP of an empty file with preallocated blocks: none" "" \
	"$(vexfs-stress map $MNT/keep0 | grep ^extent)"
check_eq "SEEK_DATA of it: ENXIO" ENXIO "$(vexfs-stress seek $MNT/keep0 data 0)"

# Random data, then a hole punched at unaligned offsets 102500..700000.
dd if=/dev/urandom of=/tmp/rand bs=65536 count=16 2>/dev/null
cp /tmp/rand $MNT/punch
cp /tmp/rand /tmp/punch
dd if=/dev/zero of=/tmp/punch bs=100 seek=1025 count=5975 conv=notrunc 2>/dev/null
check_eq "punch 102500..700000" ok "$(fa $MNT/punch punch 102500 597500)"
check "punch: the range reads as zeroes, the rest as written" cmp $MNT/punch /tmp/punch
check_eq "punch: the size stays" 1048576 "$(stat -c %s $MNT/punch)"
check_eq "punch: the 144 whole blocks 26..169 are freed" 904 "$(blocks $MNT/punch)"
check_eq "punch: SEEK_DATA from block 26 finds block 170" 696320 \
	"$(vexfs-stress seek $MNT/punch data 106496)"
check_eq "punch: SEEK_HOLE finds block 26" 106496 "$(vexfs-stress seek $MNT/punch hole 0)"
check_eq "punch the hole again: nothing changes" ok "$(fa $MNT/punch punch 102500 597500)"
check_eq "punch past the end of the file: the size stays" ok \
	"$(fa $MNT/punch punch 1000000 4000000)"
dd if=/dev/zero of=/tmp/punch bs=64 seek=15625 count=759 conv=notrunc 2>/dev/null
check "punch past the end: zeroes up to the end" cmp $MNT/punch /tmp/punch
check_eq "punch past the end: blocks 245..255 freed too" 816 "$(blocks $MNT/punch)"

# ZERO_RANGE at unaligned offsets 50000..250000 keeps the blocks; past the
# end without KEEP_SIZE it grows the file.
cp /tmp/rand $MNT/zero
cp /tmp/rand /tmp/zero
dd if=/dev/zero of=/tmp/zero bs=100 seek=500 count=2000 conv=notrunc 2>/dev/null
check_eq "zero 50000..250000" ok "$(fa $MNT/zero zero 50000 200000)"
check "zero: the range reads as zeroes, the rest as written" cmp $MNT/zero /tmp/zero
check_eq "zero: the blocks stay (2056 sectors)" 2056 "$(blocks $MNT/zero)"
check_eq "zero: no hole" 1048576 "$(vexfs-stress seek $MNT/zero hole 0)"
check_eq "zero 1000000..1200000: grows the file" ok "$(fa $MNT/zero zero 1000000 200000)"
dd if=/dev/zero of=/tmp/zero bs=100 seek=10000 count=2000 conv=notrunc 2>/dev/null
check "zero past the end: zeroes up to the new end" cmp $MNT/zero /tmp/zero
check_eq "zero with KEEP_SIZE past the end: the size stays" ok \
	"$(fa $MNT/zero zero-keep 1100000 400000)"
check_eq "zero with KEEP_SIZE: size 1200000" 1200000 "$(stat -c %s $MNT/zero)"
check "zero with KEEP_SIZE: the contents as before" cmp $MNT/zero /tmp/zero

# What is refused.
check_eq "COLLAPSE_RANGE: EOPNOTSUPP" EOPNOTSUPP "$(fa $MNT/pre collapse 0 4096)"
check_eq "INSERT_RANGE: EOPNOTSUPP" EOPNOTSUPP "$(fa $MNT/pre insert 0 4096)"
check_eq "PUNCH_HOLE without KEEP_SIZE: EOPNOTSUPP (the VFS)" EOPNOTSUPP \
	"$(fa $MNT/pre punch-no-keep 0 4096)"
check_eq "a zero length: EINVAL (the VFS)" EINVAL "$(fa $MNT/pre allocate 0 0)"
cp /tmp/rand $MNT/immutable
check "chattr +i" vexfs-ioctl-test chattr $MNT/immutable 16
check_eq "an immutable file: EPERM (at the open for writing)" "open: EPERM" \
	"$(fa $MNT/immutable punch 0 4096)"
check "chattr -i" vexfs-ioctl-test chattr $MNT/immutable 0
cp /tmp/rand $MNT/append
check "chattr +a" vexfs-ioctl-test chattr $MNT/append 32
check_eq "append-only: punching a hole is EPERM" EPERM \
	"$(fa $MNT/append append-punch 0 4096)"
check_eq "append-only: allocating past the end with KEEP_SIZE works" ok \
	"$(fa $MNT/append append-keep-size 1048576 8192)"
check "chattr -a" vexfs-ioctl-test chattr $MNT/append 0
check "create a collection" vexctl create $MNT/coll --dim 4
check_eq "a collection: EPERM" EPERM "$(fa $MNT/coll allocate 0 4096)"

# ENOSPC before anything is allocated.
free=$(stat -f -c %f $MNT)
: >$MNT/huge
check_eq "allocate more than is free: ENOSPC" ENOSPC "$(fa $MNT/huge allocate 0 104857600)"
check_eq "ENOSPC: no block allocated" "$free" "$(stat -f -c %f $MNT)"
check_eq "ENOSPC: the size stays 0" 0 "$(stat -c %s $MNT/huge)"

umount $MNT
check "fsck.vexfs: clean (preallocated blocks past the end kept)" fsck.vexfs -n $DISK2
mount -t vexfs $DISK2 $MNT
check "after a remount: the punched file" cmp $MNT/punch /tmp/punch
check "after a remount: the zeroed file" cmp $MNT/zero /tmp/zero
check_eq "after a remount: the punched blocks stay free" 816 "$(blocks $MNT/punch)"
check_eq "after a remount: the KEEP_SIZE blocks are there" 136 "$(blocks $MNT/keep)"
dd if=/dev/zero of=$MNT/keep bs=1 seek=65536 count=0 2>/dev/null
check_eq "truncate up over preallocated blocks: zeroes after hello" 5 "$(zeroes $MNT/keep)"
check_eq "truncate up: the first 5 bytes" hello "$(head -c 5 $MNT/keep)"
check_eq "truncate up: no block added" 136 "$(blocks $MNT/keep)"
rm $MNT/pre $MNT/punch $MNT/zero $MNT/keep $MNT/keep0 $MNT/immutable $MNT/append $MNT/huge
umount $MNT
check "fsck.vexfs: clean after removing the files" fsck.vexfs -n $DISK2
finish
