"""The operations reference (pasidsim.report.opsref): every operation has its section with
parameters, return value, errnos and kernel source, and the errno lists agree with the code."""

from __future__ import annotations

import inspect
import re

import pytest

from pasidsim.ops import OP_BY_NAME, OPS
from pasidsim.report import opsref as R

#: Errnos a docstring names that reach the caller through an ops table (a driver plug-in),
#: which the static scan of the code does not follow: op → {errno: the dispatched call}.
VIA_OPS_TABLES = {"dev_open": {"EINVAL": "uacce's open after the driver was unbound"}}


def test_every_parameter_of_every_operation_is_described():
    missing = sorted({p for op in OPS for p in op.params if p not in R.PARAMS})
    assert not missing, f"add these parameters to opsref.PARAMS: {missing}"
    unused = sorted(set(R.PARAMS) - {p for op in OPS for p in op.params})
    assert not unused, f"opsref.PARAMS describes parameters no operation has: {unused}"


def test_every_operation_has_a_section_in_opcode_order():
    md = R.markdown()
    heads = re.findall(r"^### (\S+)$", md, re.M)
    assert sorted(heads) == sorted(op.name for op in OPS)
    rows = re.findall(r"^\| (\d+) \| \[`(\w+)`\]", md, re.M)
    assert [(int(c), n) for c, n in rows] == [(op.code, op.name) for op in OPS]


def test_bind_section_states_params_return_errnos_and_source():
    md = R.markdown()
    sec = md.split("### iommu_sva_bind_device\n", 1)[1].split("\n### ", 1)[0]
    assert "opcode 42; kernel call; **not atomic**" in sec
    assert "| `mm` | int | required | mm id (`SystemState.mms`)" in sec
    assert "`self`" in sec                       # what a scenario may write for mm
    assert "**Returns:** A handle id (> 0)" in sec
    assert ("**Errnos:** `-EBUSY`, `-EINVAL`, `-ENODEV`, `-ENOSPC`, `-EOPNOTSUPP`, "
            "`-EOVERFLOW`") in sec
    assert "**Kernel source:** drivers/iommu/iommu-sva.c `iommu_sva_bind_device()`." in sec


def test_alias_and_no_kernel_source_are_stated():
    md = R.markdown()
    sec = md.split("### dev_open\n", 1)[1].split("\n### ", 1)[0]
    assert "scenario step `dev_open` or `open`" in sec
    assert "fs/open.c" in sec
    fork = md.split("### fork\n", 1)[1].split("\n### ", 1)[0]
    assert "**Kernel source:** not stated in the docstring." in fork
    assert R.kernel_source(OP_BY_NAME["fork"]) == ""


def test_errnos_named_for_another_call_are_left_out():
    # "the range is exhausted (-ENOSPC/-ENOMEM collapse to INVALID)": the call returns
    # IOMMU_PASID_INVALID, never an errno
    op = OP_BY_NAME["iommu_alloc_global_pasid"]
    assert {"ENOSPC", "ENOMEM"} <= set(R.documented_errnos(op))
    assert R.errnos(op) == []
    assert R.errnos(OP_BY_NAME["pci_dev_reset_iommu_prepare"]) == ["ENOMEM"]


def test_undocumented_errnos_are_marked():
    md = R.markdown()
    sec = md.split("### mmap\n", 1)[1].split("\n### ", 1)[0]
    assert "`-EBADF`, `-ENODEV`†" in sec
    assert "(† `-ENODEV`: the file has no driver ops)" in sec


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_errnos_agree_with_the_code(op):
    """Every errno the function's own body returns is listed (documented, or in
    UNDOCUMENTED); every errno listed is returned somewhere in the code it runs (4 calls
    deep, fault points included) or through an ops table; NOT_RETURNED entries are never
    negated in the function's own body except where the docstring says they collapse."""
    direct = R.code_errnos(op.fn, 0)
    listed = set(R.errnos(op))
    not_returned = R.NOT_RETURNED.get(op.name, {})
    unlisted = direct - listed - set(not_returned)
    assert not unlisted, (f"{op.name} returns {sorted(unlisted)} but its docstring does not "
                          "name them: document them (or add to opsref.UNDOCUMENTED)")
    deep = R.code_errnos(op.fn, 4, fault_points=True)
    unfounded = listed - deep - set(VIA_OPS_TABLES.get(op.name, {}))
    assert not unfounded, f"{op.name}: listed {sorted(unfounded)}, not found in its code"
    for e, reason in not_returned.items():
        assert e in R.documented_errnos(op), f"{op.name}: NOT_RETURNED {e} is not documented"
        assert e not in direct or "collapse" in reason


def test_not_returned_entries_are_not_returned():
    """The NOT_RETURNED functions return what the docstring says instead (read in the code):
    the state's allocator full still gives IOMMU_PASID_INVALID, not -ENOSPC."""
    from pasidsim.config import Config, DeviceConfig, IommuUnit
    from pasidsim.policy import CURRENT
    from pasidsim.state import IOMMU_PASID_INVALID, initial_state
    from pasidsim.step import Action, step
    cfg = Config.build(iommus=[IommuUnit("u", max_pasids=4)],
                       devices=[DeviceConfig("d", iommu="u", pasid_bits=2)])
    s = initial_state(cfg, CURRENT)
    got = []
    for _ in range(4):
        s, ret = step(s, Action.of("iommu_alloc_global_pasid", dev=0))
        got.append(ret)
    assert got == [1, 2, 3, IOMMU_PASID_INVALID]


def test_kernel_files_are_paths_from_the_models_sentence():
    assert R.kernel_files(OP_BY_NAME["iommu_free_global_pasid"]) == [
        "drivers/iommu/iommu.c", "lib/idr.c"]
    assert R.kernel_files(OP_BY_NAME["close"]) == []


def test_params_rows_defaults_and_types():
    rows = R.params_rows(OP_BY_NAME["iommu_domain_alloc_paging"])
    assert rows[0][:3] == ("dev", "int", "required")
    assert rows[1][:3] == ("pasid_compat", "bool", "True")
    assert rows[1][4] == "true/false"
    sig = inspect.signature(OP_BY_NAME["iommu_domain_alloc_paging"].fn)
    assert [r[0] for r in rows] == list(sig.parameters)[1:]
