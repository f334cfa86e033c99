"""The freshness DAG under ``dag.test()``: a stale SYNTHETIC table raises one stale_data alert through the
pipeline's alerter, judged at the run's logical time; a fresh one raises none. The maintenance DAG's wiring."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from cryptolake.alerts import Alerter, AlertKind
from cryptolake.settings import AlertSettings, get_settings

pytestmark = pytest.mark.airflow


def _synthetic_table(name: str, newest: datetime) -> None:
    """SYNTHETIC: two bars in ``silver.<name>``, the newest opening at ``newest``."""
    import pyarrow as pa
    from deltalake import write_deltalake

    path = f"{get_settings().paths.lake()}/silver/{name}"
    write_deltalake(path, pa.table({"open_time": [newest - timedelta(minutes=1), newest], "close": [1.0, 2.0]}),
                    mode="overwrite")


def test_freshness_dag_alerts_on_the_stale_table_only(dagbag, airflow_db, monkeypatch):
    from pipeline import alerts

    got = []
    monkeypatch.setattr(alerts, "alerter", lambda: Alerter(AlertSettings(), lambda a: got.append(a) or True))
    now = datetime.now(UTC).replace(microsecond=0)
    _synthetic_table("fresh_synthetic", now)
    _synthetic_table("lagging_synthetic", now - timedelta(hours=9))
    # judged one hour later: commits are 1 h old (limit 2 h); the lagging table's newest event 10 h (limit 6 h)
    run = dagbag.dags["lake_freshness"].test(logical_date=now + timedelta(hours=1))
    assert str(run.state) == "success"
    ours = [a for a in got if "_synthetic" in a.key]
    assert [a.key for a in ours] == ["stale_data:silver.lagging_synthetic"]
    assert ours[0].kind is AlertKind.STALE_DATA
    assert "newest event is 10.0 h old (limit 6 h)" in ours[0].body and "no commit" not in ours[0].body
    json.dumps([a.body for a in ours])


def test_maintenance_dag_compacts_then_cleans_checkpoints(dagbag):
    dag = dagbag.dags["lake_maintenance"]
    assert dag.task_dict["clean_checkpoints"].upstream_task_ids == {"compact_and_vacuum"}
