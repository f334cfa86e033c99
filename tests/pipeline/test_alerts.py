"""A pipeline task that fails for good raises one alert per task and interval."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from cryptolake.alerts import Alerter, AlertKind
from cryptolake.settings import AlertSettings
from pipeline import alerts


def test_failure_callback_alerts_once_per_task_and_interval(monkeypatch) -> None:
    got = []
    fixed = Alerter(AlertSettings(), lambda a: got.append(a) or True)
    monkeypatch.setattr(alerts, "alerter", lambda: fixed)
    ctx = {"task_instance": SimpleNamespace(dag_id="market_pipeline", task_id="gold"),
           "data_interval_start": datetime(2019, 6, 1, tzinfo=UTC),
           "data_interval_end": datetime(2019, 6, 2, tzinfo=UTC),
           "exception": RuntimeError("silver.bars is missing")}
    alerts.on_task_failure(ctx)
    alerts.on_task_failure(ctx)  # the same failure again (a manual re-run): not sent twice
    assert len(got) == 1 and got[0].kind is AlertKind.PIPELINE_FAILURE
    assert got[0].title == "Pipeline failed: market_pipeline.gold"
    assert got[0].body == "interval 2019-06-01T00:00:00+00:00/2019-06-02T00:00:00+00:00: silver.bars is missing"


def test_the_dag_wires_the_callback() -> None:
    from dags.market_pipeline import DEFAULT_ARGS

    assert DEFAULT_ARGS["on_failure_callback"] is alerts.on_task_failure
