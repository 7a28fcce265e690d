"""amdgpu-style GPU driver: VM contexts with PASIDs that have no mm behind them.

Every open of the render node creates a GPU VM with its own PASID from amdgpu's private
allocator (a namespace separate from the IOMMU's global IDA, :func:`pasidsim.pasid.amdgpu_pasid_alloc`,
cyclic since 14b81abe7bdc).  Jobs submitted on the VM are tracked by fences; when the file is
closed the PASID is not freed at once but when the VM's last fence signals, because interrupts
(and page faults in the IH ring) tagged with it may still arrive.

Order of operations (drivers/gpu/drm/amd/amdgpu/amdgpu_kms.c):

- ``amdgpu_driver_open_kms``: ``pasid = amdgpu_pasid_alloc(16)``; on failure the VM is created
  anyway with PASID 0 ("No more PASIDs available!"); ``amdgpu_vm_init``, ``amdgpu_vm_set_pasid``.
- command submission (``amdgpu_cs_ioctl``): the job's fence is added to the VM root page
  directory's reservation object (BOOKKEEP usage).  :func:`amdgpu_cs_submit` models this as one
  *VM fence*: a job submitted while the VM is busy joins the current fence (like
  ``dma_resv_get_singleton`` of all of them, it signals only when every job has finished); a
  job on an idle VM creates a new one.  The fence is signalled by ``dma_fence_signal``.
- ``amdgpu_driver_postclose_kms``: ``amdgpu_vm_fini``; ``amdgpu_pasid_free_delayed(resv,
  pasid)`` — freed now when no fence is pending, else when the fence signals.

Per-file driver data (``File.drvdata``) packs the VM's PASID (low 20 bits) and its current
fence id (the rest): see :func:`vm_pasid` and :func:`vm_fence`.
"""

from __future__ import annotations

from ..errors import EBADF, EINVAL, ENOENT, ModelUsageError
from ..hw.translate import Breach, breach
from ..ops_tables import dev_driver_ops
from ..pasid import amdgpu_pasid_alloc, amdgpu_pasid_free_delayed, dma_fence_create
from ..state import SystemState
from .base import Driver

#: amdgpu asks for 16-bit PASIDs (``amdgpu_pasid_alloc(16)`` in amdgpu_driver_open_kms).
AMDGPU_PASID_BITS = 16
_PASID_MASK = (1 << 20) - 1


def vm_pasid(drvdata: int) -> int:
    """The VM PASID stored in an amdgpu file's ``drvdata`` (0 = none)."""
    return drvdata & _PASID_MASK


def vm_fence(drvdata: int) -> int:
    """The VM's current fence id stored in an amdgpu file's ``drvdata`` (0 = none)."""
    return drvdata >> 20


def _pack(pasid: int, fence: int) -> int:
    return (fence << 20) | pasid


class AmdgpuDriver(Driver):
    """A GPU render node; one VM (and one amdgpu PASID) per open file (``kind: amdgpu``)."""

    kind = "amdgpu"

    def open(self, s: SystemState, file: int, tid: int) -> tuple[SystemState, int]:
        """``amdgpu_driver_open_kms``: allocate the VM's PASID (0 when exhausted). Returns 0."""
        s, pasid = amdgpu_pasid_alloc(s, AMDGPU_PASID_BITS)
        if pasid < 0:
            pasid = 0  # dev_warn("No more PASIDs available!"); the VM works without one
        f = s.files[file]
        return s._replace(files=s.files.set(file, f._replace(drvdata=_pack(pasid, 0)))), 0

    def mmap(self, s: SystemState, file: int, pgoff: int = 0) -> tuple[SystemState, int]:
        """A buffer-object mapping (inherited across fork)."""
        return s, 0

    def postclose(self, s: SystemState, file: int) -> SystemState:
        """``amdgpu_driver_postclose_kms``: VM torn down, PASID freed when its fence signals."""
        f = s.files[file]
        pasid, fence = vm_pasid(f.drvdata), vm_fence(f.drvdata)
        s = s._replace(files=s.files.set(file, f._replace(drvdata=0)))
        if not pasid:
            return s
        if fence and s.fences.get(fence) is not False:
            fence = 0  # already signalled (or gone): nothing to wait for
        s, _ = amdgpu_pasid_free_delayed(s, pasid, fence)
        return s

    def release(self, s: SystemState, file: int) -> SystemState:
        return self.postclose(s, file)

    def remove(self, s: SystemState, dev: int) -> SystemState:
        """Device unbind with files still open: every VM is finalised now (model
        simplification of ``drm_dev_unplug``: the files' later release does nothing)."""
        for fid, f in sorted(s.files.items()):
            if f.dev == dev and f.drvdata:
                s = self.postclose(s, fid)
        return s


def amdgpu_cs_submit(s: SystemState, tid: int, fd: int) -> tuple[SystemState, int]:
    """Task ``tid`` submits a GPU job on the VM of its open render node ``fd``
    (``DRM_IOCTL_AMDGPU_CS``).

    Returns the VM fence the job is tracked by (a new fence when the VM was idle, else the
    current one); -EBADF when ``fd`` is not open in the task's process; -EINVAL when it is not
    an amdgpu file.
    Models: amdgpu_cs.c ``amdgpu_cs_ioctl`` → ``amdgpu_cs_submit`` (job fence added to the VM
    root PD's reservation object).
    """
    err = _vm_file_error(s, tid, fd)
    if err:
        return s, err
    f = s.files[fd]
    fence = vm_fence(f.drvdata)
    if fence and s.fences.get(fence) is False:
        return s, fence
    s, fence = dma_fence_create(s)
    f = s.files[fd]
    return s._replace(files=s.files.set(fd, f._replace(
        drvdata=_pack(vm_pasid(f.drvdata), fence)))), fence


def amdgpu_vm_fault(s: SystemState, tid: int, fd: int) -> tuple[SystemState, int]:
    """A job on the VM of render node ``fd`` page-faults: the GPU writes a fault interrupt
    tagged with the VM's PASID into the IH ring, where it waits for the interrupt handler
    (``amdgpu_ih_process``).  Returns the PASID; -EBADF / -EINVAL as :func:`amdgpu_cs_submit`;
    -EINVAL when the VM has no PASID.
    Models: the GMC's retry/no-retry fault interrupts (gmc_v9_0_process_interrupt source)."""
    err = _vm_file_error(s, tid, fd)
    if err:
        return s, err
    f = s.files[fd]
    pasid = vm_pasid(f.drvdata)
    if not pasid:
        return s, -EINVAL
    return s._replace(ih_ring=s.ih_ring + ((f.dev, pasid, fd),)), pasid


def amdgpu_ih_process(s: SystemState, dev: int) -> tuple[SystemState, int]:
    """The interrupt handler takes the oldest IH-ring entry of ``dev`` and looks the VM up by
    PASID (``amdgpu_vm_get_vm_from_pasid``): the fault is attributed to whichever VM holds the
    PASID *now*.  Attributing it to a VM other than the one that raised it is the H13 bug
    (recorded as a breach).  Returns the file id of the VM charged (0: none, dropped);
    -ENOENT when the ring holds nothing for ``dev``.
    Models: amdgpu_ih.c ``amdgpu_ih_process`` → ``amdgpu_vm_handle_fault``."""
    for i, (d, pasid, origin) in enumerate(s.ih_ring):
        if d == dev:
            break
    else:
        return s, -ENOENT
    s = s._replace(ih_ring=s.ih_ring[:i] + s.ih_ring[i + 1:])
    owner = 0  # the lowest file id of a VM of dev holding the PASID (one pass, no sort)
    if pasid and _is_amdgpu(s, dev):  # (vm_pasid inlined: this scan is the handler's cost)
        owner = min([fid for fid, f in s.files.items()
                     if f.drvdata & _PASID_MASK == pasid and f.dev == dev] or (0,))
    if owner and owner != origin:
        s = breach(s, Breach.MISATTRIBUTED_FAULT, dev, pasid, origin, owner)
    return s, owner


def _vm_file_error(s: SystemState, tid: int, fd: int) -> int:
    """-EBADF when ``fd`` is not open in ``tid``'s process, -EINVAL when it is not an amdgpu
    render node, else 0.  ModelUsageError for an unknown task."""
    t = s.tasks.get(tid)
    if t is None:
        raise ModelUsageError(f"unknown or exited task {tid}")
    if fd not in s.procs[t.pid].files:
        return -EBADF
    return 0 if _is_amdgpu(s, s.files[fd].dev) else -EINVAL


def _is_amdgpu(s: SystemState, dev: int) -> bool:
    return isinstance(dev_driver_ops(s, dev), AmdgpuDriver)

__all__ = ["AmdgpuDriver", "amdgpu_cs_submit", "vm_pasid", "vm_fence", "AMDGPU_PASID_BITS"]
