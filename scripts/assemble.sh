#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Assemble the kernel tree under build/linux: the pristine source as the base
# commit (tag vexfs-base), then one commit per entry of series/, made from the
# files of this repository (new kernel files at their kernel paths) and the
# patches under patches/ (changes to existing kernel files).
#
# The commits are built with git plumbing in a private index, and the work
# tree is then moved to them with `git reset --hard`, which rewrites only the
# files whose content changed: an edit here rebuilds only what depends on it.
#
# KERNEL_SRC=/path/to/tree  assemble on top of another kernel tree (a git
#                           checkout or a plain directory) instead of
#                           Debian's linux-source tarball.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KTREE=$BUILD/linux

# Fixed identity and dates: the same series gives the same commit ids.
export GIT_AUTHOR_NAME="$SERIES_AUTHOR_NAME" GIT_AUTHOR_EMAIL="$SERIES_AUTHOR_EMAIL"
export GIT_COMMITTER_NAME="$SERIES_AUTHOR_NAME" GIT_COMMITTER_EMAIL="$SERIES_AUTHOR_EMAIL"
export GIT_AUTHOR_DATE="$SERIES_DATE" GIT_COMMITTER_DATE="$SERIES_DATE"

base_source_id() {
	if [ -n "${KERNEL_SRC:-}" ]; then
		echo "dir:$(cd "$KERNEL_SRC" && pwd)"
	else
		echo "tarball:$(kernel_tarball)"
	fi
}

make_base() {
	local id
	id=$(base_source_id)
	if [ -f "$KTREE/.git/vexfs-base-source" ] &&
		[ "$(cat "$KTREE/.git/vexfs-base-source")" = "$id" ] &&
		git -C "$KTREE" rev-parse -q --verify vexfs-base >/dev/null; then
		return
	fi
	log "creating the base tree from $id"
	rm -rf "$KTREE" "$KTREE.tmp"
	mkdir -p "$KTREE.tmp"
	if [ -n "${KERNEL_SRC:-}" ]; then
		if git -C "$KERNEL_SRC" rev-parse -q --verify HEAD >/dev/null 2>&1; then
			git -C "$KERNEL_SRC" archive --format=tar HEAD | tar -x -C "$KTREE.tmp"
		else
			tar -C "$KERNEL_SRC" --exclude=.git -cf - . | tar -x -C "$KTREE.tmp"
		fi
	else
		tar -x -C "$KTREE.tmp" --strip-components=1 -f "$(kernel_tarball)"
	fi
	(
		cd "$KTREE.tmp"
		git init -q -b master
		git config core.autocrlf false
		git config gc.auto 0
		# Debian's tarball ignores everything at the top level: force.
		git add -f -A .
		git commit -q -m "Linux $(make -s kernelversion 2>/dev/null || echo base)"
		git tag vexfs-base
	)
	echo "$id" >"$KTREE.tmp/.git/vexfs-base-source"
	mv "$KTREE.tmp" "$KTREE"
}

# Print the manifest lines ("file PATH" / "patch PATH") of a series entry.
entry_manifest() {
	sed -n '/^---$/,$p' "$1" | sed '1d' | grep -v '^[[:space:]]*\(#\|$\)' || true
}

# Print the commit message of a series entry.
entry_message() {
	sed '/^---$/,$d' "$1"
}

# Print the kernel-tree paths a patch touches.
patch_paths() {
	sed -n 's|^+++ b/||p' "$1"
}

# Print the blob id of repository file $1 as of series entry number $2: the
# file as it is here, with the patches of later entries that touch it
# reverse-applied, newest first. A file can so be introduced whole by one
# commit and grow through small patches in later commits (a crate root that
# gains a module, say), while this repository keeps only its final version.
blob_at_entry() {
	local path=$1 k=$2 j i p tmp
	local -a later=() pl
	for ((j = ${#entries[@]} - 1; j > k; j--)); do
		read -r -a pl <<<"${entry_patches[$j]}"
		for ((i = ${#pl[@]} - 1; i >= 0; i--)); do
			p=${pl[$i]}
			patch_paths "$TOP/$p" | grep -qxF "$path" && later+=("$p")
		done
	done
	if [ ${#later[@]} -eq 0 ]; then
		git -C "$KTREE" hash-object -w --no-filters "$TOP/$path"
		return
	fi
	tmp=$(mktemp -d)
	mkdir -p "$tmp/$(dirname "$path")"
	cp "$TOP/$path" "$tmp/$path"
	for p in "${later[@]}"; do
		(cd "$tmp" && git apply -R --include="$path" "$TOP/$p") ||
			die "$path: $p does not reverse-apply to it (regenerate the patch)"
	done
	git -C "$KTREE" hash-object -w --no-filters "$tmp/$path"
	rm -rf "$tmp"
}

build_series() {
	local idx=$BUILD/series.index parent entry kind path mode oid tree k
	local -A owner=()
	local -a entries=() entry_patches=()
	for entry in "$TOP"/series/[0-9]*; do
		[ -f "$entry" ] || continue
		entries+=("$entry")
		entry_patches+=("$(entry_manifest "$entry" | awk '$1 == "patch" { print $2 }' | tr '\n' ' ')")
	done
	parent=$(git -C "$KTREE" rev-parse vexfs-base)
	rm -f "$idx"
	export GIT_INDEX_FILE=$idx
	git -C "$KTREE" read-tree vexfs-base
	for ((k = 0; k < ${#entries[@]}; k++)); do
		entry=${entries[$k]}
		while read -r kind path; do
			case "$kind" in
			file)
				[ -f "$TOP/$path" ] || die "$(basename "$entry"): no file $path"
				[ -z "${owner[$path]:-}" ] || die "$path is in ${owner[$path]} and $(basename "$entry")"
				owner[$path]=$(basename "$entry")
				mode=100644
				[ -x "$TOP/$path" ] && mode=100755
				oid=$(blob_at_entry "$path" "$k")
				git -C "$KTREE" update-index --add --cacheinfo "$mode,$oid,$path"
				;;
			patch)
				[ -f "$TOP/$path" ] || die "$(basename "$entry"): no patch $path"
				owner[$path]=$(basename "$entry")
				git -C "$KTREE" apply --cached --whitespace=nowarn "$TOP/$path" ||
					die "$(basename "$entry"): $path does not apply"
				;;
			*) die "$(basename "$entry"): unknown manifest line '$kind $path'" ;;
			esac
		done < <(entry_manifest "$entry")
		tree=$(git -C "$KTREE" write-tree)
		parent=$(entry_message "$entry" | git -C "$KTREE" commit-tree "$tree" -p "$parent")
	done
	# The series must end with the files exactly as they are here.
	for path in "${!owner[@]}"; do
		case "$path" in patches/*) continue ;; esac
		[ "$(git -C "$KTREE" rev-parse "$parent:$path")" = \
			"$(git -C "$KTREE" hash-object --no-filters "$TOP/$path")" ] ||
			die "$path: the series does not end with this repository's version"
	done
	unset GIT_INDEX_FILE
	rm -f "$idx"

	# Every kernel-tree file of this repository must belong to the series.
	while read -r path; do
		[ -n "${owner[$path]:-}" ] || die "$path is not part of any series/ entry"
	done < <(kernel_files)

	git -C "$KTREE" update-ref refs/heads/vexfs "$parent"
	if [ "$(git -C "$KTREE" symbolic-ref -q HEAD)" != refs/heads/vexfs ]; then
		git -C "$KTREE" checkout -q -f vexfs
	else
		git -C "$KTREE" reset -q --hard vexfs
	fi
	log "assembled $(git -C "$KTREE" rev-list --count vexfs-base..vexfs) commits on $(git -C "$KTREE" log -1 --format=%s vexfs-base)"
}

mkdir -p "$BUILD"
make_base
build_series
