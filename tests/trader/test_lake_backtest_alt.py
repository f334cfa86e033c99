"""`run_lake_backtest` with a selector over a lake that has `gold.alt_features`: the rows are loaded, the status
lands in the result, and the rows change the selector's decisions (January 2022's REAL BTC-PERP bars, 1 h, and
that month's real headlines and tweets, scored by the lake's own SQL; written with delta-rs, no JVM)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cryptolake.tables import GOLD_ALT_FEATURES, SILVER_BARS
from pipeline.backtest import run_lake_backtest
from tests.cli.test_backtest import _silver
from tests.conftest import settings_in
from tests.models.lake_fixture import write_table
from tests.trader.test_regimes import BY_REGIME, HOUR, INST, WIDE, held
from trader.altdata import AltFeatures
from trader.config import TraderConfig
from trader.node import TradingNode
from trader.regimes import RISK_OFF, RegimeConfig
from trader.strategies.selector import CASH, SelectorConfig, SelectorStrategy, trace_choices


@pytest.fixture(scope="module")
def month(shared_data: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The month's 1 h bars and their gold.alt_features rows (as tests/trader/test_regimes.py builds them)."""
    import duckdb

    from research.alt_ablation import BARS_FILE, END, START, load_documents
    from spark_jobs.gold.alt_features import compute_alt_features

    raw = pd.read_csv(shared_data / BARS_FILE)
    raw["open_time"] = pd.to_datetime(raw["timestamp"], utc=True)
    raw = raw[(raw.open_time >= START) & (raw.open_time < END)].drop_duplicates("open_time")
    bars = raw.set_index("open_time").resample("1h").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}).dropna().reset_index()
    grid = pd.DataFrame({"coin": "BTC", "timeframe": "1h", "ts": bars.open_time, "close_time": bars.open_time + HOUR})
    con = duckdb.connect()
    try:
        alt = compute_alt_features(con, grid, load_documents(shared_data))
    finally:
        con.close()
    return bars, alt


@pytest.fixture(scope="module")
def lake(month, tmp_path_factory) -> Any:
    bars, alt = month
    settings = settings_in(tmp_path_factory.mktemp("alt-lake"))
    silver = bars.assign(exchange=INST.exchange, symbol=INST.symbol, timeframe="1h",
                         close_time=bars.open_time + HOUR)
    write_table(SILVER_BARS, _silver([silver]), settings)
    write_table(GOLD_ALT_FEATURES, alt.assign(bar_date=pd.to_datetime(alt.ts, utc=True).dt.date), settings)
    return settings


def _selector() -> SelectorConfig:
    return SelectorConfig(confirm_bars=1, by_regime=BY_REGIME, regime=RegimeConfig(sentiment=WIDE))


def _run(lake: Any, tmp_path: Path, *, alt: bool) -> tuple[Any, SelectorStrategy, str]:
    config = TraderConfig(exchange=INST.exchange, symbols=(INST.symbol,), timeframe="1h", strategies=(_selector(),))
    nodes: list[TradingNode] = []
    run = run_lake_backtest(config, settings=lake, store_url=f"sqlite:///{tmp_path}/t.db", alt=alt,
                            inspect=nodes.append)
    sel = nodes[0].strategies[0]
    assert isinstance(sel, SelectorStrategy)
    return run, sel, run.tearsheet.read_text()  # read now: a second run of the same window rewrites it


def test_the_lake_backtest_loads_the_alt_rows_and_they_change_the_selectors_decisions(lake, month, tmp_path) -> None:
    bars, alt = month
    with_alt, sel, sheet = _run(lake, tmp_path, alt=True)
    without, plain, _ = _run(lake, tmp_path, alt=False)
    assert with_alt.alt["status"] == with_alt.result.stats["alt_status"] == "loaded"
    assert with_alt.alt["rows"] == len(alt) and with_alt.alt["coins"] == ["BTC"]
    assert without.alt["status"] == without.result.stats["alt_status"] == "off"
    got = pd.DataFrame([vars(c) for c in sel.choices])
    # the node's choices are the ones the month's rows give, bar by bar (the lake added or lost nothing)
    expected = trace_choices(_selector().model_copy(update={"alt": AltFeatures(alt)}), bars, INST, "1h")
    assert got.astype(str).equals(expected.astype(str))
    risk_off = got[got.regime == RISK_OFF]
    assert len(risk_off) >= 3 and (risk_off.chosen == CASH).all()
    assert risk_off.reason.str.contains("sentiment").all()
    plain_choices = pd.DataFrame([vars(c) for c in plain.choices])
    assert not (plain_choices.regime == RISK_OFF).any()
    # the member held after each close, with and without the rows: the rows send the selector to cash
    closes = pd.Series(bars.open_time + HOUR).iloc[sel.history_bars:]
    with_rows, no_rows = held(got, closes), held(plain_choices, closes)
    changed = with_rows != no_rows
    assert changed.sum() >= 3 and (with_rows[changed] == CASH).all()
    assert "Alt data side input" in sheet and "<td>loaded</td>" in sheet
