"""run_gold and compute_labels over real candles: reconciled counts, warm-up reads, idempotent writes."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from cryptolake.errors import TableNotFoundError
from cryptolake.settings import Settings
from cryptolake.tables import GOLD_FEATURES, GOLD_LABELS, SILVER_BARS
from spark_jobs.gold.features import WARMUP_BARS, features_pandas
from spark_jobs.gold.jobs import run_gold
from spark_jobs.gold.labels import compute_labels
from tests.conftest import settings_in
from tests.spark_jobs.realdata import silver_bars_pdf

pytestmark = pytest.mark.spark

N_BARS = 900  # real BTC and ETH 30m candles from 2017-10-01: ~18.75 days


@pytest.fixture(scope="module")
def gold_settings(lake_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return settings_in(tmp_path_factory.mktemp("gold_lake"), lake_settings)


def _silver_pdf() -> pd.DataFrame:
    btc = silver_bars_pdf("BTC/USD", N_BARS)
    eth = silver_bars_pdf("ETH/USD", N_BARS)
    btc.loc[[500, 650], "is_valid"] = False  # as if silver had flagged them (values are real)
    bars = pd.concat([btc, eth], ignore_index=True)
    bars["ingest_time"] = bars["close_time"]
    bars["gap_before"] = False
    bars["missing_bars_before"] = 0
    for c in ("flag_high_low", "flag_negative_volume", "flag_ohlc_range", "flag_jump", "flag_stale"):
        bars[c] = False
    bars.loc[~bars["is_valid"], "flag_jump"] = True
    bars["flag_reasons"] = np.where(bars["is_valid"], "", "price_jump")
    bars["duplicates"] = 0
    bars["bar_date"] = bars["open_time"].dt.date
    return bars[list(SILVER_BARS.column_names)]


@pytest.fixture(scope="module")
def silver_written(spark, gold_settings: Settings) -> pd.DataFrame:
    from pyspark.sql.types import StructType

    bars = _silver_pdf()
    df = spark.createDataFrame(bars, schema=StructType.fromDDL(SILVER_BARS.ddl))
    df.write.format("delta").partitionBy("bar_date").mode("overwrite").save(SILVER_BARS.path(gold_settings))
    return bars


def test_compute_labels_is_the_next_valid_bar_return(spark) -> None:
    bars = _silver_pdf()
    labels = compute_labels(spark.createDataFrame(bars)).toPandas()
    assert tuple(labels.columns) == GOLD_LABELS.column_names
    btc = bars[(bars["symbol"] == "BTC/USD") & bars["is_valid"]].reset_index(drop=True)
    got = labels[labels["symbol"] == "BTC/USD"].sort_values("ts").reset_index(drop=True)
    assert len(got) == len(btc) - 1  # no label for the last bar
    closes = btc["close"].to_numpy(float)
    expected = np.log(closes[1:] / closes[:-1])
    np.testing.assert_allclose(got["next_log_return"], expected, rtol=0, atol=1e-12)
    assert (got["next_direction"] == (expected > 0).astype(int)).all()
    assert (got["label_available_time"] == btc["close_time"].iloc[1:].to_numpy()).all()
    assert (got["label_available_time"] > got["close_time"]).all()


def test_run_gold_needs_silver(spark, lake_settings: Settings, tmp_path) -> None:
    paths = lake_settings.paths.model_copy(update={"lake_root": str(tmp_path / "empty")})
    with pytest.raises(TableNotFoundError):
        run_gold(datetime(2017, 10, 2, tzinfo=UTC), datetime(2017, 10, 3, tzinfo=UTC),
                 lake_settings.model_copy(update={"paths": paths}))


def test_run_gold_intervals_reconcile_and_rerun_changes_nothing(spark, gold_settings, silver_written) -> None:
    bars = silver_written
    # Two adjacent intervals covering everything, run out of order, then re-run.
    a = (datetime(2017, 10, 1, tzinfo=UTC), datetime(2017, 10, 12, tzinfo=UTC))
    b = (datetime(2017, 10, 12, tzinfo=UTC), datetime(2017, 10, 20, tzinfo=UTC))
    res_b = run_gold(*b, gold_settings)
    res_a = run_gold(*a, gold_settings)
    assert res_b.warmup_bars_read == 2 * WARMUP_BARS

    feats = spark.read.format("delta").load(GOLD_FEATURES.path(gold_settings)).toPandas()
    valid_per_series = bars[bars["is_valid"]].groupby("symbol").size()
    got_per_series = feats.groupby("symbol").size()
    for symbol, valid in valid_per_series.items():
        assert got_per_series[symbol] == valid - WARMUP_BARS  # gold = valid silver - warm-up
    assert res_a.feature_rows + res_b.feature_rows == len(feats)

    # interval runs equal one pass over the whole history
    expected = features_pandas(bars).sort_values(["symbol", "ts"]).reset_index(drop=True)
    got = feats.sort_values(["symbol", "ts"]).reset_index(drop=True)
    assert (got["ts"].to_numpy() == expected["ts"].to_numpy()).all()
    np.testing.assert_allclose(got["macd"], expected["macd"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got["rsi_14"], expected["rsi_14"], rtol=0, atol=1e-9)

    labels = spark.read.format("delta").load(GOLD_LABELS.path(gold_settings)).toPandas()
    assert len(labels) == int(bars["is_valid"].sum()) - 2  # every valid bar but each series' last
    assert res_a.label_rows + res_b.label_rows == len(labels)

    again = run_gold(*b, gold_settings)
    assert (again.feature_rows, again.labels_inserted, again.labels_updated) == (res_b.feature_rows, 0, 0)
    assert spark.read.format("delta").load(GOLD_FEATURES.path(gold_settings)).count() == len(feats)
    assert spark.read.format("delta").load(GOLD_LABELS.path(gold_settings)).count() == len(labels)
