"""Airflow DAG files (wiring and schedules only); a package so that import-linter can check its layer.

Airflow parses each file of this folder by path; this file defines no DAG.
"""
