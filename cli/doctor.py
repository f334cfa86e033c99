"""`cryptolake doctor`: check every component of the local stack and say how to fix what fails.

Each check is a plain function ``(settings) -> Check`` so tests call them directly; the command
prints a table and exits 1 if any check fails.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import typer

from cryptolake.errors import CryptolakeError
from cryptolake.settings import Settings, get_settings


@dataclass(frozen=True)
class Check:
    """One check's outcome; ``fix`` says what to run when it failed."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def java_major(version_output: str) -> int | None:
    """Major Java version from ``java -version`` output (``17.0.15`` -> 17, ``1.8.0`` -> 8)."""
    m = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def check_java(settings: Settings) -> Check:
    """Java >= 17 on PATH (Spark 4 and Kafka 4 need it)."""
    fix = "install a JDK >= 17 (apt-get install openjdk-17-jdk-headless) and put `java` on PATH"
    if shutil.which("java") is None:
        return Check("java", False, "java not found on PATH", fix)
    proc = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False, timeout=60)
    major = java_major(proc.stderr + proc.stdout)
    if major is None or major < 17:
        return Check("java", False, f"unsupported java: {(proc.stderr or proc.stdout).splitlines()[:1]}", fix)
    return Check("java", True, f"java {major}")


def check_jars(settings: Settings) -> Check:
    """The Spark (Delta, Kafka source) and Kafka broker jars resolved by infra/pom.xml."""
    from cryptolake.jvm import jar_files

    fix = "cryptolake stack jars"
    needed = {"spark": ("delta-spark_", "spark-sql-kafka-0-10_"), "kafka": ("kafka_2.13-", "kafka-clients-")}
    counts: list[str] = []
    for group, prefixes in needed.items():
        try:
            names = [p.name for p in jar_files(group, settings)]
        except CryptolakeError as exc:
            return Check("jars", False, str(exc), fix)
        missing = [p for p in prefixes if not any(n.startswith(p) for n in names)]
        if missing:
            return Check("jars", False, f"{group} jars lack {missing}", fix)
        counts.append(f"{group}: {len(names)}")
    return Check("jars", True, ", ".join(counts))


def check_broker(settings: Settings) -> Check:
    """The local Kafka broker is running and answers a metadata request (or configured servers answer)."""
    from infra import broker

    fix = "cryptolake stack up"
    if settings.kafka.bootstrap_servers:
        ok = broker.answers_metadata(settings.kafka.bootstrap_servers)
        detail = f"{settings.kafka.bootstrap_servers} {'answers' if ok else 'does not answer'}"
        return Check("kafka broker", ok, detail, "" if ok else "check CRYPTOLAKE__KAFKA__BOOTSTRAP_SERVERS")
    info = broker.status(settings)
    if info is None:
        return Check("kafka broker", False, "the local broker is not running", fix)
    return Check("kafka broker", True, f"{info.bootstrap} (pid {info.pid})")


def check_spark_delta(settings: Settings) -> Check:
    """Spark with Delta can write and read a tiny table (in a temporary folder)."""
    fix = "cryptolake stack jars; check java and CRYPTOLAKE__SPARK__* settings"
    try:
        from spark_jobs.session import get_spark

        spark = get_spark(settings)
        with tempfile.TemporaryDirectory(prefix="cryptolake-doctor-") as tmp:
            path = str(Path(tmp) / "t")
            spark.range(5).write.format("delta").save(path)
            n = spark.read.format("delta").load(path).count()
    except Exception as exc:  # report any Spark/py4j failure as a failed check
        return Check("spark + delta", False, f"{type(exc).__name__}: {str(exc)[:300]}", fix)
    if n != 5:
        return Check("spark + delta", False, f"read back {n} rows, expected 5", fix)
    return Check("spark + delta", True, f"{spark.version}, wrote and read 5 rows")


def check_airflow_db(settings: Settings) -> Check:
    """The Airflow metadata DB exists and is migrated at the installed Airflow version."""
    import sqlite3

    from infra.airflow_home import db_path, is_migrated

    fix = "cryptolake stack up"
    path = db_path(settings)
    if not is_migrated(settings):
        return Check("airflow db", False, f"not migrated ({path})", fix)
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
            row = con.execute("select version_num from alembic_version").fetchone()
    except sqlite3.Error as exc:
        return Check("airflow db", False, f"{path}: {exc}", fix)
    return Check("airflow db", True, f"{path.name} at revision {row[0] if row else '?'}")


def check_duckdb_delta(settings: Settings) -> Check:
    """DuckDB reads a tiny Delta table through the delta extension."""
    fix = "uv sync (duckdb and duckdb-extension-delta must have the same version)"
    try:
        import pyarrow as pa
        from deltalake import write_deltalake

        from cryptolake import duck

        with tempfile.TemporaryDirectory(prefix="cryptolake-doctor-") as tmp:
            write_deltalake(tmp, pa.table({"x": [1, 2, 3]}))
            con = duck.connect(settings, views=False)
            row = con.execute(f"select sum(x) from delta_scan('{tmp}')").fetchone()
            con.close()
    except Exception as exc:  # report any failure as a failed check
        return Check("duckdb + delta", False, f"{type(exc).__name__}: {str(exc)[:300]}", fix)
    if row is None or row[0] != 6:
        return Check("duckdb + delta", False, f"sum read back {row}, expected 6", fix)
    return Check("duckdb + delta", True, "delta_scan ok")


def check_torch(settings: Settings) -> Check:
    """torch imports and multiplies two small tensors correctly."""
    try:
        import torch

        value = float((torch.tensor([[1.0, 2.0]]) @ torch.tensor([[3.0], [4.0]])).item())
    except Exception as exc:  # report any failure as a failed check
        return Check("torch", False, f"{type(exc).__name__}: {exc}", "uv sync")
    if value != 11.0:
        return Check("torch", False, f"matmul gave {value}, expected 11", "uv sync")
    return Check("torch", True, f"torch {torch.__version__}")


CHECKS: dict[str, Callable[[Settings], Check]] = {
    "java": check_java,
    "jars": check_jars,
    "broker": check_broker,
    "spark": check_spark_delta,
    "airflow": check_airflow_db,
    "duckdb": check_duckdb_delta,
    "torch": check_torch,
}


def run_checks(settings: Settings | None = None, skip: tuple[str, ...] = ()) -> list[Check]:
    """Run every check not in ``skip`` (names are the keys of :data:`CHECKS`)."""
    settings = settings or get_settings()
    unknown = set(skip) - set(CHECKS)
    if unknown:
        raise typer.BadParameter(f"unknown check(s) {sorted(unknown)}; choose from {sorted(CHECKS)}")
    return [fn(settings) for name, fn in CHECKS.items() if name not in skip]


def print_checks(checks: list[Check]) -> None:
    """A rich table: check, pass/fail, detail, fix."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="cryptolake doctor")
    for col in ("check", "status", "detail", "fix"):
        table.add_column(col)
    for c in checks:
        table.add_row(c.name, "[green]pass[/]" if c.ok else "[red]FAIL[/]", c.detail, c.fix)
    Console(width=160).print(table)


def doctor(
    skip: list[str] = typer.Option([], "--skip", help=f"Checks to skip, any of: {', '.join(CHECKS)}"),
) -> None:
    """Check Java, jars, the Kafka broker, Spark+Delta, the Airflow DB, DuckDB+Delta and torch."""
    checks = run_checks(get_settings(), tuple(skip))
    if any(c.name == "spark + delta" for c in checks):
        from spark_jobs.session import stop_spark

        stop_spark()
    print_checks(checks)
    failed = [c for c in checks if not c.ok]
    if failed:
        typer.echo(f"{len(failed)} check(s) failed: {', '.join(c.name for c in failed)}")
        raise typer.Exit(1)
