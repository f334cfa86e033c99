"""`cryptolake trade`: run a strategy against a venue (paper by default, live on request), kill and reset it."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import typer

from cli.backtest import _params
from cryptolake.errors import CryptolakeError

app = typer.Typer(help="Trade a strategy on a venue: paper (default) or live; kill switches; reset.",
                  no_args_is_help=True)


def _journal(account: str, store_url: str | None) -> Any:
    from trader.config import TraderSettings
    from trader.orders import OrderJournal
    from trader.store import TradeStore

    return OrderJournal(TradeStore(store_url or TraderSettings().resolved_store_url()), account)


@app.command("run")
def run(
    strategy: str = typer.Option(..., help="Strategy: a registered name, module:Class or path/to/file.py:Class"),
    symbols: str = typer.Option("BTC/USDT", help="Comma-separated symbols"),
    venue: str = typer.Option("binance", help="ccxt exchange id"),
    venue_name: str = typer.Option(None, help="The venue's name in our keys (bars, orders, stages; default: the "
                                   "ccxt id), e.g. the name the connectors publish its candles under"),
    timeframe: str = typer.Option("1h", help="Bar timeframe"),
    param: list[str] = typer.Option([], "--param", "-p", help="Strategy config field=value (JSON value); repeat"),
    live: bool = typer.Option(False, "--live/--paper", help="Live orders with the account's keys (default: paper)"),
    account: str = typer.Option("default", help="Account id: names the journal (state survives restarts)"),
    base_url: str = typer.Option(None, help="Point every API URL here (the local exchange)"),
    sandbox: bool = typer.Option(False, help="Use the venue's testnet"),
    cash: float = typer.Option(10_000.0, help="Paper: initial cash (live: the venue's balance)"),
    poll_interval: float = typer.Option(1.0, help="Seconds between loops (bars, fills, kill switches)"),
    bar_interval: float = typer.Option(None, help="Wall seconds per bar for the stale switch (default: timeframe)"),
    stale_bars: int = typer.Option(3, help="HALT after this many bar intervals without a bar"),
    max_reject_rate: float = typer.Option(None, help="HALT when this share of the last 20 orders was rejected"),
    max_venue_errors: int = typer.Option(5, help="HALT after this many venue errors in a row"),
    max_orders_per_minute: int = typer.Option(60, min=1, help="HALT when more orders than this were sent in a minute"),
    max_bars: int = typer.Option(None, help="Stop after this many traded bars"),
    cancel_on_stop: bool = typer.Option(False, help="Cancel open orders on shutdown (else they rest)"),
    unknown_orders: str = typer.Option("report", help="Venue orders the journal does not know: report|adopt|cancel"),
    metrics_port: int = typer.Option(None, help="Serve Prometheus /metrics on this port"),
    store_url: str = typer.Option(None, help="SQLAlchemy URL of the store (default: SQLite under the state dir)"),
    timeout_ms: int = typer.Option(10_000, help="Venue request timeout"),
    feed: str = typer.Option("rest", help="Live bars: rest (fetch_ohlcv polling) or ws (ccxt.pro watch_ohlcv)"),
    flatten_on_halt: bool = typer.Option(False, help="HALTED also closes every position at market"),
    risk: list[str] = typer.Option([], "--risk", help="RiskConfig field=value (JSON value), e.g. "
                                   "trailing_stop_pct=0.05, vol_target=0.5, loss_cooldown_bars=3; repeat"),
    with_alt: bool = typer.Option(True, "--with-alt/--no-alt", help="Give a selector the lake's gold.alt_features "
                                  "rows, re-read as the alt lane adds them (a row is used from when it was seen)"),
    alt_refresh: float = typer.Option(60.0, help="Seconds between reads of gold.alt_features (--with-alt)"),
    stages: bool = typer.Option(True, "--stages/--no-stages", help="Stamp each order sent on a bar as that bar's "
                                "order stage in ops.bar_stages (cryptolake status: bar close -> order)"),
    stamp_every: float = typer.Option(2.0, help="Seconds between appends of the order stage to ops.bar_stages"),
) -> None:
    """Run the trading node on a venue's live bars until SIGTERM / Ctrl-C (then exit 0, state persisted).

    Paper trading needs no keys (public market data, simulated fills). ``--live`` sends real orders and
    is refused unless the keys are set (CRYPTOLAKE__TRADER__API_KEY / _API_SECRET or key files).
    """
    from rich.console import Console

    from cryptolake.settings import get_settings
    from trader.config import TraderConfig, TraderSettings
    from trader.execution.ccxt_client import CcxtVenueConfig
    from trader.killswitch import KillSwitchConfig
    from trader.session import SessionConfig, TradingSession
    from trader.store import TradeStore

    console = Console(stderr=True)
    stop = threading.Event()  # first: a SIGTERM during start-up still ends in a clean, persisted stop
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        venue_cfg = CcxtVenueConfig(exchange_id=venue, venue_name=venue_name, base_url=base_url, sandbox=sandbox,
                                    timeout_ms=timeout_ms)
        if live and len(venue_cfg.credentials()) < 2:
            console.print(f"[red]--live refused:[/red] no API key and secret (set {venue_cfg.api_key_env} and "
                          f"{venue_cfg.secret_env}, or key files)")
            raise typer.Exit(2)
        trader = TraderConfig.model_validate({
            "exchange": venue_cfg.venue, "symbols": tuple(s.strip() for s in symbols.split(",") if s.strip()),
            "timeframe": timeframe, "initial_cash": cash, "strategies": ({"kind": strategy, **_params(param)},),
            "risk": _params(risk)})
        trader = _with_lake_alt(trader, with_alt, alt_refresh, console)
        kill = KillSwitchConfig(stale_bars=stale_bars, bar_interval_s=bar_interval, max_reject_rate=max_reject_rate,
                                max_consecutive_venue_errors=max_venue_errors, flatten_on_halt=flatten_on_halt,
                                max_orders_per_minute=max_orders_per_minute)
        session_cfg = SessionConfig.model_validate({
            "account_id": account, "mode": "live" if live else "paper", "venue": venue_cfg,
            "poll_interval_s": poll_interval, "kill": kill, "max_bars": max_bars, "cancel_on_stop": cancel_on_stop,
            "unknown_orders": unknown_orders, "metrics_port": metrics_port, "bar_feed": feed})
        sink = None
        if stages:
            from trader.stages import DeltaStages

            sink = DeltaStages(get_settings())
        session = TradingSession(trader, session_cfg, TradeStore(store_url or TraderSettings().resolved_store_url()),
                                 stages=sink, stamp_every_s=stamp_every)
    except (CryptolakeError, ValueError) as exc:
        console.print(f"[red]trade failed to start:[/red] {exc}")
        raise typer.Exit(1) from exc
    last: dict[str, Any] = {}

    def show(st: dict[str, Any]) -> None:
        if st != last:
            last.clear()
            last.update(st)
            console.print(f"[{st['state']}] bars={st['bars']} fills={st['fills']} open={st['open_orders']} "
                          f"equity={st['equity']:,.2f} {st['halt_reason']}", highlight=False)

    try:
        final = session.run(stop, status=show)
    except CryptolakeError as exc:
        console.print(f"[red]trade stopped on an error:[/red] {exc}")
        raise typer.Exit(1) from exc
    typer.echo(f"stopped: state={final['state']} bars={final['bars']} fills={final['fills']} "
               f"open_orders={final['open_orders']} equity={final['equity']}")
    sys.stdout.flush()


@app.command("signals")
def signals(
    strategy: str = typer.Option("mlsignal", help="Strategy trading the signals: a registered name or module:Class"),
    symbols: str = typer.Option("BTC/USDT", help="Comma-separated symbols"),
    exchange: str = typer.Option("binance", help="The venue name the connectors publish candles under"),
    timeframe: str = typer.Option("1m", help="Bar timeframe"),
    param: list[str] = typer.Option([], "--param", "-p", help="Strategy config field=value (JSON value); repeat"),
    model_version: str = typer.Option(None, help="Trade only this model's signals (default: every model's)"),
    cost_aware: bool = typer.Option(False, "--cost-aware/--given-thresholds", help="mlsignal: enter and exit at the "
                                    "thresholds the main job's trade task chooses for --model-version on its "
                                    "validation segment, net of the paper costs (cached per model)"),
    account: str = typer.Option("signals", help="Account id: names the run (one per start)"),
    cash: float = typer.Option(10_000.0, help="Initial cash of the paper account"),
    stamp_every: float = typer.Option(2.0, help="Seconds between appends of the order stage to ops.bar_stages"),
    metrics_port: int = typer.Option(None, help="Serve Prometheus /metrics on this port"),
    store_url: str = typer.Option(None, help="SQLAlchemy URL of the store (default: SQLite under the state dir)"),
) -> None:
    """Paper-trade the live ``signals`` topic (with ``market.ohlcv``) from now until SIGTERM / Ctrl-C.

    The Kafka-fed node (:func:`trader.live.run_live`): bars before the start only warm it up; each order
    sent in answer to a signal is stamped ``order`` in ``ops.bar_stages`` (``cryptolake status`` reports
    bar close -> order) and observed in ``/metrics``.
    """
    from datetime import UTC, datetime

    from cryptolake.settings import get_settings
    from trader.config import TraderConfig
    from trader.live import run_live
    from trader.stages import DeltaStages
    from trader.telemetry import TraderMetrics

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    settings = get_settings()
    start = datetime.now(UTC)
    metrics = TraderMetrics(account)
    try:
        names = tuple(s.strip() for s in symbols.split(",") if s.strip())
        params = _params(param)
        if cost_aware:
            params = {**params, **_cost_aware(strategy, params, exchange, names, timeframe, model_version, settings)}
        config = TraderConfig.model_validate({
            "exchange": exchange, "symbols": names, "timeframe": timeframe, "initial_cash": cash,
            "strategies": ({"kind": strategy, **params},)})
        stages = DeltaStages(settings)
        if metrics_port is not None:
            metrics.serve(metrics_port)
        result = run_live(config, settings=settings, run_id=f"{account}-{start:%Y%m%dT%H%M%S}", store_url=store_url,
                          start_time=start, model_version=model_version, stop_event=stop,
                          max_idle_s=float("inf"), stages=stages, stamp_every_s=stamp_every, metrics=metrics)
    except (CryptolakeError, ValueError) as exc:
        typer.echo(f"trade signals failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        metrics.close()
    typer.echo(f"stopped: fills={len(result.fills)} orders stamped={result.stats.get('order_stamps', 0)} "
               f"equity={result.metrics.get('final_equity', cash):,.2f}")
    sys.stdout.flush()


def _cost_aware(strategy: str, params: dict[str, Any], exchange: str, symbols: tuple[str, ...], timeframe: str,
                model_version: str | None, settings: Any) -> dict[str, Any]:
    """mlsignal's thresholds for ``model_version``: the ML member's of the selector the main job's trade task
    chooses for the model on its validation segment (:func:`pipeline.trading.selector_for`, cached per model and
    costs); ``enter_threshold = 1.0`` (do not trade) when the model may not trade."""
    from pipeline.trading import selector_for, trader_config

    if strategy != "mlsignal":
        raise ValueError(f"--cost-aware: thresholds are mlsignal's, not {strategy!r}'s")
    if model_version is None:
        raise ValueError("--cost-aware: the thresholds are chosen per model; give --model-version")
    given = sorted({"enter_threshold", "exit_threshold"} & set(params))
    if given:
        raise ValueError(f"--cost-aware chooses {', '.join(given)}: drop the --param")
    market = settings.market.model_copy(update={"exchange": exchange, "symbols": symbols, "timeframe": timeframe})
    scoped = settings.model_copy(update={"market": market})  # the registry and config of this market
    record = selector_for(trader_config(scoped), model_version, scoped).record()
    th = record.get("ml_thresholds")
    if th is None:
        typer.echo(f"thresholds: do not trade ({record['reasons'].get('ml', 'no ML thresholds chosen')})", err=True)
        return {"enter_threshold": 1.0, "exit_threshold": 0.5}
    typer.echo(f"thresholds: enter {th['enter']} exit {th['exit']} ({th['reason']})", err=True)
    return {"enter_threshold": th["enter"], "exit_threshold": th["exit"], "expected_edge_bps": th["net_bps_per_bar"]}


def _with_lake_alt(trader: Any, enabled: bool, refresh_s: float, console: Any) -> Any:
    """``trader`` with the lake's refreshing alt side input (:func:`trader.altdata.lake_alt_side_input`)."""
    from datetime import UTC, datetime

    from trader.altdata import lake_alt_side_input

    trader, side = lake_alt_side_input(trader, enabled=enabled, refresh_s=refresh_s, clock=lambda: datetime.now(UTC))
    side.log(f"trade-{trader.exchange}")
    console.print(f"alt data: {side.status} ({side.detail})", highlight=False)
    return trader


@app.command("kill")
def kill(account: str = typer.Option("default", help="Account id"),
         reason: str = typer.Option("operator", help="Why (stored with the halt)"),
         store_url: str = typer.Option(None, help="SQLAlchemy URL of the store")) -> None:
    """Manual kill switch: the running trader HALTs (open orders cancelled) and stays HALTED until reset."""
    _journal(account, store_url).put(kill=reason)
    typer.echo(f"kill requested for {account}: {reason}")


@app.command("reset")
def reset(account: str = typer.Option("default", help="Account id"),
          reason: str = typer.Option("operator", help="Why trading may resume"),
          store_url: str = typer.Option(None, help="SQLAlchemy URL of the store")) -> None:
    """Lift a HALT: the trader (running, or at its next start) is ACTIVE again."""
    j = _journal(account, store_url)
    risk = j.get("risk")
    if risk:
        j.put(risk={**risk, "state": "active"}, halt_reason="")
    j.put(reset=reason, kill=None)
    typer.echo(f"reset {account}: {reason}")


@app.command("status")
def status(account: str = typer.Option("default", help="Account id"),
           store_url: str = typer.Option(None, help="SQLAlchemy URL of the store")) -> None:
    """The stored state of an account: risk state, halt reason, open orders, fills adopted."""
    j = _journal(account, store_url)
    risk = j.get("risk") or {}
    typer.echo(f"state={risk.get('state', 'active')} halt_reason={j.get('halt_reason', '')!r} "
               f"open_orders={len(j.open_orders())} fills={len(j.fill_ids)} orders={len(j.orders)}")
