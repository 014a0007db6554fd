#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# A file larger than the VM's memory (512 MiB): written with a reproducible
# pattern, read back from the disk after dropping the page cache, compared
# by checksum. Rates are printed as notes, never asserted.
. /vexfs/lib.sh

# 44 copies of a 16 MiB chunk: 704 MiB.
COPIES=44
CHUNK=$((16 << 20))
MIB=$((COPIES * 16))
check "mkfs.vexfs" mkfs.vexfs -f -q -L big $DISK1
check "mount" mount -t vexfs $DISK1 $MNT

# pattern: COPIES copies of a random chunk, each headed by its number. The
# period (CHUNK + 16 bytes) is no multiple of the block size, and blocks
# repeat only 4096 periods apart, beyond the end: a block read from the wrong
# place does not match. Few large copies keep the shell's forks out of the
# measured rate.
dd if=/dev/urandom of=/tmp/chunk bs=1M count=$((CHUNK >> 20)) 2>/dev/null
pattern() {
	i=0
	while [ $i -lt $COPIES ]; do
		printf '%016d' $i
		cat /tmp/chunk
		i=$((i + 1))
	done
}

# Raw rates, for the notes: 128 MiB written with fsync, read back cold.
start=$(now)
dd if=/dev/zero of=$MNT/zero bs=1M count=128 conv=fsync 2>/dev/null
note "dd write of 128 MiB (conv=fsync): $(elapsed $start) s: $(rate 128 $start) MiB/s"
drop_caches
start=$(now)
dd if=$MNT/zero of=/dev/null bs=1M 2>/dev/null
note "dd read of 128 MiB (cold cache): $(elapsed $start) s: $(rate 128 $start) MiB/s"
rm $MNT/zero

# The checksum and the file each from a pipe of their own: busybox tee moves
# a few KiB per read, and pattern | tee | md5sum ran at 3.5 MiB/s under TCG
# (dd from a pipe writes up to a pipe's 64 KiB at a time).
sum=$(pattern | md5sum)
start=$(now)
pattern | dd of=$MNT/big bs=1M 2>/dev/null
sync
note "wrote $MIB MiB (dd from a pipe, then sync) in $(elapsed $start) s: $(rate $MIB $start) MiB/s"
size=$((COPIES * (CHUNK + 16)))
check_eq "size" $size "$(stat -c %s $MNT/big)"
check "blocks allocated cover the size" [ $(($(stat -c %b $MNT/big) * 512)) -ge $size ]
free=$(stat -f -c %f $MNT)

drop_caches
start=$(now)
check_eq "read back from the disk: same checksum" "$sum" "$(md5sum <$MNT/big)"
note "read $MIB MiB (md5sum) in $(elapsed $start) s: $(rate $MIB $start) MiB/s"

# Overwrite a range in the middle and check just it and the total.
dd if=/dev/urandom of=/tmp/patch bs=4096 count=33 2>/dev/null
dd if=/tmp/patch of=$MNT/big bs=4096 seek=100000 conv=notrunc,fsync 2>/dev/null
drop_caches
check_eq "an overwrite in the middle reads back" "$(md5sum </tmp/patch)" \
	"$(dd if=$MNT/big bs=4096 skip=100000 count=33 2>/dev/null | md5sum)"
check_eq "the overwrite allocated nothing" "$free" "$(stat -f -c %f $MNT)"
# Block 99999 lies within one copy of the chunk: past the copy's header.
off=$((99999 * 4096 % (CHUNK + 16) - 16))
check_eq "the block before it is untouched" \
	"$(tail -c +$((off + 1)) /tmp/chunk | head -c 4096 | md5sum)" \
	"$(dd if=$MNT/big bs=4096 skip=99999 count=1 2>/dev/null | md5sum)"

umount $MNT
check "fsck.vexfs clean" fsck.vexfs $DISK1
mount -t vexfs $DISK1 $MNT
truncate -s 1000000 $MNT/big
check_eq "truncating to 1 MB keeps the head" \
	"$(pattern | head -c 1000000 | md5sum)" "$(md5sum <$MNT/big)"
rm $MNT/big
umount $MNT
check "fsck.vexfs clean after truncate and unlink" fsck.vexfs $DISK1
finish
