"""Rendering a :class:`~pasidsim.scenario.runner.RunResult` for people (rich) and as text rows.

:func:`event_rows` gives one row of plain strings per event (shared by the rich table, the
JSON trace and the sequence diagrams); :func:`render_result` returns the rich renderables that
``pasidsim run`` prints: a header, the trace, the problems, and the final state tables of
:func:`pasidsim.report.text.state_tables`.
"""

from __future__ import annotations

from typing import NamedTuple

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..errors import errname
from ..fault import ERRNO, FaultPoint
from ..report.text import action_text, ret_text, state_tables
from .compile import Event
from .runner import RunResult


class Row(NamedTuple):
    """One event as text: index (1-based), actor, call (with device/driver names), ret,
    expectation as written, note, failures, line in the scenario file (0 = none)."""

    index: int
    actor: str
    call: str
    ret: str
    expect: str
    note: str
    failures: tuple
    line: int


def event_rows(result: RunResult) -> list[Row]:
    """The events of ``result`` as :class:`Row` values."""
    c = result.compiled
    s = result.final.sys
    rows = []
    for i, ev in enumerate(result.events, 1):
        rows.append(Row(i, c.actor_name(ev.actor), _call(s, ev), _ret(ev), _expect(result, ev),
                        result.step_note(ev), ev.failures, result.step_line(ev)))
    return rows


def fault_text(fault: tuple) -> str:
    """An injected failure ``(FaultPoint value, n)`` as traces show it: ``fail HANDLE_ALLOC
    -ENOMEM`` (``fail HANDLE_ALLOC#2 -ENOMEM`` for the second passage of the point)."""
    point, nth = FaultPoint(fault[0]), fault[1]
    name = point.name if nth == 1 else f"{point.name}#{nth}"
    return f"fail {name} -{errname(ERRNO[point])}"


def _call(s, ev: Event) -> str:
    if ev.action is None:
        return "(not built)"
    text = action_text(s, ev.action)
    if ev.fault:
        text += f" [{fault_text(ev.fault)}]"
    if ev.progress:
        text += f" … stopped in {ev.progress}"
    return text


def lock_text(ev: Event) -> str:
    """The locks held after the step: ``iommu_sva_lock: A, uacce->mutex[0]: B`` ("" none)."""
    return ", ".join(f"{name}: {holder}" for name, holder in ev.locks)


def _ret(ev: Event) -> str:
    return "error" if ev.error else ret_text(ev.ret)


def _expect(result: RunResult, ev: Event) -> str:
    if ev.pc < 0:
        return ""
    e = result.compiled.actors[ev.actor].program[ev.pc].expect
    return e.text if e is not None else ""


def trace_table(result: RunResult, title: str = "trace") -> Table:
    """A rich table of the run: #, actor, call, ret, expected, note (failures in red)."""
    t = Table(title=title, title_justify="left")
    locks = bool(result.compiled.granularity)  # lock granularity: who holds what
    cols = [("#", "right"), ("actor", "left"), ("call", "left"), ("ret", "right"),
            ("expect", "right")] + ([("locks held", "left")] if locks else []) + [
        ("note", "left")]
    for col, just in cols:
        t.add_column(col, justify=just)
    for r, ev in zip(event_rows(result), result.events):
        note = r.note
        if r.failures:
            note = (note + "  " if note else "") + "FAILED: " + "; ".join(r.failures)
        style = "red" if r.failures else ("dim" if r.actor == "setup" else None)
        cells = [str(r.index), escape(r.actor), escape(r.call), r.ret, escape(r.expect)]
        if locks:
            cells.append(escape(lock_text(ev)))
        t.add_row(*cells, escape(note), style=style)
    return t


def fail_counts(result: RunResult) -> str:
    """What made a run fail: ``"2 expectation(s) failed"``, ``"1 invariant violation(s)"``
    or both."""
    parts = [f"{len(result.failures)} expectation(s) failed"] if result.failures else []
    if result.violations and result.compiled.final_violations is None:
        parts.append(f"{len(result.violations)} invariant violation(s)")
    return ", ".join(parts) or "0 expectation(s) failed"


def summary_text(result: RunResult) -> Text:
    """One paragraph: outcome, failures (with ``file:line``), violations, unfinished actors."""
    c = result.compiled
    out = Text()
    n = len(result.events)
    if result.ok:
        out.append(f"PASS: {c.model.name} on design {c.policy.name}: {n} steps, every "
                   "expectation held\n", style="bold green")
    else:
        out.append(f"FAIL: {c.model.name} on design {c.policy.name}: {n} steps, "
                   f"{fail_counts(result)}\n", style="bold red")
    for f in result.failures:
        ref = f" (event {f.event + 1})" if f.event is not None else ""
        out.append(f"  {c.source}:{f.line}: {f.where}{ref}: {f.message}\n", style="red")
    if result.violations:
        from ..report.itf import named, run_names
        names = run_names(result)
        out.append(f"{len(result.violations)} invariant violation(s):\n", style="yellow")
        for v in result.violations:
            out.append(f"  after event {v.event + 1}: {v.name}: {named(v.message, names)}\n",
                       style="yellow")
    for name, status in result.unfinished:
        out.append(f"  actor {name}: {status}\n", style="dim")
    return out


def render_result(result: RunResult, *, state: bool = True) -> list[RenderableType]:
    """Everything ``pasidsim run`` prints, as rich renderables."""
    m = result.compiled.model
    head = Text(f"{m.name}", style="bold")
    if m.demonstrates:
        head.append(f"\n{m.demonstrates}")
    head.append(f"\nmachine: {_machine_text(result)}; design: {result.compiled.policy.name}",
                style="dim")
    parts: list[RenderableType] = [head, trace_table(result), summary_text(result)]
    if state:
        parts.append(Group(*state_tables(result.final.sys)))
    return parts


def _machine_text(result: RunResult) -> str:
    mach = result.compiled.model.machine
    if isinstance(mach, str):
        return mach
    if hasattr(mach, "topology"):
        return f"topology {mach.topology}"
    return mach.name or "inline"


__all__ = ["Row", "event_rows", "trace_table", "summary_text", "render_result", "fault_text",
           "lock_text"]
