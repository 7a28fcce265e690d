"""VFIO: the vfio-pci driver (device cdev bound to iommufd) and the legacy group/container path.

vfio-pci is ``driver_managed_dma``: binding it to a device does not count a DMA-API user; DMA
ownership is claimed when user space attaches the device to an IOMMU context:

- device cdev (v6.6+, drivers/vfio/device_cdev.c): ``open(/dev/vfio/devices/vfioN)`` gives a
  file; ``VFIO_DEVICE_BIND_IOMMUFD`` (:func:`vfio_device_bind_iommufd`) calls
  ``iommufd_device_bind(ictx, dev)``, which claims ownership with the iommufd context as cookie;
  the file is then the ``iommufd_device`` (see :mod:`pasidsim.iommufd`).  ``release``
  (``vfio_df_iommufd_unbind`` → ``vfio_iommufd_physical_unbind``) detaches the RID and every
  PASID of the device, then ``iommufd_device_unbind`` releases the ownership.
- legacy group/container (drivers/vfio/group.c, container.c): ``VFIO_GROUP_GET_STATUS``
  (:func:`vfio_group_get_status`), ``VFIO_GROUP_SET_CONTAINER`` → ``vfio_container_attach_group``
  → ``iommu_group_claim_dma_owner(group, cookie)`` (:func:`vfio_group_set_container`),
  ``VFIO_GROUP_UNSET_CONTAINER`` → ``iommu_group_release_dma_owner``
  (:func:`vfio_group_unset_container`).  A container is an int cookie (> 0).
"""

from __future__ import annotations

from ..errors import EBADF, EINVAL, ModelUsageError
from ..group import iommu_detach_group, iommu_group_claim_dma_owner, iommu_group_release_dma_owner
from ..iommufd import idev_bind, idev_teardown
from ..ops_tables import dev_driver_ops
from ..state import SystemState
from .base import Driver


class VfioPciDriver(Driver):
    """vfio-pci (``kind: vfio-pci``; configure it with ``driver_managed_dma: true``)."""

    kind = "vfio-pci"
    vfio_device = True

    def open(self, s: SystemState, file: int, tid: int) -> tuple[SystemState, int]:
        """Open of the device cdev: a file not yet bound to any iommufd context."""
        return s, 0

    def mmap(self, s: SystemState, file: int, pgoff: int = 0) -> tuple[SystemState, int]:
        """A BAR mapping (a normal mapping, copied by fork)."""
        return s, 0

    def release(self, s: SystemState, file: int) -> SystemState:
        """``vfio_df_iommufd_unbind``: detach everything, then unbind from iommufd."""
        if s.files[file].drvdata:
            s = idev_teardown(s, file)
        return s

    def remove(self, s: SystemState, dev: int) -> SystemState:
        """Driver unbind (``vfio_unregister_group_dev`` waits for users; modeled as each bound
        device file being unbound from iommufd now)."""
        for fid, f in sorted(s.files.items()):
            if f.dev == dev and f.mm and f.drvdata:
                s = idev_teardown(s, fid)
        return s


def _is_vfio(s: SystemState, dev: int) -> bool:
    return isinstance(dev_driver_ops(s, dev), VfioPciDriver)


def vfio_device_bind_iommufd(s: SystemState, tid: int, fd: int,
                             ictx: int) -> tuple[SystemState, int]:
    """``ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, {iommufd: ictx})`` by task ``tid``.

    Args:
        fd: an open vfio device cdev file of the task's process.
        ictx: an iommufd context (:func:`pasidsim.iommufd.iommufd_ctx_create`).
    Returns: the device's iommufd id (the file id, used as ``idev``); -EBADF (fd not open);
        -EINVAL (not a vfio-pci device file, or already bound); the errors of
        ``iommufd_device_bind`` (-ENODEV no group, -EPERM group owned by DMA-API drivers or
        another context, -EBUSY, -EINVAL bad context).
    Models: drivers/vfio/device_cdev.c ``vfio_df_ioctl_bind_iommufd``.
    """
    t = s.tasks.get(tid)
    if t is None:
        raise ModelUsageError(f"unknown or exited task {tid}")
    if fd not in s.procs[t.pid].files:
        return s, -EBADF
    f = s.files[fd]
    if not _is_vfio(s, f.dev) or f.drvdata:
        return s, -EINVAL
    s, ret = idev_bind(s, fd, ictx)
    return s, (fd if ret == 0 else ret)


def vfio_group_get_status(s: SystemState, group: int, container: int) -> tuple[SystemState, int]:
    """``VFIO_GROUP_GET_STATUS``: 1 when the group is viable (no DMA-API driver bound to any
    member, i.e. ``owner_cnt == 0``, or it is already owned through ``container``), else 0.
    Models: drivers/vfio/group.c ``vfio_group_ioctl_get_status``."""
    grp = s.groups[group]
    return s, int(grp.owner_cnt == 0 or (container > 0 and grp.owner == container))


def vfio_group_set_container(s: SystemState, group: int, container: int) -> tuple[SystemState, int]:
    """``VFIO_GROUP_SET_CONTAINER``: claim the group's DMA ownership for ``container``.

    Returns 0; -EBADF (container <= 0: not a container fd); -EINVAL (this container is already
    set); the errors of ``iommu_group_claim_dma_owner``: -EPERM (a member is bound to a
    DMA-API driver, or the group is owned by someone else), -EBUSY (a non-default domain or a
    PASID is attached), -EINVAL (``require_direct`` member: the blocking domain is refused).
    Models: drivers/vfio/container.c ``vfio_container_attach_group``.
    """
    if container <= 0:
        return s, -EBADF
    if s.groups[group].owner == container:
        return s, -EINVAL
    return iommu_group_claim_dma_owner(s, group, container)


def vfio_group_unset_container(s: SystemState, group: int,
                               container: int) -> tuple[SystemState, int]:
    """``VFIO_GROUP_UNSET_CONTAINER``: detach the container's domain (if any) and release the
    ownership; the group returns to its default domain.  Returns 0; -EINVAL when
    ``container`` does not own the group.
    Models: drivers/vfio/container.c ``vfio_group_detach_container``."""
    grp = s.groups[group]
    if container <= 0 or grp.owner != container:
        return s, -EINVAL
    if grp.domain and grp.domain != grp.blocking_domain:
        s, _ = iommu_detach_group(s, grp.domain, group)
    return iommu_group_release_dma_owner(s, group)


__all__ = ["VfioPciDriver", "vfio_device_bind_iommufd", "vfio_group_get_status",
           "vfio_group_set_container", "vfio_group_unset_container"]
