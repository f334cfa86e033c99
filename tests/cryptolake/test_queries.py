"""cryptolake.queries: every .sql file of cryptolake/sql is found by name through importlib.resources."""

from __future__ import annotations

from pathlib import Path

import pytest

import cryptolake
from cryptolake.errors import DataValidationError
from cryptolake.queries import sql_names, sql_text

SQL_DIR = Path(cryptolake.__file__).parent / "sql"


def test_every_sql_file_of_the_package_is_a_query_by_its_stem() -> None:
    on_disk = sorted(p.stem for p in SQL_DIR.glob("*.sql"))
    assert list(sql_names()) == on_disk
    assert {"alt_features", "alt_training_set", "training_set", "views"} <= set(on_disk)
    for name in on_disk:
        assert sql_text(name) == (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def test_training_set_query_is_the_point_in_time_select() -> None:
    text = sql_text("training_set")
    assert "label_available_time" in text and "$as_of" in text


@pytest.mark.parametrize("name", ["no_such_query", "", "../settings", "views.sql"])
def test_unknown_query_names_the_value_and_the_known_queries(name: str) -> None:
    with pytest.raises(DataValidationError, match="known: alt_features, alt_training_set") as info:
        sql_text(name)
    assert info.value.field == "name" and info.value.value == name
