"""Rendering of topologies: units, groups, PASID devices and VFIO assignability."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from pasidsim.config import Config, DeviceConfig, DriverConfig, IommuUnit
from pasidsim.topology import assignability, load_topology, render_topology, topology_summary

#: Real dumps copied from ../shared/data/topologies with their provenance (SOURCES.md).
DATA = Path(__file__).resolve().parents[1] / "data" / "topologies"
needs_data = pytest.mark.skipif(not DATA.is_dir(),  # never skips: the dumps are in the repo
                                reason=f"topology dumps not found at {DATA}")


def _text(obj) -> str:
    console = Console(record=True, width=160, file=io.StringIO())
    console.print(render_topology(obj))
    return console.export_text()


@needs_data
def test_render_cfl_laptop_dgpu_group_not_assignable():
    out = _text(load_topology(DATA / "intel-cfl-hp-laptop-nvidia-tu117-lspci-vv.txt"))
    # root port 00:01.0 (pcieport) + TU117 (nvidia) + its HDA function (snd_hda_intel)
    assert ("group 2 (3 device(s)): no: member 01:00.0 bound to nvidia (DMA-API user, "
            "owner_cnt>0 → VFIO claim gives -EPERM; 1 more DMA-API member(s))") in out
    assert ("group 15 (4 device(s)): no: member 00:1f.3 bound to sof-audio-pci-intel-cnl "
            "(DMA-API user") in out
    assert "00:01.0 [pcieport], 01:00.0 [nvidia], 01:00.1 [snd_hda_intel]" in out
    assert "10 group(s) yes: all members unbound or bound to driver_managed_dma drivers" in out
    row = next(ln for ln in out.splitlines() if ln.startswith("│ 00:02.0"))
    assert "20 bits" in row and "│ no " in row and "i915" in row   # capability, disabled


@needs_data
def test_render_plx_switch_group():
    out = _text(load_topology(
        DATA / "intel-xeon-e3v6-plx-pex8748-switch-report-lspci-vvnn-dmesg.txt"))
    assert "group 2 (21 device(s)): no: member 0c:00.0 bound to mrf-pci (DMA-API user" in out
    assert any(ln.startswith("│ 2 ") and "│ 21 " in ln for ln in out.splitlines())
    assert "catch-all (INCLUDE_PCI_ALL)" in out
    assert "seen only in dmesg" in out


@needs_data
def test_render_listing_without_drivers_says_unknown():
    out = _text(load_topology(DATA / "intel-x99-iommu-group-listing-5.8-vs-5.9-email.txt"))
    assert ("45 group(s) yes if unbound: the dump does not show the bound driver of every "
            "device") in out
    assert "94 devices, 45 groups, 0 IOMMU units in the dump" in out
    assert "assumes what the dump does not show: 1 IOMMU unit(s) (iommu0)" in out


def test_render_config_reasons():
    cfg = Config.build(
        iommus=[IommuUnit("dmar0")],
        devices=[DeviceConfig("0000:00:14.0", iommu="dmar0", group="1", require_direct=True,
                              driver="xhci_hcd"),
                 DeviceConfig("0000:01:00.0", iommu="dmar0", group="2", driver="vfio-pci",
                              pasid_bits=20, ats=True),
                 DeviceConfig("0000:01:00.1", iommu="dmar0", group="2"),
                 DeviceConfig("0000:00:1f.3", iommu="dmar0", group="3",
                              driver="snd_hda_intel"),
                 DeviceConfig("0000:00:1f.0", iommu="dmar0", group="3")],
        drivers=[DriverConfig("xhci_hcd"), DriverConfig("snd_hda_intel"),
                 DriverConfig("vfio-pci", driver_managed_dma=True, kind="vfio-pci")])
    assert assignability(cfg, "1")[1].startswith("no: require_direct")
    assert assignability(cfg, "2") == (
        True, "yes: all members unbound or bound to driver_managed_dma drivers")
    assert assignability(cfg, "3") == (
        False, "no: member 00:1f.3 bound to snd_hda_intel (DMA-API user, owner_cnt>0 → VFIO "
               "claim gives -EPERM)")
    out = _text(cfg)
    assert "group 1 (1 device(s)): no: require_direct" in out
    assert ("group 3 (2 device(s)): no: member 00:1f.3 bound to snd_hda_intel (DMA-API user, "
            "owner_cnt>0 → VFIO claim gives -EPERM)") in out
    assert "1 group(s) yes" in out
    row = next(ln for ln in out.splitlines() if ln.startswith("│ 01:00.0"))
    assert "20 bits" in row and "│ ?" in row          # a Config does not know "enabled"


@needs_data
def test_summary_is_json():
    s = topology_summary(load_topology(DATA / "intel-emr-dsa-lspci-vvv-excerpt-email.txt"))
    assert json.loads(json.dumps(s))["pasid_widths"] == {"0000:f2:01.0": 20}
    assert (s["functions"], s["pasid_capable"], s["pasid_enabled"], s["ats_capable"],
            s["pri_capable"], s["groups"]) == (1, 1, 1, 1, 1, None)   # groups unknown


@needs_data
def test_render_dmesg_only_drivers_are_partial():
    out = _text(load_topology(DATA / "intel-skx-dell-t440-dmesg-8dmar-iommu-groups.txt"))
    # the driver comes from "xhci_hcd 0000:00:14.0: …" messages (dev_driver_string)
    assert "group 8 (2 device(s)): no: member 00:14.0 bound to xhci_hcd (DMA-API user" in out
    assert "yes if unbound: the dump does not show the bound driver of every device" in out
    assert "catch-all (INCLUDE_PCI_ALL); C QI DT IR EIM PT SC" in out


@needs_data
def test_units_are_listed_in_natural_order():
    """dmar2 comes before dmar10 (the units table sorts embedded numbers by value)."""
    from pasidsim.topology.render import natural_key
    assert sorted(["dmar10", "dmar2", "dmar1", "dmar"], key=natural_key) == \
        ["dmar", "dmar1", "dmar2", "dmar10"]
    out = _text(load_topology(DATA / "spr-dsa-iaa-iommu-tree-by-dmar.txt"))
    units = [w for w in out.split() if w.startswith("dmar") and w[4:].isdigit()]
    first = list(dict.fromkeys(units))
    assert first.index("dmar2") < first.index("dmar10")


@needs_data
def test_group_and_device_filters():
    """``pasidsim topology --group/--device``: only the selected groups in the group,
    PASID-device and assignment views; an unknown name is bad input (exit 2)."""
    from click.testing import CliRunner

    from pasidsim.cli import main
    dump = str(DATA / "spr-dsa-iaa-iommu-tree-by-dmar.txt")
    r = CliRunner().invoke(main, ["topology", dump, "--group", "57"], terminal_width=200)
    assert r.exit_code == 0, r.output
    groups = r.output.split("IOMMU groups")[1].split("PASID-capable")[0]
    assert "│ 57 " in groups and "00:14.0" in groups and "│ 60 " not in groups
    r = CliRunner().invoke(main, ["topology", dump, "--device", "00:14.2"], terminal_width=200)
    assert "│ 57 " in r.output.split("IOMMU groups")[1]
    r = CliRunner().invoke(main, ["topology", "--device", "dsa0"], terminal_width=200)
    section = r.output.split("IOMMU groups")[1]
    assert "dsa0" in section and "iax0" not in section
    for opt, name in (("--group", "nope"), ("--device", "zz:00.0")):
        r = CliRunner().invoke(main, ["topology", dump, opt, name])
        assert r.exit_code == 2 and name in r.output
