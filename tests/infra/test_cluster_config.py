"""Pure pieces of the cluster configuration: settings -> Spark conf, DuckDB secret, delta-rs options,
topic replication, the daemons' command lines and the environment `stack up --cluster` prints."""

from __future__ import annotations

import pytest

from cryptolake import duck, topics
from cryptolake.errors import ConfigError
from cryptolake.settings import KafkaSettings, PathSettings, S3Settings, Settings, SparkSettings


def _on_cluster(**s3: str) -> Settings:
    base = Settings()
    return base.model_copy(update={
        "spark": SparkSettings(master="spark://127.0.0.1:7077"),
        "s3": S3Settings(endpoint_url="http://127.0.0.1:5000", **s3),
        "paths": PathSettings(jars_dir=base.paths.jars_dir, lake_root="s3a://cryptolake/lake",
                              checkpoint_root="s3a://cryptolake/checkpoints"),
    })


def test_a_cluster_master_ships_python_and_uses_s3a(monkeypatch: pytest.MonkeyPatch) -> None:
    from spark_jobs.session import python_zip, spark_conf

    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    s = _on_cluster()
    conf = spark_conf(s)
    assert conf["spark.master"] == "spark://127.0.0.1:7077"
    assert conf["spark.executor.cores"] == "1" and conf["spark.executor.memory"] == "768m"
    assert conf["spark.submit.pyFiles"] == str(python_zip(s))
    assert "hadoop-aws-3.5.0.jar" in conf["spark.executor.extraClassPath"]
    assert conf["spark.executor.extraClassPath"] == conf["spark.driver.extraClassPath"]
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:5000"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert conf["spark.delta.logStore.s3a.impl"] == "io.delta.storage.S3SingleDriverLogStore"
    assert "delta-spark" in conf["spark.jars"]  # served to executors by the driver, not Ivy


def test_the_shipped_zip_holds_the_packages_executors_import() -> None:
    import zipfile

    from spark_jobs.session import python_zip

    names = set(zipfile.ZipFile(python_zip(Settings())).namelist())
    assert {"cryptolake/bars.py", "spark_jobs/silver/bars.py", "models/scoring.py"} <= names
    assert not any(n.startswith(("tests/", "cli/")) for n in names)


def test_local_master_on_a_local_lake_gets_no_cluster_or_s3_settings() -> None:
    from spark_jobs.session import spark_conf

    conf = spark_conf(Settings())
    assert not any(k.startswith(("spark.hadoop.fs.s3a", "spark.submit.pyFiles", "spark.executor.memory"))
                   for k in conf)


def test_duckdb_reads_s3a_paths_through_an_s3_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "it's-secret")
    s = _on_cluster()
    sql = duck.s3_secret_sql(s)
    assert "ENDPOINT '127.0.0.1:5000'" in sql and "URL_STYLE 'path'" in sql and "USE_SSL false" in sql
    assert "SECRET 'it''s-secret'" in sql  # quoted, never interpolated raw
    assert duck.duck_uri("s3a://cryptolake/lake/silver/bars") == "s3://cryptolake/lake/silver/bars"
    assert duck.duck_uri("/tmp/lake/silver/bars") == "/tmp/lake/silver/bars"
    opts = duck.delta_storage_options(s)
    assert opts["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000" and opts["AWS_ALLOW_HTTP"] == "true"
    assert opts["AWS_ACCESS_KEY_ID"] == "AKIDEXAMPLE"
    assert duck.delta_storage_options(Settings()) == {}


def test_topic_replication_comes_from_settings() -> None:
    three = Settings().model_copy(update={"kafka": KafkaSettings(replication_factor=3, min_insync_replicas=2)})
    assert topics.replication(three) == (3, {"min.insync.replicas": "2"})
    assert topics.replication(Settings()) == (1, {"min.insync.replicas": "1"})
    bad = Settings().model_copy(update={"kafka": KafkaSettings(replication_factor=1, min_insync_replicas=2)})
    with pytest.raises(ConfigError, match=r"min_insync_replicas=2 exceeds kafka\.replication_factor=1"):
        topics.replication(bad)


def test_daemon_commands_bind_loopback_with_one_core_workers(tmp_path) -> None:
    from infra import dask_cluster, spark_cluster

    w = spark_cluster.worker_command("spark://127.0.0.1:7077", 7078, 8081, tmp_path, memory="1g")
    assert w[1] == "org.apache.spark.deploy.worker.Worker" and w[-1] == "spark://127.0.0.1:7077"
    assert w[w.index("--cores") + 1] == "1" and w[w.index("--host") + 1] == "127.0.0.1"
    env = spark_cluster.daemon_env(Settings())
    assert env["SPARK_DAEMON_MEMORY"] == "256m" and env["SPARK_LOCAL_IP"] == "127.0.0.1"
    d = dask_cluster.worker_command("tcp://127.0.0.1:8786", Settings(), tmp_path)
    assert d[1:3] == ["worker", "tcp://127.0.0.1:8786"] and "--no-nanny" in d


def test_cluster_env_is_configuration_only() -> None:
    from infra.cluster import Cluster, cluster_env, env_file_text

    env = cluster_env(Cluster("spark://127.0.0.1:7077", "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3",
                              "http://127.0.0.1:5000", "cryptolake", "tcp://127.0.0.1:8786"), Settings())
    assert env == {
        "CRYPTOLAKE__SPARK__MASTER": "spark://127.0.0.1:7077",
        "CRYPTOLAKE__KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3",
        "CRYPTOLAKE__KAFKA__REPLICATION_FACTOR": "3",
        "CRYPTOLAKE__KAFKA__MIN_INSYNC_REPLICAS": "2",
        "CRYPTOLAKE__S3__ENDPOINT_URL": "http://127.0.0.1:5000",
        "CRYPTOLAKE__PATHS__LAKE_ROOT": "s3a://cryptolake/lake",
        "CRYPTOLAKE__PATHS__CHECKPOINT_ROOT": "s3a://cryptolake/checkpoints",
        "CRYPTOLAKE__DASK__SCHEDULER_ADDRESS": "tcp://127.0.0.1:8786",
    }
    for key, value in env.items():  # every printed variable is a real setting
        assert f"export {key}={value}\n" in env_file_text(env)
    from cryptolake.settings import settings_table

    names = {row[0] for row in settings_table()}
    assert set(env) <= names


def test_java_options_follow_the_utc_timezone_on_driver_and_executors() -> None:
    from spark_jobs.session import spark_conf

    base = Settings()
    plain = spark_conf(base.model_copy(update={"spark": base.spark.model_copy(update={"java_options": ""})}))
    assert plain["spark.driver.extraJavaOptions"] == plain["spark.executor.extraJavaOptions"] == "-Duser.timezone=UTC"
    s = Settings()
    short = " -XX:TieredStopAtLevel=1  -XX:+UseSerialGC"
    s = s.model_copy(update={"spark": s.spark.model_copy(update={"java_options": short})})
    conf = spark_conf(s)
    assert conf["spark.driver.extraJavaOptions"] == "-Duser.timezone=UTC -XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
    assert conf["spark.executor.extraJavaOptions"] == conf["spark.driver.extraJavaOptions"]
