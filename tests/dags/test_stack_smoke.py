"""The stack_smoke DAG run end to end with dag.test(): Spark writes and reads its interval's Delta rows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

pytestmark = [pytest.mark.airflow, pytest.mark.spark]


def test_stack_smoke_dag_run_succeeds_and_writes_only_its_interval(airflow_db, dagbag, spark):
    from pyspark.sql import functions as F

    from spark_jobs.smoke import SMOKE_TABLE, expected_total

    dag = dagbag.dags["stack_smoke"]
    day1, day2 = datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC)

    run1 = dag.test(logical_date=day1)
    run2 = dag.test(logical_date=day2)
    rerun = dag.test(logical_date=day1, run_after=datetime(2024, 3, 5, tzinfo=UTC))

    assert (run1.state, run2.state) == ("success", "success")
    assert rerun.state == "success"
    table = spark.read.format("delta").load(SMOKE_TABLE.path(airflow_db))
    per_interval = {r["interval_start"].date(): (r["n"], r["v"]) for r in
                    table.groupBy("interval_start").agg(F.count("*").alias("n"), F.sum("value").alias("v")).collect()}
    # re-running day 1 replaced its rows instead of appending a second copy
    assert per_interval == {day1.date(): (10, expected_total(10)), day2.date(): (10, expected_total(10))}
