"""The ``pasidsim`` command.

Commands: ``demo``, ``designs``, ``scenarios``, ``run``, ``topology``, ``schema`` (and
``check``, ``simulate`` from their packages).  Exit codes, the same for every command:

- 0 success (every expectation held; every cell as expected);
- 1 a violation or failed expectation (a cell not as expected);
- 2 bad input (a scenario, workload or dump that cannot be used; the message on stderr says
  ``file:line: field: what``);
- 3 inconclusive: a bound stopped a search before it was exhaustive, nothing else wrong;
- 130 interrupted (Ctrl-C): every output file is whole, the new one or the one before
  (each is written to a temporary file and renamed).

New commands load scenarios with :func:`load_compiled` and report bad input with
:func:`bad_input`.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click
from rich.console import Console

from . import __version__

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_BOUNDED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def bad_input(message: str) -> NoReturn:
    """Print ``message`` to stderr and exit with status 2."""
    from rich.markup import escape
    Console(stderr=True, highlight=False).print(f"[red]error:[/red] {escape(message)}",
                                                markup=True, soft_wrap=True)
    sys.exit(EXIT_BAD_INPUT)


def load_compiled(spec: str, design: str | None = None):
    """Load, validate and compile a scenario (a path or a built-in name); any problem with the
    input ends the command with :func:`bad_input`."""
    from .designs import DESIGNS
    from .scenario import ScenarioError, compile_scenario, load_scenario, resolve_scenario
    if design is not None and design not in DESIGNS:
        bad_input(f"unknown design {design!r}; known: {', '.join(DESIGNS)}")
    try:
        return compile_scenario(load_scenario(resolve_scenario(spec)), design=design)
    except ScenarioError as e:
        bad_input(str(e))


class _Commands(click.Group):
    """The command group: Ctrl-C ends any command with one line and status 130 (click's own
    handling says "Aborted!" and exits 1, the status of a violation)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, click.Abort):
            Console(stderr=True, highlight=False).print(
                "interrupted: files already written are whole (each replaced at once)",
                soft_wrap=True)
            sys.exit(EXIT_INTERRUPTED)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pasidsim")
def main() -> None:
    """pasidsim: the Linux IOMMU PASID subsystem as a library, simulator and model checker.

    Exit status: 0 success, 1 a violation or failed expectation, 2 bad input, 3 a search not
    exhaustive (a bound stopped it), 130 interrupted."""


@main.command()
@click.option("--policy", "policy_name", default="current", show_default=True,
              help="design variant (see `pasidsim designs`)")
def demo(policy_name: str) -> None:
    """Run the worked example: a uacce accelerator queue opened, inherited by fork, and the
    PASID's lifetime through both processes' exits."""
    from .examples import lifecycle_demo
    from .designs import get_policy
    console = Console()
    for renderable in lifecycle_demo(get_policy(policy_name)):
        console.print(renderable)


@main.command()
def designs() -> None:
    """List the design variants (policies) by name."""
    from .designs import DESCRIPTIONS, DESIGNS
    console = Console()
    for name in DESIGNS:
        console.print(f"[bold]{name}[/bold]: {DESCRIPTIONS.get(name, '')}")


@main.command()
def scenarios() -> None:
    """List the built-in scenarios and what each demonstrates."""
    from rich.table import Table
    from .scenario import ScenarioError, builtin_scenarios, load_scenario
    t = Table(title="built-in scenarios (pasidsim run NAME)", title_justify="left")
    t.add_column("name", style="bold", no_wrap=True)
    t.add_column("demonstrates")
    for name, path in builtin_scenarios().items():
        try:
            t.add_row(name, load_scenario(path).model.demonstrates or "")
        except ScenarioError as e:
            t.add_row(name, f"[red]{e}[/red]")
    Console().print(t)


@main.command()
@click.argument("scenario")
@click.option("--design", default=None, help="run on this design instead of the file's")
@click.option("--json", "as_json", is_flag=True, help="print a machine-readable JSON trace")
@click.option("--mermaid", "mermaid_file", type=click.Path(dir_okay=False, writable=True),
              help="write the run as a Mermaid sequence diagram to FILE")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, writable=True),
              help="write a self-contained HTML page (SVG diagram + trace) to FILE")
@click.option("--no-state", is_flag=True, help="do not print the final state tables")
@click.option("--granularity", type=click.Choice(["call", "lock"]), default=None,
              help="call: every kernel call is one step; lock: calls stop at their preemption "
                   "points, the trace shows who holds which lock (default: the file's)")
@click.option("--diff", "show_diff", is_flag=True,
              help="after the trace, what each step changed in the state (objects named)")
@click.option("--itf", "itf_file", type=click.Path(dir_okay=False, writable=True),
              help="write the run with the full state at every step to FILE in the Informal "
                   "Trace Format (ITF, as Apalache and Quint write it)")
def run(scenario: str, design: str | None, as_json: bool, mermaid_file: str | None,
        html_file: str | None, no_state: bool, granularity: str | None, show_diff: bool,
        itf_file: str | None) -> None:
    """Run SCENARIO (a file, or the name of a built-in scenario) once and print its trace.

    Exit status: 0 when every expectation held and no invariant broke (unless the scenario
    counts its violations: `expect_final: {violations: N}`), 1 otherwise, 2 on bad input.
    """
    from .scenario.runner import run_scenario, total_steps
    from .state import Granularity
    c = load_compiled(scenario, design)
    if granularity is not None:
        c.granularity = Granularity[granularity.upper()]
    from functools import partial
    keep = bool(show_diff or itf_file or html_file)
    result = _run_with_progress(c, partial(run_scenario, keep_states=keep), total_steps(c),
                                quiet=as_json)
    if itf_file:
        from .report.itf import itf_text, run_itf
        from .report.output import write_text_atomic
        write_text_atomic(itf_file, itf_text(run_itf(result)))
    if mermaid_file:
        from .report.mermaid import write_mermaid
        write_mermaid(result, mermaid_file)
    if html_file:
        from .report.mermaid import write_html
        write_html(result, html_file)
    if as_json:
        from .report.json_out import dumps
        click.echo(dumps(result), nl=False)
    else:
        from .scenario.trace import render_result
        console = Console()
        for part in render_result(result, state=not no_state):
            console.print(part)
        if show_diff:
            from rich.markup import escape

            from .report.itf import run_diffs
            from .scenario.trace import event_rows
            console.print("[bold]what each step changed[/bold]")
            for row, lines in zip(event_rows(result), run_diffs(result)):
                console.print(f"{row.index:4}. {escape(row.actor)}: {escape(row.call)} = "
                              f"{escape(row.ret)}", soft_wrap=True, highlight=False)
                for line in lines or ["(nothing)"]:
                    console.print(f"        {escape(line)}", soft_wrap=True, highlight=False)
    sys.exit(result.exit_code)


def _run_with_progress(c, run_scenario, total: int, quiet: bool):
    if total <= 200:
        return run_scenario(c)
    from rich.progress import Progress
    with Progress(console=Console(stderr=True), transient=True, disable=quiet) as progress:
        task = progress.add_task(f"running {c.model.name}", total=total)
        return run_scenario(c, on_event=lambda i, ev: progress.update(task, completed=i + 1))


@main.command()
@click.argument("files", nargs=-1, type=click.Path())
@click.option("--json", "as_json", is_flag=True,
              help="print JSON: the counts, and under \"topology\" every unit, group and "
                   "device with its fields (unknown: null)")
@click.option("--tree", "as_tree", is_flag=True,
              help="print the machine as a tree: IOMMU unit → group → device")
@click.option("--svg", "svg_file", type=click.Path(dir_okay=False, writable=True),
              metavar="FILE",
              help="draw unit → group → device with PASID/ATS/PRI to FILE (.svg or .png)")
@click.option("--strict", is_flag=True,
              help="treat any unparsable line (a warning) as an error; notes, on valid "
                   "content the importer made a choice about, are not")
@click.option("--group", "groups", multiple=True, metavar="NAME",
              help="show only this IOMMU group (repeatable)")
@click.option("--device", "devices", multiple=True, metavar="NAME",
              help="show only the group of this device, by name or BDF (repeatable)")
def topology(files: tuple[str, ...], as_json: bool, as_tree: bool, svg_file: str | None,
             strict: bool, groups: tuple[str, ...], devices: tuple[str, ...]) -> None:
    """Show a machine's IOMMU units, groups, PASID-capable devices and which groups can be
    assigned to user space.  FILES are dumps (lspci -vvv, IOMMU-group listings, dmesg,
    /proc/iomem) or a sysfs root; with none, the built-in default machine is shown.  What a
    dump does not show is unknown ("?", null); where the simulated machine needs it (a unit,
    a group per device, a PASID limit, SVA) it is labelled as assumed.  The header and
    --json give the same counts.  --group/--device narrow the views to those groups (the
    counts of --json stay whole-machine).  --tree prints unit → group → device; --svg FILE
    draws it (and prints nothing else unless --json or --tree is given)."""
    from .topology import TopologyError, load_topology, render_topology, topology_summary
    from .topology.export import hierarchy, selection, tree
    if files:
        try:
            topo = load_topology(list(files), strict=strict)
        except TopologyError as e:
            bad_input(str(e))
        data, view = (topology_summary(topo) if as_json else None), topo
    else:
        from .machines import default_config
        cfg = default_config()
        view = cfg
        data = {"machine": "default", "units": len(cfg.iommus), "devices": len(cfg.devices),
                "groups": len(cfg.groups),
                "multi_device_groups": sum(1 for g in cfg.groups if len(g.devices) > 1),
                "pasid_capable": sum(1 for d in cfg.devices if d.pasid_bits),
                "pasid_widths": {d.name: d.pasid_bits for d in cfg.devices if d.pasid_bits}}
    try:
        only = selection(view, groups, devices)
    except ValueError as e:
        bad_input(str(e))
    if svg_file:
        from .topology.draw import draw
        try:
            rows = draw(view, svg_file, only)
        except (ValueError, OSError) as e:
            bad_input(str(e))
        click.echo(f"wrote {svg_file} ({rows} device rows)", err=True)
    if as_json:
        import json
        data["topology"] = hierarchy(view, only)
        click.echo(json.dumps(data, sort_keys=True, indent=2))
        return
    if as_tree:
        Console().print(tree(view, only))
        return
    if not svg_file:
        Console().print(render_topology(view, only))


@main.command()
@click.option("--write", is_flag=True,
              help="regenerate the shipped schemas (scenario.schema.json and the outputs')")
@click.option("--check", "check_only", is_flag=True,
              help="exit 1 when a shipped schema file is out of date")
@click.option("--output", "output", type=click.Choice(["run", "check"]), default=None,
              help="the schema of `pasidsim run --json` or `pasidsim check --json` output "
                   "instead of the scenario files'")
def schema(write: bool, check_only: bool, output: str | None) -> None:
    """Print the JSON Schema of scenario files, or with --output of a command's JSON output
    (both generated from the pydantic models)."""
    from .report.schemas import (OUTPUTS, output_schema_path, output_schema_text,
                                 write_output_schemas)
    from .scenario.schema import schema_path, schema_text, write_json_schema
    if write:
        for path in [write_json_schema(), *write_output_schemas()]:
            click.echo(path)
        return
    if check_only:
        files = [(schema_path(), schema_text())] + [
            (output_schema_path(k), output_schema_text(k)) for k in OUTPUTS]
        stale = [p for p, text in files
                 if not p.is_file() or p.read_text(encoding="utf-8") != text]
        for p in stale:
            click.echo(f"{p} is out of date: run `pasidsim schema --write`", err=True)
        if stale:
            sys.exit(EXIT_FAILED)
        click.echo("up to date")
        return
    click.echo(output_schema_text(output) if output else schema_text(), nl=False)


def _register_check() -> None:
    from .check.cli_check import check_cmd
    main.add_command(check_cmd)


_register_check()


def _register_simulate() -> None:
    from .sim.cli_sim import simulate_cmd
    main.add_command(simulate_cmd)


_register_simulate()

if __name__ == "__main__":  # pragma: no cover  (after every command is registered)
    main(prog_name="pasidsim")
