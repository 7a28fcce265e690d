"""``python -m pasidsim``: the same command line as ``pasidsim``."""

from .cli import main

main(prog_name="pasidsim")
