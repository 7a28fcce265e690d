"""Points where the kernel half hands over to the device/hardware half (:mod:`pasidsim.hw`)."""

from __future__ import annotations

from .state import SystemState


def device_stop_pasid(s: SystemState, dev: int, pasid: int) -> SystemState:
    """The driver tells device ``dev`` to stop issuing DMA tagged ``pasid`` and waits for it:
    every descriptor queued for (dev, pasid) is completed now (idxd "Drain PASID", uacce
    ``hisi_qm_stop_qp``), while the PASID is still bound."""
    from .hw.wq import wq_drain
    s, _n = wq_drain(s, dev, pasid)
    return s
