"""Reading scenario files: YAML with line numbers, validation, one located error.

The YAML is composed into nodes with :class:`yaml.SafeLoader` and rebuilt into plain data
while every mapping key and sequence item records its line (:class:`Locator`), so that a
pydantic error location such as ``("actors", 0, "program", 1, "open", "open", "dev")`` — or a
compile error's path — is reported as ``file:line: actors[0].program[1].open.dev: message``.
Duplicate keys, tabs, truncated documents, non-scalar keys and unsafe tags are errors too.
Every problem is a :class:`ScenarioError`; nothing here lets a traceback escape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .schema import Scenario


class ScenarioError(ValueError):
    """A scenario that cannot be used.

    Attributes:
        source: the file name as given (or ``<string>``).
        line: 1-based line (0 when unknown).
        field: dotted path of the offending field (``actors[0].program[1].open.dev``) or "".
        message: what is wrong.
    """

    def __init__(self, source: str, line: int, field: str, message: str) -> None:
        self.source, self.line, self.field, self.message = source, line, field, message
        where = f"{source}:{line}: " + (f"{field}: " if field else "")
        super().__init__(where + message)


class Locator:
    """Maps YAML paths (tuples of keys and indices) to source lines."""

    def __init__(self, source: str, lines: dict[tuple, int], path: Path | None = None) -> None:
        self.source = source
        self.lines = lines
        self.path = path

    def resolve(self, loc: tuple) -> tuple[tuple, int]:
        """The longest existing path along ``loc`` (elements that are not in the document,
        such as pydantic's union tags, are skipped) and its line."""
        cur: tuple = ()
        for elem in loc:
            if cur + (elem,) in self.lines:
                cur = cur + (elem,)
        return cur, self.lines.get(cur, 1)

    def error(self, loc: tuple, message: str) -> ScenarioError:
        """A :class:`ScenarioError` located at ``loc``."""
        path, line = self.resolve(loc)
        if loc and loc[-1] not in path and isinstance(loc[-1], str) and \
                (len(loc) < 2 or loc[-1] != loc[-2]):
            path = path + (loc[-1],)
        return ScenarioError(self.source, line, field_text(path), message)


def field_text(path: tuple) -> str:
    """``("actors", 0, "name")`` → ``actors[0].name``."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


# -- YAML with locations -------------------------------------------------------------------------

def parse_yaml(text: str, source: str) -> tuple[Any, dict[tuple, int]]:
    """Parse one YAML document; returns ``(data, lines)``.  Raises :class:`ScenarioError`."""
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as e:  # a control character: no mark, a position
        line = text[:e.position].count("\n") + 1
        code = e.character if isinstance(e.character, int) else ord(e.character)
        raise ScenarioError(source, line, "", f"character U+{code:04X} is not allowed in "
                                              "YAML") from None
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise ScenarioError(source, 1, "", "YAML nested too deeply") from None
        if node is None:
            raise ScenarioError(source, 1, "", "empty scenario file")
        lines: dict[tuple, int] = {(): node.start_mark.line + 1}
        data = _build(loader, node, (), lines, source, [0], set())
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context or "malformed YAML"
        if "\t" in problem or "'\\t'" in problem:
            problem += " (tabs cannot indent YAML; use spaces)"
        raise ScenarioError(source, (mark.line + 1) if mark else 1, "",
                            f"YAML syntax error: {problem}") from None
    except yaml.YAMLError as e:
        raise ScenarioError(source, 1, "", f"YAML error: {e}") from None
    except RecursionError:  # e.g. merge keys (<<) that include themselves
        raise ScenarioError(source, 1, "", "recursive or too deeply nested YAML") from None
    finally:
        loader.dispose()
    return data, lines


_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


#: At most this many YAML nodes are built: aliases can make a small file expand without bound
#: ("billion laughs"); a real scenario has a few thousand.
MAX_NODES = 200_000
#: Nesting depth of mappings and sequences (a real scenario: under 10).
MAX_DEPTH = 100
#: An integer literal longer than this is refused before it is converted (a 64-bit value in
#: binary with underscores is under 90 characters; Python refuses 4,300 digits anyway).
MAX_INT_CHARS = 100
#: A scenario file larger than this is refused unread (the largest built-in is about 10 KB).
MAX_FILE_BYTES = 4 << 20
#: Actors (processes and kernel threads) in one scenario: the runner and the checker evaluate
#: every invariant over the whole machine at every step, so a run costs about actors² (1,000
#: actors: about 6 s); large populations are the simulator's (`pasidsim simulate`).
MAX_ACTORS = 1000


def _build(loader: yaml.SafeLoader, node, path: tuple, lines: dict, source: str,
           count: list, active: set) -> Any:
    """Node → plain data, with every path's line.  ``count`` (one-element list) counts the nodes
    built; ``active`` holds the ids of the collections being built (an alias to one of them is a
    cycle)."""
    at = node.start_mark.line + 1
    count[0] += 1
    if count[0] > MAX_NODES:
        raise ScenarioError(source, at, _ftext(path), f"more than {MAX_NODES:,} YAML nodes "
                            "(aliases expanding without bound?)")
    if len(path) > MAX_DEPTH:
        raise ScenarioError(source, at, _ftext(path[:MAX_DEPTH]), "YAML nested too deeply")
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        if node.tag not in _PLAIN_TAGS:
            raise ScenarioError(source, at, _ftext(path), f"unsupported YAML tag {node.tag!r}")
        if id(node) in active:
            raise ScenarioError(source, at, _ftext(path), "recursive YAML alias")
        active.add(id(node))
        try:
            return _build_collection(loader, node, path, lines, source, count, active)
        finally:
            active.discard(id(node))
    if node.tag == "tag:yaml.org,2002:int" and len(node.value) > MAX_INT_CHARS:
        raise ScenarioError(source, at, _ftext(path), f"integer of {len(node.value):,} "
                            "characters: a kernel argument fits 64 bits")
    try:
        return loader.construct_object(node, deep=True)
    except ValueError as e:
        raise ScenarioError(source, at, _ftext(path), f"bad value: {e}") from None


def _build_collection(loader: yaml.SafeLoader, node, path: tuple, lines: dict, source: str,
                      count: list, active: set) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                raise ScenarioError(source, knode.start_mark.line + 1, _ftext(path),
                                    "mapping keys must be plain scalars")
            try:
                key = loader.construct_object(knode, deep=True)
            except ValueError as e:
                raise ScenarioError(source, knode.start_mark.line + 1, _ftext(path),
                                    f"bad key: {e}") from None
            if isinstance(key, float) or key is None:
                key = str(key) if key is not None else "null"
            if key in out:
                raise ScenarioError(source, knode.start_mark.line + 1, _ftext(path + (key,)),
                                    f"duplicate key {key!r}")
            lines[path + (key,)] = knode.start_mark.line + 1
            out[key] = _build(loader, vnode, path + (key,), lines, source, count, active)
        return out
    items = []
    for i, item in enumerate(node.value):
        lines[path + (i,)] = item.start_mark.line + 1
        items.append(_build(loader, item, path + (i,), lines, source, count, active))
    return items


def _ftext(path: tuple) -> str:
    return field_text(path)


# -- validation ------------------------------------------------------------------------------------

def _friendly(err: dict) -> str:
    kind, msg = err["type"], err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    loc = err["loc"]
    if kind == "extra_forbidden":
        parent = [p for p in loc[:-1] if isinstance(p, str)]
        if parent and parent[-1] == "policy_overrides":
            from .schema import PolicyOverrides
            return (f"unknown policy switch {loc[-1]!r}; known: "
                    f"{', '.join(PolicyOverrides.model_fields)}")
        if loc[-1] == "fail":
            return ("`fail:` injects a failure into a kernel call or process event; this "
                    "operation is a hardware event")
        return f"unknown field {loc[-1]!r}"
    if kind == "missing":
        return "required field is missing"
    if kind in ("dict_type", "model_type"):
        return f"expected a mapping (key: value), got {_kind(err.get('input'))}"
    if kind == "list_type":
        return f"expected a list, got {_kind(err.get('input'))}"
    if kind in ("string_type", "int_type", "bool_type"):
        return f"{msg}, got {_kind(err.get('input'))}"
    return msg


def _kind(v: Any) -> str:
    if v is None:
        return "nothing (null)"
    if isinstance(v, (list, dict)):
        return "a list" if isinstance(v, list) else "a mapping"
    return repr(v) if isinstance(v, (str, int, float, bool)) else type(v).__name__


class LoadedScenario:
    """A validated scenario with its locator.  ``model`` is the :class:`Scenario`."""

    def __init__(self, model: Scenario, locator: Locator) -> None:
        self.model = model
        self.locator = locator

    def __reduce__(self):
        """Pickle as the text it was loaded from (the step models do not pickle by name)."""
        path = self.locator.path  # absolute: a worker may run in another directory
        return load_text, (self.model._text, self.locator.source,  # type: ignore[attr-defined]
                           None if path is None else Path(path).resolve())

    @property
    def source(self) -> str:
        return self.locator.source


def validate(data: Any, locator: Locator) -> Scenario:
    """Validate parsed data; the first error becomes a located :class:`ScenarioError`."""
    actors = data.get("actors") if isinstance(data, dict) else None
    if isinstance(actors, list) and len(actors) > MAX_ACTORS:
        raise locator.error(("actors", MAX_ACTORS), f"{len(actors):,} actors: at most "
                            f"{MAX_ACTORS:,} (every step checks every invariant over the "
                            "whole machine; use `pasidsim simulate` for large populations)")
    try:
        model = Scenario.model_validate(data)
    except ValidationError as e:
        errs = e.errors(include_url=False)
        err = errs[0]
        loc = tuple(err["loc"])
        at = (err.get("ctx") or {}).get("at")
        if isinstance(at, tuple):
            loc = loc + at
        raise locator.error(loc, _friendly(err)) from None
    model._locator = locator  # type: ignore[attr-defined]
    return model


def load_text(text: str, source: str = "<string>", path: Path | None = None) -> LoadedScenario:
    """Parse and validate scenario text.  Raises :class:`ScenarioError`."""
    if len(text) > MAX_FILE_BYTES:
        raise ScenarioError(source, 0, "", f"{len(text):,} characters: a scenario is at most "
                            f"{MAX_FILE_BYTES:,} bytes")
    data, lines = parse_yaml(text, source)
    locator = Locator(source, lines, path)
    model = validate(data, locator)
    model._text = text  # type: ignore[attr-defined]  # to pickle it (LoadedScenario.__reduce__)
    return LoadedScenario(model, locator)


def load_scenario(path: str | Path) -> LoadedScenario:
    """Read, parse and validate a scenario file.

    Raises: :class:`ScenarioError` (``file:line: field: message``) for an unreadable file,
    bad YAML or an invalid scenario.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ScenarioError(str(path), 0, "", f"{size:,} bytes: a scenario is at most "
                                f"{MAX_FILE_BYTES:,} bytes")
        raw = p.read_bytes()
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path
        why = getattr(e, "strerror", None) or e
        raise ScenarioError(str(path), 0, "", f"cannot read: {why}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ScenarioError(str(path), line, "", "not UTF-8 text") from None
    if "\x00" in text:
        raise ScenarioError(str(path), text[:text.index("\x00")].count("\n") + 1, "",
                            "binary data, not a YAML scenario")
    return load_text(text, str(path), p)


__all__ = ["ScenarioError", "Locator", "LoadedScenario", "load_scenario", "load_text",
           "parse_yaml", "validate", "field_text"]
