"""Traces with the full state at every step: the Informal Trace Format, diffs, object names.

**ITF** (Apalache ADR-015, also written by Quint): ``{"#meta": {...}, "vars": [...],
"states": [{"#meta": {"index": i}, var: value, ...}, ...]}``.  Values: JSON booleans, strings
and integers (``{"#bigint": "digits"}`` beyond 2**53), lists for sequences, ``{"#set": [...]}``,
``{"#map": [[key, value], ...]}``, ``{"#tup": [...]}`` and records as JSON objects.  Here:

- the variables are the fields of :class:`~pasidsim.state.SystemState` but ``static`` (the
  machine and design, which never change: they are in ``#meta``), plus ``action_taken`` (the
  step's call as text, ``"init"`` for state 0), ``actor`` and ``ret`` (the kernel's return
  value; ``{"#unserializable": "in progress"}`` for a call that has not returned);
- records (the state's NamedTuples) are objects of their fields; IntEnum values are their
  names (``"EXITED"``); tables (``immutables.Map``) are ``#map`` sorted by key; the IDAs are
  ``#set`` of their allocated IDs; tuples are lists; ``None`` is
  ``{"#unserializable": "None"}`` (ITF has no null).

:func:`state_diff` compares two converted states and lists what changed as
``path: old → new`` lines (``mms[8].mm_users: 2 → 1``, ``pasid_refs[1]: added 2``): the
``pasidsim run --diff`` view and the HTML's per-step changes.  :func:`object_names` names the
objects of a scenario run after its actors and machine (``task 9`` is ``A``, ``mm 8`` is
``A's mm``, ``device 0`` is ``dsa0``, ``group 6`` is ``pch``); :func:`named` adds those names to
a message.
"""

from __future__ import annotations

import json
import re
from enum import IntEnum
from typing import Any

from immutables import Map

ITF_DESCRIPTION = "https://apalache-mc.org/docs/adr/015adr-trace.html"
_BIG = 1 << 53


def to_itf(v: Any) -> Any:
    """A state value as an ITF value (module docstring)."""
    if isinstance(v, bool) or isinstance(v, str):
        return v
    if isinstance(v, IntEnum):
        return v.name
    if isinstance(v, int):
        return v if -_BIG < v < _BIG else {"#bigint": str(v)}
    if v is None:
        return {"#unserializable": "None"}
    if isinstance(v, (Map, dict)):
        items = sorted(v.items(), key=lambda kv: _key(kv[0]))
        return {"#map": [[to_itf(k), to_itf(x)] for k, x in items]}
    if isinstance(v, tuple) and hasattr(v, "_fields"):
        return {f: to_itf(getattr(v, f)) for f in v._fields}
    if isinstance(v, (tuple, list)):
        return [to_itf(x) for x in v]
    if isinstance(v, (set, frozenset)):
        return {"#set": [to_itf(x) for x in sorted(v, key=_key)]}
    ids = getattr(v, "ids", None)
    if callable(ids):  # a persistent IDA: its allocated IDs
        return {"#set": [to_itf(x) for x in ids()]}
    return {"#unserializable": repr(v)}


def _key(k: Any) -> Any:
    return (0, k) if isinstance(k, int) else (1, repr(k))


def state_vars(s) -> dict[str, Any]:
    """The ITF variables of a :class:`~pasidsim.state.SystemState` (all fields but
    ``static``)."""
    return {f: to_itf(getattr(s, f)) for f in s._fields if f != "static"}


def itf_trace(steps, *, source: str, description: str = "",
              extra_meta: dict | None = None) -> dict:
    """An ITF trace.  ``steps``: ``(action text, actor name, ret, SystemState)`` per state,
    the initial state first (``("init", "", None, s0)``); ``ret`` None means the call has not
    returned."""
    states = []
    for i, (call, actor, ret, s) in enumerate(steps):
        rec = {"#meta": {"index": i}, "action_taken": call, "actor": actor,
               "ret": to_itf(ret) if ret is not None else {"#unserializable": "in progress"}}
        rec.update(state_vars(s))
        states.append(rec)
    vars_ = ["action_taken", "actor", "ret"] + (
        [f for f in steps[0][3]._fields if f != "static"] if steps else [])
    meta = {"format": "ITF", "format-description": ITF_DESCRIPTION, "source": source,
            "description": description}
    meta.update(extra_meta or {})
    return {"#meta": meta, "params": [], "vars": vars_, "states": states}


def itf_text(trace: dict) -> str:
    """ITF JSON text (sorted keys, 1-space indent, trailing newline)."""
    return json.dumps(trace, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


# -- what changed ------------------------------------------------------------------------------
def value_text(v: Any) -> str:
    """An ITF value as short text: records ``{a: 1, b: 2}``, sets ``{1, 2}``, maps
    ``{1: x}``, lists ``[1, 2]``."""
    if isinstance(v, dict):
        if "#set" in v:
            return "{" + ", ".join(value_text(x) for x in v["#set"]) + "}"
        if "#map" in v:
            return "{" + ", ".join(f"{value_text(k)}: {value_text(x)}" for k, x in v["#map"]) \
                + "}"
        if "#bigint" in v:
            return v["#bigint"]
        if "#unserializable" in v:
            return v["#unserializable"]
        if "#tup" in v:
            return "(" + ", ".join(value_text(x) for x in v["#tup"]) + ")"
        return "{" + ", ".join(f"{k}: {value_text(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(value_text(x) for x in v) + "]"
    return str(v)


def state_diff(a: dict, b: dict, path: str = "") -> list[str]:
    """What changed from ITF value ``a`` to ``b``, one ``path: old → new`` line per change
    (map entries ``added``/``removed``; set members ``+x``/``-x``; records field by field;
    lists that keep their length element by element)."""
    if a == b:
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        if "#map" in a and "#map" in b:
            da = {json.dumps(k, sort_keys=True): (k, x) for k, x in a["#map"]}
            db = {json.dumps(k, sort_keys=True): (k, x) for k, x in b["#map"]}
            out = []
            for key in list(da) + [k for k in db if k not in da]:
                k = (da.get(key) or db.get(key))[0]
                sub = f"{path}[{value_text(k)}]"
                if key not in db:
                    out.append(f"{sub}: removed {value_text(da[key][1])}")
                elif key not in da:
                    out.append(f"{sub}: added {value_text(db[key][1])}")
                else:
                    out += state_diff(da[key][1], db[key][1], sub)
            return out
        if "#set" in a and "#set" in b:
            gone = [x for x in a["#set"] if x not in b["#set"]]
            new = [x for x in b["#set"] if x not in a["#set"]]
            return [f"{path}: " + " ".join([f"+{value_text(x)}" for x in new]
                                           + [f"-{value_text(x)}" for x in gone])]
        if not any(k.startswith("#") for k in a) and a.keys() == b.keys():
            out = []
            for k in a:
                out += state_diff(a[k], b[k], f"{path}.{k}" if path else k)
            return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and \
            any(isinstance(x, (dict, list)) for x in a):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += state_diff(x, y, f"{path}[{i}]")
        return out
    return [f"{path}: {value_text(a)} → {value_text(b)}"]


# -- names -------------------------------------------------------------------------------------
def object_names(compiled, rs) -> dict[tuple[str, int], str]:
    """Names of a scenario run's objects in run state ``rs``
    (:class:`~pasidsim.scenario.compile.RunState`): ``("task", tid)`` → the actor's name,
    ``("mm", id)`` → ``"A's mm"`` (the first actor whose task has it), ``("device", i)`` and
    ``("group", i)`` → the machine's names."""
    names: dict[tuple[str, int], str] = {}
    cfg = rs.sys.config
    for i, d in enumerate(cfg.devices):
        names[("device", i)] = d.name
    for i, g in enumerate(cfg.groups):
        names[("group", i)] = g.name
    for i, tid in enumerate(rs.tids):
        if not tid:
            continue
        actor = compiled.actor_name(i)
        names.setdefault(("task", tid), actor)
        task = rs.sys.tasks.get(tid)
        mm = getattr(task, "mm", 0) if task is not None else 0
        if mm:
            names.setdefault(("mm", mm), f"{actor}'s mm")
    return names


def run_names(result) -> dict[tuple[str, int], str]:
    """:func:`object_names` over every state of a run kept with ``keep_states`` (an object
    keeps the first name it had: an exited process's mm is still ``A's mm``)."""
    names: dict[tuple[str, int], str] = {}
    for rs in result.states or [result.final]:
        for k, v in object_names(result.compiled, rs).items():
            names.setdefault(k, v)
    return names


def run_itf(result) -> dict:
    """The ITF trace of a :class:`~pasidsim.scenario.runner.RunResult` run with
    ``keep_states=True``: the initial state and the state after each event.  ``#meta`` also
    has the scenario, design, the violations (``{"state", "invariant", "message"}``, state
    indices as in ``states``) and the object names."""
    from ..scenario.trace import event_rows
    if len(result.states) != len(result.events) + 1:
        raise ValueError("run_itf needs a run made with keep_states=True")
    c = result.compiled
    rows = event_rows(result)
    steps = [("init", "", None, result.states[0].sys)]
    for row, ev, rs in zip(rows, result.events, result.states[1:]):
        ret = None if ev.progress or not isinstance(ev.ret, int) else ev.ret
        steps.append((row.call, row.actor, ret, rs.sys))
    names = run_names(result)
    meta = {"scenario": c.model.name, "design": c.policy.name,
            "violations": [{"state": v.event + 1, "invariant": v.name,
                            "message": named(v.message, names)} for v in result.violations],
            "names": {f"{k} {i}": n for (k, i), n in sorted(names.items())}}
    from pathlib import PurePath
    return itf_trace(steps, source=PurePath(c.source).name,
                     description=f"pasidsim run of {c.model.name} on {c.policy.name}",
                     extra_meta=meta)


def run_diffs(result) -> list[list[str]]:
    """Per event of a run made with ``keep_states=True``, what changed in the state
    (:func:`state_diff` lines, objects named)."""
    names = run_names(result)
    conv = [state_vars(rs.sys) for rs in result.states]
    return [[_named_path(named(line, names), names) for line in state_diff(a, b)]
            for a, b in zip(conv, conv[1:])]


_TABLE = re.compile(r"^(mms|tasks|procs|devs|groups)\[(\d+)\]")
_TABLE_KIND = {"mms": "mm", "tasks": "task", "procs": "task", "devs": "device",
               "groups": "group"}


def _named_path(line: str, names: dict[tuple[str, int], str]) -> str:
    """``mms[8].mm_users: …`` → ``mms[8] (A's mm).mm_users: …``."""
    m = _TABLE.match(line)
    name = m and names.get((_TABLE_KIND[m.group(1)], int(m.group(2))))
    return f"{m.group(0)} ({name}){line[m.end():]}" if name else line


_OBJ = re.compile(r"\b(task|mm|device|group) (\d+)\b")


def named(text: str, names: dict[tuple[str, int], str]) -> str:
    """``text`` with each ``mm 8``/``task 9``/``device 0``/``group 6`` followed by its name in
    parentheses where :func:`object_names` knows one (``mm 8 (A's mm)``)."""
    def sub(m: re.Match) -> str:
        name = names.get((m.group(1), int(m.group(2))))
        return f"{m.group(0)} ({name})" if name else m.group(0)
    return _OBJ.sub(sub, text)


__all__ = ["to_itf", "state_vars", "itf_trace", "itf_text", "state_diff", "value_text",
           "object_names", "run_names", "named", "run_itf", "run_diffs", "ITF_DESCRIPTION"]
