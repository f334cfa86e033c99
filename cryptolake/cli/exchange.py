"""`cryptolake exchange` commands (work in progress)."""

from __future__ import annotations

import typer

app = typer.Typer(help="exchange commands", no_args_is_help=True)
