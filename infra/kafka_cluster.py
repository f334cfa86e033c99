"""A local Kafka cluster: ``kafka.cluster_brokers`` KRaft nodes (3 by default) on 127.0.0.1 free ports.

Combined roles: every node is a broker AND a voter of the controller quorum (static
``controller.quorum.voters``), so three JVMs (256 MiB heaps) make a quorum that survives the loss
of one node, like three brokers and three controllers would, at half the processes. Production
runs separate controllers (see docs/scale-out.md); the clients cannot tell the difference. Topics
get ``kafka.replication_factor`` replicas and ``kafka.min_insync_replicas`` (3 and 2 on this
cluster), so an ``acks=all`` write waits for two copies and a stopped broker loses nothing.

Each node is registered (kind ``kafka-node``) in the process registry; ``stop`` ends them all,
``stop_node``/``start_node`` stop and restart one (the failover test). Nodes keep their ports and
data across a restart; the cluster's layout is in ``<state_dir>/kafka-cluster/cluster.json``.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import shutil
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptolake.errors import InfrastructureError
from cryptolake.jvm import Tracked
from cryptolake.logs import get_logger
from cryptolake.settings import Settings, get_settings
from infra import broker, processes

log = get_logger(__name__)
KIND = "kafka-node"


@dataclass(frozen=True)
class Node:
    """One broker+controller of the cluster."""

    node_id: int
    port: int
    controller_port: int
    pid: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass(frozen=True)
class KafkaCluster:
    """A running cluster: its nodes and the bootstrap list clients use."""

    cluster_id: str
    nodes: tuple[Node, ...]

    @property
    def bootstrap(self) -> str:
        """Every broker's address, comma-separated (a client needs any one of them)."""
        return ",".join(n.bootstrap for n in self.nodes)


def cluster_dir(settings: Settings | None = None) -> Path:
    """``<state_dir>/kafka-cluster``: every node's config, data and log."""
    return (settings or get_settings()).paths.state_dir / "kafka-cluster"


def _state_file(settings: Settings) -> Path:
    return cluster_dir(settings) / "cluster.json"


def voters(nodes: list[tuple[int, int]]) -> str:
    """``controller.quorum.voters`` of (node id, controller port) pairs (pure)."""
    return ",".join(f"{node_id}@127.0.0.1:{cport}" for node_id, cport in nodes)


def render_node_properties(node_id: int, port: int, controller_port: int, all_voters: str, data_dir: Path,
                           settings: Settings) -> str:
    """One node's ``server.properties``: combined roles, the cluster's voters, replicated internal topics."""
    k = settings.kafka
    return broker.render_server_properties(
        port, controller_port, data_dir, partitions=k.default_partitions, node_id=node_id, voters=all_voters,
        replication=min(3, k.cluster_brokers), min_isr=min(2, k.cluster_brokers),
    )


def _node_home(settings: Settings, node_id: int) -> Path:
    return cluster_dir(settings) / f"node-{node_id}"


def _launch(settings: Settings, node_id: int, port: int) -> Tracked:
    home = _node_home(settings, node_id)
    cmd = broker.java_command(settings, broker.KAFKA_MAIN, str(home / "server.properties"), home=home,
                              heap=settings.kafka.cluster_heap)
    return processes.spawn(
        KIND, cmd, home / "broker.log", settings=settings, cwd=home, timeout_s=settings.kafka.start_timeout_s,
        ready=lambda: processes.listening(port),
    )


def _wait_for_brokers(bootstrap: str, n: int, timeout_s: float) -> None:
    """Block until the cluster reports ``n`` live brokers (the quorum formed and every broker registered)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    seen = 0
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="cryptolake-cluster-probe",
                                     request_timeout_ms=3000)
            try:
                seen = len(admin.describe_cluster().get("brokers", []))
            finally:
                admin.close()
        except (KafkaError, OSError):
            seen = 0
        if seen >= n:
            return
        time.sleep(0.5)
    raise InfrastructureError(f"kafka cluster {bootstrap}: {seen} of {n} brokers registered after {timeout_s:.0f}s")


def start(settings: Settings | None = None) -> KafkaCluster:
    """Start the cluster (or return the running one); blocks until every broker has registered."""
    settings = settings or get_settings()
    running = status(settings)
    if running is not None:
        return running
    stop(settings)  # a partly running cluster is ended before a fresh start
    n = settings.kafka.cluster_brokers
    ports: list[tuple[int, int, int]] = []
    taken: set[int] = set()
    for node_id in range(1, n + 1):
        pair = []
        for _ in range(2):
            port = broker.free_port()
            while port in taken:
                port = broker.free_port()
            taken.add(port)
            pair.append(port)
        ports.append((node_id, pair[0], pair[1]))
    all_voters = voters([(i, c) for i, _, c in ports])
    cluster_id = broker.new_cluster_id()
    for node_id, port, cport in ports:
        home = _node_home(settings, node_id)
        (home / "logs").mkdir(parents=True, exist_ok=True)
        props = home / "server.properties"
        props.write_text(render_node_properties(node_id, port, cport, all_voters, home / "data", settings))
        (home / "log4j2.properties").write_text(broker.LOG4J2)
        broker.format_storage(settings, props, home / "data", cluster_id=cluster_id, home=home)
    t0 = time.monotonic()
    # A node's listener opens only once the quorum has a leader: start them all at once, then wait.
    with cf.ThreadPoolExecutor(max_workers=n) as pool:
        tracked = list(pool.map(lambda p: _launch(settings, p[0], p[1]), ports))
    cluster = KafkaCluster(cluster_id, tuple(Node(i, p, c, t.pid) for (i, p, c), t in zip(ports, tracked, strict=True)))
    _wait_for_brokers(cluster.bootstrap, n, settings.kafka.start_timeout_s)
    _write_state(settings, cluster)
    log.info("kafka_cluster.started",
             extra={"bootstrap": cluster.bootstrap, "seconds": round(time.monotonic() - t0, 1)})
    return cluster


def _write_state(settings: Settings, cluster: KafkaCluster) -> None:
    data = {"cluster_id": cluster.cluster_id, "nodes": [asdict(x) for x in cluster.nodes]}
    _state_file(settings).write_text(json.dumps(data, indent=2))


def _read(settings: Settings) -> KafkaCluster | None:
    path = _state_file(settings)
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return KafkaCluster(str(data["cluster_id"]), tuple(Node(**n) for n in data["nodes"]))


def status(settings: Settings | None = None) -> KafkaCluster | None:
    """The running cluster, or None unless every recorded node is alive and registered."""
    settings = settings or get_settings()
    cluster = _read(settings)
    if cluster is None:
        return None
    live = {t.pid for t in processes.registered(settings) if t.kind == KIND}
    if not all(n.pid in live for n in cluster.nodes):
        return None
    return cluster


def stop_node(node_id: int, settings: Settings | None = None) -> Node:
    """Stop one broker (SIGTERM, a clean shutdown: its partitions' leadership moves to the others)."""
    settings = settings or get_settings()
    cluster = _read(settings)
    if cluster is None:
        raise InfrastructureError("no local kafka cluster: run `cryptolake stack up --cluster`")
    node = next(n for n in cluster.nodes if n.node_id == node_id)
    os.killpg(node.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while processes.alive(node.pid) and time.monotonic() < deadline:
        processes.reap(node.pid)
        time.sleep(0.1)
    if processes.alive(node.pid):
        os.killpg(node.pid, signal.SIGKILL)
    processes.registered(settings)  # prune its entry
    log.info("kafka_cluster.node_stopped", extra={"node_id": node_id, "pid": node.pid})
    return node


def start_node(node_id: int, settings: Settings | None = None) -> Node:
    """Start a stopped node again on its own ports and data (it catches up from the leaders)."""
    settings = settings or get_settings()
    cluster = _read(settings)
    if cluster is None:
        raise InfrastructureError("no local kafka cluster: run `cryptolake stack up --cluster`")
    old = next(n for n in cluster.nodes if n.node_id == node_id)
    tracked = _launch(settings, node_id, old.port)
    node = Node(node_id, old.port, old.controller_port, tracked.pid)
    nodes = tuple(node if n.node_id == node_id else n for n in cluster.nodes)
    _write_state(settings, KafkaCluster(cluster.cluster_id, nodes))
    _wait_for_brokers(cluster.bootstrap, len(nodes), settings.kafka.start_timeout_s)
    return node


def stop(settings: Settings | None = None, *, wipe: bool = True) -> list[Tracked]:
    """Stop every node; by default delete the cluster's data too (a local cluster is scratch state)."""
    settings = settings or get_settings()
    ended = processes.stop_registered(settings, kind=KIND, timeout_s=30.0)
    if wipe:
        shutil.rmtree(cluster_dir(settings), ignore_errors=True)
    return ended
