"""The mutable facade: a machine you call kernel functions on.

``System`` holds the current :class:`~pasidsim.state.SystemState` and exposes every operation of
:mod:`pasidsim.step` as a method of the same name.  A method applies one action with
:func:`~pasidsim.step.step`, keeps the new state, and returns the kernel's return value; a
negative return raises :class:`~pasidsim.errors.KernelError` (``.errno``, ``.function``).

Devices, drivers and groups may be given by name or index.  Example::

    sys = System(config)
    t = sys.process_create()
    h = sys.iommu_sva_bind_device(dev="dsa0", mm=sys.mm_of(t))
    pasid = sys.iommu_sva_get_pasid(h)
"""

from __future__ import annotations

import inspect

from .config import Config
from .errors import KernelDeadlock, KernelError, ModelUsageError, Warn
from .invariants import l1_no_deadlock
from .policy import CURRENT, Policy
from .state import SystemState, initial_state
from .step import IN_PROGRESS, OP_BY_NAME, OPS, Action, Op, check_action, step

_RESOLVERS = {"dev": "device_index", "drv": "driver_index", "group": "group_index"}

_ERR_DETAIL = {
    "iommu_sva_bind_device": "dev={dev} mm={mm}",
    "iommu_attach_device_pasid": "domain={domain} dev={dev} pasid={pasid}",
}


def _object_id(name: str, value) -> int:
    """``value`` as an object id (an int, not a bool); ModelUsageError naming ``name``."""
    if type(value) is not int:
        raise ModelUsageError(f"{name}={value!r}: an object id is an int, not "
                              f"{type(value).__name__}")
    return value


class System:
    """A running machine.

    Args:
        config: the static machine.
        policy: the design variant (default: today's kernel).
    Attributes:
        state: the current :class:`SystemState` (replace it to rewind).
        trace: ``(action, ret)`` pairs applied so far.
    """

    def __init__(self, config: Config, policy: Policy = CURRENT) -> None:
        self.config = config
        self.policy = policy
        self.state: SystemState = initial_state(config, policy)
        self.trace: list[tuple[Action, int]] = []

    def apply(self, action: Action) -> int:
        """Apply an action; return ``ret`` without raising.

        Raises ModelUsageError (state unchanged) for an action that names no operation, has
        the wrong number of arguments, or a device, driver or group index out of range: the
        library's boundary checks what the kernel model trusts, as the kernel trusts its
        ``struct device`` pointers.  Raises :class:`~pasidsim.errors.KernelDeadlock` for a
        call that never returns (its context sleeps on a lock it holds: invariant L1), with
        the hung state in ``.state``; ``self.state`` stays the state before the call."""
        check_action(self.config, action)
        s, ret = step(self.state, action)
        if ret == IN_PROGRESS:  # hung on a lock: the call never returns (state unchanged here)
            raise KernelDeadlock(OPS[action.op].name, l1_no_deadlock(s) or
                                 "blocked on a lock that is never released", s)
        self.state = s
        self.trace.append((action, ret))
        return ret

    def call(self, name: str, **kwargs) -> int:
        """Apply operation ``name``; raise KernelError on a negative return."""
        op = OP_BY_NAME.get(name)
        if op is None:
            raise ModelUsageError(f"unknown operation {name!r}")
        return self._invoke(op, kwargs)

    def _invoke(self, op: Op, kwargs: dict) -> int:
        resolved = {}
        for k, v in kwargs.items():
            if k in _RESOLVERS and isinstance(v, str):
                v = getattr(self.config, _RESOLVERS[k])(v)
            resolved[k] = v
        ret = self.apply(Action.of(op.name, **resolved))
        if ret < 0:
            detail = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
            raise KernelError(-ret, op.name, detail)
        return ret

    # -- convenience views ------------------------------------------------------------------
    @property
    def warnings(self) -> list[str]:
        """The WARNs recorded so far, as text."""
        return [Warn(c).describe(a, b) for c, a, b in self.state.warnings]

    def mm_of(self, tid: int) -> int:
        """The mm id of task ``tid``.  ModelUsageError for an unknown task or a ``tid`` that
        is not an int."""
        t = self.state.tasks.get(_object_id("tid", tid))
        if t is None:
            raise ModelUsageError(f"unknown or exited task {tid}")
        return t.mm

    def mm(self, mm: int):
        """The :class:`~pasidsim.state.Mm` record of ``mm``, or None once freed.
        ModelUsageError for an ``mm`` that is not an int."""
        return self.state.mms.get(_object_id("mm", mm))

    def group_of(self, dev: int | str) -> int:
        """Group index of a device (by name or index); -1 when it has none."""
        return self.config.device_group[self.config.device_index(dev)]

    def group(self, group: int | str):
        """The :class:`~pasidsim.state.Group` record of a group (by name or index)."""
        return self.state.groups[self.config.group_index(group)]

    def pasid_allocated(self, pasid: int) -> bool:
        """True while ``pasid`` is allocated (or pending free) in the global space."""
        return pasid in self.state.ida


def _signature(op: Op) -> inspect.Signature:
    """The facade method's signature: ``self`` and the operation's own parameters (devices,
    drivers and groups also by name), returning the kernel's int."""
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for p in list(inspect.signature(op.fn).parameters.values())[1:]:
        ann = "int | str" if p.name in _RESOLVERS else "int"
        params.append(p.replace(annotation=ann))
    return inspect.Signature(params, return_annotation="int")


def _make_method(op: Op):
    def method(self: System, *args, **kwargs) -> int:
        if args:
            if len(args) > len(op.params):
                raise ModelUsageError(f"{op.name}: too many arguments")
            for p, v in zip(op.params, args):
                if p in kwargs:
                    raise ModelUsageError(f"{op.name}: argument {p!r} given twice")
                kwargs[p] = v
        return self._invoke(op, kwargs)

    method.__name__ = op.name
    method.__qualname__ = f"System.{op.name}"
    method.__signature__ = _signature(op)
    method.__doc__ = (op.fn.__doc__ or "") + (
        "\n\n(Facade: raises KernelError on a negative return; the state argument is "
        "the System's own.)")
    return method


for _op in OPS:
    setattr(System, _op.name, _make_method(_op))
