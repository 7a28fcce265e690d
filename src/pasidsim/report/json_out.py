"""A stable, machine-readable JSON trace of a scenario run.

Shape (``schema`` = :data:`TRACE_SCHEMA`; keys sorted; no timestamps or absolute paths, so the
same run gives the same bytes)::

    {"schema": "pasidsim.run/2",
     "scenario": {"name", "file", "design", "demonstrates"},
     "actors": [{"name", "kernel", "status"}],
     "events": [{"index", "actor", "op", "args", "call", "ret", "ret_text", "expect",
                 "ok", "failures", "note", "line", "error", "in_progress", "locks"}],
     "violations": [{"event", "invariant", "message"}],
     "failures": [{"event", "where", "line", "message"}],
     "final": {"pasids_allocated", "pasids", "amdgpu_pasids", "mms", "tasks", "files",
               "bonds", "warnings", "groups": [{"name", "owner_cnt", "owned", "pasids"}]},
     "ok": bool}

``args`` are the kernel call's integer arguments by name; ``call`` is the same call with
device/driver/group names; ``ret`` is an integer (null for a call that has not returned).
Event indices are 1-based, as in the terminal trace.  The shape is the pydantic model
:class:`~pasidsim.report.schemas.RunOutput` (``pasidsim schema --output run``); the output is
validated by it before it is written.
"""

from __future__ import annotations

from pathlib import PurePath

from ..errors import Warn
from .schemas import RUN_SCHEMA, RunOutput, dump

TRACE_SCHEMA = RUN_SCHEMA


def result_to_dict(result) -> dict:
    """The JSON-ready dict of a :class:`~pasidsim.scenario.runner.RunResult`."""
    from ..scenario.trace import event_rows
    c = result.compiled
    s = result.final.sys
    events = []
    for row, ev in zip(event_rows(result), result.events):
        events.append({
            "index": row.index, "actor": row.actor,
            "op": ev.action.name if ev.action is not None else None,
            "args": ev.action.kwargs() if ev.action is not None else {},
            "call": row.call, "ret": None if ev.progress else ev.ret, "ret_text": row.ret, "expect": row.expect or None,
            "ok": ev.ok, "failures": list(ev.failures), "note": row.note or None,
            "line": row.line or None, "error": ev.error or None,
            # lock granularity: where the call stopped (None: it returned; "ret" is then
            # meaningless) and who holds which lock after the step
            "in_progress": ev.progress or None,
            "locks": [{"lock": name, "holder": holder} for name, holder in ev.locks]})
    status = {name: st for name, st in result.unfinished}
    return {
        "schema": TRACE_SCHEMA,
        "scenario": {"name": c.model.name, "file": PurePath(c.source).name,
                     "design": c.policy.name, "demonstrates": c.model.demonstrates},
        "actors": [{"name": a.name, "kernel": a.kernel,
                    "status": status.get(a.name, "finished")} for a in c.actors],
        "events": events,
        "violations": [{"event": v.event + 1, "invariant": v.name, "message": v.message}
                       for v in result.violations],
        "failures": [{"event": f.event + 1 if f.event is not None else None, "where": f.where,
                      "line": f.line or None, "message": f.message} for f in result.failures],
        "final": {
            "pasids_allocated": s.ida.allocated, "pasids": s.ida.ids()[:64],
            "amdgpu_pasids": s.amdgpu_ida.allocated, "mms": len(s.mms),
            "tasks": len(s.tasks), "files": len(s.files),
            "bonds": sum(1 for h in s.handles.values() if h.kind == 0),
            "warnings": [Warn(w).describe(a, b) for w, a, b in s.warnings],
            "groups": [{"name": c.config.groups[i].name, "owner_cnt": g.owner_cnt,
                        "owned": bool(g.owner),
                        "pasids": sum(1 for p, _d, _h in g.pasid_array if p)}
                       for i, g in enumerate(s.groups)]},
        "ok": result.ok,
    }


def dumps(result) -> str:
    """The JSON trace as text (sorted keys, 2-space indent, trailing newline), validated by
    :class:`~pasidsim.report.schemas.RunOutput` (pydantic ValidationError: our bug)."""
    return dump(RunOutput.model_validate(result_to_dict(result)))


__all__ = ["TRACE_SCHEMA", "result_to_dict", "dumps"]
