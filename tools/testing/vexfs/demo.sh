#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The VexFS demo, run by /init in the VM (`make run`).
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }

echo
echo "=== VexFS demo: $(uname -sr) ==="
run grep vexfs /proc/filesystems
if command -v mkfs.vexfs >/dev/null 2>&1; then
	run mkfs.vexfs -f -L demo /dev/vda
	run mount -t vexfs /dev/vda /mnt || exit 0
	run mkdir /mnt/notes
	say "echo 'hello from VexFS' > /mnt/notes/hello.txt"
	echo 'hello from VexFS' >/mnt/notes/hello.txt
	run cat /mnt/notes/hello.txt
	run ls -la /mnt /mnt/notes
	run df -h /mnt
	if command -v vexctl >/dev/null 2>&1; then
		echo
		echo "--- vectors: 2000 points of dimension 16 around 8 centres ---"
		run touch /mnt/demo.vec
		run vexctl create /mnt/demo.vec --dim 16 --metric l2
		run vexctl insert /mnt/demo.vec /vexfs/data/demo.fvecs --quiet
		run vexctl stats /mnt/demo.vec
		say "vexctl search /mnt/demo.vec --query /vexfs/data/demo.fvecs:8 -k 5"
		echo "(row 8 belongs to centre 0, like every id that is a multiple of 8)"
		vexctl search /mnt/demo.vec --query /vexfs/data/demo.fvecs:8 -k 5
		run vexctl search /mnt/demo.vec --query /vexfs/data/demo.fvecs:8 -k 5 --exact
		run vexctl delete /mnt/demo.vec 8
		run vexctl search /mnt/demo.vec --query /vexfs/data/demo.fvecs:8 -k 3
		run ls -l /mnt/demo.vec
	fi
	run umount /mnt
	run fsck.vexfs -v /dev/vda
fi
echo
echo "=== end of demo ==="
