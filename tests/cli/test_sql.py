from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.main import app
from cryptolake.settings import get_settings


@pytest.fixture
def lake_env(hand_lake, monkeypatch):
    """Point the CLI's settings (read from the environment) at the hand-made lake."""
    monkeypatch.setenv("CRYPTOLAKE__PATHS__LAKE_ROOT", hand_lake.paths.lake())
    get_settings.cache_clear()
    yield hand_lake
    monkeypatch.delenv("CRYPTOLAKE__PATHS__LAKE_ROOT")
    get_settings.cache_clear()


def test_query_prints_csv(lake_env):
    result = CliRunner().invoke(
        app, ["sql", "SELECT symbol, count(*) AS n FROM gold_features GROUP BY 1 ORDER BY 1", "--csv"]
    )
    assert result.exit_code == 0, result.stdout
    assert result.stdout.strip().splitlines() == ["symbol,n", "BTC/USD,4", "ETH/USD,2", "XRP/USD,1"]


def test_query_prints_json_and_table(lake_env):
    result = CliRunner().invoke(app, ["sql", "SELECT symbol, rows FROM feature_coverage ORDER BY 1", "--json"])
    assert result.exit_code == 0, result.stdout
    assert json.loads(result.stdout) == [
        {"symbol": "BTC/USD", "rows": 4}, {"symbol": "ETH/USD", "rows": 2}, {"symbol": "XRP/USD", "rows": 1},
    ]
    table = CliRunner().invoke(app, ["sql", "SELECT 41 + 1 AS answer"])
    assert table.exit_code == 0
    assert "answer" in table.stdout and "42" in table.stdout and "(1 rows)" in table.stdout


def test_bad_query_exits_non_zero_with_the_error(lake_env):
    result = CliRunner().invoke(app, ["sql", "SELECT * FROM no_such_table"])
    assert result.exit_code == 1
    assert "no_such_table" in result.stderr and result.stdout == ""


def test_shell_runs_multiline_statements_and_dot_commands(lake_env):
    stdin = "\n".join([
        ".tables",
        "SELECT symbol,",
        "       count(*) AS n",
        "FROM gold_labels GROUP BY 1 ORDER BY 1;",
        "SELECT * FROM missing_table;",
        "SELECT 'still alive' AS status;",
        ".views",
        ".quit",
        "SELECT 'never run' AS status;",
    ]) + "\n"
    result = CliRunner().invoke(app, ["sql", "--csv"], input=stdin)
    assert result.exit_code == 0, result.stdout
    out = result.stdout
    assert "gold_features" in out and "gold_labels" in out and "feature_coverage" in out  # .tables
    assert "BTC/USD,3" in out and "ETH/USD,2" in out and "XRP/USD,1" in out
    assert "Error:" in out and "missing_table" in out  # an error does not end the shell
    assert "still alive" in out
    assert "skipped (missing lake tables): bars_daily" in out
    assert "never run" not in out


def test_shell_ends_at_end_of_input(lake_env):
    result = CliRunner().invoke(app, ["sql"], input="SELECT 1 AS one;\n")
    assert result.exit_code == 0
    assert "one" in result.stdout


def test_help_describes_the_command():
    result = CliRunner().invoke(app, ["sql", "--help"])
    assert result.exit_code == 0
    assert "--csv" in result.stdout and "interactive" in result.stdout
