"""`cryptolake exchange silver` refuses a bad interval before touching Spark or Kafka."""

from __future__ import annotations

from typer.testing import CliRunner

from cli.exchange import app


def test_silver_refuses_naive_times_and_names_the_flag():
    result = CliRunner().invoke(app, ["silver", "--start", "2024-08-08T00:00:00", "--end", "2024-08-09T00:00:00+00:00"])
    assert result.exit_code != 0
    assert "--start" in result.output and "must be UTC" in result.output


def test_silver_refuses_an_empty_interval_and_unknown_tables():
    runner = CliRunner()
    empty = runner.invoke(app, ["silver", "--start", "2024-08-09T00:00:00+00:00", "--end", "2024-08-08T00:00:00+00:00"])
    assert empty.exit_code != 0 and "must be after --start" in empty.output
    bad = runner.invoke(app, ["silver", "--start", "2024-08-08T00:00:00+00:00", "--end", "2024-08-09T00:00:00+00:00",
                              "--tables", "orders"])
    assert bad.exit_code != 0 and "'orders'" in bad.output
