"""Points where the kernel half hands over to the device/hardware half (:mod:`pasidsim.hw`).

Until the hardware model is attached these are the ideal device: it stops at once.
"""

from __future__ import annotations

from .state import SystemState


def device_stop_pasid(s: SystemState, dev: int, pasid: int) -> SystemState:
    """The driver tells device ``dev`` to stop issuing DMA tagged ``pasid`` and waits for it
    (queue disable + drain).  With no in-flight work modelled this changes nothing."""
    return s
