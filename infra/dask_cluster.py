"""A local Dask distributed cluster: a scheduler and ``dask.cluster_workers`` worker processes.

Started with Dask's own CLI (``dask scheduler`` / ``dask worker``, no nanny: one process per
worker, ``dask.threads_per_worker`` threads, ``dask.memory_limit``) on 127.0.0.1 free ports and
registered (kinds ``dask-scheduler``, ``dask-worker``). The searches reach it through
``dask.scheduler_address`` (:func:`cryptolake.compute.dask_client`); LocalCluster stays the
default. Workers run in the project folder, so they import the same code as the client.
"""

from __future__ import annotations

import functools
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptolake.logs import get_logger
from cryptolake.settings import PROJECT_ROOT, Settings, get_settings
from infra import processes
from infra.broker import free_port

log = get_logger(__name__)
SCHEDULER, WORKER = "dask-scheduler", "dask-worker"


@dataclass(frozen=True)
class DaskCluster:
    """A running scheduler and its workers."""

    scheduler_address: str
    scheduler_pid: int
    worker_pids: tuple[int, ...]


def cluster_dir(settings: Settings | None = None) -> Path:
    """``<state_dir>/dask-cluster``: logs and the workers' local folders."""
    return (settings or get_settings()).paths.state_dir / "dask-cluster"


def _dask() -> str:
    return str(Path(sys.executable).with_name("dask"))


def scheduler_command(port: int) -> list[str]:
    """``dask scheduler`` on 127.0.0.1:``port`` without a dashboard (pure)."""
    return [_dask(), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard", "--no-show"]


def worker_command(address: str, settings: Settings, local_dir: Path) -> list[str]:
    """``dask worker`` joining ``address``: one process, the configured threads and memory (pure)."""
    d = settings.dask
    return [_dask(), "worker", address, "--host", "127.0.0.1", "--nthreads", str(d.threads_per_worker),
            "--memory-limit", d.memory_limit, "--no-nanny", "--no-dashboard", "--local-directory", str(local_dir)]


def workers_seen(address: str) -> int:
    """How many workers the scheduler has (0 when it does not answer)."""
    from distributed import Client

    try:
        with Client(address, timeout=5) as c:
            return len(c.scheduler_info()["workers"])
    except (OSError, TimeoutError):
        return 0


def _has_workers(address: str, n: int) -> bool:
    return workers_seen(address) >= n


def start(settings: Settings | None = None, timeout_s: float = 60.0) -> DaskCluster:
    """Start the scheduler and workers (or return the running cluster); blocks until all workers joined."""
    settings = settings or get_settings()
    running = status(settings)
    if running is not None:
        return running
    stop(settings)
    home = cluster_dir(settings)
    home.mkdir(parents=True, exist_ok=True)
    env = {"PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    t0 = time.monotonic()
    sched = processes.spawn(SCHEDULER, scheduler_command(port), home / "scheduler.log", settings=settings,
                            env=env, cwd=PROJECT_ROOT, timeout_s=timeout_s, ready=lambda: processes.listening(port))
    workers = []
    for i in range(1, settings.dask.cluster_workers + 1):
        cmd = worker_command(address, settings, home / f"worker-{i}")
        workers.append(processes.spawn(WORKER, cmd, home / f"worker-{i}.log", settings=settings, env=env,
                                       cwd=PROJECT_ROOT, timeout_s=timeout_s,
                                       ready=functools.partial(_has_workers, address, i)))
    cluster = DaskCluster(address, sched.pid, tuple(w.pid for w in workers))
    (home / "cluster.json").write_text(json.dumps(asdict(cluster), indent=2))
    log.info("dask_cluster.started", extra={"address": address, "seconds": round(time.monotonic() - t0, 1)})
    return cluster


def status(settings: Settings | None = None) -> DaskCluster | None:
    """The running cluster, or None unless every recorded process is alive and ours."""
    settings = settings or get_settings()
    path = cluster_dir(settings) / "cluster.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    cluster = DaskCluster(str(data["scheduler_address"]), int(data["scheduler_pid"]),
                          tuple(int(p) for p in data["worker_pids"]))
    live = {t.pid for t in processes.registered(settings)}
    if cluster.scheduler_pid not in live or not set(cluster.worker_pids) <= live:
        return None
    return cluster


def stop(settings: Settings | None = None) -> int:
    """Stop the workers, then the scheduler."""
    settings = settings or get_settings()
    ended = processes.stop_registered(settings, kind=WORKER) + processes.stop_registered(settings, kind=SCHEDULER)
    shutil.rmtree(cluster_dir(settings), ignore_errors=True)
    return len(ended)
