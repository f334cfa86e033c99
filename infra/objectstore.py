"""A local S3-compatible object store: moto's server mode (``moto_server``, from PyPI) on 127.0.0.1.

Why moto: it is the only S3 server the package registries serve here (MinIO and Ceph are not on
PyPI, Maven Central, Debian or npm in a runnable form); its server mode speaks the S3 REST API that
hadoop-aws (``s3a://``), delta-rs and DuckDB's httpfs use, including the conditional
``If-None-Match: *`` PUT that makes delta-rs commits safe with several writers. It keeps objects in
memory: stopping it loses the bucket, which is what a scratch local cluster wants (production
points ``s3.endpoint_url`` at S3 itself; see docs/scale-out.md).

The server is registered (kind ``objectstore``) so ``cryptolake stack down`` ends it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptolake.errors import InfrastructureError
from cryptolake.logs import get_logger
from cryptolake.settings import S3Settings, Settings, get_settings
from infra import processes
from infra.broker import free_port

log = get_logger(__name__)
KIND = "objectstore"


@dataclass(frozen=True)
class ObjectStore:
    """A running local store and the bucket created in it."""

    endpoint_url: str
    bucket: str
    pid: int


def store_dir(settings: Settings | None = None) -> Path:
    """``<state_dir>/objectstore``: the server's log and address."""
    return (settings or get_settings()).paths.state_dir / "objectstore"


def client(s3: S3Settings) -> Any:
    """A boto3 S3 client for ``s3`` (endpoint, region, path-style addressing, keys from the environment)."""
    import boto3
    from botocore.config import Config

    key, secret = s3.credentials()
    return boto3.client(
        "s3", endpoint_url=s3.endpoint_url or None, region_name=s3.region, aws_access_key_id=key or None,
        aws_secret_access_key=secret or None,
        config=Config(s3={"addressing_style": "path" if s3.path_style else "auto"}, retries={"max_attempts": 3}),
    )


def _answers(endpoint: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=2):
            return True
    except OSError:
        return False


def start(settings: Settings | None = None, timeout_s: float = 60.0) -> ObjectStore:
    """Start the store (or return the running one) and create ``s3.bucket`` in it."""
    settings = settings or get_settings()
    running = status(settings)
    if running is not None:
        return running
    stop(settings)
    home = store_dir(settings)
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = Path(sys.executable).with_name("moto_server")
    tracked = processes.spawn(KIND, [str(moto), "-H", "127.0.0.1", "-p", str(port)], home / "server.log",
                              settings=settings, timeout_s=timeout_s, ready=lambda: _answers(endpoint))
    s3 = settings.s3.model_copy(update={"endpoint_url": endpoint})
    try:
        client(s3).create_bucket(Bucket=s3.bucket)
    except Exception as exc:  # botocore errors, translated at the boundary
        raise InfrastructureError(f"could not create bucket {s3.bucket} at {endpoint}: {exc}") from exc
    store = ObjectStore(endpoint, s3.bucket, tracked.pid)
    (home / "store.json").write_text(json.dumps(asdict(store), indent=2))
    log.info("objectstore.started", extra={"endpoint": endpoint, "bucket": s3.bucket})
    return store


def status(settings: Settings | None = None) -> ObjectStore | None:
    """The running store, or None unless its process is ours, alive and answering."""
    settings = settings or get_settings()
    path = store_dir(settings) / "store.json"
    if not path.exists():
        return None
    store = ObjectStore(**json.loads(path.read_text()))
    if store.pid not in {t.pid for t in processes.registered(settings)} or not _answers(store.endpoint_url):
        return None
    return store


def stop(settings: Settings | None = None) -> int:
    """Stop the store (its objects are gone with it)."""
    settings = settings or get_settings()
    ended = processes.stop_registered(settings, kind=KIND)
    (store_dir(settings) / "store.json").unlink(missing_ok=True)
    return len(ended)

