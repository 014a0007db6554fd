#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the VexFS user-space tools (tools/vexfs, a cargo workspace) as
# statically linked binaries for the VM. Prints nothing if there is nothing
# to build yet.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

WS=$TOP/tools/vexfs
[ -f "$WS/Cargo.toml" ] || exit 0
export CARGO_TARGET_DIR=$BUILD/cargo
# Run from the workspace, so that its .cargo/config.toml (static linking) applies.
cd "$WS"
# The user-space build of the kernel's vector engine (vexfs-engine and its
# kernel-shim) is a host benchmark: not a tool of the VM.
cargo build --quiet --release --locked --target x86_64-unknown-linux-gnu --workspace \
	--exclude vexfs-engine --exclude kernel-shim --exclude kernel-shim-macros
