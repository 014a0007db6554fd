#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# mkfs.vexfs refuses an existing file system without -f. Mount options:
# errors= takes continue or remount-ro, index_budget= a size
# with an optional k/m/g/t suffix; anything else, and any unknown option, is
# refused with EINVAL. /proc/mounts shows the options (show_options), and
# statfs(2) an f_fsid from the UUID.
. /vexfs/lib.sh

# check_opt DESCRIPTION PATTERN: passes when one of the options of $MNT in
# /proc/mounts matches the glob PATTERN; check_no_opt when none does.
check_opt() {
	case ",$(mount_opts)," in
	*,$2,*) ok "$1" ;;
	*) fail "$1: $(mount_opts)" ;;
	esac
}
check_no_opt() {
	case ",$(mount_opts)," in
	*,$2,*) fail "$1: $(mount_opts)" ;;
	*) ok "$1" ;;
	esac
}

mkfs.vexfs -f -q -L options $DISK2

# mkfs.vexfs refuses a device holding a file system unless forced (-f).
case "$(mkfs.vexfs -q $DISK2 2>&1)" in
*"contains a VexFS filesystem; use -f"*) ok "mkfs.vexfs refuses an existing VexFS without -f" ;;
*) fail "mkfs.vexfs over an existing VexFS: $(mkfs.vexfs -q $DISK2 2>&1)" ;;
esac

# mount_err OPTIONS: the error message of a mount that must fail.
mount_err() {
	if mount -t vexfs -o "$1" $DISK2 $MNT 2>/tmp/mount.err; then
		umount $MNT
		echo "mounted"
	else
		cat /tmp/mount.err
	fi
}

check "-o errors=remount-ro is accepted" mount -t vexfs -o errors=remount-ro $DISK2 $MNT
check_opt "/proc/mounts shows errors=remount-ro" errors=remount-ro
# busybox stat -f prints the two halves of f_fsid in hex.
fsid=$(stat -f -c %i $MNT)
case "$fsid" in
"" | 0 | 00000000 | 0000000000000000) fail "statfs: an f_fsid: '$fsid'" ;;
*) ok "statfs: an f_fsid ($fsid)" ;;
esac
echo data >$MNT/f
check_eq "the file system is writable with errors=remount-ro" data "$(cat $MNT/f)"
check "umount" umount $MNT
check "-o errors=continue is accepted" mount -t vexfs -o errors=continue $DISK2 $MNT
check_eq "data kept" data "$(cat $MNT/f)"
check_no_opt "/proc/mounts leaves out the default errors=continue" 'errors=*'
check_opt "/proc/mounts shows index_budget=" 'index_budget=[1-9]*'
umount $MNT
check "-o ro is accepted" mount -t vexfs -o ro $DISK2 $MNT
check_fails "a read-only mount refuses writes" sh -c "echo x >$MNT/g"
umount $MNT

case "$(mount_err errors=bogus)" in
*"Invalid argument"*) ok "-o errors=bogus is refused with EINVAL" ;;
*) fail "-o errors=bogus: $(cat /tmp/mount.err)" ;;
esac
case "$(mount_err errors)" in
*"Invalid argument"*) ok "-o errors without a value is refused with EINVAL" ;;
*) fail "-o errors: $(cat /tmp/mount.err)" ;;
esac
case "$(mount_err frobnicate=1)" in
*"Invalid argument"*) ok "an unknown option is refused with EINVAL" ;;
*) fail "-o frobnicate=1: $(cat /tmp/mount.err)" ;;
esac
check "-o index_budget=64m is accepted" mount -t vexfs -o index_budget=64m $DISK2 $MNT
check_opt "/proc/mounts shows index_budget=67108864" index_budget=67108864
# The options shown mount again.
opts=$(mount_opts)
umount $MNT
check "a mount with the options /proc/mounts showed" mount -t vexfs -o "$opts" $DISK2 $MNT
umount $MNT
for bad in index_budget=12x index_budget=m index_budget= index_budget=99999999999999999999; do
	case "$(mount_err $bad)" in
	*"Invalid argument"*) ok "-o $bad is refused with EINVAL" ;;
	*) fail "-o $bad: $(cat /tmp/mount.err)" ;;
	esac
done
case "$(mount_err nosuchflag)" in
*"Invalid argument"*) ok "an unknown flag is refused with EINVAL" ;;
*) fail "-o nosuchflag: $(cat /tmp/mount.err)" ;;
esac
check "the file system still mounts after refused options" mount -t vexfs $DISK2 $MNT
check_eq "and its data is intact" data "$(cat $MNT/f)"

# Remount (reconfigure): read-only and read-write are recorded in the super
# block's state (byte 112: 1 clean, 2 in use), so that a crash after a
# remount read-write is noticed; errors= changes, or stays if not given;
# index_budget= cannot change.
sb_state() {
	dd if=$DISK2 bs=1 skip=112 count=4 2>/dev/null | od -An -tu4 | tr -d ' '
}
check_eq "mounted read-write: the state says in use" 2 "$(sb_state)"
check "remount,ro" mount -o remount,ro $MNT
check_eq "remounted read-only: the state says clean" 1 "$(sb_state)"
check_fails "remounted read-only: writes fail" sh -c "echo x >$MNT/g"
check "remount,rw" mount -o remount,rw $MNT
check_eq "remounted read-write: the state says in use" 2 "$(sb_state)"
echo again >$MNT/g
check_eq "remounted read-write: writes work" again "$(cat $MNT/g)"
check "remount,errors=remount-ro" mount -o remount,errors=remount-ro $MNT
check_opt "remount: errors=remount-ro shows" errors=remount-ro
check "remount,rw without errors=" mount -o remount,rw $MNT
check_opt "remount without errors= keeps errors=remount-ro" errors=remount-ro
check "remount,errors=continue" mount -o remount,errors=continue $MNT
check_no_opt "remount: errors=continue is the default again" 'errors=*'
budget=$(mount_opts | tr ',' '\n' | sed -n 's/^index_budget=//p')
check "remount with the same index_budget=" mount -o remount,index_budget=$budget $MNT
check_fails "remount with another index_budget= is refused" mount -o remount,index_budget=1m $MNT
umount $MNT
check "fsck.vexfs clean" fsck.vexfs $DISK2

# A remount read-only, then an unmount: cleanly unmounted.
mount -t vexfs $DISK2 $MNT
mount -o remount,ro $MNT
umount $MNT
check_eq "remount,ro then umount: the state says clean" 1 "$(sb_state)"
finish
