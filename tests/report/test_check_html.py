"""The check HTML report: a Jinja2 page with the coloured scenario × design grid, each
violating cell linked to its counterexample (diagram, invariant, message, state changes), the
design legend; opened in a real headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from pasidsim.check.cli_check import html_report
from pasidsim.check.expected import expected_for
from pasidsim.check.runner import check_scenario
from pasidsim.cli import main
from pasidsim.report.check_html import anchor
from pasidsim.scenario import builtin_scenarios, compile_scenario, load_scenario


class _Dom(HTMLParser):
    """Elements by id, the grid's cells (class, link) and every link target."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, str] = {}
        self.cells: list[tuple[str, str | None]] = []
        self.links: list[str] = []
        self.stack: list[str] = []
        self.in_grid = False
        self.svgs_in: set[str] = set()
        self.section: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids[a["id"]] = tag
        if tag == "table" and a.get("id") == "grid":
            self.in_grid = True
        if tag == "section":
            self.section = a.get("id")
        if tag == "svg" and self.section:
            self.svgs_in.add(self.section)
        if self.in_grid and tag == "td":
            self.cells.append((a.get("class", ""), None))
        if tag == "a" and a.get("href", "").startswith("#"):
            self.links.append(a["href"][1:])
            if self.in_grid and self.cells:
                self.cells[-1] = (self.cells[-1][0], a["href"][1:])

    def handle_endtag(self, tag):
        if tag == "table":
            self.in_grid = False
        if tag == "section":
            self.section = None


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "Chromium is needed (Debian package chromium; .ci/run installs it)"
    return exe


def _browser(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp / 'profile'}", *args],
        capture_output=True, text=True, timeout=120, check=True)


def test_report_grid_and_counterexample_render_in_chromium(tmp_path):
    page = tmp_path / "r.html"
    r = CliRunner().invoke(main, ["check", "h8-unbind-after-exit", "--design", "current",
                                  "--design", "H8-unbind-uaf", "--html", str(page),
                                  "--out", str(tmp_path / "cex")])
    assert r.exit_code == 1  # a scenario checked by name must pass: H8 breaks it
    text = page.read_text()
    for loads in ('src="http', 'href="http', "url(http", "@import", "<script", "<link"):
        assert loads not in text  # works offline: nothing is fetched
    dom = _Dom()
    dom.feed(_browser("--dump-dom", page.as_uri(), tmp=tmp_path).stdout)  # as Chromium parsed it
    assert sorted(c for c, _ in dom.cells) == ["always", "failed"]
    (link,) = [href for cls, href in dom.cells if cls == "failed"]
    assert link == anchor("h8-unbind-after-exit", "H8-unbind-uaf")
    assert dom.ids.get(link) == "section" and link in dom.svgs_in  # the link lands on its diagram
    shot = tmp_path / "cex.png"
    _browser(f"--screenshot={shot}", "--window-size=1200,900", f"{page.as_uri()}#{link}",
             tmp=tmp_path)
    assert shot.stat().st_size > 10_000  # a rendered page, not an empty one


def test_report_colours_expected_breakages_and_legend():
    name = "h8-unbind-after-exit"
    exp = expected_for(name, load_scenario(builtin_scenarios()[name]).model.granularity)
    cells = []
    for design in ("current", "H8-unbind-uaf"):
        c = compile_scenario(load_scenario(builtin_scenarios()[name]), design=design)
        cells.append(check_scenario(c, scenario_name=name, design_name=design,
                                    expected=exp.get(design), documented=design != "current"))
    assert [c.ok for c in cells] == [True, True]
    page = html_report(cells, [])
    dom = _Dom()
    dom.feed(page)
    assert [cls for cls, _ in dom.cells] == ["always", "broken"]
    assert "M9@12 ✓" in page and "H8 = H8-unbind-uaf" in page
    assert "every cell as expected" in page
