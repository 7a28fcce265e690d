"""Workload files of the simulator: YAML, validated by pydantic, one located error.

A workload says *what happens at scale*; the kernel model says what each event does.  It is a
YAML mapping (:class:`Workload`): the design (a name of :mod:`pasidsim.designs`, plus
``policy_overrides`` as in scenarios), the machine (``default``, a machine file or one written
out, as in scenarios), a seed, how many processes arrive and how (``arrival``: the time between
two arrivals; ``lifetime``), and per process the device contexts it opens (``contexts``): GPU VM
contexts without an mm (``kind: gpu_vm``: an amdgpu render-node open, jobs on the VM, page
faults that reach the interrupt handler after ``ih_latency``, a ``grace`` period before the
VM's PASID may be freed) and SVA work-queue contexts (``kind: sva_wq``: an idxd dedicated
queue open binds the process's mm; descriptors complete after ``job_duration``).

Times are in milliseconds of simulated time.  A distribution (:class:`Dist`) is a number
(constant) or ``{dist: exponential|constant|uniform|lognormal, mean: M, min: A, max: B,
sigma: S}``.

Errors: :class:`~pasidsim.scenario.loader.ScenarioError` (``file:line: field: message``), the
same located errors as scenario files (the loader machinery of :mod:`pasidsim.scenario.loader`
is reused: line-tracking YAML, pydantic's first error).
"""

from __future__ import annotations

import copy
import math
import random
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator, \
    model_validator
from pydantic_core import PydanticCustomError

from ..machines import MachineSpec
from ..scenario.loader import Locator, ScenarioError, _friendly, parse_yaml
from ..scenario.schema import PolicyOverrides, WarnName, known_design

Num = Union[Annotated[int, Strict()], Annotated[float, Strict()]]
NonNeg = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Dist(_Strict):
    """A distribution of a non-negative quantity (a time in ms, or a count).

    ``constant``: always ``mean``; ``exponential``: mean ``mean``; ``uniform``: in
    ``[min, max]``; ``lognormal``: median ``mean``, shape ``sigma``.  Every draw is clipped to
    ``[min, max]`` (``max`` None: no upper bound)."""

    dist: Literal["constant", "exponential", "uniform", "lognormal"] = "constant"
    mean: NonNeg = 0.0
    min: NonNeg = 0.0
    max: Optional[NonNeg] = None
    sigma: Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)] = 0.5

    @model_validator(mode="after")
    def _range(self):
        if self.max is not None and self.max < self.min:
            raise PydanticCustomError("range", "max {max} is below min {min}",
                                      {"max": self.max, "min": self.min, "at": ("max",)})
        if self.dist == "uniform" and self.max is None:
            raise PydanticCustomError("range", "a uniform distribution needs max",
                                      {"at": ("dist",)})
        return self

    def sample(self, rng: random.Random) -> float:
        """One draw (ms or count), ``min <= x <= max``."""
        d = self.dist
        if d == "constant":
            x = self.mean
        elif d == "exponential":
            x = rng.expovariate(1.0 / self.mean) if self.mean > 0 else 0.0
        elif d == "uniform":
            x = rng.uniform(self.min, self.max)
        else:
            x = rng.lognormvariate(math.log(self.mean), self.sigma) if self.mean > 0 else 0.0
        if x < self.min:
            x = self.min
        if self.max is not None and x > self.max:
            x = self.max
        return x


def _dist(v: Any) -> Any:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return {"dist": "constant", "mean": v}
    return v


from pydantic import BeforeValidator  # noqa: E402

DistArg = Annotated[Dist, BeforeValidator(_dist)]


class Context(_Strict):
    """A device context each process opens (``count`` of them), with its jobs.

    ``gpu_vm``: ``open`` of an amdgpu render node: a GPU VM with a PASID of amdgpu's own
    allocator and no mm behind it (``amdgpu_driver_open_kms``).  Every ``job_interval`` the
    process submits a job (``amdgpu_cs_submit``) that runs ``job_duration`` (the VM fence
    signals when the last one is done: ``dma_fence_signal``, a hardware event); with
    probability ``fault_prob`` it page-faults (``amdgpu_vm_fault``: an IH-ring entry tagged
    with the VM's PASID), and the interrupt handler takes the entry ``ih_latency`` later
    (``amdgpu_ih_process``).  At exit the render node is closed (``amdgpu_driver_postclose_kms``:
    the PASID is freed when the VM's fences have signalled); ``grace`` > 0 adds a fence that
    signals ``grace`` ms after the close, so no PASID is reused sooner (the grace period of
    seed 002, built from the driver's own delayed free).

    ``sva_wq``: ``open`` of an idxd *dedicated* work queue (driver kind ``idxd-dwq``): binds the
    process's mm (``iommu_sva_bind_device``, a global PASID); the process maps a 64-page
    buffer and touches its first page; every ``job_interval`` it submits a descriptor
    (``wq_submit``) that completes ``job_duration`` later (``dma_complete``).  With
    probability ``pr_prob`` the descriptor writes a page not touched yet: its completion
    sends a page request (``iommu_report_device_fault``), which the IOPF worker handles
    ``pr_latency`` later (``iopf_handle``).  The process exits without closing: the
    exit path and the release do the rest, as the design says.
    """

    kind: Literal["gpu_vm", "sva_wq"]
    dev: Union[Annotated[str, Strict(), Field(min_length=1)],
               Annotated[list[Annotated[str, Strict(), Field(min_length=1)]],
                         Field(min_length=1, max_length=256)]] = Field(
        description="a device name, or a list: a pool the process tries in turn from a "
        "random start until an open succeeds (e.g. dedicated work queues, one client each)")
    count: Annotated[int, Strict(), Field(ge=1, le=64)] = 1
    job_interval: DistArg = Field(default_factory=lambda: Dist(dist="exponential", mean=5.0))
    job_duration: DistArg = Field(default_factory=lambda: Dist(dist="exponential", mean=1.0))
    fault_prob: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.0
    ih_latency: DistArg = Field(default_factory=lambda: Dist(mean=0.0))
    grace: NonNeg = 0.0
    pr_prob: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = Field(
        0.0, description="sva_wq: probability that a descriptor writes a page of the buffer "
        "the process has not touched: the device sends a page request (PRI)")
    pr_latency: DistArg = Field(default_factory=lambda: Dist(mean=0.0), description="sva_wq: "
                                "delay from a page request to the IOPF worker handling it")

    @model_validator(mode="after")
    def _kind_fields(self):
        wrong = ("fault_prob", "grace") if self.kind == "sva_wq" else ("pr_prob",)
        for f in wrong:
            if getattr(self, f):
                other = "gpu_vm" if self.kind == "sva_wq" else "sva_wq"
                raise PydanticCustomError("kind", "{f} applies to {other} contexts only",
                                          {"f": f, "other": other, "at": (f,)})
        return self


class Workload(_Strict):
    """A workload file (module docstring).

    Stops when ``processes`` processes have arrived and finished (or ``duration`` ms of
    simulated time, or ``max_events`` model steps, whichever comes first).  ``sample_every``:
    ms between two rows of the metric time series.  ``violations``: ``stop`` at the first
    invariant violation (saved as a replayable scenario) or ``count`` them and go on.
    ``full_check_every``: also evaluate every state invariant over the whole state every N
    steps (0: only at the end of the run; the cheap online checks run after every step)."""

    version: Literal[1] = 1
    name: Annotated[str, Strict(), Field(min_length=1, max_length=200)]
    description: Optional[Annotated[str, Strict()]] = None
    design: Annotated[str, Strict()] = "current"
    policy_overrides: PolicyOverrides = Field(default_factory=PolicyOverrides)
    machine: MachineSpec = "default"
    seed: Annotated[int, Strict(), Field(ge=0, le=2**63 - 1)] = 0
    processes: Annotated[int, Strict(), Field(ge=1, le=10_000_000)] = 1000
    duration: Optional[Annotated[float, Field(gt=0, allow_inf_nan=False)]] = None
    max_events: Optional[Annotated[int, Strict(), Field(ge=1)]] = None
    sample_every: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 10.0
    arrival: DistArg = Field(default_factory=lambda: Dist(dist="exponential", mean=1.0))
    lifetime: DistArg = Field(default_factory=lambda: Dist(dist="exponential", mean=20.0))
    contexts: list[Context] = Field(min_length=1)
    violations: Literal["stop", "count"] = "stop"
    full_check_every: Annotated[int, Strict(), Field(ge=0)] = 0
    expect_warn: list[WarnName] = Field(
        default_factory=list, description="kernel WARNs (pasidsim.errors.Warn names) the "
        "design fires by design: not violations (invariant W), as in scenarios")

    @field_validator("design")
    @classmethod
    def _known_design(cls, v: str) -> str:
        return known_design(v)


class LoadedWorkload:
    """A validated workload: ``model`` (:class:`Workload`), ``data`` (the parsed YAML, to
    derive variants and to copy the machine into a replay scenario), ``locator``,
    ``base_dir`` (directory that relative machine paths are read from)."""

    def __init__(self, model: Workload, data: dict, locator: Locator,
                 base_dir: Path | None) -> None:
        self.model, self.data, self.locator, self.base_dir = model, data, locator, base_dir

    @property
    def source(self) -> str:
        return self.locator.source

    def variant(self, **changes: Any) -> "LoadedWorkload":
        """A copy with top-level fields replaced (``seed=3``, ``design="current"``),
        validated again (ScenarioError located at the changed field)."""
        data = copy.deepcopy(self.data)
        data.update(changes)
        return validate_workload(data, self.locator, self.base_dir)

    def __reduce__(self):
        return _rebuild, (self.data, self.locator.source, self.locator.lines, self.base_dir)


def _rebuild(data, source, lines, base_dir):
    return validate_workload(data, Locator(source, lines), base_dir)


def validate_workload(data: Any, locator: Locator, base_dir: Path | None = None
                      ) -> LoadedWorkload:
    """Validate parsed workload data.  Raises ScenarioError at the first problem."""
    if not isinstance(data, dict):
        raise ScenarioError(locator.source, 1, "", "a workload is a YAML mapping")
    try:
        model = Workload.model_validate(data)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        loc = tuple(err["loc"])
        at = (err.get("ctx") or {}).get("at")
        if isinstance(at, tuple):
            loc = loc + at
        raise locator.error(_clean_loc(loc), _friendly(err)) from None
    return LoadedWorkload(model, data, locator, base_dir)


def _clean_loc(loc: tuple) -> tuple:
    # pydantic puts union member / validator names in the path ("function-before[...]")
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in (
        "constant", "float", "int", "name", "inline", "topology", "str", "list[str]"))))


def load_workload_text(text: str, source: str = "<string>", base_dir: Path | None = None
                       ) -> LoadedWorkload:
    """Parse and validate workload text.  Raises ScenarioError."""
    data, lines = parse_yaml(text, source)
    return validate_workload(data, Locator(source, lines), base_dir)


def builtin_workloads() -> dict[str, str]:
    """Name → text of the built-in workloads (``pasidsim/sim/workloads/*.yaml``)."""
    from importlib import resources
    out = {}
    root = resources.files("pasidsim.sim").joinpath("workloads")
    for f in sorted(root.iterdir(), key=lambda p: p.name):
        if f.name.endswith(".yaml"):
            out[f.name[:-5]] = f.read_text("utf-8")
    return out


def load_workload(spec: str | Path) -> LoadedWorkload:
    """A built-in workload by name, or a workload file.  Raises ScenarioError
    (``file:line: field: message``) for an unreadable file, bad YAML or an invalid workload."""
    spec = str(spec)
    builtins = builtin_workloads()
    if spec in builtins:
        return load_workload_text(builtins[spec], f"{spec}.yaml", None)
    p = Path(spec)
    try:
        raw = p.read_bytes()
    except (OSError, ValueError) as e:
        why = getattr(e, "strerror", None) or e
        hint = "" if p.suffix else f" (built-in workloads: {', '.join(builtins)})"
        raise ScenarioError(spec, 0, "", f"cannot read: {why}{hint}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ScenarioError(spec, raw[:e.start].count(b"\n") + 1, "", "not UTF-8 text") from None
    if "\x00" in text:
        raise ScenarioError(spec, text[:text.index("\x00")].count("\n") + 1, "",
                            "binary data, not a YAML workload")
    return load_workload_text(text, spec, p.resolve().parent)


def workload_json_schema() -> dict:
    """The JSON Schema of workload files (generated from :class:`Workload`;
    ``pasidsim simulate --schema``)."""
    schema = Workload.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "pasidsim workload"
    return schema


__all__ = ["Dist", "Context", "Workload", "LoadedWorkload", "load_workload", "workload_json_schema",
           "load_workload_text", "validate_workload", "builtin_workloads"]
