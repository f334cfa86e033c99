"""The market pipeline DAG under ``dag.test()``: a backfill with a SYNTHETIC fault drill, then days on schedule.

Two symbols keep it to a few minutes. The backfill (two months, as params) corrupts four candles in
flight (NaN close, high < low, a duplicate, a late arrival); it must dead-letter, flag and count
them, reconcile every layer and trade the scored test period identically on paper and in the
backtest; a second run of it changes no count, metric or fill. Then two single-day runs on the
DAG's own ``@daily`` data intervals: each adds only its day's rows to silver and gold, reuses the
champion (retraining is not due), and trades the day continuing the previous day's account.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cryptolake.settings import Settings, get_settings

pytestmark = [pytest.mark.airflow, pytest.mark.spark, pytest.mark.kafka, pytest.mark.slow]

START, END = "2018-03-01T00:00:00+00:00", "2018-05-01T00:00:00+00:00"
DAYS = [datetime(2018, 5, 1, tzinfo=UTC) + timedelta(days=k) for k in range(2)]


@pytest.fixture
def drill_settings(monkeypatch: pytest.MonkeyPatch, airflow_db: Settings) -> Iterator[Settings]:
    monkeypatch.setenv("CRYPTOLAKE__MARKET__SYMBOLS", '["BTC/USD", "ETH/USD"]')
    monkeypatch.setenv("CRYPTOLAKE__MARKET__EXCHANGE", f"dagtest{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("CRYPTOLAKE__MARKET__CORRUPTION_DRILL", "true")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def _backfill(dagbag: Any, logical: datetime) -> str:
    run = dagbag.dags["market_pipeline"].test(logical_date=logical,
                                              run_conf={"interval_start": START, "interval_end": END})
    return str(run.state)


def _day_counts(settings: Settings, day: datetime) -> dict[str, tuple[int, int]]:
    """(rows opening on ``day``, all rows) of silver.bars and gold.features for this test's exchange."""
    from cryptolake import duck

    con = duck.connect(settings)
    try:
        out = {}
        for view, col in (("silver_bars", "open_time"), ("gold_features", "ts")):
            q = (f"SELECT count(*) FILTER (WHERE {col} >= $lo AND {col} < $hi), count(*) FROM {view} "
                 "WHERE exchange = $ex")
            row = con.execute(q, {"lo": day, "hi": day + timedelta(days=1), "ex": settings.market.exchange}).fetchone()
            assert row is not None
            out[view] = (int(row[0]), int(row[1]))
    finally:
        con.close()
    return out


def _gold_rows(settings: Settings, lo: datetime, hi: datetime) -> int:
    """gold.features rows of every exchange with ``lo <= ts < hi``: what the anomaly task scores."""
    from cryptolake import duck

    con = duck.connect(settings)
    try:
        row = con.execute("SELECT count(*) FROM gold_features WHERE ts >= $lo AND ts < $hi",
                          {"lo": lo, "hi": hi}).fetchone()
    finally:
        con.close()
    assert row is not None
    return int(row[0])


def per_symbol(settings: Settings, day: datetime) -> dict[str, int]:
    """This exchange's silver bars opening on ``day``, per symbol."""
    from cryptolake import duck

    con = duck.connect(settings)
    try:
        rows = con.execute("SELECT symbol, count(*) FROM silver_bars WHERE exchange = $ex AND open_time >= $lo "
                           "AND open_time < $hi GROUP BY symbol",
                           {"ex": settings.market.exchange, "lo": day, "hi": day + timedelta(days=1)}).fetchall()
    finally:
        con.close()
    return {str(s): int(n) for s, n in rows}


def test_market_pipeline_backfill_then_two_days_on_schedule(drill_settings, dagbag, spark, kafka_bootstrap) -> None:
    from pipeline.interval import Interval
    from pipeline.mainjob import load_task_results
    from pipeline.report import build_summary
    from pipeline.trading import trader_config
    from trader.config import TraderSettings
    from trader.store import TradeStore

    settings = drill_settings
    assert _backfill(dagbag, datetime(2018, 3, 1, tzinfo=UTC)) == "success"
    first = build_summary(load_task_results(settings, START, END), settings, START, END)
    r = first["reconciliation"]
    assert set(r["checks"].values()) == {"ok"}
    assert r["source_candles"] == 2927 + 2925  # real BTC and ETH candles of March-April 2018 (a few are missing)
    assert r["producer_dead_letters"] == 1  # the NaN close
    assert r["duplicates"] == 1  # the copy sent twice
    assert r["unique_bronze"] == r["source_candles"] - 1  # the late candle still landed
    q = first["quality"]
    assert q["corruption_drill"] is True
    assert q["flagged"]["high_below_low"] == 1
    assert q["gaps"] >= 1  # the dead-lettered candle leaves a flagged hole, not an invented bar
    assert first["trading_check"]["identical"] is True
    assert first["trading_check"]["paper_fills"] == first["trading_check"]["backtest_fills"]
    assert first["signals"]["scored"] > 0
    assert r["anomalies"] == r["gold"]  # every gold row of this exchange has its detector row
    # the task scores every series of the interval: on a broker reused across sessions the landing (a fresh
    # checkpoint per session) also lands earlier runs' exchanges, so it is compared with every exchange's gold rows
    assert first["anomalies"]["rows"] == _gold_rows(settings, datetime.fromisoformat(START),
                                                    datetime.fromisoformat(END))
    decision = first["model"]["decision"]  # the gate's verdict is in the summary, and what it means for trading
    assert "gate: " in decision and (decision.endswith(" trades") or decision.endswith("publishes nothing"))

    assert _backfill(dagbag, datetime(2018, 3, 2, tzinfo=UTC)) == "success"
    second = build_summary(load_task_results(settings, START, END), settings, START, END)
    assert second["reconciliation"] == first["reconciliation"]
    assert second["model"]["metrics"] == first["model"]["metrics"]
    assert second["trading"] == first["trading"]
    assert second["trading_check"]["paper_fills"] == first["trading_check"]["paper_fills"]

    results = []
    for day in DAYS:
        before = _day_counts(settings, day)
        assert before["silver_bars"][0] == before["gold_features"][0] == 0
        # no interval params: the DAG's own @daily data interval, which dag.test infers as the day that ends at
        # the given time, as the scheduler runs a day once it is over (dag.test keeps the last conf: reset it)
        run = dagbag.dags["market_pipeline"].test(logical_date=day + timedelta(days=1),
                                                  run_conf={"interval_start": None, "interval_end": None})
        assert str(run.state) == "success"
        assert (run.data_interval_start, run.data_interval_end) == (day, day + timedelta(days=1))
        after = _day_counts(settings, day)
        for view in ("silver_bars", "gold_features"):
            added = after[view][1] - before[view][1]
            assert added == after[view][0] > 0, f"{view}: added {added}, of which on {day:%Y-%m-%d} {after[view][0]}"
        iv = Interval(day, day + timedelta(days=1))
        res = load_task_results(settings, iv.start.isoformat(), iv.end.isoformat())
        ours = {k: n for k, n in res["silver"]["per_series"].items() if k.startswith(f"{settings.market.exchange}:")}
        assert ours == {f"{settings.market.exchange}:{sym}:30m": n for sym, n in per_symbol(settings, day).items()}
        assert res["anomalies"]["rows"] == _gold_rows(settings, day, day + timedelta(days=1))  # scored once
        assert res["anomalies"]["scored"] == res["anomalies"]["rows"]  # March-April are the detectors' history
        assert res["train"]["retrained"] is False and res["train"]["model_version"] == first["model"]["model_version"]
        assert res["trade"]["check"]["identical"] is True
        results.append(res)

    store = TradeStore(TraderSettings().resolved_store_url(settings))
    account = f"{settings.pipeline.account}@{trader_config(settings).exchange}"
    assert [t for t in store.account_times(account) if t > DAYS[0]] == [d + timedelta(days=1) for d in DAYS]
    for prev, cur in itertools.pairwise(results):
        assert cur["trade"]["continued_from"] == prev["trade"]["account_as_of"]
        assert cur["trade"]["metrics"]["initial_cash"] == pytest.approx(prev["trade"]["metrics"]["final_equity"])
    assert results[0]["trade"]["continued_from"] == END  # the backfill's account
