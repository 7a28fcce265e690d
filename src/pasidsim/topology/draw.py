"""The topology drawn with matplotlib (``pasidsim topology --svg FILE``): IOMMU units on the
left, their groups in the middle, the groups' devices on the right, one row per device, with
each device's PASID / ATS / PRI capabilities as badges.

The picture is drawn from :func:`pasidsim.topology.export.hierarchy`, so it shows what the
JSON and the tree show: an unknown capability is a grey ``?`` badge, a synthetic unit or a
group pasidsim made is labelled so.  Output is deterministic for a given input (fixed SVG
ids, no date), so a committed picture can be checked for staleness.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from ..config import Config
from ..outfile import write_bytes_atomic
from .export import device_label, group_label, hierarchy, unit_label
from .model import Topology

#: Colours of the boxes and badges.
COLORS = {"unit": "#dbe8f6", "group_ok": "#e3f2e1", "group_no": "#f7e0dc",
          "group_unknown": "#efefef", "device": "#ffffff", "yes": "#3c8d40", "no": "#b9b9b9",
          "unknown": "#8c8c8c", "edge": "#6b6b6b"}
_ROW = 0.32          # inches per device row
_WIDTH = 12.0        # inches


def _badges(dev: dict) -> list[tuple[str, str]]:
    """``(text, colour key)`` badges for PASID, ATS and PRI: yes / no / unknown."""
    if "pci" in dev:
        if not dev["pci"]:
            return []
        if not dev.get("caps_visible"):
            return [("PASID ?", "unknown"), ("ATS ?", "unknown"), ("PRI ?", "unknown")]
        width = dev.get("pasid_width")
        pasid = (f"PASID {width}b" if width is not None else "PASID ?b") \
            if dev["pasid_present"] else "no PASID"
        return [(pasid, "yes" if dev["pasid_present"] else "no"),
                _yes_no("ATS", dev["ats_present"]), _yes_no("PRI", dev["pri_present"])]
    has = dev["pasid_bits"] > 0 or bool(dev.get("pasid_cap"))
    return [(f"PASID {dev['pasid_bits']}b" if has else "no PASID", "yes" if has else "no"),
            _yes_no("ATS", dev["ats"]), _yes_no("PRI", dev["pri"])]


def _yes_no(cap: str, present: bool) -> tuple[str, str]:
    return (cap, "yes") if present else (f"no {cap}", "no")


def draw(view: Topology | Config, path: str | Path, only: set[int] | None = None,
         title: str | None = None) -> int:
    """Draw the topology to ``path`` (``.svg``, or ``.png`` at 100 dpi, by suffix).

    Args:
        view: a parsed topology or a Config.
        path: output file; its parent directory must exist.
        only: group indices to draw (see :func:`pasidsim.topology.render.select_groups`).
        title: the picture's title (default: the sources).
    Returns: the number of device rows drawn (a unit whose label is taller than its devices
        gets empty rows besides).
    Raises: ValueError for a suffix other than .svg/.png; OSError when the file cannot be
        written.
    """
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch

    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("svg", "png"):
        raise ValueError(f"{path}: the picture's file name must end in .svg or .png")
    h = hierarchy(view, only)
    labels = [unit_label(u).replace(" (", "\n(", 1).replace("; ", ";\n") for u in h["units"]]
    # a unit box is as tall as its devices, and at least as tall as its label
    spans = [max(sum(len(g["devices"]) for g in u["groups"]), 1,
                 math.ceil(((lab.count("\n") + 1) * 0.125 + 0.1) / _ROW))
             for u, lab in zip(h["units"], labels)]
    rows = max(sum(spans), 1)
    height = rows * _ROW + 1.0
    fig = Figure(figsize=(_WIDTH, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, _WIDTH)
    ax.set_ylim(height, 0)          # y grows downwards, in inches
    ax.axis("off")
    ax.text(0.15, 0.35, title or f"IOMMU topology: {', '.join(h['sources'])}",
            fontsize=11, fontweight="bold", va="center")
    ax.text(_WIDTH - 0.15, 0.35, "unit → group → device.  Groups: green VFIO-assignable "
            "now, red not, grey unknown.  Badges: green yes, light grey no, dark grey ? "
            "(not in the dump)", fontsize=7, va="center", ha="right", color="#444444")
    xu, wu, xg, wg, xd, wd = 0.15, 2.75, 3.15, 2.55, 6.0, 3.55
    xb = xd + wd + 0.1
    y = 0.75

    def box(x, y0, w, hgt, color, text, size=8.0, bold=False):
        ax.add_patch(FancyBboxPatch((x, y0 + 0.03), w, hgt - 0.06,
                                    boxstyle="round,pad=0,rounding_size=0.05",
                                    linewidth=0.6, edgecolor=COLORS["edge"], facecolor=color))
        ax.text(x + 0.08, y0 + hgt / 2, text, fontsize=size, va="center", ha="left",
                fontweight="bold" if bold else "normal", clip_on=True)

    drawn = 0
    for u, ulabel, n_u in zip(h["units"], labels, spans):
        u_top = y
        box(xu, u_top, wu, n_u * _ROW, COLORS["unit"], ulabel, 7.5, bold=True)
        for g in u["groups"]:
            n_g = len(g["devices"])
            a = g["vfio_assignable"]
            color = COLORS["group_unknown" if a == "unknown" else "group_ok" if a else "group_no"]
            glabel = group_label(g, short=True)
            box(xg, y, wg, n_g * _ROW, color, glabel.replace(" (", "\n(", 1)
                if n_g > 1 else glabel, 7.0)
            ax.plot([xu + wu, xg], [u_top + n_u * _ROW / 2, y + n_g * _ROW / 2],
                    color=COLORS["edge"], linewidth=0.5)
            g_top = y
            for d in g["devices"]:
                box(xd, y, wd, _ROW, COLORS["device"], device_label(d, caps=False)[:64], 7.0)
                ax.plot([xg + wg, xd], [g_top + n_g * _ROW / 2, y + _ROW / 2],
                        color=COLORS["edge"], linewidth=0.5)
                x = xb
                for text, key in _badges(d):
                    w = 0.12 + 0.062 * len(text)
                    ax.add_patch(FancyBboxPatch((x, y + 0.07), w, _ROW - 0.14,
                                                boxstyle="round,pad=0,rounding_size=0.04",
                                                linewidth=0, facecolor=COLORS[key]))
                    ax.text(x + w / 2, y + _ROW / 2, text, fontsize=6.5, va="center",
                            ha="center", color="white" if key != "no" else "#333333")
                    x += w + 0.06
                y += _ROW
                drawn += 1
        y = u_top + n_u * _ROW
    with matplotlib.rc_context({"svg.hashsalt": "pasidsim", "svg.fonttype": "none",
                                "font.family": "DejaVu Sans"}):
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=100,
                    metadata={"Date": None} if fmt == "svg" else {"Software": None})
    write_bytes_atomic(path, buf.getvalue())  # whole or not at all, even on Ctrl-C
    return drawn


__all__ = ["COLORS", "draw"]
