"""Level-synchronous parallel BFS with results identical to the serial BFS.

The coordinator keeps the visited map and a *pending* list: the states of the next BFS
level, deduplicated, in serial discovery order, each with its parent link, not yet checked.
Per level:

1. the pending states are partitioned among the worker processes by ``fingerprint %
   workers`` (each share keeps the level order); a worker *evaluates* each state of its share
   (invariants, deadlock, quiescence, goals — once per distinct state, as the serial search)
   and, unless the level is at ``max_depth``, *expands* it: per state, in action-index order,
   ``(action_index, fp, next_state or None)``;
2. the coordinator records the pending states in order with the same
   :class:`~pasidsim.check.search.Recorder` as the serial search, which stops at the first
   violation or at ``max_states`` exactly where the serial BFS would (the transition count
   is rewound to the value it had when the stopping state was discovered);
3. with partial-order reduction, states whose ample set fails the cycle proviso (a successor
   visited before this level, i.e. at depth <= the current one, as in the serial BFS) are
   sent back for a second round that expands their remaining actions;
4. the coordinator walks the level in order, and each state's successors in action-index
   order, and appends the unseen ones to the next pending list.

Hence the discovery order, the parent pointers, the counts, the bounds and the first
violation — so the counterexample — are exactly those of ``explore(strategy="bfs")``.

Workers send ``None`` instead of a successor they know is a duplicate: one they sent in an
earlier level (visited by now) or earlier in the same task (a task handles its share in
level order, so the coordinator sees that earlier, hence first, occurrence).

Fingerprints must agree across processes (see :mod:`pasidsim.check.model`).  At start-up
the workers' fingerprints of the initial states are compared with the coordinator's; on a
mismatch the coordinator recomputes every fingerprint itself (slower, no duplicate
skipping).  Otherwise a sample is re-checked every level.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import traceback
from typing import Any, Callable, Sequence

from .model import ModelView, StateCheck
from .search import Link, NondeterminismError, Recorder, Result, explore

Item = tuple[int, int, Any]                            # (action index, fp, state or None)
Expansion = tuple[StateCheck, bool, list[Item]]        # (check, reduced by POR, items)
Pending = tuple[Any, int, Link, int]                   # (state, fp, link, transitions then)
_SAMPLE = 16


class _Expander:
    """Evaluates and expands states in one process (a worker, or the coordinator)."""

    def __init__(self, view: ModelView) -> None:
        self.view = view
        self.level = -1
        self.old: set[int] = set()        # sent in earlier levels: visited by now
        self.sent_now: set[int] = set()   # sent in the current level

    def run(self, level: int, phase: int, states: Sequence[Any], expand: bool,
            suppress: bool) -> list[Expansion]:
        """Process ``states`` in order.

        Args:
            level: BFS level number (ages the duplicate sets).
            phase: 1 = evaluate, then expand the ample set if any, else all actions;
                2 = expand only the actions outside the ample set (no evaluation).
            states: the states.
            expand: False at ``max_depth``: evaluate only.
            suppress: whether known duplicates may be sent as ``None``.

        Returns:
            Per state ``(check, reduced, items)``; ``check`` is ``None`` in phase 2.
        """
        if level != self.level:
            self.old |= self.sent_now
            self.sent_now, self.level = set(), level
        view, seen, old = self.view, set(), self.old
        out: list[Expansion] = []
        for state in states:
            acts = view.actions(state)
            check: Any = view.evaluate(state, acts) if phase == 1 else None
            ample = view.ample(acts) if view.por and expand else None
            if not expand:
                indices: Sequence[int] = ()
            elif phase == 2:
                assert ample is not None, "phase 2 on a state without ample set"
                indices = view.rest(acts, ample)
            else:
                indices = range(len(acts)) if ample is None else ample
            items: list[Item] = []
            for ai, nxt, fp in view.successors(state, acts, indices):
                if suppress and (fp in old or fp in seen):
                    items.append((ai, fp, None))
                else:
                    seen.add(fp)
                    items.append((ai, fp, nxt))
            out.append((check, ample is not None and phase == 1, items))
        self.sent_now |= seen
        return out


def _worker_main(conn: Any, factory: Callable[[], Any], symmetry: bool, por: bool) -> None:
    """Worker process: build the model, report initial fingerprints, serve requests."""
    try:
        view = ModelView(factory(), symmetry=symmetry, por=por)
        expander = _Expander(view)
        conn.send(("ready", [view.fingerprint(s) for s in view.initial_states()]))
        while True:
            msg = conn.recv()
            if msg is None:
                return
            conn.send(("ok", expander.run(*msg)))
    except (EOFError, KeyboardInterrupt):
        return
    except BaseException as exc:  # report model errors to the coordinator
        try:
            conn.send(("error", exc, traceback.format_exc()))
        except Exception:
            conn.send(("error", None, traceback.format_exc()))


class _Pool:
    """Worker processes connected by pipes."""

    def __init__(self, factory: Callable[[], Any], n: int, symmetry: bool, por: bool, context: str) -> None:
        ctx = mp.get_context(context)
        self.conns, self.procs = [], []
        for _ in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(child, factory, symmetry, por), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        self.init_fps = [self._recv(w) for w in range(n)]

    def _recv(self, w: int) -> Any:
        """Receive worker ``w``'s reply; re-raise its exception."""
        try:
            msg = self.conns[w].recv()
        except EOFError:
            self.procs[w].join(timeout=1)
            raise RuntimeError(f"worker process died (exit code {self.procs[w].exitcode}); with the "
                               "spawn start method the model factory must be importable") from None
        if msg[0] == "error":
            if msg[1] is not None:
                raise msg[1] from RuntimeError("in worker:\n" + msg[2])
            raise RuntimeError("worker failed:\n" + msg[2])
        return msg[1]

    def run(self, level: int, phase: int, states: Sequence[tuple[Any, int]], expand: bool,
            suppress: bool) -> list[Expansion]:
        """Process ``(state, fp)`` pairs, partitioned by fingerprint; results in input order."""
        n = len(self.conns)
        shares: list[list[int]] = [[] for _ in range(n)]
        for pos, (_, fp) in enumerate(states):
            shares[fp % n].append(pos)
        for w, share in enumerate(shares):
            if share:
                self.conns[w].send((level, phase, [states[p][0] for p in share], expand, suppress))
        out: list[Any] = [None] * len(states)
        for w, share in enumerate(shares):
            if share:
                for pos, res in zip(share, self._recv(w)):
                    out[pos] = res
        return out

    def close(self) -> None:
        """Stop the workers."""
        for conn in self.conns:
            try:
                conn.send(None)
                conn.close()
            except OSError:
                pass
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()


def explore_parallel(model_factory: Callable[[], Any], workers: int = 2, *, strategy: str = "bfs",
                     max_depth: int | None = None, max_states: int | None = None,
                     max_seconds: float | None = None, symmetry: bool = False, por: bool = False,
                     stop_at_first: bool = True, on_state: Callable[[Any], None] | None = None,
                     min_level: int = 256, context: str = "spawn") -> Result:
    """BFS over ``model_factory()`` with ``workers`` processes; same result as serial BFS.

    Args:
        model_factory: picklable zero-argument callable returning the model (a top-level
            function or a :func:`functools.partial` of one), called once per process.
        workers: number of worker processes; ``<= 1`` runs the serial :func:`explore`.
        strategy: must be ``"bfs"``.
        min_level: levels with fewer states are handled by the coordinator itself; the
            workers are started on the first level that is large enough.
        context: multiprocessing start method (``"spawn"``, ``"forkserver"``, ``"fork"``).
        Other arguments: as :func:`~pasidsim.check.search.explore`.

    Returns:
        The :class:`~pasidsim.check.search.Result` of serial BFS (``elapsed`` apart; with
        ``max_seconds`` the cut-off point differs).
    """
    if strategy != "bfs":
        raise ValueError("explore_parallel only supports strategy='bfs'")
    if workers <= 1:
        return explore(model_factory(), strategy="bfs", max_depth=max_depth, max_states=max_states,
                       max_seconds=max_seconds, symmetry=symmetry, por=por,
                       stop_at_first=stop_at_first, on_state=on_state)
    start = time.perf_counter()
    deadline = None if max_seconds is None else start + max_seconds
    view = ModelView(model_factory(), symmetry=symmetry, por=por)
    rec = Recorder(view, max_states=max_states, max_depth=max_depth,
                   stop_at_first=stop_at_first, on_state=on_state)
    pending: list[Pending] = []
    firsts: set[int] = set()
    for i, s in enumerate(view.initial_states()):
        fp = view.fingerprint(s)
        if fp not in firsts:
            firsts.add(fp)
            pending.append((s, fp, (None, i), 0))
    local, pool, trusted = _Expander(view), None, True
    depth, timed_out = 0, False
    try:
        while pending and not rec.stopped:
            if deadline is not None and time.perf_counter() > deadline:
                timed_out = True
                break
            if pool is None and len(pending) >= min_level:
                pool = _Pool(model_factory, workers, symmetry, por, context)
                mine = [view.fingerprint(s) for s in view.initial_states()]
                trusted = all(fps == mine for fps in pool.init_fps)
            use = pool if pool is not None and len(pending) >= min_level else None
            pending = _level(view, rec, pending, depth, use, local, trusted)
            depth += 1
    finally:
        if pool is not None:
            pool.close()
    return rec.result(start, timed_out)


def _level(view: ModelView, rec: Recorder, pending: list[Pending], depth: int, pool: _Pool | None,
           local: _Expander, trusted: bool) -> list[Pending]:
    """Check, record and expand one BFS level in serial order; return the next pending list."""
    expand = rec.max_depth is None or depth < rec.max_depth

    def run(phase: int, positions: Sequence[int]) -> list[Expansion]:
        pairs = [(pending[p][0], pending[p][1]) for p in positions]
        if pool is None:
            return local.run(depth, phase, [s for s, _ in pairs], expand, True)
        res = pool.run(depth, phase, pairs, expand, trusted)
        if not trusted:  # workers hash differently: use the coordinator's fingerprints
            return [(c, red, [(ai, view.fingerprint(t), t) for ai, _, t in items]) for c, red, items in res]
        _spot_check(view, res)
        return res

    every = range(len(pending))
    results = run(1, every)
    total = rec.transitions
    for (state, fp, link, seen_at), (check, _, _) in zip(pending, results):
        rec.transitions = seen_at
        if rec.add(fp, link, depth, state, check):
            return []
    rec.transitions = total
    if not expand:
        return []
    visited = rec.visited
    if view.por:  # cycle proviso against the states visited at depth <= this level
        redo = [p for p in every if results[p][1] and any(fp in visited for _, fp, _ in results[p][2])]
        for p, (_, _, items) in zip(redo, run(2, redo) if redo else []):
            results[p] = (results[p][0], False, sorted(results[p][2] + items, key=lambda t: t[0]))
    nxt: list[Pending] = []
    new: set[int] = set()
    for (_, pfp, _, _), (_, _, items) in zip(pending, results):
        for ai, fp, state in items:
            rec.transitions += 1
            if fp in visited or fp in new:
                continue
            if state is None:
                raise AssertionError("internal: a skipped duplicate was neither visited nor pending")
            new.add(fp)
            nxt.append((state, fp, (pfp, ai), rec.transitions))
    return nxt


def _spot_check(view: ModelView, results: list[Expansion]) -> None:
    """Recompute a sample of the workers' fingerprints; raise if they differ."""
    checked = 0
    for _, _, items in results:
        for _, fp, state in items:
            if state is not None:
                if view.fingerprint(state) != fp:
                    raise NondeterminismError(
                        "state fingerprints differ between processes: make hash() stable "
                        "(e.g. set PYTHONHASHSEED) or use workers=1")
                checked += 1
                if checked >= _SAMPLE:
                    return
