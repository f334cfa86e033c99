"""`cryptolake stack`: bring the local lakehouse stack up and down (jars, Kafka broker, Airflow DB)."""

from __future__ import annotations

import typer

from cryptolake.settings import Settings, get_settings

app = typer.Typer(help="Local stack: JVM jars, the Kafka KRaft broker and the Airflow metadata DB "
                  "(with --cluster: Spark standalone, three brokers, an S3 store and Dask).",
                  no_args_is_help=True)


def _status_lines(settings: Settings) -> list[str]:
    from infra import broker, processes
    from infra.airflow_home import db_path, is_migrated

    info = broker.status(settings)
    lines = [
        f"kafka   : {'up ' + info.bootstrap + f' (pid {info.pid})' if info else 'down'}",
        f"airflow : {'migrated' if is_migrated(settings) else 'not migrated'} ({db_path(settings)})",
        f"lake    : {settings.paths.lake()}",
    ]
    spark = [t.pid for t in processes.registered(settings) if t.kind == "spark"]
    lines.append(f"spark   : {len(spark)} registered driver JVM(s) {spark if spark else ''}".rstrip())
    from infra import cluster

    return lines + cluster.status_lines(settings)


@app.command("jars")
def jars(force: bool = typer.Option(False, help="Resolve again even if already complete")) -> None:
    """Resolve the Spark and Kafka jars from Maven Central into the jars folder (idempotent)."""
    from cryptolake.jvm import jar_dir
    from infra.jars import GROUPS, resolve

    settings = get_settings()
    for group in GROUPS:
        found = resolve(group, settings, force=force)
        typer.echo(f"{group}: {len(found)} jars in {jar_dir(group, settings)}")


@app.command("up")
def up(
    airflow: bool = typer.Option(True, help="Also migrate the Airflow metadata DB"),
    cluster: bool = typer.Option(
        False, "--cluster",
        help="Also start the local cluster: Spark standalone (master + workers), a 3-broker Kafka cluster, an "
        "S3 store (moto) and Dask (scheduler + workers); prints the settings that use it",
    ),
) -> None:
    """Resolve jars if missing, start the Kafka broker, migrate the Airflow DB, print the status."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from infra import airflow_home, broker
    from infra import cluster as local_cluster
    from infra.jars import GROUPS, resolve

    settings = get_settings()
    steps = len(GROUPS) + 1 + int(airflow) + int(cluster)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), transient=True) as progress:
        task = progress.add_task("stack up", total=steps)
        for group in GROUPS:
            progress.update(task, description=f"jars: {group}")
            resolve(group, settings)
            progress.advance(task)
        progress.update(task, description="kafka broker")
        broker.start(settings)
        progress.advance(task)
        if airflow:
            progress.update(task, description="airflow db migrate (first time: ~1 min)")
            airflow_home.migrate(settings)
            progress.advance(task)
        if cluster:
            progress.update(task, description="cluster: object store, 3 brokers, Spark standalone, Dask (~1-2 min)")
            running = local_cluster.up(settings)
            progress.advance(task)
    for line in _status_lines(settings):
        typer.echo(line)
    if cluster:
        env_file = settings.paths.state_dir / "cluster.env"
        typer.echo(f"\nrun cryptolake on the cluster with these settings (`source {env_file}`):")
        for key, value in local_cluster.cluster_env(running, settings).items():
            typer.echo(f"  {key}={value}")


@app.command("down")
def down() -> None:
    """Stop the local cluster (if up), the Kafka broker and any Spark JVM cryptolake registered; verify none remain."""
    from infra import broker, cluster, processes

    settings = get_settings()
    daemons = cluster.down(settings)
    typer.echo("cluster : stopped " + ", ".join(f"{n} {k} process(es)" for k, n in daemons.items()))
    stopped = broker.stop(settings)
    typer.echo(f"kafka   : {'stopped' if stopped else 'was not running'}")
    ended = processes.stop_registered(settings, kind="spark")
    typer.echo(f"spark   : stopped {len(ended)} registered driver JVM(s)")
    left = broker.broker_java_pids(settings) + [t.pid for t in processes.registered(settings)]
    if left:
        typer.echo(f"still running: pids {left}", err=True)
        raise typer.Exit(1)
    typer.echo("no cryptolake JVM left")


@app.command("status")
def status() -> None:
    """Show whether the broker is up, the Airflow DB is migrated and where the lake is."""
    for line in _status_lines(get_settings()):
        typer.echo(line)
