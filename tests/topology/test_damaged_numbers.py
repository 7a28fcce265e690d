"""Damaged group numbers in real-looking dumps give a warning, never a traceback (issue #14):
``str.isdigit()`` accepts superscripts that ``int()`` refuses, and ``int()`` refuses more than
4,300 digits."""

from __future__ import annotations

import pytest

from pasidsim.topology import decimal, parse_dmesg, parse_group_listing, parse_lspci

DAMAGED = ["\u00b2", "1\u00b3", "9" * 5000]


@pytest.mark.parametrize("bad", DAMAGED, ids=["superscript", "digit+superscript", "5000 digits"])
def test_lspci_group_line(bad):
    topo = parse_lspci("00:02.0 VGA compatible controller: Intel Corporation UHD 630\n"
                       f"\tIOMMU group: {bad}\n", "lspci.txt")
    assert topo.functions["0000:00:02.0"].iommu_group is None
    assert any("not a number" in w for w in topo.warnings)


@pytest.mark.parametrize("bad", DAMAGED, ids=["superscript", "digit+superscript", "5000 digits"])
def test_dmesg_add_line(bad):
    topo = parse_dmesg(f"[    0.5] pci 0000:00:02.0: Adding to iommu group {bad}\n", "dmesg.txt")
    assert topo.groups.group_of("0000:00:02.0") is None


@pytest.mark.parametrize("bad", DAMAGED, ids=["superscript", "digit+superscript", "5000 digits"])
def test_group_listing(bad):
    parse_group_listing(f"IOMMU Group {bad}:\n\t00:02.0 VGA compatible controller\n",
                        "groups.txt")
    parse_group_listing(f"IOMMU Group {bad} 00:02.0 VGA compatible controller\n", "groups.txt")


def test_decimal():
    assert decimal("0") == 0 and decimal("123456789") == 123456789
    for bad in ("", "1234567890", "\u00b2", "\u0663", "-1", " 1", None):
        assert decimal(bad) is None


# -- numbers in IOMMU unit lines (issue #14 item 2: robust number parsing) ---------------------

LONG_HEX = "f" * 5000


@pytest.mark.parametrize("line,warning", [
    (f"DMAR: dmar0: reg_base_addr fed90000 ver 1:0 cap {LONG_HEX} ecap f020df",
     "unrecognised DMAR unit line"),
    (f"arm-smmu-v3 arm-smmu-v3.0.auto: ias {'9' * 5000}-bit, oas 44-bit (features 0x1)",
     "unrecognised arm-smmu-v3 line"),
    ("arm-smmu-v3 arm-smmu-v3.0.auto: ias \u0664\u0668-bit, oas 44-bit (features 0x1)",
     "unrecognised arm-smmu-v3 line"),
    (f"AMD-Vi: Extended features (0x{LONG_HEX}, 0x0): PPR GT", "unrecognised AMD-Vi line"),
], ids=["dmar-cap-5000-hex", "smmu-ias-5000-digits", "smmu-ias-arabic-digits",
        "amd-efr-5000-hex"])
def test_unit_line_with_a_damaged_number_is_a_warning(line, warning):
    topo = parse_dmesg(f"[    0.5] {line}\n", "dmesg.txt")
    assert any(warning in w for w in topo.warnings)
    assert all(u.cap is None and u.efr is None and u.ias is None for u in topo.units.values())


@pytest.mark.parametrize("stamp", ["\u0663.\u0665", "9" * 5000 + ".0", "1\u00b2.0"],
                         ids=["arabic-digits", "5000 digits", "superscript"])
def test_damaged_timestamp(stamp):
    topo = parse_dmesg(f"[{stamp}] pci 0000:00:02.0: Adding to iommu group 1\n"
                       "[    0.6] pci 0000:00:14.0: Adding to iommu group 2\n", "dmesg.txt")
    assert topo.group_of("0000:00:14.0") == 2


def test_iomem_with_a_damaged_address():
    from pasidsim.topology import parse_iomem
    topo = parse_iomem(f"{LONG_HEX}-{LONG_HEX} : dmar0\n  fed91000-fed91fff : dmar1\n", "iomem")
    assert list(topo.units) == ["dmar1"] and topo.units["dmar1"].reg_base == 0xFED91000
