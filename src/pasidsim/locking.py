"""Locks, execution contexts and kernel functions with preemption points.

**Locks are data.**  A held lock is an entry ``key -> holder context`` of
:attr:`SystemState.locks`; a context blocked on one records it in its :class:`KThread`
(``wait``), so the waiters of a lock are the kernel threads whose ``wait`` is its key.  A key
packs the lock's class (:class:`LockClass`, or any int class for a toy kernel), its kind
(:class:`LockKind`: a sleeping mutex / rwsem, or a spinning, IRQ-disabling spinlock) and the
instance (a group index, an mm id, a device index; 0 for a global lock): :func:`lock_key`.

**Execution contexts.**  Every kernel path runs on behalf of a context id (a task id for a
process's system call or exception, a kernel thread id otherwise) of a kind (:class:`CtxKind`):
task context may sleep; the #GP handler runs before interrupts are re-enabled and IRQ handlers
run with interrupts off, so neither may sleep (``might_sleep()``).

**Kernel functions** with preemption points are :class:`KFunc` values: a name, parameters and a
code tuple of instructions (:func:`Lock`, :func:`Unlock`, :func:`Do`, :func:`Call`,
:func:`Sleep`), written once.  Called like a plain function (``f(s, *args) -> (s, ret)``), a
KFunc runs to completion inside the caller's atomic section (:func:`run_inline`): its locks are
taken and dropped there, and the checks below still apply.  :mod:`pasidsim.step` runs the same
code one preemption point at a time at ``lock`` granularity, with the context's program counter,
locals and held locks in the state.

Checks made wherever a lock is taken (both granularities):

- taking a lock the context already holds: the thread sleeps forever (``Hung``: a self-deadlock,
  reported as a cycle of waits of length one);
- taking a lock another context holds (only possible at ``lock`` granularity): inside an atomic
  section the section waits at its start (``Blocked``); as an instruction the context waits;
- a sleeping lock, or a sleeping allocation (:func:`might_sleep`), while a spinlock is held or in
  #GP / IRQ context: the kernel's "BUG: sleeping function called from invalid context" splat
  (``Warn.SLEEP_IN_ATOMIC``, invariant ``L2``).

Kernel sources modeled: kernel/locking/mutex.c ``mutex_lock()``, include/linux/spinlock.h,
kernel/sched/core.c ``__might_sleep()`` (CONFIG_DEBUG_ATOMIC_SLEEP), lockdep's recursive-locking
report.
"""

from __future__ import annotations

import inspect
import zlib
from enum import IntEnum, unique
from typing import Any, Callable, NamedTuple

from .errors import ModelInternalError, Warn
from .state import SystemState, warn


@unique
class LockKind(IntEnum):
    """Sleeping (mutex, rw_semaphore) or spinning (spinlock, interrupts disabled)."""

    MUTEX = 0
    SPIN = 1


@unique
class LockClass(IntEnum):
    """The locks that matter for the PASID lifecycle (``lock_key(cls, instance)``).  Only the
    locks some modelled path holds across a preemption point, or takes where it must not
    sleep, are here; ``group->mutex``, ``mmap_lock`` and the ``pasid_array`` xa_lock are not
    (each group function is one ``group->mutex`` critical section, modelled as one atomic
    section)."""

    IOMMU_SVA_LOCK = 1  # drivers/iommu/iommu-sva.c DEFINE_MUTEX(iommu_sva_lock); global
    UACCE_MUTEX = 4  # uacce_device::mutex; instance: device index
    PASID_MUTEX = 6  # intel svm.c pasid_mutex (the Sep 2021 per-task refcount proposal)
    AMDGPU_PASID_LOCK = 7  # amdgpu_ids.c amdgpu_pasid_idr_lock (spinlock; 14b81abe7bdc)


#: The kind of each named lock class.
CLASS_KIND: dict[int, LockKind] = {
    LockClass.IOMMU_SVA_LOCK: LockKind.MUTEX, LockClass.UACCE_MUTEX: LockKind.MUTEX,
    LockClass.PASID_MUTEX: LockKind.MUTEX,
    LockClass.AMDGPU_PASID_LOCK: LockKind.SPIN,
}

_INST_BITS = 32


def lock_key(cls: int, inst: int = 0, kind: LockKind | None = None) -> int:
    """The key of lock ``cls`` instance ``inst`` (>= 0, < 2**32).  ``kind`` defaults to the
    class's (:data:`CLASS_KIND`); a toy kernel's own class (an int >= 64) must give it."""
    k = CLASS_KIND.get(cls) if kind is None else kind
    if k is None:
        raise ModelInternalError(f"lock class {cls} has no kind")
    return ((cls << 1 | int(k)) << _INST_BITS) | inst


def key_kind(key: int) -> LockKind:
    return LockKind((key >> _INST_BITS) & 1)


def key_name(key: int) -> str:
    """``'group->mutex[0]'``-style name of a lock key for traces."""
    cls, inst = key >> (_INST_BITS + 1), key & ((1 << _INST_BITS) - 1)
    names = {LockClass.IOMMU_SVA_LOCK: "iommu_sva_lock", LockClass.UACCE_MUTEX: "uacce->mutex",
             LockClass.PASID_MUTEX: "pasid_mutex",
             LockClass.AMDGPU_PASID_LOCK: "amdgpu_pasid_idr_lock"}
    name = names.get(cls, f"lock{cls}")  # type: ignore[call-overload]
    if cls in (LockClass.IOMMU_SVA_LOCK, LockClass.PASID_MUTEX, LockClass.AMDGPU_PASID_LOCK):
        return name
    return f"{name}[{inst}]"


@unique
class CtxKind(IntEnum):
    """What a kernel path runs as."""

    TASK = 0  # a system call or fault of a task: may sleep
    EXCEPTION = 1  # the #GP handler before interrupts are re-enabled: atomic
    IRQ = 2  # an interrupt handler: atomic
    WORKER = 3  # a kernel thread / workqueue item: may sleep


ATOMIC_KINDS = frozenset({CtxKind.EXCEPTION, CtxKind.IRQ})

#: Kernel-thread context ids (scenario kernel actors) start here; task ids are below.
KTHREAD_CTX = 1 << 40


class Blocked(Exception):
    """An atomic section needs lock ``key``, which another context holds: it waits at its
    start (no effect of it is kept)."""

    def __init__(self, key: int) -> None:
        super().__init__(key)
        self.key = key


class Hung(Exception):
    """The context took lock ``key`` it already holds: it sleeps forever in ``state`` (the
    state at that point, with the locks it holds)."""

    def __init__(self, state: SystemState, key: int, held: tuple) -> None:
        super().__init__(key)
        self.state, self.key, self.held = state, key, held


# -- the context of the code running now (set around each section by pasidsim.step) ------------

class _Cx:
    __slots__ = ("ctx", "kind", "held")

    def __init__(self, ctx: int, kind: int, held: list) -> None:
        self.ctx, self.kind, self.held = ctx, kind, held


_stack: list[_Cx] = [_Cx(0, CtxKind.TASK, [])]


def begin(ctx: int, kind: int, held: tuple = ()) -> None:
    """Run the following code as context ``ctx`` of ``kind`` holding ``held`` (lock keys
    taken across earlier preemption points)."""
    _stack.append(_Cx(ctx, kind, list(held)))


def end() -> tuple:
    """End the section begun last; returns the locks held at its end."""
    cx = _stack.pop()
    return tuple(cx.held)


def current() -> tuple[int, int, tuple]:
    """``(ctx, kind, held)`` of the code running now."""
    cx = _stack[-1]
    return cx.ctx, cx.kind, tuple(cx.held)


def in_atomic() -> bool:
    """#GP / IRQ context, or a spinlock held."""
    cx = _stack[-1]
    return cx.kind in ATOMIC_KINDS or any(key_kind(k) == LockKind.SPIN for k in cx.held)


def might_sleep(s: SystemState, what: int) -> SystemState:
    """A point that may sleep (a sleeping lock, a ``GFP_KERNEL`` allocation, a wait):
    in atomic context the kernel's splat ``Warn.SLEEP_IN_ATOMIC(what, context kind)``.
    ``what`` is a lock key or an allocation's :class:`~pasidsim.fault.FaultPoint` value."""
    if s.static.granularity and in_atomic():  # lock granularity only: CALL is the old model
        cx = _stack[-1]
        return warn(s, Warn.SLEEP_IN_ATOMIC, what, int(cx.kind))
    return s


def note_spin_usage(s: SystemState, key: int, kind: int, irqsave: bool = False
                    ) -> SystemState:
    """lockdep's usage of spinlock ``key`` taken by a context of ``kind``: in IRQ context, or
    with interrupts enabled (a plain ``spin_lock`` in task context).  The first time one lock
    has both, the kernel's "WARNING: inconsistent lock state" (``Warn.INCONSISTENT_LOCK_STATE``,
    invariant L3): the interrupt may arrive on the CPU that holds the lock and spin forever.
    Lock granularity only (call granularity is the earlier model)."""
    if not s.static.granularity or key_kind(key) != LockKind.SPIN:
        return s
    bits = 1 if kind == CtxKind.IRQ else (0 if irqsave or kind in ATOMIC_KINDS else 2)
    old = s.lock_usage.get(key, 0)
    new = old | bits
    if new == old:
        return s
    s = s._replace(lock_usage=s.lock_usage.set(key, new))
    return warn(s, Warn.INCONSISTENT_LOCK_STATE, key, int(kind)) if new == 3 else s


def acquire(s: SystemState, key: int, irqsave: bool = False) -> SystemState:
    """Take lock ``key`` inside an atomic section (``irqsave``: ``spin_lock_irqsave``).
    Raises :class:`Hung` when this context holds it, :class:`Blocked` when another one does;
    a sleeping lock in atomic context splats (:func:`might_sleep`); a spinlock's IRQ usage is
    recorded (:func:`note_spin_usage`)."""
    cx = _stack[-1]
    if key in cx.held:
        raise Hung(s, key, tuple(cx.held))
    holder = s.locks.get(key)
    if holder is not None and holder != cx.ctx:
        raise Blocked(key)
    if key_kind(key) == LockKind.MUTEX:
        s = might_sleep(s, key)
    else:
        s = note_spin_usage(s, key, cx.kind, irqsave)
    cx.held.append(key)
    return s


def release(s: SystemState, key: int) -> SystemState:
    """Drop lock ``key`` taken by this context (in this section or an earlier one, then it
    leaves :attr:`SystemState.locks`).  ModelInternalError when it is not held."""
    cx = _stack[-1]
    if key not in cx.held:
        raise ModelInternalError(f"unlock of {key_name(key)}, which is not held")
    cx.held.remove(key)
    if key in s.locks:
        s = s._replace(locks=s.locks.delete(key))
    return s


# -- kernel functions as code tables ---------------------------------------------------------

LOCK, UNLOCK, DO, CALL, SLEEP = range(5)


class Instr(NamedTuple):
    """One instruction of a :class:`KFunc` (build with :func:`Lock` & co.)."""

    op: int
    a: Any = None
    b: Any = None
    c: Any = None


def Lock(keyfn: Callable[[SystemState, tuple], int]) -> Instr:
    """``mutex_lock()`` / ``spin_lock()`` of ``keyfn(s, loc)`` (0: no lock here).  A
    preemption point: at ``lock`` granularity other contexts run first."""
    return Instr(LOCK, keyfn)


def Unlock(keyfn: Callable[[SystemState, tuple], int]) -> Instr:
    """The matching unlock."""
    return Instr(UNLOCK, keyfn)


def Do(fn: Callable[[SystemState, tuple], tuple[SystemState, tuple]]) -> Instr:
    """Straight-line code ``fn(s, loc) -> (s, loc)``: atomic with respect to other contexts
    (it may take and drop locks inside, :func:`acquire`/:func:`release`)."""
    return Instr(DO, fn)


def Call(fn: Any, argfn: Callable[[SystemState, tuple], tuple | None],
         retfn: Callable[[tuple, int], tuple] | None = None) -> Instr:
    """Call ``fn`` (a KFunc, a plain ``f(s, *args) -> (s, ret)``, or a resolver
    ``r(s, loc) -> function`` given as ``("resolve", r)``) with ``argfn(s, loc)`` (None:
    skip); ``retfn(loc, ret)`` stores its return.  A KFunc callee runs with its own
    preemption points."""
    return Instr(CALL, fn, argfn, retfn)


def Sleep(what: int | Callable[[SystemState, tuple], int]) -> Instr:
    """A sleeping point (``GFP_KERNEL`` allocation, a wait): might_sleep, and a preemption
    point.  ``what`` is the point's code (:data:`WAIT_DRAIN`, a FaultPoint value), or
    ``what(s, loc)`` giving it, 0 for no sleeping point here."""
    return Instr(SLEEP, what)


#: Sleeping-point code of a wait for a device to drain a PASID (``idxd_device_drain_pasid``).
WAIT_DRAIN = 100
#: Sleeping-point code of a ``GFP_KERNEL`` allocation (it may sleep to reclaim memory).
GFP_KERNEL_ALLOC = 101
#: Names of the sleeping-point codes (for reports).
SLEEP_POINTS = {WAIT_DRAIN: "a wait for a drain", GFP_KERNEL_ALLOC: "a GFP_KERNEL allocation"}


def sleep_what(ins: Instr, s: SystemState, loc: tuple) -> int:
    """The code of a SLEEP instruction in this state (0: not a sleeping point here)."""
    w = ins.a
    return w(s, loc) if callable(w) else w


#: Every KFunc by its :attr:`KFunc.index` (the ``fn`` of a frame).
KFUNCS: dict[int, "KFunc"] = {}
_KFUNC_NAMES: dict[str, int] = {}  # name -> KFuncs of that name made so far


class KFunc:
    """A kernel function written as a code table (module docstring).

    ``KFunc(name, params, code, doc, defaults)``; ``loc`` of its instructions is
    ``(ret, *args)`` plus whatever its sections append.  Calling it runs it to completion
    (:func:`run_inline`) and returns ``(state, loc[0])``."""

    def __init__(self, name: str, params: tuple[str, ...], code: tuple[Instr, ...],
                 doc: str = "", defaults: tuple = ()) -> None:
        self.__name__ = self.name = name
        self.__qualname__ = name
        self.__doc__ = doc
        self.params = params
        self.code = code
        self.defaults = defaults
        first = len(params) - len(defaults)
        ps = [inspect.Parameter("s", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        for i, p in enumerate(params):
            d = defaults[i - first] if i >= first else inspect.Parameter.empty
            ps.append(inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d,
                                        annotation=int))
        self.__signature__ = inspect.Signature(ps)
        # the index lives in states (KFrame.fn), so it must be the same in every process
        # whatever order modules were imported in (a Ray worker imports them in another
        # order than the coordinator): a CRC of the name, and of the ordinal among KFuncs of
        # that name (made in the same order everywhere: by one module, or one test)
        n = _KFUNC_NAMES.get(name, 0)
        _KFUNC_NAMES[name] = n + 1
        self.index = zlib.crc32(f"{name}#{n}".encode()) & 0x7FFFFFFF
        other = KFUNCS.get(self.index)
        if other is not None:
            raise ModelInternalError(f"KFunc {name!r}: its index collides with {other.name!r}'s")
        KFUNCS[self.index] = self

    def _args(self, args: tuple, kwargs: dict) -> tuple:
        """Positional and keyword arguments as one tuple in parameter order (defaults
        filled); TypeError for an unknown or missing one, as a Python call."""
        out = list(args) + [None] * (len(self.params) - len(args))
        for k, v in kwargs.items():
            try:
                i = self.params.index(k)
            except ValueError:
                raise TypeError(f"{self.name}() got an unexpected keyword argument {k!r}") \
                    from None
            out[i] = v
        first = len(self.params) - len(self.defaults)
        for i in range(len(args), len(out)):
            if out[i] is None:
                if i < first:
                    raise TypeError(f"{self.name}() missing argument {self.params[i]!r}")
                out[i] = self.defaults[i - first]
        return tuple(out)

    def start_locals(self, args: tuple) -> tuple:
        n = len(self.params)
        if len(args) < n:
            args = tuple(args) + tuple(self.defaults[len(args) - n:])
        return (0,) + tuple(args)

    def __call__(self, s: SystemState, *args: int, **kwargs: int) -> tuple[SystemState, int]:
        if kwargs:
            args = self._args(args, kwargs)
        s, loc = run_inline(self, s, self.start_locals(args))
        return s, loc[0]

    def __repr__(self) -> str:
        return f"<KFunc {self.name}>"


def resolve(ins: Instr, s: SystemState, loc: tuple):
    """The function a CALL instruction calls in this state."""
    fn = ins.a
    if type(fn) is tuple:
        return fn[1](s, loc)
    return fn


def run_inline(f: KFunc, s: SystemState, loc: tuple) -> tuple[SystemState, tuple]:
    """Run ``f`` to completion inside the current atomic section: its locks are taken and
    dropped here (:func:`acquire`/:func:`release`), its sleeping points checked."""
    for op, a, b, c in f.code:
        if op == DO:
            s, loc = a(s, loc)
        elif op == LOCK:
            key = a(s, loc)
            if key:
                s = acquire(s, key)
        elif op == UNLOCK:
            key = a(s, loc)
            if key:
                s = release(s, key)
        elif op == CALL:
            args = b(s, loc)
            if args is None:
                continue
            s, ret = (a[1](s, loc) if type(a) is tuple else a)(s, *args)
            if c is not None:
                loc = c(loc, ret)
        else:
            what = a(s, loc) if callable(a) else a
            if what:
                s = might_sleep(s, what)
    return s, loc


def set_ret(loc: tuple, ret: int) -> tuple:
    """``loc`` with its return value (``loc[0]``) set."""
    return (ret,) + loc[1:]


__all__ = ["LockKind", "LockClass", "CtxKind", "lock_key", "key_name", "key_kind", "acquire",
           "release", "might_sleep", "in_atomic", "note_spin_usage", "begin", "end", "current", "Blocked", "Hung",
           "KFunc", "KFUNCS", "Lock", "Unlock", "Do", "Call", "Sleep", "run_inline", "set_ret",
           "KTHREAD_CTX", "WAIT_DRAIN", "GFP_KERNEL_ALLOC", "SLEEP_POINTS", "sleep_what"]
