#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Configure and build the assembled kernel out of tree (O=build/obj-ARCH).
#
# The configuration is `make tinyconfig` with the fragment(s) of
# tools/testing/vexfs/ merged over it; it is regenerated only when a fragment
# changes. Every option a fragment sets to y must survive olddefconfig.
#
#   scripts/build-kernel.sh [x86|x86-debug|um] [make targets...]
#
# x86-debug is the debug kernel: config.debug (KASAN, KFENCE, kmemleak, ...)
# over the x86 configuration, built in build/obj-x86-debug.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ARCH_NAME=${1:-x86}
shift || true
KTREE=$BUILD/linux
OBJ=$BUILD/obj-$ARCH_NAME
FRAGMENTS=("$TOP/tools/testing/vexfs/config")
[ "$ARCH_NAME" = um ] && FRAGMENTS+=("$TOP/tools/testing/vexfs/config.um")
[ "$ARCH_NAME" = x86-debug ] && FRAGMENTS+=("$TOP/tools/testing/vexfs/config.debug")

kmake() {
	local arch=x86_64
	[ "$ARCH_NAME" = um ] && arch=um
	make -C "$KTREE" O="$OBJ" ARCH=$arch LLVM="$LLVM_SUFFIX" \
		CC="ccache clang$LLVM_SUFFIX" \
		RUSTC="$RUSTC" BINDGEN="$BINDGEN" RUST_LIB_SRC="$RUST_LIB_SRC" \
		RUSTFMT="$RUSTFMT" CLIPPY=1 CLIPPY_DRIVER="$CLIPPY_DRIVER" \
		-j"$(nproc)" "$@"
}

# The options the fragments set to y, a later fragment overriding an earlier
# one (config.um switches off options of the x86 VM).
wanted_y() {
	cat "${FRAGMENTS[@]}" | sed -nE 's/^# (CONFIG_[A-Z0-9_]+) is not set$/\1=n/p; /^CONFIG_[A-Z0-9_]+=/p' |
		awk -F= '{ v[$1] = $0; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
			END { for (i = 1; i <= n; i++) if (v[order[i]] ~ /=y$/) print v[order[i]] }'
}

configure() {
	local stamp=$OBJ/.vexfs-config-stamp want
	want=$(cat "${FRAGMENTS[@]}" | sha256sum | cut -d' ' -f1)
	if [ -f "$OBJ/.config" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
		kmake -s olddefconfig >/dev/null
		return
	fi
	log "configuring $OBJ"
	mkdir -p "$OBJ"
	kmake -s tinyconfig >/dev/null
	(cd "$KTREE" && ARCH=$( [ "$ARCH_NAME" = um ] && echo um || echo x86_64 ) \
		scripts/kconfig/merge_config.sh -m -O "$OBJ" "$OBJ/.config" "${FRAGMENTS[@]}" >/dev/null)
	kmake -s olddefconfig >/dev/null
	local opt missing=0
	while read -r opt; do
		if ! grep -qx "$opt" "$OBJ/.config"; then
			log "config: $opt did not survive olddefconfig"
			missing=1
		fi
	done < <(wanted_y)
	[ $missing = 0 ] || die "kernel configuration incomplete (see above)"
	echo "$want" >"$stamp"
}

export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/vexfs-ccache}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
configure
if [ $# -eq 0 ]; then
	if [ "$ARCH_NAME" = um ]; then set -- vmlinux; else set -- bzImage; fi
fi
log "building $* ($ARCH_NAME)"
kmake "$@"
