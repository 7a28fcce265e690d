"""The vfio driver plug-in (being written)."""
