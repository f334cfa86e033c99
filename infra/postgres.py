"""A throwaway PostgreSQL server from Debian's binaries (``/usr/lib/postgresql/*/bin``), for tests.

:class:`LocalPostgres` runs ``initdb`` in a temporary directory, starts ``postgres`` on a free
127.0.0.1 port (its socket in the same directory) and stops it (``pg_ctl stop -m fast``) after.
PostgreSQL refuses to run as root, so under root the server runs as the ``postgres`` system user
(the Debian package creates it). Nothing outside the temporary directory is touched.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from cryptolake.errors import InfrastructureError
from cryptolake.logs import get_logger
from infra.broker import free_port

log = get_logger(__name__)


def pg_bin_dir() -> Path:
    """The newest installed PostgreSQL's bin folder."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise InfrastructureError("PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb); run infra/setup.sh")
    return found[-1].parent


class LocalPostgres:
    """``with LocalPostgres() as pg: pg.url`` -> a SQLAlchemy URL (psycopg 3) of a fresh database."""

    def __init__(self, database: str = "cryptolake") -> None:
        self.database = database
        self.bin = pg_bin_dir()
        self.port = 0
        self._dir: Path | None = None
        self._user: pwd.struct_passwd | None = pwd.getpwnam("postgres") if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        user = self._user.pw_name if self._user else pwd.getpwuid(os.geteuid()).pw_name
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str) -> None:
        def demote() -> None:
            if self._user is not None:
                os.setgid(self._user.pw_gid)
                os.setuid(self._user.pw_uid)

        proc = subprocess.run(args, capture_output=True, text=True, preexec_fn=demote, timeout=120, check=False)
        if proc.returncode != 0:
            raise InfrastructureError(f"{Path(args[0]).name} failed ({proc.returncode}): {proc.stderr[-2000:]}")

    def start(self) -> str:
        self._dir = Path(tempfile.mkdtemp(prefix="cryptolake-pg-"))
        if self._user is not None:
            os.chown(self._dir, self._user.pw_uid, self._user.pw_gid)
        data = self._dir / "data"
        self._run(str(self.bin / "initdb"), "-D", str(data), "-A", "trust", "-E", "UTF8", "--no-sync")
        self.port = free_port()
        opts = f"-p {self.port} -k {self._dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(self._dir / "log"), "-w",
                  "start")
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), self.database)
        log.info("postgres.started", extra={"port": self.port})
        return self.url

    def stop(self) -> None:
        if self._dir is None:
            return
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self._dir / "data"), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            log.info("postgres.stopped", extra={"port": self.port})

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
