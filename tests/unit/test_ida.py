"""The persistent allocator against a plain set, over random trees of versions: every old
version stays valid and unchanged (persistence), allocation is lowest-free / cyclic exactly as
IDA/IDR, equality and hashing are structural, pickling round-trips."""

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from pasidsim.ida import Ida

OPS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10 ** 6),
                         st.sampled_from([(1, 15), (1, 40), (3, 20), (1, 5)])),
               min_size=1, max_size=80)


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_version_tree_matches_a_set_model(ops):
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


def test_churn_does_not_grow_the_store():
    ida = Ida()
    for _ in range(1000):
        ida, p = ida.alloc_lowest(1, 100)
        ida = ida.clear(p)
    assert len(ida._store.heap) <= 2 and ida.allocated == 0
