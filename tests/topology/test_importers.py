"""Importers of real topology dumps (``tests/data/topologies``, copied from
``../shared/data/topologies``) → Topology → Config.

Every expected number below was counted independently of the importer, by hand with
grep/awk/sort on the files themselves (the commands are in the comments).
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from pasidsim.config import Config
from pasidsim.topology import (
    TopologyError, decode_amd_efr, decode_smmu_features, decode_vtd_ecap, detect_formats,
    driver_config, load_topology, merge_topologies, parse_dmesg, parse_group_listing,
    parse_group_listings, parse_lspci, parse_text, read_sysfs, to_config, topology_summary)

#: Real dumps copied from ../shared/data/topologies with their provenance (SOURCES.md).
DATA = Path(__file__).resolve().parents[1] / "data" / "topologies"
needs_data = pytest.mark.skipif(not DATA.is_dir(),  # never skips: the dumps are in the repo
                                reason=f"topology dumps not found at {DATA}")

# name: (PCI functions, non-PCI devices, groups, multi-device groups, units,
#        {BDF: (PASID width bits, PASID enabled)})
EXPECTED = {
    # 617 "Group Device" lines, `sed 's/.*Device: \(\S*\).*/\1/' | sort -u | wc -l` = 483;
    # 462 "IOMMU Group:" lines, all distinct; 20 "IOMMU: dmarN" lines; groups with >1 unique
    # member (awk group,BDF | sort -u | uniq -d on group): 57, 60, 62, 64, 261, 461 = 6.
    # No capabilities are printed, so no PASID information.
    "spr-dsa-iaa-iommu-tree-by-dmar.txt": (483, 0, 462, 6, 20, {}),
    # `lspci -vvv -s 0000:f2:01.0` cut to the capability lines: one device, no group line:
    # groups unknown (None), not "no groups".
    "intel-emr-dsa-lspci-vvv-excerpt-email.txt": (1, 0, None, None, 0,
                                                  {"0000:f2:01.0": (20, True)}),
    # 34 header lines at column 0; 32 "IOMMU group:" lines (00:00.0 and 00:00.2 have none)
    # with 24 distinct numbers; repeated numbers (uniq -d): 9 (00:14.0/.3), 10 (00:18.0-7).
    # One PASIDCap, on 05:00.0: "Max PASID Width: 10" = 16 bits, "PASIDCtl: Enable-".
    # One unit: the "00:00.2 IOMMU: Advanced Micro Devices" function (grep -c '^00:00.2 IOMMU').
    "amd-renoir-lucienne-asus-pn51-lspci-vvv.txt": (34, 0, 24, 2, 1,
                                                    {"0000:05:00.0": (16, False)}),
    # lspci -vvnn: 42 headers, 42 "IOMMU group:" lines, 17 distinct (0-16); group 2 has 21
    # lines.  dmesg adds platform idma64.0/.1 and i2c_designware.0/.1 (groups 17-20); the
    # PCI functions only dmesg knows (01:00.1-4, 00:1f.1, hot-added 0a:00.0) are dropped.
    # Multi-device groups: 2 (21), 4 (2), 5 (2), 12 (4).  Units dmar0, dmar1 (DMAR lines and
    # the IOMEM section's "fed90000-fed90fff : dmar0", "fed91000-fed91fff : dmar1").
    # PASIDCap only on 00:02.0: "14" = 20 bits, Enable-.
    "intel-xeon-e3v6-plx-pex8748-switch-report-lspci-vvnn-dmesg.txt": (
        42, 4, 21, 4, 2, {"0000:00:02.0": (20, False)}),
    # 34 headers, 34 "IOMMU group:" lines, 27 distinct (0-26); repeated: 2, 6, 7, 15.
    # PASIDCap only on the UHD 630 00:02.0: "14" = 20 bits, Enable-.
    "intel-cfl-hp-laptop-nvidia-tu117-lspci-vv.txt": (34, 0, 27, 4, 0,
                                                      {"0000:00:02.0": (20, False)}),
    # 281 "Adding to iommu group" lines, 281 distinct BDFs (no re-adds), 142 distinct group
    # numbers (0-141), 36 repeated numbers (awk '{print $NF}' | sort | uniq -d | wc -l);
    # 8 "DMAR: dmarN: reg_base_addr" lines, ecap f020df (no PASID).
    "intel-skx-dell-t440-dmesg-8dmar-iommu-groups.txt": (281, 0, 142, 36, 8, {}),
    # Two boots; the second (from line 67) re-adds all 15 devices: 12 PCI, 3 non-PCI
    # (HISI0162:01, HISI00B2:00, PNP0D20:00) into groups 0-8; group 3 = f8:00.0 + f9:00.0/.1,
    # group 6 = 000a:10:00.0 + 000a:11:00.0-3.
    "arm-hisilicon-d05-smmuv3-iommu-groups-email.txt": (12, 3, 9, 2, 0, {}),
    # One indented header (000d:03:00.0), "IOMMU group: 21", PASIDCap "10" = 16 bits, Enable+.
    # /proc/iomem names 6 units: `grep -o 'arm-smmu-v3\.[0-9]*\.auto' | sort -u | wc -l` = 6.
    "arm-ampere-altra-navi33-smmuv3-lspci-vv-email.txt": (1, 0, 1, 0, 6,
                                                          {"000d:03:00.0": (16, True)}),
    # After joining soft wraps: 85 "IOMMU Group N:" headers in 4 listings (3+1+45+36) with
    # 4+11+94+94 member lines; the default is the full 5.8 listing: 45 groups, 94 devices,
    # 16 groups with more than one member (0-11, 34, 36, 38, 40).
    "intel-x99-iommu-group-listing-5.8-vs-5.9-email.txt": (94, 0, 45, 16, 0, {}),
    # 24 "IOMMU group N BDF" lines (groups 0-19); repeated: 13 (4 devices), 15 (2).
    "intel-atom-c3000-qat-iommu-groups-flat.txt": (24, 0, 20, 2, 0, {}),
}


def _load(name: str):
    return load_topology(DATA / name)


@needs_data
def test_every_data_file_has_expectations():
    assert sorted(p.name for p in DATA.glob("*.txt")) == sorted(EXPECTED)


@needs_data
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_counts(name):
    funcs, others, groups, multi, units, pasid = EXPECTED[name]
    topo = _load(name)
    s = topology_summary(topo)
    assert (s["functions"], s["other_devices"], s["groups"], s["multi_device_groups"],
            s["units"]) == (funcs, others, groups, multi, units)
    got = {f.bdf: (f.pasid_width, f.pasid_enabled) for f in topo.pasid_capable()}
    assert got == pasid
    assert s["pasid_capable"] == len(pasid)
    assert s["pasid_enabled"] == sum(1 for _, on in pasid.values() if on)


@needs_data
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_builds(name):
    topo = _load(name)
    cfg = to_config(topo)
    assert isinstance(cfg, Config)
    funcs, others, groups, _, _, pasid = EXPECTED[name]
    assert len(cfg.devices) == funcs + others
    # one assumed singleton group per device whose group is unknown; none for a device the
    # dump shows without a group or for the IOMMU's own function
    unknown = sum(1 for d in topo.device_ids() if topo.group_status(d) == "unknown")
    assert len(cfg.groups) == (groups or 0) + unknown
    for bdf, (bits, _) in pasid.items():
        assert cfg.devices[cfg.device_index(bdf)].pasid_bits == bits
    for g in cfg.groups:                       # Config.build checked one unit per group
        assert len({cfg.device_iommu(i) for i in g.devices}) == 1


@needs_data
def test_dsa_excerpt_pasid_ats_pri():
    topo = _load("intel-emr-dsa-lspci-vvv-excerpt-email.txt")
    dsa = topo.functions["0000:f2:01.0"]
    assert (dsa.pasid_present, dsa.pasid_enabled, dsa.pasid_width) == (True, True, 20)
    assert (dsa.pasid_exec, dsa.pasid_priv) == (False, True)
    assert dsa.ats_present and dsa.ats_enabled and dsa.ats_queue_depth == 32  # 00 = 32
    assert dsa.pri_present and dsa.pri_enabled and dsa.pri_capacity == 0x200
    assert dsa.driver == "idxd" and dsa.modules == ["idxd"]
    cfg = to_config(topo)
    d = cfg.devices[0]
    assert (d.pasid_bits, d.ats, d.pri, d.driver) == (20, True, True, "idxd")
    assert cfg.drivers[0].kind == "idxd"
    assert cfg.max_pasids[0] == 1 << 20


@needs_data
def test_altra_navi33_16bit_enabled_on_smmu():
    topo = _load("arm-ampere-altra-navi33-smmuv3-lspci-vv-email.txt")
    gpu = topo.functions["000d:03:00.0"]
    assert (gpu.pasid_width, gpu.pasid_enabled, gpu.pasid_exec, gpu.pasid_priv) == \
        (16, True, True, True)
    assert not gpu.ats_present and not gpu.pri_present and gpu.acs_present
    assert gpu.iommu_group == 21 and gpu.driver == "amdgpu"
    assert (gpu.vendor_id, gpu.class_name) == (None, "VGA compatible controller")
    cfg = to_config(topo)
    assert cfg.iommus[0].ops == "arm-smmu-v3"       # iomem names arm-smmu-v3.N.auto
    assert cfg.drivers[0].kind == "amdgpu" and cfg.max_pasids[0] == 1 << 16


@needs_data
def test_renoir_igpu_capability_present_but_disabled():
    topo = _load("amd-renoir-lucienne-asus-pn51-lspci-vvv.txt")
    gpu = topo.functions["0000:05:00.0"]
    assert gpu.pasid_present and not gpu.pasid_enabled and gpu.pasid_width == 16
    assert gpu.ats_present and gpu.ats_enabled          # ATS on without PASID
    assert gpu.pri_present and not gpu.pri_enabled and gpu.pri_capacity == 0x100
    assert topo.group_of("0000:00:00.2") is None        # the AMD IOMMU function itself
    assert topo.iommu_type_hint == "amd-vi"
    cfg = to_config(topo, ungrouped="no-iommu")
    assert cfg.devices[cfg.device_index("0000:00:00.2")].iommu is None
    assert cfg.iommus[0].ops == "amd-iommu"


@needs_data
def test_plx_switch_group_and_merge_rule():
    topo = _load("intel-xeon-e3v6-plx-pex8748-switch-report-lspci-vvnn-dmesg.txt")
    assert topo.formats == ["lspci", "iomem", "dmesg"]
    members = topo.groups.groups[2]
    assert len(members) == 21
    assert set(members) == {"0000:00:01.0", "0000:00:01.1", "0000:01:00.0", "0000:03:00.0",
                            "0000:0c:00.0"} | {f"0000:02:{d}.0" for d in ("01", "02", "08",
                                                                          "09", "0a")} \
        | {f"0000:04:{d}.0" for d in ("00", "01", "02", "03", "08", "09", "0a", "0b", "10",
                                      "11", "12")}
    for gone in ("0000:01:00.1", "0000:0a:00.0", "0000:00:1f.1"):
        assert gone not in topo.functions
    assert any("seen only in dmesg" in n and "0000:0a:00.0" in n for n in topo.notes)
    assert topo.groups.group_of("idma64.0") == 17
    d0, d1 = topo.units["dmar0"], topo.units["dmar1"]
    assert (d0.catch_all, d0.pasid, d0.pasid_bits, d0.max_pasids) == (False, True, 20, 0)
    assert d1.catch_all and d1.pasid is False
    assert topo.unit_of["0000:00:15.0"] == "dmar1"      # "ACPI device … under DMAR at fed91000"
    assert topo.functions["0000:0c:00.0"].driver == "mrf-pci"
    assert topo.functions["0000:00:02.0"].rciep
    cfg = to_config(topo)
    g2 = cfg.groups[cfg.group_index("2")]
    assert len(g2.devices) == 21 and cfg.iommus[g2.iommu].name == "dmar1"
    assert [u.name for u in cfg.iommus] == ["dmar0", "dmar1"]


@needs_data
def test_plx_merge_independent_of_file_split():
    text = (DATA / "intel-xeon-e3v6-plx-pex8748-switch-report-lspci-vvnn-dmesg.txt").read_text()
    lspci_part, dmesg_part = text.split("\nIOMEM\n")
    a = merge_topologies([parse_dmesg(dmesg_part, "d"), parse_lspci(lspci_part, "l")])
    b = _load("intel-xeon-e3v6-plx-pex8748-switch-report-lspci-vvnn-dmesg.txt")
    assert a.groups.groups == b.groups.groups
    assert set(a.functions) == set(b.functions)


@needs_data
def test_load_topology_several_files_any_order(tmp_path):
    name = "intel-xeon-e3v6-plx-pex8748-switch-report-lspci-vvnn-dmesg.txt"
    lspci_part, dmesg_part = (DATA / name).read_text().split("\nIOMEM\n")
    (tmp_path / "lspci.txt").write_text(lspci_part)
    (tmp_path / "dmesg.txt").write_text(dmesg_part)
    whole = _load(name)
    for order in (["lspci.txt", "dmesg.txt"], ["dmesg.txt", "lspci.txt"]):
        t = load_topology([tmp_path / n for n in order])
        assert t.groups.groups == whole.groups.groups and set(t.functions) == \
            set(whole.functions)
        assert sorted(t.sources) == ["dmesg.txt", "lspci.txt"]


def test_merge_snapshot_group_wins_and_log_fills():
    lspci = parse_lspci("00:02.0 VGA compatible controller: X\n\tIOMMU group: 0\n\n"
                        "00:14.0 USB controller: Y\n\tKernel driver in use: xhci_hcd\n", "l")
    log = parse_dmesg("[1.0] pci 0000:00:02.0: Adding to iommu group 5\n"
                      "[1.1] pci 0000:00:14.0: Adding to iommu group 3\n"
                      "[1.2] pci 0000:00:1f.1: Adding to iommu group 4\n"
                      "[1.3] platform idma64.0: Adding to iommu group 7\n", "d")
    m = merge_topologies([log, lspci])
    assert m.group_of("0000:00:02.0") == 0        # snapshot wins
    assert m.group_of("0000:00:14.0") == 3        # dmesg fills what lspci does not say
    assert "0000:00:1f.1" not in m.functions      # lspci enumerates the bus: dmesg-only dropped
    assert m.group_of("idma64.0") == 7            # lspci cannot see platform devices


@needs_data
def test_by_dmar_tree_dedup_and_units():
    text = (DATA / "spr-dsa-iaa-iommu-tree-by-dmar.txt").read_text()
    assert text.count("Group Device:") == 617
    topo = _load("spr-dsa-iaa-iommu-tree-by-dmar.txt")
    assert len(topo.groups.devices()) == 483 and not topo.warnings
    assert sorted(topo.groups.groups[261]) == [f"0000:7f:1e.{f}" for f in range(8)]
    assert topo.unit_of["0000:6a:01.0"] == "dmar15" and topo.group_of("0000:6a:01.0") == 16
    assert topo.functions["0000:6a:01.0"].device_id == "0b25"
    assert sum(1 for d in topo.unit_of.values() if d == "dmar19") == 411 + 21  # 411 groups
    cfg = to_config(topo)
    per_unit = {u.name: sum(1 for g in cfg.groups if g.iommu == i)
                for i, u in enumerate(cfg.iommus)}
    assert per_unit["dmar19"] == 411 and per_unit["dmar15"] == 5 and per_unit["dmar0"] == 1
    # today's VT-d driver (v6.16+) needs ATS and PRI for an SVA attach: imported VT-d units
    # say so (intel_iommu_enable_iopf)
    assert cfg.iommus and all(u.iopf_requires_pri for u in cfg.iommus
                              if u.ops == "intel-iommu")


@needs_data
def test_x99_sections():
    text = (DATA / "intel-x99-iommu-group-listing-5.8-vs-5.9-email.txt").read_text()
    secs = parse_group_listings(text, "x99")
    assert [(len(s.groups), len(s.groups.devices())) for s in secs] == \
        [(3, 4), (1, 11), (45, 94), (36, 94)]
    v59 = parse_group_listing(text, "x99", section=3)
    assert len(v59.groups.groups[29]) == 11                 # the merged ASMedia group
    v58 = parse_group_listing(text, "x99")
    assert v58.groups.groups[40] == ["0000:08:01.0", "0000:09:00.0"]
    nvme = v58.functions["0000:05:00.0"]                    # joined soft wrap
    assert (nvme.vendor_id, nvme.device_id, nvme.class_code) == ("144d", "a808", "0108")
    with pytest.raises(TopologyError, match=r"x99:0: section 9"):
        parse_group_listing(text, "x99", section=9)


@needs_data
def test_d05_second_boot_wins():
    topo = _load("arm-hisilicon-d05-smmuv3-iommu-groups-email.txt")
    assert sorted(topo.groups.groups[6]) == ["000a:10:00.0", "000a:11:00.0", "000a:11:00.1",
                                             "000a:11:00.2", "000a:11:00.3"]
    assert topo.groups.groups[0] == ["HISI0162:01"]
    assert topo.others["PNP0D20:00"].driver == "ehci-platform"
    assert topo.functions["000a:11:00.0"].driver == "mlx5_core"
    assert any(":67: clock restarts" in n for n in topo.notes)    # a note, not a warning
    assert not topo.warnings
    assert to_config(topo).iommus[0].ops == "arm-smmu-v3"


@needs_data
def test_t440_units():
    topo = _load("intel-skx-dell-t440-dmesg-8dmar-iommu-groups.txt")
    assert [u for u in topo.units if topo.units[u].catch_all] == ["dmar7"]
    assert all(u.ecap == 0xF020DF and u.max_pasids == 0 for u in topo.units.values())
    assert topo.functions["0000:00:00.0"].vendor_id == "8086"   # from the enumeration line
    cfg = to_config(topo)
    assert {cfg.iommus[g.iommu].name for g in cfg.groups} == {"dmar7"}
    assert all(m == 0 for m in cfg.max_pasids)


def test_decoders():
    kbl = decode_vtd_ecap(0x19E2FF0505E)       # Kaby Lake graphics unit
    assert (kbl["pasid"], kbl["pasid_bits"], kbl["pri"], kbl["ats"]) == (True, 20, True, True)
    assert kbl["max_pasids"] == 0 and "SMTS" not in kbl["names"]   # no scalable mode
    sm = decode_vtd_ecap(0x19E2FF0505E | 1 << 43 | 1 << 47)
    assert sm["max_pasids"] == 1 << 20 and sm["sva"]
    assert decode_vtd_ecap(0xF020DF)["names"] == ["C", "QI", "DT", "IR", "EIM", "PT", "SC"]
    amd = decode_amd_efr(0x246577EFA2254AFA)
    assert (amd["pasid"], amd["pasid_bits"], amd["max_pasids"]) == (True, 16, 65535)
    smmu = decode_smmu_features(0x00181FEF)
    assert smmu["ats"] and not smmu["pri"] and not smmu["sva"]
    assert "NESTING" in smmu["names"] and "BTM" not in smmu["names"]


def test_amd_and_smmu_dmesg_lines():
    topo = parse_dmesg(
        "<6>[    0.5] pci 0000:00:00.2: AMD-Vi: Found IOMMU cap 0x40\n"
        "[    0.6] AMD-Vi: Extended features (0x246577efa2254afa, 0x0): PPR NX GT [5] IA\n"
        "[    0.7] arm-smmu-v3 arm-smmu-v3.0.auto: ias 44-bit, oas 44-bit "
        "(features 0x00181fef)\n", "amd")
    assert topo.units["ivhd0"].max_pasids == 65535 and topo.units["ivhd0"].type == "amd-vi"
    smmu = topo.units["arm-smmu-v3.0.auto"]
    assert smmu.type == "smmuv3" and smmu.sva is False and smmu.max_pasids is None
    cfg = to_config(topo)
    assert {u.name: (u.ops, u.max_pasids, u.sva) for u in cfg.iommus} == {
        "ivhd0": ("amd-iommu", 65535, True), "arm-smmu-v3.0.auto": ("arm-smmu-v3", 1 << 20,
                                                                     False)}


def test_driver_config_kinds():
    assert driver_config("vfio-pci").driver_managed_dma and driver_config("pcieport") \
        .driver_managed_dma and driver_config("pci-stub").driver_managed_dma
    assert [driver_config(n).kind for n in ("vfio-pci", "idxd", "hisi_zip", "hisi_sec2",
                                            "hisi_hpre", "amdgpu", "nvme")] == \
        ["vfio-pci", "idxd", "uacce", "uacce", "uacce", "amdgpu", "dma-api"]
    assert not driver_config("snd_hda_intel").driver_managed_dma


def test_detect_formats():
    assert detect_formats("00:00.0 Host bridge: Intel\n00:02.0 VGA compatible controller: X\n") \
        == ["lspci"]
    assert detect_formats("IOMMU Group 1:\n\t00:01.0 PCI bridge [0604]: X [8086:1901]\n") == \
        ["listing"]
    assert detect_formats("[0.1] pci 0000:00:00.0: Adding to iommu group 0\n") == ["dmesg"]


# -- sysfs ---------------------------------------------------------------------------------
def _config_space(pasid_width=20, pasid_on=True) -> bytes:
    """4 KiB config space: PCIe cap (RCiEP) at 0x40; PASID, ATS, PRI extended caps."""
    b = bytearray(4096)
    b[0:4] = bytes.fromhex("8680250b")            # 8086:0b25
    b[6] = 0x10                                   # status: capability list
    b[0x34] = 0x40
    b[0x40:0x44] = bytes([0x10, 0x00, 0x92, 0x00])  # PCIe cap, type 9 (RCiEP), version 2
    def ext(off, cid, nxt, payload):
        b[off:off + 4] = (cid | 1 << 16 | nxt << 20).to_bytes(4, "little")
        b[off + 4:off + 4 + len(payload)] = payload
    ext(0x100, 0x1B, 0x110, bytes([0x04, pasid_width, int(pasid_on), 0]))  # PASID
    ext(0x110, 0x0F, 0x120, bytes([0x00, 0x00, 0x00, 0x80]))               # ATS enabled
    ext(0x120, 0x13, 0x000, bytes([0x01, 0, 0, 0]) + (0x200).to_bytes(4, "little"))  # PRI
    return bytes(b)


def test_read_sysfs_fake_tree(tmp_path):
    root = tmp_path / "sys"
    drivers = tmp_path / "drivers"
    for drv in ("idxd", "i915"):
        (drivers / drv).mkdir(parents=True)
    for g, devs in {"16": ["0000:6a:01.0"], "3": ["0000:00:02.0", "idma64.0"]}.items():
        for d in devs:
            (root / "kernel" / "iommu_groups" / g / "devices" / d).mkdir(parents=True)
    unit = root / "class" / "iommu" / "dmar15"
    (unit / "intel-iommu").mkdir(parents=True)
    (unit / "intel-iommu" / "ecap").write_text(f"{0x19E2FF0505E | 1 << 43 | 1 << 47:x}\n")
    (unit / "devices" / "0000:6a:01.0").mkdir(parents=True)
    pci = root / "bus" / "pci" / "devices"
    for bdf, drv, grp, cfg in (("0000:6a:01.0", "idxd", "16", _config_space()),
                               ("0000:00:02.0", "i915", "3", _config_space()[:64])):
        d = pci / bdf
        d.mkdir(parents=True)
        (d / "vendor").write_text("0x8086\n")
        (d / "device").write_text("0x0b25\n")
        (d / "class").write_text("0x088000\n")
        (d / "config").write_bytes(cfg)
        (d / "driver").symlink_to(drivers / drv)
        (d / "iommu_group").symlink_to(root / "kernel" / "iommu_groups" / grp)
    topo = read_sysfs(root)
    dsa = topo.functions["0000:6a:01.0"]
    assert (dsa.pasid_width, dsa.pasid_enabled, dsa.pasid_priv, dsa.rciep) == (20, True, True,
                                                                              True)
    assert dsa.ats_enabled and dsa.pri_enabled and dsa.pri_capacity == 0x200
    assert (dsa.driver, dsa.class_code, dsa.iommu_group) == ("idxd", "0880", 16)
    assert topo.functions["0000:00:02.0"].caps_visible is False      # 64-byte read
    assert any("run as root" in n for n in topo.notes)           # valid: a note
    assert topo.groups.groups == {3: ["0000:00:02.0", "idma64.0"], 16: ["0000:6a:01.0"]}
    assert topo.units["dmar15"].max_pasids == 1 << 20 and topo.unit_of["0000:6a:01.0"] == \
        "dmar15"
    cfg = to_config(topo)
    assert cfg.max_pasids[cfg.device_index("0000:6a:01.0")] == 1 << 20
    assert load_topology(root).functions.keys() == topo.functions.keys()   # directory → sysfs


def test_read_sysfs_absent(tmp_path):
    topo = read_sysfs(tmp_path / "nothing")
    assert not topo.functions and not topo.groups.groups
    assert topo.warnings and "no kernel/iommu_groups" in topo.warnings[0]


# -- malformed input -------------------------------------------------------------------------
def _warns(topo, name, pattern):
    hits = [w for w in topo.warnings if re.match(rf"^{re.escape(name)}:\d+: .*{pattern}", w)]
    assert hits, topo.warnings
    return hits


@pytest.mark.parametrize("content,match", [
    ("", r"^empty\.txt:1: empty input"),
    ("   \n\n\t\n", r"^empty\.txt:1: empty input"),
    ("Hello,\nthis mail has no dump at all.\n", r"^empty\.txt:1: no lspci"),
    ("\x00\x01\x02binary", r"^empty\.txt:1: binary"),
])
def test_unusable_files_raise_topology_error(tmp_path, content, match):
    p = tmp_path / "empty.txt"
    p.write_text(content)
    with pytest.raises(TopologyError, match=match) as ei:
        load_topology(p)
    assert isinstance(ei.value, ValueError) and ei.value.line == 1


def test_missing_file(tmp_path):
    with pytest.raises(TopologyError, match=r"^nope\.txt:0: cannot read"):
        load_topology(tmp_path / "nope.txt")


def test_truncated_lspci_block():
    t = parse_text("Some prose\n\tCapabilities: [230 v1] Process Address Space ID (PASID)\n"
                   "\t\tPASIDCap: Exec- Priv+, Max PASID Width: 14\n", "cut.txt")
    _warns(t, "cut.txt", "without a device header")
    assert not t.functions


def test_wrong_hex_width():
    base = "00:02.0 VGA compatible controller: X\n\tCapabilities: [2d0 v1] Process Address " \
           "Space ID (PASID)\n\t\tPASIDCap: Exec- Priv-, Max PASID Width: {}\n"
    t = parse_lspci(base.format("4"), "w1.txt")          # %02x: one digit is malformed
    assert _warns(t, "w1.txt", "unrecognised PASIDCap")[0].startswith("w1.txt:3:")
    t = parse_lspci(base.format("20"), "w2.txt")         # 0x20 = 32 bits > PCIe limit
    _warns(t, "w2.txt", "outside 1..20")
    f = t.functions["0000:00:02.0"]
    assert f.pasid_present and f.pasid_width is None
    assert to_config(t).devices[0].pasid_bits == 0


def test_duplicate_bdf_in_two_groups():
    t = parse_group_listing("IOMMU Group 1:\n\t00:1f.3 SMBus [0c05]: X [8086:8d22]\n"
                            "IOMMU Group 2:\n\t00:1f.3 SMBus [0c05]: X [8086:8d22]\n", "dup.txt")
    assert _warns(t, "dup.txt", "already in group 1")[0].startswith("dup.txt:4:")
    assert t.groups.groups == {1: ["0000:00:1f.3"]}


def test_malformed_bdf_and_group_numbers():
    t = parse_group_listing("IOMMU group 3 zz:00.0 Host bridge [0600]: X\n"
                            "IOMMU group 4 00:1f.8 Host bridge [0600]: X\n"
                            "IOMMU group 5 00:00.0 Host bridge [0600]: X\n", "flat.txt")
    assert len(_warns(t, "flat.txt", "malformed device address")) == 2
    t = parse_group_listing("IOMMU Group x1:\n\t00:00.0 Host bridge: X\n"
                            "IOMMU Group 7:\n", "hdr.txt")
    _warns(t, "hdr.txt", "not a number")
    _warns(t, "hdr.txt", "group 7 has no members")


def test_by_dmar_malformed():
    t = parse_group_listing("IOMMU: dmar0\n  IOMMU Group: \n    Group Device: 0000:00:00.0\n"
                            "  IOMMU Group: 3\n    Group Device: 0000:00:1f.9 - X\n"
                            "    Group Device: 0000:00:02.0 - VGA [0300]: X\n"
                            "IOMMU: dmar1\n  IOMMU Group: 3\n    Group Device: 0000:00:02.0\n",
                            "tree.txt")
    _warns(t, "tree.txt", "not a number")
    _warns(t, "tree.txt", "malformed device address")
    _warns(t, "tree.txt", "listed under dmar1 and dmar0")


def test_dmesg_malformed_lines():
    t = parse_dmesg("[ 1.0] pci 0000:00:00.0: Adding to iommu group foo\n"
                    "[ 1.1] DMAR: dmar0: reg_base_addr fed90000 ver 1:0 cap 1c0 ecap 12zz\n"
                    "[ 1.2] pci 0000:00:14.0: Adding to iommu group 3\n"
                    "[ 1.3] pci 0000:00:14.0: Adding to iommu group 4\n", "log.txt")
    assert _warns(t, "log.txt", "unrecognised iommu group")[0].startswith("log.txt:1:")
    assert _warns(t, "log.txt", "unrecognised DMAR unit")[0].startswith("log.txt:2:")
    assert t.group_of("0000:00:14.0") == 4          # last assignment wins
    assert "dmar0" not in t.units


def test_lspci_partial_slot_and_access_denied():
    t = parse_lspci("# lspci -vvv -s f2:01\n\tCapabilities: [220 v1] Address Translation "
                    "Service (ATS)\n", "s.txt")
    _warns(t, "s.txt", "not a full BDF")
    t = parse_lspci("00:02.0 VGA compatible controller: X\n\tCapabilities: <access denied>\n",
                    "nr.txt")
    assert not t.warnings and any("not readable" in n for n in t.notes)  # valid, as a user
    assert t.functions["0000:00:02.0"].caps_visible is False


def test_strict_mode_raises_with_line(tmp_path):
    p = tmp_path / "dup.txt"
    p.write_text("IOMMU Group 1:\n\t00:1f.3 SMBus: X\nIOMMU Group 2:\n\t00:1f.3 SMBus: X\n")
    assert load_topology(p).warnings
    with pytest.raises(TopologyError, match=r"^dup\.txt:4: ") as ei:
        load_topology(p, strict=True)
    assert ei.value.line == 4


@needs_data
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_mangled_dumps_never_crash(name):
    """Truncated, shuffled and byte-flipped copies: a Topology or a TopologyError only."""
    text = (DATA / name).read_text(encoding="utf-8", errors="replace")
    rng = random.Random(name)
    lines = text.splitlines(keepends=True)
    variants = [text[:rng.randrange(len(text))] for _ in range(6)]
    for _ in range(3):
        shuffled = lines[:]
        rng.shuffle(shuffled)
        variants.append("".join(shuffled))
    chars = list(text)
    for i in rng.sample(range(len(chars)), min(200, len(chars))):
        chars[i] = rng.choice("0123456789abcdefxz:.[] \t\n+-")
    variants.append("".join(chars))
    for v in variants:
        try:
            topo = parse_text(v, name)
        except TopologyError:
            continue
        to_config(topo)
        topology_summary(topo)
