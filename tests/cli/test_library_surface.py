"""The library's front door: ``import pasidsim`` exports what a user needs, ``python -m
pasidsim`` and ``python -m pasidsim.cli`` run the same command line as ``pasidsim``."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pasidsim


def test_import_pasidsim_exports_the_library():
    from pasidsim import (CURRENT, DESIGNS, Config, DeviceConfig, IommuUnit, KernelError,
                          System, get_policy)
    import errno
    cfg = Config.build(iommus=[IommuUnit("dmar0")],
                       devices=[DeviceConfig("d", iommu="dmar0", pasid_bits=20),
                                DeviceConfig("bare", iommu=None)])
    s = System(cfg, get_policy("E6-mmput-free"))
    assert s.policy is DESIGNS["E6-mmput-free"] and DESIGNS["current"] is CURRENT
    mm = s.mm_of(s.process_create())
    with pytest.raises(KernelError) as e:
        s.iommu_sva_bind_device("bare", mm)  # no IOMMU group
    assert e.value.errno == errno.ENODEV
    assert s.iommu_sva_bind_device("d", mm) > 0
    assert {"System", "Config", "KernelError", "Policy", "DESIGNS"} <= set(dir(pasidsim))
    with pytest.raises(AttributeError):
        pasidsim.no_such_thing  # noqa: B018


@pytest.mark.parametrize("module", ["pasidsim", "pasidsim.cli"])
def test_python_dash_m_runs_every_command(module):
    r = subprocess.run([sys.executable, "-m", module, "check", "--help"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Usage: pasidsim check" in r.stdout
