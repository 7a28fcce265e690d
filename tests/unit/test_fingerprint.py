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
