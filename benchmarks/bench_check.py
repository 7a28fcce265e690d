"""Model-checker figures on the PASID subsystem, printed in one run.

    python benchmarks/bench_check.py [--quick] [--parallel N] [--baseline REV|none] [--rounds N]

Standard configuration: 3 processes x 2 devices (a singleton accelerator and one PASID
device of a two-device group whose sibling has a DMA-API driver), today's design, every
invariant checked in every state.  Prints distinct states, states per second and wall time,
without and with symmetry reduction (object ids and interchangeable processes,
:mod:`pasidsim.check.symmetry`), then the time to the first counterexample of every
historical design on its scenario; with ``--parallel N``, serial against N Ray worker actors
on a larger (four-process) configuration (``bench_scale.py`` has the scaling figures of issue
#12: the scaling table, bytes per state, Ray against serial with memory).

Then, unless ``--baseline none``, the same configuration checked by the working tree and by a
baseline revision (default :data:`BASELINE_REV`) side by side: absolute times on this shared
2-core machine drift by tens of percent from one minute to the next, so "not slower than
before" is measured by pairing.  The baseline's ``src/`` is exported with ``git archive REV src``
into a temporary directory (``git archive`` leaves the repository's index, HEAD and worktree
list alone) and gets the C persistent IDA ``pasidsim._ida`` too: a copy of the working tree's
built extension when the two ``_ida.c`` are byte-identical (SHA-256) and the build is not
older than the source, otherwise compiled there with setuptools; without one on either side,
both sides run the pure-Python IDA (``PASIDSIM_PURE_IDA=1``) so they stay comparable.  The
rounds alternate, working tree then baseline, ``--rounds`` times, each run a fresh process of
this interpreter with ``PYTHONPATH=<tree>/src``; the temporary directory is removed afterwards.

Why a driver script: the baseline's ``bench_check.py`` has no machine-readable output, and the
working tree's internal modules may be renamed by the restructuring in progress, so neither
side imports the other's benchmark code.  Both sides run one copy of
``benchmarks/_check_driver.py`` (copied into the temporary directory) that makes only the
public calls the baseline's own ``bench_check.py`` makes (``load_text``, ``compile_scenario``,
``check_scenario``), checks that ``pasidsim`` was imported from the tree it was meant to
measure, checks the 2-process configuration once untimed (a fresh process pays about 0.1 s of
first-call costs), then times one serial unbounded check of the compared configuration as the
"states/s" line above does, and prints one JSON line.  Identical driver code on both sides
means the ratio measures only the trees.  If the restructuring moves one of those three calls,
the driver must import it from the new place first and fall back to the old one.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.machinery
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

# A working tree broken mid-restructuring still gets --help, and the import error after it.
try:
    from pasidsim.check.history import HISTORY  # noqa: E402
    from pasidsim.check.runner import check_scenario  # noqa: E402
    from pasidsim.scenario import builtin_scenarios  # noqa: E402
    from pasidsim.scenario.compile import compile_scenario  # noqa: E402
    from pasidsim.scenario.loader import load_scenario, load_text  # noqa: E402
except ImportError as e:
    _IMPORT_ERROR: ImportError | None = e
else:
    _IMPORT_ERROR = None

# The baseline of the paired comparison (--baseline): the last commit before the large
# restructuring of src/ that started after it ("pasidsim check: no progress-bar refresh thread
# alive when workers are forked ...", 2026-11-23).  The working tree must not be slower than it.
BASELINE_REV = "febc01c"
# "not slower": median states/s of the working tree at least this fraction of the baseline's
# (pairing leaves a few percent of noise on this machine).
TOLERANCE = 0.95

#: the bound of the plain lock-granularity search of the three-process configuration (its
#: state space is beyond a benchmark's reach: it shows how far it gets)
LOCK_PLAIN_SECONDS = 30.0

REPO = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).resolve().with_name("_check_driver.py")

STANDARD = """
name: bench-3proc-2dev
design: current
machine:
  iommus: [{name: dmar0, ops: intel-iommu}]
  devices:
    - {name: acc0, iommu: dmar0, pasid_bits: 20, ats: true, pri: true, driver: uacce}
    - {name: ga, iommu: dmar0, group: G, pasid_bits: 20, ats: true, pri: true, driver: uacce}
    - {name: gb, iommu: dmar0, group: G, driver: e1000e}
  drivers:
    - {name: uacce, kind: uacce}
    - {name: e1000e, kind: dma-api}
actors:
""" + "".join(f"""  - name: P{i}
    program:
      - open: {{dev: acc0, expect: ok}}
      - open: {{dev: ga, expect: ok}}
      - exit: {{}}
""" for i in range(1, 4))
_QUICK = STANDARD.split("  - name: P3")[0]  # --quick; also the comparison's untimed warm-up


def _parallel(workers: int) -> None:
    """Serial vs ``--workers`` Ray actors on the standard machine with four processes (56,023
    states); the local Ray runtime is started before the timing."""
    from pasidsim.check.parallel import ray_runtime
    ray_runtime(None, workers)
    four = STANDARD + """  - name: P4
    program:
      - open: {dev: acc0, expect: ok}
      - open: {dev: ga, expect: ok}
      - exit: {}
"""
    c = compile_scenario(load_text(four, "<bench-4>"))
    t0 = time.perf_counter()
    serial = check_scenario(c, max_states=None, max_seconds=None)
    swall = time.perf_counter() - t0
    t0 = time.perf_counter()
    par = check_scenario(c, max_states=None, max_seconds=None, workers=workers)
    pwall = time.perf_counter() - t0
    assert (par.verdict, par.states, par.transitions) == (serial.verdict, serial.states,
                                                         serial.transitions)
    print(f"parallel BFS, 4 processes x 2 devices ({serial.states:,} states, Ray actors):")
    print(f"  serial {swall:.2f} s ({serial.states / swall:,.0f} states/s); {workers} workers "
          f"{pwall:.2f} s ({par.states / pwall:,.0f} states/s, {swall / pwall:.2f}x); same "
          f"verdict, states and transitions")


def _delta(s0, s1) -> tuple:
    """What a step changed, down to table entries: per changed field of the
    :class:`~pasidsim.state.SystemState`, the entries of a table that were set (with their
    value) or removed, the members of ``devs``/``groups`` that changed, or the new value."""
    from immutables import Map
    out = []
    for i, (a, b) in enumerate(zip(s0, s1)):
        if a is b or a == b:
            continue
        if type(a) is Map:
            d = [(repr(k), v) for k, v in b.items() if k not in a or a[k] != v]
            d += [(repr(k), None) for k in a if k not in b]
            out.append((i, tuple(sorted(d, key=lambda kv: kv[0]))))
        elif s0._fields[i] in ("devs", "groups"):
            out.append((i, tuple((j, y) for j, (x, y) in enumerate(zip(a, b)) if x != y)))
        else:
            out.append((i, b))
    return tuple(out)


def _memo_bound(c) -> None:
    """How much a step memoised on its footprint could save: a memo entry maps an action and
    the records it reads to what it changes, so a transition can be served from the memo only
    if an earlier one took the same action to the same change; the share of transitions that
    repeat an (action, change) pair bounds the memo's hits from above (matching the records
    read as well only lowers it).  With the kernel model's share of the search (``step``'s
    time, timed here), Amdahl's law bounds the per-core speedup."""
    from pasidsim.check.pasid_model import ScenarioModel, sys_state
    from pasidsim.check.search import explore
    m = ScenarioModel(c)
    orig, seen, spent, aside = m.step, set(), [0.0], [0.0]
    clock = time.perf_counter

    def step(cs, ref):
        t0 = clock()
        out = orig(cs, ref)
        t1 = clock()
        seen.add((ref, _delta(sys_state(cs.rs), sys_state(out.rs))))
        spent[0] += t1 - t0
        aside[0] += clock() - t1
        return out

    m.step = step
    t0 = clock()
    r = explore(m)
    share = spent[0] / (clock() - t0 - aside[0])  # the search's time without the deltas
    hits = 1 - len(seen) / r.transitions
    print(f"  a step memoised on its footprint (the records it reads): of {r.transitions:,} "
          f"transitions, {r.transitions - len(seen):,} ({hits:.0%}) repeat an earlier (action, "
          f"change) pair, the most it could serve; the model's step is {share:.0%} of the "
          f"search, so at most {1 / (1 - share * hits):.2f}x per core")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ida_extension(src: Path) -> Path | None:
    """The built ``pasidsim._ida`` under ``src`` for this interpreter, if there is one."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        so = src / "pasidsim" / f"_ida{suffix}"
        if so.exists():
            return so
    return None


def _baseline_ida(tmp: Path) -> str:
    """Give the baseline exported under ``tmp/src`` a built ``pasidsim._ida``: a copy of the
    working tree's when both ``_ida.c`` are byte-identical and that build is not older than its
    source, else compiled in ``tmp``.  Returns what was done; raises RuntimeError on failure."""
    base_c = tmp / "src" / "pasidsim" / "_ida.c"
    cur_c = REPO / "src" / "pasidsim" / "_ida.c"
    if not base_c.exists():
        raise RuntimeError("the baseline has no src/pasidsim/_ida.c")
    so = _ida_extension(REPO / "src")
    if so is None:
        why = "the working tree has no built one to copy"
    elif not cur_c.exists() or _sha256(base_c) != _sha256(cur_c):
        why = "its _ida.c differs from the working tree's"
    elif so.stat().st_mtime < cur_c.stat().st_mtime:
        why = "the working tree's build is older than its _ida.c"
    else:
        shutil.copy2(so, base_c.parent / so.name)
        return f"copied the working tree's {so.name} (_ida.c byte-identical, sha256 " \
               f"{_sha256(base_c)[:12]})"
    # Not pyproject's build (it needs a newer setuptools than the venv may have, and would
    # install): one Extension, built in place; tmp holds only src/, no project config.
    build = ("from setuptools import Extension, setup\n"
             "setup(name='pasidsim-ida-bench', script_args=['-q', 'build_ext', '--build-lib', "
             "'src', '--build-temp', 'build'],\n"
             "      ext_modules=[Extension('pasidsim._ida', ['src/pasidsim/_ida.c'])])\n")
    r = subprocess.run([sys.executable, "-c", build], cwd=tmp, capture_output=True, text=True)
    if r.returncode != 0 or _ida_extension(tmp / "src") is None:
        raise RuntimeError("building the baseline's _ida.c failed: "
                           + (r.stderr.strip().splitlines() or ["(no output)"])[-1])
    return f"compiled the baseline's _ida.c ({why})"


def _run_driver(tmp: Path, src: Path, scenario: Path, warmup: Path,
                env: dict[str, str]) -> dict:
    env = dict(env, PYTHONPATH=str(src))
    r = subprocess.run([sys.executable, str(tmp / DRIVER.name), str(scenario),
                        "--expect-root", str(src), "--warmup", str(warmup)],
                       cwd=tmp, env=env, capture_output=True, text=True)
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines:
        tail = "\n      ".join((r.stderr.strip() or r.stdout.strip()).splitlines()[-6:])
        raise RuntimeError(f"the driver failed on {src} (exit {r.returncode}):\n      {tail}")
    return json.loads(lines[-1])


def _git(*cmd: str, **kw) -> subprocess.CompletedProcess:
    """Read-only git commands on this checkout (rev-parse, log, archive)."""
    return subprocess.run(["git", "-C", str(REPO), *cmd], capture_output=True, **kw)


def _resolve(rev: str) -> str | None:
    """The full hash of commit ``rev`` of this checkout, or None."""
    try:
        r = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", text=True)
    except OSError:  # no git
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def _compare(text: str, label: str, full: str, rounds: int) -> None:
    """The working tree against commit ``full`` on the same configuration, rounds
    alternating."""
    rev = full[:7]
    subject = _git("log", "-1", "--format=%h %cs %s", full, text=True).stdout.strip()
    if len(subject) > 80:
        subject = subject[:79] + "..."
    print(f"paired comparison, {label}: working tree vs baseline {subject}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-check-baseline-"))
    try:
        archive = _git("archive", "--format=tar", full, "src")
        if archive.returncode != 0:
            print(f"  skipped: git archive {rev} failed: {archive.stderr.decode().strip()}")
            return
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(tmp, filter="data")
        shutil.copy2(DRIVER, tmp / DRIVER.name)
        scenario = tmp / "standard.yaml"
        scenario.write_text(text)
        warmup = tmp / "warmup.yaml"
        warmup.write_text(_QUICK)
        env = dict(os.environ)
        forced = bool(env.get("PASIDSIM_PURE_IDA"))
        if forced:
            how = "PASIDSIM_PURE_IDA is set: pure-Python IDA on both sides"
        elif _ida_extension(REPO / "src") is None:
            env["PASIDSIM_PURE_IDA"] = "1"
            how = "the working tree's _ida is not built: pure-Python IDA on both sides"
        else:
            try:
                how = _baseline_ida(tmp)
            except RuntimeError as e:
                env["PASIDSIM_PURE_IDA"] = "1"
                how = f"{e}: pure-Python IDA on both sides"
        print(f"  C IDA: {how}")
        sides = {"current": REPO / "src", "baseline": tmp / "src"}
        runs: dict[str, list[dict]] = {k: [] for k in sides}
        try:
            for _ in range(rounds):
                for name, src in sides.items():
                    runs[name].append(_run_driver(tmp, src, scenario, warmup, env))
        except RuntimeError as e:
            print(f"  comparison failed: {e}")
            return
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _report(runs, rev, rounds)


def _report(runs: dict[str, list[dict]], rev: str, rounds: int) -> None:
    """Print the figures of the paired runs (the driver's JSON records) and the verdict."""
    med = {}
    for name, rs in runs.items():
        rates = [x["states_per_s"] for x in rs]
        med[name] = statistics.median(rates)
        first = rs[0]
        tag = "working tree" if name == "current" else f"baseline {rev}"
        print(f"  {tag:16} {first['states']:,} states, {first['transitions']:,} transitions, "
              f"verdict {first['verdict']}, {first['ida']} IDA; states/s min {min(rates):,.0f} "
              f"median {med[name]:,.0f} max {max(rates):,.0f} "
              f"(wall median {statistics.median(x['wall'] for x in rs):.3f} s)")
    ratio = med["current"] / med["baseline"]
    pairs = [c["states_per_s"] / b["states_per_s"]
             for c, b in zip(runs["current"], runs["baseline"])]
    print(f"  ratio current/baseline of median states/s {ratio:.3f} (pair by pair: min "
          f"{min(pairs):.3f}, median {statistics.median(pairs):.3f}, max {max(pairs):.3f}; "
          f"{rounds} round{'s' if rounds > 1 else ''}, A B A B ..., a fresh process per run)")
    counts = {k: {(x["states"], x["transitions"], x["verdict"]) for x in rs}
              for k, rs in runs.items()}
    impls = {k: {x["ida"] for x in rs} for k, rs in runs.items()}
    if counts["current"] != counts["baseline"]:
        (cs, ct, cv), (bs, bt, bv) = min(counts["current"]), min(counts["baseline"])
        print(f"  NOTE: the two revisions explore different state spaces on this configuration: "
              f"working tree {cs:,} states / {ct:,} transitions / {cv}, baseline {bs:,} / "
              f"{bt:,} / {bv}; states/s then compares different work (a finding in itself)")
    if impls["current"] != impls["baseline"]:
        print(f"  NOTE: the IDA implementations differ (working tree {sorted(impls['current'])}, "
              f"baseline {sorted(impls['baseline'])}): the ratio is not of like with like")
    verdict = "not slower" if ratio >= TOLERANCE else "SLOWER"
    noisy = (f"; but the pairs straddle {TOLERANCE} ({min(pairs):.2f}-{max(pairs):.2f}): a "
             f"noisy machine, more --rounds to be sure" if min(pairs) < TOLERANCE <= max(pairs)
             else "")
    print(f"  verdict: {verdict} (ratio {ratio:.3f}; tolerance: not slower when ratio >= "
          f"{TOLERANCE}{noisy})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="two processes instead of three")
    ap.add_argument("--parallel", type=int, metavar="N", default=0,
                    help="also time N workers against the serial search on a four-process "
                         "configuration (about 30 s)")
    ap.add_argument("--baseline", metavar="REV", default=BASELINE_REV,
                    help="git revision to compare the working tree with on the same "
                         f"configuration, rounds alternating (default {BASELINE_REV}, the last "
                         "commit before the restructuring); 'none' skips the comparison")
    ap.add_argument("--rounds", type=int, metavar="N", default=5,
                    help="rounds of the comparison, one run of each side a round (default 5)")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    baseline = None
    if args.baseline.lower() != "none":
        baseline = _resolve(args.baseline)
        if baseline is None:
            ap.error(f"--baseline {args.baseline}: not a commit of the git checkout {REPO} "
                     "('none' skips the comparison)")
    if _IMPORT_ERROR is not None:
        sys.exit(f"the working tree's pasidsim does not import: {_IMPORT_ERROR!r}")
    quick = args.quick
    text = STANDARD if not quick else _QUICK
    c = compile_scenario(load_text(text, "<bench>"))
    t0 = time.perf_counter()
    cell = check_scenario(c, max_states=None, max_seconds=None)
    wall = time.perf_counter() - t0
    print(f"standard configuration ({'2' if quick else '3'} processes x 2 devices x 1 "
          f"multi-device group, design current, all invariants)")
    print(f"  verdict {cell.verdict}; distinct states {cell.states:,}; transitions "
          f"{cell.transitions:,}")
    print(f"  wall {wall:.2f} s; {cell.states / wall:,.0f} states/s (target >= 25,000 on one core)")
    _memo_bound(c)
    t0 = time.perf_counter()
    sym = check_scenario(c, max_states=None, max_seconds=None, symmetry=True)
    swall = time.perf_counter() - t0
    print(f"  symmetry reduction: verdict {sym.verdict}; distinct states {sym.states:,} "
          f"({cell.states / sym.states:.1f}x fewer; target >= 10x); transitions "
          f"{sym.transitions:,}; wall {swall:.3f} s ({wall / swall:.1f}x faster)")
    t0 = time.perf_counter()
    por = check_scenario(c, max_states=None, max_seconds=None, por=True)
    pwall = time.perf_counter() - t0
    print(f"  partial-order reduction: verdict {por.verdict}; distinct states {por.states:,} "
          f"({cell.states / por.states:.2f}x fewer); wall {pwall:.3f} s -- POR reduces only "
          f"actors of pure queries (pasidsim.check.por); this configuration has none")
    t0 = time.perf_counter()
    both = check_scenario(c, max_states=None, max_seconds=None, symmetry=True, por=True)
    bwall = time.perf_counter() - t0
    print(f"  symmetry + POR: distinct states {both.states:,}; wall {bwall:.3f} s")
    # the same configurations at lock granularity (pasidsim.step): calls stop at their
    # preemption points; symmetry renames the calls in progress too; POR is off there
    two = compile_scenario(load_text(_QUICK, "<bench>"))
    t0 = time.perf_counter()
    lk = check_scenario(two, max_states=None, max_seconds=None, granularity="lock")
    lwall = time.perf_counter() - t0
    t0 = time.perf_counter()
    lks2 = check_scenario(two, max_states=None, max_seconds=None, granularity="lock",
                          symmetry=True)
    ls2wall = time.perf_counter() - t0
    print(f"  lock granularity, 2 processes: verdict {lk.verdict}; distinct states "
          f"{lk.states:,}; transitions {lk.transitions:,}; wall {lwall:.2f} s "
          f"({lk.states / lwall:,.0f} states/s); with symmetry {lks2.states:,} states "
          f"({lk.states / lks2.states:.0f}x fewer), {ls2wall:.2f} s")
    if not quick:
        t0 = time.perf_counter()
        lks = check_scenario(c, max_states=None, max_seconds=None, granularity="lock",
                             symmetry=True)
        lswall = time.perf_counter() - t0
        t0 = time.perf_counter()
        lkp = check_scenario(c, max_states=None, max_seconds=LOCK_PLAIN_SECONDS,
                             granularity="lock")
        lpwall = time.perf_counter() - t0
        plain = (f"{lkp.states:,} states, exhausted in {lpwall:.1f} s" if lkp.verdict in
                 ("Always", "Sometimes", "Never") else
                 f"more than {lkp.states:,} states (cut at {LOCK_PLAIN_SECONDS:.0f} s)")
        print(f"  lock granularity, 3 processes: with symmetry verdict {lks.verdict}; "
              f"distinct states {lks.states:,}; transitions {lks.transitions:,}; wall "
              f"{lswall:.2f} s; without: {plain}")
    c.granularity = 0  # back to the scenario's own
    print("time to first counterexample (BFS, shortest):")
    b = builtin_scenarios()
    for h in HISTORY:
        c = compile_scenario(load_scenario(b[h.scenario]), design=h.design)
        t0 = time.perf_counter()
        cell = check_scenario(c, expected=h.breaks, granularity=h.granularity)
        dt = time.perf_counter() - t0
        print(f"  {h.design:24} {h.scenario:33} {h.granularity:4} {cell.invariant or '-':10} "
              f"len {len(cell.refs):3}  {dt * 1000:8.1f} ms  (target < 2000 ms)")
    if baseline is not None:
        _compare(text, f"{'2' if quick else '3'} processes x 2 devices", baseline, args.rounds)
    if args.parallel:
        _parallel(args.parallel)


if __name__ == "__main__":
    main()
