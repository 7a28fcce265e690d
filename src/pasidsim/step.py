"""The one transition function: ``step(state, action) -> (state, ret)``.

An :class:`Action` is a small immutable value: an opcode (an index into :data:`OPS`) and a tuple
of int arguments, so it hashes the same in every process and pickles cheaply.  Build one with
:meth:`Action.of` by operation name and keyword arguments; each operation is a kernel function
(``iommu_sva_bind_device``), a process event (``fork``, ``task_exit``) or a hardware event.

``ret`` is the kernel's return value: ``0``, an id, a PASID, ``IOMMU_PASID_INVALID``, or
``-errno``.  A failed call returns the state it was given, except where the kernel itself keeps
a side effect (``Op.atomic`` false: e.g. a failed bind keeps the mm's PASID).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, NamedTuple

from . import domain, files, group, ioasid, pasid, sva, x86
from .drivers import device_driver_attach, device_release_driver
from .errors import ModelUsageError
from .state import SystemState


@dataclass(frozen=True)
class Op:
    """An operation: its name, implementation and parameters.

    kind: "kernel" (a kernel API), "process" (a user-space event), "hw" (a hardware event).
    atomic: a negative return guarantees an unchanged state (WARNs aside).
    """

    code: int
    name: str
    fn: Callable
    params: tuple[str, ...]
    defaults: tuple
    kind: str
    atomic: bool


OPS: list[Op] = []
OP_BY_NAME: dict[str, Op] = {}


def register_op(fn: Callable, kind: str = "kernel", atomic: bool = True,
                name: str | None = None) -> Op:
    """Register ``fn(state, *int_args) -> (state, ret)`` as an operation."""
    sig = inspect.signature(fn)
    params = tuple(list(sig.parameters)[1:])
    defaults = tuple(sig.parameters[p].default for p in params)
    op = Op(len(OPS), name or fn.__name__, fn, params, defaults, kind, atomic)
    if op.name in OP_BY_NAME:
        raise ModelUsageError(f"operation {op.name!r} registered twice")
    OPS.append(op)
    OP_BY_NAME[op.name] = op
    return op


class Action(NamedTuple):
    """One operation with its int arguments.  ``Action.of("fork", tid=3)``."""

    op: int
    args: tuple

    @staticmethod
    def of(name: str, **kwargs: int) -> "Action":
        """Build an action by operation name; missing arguments take their defaults.

        Raises ModelUsageError for an unknown operation, unknown or missing argument, or a
        non-int argument.
        """
        op = OP_BY_NAME.get(name)
        if op is None:
            raise ModelUsageError(f"unknown operation {name!r}")
        args = []
        for p, d in zip(op.params, op.defaults):
            if p in kwargs:
                v = kwargs.pop(p)
            elif d is not inspect.Parameter.empty:
                v = d
            else:
                raise ModelUsageError(f"{name}: missing argument {p!r}")
            if isinstance(v, bool):
                v = int(v)
            if not isinstance(v, int):
                raise ModelUsageError(f"{name}: argument {p!r} must be an int, got {v!r}")
            args.append(v)
        if kwargs:
            raise ModelUsageError(f"{name}: unknown argument(s) {sorted(kwargs)}")
        return Action(op.code, tuple(args))

    @property
    def name(self) -> str:
        return OPS[self.op].name

    def kwargs(self) -> dict[str, int]:
        return dict(zip(OPS[self.op].params, self.args))

    def __repr__(self) -> str:
        return f"{self.name}({', '.join(f'{k}={v}' for k, v in self.kwargs().items())})"


def step(s: SystemState, a: Action) -> tuple[SystemState, int]:
    """Apply action ``a`` to state ``s``.  Returns ``(next_state, ret)``.  Deferred work the
    action queued (``__fput`` task work) runs before it returns."""
    s2, ret = OPS[a.op].fn(s, *a.args)
    if s2.delayed_fput:
        s2 = files.run_task_work(s2)
    return s2, ret


# -- the operation table (order fixes the opcodes) ---------------------------------------------

def _wrap_state(fn):
    def op(s, *args):
        return fn(s, *args), 0
    op.__name__ = fn.__name__
    op.__doc__ = fn.__doc__
    op.__signature__ = inspect.signature(fn)
    return op


for _fn in (pasid.iommu_alloc_global_pasid, pasid.iommu_free_global_pasid,
            ioasid.ioasid_alloc, ioasid.ioasid_free, ioasid.ioasid_get,
            ioasid.ioasid_put, ioasid.ioasid_find, ioasid.ioasid_set_data,
            ioasid.ioasid_set_alloc, ioasid.ioasid_register_allocator,
            ioasid.ioasid_unregister_allocator,
            pasid.amdgpu_pasid_alloc, pasid.amdgpu_pasid_free, pasid.amdgpu_pasid_free_delayed,
            pasid.dma_fence_create, pasid.dma_fence_signal,
            domain.iommu_domain_alloc_paging, domain.iommu_domain_free,
            domain.iommu_attach_device_pasid, domain.iommu_detach_device_pasid,
            domain.iommu_replace_device_pasid, domain.iommu_attach_handle_get,
            group.iommu_device_use_default_domain, group.iommu_device_unuse_default_domain,
            group.iommu_group_claim_dma_owner, group.iommu_device_claim_dma_owner,
            group.iommu_group_release_dma_owner, group.iommu_device_release_dma_owner,
            group.iommu_group_dma_owner_claimed, group.iommu_attach_device,
            group.iommu_detach_device, group.iommu_attach_group, group.iommu_detach_group,
            group.iommu_group_finalize, group.pci_dev_reset_iommu_prepare,
            group.pci_dev_reset_iommu_done, device_driver_attach, device_release_driver,
            sva.iommu_sva_get_pasid, sva.iommu_sva_unbind_device,
            sva.iommu_sva_invalidate_kva_range):
    register_op(_fn)
register_op(ioasid.ioasid_set_free, atomic=False)
register_op(sva.iommu_sva_bind_device, atomic=False)
for _fn in (files.process_create, files.clone_thread, files.fork, files.task_exit,
            files.dev_open, files.close, files.mmap, files.munmap):
    register_op(_fn, kind="process")
register_op(x86.exc_general_protection, kind="process", atomic=False)
register_op(x86.enqcmd, kind="process", atomic=False)
register_op(x86.arch_prctl_enable_tagged_addr, kind="process")
register_op(x86.arch_prctl_force_tagged_sva, kind="process")

# Extensions register their operations at import, in this fixed order (opcodes stay stable).
from .hw import ops as _hw_ops  # noqa: E402,F401  (hardware events)
from . import iommufd  # noqa: E402,F401  (iommufd / VFIO cdev)
