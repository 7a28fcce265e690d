"""Writing output files whole or not at all: :mod:`pasidsim.outfile`, re-exported here for
the reports and the commands."""

from __future__ import annotations

from ..outfile import write_bytes_atomic, write_text_atomic

__all__ = ["write_text_atomic", "write_bytes_atomic"]
