"""The verdict every design must give on every built-in scenario: ``check/expected/*.yaml``.

One file per built-in scenario, ``expected/<scenario>.yaml``: a YAML mapping from design names
(:data:`pasidsim.designs.DESIGNS`) to what that design does on the scenario::

    E6-mmput-free:
      breaks: A3                       # an invariant, a transition check (M1t, ATOMIC, EXPECT,
                                       # STEP ...), quiescence, expect_final, deadlock, or W
      unreached: [mm_exited_while_bound]   # sometimes-goals never reached
      why: PASID freed at __mmput while the child's device still has it (H1)

(``{}`` when every design passes).  A design not listed must pass: every invariant holds in
every reachable state, nothing leaks at quiescence, ``expect_final`` holds, no kernel WARN
fires but those the scenario lists in ``expect_warn``, and every sometimes-goal is reached.
A listed design must give exactly its entry: it breaks ``breaks`` (the first violation the
search finds, or one of the properties the violating state also breaks) — or passes when
``breaks`` is absent — and the goals it leaves unreached are exactly ``unreached``.  A kernel
WARN a design fires is ``breaks: W`` (``WARN`` is accepted as its alias).

:func:`expected_for` loads a scenario's file; bad files raise :class:`ExpectedError`
(``file:line: field: message``), a :class:`~pasidsim.scenario.loader.ScenarioError` so that
``pasidsim check`` reports it like a bad scenario (exit status 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator

from ..scenario.loader import Locator, ScenarioError, parse_yaml
from ..scenario.schema import PREDICATE_NAMES
from .pasid_model import PROPERTY_NAMES

#: accepted spellings of property names in ``breaks``
ALIASES = {"WARN": "W"}


class ExpectedError(ScenarioError):
    """A bad expected-verdict file (``file:line: field: message``)."""


@dataclass(frozen=True)
class Expected:
    """What one design must do on one scenario: break ``breaks`` (None: pass) and leave
    exactly the goals ``unreached`` unreached; ``why`` says why, in one line."""

    breaks: str | None = None
    unreached: tuple[str, ...] = ()
    why: str = ""

    def matches(self, verdict: str, invariant: str | None, broken=(),
                unreached=()) -> bool:
        """Is a cell's outcome this one?  ``verdict``: Always / Sometimes / Never / Bounded;
        ``invariant``: the first violation found; ``broken``: every property the violating
        state breaks; ``unreached``: the goals never reached.  A bounded search matches
        nothing."""
        if sorted(unreached) != sorted(self.unreached):
            return False
        if self.breaks is None:
            return verdict == "Always"
        return verdict in ("Sometimes", "Never") and (
            invariant == self.breaks or self.breaks in broken)

    def text(self) -> str:
        """``A3``, ``pass``, ``A3, unreached mm_exited_while_bound``."""
        out = self.breaks or "pass"
        if self.unreached:
            out += ", unreached " + ", ".join(self.unreached)
        return out


#: what a design not listed in a scenario's file must do
PASS = Expected()

_Text = Annotated[str, Strict(), Field(min_length=1, max_length=2000)]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    breaks: Optional[Annotated[str, Strict()]] = None
    unreached: list[Annotated[str, Strict()]] = Field(default_factory=list)
    why: _Text

    @field_validator("breaks")
    @classmethod
    def _known_property(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = ALIASES.get(v, v)
        if v not in PROPERTY_NAMES:
            raise ValueError(f"unknown property {v!r}; known: {', '.join(PROPERTY_NAMES)}")
        return v

    @field_validator("unreached")
    @classmethod
    def _known_goals(cls, v: list[str]) -> list[str]:
        for g in v:
            if g not in PREDICATE_NAMES:
                raise ValueError(f"unknown sometimes-goal {g!r}; known: "
                                 f"{', '.join(PREDICATE_NAMES)}")
        if len(set(v)) != len(v):
            raise ValueError("a goal is listed twice")
        return v


def expected_dir() -> Path:
    """The directory of the expected-verdict files (``pasidsim/check/expected``)."""
    return Path(__file__).resolve().parent / "expected"


def expected_path(scenario: str) -> Path:
    """The expected-verdict file of built-in scenario ``scenario``."""
    return expected_dir() / f"{scenario}.yaml"


def load_expected(path: str | Path) -> dict[str, Expected]:
    """Load one expected-verdict file: ``{design: Expected}``.

    Raises: :class:`ExpectedError` for an unreadable file, bad YAML, a design that
    :data:`pasidsim.designs.DESIGNS` does not have, an unknown property or goal, an entry
    without ``why`` or that expects nothing (neither ``breaks`` nor ``unreached``)."""
    from ..designs import DESIGNS
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ExpectedError(str(path), 0, "", f"cannot read: {e}") from None
    try:
        data, lines = parse_yaml(text, str(path))
    except ScenarioError as e:
        raise ExpectedError(e.source, e.line, e.field, e.message) from None
    loc = Locator(str(path), lines, p)
    if not isinstance(data, dict):
        raise _error(loc, (), f"expected a mapping of design names, got {_kind(data)}")
    out: dict[str, Expected] = {}
    for design, entry in data.items():
        if design not in DESIGNS:
            raise _error(loc, (design,), f"unknown design {design!r}; known: "
                         f"{', '.join(DESIGNS)}")
        try:
            e = _Entry.model_validate(entry)
        except ValidationError as err:
            first = err.errors(include_url=False)[0]
            where = (design,) + tuple(first["loc"])
            msg = first["msg"].removeprefix("Value error, ")
            if first["type"] == "missing":
                msg = "required field is missing"
            elif first["type"] == "extra_forbidden":
                msg = f"unknown field {first['loc'][-1]!r} (fields: breaks, unreached, why)"
            elif first["type"] == "model_type":
                msg = f"expected a mapping (breaks, unreached, why), got {_kind(entry)}"
            raise _error(loc, where, msg) from None
        if e.breaks is None and not e.unreached:
            raise _error(loc, (design,), "an entry expects `breaks` and/or `unreached` (a "
                         "design that passes is simply not listed)")
        out[design] = Expected(e.breaks, tuple(e.unreached), e.why)
    return out


def expected_lock_path(scenario: str) -> Path:
    """The ``lock``-granularity overlay of built-in scenario ``scenario``'s expected verdicts
    (``expected/lock/<scenario>.yaml``: only the designs whose verdict differs there)."""
    return expected_dir() / "lock" / f"{scenario}.yaml"


def expected_for(scenario: str, granularity: str | None = None) -> dict[str, Expected]:
    """The expected verdicts of built-in scenario ``scenario`` by design (``{}`` when it has
    no file: then every design must pass).  With ``granularity="lock"`` the entries of its
    lock overlay (:func:`expected_lock_path`) replace those of the same designs: what a design
    breaks when kernel calls interleave at their preemption points.  Raises
    :class:`ExpectedError` for a bad file."""
    p = expected_path(scenario)
    out = load_expected(p) if p.is_file() else {}
    if granularity == "lock":
        lp = expected_lock_path(scenario)
        if lp.is_file():
            out.update(load_expected(lp))
    return out


def _error(loc: Locator, at: tuple, message: str) -> ExpectedError:
    e = loc.error(at, message)
    return ExpectedError(e.source, e.line, e.field, e.message)


def _kind(v: Any) -> str:
    if v is None:
        return "nothing (null)"
    return type(v).__name__


__all__ = ["Expected", "ExpectedError", "PASS", "ALIASES", "expected_dir", "expected_path",
           "load_expected", "expected_for", "expected_lock_path"]
