#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# 6,000 files in one directory: create, stat, readdir, remove; timings are
# printed as notes, never asserted.
. /vexfs/lib.sh

N=6000
check "mkfs.vexfs" mkfs.vexfs -f -q -L many $DISK1
check "mount" mount -t vexfs $DISK1 $MNT
mkdir $MNT/d
free_inodes=$(stat -f -c %d $MNT)

# Shell built-ins only: the loop measures the file system, not fork+exec.
start=$(now)
i=0
err=0
while [ $i -lt $N ]; do
	echo "file $i" >$MNT/d/file-$i || err=$((err + 1))
	i=$((i + 1))
done
note "created $N files in $(elapsed $start) s ($(rate $N $start) files/s)"
check_eq "every create succeeded" 0 $err

start=$(now)
i=0
bad=0
while [ $i -lt $N ]; do
	if [ "$(stat -c %s:%F $MNT/d/file-$i)" != "$((${#i} + 6)):regular file" ]; then
		bad=$((bad + 1))
	fi
	i=$((i + 97))
done
note "stat of every 97th file: $(elapsed $start) s"
check_eq "stat of a sample: sizes and types" 0 $bad
bad=0
for i in 0 1 2999 3000 5998 5999 1234 4765; do
	[ "$(cat $MNT/d/file-$i)" = "file $i" ] || bad=$((bad + 1))
done
check_eq "content of a sample" 0 $bad

start=$(now)
count=$(find $MNT/d -mindepth 1 -name 'file-*' | wc -l)
note "readdir of $N entries: $(elapsed $start) s"
check_eq "readdir returns every file once" $N "$count"
check_eq "no duplicate in readdir" $N "$(find $MNT/d -mindepth 1 -name 'file-*' | sort -u | wc -l)"
check_eq "statfs counts the inodes" $((free_inodes - N)) "$(stat -f -c %d $MNT)"
note "directory size: $(stat -c %s $MNT/d) bytes"

umount $MNT
drop_caches
check "fsck.vexfs clean with $N files" fsck.vexfs $DISK1
mount -t vexfs $DISK1 $MNT
start=$(now)
count=$(find $MNT/d -mindepth 1 -name 'file-*' | wc -l)
note "readdir after remount (cold cache): $(elapsed $start) s"
check_eq "every file is there after remount" $N "$count"
check_eq "last file after remount" "file $((N - 1))" "$(cat $MNT/d/file-$((N - 1)))"
check_fails "a name that does not exist is not found" stat $MNT/d/file-$N

start=$(now)
i=0
err=0
while [ $i -lt $N ]; do
	# Remove in an order that leaves holes everywhere before the end.
	j=$(( (i * 7919) % N ))
	rm -f $MNT/d/file-$j || err=$((err + 1))
	i=$((i + 1))
done
note "removed $N files in $(elapsed $start) s ($(rate $N $start) files/s)"
check_eq "rm of every file succeeded" 0 $err
check_eq "the directory is empty" "" "$(ls -A $MNT/d)"
check_eq "every inode is free again" "$free_inodes" "$(stat -f -c %d $MNT)"
check "rmdir of the emptied (large) directory" rmdir $MNT/d
check "umount" umount $MNT
check "fsck.vexfs clean after removing everything" fsck.vexfs $DISK1
finish
