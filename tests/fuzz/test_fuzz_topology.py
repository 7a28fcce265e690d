"""Fuzz tests of the topology importers (issue #14, item 5).

Every importer -- ``parse_lspci``, ``parse_dmesg``, ``parse_group_listing(s)``, ``parse_iomem``,
the sniffing ``parse_text``, ``load_topology`` of files and ``read_sysfs`` of a tree -- on
mutated windows of the real dumps in ``tests/data/topologies`` (and damaged sysfs trees) gives
a Topology that converts, summarises and renders, or a one-line ``TopologyError``; never
another exception.  ``pasidsim topology FILE`` exits 0 or 2 with one line.  The regression
tests at the end are the crashes the fuzzers found.
"""

from __future__ import annotations

import json

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from pasidsim.topology import TopologyError, load_topology, parse_text, read_sysfs, to_config
from pasidsim.topology.export import hierarchy

from . import harness as h

FUZZ = dict(deadline=None, derandomize=True, database=None,
            suppress_health_check=list(HealthCheck))
DUMPS = dict(h.topology_corpus())


@pytest.mark.parametrize("importer", h.IMPORTERS)
@settings(max_examples=40, **FUZZ)
@given(rng=st.randoms(use_true_random=False))
def test_importer_gives_a_topology_or_a_topology_error(importer, rng):
    _, inp = h.topology_input(rng, importer)
    with h.time_limit(30):
        h.check_topology(importer, inp)


@settings(max_examples=80, **FUZZ)
@given(name=st.sampled_from(sorted(DUMPS)), start=st.floats(0, 1), size=st.integers(1, 80),
       where=st.floats(0, 1), blob=st.binary(min_size=1, max_size=32))
def test_random_bytes_in_a_dump_window(name, start, size, where, blob):
    """Byte level: random bytes spliced into a window of a real dump, read as a file."""
    lines = DUMPS[name].encode().split(b"\n")
    i = int(start * len(lines))
    raw = b"\n".join(lines[i:i + size])
    j = int(where * len(raw))
    raw = raw[:j] + blob + raw[j:]
    with h.time_limit(30):
        h.check_topology("files", [(name, raw)])


@settings(max_examples=8, **FUZZ)
@given(rng=st.randoms(use_true_random=False))
def test_cli_topology_exits_0_or_2_with_one_error_line(rng):
    _name, text = h.topology_text(rng)
    with h.time_limit(60):
        h.check_cli(text, ("topology",))


# -- regressions: crashes the fuzzers found ---------------------------------------------------

def _amd_unit_tree(tmp_path, features: str):
    root = tmp_path / "sys"
    unit = root / "class" / "iommu" / "ivhd0"
    (unit / "amd-iommu").mkdir(parents=True)
    (unit / "amd-iommu" / "features").write_text(features)
    (root / "kernel" / "iommu_groups" / "3" / "devices" / "0000:05:00.0").mkdir(parents=True)
    return root


@pytest.mark.parametrize("features", [" : ", ":0", "   \n"], ids=["colon", "no-efr", "blank"])
def test_regression_sysfs_blank_register_file_is_unknown(tmp_path, features):
    """Found by the fuzzer: a register file with nothing before its ``:`` raised IndexError
    in ``read_sysfs`` (documented never to raise)."""
    topo = read_sysfs(_amd_unit_tree(tmp_path, features))
    assert topo.units["ivhd0"].efr is None and topo.units["ivhd0"].type == "amd-vi"
    to_config(topo)


@pytest.mark.parametrize("features,efr", [
    ("0x" + "f" * 5000, None), ("f" * 17, None), ("1" + "0" * 16 + ":0", None), ("-1", None),
    ("0xffffffffffffffff:" + "f" * 5000, (1 << 64) - 1)],
    ids=["5000-digits", "65-bits", "2**64", "negative", "long-efr2"])
def test_regression_sysfs_register_wider_than_64_bits_is_unknown(tmp_path, features, efr):
    """Found by the fuzzer: an AMD ``features`` file of 5,000 hex digits became a 20,000-bit
    EFR; ``pasidsim topology --json`` then crashed (json cannot print an int over 4,300
    digits).  A register is 64 bits: anything wider is unknown."""
    topo = read_sysfs(_amd_unit_tree(tmp_path, features))
    unit = topo.units["ivhd0"]
    assert unit.efr == efr and unit.efr2 in (None, 0)
    json.dumps(hierarchy(topo))


def test_regression_sysfs_vtd_registers(tmp_path):
    root = tmp_path / "sys"
    regs = root / "class" / "iommu" / "dmar0" / "intel-iommu"
    regs.mkdir(parents=True)
    (root / "kernel" / "iommu_groups" / "1" / "devices" / "0000:00:02.0").mkdir(parents=True)
    (regs / "cap").write_text("  \n")
    (regs / "ecap").write_text("f" * 5000 + "\n")
    (regs / "address").write_text("fed90000\n")
    unit = read_sysfs(root).units["dmar0"]
    assert (unit.cap, unit.ecap, unit.reg_base) == (None, None, 0xFED90000)


def test_importers_refuse_binary_and_empty_files(tmp_path):
    for raw in (b"", b"\x00\x01\x02", b"   \n"):
        p = tmp_path / "dump.txt"
        p.write_bytes(raw)
        with pytest.raises(TopologyError):
            load_topology(p)
    with pytest.raises(TopologyError):
        parse_text("\n\n", "x")
