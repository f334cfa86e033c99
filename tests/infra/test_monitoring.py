"""Monitoring: the scrape config, the alert rules (promtool), the Grafana dashboard, and Prometheus scraping
``cryptolake monitor`` and a trader's metrics, with a freshness rule firing.

The lake table of the integration test is SYNTHETIC (a few rows written with deltalake; its commit
time is set an hour back so the freshness rule has something to fire on).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cryptolake.settings import PROJECT_ROOT, Settings
from infra import prometheus
from infra.broker import free_port

MONITORING = PROJECT_ROOT / "infra" / "monitoring"
CODE_DIRS = ("cryptolake", "trader", "infra", "ingest", "spark_jobs", "pipeline", "cli", "api")


def _settings(tmp_path: Path) -> Settings:
    base = Settings()
    return base.model_copy(update={"paths": base.paths.model_copy(update={"state_dir": tmp_path / "state",
                                                                          "lake_root": str(tmp_path / "lake")})})


def test_write_config_scrapes_every_target_and_loads_the_rules(tmp_path):
    path = prometheus.write_config({"trader": "127.0.0.1:9101", "monitor": "127.0.0.1:9102"}, _settings(tmp_path),
                                   scrape_interval_s=5)
    config = json.loads(path.read_text())
    assert config["global"] == {"scrape_interval": "5s", "evaluation_interval": "5s"}
    assert [(j["job_name"], j["static_configs"][0]["targets"]) for j in config["scrape_configs"]] == [
        ("monitor", ["127.0.0.1:9102"]), ("trader", ["127.0.0.1:9101"])]
    assert config["rule_files"] == [str(path.parent / "alerts.yml")]
    assert (path.parent / "alerts.yml").read_text() == (MONITORING / "alerts.yml").read_text()
    check = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    with pytest.raises(Exception, match="not host:port"):
        prometheus.write_config({"bad": "localhost"}, _settings(tmp_path))


def test_alert_rules_pass_promtool_and_cover_freshness_lag_kill_switch_and_process_down():
    check = subprocess.run(["promtool", "check", "rules", str(MONITORING / "alerts.yml")], capture_output=True,
                           text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 8 rules found" in check.stdout
    text = (MONITORING / "alerts.yml").read_text()
    for name in ("CryptolakeTableStale", "CryptolakeConsumerLag", "CryptolakeTraderHalted", "CryptolakeProcessDown",
                 "CryptolakeAirflowSchedulerHeartbeatMissing", "CryptolakeStatsdLinesDropped",
                 "CryptolakeAirflowTaskFailed"):
        assert f"alert: {name}" in text


HEARTBEAT_RULE_TEST = """
rule_files: [{rules}]
evaluation_interval: 30s
tests:
  # the bridge is scraped throughout; the scheduler heartbeats for 5 minutes, then stops (SYNTHETIC series)
  - interval: 30s
    input_series:
      - series: 'up{{job="statsd-bridge", instance="127.0.0.1:1"}}'
        values: '1x20'
      - series: 'airflow_scheduler_heartbeat_total{{job="statsd-bridge", instance="127.0.0.1:1"}}'
        values: '0+15x10 150x10'
      - series: 'statsd_bridge_malformed_total{{job="statsd-bridge", instance="127.0.0.1:1", reason="syntax"}}'
        values: '0x10 3x10'
    alert_rule_test:
      - eval_time: 4m
        alertname: CryptolakeAirflowSchedulerHeartbeatMissing
        exp_alerts: []
      - eval_time: 6m
        alertname: CryptolakeAirflowSchedulerHeartbeatMissing
        exp_alerts: []
      - eval_time: 10m
        alertname: CryptolakeAirflowSchedulerHeartbeatMissing
        exp_alerts:
          - exp_labels: {{severity: critical, job: statsd-bridge, instance: "127.0.0.1:1"}}
            exp_annotations:
              summary: "no Airflow scheduler heartbeat in 2 minutes (see `cryptolake logs airflow-scheduler`)"
      - eval_time: 4m
        alertname: CryptolakeStatsdLinesDropped
        exp_alerts: []
      - eval_time: 6m
        alertname: CryptolakeStatsdLinesDropped
        exp_alerts:
          - exp_labels: {{severity: warning, job: statsd-bridge, instance: "127.0.0.1:1", reason: syntax}}
            exp_annotations:
              summary: "statsd-bridge dropped 3 line(s) (syntax) in 10 minutes"
  # no bridge (Airflow off): no heartbeat alert although no heartbeat series exists
  - interval: 30s
    input_series:
      - series: 'up{{job="monitor", instance="127.0.0.1:2"}}'
        values: '1x20'
    alert_rule_test:
      - eval_time: 10m
        alertname: CryptolakeAirflowSchedulerHeartbeatMissing
        exp_alerts: []
"""


def _promtool_rule_test(spec: Path, template: str) -> None:
    """Run ``promtool test rules`` on ``template`` (its ``{rules}`` = infra/monitoring/alerts.yml): every case holds."""
    spec.write_text(template.format(rules=json.dumps(str(MONITORING / "alerts.yml"))))
    run = subprocess.run(["promtool", "test", "rules", str(spec)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def test_heartbeat_alert_fires_only_when_the_scheduler_stops_beating_while_the_bridge_is_up(tmp_path):
    _promtool_rule_test(tmp_path / "heartbeat_test.yml", HEARTBEAT_RULE_TEST)


TASK_FAILED_RULE_TEST = """
rule_files: [{rules}]
evaluation_interval: 30s
tests:
  # SYNTHETIC series as the bridge exports Airflow's tagged ti.finish: audit fails once at 5 min, land
  # only succeeds
  - interval: 30s
    input_series:
      - series: 'airflow_ti_finish_total{{dag_id="landing", task_id="audit", state="failed"}}'
        values: '0x10 1x30'
      - series: 'airflow_ti_finish_total{{dag_id="landing", task_id="audit", state="success"}}'
        values: '0+1x40'
      - series: 'airflow_ti_finish_total{{dag_id="landing", task_id="land", state="success"}}'
        values: '0+1x40'
    alert_rule_test:
      - eval_time: 4m
        alertname: CryptolakeAirflowTaskFailed
        exp_alerts: []
      - eval_time: 10m
        alertname: CryptolakeAirflowTaskFailed
        exp_alerts:
          - exp_labels: {{severity: warning, dag_id: landing, task_id: audit}}
            exp_annotations:
              summary: "landing.audit: 1 failed task instance(s) in 15 minutes"
      - eval_time: 21m
        alertname: CryptolakeAirflowTaskFailed
        exp_alerts: []
"""


def test_task_failed_alert_selects_by_the_bridges_labels_one_alert_per_dag_and_task(tmp_path):
    _promtool_rule_test(tmp_path / "task_failed_test.yml", TASK_FAILED_RULE_TEST)


def _airflow_metric_names() -> set[str]:
    """Airflow's own metrics registry (fixed names only), as the StatsD bridge exposes them (prefix airflow)."""
    import importlib.util

    import yaml

    from infra.statsd_bridge import exported_name, prom_name

    spec = importlib.util.find_spec("airflow")  # located, not imported (importing airflow configures it)
    assert spec is not None and spec.origin is not None
    template = Path(spec.origin).parent / "_shared" / "observability" / "metrics" / "metrics_template.yaml"
    kinds = {"counter": "counter", "gauge": "gauge", "timer": "timer"}
    return {exported_name(prom_name(f"airflow.{m['name']}"), kinds[m["type"]])  # type: ignore[arg-type]
            for m in yaml.safe_load(template.read_text())["metrics"] if "{" not in m["name"]}


def _exported_metric_names() -> set[str]:
    names: set[str] = set()
    for d in CODE_DIRS:
        for f in (PROJECT_ROOT / d).rglob("*.py"):
            names |= set(re.findall(r"[\"']((?:cryptolake|statsd_bridge)_[a-z0-9_]+)[\"']", f.read_text()))
    return names | _airflow_metric_names()


def test_grafana_dashboard_is_valid_and_every_expr_names_an_exported_metric():
    board = json.loads((MONITORING / "grafana" / "cryptolake.json").read_text())
    assert board["title"] and board["uid"] and isinstance(board["schemaVersion"], int)
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    exported = _exported_metric_names()
    suffixes = ("_total", "_bucket", "_sum", "_count")
    seen: set[str] = set()
    for panel in panels:
        assert panel["type"] in {"timeseries", "stat", "table", "gauge"} and panel["gridPos"]["w"] > 0
        for target in panel["targets"]:
            metrics = set(re.findall(r"\b((?:cryptolake|airflow|statsd_bridge)_[a-z0-9_]+)", target["expr"]))
            assert metrics, f"panel {panel['title']!r}: {target['expr']!r} names no cryptolake metric"
            for m in metrics:
                base = next((m[: -len(s)] for s in suffixes if m.endswith(s) and m[: -len(s)] in exported), m)
                assert base in exported, f"panel {panel['title']!r}: {m} is exported by no process"
                seen.add(base)
    assert {"cryptolake_trader_equity", "cryptolake_consumer_lag_messages",
            "cryptolake_table_commit_age_seconds", "airflow_scheduler_heartbeat_total",
            "statsd_bridge_malformed", "airflow_ti_finish_total", "airflow_task_duration_seconds",
            "airflow_dagrun_duration_success_seconds"} <= seen


def _synthetic_table(lake: Path) -> None:
    """SYNTHETIC: three bars in silver.bars_synthetic, committed (per its log) an hour ago."""
    from datetime import UTC, datetime, timedelta

    import pyarrow as pa
    from deltalake import write_deltalake

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    path = lake / "silver" / "bars_synthetic"
    write_deltalake(str(path), pa.table({"open_time": [t0 + timedelta(minutes=k) for k in range(3)],
                                         "close": [1.0, 2.0, 3.0]}))
    log = next((path / "_delta_log").glob("*.json"))
    old = int((time.time() - 3600) * 1000)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    for action in lines:
        if "commitInfo" in action:
            action["commitInfo"]["timestamp"] = old
    log.write_text("\n".join(json.dumps(a) for a in lines) + "\n")
    os.utime(log, (old / 1000, old / 1000))


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())


@pytest.mark.slow
def test_prometheus_scrapes_monitor_and_trader_and_the_freshness_rule_fires(tmp_path):
    from trader.risk import TradingState
    from trader.telemetry import TraderMetrics

    settings = _settings(tmp_path)
    _synthetic_table(tmp_path / "lake")
    port = free_port()
    env = {**os.environ, "CRYPTOLAKE__PATHS__LAKE_ROOT": str(tmp_path / "lake")}
    mon = subprocess.Popen([sys.executable, "-m", "cli.main", "monitor", "--metrics-port", str(port), "--no-kafka"],
                           env=env, cwd=PROJECT_ROOT)
    trader = TraderMetrics("paper@local")
    trader.update([], fills=0, equity=1000.0, exposure=0.0, state=TradingState.ACTIVE)
    trader_port = trader.serve(0)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                body = _get(f"http://127.0.0.1:{port}/metrics")
                break
            except OSError:
                assert mon.poll() is None and time.monotonic() < deadline, "cryptolake monitor did not serve"
                time.sleep(0.5)
        age = float(re.search(r'cryptolake_table_commit_age_seconds\{table="silver.bars_synthetic"\} (\S+)',
                              body).group(1))  # type: ignore[union-attr]
        assert 3590 < age < 3700
        event = float(re.search(r'cryptolake_table_max_event_timestamp_seconds\{table="silver.bars_synthetic"\} '
                                r'(\S+)', body).group(1))  # type: ignore[union-attr]
        assert event == 1767225720.0  # 2026-01-01T00:02Z, the newest SYNTHETIC bar
        with prometheus.LocalPrometheus({"monitor": f"127.0.0.1:{port}", "trader": f"127.0.0.1:{trader_port}"},
                                        settings) as prom:
            deadline = time.monotonic() + 60
            while not (prom.targets() == {"monitor": "up", "trader": "up"}
                       and "CryptolakeTableStale" in prom.firing()):
                assert time.monotonic() < deadline, f"targets {prom.targets()}, firing {prom.firing()}"
                time.sleep(1)
            assert "CryptolakeTraderHalted" not in prom.firing()
            trader.update([], fills=0, equity=900.0, exposure=0.0, state=TradingState.HALTED)
            deadline = time.monotonic() + 30
            while "CryptolakeTraderHalted" not in prom.firing():
                assert time.monotonic() < deadline, f"firing {prom.firing()}"
                time.sleep(1)
            result = prom.api("query", query='cryptolake_table_commit_age_seconds{table="silver.bars_synthetic"}')
            assert float(result["result"][0]["value"][1]) > 3590
    finally:
        trader.close()
        mon.send_signal(signal.SIGTERM)
        assert mon.wait(20) == 0
