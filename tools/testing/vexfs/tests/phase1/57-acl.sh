#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# POSIX ACLs: the VFS's permission checks honour an access ACL (a non-root
# user reads a file its mode denies it, another user still cannot), chmod
# updates the ACL's mask, an ACL that the mode says all of is not kept,
# a directory's default ACL is inherited by new files and directories
# (and replaces the umask), the umask applies without one, and all of it
# stays after a remount and a clean fsck. busybox has no setfacl or
# getfacl: vexfs-stress xattr setacl/getacl write and read
# system.posix_acl_access and system.posix_acl_default.
. /vexfs/lib.sh

check "mkfs.vexfs" mkfs.vexfs -f -q -L acl $DISK2 32M
mount -t vexfs $DISK2 $MNT
x() { vexfs-stress xattr "$@"; }
f=$MNT/secret
echo secret >$f
chmod 600 $f

check_eq "mode 600: user 1000 cannot read" EACCES "$(x $f as 1000 read)"
check_eq "grant user 1000 read access" ok \
	"$(x $f setacl access u::rw-,u:1000:r--,g::---,m::r--,o::---)"
check_eq "the ACL reads back" "u::rw-,u:1000:r--,g::---,m::r--,o::---" "$(x $f getacl access)"
check_eq "the mode's group bits show the mask" "-rw-r-----" "$(stat -c %A $f)"
check_eq "user 1000 reads now" ok "$(x $f as 1000 read)"
check_eq "user 1000 still cannot write" EACCES "$(x $f as 1000 write)"
check_eq "user 1001 still cannot read" EACCES "$(x $f as 1001 read)"
check_eq "listed as system.posix_acl_access" system.posix_acl_access "$(x $f list)"
check_eq "a non-owner cannot change the ACL" EPERM \
	"$(x $f as 1000 setacl access u::rw-,u:1000:rw-,g::---,m::rw-,o::---)"
chmod 600 $f
check_eq "chmod 600 clears the mask" "u::rw-,u:1000:r--,g::---,m::---,o::---" \
	"$(x $f getacl access)"
check_eq "so user 1000 cannot read again" EACCES "$(x $f as 1000 read)"
chmod 640 $f

echo plain >$MNT/plain
check_eq "an ACL equal to the mode" ok "$(x $MNT/plain setacl access u::rw-,g::r--,o::---)"
check_eq "is not kept: the mode says it" ENODATA "$(x $MNT/plain getacl access)"
check_eq "and the mode is set" "-rw-r-----" "$(stat -c %A $MNT/plain)"

# Default ACLs and the umask.
mkdir $MNT/shared
check_eq "a default ACL on a directory" ok \
	"$(x $MNT/shared setacl default u::rwx,u:1000:rw-,g::r-x,m::rwx,o::---)"
check_eq "a default ACL on a file: EACCES" EACCES \
	"$(x $f setacl default u::rwx,g::r-x,o::---)"
(umask 077; echo new >$MNT/shared/new; mkdir $MNT/shared/sub)
check_eq "a new file inherits the default ACL (not the umask)" \
	"u::rw-,u:1000:rw-,g::r-x,m::rw-,o::---" "$(x $MNT/shared/new getacl access)"
check_eq "so user 1000 may write it" ok "$(x $MNT/shared/new as 1000 write)"
check_eq "a new directory inherits it as its default ACL too" \
	"u::rwx,u:1000:rw-,g::r-x,m::rwx,o::---" "$(x $MNT/shared/sub getacl default)"
(umask 027; echo u >$MNT/masked; mkdir $MNT/maskdir)
check_eq "without a default ACL the umask applies to a file" "-rw-r-----" \
	"$(stat -c %A $MNT/masked)"
check_eq "and to a directory" "drwxr-x---" "$(stat -c %A $MNT/maskdir)"
check_eq "remove the default ACL" ok "$(x $MNT/shared rmacl default)"
check_eq "it is gone" ENODATA "$(x $MNT/shared getacl default)"

umount $MNT
check "fsck.vexfs: clean" fsck.vexfs -n $DISK2
mount -t vexfs $DISK2 $MNT
check_eq "after a remount: the ACL" "u::rw-,u:1000:r--,g::---,m::r--,o::---" \
	"$(x $f getacl access)"
check_eq "after a remount: user 1000 reads" ok "$(x $f as 1000 read)"
check_eq "after a remount: user 1001 does not" EACCES "$(x $f as 1001 read)"
check_eq "after a remount: the inherited ACL" "u::rw-,u:1000:rw-,g::r-x,m::rw-,o::---" \
	"$(x $MNT/shared/new getacl access)"
check_eq "remove the access ACL" ok "$(x $f rmacl access)"
check_eq "then the mode alone decides" EACCES "$(x $f as 1000 read)"
umount $MNT
check "fsck.vexfs: clean at the end" fsck.vexfs -n $DISK2
finish
