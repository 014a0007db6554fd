#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Corrupted and foreign images: mount refuses them with an error, or mounts
# and then fails the operations that meet the damage with an error. Never an
# oops, a BUG or a WARNING (the harness checks the console), never a hang.
#
# The damage is random but replayable: iteration K of a pass seeds $RANDOM
# from the seed of the run and K. The seed is printed; these variables, in the
# environment of `make test` or as NAME=VALUE on the kernel command line
# (which /init passes on as environment), set the run:
#   VEXFS_FUZZ_SEED=S            the seed (default: random)
#   VEXFS_FUZZ_ITERATIONS=N      iterations of each pass (default 20)
#   VEXFS_FUZZ_FROM=K            start at iteration K (replay: FROM=K ITERATIONS=K)
#   VEXFS_FUZZ_STEP_TIMEOUT=SEC  a step on a damaged image taking longer hangs (default 120)
# After the steps, fsck.vexfs -y repairs the image, which must then check
# clean and work. A hung step fails the test with its name, the seed and the
# iteration; the kernel console gets the task stacks (sysrq l and t) first. A
# step that cannot even be killed loops in the kernel: the VM is crashed
# (sysrq c) so that the run fails at once instead of at the VM timeout.
. /vexfs/lib.sh

ITERATIONS=${VEXFS_FUZZ_ITERATIONS:-20}
FROM=${VEXFS_FUZZ_FROM:-1}
STEP_TIMEOUT=${VEXFS_FUZZ_STEP_TIMEOUT:-120}
SEED=${VEXFS_FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
BS=4096
export MNT DISK2
note "seed $SEED, iterations $FROM to $ITERATIONS (replay: VEXFS_FUZZ_SEED=$SEED)"

# What the current step works on, for the messages of a hang.
ctx="seed $SEED"
hung=0

# watchdog PID WHAT: waits for step PID; if it runs longer than
# $STEP_TIMEOUT seconds, dumps the tasks to the kernel console and kills it.
watchdog() {
	_left=$STEP_TIMEOUT
	while [ $_left -gt 0 ]; do
		sleep 1
		kill -0 $1 2>/dev/null || exit 0
		_left=$((_left - 1))
	done
	: >/tmp/step.hung
	echo "vexfs-test: 70-corrupt: '$2' still runs after $STEP_TIMEOUT s ($ctx): tasks follow" >/dev/kmsg
	echo l >/proc/sysrq-trigger
	echo t >/proc/sysrq-trigger
	kill -KILL -$1 $1 2>/dev/null
	sleep 10
	if kill -0 $1 2>/dev/null; then
		echo "vexfs-test: 70-corrupt: '$2' cannot be killed ($ctx): a loop in the kernel; crashing the VM" >/dev/kmsg
		echo w >/proc/sysrq-trigger
		echo c >/proc/sysrq-trigger
	fi
}

# step WHAT SCRIPT: runs the shell SCRIPT, a step on a damaged image, in its
# own session under the watchdog; a hang is a failure naming WHAT and $ctx.
# Returns the exit status of SCRIPT.
step() {
	rm -f /tmp/step.hung
	setsid sh -c "$2" </dev/null &
	_pid=$!
	watchdog $_pid "$1" &
	_wd=$!
	wait $_pid
	_rc=$?
	kill $_wd 2>/dev/null
	wait $_wd 2>/dev/null
	if [ -e /tmp/step.hung ]; then
		hung=$((hung + 1))
		fail "'$1' hung for $STEP_TIMEOUT s ($ctx)"
		rm -f /tmp/step.hung
	fi
	return $_rc
}

# reseed PASS ITERATION: seeds $RANDOM for an iteration. Busybox derives its
# sequence linearly from the seed, so close seeds give alike sequences: mix
# the seed of the run, the pass and the iteration first.
reseed() {
	_x=$(( (SEED * 1000003 + $1 * 7919 + $2) & 0xffffffff ))
	_x=$(( ((_x ^ (_x >> 16)) * 0x45d9f3b) & 0xffffffff ))
	_x=$(( ((_x ^ (_x >> 16)) * 0x45d9f3b) & 0xffffffff ))
	RANDOM=$((_x ^ (_x >> 16)))
}

# poke OFFSET BYTE: writes BYTE (a number) at OFFSET of $DISK2.
poke() {
	printf "\\$(printf %o $2)" | dd of=$DISK2 bs=1 seek=$1 conv=notrunc 2>/dev/null
}

# Reads every file, but never more than a few blocks of each: a damaged size
# may make a file terabytes long, and reading its holes takes hours. The
# first 64 blocks, then one block at the start of the single, double and
# triple indirect ranges.
READ_FILES='find $MNT -type f 2>/dev/null | while read -r f; do
	head -c 262144 "$f"
	for b in 12 1036 1049612; do
		dd if="$f" bs=4096 skip=$b count=1 2>/dev/null
	done
done >/dev/null 2>&1'
# The same reads, failing on the first error (for repaired images).
READ_CHECK='find $MNT -type f -exec sh -c '"'"'for f; do
	head -c 262144 "$f" >/dev/null || exit 1
	for b in 12 1036 1049612; do
		dd if="$f" of=/dev/null bs=4096 skip=$b count=1 2>/dev/null || exit 1
	done
done'"'"' sh {} +'

# try_mount WHAT: mounts $DISK2, which should fail; sets $msg to the error
# message, or to "mounted".
try_mount() {
	if step "$1: mount" "mount -t vexfs $DISK2 $MNT 2>/tmp/mount.err"; then
		umount $MNT
		msg=mounted
	else
		msg=$(cat /tmp/mount.err)
	fi
}

# Foreign images.
dd if=/dev/zero of=$DISK2 bs=1M count=4 2>/dev/null
try_mount "an all-zero device"
case "$msg" in
*"Invalid argument"*) ok "an all-zero device is refused with EINVAL" ;;
*) fail "an all-zero device is refused with EINVAL: $msg" ;;
esac
dd if=/dev/urandom of=$DISK2 bs=1M count=4 2>/dev/null
try_mount "a random device"
case "$msg" in
*"Invalid argument"*) ok "a random device is refused with EINVAL" ;;
*) fail "a random device is refused with EINVAL: $msg" ;;
esac
check_fails "fsck.vexfs refuses a random device" step "fsck of a random device" "fsck.vexfs $DISK2"

# A bad superblock checksum (a byte of the label changed).
mkfs.vexfs -f -q -L checksum $DISK2
printf 'X' | dd of=$DISK2 bs=1 seek=170 conv=notrunc 2>/dev/null
check_fails "fsck.vexfs finds the bad superblock checksum" step "fsck, bad checksum" "fsck.vexfs $DISK2"
try_mount "a bad superblock checksum"
case "$msg" in
*"Structure needs cleaning"* | *"Invalid argument"*) ok "a bad superblock checksum is refused" ;;
*) fail "a bad superblock checksum is refused: $msg" ;;
esac

# A file system larger than the device: the super block of a 1 GiB image.
mkfs.vexfs -f -q /tmp/large.img 1G
dd if=/tmp/large.img of=$DISK2 bs=$BS count=1 conv=notrunc 2>/dev/null
rm /tmp/large.img
try_mount "a file system larger than the device"
case "$msg" in
*"Invalid argument"*) ok "a file system larger than the device is refused with EINVAL" ;;
*) fail "a file system larger than the device is refused: $msg" ;;
esac

# A populated small image, then random damage to its metadata: the super
# block, the bitmaps, the inode table and the first data blocks (directories
# and small files).
check "mkfs.vexfs of a 4 MiB file system" mkfs.vexfs -f -q -N 64 -L fuzz $DISK2 4M
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

# unmount: unmounts $MNT after the steps of an iteration; a failure is
# counted in $umount_bad.
unmount() {
	if ! step "umount" "umount $MNT"; then
		umount_bad=$((umount_bad + 1))
		note "umount failed ($ctx)"
		umount -l $MNT 2>/dev/null
	fi
}

# repair: after the steps of an iteration, fsck.vexfs -y repairs the image
# as the damage and the kernel left it; the repaired image must check clean,
# mount, read and unmount clean. Only a lost superblock may be beyond repair
# ($sb_hit: the damage reached block 0). Counts go to $repaired, $lost and
# $repair_bad.
repair() {
	step "fsck.vexfs -y" "fsck.vexfs -y $DISK2 >/tmp/repair.out 2>&1"
	_rc=$?
	case $_rc in
	0 | 1) ;;
	4 | 8)
		if [ $sb_hit = 1 ] && ! grep -q ': fixed$' /tmp/repair.out; then
			lost=$((lost + 1))
			return
		fi
		repair_bad=$((repair_bad + 1))
		note "fsck.vexfs -y exit $_rc ($ctx)"
		sed 's/^/#   /' /tmp/repair.out | head -5
		return
		;;
	*)
		repair_bad=$((repair_bad + 1))
		note "fsck.vexfs -y exit $_rc ($ctx)"
		return
		;;
	esac
	if ! step "fsck.vexfs -n after -y" "fsck.vexfs -n $DISK2 >/tmp/repair.out 2>&1"; then
		repair_bad=$((repair_bad + 1))
		note "not clean after fsck.vexfs -y ($ctx)"
		sed 's/^/#   /' /tmp/repair.out | head -5
		return
	fi
	if ! step "mount after -y" "mount -t vexfs $DISK2 $MNT"; then
		repair_bad=$((repair_bad + 1))
		note "a repaired image does not mount ($ctx)"
		return
	fi
	# Not ls -l: busybox ls dies of a timestamp too far from 1970 for
	# localtime() (a repaired inode may keep any i64 mtime, as on btrfs).
	_bad=
	step "stat after -y" 'find $MNT -exec stat -c "%i %h %s %f %u %g %Y" {} + >/dev/null' ||
		_bad="$_bad stat"
	step "read files after -y" "$READ_CHECK" || _bad="$_bad read"
	step "write after -y" 'mkdir -p $MNT/lost+found/x && echo x >$MNT/lost+found/x/y' ||
		_bad="$_bad write"
	step "umount after -y" "umount $MNT" || { _bad="$_bad umount"; umount -l $MNT 2>/dev/null; }
	step "fsck.vexfs -n after use" "fsck.vexfs -n $DISK2 >/tmp/repair.out 2>&1" ||
		_bad="$_bad fsck"
	if [ -z "$_bad" ]; then
		repaired=$((repaired + 1))
	else
		repair_bad=$((repair_bad + 1))
		note "a repaired image fails in use:$_bad ($ctx)"
		sed 's/^/#   /' /tmp/repair.out | head -5
	fi
}

start=$(now)
mounted=0 refused=0 fsck_bad=0 umount_bad=0 repaired=0 lost=0 repair_bad=0
it=$((FROM - 1))
while [ $it -lt $ITERATIONS ]; do
	it=$((it + 1))
	reseed 1 $it
	sb_hit=0
	dd if=/tmp/pristine of=$DISK2 bs=1M conv=notrunc 2>/dev/null
	flips=$((RANDOM % 8 + 1))
	where=
	while [ $flips -gt 0 ]; do
		flips=$((flips - 1))
		if [ $((RANDOM % 6)) = 0 ]; then
			off=$((RANDOM % 512))
			sb_hit=1
		else
			off=$(( (1 + RANDOM % (SPAN - 1)) * BS + RANDOM % BS ))
		fi
		byte=$((RANDOM % 256))
		poke $off $byte
		where="$where $off=$byte"
	done
	ctx="seed $SEED, random damage, iteration $it, bytes at$where"
	step "fsck.vexfs" "fsck.vexfs $DISK2 >/dev/null 2>&1"
	rc=$?
	case $rc in
	0 | 4 | 8) ;;
	*) fsck_bad=$((fsck_bad + 1)); note "fsck.vexfs exit $rc ($ctx)" ;;
	esac
	opt=errors=continue
	[ $((it % 2)) = 0 ] && opt=errors=remount-ro
	if step "mount -o $opt" "mount -t vexfs -o $opt $DISK2 $MNT 2>/dev/null"; then
		mounted=$((mounted + 1))
		step "ls -lR" 'ls -lR $MNT >/dev/null 2>&1'
		step "read files" "$READ_FILES"
		step "readlink" 'find $MNT -type l -exec readlink {} + >/dev/null 2>&1'
		step "create" 'echo new 2>/dev/null >$MNT/new'
		step "append" 'echo more 2>/dev/null >>$MNT/a/f3'
		step "mkdir" 'mkdir $MNT/a/newdir 2>/dev/null'
		step "rename" 'mv $MNT/a/f4 $MNT/d/moved 2>/dev/null'
		step "write 60000 bytes" 'head -c 60000 /dev/zero 2>/dev/null >$MNT/a/b/grow'
		step "rm -rf a/b" 'rm -rf $MNT/a/b 2>/dev/null'
		step "rm -rf all" 'rm -rf $MNT/* 2>/dev/null'
		unmount
	else
		refused=$((refused + 1))
	fi
	repair
done
note "$((ITERATIONS - FROM + 1)) damaged images: $mounted mounted, $refused refused, $repaired repaired, $lost with a lost superblock, $(elapsed $start) s"
check_eq "fsck.vexfs always ends with 0, 4 or 8" 0 $fsck_bad
check_eq "every mounted damaged image unmounts" 0 $umount_bad
check_eq "fsck.vexfs -y repairs every image with a superblock" 0 $repair_bad

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

start=$(now)
mounted=0 refused=0 fsck_bad=0 umount_bad=0 repaired=0 lost=0 repair_bad=0
it=$((FROM - 1))
while [ $it -lt $ITERATIONS ]; do
	it=$((it + 1))
	reseed 2 $it
	sb_hit=0
	dd if=/tmp/pristine of=$DISK2 bs=1M conv=notrunc 2>/dev/null
	ino=$((1 + RANDOM % USED_INODES))
	slot=$(( (INODE_TABLE + ino / 16) * BS + (ino % 16) * 256 ))
	flips=$((RANDOM % 3 + 1))
	where=
	while [ $flips -gt 0 ]; do
		flips=$((flips - 1))
		# Fields and block pointers: the first 140 bytes.
		at=$((RANDOM % 140))
		byte=$((RANDOM % 256))
		poke $((slot + at)) $byte
		where="$where $at=$byte"
	done
	le32 $(crc32c $slot 252) | dd of=$DISK2 bs=1 seek=$((slot + 252)) conv=notrunc 2>/dev/null
	ctx="seed $SEED, inode damage, iteration $it, inode $ino bytes at$where"
	step "fsck.vexfs" "fsck.vexfs $DISK2 >/dev/null 2>&1"
	rc=$?
	case $rc in
	0 | 4 | 8) ;;
	*) fsck_bad=$((fsck_bad + 1)); note "fsck.vexfs exit $rc ($ctx)" ;;
	esac
	if step "mount" "mount -t vexfs $DISK2 $MNT 2>/dev/null"; then
		mounted=$((mounted + 1))
		step "ls -lR" 'ls -lR $MNT >/dev/null 2>&1'
		step "read files" "$READ_FILES"
		step "readlink" 'find $MNT -type l -exec readlink {} + >/dev/null 2>&1'
		step "append" 'find $MNT -type f -exec sh -c '"'"'echo x 2>/dev/null >>"$1"'"'"' sh {} \; 2>/dev/null'
		step "truncate" 'find $MNT -type f -exec truncate -s 5000 {} + 2>/dev/null'
		step "mkdir" 'mkdir $MNT/a/newdir 2>/dev/null'
		step "rm -rf all" 'rm -rf $MNT/* 2>/dev/null'
		unmount
	else
		refused=$((refused + 1))
	fi
	repair
done
note "$((ITERATIONS - FROM + 1)) images with damaged inodes and good checksums: $mounted mounted, $refused refused, $repaired repaired, $(elapsed $start) s"
check_eq "fsck.vexfs always ends with 0, 4 or 8 (inodes)" 0 $fsck_bad
check_eq "every mounted image with damaged inodes unmounts" 0 $umount_bad
check_eq "fsck.vexfs -y repairs every image with damaged inodes" 0 $repair_bad
check_eq "no step on a damaged image hangs" 0 $hung
ctx="seed $SEED"

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
	mount_opts | cut -d, -f1
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
check "mkfs.vexfs after the damage" mkfs.vexfs -f -q $DISK2
check "mount" mount -t vexfs $DISK2 $MNT
echo fine >$MNT/f
check_eq "a fresh file system works" fine "$(cat $MNT/f)"
umount $MNT
check "fsck.vexfs clean" fsck.vexfs $DISK2
finish
