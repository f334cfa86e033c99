from __future__ import annotations

import pytest

from cli.sql import apply_views, parse_views
from cryptolake import duck
from cryptolake.errors import ConfigError
from cryptolake.queries import sql_text


def test_every_view_declares_what_it_reads():
    views = parse_views(sql_text("views"))
    names = [v.name for v in views]
    assert len(names) == len(set(names))
    assert {"bars_daily", "feature_coverage", "label_balance", "latest_signals"} <= set(names)
    for v in views:
        assert f"CREATE OR REPLACE VIEW {v.name} AS" in v.sql
        assert all(r in v.sql for r in v.requires)


def test_only_views_over_existing_tables_are_created(hand_lake):
    con = duck.connect(hand_lake)
    result = apply_views(con)
    assert result["created"] == ["feature_coverage", "label_balance"]
    assert {"bars_daily", "bar_quality", "latest_signals", "signal_hit_rate"} == set(result["skipped"])
    rows = con.execute("SELECT symbol, rows, anomalies FROM feature_coverage ORDER BY symbol").fetchall()
    assert rows == [("BTC/USD", 4, 0), ("ETH/USD", 2, 0), ("XRP/USD", 1, 0)]
    balance = con.execute("SELECT symbol, labels, up_share FROM label_balance ORDER BY symbol").fetchall()
    # BTC labels (synthetic): +0.01, -0.02, +0.03 -> 2 of 3 up; ETH +0.02, -0.01; XRP +0.05.
    assert balance == [("BTC/USD", 3, pytest.approx(2 / 3)), ("ETH/USD", 2, 0.5), ("XRP/USD", 1, 1.0)]


def test_views_file_without_headers_is_rejected(tmp_path):
    bad = tmp_path / "v.sql"
    bad.write_text("CREATE VIEW x AS SELECT 1;")
    with pytest.raises(ConfigError, match="headers"):
        parse_views(bad.read_text())


def test_bar_and_signal_views_over_real_bars_and_synthetic_signals(hand_lake):
    import pandas as pd

    from cryptolake.tables import SIGNALS_TABLE, SILVER_BARS
    from tests.models.lake_fixture import gym_bars, write_table
    from tests.sql.conftest import BAR, T0

    bars = gym_bars("BTC", rows=96)  # two real days of 30m candles, 2017-10-01 and -02
    bars = bars.assign(
        ingest_time=bars["close_time"], gap_before=False, missing_bars_before=0, flag_high_low=False,
        flag_negative_volume=False, flag_ohlc_range=False, flag_jump=False, flag_stale=False, is_valid=True,
        flag_reasons="",
        duplicates=0, bar_date=bars["open_time"].dt.date,
    )
    bars.loc[5, ["is_valid", "flag_jump"]] = [False, True]
    bars.loc[[60, 61], ["is_valid", "flag_stale", "flag_reasons"]] = [False, True, "stale"]  # SYNTHETIC flags
    write_table(SILVER_BARS, bars, hand_lake)
    # SYNTHETIC signals: two scores for BTC 00:00/00:30 from model m1 (directions 1, 1).
    signals = pd.DataFrame({
        "signal_id": ["s1", "s2"], "exchange": "handmade", "symbol": "BTC/USD", "timeframe": "30m",
        "bar_time": [T0, T0 + BAR],
        "probability": [0.7, 0.6], "direction": [1, 1], "model_version": "m1",
        "available_time": [T0 + BAR, T0 + 2 * BAR], "bar_date": [T0.date(), T0.date()],
    })
    write_table(SIGNALS_TABLE, signals, hand_lake)

    con = duck.connect(hand_lake)
    result = apply_views(con)
    assert result["skipped"] == []
    daily = con.execute("SELECT day, open, high, low, close, volume, bars, flagged_bars FROM bars_daily "
                        "ORDER BY day").df()
    first = bars.iloc[:48]
    assert daily["bars"].tolist() == [48, 48]
    assert daily.loc[0, "open"] == first["open"].iloc[0] and daily.loc[0, "close"] == first["close"].iloc[-1]
    assert daily.loc[0, "high"] == first["high"].max() and daily.loc[0, "low"] == first["low"].min()
    assert daily.loc[0, "volume"] == pytest.approx(first["volume"].sum())
    assert daily["flagged_bars"].tolist() == [1, 2]
    quality = con.execute("SELECT jump_flags, stale_flags, invalid_bars FROM bar_quality").fetchall()
    assert quality == [(1, 2, 3)]
    latest = con.execute("SELECT bar_time, probability FROM latest_signals").fetchall()
    assert [(t.isoformat(), p) for t, p in latest] == [((T0 + BAR).isoformat(), 0.6)]
    # Hand-made labels: BTC 00:00 went up (+0.01), 00:30 went down (-0.02) -> one hit of two.
    hits = con.execute("SELECT signals, hit_rate FROM signal_hit_rate").fetchall()
    assert hits == [(2, 0.5)]
