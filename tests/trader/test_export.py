"""A finished run exported to Delta (trading.orders/fills/equity): readable by DuckDB, re-export
replaces only that run. Candles are real; signals SYNTHETIC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from cryptolake.errors import DataValidationError
from cryptolake.settings import Settings
from cryptolake.tables import TRADING_EQUITY, TRADING_FILLS, TRADING_ORDERS
from tests.conftest import settings_in
from tests.trader.conftest import gym_frame, synthetic_multi_signals
from tests.trader.test_multi import multi_config
from trader.backtest import run_backtest
from trader.export import export_run, to_arrow
from trader.store import TradeStore

SYMBOLS = ("BTC/USD", "XRP/USD")
START = datetime(2019, 3, 1, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return settings_in(tmp_path)


def _run(run_id: str, url: str, n_bars: int) -> Any:
    bars = gym_frame(SYMBOLS, START, n_bars)
    cfg = multi_config(symbols=SYMBOLS)
    return run_backtest(bars, synthetic_multi_signals(bars), cfg, run_id=run_id, store_url=url)


def _read(spec, settings) -> pd.DataFrame:
    from deltalake import DeltaTable

    return DeltaTable(spec.path(settings)).to_pandas()


def test_export_writes_three_tables_duckdb_sees_and_reexport_replaces_only_the_run(settings, tmp_path) -> None:
    from cryptolake.duck import connect

    url = f"sqlite:///{tmp_path}/store.db"
    a = _run("run-a", url, 120)
    b = _run("run-b", url, 80)
    counts_a = export_run("run-a", store_url=url, settings=settings)
    export_run("run-b", store_url=url, settings=settings)
    assert counts_a == {
        "trading.orders": len(a.orders),
        "trading.fills": len(a.fills),
        "trading.equity": len(a.equity),
    }
    fills = _read(TRADING_FILLS, settings)
    assert sorted(fills.groupby("run_id").size().items()) == [("run-a", len(a.fills)), ("run-b", len(b.fills))]
    mine = fills[fills.run_id == "run-a"].sort_values("id").reset_index(drop=True)
    expected = a.fills.sort_values("id").reset_index(drop=True)
    assert list(mine.price) == list(expected.price) and list(mine.fee) == list(expected.fee)
    assert set(mine["mode"]) == {"backtest"} and str(mine.ts.dt.tz) == "UTC"

    # re-running run-a on a shorter window and re-exporting replaces run-a's rows, leaves run-b's
    a2 = _run("run-a", url, 60)
    export_run("run-a", store_url=url, settings=settings)
    export_run("run-a", store_url=url, settings=settings)  # idempotent
    con = connect(settings)
    rows = dict(con.execute("SELECT run_id, count(*) FROM trading_equity GROUP BY run_id").fetchall())
    assert rows == {"run-a": len(a2.equity), "run-b": len(b.equity)}
    n_orders = con.execute("SELECT count(*) FROM trading_orders WHERE run_id = 'run-a'").fetchone()
    assert n_orders == (len(a2.orders),)
    final = con.execute("SELECT equity FROM trading_equity WHERE run_id = 'run-a' ORDER BY ts DESC LIMIT 1").fetchone()
    assert final is not None and final[0] == pytest.approx(a2.metrics["final_equity"])
    assert set(_read(TRADING_ORDERS, settings).columns) == set(TRADING_ORDERS.column_names)


def test_export_refuses_unknown_or_unfinished_runs(settings, tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    with pytest.raises(DataValidationError, match="no such run"):
        export_run("missing", store_url=url, settings=settings)
    TradeStore(url).begin_run("open-run", "live", {})
    with pytest.raises(DataValidationError, match="status"):
        export_run("open-run", store_url=url, settings=settings)


def test_rows_are_validated_before_writing() -> None:
    df = pd.DataFrame(
        {c: [None, None] for c in TRADING_EQUITY.column_names}
        | {"run_id": ["r", "r"], "ts": pd.to_datetime(["2019-01-01", "2019-01-01"], utc=True)}
    )
    with pytest.raises(DataValidationError, match="duplicate key"):
        to_arrow(df, TRADING_EQUITY)
    naive = df.assign(ts=pd.to_datetime(["2019-01-01", "2019-01-02"]))
    with pytest.raises(DataValidationError, match="UTC"):
        to_arrow(naive, TRADING_EQUITY)
