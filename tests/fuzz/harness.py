"""Fuzzing harness shared by the Hypothesis fuzz tests (``tests/fuzz/test_fuzz_*.py``) and the
long run (``fuzz/run.py``).

Three targets, each with its documented outcomes; anything else is a *crash*:

* **scenario** -- :func:`pasidsim.scenario.load_text` / :func:`~pasidsim.scenario.load_scenario`
  then :func:`~pasidsim.scenario.compile_scenario` (and, for small scenarios,
  :func:`~pasidsim.scenario.run_scenario`): a result, or a one-line
  :class:`~pasidsim.scenario.ScenarioError` (``file:line: field: message``).  ``pasidsim run
  FILE`` exits 0, 1 or 2; on 2 it prints exactly one line to stderr, never a traceback.
* **topology** -- every importer (``parse_lspci``, ``parse_dmesg``, ``parse_group_listing(s)``,
  ``parse_iomem``, ``parse_text``, ``load_topology`` of files, ``read_sysfs`` of a tree) then
  ``to_config``, ``topology_summary``, ``hierarchy`` and (sometimes) ``render_topology``: a
  result or a :class:`~pasidsim.topology.TopologyError` (``read_sysfs`` never raises).
* **library** -- call sequences on :class:`pasidsim.system.System` (methods by keyword and by
  position, ``call``, ``apply``, the views) and :func:`pasidsim.step.step` with hand-built
  actions, over every operation of :data:`pasidsim.step.OPS`, several machines and designs: an
  int, a :class:`~pasidsim.errors.KernelError` (the facade's ``-errno``), a
  :class:`~pasidsim.errors.KernelDeadlock`, or a :class:`~pasidsim.errors.ModelUsageError`
  that leaves the state unchanged.  Sequences start at boot or from the states the built-in
  scenarios pass through.  Crashes in modules this work may not change are listed in
  :data:`KNOWN_BUGS` and counted apart (each has a strict xfail test).

Inputs are made by seeded mutators that take a :class:`random.Random` (the long run seeds one
per input; the Hypothesis tests pass ``st.randoms()``, so Hypothesis drives and shrinks the
choices).  Each ``*_input(rng)`` returns an input; each ``check_*(input)`` runs it and raises
on a crash (:class:`Crash` for a wrong documented outcome, or the escaping exception itself).
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import random
import re
import signal
import tempfile
from functools import lru_cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY_DATA = ROOT / "tests" / "data" / "topologies"


class Crash(AssertionError):
    """A documented outcome with the wrong form (a multi-line error, a usage error that
    changed the state, a traceback printed by the CLI, ...)."""


class Hang(Exception):
    """An input that ran longer than the time limit."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise :class:`Hang` in the main thread after ``seconds`` (no limit elsewhere, or 0)."""
    import threading
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise Hang(f"still running after {seconds} s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# -- generic text mutation ----------------------------------------------------------------------

CONTROL = "".join(map(chr, range(0, 32))) + "\x7f\x85\u2028\u2029\ufeff\ufffe\ud800"
UNICODE = ["é", "ß", "Ω", "中文", "\u202e", "\u00b2", "\u0663", "\U0001F600", "\u0301", "ﬁ",
           "\u00a0", "\u200b", "Ⅻ", "¹²³"]


def huge_digits(rng: random.Random) -> str:
    return "".join(rng.choice("0123456789") for _ in range(rng.choice([20, 90, 101, 4301, 6000])))


def interesting_number(rng: random.Random) -> str:
    return rng.choice([
        "0", "1", "-1", "2", "7", "255", "256", "4096", "65535", "1048575", "1048576",
        "2147483647", "2147483648", "4294967295", "4294967296", "9223372036854775807",
        "9223372036854775808", "18446744073709551615", "18446744073709551616",
        "-9223372036854775808", "-9223372036854775809", "0x10", "0xffffffffffffffff", "0o17",
        "0b101", "1_000", "1e3", "1e400", "-0", "+5", ".inf", "-.inf", ".nan", "0x", "08",
        "1.5", str(rng.randint(-10, 10)), str(rng.randrange(1 << 64)),
        str(-rng.randrange(1 << 70)), huge_digits(rng), "0x" + "f" * rng.choice([17, 200, 5000]),
    ])


def interesting_string(rng: random.Random) -> str:
    k = rng.randrange(9)
    if k == 0:
        return rng.choice(UNICODE)
    if k == 1:
        return "".join(rng.choice(CONTROL) for _ in range(rng.randint(1, 3)))
    if k == 2:
        return rng.choice(["[/x]", "[bold]", "[red]x[/red]", "%s", "{0}", "${x}", "\\", "'",
                           '"', "`", "\\x00", "\\u0000", "&a", "*a", "!!str", "#", "- ", ": ",
                           "? ", "|", ">", "{", "}", "[", "]", ",", "---", "...", "<<"])
    if k == 3:
        return "x" * rng.choice([1, 64, 65, 201, 20001])
    if k == 4:
        return "".join(rng.choice("abc_$.-:/ \t\n") for _ in range(rng.randint(0, 12)))
    if k == 5:
        return chr(rng.randrange(0x110000))
    if k == 6:
        return rng.choice(["", " ", "null", "~", "true", "no", "yes", "off", "y", "NaN"])
    if k == 7:
        return "a\x00b"
    return "".join(chr(rng.randrange(32, 0x3000)) for _ in range(rng.randint(1, 8)))


def mutate_lines(rng: random.Random, text: str, tokens, rounds: int | None = None) -> str:
    """Line- and token-level mutations of ``text``: delete, duplicate, swap, move or amplify
    lines, re-indent, replace a token or a value with one of ``tokens(rng)``, insert odd
    characters, truncate.  ``rounds`` mutations (default 1-4)."""
    lines = text.split("\n")
    for _ in range(rounds if rounds is not None else rng.choice([1, 1, 1, 2, 2, 3, 4])):
        if not lines:
            lines = [""]
        i = rng.randrange(len(lines))
        k = rng.randrange(14)
        if k == 0:
            del lines[i]
        elif k == 1:
            lines.insert(i, lines[i])
        elif k == 2:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif k == 3:
            lines.insert(rng.randrange(len(lines) + 1), lines.pop(i))
        elif k == 4:  # re-indent
            ln = lines[i].lstrip(" ")
            lines[i] = " " * max(0, len(lines[i]) - len(ln) + rng.choice([-4, -2, -1, 1, 2, 4])) \
                + (rng.choice(["", "\t"]) if rng.random() < 0.2 else "") + ln
        elif k in (5, 6, 7):  # replace a token (word, number, punctuation run)
            toks = list(re.finditer(r"[A-Za-z0-9_$.+-]+|[^\sA-Za-z0-9_$.+-]+", lines[i]))
            if toks:
                m = rng.choice(toks)
                lines[i] = lines[i][:m.start()] + tokens(rng) + lines[i][m.end():]
        elif k == 8:  # replace what follows the last ": "
            p = lines[i].rfind(": ")
            if p >= 0:
                lines[i] = lines[i][:p + 2] + tokens(rng)
        elif k == 9:  # insert a character or string
            p = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:p] + interesting_string(rng) + lines[i][p:]
        elif k == 10:  # delete a span of characters
            if lines[i]:
                p = rng.randrange(len(lines[i]))
                lines[i] = lines[i][:p] + lines[i][p + rng.randint(1, 8):]
        elif k == 11:  # amplify a block of lines
            j = min(len(lines), i + rng.randint(1, 12))
            block = lines[i:j]
            lines[j:j] = block * rng.choice([2, 3, 10, 100])
        elif k == 12:  # a line from elsewhere in the text
            lines.insert(i, rng.choice(lines))
        else:  # truncate
            lines = lines[:i + 1]
            lines[-1] = lines[-1][:rng.randrange(len(lines[-1]) + 1)]
    return "\n".join(lines)


def mutate_bytes(rng: random.Random, raw: bytes) -> bytes:
    """Byte-level mutations: bit flips, random byte runs spliced in, deletions, duplications,
    invalid UTF-8, a BOM, NUL bytes."""
    b = bytearray(raw)
    for _ in range(rng.choice([1, 1, 2, 3, 6])):
        p = rng.randrange(len(b) + 1)
        k = rng.randrange(7)
        if k == 0 and b:
            q = min(p, len(b) - 1)
            b[q] ^= 1 << rng.randrange(8)
        elif k == 1:
            b[p:p] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif k == 2:
            del b[p:p + rng.randint(1, 64)]
        elif k == 3:
            q = rng.randrange(len(b) + 1)
            b[p:p] = b[min(p, q):max(p, q)][:512]
        elif k == 4:
            b[p:p] = rng.choice([b"\x00", b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\xef\xbb\xbf",
                                 b"\r", b"\r\n", b"\t", b"\x1b[31m", b"\xe2\x80\xa8"])
        elif k == 5:
            b[p:p + 1] = bytes([rng.choice([0, 9, 10, 13, 32, 0x7f, 0x80, 0xff])])
        else:
            b = b[:p]
    return bytes(b)


# == scenarios ====================================================================================

@lru_cache(maxsize=1)
def scenario_corpus() -> tuple[tuple[str, str, Path], ...]:
    """``(name, text, path)`` of every built-in scenario plus seeds that use a machine file and
    topology dumps (paths are absolute)."""
    from pasidsim.scenario import builtin_scenarios
    out = [(n, p.read_text(encoding="utf-8"), p) for n, p in builtin_scenarios().items()]
    here = ROOT / "tests" / "fuzz"
    dumps = sorted(TOPOLOGY_DATA.glob("*.txt"))
    machine = str(Path(__import__("pasidsim").__file__).parent / "data" / "default_machine.yaml")
    extra = {
        "seed-machine-file": f"""name: seed-machine-file
machine: {machine}
actors:
  - name: A
    program:
      - open: {{dev: dsa0, as: q, expect: ok}}
      - exit: {{}}
expect_final: {{pasids_allocated: 0}}
""",
        "seed-topology": f"""name: seed-topology
machine:
  topology: [{dumps[-1]}, {dumps[0]}]
  select: {{dsa: "0000:6a:01.0"}}
  drivers: [{{name: idxd, kind: idxd}}]
actors:
  - name: A
    program:
      - process_create: {{}}
      - exit: {{}}
""" if dumps else None,
    }
    for name, text in extra.items():
        if text is not None:
            out.append((name, text, here / f"{name}.yaml"))
    return tuple(out)


def _scenario_words() -> list[str]:
    from pasidsim.designs import DESIGNS
    from pasidsim.step import OPS
    return [op.name for op in OPS] + list(DESIGNS) + [
        "open", "exit", "clone", "exec", "as", "expect", "check", "fail", "note", "program",
        "actors", "name", "setup", "order", "machine", "design", "policy_overrides", "hw",
        "self", "kernel", "$q", "$h", "$missing", "$", "$1", "dsa0", "iax0", "gpu0", "nic0",
        "ok", "error", "any", "-EBUSY", "-EFOO", "IOMMU_PASID_INVALID", "HANDLE_ALLOC",
        "HANDLE_ALLOC#2", "HANDLE_ALLOC#0", "expect_final", "sometimes", "granularity", "lock",
        "call", "hardware", "inject_faults", "expect_warn", "topology", "select", "iommus",
        "devices", "drivers", "deferred_groups", "pasid_bits", "max_pasids", "ops", "group",
        "default", "nonexistent.yaml", "machine.yml", "/", ".", "a\x00b", "probe_drivers",
    ]


def scenario_token(rng: random.Random) -> str:
    k = rng.randrange(10)
    if k < 3:
        return interesting_number(rng)
    if k < 5:
        return rng.choice(_scenario_words())
    if k == 5:
        return rng.choice(["[]", "{}", "[1, [2]]", "{a: 1}", "null", "~", "true", "false",
                           "&a x", "*a", "*b", "<<: *a", "!!binary aGk=", "!!set {a}",
                           "!!timestamp 2001-12-14", "!!float 1", "!!python/object:os.system",
                           "!custom x", "? complex", "|", ">-", '"\\x00"', '"\\ud800"',
                           "'it''s'", '"\\e"', "!!int 0x", "!!null ''", "*", "&"])
    return interesting_string(rng)


def _random_value(rng: random.Random, depth: int = 0):
    k = rng.randrange(12 if depth < 3 else 8)
    if k == 0:
        return rng.randint(-3, 10)
    if k == 1:
        return rng.choice([-1, 1 << 31, 1 << 32, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, 1 << 64,
                           -(1 << 63) - 1, 10 ** rng.randint(20, 3000)])
    if k == 2:
        return interesting_string(rng)
    if k == 3:
        return rng.choice(_scenario_words())
    if k == 4:
        return rng.choice([None, True, False, 1.5, float("inf"), float("nan"), -0.0])
    if k == 5:
        return "$" + rng.choice(["q", "h", "x", "A", "B", "1", ""])
    if k == 6:
        return rng.choice(["-EBUSY", "-EINVAL", "EBUSY", "-E2BIG", "-EPROBE_DEFER", "-ENOTSUP"])
    if k == 7:
        return bytes(rng.randrange(256) for _ in range(3))
    if k in (8, 9):
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {str(_random_value(rng, depth + 1)) if rng.random() < 0.3 else
            rng.choice(_scenario_words()): _random_value(rng, depth + 1)
            for _ in range(rng.randint(0, 3))}


def _paths(node, path=()):
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, path + (i,))


def _parent(tree, path):
    node = tree
    for p in path[:-1]:
        node = node[p]
    return node


def mutate_tree(rng: random.Random, data):
    """One structural mutation of parsed YAML data, in place; returns the (maybe new) root."""
    nodes = list(_paths(data))
    path, node = rng.choice(nodes)
    k = rng.randrange(9)
    if not path or k == 0:  # replace the value (the root too)
        new = _random_value(rng)
        if not path:
            return new
        _parent(data, path)[path[-1]] = new
    elif k == 1:  # delete
        del _parent(data, path)[path[-1]]
    elif k == 2:  # duplicate into a list / rename a key
        par = _parent(data, path)
        if isinstance(par, list):
            par.insert(path[-1], node)
        else:
            par[rng.choice(_scenario_words() + [str(path[-1]) + "_", "x"])] = node
    elif k == 3 and isinstance(_parent(data, path), list):  # swap list items
        par = _parent(data, path)
        j = rng.randrange(len(par))
        par[path[-1]], par[j] = par[j], par[path[-1]]
    elif k == 4:  # wrap in a list / a mapping
        _parent(data, path)[path[-1]] = [node] if rng.random() < 0.5 else {"x": node}
    elif k == 5 and isinstance(node, list) and node:  # amplify a list
        node.extend(node * rng.choice([1, 10, 200, 1100]))
    elif k == 6 and isinstance(node, dict):  # an extra or a missing field
        if node and rng.random() < 0.5:
            del node[rng.choice(list(node))]
        else:
            node[rng.choice(_scenario_words())] = _random_value(rng)
    elif k == 7:  # another node of the same document (an alias when dumped; a copy when
        p2, other = rng.choice(nodes)           # it contains the place: no cycles)
        _parent(data, path)[path[-1]] = copy.deepcopy(other) if path[:len(p2)] == p2 else other
    else:
        _parent(data, path)[path[-1]] = _random_value(rng)
    return data


@lru_cache(maxsize=None)
def _parsed(text: str):
    return yaml.safe_load(text)


def _dump(data) -> str:
    try:
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    except (yaml.YAMLError, ValueError, RecursionError):
        # a self-including structure, an int over the conversion limit, bytes ...
        return yaml.dump(data, sort_keys=False, allow_unicode=False, width=100)


def scenario_input(rng: random.Random) -> tuple[str, str | bytes, Path]:
    """A mutated scenario: ``(kind, text or bytes, path of the seed)``; kind ``lines``,
    ``tree`` (YAML data), ``bytes`` (loaded from a file), ``splice`` (random bytes spliced
    into the text, decoded) or ``cross`` (lines of two scenarios)."""
    name, text, path = rng.choice(scenario_corpus())
    kind = rng.choices(["lines", "tree", "bytes", "splice", "cross"], [40, 30, 12, 10, 8])[0]
    if kind == "lines":
        return kind, mutate_lines(rng, text, scenario_token), path
    if kind == "tree":
        data = copy.deepcopy(_parsed(text))
        for _ in range(rng.choice([1, 1, 2, 3])):
            data = mutate_tree(rng, data)
        try:
            return kind, _dump(data), path
        except Exception:  # noqa: BLE001  (a structure yaml cannot write: use the seed)
            return kind, text, path
    if kind == "bytes":
        return kind, mutate_bytes(rng, text.encode()), path
    if kind == "splice":
        raw = mutate_bytes(rng, text.encode())
        return kind, raw.decode("utf-8", errors=rng.choice(["replace", "ignore",
                                                            "surrogateescape"])), path
    _, other, _ = rng.choice(scenario_corpus())
    a, b = text.split("\n"), other.split("\n")
    i, j = rng.randrange(len(a) + 1), rng.randrange(len(b) + 1)
    return kind, "\n".join(a[:i] + b[j:j + rng.randint(1, 30)] + a[i:]), path


#: Run a scenario that loads and compiles only when its programs have at most this many steps.
MAX_RUN_STEPS = 300


def check_scenario_error(e) -> None:
    """A :class:`ScenarioError` is one located line: ``source:line: ...``."""
    msg = str(e)
    if "\n" in msg or "\r" in msg:
        raise Crash(f"multi-line ScenarioError: {msg[:300]!r}")
    if not re.match(r"^.*:\d+: ", msg, re.S):
        raise Crash(f"ScenarioError without file:line: {msg[:300]!r}")


def check_scenario(inp: str | bytes, seed_path: Path | None = None, run: bool = True,
                   tmpdir: str | None = None) -> str:
    """Load, compile and (small ones) run a scenario; returns the outcome (``rejected``,
    ``compiled``, ``ran``).  Text is loaded with ``load_text`` (relative machine paths from the
    seed's directory), bytes from a file with ``load_scenario``."""
    from pasidsim.scenario import ScenarioError, compile_scenario, load_scenario, load_text
    from pasidsim.scenario.runner import run_scenario, total_steps
    try:
        if isinstance(inp, bytes):
            with tempfile.TemporaryDirectory(dir=tmpdir) as d:
                p = Path(d) / "fuzz.yaml"
                p.write_bytes(inp)
                loaded = load_scenario(p)
        else:
            loaded = load_text(inp, "fuzz.yaml", seed_path)
        c = compile_scenario(loaded)
    except ScenarioError as e:
        check_scenario_error(e)
        return "rejected"
    if run and total_steps(c) <= MAX_RUN_STEPS:
        run_scenario(c, max_steps=5 * MAX_RUN_STEPS)
        return "ran"
    return "compiled"


def check_cli(inp: str | bytes, args: tuple[str, ...] = ("run", "--no-state")) -> int:
    """``pasidsim run FILE`` (or ``pasidsim topology FILE`` with ``args=("topology",)``) through
    click's CliRunner: exit 0/1/2 (0/2 for topology), one stderr line on 2, no exception."""
    from click.testing import CliRunner

    from pasidsim.cli import main
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / ("fuzz.yaml" if args[0] == "run" else "dump.txt")
        p.write_bytes(inp if isinstance(inp, bytes) else inp.encode("utf-8", "surrogatepass"))
        res = CliRunner().invoke(main, [*args, str(p)], catch_exceptions=True)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise Crash(f"pasidsim {args[0]} raised {type(res.exception).__name__}: "
                    f"{res.exception}") from res.exception
    allowed = (0, 1, 2) if args[0] == "run" else (0, 2)
    if res.exit_code not in allowed:
        raise Crash(f"pasidsim {args[0]} exited {res.exit_code}\n{res.stderr[-2000:]}")
    if "Traceback" in res.stderr or "Traceback" in res.stdout:
        raise Crash(f"pasidsim {args[0]} printed a traceback:\n{res.stderr[-2000:]}")
    if res.exit_code == 2:
        lines = res.stderr.splitlines()
        if len(lines) != 1 or not lines[0].startswith("error: "):
            raise Crash(f"exit 2 with {len(lines)} stderr line(s): {res.stderr[:500]!r}")
    return res.exit_code


# == topology dumps ==============================================================================

@lru_cache(maxsize=1)
def topology_corpus() -> tuple[tuple[str, str], ...]:
    """``(name, text)`` of every dump in tests/data/topologies plus small synthetic seeds of
    each format (so every importer sees its own lines often)."""
    out = [(p.name, p.read_text(encoding="utf-8", errors="replace"))
           for p in sorted(TOPOLOGY_DATA.glob("*.txt"))]
    out += [
        ("seed-iomem", "fed90000-fed90fff : dmar0\nfed91000-fed91fff : dmar1\n"
                       "33ffe0000000-33ffe001ffff : arm-smmu-v3.0.auto\n"
                       "  33ffe0000000-33ffe001ffff : arm-smmu-v3.0.auto\n"),
        ("seed-dmesg-units", "".join(f"[    0.{i}] {line}\n" for i, line in enumerate([
            "DMAR: dmar0: reg_base_addr fed90000 ver 1:0 cap 1c0000c40660462 ecap 19e2ff0505e",
            "DMAR: DRHD base: 0x000000fed91000 flags: 0x1",
            "AMD-Vi: Extended features (0x206d73ef22254ade, 0x0): PPR X2APIC NX GT IA GA PC",
            "AMD-Vi: Found IOMMU at 0000:00:00.2 cap 0x40",
            "arm-smmu-v3 arm-smmu-v3.0.auto: ias 48-bit, oas 48-bit (features 0x001e1fbf)",
            "arm-smmu-v3 arm-smmu-v3.0.auto: option mask 0x0",
            "pci 0000:00:02.0: Adding to iommu group 1",
            "pci 0000:00:02.0: Removing from iommu group 1",
            "pci 0000:00:1f.0: [8086:a30e] type 00 class 0x060100",
            "idma64 idma64.0: Adding to iommu group 17"]))),
        ("seed-listing", "IOMMU Group 0:\n\t00:00.0 Host bridge [0600]: Intel Device [8086:1980]\n"
                         "IOMMU Group 1:\n\t00:02.0 VGA compatible controller [0300]: Intel "
                         "[8086:3e9b]\n\t00:02.1 Audio device [0403]: Intel [8086:a348]\n"
                         "IOMMU group 2 00:14.0 USB controller [0c03]: Intel [8086:a36d]\n"),
        ("seed-by-dmar", "IOMMU: dmar0\n  IOMMU Group: 50\n    Group Device: 0000:97:00.4 - "
                         "Generic system peripheral [0807]: Intel Corporation Device [8086:0b23]\n"
                         "IOMMU: dmar1\n  IOMMU Group: 49\n    Group Device: 0000:6a:01.0 - x\n"),
    ]
    return tuple(out)


TOPOLOGY_WORDS = [
    "IOMMU group:", "IOMMU Group", "IOMMU group", "Kernel driver in use:", "Kernel modules:",
    "Capabilities:", "PASIDCap:", "PASIDCtl:", "Exec+", "Priv-", "Enable+", "Enable-",
    "Max PASID Width:", "ATSCap:", "ATSCtl:", "PRICap:", "PRICtl:", "Adding to iommu group",
    "Removing from iommu group", "DMAR:", "dmar0", "dmar99999999999", "reg_base_addr", "ecap",
    "cap", "AMD-Vi:", "Found IOMMU", "Extended features", "arm-smmu-v3", "ias", "oas",
    "features", "Group Device:", "IOMMU:", "0000:00:00.0", "00:02.0", "ffff:ff:1f.7",
    "0000:00:20.0", "00:00.8", "000a:10:00.0", "[8086:0b25]", "[0600]", "Host bridge",
    "IOMMU", "vfio-pci", "idxd", "amdgpu", "(rev 01)", "Flags:", "Region", "]", "[",
    "\u00b2", "\u0663", "-", "+", ":", ".", "0x", "fed90000-fed90fff : dmar0",
    "arm-smmu-v3.0.auto", "DRHD base:", "flags: 0x1", "INCLUDE_PCI_ALL",
]


def topology_token(rng: random.Random) -> str:
    k = rng.randrange(10)
    if k < 3:
        return interesting_number(rng)
    if k < 6:
        return rng.choice(TOPOLOGY_WORDS)
    if k == 6:
        return "%x" % rng.randrange(1 << rng.choice([4, 16, 32, 64, 80]))
    if k == 7:
        return "%04x:%02x:%02x.%x" % (rng.randrange(0x10000), rng.randrange(0x100),
                                      rng.randrange(0x40), rng.randrange(0x10))
    return interesting_string(rng)


def topology_text(rng: random.Random) -> tuple[str, str]:
    """``(source name, mutated text)``: a whole dump or a window of one, mutated; sometimes
    two dumps pasted together."""
    name, text = rng.choice(topology_corpus())
    lines = text.split("\n")
    if len(lines) > 60 and rng.random() < 0.75:  # a window: small inputs run fast
        i = rng.randrange(len(lines))
        lines = lines[i:i + rng.choice([5, 20, 60, 200])]
    if rng.random() < 0.1:
        _, other = rng.choice(topology_corpus())
        o = other.split("\n")
        j = rng.randrange(len(o))
        lines += o[j:j + rng.choice([10, 50])]
    text = "\n".join(lines)
    k = rng.random()
    if k < 0.7:
        text = mutate_lines(rng, text, topology_token)
    elif k < 0.9:
        text = mutate_bytes(rng, text.encode()).decode("utf-8", errors="replace")
    else:
        text = mutate_lines(rng, text, topology_token, rounds=rng.randint(5, 30))
    return name, text


IMPORTERS = ("lspci", "dmesg", "listing", "listings", "iomem", "parse_text", "files", "sysfs")


def _use_topology(topo, rng: random.Random) -> None:
    """What the CLI and the scenario compiler do with an imported topology."""
    from pasidsim.topology import render_topology, to_config, topology_summary
    from pasidsim.topology.export import hierarchy
    import json
    cfg = to_config(topo, ungrouped=rng.choice(["singleton", "no-iommu"]))
    topology_summary(topo)
    json.dumps(hierarchy(topo))
    if rng.random() < 0.15:
        from rich.console import Console
        Console(file=io.StringIO(), width=120).print(render_topology(topo))
        Console(file=io.StringIO(), width=120).print(render_topology(cfg))


def topology_input(rng: random.Random, importer: str | None = None):
    """``(importer, input)``: text for the parsers, ``[(name, bytes), ...]`` for ``files``,
    a tree description for ``sysfs``."""
    importer = importer or rng.choices(IMPORTERS, [14, 14, 10, 6, 8, 24, 12, 12])[0]
    if importer == "sysfs":
        return importer, sysfs_tree(rng)
    if importer == "files":
        files = []
        for i in range(rng.choice([1, 1, 2, 3])):
            name, text = topology_text(rng)
            raw = text.encode("utf-8", errors="surrogatepass")
            if rng.random() < 0.3:
                raw = mutate_bytes(rng, raw)
            files.append((f"{i}-{name}", raw))
        return importer, files
    return importer, topology_text(rng)[1]


def check_topology(importer: str, inp, seed: int = 0, tmpdir: str | None = None) -> str:
    """Run one importer on ``inp`` (see :func:`topology_input`) and use the result; returns
    ``rejected`` or ``imported``."""
    from pasidsim.topology import (TopologyError, load_topology, parse_dmesg, parse_group_listing,
                                   parse_group_listings, parse_iomem, parse_lspci, parse_text,
                                   read_sysfs)
    rng = random.Random(seed)
    try:
        if importer == "sysfs":
            with tempfile.TemporaryDirectory(dir=tmpdir) as d:
                make_sysfs_tree(Path(d), inp)
                topos = [read_sysfs(Path(d) / "sys")]
                if rng.random() < 0.3:
                    topos.append(load_topology(Path(d) / "sys"))
                for t in topos:
                    _use_topology(t, rng)
            return "imported"
        if importer == "files":
            with tempfile.TemporaryDirectory(dir=tmpdir) as d:
                paths = []
                for name, raw in inp:
                    p = Path(d) / re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100]
                    p.write_bytes(raw)
                    paths.append(p)
                topo = load_topology(paths, strict=rng.random() < 0.3,
                                     section=rng.choice([None, None, 0, 1, 3, -1, 10 ** 30]))
                _use_topology(topo, rng)
            return "imported"
        fn = {"lspci": parse_lspci, "dmesg": parse_dmesg, "listing": parse_group_listing,
              "iomem": parse_iomem, "parse_text": parse_text}.get(importer)
        if importer == "listings":
            topos = parse_group_listings(inp, "fuzz.txt")
        elif importer == "listing":
            topos = [parse_group_listing(inp, "fuzz.txt",
                                         section=rng.choice([None, None, 0, 1, -1, 99]))]
        else:
            topos = [fn(inp, "fuzz.txt")]
        for t in topos:
            _use_topology(t, rng)
    except TopologyError as e:
        msg = str(e)
        if "\n" in msg:
            raise Crash(f"multi-line TopologyError: {msg[:300]!r}")
        return "rejected"
    return "imported"


# -- sysfs trees ---------------------------------------------------------------------------------

def _name(rng: random.Random, kind: str) -> str:
    k = rng.randrange(10)
    if kind == "bdf" and k < 6:
        return "%04x:%02x:%02x.%x" % (rng.choice([0, 0, 0xa, 0xffff]), rng.randrange(0x100),
                                      rng.randrange(0x20), rng.randrange(8))
    if kind == "group" and k < 6:
        return str(rng.randrange(300))
    if kind == "unit" and k < 6:
        return rng.choice(["dmar0", "dmar1", "ivhd0", "smmu3.0x0000000009050000",
                           "arm-smmu-v3.0.auto", "iommu"])
    return rng.choice(["idma64.0", "HISI0162:01", "9" * 5000, "\u00b2", "x y", "-1", "..",
                       "0000:00:02.0", "00:02.0", "é", "a" * 200, "0x10", "1_0"])[:200]


def _content(rng: random.Random, kind: str) -> bytes:
    k = rng.randrange(8)
    if k == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 12)))
    if k == 1:
        return b""
    if k == 2:
        return interesting_number(rng).encode()[:6000] + b"\n"
    if k == 3:
        return interesting_string(rng).encode("utf-8", "surrogatepass")
    if kind == "hex":
        return ("0x%x\n" % rng.randrange(1 << rng.choice([8, 16, 64, 70]))).encode()
    if kind == "features":
        return ("%x:%x\n" % (rng.randrange(1 << 64), rng.randrange(1 << 64))).encode()
    return rng.choice([b"0x8086\n", b"0x1022\n", b"0x088000\n", b"0x0600\n", b"0x\n", b"0xzz\n"])


def config_space(rng: random.Random) -> bytes:
    """Config space bytes: a plausible one with PASID/ATS/PRI/ACS capabilities, mutated."""
    b = bytearray(4096 if rng.random() < 0.7 else rng.choice([64, 256, 255, 300]))
    if len(b) >= 64:
        b[0:4] = bytes([0x86, 0x80, 0x25, 0x0b])
        b[6] = 0x10
        b[0x34] = 0x40
        b[0x40:0x44] = bytes([0x10, 0x00, 0x92, 0x00])
    off = 0x100
    for cid in rng.sample([0x1B, 0x0F, 0x13, 0x0D, 0x01], rng.randint(0, 5)):
        nxt = off + 0x10
        if off + 16 <= len(b):
            b[off:off + 4] = (cid | 1 << 16 | nxt << 20).to_bytes(4, "little")
            b[off + 4:off + 12] = bytes(rng.randrange(256) for _ in range(8))
        off = nxt
    for _ in range(rng.choice([0, 1, 4, 30])):
        if b:
            b[rng.randrange(len(b))] = rng.randrange(256)
    if rng.random() < 0.1 and len(b) > 0x104:  # a capability list that loops
        b[0x100:0x104] = (0x1B | 1 << 16 | 0x100 << 20).to_bytes(4, "little")
    return bytes(b)


def sysfs_tree(rng: random.Random) -> list[tuple]:
    """A description of a (damaged) sysfs tree: ``(kind, relative path, payload)`` entries,
    kind ``dir``, ``file`` (bytes) or ``link`` (target, relative to the root or absolute)."""
    out: list[tuple] = []
    groups = [_name(rng, "group") for _ in range(rng.randint(0, 4))]
    bdfs = [_name(rng, "bdf") for _ in range(rng.randint(0, 6))]
    for g in groups:
        out.append(("dir", f"kernel/iommu_groups/{g}", None))
        for d in rng.sample(bdfs + ["idma64.0"], min(len(bdfs), rng.randint(0, 3))):
            out.append(("dir" if rng.random() < 0.9 else "file",
                        f"kernel/iommu_groups/{g}/devices/{d}", b"x"))
    if rng.random() < 0.1:
        out.append(("file", "kernel/iommu_groups/7/devices", b"not a dir"))
    for _ in range(rng.randint(0, 3)):
        u = _name(rng, "unit")
        kind = rng.choice(["intel-iommu", "amd-iommu", "", "intel-iommu"])
        base = f"class/iommu/{u}"
        out.append(("dir", base, None))
        if kind == "intel-iommu":
            for f in ("cap", "ecap", "address"):
                if rng.random() < 0.9:
                    out.append(("file", f"{base}/intel-iommu/{f}", _content(rng, "hex")))
        elif kind == "amd-iommu":
            out.append(("file", f"{base}/amd-iommu/features", _content(rng, "features")))
            if bdfs and rng.random() < 0.7:
                out.append(("link", f"{base}/device", f"bus/pci/devices/{rng.choice(bdfs)}"))
        for d in rng.sample(bdfs, min(len(bdfs), rng.randint(0, 3))):
            out.append(("dir", f"{base}/devices/{d}", None))
    for d in bdfs:
        base = f"bus/pci/devices/{d}"
        out.append(("dir", base, None))
        for f in ("vendor", "device", "class"):
            if rng.random() < 0.9:
                out.append(("file", f"{base}/{f}", _content(rng, f)))
        if rng.random() < 0.9:
            out.append(("file", f"{base}/config", config_space(rng)))
        elif rng.random() < 0.5:
            out.append(("dir", f"{base}/config", None))  # unreadable: a directory
        if groups and rng.random() < 0.7:
            target = rng.choice([f"kernel/iommu_groups/{rng.choice(groups)}", "/nonexistent/5",
                                 f"{base}/iommu_group", "kernel/iommu_groups/\u00b2"])
            out.append(("link", f"{base}/iommu_group", target))
        if rng.random() < 0.6:
            out.append(("link", f"{base}/driver",
                        rng.choice(["drivers/idxd", "drivers/vfio-pci", "drivers/\u0663",
                                    "/", "drivers/" + "x" * 200])))
    return out


def make_sysfs_tree(tmp: Path, entries: list[tuple]) -> None:
    """Create the tree of :func:`sysfs_tree` under ``tmp/sys`` (entries that clash with what
    is already there are skipped: a damaged tree, not a broken test)."""
    root = tmp / "sys"
    root.mkdir()
    for kind, rel, payload in entries:
        p = root / rel
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            if kind == "dir":
                p.mkdir(exist_ok=True)
            elif kind == "file":
                p.write_bytes(payload)
            elif not p.exists() and not p.is_symlink():
                target = Path(payload)
                p.symlink_to(target if target.is_absolute() else root / target)
        except (OSError, ValueError):
            continue


# == the library ===================================================================================

#: Crashes in modules item 5 of issue #14 may not change (the kernel model, ``system.py``):
#: each is reported with its input and has a strict xfail regression test in
#: ``test_fuzz_library.py`` (it turns into a failure once fixed: then delete the entry here).
#: A call that hits one is counted as ``known:NAME`` and the sequence goes on (the call
#: raised, the System's state is unchanged) instead of stopping as a crash.
#: name: (what, exception type name, message pattern, where: the innermost pasidsim frame
#: (file, function) the exception comes from -- the ID allocator's own frames left out)
KNOWN_BUGS: dict = {
    # none today: the four the first long run found (an IOASID reclaimed after another API
    # freed its ID, an SVA domain detached and freed by a caller, a bond's handle attached by
    # a caller, a view given an unhashable id) are fixed, with regression tests in
    # test_fuzz_library.py
}


def _innermost(tb) -> tuple[str, str] | None:
    import traceback
    for fr in reversed(traceback.extract_tb(tb)):
        name = Path(fr.filename).name
        if f"{os.sep}pasidsim{os.sep}" in fr.filename and name != "ida.py":
            return name, fr.name
    return None


def known_bug(e: BaseException) -> str | None:
    """The name of the known bug (:data:`KNOWN_BUGS`) ``e`` is, or None."""
    for name, (_what, kind, rx, where) in KNOWN_BUGS.items():
        if type(e).__name__ != kind or not rx.search(str(e)):
            continue
        tb = (e.__cause__ or e).__traceback__ if kind == "ModelInternalError" else e.__traceback__
        if _innermost(tb) in where:
            return name
    return None


EDGE_INTS = [-1, -2, 0, 1, 2, 3, 7, 8, 64, 4096, 0x10000, (1 << 20) - 1, 1 << 20, (1 << 31) - 1,
             1 << 31, (1 << 32) - 1, 1 << 32, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, 1 << 64,
             -(1 << 63), -(1 << 63) - 1, 10 ** 30, -(10 ** 30)]
BAD_VALUES = [None, True, False, 1.5, float("nan"), "1", "", "x" * 5, b"1", [], (1,), {},
              object(), 2 ** 200, -(2 ** 200), complex(1, 1)]


@lru_cache(maxsize=1)
def machines() -> tuple:
    """``(name, Config)`` machines for the call sequences: the default machine, a small
    machine with shared groups, no-IOMMU and require_direct devices and an SMMUv3 unit, and
    two machines imported from topology dumps."""
    from pasidsim.config import Config, DeviceConfig, DriverConfig, IommuUnit
    from pasidsim.machines import default_config
    out = [("default", default_config())]
    out.append(("small", Config.build(
        iommus=[IommuUnit("i0", ops="intel-iommu", iotlb_entries=3),
                IommuUnit("i1", ops="arm-smmu-v3", max_pasids=8),
                IommuUnit("i2", ops="amd-iommu", sva=False)],
        devices=[DeviceConfig("g0a", iommu="i0", group="G0", pasid_bits=20, ats=True, pri=True,
                              driver="uacce"),
                 DeviceConfig("g0b", iommu="i0", group="G0", pasid_bits=3),
                 DeviceConfig("acc", iommu="i0", pasid_bits=20, ats=True, pri=True,
                              atc_entries=2, driver="idxd"),
                 DeviceConfig("arm", iommu="i1", pasid_bits=4),
                 DeviceConfig("gpu", iommu="i2", pasid_bits=16, driver="amdgpu"),
                 DeviceConfig("rmrr", iommu="i0", require_direct=True),
                 DeviceConfig("bare", iommu=None, pasid_bits=20)],
        drivers=[DriverConfig("e1000e"), DriverConfig("vfio-pci", driver_managed_dma=True,
                                                      kind="vfio-pci"),
                 DriverConfig("uacce", kind="uacce"), DriverConfig("idxd", kind="idxd"),
                 DriverConfig("amdgpu", kind="amdgpu")])))
    from pasidsim.topology import load_topology, to_config
    for name in ("intel-emr-dsa-lspci-vvv-excerpt-email.txt",
                 "intel-atom-c3000-qat-iommu-groups-flat.txt"):
        if (TOPOLOGY_DATA / name).is_file():
            out.append((name.split("-")[1], to_config(load_topology(TOPOLOGY_DATA / name))))
    return tuple(out)


def _live(s, p: str) -> list:
    """Ids of the state that fit parameter ``p``."""
    try:
        if p == "tid":
            return list(s.tasks.keys())
        if p == "mm":
            return list(s.mms.keys())
        if p == "fd":
            return list(s.files.keys())
        if p in ("domain",):
            return list(s.domains.keys())
        if p == "handle":
            return list(s.handles.keys())
        if p == "set":
            return list(s.ioasid_sets.keys())
        if p in ("pasid", "ident"):
            return list(s.ida.ids()) + list(s.ioasids.keys())
        if p == "fence":
            return list(s.fences.keys())
        if p == "desc":
            return list(s.inflight.keys())
        if p in ("ictx", "ioas", "idev", "pt_id", "hwpt", "obj_id", "fault", "fault_id",
                 "container"):
            return list(s.ifd.keys())
        if p == "vma":
            return [v[0] for m in s.mms.values() for v in m.vmas]
        if p in ("addr", "iova", "start", "end"):
            return [v.start << 12 for m in s.mms.values() for v in m.vmas] + [0x10000]
    except (AttributeError, TypeError):
        return []
    return []


def _arg(rng: random.Random, s, cfg, p: str, bad: float, rets: list | None = None):
    r = rng.random()
    if r < bad:
        return rng.choice(BAD_VALUES)
    if r < 2 * bad + 0.02:
        return rng.choice(EDGE_INTS)
    if p in ("dev", "drv", "group"):
        n = {"dev": len(cfg.devices), "drv": len(cfg.drivers), "group": len(cfg.groups)}[p]
        if rng.random() < 0.15 and n:
            table = {"dev": cfg.devices, "drv": cfg.drivers, "group": cfg.groups}[p]
            return rng.choice(table).name if rng.random() < 0.9 else "no-such-" + p
        if rng.random() < 0.05:
            return rng.choice([n, -1, -n - 1])
        return rng.randrange(max(n, 1))
    if p == "fd" and s.tasks and rng.random() < 0.6:  # an fd of a live process
        fds = [f for pr in s.procs.values() for f in pr.files]
        if fds:
            return rng.choice(fds)
    live = _live(s, p)
    if live and rng.random() < 0.85:
        return rng.choice(live)
    if rets and rng.random() < 0.5:  # what an earlier call returned (an id, a PASID ...)
        return rng.choice(rets)
    if p in ("access", "prot"):
        return rng.choice([0, 1, 2, 3, 4, 7])
    if p in ("size", "npages"):
        return rng.choice([0, 1, 2, 100, 4096, 8192, 1 << 20])
    return rng.choice([0, 1, 2, 3, 4, 5, 9, 100, 0x10000, 0xFFFFFFFF])


@lru_cache(maxsize=1)
def scenario_states() -> dict:
    """``{"name@k": (config, policy, SystemState)}``: the states a run of each built-in
    scenario (call granularity) passes through, every few steps -- starting points deep in
    the model (bound SVA handles, iommufd objects, queued work, amdgpu fences ...)."""
    from pasidsim.scenario import builtin_scenarios, compile_scenario, load_scenario
    from pasidsim.scenario.runner import run_scenario
    from pasidsim.state import Granularity
    out = {}
    for name, path in builtin_scenarios().items():
        c = compile_scenario(load_scenario(path))
        if c.granularity != Granularity.CALL:
            continue
        states = run_scenario(c, keep_states=True, check_invariants=False).states
        for k in range(0, len(states), 4):
            if not states[k].sys.kthreads:
                out[f"{name}@{k}"] = (c.config, c.policy, states[k].sys)
    return out


def library_sequence(rng: random.Random, length: int | None = None) -> tuple:
    """``(start, design name, seed, length)``: a call sequence is regenerated from its seed by
    :func:`check_library` (the calls depend on the state they meet).  ``start`` names a
    machine of :func:`machines` (booted by the sequence, on design ``design``) or a state of
    :func:`scenario_states` (its scenario's design; ``design`` is then ``""``)."""
    from pasidsim.designs import DESIGNS
    length = length if length is not None else rng.choice([5, 20, 40, 80])
    if rng.random() < 0.5:
        return rng.choice(sorted(scenario_states())), "", rng.randrange(1 << 32), length
    name = rng.choice([m[0] for m in machines()])
    return name, rng.choice(list(DESIGNS)), rng.randrange(1 << 32), length


def check_library(seq: tuple, log: list | None = None, stats: dict | None = None) -> int:
    """Run the call sequence ``seq`` (:func:`library_sequence`); returns the number of calls.
    ``log`` receives a line per call (to print the input of a crash); ``stats`` (a Counter)
    counts the outcomes: ``ret>=0``, ``-errno``, ``usage`` (ModelUsageError), ``deadlock``,
    ``view``."""
    from collections import Counter
    from pasidsim.designs import DESIGNS
    from pasidsim.errors import KernelDeadlock, KernelError, ModelInternalError, ModelUsageError
    from pasidsim.step import IN_PROGRESS, OPS, step
    from pasidsim.system import System
    start, design, seed, length = seq
    rng = random.Random(seed)
    if design:
        cfg = dict(machines())[start]
        sysm = System(cfg, DESIGNS[design])
    else:
        cfg, policy, state = scenario_states()[start]
        sysm = System(cfg, policy)
        sysm.state = state
    log = log if log is not None else []
    stats = stats if stats is not None else Counter()
    bad = rng.choice([0.0, 0.0, 0.01, 0.05])
    ops = list(OPS)
    rets: list[int] = []
    if design and rng.random() < 0.7:  # boot: each device's driver probes (as a scenario's
        # setup does)
        for i, d in enumerate(cfg.devices):
            if d.driver is not None and rng.random() < 0.9:
                log.append(f"sys.device_driver_attach({i}, {d.driver!r})")
                try:
                    sysm.device_driver_attach(i, d.driver)
                except KernelError:
                    pass
        for _ in range(rng.randint(0, 3)):
            log.append("sys.process_create()")
            sysm.process_create()
    builders = [o for o in ops if o.name in (
        "process_create", "dev_open", "fork", "clone_thread", "mmap_anon", "mmap",
        "iommu_sva_bind_device", "iommufd_ctx_create", "iommufd_ioas_alloc",
        "iommufd_device_bind", "iommufd_hwpt_alloc", "iommu_domain_alloc_paging", "wq_submit",
        "touch", "iommu_group_claim_dma_owner", "vfio_group_set_container", "dma")]
    for _ in range(length):
        before, ntrace = sysm.state, len(sysm.trace)
        op = rng.choice(ops) if rng.random() < 0.75 else rng.choice(builders)
        if "tid" in op.params and not before.tasks and rng.random() < 0.8:
            op = builders[0]  # process_create: a task to act
        kw = {p: _arg(rng, before, cfg, p, bad, rets) for p in op.params
              if rng.random() < 0.97}
        if rng.random() < 0.05:
            kw[rng.choice(["fail", "bogus", "tid", "dev"])] = rng.choice(
                [0, 1, 2, 3, -1, rng.choice(BAD_VALUES)])
        how = rng.choices(["method", "positional", "call", "apply", "step", "view"],
                          [45, 10, 12, 10, 13, 10])[0]
        try:
            if how == "method":
                log.append(f"sys.{op.name}(**{kw!r})")
                ret = getattr(sysm, op.name)(**kw)
            elif how == "positional":
                args = list(kw.values())[:rng.randint(0, len(op.params) + 1)]
                if rng.random() < 0.1:
                    args.append(rng.choice(EDGE_INTS))
                log.append(f"sys.{op.name}(*{args!r})")
                ret = getattr(sysm, op.name)(*args)
            elif how == "call":
                name = op.name if rng.random() < 0.95 else rng.choice(["nope", "", "step"])
                log.append(f"sys.call({name!r}, **{kw!r})")
                ret = sysm.call(name, **kw)
            elif how in ("apply", "step"):
                action = _action(rng, op, kw, before, cfg)
                if how == "apply":
                    log.append(f"sys.apply({action!r})")
                    ret = sysm.apply(action)
                else:
                    ctx = rng.choice([0, 0, 0, rng.choice(list(before.tasks.keys()) or [0]),
                                      rng.choice(EDGE_INTS)])
                    log.append(f"step(sys.state, {action!r}, ctx={ctx!r})")
                    s2, ret = step(before, action, ctx)
                    if not isinstance(ret, int):
                        raise Crash(f"step returned {ret!r}")
                    if ret != IN_PROGRESS and not s2.kthreads:  # the facade keeps returned
                        sysm.state = s2                          # calls only
            else:
                _view(rng, sysm, cfg, log)
                stats["view"] += 1
                continue
            if not isinstance(ret, int) or isinstance(ret, bool):
                raise Crash(f"{log[-1]} returned {ret!r}, not an int")
            stats["ret>=0" if ret >= 0 else "-errno"] += 1
            if ret > 0:
                rets.append(ret)
        except KernelError as e:
            stats["-errno"] += 1
            if e.errno is None or e.errno <= 0:
                raise Crash(f"KernelError without an errno: {e}") from e
        except KernelDeadlock:
            stats["deadlock"] += 1
            if sysm.state is not before or len(sysm.trace) != ntrace:
                raise Crash(f"{log[-1]}: KernelDeadlock changed the System's state")
        except (ModelInternalError, TypeError) as e:
            name = known_bug(e)
            if name is None:
                raise
            stats[f"known:{name}"] += 1
            if sysm.state is not before or len(sysm.trace) != ntrace:
                raise Crash(f"{log[-1]}: {e} changed the System's state") from e
        except ModelUsageError as e:
            stats["usage"] += 1
            if sysm.state is not before or len(sysm.trace) != ntrace:
                raise Crash(f"{log[-1]}: ModelUsageError changed the state: {e}") from e
            if "\n" in str(e):
                raise Crash(f"multi-line ModelUsageError: {e}") from e
    return length


def _action(rng: random.Random, op, kw: dict, s, cfg):
    """An Action for ``op``: mostly well-formed (ints), sometimes hand-built badly."""
    from pasidsim.step import OPS, Action
    args = tuple(kw.get(p, _arg(rng, s, cfg, p, 0.0)) for p in op.params)
    args = tuple(_index(cfg, p, a) for p, a in zip(op.params, args))
    r = rng.random()
    if r < 0.7:
        return Action(op.code, args, rng.choice([0, 0, 0, 0, 1, 2, 3]))
    if r < 0.75:
        return Action(rng.choice([-1, len(OPS), 10 ** 20, "dma", None, 1.0, True]), args)
    if r < 0.8:
        return Action(op.code, args[:-1] if args and rng.random() < 0.5 else args + (0,))
    if r < 0.85:
        return Action(op.code, list(args) if rng.random() < 0.5 else None)
    if r < 0.9:
        return Action(op.code, args, rng.choice([-1, True, 1.5, None, 10 ** 30]))
    if r < 0.95:
        return rng.choice([(op.code, args, 0), [op.code, args], None, op.name, op])
    bad = list(args)
    if bad:
        bad[rng.randrange(len(bad))] = rng.choice(BAD_VALUES + EDGE_INTS)
    return Action(op.code, tuple(bad))


def _index(cfg, p: str, v):
    """A device/driver/group name as its index (an Action takes ints only)."""
    from pasidsim.errors import ModelUsageError
    if isinstance(v, str) and p in ("dev", "drv", "group"):
        try:
            return getattr(cfg, {"dev": "device_index", "drv": "driver_index",
                                 "group": "group_index"}[p])(v)
        except ModelUsageError:
            return v
    return v


def _view(rng: random.Random, sysm, cfg, log: list):
    """One of the System's views with a live or a bad argument."""
    s = sysm.state
    which = rng.choice(["mm_of", "mm", "group_of", "group", "pasid_allocated", "warnings"])
    pool = {"mm_of": list(s.tasks.keys()), "mm": list(s.mms.keys()),
            "group_of": list(range(len(cfg.devices))) + [d.name for d in cfg.devices],
            "group": list(range(len(cfg.groups))) + [g.name for g in cfg.groups],
            "pasid_allocated": list(s.ida.ids())}.get(which, [])
    r = rng.random()
    arg = rng.choice(pool) if pool and r < 0.7 else rng.choice(
        EDGE_INTS + BAD_VALUES + (["nope", "-1"] if which in ("group_of", "group") else []))
    if which == "warnings":
        log.append("sys.warnings")
        return sysm.warnings
    log.append(f"sys.{which}({arg!r})")
    return getattr(sysm, which)(arg)


__all__ = ["Crash", "Hang", "time_limit", "scenario_input", "check_scenario", "check_cli",
           "topology_input", "check_topology", "library_sequence", "check_library",
           "IMPORTERS", "scenario_corpus", "topology_corpus", "machines", "mutate_lines",
           "mutate_bytes", "mutate_tree", "sysfs_tree", "make_sysfs_tree"]
