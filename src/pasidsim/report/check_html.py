"""The HTML report of ``pasidsim check --html``: a Jinja2 template (``templates/check.html.j2``).

One self-contained page (inline CSS, inline SVG, no script, nothing loaded from anywhere):

- a scenario × design grid coloured by outcome — green Always, amber a breakage the design is
  expected to show (✓ its documented one), red ✗ not as expected, yellow not exhaustive —
  each violating cell linked to its counterexample;
- the design legend (short label, full name, one line of what it is);
- per counterexample: invariant, message, whether expected, the saved file to replay, its
  sequence diagram (the breaking step in red) and its trace with what each step changed in
  the state (:func:`~pasidsim.report.itf.run_diffs`).

Cells arrive as the JSON dicts of ``Cell.to_json()`` (:class:`~.schemas.CellOutput`): this
module sits below the checker and knows nothing of it.
"""

from __future__ import annotations

import re
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape


def _env() -> Environment:
    return Environment(loader=PackageLoader("pasidsim.report", "templates"),
                       autoescape=select_autoescape(["html", "j2"]), trim_blocks=False)


def anchor(scenario: str, design: str) -> str:
    """The HTML id of a cell's counterexample section."""
    return "cex-" + re.sub(r"[^A-Za-z0-9_-]", "_", f"{scenario}--{design}")


def _grid_cell(c: dict) -> dict:
    if c["verdict"] == "Always":
        css, text = "always", f"A {c['states']}"
    elif c["verdict"] == "Bounded":
        css, text = "bounded", f"B {c['states']} not exhaustive"
    else:
        css, text = "broken", f"{c['verdict'][0]} {c['invariant']}@{c['length']}"
    if not c["ok"] and c["verdict"] != "Bounded":
        css = "failed"
        text += f" ✗ expected {c['expected'] or 'pass'}"
    elif c["documented"]:
        text += " ✓"
    title = f"{c['scenario']} on {c['design']}: {c['verdict']}"
    if c["invariant"]:
        title += f" — {c['invariant']}: {c['message']}"
    return {"css": css, "text": text, "title": title, "anchor": None}


def _counterexample(c: dict, path: str) -> dict:
    """Replay a saved counterexample (``pasidsim run``'s runner, so the picture is the saved
    file's) and gather what the template shows."""
    from ..scenario.compile import compile_scenario
    from ..scenario.loader import load_scenario
    from ..scenario.runner import run_scenario
    from .itf import run_diffs
    from .mermaid import marked_rows, svg_text
    x = {"scenario": c["scenario"], "design": c["design"], "invariant": c["invariant"],
         "kind": c["kind"], "message": c["message"], "ok": c["ok"],
         "expected": c["expected"] or "pass", "anchor": anchor(c["scenario"], c["design"]),
         "file": path, "itf": str(Path(path).with_suffix(".itf.json")), "error": None}
    try:
        res = run_scenario(compile_scenario(load_scenario(path)), keep_states=True)
        diffs = run_diffs(res)
        x["svg"] = svg_text(res)
        rows = marked_rows(res)
        setup = [r.index for r in rows if r.actor == "setup" and not r.failures]
        x["setup"] = (f"{setup[0]}–{setup[-1]}" if len(setup) > 1 else str(setup[0])) \
            if setup else ""
        x["rows"] = [{"index": r.index, "actor": r.actor, "call": r.call, "ret": r.ret,
                      "bad": bool(r.failures), "failures": list(r.failures),
                      "diff": diffs[r.index - 1]} for r in rows if r.index not in setup]
    except Exception as e:  # a report must not fail because one replay does
        x["error"] = f"{type(e).__name__}: {e}"
    return x


def check_html(cells: list[dict], saved: list[str], designs: list[dict]) -> str:
    """The report's HTML text.

    Args:
        cells: ``Cell.to_json()`` dicts, in matrix order.
        saved: the counterexample files written (``<scenario>--<design>.yaml``).
        designs: ``{"name", "label", "description"}`` per design column, in order.
    """
    by_file = {Path(p).stem: p for p in saved}
    grid, cexs = {}, []
    for c in cells:
        g = _grid_cell(c)
        path = by_file.get(f"{c['scenario']}--{c['design']}")
        if path is not None:
            g["anchor"] = anchor(c["scenario"], c["design"])
            cexs.append(_counterexample(c, path))
        grid[(c["scenario"], c["design"])] = g
    scenarios = list(dict.fromkeys(c["scenario"] for c in cells))
    failed = [c for c in cells if not c["ok"]]
    return _env().get_template("check.html.j2").render(
        cells=cells, scenarios=scenarios, designs=designs, grid=grid, counterexamples=cexs,
        total_states=sum(c["states"] for c in cells), failed=failed, ok=not failed)


__all__ = ["check_html", "anchor"]
