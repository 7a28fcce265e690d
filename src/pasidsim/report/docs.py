"""Every generated file under ``docs/``, with the generator and the command that refreshes it.

``python -m pasidsim.report.docs --write`` regenerates them all (from a checkout: the
topology picture is drawn from a dump in ``tests/data/topologies``); ``--check`` exits 1
naming each stale file.  tests/docs/test_generated_docs.py runs the same check.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Callable, NamedTuple

from . import lifecycles, opsref

#: The checkout's root (``src/pasidsim/report/docs.py`` → three levels up).
ROOT = Path(__file__).resolve().parents[3]
#: Where the generators read their inputs (the checkout), whatever ``root`` they write to.
SOURCE_ROOT = ROOT
#: The dump drawn as the README's topology picture.
PICTURE_DUMP = "tests/data/topologies/intel-cfl-hp-laptop-nvidia-tu117-lspci-vv.txt"


class Page(NamedTuple):
    """A generated file: ``path`` relative to the root, the ``command`` that refreshes it
    alone, and ``make() -> bytes``, its expected content."""

    path: str
    command: str
    make: Callable[[], bytes]


def _topology_picture() -> bytes:
    from ..topology import load_topology
    from ..topology.draw import draw
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "topology.svg"
        draw(load_topology(SOURCE_ROOT / PICTURE_DUMP), out)
        return out.read_bytes()


PAGES: tuple[Page, ...] = (
    Page("docs/lifecycles.md", "python -m pasidsim.report.lifecycles > docs/lifecycles.md",
         lambda: lifecycles.markdown().encode("utf-8")),
    Page("docs/operations.md", "python -m pasidsim.report.opsref > docs/operations.md",
         lambda: opsref.markdown().encode("utf-8")),
    Page("docs/topology.svg", f"pasidsim topology {PICTURE_DUMP} --svg docs/topology.svg",
         _topology_picture),
)


def stale(root: Path | None = None) -> list[Page]:
    """The pages whose file under ``root`` (default :data:`ROOT`) is missing or differs from
    its generator's."""
    root = ROOT if root is None else root
    out = []
    for page in PAGES:
        f = root / page.path
        if not f.is_file() or f.read_bytes() != page.make():
            out.append(page)
    return out


def write(root: Path | None = None) -> list[str]:
    """Regenerate every page under ``root`` (default :data:`ROOT`); returns the paths
    written."""
    root = ROOT if root is None else root
    from .output import write_bytes_atomic
    done = []
    for page in PAGES:
        target = root / page.path
        target.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(target, page.make())
        done.append(page.path)
    return done


def main(argv: list[str] | None = None) -> int:
    """``--write``: regenerate; ``--check`` (default): exit 1 naming each stale page."""
    args = sys.argv[1:] if argv is None else argv
    if "--write" in args:
        for p in write():
            print(f"wrote {p}")
        return 0
    bad = stale()
    for page in bad:
        print(f"{page.path} is stale: run {page.command}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

__all__ = ["PAGES", "Page", "main", "stale", "write"]
