# SPDX-License-Identifier: GPL-2.0
# Shared settings for the VexFS driver scripts. Sourced, not executed.

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
TOOLS_ROOT=${TOOLS_ROOT:-$HOME/.cache/vexfs-tools}

RUSTC=${RUSTC:-/usr/bin/rustc}
rust_lib_src() {
	local d
	d=$( (ls -d /usr/src/rustc-*/library 2>/dev/null || true) | sort -V | tail -n1)
	echo "${d:-/usr/src/rustc-1.96.0/library}"
}
RUST_LIB_SRC=${RUST_LIB_SRC:-$(rust_lib_src)}
BINDGEN=${BINDGEN:-$TOOLS_ROOT/bin/bindgen}
# clippy and rustfmt must match rustc: take them from the same (Debian) toolchain.
CLIPPY_DRIVER=${CLIPPY_DRIVER:-$(dirname "$RUSTC")/clippy-driver}
RUSTFMT=${RUSTFMT:-$(dirname "$RUSTC")/rustfmt}
LLVM_SUFFIX=${LLVM_SUFFIX:--19}
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}

log() { printf '[vexfs] %s\n' "$*" >&2; }
die() { printf '[vexfs] error: %s\n' "$*" >&2; exit 1; }

SERIES_AUTHOR_NAME=${SERIES_AUTHOR_NAME:-VexFS Developers}
SERIES_AUTHOR_EMAIL=${SERIES_AUTHOR_EMAIL:-vexfs-devel@example.org}
SERIES_DATE=${SERIES_DATE:-2026-11-24T00:00:00+0000}

kernel_tarball() {
	local t
	t=$( (ls /usr/src/linux-source-7.3.tar.* 2>/dev/null || true) | head -n1)
	[ -n "$t" ] || die "no kernel source: run 'make setup' or set KERNEL_SRC"
	echo "$t"
}

# The files of this repository that belong to the kernel tree.
kernel_files() {
	git -C "$TOP" ls-files --cached --others --exclude-standard -- \
		rust fs include Documentation MAINTAINERS
}
