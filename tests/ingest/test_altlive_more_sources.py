"""The long-running X, Telegram, Discord and EVM connectors: their local servers replay the REAL shared data a batch
per poll (Telegram and Discord: SUBSTITUTE real text, Ethereum tweets and Reddit comments); each record is published
once, a restart resumes after what the topic holds, a malformed record is dead-lettered with its field named, and
the key-set path builds the real client config (no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cryptolake.retry import RetryPolicy
from ingest.altlive import PollingPublisher
from ingest.altlive_chain import EvmFollower, EvmReplay, evm_blocks, last_block
from ingest.altlive_social import (
    TELEGRAM_SUBSTITUTE_CHANNEL,
    DiscordReplay,
    TelegramReplay,
    XReplay,
    discord_key,
    discord_substitute_messages,
    telegram_key,
    telegram_substitute_updates,
    tweet_key,
    x_tweets,
)
from ingest.social.discord import DiscordHistoryConnector
from ingest.social.telegram_bot import BotOffset, TelegramBotConnector
from ingest.social.x import XRecentSearchConnector
from ingest.testing_servers import apis
from ingest.testing_servers.server import LocalServer

FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0, jitter=0.0)


class _Producer:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.dead: list[tuple[str, str, str]] = []

    def send_message(self, msg: Any) -> None:
        self.sent.append(msg.key())

    def dead_letter(self, topic: str, key: str, raw: str, reason: str) -> None:
        self.dead.append((topic, key, reason))


def test_x_polls_publish_each_real_tweet_once_and_resume_after_a_restart(shared_data: Path) -> None:
    tweets, users = x_tweets(shared_data)
    assert len(tweets) == 2137 and tweets[0]["created_at"] <= tweets[-1]["created_at"]
    tweets = tweets[:150]
    tweets[30] = {**tweets[30], "text": "  "}  # malformed: blank text

    def run(replay: XReplay, prod: _Producer, seen: set[str], polls: int) -> None:
        with LocalServer(apis.x_app(replay.visible, users, "bt", apis.ApiState(rate_limit_first=0))) as srv:
            def make() -> XRecentSearchConnector:
                c = XRecentSearchConnector("bitcoin", replay.since, replay.until, base_url=srv.url,
                                           bearer_token="bt", policy=FAST, sleep=lambda s: None)
                c.client.min_interval = 0
                return c
            pub = PollingPublisher(make, prod, seen)
            for _ in range(polls):
                replay.release(40)
                pub.poll()

    first = _Producer()
    run(XReplay(tweets), first, set(), 2)
    assert len(first.sent) == 79 and len(first.dead) == 1
    assert first.dead[0][1] == tweets[30]["id"] and "text" in first.dead[0][2]
    assert set(first.sent) == {tweet_key(t) for t in tweets[:80]} - {tweet_key(tweets[30])}
    again = XReplay(tweets, seen=set(first.sent))
    assert len(again.pending) == 70
    second = _Producer()
    run(again, second, set(first.sent), 2)
    assert len(second.sent) == 70 and not set(second.sent) & set(first.sent) and not second.dead


def test_telegram_substitute_posts_publish_once_through_get_updates_and_resume(shared_data: Path) -> None:
    updates = telegram_substitute_updates(shared_data)
    assert len(updates) == 1880  # SUBSTITUTE: the real Ethereum tweets as channel posts
    assert {u["channel_post"]["chat"]["username"] for u in updates} == {TELEGRAM_SUBSTITUTE_CHANNEL}
    updates = updates[:100]
    updates[12] = {**updates[12], "channel_post": {**updates[12]["channel_post"], "date": "yesterday"}}

    def run(replay: TelegramReplay, prod: _Producer, seen: set[str], polls: int) -> apis.ApiState:
        state = apis.ApiState(rate_limit_first=1)  # the first call is a 429 with parameters.retry_after
        with LocalServer(apis.telegram_bot_app(replay.visible, "tok", state)) as srv:
            offset = BotOffset()
            pub = PollingPublisher(lambda: TelegramBotConnector(offset, base_url=srv.url, bot_token="tok",
                                                                limit=20, policy=FAST, sleep=lambda s: None),
                                   prod, seen)
            for _ in range(polls):
                replay.release(30)
                pub.poll()
        return state

    first = _Producer()
    state = run(TelegramReplay(updates), first, set(), 2)
    assert len(first.sent) == 59 and len(first.dead) == 1 and "date" in first.dead[0][2]
    assert first.dead[0][1] == f"{TELEGRAM_SUBSTITUTE_CHANNEL}/13"
    assert set(first.sent) == {telegram_key(u) for u in updates[:60]} - {telegram_key(updates[12])}
    assert [r["query"]["offset"] for r in state.requests[1:]] == ["0", "21", "31", "51"]
    second = _Producer()
    run(TelegramReplay(updates, seen=set(first.sent)), second, set(first.sent), 2)
    assert len(second.sent) == 40 and not set(second.sent) & set(first.sent) and not second.dead


def test_discord_substitute_messages_publish_once_and_resume_after_a_restart(shared_data: Path) -> None:
    messages = discord_substitute_messages(shared_data)
    assert sum(len(v) for v in messages.values()) > 20_000  # SUBSTITUTE: the real Reddit comments
    flow = sorted((m for v in messages.values() for m in v), key=lambda m: int(m["id"]))[:120]
    flow[7] = {**flow[7], "content": ""}  # malformed: no text
    keep = {m["id"] for m in flow}
    msgs = {c: [m if m["id"] != flow[7]["id"] else flow[7] for m in v if m["id"] in keep] for c, v in messages.items()}

    def run(replay: DiscordReplay, prod: _Producer, seen: set[str], polls: int) -> None:
        with LocalServer(apis.discord_app(replay.visible, "bot", apis.ApiState(rate_limit_first=0))) as srv:
            def make() -> DiscordHistoryConnector:
                c = DiscordHistoryConnector(list(replay.visible), replay.since, replay.until,
                                            base_url=srv.url + "/api/v10", bot_token="bot", policy=FAST,
                                            sleep=lambda s: None)
                c.client.min_interval = 0
                return c
            pub = PollingPublisher(make, prod, seen)
            for _ in range(polls):
                replay.release(40)
                pub.poll()

    first = _Producer()
    run(DiscordReplay(msgs), first, set(), 2)
    assert len(first.sent) == 79 and len(first.dead) == 1 and "text" in first.dead[0][2]
    assert set(first.sent) == {discord_key(m) for m in flow[:80]} - {discord_key(flow[7])}
    second = _Producer()
    run(DiscordReplay(msgs, seen=set(first.sent)), second, set(first.sent), 1)
    assert len(second.sent) == 40 and not set(second.sent) & set(first.sent) and not second.dead


def test_evm_follows_the_real_blocks_head_publishing_blocks_and_transfers_once(shared_data: Path) -> None:
    blocks, logs = evm_blocks(shared_data)
    assert [int(b["number"], 16) for b in blocks] == [17173049, 17173050] and len(logs) == 681
    bad = next(i for i, lg in enumerate(logs) if len(lg["topics"]) == 3
               and lg["topics"][0] == "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef")
    logs[bad] = {**logs[bad], "data": "0x12"}  # malformed: not one 32-byte word

    def run(seen: set[str], polls: int) -> _Producer:
        replay = EvmReplay(blocks, logs, "ethereum", seen)
        prod = _Producer()
        with LocalServer(apis.evm_app(replay.visible_blocks, replay.visible_logs,
                                      apis.ApiState(rate_limit_first=0))) as srv:
            start = last_block("ethereum", seen) or 17173049
            follower = EvmFollower("ethereum", srv.url + "/", start, policy=FAST, sleep=lambda s: None)
            pub = PollingPublisher(follower.make, prod, seen)
            for _ in range(polls):
                replay.release(1)
                pub.poll()
        return prod

    first = run(set(), 1)  # the first block only, then a restart
    assert "ethereum:17173049" in first.sent and not any(k == "ethereum:17173050" for k in first.sent)
    # resumes at the last block held: nothing sent twice, then the head waits. (The resumed block's reject would be
    # dead-lettered again: the DLQ's keys are not read at start, so they are passed here as in test_altlive.)
    second = run(set(first.sent) | {k for _, k, _ in first.dead}, 3)
    assert not set(second.sent) & set(first.sent) and "ethereum:17173050" in second.sent
    every = first.sent + second.sent
    assert len(every) == len(set(every))
    dead = first.dead + second.dead
    assert len(dead) == 1 and dead[0][0] == "chain.transfers" and "data" in dead[0][2] and "0x12" in dead[0][2]
    n_blocks = sum(1 for k in every if k.count(":") == 1)
    n_native = sum(1 for k in every if k.endswith(":-1"))
    erc20 = sum(1 for lg in logs if len(lg["topics"]) == 3 and lg["topics"][0] == logs[bad]["topics"][0])
    assert (n_blocks, n_native, erc20) == (2, 135, 282)  # ERC-721 logs (4 topics) are not fungible transfers
    assert len(every) - n_blocks - n_native == erc20 - 1  # every ERC-20 transfer once, but the malformed one


def test_key_set_paths_build_the_real_clients_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    from contextlib import ExitStack

    from cli import connect
    from cryptolake.settings import get_settings

    monkeypatch.setenv("X_BEARER_TOKEN", "x-secret")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:tg-secret")
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "dc-secret")
    monkeypatch.setenv("DISCORD_CHANNEL_IDS", "111,222")
    monkeypatch.setenv("EVM_RPC_URL_ETHEREUM", "https://eth.example/v2/rpc-secret")
    monkeypatch.setattr(connect, "_seen", lambda topic, settings: set())  # no broker: nothing published yet
    with ExitStack() as stack:
        polls = {s: connect._ALT_SOURCES[s](get_settings(), stack) for s in ("x", "telegram", "discord", "evm")}
    assert all(release is None for _, release, _ in polls.values())  # no local replay
    x = polls["x"][0]()
    assert isinstance(x, XRecentSearchConnector) and x.client.base_url == "https://api.x.com"
    assert x.client.session.headers["Authorization"] == "Bearer x-secret"
    tg = polls["telegram"][0]()
    assert isinstance(tg, TelegramBotConnector) and tg.client.base_url == "https://api.telegram.org"
    assert tg.path == "/bot123:tg-secret/getUpdates"
    dc = polls["discord"][0]()
    assert isinstance(dc, DiscordHistoryConnector) and dc.channel_ids == ["111", "222"]
    assert dc.client.base_url == "https://discord.com/api/v10"
    assert dc.client.session.headers["Authorization"] == "Bot dc-secret"
    evm = polls["evm"][0]()
    assert evm.f.rpc_url == "https://eth.example/v2/rpc-secret" and evm.f.next_block is None  # type: ignore[attr-defined]
