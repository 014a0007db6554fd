#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Extended attributes (user., trusted., security.) through the VFS and
# the VexFS attribute block: round trips, XATTR_CREATE/XATTR_REPLACE,
# ERANGE for short buffers and values too large, ENOSPC when the block is
# full, the VFS's rules (user. only on regular files and directories,
# trusted. only for CAP_SYS_ADMIN, permissions of a non-root user,
# immutable files), the block in st_blocks and freed with its last
# attribute or its file, random calls against a model, and all of it
# after a remount and a clean fsck. busybox has no setfattr/getfattr:
# vexfs-stress xattr makes the calls.
. /vexfs/lib.sh

check "mkfs.vexfs" mkfs.vexfs -f -q -L xattr $DISK2 32M
mount -t vexfs $DISK2 $MNT
x() { vexfs-stress xattr "$@"; }
f=$MNT/f
echo data >$f
chmod 644 $f
mkdir $MNT/d
mkfifo $MNT/fifo

check_eq "set user.a" ok "$(x $f set user.a hello)"
check_eq "get user.a" hello "$(x $f get user.a)"
check_eq "its length, asked with an empty buffer" 5 "$(x $f size user.a)"
check_eq "a 1-byte buffer: ERANGE" ERANGE "$(x $f small user.a)"
check_eq "an absent attribute: ENODATA" ENODATA "$(x $f get user.b)"
check_eq "XATTR_CREATE of an existing one: EEXIST" EEXIST "$(x $f set user.a x create)"
check_eq "XATTR_REPLACE of a missing one: ENODATA" ENODATA "$(x $f set user.b x replace)"
check_eq "XATTR_REPLACE" ok "$(x $f set user.a world replace)"
check_eq "the new value" world "$(x $f get user.a)"
check_eq "XATTR_CREATE" ok "$(x $f set user.b two create)"
check_eq "an empty value" ok "$(x $f set user.empty '')"
check_eq "an empty value has length 0" 0 "$(x $f size user.empty)"
check_eq "set trusted.t" ok "$(x $f set trusted.t secret)"
check_eq "set security.s" ok "$(x $f set security.s label)"
check_eq "user.a and trusted.a are two attributes" ok "$(x $f set trusted.a other)"
check_eq "list, sorted" "security.s
trusted.a
trusted.t
user.a
user.b
user.empty" "$(x $f list)"
check_eq "st_blocks: the data block and the attribute block" 16 "$(stat -c %b $f)"

# The VFS's rules.
check_eq "user. on a directory" ok "$(x $MNT/d set user.dir yes)"
check_eq "user. on a FIFO: EPERM" EPERM "$(x $MNT/fifo set user.x 1)"
check_eq "trusted. on a FIFO" ok "$(x $MNT/fifo set trusted.x 1)"
ln -s f $MNT/link
check_eq "user. on a symbolic link itself: EPERM" EPERM "$(x $MNT/link nofollow set user.x 1)"
check_eq "trusted. on a symbolic link itself" ok "$(x $MNT/link nofollow set trusted.l 1)"
check_eq "listed on the link" trusted.l "$(x $MNT/link nofollow list)"
check_eq "read on the link" 1 "$(x $MNT/link nofollow get trusted.l)"
check_eq "the link still resolves" data "$(cat $MNT/link)"
check_eq "a non-root user reads user. of a readable file" world "$(x $f as 1000 get user.a)"
check_eq "a non-root user lists without trusted." "security.s
user.a
user.b
user.empty" "$(x $f as 1000 list)"
check_eq "a non-root user cannot write user. of a file it cannot write" EACCES \
	"$(x $f as 1000 set user.c 1)"
check_eq "a non-root user cannot read trusted." ENODATA "$(x $f as 1000 get trusted.t)"
check_eq "a non-root user cannot set trusted." EPERM "$(x $f as 1000 set trusted.u 1)"
echo i >$MNT/immutable
check "chattr +i" vexfs-ioctl-test chattr $MNT/immutable 16
check_eq "an immutable file: EPERM" EPERM "$(x $MNT/immutable set user.a 1)"
check "chattr -i" vexfs-ioctl-test chattr $MNT/immutable 0

# Limits: one block of 4096 bytes holds all the attributes of an inode.
big=$(head -c 3000 /dev/zero | tr '\000' v)
huge=$(head -c 4100 /dev/zero | tr '\000' v)
long=$(head -c 250 /dev/zero | tr '\000' n)
check_eq "a value larger than a block: ERANGE" ERANGE "$(x $f set user.huge $huge)"
check_eq "a 3000-byte value" ok "$(x $f set user.big $big)"
check_eq "a second one does not fit: ENOSPC" ENOSPC "$(x $f set user.big2 $big)"
check_eq "after ENOSPC the others are intact" world "$(x $f get user.a)"
check_eq "replacing the big value by a smaller one fits" ok "$(x $f set user.big small)"
check_eq "a name of 255 bytes with its prefix" ok "$(x $f set user.$long n)"
check_eq "a name of 256 bytes: ERANGE (the VFS)" ERANGE "$(x $f set user.${long}n n)"
check_eq "remove a missing attribute: ENODATA" ENODATA "$(x $f remove user.zz)"
x $f dump >/tmp/xattr.dump

# Random calls against a model, on another file.
SEED=${VEXFS_STRESS_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
note "xattr-model seed $SEED (replay: VEXFS_STRESS_SEED=$SEED)"
echo m >$MNT/model
XATTR_OPS=${VEXFS_XATTR_OPS:-3000}
check "xattr-model: $XATTR_OPS random calls against a model" \
	vexfs-stress xattr-model $MNT/model --ops $XATTR_OPS --seed $SEED
x $MNT/model dump >/tmp/xattr-model.dump

umount $MNT
check "fsck.vexfs: clean" fsck.vexfs -n $DISK2
mount -t vexfs $DISK2 $MNT
check_eq "after a remount: the same attributes and values" "$(cat /tmp/xattr.dump)" "$(x $f dump)"
check_eq "after a remount: the model's file too" "$(cat /tmp/xattr-model.dump)" \
	"$(x $MNT/model dump)"

# The block goes with the last attribute, and with its file.
for n in $(x $f list); do
	x $f remove $n >/dev/null
done
check_eq "all removed: nothing listed" "" "$(x $f list)"
check_eq "all removed: the attribute block is freed" 8 "$(stat -c %b $f)"
free=$(stat -f -c %f $MNT)
check_eq "set an attribute again" ok "$(x $f set user.again 1)"
rm $f
check_eq "removing the file frees its attribute block" $((free + 1)) "$(stat -f -c %f $MNT)"
umount $MNT
check "fsck.vexfs: clean at the end" fsck.vexfs -n $DISK2
finish
