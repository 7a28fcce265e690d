"""Points where the kernel half hands over to the device/hardware half (:mod:`pasidsim.hw`)."""

from __future__ import annotations

from .hw.wq import wq_drain
from .state import SystemState
from .work import run_irq_work


def device_stop_pasid(s: SystemState, dev: int, pasid: int) -> SystemState:
    """The driver tells device ``dev`` to stop issuing DMA tagged ``pasid`` and waits for it:
    every descriptor queued for (dev, pasid) is completed now (idxd "Drain PASID", uacce
    ``hisi_qm_stop_qp``), while the PASID is still bound."""
    s, _n = wq_drain(s, dev, pasid)
    return run_irq_work(s)  # page requests the drained work raised: handled while it waits
