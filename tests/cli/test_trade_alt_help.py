"""`cryptolake backtest` and `cryptolake trade run` offer the alt side input switches."""

from __future__ import annotations

from typer.testing import CliRunner


def _help(*args: str) -> str:
    from cli.main import app

    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"})
    assert result.exit_code == 0, result.output
    return result.output


def test_backtest_help_lists_with_alt_and_no_alt() -> None:
    out = _help("backtest")
    assert "--with-alt" in out and "--no-alt" in out


def test_trade_run_help_lists_with_alt_and_alt_refresh() -> None:
    out = _help("trade", "run")
    assert "--with-alt" in out and "--no-alt" in out and "--alt-refresh" in out
