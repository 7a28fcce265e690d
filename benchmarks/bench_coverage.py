"""Branch coverage of the kernel model while the checker explores the built-in scenarios.

    python benchmarks/bench_coverage.py [--uncovered] [--scenario NAME ...] [--exclude NAME ...]
                                        [--design NAME ...] [--json FILE] [--fail-under PCT]

Runs coverage.py (branch coverage; tested with coverage==7.17.3, ``pip install
coverage==7.17.3``) over the kernel model -- ``src/pasidsim/{pasid,mm,domain,group,sva,x86,
files,ioasid,iommufd,mem,iopf,fault,lifecycle,work,ops,step}.py`` (those that exist),
``hw/*.py`` and ``drivers/*.py`` -- while the model checker explores every built-in scenario on
every design, in this process: exactly ``pasidsim check`` with no argument, run through click's
``CliRunner``.  With ``--scenario`` (or ``--exclude``) only those scenarios are checked, each on
every design (``pasidsim check NAME --design D ...``).

Prints, per module and in total, the branch coverage (branches taken / branches) -- the target
is >= 95 % in total -- with coverage.py's combined statement+branch figure beside it, the
wall-clock time of the check and its exit status (0: every verdict as expected).  With
``--uncovered``, every branch never taken (``file:line -> line`` with the source line; a
negative target is an exit from the function) and every statement never executed
(``file:first-last``), so that each can be given a reason (see
``benchmarks/coverage-uncovered.md``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if (ROOT / "src" / "pasidsim").is_dir():
    sys.path.insert(0, str(ROOT / "src"))

#: the top-level kernel-model modules (those that exist are measured), plus hw/ and drivers/
KERNEL_MODULES = ("pasid", "mm", "domain", "group", "sva", "x86", "files", "ioasid", "iommufd",
                  "mem", "iopf", "fault", "lifecycle", "work", "ops", "step")
PACKAGES = ("hw", "drivers")
TARGET = 95.0


def package_dir() -> Path:
    """The pasidsim package directory, found without importing it (coverage must be running
    before the first import, or the module-level lines would count as never executed)."""
    spec = importlib.util.find_spec("pasidsim")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("pasidsim is not importable")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def measured_files(pkg: Path, extra: tuple = ()) -> list[Path]:
    """The kernel-model source files to measure, in report order (``extra``: more top-level
    module names, e.g. ``file_table``)."""
    files = [pkg / f"{m}.py" for m in KERNEL_MODULES + tuple(extra)
             if (pkg / f"{m}.py").is_file()]
    for sub in PACKAGES:
        files += sorted((pkg / sub).glob("*.py"))
    return files


def run_check(scenarios: list[str] | None, designs: list[str] | None) -> tuple[int, str]:
    """``pasidsim check`` in-process; returns (exit status, output).  ``scenarios`` None: the
    whole matrix (no argument); else one invocation per scenario on ``designs`` (all when
    None)."""
    from click.testing import CliRunner

    from pasidsim.cli import main
    out_dir = tempfile.mkdtemp(prefix="bench-coverage-cex-")
    runner = CliRunner()
    if scenarios is None and not designs:
        res = runner.invoke(main, ["check", "--out", out_dir], catch_exceptions=False)
        return res.exit_code, res.output
    from pasidsim.designs import DESIGNS
    from pasidsim.scenario import builtin_scenarios
    names = scenarios if scenarios is not None else list(builtin_scenarios())
    dargs = [a for d in (designs or list(DESIGNS)) for a in ("--design", d)]
    worst, outputs = 0, []
    for name in names:
        res = runner.invoke(main, ["check", name, *dargs, "--out", out_dir],
                            catch_exceptions=False)
        worst = max(worst, res.exit_code)
        outputs.append(res.output)
    return worst, "".join(outputs)


def group_ranges(lines: list[int]) -> list[tuple[int, int]]:
    """[3, 4, 5, 9] -> [(3, 5), (9, 9)]."""
    out: list[tuple[int, int]] = []
    for n in sorted(lines):
        if out and n == out[-1][1] + 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--uncovered", action="store_true",
                    help="list every uncovered branch and statement")
    ap.add_argument("--scenario", action="append", default=None,
                    help="check only this built-in scenario (repeatable)")
    ap.add_argument("--exclude", action="append", default=[],
                    help="leave this built-in scenario out (repeatable)")
    ap.add_argument("--design", action="append", default=None,
                    help="check only this design (repeatable; default: all)")
    ap.add_argument("--extra", action="append", default=[],
                    help="also measure this top-level module of pasidsim (repeatable)")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    ap.add_argument("--fail-under", type=float, default=None,
                    help="exit 1 when total branch coverage is below this percentage")
    args = ap.parse_args()

    try:
        import coverage
    except ImportError:
        sys.exit("coverage.py is needed: pip install coverage==7.17.3")
    pkg = package_dir()
    files = measured_files(pkg, tuple(args.extra))
    data_file = tempfile.mktemp(prefix="bench-coverage-", suffix=".data")
    cov = coverage.Coverage(branch=True, data_file=data_file,
                            include=[str(f) for f in files], config_file=False)
    cov.start()
    try:
        scenarios = args.scenario
        if args.exclude:
            from pasidsim.scenario import builtin_scenarios
            scenarios = [s for s in (scenarios or list(builtin_scenarios()))
                         if s not in args.exclude]
        t0 = time.perf_counter()
        status, output = run_check(scenarios, args.design)
        elapsed = time.perf_counter() - t0
    finally:
        cov.stop()
    report_path = tempfile.mktemp(prefix="bench-coverage-", suffix=".json")
    with open(os.devnull, "w") as devnull:
        stdout, sys.stdout = sys.stdout, devnull
        try:
            cov.json_report(morfs=[str(f) for f in files], outfile=report_path,
                            show_contexts=False, ignore_errors=True)
        finally:
            sys.stdout = stdout
    report = json.loads(Path(report_path).read_text())
    for p in (report_path, data_file):
        try:
            os.unlink(p)
        except OSError:
            pass

    rows, tb, cb, ts, cs = [], 0, 0, 0, 0
    by_file = {str(Path(k).resolve()): v for k, v in report["files"].items()}
    for f in files:
        rec = by_file.get(str(f))
        rel = str(f.relative_to(pkg.parent))
        if rec is None:  # never imported: nothing of it ran
            rows.append((rel, 0, 0, 0.0, 0.0, None))
            continue
        summ = rec["summary"]
        nb, cbr = summ["num_branches"], summ["covered_branches"]
        ns, cst = summ["num_statements"], summ["covered_lines"]
        tb, cb, ts, cs = tb + nb, cb + cbr, ts + ns, cs + cst
        pct_b = 100.0 * cbr / nb if nb else 100.0
        rows.append((rel, nb, cbr, pct_b, summ["percent_covered"], rec))
    total_b = 100.0 * cb / tb if tb else 100.0
    total_c = 100.0 * (cb + cs) / (tb + ts) if tb + ts else 100.0

    what = "every built-in scenario" if args.scenario is None and not args.exclude else \
        f"{len(scenarios)} scenario(s)"
    matrix = args.scenario is None and not args.exclude and not args.design
    verdicts = (("every verdict as expected" if status == 0 else
                 "some verdict NOT as expected: see `pasidsim check`") if matrix else
                "per-scenario mode: a historical design's documented breakage counts as a failure")
    print(f"pasidsim check over {what} x {len(args.design) if args.design else 'every'} "
          f"design(s): {elapsed:.1f} s under coverage, exit status {status} ({verdicts})")
    print(f"coverage.py {coverage.__version__}, branch coverage\n")
    w = max(len(r[0]) for r in rows) + 2
    print(f"{'module':<{w}}{'branches':>9}{'taken':>7}{'branch %':>10}{'stmt+br %':>11}")
    for rel, nb, cbr, pct_b, pct_c, _rec in rows:
        print(f"{rel:<{w}}{nb:>9}{cbr:>7}{pct_b:>9.1f}%{pct_c:>10.1f}%")
    print(f"{'TOTAL':<{w}}{tb:>9}{cb:>7}{total_b:>9.1f}%{total_c:>10.1f}%")
    print(f"\ntarget: branch coverage >= {TARGET:.0f}% in total: "
          f"{'met' if total_b >= TARGET else 'NOT met'}")

    if args.uncovered:
        print("\nuncovered branches (file:line -> line; a negative target = exit from the "
              "function) and statements never executed:")
        for rel, _nb, _cbr, _pb, _pc, rec in rows:
            if rec is None:
                print(f"{rel}: never imported")
                continue
            src = (pkg.parent / rel).read_text().splitlines()
            for a, b in rec.get("missing_branches", []):
                text = src[a - 1].strip() if 0 < a <= len(src) else ""
                print(f"{rel}:{a} -> {b}    {text}")
            for a, b in group_ranges(rec.get("missing_lines", [])):
                text = src[a - 1].strip() if 0 < a <= len(src) else ""
                span = f"{a}" if a == b else f"{a}-{b}"
                print(f"{rel}:{span} not executed    {text}")
    if args.json:
        args.json.write_text(json.dumps({
            "coverage_version": coverage.__version__, "check_exit_status": status,
            "check_seconds": round(elapsed, 2), "branches": tb, "branches_taken": cb,
            "branch_percent": round(total_b, 2), "combined_percent": round(total_c, 2),
            "modules": {rel: {"branches": nb, "taken": cbr, "branch_percent": round(pb, 2),
                              "combined_percent": round(pc, 2),
                              "missing_branches": rec.get("missing_branches", []) if rec else [],
                              "missing_lines": rec.get("missing_lines", []) if rec else []}
                        for rel, nb, cbr, pb, pc, rec in rows}}, indent=1) + "\n")
    if args.fail_under is not None and total_b < args.fail_under:
        sys.exit(1)


if __name__ == "__main__":
    main()
