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


def replay_yaml(sim: Simulation, res: SimResult) -> str:
    """:func:`replay_scenario` as YAML text with a header comment."""
    data = replay_scenario(sim, res)
    v = res.violation
    head = "# Found by `pasidsim simulate`" + (
        f": design {sim.design} breaks {v.invariant}\n# {v.message}\n" if v else "\n")
    head += "# Replay: pasidsim run <this file>\n"
    return head + yaml.safe_dump(data, sort_keys=False, width=100)


def save_replay(sim: Simulation, res: SimResult, path: str | Path) -> Path:
    """Write :func:`replay_yaml` to ``path`` (atomically: report.output.write_text_atomic)."""
    from ..report.output import write_text_atomic
    write_text_atomic(path, replay_yaml(sim, res))
    return Path(path)


__all__ = ["replay_scenario", "replay_yaml", "save_replay", "OP_BY_NAME"]
