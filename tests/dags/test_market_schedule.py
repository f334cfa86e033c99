"""The market DAG's schedule, first/last interval and catch-up come from settings (airflow.market_*)."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime

import pytest

from cryptolake.settings import get_settings

pytestmark = pytest.mark.airflow


def test_market_dag_takes_interval_bounds_and_catchup_from_settings(monkeypatch):
    import dags.market_pipeline as module

    monkeypatch.setenv("CRYPTOLAKE__AIRFLOW__MARKET_SCHEDULE", "*/30 * * * *")
    monkeypatch.setenv("CRYPTOLAKE__AIRFLOW__MARKET_START", "2018-05-01T00:00:00+00:00")
    monkeypatch.setenv("CRYPTOLAKE__AIRFLOW__MARKET_END", "2018-05-01T01:00:00+00:00")
    monkeypatch.setenv("CRYPTOLAKE__AIRFLOW__MARKET_CATCHUP", "true")
    get_settings.cache_clear()
    try:
        dag = importlib.reload(module).market_pipeline_dag
        assert dag.catchup is True
        assert (dag.start_date, dag.end_date) == (datetime(2018, 5, 1, tzinfo=UTC), datetime(2018, 5, 1, 1, tzinfo=UTC))
        first = dag.timetable.next_dagrun_info(last_automated_data_interval=None, restriction=_restriction(dag))
        assert first is not None and (first.data_interval.start, first.data_interval.end) == (
            datetime(2018, 5, 1, tzinfo=UTC), datetime(2018, 5, 1, 0, 30, tzinfo=UTC))
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        importlib.reload(module)
    assert module.market_pipeline_dag.catchup is False  # the defaults: @daily, no catch-up


def _restriction(dag):
    from airflow.timetables.base import TimeRestriction

    return TimeRestriction(earliest=dag.start_date, latest=dag.end_date, catchup=True)
