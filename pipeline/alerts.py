"""Pipeline alerts: a task that fails for good (after its retries) tells the desk, once per task and interval."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from cryptolake.alerts import Alert, Alerter, AlertKind, Severity
from cryptolake.settings import get_settings


@lru_cache(maxsize=1)
def alerter() -> Alerter:
    """The process's alerter (destinations from ``CRYPTOLAKE_ALERT_URLS``)."""
    return Alerter.from_environment(get_settings().alerts)


def failure_alert(dag_id: str, task_id: str, interval: str, error: str) -> Alert:
    """The alert for a task that failed; the key makes repeats of the same failure one message."""
    return Alert(AlertKind.PIPELINE_FAILURE, f"Pipeline failed: {dag_id}.{task_id}",
                 f"interval {interval}: {error[:500]}", key=f"pipeline:{dag_id}:{task_id}:{interval}",
                 severity=Severity.CRITICAL)


def on_task_failure(context: Any) -> None:
    """Airflow's ``on_failure_callback``: called once the task has no retry left."""
    ti = context.get("task_instance") or context.get("ti")
    dag_id = getattr(ti, "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    lo, hi = context.get("data_interval_start"), context.get("data_interval_end")
    interval = f"{lo.isoformat() if lo else '?'}/{hi.isoformat() if hi else '?'}"
    alerter().raise_alert(failure_alert(dag_id, task_id, interval, str(context.get("exception") or "unknown error")))
