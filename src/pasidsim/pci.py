"""PCI PASID capability control: enabling PASID on a function, its features and limits.

A function's PASID capability gives its Max PASID Width and the features it supports
(Execute and Privileged Mode requests); the control register enables PASID and those
features.  A virtual function has no capability of its own: it uses its physical function's,
and enabling PASID on the VF only checks that the PF has it enabled.  The IOMMU drivers enable
PASID before ATS (arm-smmu-v3 ``arm_smmu_enable_pasid``); the function itself does not check
the order.

Kernel sources modeled: drivers/pci/ats.c ``pci_enable_pasid()``, ``pci_disable_pasid()``,
``pci_pasid_features()``, ``pci_max_pasids()``, ``pci_pasid_status()`` (kernel-spec §5.2).
"""

from __future__ import annotations

from .errors import EBUSY, EINVAL, Warn
from .state import SystemState, warn

PCI_PASID_CAP_EXEC = 0x02  # Execute Permission Supported
PCI_PASID_CAP_PRIV = 0x04  # Privileged Mode Supported
PCI_PASID_CTRL_ENABLE = 0x01
PCI_PASID_CTRL_EXEC = 0x02
PCI_PASID_CTRL_PRIV = 0x04


def _pf(s: SystemState, dev: int) -> int:
    """``pci_physfn()``: the function whose capability ``dev`` uses."""
    d = s.config.devices[dev]
    return dev if d.physfn is None else s.config.device_index(d.physfn)


def _set_ctrl(s: SystemState, dev: int, ctrl: int) -> SystemState:
    devs = list(s.devs)
    devs[dev] = devs[dev]._replace(pasid_ctrl=ctrl)
    return s._replace(devs=tuple(devs))


def pci_enable_pasid(s: SystemState, dev: int, features: int = 0) -> tuple[SystemState, int]:
    """Enable PASID (and ``features``: EXEC 0x2, PRIV 0x4) on function ``dev``.

    Returns 0; for a VF: 0 when its PF has PASID enabled, else -EINVAL (nothing written).
    Errors, in the kernel's order: -EBUSY (already enabled; also WARNs); -EINVAL (no End-End
    TLP prefix support on the path; no PASID capability; ACS RR/UF not enabled on the upstream
    path; a feature the capability does not support).  On failure nothing changes.
    Models: drivers/pci/ats.c ``pci_enable_pasid()``.
    """
    d = s.config.devices[dev]
    if d.physfn is not None:
        return s, 0 if s.devs[_pf(s, dev)].pasid_ctrl & PCI_PASID_CTRL_ENABLE else -EINVAL
    if s.devs[dev].pasid_ctrl & PCI_PASID_CTRL_ENABLE:
        return warn(s, Warn.PCI_PASID_ENABLED, dev), -EBUSY
    if not d.eetlp_prefix:
        return s, -EINVAL
    if not d.has_pasid_cap:
        return s, -EINVAL
    if not d.acs_path:
        return s, -EINVAL
    if features & ~d.pasid_features:
        return s, -EINVAL
    return _set_ctrl(s, dev, PCI_PASID_CTRL_ENABLE | features), 0


def pci_disable_pasid(s: SystemState, dev: int) -> tuple[SystemState, int]:
    """Disable PASID on function ``dev``.  A VF: no-op.  Not enabled: WARN, no change.
    Returns 0.  Models: drivers/pci/ats.c ``pci_disable_pasid()``."""
    if s.config.devices[dev].physfn is not None:
        return s, 0
    if not s.devs[dev].pasid_ctrl & PCI_PASID_CTRL_ENABLE:
        return warn(s, Warn.PCI_PASID_NOT_ENABLED, dev), 0
    return _set_ctrl(s, dev, 0), 0


def pci_pasid_features(s: SystemState, dev: int) -> tuple[SystemState, int]:
    """The supported features (``PCI_PASID_CAP_EXEC | PCI_PASID_CAP_PRIV`` bits) of ``dev``'s
    PASID capability (its PF's for a VF); -EINVAL without one.
    Models: drivers/pci/ats.c ``pci_pasid_features()``."""
    pf = s.config.devices[_pf(s, dev)]
    return s, pf.pasid_features if pf.has_pasid_cap else -EINVAL


def pci_max_pasids(s: SystemState, dev: int) -> tuple[SystemState, int]:
    """``1 << Max PASID Width`` of ``dev``'s capability (its PF's for a VF): a count, 1 for a
    width of 0; -EINVAL without a capability.  Models: drivers/pci/ats.c ``pci_max_pasids()``."""
    pf = s.config.devices[_pf(s, dev)]
    return s, (1 << pf.pasid_bits) if pf.has_pasid_cap else -EINVAL


def pci_pasid_status(s: SystemState, dev: int) -> tuple[SystemState, int]:
    """The enabled features (``PCI_PASID_CTRL_EXEC | PCI_PASID_CTRL_PRIV`` bits of the control
    register; the ENABLE bit is not reported) of ``dev`` (its PF's for a VF); -EINVAL without a
    capability.  Models: drivers/pci/ats.c ``pci_pasid_status()``."""
    pf = _pf(s, dev)
    if not s.config.devices[pf].has_pasid_cap:
        return s, -EINVAL
    return s, s.devs[pf].pasid_ctrl & (PCI_PASID_CTRL_EXEC | PCI_PASID_CTRL_PRIV)


__all__ = ["pci_enable_pasid", "pci_disable_pasid", "pci_pasid_features", "pci_max_pasids",
           "pci_pasid_status", "PCI_PASID_CAP_EXEC", "PCI_PASID_CAP_PRIV"]
