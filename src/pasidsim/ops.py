"""The operation table: every kernel call, process event and hardware event of the model, in
one explicit, ordered list (the order fixes the opcodes), and the ops tables the kernel
dispatches through.

An :class:`Action` is a small immutable value: an opcode (an index into :data:`OPS`), a tuple
of int arguments and an optional injected failure, so it hashes the same in every process and
pickles cheaply.  Build one with :meth:`Action.of` by operation name and keyword arguments.

:func:`build` is called once, when this module is imported: it fills :data:`OPS` from
:data:`TABLE`, the deferred-work dispatch table (:data:`pasidsim.work.WORK_FN`), the driver ops
table (:data:`pasidsim.ops_tables.DRIVER_OPS`) with the reference drivers and the mmu-notifier
ops table with the E0 io_mm release.  No other module registers anything as a side effect of
being imported.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, NamedTuple

from . import domain, file_table, files, group, iommufd, ioasid, iopf, mem, pasid, pci, sva, x86
from .drivers import (BUILTIN, amdgpu, device_driver_attach, device_release_driver, register,
                      uacce, vfio)
from .errors import ModelUsageError
from .hw import translate, wq
from .ops_tables import MMU_NOTIFIER_OPS
from .state import SystemState, Work
from .work import WORK_FN


@dataclass(frozen=True)
class Op:
    """An operation: its opcode, name, implementation and parameters.

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


K, P, H = "kernel", "process", "hw"

#: Every operation: ``(fn(state, *int_args) -> (state, ret), kind, atomic)``, in opcode order.
#: Calls that fail but keep a side effect the kernel keeps are ``atomic=False``.
TABLE: tuple[tuple[Callable, str, bool], ...] = (
    (pasid.iommu_alloc_global_pasid, K, True), (pasid.iommu_free_global_pasid, K, True),
    (ioasid.ioasid_alloc, K, True), (ioasid.ioasid_free, K, True),
    (ioasid.ioasid_get, K, True), (ioasid.ioasid_put, K, True),
    (ioasid.ioasid_find, K, True), (ioasid.ioasid_set_data, K, True),
    (ioasid.ioasid_set_alloc, K, True), (ioasid.ioasid_register_allocator, K, True),
    (ioasid.ioasid_unregister_allocator, K, True),
    (pasid.amdgpu_pasid_alloc, K, True), (pasid.amdgpu_pasid_free, K, True),
    (pasid.amdgpu_pasid_free_delayed, K, True),
    (pasid.dma_fence_create, K, True), (pasid.dma_fence_signal, K, True),
    (domain.iommu_domain_alloc_paging, K, True), (domain.iommu_domain_free, K, True),
    (domain.iommu_attach_device_pasid, K, True), (domain.iommu_detach_device_pasid, K, True),
    (domain.iommu_replace_device_pasid, K, True), (domain.iommu_attach_handle_get, K, True),
    (group.iommu_device_use_default_domain, K, True),
    (group.iommu_device_unuse_default_domain, K, True),
    (group.iommu_group_claim_dma_owner, K, True), (group.iommu_device_claim_dma_owner, K, True),
    (group.iommu_group_release_dma_owner, K, True),
    (group.iommu_device_release_dma_owner, K, True),
    (group.iommu_group_dma_owner_claimed, K, True), (group.iommu_attach_device, K, True),
    (group.iommu_detach_device, K, True), (group.iommu_attach_group, K, True),
    (group.iommu_detach_group, K, True),
    (group.iommu_group_finalize, K, True), (group.pci_dev_reset_iommu_prepare, K, True),
    (group.pci_dev_reset_iommu_done, K, True), (device_driver_attach, K, True),
    (device_release_driver, K, True),
    (sva.iommu_sva_get_pasid, K, True), (sva.iommu_sva_unbind_device, K, True),
    (sva.iommu_sva_invalidate_kva_range, K, True),
    (ioasid.ioasid_set_free, K, False), (sva.iommu_sva_bind_device, K, False),
    (files.process_create, P, True), (files.clone_thread, P, True), (files.fork, P, True),
    (files.task_exit, P, True), (files.dev_open, P, False), (files.close, P, True),
    (files.mmap, P, True), (files.munmap, P, True),
    (x86.exc_general_protection, P, False), (x86.enqcmd, P, False),
    (x86.arch_prctl_enable_tagged_addr, P, True), (x86.arch_prctl_force_tagged_sva, P, True),
    # hardware events
    (translate.dma, H, False), (wq.wq_submit, H, False), (wq.dma_complete, H, False),
    (wq.wq_drain, H, False),
    (iopf.iommu_report_device_fault, H, False), (iopf.iopf_handle, H, False),
    (iopf.iopf_queue_flush_dev, K, True), (iopf.iopf_queue_add_device, K, True),
    (iopf.iopf_queue_remove_device, K, True), (mem.iommu_map, K, True),
    (mem.iommu_unmap, K, True),
    (mem.mmap_anon, P, True), (mem.mprotect, P, True), (files.munmap_range, P, True),
    (mem.touch, P, False),
    # iommufd / VFIO cdev
    (iommufd.iommufd_ctx_create, K, True), (iommufd.iommufd_ioas_alloc, K, True),
    (iommufd.iommufd_hwpt_alloc, K, True), (iommufd.iommufd_hwpt_destroy, K, True),
    (iommufd.iommufd_device_bind, K, True), (iommufd.iommufd_device_unbind, K, True),
    (iommufd.iommufd_device_attach, K, True), (iommufd.iommufd_device_replace, K, True),
    (iommufd.iommufd_device_detach, K, True), (vfio.vfio_group_get_status, K, True),
    (vfio.vfio_group_set_container, K, True), (vfio.vfio_group_unset_container, K, True),
    (vfio.vfio_device_bind_iommufd, P, True),
    (amdgpu.amdgpu_cs_submit, P, True), (amdgpu.amdgpu_vm_fault, P, True),
    (amdgpu.amdgpu_ih_process, H, True),
    # fidelity round 2 (issue 11): appended so that earlier opcodes stay put
    (iommufd.iommufd_destroy, K, True), (iommufd.iommufd_viommu_alloc, K, True),
    (iommufd.iommufd_fault_alloc, K, True), (iommufd.iommufd_fault_fops_read, P, True),
    (iommufd.iommufd_fault_fops_write, P, True), (iommufd.iommufd_get_hw_info, K, True),
    (files.execve, P, True),
    (pci.pci_enable_pasid, K, True), (pci.pci_disable_pasid, K, True),
    (pci.pci_pasid_features, K, True), (pci.pci_max_pasids, K, True),
    (pci.pci_pasid_status, K, True), (uacce.uacce_fops_unl_ioctl, P, True),
    (sva.iommu_sva_alloc_pasid, K, True), (sva.iommu_sva_free_pasid, K, True),
    (group.iommu_attach_device_shared, K, True), (group.iommu_detach_device_shared, K, True),
    (sva.iommu_sva_device_init, K, True), (sva.iommu_sva_device_shutdown, K, True),
)

OPS: list[Op] = []
OP_BY_NAME: dict[str, Op] = {}


def _make_op(code: int, fn: Callable, kind: str, atomic: bool) -> Op:
    sig = inspect.signature(fn)
    params = tuple(list(sig.parameters)[1:])
    defaults = tuple(sig.parameters[p].default for p in params)
    return Op(code, fn.__name__, fn, params, defaults, kind, atomic)


def _page_request(s: SystemState, dev: int, pasid: int, addr: int, access: int, grpid: int,
                  last: int) -> SystemState:
    """Work PAGE_REQUEST: the IOMMU's page-request interrupt reports to the fault handler."""
    s, _ = iopf.iommu_report_device_fault(s, dev, pasid, addr, access, grpid=grpid, last=last)
    return s


def build() -> None:
    """Fill :data:`OPS`/:data:`OP_BY_NAME` from :data:`TABLE` and the dispatch tables (deferred
    work, driver ops, mmu-notifier ops).  Idempotent.  Raises ModelUsageError when two
    operations share a name."""
    if OPS:
        return
    for code, (fn, kind, atomic) in enumerate(TABLE):
        op = _make_op(code, fn, kind, atomic)
        if op.name in OP_BY_NAME:
            raise ModelUsageError(f"operation {op.name!r} listed twice")
        OPS.append(op)
        OP_BY_NAME[op.name] = op
    WORK_FN[Work.FPUT] = file_table.__fput
    WORK_FN[Work.SIGKILL] = files.do_group_exit
    WORK_FN[Work.PAGE_REQUEST] = _page_request
    MMU_NOTIFIER_OPS["io_mm"] = sva.io_mm_exit
    for d in BUILTIN:
        register(d)


class Action(NamedTuple):
    """One operation with its int arguments.  ``Action.of("fork", tid=3)``.

    fail: 0, or ``k`` to make the ``k``-th fault point the call passes fail with its errno
    (:mod:`pasidsim.fault`): an injected allocation or driver-callback failure."""

    op: int
    args: tuple
    fail: int = 0

    @staticmethod
    def of(name: str, **kwargs: int) -> "Action":
        """Build an action by operation name; missing arguments take their defaults.  The
        keyword ``fail`` sets the injected failure.

        Raises ModelUsageError for an unknown operation, unknown or missing argument, or a
        non-int argument.
        """
        op = OP_BY_NAME.get(name)
        if op is None:
            raise ModelUsageError(f"unknown operation {name!r}")
        fail = kwargs.pop("fail", 0) if "fail" not in op.params else 0
        if not isinstance(fail, int) or isinstance(fail, bool) or fail < 0:
            raise ModelUsageError(f"{name}: fail must be an int >= 0, got {fail!r}")
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
        return Action(op.code, tuple(args), fail)

    @property
    def name(self) -> str:
        """The operation's name; ModelUsageError for an opcode that names none."""
        return self._op().name

    def kwargs(self) -> dict[str, int]:
        return dict(zip(self._op().params, self.args))

    def _op(self) -> Op:
        if type(self.op) is not int or not 0 <= self.op < len(OPS):
            raise ModelUsageError(f"not an opcode: {self.op!r}")
        return OPS[self.op]

    def __repr__(self) -> str:
        op = self.op
        if type(op) is not int or not 0 <= op < len(OPS) or type(self.args) is not tuple \
                or len(self.args) != len(OPS[op].params):  # hand-built, malformed
            return f"Action(op={op!r}, args={self.args!r}, fail={self.fail!r})"
        tail = f" [fail point {self.fail}]" if self.fail else ""
        return f"{self.name}({', '.join(f'{k}={v}' for k, v in self.kwargs().items())}){tail}"


def enabled_events(s: SystemState) -> list[Action]:
    """Hardware events that may happen next, in a deterministic order: completion of each
    queued descriptor (oldest first), the IOPF worker for each device with a pending group,
    the GPU interrupt handler for each device with IH-ring entries, and the signalling of each
    unsignalled fence."""
    out = []
    complete = OP_BY_NAME["dma_complete"].code
    for desc in sorted(s.inflight.keys()):
        out.append(Action(complete, (desc,)))
    handle = OP_BY_NAME["iopf_handle"].code
    for dev, q in sorted(s.iopf.items()):
        if q.groups or q.stale:
            out.append(Action(handle, (dev,)))
    ih = OP_BY_NAME["amdgpu_ih_process"].code
    for dev in sorted({e[0] for e in s.ih_ring}):
        out.append(Action(ih, (dev,)))
    signal = OP_BY_NAME["dma_fence_signal"].code
    for fence, done in sorted(s.fences.items()):
        if not done:
            out.append(Action(signal, (fence,)))
    return out



_INDEXED = {"dev": "devices", "drv": "drivers", "group": "groups"}
#: Range bounds the kernel types ``ioasid_t`` (unsigned 32 bits: ``ioasid_alloc``,
#: ``iommu_sva_alloc_pasid``), as scenario files have them; the model's ID allocator takes
#: them as they are.
_IOASID_T = frozenset({"min", "max"})


def check_action(config, action: Action) -> None:
    """Raise :class:`~pasidsim.errors.ModelUsageError` naming the argument when ``action`` is
    not a well-formed call on machine ``config``: an :class:`Action` of a known opcode with
    one int per parameter (no bool, within a 64-bit kernel argument; ``min``/``max`` within
    ``ioasid_t``), ``fail`` an int >= 0, and device, driver and group indexes of this machine
    (no negative alias).  The library checks this at its boundary (:meth:`System.apply`) and
    :func:`~pasidsim.step.step` when a call it was given fails inside the model, as the
    kernel trusts its ``struct device`` pointers and the model trusts its ids."""
    if not isinstance(action, Action) or type(action.op) is not int \
            or not 0 <= action.op < len(OPS):  # no bool: True is not opcode 1
        what = tuple.__repr__(action) if isinstance(action, tuple) else repr(action)
        raise ModelUsageError(f"not an action of a known operation: {what}")
    op = OPS[action.op]
    if not isinstance(action.args, tuple) or len(action.args) != len(op.params):
        raise ModelUsageError(f"{op.name}: expected {len(op.params)} arguments "
                              f"({', '.join(op.params)}), got {action.args!r}")
    if not isinstance(action.fail, int) or isinstance(action.fail, bool) or action.fail < 0:
        raise ModelUsageError(f"{op.name}: fail must be an int >= 0, got {action.fail!r}")
    for p, v in zip(op.params, action.args):
        if not isinstance(v, int) or isinstance(v, bool):
            raise ModelUsageError(f"{op.name}: {p} must be an int, got {v!r}")
        if not -(1 << 63) <= v < (1 << 64):
            raise ModelUsageError(f"{op.name}: {p}={v} does not fit a 64-bit kernel argument")
        if p in _IOASID_T and not 0 <= v <= 0xFFFFFFFF:
            raise ModelUsageError(f"{op.name}: {p}={v} does not fit ioasid_t (unsigned 32 "
                                  "bits)")
        table = _INDEXED.get(p)
        if table is not None and not 0 <= v < len(getattr(config, table)):
            n = len(getattr(config, table))
            raise ModelUsageError(f"{op.name}: {p}={v} is not a {table[:-1]} of this machine "
                                  + (f"(0..{n - 1})" if n else f"(it has no {table})"))


build()

__all__ = ["Op", "OPS", "OP_BY_NAME", "TABLE", "Action", "build", "enabled_events",
           "check_action"]

