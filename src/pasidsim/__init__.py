"""pasidsim: the Linux IOMMU PASID subsystem as a library, simulator and model checker.

The library's front door (imported on first use, so ``import pasidsim`` stays cheap)::

    from pasidsim import Config, DeviceConfig, DriverConfig, IommuUnit, System, KernelError
    sys = System(Config.build(...), DESIGNS["E6-mmput-free"])   # or get_policy(name)

``System`` (:mod:`pasidsim.system`) calls the kernel model by the kernel's function names and
raises :class:`KernelError` (with ``.errno``) for a failed call; ``Policy`` values are the
designs (``CURRENT`` is today's kernel, ``DESIGNS`` every named one).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "System": "pasidsim.system", "Action": "pasidsim.step",
    "Config": "pasidsim.config", "DeviceConfig": "pasidsim.config",
    "DriverConfig": "pasidsim.config", "IommuUnit": "pasidsim.config",
    "KernelError": "pasidsim.errors", "ModelUsageError": "pasidsim.errors",
    "Policy": "pasidsim.policy", "CURRENT": "pasidsim.policy",
    "DESIGNS": "pasidsim.designs", "get_policy": "pasidsim.designs",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'pasidsim' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
