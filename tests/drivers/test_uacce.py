"""uacce plug-in, E0 only: the ``mm_exit`` callback stops the queue (drains the PASID) unless
the driver is configured with ``mm_exit_drains: false``."""

from __future__ import annotations

import pytest

from pasidsim.config import Config, DeviceConfig, DriverConfig, IommuUnit
from pasidsim.designs import DESIGNS
from pasidsim.step import Action
from pasidsim.system import System


@pytest.mark.parametrize("drains", [True, False])
def test_e0_mm_exit_honours_mm_exit_drains(drains):
    cfg = Config.build(iommus=[IommuUnit("smmu0", ops="arm-smmu-v3")],
                       devices=[DeviceConfig("zip0", iommu="smmu0", pasid_bits=16)],
                       drivers=[DriverConfig("hisi_zip", kind="uacce", mm_exit_drains=drains)])
    sys = System(cfg, DESIGNS["E0-io_mm"])
    sys.device_driver_attach("zip0", "hisi_zip")
    a = sys.process_create()
    fd = sys.dev_open(a, "zip0")
    sys.mmap(a, fd)
    assert sys.apply(Action.of("wq_submit", dev=0, pasid=1)) > 0  # work queued on PASID 1
    sys.task_exit(a)
    assert 1 not in sys.state.ida and not sys.state.handles
    assert len(sys.state.inflight) == (0 if drains else 1)
    # a callback that returns with work queued says so: dev_WARN "possible leak of PASID"
    from pasidsim.errors import Warn
    assert sys.state.warnings == (() if drains else ((Warn.MM_EXIT_LEAK, 0, 1),))
