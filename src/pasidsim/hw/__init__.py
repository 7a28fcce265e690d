"""The hardware half: a software IOMMU and devices issuing PASID-tagged DMA.

Hardware state lives in :class:`~pasidsim.state.SystemState` like the rest, and hardware events
are operations of the one :func:`~pasidsim.step.step` (registered in :mod:`pasidsim.ops`):
``dma`` (:mod:`.translate`), ``wq_submit``, ``dma_complete``, ``wq_drain`` (:mod:`.wq`); the
IOTLB and device ATCs are :mod:`.cache`.

The hardware never calls the kernel: what it reports (a page request) it queues as deferred
work in the state (:class:`~pasidsim.state.Work` PAGE_REQUEST), which the kernel's fault
handler (:mod:`pasidsim.iopf`) consumes.  It imports only the state, the errors and the PASID
space's device references (:func:`pasidsim.pasid.pasid_get`/``pasid_put``: a queued descriptor
or a programmed PASID-table entry holds its PASID until the device lets go of it).
"""
