"""The local cluster for the cluster tests: its own state folder, stopped at the end of the module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cryptolake.settings import Settings
from tests.conftest import settings_in


@pytest.fixture(scope="module")
def cluster_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings with their own state folder (registry, daemons' logs); every daemon started there is stopped.

    A single broker started with this state folder (the cluster pipeline test's one-process run) is
    stopped too, as ``stack down`` does.
    """
    from infra import broker, cluster, processes

    settings = settings_in(Path(tmp_path_factory.mktemp("cluster")), own_state=True)
    # a shared 2-core machine under load starts JVMs slowly: wait longer than the single broker's default
    settings = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"start_timeout_s": 240.0})})
    yield settings
    cluster.down(settings)
    broker.stop(settings)
    processes.stop_registered(settings)
    assert processes.registered(settings) == []
