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
import time
from pathlib import Path

from cryptolake.jvm import Tracked, cmdline, pids_dir
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
