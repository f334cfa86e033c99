"""The project's SQL, shipped inside the package (``cryptolake/sql/<name>.sql``) and read by name.

Queries are package data, so they are found the same way in a source checkout and in an installed
wheel; adding a query is adding a ``.sql`` file to that folder.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

from cryptolake.errors import DataValidationError

SQL_FOLDER = "sql"


def _folder() -> Traversable:
    return resources.files("cryptolake").joinpath(SQL_FOLDER)


def sql_names() -> tuple[str, ...]:
    """The name (file stem) of every query shipped, sorted."""
    return tuple(sorted(f.name.removesuffix(".sql") for f in _folder().iterdir() if f.name.endswith(".sql")))


def sql_text(name: str) -> str:
    """The text of the query ``name`` (``cryptolake/sql/<name>.sql``); an unknown name lists the known ones."""
    file = _folder().joinpath(f"{name}.sql")
    if not name or "/" in name or "\\" in name or not file.is_file():
        raise DataValidationError("name", name, f"no such query in cryptolake/sql; known: {', '.join(sql_names())}")
    return file.read_text(encoding="utf-8")


def alt_training_set_sql() -> str:
    """``alt_training_set.sql`` with ``training_set.sql`` inlined and the alt columns listed (one text, no drift)."""
    from cryptolake.tables import ALT_FEATURE_COLUMNS

    base = sql_text("training_set").strip().rstrip(";")
    cols = ",\n       ".join(f"a.{c}" for c in ALT_FEATURE_COLUMNS)
    return sql_text("alt_training_set").replace("{training_set}", base).replace("{alt_columns}", cols)
