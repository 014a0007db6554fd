#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# mkfs, mount and a POSIX workout with content checks; fsck clean afterwards.
. /vexfs/lib.sh

check "mkfs.vexfs formats the disk" mkfs.vexfs -f -q -L posix $DISK1
check "fsck.vexfs: fresh file system is clean" fsck.vexfs $DISK1
check "mount -t vexfs" mount -t vexfs $DISK1 $MNT
check "root is an empty directory" sh -c "[ -d $MNT ] && [ -z \"\$(ls -A $MNT)\" ]"

echo hello >$MNT/a
check_eq "create + write + read" hello "$(cat $MNT/a)"
echo world >>$MNT/a
check_eq "append" "hello
world" "$(cat $MNT/a)"
check_eq "size after append" 12 "$(stat -c %s $MNT/a)"
truncate -s 5 $MNT/a
check_eq "truncate down" hello "$(cat $MNT/a)"
truncate -s 8192 $MNT/a
check_eq "size after truncate up" 8192 "$(stat -c %s $MNT/a)"
check "sparse tail is zero" sh -c "[ \"\$(dd if=$MNT/a bs=1 skip=5 count=8187 2>/dev/null | tr -d '\\000' | wc -c)\" = 0 ]"

mkdir $MNT/d
check "mkdir" test -d $MNT/d
check_eq "directory nlink is 3 for the parent" 3 "$(stat -c %h $MNT)"
mv $MNT/a $MNT/d/b
check "rename into a directory" sh -c "[ ! -e $MNT/a ] && [ -f $MNT/d/b ]"
check_eq "renamed file keeps its content" hello "$(head -c5 $MNT/d/b)"
ln $MNT/d/b $MNT/hard
check_eq "hard link count" 2 "$(stat -c %h $MNT/d/b)"
check_eq "hard link shares the inode" "$(stat -c %i $MNT/d/b)" "$(stat -c %i $MNT/hard)"
ln -s d/b $MNT/sym
check_eq "symlink target" d/b "$(readlink $MNT/sym)"
check_eq "read through symlink" hello "$(head -c5 $MNT/sym)"
rm $MNT/hard
check_eq "unlink drops a link" 1 "$(stat -c %h $MNT/d/b)"
chmod 600 $MNT/d/b
check_eq "chmod" 600 "$(stat -c %a $MNT/d/b)"
chown 123:456 $MNT/d/b
check_eq "chown" "123:456" "$(stat -c %u:%g $MNT/d/b)"
check_fails "rmdir of a non-empty directory fails" rmdir $MNT/d
check_fails "rename over a non-empty directory fails" sh -c "mkdir $MNT/e && mv -T $MNT/e $MNT/d"
rmdir $MNT/e 2>/dev/null
for i in 1 2 3 4 5; do echo $i >$MNT/d/f$i; done
check_eq "readdir lists every entry" "b f1 f2 f3 f4 f5" "$(ls $MNT/d | tr '\n' ' ' | sed 's/ $//')"
rm $MNT/d/*
check "rmdir" rmdir $MNT/d
check_eq "parent nlink back to 2" 2 "$(stat -c %h $MNT)"

dd if=/dev/urandom of=/tmp/big bs=1024 count=3000 2>/dev/null
cp /tmp/big $MNT/big
check_eq "3 MB file (indirect blocks) reads back" "$(md5sum </tmp/big)" "$(md5sum <$MNT/big)"
check_eq "mmap read matches (via cmp)" 0 "$(cmp /tmp/big $MNT/big >/dev/null 2>&1; echo $?)"

# Special files: devices, a named pipe, a socket.
check "mknod of a character device" mknod $MNT/null c 1 3
check "mknod of a block device" mknod $MNT/blk b 259 74565
check "mkfifo" mkfifo $MNT/fifo
check "mknod of a socket" vexfs-ioctl-test mksock $MNT/sock
check_eq "the types and device numbers" \
	"character special file 1 3|block special file 103 12345|fifo 0 0|socket 0 0" \
	"$(for f in null blk fifo sock; do stat -c '%F %t %T' $MNT/$f; done | tr '\n' '|' | sed 's/|$//')"
check "writing to the character device (/dev/null)" sh -c "echo gone >$MNT/null"
check_eq "reading it" "" "$(cat $MNT/null)"
(echo through the pipe >$MNT/fifo) &
check_eq "the named pipe" "through the pipe" "$(cat $MNT/fifo)"
wait
chmod 640 $MNT/null
check_eq "chmod of a device" 640 "$(stat -c %a $MNT/null)"
check_fails "truncate of a device" truncate -s 0 $MNT/blk
ln $MNT/fifo $MNT/fifo2
check_eq "a hard link to the pipe" 2 "$(stat -c %h $MNT/fifo)"

# renameat2(2) flags.
mkdir -p $MNT/x/sub $MNT/y
echo one >$MNT/x/one
echo two >$MNT/y/two
check_fails "RENAME_NOREPLACE over an existing name" vexfs-ioctl-test rename2 $MNT/x/one $MNT/y/two 1
check "RENAME_EXCHANGE of two files" vexfs-ioctl-test rename2 $MNT/x/one $MNT/y/two 2
check_eq "the files are exchanged" "two one" "$(cat $MNT/x/one) $(cat $MNT/y/two)"
check "RENAME_EXCHANGE of a directory and a file in another directory" \
	vexfs-ioctl-test rename2 $MNT/x/sub $MNT/y/two 2
check_eq "link counts follow the directory" "2 3" "$(stat -c %h $MNT/x) $(stat -c %h $MNT/y)"
check_eq "its .. too" "$(stat -c %i $MNT/y)" "$(stat -c %i $MNT/y/two/..)"
check_eq "the file is in the other directory" one "$(cat $MNT/x/sub)"
check_fails "RENAME_EXCHANGE with a missing name" vexfs-ioctl-test rename2 $MNT/x/sub $MNT/y/none 2
check "RENAME_WHITEOUT" vexfs-ioctl-test rename2 $MNT/x/one $MNT/y/moved 4
check_eq "the name moved" two "$(cat $MNT/y/moved)"
check_eq "a whiteout (character device 0:0) is left behind" "character special file 0 0 0" \
	"$(stat -c '%F %t %T %a' $MNT/x/one)"
check "umount after the renames" umount $MNT
check "fsck.vexfs clean after the renames" fsck.vexfs $DISK1
mount -t vexfs $DISK1 $MNT
check_eq "the renames survive a remount" "one two 0 0" \
	"$(cat $MNT/x/sub) $(cat $MNT/y/moved) $(stat -c '%t %T' $MNT/x/one)"
rm -r $MNT/x $MNT/y

long=$(printf 'n%.0s' $(seq 1 255))
check "255-byte name" touch $MNT/$long
check_fails "256-byte name is refused" touch $MNT/${long}x
check "umount" umount $MNT
check "fsck.vexfs clean after the workout" fsck.vexfs $DISK1
check "remount" mount -t vexfs $DISK1 $MNT
check_eq "data survives remount" "$(md5sum </tmp/big)" "$(md5sum <$MNT/big)"
check_eq "symlink survives remount" d/b "$(readlink $MNT/sym)"
check_eq "special files survive remount" \
	"character special file 1 3 640|block special file 103 12345 644|fifo 0 0 644|socket 0 0 755" \
	"$(for f in null blk fifo sock; do stat -c '%F %t %T %a' $MNT/$f; done | tr '\n' '|' | sed 's/|$//')"
check "removing them" rm $MNT/null $MNT/blk $MNT/fifo $MNT/fifo2 $MNT/sock
umount $MNT
check "fsck.vexfs clean after removing them" fsck.vexfs $DISK1
finish
