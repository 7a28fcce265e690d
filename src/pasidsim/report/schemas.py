"""The JSON outputs of ``pasidsim run --json`` and ``pasidsim check --json`` as pydantic models.

Every output carries ``"schema": "pasidsim.<kind>/<OUTPUT_VERSION>"``: one version number for
all outputs, raised together when any of them changes incompatibly (a field removed, renamed
or retyped; a new field is compatible).  Kernel return values are JSON integers (``ret``)
beside their text (``ret_text``: ``"0"``, ``"-EBUSY"``, ``"pasid 1"``); ``ret`` is null only
for a call that had not returned (lock granularity: ``in_progress`` says where it stopped).

The published JSON Schemas (``pasidsim schema --output run|check``; shipped as
``schema/output-<kind>.schema.json``) are generated from these models, and the commands
serialise through them, so an output that does not fit its schema cannot be written.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: The version of every JSON output (``pasidsim.run/2``, ``pasidsim.check/2``).  Version 1
#: was ``pasidsim.trace/1`` for runs and the bare integer ``1`` for checks, with string
#: ``ret`` in check traces.
OUTPUT_VERSION = 2
RUN_SCHEMA = f"pasidsim.run/{OUTPUT_VERSION}"
CHECK_SCHEMA = f"pasidsim.check/{OUTPUT_VERSION}"


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- pasidsim run --json ---------------------------------------------------------------------
class ScenarioInfo(_Out):
    name: str
    file: str = Field(description="the scenario file's name (no directory)")
    design: str
    demonstrates: str | None = None


class ActorInfo(_Out):
    name: str
    kernel: bool = Field(description="a kernel thread rather than a process")
    status: str = Field(description='"finished", or where the actor was left')


class LockHeld(_Out):
    lock: str
    holder: str


class Event(_Out):
    index: int = Field(ge=1, description="1-based, as in the terminal trace")
    actor: str
    op: str | None = Field(description="the operation's name (None: an EXPECT-only event)")
    args: dict[str, int] = Field(description="the call's integer arguments by name")
    call: str = Field(description="the call as text, with device, driver and group names")
    ret: int | None = Field(description="the kernel's return value: 0, an id, or -errno")
    ret_text: str
    expect: str | None = None
    ok: bool
    failures: list[str]
    note: str | None = None
    line: int | None = Field(None, description="the event's line in the scenario file")
    error: str | None = None
    in_progress: str | None = Field(None, description="lock granularity: where the call "
                                    "stopped (None: it returned)")
    locks: list[LockHeld]


class Violation(_Out):
    event: int = Field(ge=1)
    invariant: str
    message: str


class Failure(_Out):
    event: int | None = None
    where: str
    line: int | None = None
    message: str


class GroupFinal(_Out):
    name: str
    owner_cnt: int = Field(ge=0, description="kernel DMA-API users (group->owner_cnt)")
    owned: bool = Field(description="claimed by a user owner (VFIO/iommufd)")
    pasids: int = Field(ge=0, description="entries of group->pasid_array")


class FinalState(_Out):
    pasids_allocated: int = Field(ge=0)
    pasids: list[int] = Field(description="the allocated global PASIDs, lowest 64")
    amdgpu_pasids: int = Field(ge=0)
    mms: int = Field(ge=0)
    tasks: int = Field(ge=0)
    files: int = Field(ge=0)
    bonds: int = Field(ge=0)
    warnings: list[str]
    groups: list[GroupFinal]


class RunOutput(_Out):
    """``pasidsim run --json``: one scenario run, event by event."""
    schema_: Literal["pasidsim.run/2"] = Field(RUN_SCHEMA, alias="schema")
    scenario: ScenarioInfo
    actors: list[ActorInfo]
    events: list[Event]
    violations: list[Violation]
    failures: list[Failure]
    final: FinalState
    ok: bool = Field(description="no violation and every EXPECT met")


# -- pasidsim check --json -------------------------------------------------------------------
class TraceStep(_Out):
    actor: str
    call: str
    ret: int | None = Field(description="the kernel's return value (None: not returned)")
    ret_text: str


class CellOutput(_Out):
    """One scenario × design cell of the matrix."""
    scenario: str
    design: str
    verdict: Literal["Always", "Sometimes", "Never", "Bounded"]
    states: int = Field(ge=0, description="distinct states (symmetry classes with symmetry)")
    transitions: int = Field(ge=0)
    elapsed: float = Field(ge=0, description="seconds of search")
    invariant: str | None = Field(description="the property the counterexample breaks")
    kind: str = Field(description='"always", "quiescence", "deadlock" or ""')
    message: str
    expected: str | None = Field(description="the property this design must break here "
                                 "(None: it must pass)")
    expected_unreached: list[str]
    ok: bool = Field(description="the outcome is the expected one (the matrix shows no ✗ and "
                     "the search was exhaustive)")
    documented: bool = Field(description="the design's documented breakage (a HISTORY row)")
    unreached: list[str]
    length: int = Field(ge=0, description="steps of the counterexample")
    levels: list[int] = Field(description="distinct states first reached at each depth (BFS: "
                              "per level; empty for a swarm search)")
    trace: list[TraceStep]


class CheckOutput(_Out):
    """``pasidsim check --json``: the matrix and the counterexample files written."""
    schema_: Literal["pasidsim.check/2"] = Field(CHECK_SCHEMA, alias="schema")
    cells: list[CellOutput]
    counterexamples: list[str] = Field(description="scenario files written, replayable "
                                       "with `pasidsim run`")
    ok: bool = Field(description="every cell as expected and exhaustive")


OUTPUTS: dict[str, type[_Out]] = {"run": RunOutput, "check": CheckOutput}


def dump(model: _Out) -> str:
    """A model as JSON text: sorted keys, 2-space indent, trailing newline (same run, same
    bytes)."""
    return json.dumps(model.model_dump(mode="json", by_alias=True), sort_keys=True,
                      indent=2) + "\n"


def output_schema_text(kind: str) -> str:
    """The JSON Schema of output ``kind`` (``"run"`` or ``"check"``) as text.  Raises
    KeyError for another kind."""
    model = OUTPUTS[kind]
    schema = model.model_json_schema(by_alias=True)
    return json.dumps(schema, sort_keys=True, indent=2) + "\n"


def output_schema_path(kind: str):
    """Where the shipped JSON Schema of output ``kind`` lives
    (``pasidsim/schema/output-<kind>.schema.json``)."""
    from pathlib import Path
    return Path(__file__).resolve().parent.parent / "schema" / f"output-{kind}.schema.json"


def write_output_schemas() -> list[str]:
    """Regenerate the shipped output schemas (``pasidsim schema --write``); returns their
    paths."""
    from .output import write_text_atomic
    out = []
    for kind in OUTPUTS:
        write_text_atomic(output_schema_path(kind), output_schema_text(kind))
        out.append(str(output_schema_path(kind)))
    return out


__all__ = ["OUTPUT_VERSION", "RUN_SCHEMA", "CHECK_SCHEMA", "RunOutput", "CheckOutput",
           "CellOutput", "OUTPUTS", "dump", "output_schema_text",
           "output_schema_path", "write_output_schemas"]
