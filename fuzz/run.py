#!/usr/bin/env python3
"""The long fuzz run of issue #14: scenario files, topology dumps and library call sequences.

Usage (from the repository root, in the project's venv)::

    python fuzz/run.py                          # the default counts, every target
    python fuzz/run.py --scenarios 2000 --topologies 0 --calls 0 --seed 7
    python fuzz/run.py --save fuzz-crashes      # write each crashing input and its traceback
    python fuzz/run.py --replay scenario:1234   # run one input again, with its traceback

Engine: a **seeded random mutator** (``tests/fuzz/harness.py``, shared with the Hypothesis
fuzz tests in ``tests/fuzz/``).  Input ``i`` of target ``t`` is made by
``random.Random(f"{seed}:{t}:{i}")`` alone, so a run is reproducible, splits over worker
processes (``--jobs``) without changing what is tried, and any input can be replayed by its
number.  The mutations: the built-in scenarios mutated line by line (delete, duplicate, swap,
re-indent, amplify, truncate, values replaced by huge/negative/odd numbers, unicode, control
characters, YAML anchors/aliases/tags), as YAML data (fields deleted, renamed, retyped,
wrapped, lists amplified) and byte by byte (bit flips, random bytes, invalid UTF-8, NULs); the
topology dumps of ``tests/data/topologies`` (windows of them, mutated the same ways) through
every importer, and random damaged sysfs trees; call sequences of every operation of
``pasidsim.step.OPS`` on several machines and every design through the ``System`` facade
(methods, ``call``, ``apply``, views) and ``step()`` with hand-built (also malformed) actions.
atheris (coverage-guided, libFuzzer) installs from pip for Python 3.11 here but is not a
dependency of the project: ``--atheris scenario|topology`` runs it on the byte-level loader
targets when it is installed (``pip install atheris``); the default run needs nothing more
than the test dependencies.

A *crash* is any outcome that is not documented (see ``tests/fuzz/harness.py``): an exception
other than ``ScenarioError`` / ``TopologyError`` / ``KernelError`` / ``ModelUsageError`` /
``KernelDeadlock``, a malformed error (several lines, no ``file:line``), a usage error that
changed the state, a CLI exit other than 0/1/2 or a traceback, or an input running longer
than ``--timeout``.  For each target it prints the inputs tried, the crashes found and the
time; for each crash the input (or the file it was saved to) and the traceback.  Exit
status 1 when anything crashed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fuzz import harness as h  # noqa: E402

TARGETS = ("scenario", "topology", "library")


def _crash_key(exc: BaseException) -> str:
    """A crash class: the exception type and the innermost frame in pasidsim (or the
    harness check that failed)."""
    where = ""
    for fr in traceback.extract_tb(exc.__traceback__):
        if "pasidsim" in fr.filename or "harness" in fr.filename:
            where = f"{Path(fr.filename).name}:{fr.lineno}"
    msg = str(exc).split("\n")[0][:80] if isinstance(exc, h.Crash) else ""
    return f"{type(exc).__name__} at {where}" + (f" ({msg})" if msg else "")


def run_one(target: str, seed: int, i: int, opts: dict,
            tmpdir: str) -> tuple[str, object, dict | None]:
    """Make and run input ``i`` of ``target``: ``(outcome, input, crash or None)``."""
    rng = random.Random(f"{seed}:{target}:{i}")
    inp: object = None
    try:
        with h.time_limit(opts["timeout"]):
            if target == "scenario":
                kind, inp, path = h.scenario_input(rng)
                out = h.check_scenario(inp, path, tmpdir=tmpdir)
                if opts["cli_every"] and i % opts["cli_every"] == 0:
                    h.check_cli(inp)
                    out += "+cli"
            elif target == "topology":
                importer, inp = h.topology_input(rng)
                inp = (importer, inp)
                out = importer + ":" + h.check_topology(importer, inp[1], seed=i, tmpdir=tmpdir)
                if opts["cli_every"] and i % opts["cli_every"] == 0 and isinstance(inp[1], str):
                    h.check_cli(inp[1], ("topology",))
                    out += "+cli"
            else:
                inp = h.library_sequence(rng)
                log: list[str] = []
                try:
                    h.check_library(inp, log, opts.setdefault("calls", Counter()))
                finally:
                    inp = (inp, log)
                out = "sequences"
        return out, None, None
    except Exception as e:  # noqa: BLE001  -- every escaping exception is a crash
        return "crash", inp, {"target": target, "index": i, "key": _crash_key(e),
                              "traceback": traceback.format_exc(), "input": inp}


def _worker(job):
    target, seed, lo, hi, opts = job
    counts: Counter = Counter()
    crashes = []
    with tempfile.TemporaryDirectory(prefix="pasidsim-fuzz-") as tmpdir:
        for i in range(lo, hi):
            out, _inp, crash = run_one(target, seed, i, opts, tmpdir)
            counts[out] += 1
            if crash is not None:
                crashes.append(crash)
    counts.update({f"calls {k}": v for k, v in opts.pop("calls", {}).items()})
    return counts, crashes


def _show_input(crash: dict) -> str:
    inp = crash["input"]
    if crash["target"] == "library" and isinstance(inp, tuple) and len(inp) == 2:
        (machine, design, seed, length), log = inp
        return (f"machine={machine} design={design} seed={seed} length={length}; calls:\n  "
                + "\n  ".join(log[-15:]))
    text = repr(inp)
    return text if len(text) <= 3000 else text[:3000] + f"... ({len(text):,} characters)"


def _save(crash: dict, save_dir: Path) -> Path:
    save_dir.mkdir(parents=True, exist_ok=True)
    base = save_dir / f"{crash['target']}-{crash['index']}"
    inp = crash["input"]
    if crash["target"] == "scenario" and isinstance(inp, (str, bytes)):
        data = inp if isinstance(inp, bytes) else inp.encode("utf-8", "surrogatepass")
        p = base.with_suffix(".yaml")
    elif crash["target"] == "topology" and isinstance(inp, tuple) and isinstance(inp[1], str):
        data, p = inp[1].encode("utf-8", "surrogatepass"), base.with_suffix(".txt")
    else:
        data, p = _show_input(crash).encode("utf-8", "replace"), base.with_suffix(".input.txt")
    p.write_bytes(data)
    base.with_suffix(".traceback.txt").write_text(crash["traceback"], encoding="utf-8")
    return p


def run_target(target: str, count: int, seed: int, jobs: int, opts: dict,
               save: Path | None) -> tuple[int, list]:
    """Run ``count`` inputs of ``target``; print its line; returns (tried, crashes)."""
    t0 = time.monotonic()
    chunk = max(1, min(250, count // (jobs * 8) or 1))
    work = [(target, seed, lo, min(count, lo + chunk), opts) for lo in range(0, count, chunk)]
    counts: Counter = Counter()
    crashes: list = []
    if jobs > 1 and len(work) > 1:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            for c, cr in pool.imap_unordered(_worker, work):
                counts.update(c)
                crashes += cr
    else:
        for job in work:
            c, cr = _worker(job)
            counts.update(c)
            crashes += cr
    dt = time.monotonic() - t0
    tried = sum(v for k, v in counts.items() if not k.startswith("calls "))
    detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    print(f"{target}: {tried:,} inputs tried, {len(crashes)} crashes, {dt:.1f} s  ({detail})",
          flush=True)
    for key, n in sorted(counts.items()):
        if key.startswith("calls known:"):
            name = key[len("calls known:"):]
            print(f"  known bug {name} (outside this work's files; reported, strict xfail test "
                  f"in tests/fuzz): {n} call(s) -- {h.KNOWN_BUGS[name][0]}")
    crashes.sort(key=lambda c: c["index"])
    for key, n in Counter(c["key"] for c in crashes).most_common():
        first = next(c for c in crashes if c["key"] == key)
        print(f"  crash class ({n}x): {key}; first: {target}:{first['index']}")
    for c in crashes[:opts["show"]]:
        where = f" saved to {_save(c, save)}" if save else ""
        print(f"--- crash {target}:{c['index']} ({c['key']}){where}")
        if not save:
            print(_show_input(c))
        print(c["traceback"], flush=True)
    if save:
        for c in crashes[opts["show"]:]:
            _save(c, save)
    return tried, crashes


def replay(spec: str, seed: int, opts: dict) -> int:
    target, _, num = spec.partition(":")
    if target not in TARGETS or not num.isdigit():
        print(f"--replay TARGET:N with TARGET one of {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="pasidsim-fuzz-") as tmpdir:
        out, inp, crash = run_one(target, seed, int(num), opts, tmpdir)
    if crash is None:
        print(f"{spec}: {out} (no crash)")
        return 0
    print(_show_input(crash))
    print(crash["traceback"])
    return 1


def atheris_main(target: str, runs: int, seed: int) -> int:
    """Coverage-guided byte-level fuzzing with atheris (optional)."""
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        print("atheris is not installed (pip install atheris); the default engine needs "
              "nothing more", file=sys.stderr)
        return 2
    with atheris.instrument_imports():
        import pasidsim.scenario  # noqa: F401
        import pasidsim.topology  # noqa: F401
    counts = Counter()
    tmp = tempfile.mkdtemp(prefix="pasidsim-atheris-")

    t0 = time.monotonic()

    def summary() -> None:  # libFuzzer ends the process with exit(): no atexit, print as we go
        print(f"{target} (atheris): {counts['tried']:,} inputs tried, {counts['crashes']} "
              f"crashes, {time.monotonic() - t0:.1f} s", flush=True)

    def one(data: bytes) -> None:
        counts["tried"] += 1
        if counts["tried"] == runs or counts["tried"] % 1000 == 0:
            summary()
        try:
            with h.time_limit(10):
                if target == "scenario":
                    h.check_scenario(data, tmpdir=tmp)
                    h.check_scenario(data.decode("utf-8", "replace"), run=False)
                else:
                    text = data.decode("utf-8", "replace")
                    for importer in ("parse_text", "lspci", "dmesg", "listing", "iomem"):
                        h.check_topology(importer, text)
        except Exception:  # noqa: BLE001
            counts["crashes"] += 1
            print(f"--- crash (input {data!r:.2000})\n{traceback.format_exc()}", flush=True)

    corpus = Path(tmp) / "corpus"
    corpus.mkdir()
    seeds = ([t for _n, t, _p in h.scenario_corpus()] if target == "scenario"
             else [t for _n, t in h.topology_corpus()])
    for k, text in enumerate(seeds):
        (corpus / f"seed{k}").write_text(text, encoding="utf-8")
    atheris.Setup([sys.argv[0], f"-runs={runs}", f"-seed={seed or 1}", "-max_len=65536",
                   str(corpus)], one)
    atheris.Fuzz()
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", type=int, default=10_000, help="scenario inputs (10,000)")
    ap.add_argument("--topologies", type=int, default=5_000, help="topology inputs (5,000)")
    ap.add_argument("--calls", type=int, default=10_000,
                    help="library call sequences (10,000)")
    ap.add_argument("--seed", type=int, default=0, help="the run's seed (0)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="worker processes (the CPU count)")
    ap.add_argument("--timeout", type=float, default=30.0,
                    help="seconds one input may run before it counts as a hang (30)")
    ap.add_argument("--cli-every", type=int, default=40,
                    help="also run every N-th scenario/topology input through the CLI (40; "
                         "0: never)")
    ap.add_argument("--save", type=Path, default=None,
                    help="write each crashing input and its traceback under this directory")
    ap.add_argument("--show", type=int, default=5,
                    help="print the input and traceback of the first N crashes per target")
    ap.add_argument("--replay", metavar="TARGET:N", help="run input N of TARGET only")
    ap.add_argument("--atheris", choices=("scenario", "topology"),
                    help="coverage-guided byte-level fuzzing with atheris instead "
                         "(--scenarios/--topologies give the number of runs)")
    a = ap.parse_args(argv)
    opts = {"timeout": a.timeout, "cli_every": a.cli_every, "show": a.show}
    if a.replay:
        return replay(a.replay, a.seed, opts)
    if a.atheris:
        return atheris_main(a.atheris, a.scenarios if a.atheris == "scenario" else a.topologies,
                            a.seed)
    print(f"pasidsim fuzz run: seed {a.seed}, {a.jobs} job(s), timeout {a.timeout:g} s per "
          "input", flush=True)
    total = 0
    t0 = time.monotonic()
    for target, count in zip(TARGETS, (a.scenarios, a.topologies, a.calls)):
        if count > 0:
            _tried, crashes = run_target(target, count, a.seed, a.jobs, opts, a.save)
            total += len(crashes)
    print(f"total: {total} crashes, {time.monotonic() - t0:.1f} s", flush=True)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
