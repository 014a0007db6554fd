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

# Inodes have checksums, so most random damage to them is caught at once.
# Damage their fields and write a matching checksum, to reach the checks
# behind it: modes, sizes, link counts, block pointers.
INODE_TABLE=3	# -N 64: one inode bitmap and one block bitmap block first
USED_INODES=47

# crc32c OFFSET LENGTH: CRC32C of LENGTH bytes of $DISK2 at OFFSET.
crc32c() {
	dd if=$DISK2 bs=1 skip=$1 count=$2 2>/dev/null | od -An -tu1 -v | awk '
	BEGIN {
		for (i = 0; i < 256; i++) {
			c = i
			for (k = 0; k < 8; k++)
				c = and(c, 1) ? xor(rshift(c, 1), 2197175160) : rshift(c, 1)
			t[i] = c
		}
		crc = 4294967295
	}
	{ for (i = 1; i <= NF; i++) crc = xor(t[and(xor(crc, $i), 255)], rshift(crc, 8)) }
	END {
		print xor(crc, 4294967295)
	}'
}
# le32 VALUE: VALUE as four little-endian bytes.
le32() {
	printf "\\$(printf %o $(($1 & 255)))\\$(printf %o $((($1 >> 8) & 255)))"
	printf "\\$(printf %o $((($1 >> 16) & 255)))\\$(printf %o $((($1 >> 24) & 255)))"
}
dd if=/tmp/pristine of=$DISK2 bs=1M conv=notrunc 2>/dev/null
root=$((INODE_TABLE * BS + 256))
check_eq "the test's CRC32C matches the checksum of the root inode" \
	"$(dd if=$DISK2 bs=1 skip=$((root + 252)) count=4 2>/dev/null | od -An -tu4 | tr -d ' ')" \
	"$(crc32c $root 252)"

mounted=0 refused=0 fsck_bad=0 umount_bad=0
it=0
while [ $it -lt $ITERATIONS ]; do
	it=$((it + 1))
	dd if=/tmp/pristine of=$DISK2 bs=1M conv=notrunc 2>/dev/null
	ino=$((1 + RANDOM % USED_INODES))
	slot=$(( (INODE_TABLE + ino / 16) * BS + (ino % 16) * 256 ))
	flips=$((RANDOM % 3 + 1))
	while [ $flips -gt 0 ]; do
		flips=$((flips - 1))
		# Fields and block pointers: the first 140 bytes.
		printf "\\$(printf %o $((RANDOM % 256)))" |
			dd of=$DISK2 bs=1 seek=$((slot + RANDOM % 140)) conv=notrunc 2>/dev/null
	done
	le32 $(crc32c $slot 252) | dd of=$DISK2 bs=1 seek=$((slot + 252)) conv=notrunc 2>/dev/null
	fsck.vexfs $DISK2 >/dev/null 2>&1
	case $? in
	0 | 4 | 8) ;;
	*) fsck_bad=$((fsck_bad + 1)) ;;
	esac
	if mount -t vexfs $DISK2 $MNT 2>/dev/null; then
		mounted=$((mounted + 1))
		ls -lR $MNT >/dev/null 2>&1
		find $MNT -type f -exec cat {} + >/dev/null 2>&1
		find $MNT -type l -exec readlink {} + >/dev/null 2>&1
		find $MNT -type f -exec sh -c 'echo x 2>/dev/null >>"$1"' sh {} \; 2>/dev/null
		find $MNT -type f -exec truncate -s 5000 {} + 2>/dev/null
		mkdir $MNT/a/newdir 2>/dev/null
		rm -rf $MNT/* 2>/dev/null
		if ! umount $MNT; then
			umount_bad=$((umount_bad + 1))
			umount -l $MNT
		fi
	else
		refused=$((refused + 1))
	fi
done
note "$ITERATIONS images with damaged inodes and good checksums: $mounted mounted, $refused refused"
check_eq "fsck.vexfs always ends with 0, 4 or 8 (inodes)" 0 $fsck_bad
check_eq "every mounted image with damaged inodes unmounts" 0 $umount_bad

# errors=: a block pointer into the metadata area, behind a good checksum,
# fails the read with EUCLEAN; errors=remount-ro also makes the file system
# read-only, errors=continue does not.
dd if=/tmp/pristine of=$DISK2 bs=1M conv=notrunc 2>/dev/null
mount -t vexfs $DISK2 $MNT
ino=$(stat -c %i $MNT/a/f1)
umount $MNT
slot=$(( (INODE_TABLE + ino / 16) * BS + (ino % 16) * 256 ))
le32 1 | dd of=$DISK2 bs=1 seek=$((slot + 80)) conv=notrunc 2>/dev/null
le32 $(crc32c $slot 252) | dd of=$DISK2 bs=1 seek=$((slot + 252)) conv=notrunc 2>/dev/null
# rw_state: "rw" or "ro", as /proc/mounts shows $MNT.
rw_state() {
	awk -v m=$MNT '$2 == m { split($4, o, ","); print o[1] }' /proc/mounts
}
for opt in continue remount-ro; do
	mount -t vexfs -o errors=$opt $DISK2 $MNT
	case "$(cat $MNT/a/f1 2>&1)" in
	*"Structure needs cleaning"*) ok "errors=$opt: a bad block pointer fails with EUCLEAN" ;;
	*) fail "errors=$opt: a bad block pointer fails with EUCLEAN: $(cat $MNT/a/f1 2>&1)" ;;
	esac
	check_eq "errors=$opt: the other files still read" "file 2" "$(cat $MNT/a/f2)"
	if [ $opt = continue ]; then
		check_eq "errors=continue: still read-write" rw "$(rw_state)"
		check "errors=continue: still writable" sh -c "echo x >$MNT/d/new"
	else
		check_eq "errors=remount-ro: now read-only" ro "$(rw_state)"
		check_fails "errors=remount-ro: writes fail" sh -c "echo x >$MNT/d/new2"
	fi
	check "errors=$opt: umount" umount $MNT
done

# The disk is usable again after all that.
check "mkfs.vexfs after the damage" mkfs.vexfs -q $DISK2
check "mount" mount -t vexfs $DISK2 $MNT
echo fine >$MNT/f
check_eq "a fresh file system works" fine "$(cat $MNT/f)"
umount $MNT
check "fsck.vexfs clean" fsck.vexfs $DISK2
finish
