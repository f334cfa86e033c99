"""Structured (JSON lines) logging with secret redaction.

Use ``log = get_logger(__name__)`` and pass fields through ``extra={...}``; the event name
is the message. Any field whose name looks secret, and any value equal to a registered
secret, is replaced by ``***``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_SECRET_KEY = re.compile(r"(secret|password|passwd|token|api_?key|private|signature|auth)", re.I)
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_registered_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Make sure ``value`` never appears in a log line, whatever field carries it."""
    if value and len(value) >= 4:
        _registered_secrets.add(value)


def redact(value: Any, key: str = "") -> Any:
    """Return ``value`` with secrets masked (recursively for dicts and lists)."""
    if key and _SECRET_KEY.search(key):
        return "***"
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        for secret in _registered_secrets:
            value = value.replace(secret, "***")
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, event and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = redact(value, key)
        if record.exc_info:
            payload["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(payload, default=str)


class _LibraryRootCalls(logging.Filter):
    """Drops sub-warning records a library logs through the *root* logger (py4j calls ``logging.info``
    from its garbage-collector thread, also at interpreter exit), which its logger's level cannot reach."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name != "root" or "/py4j/" not in record.pathname


def configure_logging(level: str = "INFO", stream: Any = None) -> None:
    """Install the JSON formatter on the root logger (idempotent)."""
    root = logging.getLogger()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(_LibraryRootCalls())
    root.handlers = [h for h in root.handlers if not getattr(h, "_cryptolake", False)]
    handler._cryptolake = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    quiet_libraries()


# Library loggers and their console level. kafka-python's selector warns whenever one event-loop
# step takes > 100 ms, which a loaded 2-core machine does all the time: a diagnostic of its own
# loop, not a problem of the run (its real failures raise and are translated in cryptolake.bus);
# librdkafka logs the conditions it retries as warnings.
LIBRARY_LEVELS: dict[str, int] = {
    "kafka": logging.WARNING,
    "kafka.net.selector": logging.ERROR,
    "confluent_kafka": logging.ERROR,  # retried conditions; a failed delivery raises at flush
    "py4j": logging.WARNING,
    "urllib3": logging.WARNING,
    "asyncio": logging.WARNING,
    "matplotlib": logging.WARNING,
    "distributed": logging.WARNING,  # a LocalCluster's start/stop chatter (scheduler, nanny, workers)
}
# Third-party deprecation notices that no setting of ours can act on (the fix is upstream).
LIBRARY_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # Airflow's in-process execution API (dag.test) imports starlette's TestClient.
    (r"Using `httpx` with `starlette.testclient` is deprecated", UserWarning),
)


def quiet_libraries() -> None:
    """Apply :data:`LIBRARY_LEVELS` and :data:`LIBRARY_WARNINGS` (idempotent; re-run after a framework
    such as Airflow reconfigures logging)."""
    for name, lvl in LIBRARY_LEVELS.items():
        logging.getLogger(name).setLevel(lvl)
    for message, category in LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


# When set, pipeline tasks run inside ``native_output_to(<this path>)``: the main job sets it, so a JVM
# a task starts (Spark's driver) writes to the run log even where a framework re-pointed fd 2.
NATIVE_LOG_ENV = "CRYPTOLAKE_NATIVE_LOG"


@contextlib.contextmanager
def native_output_to(path: Path, console_level: int = logging.WARNING) -> Iterator[Path]:
    """Send what native code writes to file descriptors 1 and 2 (JVMs, C libraries) into ``path``.

    Python keeps the console: ``sys.stdout``/``sys.stderr`` (progress bars, tracebacks, log
    handlers) are re-pointed at duplicates of the original descriptors, so nothing Python prints or
    raises is hidden; a JVM started inside the block (Spark's driver) inherits the file, and its
    banner and log4j lines go there instead of the console. Our JSON log records go to the file
    too, and to the console from ``console_level`` up. Restored on exit.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    if _native_depth:  # nested: Python already writes to the console; only make sure fds 1/2 are the file
        with _fds_to(path):
            yield path
        return
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    out = os.fdopen(os.dup(saved[1]), "w", buffering=1, encoding="utf-8")
    err = os.fdopen(os.dup(saved[2]), "w", buffering=1, encoding="utf-8")
    old_out, old_err = sys.stdout, sys.stderr
    moved = _repoint_handlers(old_err, err)
    levels = {h: h.level for h in moved if getattr(h, "_cryptolake", False)}
    for h in levels:
        h.setLevel(max(h.level, console_level))
    already = any(isinstance(h, logging.FileHandler) and Path(h.baseFilename) == path.resolve()
                  for h in logging.getLogger().handlers)  # nested: the outer block logs to the file
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setFormatter(JsonFormatter())
    if not already:
        logging.getLogger().addHandler(file_handler)
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        sys.stdout, sys.stderr = out, err
        _native_depth.append(path)
        yield path
    finally:
        _native_depth.pop()
        out.flush()
        err.flush()
        sys.stdout, sys.stderr = old_out, old_err
        for fd, dup in saved.items():
            os.dup2(dup, fd)
            os.close(dup)
        os.close(target)
        logging.getLogger().removeHandler(file_handler)
        file_handler.close()
        for h, lvl in levels.items():
            h.setLevel(lvl)
        _repoint_handlers(err, old_err, only=moved)
        out.close()
        err.close()


_native_depth: list[Path] = []  # the paths of the native_output_to blocks this process is in


@contextlib.contextmanager
def _fds_to(path: Path) -> Iterator[None]:
    """File descriptors 1 and 2 on ``path`` for the block (a framework may have moved them); restored after."""
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield
    finally:
        for fd, dup in saved.items():
            os.dup2(dup, fd)
            os.close(dup)
        os.close(target)


def _repoint_handlers(old: Any, new: Any, only: list[logging.StreamHandler[Any]] | None = None
                      ) -> list[logging.StreamHandler[Any]]:
    """Stream handlers writing to ``old`` now write to ``new``; returns the handlers moved."""
    moved: list[logging.StreamHandler[Any]] = []
    handlers = only if only is not None else [
        h for lg in [logging.getLogger(), *logging.root.manager.loggerDict.values()]
        if isinstance(lg, logging.Logger) for h in lg.handlers
    ]
    for h in handlers:
        # logging's last-resort handler reads sys.stderr itself (its stream cannot be set).
        if isinstance(h, logging.StreamHandler) and type(h).__name__ != "_StderrHandler" and h.stream is old:
            h.setStream(new)
            moved.append(h)
    return moved


def get_logger(name: str) -> logging.Logger:
    """A standard logger; structure comes from :class:`JsonFormatter`."""
    return logging.getLogger(name)
