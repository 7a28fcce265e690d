"""Many runs of one workload: design comparisons (``--compare``) and parameter sweeps
(``--sweep PARAM=V1,V2,...``), serially or as Ray tasks (``--workers N``).

A sweep parameter is a field of the workload: a top-level one (``seed``, ``processes``,
``design``, ``arrival.mean``, ...; dotted paths go into mappings and lists, e.g.
``contexts.0.grace``), a field of *every* context (``grace``, ``fault_prob``, ``ih_latency``,
``ih_latency.mean``, ``job_duration.mean``, ``count``, ...), a switch of the design's
:class:`~pasidsim.policy.Policy` (``allocator``, ``amdgpu_cyclic``, ...: written into
``policy_overrides``), or ``pasid_bits``: the PASID width of every device the contexts use
(the machine must be written out in the workload; amdgpu asks for 16 bits whatever its
device's width, ``amdgpu_pasid_alloc(16)``, so ``gpu_vm`` contexts refuse it).  Values are
YAML scalars (``0.5``, ``LOWEST``, ``true``).  Each variant is validated again: a bad value is
a located error.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from typing import Any, Sequence

import yaml

from ..policy import Policy
from ..runtime import ray_runtime, shutdown_ray  # noqa: F401  (re-exported)
from ..scenario.loader import ScenarioError
from .engine import SimResult, Simulation
from .workload import LoadedWorkload, validate_workload

#: context fields a bare sweep parameter sets in every context
CONTEXT_FIELDS = ("grace", "fault_prob", "ih_latency", "job_interval", "job_duration", "count",
                  "pr_prob", "pr_latency")
POLICY_FIELDS = tuple(f.name for f in dataclasses.fields(Policy) if f.name != "name")


class SweepError(ValueError):
    """A ``--sweep``/``--compare`` argument that cannot be used (message for the user)."""


def parse_sweep(text: str) -> tuple[str, list]:
    """``"grace=0,1,2"`` → ``("grace", [0, 1, 2])``.  Raises SweepError."""
    name, sep, vals = text.partition("=")
    name = name.strip()
    if not sep or not name or not vals.strip():
        raise SweepError(f"--sweep {text!r}: write PARAM=V1,V2,... (e.g. grace=0,1,5)")
    out = []
    for v in vals.split(","):
        v = v.strip()
        if not v:
            raise SweepError(f"--sweep {text!r}: empty value")
        try:
            out.append(yaml.safe_load(v))
        except yaml.YAMLError:
            out.append(v)
    return name, out


def _set_path(node: Any, path: list[str], value: Any, full: str) -> None:
    for i, key in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise SweepError(f"--sweep {full}: no list element {key!r}")
            key = int(key)
        elif not isinstance(node, dict):
            raise SweepError(f"--sweep {full}: {'.'.join(path[:i])} is not a mapping")
        if last:
            node[key] = value
            return
        child = node.get(key) if isinstance(node, dict) else node[key]
        if child is None or isinstance(child, (int, float)) and not isinstance(child, bool):
            # a distribution given as a number (or left out): a mapping now
            child = {} if child is None else {"dist": "constant", "mean": child}
            node[key] = child
        node = child


def apply_param(data: dict, name: str, value: Any) -> dict:
    """A copy of workload ``data`` with sweep parameter ``name`` set to ``value`` (module
    docstring).  Raises SweepError for a parameter that does not apply."""
    data = copy.deepcopy(data)
    head, _, rest = name.partition(".")
    if head in CONTEXT_FIELDS:
        for c in data.get("contexts") or []:
            if isinstance(c, dict):
                _set_path(c, name.split("."), value, name)
        return data
    if name in POLICY_FIELDS:
        data.setdefault("policy_overrides", {})
        data["policy_overrides"] = dict(data["policy_overrides"] or {}, **{name: value})
        return data
    if name == "pasid_bits":
        machine = data.get("machine", "default")
        used: set[str] = set()
        for c in data.get("contexts") or []:
            if c.get("kind") == "gpu_vm":
                raise SweepError("--sweep pasid_bits: amdgpu asks for 16-bit PASIDs whatever "
                                 "its device's width (amdgpu_pasid_alloc(16), "
                                 "drivers/amdgpu.py AMDGPU_PASID_BITS); sweep it on sva_wq "
                                 "contexts")
            dev = c.get("dev")
            used.update([dev] if isinstance(dev, str) else list(dev or []))
        if not isinstance(machine, dict):
            raise SweepError("--sweep pasid_bits: the workload's machine must be written out "
                             f"(inline), not {machine!r}")
        for d in machine.get("devices") or []:
            if d.get("name") in used:
                d["pasid_bits"] = value
        return data
    _set_path(data, name.split("."), value, name)
    return data


class Job:
    """One run to make: ``params`` (sweep values, for the summary and plots), the workload
    variant, the design, and Simulation keyword arguments."""

    def __init__(self, params: dict, workload: LoadedWorkload, design: str | None,
                 kw: dict) -> None:
        self.params, self.workload, self.design, self.kw = params, workload, design, kw
        #: reduce the violation's replay scenario (:func:`~pasidsim.sim.replay.minimize_replay`)
        self.minimize = False

    @property
    def label(self) -> str:
        parts = [f"{k}={v}" for k, v in self.params.items() if k != "design"]
        d = self.params.get("design") or self.design or self.workload.model.design
        return ", ".join([d] + parts) if parts else d


def plan(lw: LoadedWorkload, designs: Sequence[str] = (),
         sweeps: Sequence[tuple[str, list]] = (), **kw) -> list[Job]:
    """The runs of a comparison (``designs``) × the grid of ``sweeps``; ``kw`` go to every
    :class:`Simulation`.  Raises SweepError or ScenarioError (a variant that does not
    validate: located at the changed field)."""
    jobs = []
    names = [n for n, _ in sweeps]
    for values in itertools.product(*[v for _, v in sweeps]) if sweeps else [()]:
        data = lw.data
        for n, v in zip(names, values):
            data = apply_param(data, n, v)
        variant = validate_workload(data, lw.locator, lw.base_dir) if values else lw
        for d in (list(designs) or [None]):
            params = dict(zip(names, values))
            if len(designs) > 1:
                params["design"] = d
            jobs.append(Job(params, variant, d, kw))
    return jobs


def run_job(job: Job, replay: bool = True) -> tuple[SimResult, str | None]:
    """Run one job; returns its result (without the step log) and, when it stopped at a
    violation and ``replay``, the replay scenario's YAML text."""
    from .replay import replay_yaml
    sim = Simulation(job.workload, design=job.design, **job.kw)
    res = sim.run()
    text = replay_yaml(sim, res, minimize=job.minimize) if replay and \
        res.violation is not None and res.log is not None else None
    res.log = None
    res.label = job.label
    return res, text


def run_jobs(jobs: Sequence[Job], workers: int = 0, address: str | None = None,
             on_done=None) -> list[tuple[SimResult, str | None]]:
    """Run ``jobs``: serially when ``workers <= 1`` and no ``address``, else as Ray tasks
    (at most ``workers`` at a time, one CPU each).  Results in job order.  ``on_done(i,
    result)`` is called as each finishes."""
    if (workers <= 1 and not address) or len(jobs) <= 1:
        out = []
        for i, j in enumerate(jobs):
            out.append(run_job(j))
            if on_done:
                on_done(i, out[-1][0])
        return out
    ray = ray_runtime(address, workers)
    task = ray.remote(num_cpus=1)(run_job)
    refs = [task.remote(j) for j in jobs]
    index = {r: i for i, r in enumerate(refs)}
    out: list = [None] * len(jobs)
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for r in done:
            i = index[r]
            out[i] = ray.get(r)
            if on_done:
                on_done(i, out[i][0])
    return out


__all__ = ["parse_sweep", "apply_param", "plan", "Job", "run_job", "run_jobs", "ray_runtime",
           "shutdown_ray",
           "SweepError", "CONTEXT_FIELDS", "POLICY_FIELDS", "ScenarioError"]
