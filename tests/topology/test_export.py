"""The unit → group → device views of a topology: full JSON, text tree and the matplotlib
picture (pasidsim.topology.export / .draw, `pasidsim topology --json/--tree/--svg`), on the
real dumps of tests/data/topologies."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner
from rich.console import Console

from pasidsim.cli import main
from pasidsim.machines import default_config
from pasidsim.topology import load_topology, topology_summary
from pasidsim.topology.export import hierarchy, tree

DATA = Path(__file__).resolve().parents[1] / "data" / "topologies"
CFL = DATA / "intel-cfl-hp-laptop-nvidia-tu117-lspci-vv.txt"
SPR = DATA / "spr-dsa-iaa-iommu-tree-by-dmar.txt"
EMR = DATA / "intel-emr-dsa-lspci-vvv-excerpt-email.txt"


def _devices(h: dict) -> list[dict]:
    return [d for u in h["units"] for g in u["groups"] for d in g["devices"]]


def _text(renderable) -> str:
    console = Console(record=True, width=200, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# -- JSON ---------------------------------------------------------------------------------------

def test_json_lists_every_device_of_the_dump_once_with_its_fields():
    topo = load_topology(CFL)
    h = hierarchy(topo)
    names = [d["name"] for d in _devices(h)]
    assert sorted(names) == sorted(topo.functions)          # every PCI function, once
    assert len(names) == topology_summary(topo)["functions"] == 34
    igpu = next(d for d in _devices(h) if d["name"] == "0000:00:02.0")
    assert igpu["driver"] == "i915" and igpu["pasid_present"] is True
    assert igpu["pasid_width"] == 20 and igpu["pasid_enabled"] is False
    assert igpu["ats_present"] is True and igpu["pri_present"] is True
    assert igpu["device_name"] == "Intel Corporation CoffeeLake-H GT2 [UHD Graphics 630]"
    assert igpu["vendor_id"] is None         # lspci -vv without -nn prints no ids: unknown
    assert igpu["unit_in_dump"] is None


def test_json_unknown_capabilities_are_null_not_false():
    # an IOMMU-group listing with `lspci -nn` lines shows no capabilities at all
    h = hierarchy(load_topology(SPR))
    dsa = next(d for d in _devices(h) if d["name"] == "0000:6a:01.0")
    assert dsa["caps_visible"] is None and dsa["device_id"] == "0b25"
    for key in ("pasid_present", "pasid_width", "ats_present", "pri_present", "acs_present"):
        assert dsa[key] is None


def test_status_cap_minus_means_no_capabilities():
    # lspci -vv: the ISA bridge's "Status: Cap- ..." says it has no capability list, so no
    # PASID/ATS/PRI either (before, the importer left them unknown)
    h = hierarchy(load_topology(CFL))
    isa = next(d for d in _devices(h) if d["name"] == "0000:00:1f.0")
    assert isa["caps_visible"] is True
    assert (isa["pasid_present"], isa["ats_present"], isa["pri_present"]) == (False,) * 3


def test_json_synthetic_unit_and_made_group_are_flagged():
    h = hierarchy(load_topology(CFL))
    [unit] = h["units"]
    assert unit["name"] == "iommu0" and unit["synthetic"] is True
    assert unit["max_pasids"] is None and unit["model_max_pasids"] == 1 << 20
    h = hierarchy(load_topology(EMR))                        # one device, no group in the dump
    [group] = h["units"][0]["groups"]
    assert group["in_dump"] is False and group["number"] is None


def test_json_spr_units_groups_and_vfio_unknown():
    h = hierarchy(load_topology(SPR))
    assert [u["name"] for u in h["units"]] == [f"dmar{i}" for i in range(20)]
    assert not any(u["synthetic"] for u in h["units"])
    dmar19 = h["units"][-1]
    g57 = next(g for g in dmar19["groups"] if g["name"] == "57")
    assert [d["name"] for d in g57["devices"]] == ["0000:00:14.0", "0000:00:14.2"]
    assert g57["in_dump"] is True and g57["number"] == 57
    # a listing shows no drivers: whether VFIO could claim the group is unknown
    assert g57["vfio_assignable"] == "unknown"
    assert sum(len(u["groups"]) for u in h["units"]) == 462


def test_json_of_the_default_machine_has_the_config_fields():
    h = hierarchy(default_config())
    dsa0 = next(d for d in _devices(h) if d["name"] == "dsa0")
    assert dsa0["pasid_bits"] == 20 and dsa0["ats"] and dsa0["pri"]
    assert dsa0["driver"] == "idxd" and dsa0["model_max_pasids"] == 1 << 20
    pch = next(g for u in h["units"] for g in u["groups"] if g["name"] == "pch")
    assert [d["name"] for d in pch["devices"]] == ["hda", "smbus"]
    assert pch["in_dump"] is None


def test_cli_json_keeps_the_counts_and_adds_the_topology():
    d = json.loads(invoke("topology", str(SPR), "--json").output)
    assert d["groups"] == 462 and d["units"] == 20           # the counts, as before
    assert len(d["topology"]["units"]) == 20
    d = json.loads(invoke("topology", str(SPR), "--json", "--group", "57").output)
    assert d["groups"] == 462                                # counts stay whole-machine
    [unit] = d["topology"]["units"]
    assert unit["name"] == "dmar19" and [g["name"] for g in unit["groups"]] == ["57"]


# -- tree ---------------------------------------------------------------------------------------

def test_tree_of_a_laptop_dump():
    out = _text(tree(load_topology(CFL)))
    # the dump names no unit: the model's unit is flagged as assumed, and what it assumes
    # (the PASID limit, SVA) is shown as such, not as read from the dump
    assert ("iommu0 (intel-iommu; not in the dump: assumed for the model; max_pasids ?; SVA ?) "
            "[assumed 2**20, SVA yes]") in out
    lines = out.splitlines()
    i = next(k for k, ln in enumerate(lines) if "group 2 (3 devices; VFIO no)" in ln)
    assert ("01:00.0 [nvidia] VGA compatible controller · no PASID · no ATS · no PRI"
            in lines[i + 2])
    assert any("00:02.0 [i915] VGA compatible controller · PASID 20 bits (off) · ATS · PRI"
               in ln for ln in lines)
    assert any("00:1f.0 ISA bridge · no PASID · no ATS · no PRI" in ln for ln in lines)


def test_cli_tree_with_a_group_and_a_device():
    res = invoke("topology", str(SPR), "--group", "57", "--device", "6a:01.0", "--tree")
    assert res.exit_code == 0
    out = res.output.splitlines()
    assert out[0] == f"machine: {SPR.name}"
    assert "dmar15 (intel-iommu; max_pasids ?; SVA ?) [assumed 2**20, SVA yes]" in out[1]
    assert "6a:01.0 System peripheral 8086:0b25 · PASID/ATS/PRI ?" in out[3]
    assert "group 57 (2 devices; VFIO yes?)" in res.output
    assert sum("group " in ln for ln in out) == 2


def test_cli_tree_unknown_group_is_bad_input():
    res = CliRunner().invoke(main, ["topology", str(SPR), "--tree", "--group", "9999"])
    assert res.exit_code == 2 and "no such IOMMU group" in res.stderr


# -- picture ------------------------------------------------------------------------------------

def test_svg_of_a_dump_draws_every_device_with_its_badges(tmp_path):
    from pasidsim.topology.draw import draw
    out = tmp_path / "cfl.svg"
    assert draw(load_topology(CFL), out) == 34
    root = ET.parse(out).getroot()
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts.count("PASID 20b") == 1                     # the iGPU only
    assert texts.count("no PASID") == 33 and texts.count("PASID ?") == 0
    assert sum(t.startswith("group ") for t in texts) == 27
    assert any(t.startswith("01:00.0 [nvidia]") for t in texts)
    first = out.read_bytes()
    draw(load_topology(CFL), out)
    assert out.read_bytes() == first                        # deterministic


def test_cli_svg_and_png_with_a_selection(tmp_path):
    svg, png = tmp_path / "g.svg", tmp_path / "g.png"
    res = invoke("topology", str(SPR), "--group", "57", "--svg", str(svg))
    assert res.exit_code == 0 and res.stdout == "" and "(2 device rows)" in res.stderr
    assert b"00:14.2" in svg.read_bytes()
    res = invoke("topology", "--svg", str(png))
    assert res.exit_code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_svg_bad_suffix_is_bad_input(tmp_path):
    res = CliRunner().invoke(main, ["topology", "--svg", str(tmp_path / "x.txt")])
    assert res.exit_code == 2 and "must end in .svg or .png" in res.stderr


def test_readme_tree_excerpt_is_the_real_output():
    """The README's `pasidsim topology --tree` block shows lines of the real output, in
    order (`…` stands for the lines left out)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("$ pasidsim topology --tree\n", 1)[1].split("```", 1)[0]
    shown = [ln for ln in block.splitlines() if ln.strip() and ln.strip() != "…"]
    real = invoke("topology", "--tree").output.splitlines()
    pos = [real.index(ln) for ln in shown]
    assert pos == sorted(pos) and len(shown) >= 10
