"""Regression guard: the verdict of every built-in scenario × design cell, as `pasidsim check`
computes it, equals the one recorded in tests/golden/check_verdicts.json: verdict, first
invariant broken, distinct states, transitions, counterexample length and unreached goals.  The
default granularity is ``call``, so this is also the guard that ``call`` granularity keeps the
previous verdicts and state counts exactly.

History of the golden file: captured before the kernel model's restructuring, extended to the
whole matrix (1,003 cells) at bd1ac5a, the last commit before lock granularity; re-captured
(1,564 cells: the new scenarios and designs included) for fidelity round 2 (issue 11) after
checking that the only cells that moved were
- the E0-io_mm column: the io_mm RFC frees the PASID with the io_mm's last bond (not at mm exit
  only) and calls the drivers' ``mm_exit`` before the PASID entries are quiesced (the M1t/X1
  breakages now listed in check/expected/);
- iommufd-pasid-limits on every design: three steps added (a fault queue attached as a page
  table, -EINVAL; a kernel domain, -ENOENT; the queue destroyed): +3 states;
- dma-cache-close-fork-exit × H2-mmget-bind (357 → 363 states): H2's unbind puts the bond's
  mm_users reference first, under the unbind lock (lock granularity's deadlock row needs it).
- sva-bind-unsupported on every design: one step added (a VT-d device with PASID but no PRI:
  the SVA bind fails -ENODEV, ``intel_iommu_enable_iopf``); the PASID-capable VT-d devices of
  six scenarios that bind SVA were given ATS and PRI (their verdicts and counts unchanged).
- seven E15-x86-sva-disabled cells of SMMUv3 machines: the E15 gate (``IS_ENABLED(CONFIG_X86)``)
  now refuses binds only behind x86 IOMMUs (VT-d, AMD-Vi).
Extended to 1,656 cells with the design vtd-iopf-remove-first and the scenario
hist-iopf-unbind-pending when VT-d's per-device IOPF refcount (v6.16+) came in; the only existing
cells that moved are iopf-inflight-unbind's (41 → 42 states on every design): the scenario now
flushes the worker before it removes dsa0 from the fault queue, since a removal with a group
still queued frees the group under the worker (invariant F3).  With the 2018 RFC's
``iommu_sva_device_init()`` (a bind without it fails -EINVAL; an existing PASID outside the
device's range -ERANGE) twelve cells of the E0-io_mm and koenig-explicit-unbind columns moved:
dma-cache-eviction, fault-injection-unwind, iommufd-pasid-limits, pasid-width-limit,
private-pasid-limits and sva-bind-unsupported, whose binds come from the scenario itself (no
driver probe declared the device), now stop at that bind (fewer states; see check/expected/).
When files came to keep their driver's ``file_operations`` and idxd's remove stopped unbinding
open files (the kernel leaves that to their release), the two scenarios that unbound idxd
under open files were rewritten, and only their cells moved: driver-unbind-open-files (the
idxd queue taken out; uacce's orphaned mmap is now -ENXIO) and h8-unbind-after-exit (the last
unbind now comes from B's exit, not from the driver's remove).  The scenario idxd-system-pasid
(idxd's kernel work-queue PASID) added 24 cells: 1,680; the design dma-owner-enum-v4 70 more
(every existing cell unchanged): 1,750.  When uacce's open became a kernel function with its
``uacce->mutex`` as a preemption point (the open-after-remove -EINVAL), the one lock-granularity
scenario that opens a uacce queue, lock-h2-release-deadlock, gained that point: +1 state on
every design (+1 step in the counterexamples that pass through the open).
The lock-granularity scenario lock-uacce-open-vs-remove (that race, driven by the checker)
added 25 cells: 1,775.

A cell may differ only where :data:`CHANGED` says so, with the new values and the reason (a
new judgement of the checker: WARNs, expect_final, fault injection ...).  A restructuring of
the model that keeps its behaviour keeps every other cell bit for bit: a changed state count
is a changed state space, which must be explained here or fixed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pasidsim.check.cli_check import _check_cell
from pasidsim.designs import DESIGNS
from pasidsim.scenario import builtin_scenarios, load_scenario

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "check_verdicts.json"

#: ``(scenario, design) -> ({field: new value}, reason)``: the only cells allowed to differ
#: from the golden file, and how.  Fields: verdict, invariant, states, transitions, length,
#: unreached.
CHANGED: dict[tuple[str, str], tuple[dict, str]] = {
}

#: the settings of `pasidsim check` with no options
SETTINGS = dict(strategy="bfs", max_states=200_000, max_depth=None, max_seconds=120.0,
                symmetry=False, por=False, inject_faults=None)

FIELDS = ("verdict", "invariant", "states", "transitions", "length", "unreached")


def _golden() -> dict[tuple[str, str], dict]:
    data = json.loads(GOLDEN.read_text())
    return {tuple(k.split("|", 1)): v for k, v in data.items()}


def test_golden_covers_only_existing_scenarios_and_designs():
    builtin = builtin_scenarios()
    for s, d in _golden():
        assert s in builtin, f"golden cell of a scenario that is gone: {s}"
        assert d in DESIGNS, f"golden cell of a design that is gone: {d}"
    for key in CHANGED:
        assert key in _golden(), f"CHANGED lists {key}, which the golden file does not have"


def test_every_cell_matches_the_golden_verdicts():
    golden = _golden()
    builtin = builtin_scenarios()
    loaded = {s: load_scenario(builtin[s]) for s in sorted({s for s, _d in golden})}
    diffs = []
    for (s, d), want in sorted(golden.items()):
        cell = _check_cell(loaded, s, d, (None, False), None, SETTINGS)
        got = {"verdict": cell.verdict, "invariant": cell.invariant, "states": cell.states,
               "transitions": cell.transitions, "length": len(cell.refs),
               "unreached": sorted(cell.unreached)}
        want = {k: (sorted(want[k]) if k == "unreached" else want[k]) for k in FIELDS}
        if (s, d) in CHANGED:
            want = {**want, **CHANGED[(s, d)][0]}
        if got != want:
            delta = {k: (want[k], got[k]) for k in FIELDS if got[k] != want[k]}
            diffs.append(f"{s} × {d}: (golden, now) {delta}")
    assert not diffs, "cells differ from tests/golden/check_verdicts.json:\n" + "\n".join(diffs)


def test_every_allowed_difference_says_how_and_why():
    for key, (fields, why) in CHANGED.items():
        assert fields and set(fields) <= set(FIELDS), key
        assert len(why) > 20, key


@pytest.mark.parametrize("reduction", ["symmetry", "por", "symmetry+por"])
def test_every_cell_gives_the_golden_verdict_under_each_reduction(reduction):
    """Issue #12: symmetry, partial-order reduction and both give every cell of the matrix
    (every built-in scenario × every design) the serial search's verdict, first invariant,
    counterexample length and unreached goals, visiting no more states (the gates in
    test_symmetry/test_por check the state classes on the built-in and historical cases)."""
    golden = _golden()
    builtin = builtin_scenarios()
    loaded = {s: load_scenario(builtin[s]) for s in sorted({s for s, _d in golden})}
    settings = {**SETTINGS, "symmetry": "symmetry" in reduction, "por": "por" in reduction}
    diffs = []
    for (s, d), want in sorted(golden.items()):
        cell = _check_cell(loaded, s, d, (None, False), None, settings)
        got = {"verdict": cell.verdict, "invariant": cell.invariant, "length": len(cell.refs),
               "unreached": sorted(cell.unreached)}
        exp = {k: (sorted(want[k]) if k == "unreached" else want[k]) for k in got}
        if (s, d) in CHANGED:
            exp = {**exp, **{k: v for k, v in CHANGED[(s, d)][0].items() if k in exp}}
        if got != exp or cell.states > want["states"]:
            diffs.append(f"{s} × {d}: (serial, {reduction}) "
                         f"{ {k: (exp[k], got[k]) for k in got if got[k] != exp[k]} } "
                         f"states {want['states']} / {cell.states}")
    assert not diffs, "\n".join(diffs)
