"""`cryptolake up | down | status | logs`: the whole living system as supervised processes.

``up`` starts the broker (:mod:`infra.broker`) while it prepares Airflow's metadata DB, then the supervisor
daemon (:mod:`infra.supervisor`) over the processes the system config (:mod:`cryptolake.system`) describes,
Airflow's four included (:mod:`infra.airflow_services`), with the StatsD bridge their metrics go through
(:mod:`infra.statsd_bridge`); ``down`` stops all of them and checks that no
process of ours, nor any process of their sessions, is left.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from cryptolake.settings import Settings, get_settings
from cryptolake.system import SystemConfig, load_system

CLI = (sys.executable, "-m", "cli.main")  # the same interpreter and code as this `cryptolake`
STATSD_BRIDGE = "statsd-bridge"  # Airflow's StatsD metrics -> Prometheus (infra/statsd_bridge.py)


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def build_specs(system: SystemConfig, settings: Settings, exchange_port: int, port: Any, *,
                statsd_port: int | None = None) -> list[Any]:
    """The supervised processes of ``system`` (``port()`` hands out free metrics ports); with ``statsd_port``,
    the StatsD bridge receiving Airflow's metrics there first (:func:`airflow_specs` points Airflow at it)."""
    from infra.supervisor import ProcessSpec

    specs: list[ProcessSpec] = []
    if statsd_port is not None:
        p = port()
        specs.append(ProcessSpec(STATSD_BRIDGE, (*CLI, "statsd-bridge", "--udp-port", str(statsd_port),
                                                 "--metrics-port", str(p)), metrics_port=p))
    base_url = f"http://127.0.0.1:{exchange_port}"
    r = system.replay
    tf_s = 60.0  # the local exchange replays the candle files' own interval; wall seconds at speed 1 = 1m
    if any(v.kind == "local" for v in system.venues):
        argv = [*CLI, "exchange", "serve", "--port", str(exchange_port), "--speed", str(r.speed),
                "--candle-step", str(tf_s), "--start-index", str(r.start_index)]
        for sym, path in r.candles.items():
            argv += ["--candles", f"{sym}={path}"]
        if r.drift_at is not None:
            argv += ["--drift-at", r.drift_at.isoformat(), "--drift-scale", str(r.drift_scale)]
        specs.append(ProcessSpec("exchange", tuple(argv), ready_url=f"{base_url}/admin/replay"))
    symbols = ",".join(system.symbols)
    for v in system.venues:
        url = base_url if v.kind == "local" else v.base_url
        for tf in system.timeframes:
            p = port()
            argv = [*CLI, "connect", "market", "--venue", v.name, "--exchange-id", v.exchange_id,
                    "--symbols", symbols, "--timeframe", tf, "--metrics-port", str(p)]
            argv += ["--base-url", url] if url else []
            argv += ["--trades"] if system.trades else []
            argv += ["--books"] if system.books else []
            specs.append(ProcessSpec(f"market-{v.name}-{tf}", tuple(argv), metrics_port=p))
    alt = [a for a in system.altdata if a.enabled]
    if alt and _has("ingest.altlive"):
        p = port()
        argv = [*CLI, "connect", "altdata", "--metrics-port", str(p)]
        for a in alt:
            argv += ["--source", a.source]
        argv += ["--poll-interval", str(min(a.poll_interval_s for a in alt))]
        specs.append(ProcessSpec("altdata", tuple(argv), metrics_port=p))
    if system.stream.enabled:
        specs.append(_stream_spec(system, settings, port()))
    hot = _hot_spec(system, settings, port) if system.stream.hot else None
    if hot is not None:
        specs.append(hot)
    if system.monitoring.monitor:
        p = port()
        specs.append(ProcessSpec("monitor", (*CLI, "monitor", "--metrics-port", str(p)), metrics_port=p))
    signals = _signals_spec(system, settings, port) if system.signals.enabled else None
    if signals is not None:
        specs.append(signals)
    local = next((v for v in system.venues if v.kind == "local"), system.venues[0])
    bar_s = tf_s / r.speed
    for s in system.strategies:
        p = port()
        argv = [*CLI, "trade", "run", "--paper", "--strategy", s.kind, "--symbols", symbols, "--venue",
                local.exchange_id, "--venue-name", local.name, "--timeframe", system.timeframes[0], "--account",
                s.account, "--cash", str(s.cash), "--feed", "ws", "--poll-interval", str(min(1.0, bar_s / 4)),
                "--bar-interval", str(bar_s), "--stale-bars", "30", "--max-orders-per-minute",
                str(max(60, int(60 * r.speed))), "--metrics-port", str(p)]
        argv += ["--base-url", base_url if local.kind == "local" else local.base_url]
        for k, val in s.params.items():
            import json

            argv += ["--param", f"{k}={json.dumps(val)}"]
        specs.append(ProcessSpec(f"trader-{s.account}", tuple(argv), metrics_port=p))
    return specs


LANDING_DAG = "market_landing"


def airflow_settings(system: SystemConfig, settings: Settings) -> Settings:
    """``settings`` with the system config's Airflow knobs (DAG refresh, landing and retraining intervals) applied."""
    af = settings.airflow.model_copy(update={"dag_refresh_s": system.airflow.dag_refresh_s,
                                             "landing_interval_s": system.airflow.landing_interval_s,
                                             "retrain_interval_s": system.airflow.retrain_interval_s,
                                             "retrain_clock": "landed"})
    return settings.model_copy(update={"airflow": af})


RETRAIN_LOOKBACK_DAYS = 7  # the least pipeline.train_lookback_days allows: 10,080 1m bars (the replay file: a month)
DRIFT_MIN_LIVE_ROWS = 100  # bars judged at the least per run (a run of the default 300 s at speed 60 holds 300)


def retrain_env(system: SystemConfig, interval_start: datetime) -> dict[str, str]:
    """The model_retraining DAG's settings under `up`: the streamed market (the first venue and timeframe, as
    :func:`stream_registry`), its short wall-clock intervals from ``interval_start`` on the landed clock, the
    training lookback and the drift check's row floor sized for 1-minute bars (never more rows than a run holds)."""
    import json

    bars_per_run = system.airflow.retrain_interval_s * system.replay.speed / 60.0 * len(system.symbols)
    return {"CRYPTOLAKE__MARKET__EXCHANGE": system.venues[0].name,
            "CRYPTOLAKE__MARKET__TIMEFRAME": system.timeframes[0],
            "CRYPTOLAKE__MARKET__SYMBOLS": json.dumps(list(system.symbols)),
            "CRYPTOLAKE__AIRFLOW__RETRAIN_INTERVAL_S": str(system.airflow.retrain_interval_s),
            "CRYPTOLAKE__AIRFLOW__RETRAIN_START": interval_start.isoformat(),
            "CRYPTOLAKE__AIRFLOW__RETRAIN_CLOCK": "landed",
            "CRYPTOLAKE__PIPELINE__TRAIN_LOOKBACK_DAYS": str(RETRAIN_LOOKBACK_DAYS),
            "CRYPTOLAKE__DRIFT__MIN_LIVE_ROWS": str(max(2, min(DRIFT_MIN_LIVE_ROWS, int(bars_per_run) // 2)))}


def landing_start(interval_s: int, now: float) -> datetime:
    """The start of the landing interval holding ``now`` (epoch-aligned, as Airflow's delta timetable is)."""
    return datetime.fromtimestamp(now - now % interval_s, tz=UTC)


def airflow_specs(system: SystemConfig, settings: Settings, now: float, statsd_port: int | None = None) -> list[Any]:
    """PostgreSQL, the API server, the scheduler and the DAG processor (:func:`infra.airflow_services.process_specs`).

    The DAG files and their tasks get the landing interval and this `up`'s first interval, so the
    scheduler runs (and catches up) every interval of ``market_landing`` from now on, and the
    streamed market's retraining settings (:func:`retrain_env`). With ``statsd_port``
    (the bridge :func:`build_specs` added), the Airflow processes send their metrics there and start
    once the bridge is ready.
    """
    from infra import airflow_services

    interval = system.airflow.landing_interval_s
    env = {"CRYPTOLAKE__AIRFLOW__LANDING_INTERVAL_S": str(interval),
           "CRYPTOLAKE__AIRFLOW__LANDING_START": landing_start(interval, now).isoformat(),
           **retrain_env(system, landing_start(system.airflow.retrain_interval_s, now))}
    if statsd_port is None:
        return airflow_services.process_specs(settings, env)
    return airflow_services.process_specs(settings, env, statsd_port=statsd_port, after=(STATSD_BRIDGE,))


def _airflow_wanted(system: SystemConfig) -> bool:
    """Whether `up` runs Airflow: the config's switch; ``auto`` = when installed. A required one missing exits 2."""
    from infra import airflow_services

    if system.airflow.enabled is False:
        return False
    reason = airflow_services.missing()
    if reason is None:
        return True
    if system.airflow.enabled is True:
        typer.echo(f"airflow    : required by the system config ([airflow] enabled = true) but {reason}", err=True)
        raise typer.Exit(2)
    typer.echo(f"airflow    : not available ({reason}); not started ([airflow] enabled = false hides this)",
               err=True)
    return False


def prometheus_spec(specs: list[Any], supervisor_port: int, system: SystemConfig, settings: Settings,
                    port: int) -> Any:
    """Prometheus scraping every process's /metrics and the supervisor's, with infra/monitoring's rules.

    None when the ``prometheus`` binary is missing (`infra/setup.sh` installs Debian's package).
    """
    from cryptolake.errors import InfrastructureError
    from infra import prometheus
    from infra.supervisor import ProcessSpec

    targets = {s.name: f"127.0.0.1:{s.metrics_port}" for s in specs if s.metrics_port}
    targets["supervisor"] = f"127.0.0.1:{supervisor_port}"
    try:
        config = prometheus.write_config(targets, settings, scrape_interval_s=system.monitoring.scrape_interval_s)
        argv = prometheus.argv(config, port, settings)
    except InfrastructureError:
        return None
    return ProcessSpec("prometheus", tuple(argv), metrics_port=port, ready_url=f"http://127.0.0.1:{port}/-/ready")


def stream_registry(system: SystemConfig, settings: Settings) -> Any:
    """The registry of the streamed market's models: the first venue and timeframe of the system."""
    from pipeline.training import market_registry

    market = settings.market.model_copy(update={"exchange": system.venues[0].name,
                                                "timeframe": system.timeframes[0]})
    return market_registry(settings.model_copy(update={"market": market}))


def champion_version(system: SystemConfig, settings: Settings) -> str | None:
    """The streamed market's champion (:func:`stream_registry`), None before training has promoted one: the one
    rule by which the scorer, the hot path and the signal trader start."""
    from cryptolake.errors import ModelNotFoundError

    try:
        return str(stream_registry(system, settings).champion().version)
    except ModelNotFoundError:
        return None


def _stream_spec(system: SystemConfig, settings: Settings, metrics_port: int) -> Any:
    """One Spark driver: land market.ohlcv, silver+gold at each bar close, and score with the champion if any.

    Without a champion for the market yet, the driver lands and computes features only (the scorer
    starts with the next `up` once training has promoted one). Ready once its queries run.
    """
    from cryptolake import topics
    from infra.supervisor import ProcessSpec

    common = ["--land", topics.MARKET_OHLCV, "--trigger-seconds", str(system.stream.trigger_seconds),
              "--metrics-port", str(metrics_port)]
    registry = stream_registry(system, settings)
    version = champion_version(system, settings) if system.stream.score else None
    if version is None:
        return ProcessSpec("stream", (*CLI, "stream", "features", *common), metrics_port=metrics_port)
    argv = (*CLI, "stream", "score", "--features", "--model-version", version, "--registry-dir",
            str(registry.root), *common)
    return ProcessSpec("stream", argv, metrics_port=metrics_port)


def _hot_spec(system: SystemConfig, settings: Settings, port: Any) -> Any:
    """`cryptolake stream hot` with the market's champion over the system's timeframes; None without a champion
    (nothing to score yet: it starts with the next `up` once training has promoted one)."""
    from infra.supervisor import ProcessSpec

    registry = stream_registry(system, settings)
    version = champion_version(system, settings)
    if version is None:
        return None
    p = port()
    argv = [*CLI, "stream", "hot", "--model-version", version, "--registry-dir", str(registry.root),
            "--metrics-port", str(p)]
    for tf in system.timeframes:
        argv += ["--timeframe", tf]
    return ProcessSpec("hot", tuple(argv), metrics_port=p)


def _signals_spec(system: SystemConfig, settings: Settings, port: Any) -> Any:
    """`cryptolake trade signals`: the paper trader of the champion's signals (the ML signal strategy at the
    cost-aware thresholds the main job's trade task chooses for the champion), on the streamed market; None
    without a champion or without a process publishing its signals (the scorer or the hot path)."""
    from infra.supervisor import ProcessSpec

    published = (system.stream.enabled and system.stream.score) or system.stream.hot
    version = champion_version(system, settings) if published else None
    if version is None:
        return None
    p = port()
    spec = system.signals
    argv = (*CLI, "trade", "signals", "--strategy", "mlsignal", "--cost-aware", "--model-version", version,
            "--exchange", system.venues[0].name, "--symbols", ",".join(system.symbols), "--timeframe",
            system.timeframes[0], "--account", spec.account, "--cash", str(spec.cash), "--metrics-port", str(p))
    return ProcessSpec(f"trader-{spec.account}", argv, metrics_port=p)


def up(
    config: Path = typer.Option(None, "--config", "-c", help="System config TOML (default: $CRYPTOLAKE_SYSTEM_FILE "
                                "or infra/system.toml); CRYPTOLAKE_SYSTEM__* variables override it"),
    wait: bool = typer.Option(True, help="Wait until every process is ready (progress shown)"),
) -> None:
    """Start the broker and every process of the system config under the supervisor (restarted when they die)."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from cryptolake.errors import CryptolakeError
    from infra import broker, supervisor
    from infra.broker import free_port
    from infra.statsd_bridge import free_udp_port

    settings = get_settings()
    try:
        system = load_system(config)
    except CryptolakeError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    if supervisor.daemon(settings) is not None:
        typer.echo("already up (`cryptolake status`; `cryptolake down` first to restart)", err=True)
        raise typer.Exit(1)
    af_settings = airflow_settings(system, settings) if _airflow_wanted(system) else None
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
                  "{task.total}"), TimeElapsedColumn(), transient=True) as progress:
        task = progress.add_task("kafka broker" + (" + airflow db" if af_settings else ""), total=None)
        prepared = _Prepared(af_settings) if af_settings else None  # beside the broker's start
        info = broker.start(settings)
        statsd_port = free_udp_port() if af_settings is not None else None
        specs = build_specs(system, settings, free_port(), free_port, statsd_port=statsd_port)
        if af_settings is not None and prepared is not None:
            prepared.join()
            if prepared.error is not None:
                typer.echo(f"airflow db : {prepared.error} (`cryptolake down` stops the broker)", err=True)
                raise typer.Exit(1)
            specs += airflow_specs(system, af_settings, time.time(), statsd_port)
        sup_port = free_port()
        prom = prometheus_spec(specs, sup_port, system, settings, free_port()) \
            if system.monitoring.prometheus else None
        if prom is not None:
            specs.append(prom)
        elif system.monitoring.prometheus:
            typer.echo("prometheus : not installed (infra/setup.sh installs Debian's package); not started", err=True)
        progress.update(task, description="supervisor", total=len(specs), completed=0)
        supervisor.start_daemon(specs, system.supervisor, settings, metrics_port=sup_port, watch_broker=True)
        deadline = time.monotonic() + system.supervisor.ready_timeout_s
        while wait:
            rows = (supervisor.read_state(settings) or {}).get("processes", {})
            ready = [n for n, r in rows.items() if r["ready"]]
            failed = [n for n, r in rows.items() if r["state"] == "failed"]
            waiting = sorted(set(rows) - set(ready) - set(failed))
            progress.update(task, completed=len(ready), description=f"waiting for {', '.join(waiting) or '-'}")
            if not waiting or time.monotonic() > deadline:
                break
            time.sleep(0.3)
    typer.echo(f"kafka      : {info.bootstrap} (pid {info.pid})")
    typer.echo(f"supervisor : http://127.0.0.1:{sup_port}/metrics")
    _print_status(settings)
    typer.echo(f"logs       : {supervisor.logs_dir(settings)}  (`cryptolake logs NAME --follow`)")
    rows = (supervisor.read_state(settings) or {}).get("processes", {})
    if wait and not all(r["ready"] for r in rows.values()):
        typer.echo("not every process is ready: see `cryptolake status` and `cryptolake logs NAME`", err=True)
        raise typer.Exit(1)


class _Prepared:
    """The metadata DB's creation and migration on a thread (it overlaps the broker's start)."""

    def __init__(self, settings: Settings) -> None:
        import threading

        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, args=(settings,), name="airflow-db", daemon=True)
        self._thread.start()

    def _run(self, settings: Settings) -> None:
        from infra import airflow_services

        try:
            airflow_services.prepare(settings)
        except Exception as exc:  # reported by `up`, which then stops
            self.error = f"{type(exc).__name__}: {exc}"

    def join(self) -> None:
        self._thread.join()


def down(keep_broker: bool = typer.Option(False, help="Leave the Kafka broker running")) -> None:
    """Stop every supervised process and the broker; fail if any process of ours is left."""
    from infra import broker, supervisor
    from infra.processes import alive, session_members

    settings = get_settings()
    try:
        policy = load_system().supervisor
    except Exception as exc:  # a broken config file must never keep `down` from stopping things
        from cryptolake.system import SupervisorSpec

        typer.echo(f"system config unreadable ({exc}); stopping with the default stop policy", err=True)
        policy = SupervisorSpec()
    state = supervisor.read_state(settings) or {}
    ended = supervisor.stop_daemon(settings, policy)
    typer.echo(f"supervised : stopped {len(ended)} process(es)")
    if not keep_broker:
        typer.echo(f"kafka      : {'stopped' if broker.stop(settings) else 'was not running'}")
    leaders = [int(r["pid"]) for r in state.get("processes", {}).values() if r.get("pid")]
    left = [p for p in leaders if alive(p)]
    # every descendant of a supervised process (PostgreSQL's backends, the LocalExecutor's task processes)
    # stays in that process's session
    left += [p for sid in leaders for p in session_members(sid)]
    left += [t.pid for t in supervisor.supervised_pids(settings)]
    if supervisor.daemon(settings) is not None:
        left.append(supervisor.daemon(settings).pid)  # type: ignore[union-attr]
    if not keep_broker:
        left += broker.broker_java_pids(settings)
    if left:
        typer.echo(f"still running: pids {sorted(set(left))}", err=True)
        raise typer.Exit(1)
    typer.echo("no process of ours left")


def _latency_lines(settings: Settings) -> list[str]:
    """Bar close -> signal (the Spark chain), -> hot_signal (the hot path) and -> order (an order sent in answer to
    the bar's signal), p50/p99, with their hops."""
    from pipeline.latency import bar_latency

    try:
        report = bar_latency(settings)
    except Exception as exc:  # the latency report is optional; its failure is shown, not fatal
        return [f"latency    : unavailable ({type(exc).__name__}: {exc})"]
    e2e, hot, order = report.end_to_end, report.hot, report.order
    if e2e is None and hot is None and order is None:
        return [f"latency    : no bar has reached a signal yet ({report.bars} bars stamped)"]
    lines = []
    if e2e is not None:
        lines.append(f"latency    : bar close -> signal p50 {e2e.p50:.2f} s, p99 {e2e.p99:.2f} s over {e2e.bars} bars")
    if hot is not None:
        lines.append(f"hot path   : bar close -> hot_signal p50 {hot.p50:.2f} s, p99 {hot.p99:.2f} s over "
                     f"{hot.bars} bars")
    if order is not None:
        lines.append(f"trader     : bar close -> order p50 {order.p50:.2f} s, p99 {order.p99:.2f} s over "
                     f"{order.bars} bars")
    hops = ", ".join(f"{k} p50 {v.p50:.2f} s p99 {v.p99:.2f} s" for k, v in report.hops.items())
    return [*lines, *([f"  hops     : {hops}"] if hops else [])]


def _airflow_lines(settings: Settings, limit: int = 5) -> list[str]:
    """The API server's URL and the newest runs of the landing DAG (the API server answers them)."""
    from infra import airflow_services

    url = f"http://127.0.0.1:{airflow_services.api_port(settings)}"
    try:
        runs = airflow_services.last_runs(settings, LANDING_DAG, limit)
    except Exception as exc:  # the API server may still be starting; shown, not fatal
        return [f"airflow    : {url} (runs unavailable: {exc})"]
    lines = [f"airflow    : {url}  last {len(runs)} run(s) of {LANDING_DAG}, newest first"]
    for r in runs:
        lines.append(f"  {r['run_type'] or '-':<10}{r['state'] or '-':<9}{r['data_interval_start'] or '-'} -> "
                     f"{r['data_interval_end'] or '-'}")
    return lines


def _print_status(settings: Settings) -> bool:
    from infra import supervisor

    state = supervisor.read_state(settings)
    if state is None or supervisor.daemon(settings) is None:
        typer.echo("supervisor : down")
        return False
    now = time.time()
    typer.echo(f"{'process':<24}{'state':<10}{'ready':<7}{'pid':>8}{'uptime':>10}{'restarts':>10}  metrics")
    for name, r in state["processes"].items():
        up_s = f"{now - r['started_at']:.0f}s" if r["pid"] else "-"
        url = f"http://127.0.0.1:{r['metrics_port']}/metrics" if r.get("metrics_port") else "-"
        typer.echo(f"{name:<24}{r['state']:<10}{'yes' if r['ready'] else 'no':<7}{r['pid'] or '-':>8}{up_s:>10}"
                   f"{r['restarts']:>10}  {url}")
    watch = state.get("broker")
    if watch:
        typer.echo(f"{'kafka broker':<24}{'running' if watch['up'] else 'down':<10}{'':<7}{'':>8}{'':>10}"
                   f"{watch['restarts']:>10}  {watch['bootstrap'] or '-'}")
    if "airflow-api-server" in state["processes"]:
        for line in _airflow_lines(settings):
            typer.echo(line)
    for line in _latency_lines(settings):
        typer.echo(line)
    return True


def status() -> None:
    """Each supervised process: state, readiness, pid, uptime, restarts, metrics URL; the broker; Airflow's last
    runs; bar latency."""
    from infra import broker

    settings = get_settings()
    info = broker.status(settings)
    typer.echo(f"kafka      : {info.bootstrap + f' (pid {info.pid})' if info else 'down'}")
    typer.echo(f"at         : {datetime.now(tz=UTC).isoformat(timespec='seconds')}")
    if not _print_status(settings):
        raise typer.Exit(3)


def logs(
    name: str = typer.Argument(None, help="Process name (see `cryptolake status`); empty = list the log files"),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines (Ctrl-C to stop)"),
    lines: int = typer.Option(40, "--lines", "-n", min=0, help="Lines of the end to print first"),
) -> None:
    """Print a supervised process's log (``<state_dir>/logs/NAME.log``)."""
    from infra import supervisor

    folder = supervisor.logs_dir(get_settings())
    if not name:
        for path in sorted(folder.glob("*.log")):
            typer.echo(f"{path.stem:<24}{path.stat().st_size:>12,} bytes  {path}")
        return
    path = folder / f"{name}.log"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.log"))) or "none"
        raise typer.BadParameter(f"no log for {name!r} in {folder} (known: {known})")
    with path.open("r", errors="replace") as fh:
        tail = fh.readlines()[-lines:] if lines else []
        typer.echo("".join(tail), nl=False)
        while follow:
            line = fh.readline()
            if line:
                typer.echo(line, nl=False)
            else:
                time.sleep(0.3)
