"""Policy for every DAG in dags/: imports cleanly, has tags, an owner, retries >= 2 and docs."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.airflow


def _dags(dagbag) -> dict:
    return dagbag.dags


def test_every_dag_file_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}, dagbag.import_errors
    assert _dags(dagbag), "no DAGs found in dags/"


def test_every_dag_has_tags_owner_retries_and_docs(dagbag):
    problems: list[str] = []
    for dag_id, dag in _dags(dagbag).items():
        if not dag.tags:
            problems.append(f"{dag_id}: no tags")
        if not (dag.doc_md or "").strip():
            problems.append(f"{dag_id}: no doc_md")
        for t in dag.tasks:
            if not t.owner or t.owner == "airflow":
                problems.append(f"{dag_id}.{t.task_id}: owner={t.owner!r} (set default_args owner)")
            if (t.retries or 0) < 2:
                problems.append(f"{dag_id}.{t.task_id}: retries={t.retries!r} < 2")
    assert problems == []


def test_stack_smoke_is_in_the_bag_with_its_task(dagbag):
    dag = _dags(dagbag)["stack_smoke"]
    assert [t.task_id for t in dag.tasks] == ["spark_delta_roundtrip"]
    assert set(dag.tags) == {"stack", "smoke"}


def test_market_pipeline_runs_anomalies_beside_training_from_gold(dagbag):
    from pipeline.market import TASKS

    tasks = _dags(dagbag)["market_pipeline"].task_dict
    assert set(tasks) == set(TASKS)  # the DAG runs every task of pipeline.market, and only those
    assert tasks["anomalies"].upstream_task_ids == {"gold"}
    assert tasks["train"].upstream_task_ids == {"gold"}  # a failed detector never blocks trading
    assert tasks["anomalies"].downstream_task_ids == set()
