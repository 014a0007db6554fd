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
	run mkfs.vexfs -L demo /dev/vda
	run mount -t vexfs /dev/vda /mnt || exit 0
	run mkdir /mnt/notes
	say "echo 'hello from VexFS' > /mnt/notes/hello.txt"
	echo 'hello from VexFS' >/mnt/notes/hello.txt
	run cat /mnt/notes/hello.txt
	run ls -la /mnt /mnt/notes
	run df -h /mnt
	run umount /mnt
	run fsck.vexfs -v /dev/vda
fi
echo
echo "=== end of demo ==="
