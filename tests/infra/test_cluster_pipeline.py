"""The main job's tasks on the cluster configuration give the rows of the single-process run.

Two months (March-April 2018) of the embedded BTC/USD 30m candles run through ingest -> land ->
silver -> gold -> train -> score twice, each in its own process configured by environment only:
once as a single process (local[2] Spark, the one local broker, a lake on disk), once on the local
cluster (Spark standalone with 2 one-core workers, 3 KRaft brokers with RF 3 / min ISR 2, the lake
on the moto S3 store through s3a://). The model is trained once (the first run) and the cluster run's
train task reuses that champion, so the comparison is about Spark, Kafka and the object store; the
silver, gold and signal rows must be equal, value for value.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest

from cryptolake.settings import PROJECT_ROOT, Settings
from tests.infra.pipeline_slice import TABLES

pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.slow]

START, END = "2018-03-01T00:00:00+00:00", "2018-05-01T00:00:00+00:00"


def _run(env: dict[str, str], out: Path) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-m", "tests.infra.pipeline_slice", START, END, str(out)],
                          cwd=PROJECT_ROOT, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=1500, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return dict(json.loads((out / "results.json").read_text()))


def test_cluster_run_gives_the_single_process_rows(cluster_state: Settings, kafka_bootstrap: str,
                                                   tmp_path: Path) -> None:
    from infra import kafka_cluster, objectstore, spark_cluster
    from infra.cluster import Cluster, cluster_env

    store = objectstore.start(cluster_state)
    kafka = kafka_cluster.start(cluster_state)
    spark = spark_cluster.start(cluster_state)
    common = {
        "CRYPTOLAKE__MARKET__SYMBOLS": '["BTC/USD"]',
        "CRYPTOLAKE__MARKET__EXCHANGE": f"clustertest{uuid.uuid4().hex[:8]}",
        "CRYPTOLAKE__PATHS__ARTIFACTS_DIR": str(tmp_path / "artifacts"),  # one model registry for both runs
        "CRYPTOLAKE__PATHS__JARS_DIR": str(cluster_state.paths.jars_dir),
        "CRYPTOLAKE__SPARK__DRIVER_MEMORY": "1g",
    }
    single = _run({**common, "CRYPTOLAKE__SPARK__MASTER": "local[2]",
                   "CRYPTOLAKE__KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
                   "CRYPTOLAKE__PATHS__STATE_DIR": str(tmp_path / "single-state"),
                   "CRYPTOLAKE__PATHS__LAKE_ROOT": str(tmp_path / "single" / "lake"),
                   "CRYPTOLAKE__PATHS__CHECKPOINT_ROOT": str(tmp_path / "single" / "checkpoints")},
                  tmp_path / "single-out")
    env = cluster_env(Cluster(spark.master_url, kafka.bootstrap, store.endpoint_url, store.bucket, ""),
                      cluster_state)
    env.pop("CRYPTOLAKE__DASK__SCHEDULER_ADDRESS")
    clustered = _run({**common, **env, "CRYPTOLAKE__PATHS__STATE_DIR": str(cluster_state.paths.state_dir)},
                     tmp_path / "cluster-out")

    assert clustered["master"] == spark.master_url and str(clustered["lake"]).startswith("s3a://")
    assert clustered["executors"] == 2  # one per worker
    assert single["ingest"]["produced"] == clustered["ingest"]["produced"] == 2927  # type: ignore[index]
    assert clustered["train"]["retrained"] is False  # type: ignore[index]
    assert clustered["train"]["model_version"] == single["train"]["model_version"]  # type: ignore[index]
    for view in TABLES:
        a = pd.read_parquet(tmp_path / "single-out" / f"{view}.parquet")
        b = pd.read_parquet(tmp_path / "cluster-out" / f"{view}.parquet")
        assert len(a) > 0, view
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_exact=True,
                                      obj=view)
    assert single["rows_silver_bars"] == 2927
    assert single["score"]["scored"] == clustered["score"]["scored"] > 0  # type: ignore[index]
    (tmp_path.parent / "cluster_pipeline_seconds.json").write_text(
        json.dumps({"single": single["seconds"], "cluster": clustered["seconds"]}))
