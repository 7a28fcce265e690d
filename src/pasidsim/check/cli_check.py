"""``pasidsim check``: the model checker on built-in scenarios × designs, or on one file.

With no scenario, every cell of the matrix is judged by its expected verdict
(:mod:`pasidsim.check.expected`, ``check/expected/<scenario>.yaml``): the exit status is 1 if
any cell is not as expected.  ✓ marks a historical design's documented breakage
(:data:`pasidsim.check.history.HISTORY`), ✗ any cell that is not as expected.  A scenario
given on the command line must simply pass (every property holds, every goal reached).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from .expected import PASS, expected_for
from .history import HISTORY
from ..report.output import write_text_atomic
from ..report.schemas import CellOutput, CheckOutput, dump
from .runner import Cell, check_scenario

DEFAULT_OUT = "pasidsim-counterexamples"


def _documented(granularity: str | None = None, loaded: dict | None = None
                ) -> set[tuple[str, str]]:
    """The HISTORY rows checked at ``granularity`` (None: each scenario's own, from
    ``loaded``)."""
    def gran(s: str) -> str:
        if granularity is not None:
            return granularity
        ls = (loaded or {}).get(s)
        return ls.model.granularity if ls is not None else "call"
    return {(h.scenario, h.design) for h in HISTORY if h.granularity == gran(h.scenario)}


def _cell_text(c: Cell) -> str:
    """A compact matrix cell: ``A 1202`` (Always, distinct states), ``S A3@12`` (Sometimes:
    the invariant broken and the counterexample's length), ``B 500`` (bounded), then ✓ for a
    design's documented breakage found as expected, ✗ for any outcome that is not the
    expected one (with what was expected)."""
    if c.verdict == "Always":
        text = f"[green]A[/green] {c.states}"
    elif c.verdict == "Bounded":
        # inconclusive, not a verdict against the expectation: say why rather than ✗
        return f"[yellow]B[/yellow] {c.states} [yellow]not exhaustive[/yellow]"
    else:
        text = f"[red]{c.verdict[0]}[/red] {c.invariant}@{len(c.refs)}"
    if not c.ok:
        text += f" [red]✗ expected {(c.expected or PASS).text()}[/red]"
    elif c.documented:
        text += " [green]✓[/green]"
    return text


def _label(design: str) -> str:
    from ..designs import SHORT_NAMES
    return SHORT_NAMES.get(design, design)


def matrix_tables(cells: list[Cell], scenarios: list[str], designs: list[str],
                  width: int) -> list[Table]:
    """The scenario × design matrix of verdicts in the herd7 style, as tables of at most
    ``width`` columns of text: the designs are split across several tables when they do not
    fit side by side (each table repeats the scenario column).  Columns are headed by the
    short design names of :data:`pasidsim.designs.SHORT_NAMES`."""
    by = {(c.scenario, c.design): c for c in cells}
    texts = {k: _cell_text(c) for k, c in by.items()}
    plain = {k: Text.from_markup(v).cell_len for k, v in texts.items()}
    first = max([len("scenario")] + [len(s) for s in scenarios]) + 4
    widths = [max([len(_label(d))] + [plain.get((s, d), 0) for s in scenarios]) + 3
              for d in designs]
    chunks: list[list[int]] = [[]]
    used = first
    for i, w in enumerate(widths):
        if chunks[-1] and used + w > width:
            chunks.append([])
            used = first
        chunks[-1].append(i)
        used += w
    tables = []
    for n, chunk in enumerate(chunks):
        title = "pasidsim check: scenario × design" + (
            f" ({n + 1}/{len(chunks)})" if len(chunks) > 1 else "")
        t = Table(title=title, show_lines=False, box=box.SIMPLE_HEAD)
        t.add_column("scenario", no_wrap=True)
        for i in chunk:
            t.add_column(_label(designs[i]), no_wrap=True)
        for s in scenarios:
            t.add_row(s, *[texts.get((s, designs[i]), "") for i in chunk])
        tables.append(t)
    return tables


def matrix_legend(designs: list[str]) -> str:
    """What the matrix's letters and column labels stand for."""
    names = ", ".join(f"{_label(d)} = {d}" for d in designs if _label(d) != d)
    return ("A = Always (every invariant holds; distinct states explored), S = Sometimes "
            "(the invariant broken @ the length of the shortest counterexample), B = bounded "
            "search; ✓ the design's documented breakage, ✗ not as expected "
            "(check/expected/<scenario>.yaml).  Designs: " + names + " (`pasidsim designs`).")


def counterexample_yaml(cell: Cell, compiled, source_text: str) -> str:
    """The counterexample as a scenario file ``pasidsim run`` accepts unchanged: the original
    scenario with its ``design`` set and ``order`` = the violating interleaving.

    An injected failure is written on its step as ``fail: POINT`` (``POINT#n`` for the n-th
    passage of the point), and the expectations that describe the calls succeeding are
    dropped from the steps that had not run yet when it was injected (their ``expect`` and
    ``check``; ``expect_final`` keeps only ``violations: 0``) and ``inject_faults`` is
    removed, so that the file replays the failing run and judges it by its invariants."""
    import yaml

    from ..fault import FaultPoint
    data = yaml.safe_load(source_text)
    design = data["design"] = cell.design or data.get("design", "current")
    order = []
    for ref in cell.refs:
        if ref.actor == 0:
            continue  # setup runs first on its own
        order.append(compiled.actor_name(ref.actor))
    data["order"] = order
    if compiled.granularity:
        data["granularity"] = "lock"
    injected = None  # (step index in the trace, path of the failing step, fail text)
    pcs_at = []  # the program counters before each step
    rs = compiled.initial()
    for n, ref in enumerate(cell.refs):
        pcs_at.append(rs.pcs)
        cs = None if ref.actor == compiled.hw_actor else \
            compiled.actors[ref.actor].program[rs.pcs[ref.actor]]
        rs, ev = compiled.apply(rs, ref)
        if ref.fail and ev.fault and injected is None:
            point, nth = FaultPoint(ev.fault[0]), ev.fault[1]
            injected = (n, cs.path, point.name if nth == 1 else f"{point.name}#{nth}")
    note = ""
    if injected is not None:
        n, path, text = injected
        _step_args(data, path)["fail"] = text
        ran = pcs_at[n]
        for a, info in enumerate(compiled.actors):
            for pc in range(ran[a], len(info.program)):
                cs = info.program[pc]
                if cs.in_file:
                    args = _step_args(data, cs.path)
                    args.pop("expect", None)
                    args.pop("check", None)
        data.pop("inject_faults", None)
        if "expect_final" in data:
            data["expect_final"] = {"violations": 0}
        note = (f"# The failure injected at step {n + 1} is written `fail: {text}` on its "
                "step;\n# the expectations of the steps from there on (written for calls "
                "that succeed) are dropped.\n")
    head = (f"# Counterexample found by `pasidsim check`: design {design} breaks "
            f"{cell.invariant}\n# {cell.message}\n{note}# Replay: pasidsim run <this file>\n")
    return head + yaml.safe_dump(data, sort_keys=False, width=100)


def _step_args(data: dict, path: tuple) -> dict:
    """The argument mapping of the step at YAML ``path`` in the parsed scenario ``data``
    (``("actors", 0, "program", 2)``, ``("setup", 1)``, or deeper through ``fork``
    programs), created empty when the step was written without arguments."""
    node = data
    for p in path:
        node = node[p]
    key = next(iter(node))
    if not isinstance(node[key], dict):
        node[key] = {}
    return node[key]


def _write_itf(path: Path) -> None:
    """Beside a saved counterexample ``X.yaml``, ``X.itf.json``: its replay with the full
    state at every step in the Informal Trace Format (:mod:`pasidsim.report.itf`)."""
    from ..report.itf import itf_text, run_itf
    from ..scenario.compile import compile_scenario
    from ..scenario.loader import load_scenario
    from ..scenario.runner import run_scenario
    res = run_scenario(compile_scenario(load_scenario(path)), keep_states=True)
    write_text_atomic(path.with_suffix(".itf.json"), itf_text(run_itf(res)))


def print_trace(console: Console, cell: Cell) -> None:
    """The counterexample of a cell: what broke, what was expected when that is not it, and
    the steps (setup steps only when a failure was injected into one)."""
    from rich.markup import escape
    status = "" if cell.ok else f" [red](✗ expected {(cell.expected or PASS).text()})[/red]"
    console.print(f"[bold red]{cell.scenario} on {cell.design}: {cell.invariant}[/bold red] "
                  f"({cell.kind}) — {escape(cell.message)}{status}")
    if cell.broken[1:]:
        console.print(f"  also broken in that state: {', '.join(cell.broken[1:])}")
    hidden = [i for i, (actor, call, _r) in enumerate(cell.trace, 1)
              if actor == "setup" and "[fail " not in call]
    if hidden:
        span = f"{hidden[0]}–{hidden[-1]}" if len(hidden) > 1 else f"{hidden[0]}"
        console.print(f"  (step{'s' if len(hidden) > 1 else ''} {span}: the scenario's setup "
                      "— boot-time driver probes, process creation, its setup: steps — not "
                      "shown; `pasidsim run` on the saved file shows every step)")
    for i, (actor, call, ret) in enumerate(cell.trace, 1):
        if i in hidden:
            continue
        console.print(f"  {i:3}. {actor:>8}: {escape(call)} = {ret}")


def junit_xml(cells: list[Cell]) -> str:
    """A JUnit XML report (junitparser): one testcase per cell (classname the scenario, name
    the design), failed exactly when the matrix shows ✗ or "not exhaustive" (:attr:`Cell.ok`
    false); a violation the design is expected to show (a historical design's breakage) is a
    pass whose counterexample is in its ``system-out``."""
    from junitparser import Failure, JUnitXml, TestCase, TestSuite
    suite = TestSuite("pasidsim-check")
    for c in cells:
        case = TestCase(c.design, classname=c.scenario, time=round(c.elapsed, 3))
        steps = "\n".join(f"{a}: {x} = {r}" for a, x, r in c.trace)
        if not c.ok:
            if c.verdict == "Bounded":
                msg = f"not exhaustive: {c.message or 'a bound stopped the search'}"
            elif c.invariant is None:
                msg = f"never reached: {', '.join(c.unreached)}"
            else:
                exp = (c.expected or PASS).text()
                msg = f"{c.invariant}: {c.message} (expected {exp})"
            case.result = [Failure(msg, c.verdict)]
            if steps:
                case.result[0].text = steps
        elif c.invariant is not None:
            case.system_out = (f"expected violation of {c.invariant}: {c.message}\n"
                               f"{steps}\n")
        suite.add_testcase(case)
    xml = JUnitXml("pasidsim")
    xml.add_testsuite(suite)
    text = xml.tostring()
    return (text.decode("utf-8") if isinstance(text, bytes) else text) + "\n"


def _bad_input(message: str) -> None:
    """Bad input: ``message`` on stderr, as written (no rich markup read from it, no
    wrapping), and exit status 2."""
    Console(stderr=True, highlight=False).print(f"[red]error:[/red] {escape(message)}",
                                                soft_wrap=True)
    sys.exit(2)


@click.command("check")
@click.argument("scenario", required=False)
@click.option("--design", "designs", multiple=True,
              help="design(s) to check (default: all with no SCENARIO, the file's with one)")
@click.option("--strategy", type=click.Choice(["bfs", "dfs"]), default="bfs", show_default=True,
              help="bfs gives shortest counterexamples, dfs uses less memory")
@click.option("--max-states", type=int, default=200_000, show_default=True)
@click.option("--max-depth", type=int, default=None)
@click.option("--max-seconds", type=float, default=120.0, show_default=True,
              help="time bound per cell")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Ray workers: several cells are checked side by side as Ray tasks, a single "
                   "cell by level-parallel BFS on Ray actors (results identical to serial); "
                   "more than 1 starts a local Ray runtime unless --ray names a cluster")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None,
              metavar="[ADDRESS]",
              help="check on Ray: alone, a local runtime with a worker per CPU; with the "
                   "ADDRESS of a running cluster (`ray start --head`), that cluster with a "
                   "worker per CPU of it (every node needs pasidsim installed)")
@click.option("--swarm", type=int, default=0, metavar="N",
              help="instead of one exhaustive search per cell, N randomized depth-first "
                   "searches within the bounds (SPIN's swarm verification), as Ray tasks with "
                   "--workers/--ray: for configurations beyond exhaustive reach; finding "
                   "nothing is 'not exhaustive' (exit 3)")
@click.option("--checkpoint", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="save each cell's search in DIR/<scenario>--<design>.ckpt every minute, "
                   "on Ctrl-C and when a bound stops it (serial searches)")
@click.option("--resume", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="go on from the checkpoints in DIR (same options; raise a bound to take a "
                   "bounded search further); a cell without one starts afresh")
@click.option("--symmetry/--no-symmetry", default=False, show_default=True,
              help="identify states equal up to object ids and interchangeable actors "
                   "(same verdicts and counterexample lengths, fewer states)")
@click.option("--por/--no-por", default=False, show_default=True,
              help="partial-order reduction over independent actors (same verdicts; off for "
                   "hardware scenarios; see pasidsim.check.por)")
@click.option("--granularity", type=click.Choice(["call", "lock"]), default=None,
              help="call: every kernel call is one step; lock: calls stop at their "
                   "preemption points (locks, sleeping points, task work) and interleave "
                   "there (default: as the scenario says)")
@click.option("--hardware/--no-hardware", default=None,
              help="interleave hardware events (default: as the scenario says)")
@click.option("--inject-faults", is_flag=True, default=False,
              help="also explore every kernel call and process event failing at each fault "
                   "point it passes (pasidsim.fault; default: as the scenario's "
                   "`inject_faults` says)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable results on stdout")
@click.option("--junit", type=click.Path(dir_okay=False), help="write a JUnit XML report")
@click.option("--html", type=click.Path(dir_okay=False),
              help="write an HTML report with each counterexample as a sequence diagram")
@click.option("--out", type=click.Path(file_okay=False), default=DEFAULT_OUT, show_default=True,
              help="directory for counterexample scenario files")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="draw the distinct states of each BFS level (PNG, SVG or PDF by the "
                   "suffix) of the largest searches; with --symmetry/--por the same cells "
                   "are also searched without reductions and drawn dashed")
def check_cmd(scenario, designs, strategy, max_states, max_depth, max_seconds, workers,
              ray_address, swarm, checkpoint, resume, symmetry, por, granularity, hardware, inject_faults, as_json, junit,
              html, out, plot):
    """Explore every interleaving of SCENARIO (a file or a built-in name) and report the
    shortest violation of any invariant.  With no SCENARIO: every built-in scenario against
    today's design and every historical design, as a matrix.

    Exit status with no SCENARIO: 0 when every cell is as expected (pasidsim/check/expected/
    <scenario>.yaml: a design not listed there passes everything), else 1.  With a SCENARIO:
    0 when every property holds and every goal is reached, else 1.  3 when nothing failed but
    a bound (--max-states, --max-depth, --max-seconds) stopped some search before it was
    exhaustive ("B n not exhaustive"): inconclusive.  2 on bad input."""
    from ..designs import DESIGNS
    from ..scenario import builtin_scenarios, resolve_scenario
    from ..scenario.loader import ScenarioError, load_scenario
    console = Console(stderr=as_json)
    if inject_faults and granularity == "lock":
        _bad_input("--inject-faults: injected failures are explored at call granularity only "
                   "(--granularity lock)")
    try:
        if scenario:
            paths = {Path(resolve_scenario(scenario)).stem: Path(resolve_scenario(scenario))}
        else:
            paths = dict(sorted(builtin_scenarios().items()))
        for d in designs:
            if d not in DESIGNS:
                raise click.BadParameter(f"unknown design {d!r}; known: {', '.join(DESIGNS)}",
                                         param_hint="--design")
        loaded = {name: load_scenario(p) for name, p in paths.items()}
        # the matrix judges every cell by its expected verdict; a scenario given explicitly
        # must simply pass
        expected = {} if scenario else {
            s: expected_for(s, granularity or loaded[s].model.granularity) for s in loaded}
    except ScenarioError as e:
        _bad_input(str(e))
    documented = set() if scenario else _documented(granularity, loaded)
    if designs:
        design_list = list(designs)
    elif scenario:
        design_list = [loaded[next(iter(loaded))].model.design]
    else:
        design_list = list(DESIGNS)
    jobs = [(s, d) for s in loaded for d in design_list]
    cells: list[Cell] = []
    compiled_by = {}
    if plot and Path(plot).suffix.lower() not in (".png", ".svg", ".pdf"):
        _bad_input(f"--plot {plot}: the picture must be .png, .svg or .pdf")
    settings = dict(strategy=strategy, max_states=max_states, max_depth=max_depth,
                    max_seconds=max_seconds, symmetry=symmetry, por=por,
                    inject_faults=True if inject_faults else None, granularity=granularity)
    if scenario:  # the file's `checker:` replaces the defaults; options given still win
        own = loaded[next(iter(loaded))].model.checker
        ctx = click.get_current_context()
        for key in ("max_states", "max_depth", "max_seconds", "symmetry", "por"):
            value = getattr(own, key)
            if value is not None and \
                    ctx.get_parameter_source(key) == click.core.ParameterSource.DEFAULT:
                settings[key] = value
    exps = [(expected.get(s, {}).get(d), (s, d) in documented) for s, d in jobs]
    address = None if ray_address in (None, "local") else ray_address
    if ray_address is not None and workers <= 1:
        workers = _ray_cpus(address)
    if swarm < 0:
        _bad_input(f"--swarm {swarm}: a number of searches, at least 1")
    if workers > 1 and strategy != "bfs" and not swarm:
        _bad_input(f"--workers {workers}: parallel search is breadth-first (--strategy bfs)")
    settings.update(ray_address=address, swarm=swarm)
    if (checkpoint or resume) and (workers > 1 or swarm):
        _bad_input("--checkpoint/--resume: serial searches only (not with --workers, --ray "
                   "or --swarm)")
    if resume and not Path(resume).is_dir():
        _bad_input(f"--resume {resume}: no such checkpoint directory")
    if checkpoint:
        Path(checkpoint).mkdir(parents=True, exist_ok=True)
    settings.update(checkpoint=checkpoint, resume=resume)
    across = workers > 1 and len(jobs) > 1 and not swarm
    # the bar is redrawn at each update (no refresh thread next to the Ray client's)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=console, transient=True, disable=as_json,
                  auto_refresh=False) as progress:
        task = progress.add_task("checking", total=len(jobs))
        try:
            if across:  # one cell per worker at a time; each cell searched serially
                cells = _check_across(loaded, jobs, exps, hardware, settings, workers,
                                      lambda c: progress.update(
                                          task, advance=1, refresh=True,
                                          description=f"{c.scenario} × {c.design}"))
            else:
                for (s, d), exp in zip(jobs, exps):
                    progress.update(task, description=f"{s} × {d}", refresh=True)

                    def live(p, name=f"{s} × {d}"):  # TLC-style figures of the running search
                        progress.update(task, description=progress_text(name, p), refresh=True)
                    cells.append(_check_cell(loaded, s, d, exp, hardware, settings, workers,
                                             on_progress=None if as_json else live))
                    progress.update(task, advance=1, refresh=True)
        except ScenarioError as e:
            _bad_input(str(e))
        except KeyboardInterrupt:
            from .parallel import shutdown_ray
            if address is None:
                shutdown_ray()  # no worker left running
            raise
    for c in cells:
        if c.verdict in ("Sometimes", "Never"):
            compiled_by[(c.scenario, c.design)] = _compile(loaded, c.scenario, c.design, hardware,
                                                           settings["granularity"],
                                                           settings["inject_faults"])
    bad = [c for c in cells if not c.ok]
    saved = []
    violations = [c for c in cells if c.verdict in ("Sometimes", "Never")]
    if violations:
        Path(out).mkdir(parents=True, exist_ok=True)
        for c in violations:
            text = counterexample_yaml(c, compiled_by[(c.scenario, c.design)],
                                       paths[c.scenario].read_text())
            p = Path(out) / f"{c.scenario}--{c.design}.yaml"
            write_text_atomic(p, text)
            saved.append(str(p))
            _write_itf(p)
    if as_json:
        click.echo(dump(CheckOutput(cells=[CellOutput.model_validate(c.to_json())
                                           for c in cells],
                                    counterexamples=saved, ok=not bad)), nl=False)
    else:
        for table in matrix_tables(cells, list(loaded), design_list, console.width):
            console.print(table)
        console.print(f"checked {len(cells)} cell(s): {sum(c.states for c in cells):,} distinct "
                      f"states, {sum(c.transitions for c in cells):,} transitions, "
                      f"{sum(c.elapsed for c in cells):.1f} s of search")
        console.print(matrix_legend(design_list))
        # traces: the documented breakages and anything unexpected; the rest are on file
        shown = [c for c in violations if scenario or c.documented or not c.ok]
        for c in shown:
            print_trace(console, c)
        if saved:
            others = len(violations) - len(shown)
            console.print(f"counterexamples saved in {out}/ (replay with `pasidsim run FILE`)"
                          + (f"; {others} more expected violations of historical designs off "
                             "their own scenario are only there" if others else ""))
        for c in cells:
            if c.unreached and not c.ok:
                console.print(f"[yellow]{c.scenario} × {c.design}: never reached "
                              f"{', '.join(c.unreached)}[/yellow]")
        failed = [c for c in bad if c.verdict != "Bounded"]
        bounded = [c for c in bad if c.verdict == "Bounded"]
        if failed:
            console.print(f"[red]{len(failed)} cell(s) not as expected:[/red] " + ", ".join(
                f"{c.scenario} × {c.design}" for c in failed))
        if bounded:
            console.print(f"[yellow]{len(bounded)} search(es) not exhaustive[/yellow] (stopped "
                          "by --max-states, --max-depth or --max-seconds; raise the bound): "
                          + ", ".join(f"{c.scenario} × {c.design}" for c in bounded))
    if junit:
        write_text_atomic(junit, junit_xml(cells))
    if html:
        write_text_atomic(html, html_report(cells, saved))
    if plot:
        _plot_levels(plot, cells, loaded, hardware, settings, exps_by={
            job: exp for job, exp in zip(jobs, exps)})
    sys.exit(exit_status(cells))


#: Searches drawn by ``--plot``: the largest ones (more lines are unreadable).
PLOT_CELLS = 6


def _plot_levels(path: str, cells: list[Cell], loaded: dict, hardware, settings: dict,
                 exps_by: dict) -> None:
    """``--plot``: states per BFS level of the :data:`PLOT_CELLS` largest searches; with
    reductions on, the same cells searched again without them, for comparison."""
    from ..report.plots import levels_plot
    drawn = sorted((c for c in cells if c.levels), key=lambda c: -c.states)[:PLOT_CELLS]
    reduced = settings.get("symmetry") or settings.get("por")
    series = []
    for c in drawn:
        what = " (" + "+".join(n for n, on in (("symmetry", settings.get("symmetry")),
                                                ("POR", settings.get("por"))) if on) + ")" \
            if reduced else ""
        series.append((f"{c.scenario} × {c.design}{what}", c.levels, True))
        if reduced:
            plain = dict(settings, symmetry=False, por=False, checkpoint=None, resume=None)
            ref = _check_cell(loaded, c.scenario, c.design, exps_by[(c.scenario, c.design)],
                              hardware, plain)
            series.append((f"{c.scenario} × {c.design} (no reduction)", ref.levels, False))
    if not series:  # a swarm search has no levels
        Console(stderr=True).print("[yellow]--plot: no breadth-first search to draw[/yellow]")
        return
    levels_plot(series, path)


#: ``pasidsim check`` exit status: every cell as expected / some cell not as expected /
#: bad input / nothing failed but a bound made a search inconclusive
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_NOT_EXHAUSTIVE = 0, 1, 2, 3


def exit_status(cells: list[Cell]) -> int:
    """:data:`EXIT_FAILED` when a cell is not as expected, else
    :data:`EXIT_NOT_EXHAUSTIVE` when a bounded search is inconclusive, else :data:`EXIT_OK`."""
    if any(not c.ok and c.verdict != "Bounded" for c in cells):
        return EXIT_FAILED
    if any(not c.ok for c in cells):
        return EXIT_NOT_EXHAUSTIVE
    return EXIT_OK


def _compile(loaded: dict, s: str, d: str, hardware, granularity=None, inject_faults=None):
    from ..scenario.compile import compile_scenario
    from ..state import Granularity
    c = compile_scenario(loaded[s], design=d)
    if granularity is not None:
        c.granularity = Granularity[granularity.upper()]
    if hardware is not None:
        c.hardware = hardware
    if inject_faults is not None:
        c.inject_faults = inject_faults
    return c


def _check_cell(loaded: dict, s: str, d: str, exp, hardware, settings: dict,
                workers: int = 1, on_progress=None) -> Cell:
    """Check one cell of the matrix; ``exp`` is ``(Expected or None, documented)``;
    ``on_progress`` as :func:`~pasidsim.check.runner.check_scenario`.  Raises ScenarioError
    for a scenario that does not compile against design ``d``."""
    expected, documented = exp
    settings = dict(settings)
    ckdir, rdir = settings.pop("checkpoint", None), settings.pop("resume", None)
    name = f"{s}--{d}.ckpt"
    resume = None
    if rdir and (Path(rdir) / name).exists():
        resume = str(Path(rdir) / name)
    try:
        return check_scenario(_compile(loaded, s, d, hardware), scenario_name=s, design_name=d,
                              expected=expected, documented=documented, workers=workers,
                              on_progress=on_progress,
                              checkpoint=str(Path(ckdir) / name) if ckdir else None,
                              resume=resume, **settings)
    except ValueError as e:
        if resume is None:
            raise
        _bad_input(f"--resume: {e}")


def progress_text(cell: str, p) -> str:
    """One live line per search, as TLC prints them: ``h1-fork-exit × current: 1,160
    distinct states, 2,460 transitions, depth 12, queue 40, 2,300 states/s, 0.5 s``."""
    rate = p.states / p.elapsed if p.elapsed > 0 else 0.0
    return (f"{cell}: {p.states:,} distinct states, {p.transitions:,} transitions, depth "
            f"{p.depth}, queue {p.queue:,}, {rate:,.0f} states/s, {p.elapsed:.1f} s")


def _ray_cpus(address: str | None) -> int:
    """The CPUs of the Ray runtime (started locally when ``address`` is None): the workers
    of ``--ray`` without ``--workers``."""
    from .parallel import ray_runtime
    ray = ray_runtime(address)
    return max(2, int(ray.cluster_resources().get("CPU", 2)))


def _ray_cell(blob: bytes, s: str, d: str, exp):
    """A Ray task: one cell of the matrix, checked serially (``blob``: the cloudpickled
    ``(loaded, hardware, settings)``; compiled scenarios do not pickle with the standard
    pickle, so each task compiles its own).  A ScenarioError is returned, not raised."""
    import ray.cloudpickle as cloudpickle

    from ..scenario.loader import ScenarioError
    loaded, hardware, settings = cloudpickle.loads(blob)
    try:
        return _check_cell(loaded, s, d, exp, hardware, settings)
    except ScenarioError as e:
        return e


def _check_across(loaded: dict, jobs: list, exps: list, hardware, settings: dict,
                  workers: int, done) -> list[Cell]:
    """The matrix's cells checked as Ray tasks, at most ``workers`` at a time (a CPU each),
    each cell searched serially.  Results in job order, so the output is the serial one;
    ``done(cell)`` is called as each cell comes in.  Ctrl-C cancels the tasks not done."""
    import ray.cloudpickle as cloudpickle

    from .parallel import ray_runtime
    ray = ray_runtime(settings.get("ray_address"), workers)
    serial = dict(settings, ray_address=None)
    blobs = {s: ray.put(cloudpickle.dumps(({s: loaded[s]}, hardware, serial)))
             for s in dict.fromkeys(s for s, _ in jobs)}  # a task loads its own scenario only
    task = ray.remote(num_cpus=1)(_ray_cell)
    todo = [(s, d, e) for (s, d), e in zip(jobs, exps)]
    refs: list = []
    cells = []
    try:
        for i in range(len(todo)):
            while len(refs) - len(cells) < workers and len(refs) < len(todo):
                s, d, e = todo[len(refs)]
                refs.append(task.remote(blobs[s], s, d, e))
            res = ray.get(refs[i])
            if isinstance(res, Exception):
                raise res
            cells.append(res)
            done(res)
    except BaseException:
        for r in refs[len(cells):]:
            ray.cancel(r, force=True)
        raise
    return cells


def html_report(cells: list[Cell], saved: list[str]) -> str:
    """The self-contained HTML report (:mod:`pasidsim.report.check_html`): the coloured
    scenario × design grid linked to each counterexample (diagram, invariant, message, what
    each step changed), and the design legend."""
    from ..designs import DESCRIPTIONS
    from ..report.check_html import check_html
    designs = list(dict.fromkeys(c.design for c in cells))
    return check_html([c.to_json() for c in cells], saved,
                      [{"name": d, "label": _label(d), "description": DESCRIPTIONS.get(d, "")}
                       for d in designs])
