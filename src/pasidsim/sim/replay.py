"""A simulator run's steps as a scenario file that ``pasidsim run`` replays unchanged.

Every step the run applied up to the violation is written out: each simulated process becomes
a process actor (its task is created at setup, as for any scenario actor: task and object ids
differ from the run's, the PASIDs and the outcome do not), the hardware events the simulator
scheduled (fence signals, the interrupt handler, descriptor completions) are the steps of a
kernel actor ``irq`` named with their arguments, and ``order`` is the exact interleaving.
Values a later step uses (file descriptors, fences, descriptors, buffer addresses) are bound
with ``as:`` and referred to as ``$name``.  The boot-time driver probes are the scenario's own
(``probe_drivers: true``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..step import OP_BY_NAME, OPS
from .engine import C_CREATE, C_PROBE, REC, SimResult, Simulation

#: operation -> the kind of value its return is (bound with ``as:``)
_RETURNS = {"dev_open": "fd", "amdgpu_cs_submit": "fence", "wq_submit": "desc",
            "mmap_anon": "buf"}
#: argument name -> the kind of value it refers to
_REFS = {"fd": "fd", "fence": "fence", "desc": "desc", "addr": "buf"}
_HW_ACTOR = "irq"


def _errno_text(ret: int) -> str:
    import errno
    name = errno.errorcode.get(-ret)
    return f"-{name}" if name else str(ret)


def replay_scenario(sim: Simulation, res: SimResult) -> dict:
    """The scenario (as data) of the steps of ``res`` (recorded by ``sim``, up to and including
    the violating one).  Raises ValueError when the run was not recorded."""
    if res.log is None:
        raise ValueError("the run was not recorded (record=False)")
    log, cfg = res.log, sim.config
    n = len(log) // REC
    if res.violation is not None:
        n = min(n, res.violation.event + 1)
    names: dict[tuple[str, int], str] = {}
    counter: dict[str, int] = {}
    programs: dict[int, list] = {}
    order: list[str] = []
    for i in range(n):
        actor, code, ret, *args = log[i * REC:(i + 1) * REC]
        if code == C_PROBE or code == C_CREATE:
            continue
        op = OPS[code]
        kw: dict[str, Any] = {}
        for p, v in zip(op.params, args):
            if p == "tid":
                continue
            if p == "dev":
                kw[p] = cfg.devices[v].name
            elif p in _REFS and (_REFS[p], v) in names:
                kw[p] = "$" + names[(_REFS[p], v)]
            else:
                kw[p] = int(v)
        kind = _RETURNS.get(op.name)
        if kind and ret >= 0 and (kind, ret) not in names:
            counter[kind] = counter.get(kind, 0) + 1
            names[(kind, ret)] = f"{kind}{counter[kind]}"
            kw["as"] = names[(kind, ret)]
        if op.kind != "hw":
            kw["expect"] = "ok" if ret >= 0 else _errno_text(ret)
        programs.setdefault(actor, []).append({op.name: kw})
        order.append(_HW_ACTOR if actor == 0 else f"p{actor}")
    w, data = sim.w, sim.lw.data
    machine = data.get("machine", "default")
    if isinstance(machine, str) and machine != "default" and sim.lw.base_dir is not None:
        machine = str((sim.lw.base_dir / machine).resolve())
    actors = [{"name": f"p{a}", "program": prog} for a, prog in sorted(programs.items()) if a]
    if 0 in programs:
        actors.append({"name": _HW_ACTOR, "kernel": True,
                       "description": "the hardware events the simulator scheduled",
                       "program": programs[0]})
    v = res.violation
    out: dict[str, Any] = {
        "name": f"sim-{w.name}-{sim.design}" + (f"-{v.invariant}" if v else ""),
        "description": (f"Found by `pasidsim simulate` (workload {w.name}, seed {w.seed}, "
                        f"design {sim.design}) at t={v.t_ms:.3f} ms, step {v.event + 1}: "
                        f"{v.invariant}: {v.message}") if v else f"workload {w.name}",
        "design": sim.design,
    }
    overrides = data.get("policy_overrides")
    if overrides:
        out["policy_overrides"] = overrides
    out["machine"] = machine
    if data.get("expect_warn"):
        out["expect_warn"] = list(data["expect_warn"])
    out["actors"] = actors
    out["order"] = order
    return out


# -- minimization -------------------------------------------------------------------------

#: invariants judged on logs that only grow (breaches, WARNs): the final state shows them
_LOG_INVARIANTS = frozenset({"A4", "I1", "I2", "M9", "D1", "B1", "F3"})


def _names_bound(program: list) -> set[str]:
    return {kw["as"] for step in program for kw in step.values()
            if isinstance(kw, dict) and "as" in kw}


def _refs(step: dict) -> set[str]:
    (kw,) = step.values()
    return {v[1:] for v in kw.values() if isinstance(v, str) and v.startswith("$")}


def sub_scenario(data: dict, keep: set[str], keep_hw: set[int] | None = None) -> dict:
    """The replay scenario ``data`` with only the process actors named in ``keep`` and (when
    ``keep_hw`` is given) the hardware steps of those indexes; a hardware step that refers
    to a value bound by a removed actor goes too.  ``order`` follows."""
    gone: set[str] = set()
    for a in data["actors"]:
        if a["name"] != _HW_ACTOR and a["name"] not in keep:
            gone |= _names_bound(a["program"])
    actors, hw_kept = [], []
    for a in data["actors"]:
        if a["name"] == _HW_ACTOR:
            hw_kept = [i for i, st in enumerate(a["program"])
                       if (keep_hw is None or i in keep_hw) and not _refs(st) & gone]
            if hw_kept:
                actors.append({**a, "program": [a["program"][i] for i in hw_kept]})
        elif a["name"] in keep:
            actors.append(a)
    hw_set, order, k = set(hw_kept), [], 0
    for who in data["order"]:
        if who == _HW_ACTOR:
            if k in hw_set:
                order.append(who)
            k += 1
        elif who in keep:
            order.append(who)
    return {**data, "actors": actors, "order": order}


def replay_breaks(data: dict, invariant: str) -> bool:
    """Does ``pasidsim run`` of the replay scenario ``data`` run every step as written (no
    failed ``expect``, no step that cannot run) and break ``invariant``?  Invariants read
    from a log are judged on the final state; others after every step."""
    from ..invariants import INVARIANTS_BY_NAME, TRANSITION_INVARIANTS, quiescence_leaks, \
        unexpected_warning
    from ..scenario import compile_scenario, load_text
    from ..scenario.loader import ScenarioError
    from ..scenario.runner import run_scenario
    try:
        c = compile_scenario(load_text(yaml.safe_dump(data, sort_keys=False)))
    except ScenarioError:
        return False
    every = invariant not in _LOG_INVARIANTS and invariant not in ("W", "quiescence")
    r = run_scenario(c, check_invariants=False, keep_states=every)
    if r.failures or r.unfinished:
        return False
    final = r.final.sys
    if invariant == "W":
        return unexpected_warning(final, c.expect_warn) is not None
    if invariant == "quiescence":
        return quiescence_leaks(final) is not None
    inv = INVARIANTS_BY_NAME.get(invariant)
    if inv is None:
        return False
    if not every:
        return inv.check(final) is not None
    if inv in TRANSITION_INVARIANTS:
        return any(ev.action is not None and inv.check(s0.sys, ev.action, ev.ret, s1.sys)
                   for s0, ev, s1 in zip(r.states, r.events, r.states[1:]))
    return any(inv.check(rs.sys) for rs in r.states[1:])


def _ddmin(units: list, test, budget: list[int]) -> list:
    """Zeller's delta debugging: a 1-minimal sublist of ``units`` (within ``budget[0]``
    tests) for which ``test`` holds; ``test(units)`` is assumed to hold."""
    n = 2
    while len(units) >= 2 and budget[0] > 0:
        size = -(-len(units) // n)
        chunks = [units[i:i + size] for i in range(0, len(units), size)]
        for cand in chunks + ([[u for u in units if u not in set(ch)] for ch in chunks]
                              if n > 2 else []):
            if budget[0] <= 0:
                return units
            budget[0] -= 1
            if test(cand):
                n = 2 if len(cand) <= size else max(n - 1, 2)
                units = cand
                break
        else:
            if n >= len(units):
                break
            n = min(len(units), 2 * n)
    return units


def minimize_replay(data: dict, invariant: str, max_runs: int = 300) -> dict:
    """A smaller replay scenario that still breaks ``invariant`` with every step as written:
    delta debugging over the process actors, then over the remaining hardware steps (at most
    ``max_runs`` runs of ``pasidsim run`` in all; the smallest found within them).  Returns
    ``data`` itself when nothing can go.  The result's ``description`` says what was cut."""
    procs = [a["name"] for a in data["actors"] if a["name"] != _HW_ACTOR]
    budget = [max_runs]
    small, keep = data, procs
    while budget[0] > 0:  # each pass may let the other cut more: to a fixed point
        before = len(small["order"])
        keep = _ddmin(keep, lambda ks: replay_breaks(sub_scenario(small, set(ks)), invariant),
                      budget)
        small = sub_scenario(small, set(keep))
        hw = next((a for a in small["actors"] if a["name"] == _HW_ACTOR), None)
        if hw is not None and budget[0] > 0:
            idx = _ddmin(list(range(len(hw["program"]))),
                         lambda ks: replay_breaks(sub_scenario(small, set(keep), set(ks)),
                                                  invariant), budget)
            small = sub_scenario(small, set(keep), set(idx))
        if len(small["order"]) == before:
            break
    if len(small["order"]) == len(data["order"]):
        return data
    steps = lambda d: len(d["order"])  # noqa: E731
    small["description"] = (data.get("description", "") + f" Minimized by delta debugging "
                            f"({max_runs - budget[0]} runs): {len(keep)} of {len(procs)} "
                            f"processes, {steps(small)} of {steps(data)} steps.").strip()
    return small


def replay_yaml(sim: Simulation, res: SimResult, minimize: bool = False,
                max_runs: int = 300) -> str:
    """:func:`replay_scenario` as YAML text with a header comment; with ``minimize`` (and a
    violation), reduced by :func:`minimize_replay`."""
    data = replay_scenario(sim, res)
    v = res.violation
    if minimize and v is not None:
        data = minimize_replay(data, v.invariant, max_runs)
    head = "# Found by `pasidsim simulate`" + (
        f": design {sim.design} breaks {v.invariant}\n# {v.message}\n" if v else "\n")
    head += "# Replay: pasidsim run <this file>\n"
    return head + yaml.safe_dump(data, sort_keys=False, width=100)


def save_replay(sim: Simulation, res: SimResult, path: str | Path) -> Path:
    """Write :func:`replay_yaml` to ``path`` (atomically: report.output.write_text_atomic)."""
    from ..report.output import write_text_atomic
    write_text_atomic(path, replay_yaml(sim, res))
    return Path(path)


__all__ = ["replay_scenario", "replay_yaml", "save_replay", "minimize_replay", "replay_breaks",
           "sub_scenario", "OP_BY_NAME"]
