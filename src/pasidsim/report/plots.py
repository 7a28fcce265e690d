"""Pictures of a check (matplotlib, no display needed): states per BFS level.

:func:`levels_plot` draws, for each search, the distinct states of each BFS level (log
scale), solid for the searches as run and dashed for the same cells searched without
reductions when the caller gives both: where the reductions bite is where the curves part.
"""

from __future__ import annotations

from pathlib import Path


def levels_plot(series: list[tuple[str, list[int], bool]], path: str | Path,
                title: str = "pasidsim check: distinct states per BFS level") -> None:
    """Write the plot to ``path`` (PNG, SVG or PDF by its suffix; written to a temporary file
    and renamed).

    Args:
        series: ``(label, states per level, reduced)`` per line; ``reduced`` False draws it
            dashed (the unreduced reference).
        path: the output file.
    Raises:
        ValueError: a suffix matplotlib cannot write, or no series.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .output import write_bytes_atomic
    if not series:
        raise ValueError("levels_plot: no search to draw")
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    if fmt not in ("png", "svg", "pdf"):
        raise ValueError(f"--plot {path}: the picture must be .png, .svg or .pdf")
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    by_cell: dict[str, str] = {}
    for label, levels, reduced in series:
        key = label.split(" (")[0]
        colour = by_cell.setdefault(key, colours[len(by_cell) % len(colours)])
        ax.plot(range(len(levels)), levels, linestyle="-" if reduced else "--", marker=".",
                color=colour, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("BFS level (steps from the initial state)")
    ax.set_ylabel("distinct states first reached")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())


__all__ = ["levels_plot"]
