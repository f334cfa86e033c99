"""The one SparkSession factory: Delta enabled, jars from infra/pom.xml via ``spark.jars``.

``local[*]`` by default, sized for 2 cores; the master URL, lake root and checkpoint root
come from settings, so the same jobs run on a cluster by configuration only.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from cryptolake.errors import InfrastructureError
from cryptolake.jvm import jar_files, register
from cryptolake.logs import get_logger
from cryptolake.settings import Settings, get_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = get_logger(__name__)
_lock = threading.Lock()


def spark_conf(settings: Settings) -> dict[str, str]:
    """Every ``spark.*`` setting the session gets (pure; unit-tested)."""
    jars = ",".join(str(p) for p in jar_files("spark", settings))
    conf = {
        "spark.master": settings.spark.master,
        "spark.app.name": settings.spark.app_name,
        "spark.jars": jars,
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.driver.memory": settings.spark.driver_memory,
        "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions),
        "spark.default.parallelism": str(settings.spark.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.ui.enabled": str(settings.spark.ui_enabled).lower(),
        "spark.driver.bindAddress": settings.spark.local_ip,
        "spark.driver.host": settings.spark.local_ip,
        "spark.sql.warehouse.dir": str(settings.paths.state_dir / "spark-warehouse"),
        "spark.sql.streaming.forceDeleteTempCheckpointLocation": "true",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        "spark.databricks.delta.snapshotPartitions": "2",
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.ansi.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
    }
    conf.update(settings.spark.extra_conf)
    return conf


def get_spark(settings: Settings | None = None) -> SparkSession:
    """The process's SparkSession (created once, reused; ``stop_spark`` ends it)."""
    from pyspark.sql import SparkSession

    settings = settings or get_settings()
    with _lock:
        active = SparkSession.getActiveSession()
        if active is not None:
            return active
        os.environ.setdefault("SPARK_LOCAL_IP", settings.spark.local_ip)
        os.environ.setdefault("PYSPARK_PYTHON", os.environ.get("PYSPARK_PYTHON", _python()))
        builder = SparkSession.builder
        for key, value in spark_conf(settings).items():
            builder = builder.config(key, value)
        log.info("spark.start", extra={"master": settings.spark.master})
        try:
            spark = builder.getOrCreate()
        except Exception as exc:  # py4j / JVM start-up failures
            raise InfrastructureError(f"could not start Spark ({settings.spark.master}): {exc}") from exc
        spark.sparkContext.setLogLevel("ERROR")
        if settings.spark.master.startswith("local"):
            _register_driver(spark, settings)  # so `cryptolake stack down` can stop this JVM
        return spark


def stop_spark() -> None:
    """Stop the session if one is running (its JVM exits with it)."""
    from pyspark.sql import SparkSession

    with _lock:
        active = SparkSession.getActiveSession()
        if active is not None:
            active.stop()


def _register_driver(spark: SparkSession, settings: Settings) -> None:
    """Register the driver JVM of a local session (skipped, with a warning, when its pid is unknown)."""
    try:
        pid = int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())  # type: ignore[union-attr]
    except (AttributeError, TypeError, ValueError) as exc:
        log.warning("spark.pid_unknown", extra={"error": str(exc)})
        return
    register("spark", pid, settings)


def _python() -> str:
    import sys

    return sys.executable
