"""The one way to get a Dask client: a scheduler by address when one is set, else a LocalCluster.

Parameter searches, hyperparameter searches and walk-forward folds all submit through
:func:`dask_client`, so moving them from a laptop to a cluster changes ``dask.scheduler_address`` only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from cryptolake.settings import DaskSettings, get_settings

if TYPE_CHECKING:
    from distributed import Client


@contextmanager
def dask_client(settings: DaskSettings | None = None, n_workers: int | None = None) -> Iterator[Client]:
    """A connected client; a LocalCluster it started is closed on exit (a remote scheduler is left running).

    ``n_workers`` overrides the LocalCluster's worker count (used to compare 1 and 2 workers); it is
    ignored for a remote scheduler.
    """
    from distributed import Client, LocalCluster

    from cryptolake.logs import quiet_libraries

    # Importing distributed installs dask's own logging config (its loggers at INFO): quiet them after.
    if get_settings().log_level.upper() != "DEBUG":
        quiet_libraries()
    cfg = settings or get_settings().dask
    if cfg.scheduler_address:
        client = Client(cfg.scheduler_address)
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(
        n_workers=n_workers or cfg.n_workers,
        threads_per_worker=cfg.threads_per_worker,
        memory_limit=cfg.memory_limit,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
