"""Where the JVM side of the stack lives on disk: the resolved jars and the registry of started JVMs.

Both are contracts between packages that must not import each other: ``infra`` resolves the jars
and stops registered JVMs (``cryptolake stack down``); ``spark_jobs`` puts the jars on
``spark.jars`` and registers the driver JVM it starts. Each registry entry is
``<state_dir>/pids/<kind>-<pid>.json`` with the pid and its command line at registration, so a
recycled pid of someone else's process is never mistaken for ours.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cryptolake.errors import InfrastructureError
from cryptolake.settings import Settings, get_settings


def jar_dir(group: str, settings: Settings | None = None) -> Path:
    """``<jars_dir>/<group>``: where ``infra/pom.xml`` resolves a group of jars (``spark``, ``kafka``)."""
    return (settings or get_settings()).paths.jars_dir / group


def jar_files(group: str, settings: Settings | None = None) -> list[Path]:
    """The resolved jars of a group, or an InfrastructureError saying how to get them."""
    folder = jar_dir(group, settings)
    jars = sorted(folder.glob("*.jar"))
    if not jars:
        raise InfrastructureError(
            f"no {group} jars in {folder}; run `cryptolake stack jars` (or `make setup`) to resolve them"
        )
    return jars


@dataclass(frozen=True)
class Tracked:
    """A registered process."""

    kind: str
    pid: int
    cmdline: str


def pids_dir(settings: Settings | None = None) -> Path:
    """``<state_dir>/pids``: the registry of the JVMs cryptolake started."""
    return (settings or get_settings()).paths.state_dir / "pids"


def cmdline(pid: int) -> str | None:
    """The command line of ``pid`` (NUL separators as spaces), or None if it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() or None


def register(kind: str, pid: int, settings: Settings | None = None) -> Tracked:
    """Record that cryptolake started ``pid`` (e.g. a Spark driver JVM)."""
    line = cmdline(pid) or ""
    folder = pids_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{kind}-{pid}.json").write_text(json.dumps({"kind": kind, "pid": pid, "cmdline": line}))
    return Tracked(kind, pid, line)
