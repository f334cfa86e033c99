"""The one helper the DAG files share: the running task's data interval (the logical time passed in)."""

from __future__ import annotations

from airflow.sdk import get_current_context


def data_interval(dag_id: str) -> tuple[str, str]:
    """The running task's ``[data_interval_start, data_interval_end)`` as ISO strings; a run without one fails."""
    ctx = get_current_context()
    lo, hi = ctx.get("data_interval_start"), ctx.get("data_interval_end")
    if lo is None or hi is None:
        raise ValueError(f"{dag_id} runs on a schedule: its tasks need a data interval")
    return lo.isoformat(), hi.isoformat()
