"""The one SparkSession factory: Delta enabled, jars from infra/pom.xml via ``spark.jars``.

``local[*]`` by default, sized for 2 cores; the master URL, lake root and checkpoint root
come from settings, so the same jobs run on a cluster by configuration only. On a ``spark://``
(or any non-local) master the executors get the Delta/Kafka jars from the driver's file server
(``spark.jars``, never Ivy) and cryptolake's packages as one zip (``spark.submit.pyFiles``), and run
the driver's Python. A lake on ``s3a://`` adds hadoop-aws and its AWS SDK bundle (the ``s3`` jar
group) to the driver's and executors' class path and the ``fs.s3a.*`` settings of ``s3.*``.

Delta's log store on ``s3a://`` is ``S3SingleDriverLogStore``: commits are mutually exclusive
within one driver, which is every Spark writer of a table here (the DAG runs one task per table at
a time). Concurrent Spark writers from several drivers would need ``S3DynamoDBLogStore``
(``io.delta:delta-storage-s3-dynamodb``), which Maven Central does not serve here; delta-rs writers
use S3's conditional PUT instead (see :mod:`cryptolake.duck`).
"""

from __future__ import annotations

import hashlib
import os
import threading
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from cryptolake.errors import InfrastructureError
from cryptolake.jvm import jar_files, register
from cryptolake.logs import get_logger
from cryptolake.settings import PROJECT_ROOT, Settings, get_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = get_logger(__name__)
_lock = threading.Lock()


def spark_conf(settings: Settings) -> dict[str, str]:
    """Every ``spark.*`` setting the session gets (pure; unit-tested)."""
    jars = ",".join(str(p) for p in jar_files("spark", settings))
    java_options = " ".join(["-Duser.timezone=UTC", *settings.spark.java_options.split()])
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
        "spark.driver.extraJavaOptions": java_options,
        "spark.executor.extraJavaOptions": java_options,
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
    if not settings.spark.is_local:
        conf.update(cluster_conf(settings))
    if uses_s3(settings):
        conf.update(s3a_conf(settings))
    conf.update(settings.spark.extra_conf)
    return conf


# Packages the executors may import (UDFs, pandas UDFs, the scorer's model): shipped as one zip.
SHIPPED_PACKAGES = ("cryptolake", "spark_jobs", "models", "ingest", "trader")


def cluster_conf(settings: Settings) -> dict[str, str]:
    """Executor settings for a cluster master: memory, cores, the driver's Python and its code."""
    import sys

    conf = {
        "spark.executor.memory": settings.spark.executor_memory,
        "spark.executor.cores": str(settings.spark.executor_cores),
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.executorEnv.SPARK_LOCAL_IP": settings.spark.local_ip,
    }
    if settings.spark.ship_python:
        conf["spark.submit.pyFiles"] = str(python_zip(settings))
    return conf


def python_zip(settings: Settings) -> Path:
    """``<state_dir>/pyfiles/cryptolake-<hash>.zip``: the shipped packages' ``.py`` files (rebuilt on change)."""
    files = sorted(f for pkg in SHIPPED_PACKAGES for f in (PROJECT_ROOT / pkg).rglob("*.py")
                   if "__pycache__" not in f.parts)
    digest = hashlib.sha256()
    for f in files:
        digest.update(str(f.relative_to(PROJECT_ROOT)).encode())
        digest.update(f.read_bytes())
    out = settings.paths.state_dir / "pyfiles" / f"cryptolake-{digest.hexdigest()[:12]}.zip"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for f in files:
                z.write(f, f.relative_to(PROJECT_ROOT))
        tmp.rename(out)
    return out


def uses_s3(settings: Settings) -> bool:
    """True when the lake or the checkpoints live on an object store."""
    return any(root.startswith(("s3a://", "s3://")) for root in (settings.paths.lake(), settings.paths.checkpoints()))


def s3a_conf(settings: Settings) -> dict[str, str]:
    """hadoop-aws on the class path and the ``fs.s3a.*`` settings of ``s3.*`` (keys from the environment)."""
    s3 = settings.s3
    key, secret = s3.credentials()
    classpath = ":".join(str(p) for p in jar_files("s3", settings))
    conf = {
        "spark.driver.extraClassPath": classpath,
        "spark.executor.extraClassPath": classpath,
        "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.path.style.access": str(s3.path_style).lower(),
        "spark.hadoop.fs.s3a.endpoint.region": s3.region,
        "spark.hadoop.fs.s3a.connection.ssl.enabled": str(s3.ssl).lower(),
        "spark.hadoop.fs.s3a.fast.upload": "true",
        "spark.hadoop.fs.s3a.change.detection.mode": "none",
        "spark.delta.logStore.s3a.impl": "io.delta.storage.S3SingleDriverLogStore",
    }
    if s3.endpoint_url:
        conf["spark.hadoop.fs.s3a.endpoint"] = s3.endpoint_url
    if key and secret:
        conf["spark.hadoop.fs.s3a.aws.credentials.provider"] = "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
        conf["spark.hadoop.fs.s3a.access.key"] = key
        conf["spark.hadoop.fs.s3a.secret.key"] = secret
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
        _register_driver(spark, settings)  # the driver JVM is ours on any master: `stack down` can stop it
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
