#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Install the VexFS toolchain from the package registries. Idempotent and
# fast when everything is already present.
#
#  - linux-source-7.3 from trixie-backports, pinned so that ONLY that package
#    can come from the suite (anything else from trixie would pull in a new
#    libc and break a bookworm machine);
#  - Rust 1.96 (rustc-web, rust-web-src, rust-web-clippy) from bookworm-security;
#  - LLVM 19 from bookworm;
#  - bindgen-cli from crates.io;
#  - build and VM tools.
set -euo pipefail

. "$(dirname "$0")/lib.sh"

APT_PKGS=(
	rustc-web rust-web-src rust-web-clippy rustfmt-web
	clang-19 lld-19 llvm-19 libclang-19-dev
	flex bison bc libelf-dev libssl-dev cpio qemu-system-x86 busybox-static ccache
	python3 python3-venv make git xz-utils
	# make check: checkpatch.pl (spdxcheck.py) and the reST check of the documentation.
	python3-ply python3-git python3-docutils
)

need_root() {
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null; then
			sudo "$@"
		else
			die "need root for: $*"
		fi
	else
		"$@"
	fi
}

apt_sources() {
	local src=/etc/apt/sources.list.d/vexfs-trixie-backports.sources
	local pin=/etc/apt/preferences.d/vexfs-trixie-backports
	local want_src want_pin
	want_src='Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg'
	want_pin='# Only linux-source-7.3 may come from trixie-backports.
Package: *
Pin: release n=trixie-backports
Pin-Priority: 1

Package: linux-source-7.3
Pin: release n=trixie-backports
Pin-Priority: 500'
	local changed=0
	if [ "$(cat "$pin" 2>/dev/null)" != "$want_pin" ]; then
		# Write the pin first, so the suite is never visible unpinned.
		printf '%s\n' "$want_pin" | need_root tee "$pin" >/dev/null
		changed=1
	fi
	if [ "$(cat "$src" 2>/dev/null)" != "$want_src" ]; then
		printf '%s\n' "$want_src" | need_root tee "$src" >/dev/null
		changed=1
	fi
	echo $changed
}

pkgs_missing() {
	local p missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
			missing+=("$p")
	done
	echo "${missing[@]:-}"
}

main() {
	local changed missing
	changed=$(apt_sources)
	missing=$(pkgs_missing "${APT_PKGS[@]}" linux-source-7.3)
	if [ -n "$missing" ]; then
		log "installing: $missing"
		need_root apt-get update -qq
		# shellcheck disable=SC2086
		DEBIAN_FRONTEND=noninteractive need_root apt-get install -y -qq \
			--no-install-recommends $missing
	elif [ "$changed" = 1 ]; then
		need_root apt-get update -qq || true
	fi

	if ! command -v "$BINDGEN" >/dev/null 2>&1 || [ ! -x "$BINDGEN" ]; then
		log "installing bindgen-cli from crates.io"
		LIBCLANG_PATH=/usr/lib/llvm-19/lib cargo install --locked --root "$TOOLS_ROOT" bindgen-cli
	fi

	[ -d "$RUST_LIB_SRC" ] || die "rust library sources missing at $RUST_LIB_SRC"
	ls /usr/src/linux-source-7.3*.tar.* >/dev/null 2>&1 || die "linux-source-7.3 tarball missing"
	log "toolchain ready: $($RUSTC --version), $($BINDGEN --version 2>&1 | head -1), clang-19"
}

main "$@"
