"""Errors as the kernel reports them.

The pure core returns ``-errno`` integers (``ret < 0``); the :class:`~pasidsim.system.System`
facade turns them into :class:`KernelError`.  Misuse of the library itself (an unknown id, a
wrong type, a bad configuration) raises :class:`ModelUsageError`, and a bug of ours (a lifecycle
transition missing from its table) raises :class:`ModelInternalError`.

Errno numbers are Python's :mod:`errno` constants, which on Linux equal the kernel's
(``include/uapi/asm-generic/errno-base.h``, ``errno.h``).  ``EPROBE_DEFER`` (517) is
kernel-internal (``include/linux/err.h`` users; ``drivers/base/dd.c``) and has no Python constant.
"""

from __future__ import annotations

import errno as _errno

EPERM = _errno.EPERM
ENOENT = _errno.ENOENT
ESRCH = _errno.ESRCH
EAGAIN = _errno.EAGAIN
ESHUTDOWN = _errno.ESHUTDOWN
ENOMEM = _errno.ENOMEM
EACCES = _errno.EACCES
EBUSY = _errno.EBUSY
EEXIST = _errno.EEXIST
ENODEV = _errno.ENODEV
EINVAL = _errno.EINVAL
ENOSPC = _errno.ENOSPC
EDOM = _errno.EDOM
ERANGE = _errno.ERANGE
ENOSYS = _errno.ENOSYS
EOVERFLOW = _errno.EOVERFLOW
EOPNOTSUPP = _errno.EOPNOTSUPP
EBADF = _errno.EBADF
EFAULT = _errno.EFAULT
EIO = _errno.EIO
ENXIO = _errno.ENXIO
ENOTTY = _errno.ENOTTY
EPROBE_DEFER = 517

_NAMES = {v: k for k, v in globals().items() if k.startswith("E") and isinstance(v, int)}


def errname(err: int) -> str:
    """Return ``'EBUSY'`` for 16 (or for -16); ``'E<n>'`` for an unknown number."""
    return _NAMES.get(abs(err), f"E{abs(err)}")


def fmt_ret(ret: int) -> str:
    """Format a kernel return value as traces print it: ``-EBUSY``, ``0``, ``3``; ``…`` for a
    call that has not returned (``pasidsim.step.IN_PROGRESS``)."""
    if ret == -(1 << 40):
        return "…"
    if ret < 0:
        return "-" + errname(ret)
    return str(ret)


class KernelError(OSError):
    """A kernel call failed with ``-errno``.

    Attributes:
        errno: the positive errno value (``errno.EBUSY`` …), as ``OSError.errno``.
        function: the kernel function that failed (``"iommu_sva_bind_device"``).
        detail: which argument or condition was rejected.
    """

    def __init__(self, err: int, function: str, detail: str = "") -> None:
        err = abs(err)
        msg = f"{function}: -{errname(err)}"
        if detail:
            msg += f" ({detail})"
        super().__init__(err, msg)
        self.function = function
        self.detail = detail

    def __str__(self) -> str:  # OSError's default repeats the errno as "[Errno 16]"
        return self.strerror or ""


class ModelUsageError(ValueError):
    """The library was used wrongly: unknown id, wrong type, inconsistent configuration."""


class ModelInternalError(RuntimeError):
    """A bug in pasidsim: a transition that its lifecycle table does not allow."""


class KernelDeadlock(RuntimeError):
    """A kernel call of the modelled design never returns: its context sleeps on a lock that
    it, or a context waiting on it, holds (invariant L1).  Raised by the
    :class:`~pasidsim.system.System` facade; ``function`` is the call, ``state`` the hung
    machine."""

    def __init__(self, function: str, message: str, state=None) -> None:
        super().__init__(f"{function}: {message}")
        self.function, self.state = function, state


from enum import IntEnum, unique  # noqa: E402


@unique
class Warn(IntEnum):
    """Where the kernel ``WARN_ON()``s and carries on, the state records one of these with two
    integer arguments and nothing else changes."""

    FREE_INVALID_PASID = 1  # iommu_free_global_pasid(IOMMU_PASID_INVALID)
    FREE_UNALLOCATED_PASID = 2  # ida_free() of an ID that is not allocated
    UNUSE_DEFAULT_DOMAIN = 3  # iommu_device_unuse_default_domain(): !owner_cnt or PASIDs attached
    RELEASE_DMA_OWNER = 4  # __iommu_release_dma_ownership(): !owner_cnt || !owner || PASIDs
    CLAIM_NULL_OWNER = 5  # iommu_*_claim_dma_owner(…, NULL)
    DETACH_WRONG_DOMAIN = 6  # iommu_detach_device(): domain is not the group's / group not singleton
    IOASID_UNKNOWN = 7  # ioasid_get/put/free of an unknown IOASID
    IOASID_WRONG_SET = 8  # ioasid_free with a set that does not own the IOASID
    ALLOCATOR_NOT_REGISTERED = 9  # ioasid_unregister_allocator of unknown ops
    ALLOCATOR_ORPHANS = 10  # last custom allocator removed with outstanding IOASIDs
    REPLACE_SAME_HANDLE = 11  # iommu_replace_device_pasid with the handle already stored
    USE_AFTER_FREE = 12  # a kernel path touched an mm / iommu_mm after the mmdrop that freed it
    MM_EXIT_LEAK = 13  # E0: mm_exit callback returned non-zero ("possible leak of PASID")
    BUG_ON = 14  # pre-E8 VFIO BUG_ON: the kernel would have crashed
    PASID_PUT_UNDERFLOW = 15  # a device PASID reference put more often than taken
    IOPF_FLUSH_NO_PARAM = 16  # iopf_queue_flush_dev() on a device without fault param
    RESET_UNDERFLOW = 17  # pci_dev_reset_iommu_done() without a matching prepare
    SLEEP_IN_ATOMIC = 18  # __might_sleep(): a sleeping lock or allocation in atomic context
    INCONSISTENT_LOCK_STATE = 19  # lockdep: a spinlock taken in IRQ context and with IRQs on
    MMU_NOTIFIER_REGISTER_BUG = 20  # mmu_notifier_register() on an mm with mm_users == 0
    PCI_PASID_ENABLED = 21  # pci_enable_pasid(): PASID already enabled (WARN_ON, -EBUSY)
    PCI_PASID_NOT_ENABLED = 22  # pci_disable_pasid(): PASID not enabled (WARN_ON)
    IOPF_GROUP_USE_AFTER_FREE = 23  # the IOPF worker ran a group iopf_queue_remove_device freed
    DMA_OWNER_NOT_DEFAULT = 24  # enum v4: user ownership set while a non-default domain is attached
    IOPF_DISABLE_UNBALANCED = 25  # intel_iommu_disable_iopf() without a count (or PRI) to drop
    DOMAIN_USE_AFTER_FREE = 26  # iommu_domain_free() of a domain a group or PASID entry still uses

    def describe(self, a: int = 0, b: int = 0) -> str:
        return f"WARN {self.name.lower()}({a}, {b})"
