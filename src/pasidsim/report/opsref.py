"""The operations reference, generated from the operation table (:data:`pasidsim.ops.OPS`):
``python -m pasidsim.report.opsref > docs/operations.md`` (tests/docs/test_generated_docs.py
fails while the file differs from what this module writes).

For each operation: its name, kind, opcode and atomicity (from the table), the scenario step
that runs it, its parameters (names and types from the signature; what each names — which
object's id — from :data:`PARAMS`; the values a scenario may write, from the scenario
schema), its return value, the errnos it can return and the kernel source it models.

Where each fact comes from, so that nothing is invented:

* return value, errnos and kernel source are read from the implementing function's
  docstring: the sentences about what it returns, every ``-EXXX`` it names (an errno of
  :mod:`pasidsim.errors`), and its ``Models ...`` sentence.  An operation whose docstring
  names no kernel source says so ("not stated").
* :data:`NOT_RETURNED` removes the errnos a docstring names although the operation never
  returns them (it says another call fails with them, or that they collapse to another
  value), each with the reason read in the code; :data:`UNDOCUMENTED` adds the errnos the
  code returns but the docstring does not name, marked in the page.  Both are checked against
  the code by the tests (:func:`code_errnos`: an AST scan of the function and the functions
  it calls), so a new ``return s, -EXXX`` without a docstring mention fails a test.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
import textwrap
from typing import Annotated, Any, Callable

from pydantic import TypeAdapter

from ..errors import errname
from ..fault import ERRNO as FAULT_ERRNO, FaultPoint
from ..locking import KFunc
from ..ops import OPS, Op
from ..scenario.schema import ALIASES, FAULT_KINDS, STEP_MODELS

#: What each parameter name of the operation table means: ``(type, meaning)``.  Every
#: parameter of every operation must be listed (tests); ids name objects of the running
#: state (``SystemState`` tables), indices name entries of the static machine (``Config``).
PARAMS: dict[str, tuple[str, str]] = {
    "dev": ("int", "device index in the machine (`Config.devices`); a device name in scenarios"),
    "drv": ("int", "driver index in the machine (`Config.drivers`); a driver name in scenarios"),
    "group": ("int", "IOMMU group index (`Config.groups`); a group or member-device name in "
              "scenarios"),
    "tid": ("int", "task id (`SystemState.tasks`; a process's first task id is its pid); "
            "`self` in scenarios"),
    "mm": ("int", "mm id (`SystemState.mms`); `self` in scenarios: the actor's mm"),
    "fd": ("int", "file id of an open file (`SystemState.files`), as returned by `open`"),
    "vma": ("int", "VMA id, as returned by `mmap`"),
    "handle": ("int", "handle id (`SystemState.handles`): an SVA bond from "
               "`iommu_sva_bind_device`, or an attach handle; 0 = none where allowed"),
    "domain": ("int", "IOMMU domain id (`SystemState.domains`)"),
    "pasid": ("int", "a PASID value (0 = untagged / the RID slot where the operation says "
              "so; `IOMMU_PASID_INVALID` = 0xFFFFFFFF)"),
    "set": ("int", "IOASID set id from `ioasid_set_alloc`, 0 = the NULL set"),
    "ident": ("int", "an IOASID (legacy `ioasid.c` ID)"),
    "min": ("int", "lowest ID of an inclusive range"),
    "max": ("int", "highest ID of an inclusive range (see `iommu_sva_alloc_pasid` for the "
            "v5.18 quirk)"),
    "private": ("int", "private data token stored with the IOASID"),
    "data": ("int", "private data token"),
    "token": ("int", "owner token of an IOASID set (an mm id for MM sets, 0 = NULL)"),
    "quota": ("int", "IDs the IOASID set may hold (0 = all remaining capacity)"),
    "type": ("int", "a type code: IOASID set type (0 NULL, 1 MM) or a `DomainType` (-1 any), "
             "as the operation says"),
    "ops": ("int", "token of an `ioasid_allocator_ops` structure"),
    "fns": ("int", "token of an allocator's functions (equal tokens share IDs)"),
    "bits": ("int", "PASID width in bits"),
    "fence": ("int", "dma_fence id from `dma_fence_create` / `amdgpu_cs_submit`; 0 = no fence"),
    "oom": ("bool", "model an allocation failure on this call"),
    "pasid_compat": ("bool", "allocate with `IOMMU_HWPT_ALLOC_PASID` (may be attached at PASIDs)"),
    "owner": ("int", "DMA-ownership cookie (non-zero)"),
    "drvdata": ("int", "driver-private value stored on a new SVA handle"),
    "flags": ("int", "bind flags (`SVM_FLAG_PRIVATE_PASID`)"),
    "start": ("int", "start of a kernel virtual address range (bytes)"),
    "end": ("int", "end of a kernel virtual address range (bytes, exclusive)"),
    "pgoff": ("int", "page offset into the device file's mappable regions"),
    "addr": ("int", "a byte address (user virtual, or the DMA address of the device)"),
    "access": ("int", "`PROT_*` access bits of one access"),
    "prot": ("int", "`PROT_*` protection bits"),
    "npages": ("int", "number of 4 KiB pages"),
    "desc": ("int", "descriptor id of a queued work descriptor (`SystemState.inflight`)"),
    "abort": ("int", "1: discard the descriptors instead of completing them"),
    "grpid": ("int", "page-request group index"),
    "last": ("int", "1: the last page request of its group"),
    "iova": ("int", "I/O virtual address (bytes, 4 KiB aligned)"),
    "paddr": ("int", "physical address (bytes, 4 KiB aligned)"),
    "size": ("int", "length in bytes"),
    "ictx": ("int", "iommufd context id from `iommufd_ctx_create`"),
    "ioas": ("int", "iommufd object id the HW page table is allocated over (an IOAS, a "
             "paging hwpt or a vIOMMU: the ioctl's `pt_id`)"),
    "nest_parent": ("bool", "allocate with `IOMMU_HWPT_ALLOC_NEST_PARENT`"),
    "fault_id": ("int", "iommufd fault object id, 0 = none"),
    "idev": ("int", "iommufd device id from `iommufd_device_bind` / `vfio_device_bind_iommufd`"),
    "pt_id": ("int", "iommufd object id: a HW page table or an IOAS"),
    "obj_id": ("int", "any iommufd object id"),
    "hwpt": ("int", "iommufd HW page table id"),
    "fault": ("int", "iommufd fault object id from `iommufd_fault_alloc`"),
    "cookie": ("int", "the cookie a `read()` of the fault fd returned"),
    "code": ("int", "page response code (0 SUCCESS, 1 INVALID)"),
    "container": ("int", "VFIO container token (> 0)"),
    "features": ("int", "feature bits, as the operation says"),
    "max_pasid": ("int", "largest PASID, 0 = the device's limit"),
    "cmd": ("int", "ioctl command number"),
}

#: Errnos a docstring names that the operation does not return: op → {errno: reason}.
#: Each reason was checked in the code (tests check that the code cannot return them).
NOT_RETURNED: dict[str, dict[str, str]] = {
    "iommu_alloc_global_pasid": {
        "ENOSPC": "collapses to IOMMU_PASID_INVALID", "ENOMEM": "collapses to IOMMU_PASID_INVALID"},
    "arch_prctl_enable_tagged_addr": {"ENODEV": "the CPU is assumed to have LAM"},
    "iopf_queue_remove_device": {"EINVAL": "what later fault reports return"},
    "iommu_sva_device_shutdown": {"EINVAL": "what later binds return"},
    "pci_dev_reset_iommu_prepare": {"EBUSY": "what domain changes return during the reset"},
}

#: Errnos the code returns that the docstring does not name: op → {errno: where}.
UNDOCUMENTED: dict[str, dict[str, str]] = {
    "iommu_replace_device_pasid": {
        "EBUSY": "the group is fenced for a PCI reset (`recovery_cnt`)",
        "ENOMEM": "a member's `set_dev_pasid` fails (fault point SET_DEV_PASID)"},
    "mmap": {"ENODEV": "the file has no driver ops"},
}

_ERRNO_RE = re.compile(r"-(E[A-Z][A-Z0-9_]*)\b")
_KINDS = {"kernel": "kernel call", "process": "process event", "hw": "hardware event"}


def _known_errno(name: str) -> bool:
    from .. import errors
    return isinstance(getattr(errors, name, None), int)


def docstring(op: Op) -> str:
    """The docstring of ``op``'s implementation, dedented ('' when it has none)."""
    return inspect.cleandoc(op.fn.__doc__ or "")


def documented_errnos(op: Op) -> list[str]:
    """Errno names (``"EBUSY"``) the docstring of ``op`` names as ``-EBUSY``, in order of
    first mention, restricted to the errnos of :mod:`pasidsim.errors`."""
    out: list[str] = []
    for name in _ERRNO_RE.findall(docstring(op)):
        if _known_errno(name) and name not in out:
            out.append(name)
    return out


def errnos(op: Op) -> list[str]:
    """The errnos ``op`` can return: documented ones minus :data:`NOT_RETURNED`, plus
    :data:`UNDOCUMENTED`; sorted by name.  Raises nothing."""
    drop = NOT_RETURNED.get(op.name, {})
    out = {e for e in documented_errnos(op) if e not in drop}
    out |= set(UNDOCUMENTED.get(op.name, {}))
    return sorted(out)


def _paragraphs(doc: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", doc) if p.strip()]


def _join(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def summary(op: Op) -> str:
    """The first paragraph of the docstring, on one line ('' when there is none)."""
    paras = _paragraphs(docstring(op))
    if not paras:
        return ""
    first = paras[0]
    # a docstring written as one paragraph: stop before its Args/Returns/Models parts
    first = re.split(r"\n\s*(?:Args:|Returns\b|Models\b)|(?<=[.)])\s+(?=Returns\b|Models\b)",
                     first)[0]
    return _join(first)


_RET_START = re.compile(r"(?<![\w`])(?:Returns?|returns?)\b:?")
_STOP = re.compile(r"\bModels\b:?|\n\s*Args:|(?<=[.)])\s+(?=Runs under\b)")


def returns(op: Op) -> str:
    """What the docstring says ``op`` returns: the text from its first "Returns"/"returns"
    to its "Models" sentence or the end of that paragraph, on one line.  '' when the
    docstring never says (then the page shows the summary instead)."""
    doc = docstring(op)
    m = _RET_START.search(doc)
    if m is None:
        return ""
    rest = doc[m.end():]
    end = len(rest)
    blank = re.search(r"\n\s*\n", rest)
    if blank:
        end = blank.start()
    stop = _STOP.search(rest[:end])
    if stop:
        end = stop.start()
    text = _join(rest[:end]).lstrip(":").strip()
    return text[:1].upper() + text[1:] if text else ""


_MODELS_RE = re.compile(r"\bModels\b:?\s*(.*)", re.S)


def kernel_source(op: Op) -> str:
    """The docstring's ``Models ...`` text (the kernel files and functions ``op`` models) on
    one line, or '' when the docstring names none."""
    m = _MODELS_RE.search(docstring(op))
    if m is None:
        return ""
    text = m.group(1)
    blank = re.search(r"\n\s*\n", text)
    if blank:
        text = text[:blank.start()]
    return _join(text)


def kernel_files(op: Op) -> list[str]:
    """The kernel source files named in :func:`kernel_source` (``drivers/iommu/iommu.c``,
    ``iommu-sva.c`` …), in order; [] when none is named."""
    out: list[str] = []
    for f in re.findall(r"(?<![\w`])([\w./-]+\.[ch])\b", kernel_source(op)):
        if f not in out:
            out.append(f)
    return out


def step_keys(op: Op) -> list[str]:
    """The scenario step keys that run ``op``: its name and its aliases (``open``)."""
    return [op.name] + sorted(a for a, name in ALIASES.items() if name == op.name)


def scenario_values(op: Op, param: str) -> str:
    """What a scenario may write for ``param`` of ``op``, from the scenario JSON Schema:
    e.g. ``integer 0..0xffffffff, $name`` or ``name or index, $name``."""
    field = STEP_MODELS[op.name].model_fields["args"].annotation.model_fields[param]
    ann = field.annotation
    if field.metadata:
        ann = Annotated[(ann, *field.metadata)]
    return _schema_text(TypeAdapter(ann).json_schema())


def _schema_text(schema: dict) -> str:
    if "anyOf" in schema:
        parts = [_schema_text(s) for s in schema["anyOf"] if s.get("type") != "null"]
        return ", ".join(p for p in parts if p)
    if "enum" in schema:
        return ", ".join(f"`{v}`" for v in schema["enum"])
    t = schema.get("type")
    if t == "integer":
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if lo is not None and hi is not None:
            hi_s = f"{hi:#x}" if hi > 1 << 20 else str(hi)
            return f"integer {lo}..{hi_s}"
        return f"integer >= {lo}" if lo is not None else "integer"
    if t == "string":
        return "`$name`" if schema.get("pattern", "").startswith("^\\$") else "name"
    if t == "boolean":
        return "true/false"
    return ""


def params_rows(op: Op) -> list[tuple[str, str, str, str, str]]:
    """``(name, type, default, meaning, scenario values)`` per parameter of ``op``, in order.
    Raises KeyError for a parameter missing from :data:`PARAMS`."""
    rows = []
    for p, d in zip(op.params, op.defaults):
        typ, meaning = PARAMS[p]
        default = "required" if d is inspect.Parameter.empty else repr(d)
        if p == "tid" and d is inspect.Parameter.empty:
            default = "required (in scenarios: the actor's task)"
        rows.append((p, typ, default, meaning, scenario_values(op, p)))
    return rows


# -- verification against the code (used by the tests) -----------------------------------------

def _functions_of(fn: Any) -> list[Callable]:
    """The Python functions whose code makes up ``fn``: itself, or a KFunc's instructions."""
    if isinstance(fn, KFunc):
        out = []
        for ins in fn.code:
            for part in (ins.a, ins.b, ins.c):
                if isinstance(part, tuple) and len(part) == 2 and part[0] == "resolve":
                    part = part[1]
                if callable(part) and (inspect.isfunction(part) or isinstance(part, KFunc)):
                    out.append(part)
        return out
    return [fn] if inspect.isfunction(fn) else []


def _direct(fn: Callable, fault_points: bool) -> tuple[set[str], list[Any]]:
    """Errno names negated in ``fn``'s body (``-EBUSY``) or returned by a fault point it
    passes (``fault_point(FaultPoint.X)``), and the pasidsim callables it names."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError):
        return set(), []
    found: set[str] = set()
    callees: list[Any] = []
    g = getattr(fn, "__globals__", {})
    for n in ast.walk(tree):
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            name = (n.operand.id if isinstance(n.operand, ast.Name) else
                    n.operand.attr if isinstance(n.operand, ast.Attribute) else None)
            if name and _known_errno(name):
                found.add(name)
        elif fault_points and isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and \
                n.func.id == "fault_point" and n.args and isinstance(n.args[0], ast.Attribute) \
                and n.args[0].attr in FaultPoint.__members__:
            # an injected failure at a fault point returns that point's errno
            found.add(errname(FAULT_ERRNO[FaultPoint[n.args[0].attr]]))
        elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
            obj = g.get(n.id)
            if (inspect.isfunction(obj) or isinstance(obj, KFunc)) and \
                    getattr(obj, "__module__", "").startswith("pasidsim."):
                callees.append(obj)
            elif isinstance(obj, KFunc):
                callees.append(obj)
        elif isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name):
            mod = g.get(n.value.id)
            obj = getattr(mod, n.attr, None) if inspect.ismodule(mod) else None
            if inspect.isfunction(obj) or isinstance(obj, KFunc):
                callees.append(obj)
    return found, callees


def code_errnos(fn: Any, depth: int = 0, fault_points: bool = False) -> set[str]:
    """Errno names the code of ``fn`` (a function or a KFunc) negates (``-EBUSY``),
    following the pasidsim functions it names up to ``depth`` calls deep (0: its own body; a
    KFunc's instructions count as its body); with ``fault_points``, also the errno of each
    fault point passed (``fault_point(FaultPoint.X)``, which the caller may translate).
    Calls through ops tables (driver plug-ins) are not followed.  An over-approximation of
    what it can return at depth > 0 or with fault points."""
    out: set[str] = set()
    seen: set[int] = set()
    todo = [(f, 0) for f in _functions_of(fn)]
    while todo:
        f, d = todo.pop()
        if id(f) in seen:
            continue
        seen.add(id(f))
        found, callees = _direct(f, fault_points)
        out |= found
        if d < depth:
            for c in callees:
                todo += [(x, d + 1) for x in _functions_of(c)]
        elif isinstance(f, KFunc):
            todo += [(x, d) for x in _functions_of(f)]
    return out


# -- the page -----------------------------------------------------------------------------------

def _md(text: str) -> str:
    """Markdown-safe prose: docstrings use reST double backticks; ``__x`` outside code is
    escaped."""
    text = text.replace("``", "`")
    text = re.sub(r":(?:func|class|data|mod|meth|attr):`~?([^`]+)`", r"`\1`", text)
    parts = text.split("`")
    parts[0::2] = [p.replace("__", "\\_\\_").replace("*", "\\*") for p in parts[0::2]]
    return "`".join(parts)


def _cell(text: str) -> str:
    return _md(text).replace("|", "\\|").replace("\n", " ")


def _errno_cell(op: Op) -> str:
    undoc = UNDOCUMENTED.get(op.name, {})
    es = [f"`-{e}`" + ("†" if e in undoc else "") for e in errnos(op)]
    return ", ".join(es) if es else "none"


def markdown() -> str:
    """The whole ``docs/operations.md`` page (ends with a newline)."""
    out = [
        "# Operations reference",
        "",
        "<!-- generated by `python -m pasidsim.report.opsref > docs/operations.md`; "
        "do not edit by hand -->",
        "",
        "Every operation of the model (`pasidsim.ops.OPS`, in opcode order): the kernel calls, "
        "process events and hardware events that `step()`, the `System` facade, scenarios "
        "and the model checker run.  A scenario step is a one-key mapping `- NAME: {args}`; "
        "`tid` defaults to the actor's own task.  Return values are the kernel's: `0`, an id "
        "or count, or `-errno`.",
        "",
        "Sources: parameters from the function signatures (meanings: `PARAMS` in "
        "`pasidsim/report/opsref.py`; scenario values: the scenario JSON Schema); return "
        "value, errnos and kernel source from the implementing function's docstring.  "
        "Errnos marked † are returned by the code but not named in its docstring; errnos a "
        "docstring names only for another call are left out (`NOT_RETURNED` in the "
        "generator); both lists are checked against the code by the tests.  \"Atomic\": a "
        "negative return leaves the state unchanged (WARNs aside).",
        "",
        "## Summary",
        "",
        "| # | operation | kind | atomic | errnos | kernel source |",
        "|---|---|---|---|---|---|",
    ]
    for op in OPS:
        files = ", ".join(f"`{f}`" for f in kernel_files(op)) or (
            "named, file not stated" if kernel_source(op) else "not stated")
        out.append(f"| {op.code} | [`{op.name}`](#{op.name}) | {_KINDS[op.kind]} | "
                   f"{'yes' if op.atomic else 'no'} | {_errno_cell(op)} | {files} |")
    for kind in ("kernel", "process", "hw"):
        out += ["", f"## {_KINDS[kind].capitalize()}s", ""]
        for op in (o for o in OPS if o.kind == kind):
            out += _op_section(op)
    return "\n".join(out).rstrip("\n") + "\n"


def _op_section(op: Op) -> list[str]:
    keys = step_keys(op)
    out = [f"### {op.name}", ""]
    facts = [f"opcode {op.code}", _KINDS[op.kind],
             "atomic" if op.atomic else "**not atomic**: a failure keeps part of its work",
             "scenario step " + " or ".join(f"`{k}`" for k in keys)]
    if op.kind in FAULT_KINDS:
        facts.append("may take `fail:`")
    out += ["; ".join(facts) + ".", ""]
    s = summary(op)
    if s:
        out += [_md(s), ""]
    rows = params_rows(op)
    if rows:
        out += ["| parameter | type | default | names | scenario value |",
                "|---|---|---|---|---|"]
        out += [f"| `{p}` | {t} | {_cell(d)} | {_cell(m)} | {_cell(v)} |"
                for p, t, d, m, v in rows]
    else:
        out.append("No parameters.")
    ret = returns(op)
    said = _md(ret) if ret else "as the summary above says (no separate sentence)."
    out += ["", f"**Returns:** {said}", ""]
    out.append(f"**Errnos:** {_errno_cell(op)}")
    for e, where in UNDOCUMENTED.get(op.name, {}).items():
        out.append(f"(† `-{e}`: {_md(where)})")
    src = kernel_source(op)
    out += ["", f"**Kernel source:** {_md(src) if src else 'not stated in the docstring.'}",
            ""]
    return out


def main() -> None:
    """Print the page to stdout (UTF-8)."""
    sys.stdout.reconfigure(encoding="utf-8")
    sys.stdout.write(markdown())


if __name__ == "__main__":  # pragma: no cover
    main()

__all__ = ["PARAMS", "NOT_RETURNED", "UNDOCUMENTED", "code_errnos", "documented_errnos",
           "errnos", "kernel_files", "kernel_source", "markdown", "params_rows", "returns",
           "step_keys", "summary"]
