"""Properties the model checker evaluates on PASID-subsystem states, besides the invariants of
:mod:`pasidsim.invariants`.

- :func:`quiescence_leaks`: at quiescence (no actor has work left, the hardware is idle) nothing
  may be leaked: every PASID is free or held by a live owner, every mm without tasks is freed,
  every file is reachable from a live process, every page request was answered, every reference
  count is back to its floor.
Reachability (``sometimes``) goals are the scenario's own, compiled with it
(:attr:`pasidsim.scenario.compile.CompiledScenario.sometimes`).
"""

from __future__ import annotations

from ..state import IOMMU_PASID_INVALID, MmState, SystemState


def quiescence_leaks(s: SystemState) -> str | None:
    """The first leak found in a quiescent state, as a message, or None."""
    live_tasks_per_mm: dict[int, int] = {}
    for t in s.tasks.values():
        live_tasks_per_mm[t.mm] = live_tasks_per_mm.get(t.mm, 0) + 1
    open_files = set()
    for p in s.procs.values():
        open_files.update(p.files)
    for m in s.mms.values():
        open_files.update(v.file for v in m.vmas if v.file)
    for fid, f in s.files.items():
        if fid not in open_files and f.mm:  # mm 0: kernel-held (an iommufd idev of its ctx)
            return f"file {fid} (device {f.dev}) has f_count {f.f_count} but no fd or mapping refers to it"
    bound_mms = set()
    for fid in open_files:
        f = s.files.get(fid)
        if f is None:
            continue
        for h in f.handles:
            hh = s.handles.get(h)
            if hh is not None and hh.domain in s.domains:
                bound_mms.add(s.domains[hh.domain].mm)
    for mid, m in s.mms.items():
        tasks = live_tasks_per_mm.get(mid, 0)
        if m.mm_users > tasks:
            return (f"mm {mid}: mm_users {m.mm_users} but {tasks} tasks use it (an mm_users "
                    "reference nobody will put)")
        if m.state == MmState.EXITED and mid not in bound_mms:
            return f"mm {mid} exited but is never freed (mm_count {m.mm_count})"
    owners = {m.pasid for m in s.mms.values() if m.pasid != IOMMU_PASID_INVALID}
    for m in s.mms.values():
        owners.update(m.private_pasids)
    owners.update(s.ioasids.keys())
    for p in s.ida.ids():
        if p not in owners:
            return f"PASID {p} is allocated but no mm or IOASID owns it"
    if s.pending_free:
        return f"PASIDs {sorted(s.pending_free.keys())} still pending free at quiescence"
    for dev, q in s.iopf.items():
        if q.groups:
            return f"device {dev}: {len(q.groups)} page-request group(s) never answered"
    if s.ih_ring:
        return f"{len(s.ih_ring)} GPU interrupt(s) never handled"
    if s.inflight:
        return f"{len(s.inflight)} descriptor(s) still queued at quiescence"
    if s.work:
        return "deferred work left behind"
    return None
