"""`cryptolake up` ... `down`: the broker, the local exchange, the market connector and a paper trader
under the supervisor; candles reach Kafka, the trader gets bars, and no process of ours survives `down`."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from cryptolake import topics
from cryptolake.settings import Settings
from cryptolake.system import DEFAULT_FILE, load_system
from cryptolake.tables import GOLD_FEATURES, LANDING_AUDIT, SILVER_BARS, bronze_spec
from infra import broker, processes, supervisor
from spark_jobs.gold.features import WARMUP_BARS
from tests.conftest import settings_in
from tests.ingest.exchange.test_live_connector import _metric, _published

AIRFLOW = ("airflow-postgres", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor")
INTERVAL_S = 20  # the landing DAG's interval in this test: three scheduled runs within about a minute


def test_specs_follow_the_config(tmp_path: Path) -> None:
    from cli.up import build_specs

    env = {"CRYPTOLAKE_SYSTEM__REPLAY__DRIFT_AT": "2022-01-10T00:00:00Z", "CRYPTOLAKE_SYSTEM__REPLAY__DRIFT_SCALE": "3",
           "CRYPTOLAKE_SYSTEM__REPLAY__SPEED": "120"}
    system = load_system(DEFAULT_FILE, environ=env)
    ports = itertools.count(40000)
    specs = {s.name: s for s in build_specs(system, Settings(), 39999, lambda: next(ports))}
    assert set(specs) >= {"exchange", "market-localex-1m", "trader-paper-breakout"}
    ex = specs["exchange"].argv
    assert ex[ex.index("--drift-scale") + 1] == "3.0" and ex[ex.index("--drift-at") + 1].startswith("2022-01-10T00")
    assert ex[ex.index("--speed") + 1] == "120.0" and ex[ex.index("--port") + 1] == "39999"
    market = specs["market-localex-1m"]
    assert market.argv[market.argv.index("--base-url") + 1] == "http://127.0.0.1:39999"
    assert market.readiness_url() == f"http://127.0.0.1:{market.metrics_port}/metrics"
    stream = specs["stream"].argv
    assert stream[stream.index("--land") + 1] == "market.ohlcv" and "--metrics-port" in stream
    trader = specs["trader-paper-breakout"].argv
    assert specs["monitor"].argv[3] == "monitor"
    assert "--paper" in trader and trader[trader.index("--bar-interval") + 1] == "0.5"  # 60 s / speed 120
    # the ccxt id to connect, the connectors' venue name in its keys (bars, orders, order stages)
    assert (trader[trader.index("--venue") + 1], trader[trader.index("--venue-name") + 1]) == ("binance", "localex")


def test_airflow_specs_start_after_postgres_and_carry_the_landing_interval(tmp_path: Path) -> None:
    from cli.up import airflow_settings, airflow_specs, landing_start

    env = {"CRYPTOLAKE_SYSTEM__AIRFLOW__LANDING_INTERVAL_S": "20", "CRYPTOLAKE_SYSTEM__AIRFLOW__DAG_REFRESH_S": "7"}
    system = load_system(DEFAULT_FILE, environ=env)
    base = Settings()
    settings = airflow_settings(system, base.model_copy(
        update={"airflow": base.airflow.model_copy(update={"home": tmp_path / "af"})}))
    specs = {s.name: s for s in airflow_specs(system, settings, now=1_000_000_007.5)}
    assert list(specs) == ["airflow-postgres", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor"]
    db = specs["airflow-postgres"]
    assert db.ready_port == int(db.argv[db.argv.index("-p") + 1]) and db.stop_signal == "SIGINT" and db.env == {}
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor"):
        spec = specs[name]
        assert spec.after == ("airflow-postgres",)
        assert spec.env["CRYPTOLAKE__AIRFLOW__LANDING_INTERVAL_S"] == "20"
        assert spec.env["CRYPTOLAKE__AIRFLOW__LANDING_START"] == "2001-09-09T01:46:40+00:00"  # 1e9 s, on the grid
        assert spec.env["AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL"] == "7"
        assert not any(k.endswith("JWT_SECRET") for k in spec.env)  # only the command reading its 0600 file
    assert specs["airflow-api-server"].ready_url.endswith("/api/v2/monitor/health")
    assert landing_start(900, 1_000_000_007.5).timestamp() == 999_999_900


def test_the_statsd_bridge_starts_first_and_airflow_sends_its_metrics_to_it(tmp_path: Path) -> None:
    from cli.up import airflow_specs, build_specs

    system = load_system(DEFAULT_FILE, environ={})
    base = Settings()
    settings = base.model_copy(update={"airflow": base.airflow.model_copy(update={"home": tmp_path / "af"})})
    ports = itertools.count(40000)
    specs = build_specs(system, settings, 39999, lambda: next(ports), statsd_port=18125)
    bridge = specs[0]
    assert bridge.name == "statsd-bridge" and bridge.argv[3] == "statsd-bridge" and bridge.metrics_port == 40000
    assert bridge.argv[bridge.argv.index("--udp-port") + 1] == "18125"
    assert bridge.argv[bridge.argv.index("--metrics-port") + 1] == "40000"
    assert "statsd-bridge" not in {s.name for s in build_specs(system, settings, 39999, lambda: next(ports))}
    for spec in airflow_specs(system, settings, now=1_000_000_007.5, statsd_port=18125)[1:]:
        assert spec.after == ("airflow-postgres", "statsd-bridge")
        assert spec.env["AIRFLOW__METRICS__STATSD_PORT"] == "18125"
        assert spec.env["AIRFLOW__METRICS__STATSD_ON"] == "True"


def _run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _lake_rows(path: str, exchange: str | None) -> pd.DataFrame:
    """A Delta table's rows (of one exchange), empty while it does not exist yet."""
    from tests.pipeline.streamproc import delta_frame

    frame = delta_frame(path)
    return frame[frame["exchange"] == exchange] if exchange and not frame.empty else frame


def _prometheus_targets(port: int, timeout_s: float) -> dict[str, str]:
    """``{job: health}`` once every target is up, or as it is after ``timeout_s``."""
    import json
    import urllib.request

    deadline = time.monotonic() + timeout_s
    health: dict[str, str] = {}
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets", timeout=5) as r:
            active = json.loads(r.read())["data"]["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in active}
        if health and set(health.values()) == {"up"}:
            break
        time.sleep(1)
    return health


def _per_topic(port: int, name: str) -> dict[str, float]:
    """``{topic: value}`` of a metric's series labelled ``topic``."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    found = re.findall(rf'^{name}{{[^}}]*topic="([^"]+)"[^}}]*}} (\S+)$', body, flags=re.M)
    return {topic: float(value) for topic, value in found}


def _stream_batches(port: int) -> list[str]:
    """The stream's own batch counts and durations per query (what a failure needs to say)."""
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError as exc:
        return [f"metrics unreachable: {exc}"]
    keep = ("cryptolake_stream_batches_total", "cryptolake_stream_batch_seconds_sum", "cryptolake_stream_rows")
    return [line for line in body.splitlines() if line.startswith(keep)]


def _metric_at_least(port: int, name: str, floor: float, timeout_s: float) -> float | None:
    """The metric once it reaches ``floor``, or its last value after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    value = _metric(port, name)
    while (value is None or value < floor) and time.monotonic() < deadline:
        time.sleep(0.5)
        value = _metric(port, name)
    return value


def _landing_runs(af: Settings) -> list[tuple[str, str, datetime, datetime]]:
    """(run type, state, data interval) of every market_landing run, from the metadata DB."""
    import psycopg

    from infra import airflow_services

    url = airflow_services.db_url(af).replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(url, connect_timeout=5) as con:
        rows = con.execute("SELECT run_type, state, data_interval_start, data_interval_end FROM dag_run "
                           "WHERE dag_id = 'market_landing' ORDER BY data_interval_start").fetchall()
    return [(str(t), str(s), lo, hi) for t, s, lo, hi in rows]


def _session_pids(sids: list[int]) -> list[int]:
    return [p for sid in sids for p in processes.session_members(sid)]


@pytest.mark.kafka
@pytest.mark.airflow
@pytest.mark.slow
def test_up_runs_the_system_and_down_leaves_no_process(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, own_state=True)
    # not under pytest's 0700 tmp root: under root, PostgreSQL runs as `postgres` and must reach its folder
    af_root = Path(tempfile.mkdtemp(prefix="cryptolake-up-af-"))
    af_root.chmod(0o755)
    af = settings.model_copy(update={"airflow": settings.airflow.model_copy(update={"home": af_root / "home"})})
    env = {**os.environ, "CRYPTOLAKE__PATHS__STATE_DIR": str(settings.paths.state_dir),
           "CRYPTOLAKE__PATHS__JARS_DIR": str(settings.paths.jars_dir),
           "CRYPTOLAKE__PATHS__LAKE_ROOT": settings.paths.lake(), "CRYPTOLAKE__LOG_LEVEL": "WARNING",
           # its own checkpoints too: the session's (tests/dags) belong to the shared broker, not to this one
           "CRYPTOLAKE__PATHS__CHECKPOINT_ROOT": settings.paths.checkpoints(),
           "CRYPTOLAKE__PATHS__ARTIFACTS_DIR": str(tmp_path / "artifacts"),  # no champion: stream lands + features
           "CRYPTOLAKE__SPARK__SHUFFLE_PARTITIONS": "2",
           "CRYPTOLAKE__TRADER__STORE_URL": f"sqlite:///{tmp_path / 'trades.db'}",
           "CRYPTOLAKE_SYSTEM__REPLAY__SPEED": "600", "CRYPTOLAKE_SYSTEM__REPLAY__START_INDEX": "300",
           # Airflow required (no silent skip), its own home, and 20-second landing intervals to be scheduled
           "CRYPTOLAKE__AIRFLOW__HOME": str(af.airflow.home), "CRYPTOLAKE_SYSTEM__AIRFLOW__ENABLED": "true",
           "CRYPTOLAKE_SYSTEM__AIRFLOW__LANDING_INTERVAL_S": str(INTERVAL_S),
           # a day's retraining interval: no model_retraining run within the test (tests/cli/test_up_retrain.py's)
           "CRYPTOLAKE_SYSTEM__AIRFLOW__RETRAIN_INTERVAL_S": "86400"}
    pids: list[int] = []
    sessions: list[int] = []
    descendants: list[int] = []
    try:
        up = _run(["up"], env, 420)
        assert up.returncode == 0, up.stdout + up.stderr
        state = supervisor.read_state(settings)
        assert state is not None
        rows = state["processes"]
        assert set(rows) == {"exchange", "market-localex-1m", "trader-paper-breakout", "altdata", "stream", "monitor",
                             "prometheus", "statsd-bridge", *AIRFLOW}
        assert all(r["state"] == "running" and r["ready"] for r in rows.values())
        pids = [state["pid"], *(r["pid"] for r in rows.values())]
        sessions = [r["pid"] for r in rows.values()]
        exchange_log = (settings.paths.state_dir / "logs" / "exchange.log").read_text(errors="replace")
        assert "local exchange on" in exchange_log and "api secret" not in exchange_log  # no secret in a log
        log = settings.paths.state_dir / "logs" / "trader-paper-breakout.log"
        deadline = time.monotonic() + 90
        bars = 0
        while time.monotonic() < deadline and bars < 30:
            found = re.findall(r"bars=(\d+)", log.read_text(errors="replace"))
            bars = int(found[-1]) if found else 0
            time.sleep(1)
        assert bars >= 30, log.read_text(errors="replace")[-2000:]  # the trader got the replayed bars (websocket)
        status = _run(["status"], env, 60)
        table = [line.split()[0] for line in status.stdout.splitlines() if " running " in line and line[:1] != " "]
        assert status.returncode == 0 and set(table) == {*rows, "kafka"}, status.stdout + status.stderr
        watch = (supervisor.read_state(settings) or {}).get("broker") or {}
        assert watch.get("up") and watch.get("restarts") == 0, watch  # the supervisor watches the broker
        logs = _run(["logs", "market-localex-1m", "--lines", "5"], env, 60)
        assert logs.returncode == 0, logs.stderr
        seen = _published(settings, "localex")  # the candles in Kafka: the history, then the replay, each once
        assert len(seen) >= 300 and max(seen.values()) == 1, (len(seen), max(seen.values(), default=0))
        # the gauge is refreshed on the connector's metrics tick, so it may trail Kafka by a tick: wait for it
        sent = _metric_at_least(rows["market-localex-1m"]["metrics_port"], "cryptolake_producer_messages_sent",
                                len(seen), 20)
        assert sent is not None and sent >= len(seen) >= 300, (sent, len(seen))
        # the streaming driver lands the candles and computes gold at each bar close (WARMUP_BARS of history first)
        # (the first features batch takes the whole history: minutes on CI's loaded 2 cores; it returns early)
        deadline = time.monotonic() + 600
        gold = 0
        while time.monotonic() < deadline and gold == 0:
            gold = len(_lake_rows(GOLD_FEATURES.path(settings), "localex"))
            time.sleep(2)
        landed = len(_lake_rows(bronze_spec(topics.MARKET_OHLCV).path(settings), None))
        stream_log = (settings.paths.state_dir / "logs" / "stream.log").read_text(errors="replace")[-3000:]
        assert gold > 0 and landed >= WARMUP_BARS, (gold, landed, _stream_batches(rows["stream"]["metrics_port"]),
                                                    stream_log)
        silver = _lake_rows(SILVER_BARS.path(settings), "localex")
        assert silver["open_time"].is_unique and len(silver) <= len(seen), (len(silver), len(seen))
        targets = _prometheus_targets(rows["prometheus"]["metrics_port"], 90)
        scraped = {n for n, r in rows.items() if r.get("metrics_port") and n != "prometheus"} | {"supervisor"}
        assert set(targets) == scraped and set(targets.values()) == {"up"}, targets  # every target up
        # Airflow's own metrics, through the StatsD bridge (the scheduler heartbeats every 2 s)
        beats = _metric_at_least(rows["statsd-bridge"]["metrics_port"], "airflow_scheduler_heartbeat_total", 1, 30)
        assert beats is not None and beats >= 1, beats
        alt = _per_topic(rows["altdata"]["metrics_port"], "cryptolake_producer_messages_sent")
        # the real headlines', posts' and chain figures' replays flow into their topics
        # (X, Telegram and Discord into social.posts; the EVM node's blocks and transfers into chain.*)
        assert set(alt) == {"news.articles", "social.posts", "chain.daily_stats", "chain.blocks",
                            "chain.transfers"} and min(alt.values()) > 0, alt
        _assert_scheduled_landing_runs(af, env)
        descendants = _session_pids(sessions)  # postgres backends, api-server workers, task processes, ...
    finally:
        down = _run(["down"], env, 180)
        shutil.rmtree(af_root, ignore_errors=True)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "no process of ours left" in down.stdout
    assert [p for p in pids + descendants if processes.alive(p)] == []
    assert _session_pids(sessions) == []  # nothing left in any supervised process's session (PostgreSQL included)
    assert broker.broker_java_pids(settings) == [] and supervisor.supervised_pids(settings) == []


def _assert_scheduled_landing_runs(af: Settings, env: dict[str, str]) -> None:
    """The real scheduler ran >= 3 consecutive scheduled intervals of market_landing (catch-up included), and
    each run's ops.landing_audit row holds exactly the bronze rows landed in its interval."""
    deadline = time.monotonic() + 240
    while True:
        runs = _landing_runs(af)
        done = [r for r in runs if r[0] == "scheduled" and r[1] == "success"]
        audit = _lake_rows(LANDING_AUDIT.path(af), None)
        landed = set(audit[audit["rows"] > 0]["interval_start"]) if not audit.empty else set()
        if len(done) >= 3 and any(lo in landed for _, _, lo, _ in done):
            break
        assert time.monotonic() < deadline, (runs, audit.to_dict("records") if not audit.empty else [])
        time.sleep(3)
    assert {t for t, *_ in runs} == {"scheduled"}  # no manual run, no backfill: the scheduler's own runs
    assert all(s in ("success", "running", "queued") for _, s, _, _ in runs), runs
    intervals = [(lo, hi) for _, _, lo, hi in done]
    assert len(set(intervals)) == len(intervals) >= 3
    assert all(hi - lo == timedelta(seconds=INTERVAL_S) for lo, hi in intervals)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(intervals))  # consecutive: each interval, no gap
    from tests.pipeline.streamproc import delta_frame

    bronze = delta_frame(bronze_spec(topics.MARKET_OHLCV).path(af), ["landed_time"])
    by_start = {r["interval_start"]: r for r in audit.to_dict("records")}
    for lo, hi in intervals:
        row = by_start[lo]
        expected = int(((bronze["landed_time"] >= lo) & (bronze["landed_time"] < hi)).sum()) if len(bronze) else 0
        assert (row["rows"], row["duplicates"], row["interval_end"]) == (expected, 0, hi), (row, expected)
        assert row["status"] == ("ok" if expected else "empty")
    assert len(audit) == len(set(audit["interval_start"]))  # one row per interval, re-runs replace it
    status = _run(["status"], env, 60)
    assert "last" in status.stdout and "scheduled success" in " ".join(status.stdout.split()), status.stdout
