# SPDX-License-Identifier: GPL-2.0
#
# VexFS: driver targets. See README.md.

SHELL := /bin/bash
S := scripts

.PHONY: all setup tree kernel tools initramfs run test torture bench vm-shell patches check \
	bisect-check fmt \
	clean distclean

all: kernel

setup:
	@bash $(S)/setup.sh

tree: setup
	@bash $(S)/assemble.sh

kernel: tree
	@bash $(S)/build-kernel.sh x86

tools: setup
	@bash $(S)/build-tools.sh

initramfs: tools
	@bash $(S)/initramfs.sh

# The demo: build, boot, mkfs, mount, use the file system.
run:
	@bash $(S)/demo.sh

# Every test: host unit tests, KUnit and the VM tests. Ends with "N passed, N failed".
test: tree
	@python3 $(S)/vexfs_test.py $(TEST_ARGS)

# The series as mail-ready patches in build/patches/, with the cover letter
# filled from series/cover-letter.txt.
patches: tree
	@bash $(S)/patches.sh

# checkpatch --strict, reST, rustfmtcheck, clippy and rustdoc (see scripts/check.sh).
check: kernel
	@bash $(S)/check.sh

# Build the kernel at every commit of the series; report the first that breaks.
bisect-check: tree
	@bash $(S)/bisect-check.sh

# Format our Rust files in place with the kernel's rustfmt configuration.
fmt: tree
	@$$(. $(S)/lib.sh; echo $$RUSTFMT) --edition 2021 --config-path build/linux/.rustfmt.toml \
		$$(git ls-files 'rust/kernel/fs/*.rs' 'fs/vexfs/*.rs')

# The long torture runs, in the VM, on the debug kernel (KASAN, KFENCE,
# kmemleak, ...: tools/testing/vexfs/config.debug): 100 rounds of the shutdown crash loop, 200
# damaged images of each kind, and the stress testers at 10^4 operations per
# process, 10^5 fsx operations, 10^5 fuzzed ioctls and 10^5 extended attribute calls
# against a model. Any of the VM_KNOBS of
# scripts/vexfs_test.py set in the environment overrides these.
TORTURE_KNOBS := VEXFS_CRASH_ROUNDS=100 VEXFS_FUZZ_ITERATIONS=200 VEXFS_STRESS_OPS=10000 \
	VEXFS_FSX_OPS=100000 VEXFS_FUZZ_CALLS=100000 VEXFS_XATTR_OPS=100000 VEXFS_STRESS_LIMIT=7200 \
	VEXFS_TEST_TIMEOUT=10800
torture: tree
	@env $(TORTURE_KNOBS) $$(env | grep -E '^VEXFS_[A-Z_]+=' || true) \
		python3 $(S)/vexfs_test.py --no-host --no-check --debug --timeout 36000 \
		--only '[257][056]-[cxs][hota]*' $(TEST_ARGS)

# Vector search benchmarks: VexFS in the VM against hnswlib and faiss on the
# host (GloVe 50-d from PyPI). Not part of `test`; prints figures only.
# Options for scripts/bench.py: make bench BENCH_ARGS="--sizes 10000 --no-vm"
bench:
	@bash $(S)/bench.sh $(BENCH_ARGS)

# An interactive shell in the VM (Ctrl-A X leaves QEMU).
vm-shell: kernel initramfs
	@bash $(S)/vm.sh --mode shell --append kunit.enable=0

clean:
	rm -rf build/obj-* build/initramfs* build/vm build/cargo* build/patches build/check build/bisect

distclean:
	rm -rf build
