"""Pipeline tasks (one per DAG task) and the main job: wires ingest, spark_jobs, models and trader."""
