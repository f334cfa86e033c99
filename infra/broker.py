"""A real single-node Kafka (KRaft, combined broker+controller) for the local stack and the tests.

The broker runs from the jars ``python -m infra.jars`` resolved into ``<jars_dir>/kafka`` with a
static one-voter quorum (``controller.quorum.voters``), so its ports may change between starts
while its data (topics, offsets that Spark checkpoints refer to) survives ``stop``/``start``.
It runs detached in its own process group; ``stop`` ends the whole group. Its address and pid
are recorded in :func:`cryptolake.bus.broker_state_file` for every other process to find.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptolake.bus import broker_state_file
from cryptolake.errors import InfrastructureError
from cryptolake.jvm import jar_files
from cryptolake.logs import get_logger
from cryptolake.settings import Settings, get_settings
from infra import processes

log = get_logger(__name__)

KAFKA_MAIN = "kafka.Kafka"
STORAGE_TOOL_MAIN = "kafka.tools.StorageTool"  # in kafka_2.13-4.2.0.jar
NODE_ID = 1


@dataclass(frozen=True)
class BrokerInfo:
    """A running local broker."""

    bootstrap: str
    pid: int
    port: int
    controller_port: int
    data_dir: Path


def kafka_dir(settings: Settings | None = None) -> Path:
    """The local broker's folder (:attr:`cryptolake.settings.PathSettings.kafka_dir`)."""
    return (settings or get_settings()).paths.kafka_dir


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if ``port`` can be bound on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def choose_port(configured: int, previous: int | None, *, avoid: int | None = None) -> int:
    """The configured port if set; else the previous one if still free (stable bootstrap); else a free one."""
    if configured:
        return configured
    if previous and previous != avoid and port_is_free(previous):
        return previous
    port = free_port()
    while port == avoid:
        port = free_port()
    return port


def render_server_properties(port: int, controller_port: int, data_dir: Path, *, partitions: int = 3,
                             node_id: int = NODE_ID, voters: str | None = None, replication: int = 1,
                             min_isr: int = 1) -> str:
    """The ``server.properties`` of a KRaft broker+controller (combined roles) on 127.0.0.1 (pure).

    One node by default; a cluster node passes its ``node_id``, the static ``voters`` of every
    controller (``1@127.0.0.1:p1,2@...``) and the replication its internal and new topics get.
    """
    internal_isr = str(min(min_isr, replication))
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters or f"{node_id}@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": str(partitions),
        "default.replication.factor": str(replication),
        "min.insync.replicas": str(min_isr),
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": str(replication),
        "offsets.topic.num.partitions": "3",
        "transaction.state.log.replication.factor": str(replication),
        "transaction.state.log.min.isr": internal_isr,
        "transaction.state.log.num.partitions": "3",
        "share.coordinator.state.topic.replication.factor": str(replication),
        "share.coordinator.state.topic.min.isr": internal_isr,
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "log.retention.hours": "-1",  # the lake replays from Kafka offsets: never expire data locally
        "log.segment.bytes": str(256 * 1024 * 1024),
        "message.max.bytes": str(10 * 1024 * 1024),
        "delete.topic.enable": "true",
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


def parse_properties(text: str) -> dict[str, str]:
    """``key=value`` lines (comments and blanks ignored)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = STDOUT
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = INFO
"""


def java_command(settings: Settings, main_class: str, *args: str, home: Path | None = None,
                 heap: str | None = None) -> list[str]:
    """``java`` with the broker's classpath, heap and log4j2 config (pure apart from the jar listing).

    ``home`` (default: the single broker's folder) holds ``log4j2.properties`` and ``logs/``.
    """
    jars = jar_files("kafka", settings)
    classpath = ":".join(str(p) for p in jars)
    home = home or kafka_dir(settings)
    log4j = home / "log4j2.properties"
    heap = heap or settings.kafka.heap
    return [
        _java(),
        f"-Xmx{heap}",
        f"-Xms{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}",
        f"-Dkafka.logs.dir={home / 'logs'}",
        "-cp",
        classpath,
        main_class,
        *args,
    ]


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    return "java"


def _pid_alive(pid: int) -> bool:
    return processes.alive(pid)


def answers_metadata(bootstrap: str, timeout_s: float = 3.0) -> bool:
    """True if a Kafka metadata request to ``bootstrap`` succeeds within ``timeout_s``."""
    host, _, port = bootstrap.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError:
        return False
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaConfigurationError, KafkaError

    ms = int(timeout_s * 1000)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="cryptolake-probe",
            request_timeout_ms=ms,
            connections_max_idle_ms=ms + 10_000,
        )
    except KafkaConfigurationError:
        raise  # our bug, not an unavailable broker
    except (KafkaError, OSError) as exc:
        log.debug("kafka.probe_failed", extra={"bootstrap": bootstrap, "error": str(exc)})
        return False
    try:
        cluster = admin.describe_cluster()
        return bool(cluster.get("brokers"))
    except (KafkaError, OSError) as exc:
        log.debug("kafka.probe_failed", extra={"bootstrap": bootstrap, "error": str(exc)})
        return False
    finally:
        admin.close()


def _read_state(settings: Settings) -> dict[str, object] | None:
    path = broker_state_file(settings)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("kafka.state_unreadable", extra={"path": str(path), "error": str(exc)})
        return None
    return data if isinstance(data, dict) else None


def _info_from_state(data: dict[str, object], settings: Settings) -> BrokerInfo:
    return BrokerInfo(
        bootstrap=str(data["bootstrap"]),
        pid=int(str(data["pid"])),
        port=int(str(data["port"])),
        controller_port=int(str(data["controller_port"])),
        data_dir=Path(str(data.get("data_dir", kafka_dir(settings) / "data"))),
    )


def status(settings: Settings | None = None) -> BrokerInfo | None:
    """The running local broker, or None unless its pid is alive AND it answers a metadata request."""
    settings = settings or get_settings()
    data = _read_state(settings)
    if data is None:
        return None
    try:
        info = _info_from_state(data, settings)
    except (KeyError, ValueError) as exc:
        log.warning("kafka.state_invalid", extra={"error": str(exc)})
        return None
    if not _pid_alive(info.pid) or not answers_metadata(info.bootstrap):
        return None
    return info


def log_tail(settings: Settings | None = None, lines: int = 40) -> str:
    """The last lines of the broker's console log (for error messages)."""
    path = kafka_dir(settings) / "broker.log"
    if not path.exists():
        return "(no broker log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def new_cluster_id() -> str:
    """A random KRaft cluster id (never starting with '-', which the storage tool would read as an option)."""
    cluster_id = "-"
    while cluster_id.startswith("-"):
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    return cluster_id


def format_storage(settings: Settings, props_file: Path, data_dir: Path, cluster_id: str | None = None,
                   home: Path | None = None) -> None:
    """Format a node's log dir for KRaft once (every node of a cluster gets the same ``cluster_id``)."""
    if (data_dir / "meta.properties").exists():
        return
    cluster_id = cluster_id or new_cluster_id()
    cmd = java_command(settings, STORAGE_TOOL_MAIN, "format", "-t", cluster_id, "-c", str(props_file),
                       "--ignore-formatted", home=home)
    # The storage tool needs a small heap only.
    cmd = [c for c in cmd if not c.startswith(("-Xmx", "-Xms"))]
    cmd.insert(1, "-Xmx256m")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    if proc.returncode != 0:
        raise InfrastructureError(
            f"kafka storage format failed ({data_dir}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    log.info("kafka.formatted", extra={"data_dir": str(data_dir), "cluster_id": cluster_id})


def start(settings: Settings | None = None) -> BrokerInfo:
    """Start the local broker, or return the running one (idempotent). Blocks until it answers metadata."""
    settings = settings or get_settings()
    running = status(settings)
    if running is not None:
        log.info("kafka.reuse", extra={"bootstrap": running.bootstrap, "pid": running.pid})
        return running
    stale = _read_state(settings)
    if stale is not None and "pid" in stale:
        # A recorded broker that does not answer: end it before starting a new one.
        _terminate(int(str(stale["pid"])), timeout_s=10.0)
        broker_state_file(settings).unlink(missing_ok=True)

    home = kafka_dir(settings)
    data_dir = home / "data"
    home.mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(exist_ok=True)
    props_file = home / "server.properties"
    previous = parse_properties(props_file.read_text()) if props_file.exists() else {}
    prev_port = _port_of(previous.get("advertised.listeners", ""))
    prev_cport = _port_of(previous.get("controller.quorum.voters", ""))
    port = choose_port(settings.kafka.port, prev_port)
    controller_port = choose_port(settings.kafka.controller_port, prev_cport, avoid=port)
    props_file.write_text(render_server_properties(port, controller_port, data_dir,
                                                   partitions=settings.kafka.default_partitions))
    (home / "log4j2.properties").write_text(LOG4J2)
    format_storage(settings, props_file, data_dir)

    cmd = java_command(settings, KAFKA_MAIN, str(props_file))
    log_path = home / "broker.log"
    t0 = time.monotonic()
    with log_path.open("ab") as out:
        proc = subprocess.Popen(  # detached: its own session/process group, outlives this process
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=str(home),
        )
    bootstrap = f"127.0.0.1:{port}"
    deadline = t0 + settings.kafka.start_timeout_s
    while True:
        if proc.poll() is not None:
            raise InfrastructureError(f"kafka broker exited with code {proc.returncode}:\n{log_tail(settings)}")
        if answers_metadata(bootstrap, timeout_s=2.0):
            break
        if time.monotonic() > deadline:
            _terminate(proc.pid, timeout_s=10.0)
            raise InfrastructureError(
                f"kafka broker did not answer on {bootstrap} within {settings.kafka.start_timeout_s}s:\n"
                f"{log_tail(settings)}"
            )
        time.sleep(0.2)
    info = BrokerInfo(bootstrap=bootstrap, pid=proc.pid, port=port, controller_port=controller_port,
                      data_dir=data_dir)
    state = {**asdict(info), "data_dir": str(data_dir), "started_at_unix": time.time()}
    broker_state_file(settings).write_text(json.dumps(state, indent=2))
    log.info("kafka.started", extra={"bootstrap": bootstrap, "pid": proc.pid,
                                     "seconds": round(time.monotonic() - t0, 2)})
    return info


def _port_of(spec: str) -> int | None:
    """Last ``:port`` in a listener or voter spec, if any."""
    tail = spec.rsplit(":", 1)[-1] if ":" in spec else ""
    return int(tail) if tail.isdigit() else None


def _terminate(pid: int, timeout_s: float) -> bool:
    """SIGTERM the process group of ``pid``, wait, SIGKILL if needed. True if something was running."""
    if not _pid_alive(pid):
        _reap(pid)
        return False
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return False
    if pgid != pid:
        # Not the leader of its own group (not started by us): signal the process only.
        _signal(pid, signal.SIGTERM, group=False)
    else:
        _signal(pgid, signal.SIGTERM, group=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(pid)
        if not _pid_alive(pid):
            _reap(pid)  # it may have become a zombie just now
            return True
        time.sleep(0.1)
    log.warning("kafka.kill", extra={"pid": pid})
    _signal(pgid if pgid == pid else pid, signal.SIGKILL, group=pgid == pid)
    for _ in range(50):
        _reap(pid)
        if not _pid_alive(pid):
            _reap(pid)
            break
        time.sleep(0.1)
    return True


def _signal(target: int, sig: signal.Signals, *, group: bool) -> None:
    try:
        if group:
            os.killpg(target, sig)
        else:
            os.kill(target, sig)
    except ProcessLookupError:
        return


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our child (so it does not linger as a zombie)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return


def stop(settings: Settings | None = None) -> bool:
    """Stop the local broker (whole process group) and remove the state file. True if one was running."""
    settings = settings or get_settings()
    data = _read_state(settings)
    if data is None:
        return False
    was_running = False
    if "pid" in data:
        was_running = _terminate(int(str(data["pid"])), timeout_s=20.0)
    broker_state_file(settings).unlink(missing_ok=True)
    log.info("kafka.stopped", extra={"pid": data.get("pid"), "was_running": was_running})
    return was_running


def broker_java_pids(settings: Settings | None = None) -> list[int]:
    """Pids of java processes whose command line mentions this state dir's broker config (should be none after stop)."""
    needle = str(kafka_dir(settings))
    pids: list[int] = []
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            cmdline = (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "java" in cmdline and needle in cmdline and _pid_alive(int(proc_dir.name)):
            pids.append(int(proc_dir.name))
    return pids
