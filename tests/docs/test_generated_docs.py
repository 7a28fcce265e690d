"""Every generated file under docs/ is what its generator writes now (pasidsim.report.docs):
a stale page fails with the command that refreshes it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pasidsim.report import docs


@pytest.mark.parametrize("page", docs.PAGES, ids=lambda p: p.path)
def test_generated_page_is_current(page):
    f = docs.ROOT / page.path
    assert f.is_file(), f"{page.path} is missing: run {page.command}"
    assert f.read_bytes() == page.make(), f"{page.path} is stale: run {page.command}"


def test_every_generated_docs_file_is_registered():
    """A file under docs/ is either registered as generated, hand-written, or a measurement
    (a benchmark's picture: too long to redo in a test; its script is named here)."""
    hand_written = {"docs/scenario-guide.md"}
    measured = {"docs/sim-study.png": "benchmarks/sim_study.py"}
    for path, script in measured.items():
        assert (docs.ROOT / script).is_file(), f"{path}: its script {script} is gone"
    hand_written |= set(measured)
    present = {str(p.relative_to(docs.ROOT)) for p in (docs.ROOT / "docs").iterdir()
               if p.is_file()}
    unknown = present - hand_written - {p.path for p in docs.PAGES}
    assert not unknown, (f"{sorted(unknown)}: register a generated file in "
                         "pasidsim.report.docs.PAGES, or list a hand-written one here")
    assert {p.path for p in docs.PAGES} <= present


def test_stale_names_the_refresh_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(docs, "PAGES", tuple(p for p in docs.PAGES if p.path.endswith(".md")))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "operations.md").write_text("old\n", encoding="utf-8")
    bad = docs.stale(tmp_path)
    assert [p.path for p in bad] == [p.path for p in docs.PAGES]   # changed or missing
    monkeypatch.setattr(docs, "ROOT", tmp_path)
    assert docs.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert ("docs/operations.md is stale: run python -m pasidsim.report.opsref > "
            "docs/operations.md") in err
    assert docs.main(["--write"]) == 0
    assert docs.stale(tmp_path) == []
    assert (tmp_path / "docs" / "operations.md").read_text(encoding="utf-8").startswith(
        "# Operations reference\n")


def test_module_entry_point_prints_the_operations_page():
    out = subprocess.run([sys.executable, "-m", "pasidsim.report.opsref"], capture_output=True,
                         check=True)
    assert out.stdout == (docs.ROOT / "docs" / "operations.md").read_bytes()
