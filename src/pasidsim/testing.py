"""A Hypothesis bridge: a rule-based state machine over the kernel API, whose failures are
written as scenario files that ``pasidsim run`` replays.

:class:`KernelMachine` is a :class:`hypothesis.stateful.RuleBasedStateMachine` over a
:class:`~pasidsim.system.System`: its rules call the real facade — process creation, fork,
thread clone, exit, device open/close/mmap, ``iommu_sva_bind_device`` / ``unbind``, ENQCMD and
the #GP fixup, IOMMU-group DMA ownership claim/release, and the hardware's pending events
(descriptor completions, page requests) — on values drawn from Bundles of tasks, mms, open
files, SVA handles and claimed groups.  The callers keep the kernel's documented rules (the
contract invariants assume them): only a device's bound driver binds it, a handle is unbound
once, only a claimed group is released, ENQCMD goes to a mapped shared-work-queue portal.  A
call that fails with a kernel errno
(:class:`~pasidsim.errors.KernelError`) is an accepted outcome; a misuse of the library
(:class:`~pasidsim.errors.ModelUsageError`, e.g. a task that has exited) is skipped, state
unchanged.  After every call the machine checks what ``pasidsim run`` checks after every step:
every state invariant of :mod:`pasidsim.invariants` (``W``: any kernel WARN), the transition
invariants, failure atomicity (``ATOMIC``: a failed call of an atomic operation leaves the
state unchanged, WARNs aside) and, at quiescence (no live task, no handle or group ownership
left to release, the hardware idle), the leaks of
:func:`~pasidsim.invariants.quiescence_leaks` (``quiescence``).

Use it as a test::

    from pasidsim.testing import KernelMachine
    TestKernel = KernelMachine.TestCase            # today's design, the built-in machine

    class E6Machine(KernelMachine):                # a historical design
        design = "E6-mmput-free"
    TestE6 = E6Machine.TestCase                    # fails: A3 (v5.18-rc1: PASID freed in __mmput)

Class attributes configure it: ``machine`` (what a scenario's ``machine:`` accepts: ``"default"``,
a machine or topology file, an inline mapping), ``design`` (a name of
:data:`pasidsim.designs.DESIGNS`), ``policy_overrides`` (switches of
:class:`~pasidsim.policy.Policy`, as the scenario field), ``max_tasks`` and ``out_dir``.

On a violation the steps taken (the boot of the machine, then each call in order, with its
return value as ``expect``) are written as a scenario — the same file ``pasidsim check`` writes
for a counterexample (:func:`pasidsim.check.cli_check.counterexample_yaml`, through
:func:`pasidsim.report.output.write_text_atomic`) — to
``<out_dir>/<ClassName>--<violation>.yaml``: ``out_dir`` is the class attribute, else the
environment variable ``PASIDSIM_HYPOTHESIS_DIR``, else ``pasidsim-hypothesis/``.  It is
written once, for the shrunk example Hypothesis reports; ``pasidsim run FILE`` replays it to
the same violation (and exits 1: the file expects ``violations: 0``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import yaml
from hypothesis.stateful import (Bundle, RuleBasedStateMachine, consumes, initialize,
                                 multiple, precondition, rule)

from .errors import KernelError, ModelUsageError, errname
from .invariants import quiescence_leaks, step_violations
from .ops import enabled_events
from .scenario import StepRef, compile_scenario, load_text
from .state import IOMMU_PASID_INVALID
from .step import OPS, Action
from .system import System

#: environment variable naming the directory failing examples are written to
OUT_ENV = "PASIDSIM_HYPOTHESIS_DIR"
#: the directory used when neither the class nor the environment names one
DEFAULT_OUT = "pasidsim-hypothesis"
#: the scenario actor that makes every recorded call
ACTOR = "hyp"


class InvariantViolation(AssertionError):
    """A step of a :class:`KernelMachine` broke a property.  Attributes: ``name`` (the
    invariant, ``ATOMIC``, ``W`` or ``quiescence``), ``detail`` (its message), ``path`` (the
    scenario file written, or None when this run of the example was not the reported one)."""

    def __init__(self, name: str, detail: str, path: str | None, note: str = "") -> None:
        self.name, self.detail, self.path = name, detail, path
        where = f"; steps written to {path} (replay: pasidsim run {path})" if path else ""
        super().__init__(f"{name}: {detail}{where}{note}")


class KernelMachine(RuleBasedStateMachine):
    """A Hypothesis state machine over the kernel API of one machine and one design (see the
    module docstring).  Subclass it to change the class attributes below; its ``TestCase`` is
    the unittest test case that runs it (set ``TestCase.settings`` for ``max_examples`` and
    ``stateful_step_count``)."""

    #: the machine: any value of a scenario's ``machine:`` field (``"default"``, a machine
    #: YAML file, ``{"topology": [dump files]}``, an inline mapping)
    machine: Any = "default"
    #: the design: a name of :data:`pasidsim.designs.DESIGNS`
    design: str = "current"
    #: switches of :class:`~pasidsim.policy.Policy` on top of ``design`` (the scenario's
    #: ``policy_overrides``), e.g. ``{"handle_sharing": False}``
    policy_overrides: dict = {}
    #: at most this many live tasks (process create, fork and clone wait below it)
    max_tasks: int = 4
    #: where failing examples are written (None: $PASIDSIM_HYPOTHESIS_DIR or
    #: ``pasidsim-hypothesis``)
    out_dir: str | None = None
    #: DMA-ownership cookies the claim rule uses (non-zero: a NULL owner is a caller bug)
    owners: tuple[int, ...] = (0xA, 0xB)
    #: at most this many DMA-ownership claims per example
    max_claims: int = 2

    tasks = Bundle("tasks")
    mms = Bundle("mms")
    files = Bundle("files")
    handles = Bundle("handles")
    owned = Bundle("owned_groups")

    def __init__(self) -> None:
        super().__init__()
        self._head = self._skeleton()
        self.config, policy, booted = _boot(yaml.safe_dump(self._head, sort_keys=False))
        self.system = System(self.config, policy)
        self.system.state = booted
        self.steps: list[dict] = []
        self._claims = 0

    def _skeleton(self) -> dict:
        """The scenario head: name, design, machine (a machine file by its absolute path, so
        that the written scenario finds it from its own directory), overrides."""
        machine = self.machine
        if isinstance(machine, str) and machine != "default" and Path(machine).is_file():
            machine = str(Path(machine).resolve())
        data: dict = {"name": type(self).__name__, "design": self.design, "machine": machine}
        if self.policy_overrides:
            data["policy_overrides"] = dict(self.policy_overrides)
        return data

    # -- the rules --------------------------------------------------------------------------
    @initialize(target=tasks)
    def first_process(self):
        """Every example starts with one process."""
        return self._ret("process_create")

    @precondition(lambda self: len(self.system.state.tasks) < self.max_tasks)
    @rule(target=tasks)
    def process_create(self):
        return self._ret("process_create")

    @precondition(lambda self: len(self.system.state.tasks) < self.max_tasks)
    @rule(target=tasks, tid=tasks)
    def fork(self, tid):
        return self._ret("fork", tid=tid)

    @precondition(lambda self: len(self.system.state.tasks) < self.max_tasks)
    @rule(target=tasks, tid=tasks)
    def clone_thread(self, tid):
        return self._ret("clone_thread", tid=tid)

    @rule(tid=tasks)
    def task_exit(self, tid):
        self._call("task_exit", tid=tid)

    @rule(target=mms, tid=tasks)
    def mm_of(self, tid):
        """Not a kernel call: the mm of a live task, for the bind rule."""
        t = self.system.state.tasks.get(tid)
        return multiple() if t is None else t.mm

    @rule(target=files, tid=tasks, data=st.data())
    def dev_open(self, tid, data):
        """Open a device node and, as an application of the device does, maybe map its
        portal at once (``mmap``)."""
        dev = data.draw(st.sampled_from(self._device_names()), label="dev")
        fd = self._call("dev_open", tid=tid, dev=dev)
        if fd is None:
            return multiple()
        if data.draw(st.booleans(), label="mmap"):
            self._call("mmap", tid=tid, fd=fd)
        return fd

    @rule(fd=files, data=st.data())
    def close(self, fd, data):
        self._call("close", tid=self._holder(fd, data), fd=fd)

    @rule(fd=files, data=st.data())
    def mmap(self, fd, data):
        """Map the file's portal (a work-queue portal, a uacce queue region)."""
        self._call("mmap", tid=self._holder(fd, data), fd=fd)

    @rule(target=handles, mm=mms, data=st.data())
    def iommu_sva_bind_device(self, mm, data):
        """A device's driver binds an mm (the caller of the SVA API is the driver bound to
        the device: devices with no driver are not used)."""
        s = self.system.state
        bound = [d.name for i, d in enumerate(self.config.devices) if s.devs[i].driver >= 0]
        if not bound:
            return multiple()
        dev = data.draw(st.sampled_from(bound), label="dev")
        return self._ret("iommu_sva_bind_device", dev=dev, mm=mm)

    @rule(handle=consumes(handles))
    def iommu_sva_unbind_device(self, handle):
        self._call("iommu_sva_unbind_device", handle=handle)

    @rule(tid=tasks, data=st.data())
    def enqcmd(self, tid, data):
        """ENQCMD to a device whose portal the task's mm maps (a task with none does not try:
        its store would only fault and kill the process).  A portal that is not a shared
        work queue's (a GPU BAR, a dedicated WQ) does not accept it: -EAGAIN."""
        s = self.system.state
        t = s.tasks.get(tid)
        mm = s.mms.get(t.mm) if t is not None else None
        mapped = sorted({self.config.devices[s.files[v.file].dev].name for v in mm.vmas
                         if v.file and v.file in s.files}) if mm is not None else []
        if mapped:
            self._call("enqcmd", tid=tid, dev=data.draw(st.sampled_from(mapped), label="dev"))

    @rule(tid=tasks)
    def exc_general_protection(self, tid):
        """The #GP an ENQCMD without IA32_PASID takes, in a task whose mm has a PASID: the
        fixup loads it into the MSR (without one the #GP is genuine and kills the process,
        which ``task_exit`` already explores)."""
        s = self.system.state
        t = s.tasks.get(tid)
        mm = s.mms.get(t.mm) if t is not None else None
        if mm is not None and mm.pasid != IOMMU_PASID_INVALID:
            self._call("exc_general_protection", tid=tid)

    @precondition(lambda self: self._claims < self.max_claims)
    @rule(target=owned, data=st.data())
    def iommu_group_claim_dma_owner(self, data):
        """Claim a group's DMA ownership for user space (VFIO's claim); at most
        ``max_claims`` tries per example, as most fail (a DMA-API driver is bound)."""
        self._claims += 1
        group = data.draw(st.sampled_from(range(len(self.config.groups))), label="group")
        owner = data.draw(st.sampled_from(self.owners), label="owner")
        ret = self._call("iommu_group_claim_dma_owner", group=group, owner=owner)
        return multiple() if ret is None else group

    @rule(group=consumes(owned))
    def iommu_group_release_dma_owner(self, group):
        self._call("iommu_group_release_dma_owner", group=group)

    @rule(data=st.data())
    def hardware(self, data):
        """One pending hardware event (a descriptor completing, a page request handled ...)."""
        events = enabled_events(self.system.state)
        if events:
            a = data.draw(st.sampled_from(events), label="hardware event")
            self._apply(a)

    # -- calls and checks -------------------------------------------------------------------
    def _holder(self, fd: int, data) -> int:
        """A live task whose process has ``fd`` open (any live task when none has; the
        first process's id when no task is left, which the library refuses)."""
        s = self.system.state
        holders = sorted(t for t, rec in s.tasks.items() if fd in s.procs[rec.pid].files)
        pool = holders or sorted(s.tasks.keys())
        return data.draw(st.sampled_from(pool), label="tid") if pool else 1

    def _device_names(self) -> list[str]:
        return [d.name for d in self.config.devices]

    def _ret(self, name: str, **kwargs):
        """Call ``name``; its return value, or ``multiple()`` (no value for the bundle) when
        the call failed or was refused."""
        ret = self._call(name, **kwargs)
        return multiple() if ret is None else ret

    def _call(self, name: str, **kwargs) -> int | None:
        """Call the facade's ``name`` and check the step; the return value, None when the
        kernel returned -errno (an accepted outcome) or the library refused the call."""
        before = self.system.state
        n = len(self.system.trace)
        try:
            ret = getattr(self.system, name)(**kwargs)
        except KernelError:
            ret = None
        except ModelUsageError:
            assert self.system.state is before, f"{name} refused but changed the state"
            return None
        action, raw = self.system.trace[n]
        self._record(action, raw)
        self._check(before, action, raw)
        return ret

    def _apply(self, action: Action) -> int:
        before = self.system.state
        ret = self.system.apply(action)
        self._record(action, ret)
        self._check(before, action, ret)
        return ret

    def _check(self, before, action: Action, ret: int) -> None:
        """What ``pasidsim run`` checks after a step; raises :class:`InvariantViolation`
        for the first property broken."""
        after = self.system.state
        found = step_violations(before, action, ret, after)
        if not found and self._quiescent():
            leak = quiescence_leaks(after)
            if leak:
                found.append(("quiescence", leak))
        if found:
            name, msg = found[0]
            path, note = self._write_if_final(name, msg)
            raise InvariantViolation(name, msg, path, note)

    def _quiescent(self) -> bool:
        """Nothing left to release anything: no live task, no SVA handle or DMA ownership
        still held by the machine's callers, the hardware idle."""
        s = self.system.state
        return not s.tasks and not self.bundle("handles") and not self.bundle("owned_groups") \
            and not enabled_events(s)

    def _record(self, action: Action, ret: int) -> None:
        op = OPS[action.op]
        args: dict = {}
        for p, v in zip(op.params, action.args):
            if p == "dev":
                v = self.config.devices[v].name
            elif p == "drv":
                v = self.config.drivers[v].name
            elif p == "group":
                v = self.config.groups[v].name
            args[p] = v
        if ret < 0:
            args["expect"] = f"-{errname(-ret)}"
        elif ret == IOMMU_PASID_INVALID:
            args["expect"] = "IOMMU_PASID_INVALID"
        elif op.kind != "hw":
            args["expect"] = ret
        self.steps.append({op.name: args})

    # -- writing the failing example ----------------------------------------------------------
    def _out_dir(self) -> Path:
        return Path(self.out_dir or os.environ.get(OUT_ENV) or DEFAULT_OUT)

    def _write_if_final(self, name: str, message: str) -> tuple[str | None, str]:
        """Write the steps as a scenario when this is the run Hypothesis reports (its final
        replay of the shrunk example; always outside a Hypothesis run); then replay the file
        as ``pasidsim run`` does and say so if it does not show the same violation."""
        try:
            from hypothesis.control import current_build_context
            final = bool(current_build_context().is_final)
        except Exception:  # not inside a Hypothesis test: a direct run
            final = True
        if not final:
            return None, ""
        path = self._out_dir() / f"{type(self).__name__}--{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        from .report.output import write_text_atomic
        write_text_atomic(path, scenario_text(self, name, message))
        from .scenario.runner import run_file
        replayed = {v.name for v in run_file(str(path)).violations}
        note = "" if name in replayed else (
            f" (the replay did not show {name}: {', '.join(sorted(replayed)) or 'nothing'})")
        return str(path), note


_BOOTED: dict[str, tuple] = {}


def _boot(head: str) -> tuple:
    """``(config, policy, state)`` of the scenario ``head`` (machine, design, overrides, no
    actors) after its boot — the driver probes ``pasidsim run`` makes before any step — so
    that a replay starts from the same state.  Cached by text (states are immutable).
    Raises ScenarioError for a machine or design that cannot be used."""
    got = _BOOTED.get(head)
    if got is None:
        c = compile_scenario(load_text(head, "<KernelMachine>"))
        rs = c.initial()
        while c.runnable(rs, 0):
            rs, _ = c.apply(rs, StepRef(0))
        got = _BOOTED[head] = (c.config, c.policy, rs.sys)
    return got


def scenario_text(machine: KernelMachine, name: str, message: str) -> str:
    """The steps ``machine`` took as a scenario file that ``pasidsim run`` replays: one
    kernel actor (``hyp``) making each call in order, with literal arguments (the same calls
    from the same booted state give the same ids) and each return value as its ``expect``;
    ``expect_final: {violations: 0}`` so the replay exits 1 on the violation.  The file is
    the one ``pasidsim check`` writes for a counterexample
    (:func:`pasidsim.check.cli_check.counterexample_yaml`: design and interleaving set, a
    header naming the violation), headed as found by Hypothesis."""
    from .check.cli_check import counterexample_yaml
    from .check.runner import Cell
    data = dict(machine._head)
    data["description"] = (f"Steps of the Hypothesis state machine {type(machine).__name__} "
                           f"(pasidsim.testing) that break {name}.")
    data["actors"] = [{"name": ACTOR, "kernel": True, "program": list(machine.steps)}]
    data["expect_final"] = {"violations": 0}
    source = yaml.safe_dump(data, sort_keys=False, width=100)
    compiled = compile_scenario(load_text(source, f"<{type(machine).__name__}>"))
    refs = [StepRef(0)] * len(compiled.actors[0].program) + \
        [StepRef(1)] * len(compiled.actors[1].program)
    cell = Cell(type(machine).__name__, machine.design, "Sometimes", 0, 0, 0.0,
                invariant=name, message=message, refs=refs)
    text = counterexample_yaml(cell, compiled, source)
    return text.replace("found by `pasidsim check`",
                        f"found by Hypothesis ({type(machine).__name__}, pasidsim.testing)", 1)


__all__ = ["KernelMachine", "InvariantViolation", "scenario_text", "OUT_ENV", "DEFAULT_OUT"]
