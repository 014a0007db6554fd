#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Static checks of the series, as a maintainer would run them before
# applying it. Needs the assembled tree (make tree) and, for the build-based
# checks, a configured build directory (make kernel).
#
#   checkpatch   checkpatch.pl --strict on every patch of build/patches
#                (made by patches.sh): no error, no check; every remaining
#                warning type must be justified in series/cover-letter.txt
#   rst          docutils on Documentation/filesystems/vexfs.rst, with
#                warnings as errors, its C example compiled against the
#                uapi header, and kernel-doc on the uapi header
#   rustfmt      make rustfmtcheck: no diff in our Rust files (other files
#                of the tree are reported, not counted)
#   clippy       rebuild our objects with CLIPPY=1: no warning in
#                rust/kernel/fs*, rust/helpers/vfs.c or fs/vexfs
#   rustdoc      make rustdoc: builds, no warning in rust/kernel/fs*
#
#   scripts/check.sh [--no-build] [--build-log FILE] [CHECK...]
#
# --no-build skips clippy (unless --build-log is given) and rustdoc. --build-log FILE checks the CLIPPY=1
# output of a build-kernel.sh run that was already done (make test passes
# the log of its build) instead of rebuilding our objects. Every check prints one line
# "PASS: name" or "FAIL: name"; the script exits non-zero if any failed.
# Logs go to build/check/.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KTREE=$BUILD/linux
OBJ=$BUILD/obj-x86
LOGS=$BUILD/check
# Our files, as regular expressions on paths (relative or absolute).
OURS='(rust/kernel/fs(\.rs|/[^:[:space:]]*)|rust/helpers/vfs\.c|fs/vexfs/[^:[:space:]]*|include/uapi/linux/vexfs\.h)'

build_checks=1
build_log=
want=()
while [ $# -gt 0 ]; do
	a=$1
	shift
	case "$a" in
	--no-build) build_checks=0 ;;
	--build-log) build_log=$(realpath "$1"); shift ;;
	-h | --help) sed -n '3,/^set -e/p' "$0" | grep '^#'; exit 0 ;;
	*) want+=("$a") ;;
	esac
done
[ ${#want[@]} -gt 0 ] || want=(checkpatch rst rustfmt clippy rustdoc)

mkdir -p "$LOGS"
failed=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failed=1; }
# The Python tools the kernel scripts need come from Debian (python3-ply,
# python3-git, python3-docutils): use its interpreter, not another python3
# that may come first in PATH.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
export PATH="/usr/bin:$PATH"

check_checkpatch() {
	bash "$TOP/scripts/patches.sh"
	local p out errors=0 checks=0 types=() t
	for p in "$BUILD"/patches/*.patch; do
		case "$p" in *0000-cover-letter.patch) continue ;; esac
		out=$(cd "$KTREE" && perl scripts/checkpatch.pl --strict --show-types --terse \
			--no-summary "$p" 2>"$LOGS/checkpatch-stderr.log" || true)
		printf '%s\n' "$out" >"$LOGS/checkpatch-$(basename "$p" .patch).log"
		if grep -q ': ERROR:' <<<"$out"; then
			errors=1
			grep ': ERROR:' <<<"$out" | sed 's/^/  /'
		fi
		if grep -q ': CHECK:' <<<"$out"; then
			checks=1
			grep ': CHECK:' <<<"$out" | sed 's/^/  /'
		fi
		while read -r t; do
			[ -n "$t" ] && types+=("$t")
		done < <(grep -o ': WARNING:[A-Z_]*' <<<"$out" | cut -d: -f3)
		grep ': WARNING:' <<<"$out" | sed "s|^.*/\(.*\.patch\)|  \1|" || true
	done
	[ $errors = 0 ] && pass "checkpatch: no error" || fail "checkpatch: no error"
	[ $checks = 0 ] && pass "checkpatch: no check (--strict)" || fail "checkpatch: no check (--strict)"
	local missing=0
	for t in $(printf '%s\n' "${types[@]:-}" | sort -u); do
		if ! grep -q "$t" "$TOP/series/cover-letter.txt"; then
			echo "  warning type $t is not justified in series/cover-letter.txt"
			missing=1
		fi
	done
	[ $missing = 0 ] && pass "checkpatch: remaining warnings are justified in the cover letter" ||
		fail "checkpatch: remaining warnings are justified in the cover letter"
}

check_rst() {
	local rst=Documentation/filesystems/vexfs.rst
	if "$PY" -c 'import docutils' 2>/dev/null; then
		if (cd "$KTREE" && "$PY" -m docutils --halt=warning --report=warning \
			"$rst" /dev/null) >"$LOGS/rst.log" 2>&1; then
			pass "rst: $rst is valid reStructuredText"
		else
			sed 's/^/  /' "$LOGS/rst.log"
			fail "rst: $rst is valid reStructuredText"
		fi
	else
		fail "rst: docutils is not installed (make setup)"
	fi
	if grep -qx '   vexfs' "$KTREE/Documentation/filesystems/index.rst"; then
		pass "rst: vexfs is in the filesystems index"
	else
		fail "rst: vexfs is in the filesystems index"
	fi
	# The C example of the documentation compiles against the uapi header.
	local tmp
	tmp=$(mktemp -d)
	mkdir -p "$tmp/include/linux"
	cp "$KTREE/include/uapi/linux/vexfs.h" "$tmp/include/linux/"
	awk '/^    #include </ { p = 1 } p && /^[^ ]/ { exit } p' "$KTREE/$rst" |
		sed 's/^    //' >"$tmp/example.c"
	if [ -s "$tmp/example.c" ] && "clang$LLVM_SUFFIX" -std=c11 -Wall -Wextra -Werror \
		-fsyntax-only -I"$tmp/include" "$tmp/example.c" >"$LOGS/example.log" 2>&1; then
		pass "rst: the C example of $rst compiles"
	else
		sed 's/^/  /' "$LOGS/example.log"
		fail "rst: the C example of $rst compiles"
	fi
	rm -rf "$tmp"
	(cd "$KTREE" && "$PY" scripts/kernel-doc -none -Wall include/uapi/linux/vexfs.h) \
		>"$LOGS/kernel-doc.log" 2>&1 || true
	if grep -qiE 'warning|error' "$LOGS/kernel-doc.log"; then
		sed 's/^/  /' "$LOGS/kernel-doc.log"
		fail "kernel-doc: include/uapi/linux/vexfs.h"
	else
		pass "kernel-doc: include/uapi/linux/vexfs.h"
	fi
}

check_rustfmt() {
	local log=$LOGS/rustfmtcheck.log rc=0
	bash "$TOP/scripts/build-kernel.sh" x86 rustfmtcheck >"$log" 2>&1 || rc=$?
	local ours others
	ours=$(grep -E '^Diff in ' "$log" | grep -E "$OURS" | sed -E 's/^Diff in (.*):[0-9]+:?$/\1/' |
		sed "s|^$KTREE/||" | sort -u || true)
	others=$(grep -E '^Diff in ' "$log" | grep -vE "$OURS" | sed -E 's/^Diff in (.*):[0-9]+:?$/\1/' |
		sed "s|^$KTREE/||" | sort -u || true)
	[ -z "$others" ] || echo "  (not ours, not counted:" $others ")"
	if [ -n "$ours" ]; then
		echo "  not formatted:" $ours
		fail "rustfmtcheck: our Rust files are formatted"
	elif [ $rc != 0 ] && [ -z "$others" ]; then
		# make failed, and not because of a diff.
		tail -n 20 "$log" | sed 's/^/  /'
		fail "rustfmtcheck: our Rust files are formatted"
	else
		pass "rustfmtcheck: our Rust files are formatted"
	fi
}

# Prints the warnings of a build log that point into our files.
our_warnings() {
	"$PY" - "$1" "$OURS" <<'EOF'
import re, sys
text = open(sys.argv[1], errors="replace").read().splitlines()
ours = re.compile(sys.argv[2])
out = []
for i, line in enumerate(text):
    # C: "path:line:col: warning: ..."
    m = re.match(r"^(\S+):\d+:\d+: warning: ", line)
    if m and ours.search(m.group(1)):
        out.append(line)
        continue
    # Rust: "warning: ..." then " --> path:line:col" a few lines below.
    if line.startswith("warning:") and not re.match(r"warning: \d+ warnings? emitted", line):
        for nxt in text[i + 1:i + 6]:
            m = re.match(r"^\s*--> (\S+)", nxt)
            if m:
                if ours.search(m.group(1)):
                    out.append(f"{m.group(1)}: {line}")
                break
print("\n".join(out))
EOF
}

check_clippy() {
	local log=$LOGS/clippy-build.log w
	if [ -n "$build_log" ]; then
		log=$build_log
		[ -f "$log" ] || { fail "clippy: no build log $log"; return; }
		grep -q '^\[vexfs\] building' "$log" && ! grep -qE '^make(\[[0-9]+\])?: \*\*\*' "$log" &&
			pass "clippy: CLIPPY=1 build succeeds" || fail "clippy: CLIPPY=1 build succeeds"
	elif [ ! -f "$OBJ/.config" ]; then
		fail "clippy: no build directory (make kernel)"
		return
	else
		# Warnings are only printed when a file is compiled: make our objects out of date.
		rm -f "$OBJ/rust/kernel.o" "$OBJ/fs/vexfs/vexfs.o" "$OBJ/rust/helpers/helpers.o"
		build_and_check_clippy "$log"
		return
	fi
	clippy_warnings "$log"
}

build_and_check_clippy() {
	local log=$1
	if ! bash "$TOP/scripts/build-kernel.sh" x86 >"$log" 2>&1; then
		grep -E '^(error|warning)' -A8 "$log" | head -n 40 | sed 's/^/  /'
		fail "clippy: CLIPPY=1 build succeeds"
		return
	fi
	pass "clippy: CLIPPY=1 build succeeds"
	clippy_warnings "$log"
}

clippy_warnings() {
	local log=$1 w
	grep -q 'CLIPPY.*fs/vexfs/vexfs.o\|CLIPPY.*rust/kernel.o' "$log" ||
		echo "  note: our objects were not rebuilt in $log: nothing new to check"
	w=$(our_warnings "$log")
	if [ -n "$w" ]; then
		printf '%s\n' "$w" | sed 's/^/  /'
		fail "clippy: no warning in rust/kernel/fs*, rust/helpers/vfs.c, fs/vexfs"
	else
		pass "clippy: no warning in rust/kernel/fs*, rust/helpers/vfs.c, fs/vexfs"
	fi
}

check_rustdoc() {
	local log=$LOGS/rustdoc.log w
	[ -f "$OBJ/.config" ] || { fail "rustdoc: no build directory (make kernel)"; return; }
	if ! bash "$TOP/scripts/build-kernel.sh" x86 rustdoc >"$log" 2>&1; then
		grep -E '^(error|warning)' -A8 "$log" | head -n 40 | sed 's/^/  /'
		fail "rustdoc: make rustdoc builds"
		return
	fi
	pass "rustdoc: make rustdoc builds"
	w=$(our_warnings "$log")
	if [ -n "$w" ]; then
		printf '%s\n' "$w" | sed 's/^/  /'
		fail "rustdoc: no warning in rust/kernel/fs*"
	else
		pass "rustdoc: no warning in rust/kernel/fs*"
	fi
}

git -C "$KTREE" rev-parse -q --verify vexfs >/dev/null || die "no assembled tree: run 'make tree'"
for c in "${want[@]}"; do
	case "$c" in
	checkpatch | rst | rustfmt) "check_$c" ;;
	clippy)
		if [ $build_checks = 1 ] || [ -n "$build_log" ]; then check_clippy; else echo "SKIP: $c (--no-build)"; fi ;;
	rustdoc)
		if [ $build_checks = 1 ]; then check_rustdoc; else echo "SKIP: $c (--no-build)"; fi ;;
	*) die "unknown check $c" ;;
	esac
done
exit $failed
