"""The explicit-state search loop: BFS/DFS with symmetry and partial-order reduction.

Only fingerprints are remembered: the visited map is ``{fp: (parent_fp, action_index)}``
(``parent_fp`` is ``None`` for an initial state, whose ``action_index`` is then its index in
``initial_states()``).  Full states live only in the frontier.  A counterexample is rebuilt
by *replay*: the parent pointers give the action indices, which are re-executed from the
initial state; every reached state must have the recorded fingerprint, otherwise the model
is not deterministic and :class:`NondeterminismError` is raised.  Fingerprints are 64-bit
hashes, so like every hash-compaction checker a (very unlikely) collision can hide states.

Every state is checked when it is first discovered (invariants, deadlock, quiescence,
goals), in discovery order; BFS discovers states level by level, so its first violation is
at minimal depth and its counterexample is a shortest one.  Among the violations at that
depth it is the first in BFS discovery order: initial states in ``initial_states()`` order,
then, level by level, successors ordered by (parent's discovery order, action index).
:func:`~pasidsim.check.parallel.explore_parallel` reproduces exactly this order.
"""

from __future__ import annotations

import os
import pickle
import random
import signal
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Sequence

from ..runtime import no_cyclic_gc  # noqa: F401  (re-exported: it was defined here)
from .model import ModelView, StateCheck

Link = tuple[int | None, int]


class NondeterminismError(RuntimeError):
    """Replaying a recorded path did not reproduce the recorded states or verdict."""


@dataclass
class Violation:
    """A property violation with its counterexample.

    Attributes:
        name: the invariant name, ``"deadlock"`` or ``"quiescence"``.
        message: the message of the failed check.
        kind: ``"always"`` (invariant), ``"deadlock"`` or ``"quiescence"``.
        trace: the actions from ``states[0]`` (an initial state) to the violating state.
        states: the replayed states, ``len(trace) + 1`` of them.
    """

    name: str
    message: str
    kind: str
    trace: list[Any]
    states: list[Any]

    @property
    def depth(self) -> int:
        """Length of the counterexample (number of actions)."""
        return len(self.trace)


@dataclass
class Result:
    """Outcome of a search.

    ``verdict`` is ``"violation"`` (see ``violation.kind``; deadlocks included), ``"bounded"``
    (a bound was hit: the search is NOT exhaustive) or ``"pass"`` (exhaustive, no violation).
    Counts are over the explored (possibly reduced) state space; with ``stop_at_first`` they
    cover the states discovered before the stop.
    """

    verdict: str
    states: int
    transitions: int
    max_depth_reached: int
    elapsed: float
    violation: Violation | None = None
    violations: list[Violation] = field(default_factory=list)
    sometimes_unreached: list[str] = field(default_factory=list)
    sometimes_counts: dict[str, int] = field(default_factory=dict)
    invariant_counts: dict[str, int] = field(default_factory=dict)
    bound: str | None = None
    message: str = ""
    #: peak resident set size of each worker process of a parallel search, in bytes
    worker_peak_rss: list[int] = field(default_factory=list)
    #: distinct states first reached at each depth (BFS: the states of each level)
    states_per_level: list[int] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when exhaustive, violation-free and every ``sometimes`` goal was reached."""
        return self.verdict == "pass" and not self.sometimes_unreached

    @property
    def states_per_second(self) -> float:
        """Distinct states discovered per second of wall time."""
        return self.states / self.elapsed if self.elapsed > 0 else float("inf")

    def status(self, name: str) -> str:
        """herd7-style status of an invariant or goal: ``Always``, ``Sometimes`` or ``Never``."""
        n = self.invariant_counts.get(name, self.sometimes_counts.get(name))
        if n is None:
            raise KeyError(name)
        return "Never" if n == 0 else "Always" if n == self.states else "Sometimes"

    def summary(self) -> str:
        """Return a short human-readable report."""
        lines = [f"{self.verdict.upper()}: {self.message}",
                 f"  {self.states} states, {self.transitions} transitions, depth "
                 f"{self.max_depth_reached}, {self.elapsed:.3f}s"]
        for name, n in {**self.invariant_counts, **self.sometimes_counts}.items():
            lines.append(f"  {self.status(name):9} {name} ({n}/{self.states} states)")
        if self.violation is not None:
            v = self.violation
            lines.append(f"  {v.kind} violation {v.name!r} after {v.depth} steps: {v.message}")
            lines.extend(f"    {i + 1}. {a!r}" for i, a in enumerate(v.trace))
        return "\n".join(lines)


class Recorder:
    """The visited map and the bookkeeping, fed in discovery order.

    Shared by :func:`explore` and the parallel coordinator so that both count, stop and
    pick violations identically.
    """

    def __init__(self, view: ModelView, *, max_states: int | None, max_depth: int | None,
                 stop_at_first: bool, on_state: Callable[[Any], None] | None) -> None:
        self.view = view
        self.visited: dict[int, Link] = {}
        self.max_states, self.max_depth = max_states, max_depth
        self.stop_at_first, self.on_state = stop_at_first, on_state
        self.fail_counts = {inv.name: 0 for inv in view.invariants}
        self.goal_counts = [0] * len(view.goal_names)
        self.first: dict[str, tuple[int, str, str, str]] = {}
        self.transitions = 0
        self.depth_reached = 0
        self.bound: str | None = None
        self.stopped = False
        self.worker_peak_rss: list[int] = []
        self.levels: list[int] = []  # distinct states recorded at each depth

    def add(self, fp: int, link: Link, depth: int, state: Any, check: StateCheck) -> bool:
        """Record a state whose fingerprint is not yet visited.

        Args:
            fp: its fingerprint; link: ``(parent_fp, action_index)``; depth: its BFS/DFS depth;
            state: the state; check: :meth:`ModelView.evaluate` of it.

        Returns:
            True when the search must stop (``max_states`` reached — the state is then not
            recorded — or a violation with ``stop_at_first``).
        """
        if self.max_states is not None and len(self.visited) >= self.max_states:
            self.bound = f"max_states={self.max_states}"
            self.stopped = True
            return True
        self.visited[fp] = link
        levels = self.levels
        if depth >= len(levels):
            levels.extend([0] * (depth + 1 - len(levels)))
        levels[depth] += 1
        if depth > self.depth_reached:
            self.depth_reached = depth
        if self.on_state is not None:
            self.on_state(state)
        failures, goals, n_actions = check
        for i in goals:
            self.goal_counts[i] += 1
        if self.max_depth is not None and depth >= self.max_depth and n_actions:
            self.bound = self.bound or f"max_depth={self.max_depth}"
        for name, msg, kind in failures:
            if kind == "always":
                self.fail_counts[name] += 1
            if name not in self.first:
                self.first[name] = (fp, name, msg, kind)
                if self.stop_at_first:
                    self.stopped = True
                    return True
        return False

    def add_initial(self, index: int, state: Any) -> tuple[int, Sequence[Any]] | None:
        """Offer the ``index``-th initial state; return ``(fp, actions)`` if it is new."""
        view = self.view
        fp = view.fingerprint(state)
        if fp in self.visited or self.stopped:
            return None
        acts = view.actions(state)
        self.add(fp, (None, index), 0, state, view.evaluate(state, acts))
        return None if self.stopped else (fp, acts)

    def result(self, start: float, deadline_hit: bool = False) -> Result:
        """Build the :class:`Result`, replaying the counterexamples."""
        if deadline_hit:
            self.bound = self.bound or "max_seconds"
        violations = []
        for fp, name, msg, kind in self.first.values():
            trace, states = replay(self.view, self.visited, fp)
            _confirm(self.view, states[-1], name, kind)
            violations.append(Violation(name, msg, kind, trace, states))
        n = len(self.visited)
        goal_counts = dict(zip(self.view.goal_names, self.goal_counts))
        unreached = [g for g, c in goal_counts.items() if c == 0]
        if violations:
            verdict = "violation"
            v = violations[0]
            message = f"{v.kind} violation {v.name!r} at depth {v.depth}: {v.message}"
        elif self.bound:
            verdict = "bounded"
            message = f"bound {self.bound} hit: exploration is NOT exhaustive"
        else:
            verdict, message = "pass", "exhaustive, no violation"
        if unreached and verdict == "pass":
            message += "; never reached: " + ", ".join(unreached)
        elif unreached and verdict == "bounded":
            message += "; not reached within the bound: " + ", ".join(unreached)
        return Result(verdict=verdict, states=n, transitions=self.transitions,
                      max_depth_reached=self.depth_reached, elapsed=time.perf_counter() - start,
                      violation=violations[0] if violations else None, violations=violations,
                      sometimes_unreached=unreached, sometimes_counts=goal_counts,
                      invariant_counts={k: n - c for k, c in self.fail_counts.items()},
                      bound=self.bound, message=message,
                      worker_peak_rss=list(self.worker_peak_rss),
                      states_per_level=list(self.levels))


def replay(view: ModelView, visited: dict[int, Link], fp: int) -> tuple[list[Any], list[Any]]:
    """Rebuild the path to ``fp`` from parent pointers by re-executing the model.

    Under symmetry the recorded action indices are followed on the actual states and the
    canonical fingerprints are compared.

    Returns:
        ``(actions, states)`` from an initial state to the state with fingerprint ``fp``.

    Raises:
        NondeterminismError: a replayed state does not have its recorded fingerprint.
    """
    path: list[tuple[int, int]] = []
    cur: int | None = fp
    while cur is not None:
        parent, index = visited[cur]
        path.append((cur, index))
        cur = parent
    path.reverse()
    root_fp, init_index = path[0]
    inits = view.initial_states()
    if init_index >= len(inits) or view.fingerprint(inits[init_index]) != root_fp:
        raise NondeterminismError(f"initial state #{init_index} changed between exploration and replay")
    state = inits[init_index]
    states, trace = [state], []
    for depth, (want, index) in enumerate(path[1:], start=1):
        acts = view.actions(state)
        if index >= len(acts):
            raise NondeterminismError(
                f"replay step {depth}: action #{index} recorded but only {len(acts)} enabled; "
                "actions() is not deterministic")
        action = acts[index]
        state = view.step(state, action)
        got = view.fingerprint(state)
        if got != want:
            raise NondeterminismError(
                f"replay step {depth} ({action!r}): fingerprint {got:#018x}, recorded {want:#018x}; "
                "step()/actions() is not deterministic or hash() is not stable")
        trace.append(action)
        states.append(state)
    return trace, states


def _confirm(view: ModelView, state: Any, name: str, kind: str) -> None:
    """Re-check the replayed violating state; raise if the violation does not reproduce."""
    failures, _, _ = view.evaluate(state, view.actions(state))
    if not any(f[0] == name and f[2] == kind for f in failures):
        raise NondeterminismError(f"replayed state no longer violates {name!r}: checks are not deterministic")


def run_trace(model: Any, trace: Sequence[Any], initial: int = 0) -> list[Any]:
    """Execute a list of actions from ``initial_states()[initial]``; return the states.

    Raises:
        ValueError: an action is not enabled where the trace uses it.
    """
    state = model.initial_states()[initial]
    states = [state]
    for i, action in enumerate(trace):
        if action not in model.actions(state):
            raise ValueError(f"step {i + 1}: {action!r} is not enabled")
        state = model.step(state, action)
        states.append(state)
    return states


def explore(model: Any, *, strategy: str = "bfs", max_depth: int | None = None,
            max_states: int | None = None, max_seconds: float | None = None,
            symmetry: bool = False, por: bool = False, stop_at_first: bool = True,
            on_state: Callable[[Any], None] | None = None,
            on_progress: Callable[[Progress], None] | None = None,
            seed: int | None = None, checkpoint: str | os.PathLike | None = None,
            checkpoint_every: float = 60.0,
            resume: str | os.PathLike | None = None) -> Result:
    """Explore the reachable states of ``model``.

    Args:
        model: a :class:`~pasidsim.check.model.Model`.
        strategy: ``"bfs"`` (FIFO frontier; shortest counterexamples) or ``"dfs"`` (LIFO).
        max_depth: do not expand states at this depth (they are still checked).
        max_states: record at most this many distinct states.
        max_seconds: wall-clock budget.
        symmetry: deduplicate states by ``canonical(state)``.
        por: partial-order reduction (see :meth:`ModelView.ample`).
        stop_at_first: stop at the first violation; otherwise keep going and report the
            first violation of each property.
        on_state: called with every newly discovered state, in discovery order.
        on_progress: called with a :class:`Progress` every :data:`PROGRESS_EVERY` expanded
            states and once at the end (a live display: TLC's "states found, distinct, queue").
        seed: ``"dfs"`` only: take each state's successors in an order shuffled by a
            :class:`random.Random` of this seed (one member of a swarm,
            :mod:`pasidsim.check.swarm`); None: in action order.
        checkpoint: a file to save the search in (:class:`Checkpoint`): every
            ``checkpoint_every`` seconds, when a bound stops it, and on Ctrl-C (SIGINT is
            then taken between two expansions, the search saved, and KeyboardInterrupt
            raised); written to a temporary file and renamed, so the file is always a whole
            checkpoint.
        resume: a checkpoint file to go on from (the same model and options; ValueError
            otherwise): the result is the one the uninterrupted search gives (``elapsed``
            counts both runs).

    Returns:
        A :class:`Result`; ``verdict == "bounded"`` whenever a bound cut the search.  BFS
        counterexamples are shortest in the explored graph: with ``por`` that is the reduced
        graph, so a shorter one may exist.
    """
    if strategy not in ("bfs", "dfs"):
        raise ValueError(f"unknown strategy {strategy!r}")
    if seed is not None and strategy != "dfs":
        raise ValueError("seed: a randomized search is depth-first (strategy='dfs')")
    ck = None if checkpoint is None and resume is None else Checkpoint(
        checkpoint, checkpoint_every, resume,
        (strategy, max_depth, symmetry, por, stop_at_first, seed))
    with no_cyclic_gc(), _deferred_sigint(ck is not None and ck.path is not None) as sigint:
        return _explore(model, strategy, max_depth, max_states, max_seconds, symmetry, por,
                        stop_at_first, on_state, on_progress, seed, ck, sigint)


#: expanded states between two :class:`Progress` reports (a fraction of a second here)
PROGRESS_EVERY = 256


class Progress(NamedTuple):
    """A search's progress: distinct states, transitions, the depth being expanded, states
    waiting in the queue, seconds since the start."""

    states: int
    transitions: int
    depth: int
    queue: int
    elapsed: float


def _explore(model: Any, strategy: str, max_depth: int | None, max_states: int | None,
             max_seconds: float | None, symmetry: bool, por: bool, stop_at_first: bool,
             on_state: Callable[[Any], None] | None,
             on_progress: Callable[[Progress], None] | None = None,
             seed: int | None = None, ck: "Checkpoint | None" = None,
             sigint: list | None = None) -> Result:
    start = time.perf_counter()
    rng = None if seed is None else random.Random(seed)
    shuffle = None if rng is None else rng.shuffle
    deadline = None if max_seconds is None else start + max_seconds
    view = ModelView(model, symmetry=symmetry, por=por)
    rec = Recorder(view, max_states=max_states, max_depth=max_depth,
                   stop_at_first=stop_at_first, on_state=on_state)
    bfs = strategy == "bfs"
    frontier: deque[tuple[Any, int, int, Sequence[Any]]] = deque()
    fresh: set[int] = set()  # fps first seen in the current epoch (BFS level / DFS expansion)
    epoch, expansions, timed_out = -1, 0, False
    depth = 0
    if ck is not None and ck.resume is not None:
        epoch, expansions, depth, fresh, before = ck.load(view, rec, frontier, rng)
        start -= before  # elapsed time counts the earlier run
    else:
        for i, s in enumerate(view.initial_states()):
            got = rec.add_initial(i, s)
            if got is not None and (max_depth is None or max_depth > 0):
                frontier.append((s, got[0], 0, got[1]))
    pop = frontier.popleft if bfs else frontier.pop
    push = frontier.append
    visited, actions, evaluate, add = rec.visited, view.actions, view.evaluate, rec.add
    saving = ck is not None and ck.path is not None
    last_save = time.perf_counter()
    before = rec.transitions

    def save(again=None, transitions=None) -> None:
        """Save; ``again``: a popped frontier entry to expand again on resume (put back where
        it was popped from), with ``transitions`` the count before its expansion began."""
        front = frontier
        if again is not None:
            front = deque(frontier)
            front.appendleft(again) if bfs else front.append(again)
        ck.save(view, rec, front, rng, (epoch, expansions - (again is not None), depth, fresh),
                time.perf_counter() - start, transitions)

    while frontier and not rec.stopped:
        if saving and (sigint or time.perf_counter() - last_save >= ck.every):
            save()
            last_save = time.perf_counter()
            if sigint:
                raise KeyboardInterrupt
        state, sfp, depth, acts = pop()
        expansions += 1
        if deadline is not None and not expansions & 127 and time.perf_counter() > deadline:
            timed_out = True
            if saving:  # not expanded: a resumed search takes it again
                save((state, sfp, depth, acts))
            break
        if on_progress is not None and not expansions % PROGRESS_EVERY:
            on_progress(Progress(len(visited), rec.transitions, depth, len(frontier),
                                 time.perf_counter() - start))
        if depth != epoch or not bfs:
            epoch, fresh = depth, set()
        succs = _expand(view, state, acts, visited, fresh)
        if shuffle is not None:
            shuffle(succs)
        nd = depth + 1
        expand_next = max_depth is None or nd < max_depth
        before = rec.transitions
        for ai, nxt, nfp in succs:
            rec.transitions += 1
            if nfp in visited:
                continue
            nacts = actions(nxt)
            if add(nfp, (sfp, ai), nd, nxt, evaluate(nxt, nacts)):
                break
            fresh.add(nfp)
            if expand_next:
                push((nxt, nfp, nd, nacts))
    if saving and not timed_out and rec.bound:  # resumable with a larger bound
        if rec.bound.startswith("max_states"):  # stopped inside an expansion: redo it
            save((state, sfp, depth, acts), before)
        else:
            save()
    if on_progress is not None:
        on_progress(Progress(len(visited), rec.transitions, depth, len(frontier),
                             time.perf_counter() - start))
    return rec.result(start, timed_out)


@contextmanager
def _deferred_sigint(on: bool):
    """While ``on`` (and in the main thread): Ctrl-C only sets a flag (the yielded list
    becomes non-empty), which the search loop checks between two expansions, so that the
    checkpoint it then saves is a consistent one."""
    flag: list = []
    if not on or threading.current_thread() is not threading.main_thread():
        yield flag
        return
    old = signal.signal(signal.SIGINT, lambda *_: flag.append(1))
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, old)


class Checkpoint:
    """A search saved to a file, and resumed from one.

    The file is a pickle of a dict tagged :data:`CHECKPOINT_FORMAT`: the options that shape
    the search (strategy, ``max_depth``, symmetry, POR, ``stop_at_first``, seed) and the
    fingerprints of the model's initial states (a resume must match both: ValueError), the
    visited map with its parent links, the frontier (whole states), the recorder's counts and
    first violations, the random generator's state, the epoch bookkeeping of the POR cycle
    proviso, and the seconds spent so far.  Bounds (``max_states``, ``max_seconds``) may
    differ on resume: that is how a bounded search is taken further."""

    def __init__(self, path, every: float, resume, options: tuple) -> None:
        self.path = None if path is None else os.fspath(path)
        self.every = every
        self.resume = None if resume is None else os.fspath(resume)
        self.options = options

    def save(self, view: ModelView, rec: Recorder, frontier, rng, loop: tuple,
             elapsed: float, transitions: int | None = None) -> None:
        """Write the checkpoint (temporary file, then rename); ``transitions``: the count to
        save instead of the recorder's (see ``_explore``)."""
        epoch, expansions, depth, fresh = loop
        data = {"format": CHECKPOINT_FORMAT, "options": self.options,
                "initial": [view.fingerprint(s) for s in view.initial_states()],
                "visited": rec.visited, "frontier": list(frontier),
                "rec": (rec.fail_counts, rec.goal_counts, rec.first,
                        rec.transitions if transitions is None else transitions,
                        rec.depth_reached, rec.bound),
                "levels": rec.levels,
                "rng": None if rng is None else rng.getstate(),
                "loop": (epoch, expansions, depth, fresh), "elapsed": elapsed}
        from ..report.output import write_bytes_atomic
        write_bytes_atomic(self.path, pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))

    def load(self, view: ModelView, rec: Recorder, frontier, rng) -> tuple:
        """Restore a saved search into ``rec``, ``frontier`` and ``rng``; returns ``(epoch,
        expansions, depth, fresh, elapsed)``.  ValueError when the file is not a checkpoint of
        this model with these options."""
        try:
            with open(self.resume, "rb") as f:
                data = pickle.load(f)
        except (OSError, pickle.UnpicklingError, EOFError) as e:
            raise ValueError(f"{self.resume}: not a readable checkpoint ({e})") from None
        if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{self.resume}: not a {CHECKPOINT_FORMAT} checkpoint")
        if data["options"] != self.options:
            raise ValueError(f"{self.resume}: saved with other search options "
                             f"{data['options']} (now {self.options})")
        if data["initial"] != [view.fingerprint(s) for s in view.initial_states()]:
            raise ValueError(f"{self.resume}: saved from another model (initial states differ)")
        rec.visited.update(data["visited"])
        (rec.fail_counts, rec.goal_counts, rec.first, rec.transitions, rec.depth_reached,
         rec.bound) = data["rec"]
        rec.levels = list(data.get("levels", []))
        if not (rec.bound or "").startswith("max_depth"):
            rec.bound = None  # max_states and max_seconds: this run's bounds decide anew
        frontier.extend(data["frontier"])
        if rng is not None and data["rng"] is not None:
            rng.setstate(data["rng"])
        return (*data["loop"], data["elapsed"])


#: the tag of the checkpoint file format
CHECKPOINT_FORMAT = "pasidsim.checkpoint/1"


def _expand(view: ModelView, state: Any, acts: Sequence[Any], visited: dict[int, Link],
            fresh: set[int]) -> list[tuple[int, Any, int]]:
    """Return the successors to process, applying POR with its cycle proviso."""
    ample = view.ample(acts) if view.por else None
    if ample is None:
        return view.successors(state, acts, range(len(acts)))
    first = view.successors(state, acts, ample)
    if all(fp not in visited or fp in fresh for _, _, fp in first):
        return first
    rest = view.successors(state, acts, view.rest(acts, ample))
    return sorted(first + rest, key=lambda t: t[0])
