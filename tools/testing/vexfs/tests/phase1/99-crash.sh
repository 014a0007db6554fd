#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Crash, part 1: write files, make some durable (fsync, sync), keep writing,
# and crash the VM with the file system mounted and busy once the phase has
# reported (run-tests.sh). Phase 2 checks what was made durable.
# Must stay the last test of the phase.
. /vexfs/lib.sh

check "mkfs.vexfs" mkfs.vexfs -f -q -L crash $DISK2
check "mount" mount -t vexfs $DISK2 $MNT
mkdir $MNT/durable $MNT/volatile

# 1. Written, then made durable by sync(2).
mkdir $MNT/durable/synced
for i in 1 2 3 4 5; do
	head -c $((i * 30000)) /dev/urandom >$MNT/durable/synced/s$i
done
ln -s s1 $MNT/durable/synced/link
sync

# 2. Each made durable by fsync(2), while other files change around it.
for i in 1 2 3 4 5 6; do
	head -c $((i * 1000000 + 123)) /dev/urandom >/tmp/f$i
	head -c 50000 /dev/urandom >$MNT/volatile/v$i
	case $i in
	1 | 3 | 5) dd if=/tmp/f$i of=$MNT/durable/fsync$i bs=64k conv=fsync 2>/dev/null ;;
	*) cp /tmp/f$i $MNT/durable/fsync$i && sync $MNT/durable/fsync$i ;;
	esac
done
# A file rewritten in place and fsync'd.
head -c 200000 /dev/urandom >$MNT/durable/rewritten
sync
dd if=/dev/urandom of=$MNT/durable/rewritten bs=4096 seek=10 count=5 conv=notrunc,fsync 2>/dev/null

# The manifest of what must survive, made durable too.
(cd $MNT/durable && find . -type f | sort | xargs md5sum) >$MNT/durable.md5
sync $MNT/durable.md5
check_eq "manifest lists every durable file" 12 "$(wc -l <$MNT/durable.md5)"
check "every durable file reads back before the crash" \
	sh -c "cd $MNT/durable && md5sum -c -s $MNT/durable.md5"

# 3. A vector collection: inserts and deletes made durable by fsync(2), deletes
# that are not, and a writer still changing it when the VM crashes (inserts,
# upserts, deletes, an fsync now and then).
mkdir $MNT/vectors
sync
check "collection: durable and volatile changes" vexfs-ioctl-test crash-write $MNT/vectors
(vexfs-ioctl-test crash-run $MNT/vectors >/dev/null 2>&1 &)

# 4. Activity that must not matter: unsynced writes, unlinks, renames, and a
# writer still running when the VM crashes.
for i in 1 2 3 4 5 6; do
	echo "changed $i" >>$MNT/volatile/v$i
done
rm $MNT/volatile/v2
mv $MNT/volatile/v3 $MNT/volatile/v3-renamed
mkdir $MNT/volatile/newdir
head -c 3000000 /dev/urandom >$MNT/volatile/newdir/unsynced
(while :; do
	dd if=/dev/urandom of=$MNT/volatile/running bs=64k count=64 2>/dev/null
done) &
sleep 2
ok "writer running: crashing with the file system mounted after the phase"
crash_after_phase
finish
