"""The supervisor: a SIGKILLed child comes back after its back-off, a crash loop is given up on, and
stopping the daemon leaves no process of ours (tiny python children, no JVM, no network)."""

from __future__ import annotations

import os
import signal
import sys
import time
import urllib.request

import pytest

from cryptolake.settings import Settings
from cryptolake.system import SupervisorSpec
from infra import processes, supervisor
from infra.broker import free_port

SLEEPER = (sys.executable, "-c", "import time; time.sleep(600)")
POLICY = SupervisorSpec(backoff_initial_s=0.5, backoff_max_s=4.0, crash_loop_restarts=3, crash_loop_window_s=60,
                        stable_after_s=30, stop_timeout_s=5)


def _settings(tmp_path) -> Settings:
    s = Settings()
    return s.model_copy(update={"paths": s.paths.model_copy(update={"state_dir": tmp_path})})


def _wait(pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _pid(settings, name):
    return (supervisor.read_state(settings) or {}).get("processes", {}).get(name, {}).get("pid")


def test_next_delay_doubles_and_is_capped() -> None:
    assert [supervisor.next_delay(n, POLICY) for n in (1, 2, 3, 4, 5, 9)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_sigkilled_child_restarts_with_backoff_then_daemon_stop_leaves_nothing(tmp_path) -> None:
    settings = _settings(tmp_path)
    port = free_port()
    specs = [supervisor.ProcessSpec("sleeper", SLEEPER),
             supervisor.ProcessSpec("crasher", (sys.executable, "-c", "import sys; sys.exit(3)"))]
    daemon = supervisor.start_daemon(specs, POLICY, settings, metrics_port=port)
    try:
        first = _wait(lambda: _pid(settings, "sleeper"))
        assert processes.alive(first) and os.getpgid(first) == first  # its own process group
        log_file = tmp_path / "logs" / "sleeper.log"
        assert log_file.exists()
        killed_at = time.monotonic()
        os.kill(first, signal.SIGKILL)

        def restarted():
            row = supervisor.read_state(settings)["processes"]["sleeper"]
            return row if row["pid"] not in (None, first) else None

        row = _wait(restarted)
        waited = time.monotonic() - killed_at
        assert row["restarts"] == 1 and row["last_exit"] == -signal.SIGKILL and row["state"] == "running"
        assert waited >= POLICY.backoff_initial_s * 0.9  # the back-off was waited, not skipped
        # The crasher exits at once every time: 0.5, 1, 2 s back-offs, then the 4th death marks it failed.
        crash = _wait(lambda: (r := supervisor.read_state(settings)["processes"]["crasher"])["state"] == "failed"
                      and r, timeout=30)
        assert crash["restarts"] == POLICY.crash_loop_restarts and crash["last_exit"] == 3
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'cryptolake_process_restarts{process="sleeper"} 1.0' in body
        assert 'cryptolake_process_failed{process="crasher"} 1.0' in body
        assert 'cryptolake_process_up{process="sleeper"} 1.0' in body
        ours = [t.pid for t in supervisor.supervised_pids(settings)]
        assert ours == [row["pid"]]
    finally:
        ended = supervisor.stop_daemon(settings, POLICY)
    assert daemon.pid in [t.pid for t in ended]
    assert not processes.alive(daemon.pid) and not processes.alive(row["pid"])
    assert supervisor.supervised_pids(settings) == [] and supervisor.daemon(settings) is None
    assert supervisor.read_state(settings)["processes"]["sleeper"]["state"] == "stopped"


def test_orphans_of_a_killed_daemon_are_stopped_by_down(tmp_path) -> None:
    settings = _settings(tmp_path)
    daemon = supervisor.start_daemon([supervisor.ProcessSpec("sleeper", SLEEPER)], POLICY, settings)
    child = _wait(lambda: _pid(settings, "sleeper"))
    os.killpg(daemon.pid, signal.SIGKILL)  # the daemon dies hard; its child lives on in its own group
    _wait(lambda: not processes.alive(daemon.pid))
    assert processes.alive(child)
    supervisor.stop_daemon(settings, POLICY)
    assert not processes.alive(child) and supervisor.supervised_pids(settings) == []


def test_a_second_daemon_is_refused(tmp_path) -> None:
    settings = _settings(tmp_path)
    supervisor.start_daemon([supervisor.ProcessSpec("sleeper", SLEEPER)], POLICY, settings)
    try:
        with pytest.raises(Exception, match="already runs"):
            supervisor.start_daemon([supervisor.ProcessSpec("sleeper", SLEEPER)], POLICY, settings)
    finally:
        supervisor.stop_daemon(settings, POLICY)


def test_a_client_waits_for_its_server_and_stop_sweeps_its_whole_session(tmp_path) -> None:
    settings = _settings(tmp_path)
    port = free_port()
    server = (sys.executable, "-c", "import socket, time; time.sleep(3); s = socket.socket(); "
              f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(600)")
    # the client forks a grandchild into its own process group (same session) that ignores SIGTERM
    client = (sys.executable, "-c", "import os, signal, time\nif os.fork() == 0:\n    os.setpgid(0, 0)\n"
              "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(600)")
    specs = [supervisor.ProcessSpec("server", server, ready_port=port, stop_signal="SIGINT"),
             supervisor.ProcessSpec("client", client, after=("server",))]
    supervisor.start_daemon(specs, POLICY, settings)
    try:
        rows = supervisor.read_state(settings)["processes"]
        assert rows["client"]["state"] == "waiting" and rows["client"]["pid"] is None
        assert rows["server"]["state"] == "running" and not rows["server"]["ready"]
        client_pid = _wait(lambda: _pid(settings, "client"), timeout=30)
        rows = supervisor.read_state(settings)["processes"]
        assert rows["server"]["ready"] and rows["client"]["started_at"] - rows["server"]["started_at"] >= 2.9
        grandchild = _wait(lambda: [p for p in processes.session_members(client_pid) if p != client_pid])[0]
        _wait(lambda: os.getpgid(grandchild) == grandchild)  # out of the client's group, not of its session
    finally:
        supervisor.stop_daemon(settings, POLICY)
    assert not processes.alive(grandchild) and processes.session_members(client_pid) == []
    assert {r["state"] for r in supervisor.read_state(settings)["processes"].values()} == {"stopped"}
