"""`cryptolake connect`: the long-running connectors (market data over ccxt.pro; alternative data) into Kafka.

Each runs until SIGTERM/SIGINT, then flushes its producer and exits 0; SIGKILL is safe (the market
connector resumes after the topic's high-water marks). ``--metrics-port`` serves ``/metrics``.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from contextlib import ExitStack

    from cryptolake.settings import Settings
    from ingest.connectors.base import Connector

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
    source: list[str] = typer.Option(["news"], help="Sources to poll (news, reddit, chain, x, telegram, discord, "
                                     "evm)"),
    poll_interval: float = typer.Option(5.0, min=0.05, help="Seconds between polls"),
    batch: int = typer.Option(20, min=1, help="Local replay: real records (headlines, posts, days) new at each poll"),
    metrics_port: int = typer.Option(None, help="Serve Prometheus /metrics on this port"),
) -> None:
    """Poll alternative-data sources and publish each new record once: local replay servers of the real shared
    data by default, the real APIs when their keys are set (NEWSAPI_API_KEY; REDDIT_CLIENT_ID and
    REDDIT_CLIENT_SECRET; ETHERSCAN_API_KEY; X_BEARER_TOKEN; TELEGRAM_BOT_TOKEN; DISCORD_BOT_TOKEN and
    DISCORD_CHANNEL_IDS; EVM_RPC_URL_ETHEREUM). Chain is the explorer's daily figures (a poll per closed day); evm the
    node's new blocks and transfers. Telegram and Discord replay SUBSTITUTE text (real Ethereum tweets, real Reddit
    comments): the shared data has no Telegram or Discord messages."""
    import threading
    from contextlib import ExitStack

    from cryptolake.bus import Producer
    from cryptolake.metrics import MetricsServer
    from cryptolake.settings import get_settings

    unknown = sorted(set(source) - set(_ALT_SOURCES))
    if unknown:
        raise typer.BadParameter(f"--source {unknown[0]!r}: expected one of {', '.join(_ALT_SOURCES)}")
    settings = get_settings()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    metrics = ProducerMetrics("altdata")
    mserver = MetricsServer(metrics.registry)
    with ExitStack() as stack:
        stack.callback(mserver.close)
        polls = [_ALT_SOURCES[s](settings, stack) for s in dict.fromkeys(source)]
        with Producer(settings, client_id="cryptolake-connect-altdata") as producer:
            from ingest.altlive import PollingPublisher

            pubs = [(release, PollingPublisher(make, producer, seen)) for make, release, seen in polls]
            if metrics_port is not None:
                mserver.start(metrics_port)
            while not stop.is_set():
                for release, pub in pubs:
                    if release is not None:
                        release(batch)
                    pub.poll()
                producer.poll(0)
                metrics.update(producer)
                stop.wait(poll_interval)
            producer.flush()
            metrics.update(producer)


# (a fresh connector per poll, the local replay's release(n) or None for the real API, keys already published)
_Poll = tuple[Callable[[], "Connector"], Callable[[int], int] | None, set[str]]


def _seen(topic: str, settings: Settings) -> set[str]:
    from cryptolake.bus import ensure_topics
    from ingest.published import high_water_marks

    ensure_topics([topic], settings)
    return set(high_water_marks(topic, settings))


def _local(app: Any, stack: ExitStack) -> str:
    from ingest.testing_servers.server import LocalServer

    server = LocalServer(app).start()
    stack.callback(server.stop)
    return str(server.url)


def _news(settings: Settings, stack: ExitStack) -> _Poll:
    import os
    import secrets

    from cryptolake import topics
    from cryptolake.retry import RetryPolicy
    from cryptolake.system import shared_data_root
    from ingest.altlive import NewsReplay, replay_articles, window
    from ingest.connectors.base import utc_now
    from ingest.news.newsapi import NewsApiConnector, url_id
    from ingest.testing_servers import apis

    seen = _seen(topics.NEWS_ARTICLES, settings)
    release = None
    key = os.environ.get("NEWSAPI_API_KEY")
    if key:
        base_url = "https://newsapi.org"
    else:  # a restart resumes the news flow after what news.articles already holds
        articles = replay_articles(shared_data_root())
        replay = NewsReplay([a for a in articles if f"newsapi:{url_id(a['url'])}" not in seen])
        key = secrets.token_hex(8)
        base_url = _local(apis.newsapi_app(replay.visible, key, apis.ApiState(rate_limit_first=0)), stack)
        release = replay.release

    def make() -> NewsApiConnector:
        since, until = window(utc_now())
        return NewsApiConnector("bitcoin", since, until, base_url=base_url, api_key=key, max_pages=5,
                                policy=RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=10.0))

    return make, release, seen


def _reddit(settings: Settings, stack: ExitStack) -> _Poll:
    import os
    import secrets

    from cryptolake import topics
    from cryptolake.retry import RetryPolicy
    from cryptolake.system import shared_data_root
    from ingest.altlive import window
    from ingest.altlive_social import SUBREDDITS, RedditReplay, reddit_posts
    from ingest.connectors.base import utc_now
    from ingest.social.reddit import RedditConnector
    from ingest.testing_servers import apis

    seen = _seen(topics.SOCIAL_POSTS, settings)
    cid, secret = os.environ.get("REDDIT_CLIENT_ID"), os.environ.get("REDDIT_CLIENT_SECRET")
    replay: RedditReplay | None = None
    if cid and secret:
        auth_url, api_url = "https://www.reddit.com", "https://oauth.reddit.com"
    else:
        replay = RedditReplay(reddit_posts(shared_data_root()), seen)
        cid, secret = "local-" + secrets.token_hex(4), secrets.token_hex(8)
        auth_url = api_url = _local(apis.reddit_app(replay.visible, cid, secret, apis.ApiState(rate_limit_first=0)),
                                    stack)

    def make() -> RedditConnector:
        since, until = (replay.since, replay.until) if replay is not None else window(utc_now())
        return RedditConnector(list(SUBREDDITS), since, until, auth_url=auth_url, api_url=api_url, client_id=cid,
                               client_secret=secret, max_pages=5,
                               policy=RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=10.0))

    return make, replay.release if replay is not None else None, seen


def _chain(settings: Settings, stack: ExitStack) -> _Poll:
    import os
    import secrets
    from datetime import timedelta

    from cryptolake import topics
    from cryptolake.retry import RetryPolicy
    from cryptolake.system import shared_data_root
    from ingest.altlive_chain import ChainReplay, etherscan_days
    from ingest.chain.explorer import ExplorerDailyStatsConnector
    from ingest.connectors.base import utc_now
    from ingest.testing_servers import apis

    seen = _seen(topics.CHAIN_DAILY_STATS, settings)
    key = os.environ.get("ETHERSCAN_API_KEY")
    replay: ChainReplay | None = None
    if key:
        base_url = "https://api.etherscan.io"
    else:
        replay = ChainReplay(etherscan_days(shared_data_root()), "ethereum", seen)
        key = secrets.token_hex(8)
        base_url = _local(apis.explorer_app(replay.visible, key, apis.ApiState(rate_limit_first=0)), stack)

    def make() -> ExplorerDailyStatsConnector:
        if replay is not None:
            start, end = replay.since, replay.until
        else:  # the last week of closed UTC days
            end = utc_now().date() - timedelta(days=1)
            start = end - timedelta(days=6)
        return ExplorerDailyStatsConnector("ethereum", start, end, base_url=base_url, api_key=key,
                                           policy=RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=10.0))

    return make, replay.release if replay is not None else None, seen


def _x(settings: Settings, stack: ExitStack) -> _Poll:
    import os
    import secrets
    from datetime import timedelta

    from cryptolake import topics
    from cryptolake.retry import RetryPolicy
    from cryptolake.system import shared_data_root
    from ingest.altlive import window
    from ingest.altlive_social import XReplay, x_tweets
    from ingest.connectors.base import utc_now
    from ingest.social.x import XRecentSearchConnector
    from ingest.testing_servers import apis

    seen = _seen(topics.SOCIAL_POSTS, settings)
    token = os.environ.get("X_BEARER_TOKEN")
    replay: XReplay | None = None
    if token:
        base_url = "https://api.x.com"
    else:
        tweets, users = x_tweets(shared_data_root())
        replay = XReplay(tweets, seen)
        token = secrets.token_hex(8)
        base_url = _local(apis.x_app(replay.visible, users, token, apis.ApiState(rate_limit_first=0)), stack)

    def make() -> XRecentSearchConnector:
        if replay is not None:
            since, until = replay.since, replay.until
        else:  # the API wants end_time at least 10 s in the past
            since, until = window(utc_now() - timedelta(seconds=30), days=0.25)
        return XRecentSearchConnector("bitcoin", since, until, base_url=base_url, bearer_token=token, max_pages=5,
                                      policy=RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=10.0))

    return make, replay.release if replay is not None else None, seen


def _telegram(settings: Settings, stack: ExitStack) -> _Poll:
    import os
    import secrets

    from cryptolake import topics
    from cryptolake.retry import RetryPolicy
    from cryptolake.system import shared_data_root
    from ingest.altlive_social import TelegramReplay, telegram_substitute_updates
    from ingest.social.telegram_bot import BotOffset, TelegramBotConnector
    from ingest.testing_servers import apis

    seen = _seen(topics.SOCIAL_POSTS, settings)
    token = os.environ.get("TELEGRAM_BOT_TOKEN")
    replay: TelegramReplay | None = None
    if token:
        base_url = "https://api.telegram.org"
    else:  # SUBSTITUTE: the real Ethereum tweets as a channel's posts (no Telegram data in the shared set)
        replay = TelegramReplay(telegram_substitute_updates(shared_data_root()), seen)
        token = secrets.token_hex(8)
        base_url = _local(apis.telegram_bot_app(replay.visible, token, apis.ApiState(rate_limit_first=0)), stack)
    offset = BotOffset()

    def make() -> TelegramBotConnector:
        return TelegramBotConnector(offset, base_url=base_url, bot_token=token,
                                    policy=RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=10.0))

    return make, replay.release if replay is not None else None, seen


def _discord(settings: Settings, stack: ExitStack) -> _Poll:
    import os
    import secrets

    from cryptolake import topics
    from cryptolake.retry import RetryPolicy
    from cryptolake.system import shared_data_root
    from ingest.altlive import window
    from ingest.altlive_social import DiscordReplay, discord_substitute_messages
    from ingest.connectors.base import utc_now
    from ingest.social.discord import DiscordHistoryConnector
    from ingest.testing_servers import apis

    seen = _seen(topics.SOCIAL_POSTS, settings)
    token = os.environ.get("DISCORD_BOT_TOKEN")
    replay: DiscordReplay | None = None
    if token:
        base_url = "https://discord.com/api/v10"
        channels = [c for c in os.environ.get("DISCORD_CHANNEL_IDS", "").split(",") if c]
        if not channels:
            raise typer.BadParameter("DISCORD_CHANNEL_IDS: the channel ids to read (comma-separated) are missing")
    else:  # SUBSTITUTE: the real Reddit comments as messages (no Discord data in the shared set)
        replay = DiscordReplay(discord_substitute_messages(shared_data_root()), seen)
        token = secrets.token_hex(8)
        base_url = _local(apis.discord_app(replay.visible, token, apis.ApiState(rate_limit_first=0)), stack) \
            + "/api/v10"
        channels = list(replay.visible)

    def make() -> DiscordHistoryConnector:
        since, until = (replay.since, replay.until) if replay is not None else window(utc_now())
        return DiscordHistoryConnector(channels, since, until, base_url=base_url, bot_token=token, max_pages=5,
                                       policy=RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=10.0))

    return make, replay.release if replay is not None else None, seen


def _evm(settings: Settings, stack: ExitStack) -> _Poll:
    import os

    from cryptolake import topics
    from cryptolake.retry import RetryPolicy
    from cryptolake.system import shared_data_root
    from ingest.altlive_chain import EvmFollower, EvmReplay, evm_blocks, last_block
    from ingest.testing_servers import apis

    seen = _seen(topics.CHAIN_BLOCKS, settings) | _seen(topics.CHAIN_TRANSFERS, settings)
    url = os.environ.get("EVM_RPC_URL_ETHEREUM")  # a secret (it often embeds a key): registered by the connector
    replay: EvmReplay | None = None
    if not url:  # the two real blocks of chain/ethereum_etl, one new block per poll
        blocks, logs = evm_blocks(shared_data_root())
        replay = EvmReplay(blocks, logs, "ethereum", seen)
        url = _local(apis.evm_app(replay.visible_blocks, replay.visible_logs, apis.ApiState(rate_limit_first=0)),
                     stack) + "/"
        start = last_block("ethereum", seen)
        if start is None:
            start = int(blocks[0]["number"], 16)
    else:
        start = last_block("ethereum", seen)  # None: from the head on
    follower = EvmFollower("ethereum", url, start,
                           policy=RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=10.0))
    return follower.make, (lambda n: replay.release(1)) if replay is not None else None, seen  # a block per poll


_ALT_SOURCES: dict[str, Callable[[Settings, ExitStack], _Poll]] = {
    "news": _news, "reddit": _reddit, "chain": _chain, "x": _x, "telegram": _telegram, "discord": _discord,
    "evm": _evm}
