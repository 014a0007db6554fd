#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# vexctl end to end on a small collection of its own (a loop device on a
# tmpfs image, so the other tests' disks are untouched): create, insert from
# a .bvecs file, exact and indexed search with inline and file queries,
# filtered search, delete, build-index, stats, --json, i8 collections and
# refused requests.
. /vexfs/lib.sh

IMG=/tmp/vexctl.img
M=/tmp/vexctl-mnt
V=/tmp/vexctl.bvecs
truncate -s 32M $IMG
LOOP=$(losetup -f)
check "loop device" losetup $LOOP $IMG
check "mkfs.vexfs" mkfs.vexfs -f -q $LOOP
mkdir -p $M
check "mount" mount -t vexfs $LOOP $M

# Five 3-element vectors, .bvecs records (32-bit dimension, then bytes):
# (0,0,0) (1,0,0) (0,2,0) (3,3,3) (0,0,9)
for v in '\000\000\000' '\001\000\000' '\000\002\000' '\003\003\003' '\000\000\011'; do
	printf "\\003\\000\\000\\000$v"
done >$V

# ids of a --json search, space separated
ids() { grep -o '"id": [0-9]*' | sed 's/"id": //' | tr '\n' ' ' | sed 's/ $//'; }
count() { vexctl stats "$1" --json | grep -o '"count": [0-9]*' | sed 's/.*: //'; }

check "create (l2, M 8, ef_construction 32)" \
	vexctl create $M/c --dim 3 --metric l2 --m 8 --ef-construction 32
check "stats shows the parameters" sh -c "vexctl stats $M/c | grep -q 'dimension        3' &&
	vexctl stats $M/c | grep -q 'metric           l2'"
check "insert a .bvecs file in batches of 2" vexctl insert $M/c $V --ids-from 100 --batch 2 --quiet
check_eq "5 vectors" 5 "$(count $M/c)"
if vexfs-stress mmap-write $M/c 0 >/tmp/mmap.out 2>&1; then
	fail "a collection cannot be mapped shared and writable"
else
	check "a collection cannot be mapped shared and writable (EPERM)" \
		grep -q "Operation not permitted" /tmp/mmap.out
fi
check_eq "and is unchanged: still 5 vectors" 5 "$(count $M/c)"
check_eq "exact search, inline query" "101 100" \
	"$(vexctl search $M/c --query 1,0,0.5 -k 2 --exact --json | ids)"
d=$(vexctl search $M/c --query 1,0,0.5 -k 1 --exact --json | grep -o '"distance": [0-9.e-]*' | sed 's/.*: //')
check "exact search distance is the squared L2 0.25 ($d)" awk "BEGIN { exit !($d > 0.2499 && $d < 0.2501) }"
check_eq "indexed search" "101 100" "$(vexctl search $M/c --query 1,0,0.5 -k 2 --json | ids)"
check_eq "query from a file row" "103" "$(vexctl search $M/c --query $V:3 -k 1 --json | ids)"
check_eq "k larger than the collection" "5" \
	"$(vexctl search $M/c --query 0,0,0 -k 10 --exact --json | grep -o '"count": [0-9]*' | sed 's/.*: //')"
check_eq "filtered by id range" "102 103" \
	"$(vexctl search $M/c --query 1,0,0.5 -k 2 --exact --id-range 102:200 --json | ids)"
echo 104 >/tmp/vexctl.ids
echo 100 >>/tmp/vexctl.ids
check_eq "filtered by an id list, indexed" "100 104" \
	"$(vexctl search $M/c --query 1,0,0.5 -k 3 --ids @/tmp/vexctl.ids --json | ids)"
check_eq "filtered by both" "104" \
	"$(vexctl search $M/c --query 1,0,0.5 -k 3 --ids 100,104 --id-range 101:104 --json | ids)"
check_fails "an empty id range is refused" vexctl search $M/c --query 1,0,0.5 --id-range 5:4
check_fails "an id already present is refused" vexctl insert $M/c $V --ids-from 104 --quiet
check_eq "a refused batch inserts nothing" 5 "$(count $M/c)"
check_fails "a query of the wrong dimension is refused" vexctl search $M/c --query 1,2
check_eq "delete (one id unknown)" '{"requested": 2, "deleted": 1}' "$(vexctl delete $M/c 101 999 --json)"
check_eq "deleted vector is not found" "100 102" \
	"$(vexctl search $M/c --query 1,0,0.5 -k 2 --exact --json | ids)"
check "build-index --compact" vexctl build-index $M/c --compact --json
check_eq "4 vectors after compaction" 4 "$(count $M/c)"
check_eq "indexed search after rebuild" "100 102" "$(vexctl search $M/c --query 1,0,0.5 -k 2 --json | ids)"

check "create an i8 inner-product collection" vexctl create $M/b --dim 3 --type i8 --metric ip
check "insert bytes into it" vexctl insert $M/b $V --ids-from 1 --quiet
check_eq "i8 inner-product search" "5" "$(vexctl search $M/b --query 0,0,3 -k 1 --json | ids)"
check_fails "a non-integer query for i8 is refused" vexctl search $M/b --query 0,0,0.5

echo plain >$M/plain
check_fails "a plain file is not a collection" vexctl stats $M/plain
check_fails "create needs --dim" vexctl create $M/d
check "umount" umount $M
losetup -d $LOOP
rm -f $IMG $V /tmp/vexctl.ids
finish
