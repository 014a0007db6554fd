#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Run every VexFS test and print one closing line `N passed, N failed`.

1. Host: the harness's own parser self-tests, `cargo test` of the user
   tools (tools/vexfs), the unit tests of the Python client
   (tools/vexfs/python), and the series as patches: `make patches` exports
   it, and `git am` of the patches on the base tree must give exactly the
   assembled tree.
2. Build the kernel, the user tools and the initramfs, then the checks of
   `make check` but rustdoc (checkpatch, reST, rustfmtcheck, and clippy on
   the log of that build), each check counted.
3. VM: boot once per test phase (tools/testing/vexfs/tests/phaseN) on the
   same scratch disks, so phase 2 sees what phase 1 left (remount, reboot
   and crash tests). The first boot also runs the KUnit suites. The VM has
   one CPU, so the scripts are split into lanes, one VM each, run side by
   side (one per host CPU, at most two: --lanes): each lane has its own
   disks, and a phase-2 script runs in the lane of the phase-1 script its
   "# Needs: phase1/NAME" line names.

A test may crash the VM on purpose once its phase is over (crash tests,
tools/testing/vexfs/lib.sh: crash_after_phase): the phase still reports all
of its results and "# phase N done" first, and QEMU exits as on a reboot.

A VM result counts as failed when its TAP says so, when a test script gives
no result, when the VM times out, or when the kernel console shows an oops,
a BUG, a WARNING, a lockdep report or a panic.
"""

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", os.path.join(TOP, "build"))
TESTS = os.path.join(TOP, "tools", "testing", "vexfs", "tests")

# KUnit suites the series must run (others may run too).
EXPECTED_KUNIT_SUITES = [s for s in os.environ.get(
    "VEXFS_KUNIT_SUITES",
    "vexfs_format vexfs_vecmath vexfs_hnsw vexfs_collection vexfs_cache").split() if s]

# Environment variables passed to the VM (numbers only): the seeds and counts of
# 70-corrupt (VEXFS_FUZZ_*, but VEXFS_FUZZ_CALLS), 25-shutdown's crash loop
# (VEXFS_CRASH_*), 75-stress (VEXFS_STRESS_*, VEXFS_FSX_OPS, VEXFS_FUZZ_CALLS),
# 56-xattr's model (VEXFS_XATTR_OPS, seeded by VEXFS_STRESS_SEED), and the watchdog of each test script (VEXFS_TEST_TIMEOUT). `make torture`
# sets them to its long runs.
VM_KNOBS = ("VEXFS_FUZZ_SEED", "VEXFS_FUZZ_ITERATIONS", "VEXFS_FUZZ_FROM",
            "VEXFS_FUZZ_STEP_TIMEOUT", "VEXFS_CRASH_ROUNDS", "VEXFS_CRASH_SEED",
            "VEXFS_STRESS_OPS", "VEXFS_STRESS_PROCS", "VEXFS_STRESS_SEED",
            "VEXFS_STRESS_LIMIT", "VEXFS_FSX_OPS", "VEXFS_FUZZ_CALLS",
            "VEXFS_XATTR_OPS", "VEXFS_TEST_TIMEOUT")

# Kernel console lines that fail a boot.
BAD_CONSOLE = re.compile(
    r"(Oops[:\s]|BUG:|WARNING:|Kernel panic|general protection fault|"
    r"Call Trace:|UBSAN:|KASAN:|possible recursive locking|"
    r"possible circular locking|INFO: task .* blocked|"
    r"inconsistent lock state|suspicious RCU usage|"
    r"sleeping function called from invalid context|"
    r"rust_panic|panicked at|"
    # The debug kernel (--debug): kmemleak's reports and debugobjects'.
    r"unreferenced object 0x|ODEBUG:)")

RESULT = re.compile(r"^(?P<indent>\s*)(?P<not>not )?ok (?P<num>\d+)"
                    r"(?: -)? ?(?P<name>[^#]*?)\s*(?:#\s*(?P<directive>.*))?$")


class Tally:
    """Counts results and remembers the failures."""

    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.failures = []

    def add(self, ok, name, skip=False):
        if skip:
            self.skipped += 1
        elif ok:
            self.passed += 1
        else:
            self.failed += 1
            self.failures.append(name)
            print(f"FAIL: {name}", flush=True)


def parse_tap(text):
    """Parse the VM's TAP: top-level scripts with indented subtests.

    Returns a list of (script, ok, [(subtest, ok, skip)]).
    """
    scripts = []
    subs = []
    for line in text.splitlines():
        m = RESULT.match(line.rstrip("\r"))
        if not m:
            continue
        ok = m.group("not") is None
        name = m.group("name").strip()
        skip = (m.group("directive") or "").upper().startswith("SKIP")
        if m.group("indent"):
            subs.append((name, ok, skip))
        else:
            scripts.append((name, ok, subs))
            subs = []
    return scripts


def parse_ktap(text):
    """Parse KUnit's KTAP from a kernel console log.

    Returns (suites, cases): suites maps a suite name to ok, cases is a list
    of (suite.case, ok, skip) for every test case.
    """
    suites = {}
    cases = []
    stack = []  # suite names by nesting level
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        m = re.match(r"^(\s*)# Subtest: (\S+)", line)
        if m:
            depth = len(m.group(1)) // 4
            del stack[max(depth - 1, 0):]
            stack.append(m.group(2))
            continue
        m = RESULT.match(line)
        if not m or not stack:
            continue
        depth = len(m.group("indent")) // 4
        ok = m.group("not") is None
        name = m.group("name").strip()
        skip = (m.group("directive") or "").upper().startswith("SKIP")
        if depth == 0:
            suites[name] = ok
            stack.clear()
        elif depth <= len(stack):
            cases.append((".".join(stack[:depth] + [name]), ok, skip))
            if depth < len(stack) and stack[depth] == name:
                # A parameterised case: its parameters were counted already.
                cases.pop()
                del stack[depth:]
    return suites, cases


def bad_console_lines(text):
    return [l for l in text.splitlines() if BAD_CONSOLE.search(l)]


SWITCHED_CLOCKSOURCE = re.compile(r"clocksource: Switched to clocksource (\S+)")


def console_clocksources(text):
    """The clocksources a boot switched to, in order (the last one is what
    the tests were timed with); `jiffies` or `refined-jiffies` mean every
    time measured in the VM is a multiple of the 4 ms tick."""
    return SWITCHED_CLOCKSOURCE.findall(text)


def clock_summary(text):
    """One line for the harness output: the clocksource of a boot."""
    seen = console_clocksources(text)
    if not seen:
        return "clocksource unknown (no 'Switched to clocksource' on the console)"
    line = f"clocksource {seen[-1]}"
    if len(seen) > 1:
        line += f" (after {', '.join(seen[:-1])})"
    if "jiffies" in seen[-1]:
        line += ": COARSE, times in the VM are multiples of the timer tick"
    return line


def self_test(t):
    """The parsers must see failures, oopses and missing results."""
    tap = ("TAP version 13\n1..2\n    ok 1 - a\n    not ok 2 - b\n"
           "    1..2\nnot ok 1 - first (exit 1)\n    ok 1 - c # SKIP no\n"
           "ok 2 - second\n")
    s = parse_tap(tap)
    t.add(len(s) == 2 and not s[0][1] and s[1][1] and s[0][2][1] == ("b", False, False)
          and s[1][2][0][2], "harness: TAP failures and skips are seen")
    # Two lanes hold every script once, each phase-2 script beside the one it needs.
    lanes = plan_lanes(2, [1, 2], None)
    placed = [n for lane in lanes for n in lane[1]]
    later = [n for lane in lanes for n in lane[2]]
    t.add(sorted(placed) == script_names(1, None) and sorted(later) == script_names(2, None)
          and all(needs(n) in lane[1] for lane in lanes for n in lane[2]),
          "harness: lanes hold every script once, phase 2 beside what it needs")
    ktap = ("KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: vexfs_x\n"
            "    1..3\n    ok 1 case_a\n    not ok 2 case_b\n"
            "        KTAP version 1\n        # Subtest: case_c\n"
            "        ok 1 p0\n        ok 2 p1\n    ok 3 case_c\n"
            "not ok 1 vexfs_x\n")
    suites, cases = parse_ktap(ktap)
    t.add(suites == {"vexfs_x": False} and
          [c[:2] for c in cases] == [("vexfs_x.case_a", True), ("vexfs_x.case_b", False),
                                     ("vexfs_x.case_c.p0", True), ("vexfs_x.case_c.p1", True)],
          "harness: KTAP suites, cases and parameters are parsed")
    oops = "[ ok ]\nOops: general protection fault, probably for non-canonical address\n"
    warn = "------------[ cut here ]------------\nWARNING: CPU: 0 PID: 1 at fs/x.c:1 f+0x1/0x2\n"
    t.add(bool(bad_console_lines(oops)) and bool(bad_console_lines(warn)) and
          not bad_console_lines("vexfs: mounted /dev/vda\nok 1 - fine\n"),
          "harness: oopses and warnings on the console are caught")
    con = ("[    0.2] clocksource: Switched to clocksource tsc-early\n"
           "[    1.4] clocksource: Switched to clocksource tsc\n")
    t.add(console_clocksources(con) == ["tsc-early", "tsc"] and
          clock_summary(con) == "clocksource tsc (after tsc-early)" and
          "COARSE" in clock_summary("clocksource: Switched to clocksource refined-jiffies\n") and
          "unknown" in clock_summary(""),
          "harness: the clocksource of a boot is read from its console")


def run(cmd, **kw):
    print("+ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, **kw)


def host_tests(t):
    ws = os.path.join(TOP, "tools", "vexfs", "Cargo.toml")
    if not os.path.exists(ws):
        return
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(BUILD, "cargo-host"))
    p = run(["cargo", "test", "--locked", "--manifest-path", ws],
            env=env, capture_output=True, text=True)
    out = p.stdout + p.stderr
    with open(os.path.join(BUILD, "cargo-test.log"), "w") as f:
        f.write(out)
    seen = False
    for m in re.finditer(r"test result: \w+\. (\d+) passed; (\d+) failed", out):
        seen = True
        t.passed += int(m.group(1))
        t.failed += int(m.group(2))
    for m in re.finditer(r"^test (\S+) \.\.\. FAILED", out, re.M):
        t.failures.append(f"cargo: {m.group(1)}")
        print(f"FAIL: cargo: {m.group(1)}", flush=True)
    if p.returncode != 0 or not seen:
        print(out[-4000:])
        t.add(False, "cargo test of tools/vexfs (build or run failed)")


def git(*args, cwd=None, env=None, check=True):
    p = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {p.stderr.strip()[-2000:]}")
    return p.stdout.strip()


def series_tests(t):
    """The series as patches: exported, numbered, signed off, and applying with
    `git am` on the pristine base to exactly the assembled tree."""
    ktree = os.path.join(BUILD, "linux")
    pdir = os.path.join(BUILD, "patches")
    p = run(["bash", os.path.join(TOP, "scripts", "patches.sh")],
            capture_output=True, text=True)
    t.add(p.returncode == 0, "series: make patches exports the series")
    if p.returncode != 0:
        print(p.stdout[-2000:] + p.stderr[-3000:])
        return
    n = int(git("rev-list", "--count", "vexfs-base..vexfs", cwd=ktree))
    files = sorted(f for f in os.listdir(pdir) if f.endswith(".patch"))
    patches = [f for f in files if not f.startswith("0000-")]
    t.add(len(files) == n + 1 and files[0] == "0000-cover-letter.patch",
          f"series: a cover letter and one patch per commit ({n})")

    cover = open(os.path.join(pdir, files[0])).read()
    t.add("***" not in cover and
          re.search(r"^Subject: \[[^\]]*PATCH[^\]]* 0+/%d\] \S" % n, cover, re.M) is not None and
          "base-commit: " in cover,
          "series: cover letter filled from series/cover-letter.txt, with base-commit")
    bad = []
    for i, f in enumerate(patches, 1):
        text = open(os.path.join(pdir, f)).read()
        # git format-patch pads the numbers to the width of N (01/10).
        if not re.search(r"^Subject: \[[^\]]*PATCH[^\]]* 0*%d/%d\] \S" % (i, n), text, re.M):
            bad.append(f"{f}: subject not numbered {i}/{n}")
        if not re.search(r"^Signed-off-by: .+ <[^>]+@[^>]+>$", text, re.M):
            bad.append(f"{f}: no Signed-off-by")
    for b in bad:
        print(f"  {b}")
    t.add(not bad, "series: patches are numbered n/N and signed off")

    # git am on a throwaway clone of the base; only the directories the series
    # touches are checked out (sparse), which keeps this to a few seconds.
    tmp = tempfile.mkdtemp(prefix="am-", dir=BUILD)
    ok = False
    try:
        clone = os.path.join(tmp, "linux")
        git("clone", "--quiet", "--shared", "--no-checkout", ktree, clone)
        changed = git("diff", "--name-only", "vexfs-base", "vexfs", cwd=ktree).splitlines()
        dirs = sorted({os.path.dirname(f) for f in changed} - {""})
        # A directory whose subdirectory is listed needs no listing of its own: cone
        # mode checks out the files directly in the parents of a listed directory.
        dirs = [d for d in dirs if not any(o.startswith(d + "/") for o in dirs)]
        git("sparse-checkout", "set", "--cone", *dirs, cwd=clone)
        git("checkout", "--quiet", "--detach", "vexfs-base", cwd=clone)
        env = dict(os.environ, GIT_COMMITTER_NAME="VexFS test",
                   GIT_COMMITTER_EMAIL="test@localhost")
        p = subprocess.run(["git", "am", "--quiet", *[os.path.join(pdir, f) for f in patches]],
                           cwd=clone, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            print(p.stdout[-2000:] + p.stderr[-2000:])
        else:
            got = git("rev-parse", "HEAD^{tree}", cwd=clone)
            want = git("rev-parse", "vexfs^{tree}", cwd=ktree)
            ok = got == want
            if not ok:
                print(f"  tree after git am {got}, assembled tree {want}")
            fmt = "--format=%an <%ae>%n%B"
            msgs_ok = (git("log", fmt, "vexfs-base..HEAD", cwd=clone) ==
                       git("log", fmt, "vexfs-base..vexfs", cwd=ktree))
            t.add(msgs_ok, "series: git am keeps the authors and commit messages")
    except (RuntimeError, OSError) as e:
        print(f"  {e}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    t.add(ok, "series: git am of build/patches on vexfs-base gives the vexfs tree")


def static_checks(t):
    """`make check`, one counted result per PASS/FAIL line of scripts/check.sh:
    checkpatch, reST, rustfmtcheck, and clippy on the log of the kernel build
    just done. `make rustdoc` (about 3 minutes here) is left to `make check`."""
    start = time.time()
    log = os.path.join(BUILD, "check.log")
    build_log = os.path.join(BUILD, "build-build-kernel.sh.log")
    with open(log, "w") as f:
        p = run(["bash", os.path.join(TOP, "scripts", "check.sh"), "--no-build",
                 "--build-log", build_log, "checkpatch", "rst", "rustfmt", "clippy"],
                stdout=f, stderr=subprocess.STDOUT)
    out = open(log, errors="replace").read()
    print(f"  check.sh: {time.time() - start:.0f} s, log {log}", flush=True)
    seen = 0
    for m in re.finditer(r"^(PASS|FAIL): (.*)$", out, re.M):
        seen += 1
        t.add(m.group(1) == "PASS", f"check: {m.group(2)}")
    if p.returncode != 0 and "FAIL:" not in out:
        print(out[-3000:])
        t.add(False, "check: scripts/check.sh ran")
    elif "FAIL:" in out:
        print("\n".join("  " + l for l in out.splitlines()
                        if l.startswith("  ") or l.startswith("FAIL:"))[-4000:])
    if not seen:
        t.add(False, "check: scripts/check.sh reported no result")
# Runs the unittest suites of a directory and prints one JSON summary line.
PY_RUNNER = r"""
import json, sys, unittest
suite = unittest.defaultTestLoader.discover(sys.argv[1], pattern="test_*.py",
                                            top_level_dir=sys.argv[1])
r = unittest.TextTestRunner(stream=sys.stderr, verbosity=2).run(suite)
ids = lambda l: [t.id() for t, _ in l]
print("VEXFS-PY-RESULT " + json.dumps({
    "run": r.testsRun, "failures": ids(r.failures) + ids(r.errors),
    "skipped": ids(r.skipped), "unexpected": [t.id() for t in r.unexpectedSuccesses]}))
"""


def python_tests(t):
    """The host tests of the Python client (tools/vexfs/python/test_*.py)."""
    d = os.path.join(TOP, "tools", "vexfs", "python")
    if not os.path.isdir(d) or not any(f.startswith("test_") and f.endswith(".py")
                                       for f in os.listdir(d)):
        return
    print(f"+ {os.path.basename(sys.executable)}: unittest discover {os.path.relpath(d, TOP)}",
          flush=True)
    p = subprocess.run([sys.executable, "-c", PY_RUNNER, d], capture_output=True, text=True)
    with open(os.path.join(BUILD, "python-test.log"), "w") as f:
        f.write(p.stdout + p.stderr)
    m = re.search(r"^VEXFS-PY-RESULT (.*)$", p.stdout, re.M)
    if not m:
        print((p.stdout + p.stderr)[-4000:])
        t.add(False, "python tests of tools/vexfs/python (the runner failed)")
        return
    r = json.loads(m.group(1))
    bad = set(r["failures"]) | set(r["unexpected"])
    if r["run"] == 0:
        # Test files but no test: a broken discovery, not a pass.
        t.add(False, "python tests of tools/vexfs/python: no tests ran")
        return
    for name in sorted(bad):
        t.add(False, f"python: {name}")
    t.skipped += len(r["skipped"])
    t.passed += r["run"] - len(bad) - len(r["skipped"])
    if bad:
        print(p.stderr[-4000:])


def build(t, debug=False):
    arch = "x86-debug" if debug else "x86"
    for step in (["bash", os.path.join(TOP, "scripts", "build-kernel.sh"), arch],
                 ["bash", os.path.join(TOP, "scripts", "build-tools.sh")],
                 ["bash", os.path.join(TOP, "scripts", "glove-data.sh")],
                 ["bash", os.path.join(TOP, "scripts", "initramfs.sh")]):
        log = os.path.join(BUILD, "build-" + os.path.basename(step[1]) + ".log")
        start = time.time()
        with open(log, "w") as f:
            p = run(step, stdout=f, stderr=subprocess.STDOUT)
        print(f"  {os.path.basename(step[1])}: {time.time() - start:.0f} s, log {log}",
              flush=True)
        if p.returncode != 0:
            with open(log) as f:
                print(f.read()[-6000:])
            t.add(False, f"build: {os.path.basename(step[1])}")
            return False
    return True


# Seconds a phase-1 script takes in the VM under TCG (measured here, rounded), to balance
# the lanes; a script not listed counts 10.
SCRIPT_SECONDS = {"40-many-files": 30, "50-big-file": 62, "60-persistence": 45,
                  "65-vector": 42, "68-fault": 35, "70-corrupt": 70, "75-stress": 34,
                  "30-enospc": 12}


def script_names(phase, only):
    d = os.path.join(TESTS, f"phase{phase}")
    if not os.path.isdir(d):
        return []
    return sorted(f[:-3] for f in os.listdir(d)
                  if f.endswith(".sh") and (not only or fnmatch.fnmatch(f[:-3], only)))


def needs(name):
    """The phase-1 script a phase-2 script checks the leftovers of ("# Needs: phase1/X")."""
    with open(os.path.join(TESTS, "phase2", name + ".sh")) as f:
        m = re.search(r"^# Needs: phase1/(\S+)$", f.read(), re.M)
    return m.group(1) if m else None


def plan_lanes(n, phases, only):
    """Splits the scripts of every phase into at most `n` lanes: phase-1 scripts by their
    expected time, longest first, each to the least loaded lane; a later phase's script to the
    lane of the phase-1 script it needs (lane 0 if none). Returns, per lane, a dict from phase
    to script names; lanes without any script are left out, but lane 0 always runs (KUnit)."""
    lanes = [{p: [] for p in phases} for _ in range(max(1, n))]
    load = [0] * len(lanes)
    first = script_names(phases[0], only) if phases else []
    for name in sorted(first, key=lambda s: -SCRIPT_SECONDS.get(s, 10)):
        i = load.index(min(load))
        lanes[i][phases[0]].append(name)
        load[i] += SCRIPT_SECONDS.get(name, 10)
    for phase in phases[1:]:
        for name in script_names(phase, only):
            need = needs(name) if phase == 2 else None
            i = next((i for i, l in enumerate(lanes) if need in l[phases[0]]), 0)
            lanes[i][phase].append(name)
    for lane in lanes:
        for phase in phases:
            lane[phase].sort()
    return [lane for i, lane in enumerate(lanes)
            if i == 0 or any(lane[p] for p in phases)]


def lane_suffix(lane):
    """What the names of a lane's files (disks, console, results) end with."""
    return f"-lane{lane}" if lane else ""


def make_disks(lane):
    disks = []
    for name, size in (("disk1", 1536 << 20), ("disk2", 256 << 20)):
        path = os.path.join(BUILD, "vm", f"{name}{lane_suffix(lane)}.img")
        with open(path, "wb") as f:
            f.truncate(size)
        disks.append(path)
    return disks


def vm_lane(lane, plan, kunit, timeout, debug, out):
    """Boots the VM of `lane` once per phase of `plan` (phase -> scripts) on disks of its own;
    appends what each boot left to `out` (tallied by [`vm_tally`] afterwards)."""
    disks = make_disks(lane)
    for i, (phase, names) in enumerate(sorted(plan.items())):
        if not names and not (kunit and i == 0):
            continue
        out.append(vm_run(phase, lane, disks, kunit and i == 0, timeout, names, debug))


def vm_run(phase, lane, disks, kunit, timeout, names, debug):
    vmdir = os.path.join(BUILD, "vm")
    console = os.path.join(vmdir, f"console-phase{phase}{lane_suffix(lane)}.log")
    results = os.path.join(vmdir, f"results-phase{phase}{lane_suffix(lane)}.tap")
    for f in (console, results):
        if os.path.exists(f):
            os.unlink(f)
    cmd = ["bash", os.path.join(TOP, "scripts", "vm.sh"), "--mode", "test",
           "--phase", str(phase), "--console", console, "--results", results,
           "--timeout", str(timeout)]
    env = None
    if debug:
        # KASAN's shadow and kmemleak's records need memory beside the tests'.
        env = dict(os.environ, KERNEL=os.path.join(BUILD, "obj-x86-debug", "arch", "x86",
                                                   "boot", "bzImage"))
        cmd += ["--mem", "1024"]
    append = [] if kunit else ["kunit.enable=0"]
    # The lane's scripts; none (a KUnit-only boot) as a name no script has.
    append.append("vexfs.only=" + (",".join(names) or "-"))
    # The damaged-image test's knobs (seed, iterations, ...): the kernel passes NAME=VALUE
    # on its command line to /init as environment.
    for name in VM_KNOBS:
        value = os.environ.get(name, "")
        if value:
            if not value.isdigit():
                sys.exit(f"{name} must be a number, not {value!r}")
            append.append(f"{name}={value}")
    if append:
        cmd += ["--append", " ".join(append)]
    for d in disks:
        cmd += ["--disk", d]
    start = time.time()
    p = run(cmd, env=env, stdout=subprocess.DEVNULL if lane else None)
    where = f"phase {phase}" + (f" lane {lane}" if lane else "")
    print(f"  {where}: VM ran {time.time() - start:.0f} s (exit {p.returncode}): "
          f"{' '.join(names) or 'KUnit only'}", flush=True)
    return {"phase": phase, "where": where, "rc": p.returncode, "console": console,
            "results": results, "names": names, "kunit": kunit}


def vm_tally(t, r):
    """Counts the results of one boot ([`vm_run`])."""
    phase, where, names, kunit = r["phase"], r["where"], r["names"], r["kunit"]
    console, results = r["console"], r["results"]
    con = open(console, errors="replace").read() if os.path.exists(console) else ""
    res = open(results, errors="replace").read() if os.path.exists(results) else ""

    print(f"  {where}: {clock_summary(con)}", flush=True)
    took = re.findall(r"^# (\S+) took (\d+) s\r?$", res, re.M)
    if took:
        print(f"  {where}, seconds per script (guest clock): " +
              ", ".join(f"{n} {t}" for n, t in took), flush=True)
    t.add(r["rc"] == 0, f"{where}: VM exited cleanly (exit {r['rc']})")
    bad = bad_console_lines(con)
    for line in bad[:20]:
        print(f"  console: {line}")
    t.add(not bad, f"{where}: kernel console free of oops/BUG/WARNING/lockdep")

    scripts = parse_tap(res)
    got = {}
    for name, ok, subs in scripts:
        name = name.split(" (exit")[0]
        got[name] = ok
        for sname, sok, skip in subs:
            t.add(sok, f"vm/{name}: {sname}", skip)
        if not subs:
            t.add(ok, f"vm/{name}")
        elif not ok and all(s[1] for s in subs):
            t.add(False, f"vm/{name}: script failed")
    for name in names:
        if name not in got:
            t.add(False, f"vm/{name}: no result (crash or timeout?)")
    t.add("# phase %d done" % phase in res, f"{where}: all tests ran to the end")

    if kunit:
        suites, cases = parse_ktap(con)
        for name, ok, skip in cases:
            t.add(ok, f"kunit/{name}", skip)
        for name, ok in suites.items():
            if not ok and not any(c[0].startswith(name + ".") and not c[1] for c in cases):
                t.add(False, f"kunit/{name} (suite)")
        for s in EXPECTED_KUNIT_SUITES:
            t.add(s in suites, f"kunit: suite {s} ran")
        print(f"  KUnit: {len(suites)} suites, {len(cases)} cases", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-host", action="store_true", help="skip host tests")
    ap.add_argument("--no-vm", action="store_true", help="skip build and VM tests")
    ap.add_argument("--no-check", action="store_true", help="skip make check")
    ap.add_argument("--only", metavar="GLOB",
                    help="run only the VM test scripts whose name matches GLOB (e.g. '*posix*')")
    ap.add_argument("--debug", action="store_true",
                    help="build and boot the debug kernel (KASAN, KFENCE, kmemleak, ...)")
    ap.add_argument("--timeout", type=int, default=int(os.environ.get("VEXFS_VM_TIMEOUT", "2400")),
                    help="seconds a VM phase may take")
    ap.add_argument("--lanes", type=int,
                    default=int(os.environ.get("VEXFS_VM_LANES", min(2, os.cpu_count() or 1))),
                    help="VMs run side by side, each on its share of the scripts (default: "
                         "one per CPU, at most 2)")
    args = ap.parse_args()
    os.makedirs(os.path.join(BUILD, "vm"), exist_ok=True)
    t = Tally()
    self_test(t)
    if not args.no_host:
        host_tests(t)
        series_tests(t)
        python_tests(t)
    if not args.no_vm and build(t, args.debug):
        if not args.no_check:
            static_checks(t)
        phases = sorted(int(d[5:]) for d in os.listdir(TESTS) if re.fullmatch(r"phase\d+", d))
        lanes = plan_lanes(args.lanes, phases, args.only)
        outs = [[] for _ in lanes]
        threads = [threading.Thread(target=vm_lane, args=(i, plan, i == 0, args.timeout,
                                                          args.debug, outs[i]))
                   for i, plan in enumerate(lanes)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        for out in outs:
            for r in out:
                vm_tally(t, r)
    if t.failures:
        print("\nFailures:")
        for f in t.failures:
            print(f"  {f}")
    extra = f", {t.skipped} skipped" if t.skipped else ""
    print(f"\n{t.passed} passed, {t.failed} failed{extra}")
    return 0 if t.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
