"""The ``pasidsim`` command."""

from __future__ import annotations

import click
from rich.console import Console

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pasidsim")
def main() -> None:
    """pasidsim: the Linux IOMMU PASID subsystem as a library, simulator and model checker."""


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
    from .designs import DESIGNS
    console = Console()
    for name, pol in DESIGNS.items():
        console.print(f"[bold]{name}[/bold]: {pol.__doc__ or ''}".rstrip())


if __name__ == "__main__":  # pragma: no cover
    main()
