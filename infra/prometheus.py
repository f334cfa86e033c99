"""Prometheus (Debian's ``prometheus`` package): scrape config, rule files, argv, and start/stop for tests.

:func:`write_config` writes ``<state_dir>/prometheus/prometheus.yml`` scraping each
``{job: "127.0.0.1:port"}`` (one static target per job, ``/metrics``) and loading the rule files of
``infra/monitoring`` (copied next to it, so the config is self-contained). :func:`argv` runs it on
127.0.0.1 with its TSDB under ``<state_dir>/prometheus/data``; the supervisor runs that argv,
tests use :class:`LocalPrometheus`, which also queries the HTTP API (targets, alerts, instant
queries).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptolake.errors import InfrastructureError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings, get_settings
from infra.broker import free_port

log = get_logger(__name__)
RULES_DIR = Path(__file__).resolve().parent / "monitoring"
RULE_FILES = ("alerts.yml",)


def prometheus_dir(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).paths.state_dir / "prometheus"


def prometheus_bin() -> str:
    found = shutil.which("prometheus")
    if found is None:
        raise InfrastructureError("prometheus is not installed (Debian package `prometheus`); run infra/setup.sh")
    return found


def write_config(targets: Mapping[str, str], settings: Settings | None = None, *, scrape_interval_s: float = 15.0,
                 evaluation_interval_s: float | None = None, rules_dir: Path = RULES_DIR) -> Path:
    """The scrape config for ``{job: host:port}`` plus the rule files; returns the config's path."""
    for job, target in targets.items():
        host, _, port = target.rpartition(":")
        if not job or not host or not port.isdigit():
            raise InfrastructureError(f"prometheus target {job!r}: {target!r} is not host:port")
    out = prometheus_dir(settings)
    out.mkdir(parents=True, exist_ok=True)
    rules = []
    for name in RULE_FILES:
        shutil.copyfile(rules_dir / name, out / name)
        rules.append(str(out / name))
    every = f"{scrape_interval_s:g}s"
    config = {
        "global": {"scrape_interval": every, "evaluation_interval": f"{evaluation_interval_s or scrape_interval_s:g}s"},
        "rule_files": rules,
        "scrape_configs": [{"job_name": job, "metrics_path": "/metrics", "static_configs": [{"targets": [target]}]}
                           for job, target in sorted(targets.items())],
    }
    path = out / "prometheus.yml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML: no YAML writer needed
    return path


def argv(config: Path, port: int, settings: Settings | None = None) -> list[str]:
    """``prometheus`` on ``127.0.0.1:port`` with its data under ``<state_dir>/prometheus/data``."""
    data = prometheus_dir(settings) / "data"
    return [prometheus_bin(), f"--config.file={config}", f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=15d", "--log.level=warn"]


class LocalPrometheus:
    """``with LocalPrometheus(targets, settings) as prom: prom.targets()`` (tests)."""

    def __init__(self, targets: Mapping[str, str], settings: Settings, *, scrape_interval_s: float = 1.0) -> None:
        self.settings = settings
        self.config = write_config(targets, settings, scrape_interval_s=scrape_interval_s)
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/<path>``'s ``data``."""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.loads(r.read())
        if body.get("status") != "success":
            raise InfrastructureError(f"prometheus {path}: {body}")
        return body["data"]

    def targets(self) -> dict[str, str]:
        """``{job: health}`` of the active targets (``up``, ``down`` or ``unknown``)."""
        return {t["labels"]["job"]: t["health"] for t in self.api("targets")["activeTargets"]}

    def firing(self) -> list[str]:
        """Names of the alerts firing now."""
        return sorted(a["labels"]["alertname"] for a in self.api("alerts")["alerts"] if a["state"] == "firing")

    def start(self, timeout_s: float = 60.0) -> None:
        self.port = free_port()
        log_path = prometheus_dir(self.settings) / "prometheus.log"
        with log_path.open("ab") as out:
            self._proc = subprocess.Popen(argv(self.config, self.port, self.settings), stdout=out,
                                          stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise InfrastructureError(f"prometheus exited with {self._proc.returncode}: "
                                          f"{log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise InfrastructureError(f"prometheus not ready after {timeout_s:.0f}s")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None

    def __enter__(self) -> LocalPrometheus:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
