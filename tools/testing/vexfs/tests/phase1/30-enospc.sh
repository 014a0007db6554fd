#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Running out of space: filling the small disk with one big file, with many
# files, and running out of inodes all fail with ENOSPC (never EIO or an
# oops), keep what was written before intact, and give every block back on
# deletion.
. /vexfs/lib.sh

ENOSPC_MSG="No space left on device"

# free_blocks: free blocks of the mounted file system, from statfs(2).
free_blocks() {
	stat -f -c %f $MNT
}
free_inodes() {
	stat -f -c %d $MNT
}

check "mkfs.vexfs" mkfs.vexfs -f -q -L enospc $DISK2
check "mount" mount -t vexfs $DISK2 $MNT
total=$(stat -f -c %b $MNT)
note "$total blocks of 4 KiB, $(free_blocks) free, $(free_inodes) free inodes"

# Known data first.
dd if=/dev/urandom of=/tmp/known bs=1024 count=5000 2>/dev/null
mkdir $MNT/keep
cp /tmp/known $MNT/keep/big
for i in 1 2 3 4 5 6 7 8; do
	dd if=/dev/urandom of=/tmp/small$i bs=100 count=$((i * 7)) 2>/dev/null
	cp /tmp/small$i $MNT/keep/small$i
done
(cd /tmp && md5sum known small*) | sed 's/known/big/' >/tmp/keep.md5
# A sparse file, for a write through mmap into a hole once the disk is full.
dd if=/dev/zero of=$MNT/holes bs=1 seek=1048576 count=0 2>/dev/null
sync
free_before=$(free_blocks)
inodes_before=$(free_inodes)

# keep_intact WHEN: everything written first is still there.
keep_intact() {
	if (cd $MNT/keep && md5sum -c -s /tmp/keep.md5); then
		ok "data written before is intact $1"
	else
		fail "data written before is intact $1"
	fi
}

# 1. One big file until the disk is full.
start=$(now)
dd if=/dev/zero of=$MNT/fill bs=1M 2>/tmp/dd.err
rc=$?
note "filled $(($(stat -c %s $MNT/fill) / 1048576)) MiB in $(elapsed $start) s"
check "dd of a file larger than the disk fails" [ $rc -ne 0 ]
case "$(cat /tmp/dd.err)" in
*"$ENOSPC_MSG"*) ok "the error is ENOSPC" ;;
*) fail "the error is ENOSPC: $(cat /tmp/dd.err)" ;;
esac
check "the partial file is as large as the free space" \
	[ $(($(stat -c %s $MNT/fill) / 4096)) -gt $((free_before - 200)) ]
# An indirect block allocated for the data block that did not fit is given
# back: at most one block may stay free.
check "no block is free (statfs)" [ "$(free_blocks)" -le 1 ]
check "no space is available (df)" [ "$(df -k $MNT | awk 'NR == 2 { print $4 }')" -le 4 ]
if echo more >>$MNT/keep/small1 2>/tmp/sh.err; then
	# The last block of small1 had room: appending needs no new block.
	check_eq "an append within the last block still works" "$(cat /tmp/small1; echo more)" \
		"$(cat $MNT/keep/small1)"
	truncate -s $(stat -c %s /tmp/small1) $MNT/keep/small1
else
	fail "an append within the last block works ($(cat /tmp/sh.err))"
fi
if dd if=/dev/zero of=$MNT/keep/big bs=4096 count=1 seek=100000 conv=notrunc 2>/tmp/dd.err; then
	fail "extending a file when full fails"
else
	case "$(cat /tmp/dd.err)" in
	*"$ENOSPC_MSG"*) ok "extending a file when full fails with ENOSPC" ;;
	*) fail "extending a file when full fails with ENOSPC: $(cat /tmp/dd.err)" ;;
	esac
fi
check_eq "the failed extension left the size alone" 5120000 "$(stat -c %s $MNT/keep/big)"
# Creating may still work (an inode and room in the directory block), but
# writing data may not.
if sh -c "echo x >$MNT/newfile" 2>/tmp/sh.err; then
	fail "writing a new file when full fails"
else
	case "$(cat /tmp/sh.err)" in
	*"$ENOSPC_MSG"*) ok "writing a new file when full fails with ENOSPC" ;;
	*) fail "writing a new file when full fails with ENOSPC: $(cat /tmp/sh.err)" ;;
	esac
fi
rm -f $MNT/newfile
# The write fault allocates the page's block (and here an indirect block):
# a full disk fails it (SIGBUS), instead of the writeback of a page the
# writer thinks written.
check_fails "a write through mmap into a hole when full fails at the fault" \
	vexfs-stress mmap-write $MNT/holes 1044480
check_eq "and the hole stays a hole" ENXIO "$(vexfs-stress seek $MNT/holes data 0)"
n=0 err=
while [ $n -lt 2000 ]; do
	if ! mkdir $MNT/d$n 2>/tmp/sh.err; then
		err=$(cat /tmp/sh.err)
		break
	fi
	n=$((n + 1))
done
note "$n directories created when full"
case "$err" in
*"$ENOSPC_MSG"*) ok "mkdir when full fails with ENOSPC" ;;
*) fail "mkdir when full fails with ENOSPC: $err" ;;
esac
keep_intact "when full"
drop_caches
keep_intact "when full, read from the disk"
rm -f $MNT/fill
truncate -s 0 $MNT/holes
rmdir $MNT/d* 2>/dev/null
sync
check_eq "deleting gives every block back" "$free_before" "$(free_blocks)"
check_eq "and every inode" "$inodes_before" "$(free_inodes)"

# 2. Many small files until the disk is full: a big file takes all but
# 8 MiB first, so that a thousand files or so fill the rest.
mkdir $MNT/many
dd if=/dev/zero of=$MNT/many/big bs=1M count=$((free_before / 256 - 8)) 2>/dev/null
data=$(seq 1 1500)
n=0 err=
start=$(now)
while :; do
	if ! echo "$data" 2>/tmp/sh.err >$MNT/many/f$n; then
		err=$(cat /tmp/sh.err)
		break
	fi
	n=$((n + 1))
	[ $n -lt 10000 ] || break
done
note "$n small files in $(elapsed $start) s until the disk was full"
case "$err" in
*"$ENOSPC_MSG"*) ok "small files until full: the error is ENOSPC" ;;
*) fail "small files until full: the error is ENOSPC: $err" ;;
esac
keep_intact "after many small files"
check_eq "a sample small file reads back" "$data" "$(cat $MNT/many/f$((n / 2)))"
check "the file system is still consistent while mounted (ls -lR)" sh -c "ls -lR $MNT >/dev/null"
rm -rf $MNT/many
sync
check_eq "deleting the small files gives every block back" "$free_before" "$(free_blocks)"
check_eq "and every inode" "$inodes_before" "$(free_inodes)"
check "umount" umount $MNT
check "fsck.vexfs clean after running out of blocks" fsck.vexfs $DISK2

# 3. Out of inodes: a file system with few inodes.
check "mkfs.vexfs -N 64" mkfs.vexfs -f -q -N 64 $DISK2
mount -t vexfs $DISK2 $MNT
inodes=$(free_inodes)
n=0 err=
while :; do
	if ! echo $n 2>/tmp/sh.err >$MNT/i$n; then
		err=$(cat /tmp/sh.err)
		break
	fi
	n=$((n + 1))
	[ $n -lt 10000 ] || break
done
check_eq "as many files as free inodes" "$inodes" "$n"
case "$err" in
*"$ENOSPC_MSG"*) ok "out of inodes: the error is ENOSPC" ;;
*) fail "out of inodes: the error is ENOSPC: $err" ;;
esac
check_fails "mkdir when out of inodes fails" mkdir $MNT/dir
check_fails "symlink when out of inodes fails" ln -s target $MNT/sym
check "a hard link needs no inode" ln $MNT/i0 $MNT/link
check_eq "files written before are intact" "0 $((n - 1))" "$(cat $MNT/link) $(cat $MNT/i$((n - 1)))"
rm $MNT/i* $MNT/link
check_eq "every inode is free again" "$inodes" "$(free_inodes)"
check "a new file works again" sh -c "echo ok >$MNT/again"
umount $MNT
check "fsck.vexfs clean after running out of inodes" fsck.vexfs $DISK2
finish
