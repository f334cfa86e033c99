"""The real Airflow deployment: its environment and argv (pure), then the scheduler running backfill runs.

The integration test starts PostgreSQL, migrates it, starts the API server, scheduler and DAG
processor with the LocalExecutor, then backfills through the REST API: three 15-minute intervals of
the market DAG ``market_landing`` (each run audits its interval's bronze ``market.ohlcv`` rows, no
JVM) and one daily interval of ``stack_smoke`` (one Spark task under the LocalExecutor, writing its
interval's rows to ``ops.stack_smoke``). It asserts the run states in the metadata DB and the rows
the runs wrote, and that the scheduler's, the DAG processor's and the tasks' StatsD metrics reached the
StatsD bridge's /metrics (real series: Airflow falls back to a silent no-op logger when its ``statsd``
client is missing). (Scheduled runs with catch-up run under ``cryptolake up``: ``tests/cli/test_up.py``.)
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cryptolake.settings import Settings
from infra import airflow_services as svc
from infra.statsd_bridge import StatsdBridge


def _settings(home: Path) -> Settings:
    base = Settings()
    return base.model_copy(update={"airflow": base.airflow.model_copy(update={"home": home, "dag_refresh_s": 5})})


def test_env_uses_postgres_local_executor_and_the_api_server_for_task_execution(tmp_path):
    s = _settings(tmp_path / "af")
    env = svc.services_env(s)
    port = svc.db_port(s)
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith(f"@127.0.0.1:{port}/airflow")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    api = env["AIRFLOW__API__PORT"]
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://127.0.0.1:{api}/execution/"
    assert svc.services_env(s) == env  # ports and the JWT secret are chosen once, then kept
    assert oct((tmp_path / "af" / "jwt_secret").stat().st_mode & 0o777) == "0o600"
    assert not any(k.startswith("AIRFLOW__METRICS__") for k in env)  # no StatsD port given: no metrics options
    metrics = svc.services_env(s, statsd_port=18125)
    assert {k: v for k, v in metrics.items() if k.startswith("AIRFLOW__METRICS__")} == {
        "AIRFLOW__METRICS__STATSD_ON": "True", "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": "18125", "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
        "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True", "AIRFLOW__METRICS__LEGACY_NAMES_ON": "False",
        "AIRFLOW__METRICS__STATSD_DISABLED_TAGS": "job_id,run_id"}


def test_process_specs_send_statsd_to_the_bridge_and_wait_for_it(tmp_path):
    s = _settings(tmp_path / "af")
    db, *airflow = svc.process_specs(s, statsd_port=18125, after=("statsd-bridge",))
    assert "AIRFLOW__METRICS__STATSD_PORT" not in db.env
    for spec in airflow:
        assert spec.env["AIRFLOW__METRICS__STATSD_PORT"] == "18125"
        assert spec.after == ("airflow-postgres", "statsd-bridge")


def test_specs_name_every_process_with_its_argv(tmp_path):
    s = _settings(tmp_path / "af")
    specs = {spec.name: spec for spec in svc.specs(s)}
    assert list(specs) == ["airflow-postgres", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor"]
    assert specs["airflow-scheduler"].argv[1:] == ("scheduler",)
    assert specs["airflow-dag-processor"].argv[1:] == ("dag-processor",)
    assert specs["airflow-api-server"].argv[1:3] == ("api-server", "--port")
    pg = specs["airflow-postgres"].argv
    assert pg[pg.index("-p") + 1] == str(svc.db_port(s)) and "listen_addresses=127.0.0.1" in pg
    assert specs["airflow-postgres"].env == {}  # no secret, no airflow option: the DB needs none


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[svc.AirflowServices, Path, StatsdBridge]]:
    # not under pytest's 0700 tmp root: under root, PostgreSQL runs as `postgres` and must reach its folder
    root = Path(tempfile.mkdtemp(prefix="cryptolake-afsvc-"))
    root.chmod(0o755)
    lake = root / "lake"
    extra = {"CRYPTOLAKE__PATHS__LAKE_ROOT": str(lake), "CRYPTOLAKE__PATHS__CHECKPOINT_ROOT": str(root / "chk"),
             "CRYPTOLAKE__SPARK__DRIVER_MEMORY": "1g"}
    bridge = StatsdBridge()
    bridge.start()
    settings = _settings(root / "af")
    # stack_smoke's scheduled run and its backfill are two Spark tasks that can hold both default slots for
    # minutes on a loaded 2-core machine: a third slot keeps the market DAG's short runs from starving
    settings = settings.model_copy(update={"airflow": settings.airflow.model_copy(update={"parallelism": 3})})
    deployment = svc.AirflowServices(settings, extra_env=extra, statsd_port=bridge.udp_port)
    try:
        deployment.start()
        yield deployment, lake, bridge
    finally:
        deployment.stop()
        bridge.close()
        shutil.copytree(root / "af" / "logs", tmp_path / "airflow-logs", dirs_exist_ok=True)  # kept for a failure
        shutil.rmtree(root, ignore_errors=True)


def _runs(d: svc.AirflowServices, dag_id: str) -> list[tuple[str, str, datetime]]:
    """(run type, state, data interval start) of every run of ``dag_id``, read from the metadata DB."""
    import psycopg

    url = svc.db_url(d.settings).replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(url) as con:
        rows = con.execute("SELECT run_type, state, data_interval_start FROM dag_run WHERE dag_id = %s "
                           "ORDER BY data_interval_start", (dag_id,)).fetchall()
    return [(str(t), str(s), i) for t, s, i in rows]


def _wait_parsed(d: svc.AirflowServices, dag_ids: set[str]) -> None:
    deadline = time.monotonic() + 120
    while not dag_ids <= {x["dag_id"] for x in d.rest("GET", "dags?limit=100")["dags"]}:
        assert time.monotonic() < deadline, f"{dag_ids} never parsed"  # the DAG processor's parse
        time.sleep(2)


def _scraped(bridge: StatsdBridge) -> dict[str, float]:
    """``{sample: value}`` of the bridge's /metrics (labelled samples keep their labels in the key)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{bridge.metrics_port}/metrics", timeout=5) as r:
        body = r.read().decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^([a-zA-Z_]\S*) (\S+)$", body, re.M)}


def _sum(got: dict[str, float], name: str, *labels: str) -> float:
    """The sum of ``name``'s samples (every label set) carrying each of ``labels`` (``'dag_id="x"'``)."""
    return sum(v for k, v in got.items() if (k == name or k.startswith(name + "{")) and all(lb in k for lb in labels))


def _airflow_metrics(bridge: StatsdBridge, timeout_s: float = 30) -> dict[str, float]:
    """The bridge's samples once the scheduler's heartbeat and the market DAG's finished runs are in them."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = _scraped(bridge)
        done = _sum(got, "airflow_dagrun_duration_success_seconds_count", 'dag_id="market_landing"')
        if (_sum(got, "airflow_scheduler_heartbeat_total") > 0 and _sum(got, "airflow_ti_successes_total") >= 3
                and done >= 3) or time.monotonic() > deadline:
            return got
        time.sleep(1)


def _backfill_done(d: svc.AirflowServices, dag_id: str, count: int, timeout_s: float) -> list[tuple[str, datetime]]:
    deadline = time.monotonic() + timeout_s
    while True:
        runs = [(s, i) for t, s, i in _runs(d, dag_id) if t == "backfill"]
        if len(runs) == count and all(s in ("success", "failed") for s, _ in runs):
            return runs
        assert time.monotonic() < deadline, f"{dag_id} backfill runs not done: {runs}"
        time.sleep(3)


@pytest.mark.airflow
@pytest.mark.spark
@pytest.mark.slow
def test_real_scheduler_backfills_the_market_dag_and_a_spark_task_with_the_local_executor(deployment):
    from deltalake import DeltaTable

    from cryptolake.tables import LANDING_AUDIT
    from tests.conftest import settings_in
    from tests.pipeline.test_landing import _bronze

    d, lake, bridge = deployment
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    landed = {0: 3, 1: 0, 2: 5}  # SYNTHETIC bronze rows per 15-minute interval (by landed_time)
    rows = [(t0 + timedelta(minutes=15 * k, seconds=7 * j)) for k, n in landed.items() for j in range(n)]
    settings = settings_in(lake.parent)
    _bronze(settings, list(enumerate(rows)))
    _wait_parsed(d, {"market_landing", "stack_smoke"})
    d.rest("POST", "backfills", {"dag_id": "market_landing", "from_date": "2024-01-01T00:00:00Z",
                                 "to_date": "2024-01-01T00:30:00Z", "max_active_runs": 1})
    d.rest("PATCH", "dags/stack_smoke", {"is_paused": False})  # also starts today's scheduled run (no catch-up)
    d.rest("POST", "backfills", {"dag_id": "stack_smoke", "from_date": "2024-01-01T00:00:00Z",
                                 "to_date": "2024-01-01T00:00:00Z", "max_active_runs": 1})
    starts = [t0 + timedelta(minutes=15 * k) for k in landed]
    assert _backfill_done(d, "market_landing", 3, 240) == [("success", s) for s in starts]
    audit = sorted(DeltaTable(LANDING_AUDIT.path(settings)).to_pyarrow_table().to_pylist(),
                   key=lambda r: r["interval_start"])
    got = [(r["interval_start"], r["interval_end"] - r["interval_start"], r["rows"], r["status"]) for r in audit
           if r["interval_start"].year == 2024]
    assert got == [(s, timedelta(minutes=15), n, "ok" if n else "empty") for s, n in zip(starts, landed.values(),
                                                                                           strict=True)]
    # the scheduler's, the DAG processor's and the tasks' StatsD lines, translated by the bridge
    got = _airflow_metrics(bridge)
    airflow = sorted(k for k in got if k.startswith("airflow_"))
    assert _sum(got, "airflow_scheduler_heartbeat_total") > 0, airflow  # a heartbeat every 2 s
    # from the task processes (one per run), labelled by DAG and task (Airflow's tags, not names)
    assert _sum(got, "airflow_ti_successes_total", 'dag_id="market_landing"', 'task_id="') >= 3, airflow
    assert _sum(got, "airflow_ti_finish_total", 'dag_id="market_landing"', 'state="success"') >= 3, airflow
    # the three runs of the market DAG, each timed by the scheduler (a histogram in seconds)
    assert _sum(got, "airflow_dagrun_duration_success_seconds_count", 'dag_id="market_landing"') >= 3, airflow
    assert not any("market_landing" in k.split("{")[0] for k in airflow), airflow  # no ids in metric names
    # legacy_names_on is off, but Airflow 3.3's DagRun times first_task_scheduling_delay under its legacy name
    # too (models/dagrun.py, unconditionally): the bridge skips that copy, one per tagged observation
    skipped = {k: v for k, v in got.items() if k.startswith("statsd_bridge_legacy_skipped_total") and v}
    delay = _sum(got, "airflow_dagrun_first_task_scheduling_delay_seconds_count")
    assert skipped == ({'statsd_bridge_legacy_skipped_total{metric="dagrun.first_task_scheduling_delay"}': delay}
                       if delay else {}), (skipped, delay)
    assert "airflow_dag_processing_total_parse_time" in got, airflow  # the DAG processor's gauge
    malformed = {k: v for k, v in got.items() if k.startswith("statsd_bridge_malformed_total") and v}
    assert malformed == {}, malformed  # every line Airflow sent translated
    # a Spark task under the LocalExecutor (a loaded 2-core machine starts its JVM in 20-90 s)
    assert _backfill_done(d, "stack_smoke", 1, 600) == [("success", t0)]
    per_day: dict[str, int] = {}
    for row in DeltaTable(str(lake / "ops" / "stack_smoke")).to_pyarrow_table().to_pylist():
        day = row["interval_start"].strftime("%Y-%m-%d")
        per_day[day] = per_day.get(day, 0) + 1
    assert {k: v for k, v in per_day.items() if k.startswith("2024-")} == {"2024-01-01": 10}
