"""Small workloads for the simulator tests (fast: a few hundred processes)."""

from __future__ import annotations

import pytest

from pasidsim.sim.workload import load_workload_text

GPU = """\
name: small-gpu
design: amdgpu-lowest
seed: 5
processes: 300
arrival: {dist: exponential, mean: 0.5}
lifetime: {dist: exponential, mean: 10}
sample_every: 10
violations: count
contexts:
  - kind: gpu_vm
    dev: gpu0
    job_interval: {dist: exponential, mean: 2}
    job_duration: {dist: exponential, mean: 0.5}
    fault_prob: 0.3
    ih_latency: {dist: exponential, mean: 2}
"""

SVA = """\
name: small-sva
design: E0-io_mm
policy_overrides: {allocator: LOWEST}
machine:
  iommus: [{name: dmar0}]
  devices:
    - {name: dsa0, iommu: dmar0, pasid_bits: 20, ats: true, pri: true, driver: idxd}
    - {name: dsa1, iommu: dmar0, pasid_bits: 20, ats: true, pri: true, driver: idxd}
    - {name: dsa2, iommu: dmar0, pasid_bits: 20, ats: true, pri: true, driver: idxd}
    - {name: dsa3, iommu: dmar0, pasid_bits: 20, ats: true, pri: true, driver: idxd}
  drivers: [{name: idxd, kind: idxd-dwq, mm_exit_drains: false}]
seed: 3
processes: 200
arrival: {dist: exponential, mean: 1}
lifetime: {dist: exponential, mean: 5}
sample_every: 10
violations: count
expect_warn: [MM_EXIT_LEAK]
contexts:
  - kind: sva_wq
    dev: [dsa0, dsa1, dsa2, dsa3]
    job_interval: {dist: exponential, mean: 1}
    job_duration: {dist: exponential, mean: 3}
"""


@pytest.fixture
def gpu_workload():
    return load_workload_text(GPU, "small-gpu.yaml")


@pytest.fixture
def sva_workload():
    return load_workload_text(SVA, "small-sva.yaml")
