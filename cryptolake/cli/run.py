"""`cryptolake run` commands (work in progress)."""

from __future__ import annotations

import typer

app = typer.Typer(help="run commands", no_args_is_help=True)
