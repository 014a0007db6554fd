#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Concurrent writers to different files and to one directory, appenders to
# one file (O_APPEND), and cp -a of a directory tree.
. /vexfs/lib.sh

check "mkfs.vexfs" mkfs.vexfs -f -q -L concurrent $DISK1
check "mount" mount -t vexfs $DISK1 $MNT

# Four writers, each to its own file, interleaving their block allocations.
for w in 1 2 3 4; do
	dd if=/dev/urandom of=/tmp/src$w bs=1024 count=$((2000 + w * 700)) 2>/dev/null
done
start=$(now)
for w in 1 2 3 4; do
	(dd if=/tmp/src$w of=$MNT/w$w bs=4096 2>/dev/null) &
done
wait
note "4 concurrent writers of 12 MiB in all: $(elapsed $start) s"
bad=0
for w in 1 2 3 4; do
	cmp -s /tmp/src$w $MNT/w$w || bad=$((bad + 1))
done
check_eq "concurrent writers: every file as written (page cache)" 0 $bad
drop_caches
bad=0
for w in 1 2 3 4; do
	cmp -s /tmp/src$w $MNT/w$w || bad=$((bad + 1))
done
check_eq "concurrent writers: every file as written (disk)" 0 $bad

# Four creators in one directory.
mkdir $MNT/shared
for w in 1 2 3 4; do
	(i=0; while [ $i -lt 200 ]; do echo "$w.$i" >$MNT/shared/w$w-$i; i=$((i + 1)); done) &
done
wait
check_eq "concurrent creates in one directory: every file there" 800 "$(ls $MNT/shared | wc -l)"
bad=0
for w in 1 2 3 4; do
	for i in 0 57 199; do
		[ "$(cat $MNT/shared/w$w-$i)" = "$w.$i" ] || bad=$((bad + 1))
	done
done
check_eq "concurrent creates: contents" 0 $bad
# And concurrent removers.
for w in 1 2 3 4; do
	(rm $MNT/shared/w$w-*) &
done
wait
check_eq "concurrent removes: directory empty" "" "$(ls -A $MNT/shared)"

# O_APPEND from two processes at once: no record lost or overwritten.
for w in a b; do
	(i=0; while [ $i -lt 300 ]; do echo "$w-record-$(printf %04d $i)" >>$MNT/log; i=$((i + 1)); done) &
done
wait
check_eq "O_APPEND: size is every record" $((600 * 14)) "$(stat -c %s $MNT/log)"
check_eq "O_APPEND: every record of a once" 300 "$(grep -c '^a-record-[0-9]\{4\}$' $MNT/log)"
check_eq "O_APPEND: every record of b once" 300 "$(grep -c '^b-record-[0-9]\{4\}$' $MNT/log)"
check_eq "O_APPEND: records of a in order" "$(printf 'a-record-%04d\n' $(seq 0 299))" "$(grep '^a-' $MNT/log)"

# Renaming a directory over an empty one, in one directory and across two.
mkdir -p $MNT/r/a/sub $MNT/r/b $MNT/r2/c
echo in-a >$MNT/r/a/file
mv -T $MNT/r/a $MNT/r/b
check_eq "rename of a directory over an empty one: parent link count" 3 "$(stat -c %h $MNT/r)"
check_eq "the moved directory keeps its content" in-a "$(cat $MNT/r/b/file)"
mv -T $MNT/r/b $MNT/r2/c
check_eq "across directories: link count of the source parent" 2 "$(stat -c %h $MNT/r)"
check_eq "across directories: link count of the target parent" 3 "$(stat -c %h $MNT/r2)"
check_eq "'..' of the moved directory is its new parent" "$(stat -c %i $MNT/r2)" \
	"$(stat -c %i $MNT/r2/c/..)"
rm -rf $MNT/r $MNT/r2

# cp -a of a tree into the file system, and within it.
mkdir -p /tmp/tree/sub/deeper
cp -r /vexfs/tests /vexfs/lib.sh /tmp/tree/
cp /tmp/src1 /tmp/tree/sub/deeper/data
ln -s ../lib.sh /tmp/tree/sub/link
ln /tmp/tree/sub/deeper/data /tmp/tree/sub/hard
chmod 751 /tmp/tree/sub
touch -d '2001-02-03 04:05:06' /tmp/tree/lib.sh
check "cp -a of a tree into vexfs" cp -a /tmp/tree $MNT/tree
check "cp -a within vexfs" cp -a $MNT/tree $MNT/tree2
list() {
	(cd "$1" && find . | sort | while read -r f; do
		# Directory sizes differ between file systems; busybox cp -a
		# keeps the mtimes of files only.
		s=$(stat -c '%n %a %F' "$f")
		if [ -L "$f" ]; then
			s="$s $(readlink "$f")"
		elif [ -f "$f" ]; then
			s="$s $(stat -c '%s %Y' "$f") $(md5sum <"$f")"
		fi
		echo "$s"
	done)
}
list /tmp/tree >/tmp/tree.list
check_eq "cp -a: names, modes, sizes, types, mtimes and contents kept" \
	"$(cat /tmp/tree.list)" "$(list $MNT/tree)"
check_eq "cp -a within vexfs: the same" "$(cat /tmp/tree.list)" "$(list $MNT/tree2)"
umount $MNT
drop_caches
mount -t vexfs $DISK1 $MNT
check_eq "cp -a copies after remount" "$(cat /tmp/tree.list)" "$(list $MNT/tree2)"
rm -rf $MNT/tree $MNT/tree2
umount $MNT
check "fsck.vexfs clean" fsck.vexfs $DISK1
finish
