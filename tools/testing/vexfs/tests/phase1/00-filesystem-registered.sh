#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# VexFS is built in and registered with the VFS.
. /vexfs/lib.sh

check "vexfs is listed in /proc/filesystems" grep -qw vexfs /proc/filesystems
check "vexfs requires a block device" sh -c 'grep -w vexfs /proc/filesystems | grep -qv nodev'
finish
