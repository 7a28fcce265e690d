"""Mutation-testing benchmark: does ``pasidsim check`` catch one-line mistakes in the kernel model?

    python benchmarks/bench_mutation.py [--sample N] [--seed S] [--jobs N] [--killer fast|cli]
        [--rev REV] [--list-survivors] [--write-survivors] [--json FILE] [--dry-run]
        [--no-coverage] [--skip-unexecuted] [--timeout-factor F] [--fail-under PCT]

A seeded sample of mutants of the kernel model (each a one-line change: ``<`` for ``<=``, a
dropped ``not``, ``-EBUSY`` for ``EBUSY``, a number off by one ...) is run against the model
checker; the benchmark prints how many the checker killed, how many survived or timed out, how
many survivors are marked EQUIVALENT in ``benchmarks/mutation-survivors.md``, and the kill rate
over the non-equivalent mutants (target: ``[bench].target`` of ``benchmarks/mutation.toml``).

**Tool: cosmic-ray, pinned at 8.7.0** (``pip install cosmic-ray==8.7.0``), rather than
mutmut 3.  The killer here is not a test suite but a command (``pasidsim check``): cosmic-ray's
``test-command`` is any command whose exit status decides killed/survived, with a timeout and a
process-group kill built in, while mutmut 3 runs pytest only, in-process, through trampolines
that rewrite every function of the package (which slows the checker and leaves decorated and
module-level code unmutated).  cosmic-ray reads its configuration from any TOML file we name
(``benchmarks/mutation.toml``; no pyproject.toml section), takes the modules to mutate as a
list (found here by glob at run time), and its operator filter is configured in the same file.
Its one drawback, that it mutates the source files in place, is handled by never running it on
the checkout: every run works in temporary copies of ``src/`` (one per ``--jobs``) that are
thrown away afterwards, so an interrupted run cannot leave the checkout mutated.

How a run goes:

1. ``src/`` of the checkout (its working tree, or commit ``--rev`` through ``git archive``) is
   copied into a temporary directory, byte-compiled with hash-checked ``.pyc`` files (a mutant
   is recompiled whatever the file times say), and copied once more per extra job.
2. The modules to mutate are found with the globs of ``[bench]`` (so a restructuring that adds
   or moves kernel modules needs no change here); ``cosmic-ray init`` lists every mutant of
   them, and cosmic-ray's operators-filter drops the operators that do not make realistic
   one-line mistakes (see mutation.toml).  The list is sorted and shuffled with
   ``random.Random(seed)``; the sample is its first N, so a small sample is a prefix of a
   larger one with the same seed (on the same tree).
3. Baseline: the killer runs on each unmutated copy at the same time (the load of the real
   run); every copy must pass, else the run stops (fix the checkout first).  The timeout of a
   mutant is ``timeout-factor`` (3) times the slowest baseline.
4. Coverage (unless ``--no-coverage``): one traced run of the killer on the unmutated tree
   records which lines of the package the checker executes.  A mutant on a line that never
   runs cannot be killed by any invariant, only by a new scenario; the report counts them
   (for the whole population too), and ``--skip-unexecuted`` does not run them (counted
   survived: the mutated line never executes, so the run would be the baseline's).
5. The sample is fed to the copies in small batches (``cosmic-ray exec``, local distributor:
   apply one mutation, run the killer, restore the file) so that the jobs finish together.

The killer (``--killer``):

- ``fast`` (default): ``pasidsim check`` itself, run in-process with its per-cell function
  hooked (see :func:`_fast_killer`): the cells are the command's own, with the arguments it
  builds for them (expected verdicts, search settings), but checked cheapest first (order
  measured by the baseline; the costly amdgpu scenario goes last) and the run stops at the
  first cell that every version of the command counts as a failure (not ``ok``, on
  ``current`` or with an expected verdict); otherwise the command judges the computed cells
  itself.  Same exit status as the command, only sooner for a killed mutant.
- ``cli``: the command itself, ``pasidsim check --out <tmp>``, the whole matrix every time:
  the reference, about 5x slower on killed mutants.

A mutant is **killed** when the killer exits non-zero: an unexpected verdict, or a crash (an
exception from the model, reported as ``crash``); **timed out** (counted as killed, reported
separately) when it runs past the timeout; **survived** when every verdict is as expected.
The pytest suite is not used: the point is to measure the checker.

Identity of a mutant (stable across runs and line shifts): module, enclosing function
(qualified name), cosmic-ray operator, the changed source line before -> after with
whitespace collapsed, and ``#k`` when the same line text occurs k-1 times earlier in the same
function.  ``benchmarks/mutation-survivors.md`` lists the survivors by that ``id:``; an entry
marked ``EQUIVALENT`` (with a reason) is left out of the kill rate, ``OPEN`` ones are gaps of
the checker.  ``--write-survivors`` rewrites the file from this run, keeping each known
mutant's mark and reason.
"""

from __future__ import annotations

import argparse
import ast
import copy
import difflib
import io
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import tomllib
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "benchmarks" / "mutation.toml"
SURVIVORS = REPO / "benchmarks" / "mutation-survivors.md"
PINNED_COSMIC_RAY = "8.7.0"
KILLER_TAG = "KILLER:"  # the first word of the killer's one-line verdict on stdout
TREE_ENV = "PASIDSIM_MUTATION_TREE"  # the copy the killer must import pasidsim from
STATUSES = ("EQUIVALENT", "OPEN")  # the marks of the survivors file


# --------------------------------------------------------------------------------------------
# The killer: runs in a fresh process inside one copy of the tree (cosmic-ray's test-command).
# --------------------------------------------------------------------------------------------

def _start_parent_watchdog() -> None:
    """Exit this process when its parent (the ``cosmic-ray exec`` that started it) is gone, so
    an interrupted benchmark leaves no killer running on its own."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


def _imported_from_tree() -> str | None:
    """None when ``pasidsim`` was imported from the tree named by $PASIDSIM_MUTATION_TREE (the
    mutated copy), else a message saying where it came from."""
    import pasidsim
    where = Path(pasidsim.__file__).resolve()
    tree = Path(os.environ.get(TREE_ENV, Path.cwd())).resolve()
    if tree not in where.parents:
        return f"pasidsim imported from {where}, not from the mutated tree {tree}"
    return None


class KillerSetupError(RuntimeError):
    """The killer cannot hook into ``pasidsim check`` (its internals moved): use --killer cli."""


def _run_check(hook, out_dir: str) -> int:
    """Run ``pasidsim check`` (the real command, whole matrix, default settings) in this
    process with its per-cell function ``cli_check._check_cell`` replaced by ``hook``, output
    discarded; returns the command's exit status."""
    import contextlib

    from pasidsim.check import cli_check
    from pasidsim.cli import main
    if not callable(getattr(cli_check, "_check_cell", None)):
        raise KillerSetupError("pasidsim.check.cli_check._check_cell is gone")
    real = cli_check._check_cell
    cli_check._check_cell = hook
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            main(["check", "--out", out_dir], prog_name="pasidsim")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        cli_check._check_cell = real
    return 0


def _fast_killer(order_file: str | None, timings_file: str | None, out_dir: str) -> int:
    """``pasidsim check``'s matrix, cheapest cells first, stopping at the first cell that is
    certainly not as expected.  Nothing of the command's judgement is re-implemented:

    1. the command runs with its per-cell function ``_check_cell`` replaced by a recorder, so
       the exact arguments it would check each cell with (scenario, design, expected verdict,
       search settings) are collected, in its order, at the cost of loading the scenarios;
    2. the cells are checked with the real ``_check_cell`` in the order of ``order_file``
       (cheapest first; cells not listed there last).  A cell stops the run (exit 1) when
       ``not cell.ok`` and it is on ``current`` or carries an expected verdict: every version
       of ``pasidsim check`` so far counts such a cell as a failure;
    3. if no cell stopped it but some cell is not ``ok``, the command runs once more with
       ``_check_cell`` returning the computed cells, and its own exit status is the verdict.

    ``timings_file`` receives each cell's seconds (the baseline run writes the order).
    Returns the exit status: 0 when the command would pass, 1 when it would fail."""
    from pasidsim.check import cli_check
    from pasidsim.check.runner import Cell

    real = cli_check._check_cell
    calls: list[tuple] = []

    def record(loaded, s, d, *rest, **kw):
        calls.append(((s, d), (loaded, s, d, *rest), kw))
        return Cell(s, d, "Always", 0, 0, 0.0)

    code = _run_check(record, out_dir)
    if not calls:
        if code:  # e.g. exit 2: a scenario that no longer loads
            print(f"{KILLER_TAG} verdict: pasidsim check exit {code} before any cell")
            return code
        raise KillerSetupError("pasidsim check did not call _check_cell")
    jobs = list(calls)
    if order_file:
        rank = {tuple(k): i for i, k in enumerate(json.loads(Path(order_file).read_text()))}
        jobs.sort(key=lambda job: rank.get(job[0], len(rank)))
    cells: dict = {}
    timings = []
    for key, args, kw in jobs:
        t0 = time.perf_counter()
        cell = real(*args, **kw)
        timings.append([*key, time.perf_counter() - t0])
        cells[key] = cell
        if not cell.ok and (key[1] == "current" or cell.expected is not None):
            got = cell.verdict + (f" {cell.invariant}" if cell.invariant else "")
            if cell.unreached:
                got += f", never reached {', '.join(cell.unreached)}"
            exp = cell.expected
            exp = getattr(exp, "text", lambda: exp)() if exp is not None else "pass"
            print(f"{KILLER_TAG} verdict {key[0]} x {key[1]}: {got}; expected {exp} "
                  f"(cell {len(timings)} of {len(jobs)})")
            return 1
    if timings_file:
        Path(timings_file).write_text(json.dumps(timings))
    if all(c.ok for c in cells.values()):
        print(f"{KILLER_TAG} pass: all {len(jobs)} cells as expected")
        return 0
    code = _run_check(lambda loaded, s, d, *rest, **kw: cells[(s, d)], out_dir)
    print(f"{KILLER_TAG} {'pass' if code == 0 else 'verdict'}: pasidsim check exit {code} "
          f"on the {len(jobs)} cells")
    return code


def _cli_killer(out_dir: str) -> int:
    """``pasidsim check --out OUT_DIR`` run in this process; returns its exit status."""
    from pasidsim.cli import main
    try:
        main(["check", "--out", out_dir], prog_name="pasidsim")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        print(f"{KILLER_TAG} {'pass' if code == 0 else 'verdict'}: pasidsim check exit {code}")
        return code
    return 0


def _trace_lines(tree: Path) -> dict[str, set[int]]:
    """Start recording every line executed in the package files under ``tree/src`` (a
    ``sys.settrace`` line tracer, only for frames of those files); returns the live record,
    relative path -> line numbers."""
    prefix = str((tree / "src").resolve()) + os.sep
    seen: dict[str, set[int]] = {}
    tracers: dict[str, object] = {}

    def tracer_for(name: str):
        """The local tracer of the frames of file ``name`` (one per file, bound to its set)."""
        lines = seen.setdefault(Path(name).relative_to(tree.resolve()).as_posix(), set())

        def local(frame, event, _arg):
            if event == "line":
                lines.add(frame.f_lineno)
            return local
        return local

    def calls(frame, _event, _arg):
        name = frame.f_code.co_filename
        if not name.startswith(prefix):
            return None
        if name not in tracers:
            tracers[name] = tracer_for(name)
        return tracers[name]

    sys.settrace(calls)
    return seen


def killer_main(mode: str, order_file: str | None, timings_file: str | None,
                out_dir: str, coverage_file: str | None = None) -> int:
    """Entry point of the killer process (``--run-killer MODE``): checks that pasidsim comes from
    the mutated tree, runs the ``fast`` or ``cli`` killer and turns any exception into a
    ``crash`` line and exit status 1.  The last stdout line is always ``KILLER: ...``.
    ``coverage_file``: record the lines of the package that the run executes (JSON), for
    telling survivors on lines no scenario reaches from those the invariants miss."""
    _start_parent_watchdog()
    t0 = time.perf_counter()
    try:
        wrong = _imported_from_tree()
        if wrong:
            print(f"{KILLER_TAG} setup {wrong}")
            return 3
        seen = None
        if coverage_file:
            # modules already imported ran their top level: count it as executed
            import pasidsim  # noqa: F401
            seen = _trace_lines(Path(os.environ.get(TREE_ENV, Path.cwd())))
        try:
            code = (_fast_killer(order_file, timings_file, out_dir) if mode == "fast"
                    else _cli_killer(out_dir))
        finally:
            if seen is not None:
                sys.settrace(None)
                Path(coverage_file).write_text(json.dumps(
                    {k: sorted(v) for k, v in seen.items()}))
    except KillerSetupError as e:
        print(f"{KILLER_TAG} setup {e}: the fast killer needs updating; use --killer cli")
        return 3
    except Exception as e:  # a crash of the mutated model is a kill
        import traceback
        traceback.print_exc(file=sys.stdout)
        print(f"{KILLER_TAG} crash {type(e).__name__}: {str(e)[:200]}")
        code = 1
    print(f"{KILLER_TAG} seconds {time.perf_counter() - t0:.3f}")
    return code


# --------------------------------------------------------------------------------------------
# Trees, modules and the cosmic-ray session.
# --------------------------------------------------------------------------------------------

def load_config(path: Path) -> tuple[dict, dict]:
    """The ``[cosmic-ray]`` and ``[bench]`` tables of the benchmark's TOML configuration."""
    data = tomllib.loads(path.read_text())
    return data.get("cosmic-ray", {}), data.get("bench", {})


def git(*args: str) -> str:
    """Output of a read-only git command in the checkout (never one that writes the index)."""
    return subprocess.run(["git", "--no-optional-locks", *args], cwd=REPO, check=True,
                          capture_output=True, text=True).stdout


def copy_sources(dest: Path, rev: str | None) -> str:
    """Copy the checkout's ``src/`` into ``dest/src``: the working tree as it is, or commit
    ``rev`` through ``git archive`` (read-only).  The built C IDA comes along from the working
    tree when ``rev``'s ``_ida.c`` is the same file (else the pure-Python IDA runs).  Returns a
    description of what was copied, for the report."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    if rev is None:
        shutil.copytree(REPO / "src", dest / "src", ignore=ignore)
        head = git("rev-parse", "--short", "HEAD").strip()
        dirty = git("status", "--porcelain", "--", "src").strip()
        return f"working tree at {head}" + (" with uncommitted changes in src/" if dirty else "")
    commit = git("rev-parse", "--short", rev + "^{commit}").strip()
    archive = subprocess.run(["git", "--no-optional-locks", "archive", "--format=tar", commit,
                              "src"], cwd=REPO, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    pkg = REPO / "src" / "pasidsim"
    c_src = dest / "src" / "pasidsim" / "_ida.c"
    if c_src.exists() and (pkg / "_ida.c").exists() and \
            c_src.read_bytes() == (pkg / "_ida.c").read_bytes():
        for so in pkg.glob("_ida*.so"):
            shutil.copy2(so, dest / "src" / "pasidsim" / so.name)
    return f"commit {commit}"


def discover_modules(root: Path, include: list[str], exclude: list[str]) -> list[str]:
    """The modules to mutate: files matched by the ``include`` globs under ``root`` minus those
    matched by the ``exclude`` globs, as sorted POSIX paths relative to ``root``."""
    def matched(patterns: list[str]) -> set[str]:
        return {p.relative_to(root).as_posix() for pat in patterns for p in root.glob(pat)
                if p.is_file() and p.suffix == ".py"}
    return sorted(matched(include) - matched(exclude))


def write_cr_config(path: Path, base: dict, modules: list[str], timeout: float,
                    test_command: str) -> None:
    """Write a complete cosmic-ray configuration: ``base`` (mutation.toml's ``[cosmic-ray]``)
    plus the run's module list, timeout and killer command."""
    from cosmic_ray.config import serialize_config
    cfg = copy.deepcopy(base)
    cfg["module-path"] = modules
    cfg["timeout"] = round(timeout, 1)
    cfg["test-command"] = test_command
    cfg.setdefault("distributor", {"name": "local"})
    path.write_text(serialize_config(cfg))


def cosmic_ray(*args: str, cwd: Path) -> None:
    """Run a cosmic-ray command (this interpreter's installation) in ``cwd``; raise with its
    output when it fails."""
    proc = subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n"
                           f"{proc.stdout}{proc.stderr}")


def enumerate_mutants(tree: Path, cfg_path: Path) -> tuple[list, Counter]:
    """Every mutant of the configured modules after the operators-filter: ``cosmic-ray init``
    then cosmic-ray's ``operators_filter`` on a scratch session in ``tree``.  Returns the kept
    work items sorted by (module, operator, occurrence) and the count of filtered-out ones per
    operator."""
    from cosmic_ray.work_db import WorkDB, use_db
    session = tree.parent / "enumerate.sqlite"
    cosmic_ray("cosmic_ray.cli", "init", str(cfg_path), str(session), cwd=tree)
    cosmic_ray("cosmic_ray.tools.filters.operators_filter", str(session), str(cfg_path),
               cwd=tree)
    with use_db(str(session), WorkDB.Mode.open) as db:
        kept = list(db.pending_work_items)
        dropped = Counter(item.mutations[0].operator_name for item, _r in db.completed_work_items)
    kept.sort(key=lambda it: (str(it.mutations[0].module_path), it.mutations[0].operator_name,
                              it.mutations[0].occurrence))
    return kept, dropped


# --------------------------------------------------------------------------------------------
# Mutant identity.
# --------------------------------------------------------------------------------------------

@dataclass
class Mutant:
    """One sampled mutant and its stable identity (see the module docstring)."""

    job_id: str
    path: str  # relative to the tree root, e.g. src/pasidsim/sva.py
    line: int
    function: str
    operator: str  # cosmic-ray operator name without the "core/" provider prefix
    before: str
    after: str
    ident: str
    status: str = "pending"  # killed | timeout | survived | error | pending
    detail: str = ""  # what killed it (verdict / crash), or why it is an error
    seconds: float | None = None  # the killer's own run time, when it printed it
    mark: str = ""  # EQUIVALENT / OPEN from the survivors file
    reached: bool | None = None  # does the unmutated checker execute the line? (None: unknown)

    @property
    def where(self) -> str:
        """``file:line`` of the mutated line."""
        return f"{self.path}:{self.line}"


def _functions(source: str) -> list[tuple[int, int, str]]:
    """(first line, last line, qualified name) of every def and class of ``source``."""
    out = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                out.append((first, child.end_lineno or child.lineno, name))
                walk(child, name + ".")
            else:
                walk(child, prefix)
    walk(ast.parse(source), "")
    return out


def body_lines(source: str) -> set[int]:
    """The lines of ``source`` inside a function body: code that runs only when the function is
    called (a def line, its defaults and decorators, class bodies and module-level code run at
    import, so they count as executed)."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            body = node.body if isinstance(node.body, list) else [node.body]
            for stmt in body:
                lines.update(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
    return lines


def executed(path: str, line: int, covered: dict[str, set[int]], bodies: dict) -> bool:
    """Whether the unmutated checker executes ``path:line`` (traced lines, or a line outside
    every function body, which runs at import)."""
    return line in covered.get(path, set()) or line not in bodies[path]


def _squash(text: str) -> str:
    """``text`` with each run of whitespace made one space, stripped."""
    return re.sub(r"\s+", " ", text).strip()


def describe_mutant(item, sources: dict[str, str], funcs: dict[str, list]) -> Mutant:
    """Apply ``item``'s mutation to the pristine source in memory (cosmic-ray's own
    ``mutate_code``) and describe it: line, enclosing function, changed text, identity."""
    from cosmic_ray.mutating import mutate_code
    from cosmic_ray.plugins import get_operator
    m = item.mutations[0]
    path = Path(m.module_path).as_posix()
    source = sources[path]
    operator = get_operator(m.operator_name)(**(m.operator_args or {}))
    mutated = mutate_code(source, operator, m.occurrence)
    a, b = source.splitlines(), (mutated or source).splitlines()
    before, after, line = [], [], m.start_pos[0]
    first = True
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        if first:
            line, first = i1 + 1, False
        before += a[i1:i2]
        after += b[j1:j2]
    # the innermost def or class around the line is the one that starts last
    inner = [f for f in funcs[path] if f[0] <= line <= f[1]]
    start, function = (max(inner)[0], max(inner)[2]) if inner else (1, "<module>")
    text_before = " / ".join(_squash(x) for x in before) or "(no change)"
    text_after = " / ".join(_squash(x) for x in after)
    dup = sum(1 for k in range(start - 1, line - 1) if _squash(a[k]) == _squash(a[line - 1]))
    op = m.operator_name.split("/", 1)[-1]
    module = path.removeprefix("src/").removesuffix(".py").replace("/", ".")
    ident = f"{module}:{function}:{op}: {text_before} -> {text_after}" + (
        f" #{dup + 1}" if dup else "")
    return Mutant(item.job_id, path, line, function, op, text_before, text_after, ident)


# --------------------------------------------------------------------------------------------
# Running the sample.
# --------------------------------------------------------------------------------------------

class Runner:
    """The worker trees of one run and the processes running in them."""

    def __init__(self, tmp: Path, jobs: int, killer: str):
        self.tmp = tmp
        self.trees = [tmp / f"w{i}" for i in range(jobs)]
        self.killer = killer
        self.procs: list[subprocess.Popen] = []

    def env(self, tree: Path) -> dict:
        """The environment of everything run in ``tree``: pasidsim imported from the copy."""
        env = dict(os.environ)
        env["PYTHONPATH"] = str(tree / "src") + (
            os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env[TREE_ENV] = str(tree)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def killer_command(self, order: bool, timings: str | None = None) -> list[str]:
        """The killer's command line, run with the tree as working directory."""
        cmd = [sys.executable, str(self.tmp / "bench_mutation.py"), "--run-killer",
               self.killer, "--out", "counterexamples"]
        if order:
            cmd += ["--order", str(self.tmp / "cell-order.json")]
        if timings:
            cmd += ["--timings", timings]
        return cmd

    def spawn(self, cmd: list[str], tree: Path, log: Path) -> subprocess.Popen:
        """Start ``cmd`` in ``tree`` in a session of its own (so it can be stopped as a group),
        output to ``log``."""
        with open(log, "ab") as fh:
            proc = subprocess.Popen(cmd, cwd=tree, env=self.env(tree), stdout=fh,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        """Stop every process this run started that is still running (by its own id)."""
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except OSError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                proc.wait()

    def baseline(self) -> list[float]:
        """The killer on every unmutated tree at once; each must pass.  Writes the cell order
        (cheapest first) for the fast killer.  Returns each tree's seconds."""
        timings = str(self.tmp / "cell-timings.json")
        runs = []
        for i, tree in enumerate(self.trees):
            cmd = self.killer_command(order=False, timings=timings if i == 0 else None)
            runs.append((tree, time.perf_counter(),
                         self.spawn(cmd, tree, self.tmp / f"baseline-{i}.log")))
        seconds = []
        for i, (tree, t0, proc) in enumerate(runs):
            code = proc.wait()
            seconds.append(time.perf_counter() - t0)
            if code != 0:
                log = (self.tmp / f"baseline-{i}.log").read_text()
                raise RuntimeError(f"the killer fails on the unmutated tree (exit {code}); "
                                   f"fix the checkout first:\n{log[-3000:]}")
        if self.killer == "fast":
            cells = json.loads(Path(timings).read_text())
            order = [[s, d] for s, d, _t in sorted(cells, key=lambda c: c[2])]
            (self.tmp / "cell-order.json").write_text(json.dumps(order))
        return seconds

    def coverage(self, tree: Path) -> dict[str, set[int]]:
        """The lines of the package that the killer executes on the unmutated ``tree`` (a
        traced run of the fast killer: slower, run once).  Returns relative path -> lines."""
        out = self.tmp / "coverage.json"
        cmd = [sys.executable, str(self.tmp / "bench_mutation.py"), "--run-killer", "fast",
               "--coverage", str(out)]
        code = self.spawn(cmd, tree, self.tmp / "coverage.log").wait()
        if code != 0:
            raise RuntimeError(f"the traced killer run failed (exit {code}): "
                               f"{(self.tmp / 'coverage.log').read_text()[-2000:]}")
        return {k: set(v) for k, v in json.loads(out.read_text()).items()}

    def run(self, items: list, cfg: Path, pristine: Path, on_batch) -> dict:
        """Run every work item of ``items`` through ``cosmic-ray exec`` in the trees, a small
        batch per tree at a time; ``on_batch(results_so_far)`` after each batch.  Each tree's
        mutated files are checked against ``pristine`` after its batch (and restored if cosmic-ray
        did not put them back).  Returns job id -> cosmic-ray WorkResult."""
        from cosmic_ray.work_db import WorkDB, use_db
        queue = deque(items)
        results: dict = {}
        running: dict[int, tuple[subprocess.Popen, list]] = {}
        n = len(self.trees)
        while queue or running:
            for i, tree in enumerate(self.trees):
                if i in running or not queue:
                    continue
                size = max(1, min(8, -(-len(queue) // (2 * n))))
                batch = [queue.popleft() for _ in range(min(size, len(queue)))]
                session = tree.parent / f"{tree.name}.sqlite"
                session.unlink(missing_ok=True)
                with use_db(str(session), WorkDB.Mode.create) as db:
                    db.add_work_items(batch)
                proc = self.spawn([sys.executable, "-m", "cosmic_ray.cli", "exec", str(cfg),
                                   str(session)], tree, self.tmp / f"{tree.name}-exec.log")
                running[i] = (proc, batch)
            time.sleep(0.5)
            for i, (proc, batch) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[i]
                tree = self.trees[i]
                with use_db(str(tree.parent / f"{tree.name}.sqlite"), WorkDB.Mode.open) as db:
                    for item, result in db.completed_work_items:
                        results[item.job_id] = result
                for item in batch:
                    rel = Path(item.mutations[0].module_path)
                    if (tree / rel).read_bytes() != (pristine / rel).read_bytes():
                        shutil.copy2(pristine / rel, tree / rel)
                on_batch(results)
        return results


def resume(path: Path, mutants: list, population: int) -> set:
    """Carry the outcome of an earlier run (its ``--json``) over to ``mutants``: a mutant the
    earlier run killed (or timed out) stays killed, since the kernel modules are the same and
    the killer only gained scenarios and invariants (a cell that failed then fails now).
    Refuses (SystemExit) when the earlier run had another population or another sample: the
    kernel modules changed, so the full sample must run again.  Returns the job ids carried."""
    old = json.loads(Path(path).read_text())
    if old["info"]["population"] != population:
        raise SystemExit(f"--resume {path}: population {old['info']['population']} there, "
                         f"{population} now: the kernel modules changed; run the full sample")
    prev = {m["ident"]: m for m in old["mutants"]}
    if set(prev) != {m.ident for m in mutants}:
        raise SystemExit(f"--resume {path}: another sample (seed or size, or changed modules)")
    carried = set()
    for m in mutants:
        p = prev[m.ident]
        if p["status"] in ("killed", "timeout"):
            m.status, m.detail, m.seconds = p["status"], p["detail"] + " (earlier run)", p["seconds"]
            carried.add(m.job_id)
    return carried


def classify(mutant: Mutant, result) -> None:
    """Set ``mutant.status``/``detail``/``seconds`` from its cosmic-ray WorkResult."""
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome
    if result is None:
        mutant.status, mutant.detail = "error", "no result (interrupted?)"
        return
    out = result.output or ""
    tags = [ln[len(KILLER_TAG):].strip() for ln in out.splitlines() if ln.startswith(KILLER_TAG)]
    for t in tags:
        if t.startswith("seconds "):
            mutant.seconds = float(t.split()[1])
    said = next((t for t in tags if not t.startswith("seconds ")), "")
    if result.worker_outcome != WorkerOutcome.NORMAL:
        mutant.status = "error"
        mutant.detail = f"cosmic-ray {result.worker_outcome.value}: {out.strip()[-300:]}"
    elif result.test_outcome == TestOutcome.SURVIVED:
        mutant.status = "survived"
    elif result.test_outcome == TestOutcome.KILLED:
        if out == "timeout":
            mutant.status, mutant.detail = "timeout", "timeout"
        elif said.startswith("setup "):
            mutant.status, mutant.detail = "error", said
        else:
            mutant.status = "killed"
            mutant.detail = said or ("crash" if "Traceback" in out else "exit status != 0")
    else:
        mutant.status, mutant.detail = "error", f"incompetent: {out.strip()[-300:]}"


# --------------------------------------------------------------------------------------------
# The survivors file.
# --------------------------------------------------------------------------------------------

@dataclass
class Mark:
    """One entry of the survivors file."""

    status: str  # EQUIVALENT | OPEN
    reason: str
    block: list[str] = field(default_factory=list)  # the entry's lines as written


def read_survivors(path: Path) -> dict[str, Mark]:
    """The entries of the survivors file by mutant identity.  An entry is a ``### STATUS ...``
    heading, a fenced block with an ``id: ...`` line, and ``Reason: ...`` text up to the next
    heading."""
    if not path.exists():
        return {}
    marks: dict[str, Mark] = {}
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = re.match(rf"###\s+({'|'.join(STATUSES)})\b", lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not lines[j].startswith(("### ", "## ", "# ")):
            j += 1
        block = lines[i:j]
        ident = next((ln[4:].strip() for ln in block if ln.startswith("id: ")), None)
        text = "\n".join(block)
        reason = text.split("Reason:", 1)[1].strip() if "Reason:" in text else ""
        if ident:
            marks[ident] = Mark(m.group(1), reason, block)
        i = j
    return marks


def _entry(mutant: Mutant, mark: Mark | None) -> str:
    """A survivor's entry in the survivors file."""
    status = mark.status if mark else "OPEN"
    reason = mark.reason if mark and mark.reason else "not triaged yet."
    ran = {True: "yes", False: "no (no scenario x design reaches it)", None: "not measured"}
    return (f"### {status} · {mutant.where} · {mutant.function} · {mutant.operator}\n\n"
            f"```text\nid: {mutant.ident}\n- {mutant.before}\n+ {mutant.after}\n```\n\n"
            f"Line executed by the checker: {ran[mutant.reached]}.\n\n"
            f"Reason: {reason}\n")


def write_survivors(path: Path, survivors: list[Mutant], sampled: set[str],
                    marks: dict[str, Mark], run: str) -> None:
    """Rewrite the survivors file from this run: its survivors with their known marks and
    reasons (new ones OPEN), then the EQUIVALENT marks of mutants that this run did not sample
    (a property of the code, kept for a later run that samples them; an OPEN reason is about
    the scenarios of its day and is re-triaged when the mutant survives again).  Marks of
    sampled mutants that were killed are dropped."""
    head = f"""# Mutation-testing survivors

The mutants of the kernel model that `pasidsim check` did not kill in the last run of
`benchmarks/bench_mutation.py` ({run}).

Each entry is one mutant: a heading `### STATUS · file:line · function · operator`, a block
whose `id:` line is the mutant's identity (module:function:operator: the line before -> after;
stable across runs and line shifts; the benchmark matches entries by it), and a reason.

- **EQUIVALENT**: the mutant cannot change any behaviour the model is about (the reason says
  why); the benchmark leaves it out of the kill rate.
- **OPEN**: a real change of behaviour that no scenario x invariant sees; to be killed by a new
  scenario or invariant.

`python benchmarks/bench_mutation.py --write-survivors` rewrites this file from a run and
keeps the status and reason of every mutant already listed; edit the status word and the
reason by hand.
"""
    parts = [head, "\n## Survivors of the last run\n"]
    for mutant in sorted(survivors, key=lambda m: (m.path, m.line, m.ident)):
        parts.append("\n" + _entry(mutant, marks.get(mutant.ident)))
    kept = {k: v for k, v in marks.items() if k not in sampled and v.status == "EQUIVALENT"}
    if kept:
        parts.append("\n## EQUIVALENT marks of mutants not in the last run's sample\n")
        for _k, mark in sorted(kept.items()):
            parts.append("\n" + "\n".join(mark.block).rstrip() + "\n")
    path.write_text("".join(parts))


# --------------------------------------------------------------------------------------------
# Main.
# --------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None, bench: dict) -> argparse.Namespace:
    """Command-line options; defaults of --sample and --seed from ``[bench]``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sample", type=int, default=bench.get("sample", 300),
                    help="number of mutants to sample (default %(default)s; 0: all)")
    ap.add_argument("--seed", type=int, default=bench.get("seed", 1),
                    help="seed of the sample (default %(default)s)")
    ap.add_argument("--jobs", type=int, default=1, help="trees run side by side (default 1)")
    ap.add_argument("--killer", choices=("fast", "cli"), default="fast",
                    help="fast: the check matrix, stopping at the first unexpected verdict, "
                         "cheapest cells first (default); cli: `pasidsim check` itself")
    ap.add_argument("--rev", help="mutate this commit (git archive) instead of the working tree")
    ap.add_argument("--timeout-factor", type=float, default=bench.get("timeout-factor", 3.0),
                    help="timeout = this x the baseline (default %(default)s)")
    ap.add_argument("--list-survivors", action="store_true",
                    help="list each survivor: file:line, function, operator, the mutation, mark")
    ap.add_argument("--write-survivors", action="store_true",
                    help=f"rewrite {SURVIVORS.relative_to(REPO)} from this run (marks kept)")
    ap.add_argument("--survivors", type=Path, default=SURVIVORS,
                    help="the survivors file (default %(default)s)")
    ap.add_argument("--json", type=Path, help="write every sampled mutant's outcome here")
    ap.add_argument("--resume", type=Path,
                    help="the --json of an earlier run on the same mutant population: its killed "
                         "and timed-out mutants are carried over, only the rest run again (the "
                         "kernel modules must be unchanged, only the killer -- scenarios, "
                         "invariants, checker -- may have grown; checked by the population)")
    ap.add_argument("--dry-run", action="store_true",
                    help="list the sampled mutants and stop (no baseline, no runs)")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temporary trees")
    ap.add_argument("--no-coverage", dest="coverage", action="store_false",
                    help="skip the traced run that tells which survivors sit on lines no "
                         "scenario executes")
    ap.add_argument("--skip-unexecuted", action="store_true",
                    help="do not run the mutants on lines that no scenario executes (they "
                         "cannot be killed: the mutated line never runs); count them survived")
    ap.add_argument("--fail-under", type=float, default=None,
                    help="exit 1 when the kill rate (percent) is below this")
    args = ap.parse_args(argv)
    if args.jobs < 1 or args.sample < 0:
        ap.error("--jobs must be >= 1 and --sample >= 0")
    return args


def summarize(mutants: list[Mutant], args, info: dict, target: float) -> tuple[str, float]:
    """The report's figures as text, and the kill rate in percent."""
    n = Counter(m.status for m in mutants)
    survived = [m for m in mutants if m.status == "survived"]
    equivalent = [m for m in survived if m.mark == "EQUIVALENT"]
    kills = n["killed"] + n["timeout"]
    crash = sum(1 for m in mutants if m.status == "killed" and m.detail.startswith("crash"))
    judged = kills + len(survived) - len(equivalent)
    rate = 100.0 * kills / judged if judged else 0.0
    lines = [
        f"mutation benchmark of `pasidsim check` ({info['source']}; cosmic-ray "
        f"{info['cosmic_ray']}; killer {args.killer}; seed {args.seed})",
        f"modules mutated: {len(info['modules'])}; mutants: {info['population']} "
        f"(after the operators-filter dropped {info['dropped']})",
        f"baseline {info['baseline']:.1f} s (slowest of {args.jobs} trees), "
        f"timeout {info['timeout']:.1f} s",
    ]
    if info.get("unexecuted"):
        dark, total = info["unexecuted"]
        lines.append(f"{dark} of the {total} mutants ({100 * dark / total:.0f}%) are on lines that "
                     "no scenario x design executes: only a new scenario can kill those")
    lines += [
        "",
        f"  sampled      {len(mutants):5d}",
        f"  killed       {n['killed']:5d}   ({n['killed'] - crash} by a verdict, {crash} by a crash)",
        f"  timed out    {n['timeout']:5d}   (counted as killed)",
        f"  survived     {len(survived):5d}",
        f"  equivalent   {len(equivalent):5d}   (survivors marked EQUIVALENT in "
        f"{args.survivors.name})",
        f"  open         {len(survived) - len(equivalent):5d}",
    ]
    if any(m.reached is not None for m in mutants):
        dark = sum(1 for m in survived if m.reached is False)
        lines.append(f"               ({dark} of the {len(survived)} survivors are on lines that "
                     "no scenario x design executes)")
    if n["error"] or n["pending"]:
        lines.append(f"  errors       {n['error'] + n['pending']:5d}   (no verdict: left out)")
    lines += [
        f"  kill rate    {rate:5.1f}%  = (killed + timed out) / (sampled - equivalent - errors)"
        f" = {kills}/{judged}; target >= {100 * target:.0f}%: "
        f"{'met' if rate >= 100 * target else 'NOT met'}",
        "",
        f"wall {info['wall']:.0f} s for {info['run']} mutants run: "
        f"{info['wall'] / max(1, info['run']):.1f} s per mutant with --jobs {args.jobs} "
        f"({info['wall'] * args.jobs / max(1, info['run']):.1f} tree-seconds per mutant)",
    ]
    secs = {s: [m.seconds for m in mutants if m.status == s and m.seconds is not None]
            for s in ("killed", "survived")}
    lines.append("killer run time, mean: " + ", ".join(
        f"{s} {sum(v) / len(v):.1f} s" for s, v in secs.items() if v))
    per_module = Counter((m.path, m.status) for m in mutants)
    mods = sorted({m.path for m in mutants})
    lines.append("")
    lines.append("per module (killed+timeout / survived / sampled):")
    for p in mods:
        k = per_module[(p, "killed")] + per_module[(p, "timeout")]
        s = per_module[(p, "survived")]
        tot = sum(v for (pp, _st), v in per_module.items() if pp == p)
        lines.append(f"  {p:40s} {k:3d} / {s:3d} / {tot:3d}")
    return "\n".join(lines), rate


def killer_cli(argv: list[str]) -> int:
    """The killer's own command line (``--run-killer MODE [--order F] [--timings F] [--out D]``),
    the test-command cosmic-ray runs inside a tree copy; it reads no configuration."""
    ap = argparse.ArgumentParser(prog="bench_mutation.py --run-killer")
    ap.add_argument("--run-killer", choices=("fast", "cli"), required=True)
    ap.add_argument("--order")
    ap.add_argument("--timings")
    ap.add_argument("--out", default="counterexamples")
    ap.add_argument("--coverage")
    a = ap.parse_args(argv)
    return killer_main(a.run_killer, a.order, a.timings, a.out, a.coverage)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with the internal ``--run-killer``, the killer itself)."""
    argv = sys.argv[1:] if argv is None else argv
    if "--run-killer" in argv:
        return killer_cli(argv)
    base_cr, bench = load_config(CONFIG)
    args = parse_args(argv, bench)

    from importlib.metadata import version
    cr_version = version("cosmic-ray")
    if cr_version != PINNED_COSMIC_RAY:
        print(f"warning: cosmic-ray {cr_version} installed, the benchmark is pinned to "
              f"{PINNED_COSMIC_RAY} (pip install cosmic-ray=={PINNED_COSMIC_RAY})",
              file=sys.stderr)
    marks = read_survivors(args.survivors)

    def interrupted(_signum, _frame):
        raise KeyboardInterrupt
    # Ctrl-C, kill and a closed terminal all stop the runs and remove the temporary trees (a
    # background job of a non-interactive shell starts with SIGINT ignored: take it back)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    tmp = Path(tempfile.mkdtemp(prefix="pasidsim-mutation-"))
    runner = Runner(tmp, args.jobs, args.killer)
    t_start = time.perf_counter()
    try:
        # 1. the trees
        first = runner.trees[0]
        first.mkdir()
        source = copy_sources(first, args.rev)
        subprocess.run([sys.executable, "-m", "compileall", "-q", "--invalidation-mode",
                        "checked-hash", str(first / "src")], check=True)
        shutil.copy2(Path(__file__), tmp / "bench_mutation.py")
        pristine = tmp / "pristine"
        shutil.copytree(first, pristine)
        for tree in runner.trees[1:]:
            shutil.copytree(first, tree)
        # 2. the modules and the sample
        modules = discover_modules(first, bench.get("modules", []),
                                   bench.get("exclude-modules", []))
        if not modules:
            raise RuntimeError("no module matched [bench].modules in mutation.toml")
        cfg = tmp / "cosmic-ray.toml"
        killer = " ".join(shlex.quote(x) for x in runner.killer_command(order=args.killer == "fast"))
        write_cr_config(cfg, base_cr, modules, 600.0, killer)
        print(f"mutating {len(modules)} modules of the {source}: "
              + ", ".join(m.removeprefix("src/pasidsim/") for m in modules), flush=True)
        items, dropped = enumerate_mutants(pristine, cfg)
        (tmp / "enumerate.sqlite").unlink(missing_ok=True)
        # a seeded shuffle of the sorted population: --sample n is a prefix of --sample N > n
        shuffled = list(items)
        random.Random(args.seed).shuffle(shuffled)
        sample = shuffled if args.sample == 0 else shuffled[:args.sample]
        sources = {p: (pristine / p).read_text() for p in modules}
        funcs = {p: _functions(s) for p, s in sources.items()}
        mutants = [describe_mutant(it, sources, funcs) for it in sample]
        for m in mutants:
            m.mark = marks[m.ident].status if m.ident in marks else ""
        print(f"{len(items)} mutants after the operators-filter ({sum(dropped.values())} dropped);"
              f" sampled {len(mutants)} with seed {args.seed}", flush=True)
        if args.dry_run:
            for m in sorted(mutants, key=lambda m: (m.path, m.line)):
                print(f"{m.where:34s} {m.function:32s} {m.operator:36s} {m.before}  ->  {m.after}")
            return 0
        # 3. the baseline
        base = runner.baseline()
        timeout = args.timeout_factor * max(base)
        write_cr_config(cfg, base_cr, modules, timeout, killer)
        print(f"baseline: killer passes on the unmutated tree in "
              f"{', '.join(f'{b:.1f}' for b in base)} s; timeout {timeout:.1f} s", flush=True)
        ceiling = None
        if args.coverage:
            covered = runner.coverage(pristine)
            bodies = {p: body_lines(src) for p, src in sources.items()}
            for m in mutants:
                m.reached = executed(m.path, m.line, covered, bodies)
            dark = sum(1 for it in items if not executed(
                Path(it.mutations[0].module_path).as_posix(), it.mutations[0].start_pos[0],
                covered, bodies))
            ceiling = (dark, len(items))
            print(f"coverage: {dark} of {len(items)} mutants ({100 * dark / len(items):.0f}%) "
                  "are on lines that no scenario x design executes", flush=True)
        # 4. the mutants
        t_run = time.perf_counter()
        last = [0.0]

        carried = set()
        if args.resume:
            carried = resume(args.resume, mutants, len(items))
            print(f"resumed from {args.resume}: {len(carried)} mutants killed there are carried "
                  f"over; {len(mutants) - len(carried)} run again", flush=True)
        skipped = set()
        if args.skip_unexecuted and args.coverage:
            skipped = {m.job_id for m in mutants if m.reached is False}
            print(f"skipping {len(skipped)} mutants on lines no scenario executes "
                  "(counted as survived)", flush=True)
        todo = [it for it in sample if it.job_id not in skipped and it.job_id not in carried]

        def progress(results: dict) -> None:
            """One line of progress every 30 s or so."""
            now = time.perf_counter()
            if now - last[0] < 30 and len(results) < len(todo):
                return
            last[0] = now
            done = len(results)
            surv = sum(1 for r in results.values() if r.test_outcome is not None
                       and r.test_outcome.value == "survived")
            eta = (now - t_run) / done * (len(todo) - done) if done else 0
            print(f"  {done}/{len(todo)} done, {surv} survived, {now - t_run:.0f} s, "
                  f"~{eta:.0f} s to go", flush=True)

        results = runner.run(todo, cfg, pristine, progress)
        wall = time.perf_counter() - t_run
        for m in mutants:
            if m.job_id in carried:
                continue
            if m.job_id in skipped:
                m.status, m.detail = "survived", "not run: the line is never executed"
            else:
                classify(m, results.get(m.job_id))
        info = dict(source=source, cosmic_ray=cr_version, modules=modules,
                    population=len(items), dropped=sum(dropped.values()),
                    baseline=max(base), timeout=timeout, wall=wall, unexecuted=ceiling,
                    run=len(todo), carried=len(carried),
                    resumed_from=str(args.resume) if args.resume else None)
        target = float(bench.get("target", 0.9))
        text, rate = summarize(mutants, args, info, target)
        print()
        print(text)
        survivors = [m for m in mutants if m.status == "survived"]
        stale = [m for m in mutants if m.status != "survived" and m.ident in marks]
        for m in stale:
            print(f"note: {m.where} ({m.ident}) is listed in {args.survivors.name} as "
                  f"{marks[m.ident].status} but was {m.status} in this run")
        if args.list_survivors:
            print(f"\nsurvivors ({len(survivors)}):")
            for m in sorted(survivors, key=lambda m: (m.path, m.line)):
                dark = " [line never executed]" if m.reached is False else ""
                print(f"  {m.mark or 'NEW':10s} {m.where:34s} {m.function:30s} {m.operator}"
                      f"{dark}\n             {m.before}  ->  {m.after}")
        errors = [m for m in mutants if m.status in ("error", "pending")]
        for m in errors:
            print(f"error: {m.where} {m.ident}: {m.detail}")
        if args.json:
            args.json.write_text(json.dumps(
                {"info": info, "seed": args.seed, "killer": args.killer,
                 "kill_rate": rate, "mutants": [asdict(m) for m in mutants]}, indent=1))
        if args.write_survivors:
            run = (f"{info['source']}, cosmic-ray {cr_version}, killer {args.killer}, "
                   f"sample {len(mutants)} of {len(items)}, seed {args.seed}, "
                   f"kill rate {rate:.1f}%, {time.strftime('%Y-%m-%d')}")
            write_survivors(args.survivors, survivors, {m.ident for m in mutants}, marks, run)
            print(f"wrote {args.survivors}")
        print(f"total {time.perf_counter() - t_start:.0f} s")
        if args.fail_under is not None and rate < args.fail_under:
            return 1
        return 0
    except KeyboardInterrupt:
        print("interrupted: stopping the runs; the checkout was never modified", file=sys.stderr)
        return 130
    finally:
        runner.stop_all()
        if args.keep_tmp:
            print(f"temporary trees kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
