"""The Dask client factory: a LocalCluster by default, a remote scheduler by address."""

from __future__ import annotations

import pytest

from cryptolake.compute import dask_client
from cryptolake.settings import DaskSettings


def _square(x: int) -> int:
    return x * x


@pytest.mark.slow
def test_local_cluster_runs_tasks_and_closes() -> None:
    import logging

    logging.getLogger("distributed").setLevel(logging.INFO)  # as importing distributed leaves it
    with dask_client(DaskSettings(n_workers=1, memory_limit="1GiB")) as client:
        # The cluster's start-up chatter is not ours: its loggers are at WARNING once the client is up.
        assert logging.getLogger("distributed").level == logging.WARNING
        assert len(client.scheduler_info()["workers"]) == 1
        assert client.gather(client.map(_square, range(5))) == [0, 1, 4, 9, 16]
    assert client.status == "closed"


@pytest.mark.slow
def test_remote_scheduler_is_used_and_left_running() -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        with dask_client(DaskSettings(scheduler_address=cluster.scheduler_address)) as client:
            assert client.submit(_square, 7).result() == 49
        assert cluster.status.name == "running"
