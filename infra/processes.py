"""A registry of the JVMs cryptolake starts, so ``cryptolake stack down`` ends exactly those.

Each entry is ``<state_dir>/pids/<kind>-<pid>.json`` with the pid and its command line at
registration. ``stop_registered`` signals a pid only if its current command line still matches
(a recycled pid of someone else's process is never touched) and never looks for processes by
name: other people's Spark or Kafka JVMs on the same machine are left alone.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptolake.logs import get_logger
from cryptolake.settings import Settings, get_settings

log = get_logger(__name__)


@dataclass(frozen=True)
class Tracked:
    """A registered process."""

    kind: str
    pid: int
    cmdline: str


def pids_dir(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).paths.state_dir / "pids"


def cmdline(pid: int) -> str | None:
    """The command line of ``pid`` (NUL separators as spaces), or None if it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() or None


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


def register(kind: str, pid: int, settings: Settings | None = None) -> Tracked:
    """Record that cryptolake started ``pid`` (e.g. a Spark driver JVM)."""
    line = cmdline(pid) or ""
    folder = pids_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{kind}-{pid}.json").write_text(json.dumps({"kind": kind, "pid": pid, "cmdline": line}))
    return Tracked(kind, pid, line)


def register_spark(spark: Any, settings: Settings | None = None) -> Tracked | None:
    """Register the driver JVM of a local SparkSession (None when the JVM is remote/unknown)."""
    try:
        pid = int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())
    except (AttributeError, TypeError, ValueError) as exc:
        log.warning("processes.spark_pid_unknown", extra={"error": str(exc)})
        return None
    return register("spark", pid, settings)


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
        time.sleep(0.1)
    for t in targets:
        if alive(t.pid):
            log.warning("processes.kill", extra={"pid": t.pid, "kind": t.kind})
            _send(t.pid, signal.SIGKILL)
    registered(settings)  # prune
    return targets


def _send(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
