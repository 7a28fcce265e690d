"""JSON traces are stable; Mermaid and HTML/SVG diagrams are written and self-contained."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from rich.console import Console

from pasidsim.report.json_out import TRACE_SCHEMA, dumps, result_to_dict
from pasidsim.report.mermaid import html_page, mermaid_text, svg_text, write_html, write_mermaid
from pasidsim.scenario import builtin_scenarios, compile_scenario, load_scenario, run_scenario
from pasidsim.scenario.trace import event_rows, render_result


def result(name="h1-fork-exit", design=None):
    return run_scenario(compile_scenario(load_scenario(builtin_scenarios()[name]), design=design))


def test_json_is_stable_and_complete():
    a, b = dumps(result()), dumps(result())
    assert a == b
    d = json.loads(a)
    assert d["schema"] == TRACE_SCHEMA and d["ok"] is True
    assert d["scenario"] == {"name": "h1-fork-exit", "file": "h1-fork-exit.yaml",
                             "design": "current", "demonstrates": d["scenario"]["demonstrates"]}
    ev = next(e for e in d["events"] if e["op"] == "dev_open")
    assert ev["call"].endswith("dev=dsa0)") and ev["args"]["dev"] == 0 and ev["expect"] == "ok"
    assert d["final"]["pasids_allocated"] == 0 and d["failures"] == []
    assert a == json.dumps(json.loads(a), sort_keys=True, indent=2) + "\n"


def test_json_of_a_failing_run():
    d = result_to_dict(result("h1-fork-exit", "E6-mmput-free"))
    assert d["ok"] is False and d["scenario"]["design"] == "E6-mmput-free"
    assert any(v["invariant"] == "A3" for v in d["violations"])
    assert all(f["line"] for f in d["failures"])


def test_mermaid(tmp_path):
    text = mermaid_text(result())
    assert text.startswith("sequenceDiagram\n")
    assert "participant K as kernel" in text and "->>K: dev_open(" in text
    assert ";" not in text.split("\n", 2)[2]
    write_mermaid(result(), tmp_path / "t.mmd")
    assert (tmp_path / "t.mmd").read_text() == text


def test_html_and_svg_are_self_contained(tmp_path):
    r = result("h1-fork-exit", "E6-mmput-free")
    root = ET.fromstring(svg_text(r))
    assert root.tag.endswith("svg")
    page = html_page(r)
    for bad in ("<script", "src=", "href=", "@import", "url(http"):
        assert bad not in page
    assert "<pre>sequenceDiagram" in page and "<svg" in page and "FAIL" in page
    write_html(r, tmp_path / "t.html")
    assert (tmp_path / "t.html").read_text() == page


def test_terminal_rendering_names_lines():
    r = result("h6-double-bind", "E12-no-handle-sharing")
    rows = event_rows(r)
    assert rows[0].actor == "setup" and any(row.failures for row in rows)
    console = Console(width=200, record=True)
    for part in render_result(r):
        console.print(part)
    out = console.export_text()
    assert "FAIL: h6-double-bind on design E12-no-handle-sharing" in out
    assert "h6-double-bind.yaml:17: A step 2" in out
