"""A local Spark standalone cluster: one master and ``spark.cluster_workers`` workers (1 core each).

Started from pyspark's own launcher (``<pyspark>/bin/spark-class``, the script ``start-master.sh``
and ``start-worker.sh`` wrap; the pip package ships ``spark-class`` but not those wrappers) on
127.0.0.1 free ports, with ``spark.daemon_memory`` heaps. Each daemon is registered in the process
registry (kinds ``spark-master``, ``spark-worker``), so ``cryptolake stack down`` ends exactly these.
A session joins it by setting ``spark.master`` to :attr:`SparkCluster.master_url`; its executors
(``spark.executor.memory``, 1 core) are launched by the workers.
"""

from __future__ import annotations

import functools
import json
import shutil
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptolake.errors import InfrastructureError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings, get_settings
from infra import processes
from infra.broker import free_port

log = get_logger(__name__)
MASTER, WORKER = "spark-master", "spark-worker"


@dataclass(frozen=True)
class SparkCluster:
    """A running standalone cluster."""

    master_url: str
    ui_port: int
    master_pid: int
    worker_pids: tuple[int, ...]


def spark_home() -> Path:
    """The installed pyspark package: Spark's ``bin/``, ``jars/`` and ``conf`` defaults."""
    import pyspark

    return Path(pyspark.__file__).parent


def cluster_dir(settings: Settings | None = None) -> Path:
    """``<state_dir>/spark-cluster``: daemon logs and the workers' application folders."""
    return (settings or get_settings()).paths.state_dir / "spark-cluster"


def daemon_env(settings: Settings) -> dict[str, str]:
    """The environment of the daemons: heap, bind address, the Python the executors run (pure)."""
    return {
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": settings.spark.local_ip,
        "SPARK_DAEMON_MEMORY": settings.spark.daemon_memory,
        "SPARK_DAEMON_JAVA_OPTS": "-Duser.timezone=UTC -XX:+UseSerialGC",
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_NO_DAEMONIZE": "1",
    }


def master_command(port: int, ui_port: int, host: str = "127.0.0.1") -> list[str]:
    """``spark-class`` running the standalone Master (pure)."""
    return [str(spark_home() / "bin" / "spark-class"), "org.apache.spark.deploy.master.Master",
            "--host", host, "--port", str(port), "--webui-port", str(ui_port)]


def worker_command(master_url: str, port: int, ui_port: int, work_dir: Path, *, cores: int = 1,
                   memory: str = "1g", host: str = "127.0.0.1") -> list[str]:
    """``spark-class`` running a standalone Worker offering ``cores`` and ``memory`` (pure)."""
    return [str(spark_home() / "bin" / "spark-class"), "org.apache.spark.deploy.worker.Worker",
            "--host", host, "--port", str(port), "--webui-port", str(ui_port), "--cores", str(cores),
            "--memory", memory, "--work-dir", str(work_dir), master_url]


def master_state(ui_port: int) -> dict[str, object]:
    """The master's JSON status (``/json``): its workers and applications."""
    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=3) as resp:
        data: dict[str, object] = json.loads(resp.read())
    return data


def alive_workers(ui_port: int) -> int:
    """How many workers the master sees ALIVE (0 when it does not answer)."""
    try:
        workers = master_state(ui_port).get("workers", [])
    except OSError:
        return 0
    return sum(1 for w in workers if isinstance(w, dict) and w.get("state") == "ALIVE") if isinstance(
        workers, list) else 0


def _has_workers(ui_port: int, n: int) -> bool:
    return alive_workers(ui_port) >= n


def start(settings: Settings | None = None, timeout_s: float = 90.0) -> SparkCluster:
    """Start the master and workers (or return the running cluster); blocks until every worker is ALIVE."""
    settings = settings or get_settings()
    running = status(settings)
    if running is not None:
        return running
    stop(settings)
    home = cluster_dir(settings)
    home.mkdir(parents=True, exist_ok=True)
    env = daemon_env(settings)
    port, ui_port = free_port(), free_port()
    t0 = time.monotonic()
    master = processes.spawn(MASTER, master_command(port, ui_port), home / "master.log", settings=settings,
                             env=env, timeout_s=timeout_s, ready=lambda: processes.listening(port)
                             and processes.listening(ui_port))
    url = f"spark://127.0.0.1:{port}"
    workers = []
    n = settings.spark.cluster_workers
    for i in range(1, n + 1):
        wport, wui = free_port(), free_port()
        cmd = worker_command(url, wport, wui, home / f"work-{i}", memory=settings.spark.worker_memory)
        workers.append(processes.spawn(WORKER, cmd, home / f"worker-{i}.log", settings=settings, env=env,
                                       timeout_s=timeout_s, ready=functools.partial(_has_workers, ui_port, i)))
    cluster = SparkCluster(url, ui_port, master.pid, tuple(w.pid for w in workers))
    (home / "cluster.json").write_text(json.dumps(asdict(cluster), indent=2))
    log.info("spark_cluster.started", extra={"master": url, "workers": n, "seconds": round(time.monotonic() - t0, 1)})
    return cluster


def status(settings: Settings | None = None) -> SparkCluster | None:
    """The running cluster, or None unless its master answers and every recorded daemon is alive."""
    settings = settings or get_settings()
    path = cluster_dir(settings) / "cluster.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    cluster = SparkCluster(str(data["master_url"]), int(data["ui_port"]), int(data["master_pid"]),
                           tuple(int(p) for p in data["worker_pids"]))
    live = {t.pid for t in processes.registered(settings)}
    if cluster.master_pid not in live or not set(cluster.worker_pids) <= live:
        return None
    if alive_workers(cluster.ui_port) < len(cluster.worker_pids):
        return None
    return cluster


def stop(settings: Settings | None = None) -> int:
    """Stop the workers (their executors with them), then the master; remove the cluster's folder."""
    settings = settings or get_settings()
    ended = processes.stop_registered(settings, kind=WORKER) + processes.stop_registered(settings, kind=MASTER)
    home = cluster_dir(settings)
    if home.exists():
        shutil.rmtree(home, ignore_errors=True)
    if ended:
        log.info("spark_cluster.stopped", extra={"daemons": len(ended)})
    return len(ended)


def require(settings: Settings | None = None) -> SparkCluster:
    """The running cluster or a clear error saying how to start it."""
    cluster = status(settings)
    if cluster is None:
        raise InfrastructureError("no local Spark cluster: run `cryptolake stack up --cluster`")
    return cluster
