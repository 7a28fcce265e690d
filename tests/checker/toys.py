"""Toy models with known state spaces for the checker tests and benchmarks.

All factories are top-level functions so that ``functools.partial(factory, ...)`` is a
picklable ``model_factory`` for :func:`pasidsim.check.explore_parallel`.  States are tuples
of ints, whose hashes are identical in every process.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from pasidsim.check import FunctionModel, Goal, Invariant

# -- two (or more) threads doing a non-atomic increment -----------------------------------
# State: (((pc, reg), ...), counter).  pc 0: read counter into reg; pc 1: counter = reg + 1.


def counter_model(threads: int = 2, forbid_lost_update: bool = False) -> FunctionModel:
    """The lost-update race: 13 states for 2 threads, 8 up to thread symmetry.

    With ``forbid_lost_update`` the lost update is also an invariant violation.
    """

    def actions(s: Any) -> list[tuple[str, int]]:
        return [("read" if pc == 0 else "write", i) for i, (pc, _) in enumerate(s[0]) if pc < 2]

    def step(s: Any, a: tuple[str, int]) -> Any:
        ts, c = s
        kind, i = a
        if kind == "read":
            return ts[:i] + ((1, c),) + ts[i + 1:], c
        return ts[:i] + ((2, ts[i][1]),) + ts[i + 1:], ts[i][1] + 1

    def done(s: Any) -> bool:
        return all(pc == 2 for pc, _ in s[0])

    invariants = [Invariant.always("counter <= threads", lambda s: s[1] <= threads)]
    if forbid_lost_update:
        invariants.append(Invariant.always(
            "no lost update", lambda s: not (done(s) and s[1] < threads), "an increment was lost"))
    return FunctionModel(
        initial_states=lambda: [(((0, 0),) * threads, 0)],
        actions=actions, step=step, invariants=invariants,
        sometimes=[Goal("lost update", lambda s: done(s) and s[1] < threads),
                   Goal("all increments", lambda s: done(s) and s[1] == threads)],
        is_quiescent=done,
        canonical=lambda s: (tuple(sorted(s[0])), s[1]),
        actor=lambda a: a[1],
        independent=lambda a, b: a[1] != b[1] and a[0] == b[0] == "read",
        visible=lambda a: a[0] == "write",
        alphabet=lambda: [(k, i) for i in range(threads) for k in ("read", "write")],
        name=f"counter{threads}")


# -- a graph with a short and a long path to the bad node --------------------------------

SHORTCUT_GRAPH = {0: [10, 20], 10: [11], 11: [12], 12: [],
                  20: [21], 21: [22], 22: [23], 23: [24], 24: [12]}


def shortcut_model() -> FunctionModel:
    """Node 12 is bad; shortest path 0-10-11-12 (3 steps), another one of 6 steps."""
    return FunctionModel(
        initial_states=lambda: [0], actions=lambda s: SHORTCUT_GRAPH[s], step=lambda s, a: a,
        invariants=[Invariant.always("not bad", lambda s: s != 12, "reached node 12")])


# -- replay determinism ------------------------------------------------------------------

_TICKS = itertools.count(1)


def nondeterministic_model() -> FunctionModel:
    """``step`` adds a global, ever-increasing tick: replay cannot reproduce the states."""
    return FunctionModel(
        initial_states=lambda: [0], actions=lambda s: ["tick"] if s < 1000 else [],
        step=lambda s, a: s + next(_TICKS),
        invariants=[Invariant.always("small", lambda s: s < 10)])


# -- deadlock and quiescence -------------------------------------------------------------
# State: (pcA, pcB, owner of lock 1, owner of lock 2); owner 0 = free, 1 = A, 2 = B.

_LOCK_ORDER = {1: (1, 2), 2: (2, 1)}  # thread -> the order in which it takes the two locks


def dining_model(same_order: bool = False) -> FunctionModel:
    """Two threads take two locks (in opposite orders unless ``same_order``), then release."""
    orders = {1: (1, 2), 2: (1, 2)} if same_order else _LOCK_ORDER

    def actions(s: Any) -> list[tuple[str, int]]:
        out = []
        for t in (1, 2):
            pc = s[t - 1]
            if pc < 2 and s[1 + orders[t][pc]] == 0:
                out.append(("lock", t))
            elif pc == 2:
                out.append(("unlock", t))
        return out

    def step(s: Any, a: tuple[str, int]) -> Any:
        kind, t = a
        st = list(s)
        if kind == "lock":
            st[1 + orders[t][s[t - 1]]] = t
        else:
            st[2] = st[2] if st[2] != t else 0
            st[3] = st[3] if st[3] != t else 0
        st[t - 1] += 1
        return tuple(st)

    return FunctionModel(initial_states=lambda: [(0, 0, 0, 0)], actions=actions, step=step,
                         is_quiescent=lambda s: s[0] == s[1] == 3)


def leak_model() -> FunctionModel:
    """State (pc, allocated): alloc, then either free or return early (leaking)."""
    table = {0: [("alloc", 1, 1)], 1: [("free", 2, 0), ("return_early", 2, 1)], 2: []}
    return FunctionModel(
        initial_states=lambda: [(0, 0)],
        actions=lambda s: [name for name, _, _ in table[s[0]]],
        step=lambda s, a: next((pc, al) for n, pc, al in table[s[0]] if n == a),
        is_quiescent=lambda s: s[0] == 2,
        at_quiescence=lambda s: f"leak: {s[1]} object(s) still allocated" if s[1] else None)


def unreachable_goal_model() -> FunctionModel:
    """A counter 0..3 with a goal that needs 5."""
    return FunctionModel(
        initial_states=lambda: [0], actions=lambda s: ["inc"] if s < 3 else [],
        step=lambda s, a: s + 1,
        sometimes=[Goal("reaches 3", lambda s: s == 3), Goal("reaches 5", lambda s: s == 5)])


# -- independent processes (partial-order reduction) -------------------------------------
# State: tuple of counters; action ("inc", p, from); the final increment of each process is
# the only visible action (invariants and goals look only at which processes are done).


def processes_model(n: int = 4, k: int = 3, bad: bool = False) -> FunctionModel:
    """``n`` independent processes each counting to ``k``: ``(k+1)**n`` states.

    With ``bad``, the invariant "process 0 does not finish before process 1" fails.
    """

    def done(s: Any) -> bool:
        return all(c == k for c in s)

    invariants = [Invariant.always("done count <= n", lambda s: sum(c == k for c in s) <= n)]
    if bad:
        invariants.append(Invariant.always(
            "0 not before 1", lambda s: not (s[0] == k and s[1] < k), "process 0 finished first"))
    return FunctionModel(
        initial_states=lambda: [(0,) * n],
        actions=lambda s: [("inc", p, c) for p, c in enumerate(s) if c < k],
        step=lambda s, a: s[:a[1]] + (a[2] + 1,) + s[a[1] + 1:],
        invariants=invariants,
        sometimes=[Goal("all done", done), Goal("exactly one done", lambda s: sum(c == k for c in s) == 1)],
        is_quiescent=done,
        at_quiescence=lambda s: None if sum(s) == n * k else "lost increments",
        canonical=lambda s: tuple(sorted(s)),
        actor=lambda a: a[1], independent=lambda a, b: a[1] != b[1],
        visible=lambda a: a[2] == k - 1,
        alphabet=lambda: [("inc", p, c) for p in range(n) for c in range(k)],
        name=f"processes{n}x{k}")


def cycle_model() -> FunctionModel:
    """Process 0 toggles 0/1 forever (invisible); process 1 makes two steps to done.

    Without the cycle proviso a reduced search would only ever run process 0.
    """
    return FunctionModel(
        initial_states=lambda: [(0, 0)],
        actions=lambda s: [("toggle", 0, s[0])] + ([("step", 1, s[1])] if s[1] < 2 else []),
        step=lambda s, a: (1 - s[0], s[1]) if a[1] == 0 else (s[0], s[1] + 1),
        sometimes=[Goal("process 1 done", lambda s: s[1] == 2)],
        actor=lambda a: a[1], independent=lambda a, b: a[1] != b[1],
        visible=lambda a: a[0] == "step" and a[2] == 1,
        alphabet=lambda: [("toggle", 0, 0), ("toggle", 0, 1), ("step", 1, 0), ("step", 1, 1)])


# -- random models: isolated processes with random local graphs + two racing threads -----


def random_spec(seed: int) -> dict[str, Any]:
    """The random parameters of :func:`random_model` for ``seed``."""
    rng = random.Random(seed)
    nproc = rng.randint(1, 3)
    sizes = [rng.randint(2, 4) for _ in range(nproc)]
    return dict(
        nproc=nproc,
        edges=[{u: sorted(rng.sample(range(m), rng.randint(0, min(2, m)))) for u in range(m)} for m in sizes],
        obs=[frozenset(rng.sample(range(m), rng.randint(1, m - 1))) for m in sizes],
        race=rng.random() < 0.7,
        bad=[rng.randint(0, 1) for _ in range(nproc)])


def observation(seed: int, s: Any) -> tuple:
    """The visible part of a :func:`random_model` state: the counter and each observation."""
    obs = random_spec(seed)["obs"]
    return (s[2],) + tuple(u in o for u, o in zip(s[3], obs))


def random_model(seed: int) -> FunctionModel:
    """Random isolated processes (local graphs, often cyclic) plus, usually, a lost-update race.

    State: ((pc, reg) of thread 0, (pc, reg) of thread 1, counter, local state of each
    process).  Process ``p`` is *observed* in its local states ``obs[p]``; the invariant, the
    goal and the visible actions only concern the observations and the counter.
    """
    spec = random_spec(seed)
    nproc, edges, obs, race, bad = (spec[k] for k in ("nproc", "edges", "obs", "race", "bad"))

    def actions(s: Any) -> list[tuple]:
        out: list[tuple] = []
        if race:
            out += [("read" if pc == 0 else "write", i) for i, (pc, _) in enumerate(s[:2]) if pc < 2]
        for p, u in enumerate(s[3]):
            out += [("move", 10 + p, u, v) for v in edges[p][u]]
        return out

    def step(s: Any, a: tuple) -> Any:
        t0, t1, c, loc = s
        if a[0] == "move":
            p = a[1] - 10
            return t0, t1, c, loc[:p] + (a[3],) + loc[p + 1:]
        ts = [t0, t1]
        i = a[1]
        if a[0] == "read":
            ts[i] = (1, c)
        else:
            ts[i], c = (2, ts[i][1]), ts[i][1] + 1
        return ts[0], ts[1], c, loc

    def all_bad(s: Any) -> bool:
        return s[2] == 1 and all((s[3][p] in obs[p]) == bool(bad[p]) for p in range(nproc))

    def visible(a: tuple) -> bool:
        if a[0] == "move":
            o = obs[a[1] - 10]
            return (a[2] in o) != (a[3] in o)
        return a[0] == "write"

    alphabet = [("read", 0), ("write", 0), ("read", 1), ("write", 1)] if race else []
    alphabet += [("move", 10 + p, u, v) for p in range(nproc) for u in edges[p] for v in edges[p][u]]
    return FunctionModel(
        initial_states=lambda: [((0, 0), (0, 0), 0, (0,) * nproc)],
        actions=actions, step=step,
        invariants=[Invariant.always("not all bad", lambda s: not all_bad(s))],
        sometimes=[Goal("counter 2", lambda s: s[2] == 2)],
        actor=lambda a: a[1],
        independent=lambda a, b: a[1] != b[1] and ("move" in (a[0], b[0]) or a[0] == b[0] == "read"),
        visible=visible, alphabet=lambda: alphabet, name=f"random{seed}")


# -- benchmark model -----------------------------------------------------------------------


def counters_model(n: int = 5, k: int = 9, limit: int | None = None) -> FunctionModel:
    """``n`` counters each incremented up to ``k`` in any order: ``(k+1)**n`` states.

    With ``limit``, the invariant "sum < limit" fails at depth ``limit`` in many states.
    """
    invariants = [Invariant.always("bounded", lambda s: max(s) <= k)]
    if limit is not None:
        invariants.append(Invariant.always("sum < limit", lambda s: sum(s) < limit))
    return FunctionModel(
        initial_states=lambda: [(0,) * n],
        actions=lambda s: [p for p in range(n) if s[p] < k],
        step=lambda s, p: s[:p] + (s[p] + 1,) + s[p + 1:],
        invariants=invariants,
        sometimes=[Goal("all full", lambda s: min(s) == k)],
        canonical=lambda s: tuple(sorted(s)), name=f"counters{n}x{k}")


def named_model(n: int = 3, k: int = 3) -> FunctionModel:
    """Like :func:`counters_model` but states hold strings, whose hash differs per process."""
    names = [f"cpu{i}" for i in range(n)]
    return FunctionModel(
        initial_states=lambda: [tuple((x, 0) for x in names)],
        actions=lambda s: [x for x, c in s if c < k],
        step=lambda s, x: tuple((y, c + (y == x)) for y, c in s),
        invariants=[Invariant.always("sum < limit", lambda s: sum(c for _, c in s) < n * k - 1)])


def exploding_model(at: int = 4) -> FunctionModel:
    """Three counters whose ``step`` raises ``ZeroDivisionError`` on reaching sum ``at``."""

    def step(s: Any, p: int) -> Any:
        nxt = s[:p] + (s[p] + 1,) + s[p + 1:]
        if sum(nxt) == at:
            raise ZeroDivisionError(f"boom at {nxt}")
        return nxt

    return FunctionModel(initial_states=lambda: [(0, 0, 0)],
                         actions=lambda s: [p for p in range(3) if s[p] < 3], step=step)


def ring_model(n: int = 3, m: int = 4, observed: int | None = None) -> FunctionModel:
    """The lost-update race plus ``n`` isolated processes each walking a ring of ``m`` nodes.

    The first ``observed`` processes (default all) are observed at node 0 only (moves in or
    out of it are visible); the others are never visible, so their rings are cycles of
    invisible actions on which the cycle proviso of partial-order reduction must fire.
    """
    obs = n if observed is None else observed

    def actions(s: Any) -> list[tuple]:
        out: list[tuple] = [("read" if pc == 0 else "write", i) for i, (pc, _) in enumerate(s[0]) if pc < 2]
        return out + [("move", 10 + p, u) for p, u in enumerate(s[2])]

    def step(s: Any, a: tuple) -> Any:
        ts, c, ring = s
        if a[0] == "move":
            p = a[1] - 10
            return ts, c, ring[:p] + ((a[2] + 1) % m,) + ring[p + 1:]
        i = a[1]
        if a[0] == "read":
            return ts[:i] + ((1, c),) + ts[i + 1:], c, ring
        return ts[:i] + ((2, ts[i][1]),) + ts[i + 1:], ts[i][1] + 1, ring

    return FunctionModel(
        initial_states=lambda: [(((0, 0), (0, 0)), 0, (0,) * n)],
        actions=actions, step=step,
        invariants=[Invariant.always("not lost while all home", lambda s: not (
            s[1] == 1 and all(pc == 2 for pc, _ in s[0]) and all(u == 0 for u in s[2][:obs])))],
        sometimes=[Goal("all away", lambda s: all(u != 0 for u in s[2][:obs]))],
        actor=lambda a: a[1],
        independent=lambda a, b: a[1] != b[1] and ("move" in (a[0], b[0]) or a[0] == b[0] == "read"),
        visible=lambda a: a[0] == "write" or (a[0] == "move" and a[1] - 10 < obs and a[2] in (0, m - 1)),
        alphabet=lambda: [("read", 0), ("write", 0), ("read", 1), ("write", 1)]
        + [("move", 10 + p, u) for p in range(n) for u in range(m)],
        name=f"ring{n}x{m}")


# -- symmetric copies of one state reached from parents owned by different workers ----------
# Actual states are (class, variant); canonical(state) is the class, an int, so that its
# fingerprint (hash(int) == int) and hence its parallel owner (fp % 2) are chosen here.
# Level 1 holds P1 (class 2, worker 0) then P2 (class 3, worker 1); both reach class 5
# (worker 1), P1 as X1 and P2 as X2, whose actions come in opposite orders.  The serial
# search keeps X1, the first found, and finds BAD through X1's action 0.

REPRESENTATIVE_GRAPH = {
    (0, "root"): {"a": (2, "p1"), "b": (3, "p2")},
    (2, "p1"): {"x": (5, "x1")},
    (3, "p2"): {"y": (5, "x2")},
    (5, "x1"): {"go": (7, "bad"), "stay": (9, "ok1")},
    (5, "x2"): {"stay": (9, "ok2"), "go": (7, "bad")},
    (7, "bad"): {}, (9, "ok1"): {}, (9, "ok2"): {},
}


def representative_model() -> FunctionModel:
    """Parallel BFS must expand the serial search's representative of a symmetry class."""
    return FunctionModel(
        initial_states=lambda: [(0, "root")],
        actions=lambda s: list(REPRESENTATIVE_GRAPH[s]),
        step=lambda s, a: REPRESENTATIVE_GRAPH[s][a],
        invariants=[Invariant.always("not bad", lambda s: s[0] != 7, "reached BAD")],
        canonical=lambda s: s[0], name="representative")
