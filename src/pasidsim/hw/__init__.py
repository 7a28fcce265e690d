"""The hardware half: a software IOMMU and devices issuing PASID-tagged DMA (being written)."""
