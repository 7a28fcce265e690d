"""The scenario file format as pydantic models, and its published JSON Schema.

A scenario is a YAML mapping (see :class:`Scenario`).  A *step* is a one-key mapping whose key
is an operation of :data:`pasidsim.step.OPS` (or an alias: ``open``, ``exit``, ``clone``) and
whose value holds the operation's arguments by name plus the step fields ``as`` (bind the
return value to a name), ``expect`` (a return value, an errno name like ``-EBUSY``, ``ok`` for
``>= 0``, ``error`` for ``< 0``, ``IOMMU_PASID_INVALID`` or a ``$name``), ``check`` (assertions
on the state after the step, :class:`StateCheck`), ``fail`` (kernel calls and process events
only: make the call fail at a fault point of :class:`pasidsim.fault.FaultPoint`, e.g.
``fail: HANDLE_ALLOC``, or ``HANDLE_ALLOC#2`` for the second time the call passes that point)
and ``note``; ``fork``/``clone`` also take ``program`` (the steps of the child actor named by
``as``).  Argument values are integers in
range, ``$name`` references, names for ``dev``/``drv``/``group`` (a group may also be named by
one of its devices), and ``self`` for ``tid``/``mm``.

One pydantic model is generated per operation from its Python signature, so the JSON Schema
(:func:`scenario_json_schema`, shipped as ``pasidsim/schema/scenario.schema.json``) lists
every operation with its arguments.  Cross-references that need no machine (actor names,
``$name`` bindings, ``order``) are checked here; device/driver/group names are checked when
the scenario is compiled against its machine (:mod:`pasidsim.scenario.compile`).
"""

from __future__ import annotations

import dataclasses
import errno as _errno
import inspect
from enum import IntEnum
from typing import Annotated, Any, Literal, NamedTuple, Optional, Union

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Discriminator, Field,
                      PlainValidator, PrivateAttr, Strict, Tag, WithJsonSchema, create_model,
                      field_validator, model_validator)
from pydantic_core import PydanticCustomError

from .. import step as _step
from ..errors import EPROBE_DEFER, Warn
from ..fault import FaultPoint
from ..hw.translate import FaultReason
from ..iopf import IopfResponse
from ..machines import (DeviceSpec, DriverSpec, InlineMachine, IommuSpec,  # noqa: F401
                        MachineSpec, TopologyMachine)
from ..policy import Policy
from ..state import IOMMU_PASID_INVALID, HandleKind, MmState

SCHEMA_VERSION = 1
IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"
#: names an actor or binding may not take
RESERVED = frozenset({"setup", "hw", "self", "kernel"})
#: step keys accepted besides the operation names
ALIASES = {"open": "dev_open", "exit": "task_exit", "clone": "clone_thread", "exec": "execve"}
SPAWNING = frozenset({"fork", "clone_thread"})
STEP_FIELDS = ("as", "expect", "check", "fail", "note", "program")
#: operation kinds whose calls can be failed by fault injection (not hardware events)
FAULT_KINDS = ("kernel", "process")
#: reachability goals a scenario may name in ``sometimes`` (evaluated by the compiler)
PREDICATE_NAMES = ("pasid_allocated", "all_pasids_free", "all_exited", "mm_exited_while_bound",
                   "group_user_owned", "amdgpu_free_pending", "enqcmd_activated",
                   "programs_done")
U32 = 0xFFFFFFFF
U64 = (1 << 64) - 1


class Ref(NamedTuple):
    """A ``$name`` reference to a value bound earlier with ``as:``."""

    name: str


class FailSpec(NamedTuple):
    """A step's ``fail:``: the call fails at the ``nth`` time (1-based) it passes fault point
    ``point`` (a :class:`~pasidsim.fault.FaultPoint` value).  text: as written."""

    point: int
    nth: int = 1
    text: str = ""


class Expect(NamedTuple):
    """An expected return value.  kind: ``eq`` (== value), ``ok`` (>= 0), ``error`` (< 0),
    ``any`` (success or failure: a race decides, each order is fine), ``ref`` (== the value
    bound to ``ref``).  text: as written."""

    kind: str
    value: int = 0
    ref: str = ""
    text: str = ""


def errno_value(name: str) -> int | None:
    """``"EBUSY"`` → 16; None for an unknown name.  Every name of the errno module counts,
    aliases included (``EOPNOTSUPP`` and ``ENOTSUP`` are both 95 on Linux; traces print the
    kernel's ``EOPNOTSUPP``)."""
    if name == "EPROBE_DEFER":
        return EPROBE_DEFER
    v = getattr(_errno, name, None)
    return v if isinstance(v, int) and name.startswith("E") and name.isupper() else None


# -- argument value types ----------------------------------------------------------------------

def _ref(text: str) -> Ref:
    import re
    if not re.match(IDENT, text[1:]):
        raise ValueError(f"bad reference {text!r}: expected $ followed by a name")
    return Ref(text[1:])


def _describe(v: Any) -> str:
    return f"{v!r}" if isinstance(v, (str, int, float, bool)) or v is None else type(v).__name__


def _int_arg(lo: int, hi: int, words: tuple[str, ...] = ()):
    what = f"an integer in [{lo}, {hi:#x}]" if hi > 1 << 20 else f"an integer in [{lo}, {hi}]"
    extra = "".join(f", '{w}'" for w in words)

    def check(v: Any):
        if isinstance(v, str):
            if v.startswith("$"):
                return _ref(v)
            if v in words:
                return v
            raise ValueError(f"expected {what}{extra} or a $reference, got {v!r}")
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"expected {what}{extra} or a $reference, got {_describe(v)}")
        if not lo <= v <= hi:
            raise ValueError(f"{v} is out of range: expected {what}")
        return v

    schema: dict = {"anyOf": [{"type": "integer", "minimum": lo, "maximum": hi},
                              {"type": "string", "pattern": r"^\$[A-Za-z_][A-Za-z0-9_]*$"}]}
    if words:
        schema["anyOf"].append({"enum": list(words)})
    return Annotated[Any, PlainValidator(check), WithJsonSchema(schema)]


def _name_arg(kind: str):
    def check(v: Any):
        if isinstance(v, str):
            if v.startswith("$"):
                return _ref(v)
            if not v.strip():
                raise ValueError(f"empty {kind} name")
            return v
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= U32:
            raise ValueError(f"expected a {kind} name or index, got {_describe(v)}")
        return v

    return Annotated[Any, PlainValidator(check), WithJsonSchema(
        {"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 0}],
         "description": f"{kind} name (or index)"})]


def _bool_arg(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    raise ValueError(f"expected true or false, got {_describe(v)}")


def _expect(v: Any) -> Expect:
    if isinstance(v, bool) or v is None:
        raise ValueError(f"expected a return value, got {_describe(v)}")
    if isinstance(v, int):
        if not -4095 <= v <= U64:
            raise ValueError(f"{v} is not a possible return value")
        return Expect("eq", v, text=str(v))
    if not isinstance(v, str):
        raise ValueError(f"expected a return value, got {_describe(v)}")
    if v in ("ok", "error", "any"):
        return Expect(v, text=v)
    if v == "IOMMU_PASID_INVALID":
        return Expect("eq", IOMMU_PASID_INVALID, text=v)
    if v.startswith("$"):
        return Expect("ref", ref=_ref(v).name, text=v)
    if v.startswith("-E") and errno_value(v[1:]) is not None:
        return Expect("eq", -errno_value(v[1:]), text=v)
    if v.lstrip("-").startswith("E"):
        raise ValueError(f"unknown errno name {v!r} (write it like -EBUSY)")
    raise ValueError(f"expected an integer, an errno like -EBUSY, 'ok', 'error', 'any', "
                     f"'IOMMU_PASID_INVALID' or a $reference, got {v!r}")


def _fail_spec(v: Any) -> FailSpec:
    if not isinstance(v, str):
        raise ValueError(f"expected a fault point name like HANDLE_ALLOC (or HANDLE_ALLOC#2), "
                         f"got {_describe(v)}")
    name, sep, nth = v.partition("#")
    if name not in FaultPoint.__members__:
        raise ValueError(f"unknown fault point {name!r}; known: "
                         f"{', '.join(FaultPoint.__members__)}")
    if sep and not (nth.isdigit() and int(nth) >= 1):
        raise ValueError(f"bad occurrence {v!r}: write {name}#2 for the second time the call "
                         f"passes {name}")
    return FailSpec(int(FaultPoint[name]), int(nth) if sep else 1, v)


def _warn_name(v: Any) -> int:
    if isinstance(v, str) and v in Warn.__members__:
        return int(Warn[v])
    raise ValueError(f"expected a WARN name of pasidsim.errors.Warn "
                     f"({', '.join(Warn.__members__)}), got {_describe(v)}")


BoolArg = Annotated[Any, PlainValidator(_bool_arg), WithJsonSchema({"type": "boolean"})]
FailArg = Annotated[Any, PlainValidator(_fail_spec), WithJsonSchema(
    {"type": "string", "pattern": "^(" + "|".join(FaultPoint.__members__) + ")(#[1-9][0-9]*)?$",
     "description": "fail the call at this fault point (pasidsim.fault.FaultPoint; #n: at "
                    "the n-th time the call passes it)"})]
WarnName = Annotated[Any, PlainValidator(_warn_name), WithJsonSchema(
    {"enum": list(Warn.__members__)})]
TaskArg = _int_arg(1, U64, ("self",))
ExpectArg = Annotated[Any, PlainValidator(_expect), WithJsonSchema(
    {"anyOf": [{"type": "integer"}, {"type": "string", "pattern": r"^-E[A-Z0-9_]+$"},
               {"enum": ["ok", "error", "any", "IOMMU_PASID_INVALID"]},
               {"type": "string", "pattern": r"^\$[A-Za-z_][A-Za-z0-9_]*$"}]})]
PasidArg = _int_arg(0, U32)
Count = Annotated[int, Strict(), Field(ge=0, le=U32)]
_FAULT_REASONS = {int(r): r.name for r in FaultReason}
_RESPONSE_CODES = {int(r): r.name for r in IopfResponse}
Ident = Annotated[str, Strict(), Field(pattern=IDENT, max_length=64)]
Text = Annotated[str, Strict(), Field(max_length=20000)]


def _arg_type(param: str, default: Any):
    """The value type of an operation parameter, from its name and default."""
    if param in ("dev", "drv", "group"):
        return _name_arg({"dev": "device", "drv": "driver", "group": "group"}[param])
    if param in ("tid", "mm"):
        return TaskArg
    if isinstance(default, bool):
        return BoolArg
    if param in ("pasid", "ident", "min", "max"):
        return PasidArg
    if param == "bits":
        return _int_arg(0, 32)
    if param == "type":
        return _int_arg(-1, 255)
    return _int_arg(0, U64)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)


# -- state assertions --------------------------------------------------------------------------

class GroupCheck(_Strict):
    """Assertions on one IOMMU group (by group or member-device name)."""

    owner_cnt: Optional[Count] = None
    owned: Optional[Annotated[bool, Strict()]] = Field(None, description="user (exclusive) owner set")
    pasids: Optional[Count] = Field(None, description="PASID slots attached (RID slot excluded)")
    domain: Optional[Literal["default", "blocking", "other"]] = None


class StateCheck(_Strict):
    """Assertions on a state: counts of live objects and specific PASIDs."""

    pasids_allocated: Optional[Count] = Field(None, description="global PASIDs allocated")
    pasid_allocated: Optional[list[PasidArg]] = None
    pasid_free: Optional[list[PasidArg]] = None
    amdgpu_pasids: Optional[Count] = None
    amdgpu_pasid_allocated: Optional[list[PasidArg]] = None
    amdgpu_pasid_free: Optional[list[PasidArg]] = None
    amdgpu_pending: Optional[Count] = Field(None, description="delayed frees waiting on fences")
    mms: Optional[Count] = Field(None, description="mm_structs not yet freed")
    mms_exited: Optional[Count] = Field(None, description="mms exited (mm_users 0) not freed")
    tasks: Optional[Count] = None
    processes: Optional[Count] = None
    files: Optional[Count] = None
    bonds: Optional[Count] = Field(None, description="SVA handles")
    descriptors: Optional[Count] = Field(None, description="work descriptors in flight")
    warnings: Optional[Count] = None
    breaches: Optional[Count] = Field(None, description="isolation breaches seen by hardware")
    iotlb: Optional[Count] = Field(None, description="translations cached in the IOTLBs: an "
                                   "invalidation must drop what it owes and nothing else")
    atc: Optional[Count] = Field(None, description="translations cached in the devices' ATCs")
    faults: Optional[Count] = Field(None, description="fault records held (the last 8)")
    last_fault: Optional[Literal[tuple(_FAULT_REASONS.values())]] = Field(  # type: ignore
        None, description="reason of the newest fault record")
    page_requests: Optional[Count] = Field(
        None, description="page requests held by the IOPF queues: partial (not yet LAST) "
        "requests plus the requests of groups waiting for the IOPF worker")
    responses: Optional[Count] = Field(None, description="page responses sent (the last 16)")
    last_response: Optional[Literal[tuple(_RESPONSE_CODES.values())]] = Field(  # type: ignore
        None, description="code of the newest page response")
    groups: Optional[dict[str, GroupCheck]] = None

    def failures(self, s, value, groups: dict[str, int]) -> list[str]:
        """The assertions that do not hold in state ``s``.

        Args:
            s: a :class:`~pasidsim.state.SystemState`.
            value: resolves an entry of a PASID list (an int or a :class:`Ref`) to an int,
                or None for a reference not bound (the assertion then fails).
            groups: group key of ``groups`` → group index.
        """
        out: list[str] = []

        def cmp(key: str, got: int) -> None:
            want = getattr(self, key, None)
            if want is not None and want != got:
                out.append(f"{key}: expected {want}, got {got}")

        cmp("pasids_allocated", s.ida.allocated)
        for key, space, alloc in (("pasid_allocated", s.ida, True),
                                  ("pasid_free", s.ida, False),
                                  ("amdgpu_pasid_allocated", s.amdgpu_ida, True),
                                  ("amdgpu_pasid_free", s.amdgpu_ida, False)):
            for v in getattr(self, key) or ():
                p = value(v)
                if p is None:
                    out.append(f"{key}: ${v.name} was never bound")
                elif (p in space) != alloc:
                    out.append(f"{key}: PASID {p} is {'free' if alloc else 'allocated'}")
        cmp("amdgpu_pasids", s.amdgpu_ida.allocated)
        cmp("amdgpu_pending", len(s.amdgpu_pending))
        cmp("mms", len(s.mms))
        cmp("mms_exited", sum(1 for m in s.mms.values() if m.state == MmState.EXITED))
        cmp("tasks", len(s.tasks))
        cmp("processes", len(s.procs))
        cmp("files", len(s.files))
        cmp("bonds", sum(1 for h in s.handles.values() if h.kind == HandleKind.SVA))
        cmp("descriptors", len(getattr(s, "inflight", ())))
        cmp("warnings", len(s.warnings))
        cmp("breaches", len(getattr(s, "breaches", ())))
        cmp("iotlb", len(s.iotlb))
        cmp("atc", len(s.atc))
        cmp("faults", len(s.faults))
        cmp("page_requests", sum(len(q.partial) + sum(len(g.faults) for g in q.groups)
                                 for q in s.iopf.values()))
        cmp("responses", len(s.responses))
        for key, recs, idx, names in (("last_fault", s.faults, 3, _FAULT_REASONS),
                                      ("last_response", s.responses, 3, _RESPONSE_CODES)):
            want = getattr(self, key)
            if want is not None:
                got = names.get(recs[-1][idx], "none") if recs else "none"
                if got != want:
                    out.append(f"{key}: expected {want}, got {got}")
        for name, gc in (self.groups or {}).items():
            g = s.groups[groups[name]]
            dom = ("default" if g.domain == g.default_domain else
                   "blocking" if g.domain == g.blocking_domain else "other")
            got = {"owner_cnt": g.owner_cnt, "owned": bool(g.owner), "domain": dom,
                   "pasids": sum(1 for p, _d, _h in g.pasid_array if p != 0)}
            for key, val in got.items():
                want = getattr(gc, key)
                if want is not None and want != val:
                    out.append(f"groups.{name}.{key}: expected {want}, got {val}")
        return out


class FinalCheck(StateCheck):
    """:class:`StateCheck` plus ``violations``: distinct invariant violations in the run."""

    violations: Optional[Count] = None


# -- per-operation step models -------------------------------------------------------------------

def _step_models() -> dict[str, type[BaseModel]]:
    """One wrapper model per step key: ``{key: {args}}``."""
    models: dict[str, type[BaseModel]] = {}
    keys = [(op.name, op) for op in _step.OPS]
    keys += [(alias, _step.OP_BY_NAME[name]) for alias, name in ALIASES.items()
             if name in _step.OP_BY_NAME]
    for key, op in keys:
        fields: dict[str, Any] = {}
        for p, d in zip(op.params, op.defaults):
            required = d is inspect.Parameter.empty and p != "tid"
            fields[p] = (_arg_type(p, d), ... if required else None)
        fields["bind"] = (Optional[Ident], Field(None, alias="as"))
        fields["expect"] = (Optional[ExpectArg], None)
        fields["check"] = (Optional[StateCheck], None)
        if op.kind in FAULT_KINDS:
            fields["fail"] = (Optional[FailArg], None)
        fields["note"] = (Optional[Text], None)
        validators = {}
        if op.name in SPAWNING:
            fields["program"] = (Optional[list["Step"]], None)
            validators["_child_named"] = model_validator(mode="after")(_child_named)
        doc = (op.fn.__doc__ or op.name).strip().split("\n\n")[0]
        args = create_model(f"{key}_args", __config__=ConfigDict(extra="forbid"),
                            __doc__=doc, __validators__=validators, **fields)
        args.OP = op.name
        wrapper = create_model(f"step_{key}", __config__=ConfigDict(extra="forbid"),
                               args=(args, Field(alias=key)))
        wrapper.OP, wrapper.TAG = op.name, key
        models[key] = wrapper
    return models


def _child_named(self):
    if self.program is not None and self.bind is None:
        raise ValueError("a step with a program needs `as:` naming the child actor")
    return self


def _step_key(v: Any) -> str | None:
    return next(iter(v)) if isinstance(v, dict) and len(v) == 1 else None


def _step_shape(v: Any) -> Any:
    if not isinstance(v, dict) or len(v) != 1:
        got = f"a mapping with {len(v)} keys" if isinstance(v, dict) else _describe(v)
        raise ValueError(f"a step is a mapping with one key, the operation "
                         f"(e.g. `- open: {{dev: dsa0}}`), got {got}")
    key = next(iter(v))
    if key not in STEP_MODELS:
        import difflib
        near = difflib.get_close_matches(str(key), list(STEP_MODELS), n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise ValueError(f"unknown operation {key!r}{hint}")
    if v[key] is None:
        return {key: {}}
    return v


STEP_MODELS = _step_models()
Step = Annotated[
    Union[tuple(Annotated[m, Tag(k)] for k, m in STEP_MODELS.items())],  # type: ignore[misc]
    Discriminator(_step_key), BeforeValidator(_step_shape)]
for _m in STEP_MODELS.values():
    _m.model_fields["args"].annotation.model_rebuild(_types_namespace={"Step": Step})
    _m.model_rebuild(_types_namespace={"Step": Step})


def _enum_field(enum: type[IntEnum]):
    def check(v: Any):
        if isinstance(v, str) and v.upper() in enum.__members__:
            return enum[v.upper()]
        if isinstance(v, int) and not isinstance(v, bool) and v in set(enum):
            return enum(v)
        raise ValueError(f"expected one of {', '.join(enum.__members__)}, got {_describe(v)}")
    return Annotated[Any, PlainValidator(check), WithJsonSchema(
        {"enum": list(enum.__members__) + [int(m) for m in enum]})]


def _policy_overrides_model() -> type[BaseModel]:
    fields = {}
    for f in dataclasses.fields(Policy):
        if f.name == "name":
            continue
        default = getattr(Policy(), f.name)
        if isinstance(default, IntEnum):
            fields[f.name] = (Optional[_enum_field(type(default))], None)
        else:
            fields[f.name] = (Optional[Annotated[bool, Strict()]], None)
    return create_model("PolicyOverrides", __config__=ConfigDict(extra="forbid"),
                        __doc__="Switches of pasidsim.policy.Policy to change.", **fields)


PolicyOverrides = _policy_overrides_model()


# -- the scenario ------------------------------------------------------------------------------

class Actor(_Strict):
    """A program run by one actor: a process (its first thread is the actor's task; process
    events act on it implicitly) or, with ``kernel: true``, kernel code with no task."""

    name: Ident
    kernel: Annotated[bool, Strict()] = False
    description: Optional[Text] = None
    program: list[Step] = Field(default_factory=list)


class CheckerSettings(_Strict):
    """Bounds and reductions for ``pasidsim check`` of this file (and the pytest plugin's
    ``::check`` item): each one set here replaces the command's default; an option given on
    the command line wins.  Unset fields keep the defaults."""

    max_states: Optional[Annotated[int, Strict(), Field(ge=1, le=10**9)]] = Field(
        None, description="stop a search after this many distinct states (default 200,000)")
    max_depth: Optional[Annotated[int, Strict(), Field(ge=0, le=10**6)]] = Field(
        None, description="explore no deeper than this many steps (default: no bound)")
    max_seconds: Optional[Annotated[float, Field(gt=0, le=10**6)]] = Field(
        None, description="time bound per cell, in seconds (default 120)")
    symmetry: Optional[Annotated[bool, Strict()]] = Field(
        None, description="symmetry reduction (`--symmetry`)")
    por: Optional[Annotated[bool, Strict()]] = Field(
        None, description="partial-order reduction (`--por`)")


def known_design(v: str) -> str:
    """A pydantic validator's body: ``v`` when it names a design of
    :data:`pasidsim.designs.DESIGNS`, else ValueError listing them (scenario and workload
    files share it)."""
    from ..designs import DESIGNS
    if v not in DESIGNS:
        raise ValueError(f"unknown design {v!r}; known: {', '.join(DESIGNS)}")
    return v


class Scenario(_Strict):
    """A scenario file.  See the module docstring and ``pasidsim/schema/scenario.schema.json``.

    Judging fields: ``expect_final`` (the final state), ``expect_warn`` (kernel WARNs provoked
    on purpose: invariant W ignores them, on every design), ``scripted`` (expectations describe
    ``order`` only), ``sometimes`` (goals that must be reachable); ``inject_faults`` makes the
    model checker explore every kernel call and process event failing at each fault point it
    passes (a step's own ``fail:`` scripts one such failure)."""

    version: Literal[1] = 1
    name: Annotated[str, Strict(), Field(min_length=1, max_length=200)]
    demonstrates: Optional[Text] = Field(None, description="the kernel behaviour shown")
    description: Optional[Text] = None
    design: Annotated[str, Strict()] = Field("current", description="a name of pasidsim.designs")
    policy_overrides: PolicyOverrides = Field(default_factory=PolicyOverrides)
    machine: MachineSpec = "default"
    probe_drivers: Annotated[bool, Strict()] = Field(
        True, description="probe every device's configured driver before setup")
    setup: list[Step] = Field(default_factory=list)
    actors: list[Actor] = Field(default_factory=list)
    order: Optional[list[Ident]] = Field(None, description="explicit interleaving for `run`")
    hardware: Annotated[bool, Strict()] = Field(
        False, description="let the model checker interleave hardware events")
    scripted: Annotated[bool, Strict()] = Field(
        False, description="step expectations and checks describe the scripted `order` only: "
        "the model checker then checks invariants and leaks, not them")
    inject_faults: Annotated[bool, Strict()] = Field(
        False, description="let the model checker fail every kernel call and process event at "
        "each fault point it passes (pasidsim.fault), as `pasidsim check --inject-faults`")
    granularity: Literal["call", "lock"] = Field(
        "call", description="`call`: every kernel call is one step; `lock`: a call stops at "
        "its preemption points (locks taken, sleeping points, task work) and other actors "
        "and the hardware run there (pasidsim.locking; `pasidsim check --granularity`)")
    expect_warn: list[WarnName] = Field(
        default_factory=list, description="kernel WARNs (pasidsim.errors.Warn names) this "
        "scenario provokes on purpose: they are not findings (invariant W) on any design")
    sometimes: list[Literal[PREDICATE_NAMES]] = Field(default_factory=list)  # type: ignore[valid-type]
    expect_final: Optional[FinalCheck] = Field(
        None, description="the final state: checked at the end of `pasidsim run`, and by "
        "`pasidsim check` at every quiescent terminal state (not for `scripted` scenarios; "
        "`violations` is a count of one run, judged by `run` only)")
    checker: CheckerSettings = Field(
        default_factory=CheckerSettings, description="bounds and reductions for `pasidsim "
        "check` of this file and the pytest plugin (command-line options win)")
    _locator: Any = PrivateAttr(None)  # set by the loader: where each field is in the file
    _text: Any = PrivateAttr(None)  # set by the loader: the text it was loaded from

    @field_validator("design")
    @classmethod
    def _known_design(cls, v: str) -> str:
        return known_design(v)

    def walk(self):
        """Every step as ``(path, step, actor name or None, kernel)``; ``path`` is the YAML
        path of the step (``("actors", 0, "program", 2)``)."""
        for j, st in enumerate(self.setup):
            yield ("setup", j), st, None, True
        for i, a in enumerate(self.actors):
            yield from _walk(a.program, ("actors", i, "program"), a.name, a.kernel)

    @model_validator(mode="after")
    def _cross_references(self):
        if self.inject_faults and self.granularity == "lock":
            _fail("combination", "injected failures are explored at call granularity only; "
                  "drop `inject_faults` or use `granularity: call`", at=("inject_faults",))
        actors: dict[str, tuple] = {}
        bound: dict[str, tuple] = {}

        def new_name(name: str, at: tuple, what: str) -> None:
            if name in RESERVED:
                _fail("reserved", "{name} is reserved", name=repr(name), at=at)
            if name in actors or name in bound:
                _fail("duplicate", "{what} name {name} is already used", what=what,
                      name=repr(name), at=at)

        for i, a in enumerate(self.actors):
            new_name(a.name, ("actors", i, "name"), "actor")
            actors[a.name] = ("actors", i, "name")
            if not a.kernel:
                bound[a.name] = actors[a.name]
        for path, st, owner, kernel in self.walk():
            args, tag = st.args, type(st).TAG
            if args.bind is not None:
                at = path + (tag, "as")
                new_name(args.bind, at, "actor" if getattr(args, "program", None) is not None
                         else "binding")
                bound[args.bind] = at
                if getattr(args, "program", None) is not None:
                    actors[args.bind] = at
        setup_bound = {a.name for a in self.actors if not a.kernel}
        for path, st, owner, kernel in self.walk():
            args, tag = st.args, type(st).TAG
            for field, value in _values(args):
                if isinstance(value, Ref) and value.name not in bound:
                    _fail("reference", "unknown reference {name}: no step binds it with `as:`",
                          name="$" + value.name, at=path + (tag, field))
                if isinstance(value, Ref) and path[0] == "setup" and \
                        value.name not in setup_bound:
                    _fail("reference", "setup runs before every actor: {name} is not bound by "
                          "an earlier setup step", name="$" + value.name,
                          at=path + (tag, field))
                if kernel and value == "self" and field in ("tid", "mm"):
                    _fail("self", "a kernel actor has no task: `{field}: self` is meaningless",
                          field=field, at=path + (tag, field))
            if path[0] == "setup" and args.bind is not None:
                setup_bound.add(args.bind)
            op = _step.OP_BY_NAME[type(st).OP]
            if kernel and "tid" in op.params and args.tid is None:
                where = "setup" if owner is None else f"kernel actor {owner!r}"
                _fail("tid", "{op} in {where} needs an explicit tid", op=type(st).OP,
                      where=where, at=path + (tag,))
        for i, name in enumerate(self.order or ()):
            if name not in actors and not (name == "hw" and self.hardware):
                known = ", ".join(list(actors) + (["hw"] if self.hardware else []))
                _fail("order", "unknown actor {name} (actors: {known})", name=repr(name),
                      known=known, at=("order", i))
        return self


def _walk(program, base: tuple, owner: str, kernel: bool):
    for j, st in enumerate(program):
        yield base + (j,), st, owner, kernel
        child = getattr(st.args, "program", None)
        if child is not None:
            yield from _walk(child, base + (j, type(st).TAG, "program"), st.args.bind, False)


def _values(args: BaseModel):
    """``(field, value)`` for every argument value of a step, including expectations and the
    PASID lists of a ``check``."""
    for name in type(args).model_fields:
        if name in ("program", "bind", "note", "fail"):
            continue
        v = getattr(args, name)
        if isinstance(v, Expect) and v.kind == "ref":
            yield "expect", Ref(v.ref)
        elif isinstance(v, StateCheck):
            for key in type(v).model_fields:
                lst = getattr(v, key)
                if isinstance(lst, list):
                    for x in lst:
                        yield "check", x
        elif v is not None:
            yield name, v


def _fail(kind: str, template: str, at: tuple, **ctx) -> None:
    raise PydanticCustomError(kind, template, {**ctx, "at": at})


def scenario_json_schema() -> dict:
    """The JSON Schema of scenario files (draft 2020-12), generated from :class:`Scenario`."""
    schema = Scenario.model_json_schema(by_alias=True)
    return {**schema, "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://pasidsim.invalid/schema/scenario.schema.json",
            "title": "pasidsim scenario"}


def schema_path():
    """Where the shipped JSON Schema lives (``pasidsim/schema/scenario.schema.json``)."""
    from pathlib import Path
    return Path(__file__).resolve().parent.parent / "schema" / "scenario.schema.json"


def schema_text() -> str:
    """The JSON Schema as the shipped file's text (sorted keys, 1-space indent)."""
    import json
    return json.dumps(scenario_json_schema(), indent=1, sort_keys=True) + "\n"


def write_json_schema(path=None) -> str:
    """Regenerate the shipped schema file (or write it to ``path``); returns the path.
    (``pasidsim schema --write`` calls this.)"""
    from pathlib import Path
    target = Path(path) if path is not None else schema_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    from ..report.output import write_text_atomic
    write_text_atomic(target, schema_text())
    return str(target)


__all__ = ["known_design", "Scenario", "Actor", "Step", "StateCheck", "FinalCheck", "GroupCheck", "Ref",
           "Expect", "FailSpec", "FAULT_KINDS", "InlineMachine", "TopologyMachine", "DriverSpec", "DeviceSpec",
           "IommuSpec", "PolicyOverrides", "STEP_MODELS", "ALIASES", "PREDICATE_NAMES",
           "SCHEMA_VERSION", "scenario_json_schema", "schema_text", "write_json_schema",
           "errno_value", "CheckerSettings"]

