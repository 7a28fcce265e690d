"""Try one mutant by hand: does ``pasidsim check`` kill it?

    python benchmarks/try_mutant.py FILE OLD NEW [--nth K] [-- CHECK-ARGS...]

FILE is a path under ``src/`` (e.g. ``src/pasidsim/hw/cache.py``); OLD is a piece of its text
(whitespace as in the file) and NEW its replacement: the K-th occurrence (default: the only
one; an ambiguous OLD is refused) is replaced in a throw-away copy of ``src/``, and
``pasidsim check`` runs against that copy (the whole matrix, or the CHECK-ARGS after ``--``,
e.g. ``-- my-scenario --design current``).  Prints ``KILLED`` (exit status non-zero, with the
check's last lines) or ``SURVIVED``; exits 0 when killed, 1 when it survived, 2 on bad input.

A companion of ``benchmarks/bench_mutation.py`` for writing the scenario or invariant that
kills a listed survivor: the benchmark's own sample is the measure, this is the quick probe.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file")
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--nth", type=int, default=0, help="replace the K-th occurrence (1-based)")
    args = ap.parse_args(argv)
    rel = Path(args.file)
    src_file = ROOT / rel
    if not src_file.is_file() or rel.parts[0] != "src":
        print(f"{args.file}: not a file under src/", file=sys.stderr)
        return 2
    text = src_file.read_text(encoding="utf-8")
    n = text.count(args.old)
    if n == 0 or (n > 1 and not args.nth) or args.nth > n:
        print(f"{args.file}: OLD occurs {n} times" + ("; pass --nth" if n > 1 else ""),
              file=sys.stderr)
        return 2
    k = args.nth or 1
    pos = -1
    for _ in range(k):
        pos = text.index(args.old, pos + 1)
    mutated = text[:pos] + args.new + text[pos + len(args.old):]
    with tempfile.TemporaryDirectory(prefix="try-mutant-") as tmp:
        shutil.copytree(ROOT / "src", Path(tmp) / "src",
                        ignore=shutil.ignore_patterns("__pycache__"))
        (Path(tmp) / rel).write_text(mutated, encoding="utf-8")
        env = dict(os.environ, PYTHONPATH=str(Path(tmp) / "src"), PYTHONDONTWRITEBYTECODE="1")
        cmd = [sys.executable, "-c", "from pasidsim.cli import main; main()", "check",
               "--out", str(Path(tmp) / "cx"), *extra]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp)
    lines = (proc.stdout + proc.stderr).rstrip().splitlines()
    if proc.returncode != 0:
        print("KILLED (exit %d)" % proc.returncode)
        print("\n".join(lines[-12:]))
        return 0
    print("SURVIVED")
    return 1


if __name__ == "__main__":
    sys.exit(main())
