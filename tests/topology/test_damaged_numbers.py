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
