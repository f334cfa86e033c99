"""The real Airflow 3 deployment: PostgreSQL metadata DB, LocalExecutor, scheduler, DAG processor, API server.

Why PostgreSQL + LocalExecutor: the LocalExecutor runs ``core.parallelism`` task processes at once,
each writing task state through the API server while the scheduler and the DAG processor write the
same database. SQLite has a single writer lock for the whole file, so concurrent writers hit
"database is locked" and Airflow itself documents SQLite as for ``dag.test()``/development only.
PostgreSQL is Airflow's reference database, is a Debian package (``infra/setup.sh`` installs it)
and its driver (``psycopg[binary]``) is already pinned in ``uv.lock``. Celery or Kubernetes
executors would add a broker or a cluster for no gain on one machine.

Layout, all under ``<airflow home>`` (persistent, so a restarted system keeps its run history):
``pg/data`` (the cluster, ``initdb`` once), ``pg/state.json`` (the port the server listens on),
``jwt_secret`` (0600; the scheduler signs task tokens the API server checks). Every process gets
its options as ``AIRFLOW__*`` variables (:func:`services_env`), on top of :mod:`infra.airflow_home`'s.
Given a StatsD port, every process (and every task process, which inherits the env) sends its metrics
to it (:func:`metrics_env`): :mod:`infra.statsd_bridge` turns them into a Prometheus /metrics.
:func:`specs` gives the argv + env of the four processes for a supervisor; :class:`AirflowServices`
starts and stops them for tests. Tasks run in the project's virtual environment (``sys.executable``).
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shlex
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptolake.errors import InfrastructureError
from cryptolake.logs import get_logger
from cryptolake.settings import PROJECT_ROOT, Settings, get_settings
from infra.airflow_home import airflow_bin, airflow_env
from infra.broker import free_port
from infra.postgres import pg_bin_dir

log = get_logger(__name__)
DATABASE = "airflow"
MIGRATED = ".cryptolake-migrated"


@dataclass(frozen=True)
class ServiceSpec:
    """One long-running process: what a supervisor runs (``argv`` with ``env`` on top of its own)."""

    name: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


def pg_dir(settings: Settings) -> Path:
    return settings.airflow.home / "pg"


def _pg_user() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root: under root it runs as Debian's ``postgres`` user."""
    return pwd.getpwnam("postgres") if os.geteuid() == 0 else None


def _as_pg_user(argv: list[str]) -> tuple[str, ...]:
    user = _pg_user()
    return tuple(["runuser", "-u", user.pw_name, "--", *argv] if user else argv)


def db_port(settings: Settings) -> int:
    """The metadata DB's port: chosen once (a free one), then kept in ``pg/state.json``."""
    state = pg_dir(settings) / "state.json"
    if state.exists():
        return int(json.loads(state.read_text())["port"])
    state.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    state.write_text(json.dumps({"port": port}))
    return port


def _db_user() -> str:
    return (_pg_user() or pwd.getpwuid(os.geteuid())).pw_name


def db_url(settings: Settings) -> str:
    return f"postgresql+psycopg://{_db_user()}@127.0.0.1:{db_port(settings)}/{DATABASE}"


def _jwt_secret_file(settings: Settings) -> Path:
    jwt_secret(settings)  # created on first use
    return settings.airflow.home / "jwt_secret"


def jwt_secret(settings: Settings) -> str:
    """The secret shared by the scheduler (signs task tokens) and the API server (checks them); never logged."""
    path = settings.airflow.home / "jwt_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others, even briefly
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def api_port(settings: Settings) -> int:
    """The API server's port (``airflow.api_port``; 0 = one free port chosen once, kept in ``api_port``)."""
    if settings.airflow.api_port:
        return settings.airflow.api_port
    path = settings.airflow.home / "api_port"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(free_port()))
    return int(path.read_text())


def metrics_env(statsd_port: int, host: str = "127.0.0.1") -> dict[str, str]:
    """Airflow's ``[metrics]`` options sending StatsD to ``host:statsd_port`` with names ``airflow.*``.

    Tagged: ``statsd_influxdb_enabled`` appends the tags (dag_id, task_id, state...) to each name,
    ``airflow.ti.finish,dag_id=d,task_id=t,state=success:1|c``, which the bridge turns into labels;
    ``legacy_names_on`` off stops the second copy of those metrics with the ids baked into the name
    (``airflow.ti.finish.d.t.success``; the bridge skips, and counts, any that still come);
    ``statsd_disabled_tags`` keeps job_id and run_id out (Airflow's default, spelled out: one series per run
    would grow without bound). Needs the ``statsd`` client (``apache-airflow[statsd]``): without it Airflow
    silently falls back to its no-op logger, which is why the integration test reads the metrics back from
    the bridge.
    """
    return {"AIRFLOW__METRICS__STATSD_ON": "True", "AIRFLOW__METRICS__STATSD_HOST": host,
            "AIRFLOW__METRICS__STATSD_PORT": str(statsd_port), "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
            "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True", "AIRFLOW__METRICS__LEGACY_NAMES_ON": "False",
            "AIRFLOW__METRICS__STATSD_DISABLED_TAGS": "job_id,run_id"}


def services_env(settings: Settings | None = None, statsd_port: int | None = None) -> dict[str, str]:
    """``AIRFLOW_*`` for every process of the deployment: PostgreSQL, LocalExecutor, the API server's URL,
    and StatsD metrics to ``127.0.0.1:statsd_port`` when given (:func:`metrics_env`)."""
    settings = settings or get_settings()
    port = api_port(settings)
    af = settings.airflow
    path = os.environ.get("PYTHONPATH")
    return {
        **airflow_env(settings),
        # the DAG files and their tasks import this checkout's packages, whatever the venv's install points at
        "PYTHONPATH": str(PROJECT_ROOT) + (f"{os.pathsep}{path}" if path else ""),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url(settings),
        # psycopg 3 is sync and async: no second driver (asyncpg) for the API server's async engine
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": db_url(settings),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(af.parallelism),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__WORKERS": "1",
        # the secret itself stays in its 0600 file: Airflow runs the command (a sensitive option's ``_CMD``),
        # so no environment listing or supervisor spec file ever holds it
        "AIRFLOW__API_AUTH__JWT_SECRET_CMD": f"cat {shlex.quote(str(_jwt_secret_file(settings)))}",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": str(af.dag_refresh_s),
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": str(af.dag_refresh_s),
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        # the project's own DAGs only: the API server's simple auth manager lets the local admin in
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        **(metrics_env(statsd_port) if statsd_port else {}),
    }


def postgres_spec(settings: Settings | None = None) -> ServiceSpec:
    """``postgres`` in the foreground on 127.0.0.1 (run :func:`init_db` once before)."""
    settings = settings or get_settings()
    d = pg_dir(settings)
    argv = [str(pg_bin_dir() / "postgres"), "-D", str(d / "data"), "-p", str(db_port(settings)), "-k", str(d),
            "-c", "listen_addresses=127.0.0.1"]
    return ServiceSpec("airflow-postgres", _as_pg_user(argv))


def specs(settings: Settings | None = None, statsd_port: int | None = None) -> list[ServiceSpec]:
    """The metadata DB, scheduler, DAG processor and API server, in start order (the Airflow ones sending
    StatsD metrics to ``statsd_port`` when given)."""
    settings = settings or get_settings()
    env = services_env(settings, statsd_port)
    af = str(airflow_bin())
    return [postgres_spec(settings),
            ServiceSpec("airflow-api-server", (af, "api-server", "--port", env["AIRFLOW__API__PORT"],
                                               "--host", "127.0.0.1"), env),
            ServiceSpec("airflow-scheduler", (af, "scheduler"), env),
            ServiceSpec("airflow-dag-processor", (af, "dag-processor"), env)]


def init_db(settings: Settings | None = None) -> bool:
    """``initdb`` the persistent cluster once (trust auth on 127.0.0.1 only). True if it ran."""
    settings = settings or get_settings()
    d = pg_dir(settings)
    if (d / "data" / "PG_VERSION").exists():
        return False
    d.mkdir(parents=True, exist_ok=True)
    user = _pg_user()
    if user is not None:
        os.chown(d, user.pw_uid, user.pw_gid)  # the folders above must be traversable (0755) by that user
    _run(_as_pg_user([str(pg_bin_dir() / "initdb"), "-D", str(d / "data"), "-A", "trust", "-E", "UTF8"]))
    return True


def _run(argv: tuple[str, ...] | list[str], env: dict[str, str] | None = None, timeout: float = 600) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise InfrastructureError(f"{Path(argv[0]).name} {' '.join(argv[1:3])} failed ({proc.returncode}): "
                                  f"{proc.stdout[-1500:]}\n{proc.stderr[-2500:]}")
    return proc.stdout


def create_db(settings: Settings) -> None:
    """Create the ``airflow`` database if it is missing (the server must be up)."""
    conn = ["-h", "127.0.0.1", "-p", str(db_port(settings)), "-U", _db_user()]
    found = _run([str(pg_bin_dir() / "psql"), *conn, "-d", "postgres", "-tAc",
                  f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"])
    if found.strip() != "1":
        _run([str(pg_bin_dir() / "createdb"), *conn, DATABASE])


def migrate(settings: Settings | None = None, *, force: bool = False) -> bool:
    """``airflow db migrate`` against the PostgreSQL metadata DB, once per Airflow version (the server must be up)."""
    settings = settings or get_settings()
    marker = pg_dir(settings) / MIGRATED
    if marker.exists() and marker.read_text().strip() == version("apache-airflow") and not force:
        return False
    t0 = time.monotonic()
    _run([str(airflow_bin()), "db", "migrate"], services_env(settings))
    marker.write_text(version("apache-airflow"))
    log.info("airflow.pg_migrated", extra={"seconds": round(time.monotonic() - t0, 1)})
    return True


def missing() -> str | None:
    """Why this machine cannot run the deployment (PostgreSQL or Airflow not installed), or None."""
    try:
        pg_bin_dir()
        airflow_bin()
    except InfrastructureError as exc:
        return str(exc)
    return None


def prepare(settings: Settings, timeout_s: float = 60.0) -> bool:
    """Make the metadata DB ready before any Airflow process starts: ``initdb`` once, then PostgreSQL just
    long enough to create the ``airflow`` database and migrate it (a no-op at this Airflow version). True
    if it migrated. The supervisor then runs PostgreSQL itself (:func:`process_specs`)."""
    init_db(settings)
    logs = settings.airflow.home / "service-logs"
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / "airflow-postgres-prepare.log").open("ab") as out:
        proc = subprocess.Popen(list(postgres_spec(settings).argv), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait(lambda: _db_ready(settings), "postgres", timeout_s, {"airflow-postgres": proc})
        create_db(settings)
        return migrate(settings)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # PostgreSQL's fast shutdown
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def process_specs(settings: Settings, env: dict[str, str] | None = None, *, statsd_port: int | None = None,
                  after: tuple[str, ...] = ()) -> list[Any]:
    """The four services as supervised processes: the Airflow ones start once PostgreSQL accepts
    connections (and stop before it), the API server is ready once its health endpoint answers.
    ``env``: more variables for the Airflow processes (their tasks inherit them); ``statsd_port``: where
    they send StatsD metrics; ``after``: more processes they wait for (the StatsD bridge)."""
    from infra.supervisor import ProcessSpec

    db, *airflow = specs(settings, statsd_port)
    out = [ProcessSpec(db.name, db.argv, db.env, ready_port=db_port(settings), stop_signal="SIGINT")]
    health = f"http://127.0.0.1:{api_port(settings)}/api/v2/monitor/health"
    for spec in airflow:
        out.append(ProcessSpec(spec.name, spec.argv, {**spec.env, **(env or {})}, after=(db.name, *after),
                               ready_url=health if spec.name == "airflow-api-server" else None))
    return out


def last_runs(settings: Settings, dag_id: str, limit: int = 5) -> list[dict[str, Any]]:
    """The newest runs of ``dag_id`` from the API server (run id, type, state, data interval), newest first."""
    url = (f"http://127.0.0.1:{api_port(settings)}/api/v2/dags/{dag_id}/dagRuns"
           f"?order_by=-logical_date&limit={limit}")
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            runs = json.loads(r.read()).get("dag_runs", [])
    except (OSError, ValueError) as exc:
        raise InfrastructureError(f"airflow api-server at {url}: {exc}") from exc
    keep = ("dag_run_id", "run_type", "state", "data_interval_start", "data_interval_end", "end_date")
    return [{k: r.get(k) for k in keep} for r in runs]


def _wait(check: object, what: str, timeout_s: float, procs: dict[str, subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name, p in procs.items():
            if p.poll() is not None:
                raise InfrastructureError(f"{name} exited with {p.returncode} while waiting for {what}")
        if check():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise InfrastructureError(f"{what} not ready after {timeout_s:.0f}s")


def _api_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _db_ready(settings: Settings) -> bool:
    proc = subprocess.run([str(pg_bin_dir() / "pg_isready"), "-h", "127.0.0.1", "-p", str(db_port(settings))],
                          capture_output=True, check=False)
    return proc.returncode == 0


class AirflowServices:
    """Start the deployment (DB, migrate, API server, scheduler, DAG processor) and stop all of it (tests)."""

    def __init__(self, settings: Settings, extra_env: dict[str, str] | None = None,
                 statsd_port: int | None = None) -> None:
        self.settings = settings
        self.extra_env = extra_env or {}
        self.statsd_port = statsd_port
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs = settings.airflow.home / "service-logs"

    def _spawn(self, spec: ServiceSpec) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        out = (self.logs / f"{spec.name}.log").open("ab")
        self.procs[spec.name] = subprocess.Popen(list(spec.argv), env={**os.environ, **self.extra_env, **spec.env},
                                                 stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def start(self, timeout_s: float = 180.0) -> None:
        init_db(self.settings)
        db, *airflow = specs(self.settings, self.statsd_port)
        try:
            self._spawn(db)
            _wait(lambda: _db_ready(self.settings), "postgres", 60, self.procs)
            create_db(self.settings)
            migrate(self.settings)
            for spec in airflow:
                self._spawn(spec)
            _wait(lambda: _api_ready(api_port(self.settings)), "airflow api-server", timeout_s, self.procs)
        except BaseException:
            self.stop()
            raise

    def rest(self, method: str, path: str, body: dict[str, object] | None = None) -> Any:
        """Call the API server's REST API (``/api/v2/<path>``); the decoded JSON answer."""
        req = urllib.request.Request(f"http://127.0.0.1:{api_port(self.settings)}/api/v2/{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def airflow(self, *args: str) -> str:
        """Run an ``airflow`` CLI command against this deployment; its stdout."""
        return _run([str(airflow_bin()), *args], {**self.extra_env, **services_env(self.settings, self.statsd_port)})

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM every process (Airflow ones first, the DB last), SIGKILL what outlives ``timeout_s``."""
        for name in reversed(list(self.procs)):
            p = self.procs[name]
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(10)
        self.procs.clear()

    def __enter__(self) -> AirflowServices:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
