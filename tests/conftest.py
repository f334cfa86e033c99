"""Shared fixtures. Unit tests need none of these; integration fixtures are session-scoped
so a pytest process starts one JVM for Spark and one Kafka broker.

Under pytest-xdist (``make test`` runs two workers) each worker is its own machine as far as state
goes: its state folder (broker, trader store), Airflow home (the SQLite metadata DB) and artifacts
live under ``.state/xdist/<worker>``, set here before anything reads the settings. Only the resolved
jars stay shared (read-only).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cryptolake.settings import PROJECT_ROOT, PathSettings, Settings

_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _WORKER:
    _OWN = PROJECT_ROOT / ".state" / "xdist" / _WORKER
    os.environ.setdefault("CRYPTOLAKE__PATHS__STATE_DIR", str(_OWN))
    os.environ.setdefault("CRYPTOLAKE__PATHS__ARTIFACTS_DIR", str(_OWN / "artifacts"))
    os.environ.setdefault("CRYPTOLAKE__AIRFLOW__HOME", str(_OWN / "airflow"))

SHARED_DATA = Path(os.environ.get("CRYPTOLAKE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


# The longest files, longest first (seconds on a loaded 2-core run, `--durations`, 2026-12-07). xdist's
# `--dist loadfile` hands files out in collection order, so starting these first keeps one worker from
# being left with a 500-second file while the other idles at the end (longest processing time first).
LONGEST_FIRST = (
    "tests/dags/test_market_pipeline.py",  # 526 s
    "tests/infra/test_airflow_services.py",  # 497 s with its set-up
    "tests/cli/test_up.py",  # 468 s
    "tests/cli/test_up_retrain.py",  # 424 s; 808 s at load 10-23
    "tests/infra/test_cluster_pipeline.py",  # 409 s
    "tests/pipeline/test_stream_chain.py",  # 395 s
    "tests/pipeline/test_stream_landing.py",  # 550 s as two tests, now one sequence
    "tests/spark_jobs/silver/test_stale_bars.py",  # 292 s with its set-up
    "tests/spark_jobs/silver/test_bars.py",  # 141 s
    "tests/pipeline/test_hotpath_kafka.py",  # 124 s
    "tests/infra/test_kafka_cluster.py",  # 111 s
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the longest files first (stable: every other file and every test within a file keeps its order)."""
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    root = Path(str(config.rootpath))

    def key(item: pytest.Item) -> int:
        try:
            rel = Path(str(item.path)).resolve().relative_to(root).as_posix()
        except ValueError:
            return len(rank)
        return rank.get(rel, len(rank))

    items.sort(key=key)

@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real datasets in ../shared/data (never copied into the project)."""
    if not SHARED_DATA.exists():
        pytest.fail(f"shared data folder {SHARED_DATA} is missing; set CRYPTOLAKE_SHARED_DATA")
    return SHARED_DATA


def settings_in(root: Path, base: Settings | None = None, *, own_state: bool = False) -> Settings:
    """``base`` (default: the environment's Settings) with lake, checkpoints and artifacts under ``root``.

    The state folder (broker address, jars) stays shared unless ``own_state``: then it is ``root/state``
    too, so nothing of the machine's running stack is visible.
    """
    base = base or Settings()
    paths = PathSettings(
        state_dir=root / "state" if own_state else base.paths.state_dir,
        jars_dir=base.paths.jars_dir,
        lake_root=str(root / "lake"),
        checkpoint_root=str(root / "checkpoints"),
        artifacts_dir=root / "artifacts",
    )
    return base.model_copy(update={"paths": paths})


@pytest.fixture(scope="session")
def lake_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings whose lake and checkpoints live in a temporary folder (the broker and jars are shared)."""
    return settings_in(tmp_path_factory.mktemp("lake"))


@pytest.fixture(scope="session")
def spark(lake_settings: Settings) -> Iterator[object]:
    """One SparkSession with Delta for the whole session."""
    from spark_jobs.session import get_spark, stop_spark

    session = get_spark(lake_settings)
    yield session
    stop_spark()


@pytest.fixture(scope="session")
def kafka_bootstrap(lake_settings: Settings) -> Iterator[str]:
    """A running local KRaft broker (reused if already up; stopped at the end if we started it)."""
    from infra import broker

    was_running = broker.status(lake_settings) is not None
    info = broker.start(lake_settings)
    yield info.bootstrap
    if not was_running:
        broker.stop(lake_settings)
