"""The amdgpu driver plug-in (being written)."""
