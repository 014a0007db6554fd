#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Corrupted and foreign images: mount refuses them with an error, or mounts
# and then fails the operations that meet the damage with an error. Never an
# oops, a BUG or a WARNING (the harness checks the console), never a hang.
. /vexfs/lib.sh

ITERATIONS=${VEXFS_FUZZ_ITERATIONS:-30}
BS=4096

# mount_msg: the message of a mount of $DISK2 that must fail.
mount_msg() {
	if mount -t vexfs $DISK2 $MNT 2>/tmp/mount.err; then
		umount $MNT
		echo "mounted"
	else
		cat /tmp/mount.err
	fi
}

# Foreign images.
dd if=/dev/zero of=$DISK2 bs=1M count=4 2>/dev/null
case "$(mount_msg)" in
*"Invalid argument"*) ok "an all-zero device is refused with EINVAL" ;;
*) fail "an all-zero device is refused with EINVAL: $(cat /tmp/mount.err)" ;;
esac
dd if=/dev/urandom of=$DISK2 bs=1M count=4 2>/dev/null
case "$(mount_msg)" in
*"Invalid argument"*) ok "a random device is refused with EINVAL" ;;
*) fail "a random device is refused with EINVAL: $(cat /tmp/mount.err)" ;;
esac
check_fails "fsck.vexfs refuses a random device" fsck.vexfs $DISK2

# A bad superblock checksum (a byte of the label changed).
mkfs.vexfs -q -L checksum $DISK2
printf 'X' | dd of=$DISK2 bs=1 seek=170 conv=notrunc 2>/dev/null
check_fails "fsck.vexfs finds the bad superblock checksum" fsck.vexfs $DISK2
case "$(mount_msg)" in
*"Structure needs cleaning"* | *"Invalid argument"*) ok "a bad superblock checksum is refused" ;;
*) fail "a bad superblock checksum is refused: $(cat /tmp/mount.err)" ;;
esac

# A file system larger than the device: the super block of a 1 GiB image.
mkfs.vexfs -q /tmp/large.img 1G
dd if=/tmp/large.img of=$DISK2 bs=$BS count=1 conv=notrunc 2>/dev/null
rm /tmp/large.img
case "$(mount_msg)" in
*"Invalid argument"*) ok "a file system larger than the device is refused with EINVAL" ;;
*) fail "a file system larger than the device is refused: $(cat /tmp/mount.err)" ;;
esac

# A populated small image, then random damage to its metadata: the super
# block, the bitmaps, the inode table and the first data blocks (directories
# and small files).
check "mkfs.vexfs of a 4 MiB file system" mkfs.vexfs -q -N 64 -L fuzz $DISK2 4M
mount -t vexfs $DISK2 $MNT
mkdir -p $MNT/a/b/c $MNT/d
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
	echo "file $i" >$MNT/a/f$i
	echo "file $i" >$MNT/a/b/a-longer-name-$i
done
head -c 70000 /dev/urandom >$MNT/a/b/c/indirect
ln -s ../a/f1 $MNT/d/sym
ln $MNT/a/f2 $MNT/d/hard
umount $MNT
check "fsck.vexfs clean before the damage" fsck.vexfs $DISK2
dd if=$DISK2 of=/tmp/pristine bs=1M count=4 2>/dev/null
# Damage falls in blocks 0 .. $SPAN - 1.
SPAN=40

mounted=0 refused=0 fsck_bad=0 umount_bad=0
it=0
while [ $it -lt $ITERATIONS ]; do
	it=$((it + 1))
	dd if=/tmp/pristine of=$DISK2 bs=1M conv=notrunc 2>/dev/null
	flips=$((RANDOM % 8 + 1))
	where=
	while [ $flips -gt 0 ]; do
		flips=$((flips - 1))
		if [ $((RANDOM % 6)) = 0 ]; then
			off=$((RANDOM % 512))
		else
			off=$(( (1 + RANDOM % (SPAN - 1)) * BS + RANDOM % BS ))
		fi
		printf "\\$(printf %o $((RANDOM % 256)))" |
			dd of=$DISK2 bs=1 seek=$off conv=notrunc 2>/dev/null
		where="$where $off"
	done
	fsck.vexfs $DISK2 >/dev/null 2>&1
	rc=$?
	case $rc in
	0 | 4 | 8) ;;
	*) fsck_bad=$((fsck_bad + 1)); note "iteration $it: fsck.vexfs exit $rc" ;;
	esac
	opt=errors=continue
	[ $((it % 2)) = 0 ] && opt=errors=remount-ro
	if mount -t vexfs -o $opt $DISK2 $MNT 2>/dev/null; then
		mounted=$((mounted + 1))
		ls -lR $MNT >/dev/null 2>&1
		find $MNT -type f -exec cat {} + >/dev/null 2>&1
		find $MNT -type l -exec readlink {} + >/dev/null 2>&1
		echo new 2>/dev/null >$MNT/new
		echo more 2>/dev/null >>$MNT/a/f3
		mkdir $MNT/a/newdir 2>/dev/null
		mv $MNT/a/f4 $MNT/d/moved 2>/dev/null
		head -c 60000 /dev/zero 2>/dev/null >$MNT/a/b/grow
		rm -rf $MNT/a/b 2>/dev/null
		rm -rf $MNT/* 2>/dev/null
		if ! umount $MNT; then
			umount_bad=$((umount_bad + 1))
			note "iteration $it: umount failed (damage at$where)"
			umount -l $MNT
		fi
	else
		refused=$((refused + 1))
	fi
done
note "$ITERATIONS damaged images: $mounted mounted, $refused refused"
check_eq "fsck.vexfs always ends with 0, 4 or 8" 0 $fsck_bad
check_eq "every mounted damaged image unmounts" 0 $umount_bad

# The disk is usable again after all that.
check "mkfs.vexfs after the damage" mkfs.vexfs -q $DISK2
check "mount" mount -t vexfs $DISK2 $MNT
echo fine >$MNT/f
check_eq "a fresh file system works" fine "$(cat $MNT/f)"
umount $MNT
check "fsck.vexfs clean" fsck.vexfs $DISK2
finish
