"""The one transition function: ``step(state, action, ctx) -> (state, ret)``.

``ret`` is the kernel's return value: ``0``, an id, a PASID, ``IOMMU_PASID_INVALID``, or
``-errno`` -- or :data:`IN_PROGRESS` when the call has not returned yet.  A failed call returns
the state it was given, except where the kernel itself keeps a side effect (``Op.atomic``
false: e.g. a failed bind keeps the mm's PASID).

The operations, :class:`Action` and the opcode table live in :mod:`pasidsim.ops` (re-exported
here).  ``ctx`` is the execution context making the call (a task id, or a kernel thread id
``>= locking.KTHREAD_CTX``; 0 for a caller that does not say): the holder of the locks the
call takes.

**Granularity** (``SystemState.static.granularity``, :class:`~pasidsim.state.Granularity`):

- ``CALL``: ``step`` runs the operation with the action's injected failure
  (:mod:`pasidsim.fault`), then the deferred work it queued (:mod:`pasidsim.work`: ``__fput``
  task work, fatal signals, page requests): every call is one step.  A call that takes a lock
  its own context holds hangs (a self-deadlock): the state keeps the context as a
  :class:`~pasidsim.state.KThread` sleeping on that lock, and ``ret`` is :data:`IN_PROGRESS`.
- ``LOCK``: a call runs up to its next preemption point (:mod:`pasidsim.locking`: a lock taken,
  a sleeping point, the start of a task-work item) and its context's program counter, locals
  and held locks stay in ``state.kthreads``; :func:`kernel_continue` runs it on to the next
  one.  Task work (``__fput``) queued by a context runs in that context before its call returns,
  one preemption point at a time like the call; interrupt work (page requests) and fatal
  signals run at once, as at ``CALL`` granularity.  Each kernel function is written once: a
  :class:`~pasidsim.locking.KFunc` runs to completion at ``CALL`` granularity and when
  another function calls it, and step by step here.
"""

from __future__ import annotations

from . import fault, locking
from .errors import ModelInternalError, ModelUsageError
from .locking import (CALL, DO, KFUNCS, LOCK, SLEEP, UNLOCK, Blocked, CtxKind, Do, Hung, KFunc,
                      LockKind, key_kind, resolve, sleep_what)
from .ops import OP_BY_NAME, OPS, Action, Op, check_action, enabled_events
from .state import Granularity, KFrame, KThread, SystemState, Work
from .work import IRQ_WORK, WORK_FN, run_work

#: ``ret`` of a call that has not returned (lock granularity, or hung on a lock).
IN_PROGRESS = -(1 << 40)


def step(s: SystemState, a: Action, ctx: int = 0) -> tuple[SystemState, int]:
    """Apply action ``a`` by context ``ctx`` to state ``s``.  Returns ``(next_state, ret)``.
    At ``CALL`` granularity the deferred work the action queued runs before it returns, and
    the ``a.fail``-th fault point passed (0: none) fails with its errno.  At ``LOCK``
    granularity the call runs to its next preemption point (module docstring); a context with
    a call in progress must be continued with :func:`kernel_continue` instead.

    Raises :class:`~pasidsim.errors.ModelUsageError` (naming the argument) for a malformed
    action -- an unknown opcode, a wrong argument count or type, a device, driver or group
    index not of this machine (:func:`~pasidsim.ops.check_action`) -- and
    :class:`~pasidsim.errors.ModelInternalError` for a well-formed call the model fails on
    (our bug)."""
    check_action(s.static.config, a)  # about 1 µs: no negative index alias, ever
    if ctx in s.kthreads:
        raise ModelUsageError(f"ctx={ctx}: context {ctx} already has a call in progress "
                              "(continue it with kernel_continue)")
    try:
        th = KThread(int(_KIND[a.op]), a.op, a.args, (), ret=IN_PROGRESS, fail=a.fail)
        if s.static.granularity == Granularity.LOCK:
            return _run(s, ctx, th)
        return _whole_call(s, ctx, th, OPS[a.op].fn, a.args)
    except (IndexError, KeyError, TypeError, AttributeError, OverflowError) as e:
        raise ModelInternalError(f"{OPS[a.op].name}{a.args}: {type(e).__name__}: {e}") from e


def _whole_call(s: SystemState, ctx: int, th: KThread, fn, args: tuple
                ) -> tuple[SystemState, int]:
    """``CALL`` granularity: run ``fn(s, *args)`` to completion as ``ctx`` (with ``th.fail``
    injected), then the deferred work it queued.  A call that takes a lock its own context
    holds hangs, one that needs a lock a hung context holds waits: ``th`` is parked then
    (``ret`` :data:`IN_PROGRESS`), and a waiting call is run again when the lock is free."""
    fault.begin(th.fail)
    locking.begin(ctx, th.kind)
    try:
        s2, ret = fn(s, *args)
        if s2.work:
            s2 = run_work(s2)
    except Blocked as e:  # a lock held by a hung context
        return _park(s, ctx, th._replace(wait=e.key)), IN_PROGRESS
    except Hung as e:
        return _park(e.state, ctx, th._replace(wait=e.key, held=e.held)), IN_PROGRESS
    finally:
        locking.end()
        fault.end()
    return s2, ret


def kernel_continue(s: SystemState, ctx: int) -> tuple[SystemState, int]:
    """Run the call in progress of context ``ctx`` to its next preemption point (or to its
    return).  Returns ``(state, ret)``, ``ret`` :data:`IN_PROGRESS` while it has not
    returned.  ModelUsageError when ``ctx`` has no call in progress or sleeps on a lock
    that is still held."""
    th = s.kthreads.get(ctx)
    if th is None:
        raise ModelUsageError(f"ctx={ctx}: context {ctx} has no call in progress")
    if th.wait:
        if th.wait in s.locks:
            raise ModelUsageError(f"ctx={ctx}: context {ctx} sleeps on a held lock")
        th = th._replace(wait=0)
    if s.static.granularity != Granularity.LOCK:  # a call blocked by a hung one: again
        s = s._replace(kthreads=s.kthreads.delete(ctx))
        fn = OPS[th.op].fn if th.op >= 0 else KFUNCS[th.frames[0].fn]
        return _whole_call(s, ctx, th, fn, th.args)
    return _run(s, ctx, th)


def start_call(s: SystemState, f: KFunc, args: tuple, ctx: int,
               kind: int = CtxKind.TASK) -> tuple[SystemState, int]:
    """Start kernel function ``f(*args)`` (any :class:`~pasidsim.locking.KFunc`, not only an
    operation's: a driver's own path, a toy kernel) as context ``ctx`` of ``kind`` and run it
    to its next preemption point (``LOCK`` granularity; at ``CALL`` to its return).  Returns
    ``(state, ret)``, ``ret`` :data:`IN_PROGRESS` until it returns (continue it with
    :func:`kernel_continue`).  ModelUsageError when ``ctx`` has a call in progress."""
    if ctx in s.kthreads:
        raise ModelUsageError(f"ctx={ctx}: context {ctx} already has a call in progress")
    th = KThread(int(kind), -1, tuple(args), (KFrame(f.index, 0, f.start_locals(tuple(args))),),
                 ret=IN_PROGRESS)
    if s.static.granularity != Granularity.LOCK:
        return _whole_call(s, ctx, th, f, tuple(args))
    return _run(s, ctx, th)


def runnable(s: SystemState, ctx: int) -> bool:
    """Can context ``ctx`` take a step: it has no call in progress, or the lock its call
    sleeps on is free."""
    th = s.kthreads.get(ctx)
    return th is None or not th.wait or th.wait not in s.locks


def _park(s: SystemState, ctx: int, th: KThread) -> SystemState:
    """Store ``th`` (with its held locks in ``s.locks``)."""
    locks = s.locks
    for k in th.held:
        locks = locks.set(k, ctx)
    return s._replace(locks=locks, kthreads=s.kthreads.set(ctx, th))


def _section(s: SystemState, ctx: int, th: KThread, fn, args: tuple):
    """Run one atomic section ``fn(s, *args)`` as ``ctx``; returns ``(state, result, th)``
    with ``th`` updated (its injected-failure count, the task work the section queued), or
    raises Blocked / Hung."""
    fault.begin(th.fail)
    locking.begin(ctx, th.kind, th.held)
    try:
        s, res = fn(s, *args)
        held = locking.current()[2]
    finally:
        locking.end()
        passed = fault.points_passed()
        fault.end()
    if held != th.held:
        raise ModelInternalError(f"{getattr(fn, '__name__', fn)}: a section left locks "
                                 "taken or dropped")
    fail = th.fail
    if fail:
        fail = 0 if passed >= fail else fail - passed
    pending = th.pending
    while s.work:  # interrupt work and fatal signals now; task work later, in this context
        item = s.work[0]
        s = s._replace(work=s.work[1:])
        if item[0] in IRQ_WORK or item[0] == Work.SIGKILL:
            s = WORK_FN[item[0]](s, *item[1:])
        else:
            pending = pending + (item,)
    return s, res, th._replace(fail=fail, pending=pending)


def _run(s: SystemState, ctx: int, th: KThread) -> tuple[SystemState, int]:
    """The lock-granularity interpreter: run ``th`` from its current point to the next
    preemption point after it (module docstring).  ``th.ret`` is IN_PROGRESS until the
    call's outermost frame returns; then its task work runs, and the context is done."""
    first = True
    frames = list(th.frames)
    while True:
        if not frames:
            if th.ret == IN_PROGRESS:  # the call starts (or restarts after a Blocked section)
                f = _KFUNC[th.op]
                frames.append(KFrame(f.index, 0, f.start_locals(th.args)))
                continue
            if not th.pending:
                return s._replace(kthreads=s.kthreads.delete(ctx)) if ctx in s.kthreads \
                    else s, th.ret
            if not first:
                break  # a task-work item starts at a preemption point
            item, th = th.pending[0], th._replace(pending=th.pending[1:])
            f = WORK_KFUNC[item[0]]
            frames.append(KFrame(f.index, 0, (0,) + tuple(item[1:])))
            first = False
            continue
        fr = frames[-1]
        f = KFUNCS[fr.fn]
        if fr.pc >= len(f.code):
            frames.pop()
            if frames:
                caller = frames[-1]
                ins = KFUNCS[caller.fn].code[caller.pc - 1]
                if ins.c is not None:
                    frames[-1] = caller._replace(loc=ins.c(caller.loc, fr.loc[0]))
            elif th.ret == IN_PROGRESS:
                th = th._replace(ret=fr.loc[0])  # the call returned
            continue
        ins = f.code[fr.pc]
        op = ins.op
        if op == SLEEP and not sleep_what(ins, s, fr.loc):
            frames[-1] = fr._replace(pc=fr.pc + 1)
            continue
        if (op == LOCK or op == SLEEP) and not first:
            break
        first = False
        loc = fr.loc
        if op == DO or op == CALL:
            if op == CALL:
                args = ins.b(s, loc)
                if args is None:
                    frames[-1] = fr._replace(pc=fr.pc + 1)
                    continue
                callee = resolve(ins, s, loc)
                if type(callee) is KFunc:
                    frames[-1] = fr._replace(pc=fr.pc + 1)
                    frames.append(KFrame(callee.index, 0, callee.start_locals(args)))
                    continue
                fn, fargs = callee, args
            else:
                fn, fargs = ins.a, (loc,)
            try:
                s, res, th = _section(s, ctx, th, fn, fargs)
            except Blocked as e:  # the section waits at its start
                th = th._replace(wait=e.key)
                break
            except Hung as e:  # the context sleeps forever inside the section
                s = e.state
                th = th._replace(wait=e.key, held=e.held)
                s = _park(s, ctx, th._replace(frames=tuple(frames)))
                return s, IN_PROGRESS
            if op == DO:
                frames[-1] = fr._replace(pc=fr.pc + 1, loc=res)
            else:
                frames[-1] = fr._replace(pc=fr.pc + 1,
                                         loc=ins.c(loc, res) if ins.c is not None else loc)
        elif op == LOCK:
            key = ins.a(s, loc)
            if key:
                if key in s.locks:  # sleeps on it (hangs, when ctx is the holder)
                    th = th._replace(wait=key)
                    break
                if key_kind(key) == LockKind.MUTEX:
                    s = _might_sleep(s, ctx, th, key)
                else:
                    s = locking.note_spin_usage(s, key, th.kind)
                s = s._replace(locks=s.locks.set(key, ctx))
                th = th._replace(held=th.held + (key,))
            frames[-1] = fr._replace(pc=fr.pc + 1)
        elif op == UNLOCK:
            key = ins.a(s, loc)
            if key:
                if key not in th.held:
                    raise ModelInternalError(f"{f.name}: unlock of a lock it does not hold")
                s = s._replace(locks=s.locks.delete(key))
                th = th._replace(held=tuple(k for k in th.held if k != key))
            frames[-1] = fr._replace(pc=fr.pc + 1)
        else:  # SLEEP
            s = _might_sleep(s, ctx, th, sleep_what(ins, s, loc))
            frames[-1] = fr._replace(pc=fr.pc + 1)
    th = th._replace(frames=tuple(frames))
    return s._replace(kthreads=s.kthreads.set(ctx, th)), IN_PROGRESS


def _might_sleep(s: SystemState, ctx: int, th: KThread, what: int) -> SystemState:
    locking.begin(ctx, th.kind, th.held)
    try:
        return locking.might_sleep(s, what)
    finally:
        locking.end()


def call_stack(s: SystemState, ctx: int) -> list[tuple[str, int]]:
    """``[(function name, pc), ...]`` of the call in progress of ``ctx``, outermost first."""
    th = s.kthreads.get(ctx)
    if th is None:
        return []
    return [(KFUNCS[fr.fn].name, fr.pc) for fr in th.frames if fr.fn >= 0]


# -- the KFunc of every operation and work kind ----------------------------------------------

def _plain(fn, name: str, params: tuple, ret: bool = True) -> KFunc:
    """A one-section KFunc running plain ``fn`` (an operation with no preemption point)."""
    if ret:
        def body(s, loc):
            s, r = fn(s, *loc[1:])
            return s, (r,) + loc[1:]
    else:
        def body(s, loc):
            return fn(s, *loc[1:]), loc
    body.__name__ = name
    return KFunc(name, params, (Do(body),))


def _build() -> None:
    for op in OPS:
        fn = op.fn
        _KFUNC.append(fn if type(fn) is KFunc else _plain(fn, op.name, op.params))
        _KIND.append(CtxKind.IRQ if op.kind == "hw" else CtxKind.TASK)
    _KIND[OP_BY_NAME["iopf_handle"].code] = CtxKind.WORKER
    # a fence is signalled from the GPU's interrupt handler (sdma_v6_0_process_trap_irq ->
    # amdgpu_fence_process -> dma_fence_signal -> the PASID's delayed-free callback)
    _KIND[OP_BY_NAME["dma_fence_signal"].code] = CtxKind.IRQ
    for kind, fn in sorted(WORK_FN.items()):
        kf = getattr(fn, "kfunc", None)  # a plain wrapper that runs a KFunc inline
        WORK_KFUNC[kind] = kf if kf is not None else _plain(fn, Work(kind).name.lower(),
                                                             ("arg",), ret=False)


_KFUNC: list[KFunc] = []
_KIND: list[CtxKind] = []
#: Work kind -> the KFunc that runs it (as task work of a context at lock granularity).
WORK_KFUNC: dict[int, KFunc] = {}
_build()


__all__ = ["check_action", "step", "kernel_continue", "start_call", "runnable", "call_stack", "IN_PROGRESS", "Action", "Op",
           "OPS", "OP_BY_NAME", "enabled_events", "WORK_KFUNC"]

