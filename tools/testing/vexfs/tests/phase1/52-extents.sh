#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Extents of sparse files: SEEK_DATA/SEEK_HOLE and FIEMAP (through iomap)
# report the data of the direct, indirect and double-indirect parts of the
# block map and the holes between them, the same before and after a
# remount; vexfs-stress map checks that both agree. fsx (75-stress) checks
# them against its model after random writes, truncates and mmap writes.
. /vexfs/lib.sh

check "mkfs.vexfs" mkfs.vexfs -f -q -L extents $DISK2 64M
mount -t vexfs $DISK2 $MNT
f=$MNT/sparse
# Block 0 (direct), blocks 256-257 (indirect), block 5000 (double
# indirect), then a hole to 40 MiB + 100 bytes.
dd if=/dev/urandom of=$f bs=4096 count=1 2>/dev/null
dd if=/dev/urandom of=$f bs=4096 seek=256 count=2 conv=notrunc 2>/dev/null
dd if=/dev/urandom of=$f bs=4096 seek=5000 count=1 conv=notrunc 2>/dev/null
dd if=/dev/zero of=$f bs=1 seek=41943140 count=0 2>/dev/null
want="data 0 4096
data 1048576 1056768
data 20480000 20484096"
# extent LOGICAL PHYSICAL LENGTH FLAGS: MERGED (0x1000), and LAST (0x1).
want_ext="0 4096 0x1000
1048576 8192 0x1000
20480000 4096 0x1001"
map() {
	vexfs-stress map $f >/tmp/map.out 2>&1 || cat /tmp/map.out
	grep ^data /tmp/map.out
}
check_eq "SEEK_DATA/SEEK_HOLE: three data ranges in a 40 MiB file" "$want" "$(map)"
check_eq "FIEMAP: the same three extents, the last one LAST" "$want_ext" \
	"$(grep ^extent /tmp/map.out | cut -d' ' -f2,4,5)"
check_eq "SEEK_HOLE from 0: the end of the first block" 4096 \
	"$(vexfs-stress seek $f hole 0)"
check_eq "SEEK_DATA in the trailing hole: ENXIO" ENXIO \
	"$(vexfs-stress seek $f data 20484096)"
check_eq "SEEK_HOLE in the trailing hole: the offset itself" 30000000 \
	"$(vexfs-stress seek $f hole 30000000)"

# A file written through mmap only: its blocks exist once written back,
# which SEEK_DATA waits for.
dd if=/dev/zero of=$MNT/mapped bs=4096 seek=8 count=0 2>/dev/null
check "write block 3 through mmap" vexfs-stress mmap-write $MNT/mapped 12288
check_eq "SEEK_DATA finds the block written through mmap" 12288 \
	"$(vexfs-stress seek $MNT/mapped data 0)"

: >$MNT/empty
check_eq "an empty file: no data, no extent" "" "$(vexfs-stress map $MNT/empty | grep -v ^map)"

umount $MNT
check "fsck.vexfs: clean" fsck.vexfs -n $DISK2
mount -t vexfs $DISK2 $MNT
check_eq "after a remount: the same data ranges" "$want" "$(map)"
check_eq "after a remount: the same extents" "$want_ext" \
	"$(grep ^extent /tmp/map.out | cut -d' ' -f2,4,5)"
umount $MNT
finish
