"""Structured (JSON lines) logging with secret redaction.

Use ``log = get_logger(__name__)`` and pass fields through ``extra={...}``; the event name
is the message. Any field whose name looks secret, and any value equal to a registered
secret, is replaced by ``***``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
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


def configure_logging(level: str = "INFO", stream: Any = None) -> None:
    """Install the JSON formatter on the root logger (idempotent)."""
    root = logging.getLogger()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.handlers = [h for h in root.handlers if not getattr(h, "_cryptolake", False)]
    handler._cryptolake = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("kafka", "py4j", "urllib3", "asyncio", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> logging.Logger:
    """A standard logger; structure comes from :class:`JsonFormatter`."""
    return logging.getLogger(name)
