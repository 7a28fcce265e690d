"""The invariants of kernel-spec §7 as named predicates over states.

Two kinds:
- :data:`STATE_INVARIANTS`: ``check(state) -> message | None``;
- :data:`TRANSITION_INVARIANTS`: ``check(before, action, ret, after) -> message | None`` for
  rules about what a step may change (a PASID never changes while its mm lives, ownership does
  not move while PASIDs are attached, new tasks start with no PASID).

``when`` says where it must hold: ``"always"`` in every state, also between the preemption
points of a kernel call at ``lock`` granularity; ``"between"`` only in states where no kernel
call is in progress (``state.kthreads`` empty), for invariants a kernel call may break inside
its own critical section and restores before it returns.

``scope`` says who guarantees it: ``"kernel"`` invariants hold whatever callers do;
``"contract"`` invariants hold when callers follow the kernel's documented rules (e.g. only a
bound driver attaches PASIDs; VFIO claims ownership before attaching a domain).  Tests, the
scenario runner and the model checker all use these same objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .domain import DOMAIN_IN_USE_SITES
from .errors import Warn, fmt_ret
from .locking import SLEEP_POINTS, CtxKind, key_name
from .hw.cache import entry_is_current
from .hw.translate import current_domain
from .policy import FreePoint, OwnerModel
from .step import IN_PROGRESS, OPS
from .state import (IOMMU_NO_PASID, IOMMU_PASID_INVALID, MSR_IA32_PASID_VALID, DomainType,
                    HandleKind, IoasidState, MmState, PasidEntryMode, SystemState)


@dataclass(frozen=True)
class Invariant:
    """A named property.  ``check`` returns None when it holds, else a message."""

    name: str
    title: str
    check: Callable
    scope: str = "kernel"
    when: str = "always"


def _mm_pasids(s: SystemState):
    for mid, m in s.mms.items():
        if m.pasid != IOMMU_PASID_INVALID:
            yield mid, m.pasid
        for p in m.private_pasids:
            yield mid, p


def a1_unique(s: SystemState):
    """A1: A PASID has at most one owner and is allocated while owned."""
    seen: dict[int, int] = {}
    for mid, p in _mm_pasids(s):
        if p in seen:
            return f"PASID {p} held by mm {seen[p]} and mm {mid}"
        seen[p] = mid
        if p not in s.ida:
            return f"mm {mid} holds PASID {p} that the allocator considers free"
    for ident in s.ioasids.keys():
        if ident in seen:
            return f"PASID {ident} is both mm {seen[ident]}'s and an IOASID"
        if ident not in s.ida:
            return f"IOASID {ident} not allocated in the PASID space"
    return None


def a2_range(s: SystemState):
    """A2: Allocated PASIDs are in [1, max_pasids-1]."""
    limit = max(s.config.max_pasids, default=0)
    for mid, p in _mm_pasids(s):
        if not 1 <= p < max(limit, 2):
            return f"mm {mid} PASID {p} outside [1, {limit - 1}]"
    return None


def a3_no_reuse_while_reachable(s: SystemState):
    """A PASID reachable by a device through an SVA domain is allocated and is its mm's."""
    for (dev, p), (dom, _mode) in s.pasid_table.items():
        d = s.domains.get(dom)
        if d is None:
            return f"device {dev} PASID {p} programmed with freed domain {dom}"
        if d.type == DomainType.SVA:
            if p not in s.ida:
                return f"device {dev} may still use PASID {p}, which is free for reuse"
            m = s.mms.get(d.mm)
            if m is None:
                return f"device {dev} PASID {p} translates through freed mm {d.mm}"
            if p != m.pasid and p not in m.private_pasids:
                return f"device {dev} PASID {p} translates through mm {d.mm} whose PASID is {m.pasid}"
    return None


def a5_pending_free(s: SystemState):
    """A5: Pending-free PASIDs are not allocatable until the last put."""
    for p in s.pending_free.keys():
        if p not in s.ida:
            return f"pending-free PASID {p} is allocatable"
        if s.pasid_refs.get(p, 0) <= 0:
            return f"pending-free PASID {p} has no reference left but was not reclaimed"
    for ident, rec in s.ioasids.items():
        if rec.state == IoasidState.FREE_PENDING and rec.refs < 1:
            return f"FREE_PENDING IOASID {ident} without references"
    return None


def m1_bound_mm_has_pasid(s: SystemState):
    """M1: A bound mm has a PASID."""
    for hid, h in s.handles.items():
        if h.kind != HandleKind.SVA:
            continue
        d = s.domains.get(h.domain)
        if d is None:
            return f"SVA handle {hid} points to freed domain {h.domain}"
        m = s.mms.get(d.mm)
        if m is None:
            return f"SVA handle {hid} bound to freed mm {d.mm}"
        if m.pasid == IOMMU_PASID_INVALID and h.pasid not in m.private_pasids:
            return f"mm {d.mm} is bound (handle {hid}) but has no PASID"
    return None


def m4_mm_count(s: SystemState):
    """M4: Mm_count covers every SVA domain and the users."""
    for mid, m in s.mms.items():
        need = len(m.sva_domains) + (1 if m.mm_users > 0 else 0)
        if m.mm_count < need:
            return f"mm {mid}: mm_count {m.mm_count} < {len(m.sva_domains)} SVA domains + users"
        if m.mm_users < 0 or m.mm_count < 1:
            return f"mm {mid}: bad counters users={m.mm_users} count={m.mm_count}"
    return None


def _slots(s: SystemState):
    for g, grp in enumerate(s.groups):
        for p, dom, h in grp.pasid_array:
            yield g, p, dom, h


def m5_domain_users(s: SystemState):
    """M5: SVA domain users == attached slots."""
    attached: dict[int, int] = {}
    for _g, _p, dom, _h in _slots(s):
        attached[dom] = attached.get(dom, 0) + 1
    for did, d in s.domains.items():
        if d.type != DomainType.SVA:
            continue
        if d.users != attached.get(did, 0):
            return f"SVA domain {did}: users {d.users} but attached to {attached.get(did, 0)} slots"
        m = s.mms.get(d.mm)
        if m is None or (did in m.sva_domains) != (d.users >= 1):
            return f"SVA domain {did} listed in mm {d.mm} sva_domains iff users >= 1 is false"
    for mid, m in s.mms.items():
        for did in m.sva_domains:
            if did not in s.domains:
                return f"mm {mid} lists freed SVA domain {did}"
    return None


def m6_handle_users(s: SystemState):
    """M6: Handle users >= 1 and the slot holds the handle."""
    in_slot = {}
    for g, p, dom, h in _slots(s):
        if h:
            if h not in s.handles:
                return f"group {g} PASID {p} holds freed handle {h}"
            in_slot[h] = (g, p, dom)
    for hid, h in s.handles.items():
        if h.users < 1:
            return f"handle {hid} with users {h.users}"
        if in_slot.get(hid) != (h.group, h.pasid, h.domain):
            return f"handle {hid} is not stored in its slot (group {h.group}, PASID {h.pasid})"
    return None


def m7_sva_at_mm_pasid(s: SystemState):
    """M7: An SVA domain is attached only at its mm's PASID."""
    for g, p, dom, _h in _slots(s):
        d = s.domains.get(dom)
        if d is None or d.type != DomainType.SVA:
            continue
        m = s.mms.get(d.mm)
        if p == IOMMU_NO_PASID or m is None or (p != m.pasid and p not in m.private_pasids):
            return f"SVA domain {dom} of mm {d.mm} attached at PASID {p} of group {g}"
    return None


def m10_one_sva_domain_per_iommu(s: SystemState):
    """M10: With shared SVA domains (E12 1:n, today), an mm's PASID is served by one SVA
    domain per IOMMU driver: a bind to a second device behind a compatible IOMMU reuses the
    mm's domain (``domain->users``) instead of allocating another
    (drivers/iommu/iommu-sva.c ``iommu_sva_bind_device``: the ``iommu_mm->sva_domains`` walk).
    Private-PASID bonds have domains of their own and are not counted."""
    if not s.policy.shared_sva_domain:
        return None
    cfg = s.config
    seen: dict = {}
    for g, p, dom, _h in _slots(s):
        d = s.domains.get(dom)
        if d is None or d.type != DomainType.SVA:
            continue
        m = s.mms.get(d.mm)
        if m is None or p != m.pasid:
            continue
        key = (d.mm, cfg.iommus[d.iommu].ops)
        other = seen.setdefault(key, dom)
        if other != dom:
            return (f"mm {d.mm} has two SVA domains ({other} and {dom}) for IOMMU driver "
                    f"{key[1]!r}")
    return None


def p1_no_rid_slot(s: SystemState):
    """P1: The RID slot is used only by the group-handle APIs."""
    for g, p, _dom, h in _slots(s):
        if p == IOMMU_NO_PASID and (h == 0 or s.handles[h].kind != HandleKind.IOMMUFD):
            return f"group {g}: PASID 0 (RID) slot used outside the group-handle API"
    return None


def p2_slots_programmed(s: SystemState):
    """P2: An occupied slot is programmed in every PASID-capable member."""
    cfg = s.config
    for g, p, dom, _h in _slots(s):
        if p == IOMMU_NO_PASID:
            continue
        for d in cfg.groups[g].devices:
            if cfg.max_pasids[d] == 0 or s.devs[d].reset_depth:
                if (d, p) in s.pasid_table:
                    return f"device {d} without PASID support (or fenced) programmed at PASID {p}"
                continue
            if p >= cfg.max_pasids[d]:
                return f"group {g} PASID {p} >= max_pasids of device {d}"
            e = s.pasid_table.get((d, p))
            if e is None or e[0] != dom:
                return f"device {d} of group {g} not programmed with domain {dom} at PASID {p}"
    return None


def p3_no_orphan_entries(s: SystemState):
    """P3: No programmed PASID entry without its slot."""
    cfg = s.config
    for (d, p), (dom, _m) in s.pasid_table.items():
        g = cfg.device_group[d]
        if g < 0 or not any(e[0] == p and e[1] == dom for e in s.groups[g].pasid_array):
            return f"device {d} PASID {p} programmed (domain {dom}) with no slot in its group"
    return None


def _dma_api_bound(s: SystemState, g: int) -> int:
    cfg = s.config
    return sum(1 for d in cfg.groups[g].devices
               if s.devs[d].driver >= 0 and not cfg.drivers[s.devs[d].driver].driver_managed_dma)


def o1_owner_cnt(s: SystemState):
    """O1: Owner_cnt counts the owner or the DMA-API drivers."""
    for g, grp in enumerate(s.groups):
        if grp.owner and grp.owner_cnt < 1:
            return f"group {g}: owner set with owner_cnt {grp.owner_cnt}"
        if not grp.owner and grp.owner_cnt != _dma_api_bound(s, g):
            return (f"group {g}: owner_cnt {grp.owner_cnt} but {_dma_api_bound(s, g)} DMA-API "
                    "drivers bound")
    return None


def o2_exclusive(s: SystemState):
    """O2: Kernel DMA-API use and a user owner never coexist."""
    for g, grp in enumerate(s.groups):
        if grp.owner and _dma_api_bound(s, g):
            return f"group {g}: user-owned while a kernel DMA-API driver is bound"
    return None


def o3_owned_not_default(s: SystemState):
    """O3: A user-owned group is never on the default domain."""
    for g, grp in enumerate(s.groups):
        if grp.owner and grp.domain == grp.default_domain:
            return f"group {g}: user-owned but still on the kernel default domain"
    return None


def o4_unowned_default(s: SystemState):
    """O4: An unowned group is on its default domain with no PASIDs."""
    for g, grp in enumerate(s.groups):
        if grp.owner_cnt == 0 and (grp.domain not in (grp.default_domain, 0) or grp.pasid_array):
            return f"group {g}: no owner but domain {grp.domain} / PASIDs attached"
    return None


def x1_msr(s: SystemState):
    """X1: An active IA32_PASID equals the mm's PASID.  (A task whose MSR is not valid is
    not checked: after ``execve`` ``pasid_activated`` may be stale while the MSR is 0.)"""
    for tid, t in s.tasks.items():
        if not t.pasid_activated or not t.msr & MSR_IA32_PASID_VALID:
            continue
        m = s.mms.get(t.mm)
        if m is None or m.pasid == IOMMU_PASID_INVALID:
            return f"task {tid} has IA32_PASID active but its mm has no PASID"
        if t.msr != (m.pasid | MSR_IA32_PASID_VALID):
            return f"task {tid} IA32_PASID {t.msr:#x} != mm PASID {m.pasid} | VALID"
    return None


def c1_caches_current(s: SystemState):
    """Every IOTLB/ATC entry is a translation the attached tables still give."""
    for (unit, dom, pasid, vpage), (pfn, prot, _seq) in s.iotlb.items():
        if not entry_is_current(s, dom, vpage, pfn, prot):
            return f"IOTLB of unit {unit} holds stale {dom}/{pasid}/{vpage:#x} -> {pfn:#x}"
    for (dev, pasid, vpage), (pfn, prot, _seq, dom) in s.atc.items():
        cur, mode = current_domain(s, dev, pasid)
        if cur != dom or mode != PasidEntryMode.TRANSLATE:
            return f"ATC of device {dev} holds PASID {pasid} page {vpage:#x} of a detached domain {dom}"
        if not entry_is_current(s, dom, vpage, pfn, prot):
            return f"ATC of device {dev} holds stale PASID {pasid} page {vpage:#x} -> {pfn:#x}"
    return None


def f2_faults_flushed(s: SystemState):
    """A pending page-request group always belongs to a PASID still attached to its device."""
    for dev, q in s.iopf.items():
        for g in q.groups:
            if (dev, g.pasid) not in s.pasid_table:
                return f"device {dev}: page-request group {g.grpid} pending for released PASID {g.pasid}"
    return None


def f3_no_freed_iopf_group(s: SystemState):
    """F3: The IOPF worker never runs a page-request group that ``iopf_queue_remove_device``
    already answered and freed (a device left its fault queue with groups still queued)."""
    for c, a, b in s.warnings:
        if c == Warn.IOPF_GROUP_USE_AFTER_FREE:
            return (f"use after free: the IOPF worker ran a page-request group of device {a} "
                    f"PASID {b} that iopf_queue_remove_device() had already answered and freed")
    return None


def i1_no_stale_dma(s: SystemState):
    """I1: No DMA through a stale translation."""
    for kind, dev, pasid, a, b in s.breaches:
        if kind == 1:
            return f"device {dev} PASID {pasid}: DMA through a stale cached translation (page {a:#x} -> frame {b:#x})"
    return None


def i2_no_foreign_completion(s: SystemState):
    """I2: No descriptor completes into another process's memory."""
    for kind, dev, pasid, a, b in s.breaches:
        if kind == 2:
            return f"device {dev} PASID {pasid}: a descriptor of mm {a} completed into mm {b}"
    return None


def a4_no_misattributed_fault(s: SystemState):
    """A4: A stale interrupt of a freed PASID is never handled as another owner's."""
    for kind, dev, pasid, a, b in s.breaches:
        if kind == 3:
            return (f"device {dev}: a fault raised by VM file {a} with PASID {pasid} was "
                    f"charged to VM file {b}, which got the PASID after it was freed")
    return None


def a3q_no_reuse_while_queued(s: SystemState):
    """A3q: No PASID is reusable while descriptors tagged with it are queued."""
    for did, d in s.inflight.items():
        if not d.mm or not d.pasid:
            continue
        if d.pasid not in s.ida:
            return f"descriptor {did} of mm {d.mm} queued on PASID {d.pasid}, which is free for reuse"
        m = s.mms.get(d.mm)
        if m is not None and d.pasid != m.pasid and d.pasid not in m.private_pasids:
            return f"descriptor {did} of mm {d.mm} tagged PASID {d.pasid}, not its mm's {m.pasid}"
    return None


def m9_no_use_after_free(s: SystemState):
    """M9: No use of an mm or iommu_mm after the mmdrop that freed it."""
    for c, a, b in s.warnings:
        if c == Warn.USE_AFTER_FREE:
            return f"use after free of mm {a} (site {b})"
    return None


def d1_no_domain_freed_in_use(s: SystemState):
    """D1: No iommu_domain is freed while a group or a PASID entry still uses it."""
    for c, a, b in s.warnings:
        if c == Warn.DOMAIN_USE_AFTER_FREE:
            return (f"iommu_domain {a} freed while still {DOMAIN_IN_USE_SITES.get(b, b)} "
                    "(the IOMMU and the next detach would use the freed domain)")
    return None


def b1_no_bug_on(s: SystemState):
    """B1: The kernel never crashes (BUG_ON)."""
    for c, a, b in s.warnings:
        if c == Warn.BUG_ON:
            return f"kernel BUG_ON: kernel driver bound into user-owned group {a} (device {b})"
        if c == Warn.MMU_NOTIFIER_REGISTER_BUG:
            return (f"kernel BUG: mmu_notifier_register() on mm {a} whose mm_users is 0 "
                    f"(SVA bind of an exited mm, device {b})")
    return None


def _ctx_name(s: SystemState, ctx: int) -> str:
    th = s.kthreads.get(ctx)
    what = OPS[th.op].name if th is not None and th.op >= 0 else "task work"
    return f"context {ctx} ({what})"


def l1_no_deadlock(s: SystemState):
    """L1: No cycle of lock waits: no kernel path sleeps on a lock held, directly or through
    other sleepers, by itself (a deadlock; a self-deadlock is a cycle of one)."""
    for ctx, th in s.kthreads.items():
        if not th.wait:
            continue
        chain = [ctx]
        cur = th
        while cur is not None and cur.wait:
            holder = s.locks.get(cur.wait)
            if holder is None:
                break
            if holder == ctx:
                if len(chain) == 1:
                    return (f"{_ctx_name(s, ctx)} sleeps on {key_name(th.wait)}, which it "
                            "holds itself (self-deadlock)")
                parts = " -> ".join(
                    f"{_ctx_name(s, c)} waits for {key_name(s.kthreads[c].wait)}"
                    for c in chain)
                return f"deadlock: {parts} held by context {ctx}"
            if holder in chain:
                break  # a cycle not through ctx: reported from one of its members
            chain.append(holder)
            cur = s.kthreads.get(holder)
    return None


def l2_no_sleep_in_atomic(s: SystemState):
    """L2: No sleeping lock or allocation in atomic context (#GP / IRQ, or a spinlock
    held): the kernel's "BUG: sleeping function called from invalid context"."""
    for c, a, b in s.warnings:
        if c == Warn.SLEEP_IN_ATOMIC:
            what = key_name(a) if a >> 32 else SLEEP_POINTS.get(a, f"sleeping point {a}")
            if b in (CtxKind.EXCEPTION, CtxKind.IRQ):
                where = "in #GP exception context" if b == CtxKind.EXCEPTION else "in IRQ context"
            else:
                where = "under a spinlock"
            return f"sleeping in atomic context: {what} {where}"
    return None


def l3_consistent_irq_lock_usage(s: SystemState):
    """L3: No spinlock is taken both in IRQ context and elsewhere with interrupts enabled
    (lockdep's "inconsistent {HARDIRQ-ON-W} -> {IN-HARDIRQ-W} usage": the interrupt may
    arrive on the CPU that holds the lock, and spin on it forever)."""
    for c, a, b in s.warnings:
        if c == Warn.INCONSISTENT_LOCK_STATE:
            return (f"inconsistent lock state: {key_name(a)} is taken in IRQ context and, "
                    "elsewhere, with interrupts enabled (an IRQ on the holder's CPU deadlocks)")
    return None


def no_warnings(s: SystemState):
    """W: No kernel WARN fired."""
    return unexpected_warning(s)


def unexpected_warning(s: SystemState, allowed: frozenset = frozenset()):
    """W with exceptions: the latest kernel WARN whose :class:`~pasidsim.errors.Warn` code is
    not in ``allowed`` (a scenario's ``expect_warn``), as a message; None when there is none.
    Unknown codes are reported as ``WARN code <n>``."""
    for c, a, b in reversed(s.warnings):
        if c in allowed:
            continue
        if c in Warn._value2member_map_:
            return f"kernel WARN: {Warn(c).describe(a, b)}"
        return f"kernel WARN: WARN code {c}({a}, {b})"
    return None


STATE_INVARIANTS: tuple[Invariant, ...] = (
    Invariant("M9", "no use of an mm or iommu_mm after the mmdrop that freed it",
              m9_no_use_after_free),
    Invariant("D1", "no iommu_domain is freed while a group or PASID entry still uses it",
              d1_no_domain_freed_in_use),
    Invariant("B1", "the kernel never crashes (BUG_ON)", b1_no_bug_on),
    Invariant("L1", "no cycle of lock waits (deadlock)", l1_no_deadlock),
    Invariant("L2", "no sleeping lock or allocation in atomic context", l2_no_sleep_in_atomic),
    Invariant("L3", "no spinlock taken both in IRQ context and with interrupts enabled",
              l3_consistent_irq_lock_usage),
    Invariant("A1", "a PASID has at most one owner and is allocated while owned", a1_unique,
              "contract"),
    Invariant("A2", "allocated PASIDs are in [1, max_pasids-1]", a2_range),
    Invariant("A3", "no PASID is reusable while a device can reach it", a3_no_reuse_while_reachable),
    Invariant("A4", "a stale interrupt is never charged to the PASID's next owner",
              a4_no_misattributed_fault),
    Invariant("A5", "pending-free PASIDs are not allocatable until the last put", a5_pending_free),
    Invariant("M1", "a bound mm has a PASID", m1_bound_mm_has_pasid),
    Invariant("M4", "mm_count covers every SVA domain and the users", m4_mm_count),
    Invariant("M5", "SVA domain users == attached slots", m5_domain_users),
    Invariant("M6", "handle users >= 1 and the slot holds the handle", m6_handle_users),
    Invariant("M7", "an SVA domain is attached only at its mm's PASID", m7_sva_at_mm_pasid),
    Invariant("M10", "one SVA domain per mm and IOMMU driver (shared SVA domains)",
              m10_one_sva_domain_per_iommu),
    Invariant("P1", "the RID slot is used only by the group-handle APIs", p1_no_rid_slot),
    Invariant("P2", "an occupied slot is programmed in every PASID-capable member", p2_slots_programmed),
    Invariant("P3", "no programmed PASID entry without its slot", p3_no_orphan_entries),
    Invariant("O1", "owner_cnt counts the owner or the DMA-API drivers", o1_owner_cnt, "contract"),
    Invariant("O2", "kernel DMA-API use and a user owner never coexist", o2_exclusive,
              "contract"),
    Invariant("O3", "a user-owned group is never on the default domain", o3_owned_not_default,
              "contract"),
    Invariant("O4", "an unowned group is on its default domain with no PASIDs", o4_unowned_default,
              "contract"),
    Invariant("X1", "an active IA32_PASID equals the mm's PASID", x1_msr),
    Invariant("C1", "IOTLB and ATC hold only current translations", c1_caches_current),
    Invariant("F2", "page requests are flushed before their PASID is released", f2_faults_flushed),
    Invariant("F3", "no page-request group is run after its device left the fault queue",
              f3_no_freed_iopf_group),
    Invariant("I1", "no DMA through a stale translation", i1_no_stale_dma),
    Invariant("I2", "no descriptor completes into another process's memory",
              i2_no_foreign_completion, "contract"),
    Invariant("A3q", "no PASID is reusable while descriptors tagged with it are queued",
              a3q_no_reuse_while_queued, "contract"),
    Invariant("W", "no kernel WARN fired", no_warnings, "contract"),
)


# -- quiescence ------------------------------------------------------------------------------

def quiescence_leaks(s: SystemState) -> str | None:
    """At quiescence (no actor has work left, the hardware is idle) nothing may be leaked:
    every file is reachable from a live process, no mm holds an ``mm_users`` reference nobody
    will put or is left exited and unfreed, every PASID is free or owned by a live mm or
    IOASID, nothing is pending free, every page request was answered, every GPU interrupt
    handled, every descriptor completed, no deferred work is left.  Returns the first leak
    found as a message, or None.  (Used by the model checker at quiescent states and by the
    scenario runner at the end of a run that ends quiescent.)"""
    for ctx, th in sorted(s.kthreads.items()):
        lock = key_name(th.wait) if th.wait else "nothing"
        holder = s.locks.get(th.wait)
        return (f"{_ctx_name(s, ctx)} is blocked forever on {lock}"
                + (f" held by context {holder}" if holder is not None else ""))
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
    owners.update(d.kernel_pasid for d in s.devs if d.kernel_pasid)  # a driver's own PASID
    for p in s.ida.ids():
        if p not in owners:
            return f"PASID {p} is allocated but no mm or IOASID owns it"
    if s.pending_free:
        return f"PASIDs {sorted(s.pending_free.keys())} still pending free at quiescence"
    for dev, q in s.iopf.items():
        if q.groups:
            return f"device {dev}: {len(q.groups)} page-request group(s) never answered"
        if q.stale:
            return f"device {dev}: {len(q.stale)} freed page-request group(s) still queued"
    if s.ih_ring:
        return f"{len(s.ih_ring)} GPU interrupt(s) never handled"
    if s.inflight:
        return f"{len(s.inflight)} descriptor(s) still queued at quiescence"
    if s.work:
        return "deferred work left behind"
    return None


# -- transition invariants ---------------------------------------------------------------------

def m1_pasid_immutable(s0, a, ret, s1):
    """M1t: An mm's PASID never changes while the mm lives."""
    for mid, m in s0.mms.items():
        if m.pasid == IOMMU_PASID_INVALID:
            continue
        m1 = s1.mms.get(mid)
        if m1 is None:
            continue
        if m1.pasid != m.pasid and not (s1.policy.pasid_free_point == FreePoint.MMPUT
                                        and m1.mm_users == 0):
            return f"mm {mid} PASID changed {m.pasid} -> {m1.pasid} while the mm lives"
    return None


def o5_no_owner_change_with_pasids(s0, a, ret, s1):
    """O5: Ownership does not change while PASIDs are attached."""
    for g, (g0, g1) in enumerate(zip(s0.groups, s1.groups)):
        if g0.pasid_array and g1.pasid_array and \
                (g0.owner, bool(g0.owner_cnt)) != (g1.owner, bool(g1.owner_cnt)):
            return f"group {g}: ownership changed while PASIDs were attached"
    return None


def x2_new_task_clean(s0, a, ret, s1):
    """X2: A new task starts with no PASID activated."""
    for tid, t in s1.tasks.items():
        if tid not in s0.tasks and (t.pasid_activated or t.msr) and \
                s1.policy.enqcmd != 1:  # E3 IPI sets MSRs of every thread, by design
            return f"new task {tid} starts with IA32_PASID active"
    return None


def x3_msr_written_by_owner(s0, a, ret, s1):
    """The IA32_PASID MSR of a task changes only in that task's own #GP path (E6+), or when
    the task itself resets its FPU state at ``execve`` (to 0)."""
    own = None
    if a is not None and a.name in ("enqcmd", "exc_general_protection", "execve"):
        own = a.kwargs().get("tid")
    for tid, t1 in s1.tasks.items():
        t0 = s0.tasks.get(tid)
        if t0 is not None and t0.msr != t1.msr and tid != own:
            return f"task {tid}: IA32_PASID rewritten from outside its #GP path ({t0.msr:#x} -> {t1.msr:#x})"
    return None


TRANSITION_INVARIANTS: tuple[Invariant, ...] = (
    Invariant("M1t", "an mm's PASID never changes while the mm lives", m1_pasid_immutable),
    Invariant("O5", "ownership does not change while PASIDs are attached",
              o5_no_owner_change_with_pasids, "contract"),
    Invariant("X2", "a new task starts with no PASID activated", x2_new_task_clean),
    Invariant("X3", "IA32_PASID is written only by its task's #GP fixup", x3_msr_written_by_owner),
)

INVARIANTS_BY_NAME = {i.name: i for i in STATE_INVARIANTS + TRANSITION_INVARIANTS}


def check_state(s: SystemState, scope: str | None = None) -> list[tuple[str, str]]:
    """All violated state invariants as ``(name, message)``; ``scope="kernel"`` keeps only
    the kernel-guaranteed ones.  Invariants that hold only between calls (``when="between"``)
    are not evaluated while a kernel call is in progress (``s.kthreads``)."""
    out = []
    for inv in STATE_INVARIANTS:
        if scope and inv.scope != scope:
            continue
        if inv.when == "between" and s.kthreads:
            continue
        msg = inv.check(s)
        if msg:
            out.append((inv.name, msg))
    return out


def check_transition(s0, a, ret, s1, scope: str | None = None) -> list[tuple[str, str]]:
    """All violated transition invariants for one step."""
    out = []
    for inv in TRANSITION_INVARIANTS:
        if scope and inv.scope != scope:
            continue
        msg = inv.check(s0, a, ret, s1)
        if msg:
            out.append((inv.name, msg))
    return out


def atomicity_broken(s0: SystemState, action, ret, s1: SystemState,
                     whole: bool = True) -> str | None:
    """ATOMIC: the message when a failed call (``ret`` a ``-errno``) of an atomic operation
    (``Op.atomic``) changed the state (warnings aside), else None.  ``whole``: the call
    started and returned in this step (at lock granularity other contexts may run between
    the steps of one call, so only a whole call is judged)."""
    if action is None or not whole or not isinstance(ret, int) or ret >= 0 or \
            ret == IN_PROGRESS or not OPS[action.op].atomic:
        return None
    if s0.fingerprint_nowarn() == s1.fingerprint_nowarn():
        return None
    return f"{OPS[action.op].name} returned {fmt_ret(ret)} but changed the state"


def step_violations(s0: SystemState, action, ret, s1: SystemState,
                    allowed_warn: frozenset = frozenset(),
                    whole: bool = True) -> list[tuple[str, str]]:
    """Everything one step is judged on, as ``(name, message)`` in this order: the state
    invariants of ``s1`` (W aside), the latest WARN not in ``allowed_warn`` (``W``), and for a
    step that made a call (``action`` not None) the transition invariants and ``ATOMIC``
    (:func:`atomicity_broken`).  Used by ``pasidsim run`` (the scenario runner), the
    Hypothesis bridge (:mod:`pasidsim.testing`); the model checker evaluates the same
    functions one by one, as its search needs them."""
    found = [(n, m) for n, m in check_state(s1) if n != "W"]
    warn = unexpected_warning(s1, allowed_warn)
    if warn:
        found.append(("W", warn))
    if action is not None:
        found += check_transition(s0, action, ret, s1)
        msg = atomicity_broken(s0, action, ret, s1, whole)
        if msg:
            found.append(("ATOMIC", msg))
    return found


__all__ = ["Invariant", "STATE_INVARIANTS", "TRANSITION_INVARIANTS", "INVARIANTS_BY_NAME",
           "check_state", "check_transition", "quiescence_leaks", "unexpected_warning",
           "atomicity_broken", "step_violations", "OwnerModel"]
