"""The persistent allocator against a plain set, over random trees of versions: every old
version stays valid and unchanged (persistence), allocation is lowest-free / cyclic exactly as
IDA/IDR, equality and hashing are structural, pickling round-trips."""

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

import pytest

from pasidsim.ida import PyIda

try:
    from pasidsim._ida import Ida as CIda
except ImportError:  # pragma: no cover - extension not built
    CIda = None

IMPLS = [PyIda] + ([CIda] if CIda is not None else [])

OPS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10 ** 6),
                         st.sampled_from([(1, 15), (1, 40), (3, 20), (1, 5)])),
               min_size=1, max_size=80)


@pytest.mark.parametrize("Ida", IMPLS, ids=lambda c: c.__module__)
@settings(max_examples=150, deadline=None)
@given(ops=OPS)
def test_version_tree_matches_a_set_model(Ida, ops):
    versions = [(Ida(), frozenset(), 0)]
    for kind, pick, (lo, hi) in ops:
        v, ref, cur = versions[pick % len(versions)]
        assert v.ids() == sorted(ref) and v.allocated == len(ref)
        if kind == 0:
            nv, x = v.alloc_lowest(lo, hi)
            assert x == next((i for i in range(lo, hi + 1) if i not in ref), -1)
            if x >= 0:
                versions.append((nv, ref | {x}, cur))
        elif kind == 1:
            nv, x = v.alloc_cyclic(lo, hi)
            start = cur if lo <= cur <= hi else lo
            order = list(range(start, hi + 1)) + list(range(lo, start))
            assert x == next((i for i in order if i not in ref), -1)
            if x >= 0:
                assert nv.cursor == x + 1
                versions.append((nv, ref | {x}, x + 1))
        elif ref:
            x = sorted(ref)[pick % len(ref)]
            versions.append((v.clear(x), ref - {x}, cur))
    for v, ref, cur in versions:  # every version still reads as it was made
        assert v.ids() == sorted(ref)
        assert pickle.loads(pickle.dumps(v)) == v
    for a in versions[:10]:
        for b in versions[:10]:
            same = a[1] == b[1] and a[2] == b[2]
            assert (a[0] == b[0]) == same
            if same:
                assert hash(a[0]) == hash(b[0])


def test_the_c_implementation_is_built():
    assert CIda is not None, "pasidsim._ida was not built: pip install -e . compiles it"


def test_long_version_chains_free_without_recursion():
    for Ida in IMPLS:
        first = Ida()
        ida = first
        for i in range(200_000):
            ida, p = ida.alloc_lowest(1, 100) if i % 2 == 0 else (ida.clear(p), p)
        del ida
        assert first.ids() == []
        del first  # the whole chain goes here; a recursive free would overflow the C stack


def test_churn_does_not_grow_the_store():
    ida = PyIda()
    for _ in range(1000):
        ida, p = ida.alloc_lowest(1, 100)
        ida = ida.clear(p)
    assert len(ida._store.heap) <= 2 and ida.allocated == 0
