"""One timed model-checker run on a scenario text; prints one JSON line.  Run by
``bench_check.py --baseline`` (not meant to be run by hand).

    PYTHONPATH=<tree>/src python _check_driver.py SCENARIO.yaml --expect-root <tree>/src \
        [--warmup SMALL.yaml]

``bench_check.py`` copies this file into its temporary directory and runs that one copy for both
sides of the comparison, the working tree and the baseline revision, so that both run identical
driver code; only ``PYTHONPATH`` differs.  It must therefore work on every revision it is
compared with: it uses only the standard library and the three calls the baseline's own
``benchmarks/bench_check.py`` makes (``load_text``, ``compile_scenario``, ``check_scenario``
and the ``verdict``/``states``/``transitions`` of the result), and it times what that
benchmark's "states/s" line times: one ``check_scenario`` of the compiled scenario, serial,
unbounded, every invariant.  In a fresh process the first check also pays one-time costs
(about 0.1 s here: first calls, caches filling); ``--warmup`` checks a small scenario first,
untimed, so that the timed check measures the checker's steady speed on both sides.  If a
restructuring moves one of these calls, import it from its new place first and fall back to
the old one here, so that the baseline keeps working.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def _ida_impl() -> str:
    """Which persistent-IDA implementation the checker runs on: "C", "Python" or "unknown"."""
    try:
        from pasidsim.ida import Ida
    except ImportError:
        return "unknown"
    module = getattr(Ida, "__module__", "")
    return "C" if module.endswith("._ida") else "Python" if module else "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("scenario", type=Path, help="scenario YAML to check")
    ap.add_argument("--expect-root", type=Path, required=True,
                    help="the src/ directory pasidsim must be imported from")
    ap.add_argument("--warmup", type=Path, help="a small scenario to check first, untimed")
    args = ap.parse_args()

    import pasidsim
    root = Path(pasidsim.__file__).resolve().parent.parent
    if root != args.expect_root.resolve():
        sys.exit(f"pasidsim imported from {root}, not from {args.expect_root}")

    from pasidsim.check.runner import check_scenario
    from pasidsim.scenario.compile import compile_scenario
    from pasidsim.scenario.loader import load_text

    if args.warmup is not None:
        check_scenario(compile_scenario(load_text(args.warmup.read_text(), "<warmup>")),
                       max_states=None, max_seconds=None)
    c = compile_scenario(load_text(args.scenario.read_text(), "<bench>"))
    t0 = time.perf_counter()
    cell = check_scenario(c, max_states=None, max_seconds=None)
    wall = time.perf_counter() - t0
    print(json.dumps({"verdict": str(cell.verdict), "states": cell.states,
                      "transitions": cell.transitions, "wall": wall,
                      "states_per_s": cell.states / wall, "ida": _ida_impl(),
                      "pure_ida_forced": bool(os.environ.get("PASIDSIM_PURE_IDA")),
                      "root": str(root)}))


if __name__ == "__main__":
    main()
