"""What the model checker explores: the :class:`Model` protocol and its resolved view.

A model is a deterministic labelled transition system over immutable, hashable states:

* ``initial_states() -> Sequence[S]``
* ``actions(state) -> Sequence[A]`` — the enabled actions, in a deterministic order
  (actions are hashable, picklable, frozen values);
* ``step(state, action) -> S`` — pure: the same arguments always give an equal state;
* ``invariants: Sequence[Invariant]`` — checked on every reachable state (initial ones too).

Optional hooks (absent or ``None`` = not provided):

* ``sometimes: Sequence[Goal]`` — reachability goals; each must hold in at least one
  reachable state, else the result lists it as *never reached* (catches vacuous models).
  An object with ``check(state) -> str | None`` instead of ``holds`` is accepted too
  (``None`` = the goal holds).
* ``is_quiescent(state) -> bool`` — no actor has work left.  A state with no enabled action
  that is not quiescent is a **deadlock**.  Without this hook, every state with no enabled
  action counts as quiescent (no deadlock detection).
* ``at_quiescence(state) -> str | tuple[str, str] | None`` — called on quiescent states; a
  message is a violation of kind ``"quiescence"`` named ``"quiescence"`` (e.g. a leak), a
  ``(name, message)`` pair one of that kind with its own name (e.g. ``"expect_final"``).
* ``canonical(state) -> S`` — a representative of the state's symmetry class (used with
  ``symmetry=True``).  It must commute with ``step`` up to symmetry and every invariant,
  goal and quiescence check must be symmetric.
* partial-order reduction (used with ``por=True``): ``actor(action) -> Hashable``,
  ``independent(a, b) -> bool``, ``alphabet() -> Iterable[A]`` and ``visible(action) -> bool``;
  see :meth:`ModelView.ample` for the exact contract.

``hash(state)`` is the state's fingerprint; for :mod:`~pasidsim.check.parallel` it must be
stable across processes (ints, tuples, frozen dataclasses of those — not ``str`` unless
``PYTHONHASHSEED`` is fixed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable, Protocol, Sequence, runtime_checkable

FP_MASK = 0xFFFF_FFFF_FFFF_FFFF
#: entries of a view's memo of canonical fingerprints (about 100 bytes each) before it is
#: cleared (:meth:`ModelView.fingerprint`)
CANON_MEMO = 1 << 20

#: Result of evaluating one state: (failures, indices of satisfied goals, number of enabled
#: actions).  A failure is ``(name, message, kind)`` with kind in
#: ``{"always", "deadlock", "quiescence"}``.
StateCheck = tuple[tuple[tuple[str, str, str], ...], tuple[int, ...], int]

_NO_FAILURES: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class Invariant:
    """A safety property checked on every reachable state.

    Attributes:
        name: identifier used in reports.
        check: ``check(state)`` returns ``None`` when the property holds, else a message.
    """

    name: str
    check: Callable[[Any], str | None]

    @classmethod
    def always(cls, name: str, pred: Callable[[Any], bool], message: str | None = None) -> "Invariant":
        """Build an invariant from a boolean predicate; ``message`` is reported when it is false."""
        text = message or f"{name} does not hold"
        return cls(name, lambda s: None if pred(s) else text)


@dataclass(frozen=True)
class Goal:
    """A reachability goal (herd7's *Sometimes*): ``holds(state)`` must be true somewhere."""

    name: str
    holds: Callable[[Any], bool]


@runtime_checkable
class Model(Protocol):
    """The interface :func:`~pasidsim.check.search.explore` needs (see the module docstring)."""

    invariants: Sequence[Invariant]

    def initial_states(self) -> Sequence[Any]:
        """Return the initial states (deterministic order)."""
        ...

    def actions(self, state: Any) -> Sequence[Any]:
        """Return the actions enabled in ``state`` in a deterministic order."""
        ...

    def step(self, state: Any, action: Any) -> Any:
        """Return the state reached by executing ``action`` in ``state`` (pure)."""
        ...


@dataclass(frozen=True)
class FunctionModel:
    """A :class:`Model` assembled from plain functions; handy for small and toy models.

    Each field has the name of the protocol member it implements; optional hooks default to
    ``None`` (not provided).
    """

    initial_states: Callable[[], Sequence[Any]]
    actions: Callable[[Any], Sequence[Any]]
    step: Callable[[Any, Any], Any]
    invariants: Sequence[Invariant] = ()
    sometimes: Sequence[Any] = ()
    is_quiescent: Callable[[Any], bool] | None = None
    at_quiescence: Callable[[Any], str | None] | None = None
    canonical: Callable[[Any], Any] | None = None
    actor: Callable[[Any], Hashable] | None = None
    independent: Callable[[Any, Any], bool] | None = None
    visible: Callable[[Any], bool] | None = None
    alphabet: Callable[[], Iterable[Any]] | None = None
    name: str = "model"


def _hook(model: Any, name: str) -> Any:
    """Return the optional hook ``name`` of ``model`` or ``None``."""
    return getattr(model, name, None)


def _goal_predicate(goal: Any) -> Callable[[Any], bool]:
    """Adapt a goal object (``holds`` or invariant-like ``check``) to a boolean predicate."""
    holds = getattr(goal, "holds", None)
    if holds is not None:
        return holds
    check = goal.check
    return lambda s: check(s) is None


class ModelView:
    """A model with its optional hooks resolved, plus the per-state work shared by the serial
    search and the parallel workers (so both compute exactly the same thing).

    Args:
        model: the :class:`Model`.
        symmetry: fingerprint ``canonical(state)`` instead of ``state``.
        por: enable partial-order reduction (requires ``actor``, ``independent``, ``alphabet``).

    Raises:
        ValueError: a requested reduction lacks the hooks it needs.
    """

    def __init__(self, model: Any, *, symmetry: bool = False, por: bool = False) -> None:
        self.model = model
        self.initial_states: Callable[[], Sequence[Any]] = model.initial_states
        self.actions: Callable[[Any], Sequence[Any]] = model.actions
        self.step: Callable[[Any, Any], Any] = model.step
        self.invariants: tuple[Invariant, ...] = tuple(model.invariants)
        goals = tuple(_hook(model, "sometimes") or ())
        self.goal_names: tuple[str, ...] = tuple(g.name for g in goals)
        self._goals = tuple(_goal_predicate(g) for g in goals)
        self._is_quiescent = _hook(model, "is_quiescent")
        self._at_quiescence = _hook(model, "at_quiescence")
        self.canonical: Callable[[Any], Any] | None = None
        self._canon_fps: dict[int, int] = {}
        if symmetry:
            self.canonical = _hook(model, "canonical")
            if self.canonical is None:
                raise ValueError("symmetry=True needs a model with canonical(state)")
        self.por = por
        if por:
            self._setup_por(model)

    # -- fingerprints and state evaluation -------------------------------------------------

    def fingerprint(self, state: Any) -> int:
        """Return the 64-bit fingerprint of ``state`` (of its canonical form under symmetry).

        Under symmetry the canonical fingerprint is memoised by the state's own fingerprint
        (up to :data:`CANON_MEMO` entries, then the memo starts again): a search meets the
        same state again through other paths (at lock granularity more than half of the
        successors were met before), and hashing a state costs about a twentieth of
        canonicalising it.  Same fingerprints as without the memo, up to a collision of two
        64-bit fingerprints of distinct states, the risk every visited set here takes."""
        canon = self.canonical
        if canon is None:
            return hash(state) & FP_MASK
        memo = self._canon_fps
        raw = hash(state)
        fp = memo.get(raw)
        if fp is None:
            fp = hash(canon(state)) & FP_MASK
            if len(memo) >= CANON_MEMO:
                memo.clear()
            memo[raw] = fp
        return fp

    def evaluate(self, state: Any, acts: Sequence[Any]) -> StateCheck:
        """Check one state.

        Args:
            state: the state.
            acts: ``actions(state)`` (passed in because the caller needs them anyway).

        Returns:
            ``(failures, goals, n_actions)``: failures in order — failed invariants, then
            ``deadlock``, then ``quiescence``; ``goals`` the indices of the goals that hold.
        """
        failures: list[tuple[str, str, str]] | None = None
        for inv in self.invariants:
            msg = inv.check(state)
            if msg is not None:
                failures = failures or []
                failures.append((inv.name, str(msg), "always"))
        n = len(acts)
        quiet = self._is_quiescent(state) if self._is_quiescent is not None else n == 0
        if n == 0 and not quiet:
            failures = failures or []
            failures.append(("deadlock", "no enabled action in a non-quiescent state", "deadlock"))
        if quiet and self._at_quiescence is not None:
            msg = self._at_quiescence(state)
            if msg is not None:
                name = "quiescence"
                if isinstance(msg, tuple):
                    name, msg = msg
                failures = failures or []
                failures.append((name, str(msg), "quiescence"))
        goals = tuple(i for i, g in enumerate(self._goals) if g(state)) if self._goals else ()
        return (tuple(failures) if failures else _NO_FAILURES, goals, n)

    def successors(self, state: Any, acts: Sequence[Any], indices: Iterable[int]) -> list[tuple[int, Any, int]]:
        """Return ``[(action_index, next_state, fingerprint)]`` for the given action indices."""
        step, fp = self.step, self.fingerprint
        out = []
        for i in indices:
            nxt = step(state, acts[i])
            out.append((i, nxt, fp(nxt)))
        return out

    # -- partial-order reduction -------------------------------------------------------------

    def _setup_por(self, model: Any) -> None:
        """Resolve the POR hooks and compute, once, which actors are isolated."""
        actor, independent, alphabet = (_hook(model, n) for n in ("actor", "independent", "alphabet"))
        if actor is None or independent is None or alphabet is None:
            raise ValueError("por=True needs a model with actor(), independent() and alphabet()")
        self._actor: Callable[[Any], Hashable] = actor
        vis = _hook(model, "visible")
        self._visible: Callable[[Any], bool] = vis if vis is not None else (lambda a: True)
        letters = list(alphabet())
        self._alphabet = frozenset(letters)
        by_actor: dict[Hashable, list[Any]] = {}
        for a in letters:
            by_actor.setdefault(actor(a), []).append(a)
        self.isolated: frozenset[Hashable] = frozenset(
            p for p, mine in by_actor.items()
            if all(independent(x, y) and independent(y, x)
                   for q, theirs in by_actor.items() if q != p for x in mine for y in theirs))

    def ample(self, acts: Sequence[Any]) -> list[int] | None:
        """Choose a reduced set of action indices to expand, or ``None`` to expand all.

        The candidate ample set is ``E_p`` — all enabled actions of one actor ``p`` — for the
        first actor, in order of first appearance in ``acts``, such that

        1. ``E_p`` is a proper subset of the enabled actions (else nothing to reduce);
        2. ``p`` is *isolated*: ``independent(x, y)`` holds for every ``x`` of ``p`` and ``y``
           of any other actor in ``alphabet()`` (static check, done once).  ``independent``
           must mean: in every state, neither action enables or disables the other, and when
           both are enabled they commute.  Checking against the whole alphabet rather than
           the currently enabled actions is what makes this sound: another actor's *future*
           action can neither interfere with ``E_p`` nor enable another action of ``p``, so
           ``E_p`` is a persistent set (condition C1);
        3. every action of ``E_p`` is invisible: ``visible(a)`` is false, i.e. ``a`` never
           changes the truth value of an invariant, a goal, ``is_quiescent`` or
           ``at_quiescence(s) is None`` (C2; default: every action is visible).

        The search then applies the cycle proviso (C3): the reduction is kept only if no
        successor through ``E_p`` had been visited before the current BFS level (DFS: before
        this expansion); otherwise the state is fully expanded.  Reduced edges thus always
        lead to newer states, so every cycle contains a fully expanded state.

        This preserves every reachable terminal state (deadlocks, quiescent leaks) and the
        set of reachable valuations of the visible predicates (so invariant violations and
        goals), but not the number of states.

        Raises:
            ValueError: an enabled action is missing from ``alphabet()``.
        """
        actor, groups = self._actor, {}
        for i, a in enumerate(acts):
            if a not in self._alphabet:
                raise ValueError(f"enabled action {a!r} is not in the model's alphabet()")
            groups.setdefault(actor(a), []).append(i)
        if len(groups) < 2:
            return None
        visible, isolated = self._visible, self.isolated
        for p, idxs in groups.items():
            if p in isolated and not any(visible(acts[i]) for i in idxs):
                return idxs
        return None

    def rest(self, acts: Sequence[Any], ample: Sequence[int]) -> list[int]:
        """Return the action indices not in ``ample`` (ascending)."""
        chosen = set(ample)
        return [i for i in range(len(acts)) if i not in chosen]
