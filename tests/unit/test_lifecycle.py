"""The lifecycle tables (pasidsim.lifecycle): the generated docs are current, every state is
used and reachable, transition() accepts exactly the listed pairs, and the PASID table says
what the PASID allocator of the model does, case by case, as kernel-spec §1.3/§1.5 describe."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from pasidsim import lifecycle as L
from pasidsim.report import lifecycles as D
from pasidsim.errors import ModelInternalError, Warn
from pasidsim.lifecycle import CREATE, SPECS, Lifecycle, PasidLc, transition

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "lifecycles.md"
SOURCE = ROOT / "src" / "pasidsim" / "lifecycle.py"


# -- (a) the docs are what the generator writes ------------------------------------------------

def test_docs_are_generated_from_the_tables():
    assert DOCS.read_text(encoding="utf-8") == D.markdown(), (
        "docs/lifecycles.md is stale: run python -m pasidsim.report.lifecycles > docs/lifecycles.md")


def test_module_entry_point_writes_the_docs():
    out = subprocess.run([sys.executable, "-m", "pasidsim.report.lifecycles"], capture_output=True,
                         text=True, check=True, encoding="utf-8")
    assert out.stdout == D.markdown()


def test_every_lifecycle_has_a_section_and_a_diagram():
    md = D.markdown()
    assert md.count("```mermaid\nstateDiagram-v2\n") == len(Lifecycle)
    for spec in SPECS:
        assert f"## {spec.title}\n" in md
        diagram = D.mermaid(spec.lifecycle)
        assert diagram.startswith("stateDiagram-v2\n") and diagram.endswith("\n")
        for m in spec.states:
            assert f'state "{m.name}" as s_{m.name}' in diagram
        assert "[*] --> " in diagram  # every lifecycle shows how its objects start


# -- (b) no unused, no unreachable state --------------------------------------------------------

@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.lifecycle.name)
def test_every_state_appears_in_a_transition(spec):
    used = set()
    for t in spec.transitions:
        used.update((t.src, t.dst))
    assert set(spec.states) <= used, set(spec.states) - used


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.lifecycle.name)
def test_every_state_is_reachable_from_creation(spec):
    seen = {CREATE}
    todo = [CREATE]
    while todo:
        x = todo.pop()
        for t in spec.transitions:
            if t.src == x and t.dst not in seen:
                seen.add(t.dst)
                todo.append(t.dst)
    assert set(spec.states) <= seen, set(spec.states) - seen


def test_specs_are_indexed_by_lifecycle_and_fully_documented():
    assert [s.lifecycle for s in SPECS] == list(Lifecycle)
    for spec in SPECS:
        assert set(spec.state_notes) == set(spec.states)
        assert spec.text and spec.sources and spec.subject
        for t in spec.transitions:
            assert t.event and t.kernel_fn and t.note, t
            assert t.dst != CREATE


# -- (c) transition() accepts exactly the table ---------------------------------------------------

@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.lifecycle.name)
def test_transition_accepts_every_listed_pair(spec):
    for t in spec.transitions:
        transition(spec.lifecycle, t.src, t.dst)  # enum members
        transition(spec.lifecycle, int(t.src), int(t.dst))  # stored ints
        transition(int(spec.lifecycle), int(t.src), int(t.dst))
        assert L.allowed(spec.lifecycle, t.src, t.dst)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.lifecycle.name)
def test_transition_rejects_every_absent_pair(spec):
    listed = {(int(t.src), int(t.dst)) for t in spec.transitions}
    states = [int(m) for m in spec.states]
    absent = [(a, b) for a in [CREATE] + states for b in states if (a, b) not in listed]
    absent += [(states[0], CREATE), (max(states) + 1, states[0]), (states[0], 99)]
    for a, b in absent:
        with pytest.raises(ModelInternalError, match=spec.lifecycle.name):
            transition(spec.lifecycle, a, b)
        assert not L.allowed(spec.lifecycle, a, b)


def test_transition_error_names_the_states():
    with pytest.raises(ModelInternalError, match=r"MM lifecycle: LIVE -> FREED"):
        transition(Lifecycle.MM, L.MmLc.LIVE, L.MmLc.FREED)
    with pytest.raises(ModelInternalError, match=r"\(create\) -> EXITED"):
        transition(Lifecycle.MM, CREATE, L.MmLc.EXITED)


@pytest.mark.parametrize("bad", [-1, len(Lifecycle), "PASID", None, [0]])
def test_transition_rejects_a_non_lifecycle(bad):
    with pytest.raises(ModelInternalError, match="not a lifecycle"):
        transition(bad, 0, 1)


def test_model_internal_error_is_the_errors_module_one():
    assert L.ModelInternalError is ModelInternalError
    assert issubclass(ModelInternalError, RuntimeError)


def test_pairs_are_plain_int_frozensets():
    for spec in SPECS:
        pairs = L.ALLOWED[spec.lifecycle]
        assert type(pairs) is frozenset
        assert all(type(a) is int and type(b) is int for a, b in pairs)


# -- layering and the enums of state.py ----------------------------------------------------------

def test_lifecycle_imports_only_errors_and_the_standard_library():
    tree = ast.parse(SOURCE.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                assert node.level == 1 and node.module == "errors", ast.dump(node)
            else:
                assert node.module == "__future__" or node.module == "pasidsim.errors" or \
                    node.module.split(".")[0] in sys.stdlib_module_names, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                assert alias.name.split(".")[0] in sys.stdlib_module_names, alias.name


def test_values_agree_with_the_state_enums():
    """Where state.py stores a lifecycle state, the same names have the same values, so the
    stored field can be passed to transition() as is."""
    from pasidsim.state import IoasidState, MmState, PasidEntryMode
    for lc_enum, st_enum in ((L.MmLc, MmState), (L.PasidEntryLc, PasidEntryMode),
                             (L.IoasidLc, IoasidState)):
        for m in st_enum:
            if m.name in lc_enum.__members__:
                assert int(lc_enum[m.name]) == int(m), (lc_enum, m)
    assert set(MmState.__members__) <= set(L.MmLc.__members__)
    assert set(PasidEntryMode.__members__) <= set(L.PasidEntryLc.__members__)


# -- (d) the PASID table against the model's allocator, case by case --------------------------

def _machine(allocator):
    from pasidsim.config import Config, DeviceConfig, IommuUnit
    from pasidsim.policy import CURRENT
    from pasidsim.state import initial_state
    cfg = Config.build(iommus=[IommuUnit("dmar0")],
                       devices=[DeviceConfig("dsa0", iommu="dmar0", pasid_bits=20)])
    return initial_state(cfg, CURRENT.but(allocator=allocator))


def _pasid_state(s, p):
    """The PASID lifecycle state of ``p`` in ``s`` (what the kernel modules will compute)."""
    if p in s.pending_free:
        return PasidLc.PENDING_FREE
    return PasidLc.ALLOCATED if p in s.ida else PasidLc.FREE


def _prepare(allocator, src, refs):
    """A machine where PASID 1 is in state ``src`` with ``refs`` device references."""
    from pasidsim.pasid import iommu_alloc_global_pasid, iommu_free_global_pasid, pasid_get
    s = _machine(allocator)
    if src != PasidLc.FREE:
        s, p = iommu_alloc_global_pasid(s, 0)
        assert p == 1
    for _ in range(refs):
        s = pasid_get(s, 1)
    if src == PasidLc.PENDING_FREE:
        s, _ = iommu_free_global_pasid(s, 1)
    assert _pasid_state(s, 1) == src
    return s


def _alloc(s):
    from pasidsim.pasid import iommu_alloc_global_pasid
    s, p = iommu_alloc_global_pasid(s, 0)
    assert p == 1, "PASID 1 is the lowest free / the first cyclic one"
    return s


def _free(s):
    from pasidsim.pasid import iommu_free_global_pasid
    return iommu_free_global_pasid(s, 1)[0]


def _get(s):
    from pasidsim.pasid import pasid_get
    return pasid_get(s, 1)


def _put(s):
    from pasidsim.pasid import pasid_put
    return pasid_put(s, 1)


def _allocators():
    from pasidsim.policy import Allocator
    return Allocator


F, A, P = PasidLc.FREE, PasidLc.ALLOCATED, PasidLc.PENDING_FREE

# (kernel-spec fact, allocator, src, device refs before, action, dst, kernel_fn of the row)
PASID_CASES = [
    ("§1.3 alloc: lowest free in [1, max_pasids-1]", "LOWEST", F, 0, _alloc, A,
     "ida_alloc_range"),
    ("cyclic design: idr_alloc_cyclic", "CYCLIC", F, 0, _alloc, A, "idr_alloc_cyclic"),
    ("§1.5 pending-free allocates lowest free too", "PENDING_FREE", F, 0, _alloc, A,
     "ida_alloc_range"),
    ("§1.3 free: back in the IDA at once", "LOWEST", A, 0, _free, F,
     "iommu_free_global_pasid"),
    ("§1.3 no grace period: freed even while a device holds it", "LOWEST", A, 1, _free, F,
     "iommu_free_global_pasid"),
    ("cyclic: no grace period either", "CYCLIC", A, 1, _free, F, "iommu_free_global_pasid"),
    ("§1.5 pending-free, no device reference: freed at once", "PENDING_FREE", A, 0, _free, F,
     "iommu_free_global_pasid"),
    ("§1.5 pending-free, device references: PENDING_FREE, not FREE", "PENDING_FREE", A, 1,
     _free, P, "iommu_free_global_pasid"),
    ("§1.5 a put that is not the last keeps it pending", "PENDING_FREE", P, 2, _put, P,
     "pasid_put"),
    ("§1.5 the last put performs the deferred free", "PENDING_FREE", P, 1, _put, F,
     "pasid_put"),
    ("device reference on an allocated PASID", "LOWEST", A, 0, _get, A, "pasid_get"),
    ("device reference dropped", "LOWEST", A, 1, _put, A, "pasid_put"),
    ("§5.1 iommufd attaches a PASID the IDA never handed out", "LOWEST", F, 0, _get, F,
     "pasid_get"),
    ("its reference dropped", "LOWEST", F, 1, _put, F, "pasid_put"),
    ("a device takes a draining PASID", "PENDING_FREE", P, 1, _get, P, "pasid_get"),
]


def _row(src, dst, kernel_fn):
    return [t for t in L.transitions(Lifecycle.PASID)
            if (t.src, t.dst, t.kernel_fn) == (src, dst, kernel_fn)]


@pytest.mark.parametrize("fact,alloc,src,refs,action,dst,kernel_fn", PASID_CASES,
                         ids=[c[0] for c in PASID_CASES])
def test_pasid_table_matches_the_model(fact, alloc, src, refs, action, dst, kernel_fn):
    s = _prepare(getattr(_allocators(), alloc), src, refs)
    s2 = action(s)
    assert _pasid_state(s2, 1) == dst, fact
    assert s2.warnings == s.warnings, fact
    assert _row(src, dst, kernel_fn), f"no PASID row {src.name} -> {dst.name} by {kernel_fn}"
    transition(Lifecycle.PASID, _pasid_state(s, 1), _pasid_state(s2, 1))


def test_every_pasid_row_is_exercised():
    cases = {(c[2], c[5], c[6]) for c in PASID_CASES}
    rows = {(t.src, t.dst, t.kernel_fn) for t in L.transitions(Lifecycle.PASID)
            if t.src != CREATE}
    assert rows == cases


def test_pasid_freed_while_referenced_is_not_reused_under_pending_free():
    from pasidsim.pasid import iommu_alloc_global_pasid
    s = _prepare(_allocators().PENDING_FREE, P, 1)
    s, p = iommu_alloc_global_pasid(s, 0)
    assert p == 2
    s = _put(s)
    assert _pasid_state(s, 1) == F
    s, p = iommu_alloc_global_pasid(s, 0)
    assert p == 1


def test_pasid_freed_while_referenced_is_reused_at_once_today():
    """§1.3: the IDA has no grace period; the A3 invariant, not the allocator, forbids it."""
    from pasidsim.pasid import iommu_alloc_global_pasid
    s = _free(_prepare(_allocators().LOWEST, A, 1))
    s, p = iommu_alloc_global_pasid(s, 0)
    assert p == 1


@pytest.mark.parametrize("src", [F, P])
def test_freeing_a_free_or_pending_pasid_only_warns(src):
    """ida_free() of an ID that is not allocated WARNs and changes nothing (§1.3): no row."""
    s = _prepare(_allocators().PENDING_FREE, src, 1 if src == P else 0)
    s2 = _free(s)
    assert _pasid_state(s2, 1) == src
    assert s2.warnings == s.warnings + ((int(Warn.FREE_UNALLOCATED_PASID), 1, 0),)
    assert not _row(src, src, "iommu_free_global_pasid")


def test_freeing_invalid_pasid_only_warns():
    from pasidsim.pasid import iommu_free_global_pasid
    from pasidsim.state import IOMMU_PASID_INVALID
    s = _machine(_allocators().LOWEST)
    s2, ret = iommu_free_global_pasid(s, IOMMU_PASID_INVALID)
    assert ret == 0 and s2._replace(warnings=()) == s._replace(warnings=())
    assert s2.warnings[-1][0] == int(Warn.FREE_INVALID_PASID)
