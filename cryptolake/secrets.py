"""The one way to read a secret: from an environment variable, or from the file another one names.

``read_secret("CRYPTOLAKE_API_JWT_SECRET")`` returns the variable's value, else the contents of the file
named by ``CRYPTOLAKE_API_JWT_SECRET_FILE`` (Docker/Kubernetes secrets), else ``None``. Every value read is
registered with the log redactor, so no log line can show it.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptolake.errors import ConfigError
from cryptolake.logs import register_secret


def read_secret(env: str, *, required: bool = False) -> str | None:
    """The secret named ``env`` (or ``<env>_FILE``); ``ConfigError`` naming both when required and unset."""
    value = os.environ.get(env)
    if not value:
        path = os.environ.get(f"{env}_FILE")
        if path:
            try:
                value = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{env}_FILE={path!r}: cannot read the secret file ({exc.strerror})") from exc
    if not value:
        if required:
            raise ConfigError(f"secret {env} is not set (set {env} or {env}_FILE)")
        return None
    register_secret(value)
    return value
