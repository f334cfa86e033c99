"""A registry of the JVMs cryptolake starts, so ``cryptolake stack down`` ends exactly those.

Entries are written by :func:`cryptolake.jvm.register` (``<state_dir>/pids/<kind>-<pid>.json``,
the pid and its command line at registration). ``stop_registered`` signals a pid only if its
current command line still matches (a recycled pid of someone else's process is never touched)
and never looks for processes by name: other people's Spark or Kafka JVMs are left alone.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from cryptolake.errors import InfrastructureError
from cryptolake.jvm import Tracked, cmdline, pids_dir, register
from cryptolake.logs import get_logger
from cryptolake.settings import Settings

log = get_logger(__name__)


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie.

    A JVM whose main thread has exited shows state ``Z`` while its other threads still run
    shutdown hooks; it counts as alive until its last thread is gone.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    state = fields.get("State", "").strip()[:1]
    threads = int(fields.get("Threads", "1").strip() or 1)
    return not (state in ("Z", "X") and threads <= 1)


def registered(settings: Settings | None = None) -> list[Tracked]:
    """Entries whose process is still alive with the same command line (stale entries are pruned)."""
    folder = pids_dir(settings)
    out: list[Tracked] = []
    if not folder.exists():
        return out
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
            entry = Tracked(str(data["kind"]), int(data["pid"]), str(data["cmdline"]))
        except (OSError, ValueError, KeyError) as exc:
            log.warning("processes.bad_entry", extra={"path": str(path), "error": str(exc)})
            path.unlink(missing_ok=True)
            continue
        if alive(entry.pid) and cmdline(entry.pid) == entry.cmdline:
            out.append(entry)
        else:
            path.unlink(missing_ok=True)
    return out


def stop_registered(settings: Settings | None = None, kind: str | None = None,
                    timeout_s: float = 20.0) -> list[Tracked]:
    """SIGTERM every live registered process (of ``kind``), SIGKILL after ``timeout_s``; returns them."""
    targets = [t for t in registered(settings) if kind is None or t.kind == kind]
    for t in targets:
        _send(t.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(alive(t.pid) for t in targets):
        for t in targets:
            reap(t.pid)
        time.sleep(0.1)
    for t in targets:
        if alive(t.pid):
            log.warning("processes.kill", extra={"pid": t.pid, "kind": t.kind})
            _send(t.pid, signal.SIGKILL)
    registered(settings)  # prune
    return targets


def _send(pid: int, sig: signal.Signals) -> None:
    """Signal ``pid``; its whole group when it leads one (a daemon :func:`spawn` started, with its children)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        return


def listening(port: int, host: str = "127.0.0.1", timeout_s: float = 1.0) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 30) -> str:
    """The last lines of a daemon's log (for error messages)."""
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def spawn(kind: str, cmd: Sequence[str], log_path: Path, *, ready: Callable[[], bool], timeout_s: float,
          settings: Settings | None = None, env: Mapping[str, str] | None = None,
          cwd: Path | None = None) -> Tracked:
    """Start a detached daemon (its own session and process group), wait until ``ready()``, register it.

    Registered only once ready, so the recorded command line is the final one (``spark-class`` execs
    its JVM). A daemon that exits or is not ready within ``timeout_s`` is stopped and reported with
    its log's tail.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=str(cwd) if cwd else None,
                                env={**os.environ, **(env or {})})
    deadline = time.monotonic() + timeout_s
    while not ready():
        if proc.poll() is not None:
            raise InfrastructureError(f"{kind} exited with code {proc.returncode}:\n{log_tail(log_path)}")
        if time.monotonic() > deadline:
            _send(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            raise InfrastructureError(f"{kind} not ready within {timeout_s:.0f}s:\n{log_tail(log_path)}")
        time.sleep(0.2)
    tracked = register(kind, proc.pid, settings)
    log.info("processes.started", extra={"kind": kind, "pid": proc.pid})
    return tracked



def session_members(sid: int) -> list[int]:
    """Live processes of session ``sid`` (a supervised child leads its own; its descendants keep it)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp session ...
        if len(fields) > 3 and int(fields[3]) == sid and alive(int(entry.name)):
            out.append(int(entry.name))
    return sorted(out)


def kill(pid: int) -> None:
    """SIGKILL ``pid`` if it still exists."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def reap(pid: int) -> None:
    """Collect the exit status of ``pid`` if it is our child (so it does not linger as a zombie)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return
