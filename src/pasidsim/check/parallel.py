"""Level-synchronous parallel BFS on Ray, with results identical to the serial BFS.

The workers are Ray actors (:class:`_RayOwner`) on a local Ray runtime started on demand or
on an existing cluster (``address``, :func:`ray_runtime`).  States are *owned*: a state
whose fingerprint is ``fp`` lives in worker ``fp % workers``, which evaluates and expands it.
The coordinator never holds states (only fingerprints, parent links and check results) and
keeps the visited map.  Per BFS level:

1. the coordinator sends each worker the ``(fp, link)`` of the level's states it owns, in
   serial discovery order;
2. each worker takes those states from what it received in the previous level, *evaluates*
   each (invariants, deadlock, quiescence, goals — once per distinct state, as the serial
   search) and, unless the level is at ``max_depth``, *expands* it; successors it owns are
   kept, the others are put in Ray's object store as one batch per owner, and only the
   batches' references go back with the reply (the owner fetches its batches, worker from
   worker, with its next call); it replies with, per state, the check and ``(action_index,
   fp)`` of each successor;
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
level, and does not ship a state it knows to be visited.  A worker holds the states of its
levels, its own and those shipped, pickled and compressed in chunks (:data:`CHUNK`), and
unpickles one chunk at a time as it expands them: states unpickled one by one share none of
their records, and held that way cost a worker several times what the serial search pays.
Small levels (``min_level``) are run by the coordinator itself until the first large one;
then the states of that level are handed to their owners and the workers stay in charge.

Fingerprints must agree across processes (see :mod:`pasidsim.check.model`): the workers'
fingerprints of the initial states are compared with the coordinator's when they start, and
on a mismatch the coordinator goes on alone (serial speed, same result).  Counterexamples are
replayed by the coordinator, which re-checks every fingerprint on the path.
"""

from __future__ import annotations

import gc
import pickle
import time
import zlib
from typing import Any, Callable, Sequence

from ..runtime import no_cyclic_gc, peak_rss, ray_runtime, shutdown_ray  # noqa: F401
from .model import ModelView
from .search import Link, Recorder, Result, explore

Item = tuple[int, int]                                  # (action index, successor fp)
Expansion = tuple[Any, bool, list[Item], Any]           # (check, reduced by POR, items, state)
Pending = tuple[Any, int, Link, int]                    # (state or None, fp, link, transitions then)


#: states a chunk holds at most.  A worker holds the states of its levels pickled and
#: compressed, CHUNK at a time: pickle's memo stores once what the states of a chunk share
#: (their records are mostly the same) and zlib packs the rest, about 90 bytes a state on
#: the four-process configuration (600 pickled, 4 KB unpickled: states unpickled one by one
#: share nothing, unlike the serial search's, which share their unchanged records with their
#: parents), for about 4 microseconds a state.
CHUNK = 256


def _dumps(states: list) -> bytes:
    """``states`` pickled and compressed (zlib level 1); with cloudpickle when the standard
    pickle cannot name their classes (a test's toy model, rebuilt by value in the workers).
    :func:`_loads` reverses it."""
    try:
        raw = pickle.dumps(states, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError):
        import ray.cloudpickle as cloudpickle
        raw = cloudpickle.dumps(states, protocol=pickle.HIGHEST_PROTOCOL)
    return zlib.compress(raw, 1)


def _loads(blob: bytes) -> list:
    """The states of a chunk made by :func:`_dumps`."""
    return pickle.loads(zlib.decompress(blob))


class _Batch:
    """States bound for one worker, pickled as they come, :data:`CHUNK` at a time: sealed
    chunks are ``(header, blob)``, ``header`` the ``(fp, link)`` of each state of ``blob``
    (a pickled list of states) in order."""

    __slots__ = ("hdr", "states", "sealed")

    def __init__(self) -> None:
        self.hdr: list[tuple[int, Link]] = []
        self.states: list = []
        self.sealed: list[tuple[list, bytes]] = []

    def add(self, fp: int, link: Link, state: Any) -> None:
        self.hdr.append((fp, link))
        self.states.append(state)
        if len(self.states) >= CHUNK:
            self.seal()

    def seal(self) -> list[tuple[list, bytes]]:
        """Pickle what is left; returns every chunk."""
        if self.states:
            self.sealed.append((self.hdr, _dumps(self.states)))
            self.hdr, self.states = [], []
        return self.sealed


class _Owner:
    """One worker's share of the search: the states it owns, level by level, held pickled in
    chunks (:class:`_Batch`).  Batches from peers arrive in :attr:`incoming` before a call;
    the batches for peers that a call makes are left in :attr:`outgoing` (one per peer, None
    for none) for the transport."""

    def __init__(self, view: ModelView, me: int, n: int, symmetry: bool) -> None:
        self.view, self.me, self.n = view, me, n
        self.keep_all = symmetry          # keep every copy of a fingerprint (see module doc)
        # the next level's states: fp -> (chunk, index) of the first copy received; with
        # keep_all, fp -> {link: (chunk, index)} of every copy
        self.store: dict[int, Any] = {}
        self.chunks: list[bytes] = []     # the next level's chunks (pickled lists of states)
        self.mine = _Batch()              # successors this worker owns, for the next level
        self.frontier: tuple = ([], [])   # this level: (chunk, index) per request, chunks
        self.todo_fps: list[int] = []     # this level: the fingerprint of each request
        self.known: set[int] = set()      # fingerprints of the states of every level so far
        self.now: set[int] = set()        # kept or shipped in this level
        self.incoming: list[list] = []    # batches from peers, not yet taken
        self.outgoing: list = [None] * n  # batches for peers made by the last call

    # -- receiving ----------------------------------------------------------------------------
    def _keep(self, fp: int, link: Link, ref: tuple[int, int]) -> None:
        if not self.keep_all:
            self.store.setdefault(fp, ref)
            return
        copies = self.store.get(fp)
        if copies is None:
            self.store[fp] = {link: ref}
        else:
            copies.setdefault(link, ref)

    def adopt(self, items: Sequence[tuple[int, Link, Any]]) -> None:
        """Take the states of a level computed by the coordinator."""
        for fp, link, state in items:
            self.mine.add(fp, link, state)

    def _collect(self) -> None:
        """Take this worker's own successors, then the peers' batches of the rounds done so
        far (that order: of two copies of one state, the own one is kept)."""
        self._take(self.mine.seal())
        self.mine = _Batch()
        for batch in self.incoming:
            self._take(batch)
        self.incoming = []

    def _take(self, batch: list[tuple[list, bytes]]) -> None:
        for hdr, blob in batch:
            no = len(self.chunks)
            self.chunks.append(blob)
            for i, (fp, link) in enumerate(hdr):
                self._keep(fp, link, (no, i))

    def _states(self, positions: Sequence[int]):
        """``(position, state)`` of the given positions of this level's requests, unpickling
        one chunk at a time."""
        refs, chunks = self.frontier
        by_chunk: dict[int, list[tuple[int, int]]] = {}
        for p in positions:
            no, i = refs[p]
            by_chunk.setdefault(no, []).append((p, i))
        for no, wanted in by_chunk.items():
            states = _loads(chunks[no])
            if not self.view.por:  # no second round (rest) to come: free as we go
                chunks[no] = b""
            for p, i in wanted:
                yield p, states[i]

    # -- expanding ----------------------------------------------------------------------------
    def _successors(self, fp: int, state: Any, acts: Sequence[Any], indices: Sequence[int],
                    outgoing: list[_Batch]) -> list[Item]:
        items: list[Item] = []
        n, known, now, keep_all = self.n, self.known, self.now, self.keep_all
        for ai, nxt, nfp in self.view.successors(state, acts, indices):
            items.append((ai, nfp))
            if nfp in known or (nfp in now and not keep_all):
                continue
            now.add(nfp)
            outgoing[nfp % n].add(nfp, (fp, ai), nxt)
        return items

    def _ship(self, outgoing: list[_Batch] | None) -> None:
        """Leave the batches for peers in :attr:`outgoing`; this worker's own go to
        :attr:`mine`.  None: ship nothing, keep nothing."""
        if outgoing is None:
            self.outgoing = [None] * self.n
            self.mine = _Batch()
            return
        self.mine = outgoing[self.me]
        self.outgoing = [b.seal() or None if w != self.me else None
                         for w, b in enumerate(outgoing)]

    def _batches(self) -> list[_Batch]:
        out = [_Batch() for _ in range(self.n)]
        out[self.me] = self.mine  # states adopted for the next level stay with it
        return out

    def level(self, depth: int, todo: Sequence[tuple[int, Link]], level_fps: Sequence[int],
              expand: bool, want_states: bool, deadline: float | None = None
              ) -> list[Expansion] | None:
        """Evaluate and expand this worker's states of level ``depth`` (phase 1).  ``todo``:
        the ``(fp, link)`` of this worker's states; ``level_fps``: every state of the level
        (visited from now on: never shipped again).  None when wall-clock time ``deadline``
        (``time.time()``, the same clock in every process of a machine) passed inside the
        level: the search stops there."""
        self._collect()
        self.known.update(level_fps)
        self.now = set()
        store, refs = self.store, []
        if not self.keep_all:
            refs = [store[fp] for fp, _ in todo]
        else:
            for fp, link in todo:
                copies = store[fp]
                refs.append(copies[link] if link in copies else next(iter(copies.values())))
        self.frontier, self.todo_fps = (refs, self.chunks), [fp for fp, _ in todo]
        self.store, self.chunks = {}, []
        view = self.view
        outgoing = self._batches()
        out: list[Any] = [None] * len(todo)
        for k, (p, state) in enumerate(self._states(range(len(todo)))):
            if deadline is not None and not k & 63 and time.time() > deadline:
                self._ship(None)
                return None
            acts = view.actions(state)
            check = view.evaluate(state, acts)
            ample = view.ample(acts) if view.por and expand else None
            if not expand:
                indices: Sequence[int] = ()
            else:
                indices = range(len(acts)) if ample is None else ample
            items = self._successors(todo[p][0], state, acts, indices, outgoing)
            out[p] = (check, ample is not None, items, state if want_states else None)
        self._ship(outgoing)
        return out

    def rest(self, depth: int, positions: Sequence[int]) -> list[list[Item]]:
        """Phase 2: expand the actions outside the ample set of the given frontier states."""
        view = self.view
        outgoing = self._batches()
        got: dict[int, list[Item]] = {}
        for p, state in self._states(positions):
            acts = view.actions(state)
            ample = view.ample(acts)
            assert ample is not None, "phase 2 on a state without ample set"
            got[p] = self._successors(self.todo_fps[p], state, acts, view.rest(acts, ample),
                                      outgoing)
        self._ship(outgoing)
        return [got[p] for p in positions]


class _RayOwner(_Owner):
    """A worker's share of the search as a Ray actor.  Ray actors run one call at a time, so
    peers do not push into each other's inboxes: a call's outgoing batches go into Ray's
    object store (``ray.put``, owned by the worker that made them) and only their references
    pass through the coordinator, to the owner's next call, which fetches them."""

    def __init__(self, factory_blob: bytes, me: int, n: int, symmetry: bool,
                 por: bool) -> None:
        import ray.cloudpickle as cloudpickle
        gc.disable()  # see no_cyclic_gc(); the actor is killed at the end of the search
        view = ModelView(cloudpickle.loads(factory_blob)(), symmetry=symmetry, por=por)
        super().__init__(view, me, n, symmetry)

    def init_fps(self) -> list[int]:
        """The fingerprints of the initial states, as this process computes them."""
        return [self.view.fingerprint(s) for s in self.view.initial_states()]

    def _sent(self) -> list:
        import ray
        out = [None if b is None else ray.put(b) for b in self.outgoing]
        self.outgoing = [None] * self.n
        return out

    def level_batched(self, incoming: list, *args) -> tuple:
        """:meth:`_Owner.level` after taking the batches peers made for this worker
        (``incoming``: object references, fetched here); returns ``(expansions, batch
        references per peer)``, expansions None past the deadline."""
        import ray
        self.incoming = ray.get(incoming) if incoming else []
        return self.level(*args), self._sent()

    def rest_batched(self, depth: int, positions: Sequence[int]) -> tuple:
        """:meth:`_Owner.rest` and the batch references it made."""
        return self.rest(depth, positions), self._sent()

    def peak_rss(self) -> int:
        """This process's peak resident set size, in bytes."""
        return peak_rss()


def _blob(factory: Callable[[], Any]) -> bytes:
    """``factory`` serialised for the actors: with cloudpickle, which also carries what the
    standard pickle cannot (compiled scenarios hold pydantic models of classes made at run
    time); a factory from a module outside pasidsim (a test's toy model) is sent by value,
    since the workers may not import it."""
    import sys

    import ray.cloudpickle as cloudpickle
    fn = factory
    while hasattr(fn, "func"):  # functools.partial
        fn = fn.func
    mod = sys.modules.get(getattr(fn, "__module__", "") or "")
    if mod is not None and not mod.__name__.startswith("pasidsim"):
        cloudpickle.register_pickle_by_value(mod)
    try:
        return cloudpickle.dumps(factory)
    finally:
        if mod is not None and not mod.__name__.startswith("pasidsim"):
            cloudpickle.unregister_pickle_by_value(mod)


class _Pool:
    """``n`` Ray actors (:class:`_RayOwner`), one per share of the fingerprint space.  The
    coordinator keeps, per worker, the references of the batches its peers made for it and
    hands them over with the worker's next call."""

    def __init__(self, factory: Callable[[], Any], n: int, symmetry: bool, por: bool,
                 deadline: float | None = None) -> None:
        import ray
        self.ray, self.n, self.deadline = ray, n, deadline
        actor = ray.remote(num_cpus=1)(_RayOwner)
        blob = ray.put(_blob(factory))
        self.actors = [actor.remote(blob, w, n, symmetry, por) for w in range(n)]
        self.inbox: list[list] = [[] for _ in range(n)]
        self.init_fps = self.ray.get([a.init_fps.remote() for a in self.actors])
        self.shares: list[list[int]] = []   # this level: positions owned by each worker

    def _route(self, sent: Sequence[list]) -> None:
        for refs in sent:
            for w, ref in enumerate(refs):
                if ref is not None:
                    self.inbox[w].append(ref)

    def _gather(self, calls: list) -> list:
        """The replies of ``calls`` in order; a worker's exception (the model's own) is
        re-raised here, after every call has ended (none left unread)."""
        ray, out, first = self.ray, [], None
        for ref in calls:
            try:
                out.append(ray.get(ref))
            except ray.exceptions.RayTaskError as e:
                first = first or e
        if first is not None:
            raise first.as_instanceof_cause() from None
        return out

    def adopt(self, pending: Sequence[Pending]) -> None:
        """Hand a level's states (held by the coordinator) to their owners."""
        parts: list[list] = [[] for _ in range(self.n)]
        for state, fp, link, _ in pending:
            parts[fp % self.n].append((fp, link, state))
        self._gather([a.adopt.remote(p) for a, p in zip(self.actors, parts)])

    def level(self, depth: int, pending: Sequence[Pending], expand: bool,
              want_states: bool) -> list[Expansion] | None:
        """Phase 1 of a level; results in the order of ``pending`` (None: the deadline
        passed inside the level)."""
        self.shares = [[] for _ in range(self.n)]
        for pos, (_, fp, _, _) in enumerate(pending):
            self.shares[fp % self.n].append(pos)
        fps = [fp for _, fp, _, _ in pending]
        inbox, self.inbox = self.inbox, [[] for _ in range(self.n)]
        replies = self._gather([
            a.level_batched.remote(inbox[w], depth,
                                   [(pending[p][1], pending[p][2]) for p in share], fps,
                                   expand, want_states, self.deadline)
            for w, (a, share) in enumerate(zip(self.actors, self.shares))])
        self._route([sent for _, sent in replies])
        if any(res is None for res, _ in replies):
            return None
        out: list[Any] = [None] * len(pending)
        for share, (reply, _) in zip(self.shares, replies):
            for pos, res in zip(share, reply):
                out[pos] = res
        return out

    def rest(self, depth: int, positions: Sequence[int]) -> dict[int, list[Item]]:
        """Phase 2 for the given level positions."""
        local = {pos: (w, i) for w, share in enumerate(self.shares) for i, pos in enumerate(share)}
        asks: list[list[int]] = [[] for _ in range(self.n)]
        for pos in positions:
            w, i = local[pos]
            asks[w].append(i)
        replies = self._gather([a.rest_batched.remote(depth, ask)
                                for a, ask in zip(self.actors, asks)])
        self._route([sent for _, sent in replies])
        out: dict[int, list[Item]] = {}
        for w, (ask, (reply, _)) in enumerate(zip(asks, replies)):
            for i, items in zip(ask, reply):
                out[self.shares[w][i]] = items
        return out

    def peak_rss(self) -> list[int]:
        """Each actor's peak resident set size, in bytes."""
        return self._gather([a.peak_rss.remote() for a in self.actors])

    def close(self) -> None:
        """Stop the actors (their states and batches go with them)."""
        for a in self.actors:
            try:
                self.ray.kill(a)
            except Exception:  # a runtime already shut down (Ctrl-C)
                pass
        self.actors = []


def explore_parallel(model_factory: Callable[[], Any], workers: int = 2, *, strategy: str = "bfs",
                     max_depth: int | None = None, max_states: int | None = None,
                     max_seconds: float | None = None, symmetry: bool = False, por: bool = False,
                     stop_at_first: bool = True, on_state: Callable[[Any], None] | None = None,
                     min_level: int = 256, address: str | None = None) -> Result:
    """BFS over ``model_factory()`` with ``workers`` Ray actors; same result as serial BFS.

    Args:
        model_factory: zero-argument callable returning the model (a function or a
            :func:`functools.partial` of one; serialised with cloudpickle), called once per
            actor.
        workers: number of worker actors; ``<= 1`` runs the serial :func:`explore`.
        strategy: must be ``"bfs"``.
        min_level: the coordinator runs the levels itself until one has at least this many
            states; from then on the workers own the states (and the Ray runtime is started).
        address: a Ray cluster to join (:func:`ray_runtime`); None: a local runtime.
        max_seconds: also honoured inside a level (each worker checks the clock every 64
            states): the search stops, "bounded", within a fraction of a second of it.
        on_state: as in :func:`explore`; the workers then send every state back to the
            coordinator (slower).
        Other arguments: as :func:`~pasidsim.check.search.explore`.

    Returns:
        The :class:`~pasidsim.check.search.Result` of serial BFS (``elapsed`` apart; with
        ``max_seconds`` the cut-off point differs).

    Raises:
        The model's own exceptions, raised in a worker, are re-raised here; Ctrl-C
        (KeyboardInterrupt) kills the workers and stops a local runtime before it propagates.
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
                           min_level, symmetry, por, address)


def _coordinate(model_factory: Callable[[], Any], workers: int, view: ModelView, rec: Recorder,
                pending: list[Pending], deadline: float | None, start: float, min_level: int,
                symmetry: bool, por: bool, address: str | None) -> Result:
    """The coordinator's level loop (see the module docstring)."""
    pool: _Pool | None = None
    alone = False           # the workers' fingerprints disagree: the coordinator goes on alone
    depth, timed_out = 0, False
    wall = None if deadline is None else time.time() + (deadline - time.perf_counter())
    try:
        while pending and not rec.stopped:
            if deadline is not None and time.perf_counter() > deadline:
                timed_out = True
                break
            if pool is None and not alone and len(pending) >= min_level:
                ray_runtime(address, workers)
                pool = _Pool(model_factory, workers, symmetry, por, wall)
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
                got = _pool_level(view, rec, pending, depth, pool)
                if got is None:
                    timed_out = True
                    break
                pending = got
            depth += 1
    except KeyboardInterrupt:
        if pool is not None:
            pool.close()
            pool = None
        if address is None:
            shutdown_ray()
        raise
    finally:
        if pool is not None:
            rec.worker_peak_rss = pool.peak_rss()
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
                pool: _Pool) -> list[Pending] | None:
    """One BFS level computed by the workers, which own the states."""
    expand = rec.max_depth is None or depth < rec.max_depth
    results = pool.level(depth, pending, expand, rec.on_state is not None)
    if results is None:  # the deadline passed inside the level
        return None
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
