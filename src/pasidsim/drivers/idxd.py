"""The idxd driver plug-in (being written)."""
