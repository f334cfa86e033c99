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
    MalformedLine,
    StatsdBridge,
    StatsdTranslator,
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
    t.apply("airflow.dagrun.duration.success.market_landing:1500|ms")  # 1.5 s
    t.apply("airflow.dagrun.duration.success.market_landing:20.000000|ms|@0.5")  # 0.02 s, counts twice
    name = "airflow_dagrun_duration_success_market_landing_seconds"
    assert _value(t, f"{name}_count") == 3.0
    assert _value(t, f"{name}_sum") == pytest.approx(1.5 + 2 * 0.02)
    assert _value(t, f"{name}_bucket", le="0.01") == 0.0
    assert _value(t, f"{name}_bucket", le="0.025") == 2.0
    assert _value(t, f"{name}_bucket", le="1.0") == 2.0
    assert _value(t, f"{name}_bucket", le="2.5") == 3.0
    assert _value(t, f"{name}_bucket", le="+Inf") == 3.0
    assert len([k for k in _samples(t) if k[0] == f"{name}_bucket"]) == len(BUCKETS) + 1


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
