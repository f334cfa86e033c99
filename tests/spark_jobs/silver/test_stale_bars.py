"""Stale bars and stale series on the real frozen Bittrex ETH/USD feed (kmerisalu, 1h).

Bittrex's 1,589 zero-volume hours are all flat (O=H=L=C): 85 runs of 1-3 quiet hours, one of 25 hours
(from 2019-02-27 22:00) and one of 1,469 hours (from 2018-07-12 09:00, frozen at 433.94). Nothing here is
synthetic: the candles from 2018-06-01 on (both long runs and the end of the file; the older year is
left out to keep the test short) are landed as they are, through the bronze table the silver tests use.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pandas as pd
import pytest

from cryptolake import topics
from cryptolake.settings import Settings
from cryptolake.tables import GOLD_FEATURES, GOLD_LABELS, SILVER_BARS, SILVER_SERIES_STATUS, bronze_spec
from ingest.localexchange.data import parse_cdd_csv
from models.dataset import load_training_set
from spark_jobs.gold.jobs import run_gold
from spark_jobs.silver.bars import run_silver_bars
from spark_jobs.silver.series_status import LAST_BAR_STALE, TOO_OLD
from tests.conftest import settings_in
from tests.spark_jobs.realdata import cdd_bronze_rows

pytestmark = pytest.mark.spark

MAX_FLAT = 6
BITTREX = "market/ohlcv_1h/kmerisalu/Bittrex_ETHUSD_1h.csv.gz"
START = datetime(2018, 6, 1, tzinfo=UTC)
END = datetime(2019, 8, 1, tzinfo=UTC)  # two days after the file's last bar (2019-07-30 01:00)
FREEZE = datetime(2018, 7, 12, 9, tzinfo=UTC)  # first bar of the 1,469-hour flat run
# interval boundaries: 3 bars into the long run (before its first stale bar), deep inside it, and
# 2 bars into the 25-hour run
BOUNDARIES = (START, FREEZE + timedelta(hours=3), datetime(2018, 7, 14, tzinfo=UTC),
              datetime(2019, 2, 28, tzinfo=UTC), END)


def _naive(ts: datetime) -> pd.Timestamp:
    return pd.Timestamp(ts).tz_convert(None)


def expected_stale(path: Path, max_flat_bars: int) -> pd.Series:
    """Plain pandas, independent of cryptolake.bars: a flat bar is stale beyond the max_flat_bars-th of its run."""
    bars = pd.DataFrame([vars(c) for c in parse_cdd_csv(path)]).sort_values("open_time")
    bars = bars[bars["open_time"] >= START.timestamp() * 1000]
    flat = ((bars["open"] == bars["high"]) & (bars["high"] == bars["low"]) & (bars["low"] == bars["close"])
            & (bars["volume"] == 0))
    run_id = (flat != flat.shift()).cumsum()
    position = flat.groupby(run_id).cumcount() + 1
    stale = flat & (position > max_flat_bars)
    return pd.Series(stale.to_numpy(), index=pd.to_datetime(bars["open_time"], unit="ms"), name="stale")


def _lake(spark, root: Path, base: Settings, rows: list[dict[str, object]]) -> Settings:
    from pyspark.sql.types import StructType

    settings = settings_in(root, base)
    settings = settings.model_copy(update={"market": settings.market.model_copy(update={"max_flat_bars": MAX_FLAT})})
    schema = StructType.fromDDL(bronze_spec(topics.MARKET_OHLCV).ddl)
    spark.createDataFrame(rows, schema=schema).write.format("delta").partitionBy("event_date").mode(
        "overwrite").save(bronze_spec(topics.MARKET_OHLCV).path(settings))
    return settings


def _silver(spark, settings: Settings) -> pd.DataFrame:
    frame = spark.read.format("delta").load(SILVER_BARS.path(settings)).toPandas()
    return frame.sort_values("open_time").set_index("open_time")[list(SILVER_BARS.column_names[4:])]


def _status(spark, settings: Settings) -> pd.DataFrame:
    frame = spark.read.format("delta").load(SILVER_SERIES_STATUS.path(settings)).toPandas()
    return frame.sort_values("as_of").set_index("as_of")


@pytest.fixture(scope="module")
def lakes(spark, shared_data: Path, lake_settings: Settings, tmp_path_factory: pytest.TempPathFactory):
    """One lake built by a whole-history silver run, one by interval runs cut inside flat runs."""
    rows = [r for r in cdd_bronze_rows(shared_data / BITTREX, "bittrex", "ETH/USD", "1h") if r["event_time"] >= START]
    whole = _lake(spark, tmp_path_factory.mktemp("stale_whole"), lake_settings, rows)
    whole_result = run_silver_bars(START, END, whole)
    cut = _lake(spark, tmp_path_factory.mktemp("stale_cut"), lake_settings, rows)
    cut_results = [run_silver_bars(a, b, cut) for a, b in pairwise(BOUNDARIES)]
    return whole, whole_result, cut, cut_results


def test_silver_flags_exactly_the_bars_beyond_the_allowed_flat_run(spark, lakes, shared_data: Path) -> None:
    whole, result, _, _ = lakes
    silver = _silver(spark, whole)
    expected = expected_stale(shared_data / BITTREX, MAX_FLAT)

    assert len(silver) == len(expected) == 10_178  # 2018-06-01 00:00 .. 2019-07-30 01:00, no hour missing
    assert (silver.index == expected.index).all()
    assert silver["flag_stale"].tolist() == expected.tolist()
    assert int(expected.sum()) == (1469 - MAX_FLAT) + (25 - MAX_FLAT)  # the quiet 1-3 hour runs stay valid
    assert result.flagged["stale"] == int(expected.sum())
    stale = silver[silver["flag_stale"]]
    assert not stale["is_valid"].any()
    assert all("stale" in r.split(",") for r in stale["flag_reasons"])
    assert not any("stale" in r.split(",") for r in silver.loc[~silver["flag_stale"], "flag_reasons"])
    # the long run: its first MAX_FLAT hours are valid, the next one is the first stale bar
    freeze = _naive(FREEZE)
    assert silver.loc[freeze: freeze + pd.Timedelta(hours=MAX_FLAT - 1), "is_valid"].all()
    assert silver.at[freeze + pd.Timedelta(hours=MAX_FLAT), "flag_reasons"] == "stale"
    assert silver.at[freeze + pd.Timedelta(hours=100), "close"] == 433.94


def test_interval_boundaries_inside_flat_runs_give_the_whole_run_flags(spark, lakes) -> None:
    whole, whole_result, cut, cut_results = lakes
    a, b = _silver(spark, whole), _silver(spark, cut)
    pd.testing.assert_frame_equal(a, b)
    assert sum(r.flagged["stale"] for r in cut_results) == whole_result.flagged["stale"]
    # the second interval starts 3 bars into the run and still flags from its 7th bar on
    second = b.loc[_naive(BOUNDARIES[1]): _naive(BOUNDARIES[2]) - pd.Timedelta(hours=1)]
    assert second["flag_stale"].tolist() == [False] * 3 + [True] * (len(second) - 3)


def test_series_status_after_the_series_ended(spark, lakes) -> None:
    whole, whole_result, cut, cut_results = lakes
    # the last bar opened 2019-07-30 01:00 and closed at 02:00: 46 hours before END
    age = (END - datetime(2019, 7, 30, 2, tzinfo=UTC)).total_seconds()
    assert (whole_result.series, whole_result.stale_series) == (1, 1)
    assert whole_result.stale_series_keys == ["bittrex:ETH/USD:1h"]
    row = _status(spark, whole).loc[_naive(END)]
    assert row["last_open_time"] == pd.Timestamp("2019-07-30 01:00")
    assert row["age_s"] == age and row["max_age_s"] == 4 * 3600.0
    assert row["stale"] and row["reason"] == TOO_OLD and not row["last_bar_stale"]
    # an interval with no bar at all still reports the series, older still
    later = run_silver_bars(END, END + timedelta(days=1), whole)
    assert (later.rows, later.stale_series) == (0, 1)
    assert _status(spark, whole).loc[_naive(END + timedelta(days=1)), "age_s"] == age + 86_400
    # the cut runs judged each interval's end: healthy, frozen (the feed prints the same price), ...
    status = _status(spark, cut)
    assert list(status.index) == [_naive(b) for b in BOUNDARIES[1:]]
    assert status["reason"].tolist() == ["", LAST_BAR_STALE, "", TOO_OLD]
    assert status["age_s"].tolist()[:3] == [0.0, 0.0, 0.0]
    assert [r.stale_series for r in cut_results] == [0, 1, 0, 1]
    again = run_silver_bars(BOUNDARIES[-2], BOUNDARIES[-1], cut)  # idempotent, status included
    assert (again.inserted, again.updated) == (0, 0)
    assert _status(spark, cut).equals(status)


def test_stale_bars_never_reach_gold_or_the_training_set(spark, lakes) -> None:
    whole, _, _, _ = lakes
    start, end = datetime(2018, 7, 5, tzinfo=UTC), datetime(2018, 7, 20, tzinfo=UTC)
    run_gold(start, end, whole)
    silver = _silver(spark, whole).loc[_naive(start): _naive(end) - pd.Timedelta(hours=1)]
    stale = set(silver.index[silver["flag_stale"]])
    allowed_flat = set(silver.index[(silver["volume"] == 0) & ~silver["flag_stale"]])
    assert len(stale) > 100 and len(allowed_flat) >= MAX_FLAT
    features = set(spark.read.format("delta").load(GOLD_FEATURES.path(whole)).toPandas()["ts"])
    labels = set(spark.read.format("delta").load(GOLD_LABELS.path(whole)).toPandas()["ts"])
    assert features and labels
    assert not features & stale and not labels & stale
    assert allowed_flat <= features  # valid flat bars (a quiet hour) are kept
    training = load_training_set(["ETH/USD"], start, end, as_of=END, settings=whole)
    assert len(training.frame) > 0
    rows = set(pd.to_datetime(training.frame["ts"]).dt.tz_convert(None))
    assert rows <= features and not rows & stale
    assert len(rows) == len(training.frame)
