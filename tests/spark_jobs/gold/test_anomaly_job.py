"""gold.anomalies on Spark equals the pandas scores, replaces its interval on a re-run, and needs gold.features."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from cryptolake.errors import TableNotFoundError
from cryptolake.settings import Settings
from cryptolake.tables import GOLD_ANOMALIES, GOLD_FEATURES
from spark_jobs.gold.anomaly_job import run_anomalies
from spark_jobs.gold.anomaly_models import score_interval
from spark_jobs.gold.features import features_pandas
from tests.conftest import settings_in
from tests.spark_jobs.realdata import silver_bars_pdf

pytestmark = pytest.mark.spark

START, END = datetime(2018, 1, 1, tzinfo=UTC), datetime(2018, 1, 11, tzinfo=UTC)


def test_run_anomalies_matches_pandas_and_reruns_idempotently(spark, lake_settings: Settings, tmp_path) -> None:
    from pyspark.sql.types import StructType

    settings = settings_in(tmp_path / "lake", lake_settings)
    with pytest.raises(TableNotFoundError, match=r"gold\.features"):
        run_anomalies(START, END, settings)
    # Real BTC and ETH 30m candles from 2017-10-01 (about 4.5 months; 60 days of history before January).
    bars = pd.concat([silver_bars_pdf("BTC/USD", 5200), silver_bars_pdf("ETH/USD", 5200)], ignore_index=True)
    features = features_pandas(bars)
    features["bar_date"] = pd.to_datetime(features["ts"]).dt.date
    df = spark.createDataFrame(features[list(GOLD_FEATURES.column_names)], schema=StructType.fromDDL(GOLD_FEATURES.ddl))
    df.write.format("delta").partitionBy("bar_date").mode("overwrite").save(GOLD_FEATURES.path(settings))

    first = run_anomalies(START, END, settings)
    got = spark.read.format("delta").load(GOLD_ANOMALIES.path(settings)).toPandas()
    expected = score_interval(features, START, END)
    assert first.rows == len(got) == len(expected) == 2 * 10 * 48
    assert first.scored == len(got)  # two months of history: every bar scored
    got = got.assign(ts=pd.to_datetime(got["ts"], utc=True)).sort_values(["symbol", "ts"]).reset_index(drop=True)
    expected = expected.sort_values(["symbol", "ts"]).reset_index(drop=True)
    assert (got["ts"] == expected["ts"]).all()
    np.testing.assert_allclose(got["iforest_score"], expected["iforest_score"].astype(float), rtol=0, atol=1e-12)
    np.testing.assert_allclose(got["pca_error"], expected["pca_error"].astype(float), rtol=1e-9)
    assert first.iforest_flags == int(expected["iforest_flag"].sum())
    assert first.pca_flags == int(expected["pca_flag"].sum())

    again = run_anomalies(START, END, settings)
    assert (again.rows, again.iforest_flags) == (first.rows, first.iforest_flags)
    assert spark.read.format("delta").load(GOLD_ANOMALIES.path(settings)).count() == first.rows
