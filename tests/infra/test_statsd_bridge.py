"""The StatsD -> Prometheus bridge: counters with sample rates, gauges and deltas, timers as histograms in
seconds, sanitised names, malformed lines counted (never a crash), and real datagrams over loopback UDP."""

from __future__ import annotations

import logging
import random
import socket
import time

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from infra.statsd_bridge import (
    BUCKETS,
    LEGACY_NAMES,
    MalformedLine,
    StatsdBridge,
    StatsdTranslator,
    legacy_matcher,
    parse_line,
    prom_name,
)


def _samples(t: StatsdTranslator) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of one scrape of ``t`` (through the text exposition)."""
    from prometheus_client import generate_latest

    registry = CollectorRegistry()
    registry.register(t)
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(t: StatsdTranslator, name: str, **labels: str) -> float:
    return _samples(t)[(name, tuple(sorted(labels.items())))]


def test_names_are_sanitised_for_prometheus() -> None:
    assert prom_name("airflow.scheduler_heartbeat") == "airflow_scheduler_heartbeat"
    assert prom_name("airflow.ti.finish.market-landing.audit.success") == \
        "airflow_ti_finish_market_landing_audit_success"
    assert prom_name("9lives.x/y z") == "_9lives_x_y_z"


def test_counters_add_up_and_a_sample_rate_scales_the_increment() -> None:
    t = StatsdTranslator()
    assert t.feed(b"airflow.scheduler_heartbeat:1|c\nairflow.scheduler_heartbeat:1|c") == 2
    assert t.apply("airflow.ti_successes:3|c|@0.5") == 1  # 3 seen at a 50 % sample rate = 6
    assert _value(t, "airflow_scheduler_heartbeat_total") == 2.0
    assert _value(t, "airflow_ti_successes_total") == 6.0
    assert _value(t, "statsd_bridge_lines_total") == 3.0 and _value(t, "statsd_bridge_packets_total") == 1.0


def test_gauges_are_set_and_signed_values_move_them() -> None:
    t = StatsdTranslator()
    for line in ("airflow.executor.open_slots:16|g", "airflow.executor.open_slots:+4|g",
                 "airflow.executor.open_slots:-6.5|g", "airflow.pool.open_slots:-2|g"):
        assert t.apply(line) == 1
    assert _value(t, "airflow_executor_open_slots") == 13.5
    assert _value(t, "airflow_pool_open_slots") == -2.0  # a delta on a new gauge starts from 0
    t.apply("airflow.executor.open_slots:3|g")  # an unsigned value sets it again
    assert _value(t, "airflow_executor_open_slots") == 3.0


def test_timers_become_histograms_in_seconds_weighted_by_the_sample_rate() -> None:
    t = StatsdTranslator()
    t.apply("airflow.dag_processing.total_parse_time:1500|ms")  # 1.5 s
    t.apply("airflow.dag_processing.total_parse_time:20.000000|ms|@0.5")  # 0.02 s, counts twice
    name = "airflow_dag_processing_total_parse_time_seconds"
    assert _value(t, f"{name}_count") == 3.0
    assert _value(t, f"{name}_sum") == pytest.approx(1.5 + 2 * 0.02)
    assert _value(t, f"{name}_bucket", le="0.01") == 0.0
    assert _value(t, f"{name}_bucket", le="0.025") == 2.0
    assert _value(t, f"{name}_bucket", le="1.0") == 2.0
    assert _value(t, f"{name}_bucket", le="2.5") == 3.0
    assert _value(t, f"{name}_bucket", le="+Inf") == 3.0
    assert len([k for k in _samples(t) if k[0] == f"{name}_bucket"]) == len(BUCKETS) + 1


def test_influxdb_tags_become_labels_per_series() -> None:
    # the lines Airflow 3.3's SafeStatsdLogger sends with statsd_influxdb_enabled (prefix airflow)
    t = StatsdTranslator()
    assert t.feed(b"airflow.ti.finish,dag_id=market_landing,task_id=land.bars,state=success:1|c\n"
                  b"airflow.ti.finish,dag_id=market_landing,task_id=land.bars,state=success:1|c\n"
                  b"airflow.ti.finish,dag_id=market_landing,task_id=audit,state=failed:1|c\n"
                  b"airflow.dagrun.duration.success,dag_id=market_landing,run_type=scheduled:2500.000000|ms\n"
                  b"airflow.pool.open_slots,pool_name=default_pool:128|g\n"
                  b"airflow.pool.open_slots,pool_name=default_pool:-3|g") == 6
    finish = "airflow_ti_finish_total"
    assert _value(t, finish, dag_id="market_landing", task_id="land.bars", state="success") == 2.0
    assert _value(t, finish, dag_id="market_landing", task_id="audit", state="failed") == 1.0
    assert len([k for k in _samples(t) if k[0] == finish]) == 2
    run = "airflow_dagrun_duration_success_seconds"
    assert _value(t, f"{run}_count", dag_id="market_landing", run_type="scheduled") == 1.0
    assert _value(t, f"{run}_sum", dag_id="market_landing", run_type="scheduled") == 2.5
    assert _value(t, f"{run}_bucket", dag_id="market_landing", run_type="scheduled", le="2.5") == 1.0
    assert _value(t, f"{run}_bucket", dag_id="market_landing", run_type="scheduled", le="1.0") == 0.0
    assert _value(t, "airflow_pool_open_slots", pool_name="default_pool") == 125.0
    assert _value(t, "statsd_bridge_series") == 4.0


def test_a_metric_seen_with_different_tag_sets_is_one_family_with_the_union_of_label_names() -> None:
    from prometheus_client import generate_latest

    t = StatsdTranslator()
    t.apply("airflow.ti_successes,dag_id=a:1|c")
    t.apply("airflow.ti_successes,dag_id=a,task_id=x:1|c")
    t.apply("airflow.ti_successes:1|c")  # no tags: every label empty
    t.apply("airflow.ti_successes,task-id=x,dag_id=a:1|c")  # task-id sanitised to task_id: the same series
    t.apply("airflow.ti_successes,dag_id=a,task_id=:1|c")  # an empty value is an absent label
    registry = CollectorRegistry()
    registry.register(t)
    text = generate_latest(registry).decode()
    assert 'airflow_ti_successes_total{dag_id="a",task_id=""} 2.0' in text
    assert 'airflow_ti_successes_total{dag_id="a",task_id="x"} 2.0' in text
    assert 'airflow_ti_successes_total{dag_id="",task_id=""} 1.0' in text
    assert text.count("# TYPE airflow_ti_successes_total counter") == 1
    assert _value(t, "statsd_bridge_series") == 3.0


def test_label_values_are_escaped_in_the_exposition() -> None:
    from prometheus_client import generate_latest

    t = StatsdTranslator()
    assert t.apply('airflow.x,path=a"b\\c:1|g') == 1
    registry = CollectorRegistry()
    registry.register(t)
    assert 'airflow_x{path="a\\"b\\\\c"} 1.0' in generate_latest(registry).decode()
    assert _value(t, "airflow_x", path='a"b\\c') == 1.0


def test_new_label_values_count_against_the_series_limit() -> None:
    t = StatsdTranslator(series_limit=3)
    for task in ("a", "b", "c", "d"):
        t.apply(f"airflow.ti.finish,dag_id=d,task_id={task},state=success:1|c")
    t.apply("airflow.ti.finish,dag_id=d,task_id=a,state=success:1|c")  # a known series still counts
    assert _value(t, "statsd_bridge_series") == 3.0
    assert _value(t, "airflow_ti_finish_total", dag_id="d", task_id="a", state="success") == 2.0
    assert ("airflow_ti_finish_total", (("dag_id", "d"), ("state", "success"), ("task_id", "d"))) not in _samples(t)
    assert _value(t, "statsd_bridge_malformed_total", reason="series_limit") == 1.0


@pytest.mark.parametrize(("line", "reason"), [
    ("no colon here", "syntax"),
    ("airflow.x:1", "syntax"),
    ("airflow.x:1|c|@0.5|#tag:v", "syntax"),
    ("airflow.x:1|c|rate", "syntax"),
    ("airflow.x:one|c", "bad_value"),
    ("airflow.x:nan|g", "bad_value"),
    ("airflow.x:1e999|g", "bad_value"),
    ("airflow.x:1|c|@0", "bad_rate"),
    ("airflow.x:1|c|@1.5", "bad_rate"),
    ("airflow.x:1|s", "unsupported_type"),
    (":1|c", "bad_name"),
    ("...:1|c", "bad_name"),
    ("airflow.x:-1|c", "negative_counter"),
    ("airflow.x:-5|ms", "negative_timer"),
    ("airflow.x:" + "9" * 2000 + "|c", "too_long"),
    ("airflow.x,dag_id:1|c", "bad_tag"),
    ("airflow.x,=v:1|c", "bad_tag"),
    ("airflow.x,,dag_id=a:1|c", "bad_tag"),
    ("airflow.x,__name__=y:1|c", "bad_tag"),
    ("airflow.x,dag_id=a,dag_id=b:1|c", "bad_tag"),
    ("airflow.x,dag-id=a,dag_id=b:1|c", "bad_tag"),  # the same label once sanitised
    ("airflow.x,le=1:5|ms", "bad_tag"),  # a histogram's own label
    (",dag_id=a:1|c", "bad_name"),
])
def test_parse_line_names_what_is_wrong(line: str, reason: str) -> None:
    with pytest.raises(MalformedLine) as exc:
        parse_line(line)
    assert exc.value.reason == reason


def test_malformed_lines_are_counted_by_reason_logged_truncated_and_the_good_ones_still_land(
        caplog: pytest.LogCaptureFixture) -> None:
    t = StatsdTranslator()
    long_garbage = "x" * 900
    packet = f"airflow.ok:1|c\ngarbage\nairflow.ok:1|q\n{long_garbage}\nairflow.ok:2|c\n\n".encode()
    with caplog.at_level(logging.WARNING, logger="infra.statsd_bridge"):
        assert t.feed(packet) == 2
        assert t.feed(b"\xff\xfe\x00 not utf-8") == 0
    assert _value(t, "airflow_ok_total") == 3.0
    assert _value(t, "statsd_bridge_malformed_total", reason="syntax") == 2.0
    assert _value(t, "statsd_bridge_malformed_total", reason="unsupported_type") == 1.0
    assert _value(t, "statsd_bridge_malformed_total", reason="not_utf8") == 1.0
    assert _value(t, "statsd_bridge_malformed_total", reason="bad_rate") == 0.0  # every reason is a series
    logged = [r for r in caplog.records if r.getMessage() == "statsd_bridge.malformed"]
    assert [r.reason for r in logged] == ["syntax", "unsupported_type", "syntax", "not_utf8"]  # type: ignore[attr-defined]
    assert logged[1].line == "airflow.ok:1|q"  # type: ignore[attr-defined]
    assert logged[2].line == "x" * 200 and logged[2].length == 900  # type: ignore[attr-defined]


def test_a_name_keeps_its_first_type_and_the_series_limit_holds() -> None:
    t = StatsdTranslator(series_limit=2)
    assert t.apply("airflow.a:1|c") == 1
    assert t.apply("airflow.a:1|g") == 0  # same name, other type
    assert t.apply("airflow.a_total:1|g") == 0  # would be exposed as the counter's own sample
    assert t.apply("airflow.b:1|ms") == 1
    assert t.apply("airflow.c:1|c") == 0  # a third series
    assert t.apply("airflow.a:1|c") == 1  # known series still count
    assert _value(t, "statsd_bridge_malformed_total", reason="type_conflict") == 2.0
    assert _value(t, "statsd_bridge_malformed_total", reason="series_limit") == 1.0
    assert _value(t, "statsd_bridge_series") == 2.0 and _value(t, "airflow_a_total") == 2.0


def test_log_lines_are_throttled_but_every_malformed_line_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    t = StatsdTranslator(clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="infra.statsd_bridge"):
        for _ in range(50):
            t.apply("bad")
        now[0] = 61.0
        t.apply("bad")
    events = [r.getMessage() for r in caplog.records]
    assert events.count("statsd_bridge.malformed") == 21  # 20 in the first minute, 1 in the next
    assert events.count("statsd_bridge.malformed_not_logged") == 1
    assert _value(t, "statsd_bridge_malformed_total", reason="syntax") == 51.0


def test_fuzzed_datagrams_never_break_the_translator() -> None:
    rng = random.Random(12)
    t = StatsdTranslator()
    alphabet = b"airflow.:|@cgms+-0123456789eE.\n#,=_ \xff"
    for _ in range(3000):
        t.feed(bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 60))))
    assert t.apply("airflow.after_fuzz:1|c") == 1
    samples = _samples(t)  # still a valid exposition
    assert samples[("airflow_after_fuzz_total", ())] == 1.0
    assert sum(v for (n, _), v in samples.items() if n == "statsd_bridge_malformed_total") > 0


def test_the_bridge_receives_udp_datagrams_and_serves_them_on_metrics() -> None:
    import urllib.request

    with StatsdBridge() as bridge:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for line in (b"airflow.scheduler_heartbeat:1|c", b"airflow.scheduler_heartbeat:1|c",
                         b"airflow.scheduler.tasks.executable:4|g\nairflow.dag_processing.total_parse_time:250|ms",
                         b"broken"):
                sock.sendto(line, ("127.0.0.1", bridge.udp_port))
        deadline = time.monotonic() + 10
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{bridge.metrics_port}/metrics", timeout=5) as r:
                body = r.read().decode()
            if "statsd_bridge_packets_total 4.0" in body or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert "airflow_scheduler_heartbeat_total 2.0" in body
    assert "airflow_scheduler_tasks_executable 4.0" in body
    assert 'airflow_dag_processing_total_parse_time_seconds_bucket{le="0.25"} 1.0' in body
    assert 'statsd_bridge_malformed_total{reason="syntax"} 1.0' in body


def test_the_cli_entry_is_documented() -> None:
    from cli.main import app

    result = CliRunner().invoke(app, ["statsd-bridge", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1",
                                                                      "TERM": "dumb"})
    assert result.exit_code == 0, result.output
    assert "--udp-port" in result.output and "--metrics-port" in result.output
    assert "statsd_bridge_malformed_total" in result.output
    assert "--keep-legacy-names" in result.output and "statsd_bridge_legacy_skipped_total" in result.output


def test_a_translator_bug_is_counted_and_the_receiver_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    bridge = StatsdBridge()
    real_feed = bridge.translator.feed

    def feed(packet: bytes) -> int:
        if packet == b"boom":
            raise RuntimeError("SYNTHETIC bug")
        return real_feed(packet)

    monkeypatch.setattr(bridge.translator, "feed", feed)
    bridge.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"boom", ("127.0.0.1", bridge.udp_port))
            sock.sendto(b"airflow.after:1|c", ("127.0.0.1", bridge.udp_port))
        deadline = time.monotonic() + 10
        while bridge.translator.lines < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        bridge.close()
    assert _value(bridge.translator, "airflow_after_total") == 1.0
    assert _value(bridge.translator, "statsd_bridge_malformed_total", reason="internal") == 1.0


def test_legacy_names_with_ids_baked_in_are_skipped_and_counted_by_their_tagged_metric() -> None:
    t = StatsdTranslator()
    legacy = (b"airflow.ti.finish.market_landing.land__bars.success:1|c\n"
              b"airflow.dagrun.duration.success.market_landing:2500.000000|ms\n"
              b"airflow.dag.market_landing.audit.duration:10|ms\n"
              b"airflow.pool.open_slots.default_pool:128|g\n"
              b"airflow.operator_successes_PythonOperator:1|c\n"
              b"airflow.ti.start.market_landing.audit,queue=default:1|c")  # a legacy line keeps its extra tags
    assert t.feed(legacy) == 0
    assert t.apply("airflow.ti.finish,dag_id=market_landing,task_id=land.bars,state=success:1|c") == 1
    samples = _samples(t)
    assert {n for n, _ in samples if n.startswith("airflow_")} == {"airflow_ti_finish_total"}
    for metric, n in (("ti.finish", 1), ("dagrun.duration.success", 1), ("task.duration", 1),
                      ("pool.open_slots", 1), ("operator_successes", 1), ("ti.start", 1), ("ti.running", 0)):
        assert _value(t, "statsd_bridge_legacy_skipped_total", metric=metric) == n, metric
    assert _value(t, "statsd_bridge_lines_total") == 1.0
    assert sum(v for (n, _), v in samples.items() if n == "statsd_bridge_malformed_total") == 0


def test_the_legacy_copy_airflow_sends_even_with_legacy_names_off_is_skipped() -> None:
    # Airflow 3.3.2 models/dagrun.py times first_task_scheduling_delay twice whatever legacy_names_on says:
    # stats.timing(f"dagrun.{dag.dag_id}.first_task_scheduling_delay", ..., tags=self.stats_tags) and the
    # tagged name; with statsd_influxdb_enabled both carry the tags
    t = StatsdTranslator()
    assert t.feed(b"airflow.dagrun.market_landing.first_task_scheduling_delay,dag_id=market_landing,"
                  b"run_type=scheduled:1200.000000|ms\n"
                  b"airflow.dagrun.first_task_scheduling_delay,dag_id=market_landing,run_type=scheduled:"
                  b"1200.000000|ms") == 1
    assert _value(t, "airflow_dagrun_first_task_scheduling_delay_seconds_count", dag_id="market_landing",
                  run_type="scheduled") == 1.0
    assert _value(t, "statsd_bridge_legacy_skipped_total", metric="dagrun.first_task_scheduling_delay") == 1.0
    assert not any("market_landing" in n for n, _ in _samples(t))


def test_legacy_names_are_kept_when_asked_and_fixed_names_are_never_taken_for_legacy_ones() -> None:
    t = StatsdTranslator(drop_legacy=False)
    assert t.apply("airflow.ti.finish.market_landing.audit.success:1|c") == 1
    assert _value(t, "airflow_ti_finish_market_landing_audit_success_total") == 1.0
    assert not any(n == "statsd_bridge_legacy_skipped_total" for n, _ in _samples(t))
    match = legacy_matcher("airflow")
    assert match("airflow.ti.finish.d.t.success") == "ti.finish"
    assert match("airflow.ti.finish.d.t") is None and match("airflow.ti.finish") is None
    assert match("other.ti.finish.d.t.success") is None  # another prefix is not Airflow's
    for name in _airflow_registry():
        assert match(f"airflow.{name}") is None, name


def _airflow_registry() -> dict[str, str]:
    """The installed Airflow's metrics registry, ``{name: legacy_name}`` (the file, airflow not imported)."""
    import importlib.util
    from pathlib import Path

    import yaml

    spec = importlib.util.find_spec("airflow")
    assert spec is not None and spec.origin is not None
    template = Path(spec.origin).parent / "_shared" / "observability" / "metrics" / "metrics_template.yaml"
    return {m["name"]: m.get("legacy_name", "-") for m in yaml.safe_load(template.read_text())["metrics"]}


def test_the_legacy_table_is_the_installed_airflows() -> None:
    registry = _airflow_registry()
    assert len(registry) > 100
    assert {n: legacy for n, legacy in registry.items() if legacy != "-"} == LEGACY_NAMES


AIRFLOW_SENDER = """
import datetime
from airflow.configuration import conf
from airflow.observability import stats
from airflow.observability.metrics import stats_utils

# as the scheduler, DAG processor and task runner initialise it
stats.initialize(factory=stats_utils.get_stats_factory(),
                 export_legacy_names=conf.getboolean("metrics", "legacy_names_on"))
tags = {"dag_id": "market_landing", "task_id": "land.bars", "queue": "default", "run_id": "scheduled__x"}
stats.Stats.incr("ti.finish", tags={**tags, "state": "success"})
stats.Stats.timing("task.duration", datetime.timedelta(seconds=1.5), tags=tags)
stats.Stats.gauge("pool.open_slots", 7, tags={"pool_name": "default_pool"})
stats.Stats.incr("scheduler_heartbeat")
stats.Stats.incr("end_marker")
"""


@pytest.mark.parametrize("legacy_on", [None, "True"])
def test_airflows_own_statsd_client_configured_as_up_configures_it_sends_labelled_metrics(
        tmp_path, legacy_on: str | None) -> None:
    """Airflow's real Stats -> SafeStatsdLogger -> statsd.StatsClient, with up's [metrics] env, over UDP to a
    bridge on a free port; with legacy_names_on forced back on, the legacy copies arrive and are skipped."""
    import os
    import subprocess
    import sys

    from infra.airflow_services import metrics_env

    with StatsdBridge() as bridge:
        env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), **metrics_env(bridge.udp_port)}
        if legacy_on:
            env["AIRFLOW__METRICS__LEGACY_NAMES_ON"] = legacy_on
        run = subprocess.run([sys.executable, "-c", AIRFLOW_SENDER], env=env, capture_output=True, text=True,
                             timeout=120, check=False)
        assert run.returncode == 0, run.stderr[-3000:]
        deadline = time.monotonic() + 10
        while ("airflow_end_marker_total", ()) not in _samples(bridge.translator):
            assert time.monotonic() < deadline, _samples(bridge.translator)
            time.sleep(0.05)
    samples = _samples(bridge.translator)
    task = (("dag_id", "market_landing"), ("queue", "default"), ("task_id", "land.bars"))  # run_id: disabled
    assert samples[("airflow_ti_finish_total", (*task[:2], ("state", "success"), task[2]))] == 1.0
    assert samples[("airflow_task_duration_seconds_sum", task)] == 1.5
    assert samples[("airflow_task_duration_seconds_bucket", (*task[:1], ("le", "2.5"), *task[1:]))] == 1.0
    assert samples[("airflow_task_duration_seconds_bucket", (*task[:1], ("le", "1.0"), *task[1:]))] == 0.0
    assert samples[("airflow_pool_open_slots", (("pool_name", "default_pool"),))] == 7.0
    assert samples[("airflow_scheduler_heartbeat_total", ())] == 1.0
    airflow = {n for n, _ in samples if n.startswith("airflow_")}
    assert not any("market_landing" in n or "default_pool" in n for n in airflow), airflow  # no ids in names
    skipped = {labels: v for (n, labels), v in samples.items() if n == "statsd_bridge_legacy_skipped_total"}
    expected = 1.0 if legacy_on else 0.0
    for metric in ("ti.finish", "task.duration", "pool.open_slots"):
        assert skipped[(("metric", metric),)] == expected, metric
    assert sum(v for (n, _), v in samples.items() if n == "statsd_bridge_malformed_total") == 0
