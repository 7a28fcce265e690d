"""Partial-order reduction for the PASID model: the static independence relation (issue 6).

The engine (:meth:`pasidsim.check.model.ModelView.ample`) reduces at the granularity of its
alphabet, and the alphabet of a compiled scenario is one letter per actor, ``StepRef(i)``:
the letter stands for *every* step of actor ``i``'s program.  An actor can therefore only be
an ample set if **all** its steps are independent of **all** steps of every other actor and
invisible.  Most PASID-subsystem steps touch shared state that the invariants read (the PASID
allocator, ``next_id``, groups, mms, caches, the warning log), so this module is deliberately
narrow: it proves independence only for **quiet** actors, and says so honestly.

**Quiet step.**  A compiled step (:class:`~pasidsim.scenario.compile.CStep`) whose operation is
a pure query of :data:`PURE_QUERIES` (the implementation returns the state it was given, with
no WARN and no :class:`~pasidsim.errors.ModelUsageError`), with no ``as:`` binding, no spawned
child, no ``expect``, no ``check`` and no ``fail``, and whose every needed ``$name`` is bound
only by setup steps.  Its whole effect on the run state is ``pcs[i] += 1``, whatever the state.

**Quiet actor** ``p``: every step quiet; a kernel actor, or a process started by setup (and
spawned by no other actor); if a process, no other actor has a ``task_exit`` whose ``tid`` is
not its own (only ``task_exit`` removes a task, so nobody can disable ``p``).

**Relation.**  ``independent(x, y)`` for letters of different actors iff neither is the ``hw``
pseudo-actor and one of them is quiet or is ``setup`` (actor 0).  Why this is sound:

* quiet ``p`` vs any actor ``q`` (not hw): ``p`` changes only ``pcs[p]``, which no other actor
  reads, so it enables/disables nothing; ``q`` cannot enable ``p`` (``p``'s task and bindings
  come from setup) nor disable it (no ``task_exit`` of ``p``'s task, bindings are never
  unbound, only ``p`` moves ``pcs[p]``); the run states commute exactly:
  ``apply(apply(rs, p), q) == apply(apply(rs, q), p)`` because ``q`` sees the same ``sys``,
  ``binds`` and ``tids`` after ``p``.
* ``CheckState.last`` (the transition checks of the step *into* a state) is an edge label kept
  in the state, so ``s·p·q`` and ``s·q·p`` differ in it when ``q``'s step violates a transition
  check: they commute *up to* ``last``.  That is enough: ``last`` does not influence
  ``actions``/``step`` (states with the same run state are bisimilar), a quiet step always
  yields ``last == ()`` (every transition invariant is false when ``sys`` is unchanged; no
  expectation; no usage error), and ``q``'s label is the same before and after ``p`` (same
  ``sys``/``binds``, same return value).  So every path of the full graph has a reordered
  path in the reduced graph through run states with the same invariant values and the same
  transition labels (the persistent-set argument applied to the run-state graph with edge
  labels).  Without hardware every step increments a program counter: the state graph is
  acyclic, so the cycle proviso is never needed for soundness.
* ``setup``: it runs alone (``enabled`` returns only ``StepRef(0)`` while it is runnable), and
  we require that its steps need only bindings made by setup, so once another actor has moved
  setup can never run again: it never occurs after a state where an ample set is chosen, which
  is all the persistent-set condition C1 asks of it.  (Else POR is off: :attr:`reason`.)

**Visibility.**  A quiet actor's letter is invisible: its steps leave ``sys``, ``binds`` and
``tids`` unchanged, so no state invariant and no ``_PREDICATES`` goal changes; its own edge
never carries a transition violation, and the ``transition`` check of the *other* steps is an
edge label preserved by the reordering (above).  (Strictly, a quiet step taken right after a
violating step clears ``last``; that is a label of the previous edge, not a state change.)
``programs_done``, ``is_quiescent`` and ``at_quiescence`` can only hold on *terminal* states
without hardware (quiescent = no actor runnable = no enabled action), and persistent-set
reduction preserves every terminal state.  Goals passed by the caller
(``ScenarioModel(sometimes=...)``) are arbitrary predicates of the run state: then every
letter is visible (no reduction).

**Off** (``reason`` set; the hooks must not be used): ``hardware: true`` scenarios (hardware
events are not a static finite alphabet), fault injection (``inject_faults``), and a setup
that waits for another actor's binding.

**Symmetry.**  The quiet set is defined by program text, setup and other actors' programs, so
it is invariant under the actor permutations of :mod:`pasidsim.check.symmetry` (which map each
program onto an equal one); the relation is therefore symmetric and POR composes with
``symmetry=True`` (both are tested together by ``tests/checker/test_por.py``).
"""

from __future__ import annotations

from typing import Any, Hashable

from ..scenario.compile import SELF_TID, StepRef
from ..step import OPS

#: operations whose implementation is ``return s, value`` for every argument (no WARN, no
#: ModelUsageError): checked by reading ioasid.py, group.py and drivers/vfio.py, and
#: exercised by test_por.py
PURE_QUERIES = frozenset({"ioasid_find", "vfio_group_get_status", "iommu_group_dma_owner_claimed"})


class PartialOrder:
    """The POR hooks of one compiled scenario (module docstring).

    Attributes:
        reason: why POR is off for this scenario (None: available).
        quiet: the indices of the quiet actors.
        visible_all: every letter is visible (caller-supplied goals).
    """

    def __init__(self, compiled: Any, *, visible_all: bool = False) -> None:
        self.c = c = compiled
        self.hw = c.hw_actor
        self.visible_all = visible_all
        self.reason: str | None = None
        self.quiet: frozenset[int] = frozenset()
        n = len(c.actors)
        binders: dict[int, set[int]] = {}
        spawners: dict[int, set[int]] = {}
        for a in range(n):
            for cs in c.actors[a].program:
                if cs.bind >= 0:
                    binders.setdefault(cs.bind, set()).add(a)
                if cs.spawn >= 0:
                    spawners.setdefault(cs.spawn, set()).add(a)
        if c.hardware:
            self.reason = "hardware events are not a static finite alphabet"
            return
        if getattr(c, "inject_faults", False):
            self.reason = "fault injection: a failed call is a letter of its own"
            return
        if any(binders.get(k, set()) - {0} for cs in c.actors[0].program for k in cs.needs):
            self.reason = "setup waits for a binding made by another actor"
            return
        killers = {a for a in range(1, n) for cs in c.actors[a].program
                   if OPS[cs.op].name == "task_exit"
                   and any(k != SELF_TID for (k, _v), p in zip(cs.args, OPS[cs.op].params)
                           if p == "tid")}

        def quiet_step(cs) -> bool:
            return (OPS[cs.op].name in PURE_QUERIES and cs.bind < 0 and cs.spawn < 0
                    and cs.expect is None and cs.check is None and cs.fail is None
                    and all(binders.get(k, set()) <= {0} for k in cs.needs))

        quiet = set()
        for p in range(1, n):
            info = c.actors[p]
            if not all(quiet_step(cs) for cs in info.program):
                continue
            if not info.kernel and (spawners.get(p, set()) != {0} or killers - {p}):
                continue
            quiet.add(p)
        self.quiet = frozenset(quiet)

    # -- the model hooks ---------------------------------------------------------------------
    def actor(self, ref: StepRef) -> Hashable:
        return ref.actor

    def alphabet(self) -> list[StepRef]:
        if self.reason is not None:
            raise ValueError(f"partial-order reduction is off for this scenario: {self.reason}")
        return [StepRef(i) for i in range(len(self.c.actors))]

    def independent(self, x: StepRef, y: StepRef) -> bool:
        if self.reason is not None:
            return False
        a, b = x.actor, y.actor
        if a == b or self.hw in (a, b):
            return False
        return 0 in (a, b) or a in self.quiet or b in self.quiet

    def visible(self, x: StepRef) -> bool:
        return self.visible_all or self.reason is not None or x.actor not in self.quiet


__all__ = ["PartialOrder", "PURE_QUERIES"]
