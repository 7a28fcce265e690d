"""Issue #14, item 2: the topology importers never invent a group, a unit or a capability the
dump does not show.  Unknown stays unknown and is printed so; where the simulated machine
needs a value the dump lacks (a unit for every grouped device, a group per device, a PASID
limit, SVA support) it is labelled as an assumption in the text, the tree and ``--json``; the
IOMMU vendor comes from the dump; the header and ``--json`` give the same counts; valid kernel
lines are parsed, not warned about.

Each point is tested on the real dumps of tests/data/topologies, and on small synthetic
snippets (real kernel message formats) where no real dump has the case.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from pasidsim.cli import main
from pasidsim.topology import (load_topology, merge_topologies, parse_dmesg, parse_text,
                               render_topology, to_config, topology_summary)
from pasidsim.topology.export import hierarchy, tree
from pasidsim.topology.render import vfio_verdicts

DATA = Path(__file__).resolve().parents[1] / "data" / "topologies"
DUMPS = sorted(p.name for p in DATA.glob("*.txt"))
PLX = "intel-xeon-e3v6-plx-pex8748-switch-report-lspci-vvnn-dmesg.txt"
EMR = "intel-emr-dsa-lspci-vvv-excerpt-email.txt"
AMD = "amd-renoir-lucienne-asus-pn51-lspci-vvv.txt"
D05 = "arm-hisilicon-d05-smmuv3-iommu-groups-email.txt"
ALTRA = "arm-ampere-altra-navi33-smmuv3-lspci-vv-email.txt"


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False, terminal_width=250)


def _text(renderable) -> str:
    console = Console(record=True, width=250, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def _units(h: dict) -> list[dict]:
    return h["units"]


def _groups(h: dict) -> list[dict]:
    return [g for u in h["units"] for g in u["groups"]]


# -- text header and --json agree -----------------------------------------------------------

@pytest.mark.parametrize("name", DUMPS)
def test_header_counts_are_the_json_counts(name):
    """The text header prints the counts of --json: devices, groups (or "unknown"), the
    units the dump names; and the units --json lists are the dump's plus the assumed ones."""
    path = str(DATA / name)
    d = json.loads(invoke("topology", path, "--json").output)
    head = invoke("topology", path).output.split("IOMMU units\n")[0]
    head = " ".join(head.split())
    n = d["devices"]
    assert f"): {n} device{'s' if n != 1 else ''}, " in head
    if d["groups"] is None:
        assert f"groups unknown ({d['groups_unknown_reason']})" in head
    else:
        assert f", {d['groups']} group{'s' if d['groups'] != 1 else ''}" in head
    assert f", {d['units']} IOMMU unit{'s' if d['units'] != 1 else ''} in the dump" in head
    units = d["topology"]["units"]
    assert len(units) == d["model"]["units"]
    assert sum(not u["assumed"] for u in units) == d["units"]
    assert [u["name"] for u in units if u["assumed"]] == d["model"]["assumed_units"]
    if d["model"]["assumed_units"]:
        assert ("assumes what the dump does not show: "
                f"{len(d['model']['assumed_units'])} IOMMU unit(s)") in head
    assert sum(g["assumed"] for g in _groups(d["topology"])) == d["model"]["assumed_groups"]
    if d["groups"] is not None:
        assert sum(not g["assumed"] for g in _groups(d["topology"])) == d["groups"]


def test_d05_header_and_json_agree_on_zero_units():
    # before: header "1 IOMMU units" (the synthetic one), --json "units": 0
    d = json.loads(invoke("topology", str(DATA / D05), "--json").output)
    assert d["units"] == 0 and d["model"]["assumed_units"] == ["iommu0"]
    out = " ".join(invoke("topology", str(DATA / D05)).output.split())
    assert "15 devices, 9 groups, 0 IOMMU units in the dump" in out
    assert "1 IOMMU unit(s) (iommu0)" in out


# -- strict: valid lines are not warnings ---------------------------------------------------

@pytest.mark.parametrize("name", DUMPS)
def test_every_real_dump_passes_strict(name):
    """No real dump holds an unusable line: what the importer chose (the second boot of D05,
    one listing of four in the X99 mail, dmesg-only functions of the PLX report) is a note."""
    res = invoke("topology", "--strict", str(DATA / name))
    assert res.exit_code == 0, res.output
    assert not load_topology(DATA / name).warnings


def test_choices_are_notes_shown_in_the_text():
    topo = load_topology(DATA / D05)
    assert any(":67: clock restarts" in n for n in topo.notes)
    assert "1 note(s):" in _text(render_topology(topo))
    assert hierarchy(topo)["notes"] == topo.notes


SMMU_LOG = """\
[    1.023401] arm-smmu-v3 arm-smmu-v3.0.auto: option mask 0x2
[    1.023410] arm-smmu-v3 arm-smmu-v3.0.auto: IDR0.COHACC overridden by FW configuration (true)
[    1.023415] arm-smmu-v3 arm-smmu-v3.0.auto: IDR0.HTTU features(0x600000) {overridden}
[    1.023420] arm-smmu-v3 arm-smmu-v3.0.auto: ias 48-bit, oas 48-bit (features 0x001e1fbf)
[    1.024101] arm-smmu-v3 arm-smmu-v3.0.auto: allocated 65536 entries for cmdq
[    1.024230] arm-smmu-v3 arm-smmu-v3.0.auto: allocated 32768 entries for evtq
[    1.024301] arm-smmu-v3 arm-smmu-v3.0.auto: allocated 65536 entries for priq
[    1.024410] arm-smmu-v3 arm-smmu-v3.0.auto: msi_domain absent - falling back to wired irqs
[    1.031001] arm-smmu-v3 arm-smmu-v3.1.auto: ias 44-bit, oas 44-bit (features 0x00181fef)
[    2.101010] hisi_zip 0000:75:00.0: Adding to iommu group 3
""".format(overridden="overridden by FW configuration (0x0)")


def test_smmuv3_override_and_option_lines_are_parsed_not_warned(tmp_path):
    """arm-smmu-v3 probe messages (firmware overriding IDR0.COHACC / IDR0.HTTU, the ACPI
    option mask, queue sizes) were warnings, so --strict rejected a real log."""
    topo = parse_dmesg(SMMU_LOG, "smmu.log")
    assert not topo.warnings
    u0, u1 = topo.units["arm-smmu-v3.0.auto"], topo.units["arm-smmu-v3.1.auto"]
    assert u0.overrides == ["option PAGE0_REGS_ONLY", "IDR0.COHACC=true",
                            "IDR0.HTTU=0x0 (hardware 0x600000)"]
    assert (u0.options, u0.ias, u0.oas) == (2, 48, 48)
    # the feature word: SVA (bit 17), PRI (4), ATS (5), STALLS (11) are read, not assumed
    assert (u0.sva, u0.pri, u0.ats) == (True, True, True)
    assert {"SVA", "PRI", "ATS", "STALLS"} <= set(u0.feature_names)
    assert (u1.sva, u1.pri, u1.ats) == (False, False, True)
    assert u0.max_pasids is None                 # the SSID width is not printed: unknown
    f = tmp_path / "smmu.log"
    f.write_text(SMMU_LOG)
    res = invoke("topology", "--strict", str(f))
    assert res.exit_code == 0, res.output
    assert ("firmware: option PAGE0_REGS_ONLY, IDR0.COHACC=true, IDR0.HTTU=0x0 (hardware "
            "0x600000)") in _text(render_topology(load_topology(f)))
    h = hierarchy(load_topology(f))
    smmu1 = next(u for u in _units(h) if u["name"] == "arm-smmu-v3.1.auto")
    assert smmu1["sva"] is False and smmu1["ops"] == "arm-smmu-v3"


def test_a_malformed_smmu_feature_line_is_still_a_warning():
    topo = parse_dmesg("[ 1.0] arm-smmu-v3 arm-smmu-v3.0.auto: ias 48-bit, oas 48-bit "
                       "(features 0xzz)\n", "bad.log")
    assert any("unrecognised arm-smmu-v3 line" in w for w in topo.warnings)


# -- groups: unknown is unknown -------------------------------------------------------------

def test_lspci_without_group_lines_has_unknown_groups():
    """EMR: `lspci -vvv -s f2:01.0` shows no group line: the group is unknown, not a group of
    its own (before: a group named after the device, shown as any other)."""
    topo = load_topology(DATA / EMR)
    s = topology_summary(topo)
    assert s["groups"] is None and s["groups_unknown_reason"] == "lspci shows no groups"
    assert s["unknown_group_devices"] == 1 and s["model"]["assumed_groups"] == 1
    out = _text(render_topology(topo))
    assert "1 device, groups unknown (lspci shows no groups)" in out
    assert "│ ? (assumed) │" in out
    h = hierarchy(topo)
    [g] = _groups(h)
    assert g["assumed"] is True and g["in_dump"] is False and g["number"] is None
    [dev] = g["devices"]
    assert dev["group_status"] == "unknown"
    assert dev["group_unknown_reason"] == "lspci shows no groups"
    # bound to idxd (a DMA-API driver): "no" holds whatever the group's other members are
    assert g["vfio_assignable"] is False
    assert "group ? (not in the dump: lspci shows no groups; assumed alone" in _text(tree(topo))


def _plx_parts():
    text = (DATA / PLX).read_text()
    lspci, dmesg = text.split("\nIOMEM\n")
    return lspci, dmesg


def test_vfio_unknown_without_groups_and_no_with_the_dmesg_shared_group():
    """The PLX report's lspci section with its group lines taken out: every group is unknown,
    so an unbound root port is VFIO "unknown" (before: "yes", a singleton); with the same
    machine's dmesg the port is in the 21-member group 2, which is not assignable."""
    lspci, dmesg = _plx_parts()
    bare = "\n".join(ln for ln in lspci.splitlines() if "IOMMU group:" not in ln)
    topo = parse_text(bare, "lspci-no-groups.txt")
    assert not topo.groups_shown and topology_summary(topo)["groups"] is None
    cfg = to_config(topo)
    verdict = dict(zip((g.name for g in cfg.groups), vfio_verdicts(cfg, topo)))
    port = verdict["0000:00:01.0"]                      # 00:01.0 [pcieport], unbound
    assert port[0] == "unknown" and "lspci shows no groups" in port[1]
    assert not any(v is True for v, _ in verdict.values())
    merged = merge_topologies([topo, parse_dmesg(dmesg, "dmesg.txt")])
    assert merged.group_of("0000:00:01.0") == 2 and merged.group_status("0000:00:01.0") == \
        "in_dump"
    cfg = to_config(merged)
    g2 = cfg.group_index("2")
    assert len(cfg.groups[g2].devices) == 21
    assert vfio_verdicts(cfg, merged)[g2][0] is False


def test_a_function_lspci_shows_without_a_group_has_none():
    """pciutils prints "IOMMU group: N" for every function that has one: in the Renoir dump
    (32 group lines) the host bridge 00:00.0 has none -- no IOMMU, not an invented group."""
    topo = load_topology(DATA / AMD)
    assert topo.group_status("0000:00:00.0") == "none"
    cfg = to_config(topo)                             # default ungrouped="singleton"
    assert cfg.devices[cfg.device_index("0000:00:00.0")].iommu is None
    assert all(g.name.isdigit() for g in cfg.groups) and len(cfg.groups) == 24
    out = _text(render_topology(topo))
    assert "34 devices, 24 groups (1 device(s) without a group), 1 IOMMU unit in the dump" in out
    assert "00:00.0: no IOMMU group (lspci prints groups, none for it)" in out


# -- units ----------------------------------------------------------------------------------

def test_amd_iommu_function_is_the_unit():
    """The Renoir's 00:00.2 "IOMMU: Advanced Micro Devices ..." is the AMD-Vi unit itself
    (before: a device with an invented group behind a synthetic unit)."""
    topo = load_topology(DATA / AMD)
    assert list(topo.units) == ["ivhd0"]
    unit = topo.units["ivhd0"]
    assert (unit.type, unit.pci_function) == ("amd-vi", "0000:00:00.2")
    assert topo.group_status("0000:00:00.2") == "iommu"
    cfg = to_config(topo)
    assert [u.name for u in cfg.iommus] == ["ivhd0"] and cfg.iommus[0].ops == "amd-iommu"
    assert cfg.devices[cfg.device_index("0000:00:00.2")].iommu is None
    h = hierarchy(topo)
    [u] = _units(h)
    assert u["pci_function"] == "0000:00:00.2" and u["assumed"] is False
    names = {d["name"] for g in u["groups"] for d in g["devices"]}
    assert "0000:00:00.2" not in names
    assert [d["name"] for d in h["no_iommu_devices"]] == ["0000:00:00.0"]
    assert "ivhd0 (amd-iommu; PCI function 00:00.2; max_pasids ?; SVA ?)" in _text(tree(topo))


AMD_LOG = """\
[    0.310000] pci 0000:00:00.0: [1022:1630] type 00 class 0x060000 conventional PCI endpoint
[    0.310100] pci 0000:00:00.2: [1022:1631] type 00 class 0x080600 conventional PCI endpoint
[    0.310200] pci 0000:00:08.1: [1022:1635] type 01 class 0x060400 PCIe Root Port
[    0.512000] pci 0000:00:00.2: AMD-Vi: IOMMU performance counters supported
[    0.512100] pci 0000:00:08.1: Adding to iommu group 7
[    0.512900] pci 0000:00:00.2: AMD-Vi: Found IOMMU cap 0x40
[    0.513000] AMD-Vi: Extended features (0x206d73ef22254ade, 0x0): PPR X2APIC NX GT IA GA PC
[    0.513100] AMD-Vi: Interrupt remapping enabled
"""


def test_amd_vi_dmesg_unit_is_its_pci_function_and_merges_with_lspci():
    topo = parse_dmesg(AMD_LOG, "amd.log")
    assert not topo.warnings
    u = topo.units["ivhd0"]
    assert u.pci_function == "0000:00:00.2" and u.pasid is True and u.sva is True
    assert u.max_pasids == (1 << 16) - 1                  # PASmax 15: read, not assumed
    cfg = to_config(topo)
    assert cfg.devices[cfg.device_index("0000:00:00.2")].iommu is None   # the unit itself
    assert cfg.devices[cfg.device_index("0000:00:08.1")].iommu == "ivhd0"
    merged = merge_topologies([load_topology(DATA / AMD), topo])
    assert list(merged.units) == ["ivhd0"] and merged.units["ivhd0"].max_pasids == 65535
    assert not merged.warnings


def test_smmuv3_dmesg_without_unit_lines_gets_a_labelled_assumed_unit():
    """D05: the log names no SMMU.  The model needs a unit for the grouped devices: it is
    assumed, arm-smmu-v3 from the dump's own words, and not SVA-capable or 2**20-PASID as if
    known (before: a synthetic unit shown with SVA "yes" and max_pasids 1048576)."""
    topo = load_topology(DATA / D05)
    assert not topo.units
    h = hierarchy(topo)
    [u] = _units(h)
    assert u["assumed"] is True and u["ops"] == "arm-smmu-v3"
    assert u["sva"] is None and u["max_pasids"] is None
    assert (u["model_sva"], u["model_max_pasids"]) == (True, 1 << 20)
    assert any(a.startswith("SVA support not in the dump: the model assumes yes")
               for a in u["assumptions"])
    assert any(a.startswith("PASID limit not in the dump: the model assumes 1048576")
               for a in u["assumptions"])
    assert any("driver arm-smmu-v3 from the dump" in a for a in u["assumptions"])
    out = _text(render_topology(topo))
    row = next(ln for ln in out.splitlines() if ln.startswith("│ iommu0"))
    assert "iommu0 (assumed)" in row and "? (assumed 1048576)" in row
    assert "? (assumed yes)" in row and "│ yes " not in row


def test_units_named_only_in_proc_iomem_are_the_dump_s_units():
    """Altra: no SMMU line but /proc/iomem names six arm-smmu-v3 units.  They are the dump's
    units (SMMUv3, nothing intel-iommu); which one the GPU sits behind is not shown, so the
    model's unit for it is an assumed one, said so."""
    topo = load_topology(DATA / ALTRA)
    assert sorted(topo.units) == [f"arm-smmu-v3.{i}.auto" for i in range(6)]
    assert {u.type for u in topo.units.values()} == {"smmuv3"}
    assert topo.units["arm-smmu-v3.0.auto"].reg_base == 0x33FFE0000000
    cfg = to_config(topo)
    assert {u.ops for u in cfg.iommus} == {"arm-smmu-v3"}
    gpu_unit = cfg.iommus[cfg.device_iommu(cfg.device_index("000d:03:00.0"))]
    assert gpu_unit.name == "iommu0"
    [assumed] = [u for u in _units(hierarchy(topo)) if u["assumed"]]
    assert "one of its 6 units, which one is not shown" in assumed["assumptions"][0]


@pytest.mark.parametrize("name", [n for n in DUMPS if n.startswith("arm-")])
def test_arm_dumps_have_no_intel_or_amd_unit(name):
    h = hierarchy(load_topology(DATA / name))
    assert {u["ops"] for u in _units(h)} == {"arm-smmu-v3"}


def test_vendor_never_defaults_to_intel():
    """A listing with nothing that shows the platform: the assumed unit's driver is
    "unknown", and the text says the dump does not show it."""
    topo = parse_text("IOMMU group 0 01:00.0 Ethernet controller: Some NIC\n"
                      "IOMMU group 1 02:00.0 Non-Volatile memory controller: Some SSD\n", "g.txt")
    assert topo.iommu_type_hint is None
    cfg = to_config(topo)
    assert [u.ops for u in cfg.iommus] == ["unknown"]
    [u] = _units(hierarchy(topo))
    assert "IOMMU driver unknown: the dump shows no IOMMU vendor" in u["assumptions"]
    assert "unknown" in _text(render_topology(topo))


@pytest.mark.parametrize("name,ops,evidence", [
    ("intel-cfl-hp-laptop-nvidia-tu117-lspci-vv.txt", "intel-iommu",
     "Intel host bridge 00:00.0"),
    ("intel-atom-c3000-qat-iommu-groups-flat.txt", "intel-iommu", "Intel host bridge 00:00.0"),
    (EMR, "intel-iommu", "f2:01.0 bound to idxd"),
    (D05, "arm-smmu-v3", "'SMMU' in the text"),
])
def test_assumed_unit_driver_comes_from_the_dump_with_its_evidence(name, ops, evidence):
    topo = load_topology(DATA / name)
    assert evidence in (topo.type_evidence or "")
    [u] = [u for u in _units(hierarchy(topo)) if u["assumed"]]
    assert u["ops"] == ops
    assert any(f"driver {ops} from the dump" in a and evidence in a for a in u["assumptions"])


def test_real_units_report_what_their_registers_say():
    """T440 dmesg: 8 VT-d units, ECAP without PASID: max_pasids 0 and SVA no are read from the
    dump, nothing assumed."""
    h = hierarchy(load_topology(DATA / "intel-skx-dell-t440-dmesg-8dmar-iommu-groups.txt"))
    assert len(_units(h)) == 8
    for u in _units(h):
        assert (u["assumed"], u["max_pasids"], u["sva"]) == (False, 0, False)
        assert not any("assumes" in a for a in u["assumptions"])


def test_effective_pasid_limit_behind_an_unknown_unit_is_marked_assumed():
    out = _text(render_topology(load_topology(DATA / AMD)))
    row = next(ln for ln in out.splitlines() if ln.startswith("│ 05:00.0"))
    assert "? (assumed 65536)" in row



def test_sysfs_amd_unit_is_its_pci_function(tmp_path):
    """sysfs: class/iommu/ivhd0/device links to the IOMMU's PCI function, which has no
    iommu_group: it is the unit, and sits behind none."""
    from pasidsim.topology import read_sysfs
    root = tmp_path / "sys"
    pci = root / "bus" / "pci" / "devices"
    for bdf, grp in (("0000:00:00.2", None), ("0000:05:00.0", "14")):
        d = pci / bdf
        d.mkdir(parents=True)
        (d / "vendor").write_text("0x1022\n")
        if grp:
            g = root / "kernel" / "iommu_groups" / grp / "devices" / bdf
            g.mkdir(parents=True)
            (d / "iommu_group").symlink_to(root / "kernel" / "iommu_groups" / grp)
    unit = root / "class" / "iommu" / "ivhd0"
    (unit / "amd-iommu").mkdir(parents=True)
    (unit / "device").symlink_to(pci / "0000:00:00.2")
    topo = read_sysfs(root)
    assert topo.units["ivhd0"].pci_function == "0000:00:00.2"
    assert topo.group_status("0000:00:00.2") == "iommu"
    assert topo.group_status("0000:05:00.0") == "in_dump"
    cfg = to_config(topo)
    assert cfg.devices[cfg.device_index("0000:00:00.2")].iommu is None
    assert cfg.devices[cfg.device_index("0000:05:00.0")].iommu == "ivhd0"


def test_catch_all_placement_is_labelled_when_other_scopes_are_not_shown():
    """T440: dmar7 is INCLUDE_PCI_ALL; the dmesg does not list the device scopes of
    dmar0-dmar6, so putting all 281 devices behind dmar7 is the model's choice, said so."""
    h = hierarchy(load_topology(DATA / "intel-skx-dell-t440-dmesg-8dmar-iommu-groups.txt"))
    dmar7 = next(u for u in _units(h) if u["name"] == "dmar7")
    assert dmar7["catch_all"] is True and dmar7["assumed"] is False
    assert any(a.startswith("281 device(s) the dump places behind no unit are put here")
               and "dmar0, dmar1, dmar2…" in a for a in dmar7["assumptions"])
    # SPR: the by-unit listing places every device: nothing to say
    spr = hierarchy(load_topology(DATA / "spr-dsa-iaa-iommu-tree-by-dmar.txt"))
    assert not any("put here" in a for u in _units(spr) for a in u["assumptions"])


def test_unit_assumed_for_unplaced_devices_follows_what_the_dump_s_units_say():
    """An SMMUv3 log naming two units that both lack SVA, and a device whose unit it does not
    show: the model's unit for it is one of those (which one is not shown), so it is not
    made SVA-capable -- the assumption is what all the dump's units say, and says so."""
    log = SMMU_LOG.replace("features 0x001e1fbf", "features 0x00181fef")
    topo = parse_dmesg(log, "smmu.log")
    assert {u.sva for u in topo.units.values()} == {False}
    cfg = to_config(topo)
    unit = cfg.iommus[cfg.device_iommu(cfg.device_index("0000:75:00.0"))]
    assert (unit.name, unit.ops, unit.sva) == ("iommu0", "arm-smmu-v3", False)
    [u] = [u for u in _units(hierarchy(topo)) if u["assumed"]]
    assert u["sva"] is None and u["model_sva"] is False
    assert "SVA no: assumed, what all 2 units of the dump say" in u["assumptions"]


def test_a_block_cut_before_its_group_line_stays_unknown():
    """Only a block that shows the lines lspci prints before "IOMMU group:" (Control, Status,
    Flags) and no group line has no group; a block cut to its capabilities is unknown."""
    topo = parse_text("00:01.0 PCI bridge: X\n\tControl: I/O+ Mem+ BusMaster+\n"
                      "\tIOMMU group: 1\n\n"
                      "00:00.0 Host bridge: X\n\tControl: I/O- Mem- BusMaster-\n\n"
                      "# lspci -vvv -s 0000:f2:01.0\n"
                      "\tCapabilities: [220 v1] Address Translation Service (ATS)\n"
                      "\t\tATSCap:\tInvalidate Queue Depth: 00\n", "mixed.txt")
    assert topo.group_status("0000:00:01.0") == "in_dump"
    assert topo.group_status("0000:00:00.0") == "none"
    assert topo.group_status("0000:f2:01.0") == "unknown"
