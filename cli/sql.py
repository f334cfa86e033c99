"""``cryptolake sql``: run SQL over the lake's DuckDB views, or open an interactive shell.

The connection comes from :func:`cryptolake.duck.connect` (one view per Delta table, named
``<layer>_<entity>``); the analytics views of ``cryptolake/sql/views.sql`` are added on top, each only
when the lake views it reads exist.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import typer

from cryptolake.errors import ConfigError
from cryptolake.logs import get_logger
from cryptolake.queries import sql_text
from cryptolake.settings import Settings, get_settings

log = get_logger(__name__)

VIEWS_SQL = "views"  # cryptolake/sql/views.sql
_HEADER = re.compile(r"^--\s*view:\s*(?P<name>\w+)\s+requires:\s*(?P<requires>[\w\s,]+?)\s*$", re.M)
PROMPT = "cryptolake> "
CONTINUATION = "       ...> "
HELP = """Statements end with ';' and may span lines.
  .tables   list tables and views
  .views    list the analytics views and the ones skipped (missing lake tables)
  .help     this text
  .quit     leave (also .exit or Ctrl-D)"""


@dataclass(frozen=True)
class ViewDef:
    """One ``CREATE VIEW`` of ``cryptolake/sql/views.sql`` and the lake views it reads."""

    name: str
    requires: tuple[str, ...]
    sql: str


def parse_views(text: str) -> list[ViewDef]:
    """Split ``views.sql`` at its ``-- view: <name> requires: a, b`` headers."""
    headers = list(_HEADER.finditer(text))
    if not headers:
        raise ConfigError("views.sql has no '-- view: <name> requires: ...' headers")
    views = []
    for i, header in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        body = text[header.end() : end].strip()
        requires = tuple(r.strip() for r in header["requires"].split(",") if r.strip())
        views.append(ViewDef(header["name"], requires, body))
    return views


def relations(con: Any) -> list[str]:
    """Names of every table and view in the connection's main schema (excluding DuckDB internals)."""
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY table_name"
    ).fetchall()
    return [r[0] for r in rows]


def apply_views(con: Any, text: str | None = None) -> dict[str, list[str]]:
    """Create the analytics views whose lake views exist; return ``{"created": [...], "skipped": [...]}``.

    ``text`` defaults to ``cryptolake/sql/views.sql``. A skipped view is logged (debug) with the
    missing lake views and listed by the shell's ``.views``; a view whose SQL fails is an error.
    """
    available = set(relations(con))
    created: list[str] = []
    skipped: list[str] = []
    for view in parse_views(sql_text(VIEWS_SQL) if text is None else text):
        missing = [r for r in view.requires if r not in available]
        if missing:
            skipped.append(view.name)
            log.debug("sql.view.skipped", extra={"view": view.name, "missing": missing})
            continue
        con.execute(view.sql)
        available.add(view.name)
        created.append(view.name)
    return {"created": created, "skipped": skipped}


def open_lake(settings: Settings | None = None) -> tuple[Any, dict[str, list[str]]]:
    """A DuckDB connection with the lake views and the analytics views."""
    from cryptolake import duck

    con = duck.connect(settings or get_settings())
    return con, apply_views(con)


def run_statement(con: Any, statement: str) -> Any:
    """Execute one statement; return a DataFrame for queries, ``None`` for statements without rows."""
    cursor = con.execute(statement)
    if cursor.description is None:
        return None
    return cursor.df()


def render(frame: Any, fmt: str, echo: Callable[[str], None] = typer.echo, max_rows: int = 1000) -> None:
    """Print a DataFrame as a table, CSV or JSON records."""
    if fmt == "csv":
        echo(frame.to_csv(index=False).rstrip("\n"))
        return
    if fmt == "json":
        echo(frame.to_json(orient="records", date_format="iso"))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False)
    for col in frame.columns:
        table.add_column(str(col), overflow="fold")
    for row in frame.head(max_rows).itertuples(index=False):
        table.add_row(*("NULL" if _is_null(v) else str(v) for v in row))
    console = Console(file=sys.stdout, width=max(80, min(240, 16 * len(frame.columns))))
    console.print(table)
    shown = min(len(frame), max_rows)
    echo(f"({len(frame)} rows{'' if shown == len(frame) else f', first {shown} shown'})")


def _is_null(value: Any) -> bool:
    try:
        return bool(value != value) or value is None  # NaN, NaT
    except (TypeError, ValueError):
        return False


def _format(csv: bool, json_: bool) -> str:
    if csv and json_:
        raise typer.BadParameter("choose one of --csv and --json")
    return "csv" if csv else "json" if json_ else "table"


def repl(con: Any, views: dict[str, list[str]], fmt: str = "table", max_rows: int = 1000) -> None:
    """Read statements from stdin until ``.quit`` or end of input; errors are printed, not fatal."""
    import duckdb

    try:
        import readline  # noqa: F401  (history and line editing for input())
    except ImportError:
        log.debug("sql.repl.no_readline")
    typer.echo(f"cryptolake sql: {len(relations(con))} tables/views. '.help' for help, '.quit' to leave.")
    buffer: list[str] = []
    while True:
        try:
            line = input(CONTINUATION if buffer else PROMPT)
        except EOFError:
            typer.echo("")
            break
        stripped = line.strip()
        if not buffer and stripped.startswith("."):
            command = stripped.split()[0]
            if command in (".quit", ".exit"):
                break
            if command == ".tables":
                typer.echo("\n".join(relations(con)))
            elif command == ".views":
                typer.echo(f"created: {', '.join(views['created']) or '-'}")
                typer.echo(f"skipped (missing lake tables): {', '.join(views['skipped']) or '-'}")
            elif command == ".help":
                typer.echo(HELP)
            else:
                typer.echo(f"unknown command {command!r}; '.help' lists them")
            continue
        if not stripped and not buffer:
            continue
        buffer.append(line)
        if not stripped.endswith(";"):
            continue
        statement = "\n".join(buffer)
        buffer = []
        try:
            frame = run_statement(con, statement)
        except duckdb.Error as e:
            typer.echo(f"Error: {e}")
            continue
        if frame is None:
            typer.echo("OK")
        else:
            render(frame, fmt, max_rows=max_rows)


def sql(
    query: str | None = typer.Argument(None, help="SQL to run; omit it to open the interactive shell"),
    csv: bool = typer.Option(False, "--csv", help="Print CSV instead of a table"),
    json_: bool = typer.Option(False, "--json", help="Print JSON records instead of a table"),
    max_rows: int = typer.Option(1000, "--max-rows", min=1, help="Rows shown in table output"),
) -> None:
    """Run SQL over the lake (DuckDB views of every Delta table + cryptolake/sql/views.sql), or open a shell."""
    import duckdb

    fmt = _format(csv, json_)
    con, views = open_lake()
    try:
        if query is None:
            repl(con, views, fmt, max_rows)
            return
        try:
            frame = run_statement(con, query)
        except duckdb.Error as e:
            typer.echo(f"Error: {e}", err=True)
            raise typer.Exit(code=1) from e
        if frame is None:
            typer.echo("OK")
        else:
            render(frame, fmt, max_rows=max_rows)
    finally:
        con.close()
