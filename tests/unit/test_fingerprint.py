"""hash(state) is a stable 64-bit fingerprint across interpreter processes."""

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
from pasidsim.config import Config, DeviceConfig, DriverConfig, IommuUnit
from pasidsim.system import System
cfg = Config.build(iommus=[IommuUnit("dmar0")],
                   devices=[DeviceConfig("dsa0", iommu="dmar0", pasid_bits=20),
                            DeviceConfig("nic", iommu="dmar0", group="G"),
                            DeviceConfig("hda", iommu="dmar0", group="G")],
                   drivers=[DriverConfig("uacce", kind="uacce"), DriverConfig("e1000e")])
s = System(cfg)
s.device_driver_attach("dsa0", "uacce"); s.device_driver_attach("nic", "e1000e")
t = s.process_create(); fd = s.dev_open(t, "dsa0"); s.mmap(t, fd)
c = s.fork(t); s.enqcmd(t, "dsa0"); s.task_exit(t)
s.ioasid_alloc(0, 1, 100, 7); s.iommu_free_global_pasid(0xFFFFFFFF)
print(hash(s.state), s.state.fingerprint())
"""


def _run(seed: str) -> str:
    env = dict(os.environ, PYTHONHASHSEED=seed)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_hash_equal_across_processes_and_hash_seeds():
    a, b, c = _run("0"), _run("12345"), _run("random")
    assert a == b == c
    h, fp = map(int, a.split())
    assert fp == h & 0xFFFF_FFFF_FFFF_FFFF and fp != 0


def test_equal_states_compare_equal_and_differ_after_a_change():
    from pasidsim.config import Config, DeviceConfig, IommuUnit
    from pasidsim.system import System
    cfg = Config.build(iommus=[IommuUnit("i")], devices=[DeviceConfig("d", iommu="i", pasid_bits=20)])
    a, b = System(cfg), System(cfg)
    for s in (a, b):
        s.process_create()
    assert a.state == b.state and hash(a.state) == hash(b.state)
    a.iommu_alloc_global_pasid("d")
    assert a.state != b.state and hash(a.state) != hash(b.state)


def _with(s, **tables):
    return s._replace(**tables)


def test_tables_differing_only_by_swapped_values_hash_differently():
    """immutables.Map hashes keys and values separately: {11: a, 15: b} and {11: b, 15: a}
    collide.  The state fingerprint must not, or the checker would take a new state for a
    visited one -- at the top level and in a record's own table (Mm.pt)."""
    from immutables import Map

    from pasidsim.config import Config, DeviceConfig, IommuUnit
    from pasidsim.state import Mm, initial_state
    from pasidsim.policy import CURRENT
    s = initial_state(Config.build(iommus=[IommuUnit("i")],
                                   devices=[DeviceConfig("d", iommu="i", pasid_bits=20)]), CURRENT)
    assert hash(Map({11: True, 15: False})) == hash(Map({11: False, 15: True}))  # the trap
    a = _with(s, pending_free=Map({11: True, 15: False}))
    b = _with(s, pending_free=Map({11: False, 15: True}))
    assert a != b and hash(a) != hash(b)
    m1, m2 = Mm(pt=Map({4: (1, 3), 5: (2, 3)})), Mm(pt=Map({4: (2, 3), 5: (1, 3)}))
    c, d = _with(s, mms=Map({7: m1})), _with(s, mms=Map({7: m2}))
    assert c != d and hash(c) != hash(d)
    from pasidsim.state import Domain, DomainType  # and in a domain's IOVA table
    d1, d2 = (Domain(DomainType.UNMANAGED, 0, iova=Map(t)) for t in ({4: (1, 3), 5: (2, 3)},
                                                                       {4: (2, 3), 5: (1, 3)}))
    e, f = _with(s, domains=Map({9: d1})), _with(s, domains=Map({9: d2}))
    assert e != f and hash(e) != hash(f)
    assert hash(Domain(DomainType.UNMANAGED, 0)) != hash(Domain(DomainType.UNMANAGED, 1))


def test_equal_tables_hash_equal_whatever_order_they_were_built_in():
    """The fingerprint hashes a table as the tuple of its items in iteration order; that order
    must depend only on the keys, not on the insertion and deletion history (else equal
    states would be explored twice).  Int and tuple keys, past 16 keys (HAMT array nodes)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from immutables import Map

    from pasidsim.config import Config, DeviceConfig, IommuUnit
    from pasidsim.policy import CURRENT
    from pasidsim.state import initial_state
    s = initial_state(Config.build(iommus=[IommuUnit("i")],
                                   devices=[DeviceConfig("d", iommu="i", pasid_bits=20)]), CURRENT)
    keys = st.one_of(st.integers(0, 1 << 40), st.tuples(st.integers(0, 8), st.integers(0, 1 << 20),
                                                        st.integers(0, 1 << 36)))

    @settings(max_examples=200, deadline=None)
    @given(st.dictionaries(keys, st.integers(), max_size=60), st.lists(keys, max_size=20),
           st.randoms(use_true_random=False))
    def check(items, extra, rnd):
        order = list(items.items())
        rnd.shuffle(order)
        built = Map()
        for k in extra:  # keys inserted and deleted again
            built = built.set(k, 0)
        for k, v in order:
            built = built.set(k, v)
        for k in set(extra) - set(items):
            built = built.delete(k)
        direct = Map(items)
        assert built == direct
        assert hash(_with(s, atc=built)) == hash(_with(s, atc=direct))

    check()
