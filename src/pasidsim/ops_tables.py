"""The ops tables the kernel dispatches through, so that no module imports the layer above.

- :data:`DRIVER_OPS`: driver kind -> the driver's callbacks (an object with ``probe``,
  ``remove``, ``open``, ``release``, ``mmap``, ``mm_exit``: the model's ``file_operations`` /
  ``pci_driver`` / the io_mm ``mm_exit`` op), as :class:`pasidsim.drivers.base.Driver` defines
  them.  The kernel core reaches a driver only through this table.
- :data:`MMU_NOTIFIER_OPS`: name -> ``release(state, mm) -> state`` of an mmu-notifier that a
  design registers on every bound mm (the 2018 io_mm RFC's ``iommu_notifier_release``).

Both are filled explicitly by :func:`pasidsim.ops.build` (built-in drivers) and by
:func:`pasidsim.drivers.register` (plug-ins of the user); no module fills them as a side effect
of being imported.

Kernel sources modeled: include/linux/fs.h ``struct file_operations``, include/linux/device/
driver.h ``struct device_driver``, include/linux/mmu_notifier.h ``struct mmu_notifier_ops``.
"""

from __future__ import annotations

from typing import Any, Callable

from .errors import ModelUsageError
from .state import SystemState

DRIVER_OPS: dict[str, Any] = {}
MMU_NOTIFIER_OPS: dict[str, Callable[[SystemState, int], SystemState]] = {}


def driver_ops(s: SystemState, drv: int) -> Any:
    """The callbacks of driver index ``drv`` (by its configured kind).  ModelUsageError when
    no driver of that kind is registered."""
    kind = s.config.drivers[drv].kind
    try:
        return DRIVER_OPS[kind]
    except KeyError:
        raise ModelUsageError(
            f"driver {s.config.drivers[drv].name!r}: no plug-in for kind {kind!r}") from None


def dev_driver_ops(s: SystemState, dev: int) -> Any:
    """The callbacks of the driver bound to device ``dev``, or None when none is bound."""
    drv = s.devs[dev].driver
    return None if drv < 0 else driver_ops(s, drv)


def file_driver_ops(s: SystemState, file: int) -> Any:
    """``file->f_op``: the callbacks of the driver the file was opened with, even after that
    driver was unbound from the device (or None for a file opened with no driver)."""
    f = s.files[file]
    drv = f.drv if f.drv >= 0 else s.devs[f.dev].driver
    return None if drv < 0 else driver_ops(s, drv)


__all__ = ["DRIVER_OPS", "MMU_NOTIFIER_OPS", "driver_ops", "dev_driver_ops", "file_driver_ops"]
