"""The import layers of ../shared/DESIGN.md, enforced.

1. import-linter's layers contract (``.importlinter`` at the repository root): every module
   imports only from layers below it, function-local imports included.
2. No import inside a function of the kernel model, except where a comment on the line or the
   line above says why (``# local import: ...``): a function-local import is how a cycle used
   to be dodged, and the layers contract alone would accept one that points down.
"""

from __future__ import annotations

import ast
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "src" / "pasidsim"

#: The kernel model: every module below the operation table (ops.py) plus ops and step.
KERNEL_MODEL = sorted(
    [PKG / f"{m}.py" for m in (
        "errors", "ida", "fault", "config", "policy", "designs", "state", "lifecycle", "work",
        "ops_tables", "pasid", "ioasid", "hooks", "file_table", "mem", "mm", "iopf", "domain",
        "group", "x86", "sva", "files", "iommufd", "ops", "step", "system", "invariants")]
    + list((PKG / "hw").glob("*.py")) + list((PKG / "drivers").glob("*.py")))


def test_layers_contract_is_kept():
    """``lint-imports`` with the repository's contract: every contract kept (exit 0)."""
    assert lint_imports(config_filename=str(ROOT / ".importlinter"), no_cache=True,
                        no_logo=True) == 0


def _function_local_imports(path: Path) -> list[str]:
    src = path.read_text(encoding="utf-8")
    lines = src.splitlines()
    out = []
    for fn in ast.walk(ast.parse(src)):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                here = lines[node.lineno - 1]
                above = lines[node.lineno - 2] if node.lineno > 1 else ""
                if "local import:" in here or "local import:" in above:
                    continue
                out.append(f"{path.relative_to(ROOT)}:{node.lineno}: {here.strip()}")
    return out


def test_kernel_model_has_no_function_local_imports():
    assert all(p.is_file() for p in KERNEL_MODEL), [p for p in KERNEL_MODEL if not p.is_file()]
    found = [x for p in KERNEL_MODEL for x in _function_local_imports(p)]
    assert not found, "function-local imports (move up, or say why with '# local import:'):\n" \
        + "\n".join(found)


def test_local_import_scan_sees_one(tmp_path):
    """The scan itself: a function-local import is reported, a justified one is not."""
    p = tmp_path / "m.py"
    p.write_text("def f():\n    from os import path\n\n"
                 "def g():\n    # local import: optional extension\n    import json\n")
    global ROOT
    old, ROOT = ROOT, tmp_path
    try:
        assert _function_local_imports(p) == ["m.py:2: from os import path"]
    finally:
        ROOT = old
