"""Trading store: round trip through SQLite and idempotent re-writes keyed by run id."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.trader.conftest import btc_frame, make_config, synthetic_signals
from trader.backtest import run_backtest
from trader.store import TradeStore
from trader.strategies.threshold import ThresholdConfig


def _run(url: str, run_id: str = "r1", n: int = 120):
    bars = btc_frame(n)
    probs = [0.9 if (i // 7) % 2 == 0 else 0.2 for i in range(n)]  # SYNTHETIC on/off pattern
    cfg = make_config(strategy=ThresholdConfig(threshold=0.6, fraction=0.5, stop_loss_pct=0.01, take_profit_pct=0.01))
    return run_backtest(bars, synthetic_signals(bars, probs), cfg, run_id=run_id, store_url=url)


def test_round_trip_matches_the_result(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    result = _run(url)
    store = TradeStore(url)
    fills = store.fills("r1")
    assert len(fills) == len(result.fills) > 4
    pd.testing.assert_series_equal(fills["price"], result.fills["price"], check_names=False)
    assert list(fills["ts"]) == list(result.fills["ts"])
    assert fills["ts"].dt.tz is not None
    orders = store.orders("r1").set_index("client_id").sort_index()
    expected = result.orders.set_index("client_id").sort_index()
    assert list(orders["status"]) == list(expected["status"])
    eq = store.equity("r1")
    assert len(eq) == 120 and eq["equity"].iloc[-1] == pytest.approx(result.metrics["final_equity"])
    assert len(store.trades("r1")) == result.metrics["n_trades"]
    pos = store.positions("r1")
    assert list(pos["instrument"]) == ["gymcrypto:BTC/USD"]
    run = store.run("r1")
    assert run is not None and run["status"] == "finished"


def test_rerunning_a_run_id_replaces_it_and_keeps_other_runs(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    _run(url, "r1", 120)
    _run(url, "r2", 60)
    _run(url, "r1", 80)  # same id again, different data: replaces r1
    store = TradeStore(url)
    assert len(store.equity("r1")) == 80
    assert len(store.equity("r2")) == 60
    first = store.fills("r1")
    _run(url, "r1", 80)  # identical re-run: identical contents, no duplicates
    pd.testing.assert_frame_equal(store.fills("r1"), first)


def test_writing_the_same_changes_twice_is_a_no_op(tmp_path) -> None:
    from trader.build import build_node
    from trader.feeds.frame import FrameFeed

    url = f"sqlite:///{tmp_path}/store.db"
    bars = btc_frame(40)
    cfg = make_config()
    engine = build_node(cfg)
    engine.run(FrameFeed(bars, synthetic_signals(bars, [0.9] * 40), cfg))
    store = TradeStore(url)
    store.begin_run("x", "backtest", {})
    changes = engine.drain_changes()
    store.write_changes("x", changes, engine.portfolio.positions.values())
    store.write_changes("x", changes, engine.portfolio.positions.values())
    assert len(store.fills("x")) == len(engine.fills) == 1
    assert len(store.equity("x")) == 40
