"""Level-synchronous parallel BFS with results identical to the serial BFS.

States are *owned*: a state whose fingerprint is ``fp`` lives in worker ``fp % workers``,
which evaluates and expands it.  The coordinator never holds states (only fingerprints,
parent links and check results) and keeps the visited map.  Per BFS level:

1. the coordinator sends each worker the ``(fp, link)`` of the level's states it owns, in
   serial discovery order;
2. each worker takes those states from what it received in the previous level, *evaluates*
   each (invariants, deadlock, quiescence, goals — once per distinct state, as the serial
   search) and, unless the level is at ``max_depth``, *expands* it; successors it owns are
   kept, the others are shipped straight to their owners (worker to worker); it replies with,
   per state, the check and ``(action_index, fp)`` of each successor;
3. the coordinator records the level's states in order with the same
   :class:`~pasidsim.check.search.Recorder` as the serial search, which stops at the first
   violation or at ``max_states`` exactly where the serial BFS would (the transition count
   is rewound to the value it had when the stopping state was discovered);
4. with partial-order reduction, states whose ample set fails the cycle proviso (a successor
   visited before this level, i.e. at depth <= the current one, as in the serial BFS) are
   expanded again, all actions, in a second round;
5. the coordinator walks the level in order, and each state's successors in action-index
   order, and appends the unseen ones, with their parent links, to the next level.

Hence the discovery order, the parent pointers, the counts, the bounds and the first
violation — so the counterexample — are exactly those of ``explore(strategy="bfs")``.  A
successor's owner keeps every copy it receives for a fingerprint within a level, keyed by
parent link, and uses the copy of the link the coordinator recorded (under symmetry, copies
with one fingerprint are different states of one class; the serial search keeps the first).

States cross process boundaries once, and only those owned by another worker (about
``(workers - 1) / workers`` of the new ones): every worker learns the fingerprints of each
level, and does not ship a state it knows to be visited.  Small levels (``min_level``) are run
by the coordinator itself until the first large one; then the states of that level are handed
to their owners and the workers stay in charge.

Fingerprints must agree across processes (see :mod:`pasidsim.check.model`): the workers'
fingerprints of the initial states are compared with the coordinator's when they start, and
on a mismatch the coordinator goes on alone (serial speed, same result).  Counterexamples are
replayed by the coordinator, which re-checks every fingerprint on the path.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import time
import traceback
from typing import Any, Callable, Sequence

from .model import ModelView
from .search import Link, Recorder, Result, explore, no_cyclic_gc

Item = tuple[int, int]                                  # (action index, successor fp)
Expansion = tuple[Any, bool, list[Item], Any]           # (check, reduced by POR, items, state)
Pending = tuple[Any, int, Link, int]                    # (state or None, fp, link, transitions then)


class _Owner:
    """One worker's share of the search: the states it owns, level by level."""

    def __init__(self, view: ModelView, me: int, n: int, inboxes: Sequence[Any],
                 symmetry: bool) -> None:
        self.view, self.me, self.n, self.inboxes = view, me, n, inboxes
        self.keep_all = symmetry          # keep every copy of a fingerprint (see module doc)
        self.store: dict[int, dict[Link, Any]] = {}   # next level's candidates: fp -> link -> state
        self.frontier: list[tuple[int, Any]] = []     # this level's (fp, state), request order
        self.known: set[int] = set()      # fingerprints of the states of every level so far
        self.now: set[int] = set()        # kept or shipped in this level
        self.expected: list[tuple[int, int]] = []     # (depth, phase) batches owed by each peer
        self.early: list[tuple[int, int, list]] = []  # batches of a later round, read ahead

    # -- receiving ----------------------------------------------------------------------------
    def _keep(self, fp: int, link: Link, state: Any) -> None:
        copies = self.store.get(fp)
        if copies is None:
            self.store[fp] = {link: state}
        elif self.keep_all:
            copies.setdefault(link, state)

    def adopt(self, items: Sequence[tuple[int, Link, Any]]) -> None:
        """Take the states of a level computed by the coordinator."""
        for fp, link, state in items:
            self._keep(fp, link, state)

    def _collect(self) -> None:
        """Receive every peer's batches of the rounds done so far."""
        need: dict[tuple[int, int], int] = {}
        for tag in self.expected:
            need[tag] = need.get(tag, 0) + self.n - 1
        self.expected = []
        later = []
        for depth, phase, batch in self.early:
            if need.get((depth, phase), 0) > 0:
                need[(depth, phase)] -= 1
                self._take(batch)
            else:
                later.append((depth, phase, batch))
        self.early = later
        missing = sum(need.values())
        inbox = self.inboxes[self.me]
        while missing:
            depth, phase, batch = inbox.get()
            if need.get((depth, phase), 0) > 0:
                need[(depth, phase)] -= 1
                missing -= 1
                self._take(batch)
            else:
                self.early.append((depth, phase, batch))

    def _take(self, batch: list) -> None:
        for fp, link, state in batch:
            self._keep(fp, link, state)

    # -- expanding ----------------------------------------------------------------------------
    def _successors(self, fp: int, state: Any, acts: Sequence[Any], indices: Sequence[int],
                    outgoing: list[list]) -> list[Item]:
        items: list[Item] = []
        n, me, known, now, keep_all = self.n, self.me, self.known, self.now, self.keep_all
        for ai, nxt, nfp in self.view.successors(state, acts, indices):
            items.append((ai, nfp))
            if nfp in known or (nfp in now and not keep_all):
                continue
            now.add(nfp)
            owner = nfp % n
            if owner == me:
                self._keep(nfp, (fp, ai), nxt)
            else:
                outgoing[owner].append((nfp, (fp, ai), nxt))
        return items

    def _ship(self, depth: int, phase: int, outgoing: list[list]) -> None:
        for w in range(self.n):
            if w != self.me:
                self.inboxes[w].put((depth, phase, outgoing[w]))
        self.expected.append((depth, phase))

    def level(self, depth: int, todo: Sequence[tuple[int, Link]], level_fps: Sequence[int],
              expand: bool, want_states: bool) -> list[Expansion]:
        """Evaluate and expand this worker's states of level ``depth`` (phase 1).  ``todo``:
        the ``(fp, link)`` of this worker's states; ``level_fps``: every state of the level
        (visited from now on: never shipped again)."""
        self._collect()
        self.known.update(level_fps)
        self.now = set()
        store, frontier = self.store, []
        for fp, link in todo:
            copies = store[fp]
            frontier.append((fp, copies[link] if link in copies else next(iter(copies.values()))))
        self.store, self.frontier = {}, frontier
        view = self.view
        outgoing: list[list] = [[] for _ in range(self.n)]
        out: list[Expansion] = []
        for fp, state in frontier:
            acts = view.actions(state)
            check = view.evaluate(state, acts)
            ample = view.ample(acts) if view.por and expand else None
            if not expand:
                indices: Sequence[int] = ()
            else:
                indices = range(len(acts)) if ample is None else ample
            items = self._successors(fp, state, acts, indices, outgoing)
            out.append((check, ample is not None, items, state if want_states else None))
        self._ship(depth, 1, outgoing)
        return out

    def rest(self, depth: int, positions: Sequence[int]) -> list[list[Item]]:
        """Phase 2: expand the actions outside the ample set of the given frontier states."""
        view = self.view
        outgoing: list[list] = [[] for _ in range(self.n)]
        out = []
        for p in positions:
            fp, state = self.frontier[p]
            acts = view.actions(state)
            ample = view.ample(acts)
            assert ample is not None, "phase 2 on a state without ample set"
            out.append(self._successors(fp, state, acts, view.rest(acts, ample), outgoing))
        self._ship(depth, 2, outgoing)
        return out


def _worker_main(conn: Any, inboxes: Sequence[Any], me: int, n: int,
                 factory: Callable[[], Any], symmetry: bool, por: bool) -> None:
    """Worker process: build the model, report initial fingerprints, serve requests."""
    for q in inboxes:
        # batches shipped in the last level are never collected: do not wait at exit for
        # the queues' feeder threads to push them into pipes nobody reads
        q.cancel_join_thread()
    gc.disable()  # see no_cyclic_gc(); the worker exits at the end of the search
    try:
        view = ModelView(factory(), symmetry=symmetry, por=por)
        owner = _Owner(view, me, n, inboxes, symmetry)
        conn.send(("ready", [view.fingerprint(s) for s in view.initial_states()]))
        while True:
            msg = conn.recv()
            if msg is None:
                return
            kind, args = msg
            conn.send(("ok", getattr(owner, kind)(*args)))
    except (EOFError, KeyboardInterrupt):
        return
    except BaseException as exc:  # report model errors to the coordinator
        try:
            conn.send(("error", exc, traceback.format_exc()))
        except Exception:
            conn.send(("error", None, traceback.format_exc()))


class _Pool:
    """Worker processes: a pipe each to the coordinator, an inbox queue each for their peers."""

    def __init__(self, factory: Callable[[], Any], n: int, symmetry: bool, por: bool,
                 context: str) -> None:
        ctx = mp.get_context(context)
        self.n = n
        self.inboxes = [ctx.Queue() for _ in range(n)]
        self.conns, self.procs = [], []
        for w in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main,
                               args=(child, self.inboxes, w, n, factory, symmetry, por),
                               daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        self.init_fps = [self._recv(w) for w in range(n)]
        self.shares: list[list[int]] = []   # this level: positions owned by each worker

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

    def _all(self, kind: str, per_worker: list[tuple]) -> list[Any]:
        for w, args in enumerate(per_worker):
            self.conns[w].send((kind, args))
        return [self._recv(w) for w in range(self.n)]

    def adopt(self, pending: Sequence[Pending]) -> None:
        """Hand a level's states (held by the coordinator) to their owners."""
        parts: list[list] = [[] for _ in range(self.n)]
        for state, fp, link, _ in pending:
            parts[fp % self.n].append((fp, link, state))
        self._all("adopt", [(p,) for p in parts])

    def level(self, depth: int, pending: Sequence[Pending], expand: bool,
              want_states: bool) -> list[Expansion]:
        """Phase 1 of a level; results in the order of ``pending``."""
        self.shares = [[] for _ in range(self.n)]
        for pos, (_, fp, _, _) in enumerate(pending):
            self.shares[fp % self.n].append(pos)
        fps = [fp for _, fp, _, _ in pending]
        replies = self._all("level", [
            (depth, [(pending[p][1], pending[p][2]) for p in share], fps, expand, want_states)
            for share in self.shares])
        out: list[Any] = [None] * len(pending)
        for share, reply in zip(self.shares, replies):
            for pos, res in zip(share, reply):
                out[pos] = res
        return out

    def rest(self, depth: int, positions: Sequence[int]) -> dict[int, list[Item]]:
        """Phase 2 for the given level positions (every worker takes part: each ships a
        batch to each peer)."""
        local = {pos: (w, i) for w, share in enumerate(self.shares) for i, pos in enumerate(share)}
        asks: list[list[int]] = [[] for _ in range(self.n)]
        for pos in positions:
            w, i = local[pos]
            asks[w].append(i)
        replies = self._all("rest", [(depth, a) for a in asks])
        out: dict[int, list[Item]] = {}
        for w, (ask, reply) in enumerate(zip(asks, replies)):
            for i, items in zip(ask, reply):
                out[self.shares[w][i]] = items
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
            proc.join(timeout=2)
            if proc.is_alive():
                proc.terminate()
        for q in self.inboxes:
            q.close()
            q.cancel_join_thread()


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
        min_level: the coordinator runs the levels itself until one has at least this many
            states; from then on the workers own the states.
        context: multiprocessing start method (``"spawn"``, ``"forkserver"``, ``"fork"``).
        on_state: as in :func:`explore`; the workers then send every state back to the
            coordinator (slower).
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
    with no_cyclic_gc():
        return _coordinate(model_factory, workers, view, rec, pending, deadline, start,
                           min_level, symmetry, por, context)


def _coordinate(model_factory: Callable[[], Any], workers: int, view: ModelView, rec: Recorder,
                pending: list[Pending], deadline: float | None, start: float, min_level: int,
                symmetry: bool, por: bool, context: str) -> Result:
    """The coordinator's level loop (see the module docstring)."""
    pool: _Pool | None = None
    alone = False           # the workers' fingerprints disagree: the coordinator goes on alone
    depth, timed_out = 0, False
    try:
        while pending and not rec.stopped:
            if deadline is not None and time.perf_counter() > deadline:
                timed_out = True
                break
            if pool is None and not alone and len(pending) >= min_level:
                pool = _Pool(model_factory, workers, symmetry, por, context)
                mine = [view.fingerprint(s) for s in view.initial_states()]
                if all(fps == mine for fps in pool.init_fps):
                    pool.adopt(pending)
                    pending = [(None, fp, link, seen) for _, fp, link, seen in pending]
                else:
                    pool.close()
                    pool, alone = None, True
            if pool is None:
                pending = _local_level(view, rec, pending, depth)
            else:
                pending = _pool_level(view, rec, pending, depth, pool)
            depth += 1
    finally:
        if pool is not None:
            pool.close()
    return rec.result(start, timed_out)


def _record(rec: Recorder, pending: Sequence[Pending], depth: int,
            results: Sequence[Expansion]) -> bool:
    """Record a level's states in serial order; True when the search stops."""
    total = rec.transitions
    for (state, fp, link, seen_at), (check, _, _, st) in zip(pending, results):
        rec.transitions = seen_at
        if rec.add(fp, link, depth, state if state is not None else st, check):
            return True
    rec.transitions = total
    return False


def _next_level(rec: Recorder, pending: Sequence[Pending], results: Sequence[Expansion],
                states: Callable[[int, int], Any]) -> list[Pending]:
    """The unseen successors of a level, in serial discovery order."""
    visited, nxt, new = rec.visited, [], set()
    for pos, ((_, pfp, _, _), (_, _, items, _)) in enumerate(zip(pending, results)):
        for k, (ai, fp) in enumerate(items):
            rec.transitions += 1
            if fp in visited or fp in new:
                continue
            new.add(fp)
            nxt.append((states(pos, k), fp, (pfp, ai), rec.transitions))
    return nxt


def _proviso_failed(rec: Recorder, results: Sequence[Expansion]) -> list[int]:
    """POR cycle proviso: reduced states with a successor visited at depth <= this level."""
    visited = rec.visited
    return [p for p, (_, reduced, items, _) in enumerate(results)
            if reduced and any(fp in visited for _, fp in items)]


def _local_level(view: ModelView, rec: Recorder, pending: list[Pending], depth: int) -> list[Pending]:
    """One BFS level computed by the coordinator (it holds the states)."""
    expand = rec.max_depth is None or depth < rec.max_depth
    results: list[Expansion] = []
    succ: list[list[Any]] = []
    for state, _, _, _ in pending:
        acts = view.actions(state)
        check = view.evaluate(state, acts)
        ample = view.ample(acts) if view.por and expand else None
        indices = () if not expand else (range(len(acts)) if ample is None else ample)
        triples = view.successors(state, acts, indices)
        results.append((check, ample is not None, [(ai, fp) for ai, _, fp in triples], None))
        succ.append(triples)
    if _record(rec, pending, depth, results) or not expand:
        return []
    if view.por:
        for p in _proviso_failed(rec, results):
            state = pending[p][0]
            acts = view.actions(state)
            more = view.successors(state, acts, view.rest(acts, view.ample(acts)))
            succ[p] = sorted(succ[p] + more, key=lambda t: t[0])
            results[p] = (results[p][0], False, [(ai, fp) for ai, _, fp in succ[p]], None)
    return _next_level(rec, pending, results, lambda pos, k: succ[pos][k][1])


def _pool_level(view: ModelView, rec: Recorder, pending: list[Pending], depth: int,
                pool: _Pool) -> list[Pending]:
    """One BFS level computed by the workers, which own the states."""
    expand = rec.max_depth is None or depth < rec.max_depth
    results = pool.level(depth, pending, expand, rec.on_state is not None)
    if _record(rec, pending, depth, results) or not expand:
        return []
    if view.por:
        redo = _proviso_failed(rec, results)
        if redo:
            more = pool.rest(depth, redo)
            for p, items in more.items():
                c, _, items0, st = results[p]
                results[p] = (c, False, sorted(items0 + items, key=lambda t: t[0]), st)
    return _next_level(rec, pending, results, lambda pos, k: None)
