#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the kernel at every commit of the series (vexfs-base..vexfs of the
# assembled tree), as `git bisect` would, and report the first commit that
# does not build.
#
# The commits are checked out in place in build/linux (detached HEAD; the
# vexfs branch is checked out again at the end) and built out of tree in
# build/obj-bisect, so the test kernel in build/obj-x86 keeps its objects.
# The configuration is the test configuration (tools/testing/vexfs/config
# over tinyconfig), made at the tip and given to olddefconfig at every
# commit. Before VexFS exists nothing selects CONFIG_BUFFER_HEAD, so the
# first commits build the abstractions without buffer heads, and the later
# ones (CONFIG_VEXFS=y selects it) with them: both configurations of
# rust/kernel/fs are compiled. Later runs are incremental, and C objects
# come from ccache.
#
#   scripts/bisect-check.sh [--keep-going]
#
# --keep-going builds every commit even after a failure. Logs go to
# build/bisect/NN-<subject>.log. Exits non-zero if a commit does not build;
# the first commit whose build prints warnings is reported too.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KTREE=$BUILD/linux
OBJ=$BUILD/obj-bisect
LOGS=$BUILD/bisect
keep_going=0
[ "${1:-}" = --keep-going ] && keep_going=1

git -C "$KTREE" rev-parse -q --verify vexfs >/dev/null || die "no assembled tree: run 'make tree'"
[ -z "$(git -C "$KTREE" status --porcelain --untracked-files=no)" ] ||
	die "build/linux has local changes: run 'make tree' first"

export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/vexfs-ccache}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}

kmake() {
	make -C "$KTREE" O="$OBJ" ARCH=x86_64 LLVM="$LLVM_SUFFIX" \
		CC="ccache clang$LLVM_SUFFIX" \
		RUSTC="$RUSTC" BINDGEN="$BINDGEN" RUST_LIB_SRC="$RUST_LIB_SRC" \
		RUSTFMT="$RUSTFMT" CLIPPY=1 CLIPPY_DRIVER="$CLIPPY_DRIVER" \
		-j"$(nproc)" "$@"
}

restore() {
	git -C "$KTREE" checkout -q -f vexfs
}
trap restore EXIT

# The configuration, made once at the tip of the series and kept in
# $LOGS/config; every commit starts from it (olddefconfig drops the symbols
# that do not exist yet, e.g. CONFIG_VEXFS before fs/vexfs/Kconfig).
mkdir -p "$LOGS" "$OBJ"
restore
want=$(sha256sum <"$TOP/tools/testing/vexfs/config" | cut -d' ' -f1)
if [ "$(cat "$LOGS/config.stamp" 2>/dev/null)" != "$want" ] || [ ! -f "$LOGS/config" ]; then
	log "configuring $OBJ"
	kmake -s tinyconfig >/dev/null
	(cd "$KTREE" && ARCH=x86_64 scripts/kconfig/merge_config.sh -m -O "$OBJ" \
		"$OBJ/.config" "$TOP/tools/testing/vexfs/config" >/dev/null)
	kmake -s olddefconfig >/dev/null
	for opt in CONFIG_VEXFS=y CONFIG_BUFFER_HEAD=y CONFIG_RUST=y; do
		grep -qx "$opt" "$OBJ/.config" || die "bisect configuration: no $opt"
	done
	cp "$OBJ/.config" "$LOGS/config"
	echo "$want" >"$LOGS/config.stamp"
fi

commits=$(git -C "$KTREE" rev-list --reverse vexfs-base..vexfs)
total=$(wc -w <<<"$commits")
i=0 first_bad= first_warn= results=()
for c in $commits; do
	i=$((i + 1))
	subject=$(git -C "$KTREE" log -1 --format=%s "$c")
	name=$(printf '%02d-%s' "$i" "$(tr -c 'A-Za-z0-9\n' - <<<"$subject" | cut -c1-50)")
	git -C "$KTREE" checkout -q -f --detach "$c"
	cp "$LOGS/config" "$OBJ/.config"
	start=$(date +%s)
	log "[$i/$total] $subject"
	if { kmake -s olddefconfig && kmake bzImage; } >"$LOGS/$name.log" 2>&1; then
		status=ok
	else
		status=FAILED
	fi
	secs=$(($(date +%s) - start))
	cfg=$(for o in BUFFER_HEAD VEXFS; do
		grep -q "^CONFIG_$o=y" "$OBJ/.config" && printf '%s=y ' $o || printf '%s=n ' $o
	done)
	# Warnings (CLIPPY=1, -Wall) are reported, with the first commit that has any.
	warnings=$(grep -E '^warning:|: warning: ' "$LOGS/$name.log" |
		grep -cvE '^warning: [0-9]+ warnings? emitted' || true)
	if [ "$warnings" != 0 ] && [ -z "$first_warn" ]; then
		first_warn="$i/$total $(git -C "$KTREE" log -1 --format='%h %s' "$c")"
		grep -E '^warning:|: warning: ' -A2 "$LOGS/$name.log" | head -n 20 >&2 || true
	fi
	results+=("$(printf '%2d/%d  %-6s %4ss  %s warning(s)  %s %s' "$i" "$total" "$status" "$secs" \
		"$warnings" "$cfg" "$subject")")
	log "${results[-1]}"
	if [ $status != ok ]; then
		grep -E '^(error|warning)|: error: ' -A6 "$LOGS/$name.log" | head -n 30 >&2 || true
		[ -n "$first_bad" ] || first_bad="$i/$total $(git -C "$KTREE" log -1 --format='%h %s' "$c")"
		[ $keep_going = 1 ] || break
	fi
done

echo
echo "Build of every commit of the series (logs in ${LOGS#"$TOP"/}):"
printf '  %s\n' "${results[@]}"
[ -z "$first_warn" ] || echo "first commit with build warnings: $first_warn (see its log)"
if [ -n "$first_bad" ]; then
	echo "first commit that does not build: $first_bad"
	exit 1
fi
echo "every commit builds ($total commits)"
