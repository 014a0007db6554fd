#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# O_DIRECT through iomap: vexfs-stress dio checks direct writes past the
# end, into holes and over existing blocks, sector-aligned I/O, refused
# misaligned I/O, reads across the end and of holes, and coherence with
# buffered and mmap writes, against a model; then prints direct and
# buffered throughput (a note, never asserted).
. /vexfs/lib.sh

check "mkfs.vexfs" mkfs.vexfs -f -q -L dio $DISK2 128M
mount -t vexfs $DISK2 $MNT
if vexfs-stress dio $MNT/dio.file 32 >/tmp/dio.out 2>&1; then
	ok "direct I/O: writes, reads and coherence as the model says"
	note "$(tail -1 /tmp/dio.out)"
else
	cat /tmp/dio.out
	fail "direct I/O: writes, reads and coherence as the model says"
fi
dd if=/dev/urandom of=$MNT/plain bs=4096 count=16 2>/dev/null
check_eq "a file written by dd reads back the same with O_DIRECT" \
	"$(md5sum <$MNT/plain)" "$(dd if=$MNT/plain bs=4096 iflag=direct 2>/dev/null | md5sum)"
umount $MNT
check "fsck.vexfs: clean after direct I/O" fsck.vexfs -n $DISK2
finish
