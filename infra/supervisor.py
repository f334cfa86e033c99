"""Supervised child processes: started, watched, restarted with capped exponential back-off, stopped cleanly.

``cryptolake up`` writes the process specs to ``<state_dir>/supervisor/specs.json`` and starts this
module as a daemon (``python -m infra.supervisor``, its own session, registered in the pid registry of
:mod:`infra.processes`). The daemon starts every child in its own process group with its log at
``<state_dir>/logs/<name>.log``, registers it (kind ``svc.<name>``: pid and command line, so ``down``
only ever signals our own processes), checks its readiness, and restarts a child that died after
``min(initial * 2**n, max)`` seconds (``n`` = consecutive quick deaths; a run longer than
``stable_after_s`` resets it). ``crash_loop_restarts`` restarts within ``crash_loop_window_s`` mark the
child ``failed`` (not restarted again). The state (pids, command lines, restarts, start times, metrics
ports) is rewritten to ``state.json`` on every change. SIGTERM: every child gets SIGTERM, then SIGKILL
after ``stop_timeout_s``; the daemon exits 0. It serves its own ``/metrics``. It also restarts the
detached Kafka broker when it stops answering (:mod:`infra.broker_watch`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptolake.jvm import register
from cryptolake.logs import configure_logging, get_logger
from cryptolake.settings import Settings, get_settings
from cryptolake.system import SupervisorSpec
from infra import processes
from infra.broker_watch import BrokerWatch

log = get_logger(__name__)
KIND_PREFIX = "svc."


@dataclass(frozen=True)
class ProcessSpec:
    """One supervised process. ``ready_url``: GET answering 200 means ready (default: its /metrics).

    ``ready_port``: ready once 127.0.0.1:port accepts TCP (a server without HTTP, e.g. PostgreSQL).
    ``after``: started only once these processes are ready (a client never races its server's start),
    and stopped before them. ``stop_signal``: what asks it to stop (PostgreSQL: SIGINT, its fast shutdown).
    """

    name: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    metrics_port: int | None = None
    ready_url: str | None = None
    ready_port: int | None = None
    after: tuple[str, ...] = ()
    stop_signal: str = "SIGTERM"

    def readiness_url(self) -> str | None:
        if self.ready_url:
            return self.ready_url
        return f"http://127.0.0.1:{self.metrics_port}/metrics" if self.metrics_port else None


def supervisor_dir(settings: Settings | None = None) -> Path:
    """``<state_dir>/supervisor``: specs, state and the daemon's own log."""
    return (settings or get_settings()).paths.state_dir / "supervisor"


def logs_dir(settings: Settings | None = None) -> Path:
    """``<state_dir>/logs``: one log file per supervised process."""
    return (settings or get_settings()).paths.state_dir / "logs"


def write_specs(specs: list[ProcessSpec], policy: SupervisorSpec, metrics_port: int, settings: Settings, *,
                watch_broker: bool = False) -> Path:
    path = supervisor_dir(settings) / "specs.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"policy": policy.model_dump(), "metrics_port": metrics_port,
                                "watch_broker": watch_broker, "processes": [asdict(s) for s in specs]}, indent=2))
    return path


def read_state(settings: Settings | None = None) -> dict[str, Any] | None:
    """The daemon's last written state, or None."""
    path = supervisor_dir(settings) / "state.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def next_delay(quick_deaths: int, policy: SupervisorSpec) -> float:
    """Restart delay after ``quick_deaths`` consecutive deaths (1 = the first): doubles, capped."""
    return float(min(policy.backoff_initial_s * 2 ** max(0, quick_deaths - 1), policy.backoff_max_s))


@dataclass
class Child:
    """Runtime state of one supervised process."""

    spec: ProcessSpec
    proc: subprocess.Popen[bytes] | None = None
    state: str = "starting"  # starting | waiting (for its ``after``) | running | backoff | failed | stopped
    ready: bool = False
    restarts: int = 0
    quick_deaths: int = 0
    started_at: float = 0.0
    restart_at: float = 0.0
    last_exit: int | None = None
    cmdline: str = ""
    deaths: deque[float] = field(default_factory=deque)


class Supervisor:
    """Runs the children until :meth:`stop` (or SIGTERM)."""

    def __init__(self, specs: list[ProcessSpec], policy: SupervisorSpec, settings: Settings,
                 metrics_port: int = 0, *, watch_broker: bool = False) -> None:
        from prometheus_client import CollectorRegistry, Gauge

        from cryptolake.metrics import MetricsServer

        self.children = {s.name: Child(s) for s in specs}
        self.policy, self.settings = policy, settings
        self._stop = threading.Event()
        self.registry = CollectorRegistry()
        self._up = Gauge("cryptolake_process_up", "1 while the supervised process runs", ["process"],
                         registry=self.registry)
        self._ready = Gauge("cryptolake_process_ready", "1 once the process passed its readiness check",
                            ["process"], registry=self.registry)
        self._restarts = Gauge("cryptolake_process_restarts", "Restarts by the supervisor", ["process"],
                               registry=self.registry)
        self._failed = Gauge("cryptolake_process_failed", "1 when the crash-loop limit gave up on it", ["process"],
                             registry=self.registry)
        self._uptime = Gauge("cryptolake_process_uptime_seconds", "Seconds since the process (re)started",
                             ["process"], registry=self.registry)
        self.broker_watch = BrokerWatch(settings, policy.broker_check_s, self.registry) \
            if watch_broker and policy.broker_check_s > 0 else None
        self.server = MetricsServer(self.registry)
        self.metrics_port = self.server.start(metrics_port)
        logs_dir(settings).mkdir(parents=True, exist_ok=True)

    # --- children ------------------------------------------------------------------
    def _start(self, child: Child) -> None:
        spec = child.spec
        with (logs_dir(self.settings) / f"{spec.name}.log").open("ab") as out:
            out.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} start {spec.name} "
                      f"(restart {child.restarts})\n".encode())
            out.flush()
            child.proc = subprocess.Popen(list(spec.argv), stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True,
                                          env={**os.environ, **spec.env})
        deadline = time.monotonic() + 5.0  # register the exec'ed command line, never the fork's (or none)
        mine = processes.cmdline(os.getpid())
        while processes.cmdline(child.proc.pid) in (None, mine) and time.monotonic() < deadline:
            if child.proc.poll() is not None:
                break
            time.sleep(0.005)
        child.cmdline = register(KIND_PREFIX + spec.name, child.proc.pid, self.settings).cmdline
        checked = spec.readiness_url() is not None or spec.ready_port is not None
        child.state, child.ready, child.started_at = "running", not checked, time.time()
        log.info("supervisor.started", extra={"proc": spec.name, "pid": child.proc.pid, "restarts": child.restarts})

    def _check_ready(self, child: Child) -> None:
        url = child.spec.readiness_url()
        if child.ready or (url is None and child.spec.ready_port is None):
            return
        if child.spec.ready_port is not None:
            child.ready = processes.listening(child.spec.ready_port, timeout_s=0.5)
        else:
            try:
                with urllib.request.urlopen(str(url), timeout=1.0) as resp:
                    child.ready = resp.status == 200
            except OSError:
                return
        if child.ready:
            log.info("supervisor.ready", extra={"proc": child.spec.name,
                                                "seconds": round(time.time() - child.started_at, 2)})

    def _on_exit(self, child: Child, code: int) -> None:
        now = time.time()
        child.last_exit, child.proc, child.ready = code, None, False
        ran = now - child.started_at
        child.quick_deaths = 1 if ran >= self.policy.stable_after_s else child.quick_deaths + 1
        child.deaths.append(now)
        while child.deaths and now - child.deaths[0] > self.policy.crash_loop_window_s:
            child.deaths.popleft()
        if len(child.deaths) > self.policy.crash_loop_restarts:
            child.state = "failed"
            log.error("supervisor.crash_loop", extra={"proc": child.spec.name, "exit": code,
                                                      "deaths": len(child.deaths),
                                                      "window_s": self.policy.crash_loop_window_s})
            return
        delay = next_delay(child.quick_deaths, self.policy)
        child.state, child.restart_at = "backoff", now + delay
        log.warning("supervisor.died", extra={"proc": child.spec.name, "exit": code, "ran_s": round(ran, 2),
                                              "restart_in_s": delay})

    def tick(self) -> None:
        """One pass: reap the dead, restart the due, check readiness, write state and metrics."""
        now = time.time()
        for child in self.children.values():
            if child.proc is not None:
                code = child.proc.poll()
                if code is not None:
                    self._on_exit(child, code)
                else:
                    self._check_ready(child)
            if child.state == "backoff" and now >= child.restart_at:
                child.restarts += 1
                self._start(child)
            elif child.state == "waiting" and self._deps_ready(child):
                self._start(child)
        self._publish()

    def _deps_ready(self, child: Child) -> bool:
        return all(self.children[d].ready for d in child.spec.after if d in self.children)

    def _publish(self) -> None:
        now = time.time()
        rows = {}
        for name, c in self.children.items():
            running = c.proc is not None
            self._up.labels(name).set(1 if running else 0)
            self._ready.labels(name).set(1 if c.ready else 0)
            self._restarts.labels(name).set(c.restarts)
            self._failed.labels(name).set(1 if c.state == "failed" else 0)
            self._uptime.labels(name).set(now - c.started_at if running else 0)
            rows[name] = {"state": c.state, "ready": c.ready, "pid": c.proc.pid if c.proc else None,
                          "cmdline": c.cmdline, "restarts": c.restarts, "started_at": c.started_at,
                          "last_exit": c.last_exit, "metrics_port": c.spec.metrics_port,
                          "log": str(logs_dir(self.settings) / f"{name}.log")}
        state = {"pid": os.getpid(), "cmdline": processes.cmdline(os.getpid()) or "",
                 "metrics_port": self.metrics_port, "updated_at": now, "stopping": self._stop.is_set(),
                 "processes": rows, "broker": self.broker_watch.state() if self.broker_watch else None}
        path = supervisor_dir(self.settings) / "state.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(path)

    def run(self, interval_s: float = 0.2) -> None:
        """Start every child, then supervise until :meth:`stop`; stops every child on the way out."""
        if self.broker_watch is not None:
            self.broker_watch.start(self._stop)
        for child in self.children.values():
            if self._deps_ready(child):
                self._start(child)
            else:
                child.state = "waiting"
        try:
            while not self._stop.is_set():
                self.tick()
                self._stop.wait(interval_s)
        finally:
            if self.broker_watch is not None:
                self.broker_watch.join(timeout_s=self.settings.kafka.start_timeout_s + 10)
            self.stop_children()
            self.server.close()

    def stop(self) -> None:
        self._stop.set()

    def stop_children(self) -> None:
        """Stop every child (its stop signal to its process group, SIGKILL to its whole session after
        ``stop_timeout_s``): first those no other child runs ``after``, then the servers they used."""
        needed = {d for c in self.children.values() for d in c.spec.after}
        live = [c for c in self.children.values() if c.proc is not None]
        for wave in ([c for c in live if c.spec.name not in needed], [c for c in live if c.spec.name in needed]):
            self._stop_wave(wave)
        for c in self.children.values():
            if c.state == "waiting":
                c.state = "stopped"
        self._publish()
        processes.registered(self.settings)  # prune the registry
        log.info("supervisor.stopped", extra={"processes": len(live)})

    def _stop_wave(self, live: list[Child]) -> None:
        for c in live:
            _signal_group(c.proc.pid, signal.Signals[c.spec.stop_signal])  # type: ignore[union-attr]
        deadline = time.monotonic() + self.policy.stop_timeout_s
        while time.monotonic() < deadline and any(c.proc.poll() is None for c in live):  # type: ignore[union-attr]
            time.sleep(0.1)
        for c in live:
            assert c.proc is not None
            if c.proc.poll() is None:
                log.warning("supervisor.kill", extra={"proc": c.spec.name, "pid": c.proc.pid})
                _signal_group(c.proc.pid, signal.SIGKILL)
                c.proc.wait(10)
            for pid in processes.session_members(c.proc.pid):  # a descendant that left the group (setpgid)
                log.warning("supervisor.kill_session", extra={"proc": c.spec.name, "pid": pid})
                processes.kill(pid)
            c.last_exit, c.proc, c.state, c.ready = c.proc.returncode, None, "stopped", False


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return


def supervised_pids(settings: Settings | None = None) -> list[processes.Tracked]:
    """Registered children (``svc.*``) still alive with their recorded command line."""
    return [t for t in processes.registered(settings) if t.kind.startswith(KIND_PREFIX)]


def daemon(settings: Settings | None = None) -> processes.Tracked | None:
    """The running supervisor daemon (registered, same command line), or None."""
    return next((t for t in processes.registered(settings) if t.kind == "supervisor"), None)


def start_daemon(specs: list[ProcessSpec], policy: SupervisorSpec, settings: Settings,
                 metrics_port: int = 0, *, watch_broker: bool = False) -> processes.Tracked:
    """Start the supervisor daemon over ``specs`` (refused if one runs); returns once it wrote its state.

    ``watch_broker``: the daemon also restarts the local broker when it stops answering (``up``'s broker).
    """
    from cryptolake.errors import InfrastructureError

    running = daemon(settings)
    if running is not None:
        raise InfrastructureError(f"the supervisor already runs (pid {running.pid}); `cryptolake down` first")
    path = write_specs(specs, policy, metrics_port, settings, watch_broker=watch_broker)
    (supervisor_dir(settings) / "state.json").unlink(missing_ok=True)
    t0 = time.time()

    def ready() -> bool:
        state = read_state(settings)
        return state is not None and float(state.get("updated_at", 0)) >= t0

    return processes.spawn("supervisor", [sys.executable, "-m", "infra.supervisor", str(path)],
                           supervisor_dir(settings) / "supervisor.log", ready=ready, timeout_s=60.0,
                           settings=settings, env={"CRYPTOLAKE__PATHS__STATE_DIR": str(settings.paths.state_dir)})


def stop_daemon(settings: Settings, policy: SupervisorSpec) -> list[processes.Tracked]:
    """SIGTERM the daemon (it stops its children), then end any registered child left; returns what was stopped."""
    ended = processes.stop_registered(settings, kind="supervisor", timeout_s=policy.stop_timeout_s + 15)
    for t in supervised_pids(settings):  # the daemon died without stopping them (SIGKILL)
        log.warning("supervisor.orphan", extra={"kind": t.kind, "pid": t.pid})
        ended += processes.stop_registered(settings, kind=t.kind, timeout_s=policy.stop_timeout_s)
    return ended


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.supervisor",
                                     description="Run the supervised processes of specs.json until SIGTERM.")
    parser.add_argument("specs", type=Path, help="specs.json written by `cryptolake up`")
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level)
    data = json.loads(args.specs.read_text())
    specs = [ProcessSpec(name=p["name"], argv=tuple(p["argv"]), env=dict(p.get("env") or {}),
                         metrics_port=p.get("metrics_port"), ready_url=p.get("ready_url"),
                         ready_port=p.get("ready_port"), after=tuple(p.get("after") or ()),
                         stop_signal=str(p.get("stop_signal") or "SIGTERM"))
             for p in data["processes"]]
    sup = Supervisor(specs, SupervisorSpec.model_validate(data["policy"]), settings,
                     metrics_port=int(data.get("metrics_port") or 0), watch_broker=bool(data.get("watch_broker")))
    signal.signal(signal.SIGTERM, lambda *_: sup.stop())
    signal.signal(signal.SIGINT, lambda *_: sup.stop())
    sup.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
