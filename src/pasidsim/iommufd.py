"""iommufd: device binding with DMA ownership, IOAS/HW page tables, RID and PASID attach.

(Being written.)  Operations defined here register themselves with
:func:`pasidsim.step.register_op` at import; :mod:`pasidsim.step` imports this module last.
"""
