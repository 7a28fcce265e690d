"""Registration of the hardware operations with :mod:`pasidsim.step` (imported by it last)."""

from __future__ import annotations

from ..step import register_op
from . import iopf, mem, translate, wq

for _fn in (translate.dma, wq.wq_submit, wq.dma_complete, wq.wq_drain):
    register_op(_fn, kind="hw", atomic=False)
for _fn in (iopf.iommu_report_device_fault, iopf.iopf_handle):
    register_op(_fn, kind="hw", atomic=False)
for _fn in (iopf.iopf_queue_flush_dev, iopf.iopf_queue_add_device, iopf.iopf_queue_remove_device,
            mem.iommu_map, mem.iommu_unmap):
    register_op(_fn)
for _fn in (mem.mmap_anon, mem.mprotect, mem.munmap_range):
    register_op(_fn, kind="process")
register_op(mem.touch, kind="process", atomic=False)
