"""A pytest plugin: pasidsim scenario files in a project's tests are test items.

Installed with pasidsim (entry point ``pytest11``: ``pasidsim``; ``-p no:pasidsim`` turns it
off).  A YAML file is collected when its name matches one of the ``pasidsim_scenarios`` ini
patterns (default ``scenario_*.yaml scenario_*.yml *.pasidsim.yaml *.pasidsim.yml``; a pattern
with a ``/`` is matched against the path relative to the rootdir, one without against the file
name), so a project's other YAML files are left alone.  Each file gives:

- ``FILE::run`` — the scenario run once, as ``pasidsim run FILE`` does.  It fails when
  ``pasidsim run`` exits 1 (a failed ``expect``/``check``/``expect_final``, a step that cannot
  run) and also when an invariant is violated while the file does not say how many violations
  to expect (``expect_final: {violations: N}``): a test must not pass with a broken invariant
  that nobody asked for.  The failure text is what the command prints: the trace table and the
  failures with ``file:line``, each violation with the line of the step after which it appeared.
- ``FILE::check`` — the model checker on the file's design, as ``pasidsim check FILE`` does:
  it passes when every property holds in every reachable state and every ``sometimes`` goal is
  reached; otherwise the failure text is the shortest counterexample as the command prints it,
  headed by the ``file:line`` of its last step.  A search stopped by a bound (``pasidsim check``
  exit 3, inconclusive) fails too, saying so.  Off with ``pasidsim_check = false``; bounds
  ``pasidsim_check_max_states`` (default 200000) and ``pasidsim_check_max_seconds`` (default
  120), the command's defaults; a file's own ``checker:`` section (``max_states``,
  ``max_seconds``, ``max_depth``, ``symmetry``, ``por``) wins over them.  A file whose ``expect_final`` counts violations (``violations:
  N`` with N > 0: it documents a breakage, typically a historical design) passes ``check`` when
  the checker finds a violation, and fails when every reachable state satisfies every invariant.

A file that cannot be used (bad YAML, an unknown field or device, a machine that does not
load) is a collection error whose text is the located message ``file:line: field: what``, as
``pasidsim run`` prints it (exit status 2 there), with no traceback.
"""

from __future__ import annotations

import fnmatch
import io
import os
from pathlib import Path

import pytest

#: file-name patterns collected when ``pasidsim_scenarios`` is not set
DEFAULT_PATTERNS = ("scenario_*.yaml", "scenario_*.yml", "*.pasidsim.yaml", "*.pasidsim.yml")
#: the width failure texts are rendered at
WIDTH = 120


def pytest_addoption(parser: pytest.Parser) -> None:
    """The plugin's ini options (see the module docstring)."""
    parser.addini("pasidsim_scenarios", type="args", default=list(DEFAULT_PATTERNS),
                  help="glob patterns of pasidsim scenario files to collect as tests (a "
                       "pattern with '/' matches the path relative to the rootdir)")
    parser.addini("pasidsim_check", type="bool", default=True,
                  help="also model-check each collected scenario (FILE::check)")
    parser.addini("pasidsim_check_max_states", default="200000",
                  help="state bound of FILE::check (pasidsim check --max-states)")
    parser.addini("pasidsim_check_max_seconds", default="120",
                  help="time bound of FILE::check in seconds (pasidsim check --max-seconds)")


def pytest_configure(config: pytest.Config) -> None:
    """Reject bad check bounds before anything runs (pytest.UsageError)."""
    _ini_number(config, "pasidsim_check_max_states", int)
    _ini_number(config, "pasidsim_check_max_seconds", float)


def is_scenario_file(file_path: Path, config: pytest.Config) -> bool:
    """Does ``file_path`` match the ``pasidsim_scenarios`` patterns?  Only ``.yaml``/``.yml``
    files are considered."""
    if file_path.suffix not in (".yaml", ".yml"):
        return False
    patterns = config.getini("pasidsim_scenarios") or list(DEFAULT_PATTERNS)
    try:
        rel = file_path.resolve().relative_to(config.rootpath.resolve()).as_posix()
    except ValueError:
        rel = file_path.as_posix()
    for pat in patterns:
        target = rel if "/" in pat else file_path.name
        if fnmatch.fnmatch(target, pat):
            return True
    return False


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if is_scenario_file(file_path, parent.config):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFailure(Exception):
    """A scenario item's failure; ``args[0]`` is the text pytest shows."""


class ScenarioFile(pytest.File):
    """One scenario file: loaded, validated and compiled at collection time."""

    def _source(self) -> str:
        """The file name as messages give it: relative to the invocation directory when the
        file is under it."""
        rel = os.path.relpath(self.path, self.config.invocation_params.dir)
        return str(self.path) if rel.startswith("..") else rel

    def compiled(self):
        """A fresh :class:`~pasidsim.scenario.compile.CompiledScenario` of the file.
        Raises ScenarioError."""
        from .scenario import compile_scenario, load_text
        try:
            raw = self.path.read_bytes()
        except OSError as e:
            from .scenario import ScenarioError
            raise ScenarioError(self._source(), 0, "", f"cannot read: {e.strerror or e}") \
                from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            from .scenario import ScenarioError
            raise ScenarioError(self._source(), raw[:e.start].count(b"\n") + 1, "",
                                "not UTF-8 text") from None
        return compile_scenario(load_text(text, self._source(), self.path))

    def collect(self):
        from .scenario import ScenarioError
        try:
            c = self.compiled()
        except ScenarioError as e:
            raise self.CollectError(f"pasidsim scenario: {e}") from None
        yield ScenarioRunItem.from_parent(self, name="run", compiled=c)
        if self.config.getini("pasidsim_check"):
            yield ScenarioCheckItem.from_parent(self, name="check")


class _ScenarioItem(pytest.Item):
    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ScenarioFailure):
            return str(excinfo.value.args[0])
        return super().repr_failure(excinfo, style=style)


class ScenarioRunItem(_ScenarioItem):
    """``FILE::run``: the scenario run once (``pasidsim run FILE``)."""

    def __init__(self, *, compiled, **kwargs) -> None:
        super().__init__(**kwargs)
        self.compiled = compiled

    def runtest(self) -> None:
        from .scenario.runner import run_scenario
        result = run_scenario(self.compiled)
        text = run_failure_text(result)
        if text:
            raise ScenarioFailure(text)

    def reportinfo(self):
        return self.path, 0, f"pasidsim run {self.compiled.model.name}"


class ScenarioCheckItem(_ScenarioItem):
    """``FILE::check``: every interleaving explored (``pasidsim check FILE``)."""

    def runtest(self) -> None:
        from .check.runner import check_scenario
        c = self.parent.compiled()
        cfg = self.config
        own = c.model.checker  # the file's `checker:` bounds win over the ini defaults
        cell = check_scenario(
            c, scenario_name=self.path.stem, design_name=c.policy.name,
            max_states=own.max_states or _ini_number(cfg, "pasidsim_check_max_states", int),
            max_seconds=own.max_seconds or _ini_number(cfg, "pasidsim_check_max_seconds",
                                                       float),
            max_depth=own.max_depth, symmetry=bool(own.symmetry), por=bool(own.por))
        if c.final_violations:  # the file documents a breakage: the checker must find one
            if cell.verdict not in ("Sometimes", "Never"):
                raise ScenarioFailure(
                    f"{c.source}: expect_final counts {c.final_violations} violation(s), but "
                    + ("the search was not exhaustive: " + cell.message
                       if cell.verdict == "Bounded" else
                       f"every invariant holds in all {cell.states:,} reachable states"))
            return
        if not cell.ok:
            raise ScenarioFailure(check_failure_text(cell, self.parent.compiled()))

    def reportinfo(self):
        return self.path, 0, f"pasidsim check {self.path.name}"


def _ini_number(config: pytest.Config, name: str, kind: type):
    """The ini option ``name`` as a positive ``kind`` (int or float); pytest.UsageError
    naming the option otherwise."""
    raw = config.getini(name)
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        value = None
    if value is None or value <= 0:
        raise pytest.UsageError(f"ini option {name} = {raw!r}: expected a positive number")
    return value


def _console():
    from rich.console import Console
    return Console(file=io.StringIO(), width=WIDTH, color_system=None, force_terminal=False,
                   highlight=False, soft_wrap=True)


def run_failure_text(result) -> str:
    """The failure text of a run (:class:`~pasidsim.scenario.runner.RunResult`), or "" when it
    passes: failed (``not result.ok``: what ``pasidsim run`` exits 1 for), or an invariant
    violated although the file's ``expect_final`` does not count violations.  The text is
    the first failure (or violation) located ``file:line``, the trace table and summary
    ``pasidsim run`` prints, then one ``file:line: NAME: message`` line per violation (the line
    of the step after which it appeared)."""
    c = result.compiled
    unasked = bool(result.violations) and c.final_violations is None
    if result.ok and not unasked:
        return ""
    from .scenario.trace import summary_text, trace_table
    con = _console()
    con.print(trace_table(result))
    con.print(summary_text(result))
    located = []
    for v in result.violations:
        ev = result.events[v.event] if 0 <= v.event < len(result.events) else None
        line = result.step_line(ev) if ev is not None else 0
        where = f"{c.actor_name(ev.actor)} step {ev.pc + 1}" if ev is not None and ev.pc >= 0 \
            else "hw" if ev is not None else "end"
        located.append(f"  {c.source}:{line}: {where} (event {v.event + 1}): {v.name}: "
                       f"{v.message}")
    first = (f"{c.source}:{result.failures[0].line}: {result.failures[0].where}: "
             f"{result.failures[0].message}" if result.failures else located[0].strip())
    lines = [first, con.file.getvalue().rstrip()]
    if unasked:
        lines.append(f"FAIL: {len(result.violations)} invariant violation(s), and the file's "
                     "expect_final does not count violations (`violations: N`):")
    if located:
        lines.append("invariant violations where they first appeared:")
        lines += located
    return "\n".join(lines)


def check_failure_text(cell, compiled) -> str:
    """The failure text of a checked cell that is not as expected: ``file:line: scenario on
    design: NAME (kind) — message`` (the line of the counterexample's last step), then the
    counterexample as ``pasidsim check`` prints it, or why the search was inconclusive / which
    goals were never reached."""
    from .check.cli_check import print_trace
    src = compiled.source
    if cell.verdict == "Bounded":
        return (f"{src}: not exhaustive: {cell.message or 'a bound stopped the search'} "
                f"({cell.states:,} states; raise pasidsim_check_max_states / "
                "pasidsim_check_max_seconds)")
    out = []
    if cell.verdict in ("Sometimes", "Never"):
        out.append(f"{src}:{_last_line(compiled, cell.refs)}: {cell.invariant}: "
                   f"{cell.message}")
        con = _console()
        print_trace(con, cell)
        out.append(con.file.getvalue().rstrip())
        out.append(f"(shortest counterexample, {len(cell.refs)} steps, of {cell.states:,} "
                   "states explored; `pasidsim check FILE` saves it as a scenario that "
                   "`pasidsim run` replays)")
    if cell.unreached:
        out.append(f"{src}: sometimes-goal(s) never reached in {cell.states:,} states: "
                   + ", ".join(cell.unreached))
    return "\n".join(out)


def _last_line(compiled, refs) -> int:
    """The scenario line of the last program step of a counterexample (0: none)."""
    rs, line = compiled.initial(), 0
    for ref in refs:
        rs, ev = compiled.apply(rs, ref)
        if ev.pc >= 0 and ev.actor < len(compiled.actors):
            line = compiled.actors[ev.actor].program[ev.pc].line or line
    return line


__all__ = ["DEFAULT_PATTERNS", "ScenarioFile", "ScenarioRunItem", "ScenarioCheckItem",
           "ScenarioFailure", "is_scenario_file", "run_failure_text", "check_failure_text"]
