"""The discrete-event simulator: SimPy time and events around the model's one ``step``.

Every kernel call, process event and hardware event of a run is an :class:`~pasidsim.ops.Action`
applied with :func:`pasidsim.step.step` to the current :class:`~pasidsim.state.SystemState` —
the function the library, the scenario runner and the model checker use; there is no second
copy of the model here.  SimPy (``simpy.Environment``) only decides *when*: process arrivals and
lifetimes are SimPy processes; hardware events with a latency (a descriptor's completion, a GPU
job's fence, the interrupt handler reaching an IH-ring entry) are SimPy timeouts whose callback
applies the hardware action of the model at its time.  Random draws come from per-process
generators seeded from ``(seed, process index)``, so two designs run on the same seed see the
same arrivals, lifetimes and jobs.

Online checking (after every step, cost measured in ``benchmarks/bench_sim.py``):

- the log-like parts of the state are watched: when a step appends to ``state.breaches`` or
  ``state.warnings``, the invariants that read them (A4 misattributed fault, I1 stale DMA, I2
  foreign completion; W, M9, B1, F3) are evaluated — O(1) per step otherwise;
- the transition invariants (:data:`pasidsim.invariants.TRANSITION_INVARIANTS`: M1t, O5, X2,
  X3) after every step when ``transitions`` is on (O(live mms + tasks) per step);
- every state invariant (:func:`pasidsim.invariants.check_state`) over the whole state every
  ``full_check_every`` steps and once at the end; quiescence leaks at the end of a run that
  drained.

The first violation stops the run (``violations: stop``) and the steps that led to it are kept
to be saved as a replayable scenario (:mod:`pasidsim.sim.replay`); with ``violations: count``
each new breach/WARN is counted (per invariant) and the run goes on.

Times are ms of simulated time.  Kernel sources modeled: those of the operations driven
(``amdgpu_driver_open_kms``/``postclose_kms``, ``amdgpu_cs_ioctl``, ``amdgpu_ih_process``,
``dma_fence_signal``; ``idxd_cdev_open``/``release``, ``iommu_sva_bind_device``; exit paths).
"""

from __future__ import annotations

import errno as _errno
import math
import random
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

import simpy

from ..designs import DESIGNS
from ..drivers.amdgpu import vm_pasid
from ..errors import ModelUsageError
from ..invariants import (INVARIANTS_BY_NAME, check_state, check_transition, quiescence_leaks,
                          unexpected_warning)
from ..machines import machine_config
from ..runtime import no_cyclic_gc
from ..scenario.loader import ScenarioError
from ..state import IOMMU_PASID_INVALID, initial_state
from ..step import OP_BY_NAME, OPS, Action, step
from ..topology.model import TopologyError
from .workload import LoadedWorkload

_C = {n: OP_BY_NAME[n].code for n in (
    "process_create", "dev_open", "close", "task_exit", "amdgpu_cs_submit", "amdgpu_vm_fault",
    "amdgpu_ih_process", "dma_fence_signal", "wq_submit", "dma_complete", "mmap_anon", "touch",
    "device_driver_attach", "iopf_handle")}
C_CREATE, C_OPEN, C_CLOSE, C_EXIT = (_C[n] for n in ("process_create", "dev_open", "close",
                                                      "task_exit"))
C_CS, C_FAULT, C_IH, C_SIGNAL = (_C[n] for n in ("amdgpu_cs_submit", "amdgpu_vm_fault",
                                                  "amdgpu_ih_process", "dma_fence_signal"))
C_WQ, C_COMPLETE, C_MMAP, C_TOUCH = (_C[n] for n in ("wq_submit", "dma_complete", "mmap_anon",
                                                      "touch"))
C_PROBE, C_IOPF = _C["device_driver_attach"], _C["iopf_handle"]
#: pages of an sva_wq context's buffer (page 0 touched by the CPU, the rest demand-faulted)
BUFFER_PAGES = 64
PAGE = 4096

#: breach kind (pasidsim.hw.translate.Breach) -> the invariant that forbids it
BREACH_INVARIANT = {1: "I1", 2: "I2", 3: "A4"}
#: invariants that read the WARN log
WARN_INVARIANTS = ("M9", "D1", "B1", "F3")
#: log record: actor, opcode, ret, up to 4 args
REC = 7
_PAD = ((0, 0, 0, 0), (0, 0, 0), (0, 0), (0,), ())

#: the columns of the metric time series, in order (units in :func:`column_doc`)
COLUMNS = ("t_ms", "events", "processes_started", "processes_live", "amdgpu_pasids",
           "amdgpu_pending_free", "pasids", "pending_free", "alloc_failures", "allocations",
           "reuses", "reuse_time_mean_ms", "reuse_time_min_ms", "reuse_allocs_mean", "faults",
           "stale_dropped", "misattributed", "foreign_dma", "stale_dma", "ih_depth",
           "inflight", "fences_pending", "page_requests", "iopf_depth", "violations")


def column_doc() -> dict[str, str]:
    """What each column of the time series holds (units)."""
    return {
        "t_ms": "simulated time (ms)", "events": "model steps so far (kernel calls, process "
        "and hardware events)", "processes_started": "processes arrived so far",
        "processes_live": "processes not yet exited",
        "amdgpu_pasids": "PASIDs allocated in amdgpu's IDR (incl. pending)",
        "amdgpu_pending_free": "amdgpu PASIDs whose delayed free waits on a fence",
        "pasids": "global (IOMMU) PASIDs allocated (incl. pending-free)",
        "pending_free": "global PASIDs freed but still referenced (pending-free allocator)",
        "alloc_failures": "PASID allocations that failed so far (-ENOSPC/-ENOMEM; an amdgpu VM "
        "left with PASID 0)", "allocations": "PASIDs allocated so far",
        "reuses": "allocations in this interval of a PASID freed before",
        "reuse_time_mean_ms": "mean time from a PASID's free to its next allocation (interval)",
        "reuse_time_min_ms": "shortest such time in the interval",
        "reuse_allocs_mean": "mean number of allocations between a PASID's free and its next "
        "allocation (interval)", "faults": "GPU page faults raised so far (IH-ring entries)",
        "stale_dropped": "IH entries handled after their PASID was freed, with no owner: dropped",
        "misattributed": "IH entries charged to a VM other than the one that raised them (A4)",
        "foreign_dma": "descriptors completed into another process's mm (I2)",
        "stale_dma": "DMA through a stale cached translation (I1)",
        "ih_depth": "IH-ring entries waiting", "inflight": "descriptors queued",
        "fences_pending": "GPU fences not yet signalled",
        "page_requests": "page requests sent by devices so far (descriptors on untouched "
        "pages)", "iopf_depth": "page-request groups waiting for the IOPF worker",
        "violations": "invariant violations counted so far"}


def _scope(s, tids, mids):
    """``s`` with only tasks ``tids`` and mms ``mids`` (for scoped transition checks)."""
    tasks, mms = s.tasks, s.mms  # plain dicts: the transition invariants only read them
    return s._replace(tasks={t: tasks[t] for t in tids if t in tasks},
                      mms={m: mms[m] for m in mids if m in mms})


_O5 = INVARIANTS_BY_NAME["O5"].check


class _Stop(Exception):
    """Ends a run from inside a SimPy callback (max events, first violation)."""


@dataclass
class Violation:
    """The first (or a counted) invariant violation: ``invariant`` name, ``message``,
    ``event`` (0-based index of the step after which it was seen), ``t_ms``."""

    invariant: str
    message: str
    event: int
    t_ms: float


@dataclass
class SimResult:
    """A run: ``rows`` (the time series, one tuple per sample, :data:`COLUMNS`), ``summary``
    (totals, rates, wall time), ``violation`` (the first one or None), ``violation_counts``
    (invariant → count, ``count`` mode), ``log`` (the steps as flat int64 records, for the
    replay scenario; None when not recorded), ``label`` (design or sweep value)."""

    rows: list
    summary: dict
    violation: Violation | None
    violation_counts: dict = field(default_factory=dict)
    log: Any = None
    label: str = ""

    def column(self, name: str) -> list:
        i = COLUMNS.index(name)
        return [r[i] for r in self.rows]


class Simulation:
    """One run of a workload on one design.

    Args:
        workload: a :class:`~pasidsim.sim.workload.LoadedWorkload`.
        design: run on this design instead of the workload's (its ``policy_overrides`` apply).
        record: keep every step (56 bytes each) so that a violation can be saved as a scenario.
        transitions: evaluate the transition invariants after every step.
        max_events / processes / violations / full_check_every: override the workload's.
    Raises: ScenarioError (located in the workload file) for a device the machine does not
        have or whose driver does not fit the context kind.
    """

    def __init__(self, workload: LoadedWorkload, *, design: str | None = None,
                 record: bool = True, transitions: bool = True, max_events: int | None = None,
                 processes: int | None = None, violations: str | None = None,
                 full_check_every: int | None = None) -> None:
        self.lw = workload
        w = self.w = workload.model
        self.design = design or w.design
        if self.design not in DESIGNS:
            raise ScenarioError(workload.source, 0, "design",
                                f"unknown design {self.design!r}; known: {', '.join(DESIGNS)}")
        base = DESIGNS[self.design]
        changes = {k: v for k, v in w.policy_overrides.model_dump().items() if v is not None}
        self.policy = base.but(name=base.name + "+" + ",".join(
            f"{k}={getattr(v, 'name', v)}" for k, v in sorted(changes.items())), **changes) \
            if changes else base
        loc = workload.locator
        try:
            self.config, _aliases = machine_config(w.machine, workload.base_dir)
        except ScenarioError as e:
            raise loc.error(("machine",), f"machine file {e}") from None
        except ModelUsageError as e:
            raise loc.error(("machine",), str(e)) from None
        except TopologyError as e:
            raise loc.error(("machine", "topology"), f"cannot import topology: {e}") from None
        self.devs = []  # per context: the tuple of its device indices
        for i, c in enumerate(w.contexts):
            names = [c.dev] if isinstance(c.dev, str) else list(c.dev)
            pool = []
            for j, name in enumerate(names):
                at = ("contexts", i, "dev") + (() if isinstance(c.dev, str) else (j,))
                try:
                    d = self.config.device_index(name)
                except ModelUsageError:
                    have = ", ".join(x.name for x in self.config.devices)
                    raise loc.error(at, f"unknown device {name!r}; the machine has: "
                                    f"{have}") from None
                drv = self.config.devices[d].driver
                kind = self.config.drivers[self.config.driver_index(drv)].kind if drv else None
                want = {"gpu_vm": "amdgpu", "sva_wq": "idxd-dwq"}[c.kind]
                if kind != want:
                    raise loc.error(at, f"a {c.kind} context needs a device driven by a "
                                    f"{want} driver; {name} is driven by {kind or 'none'}")
                pool.append(d)
            self.devs.append(tuple(pool))
        self.allowed_warn = frozenset(int(x) for x in w.expect_warn)
        self.max_events = max_events if max_events is not None else w.max_events
        self.n_procs = processes if processes is not None else w.processes
        self.mode = violations or w.violations
        self.full_every = w.full_check_every if full_check_every is None else full_check_every
        self.transitions = transitions
        self.log = array("q") if record else None

    # -- the one entry into the model -----------------------------------------------------
    def _do(self, actor: int, code: int, args: tuple, ctx: int = 0) -> int:
        """Apply one action with ``step`` and run the online checks."""
        s0 = self.s
        a = Action(code, args)
        s1, ret = step(s0, a, ctx)
        self.s = s1
        n = self.n
        self.n = n + 1
        log = self.log
        if log is not None:
            log.extend((actor, code, ret) + args + _PAD[len(args)])
        if s1.breaches is not s0.breaches:
            self._new_breaches(s0, s1, n)
        if s1.warnings is not s0.warnings:
            self._new_warnings(s1, n)
        if self.transitions and (s1.tasks is not s0.tasks or s1.mms is not s0.mms
                                 or s1.groups is not s0.groups):
            self._transition(s0, a, ret, s1, ctx, code, n)
        if self.full_every and (n + 1) % self.full_every == 0:
            self._full_check(n)
        if self.max_events is not None and self.n >= self.max_events:
            self.stopped = "max_events"
            raise _Stop
        return ret

    def _transition(self, s0, a, ret, s1, ctx: int, code: int, n: int) -> None:
        """The transition invariants, scoped to the objects the step can touch: the task that
        made it (and the one ``process_create`` made) and their mms.  A hardware event that
        changed ``tasks`` or ``mms`` (it should not) is checked over the whole state."""
        if s1.tasks is s0.tasks and s1.mms is s0.mms:
            if s1.groups is not s0.groups:
                msg = _O5(s0, a, ret, s1)
                if msg:
                    self._violate("O5", msg, n)
            return
        if code == C_CREATE or ctx != 0:
            tids = (ctx, ret) if code == C_CREATE else (ctx,)
            mids = set()
            for s in (s0, s1):
                for tid in tids:
                    task = s.tasks.get(tid)
                    if task is not None:
                        mids.add(task.mm)
            found = check_transition(_scope(s0, tids, mids), a, ret, _scope(s1, tids, mids))
        else:
            found = check_transition(s0, a, ret, s1)
        for name, msg in found:
            self._violate(name, msg, n)

    def _new_breaches(self, s0, s1, n: int) -> None:
        for kind, *_ in s1.breaches[len(s0.breaches):]:
            if kind == 2:
                self.foreign_dma += 1
            elif kind == 1:
                self.stale_dma += 1
            name = BREACH_INVARIANT.get(kind)
            if name:
                self._violate(name, INVARIANTS_BY_NAME[name].check(
                    s1._replace(breaches=s1.breaches[len(s0.breaches):])) or "", n)

    def _new_warnings(self, s1, n: int) -> None:
        for name in WARN_INVARIANTS:
            msg = INVARIANTS_BY_NAME[name].check(s1)
            if msg and name not in self.counts:
                self._violate(name, msg, n)
        msg = unexpected_warning(s1._replace(warnings=s1.warnings[-1:]), self.allowed_warn)
        if msg:
            self._violate("W", msg, n)

    def _full_check(self, n: int) -> None:
        for name, msg in check_state(self.s):
            if name in BREACH_INVARIANT.values() or name == "W" or name in WARN_INVARIANTS:
                continue  # counted when the breach/WARN appeared
            if name not in self.counts:  # a state invariant: counted once, when first seen
                self._violate(name, msg, n)

    def _violate(self, name: str, msg: str, n: int) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1
        self.n_violations += 1
        if self.violation is None:
            self.violation = Violation(name, msg, n, float(self.env.now))
        if self.mode == "stop":
            self.stopped = "violation"
            raise _Stop

    # -- PASID bookkeeping (metrics only: the model decides) --------------------------------
    def _allocated(self, space: int, pasid: int) -> None:
        self.allocs[space] += 1
        self.allocations += 1
        freed = self.last_free[space].pop(pasid, None)
        if freed is not None:
            t, k = freed
            dt = self.env.now - t
            self.i_reuses += 1
            self.i_reuse_t += dt
            between = self.allocs[space] - 1 - k
            self.i_reuse_n += between
            if between < self.reuse_allocs_min:
                self.reuse_allocs_min = between
            if dt < self.i_reuse_min:
                self.i_reuse_min = dt
            if dt < self.reuse_min_all:
                self.reuse_min_all = dt
            self.reuses_all += 1

    def _freed(self, space: int, pasid: int) -> None:
        self.last_free[space][pasid] = (self.env.now, self.allocs[space])

    # -- processes ------------------------------------------------------------------------
    def _arrivals(self):
        env, w = self.env, self.w
        rng = random.Random(f"{w.seed}:arrivals")
        for k in range(self.n_procs):
            yield env.timeout(w.arrival.sample(rng))
            self.started += 1
            self.live += 1
            env.process(self._process(k + 1, random.Random(f"{w.seed}:{k}")))

    def _process(self, actor: int, rng: random.Random):
        env, w, do = self.env, self.w, self._do
        tid = do(actor, C_CREATE, ())
        ctxs = []  # [spec, dev, fd, pasid, addr]
        for spec, pool in zip(w.contexts, self.devs):
            for _ in range(spec.count):
                start = rng.randrange(len(pool)) if len(pool) > 1 else 0
                for j in range(len(pool)):
                    dev = pool[(start + j) % len(pool)]
                    fd = do(actor, C_OPEN, (tid, dev), tid)
                    if fd >= 0 or fd != -_errno.EBUSY:
                        break
                if fd < 0:
                    if fd in (-_errno.ENOSPC, -_errno.ENOMEM):
                        self.alloc_failures += 1
                    else:
                        self.open_failures += 1
                    continue
                s = self.s
                if spec.kind == "gpu_vm":
                    pasid = vm_pasid(s.files[fd].drvdata)
                    if not pasid:
                        self.alloc_failures += 1  # "No more PASIDs available!"
                    else:
                        self._allocated(0, pasid)
                    ctxs.append([spec, dev, fd, pasid, 0, 0])
                else:
                    pasid = s.mms[s.tasks[tid].mm].pasid
                    if pasid == IOMMU_PASID_INVALID:
                        continue
                    self._allocated(1, pasid)
                    addr = do(actor, C_MMAP, (tid, BUFFER_PAGES, 3), tid)
                    if addr >= 0:
                        do(actor, C_TOUCH, (tid, addr, 2), tid)
                    ctxs.append([spec, dev, fd, pasid, addr, 1])
        end = env.now + w.lifetime.sample(rng)
        nxt = [env.now + c[0].job_interval.sample(rng) for c in ctxs]
        while ctxs:
            i = min(range(len(nxt)), key=nxt.__getitem__)
            t = nxt[i]
            if t >= end:
                break
            yield env.timeout(t - env.now)
            c = ctxs[i]
            spec = c[0]
            nxt[i] = t + spec.job_interval.sample(rng)
            dur = spec.job_duration.sample(rng)
            if spec.kind == "gpu_vm":
                fence = do(actor, C_CS, (tid, c[2]), tid)
                if fence > 0:
                    self._fence_until(fence, env.now + dur)
                if c[3] and spec.fault_prob and rng.random() < spec.fault_prob:
                    if do(actor, C_FAULT, (tid, c[2]), tid) > 0:
                        self.faults += 1
                        self._at(spec.ih_latency.sample(rng), self._ih, c[1])
            elif c[4] >= 0:
                addr = c[4]
                if spec.pr_prob and c[5] < BUFFER_PAGES and rng.random() < spec.pr_prob:
                    addr += c[5] * PAGE  # a page nobody touched: the device will fault
                    c[5] += 1
                desc = do(actor, C_WQ, (c[1], c[3], addr, 2), tid)
                if desc >= 0:
                    self._at(dur, self._complete, (desc, spec.pr_latency.sample(rng)))
        if end > env.now:
            yield env.timeout(end - env.now)
        for spec, dev, fd, pasid, _addr, _n in ctxs:
            if spec.kind != "gpu_vm":
                continue
            if spec.grace > 0:  # the VM teardown's fence: the PASID waits for it
                fence = do(actor, C_CS, (tid, fd), tid)
                if fence > 0:
                    self._fence_until(fence, env.now + spec.grace)
            do(actor, C_CLOSE, (tid, fd), tid)
            if pasid:
                self._vm_closed(pasid)
        do(actor, C_EXIT, (tid,), tid)
        for spec, dev, fd, pasid, _addr, _n in ctxs:
            if spec.kind == "sva_wq":
                self.sva_wait.add(pasid)
        self._check_sva_frees()
        self.live -= 1

    def _at(self, delay: float, fn, arg) -> None:
        ev = self.env.timeout(delay)
        ev.callbacks.append(lambda _e: fn(arg))

    # -- hardware events ------------------------------------------------------------------
    def _fence_until(self, fence: int, t: float) -> None:
        old = self.fence_end.get(fence)
        if old is None:
            self.fence_end[fence] = t
            self._at(t - self.env.now, self._fence_due, fence)
        elif t > old:
            self.fence_end[fence] = t

    def _fence_due(self, fence: int) -> None:
        t = self.fence_end[fence]
        if t > self.env.now:
            self._at(t - self.env.now, self._fence_due, fence)
            return
        del self.fence_end[fence]
        self._do(0, C_SIGNAL, (fence,))
        for pasid in self.wait_fence.pop(fence, ()):
            if pasid not in self.s.amdgpu_ida:
                self._freed(0, pasid)

    def _vm_closed(self, pasid: int) -> None:
        s = self.s
        if pasid not in s.amdgpu_ida:
            self._freed(0, pasid)
            return
        fence = s.amdgpu_pending.get(pasid)
        if fence is not None:
            self.wait_fence.setdefault(fence, []).append(pasid)

    def _ih(self, dev: int) -> None:
        origin = None
        for d, _pasid, o in self.s.ih_ring:
            if d == dev:
                origin = o
                break
        if origin is None:
            return
        ret = self._do(0, C_IH, (dev,))
        if ret == 0:
            self.stale_dropped += 1
        elif ret != origin:
            self.misattributed += 1

    def _complete(self, arg: tuple) -> None:
        desc, pr_latency = arg
        d = self.s.inflight.get(desc)
        if d is None:
            return  # drained or aborted by the release already
        if self._do(0, C_COMPLETE, (desc,)) == -_errno.EAGAIN:  # a page request was sent
            self.page_requests += 1
            self._at(pr_latency, self._iopf, d.dev)
        if self.sva_wait:
            self._check_sva_frees()

    def _iopf(self, dev: int) -> None:
        q = self.s.iopf.get(dev)
        if q is not None and (q.groups or q.stale):
            self._do(0, C_IOPF, (dev,))

    def _check_sva_frees(self) -> None:
        if not self.sva_wait:
            return
        ida = self.s.ida
        done = [p for p in self.sva_wait if p not in ida]
        for p in done:
            self.sva_wait.discard(p)
            self._freed(1, p)

    # -- sampling -------------------------------------------------------------------------
    def _sample(self) -> None:
        s = self.s
        n = self.i_reuses
        self.rows.append((
            float(self.env.now), self.n, self.started, self.live, s.amdgpu_ida.allocated,
            len(s.amdgpu_pending), s.ida.allocated, len(s.pending_free), self.alloc_failures,
            self.allocations, n, (self.i_reuse_t / n) if n else math.nan,
            self.i_reuse_min if n else math.nan, (self.i_reuse_n / n) if n else math.nan,
            self.faults, self.stale_dropped, self.misattributed, self.foreign_dma,
            self.stale_dma, len(s.ih_ring), len(s.inflight), len(self.fence_end),
            self.page_requests, sum(len(q.groups) for q in s.iopf.values()),
            self.n_violations))
        self.i_reuses, self.i_reuse_t, self.i_reuse_n, self.i_reuse_min = 0, 0.0, 0, math.inf

    def _sampler(self):
        env = self.env
        every = self.w.sample_every
        while True:
            yield env.timeout(every)
            self._sample()
            if self.started >= self.n_procs and self.live == 0 and env.peek() == math.inf:
                return

    # -- run ------------------------------------------------------------------------------
    def run(self) -> SimResult:
        """Run to the end (or the first violation, or ``max_events``); returns the
        :class:`SimResult`.  Python's cyclic garbage collector is off meanwhile
        (:func:`~pasidsim.runtime.no_cyclic_gc`: states and SimPy's fired events are acyclic,
        and its passes over the growing heap were 17% of a 100,000-process run)."""
        with no_cyclic_gc():
            return self._run()

    def _run(self) -> SimResult:
        self.env = env = simpy.Environment()
        self.s = initial_state(self.config, self.policy)
        self.n = 0
        self.rows: list = []
        self.counts: dict = {}
        self.n_violations = 0
        self.violation: Violation | None = None
        self.stopped = ""
        self.started = self.live = 0
        self.alloc_failures = self.allocations = self.faults = self.open_failures = 0
        self.page_requests = 0
        self.stale_dropped = self.misattributed = self.foreign_dma = self.stale_dma = 0
        self.allocs = [0, 0]
        self.last_free: list[dict] = [{}, {}]
        self.i_reuses, self.i_reuse_t, self.i_reuse_n, self.i_reuse_min = 0, 0.0, 0, math.inf
        self.reuses_all, self.reuse_min_all, self.reuse_allocs_min = 0, math.inf, math.inf
        self.fence_end: dict = {}
        self.wait_fence: dict = {}
        self.sva_wait: set = set()
        t0 = time.perf_counter()
        try:
            for i, d in enumerate(self.config.devices):  # boot: probe the drivers
                if d.driver is not None:
                    self._do(0, C_PROBE, (i, self.config.driver_index(d.driver)))
            env.process(self._arrivals())
            env.process(self._sampler())
            if self.w.duration is not None:
                env.run(until=self.w.duration)
                self.stopped = self.stopped or "duration"
            else:
                env.run()
        except _Stop:
            pass
        wall = time.perf_counter() - t0
        if not self.rows or self.rows[-1][0] != float(env.now) or self.rows[-1][1] != self.n:
            self._sample()
        if not self.stopped or self.stopped == "duration":
            try:
                self._full_check(self.n - 1)
                if not self.stopped and self.live == 0:
                    leak = quiescence_leaks(self.s)
                    if leak:
                        self._violate("quiescence", leak, self.n - 1)
            except _Stop:
                pass
        summary = {
            "workload": self.w.name, "design": self.design, "policy": self.policy.name,
            "seed": self.w.seed, "events": self.n, "processes": self.started,
            "sim_time_ms": float(env.now), "wall_s": wall,
            "events_per_s": self.n / wall if wall > 0 else 0.0,
            "stopped": self.stopped or "end", "allocations": self.allocations,
            "alloc_failures": self.alloc_failures, "open_failures": self.open_failures,
            "faults": self.faults,
            "misattributed": self.misattributed, "stale_dropped": self.stale_dropped,
            "misattribution_rate": self.misattributed / self.faults if self.faults else 0.0,
            "foreign_dma": self.foreign_dma, "stale_dma": self.stale_dma,
            "page_requests": self.page_requests,
            "reuses": self.reuses_all,
            "reuse_time_min_ms": self.reuse_min_all if self.reuses_all else None,
            "reuse_allocs_min": self.reuse_allocs_min if self.reuses_all else None,
            "max_amdgpu_pasids": max((r[4] for r in self.rows), default=0),
            "max_pasids": max((r[6] for r in self.rows), default=0),
            "violations": dict(self.counts)}
        return SimResult(self.rows, summary, self.violation, dict(self.counts), self.log,
                         self.design)


def simulate(workload: LoadedWorkload, **kw) -> SimResult:
    """Run ``workload`` once (keyword arguments: :class:`Simulation`'s)."""
    return Simulation(workload, **kw).run()


__all__ = ["Simulation", "SimResult", "Violation", "simulate", "COLUMNS", "column_doc",
           "BREACH_INVARIANT", "OPS"]
