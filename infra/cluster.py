"""The whole local cluster at once: Spark standalone, a Kafka cluster, an S3 store and Dask distributed.

``up`` starts what is not running and returns the settings that point cryptolake at it
(:func:`cluster_env`: ``CRYPTOLAKE__...`` variables, also written to ``<state_dir>/cluster.env``
for ``source``). Nothing else changes between the single-process stack and this one: the same code
reads those settings. ``down`` stops every piece.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptolake.logs import get_logger
from cryptolake.settings import Settings, get_settings
from infra import dask_cluster, kafka_cluster, objectstore, spark_cluster

log = get_logger(__name__)


@dataclass(frozen=True)
class Cluster:
    """Where each running piece listens."""

    spark_master: str
    kafka_bootstrap: str
    s3_endpoint: str
    bucket: str
    dask_scheduler: str


def cluster_env(cluster: Cluster, settings: Settings) -> dict[str, str]:
    """The settings (as environment variables) that run cryptolake on ``cluster`` (pure)."""
    replicas = min(3, settings.kafka.cluster_brokers)
    return {
        "CRYPTOLAKE__SPARK__MASTER": cluster.spark_master,
        "CRYPTOLAKE__KAFKA__BOOTSTRAP_SERVERS": cluster.kafka_bootstrap,
        "CRYPTOLAKE__KAFKA__REPLICATION_FACTOR": str(replicas),
        "CRYPTOLAKE__KAFKA__MIN_INSYNC_REPLICAS": str(min(2, replicas)),
        "CRYPTOLAKE__S3__ENDPOINT_URL": cluster.s3_endpoint,
        "CRYPTOLAKE__PATHS__LAKE_ROOT": f"s3a://{cluster.bucket}/lake",
        "CRYPTOLAKE__PATHS__CHECKPOINT_ROOT": f"s3a://{cluster.bucket}/checkpoints",
        "CRYPTOLAKE__DASK__SCHEDULER_ADDRESS": cluster.dask_scheduler,
    }


def env_file_text(env: dict[str, str]) -> str:
    """``export KEY=value`` lines (for ``source <state_dir>/cluster.env``)."""
    return "".join(f"export {k}={v}\n" for k, v in env.items())


def up(settings: Settings | None = None) -> Cluster:
    """Start every piece that is not running (idempotent); record the settings in ``cluster.env``."""
    settings = settings or get_settings()
    store = objectstore.start(settings)
    kafka = kafka_cluster.start(settings)
    spark = spark_cluster.start(settings)
    dask = dask_cluster.start(settings)
    cluster = Cluster(spark.master_url, kafka.bootstrap, store.endpoint_url, store.bucket, dask.scheduler_address)
    (settings.paths.state_dir / "cluster.env").write_text(env_file_text(cluster_env(cluster, settings)))
    log.info("cluster.up", extra={"spark": spark.master_url, "kafka": kafka.bootstrap, "s3": store.endpoint_url,
                                  "dask": dask.scheduler_address})
    return cluster


def status_lines(settings: Settings | None = None) -> list[str]:
    """One line per piece: up (where) or down."""
    settings = settings or get_settings()
    spark = spark_cluster.status(settings)
    kafka = kafka_cluster.status(settings)
    store = objectstore.status(settings)
    dask = dask_cluster.status(settings)
    return [
        f"spark standalone : {f'up {spark.master_url} ({len(spark.worker_pids)} workers)' if spark else 'down'}",
        f"kafka cluster    : {f'up {kafka.bootstrap}' if kafka else 'down'}",
        f"object store     : {f'up {store.endpoint_url} (bucket {store.bucket})' if store else 'down'}",
        f"dask             : {f'up {dask.scheduler_address} ({len(dask.worker_pids)} workers)' if dask else 'down'}",
    ]


def down(settings: Settings | None = None) -> dict[str, int]:
    """Stop every piece (Dask, Spark, Kafka, then the store); returns how many processes each had."""
    settings = settings or get_settings()
    ended = {
        "dask": dask_cluster.stop(settings),
        "spark": spark_cluster.stop(settings),
        "kafka": len(kafka_cluster.stop(settings)),
        "objectstore": objectstore.stop(settings),
    }
    (settings.paths.state_dir / "cluster.env").unlink(missing_ok=True)
    return ended
