"""`cryptolake connect`: the long-running connectors (market data over ccxt.pro; alternative data) into Kafka.

Each runs until SIGTERM/SIGINT, then flushes its producer and exits 0; SIGKILL is safe (the market
connector resumes after the topic's high-water marks). ``--metrics-port`` serves ``/metrics``.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import typer

app = typer.Typer(help="Long-running connectors publishing to Kafka (run by `cryptolake up`).", no_args_is_help=True)


class ProducerMetrics:
    """``cryptolake_producer_*`` and ``cryptolake_connector_*`` series of one connector process."""

    def __init__(self, connector: str) -> None:
        from prometheus_client import CollectorRegistry, Gauge

        self.registry = CollectorRegistry()
        r, c = self.registry, connector
        self.sent = Gauge("cryptolake_producer_messages_sent", "Records handed to the producer, by topic",
                          ["connector", "topic"], registry=r)
        self.errors = Gauge("cryptolake_producer_errors", "Dead-lettered or undelivered records, by topic",
                            ["connector", "topic"], registry=r)
        self.buffered = Gauge("cryptolake_producer_buffered", "Records queued locally, not yet acknowledged",
                              ["connector"], registry=r).labels(c)
        self.drops = Gauge("cryptolake_connector_ws_drops", "Dropped websocket connections", ["connector"],
                           registry=r).labels(c)
        self.last_open = Gauge("cryptolake_connector_last_candle_open_seconds", "Open time of the last candle sent",
                               ["connector", "symbol"], registry=r)
        self.connector = c

    def update(self, producer: Any, counters: Any = None) -> None:
        for topic, n in producer.stats.sent.items():
            self.sent.labels(self.connector, topic).set(n)
        for topic, n in producer.stats.dead_lettered.items():
            self.errors.labels(self.connector, topic).set(n)
        for topic in producer.failed:
            self.errors.labels(self.connector, topic).inc()
        self.buffered.set(producer.buffered())
        if counters is not None:
            self.drops.set(counters.ws_drops)
            for sym, t in counters.last_open.items():
                self.last_open.labels(self.connector, sym).set(t / 1000)


def _stop_event(loop: asyncio.AbstractEventLoop) -> asyncio.Event:
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


@app.command("market")
def market(
    base_url: str = typer.Option(None, help="Point every API URL here (the local exchange's URL); empty = real venue"),
    exchange_id: str = typer.Option("binance", help="ccxt exchange id"),
    venue: str = typer.Option("localex", help="Venue name written into the records"),
    symbols: str = typer.Option("BTC/USDT", help="Comma-separated symbols"),
    timeframe: str = typer.Option("1m", help="Candle timeframe"),
    lookback_bars: int = typer.Option(1000, min=1, help="With nothing published yet: start this many bars back"),
    trades: bool = typer.Option(False, help="Also stream trades to market.trades (venues with a trade feed)"),
    books: bool = typer.Option(False, help="Also stream order-book metrics to market.book"),
    metrics_port: int = typer.Option(None, help="Serve Prometheus /metrics on this port"),
    message_timeout_s: float = typer.Option(1800.0, help="How long a record may wait for the broker before the "
                                            "process exits non-zero (and resumes from Kafka on restart)"),
) -> None:
    """Publish every CLOSED candle (once) to market.ohlcv from ccxt.pro watch_ohlcv, REST filling every gap."""
    from cryptolake import topics
    from cryptolake.bus import Producer, ensure_topics
    from cryptolake.errors import CryptolakeError
    from cryptolake.logs import get_logger
    from cryptolake.metrics import MetricsServer
    from cryptolake.settings import get_settings
    from ingest.exchange.connector import VenueConfig
    from ingest.exchange.live import OhlcvStream
    from ingest.exchange.streams import BookStream
    from ingest.published import high_water_marks

    log = get_logger("cli.connect")
    settings = get_settings()
    try:
        config = VenueConfig(exchange_id=exchange_id, venue_name=venue, timeframe=timeframe, base_url=base_url,
                             symbols=tuple(s.strip() for s in symbols.split(",") if s.strip()))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    wanted = [topics.MARKET_OHLCV, *([topics.MARKET_TRADES] if trades else []),
              *([topics.MARKET_BOOK] if books else [])]
    metrics = ProducerMetrics("market")
    server = MetricsServer(metrics.registry)

    async def main() -> None:
        from ingest.exchange.connector import TradeStream

        stop = _stop_event(asyncio.get_running_loop())
        ensure_topics(wanted, settings)
        marks = await asyncio.to_thread(high_water_marks, topics.MARKET_OHLCV, settings)
        with Producer(settings, client_id="cryptolake-connect-market",
                      message_timeout_ms=int(message_timeout_s * 1000)) as producer:
            stream = OhlcvStream(config, producer, resume_after=marks, lookback_bars=lookback_bars)
            if metrics_port is not None:
                server.start(metrics_port)  # /metrics answering = running (the supervisor's readiness check)
            log.info("connect.market.start", extra={"venue": venue, "symbols": list(config.symbols),
                                                    "timeframe": timeframe,
                                                    "resume_after": {s: stream.last[s] for s in config.symbols}})
            jobs = [asyncio.create_task(stream.run(stop))]
            for sym in config.symbols:
                if trades:
                    jobs.append(asyncio.create_task(TradeStream(config, sym, producer.send_message).run(stop)))
                if books:
                    jobs.append(asyncio.create_task(BookStream(config, sym, producer.send_message).run(stop)))
            try:
                while not stop.is_set():
                    producer.poll(0)
                    metrics.update(producer, stream.counters)
                    if producer.failed:
                        raise CryptolakeError(f"records not delivered: {producer.failed}")
                    for job in jobs:
                        if job.done() and job.exception() is not None:
                            raise job.exception()  # type: ignore[misc]
                    await asyncio.sleep(0.2)
            finally:
                stop.set()
                await asyncio.gather(*jobs, return_exceptions=True)
                await stream.exchange.close()
                metrics.update(producer, stream.counters)
            log.info("connect.market.stop", extra={"published": stream.counters.published,
                                                   "rest_fills": stream.counters.rest_fills,
                                                   "ws_drops": stream.counters.ws_drops})

    try:
        asyncio.run(main())
    except CryptolakeError as exc:
        typer.echo(f"connect market stopped on an error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        server.close()


@app.command("altdata")
def altdata(
    source: list[str] = typer.Option(["news"], help="Sources to poll (news)"),
    poll_interval: float = typer.Option(5.0, min=0.05, help="Seconds between polls"),
    batch: int = typer.Option(20, min=1, help="Local replay: real headlines that become new at each poll"),
    metrics_port: int = typer.Option(None, help="Serve Prometheus /metrics on this port"),
) -> None:
    """Poll alternative-data sources and publish each new record once: the local replay server of the real
    headlines by default, the real NewsAPI when NEWSAPI_API_KEY is set."""
    import os
    import secrets
    import threading

    from cryptolake import topics
    from cryptolake.bus import Producer, ensure_topics
    from cryptolake.metrics import MetricsServer
    from cryptolake.retry import RetryPolicy
    from cryptolake.settings import get_settings
    from cryptolake.system import shared_data_root
    from ingest.altlive import NewsReplay, PollingPublisher, replay_articles, window
    from ingest.connectors.base import utc_now
    from ingest.news.newsapi import NewsApiConnector
    from ingest.published import high_water_marks
    from ingest.testing_servers import apis
    from ingest.testing_servers.server import LocalServer

    unknown = sorted(set(source) - {"news"})
    if unknown:
        raise typer.BadParameter(f"--source {unknown[0]!r}: only news is a long-running connector so far")
    settings = get_settings()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    ensure_topics([topics.NEWS_ARTICLES], settings)
    seen = set(high_water_marks(topics.NEWS_ARTICLES, settings))
    real_key = os.environ.get("NEWSAPI_API_KEY")
    replay: NewsReplay | None = None
    server: LocalServer | None = None
    if real_key:
        base_url, key = "https://newsapi.org", real_key
    else:
        from ingest.news.newsapi import url_id

        # A restart resumes the news flow after what news.articles already holds.
        replay = NewsReplay([a for a in replay_articles(shared_data_root())
                             if f"newsapi:{url_id(a['url'])}" not in seen])
        key = secrets.token_hex(8)
        server = LocalServer(apis.newsapi_app(replay.visible, key, apis.ApiState(rate_limit_first=0))).start()
        base_url = server.url

    def make() -> NewsApiConnector:
        since, until = window(utc_now())
        return NewsApiConnector("bitcoin", since, until, base_url=base_url, api_key=key, max_pages=5,
                                policy=RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=10.0))

    metrics = ProducerMetrics("altdata")
    mserver = MetricsServer(metrics.registry)
    try:
        with Producer(settings, client_id="cryptolake-connect-altdata") as producer:
            pub = PollingPublisher(make, producer, seen)
            if metrics_port is not None:
                mserver.start(metrics_port)
            while not stop.is_set():
                if replay is not None:
                    replay.release(batch)
                pub.poll()
                producer.poll(0)
                metrics.update(producer)
                stop.wait(poll_interval)
            producer.flush()
            metrics.update(producer)
    finally:
        mserver.close()
        if server is not None:
            server.stop()
