"""pasidsim: the Linux IOMMU PASID subsystem as a library, simulator and model checker."""

__version__ = "0.1.0"
