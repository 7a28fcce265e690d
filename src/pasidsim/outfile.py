"""Writing output files whole or not at all (the bottom layer: every layer that writes a
file, from the topology pictures to the checker's reports, uses it; ``pasidsim.report.output``
re-exports it)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same directory,
    renamed over ``path`` once complete (``os.replace``): a reader, or a run interrupted by
    Ctrl-C, sees the previous file or the new one, never half of one.  The temporary file is
    removed if writing fails.  Raises OSError as ``open`` does."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """:func:`write_text_atomic` for bytes (a checkpoint's pickle)."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                               dir=target.parent if str(target.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


__all__ = ["write_text_atomic", "write_bytes_atomic"]
