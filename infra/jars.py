"""Resolve cryptolake's JVM dependencies from Maven Central with ``infra/pom.xml``.

Three groups land in ``<jars_dir>/spark`` (Delta + Spark's Kafka source, for ``spark.jars``),
``<jars_dir>/kafka`` (the KRaft broker) and ``<jars_dir>/s3`` (hadoop-aws and its AWS SDK bundle,
for ``s3a://`` lakes). Jars that pyspark already ships are not copied into the spark or s3
groups, so nothing on Spark's class path shadows Spark's own classes.
Run at set-up time only; nothing downloads at run time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from cryptolake.errors import InfrastructureError
from cryptolake.jvm import jar_dir
from cryptolake.logs import get_logger
from cryptolake.settings import Settings

POM = Path(__file__).with_name("pom.xml")
GROUPS = ("spark", "kafka", "s3")
_VERSION_SUFFIX = re.compile(r"-\d[\w.\-]*\.jar$")
log = get_logger(__name__)


def artifact_name(jar: str) -> str:
    """``delta-spark_4.2_2.13-4.4.0.jar`` -> ``delta-spark_4.2_2.13``."""
    return _VERSION_SUFFIX.sub("", jar)


def pyspark_jar_names() -> set[str]:
    """Artifact names of the jars bundled with the installed pyspark."""
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    return {artifact_name(p.name) for p in jars.glob("*.jar")}


def resolve(group: str, settings: Settings | None = None, *, force: bool = False) -> list[Path]:
    """Copy a group's jars from Maven Central (or ~/.m2) into its folder; idempotent."""
    folder = jar_dir(group, settings)
    marker = folder / ".complete"
    if marker.exists() and not force and marker.read_text() == POM.read_text():
        return sorted(folder.glob("*.jar"))
    if shutil.which("mvn") is None:
        raise InfrastructureError("Maven (`mvn`) is not on PATH; install it (apt-get install maven)")
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [
        "mvn", "-q", "-B", "-f", str(POM), f"-P{group}", "dependency:copy-dependencies",
        f"-DoutputDirectory={tmp}", "-DincludeScope=runtime",
    ]
    log.info("jars.resolve", extra={"group": group, "cmd": " ".join(cmd)})
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise InfrastructureError(f"mvn failed resolving the {group} jars:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    if group in ("spark", "s3"):
        bundled = pyspark_jar_names()
        for jar in tmp.glob("*.jar"):
            if artifact_name(jar.name) in bundled:
                jar.unlink()
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    marker.write_text(POM.read_text())
    jars = sorted(folder.glob("*.jar"))
    log.info("jars.resolved", extra={"group": group, "count": len(jars)})
    return jars


def main() -> None:
    """``python -m infra.jars [--force]``: resolve every group."""
    force = "--force" in sys.argv
    for group in GROUPS:
        jars = resolve(group, force=force)
        print(f"{group}: {len(jars)} jars in {jar_dir(group)}")


if __name__ == "__main__":
    main()
