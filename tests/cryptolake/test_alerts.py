"""Alerts reach a local webhook receiver and a local SMTP server, once each despite repeats."""

from __future__ import annotations

import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace
from typing import ClassVar

import pytest

from cryptolake.alerts import Alert, Alerter, AlertKind, Severity, alert_urls, apprise_sender
from cryptolake.errors import ConfigError
from cryptolake.settings import AlertSettings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook():
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"json://127.0.0.1:{server.server_port}/hook", _Hook.received
    server.shutdown()
    server.server_close()


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    class Handler:
        def __init__(self) -> None:
            self.messages: list[tuple[str, list[str], str]] = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode()))
            return "250 OK"

    # aiosmtpd logs connection events from its own thread, after pytest may have closed the stream.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    handler = Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield (f"mailto://127.0.0.1:{controller.port}?from=bot@cryptolake.test&to=desk@cryptolake.test&mode=insecure",
           handler.messages)
    controller.stop()


KILL = Alert(AlertKind.KILL_SWITCH, "Kill switch: HALTED", "drawdown 21% > 20%", key="kill:paper@binance",
             severity=Severity.CRITICAL)


def test_webhook_and_email_receive_each_alert_once_despite_repeats(webhook, smtp) -> None:
    url_hook, hooks = webhook
    url_mail, mails = smtp
    t = [0.0]
    alerter = Alerter(AlertSettings(dedup_window_s=300), apprise_sender([url_hook, url_mail]), clock=lambda: t[0])
    sent = [alerter.raise_alert(KILL) for _ in range(5)]
    assert sent == [True, False, False, False, False]
    fill = Alert(AlertKind.FILL, "Fill BTC/USDT", "buy 0.01 @ 50000", key="fill:abc")
    assert alerter.raise_alert(fill) and not alerter.raise_alert(fill)
    assert len(hooks) == 2 and [h["title"] for h in hooks] == ["Kill switch: HALTED", "Fill BTC/USDT"]
    assert hooks[0]["type"] == "failure" and hooks[0]["message"] == "drawdown 21% > 20%"
    assert len(mails) == 2 and mails[0][0] == "bot@cryptolake.test" and mails[0][1] == ["desk@cryptolake.test"]
    assert "Kill switch: HALTED" in mails[0][2]
    assert (alerter.counts.sent, alerter.counts.deduplicated) == (2, 5)
    t[0] += 301  # past the window: the same fact may be said again
    assert alerter.raise_alert(KILL) and len(hooks) == 3


def test_rate_limit_and_kind_filter() -> None:
    got: list[Alert] = []
    t = [0.0]
    alerter = Alerter(AlertSettings(rate_limit_per_min=3, kinds=("fill",)), lambda a: got.append(a) or True,
                      clock=lambda: t[0])
    for i in range(5):
        alerter.raise_alert(Alert(AlertKind.FILL, "fill", str(i), key=f"fill:{i}"))
    assert [a.body for a in got] == ["0", "1", "2"] and alerter.counts.rate_limited == 2
    assert not alerter.raise_alert(Alert(AlertKind.DRAWDOWN, "dd", "5%", key="dd:5"))
    assert alerter.counts.filtered == 1
    t[0] += 60
    assert alerter.raise_alert(Alert(AlertKind.FILL, "fill", "5", key="fill:5"))


def test_urls_are_secrets_from_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("CRYPTOLAKE_ALERT_URLS", raising=False)
    monkeypatch.delenv("CRYPTOLAKE_ALERT_URLS_FILE", raising=False)
    assert alert_urls() == ()
    path = tmp_path / "urls"
    path.write_text("json://127.0.0.1:1/a\ntgram://123456:ABCDEF/42\n")
    monkeypatch.setenv("CRYPTOLAKE_ALERT_URLS_FILE", str(path))
    assert alert_urls() == ("json://127.0.0.1:1/a", "tgram://123456:ABCDEF/42")
    from cryptolake.logs import redact

    assert redact("sent to tgram://123456:ABCDEF/42") == "sent to ***"
    monkeypatch.setenv("CRYPTOLAKE_ALERT_URLS", "not-a-url")
    with pytest.raises(ConfigError, match="CRYPTOLAKE_ALERT_URLS"):
        alert_urls()


def _node(equity: float) -> SimpleNamespace:
    """What :class:`trader.notify.SessionAlerts` reads of a trading node (fills, risk state, equity)."""
    from trader.risk import TradingState

    return SimpleNamespace(fills=[], portfolio=SimpleNamespace(value=equity, equity=lambda: 0.0),
                           risk=SimpleNamespace(state=TradingState.ACTIVE, halt_reason="", peak_equity=None))


def test_every_source_reaches_the_webhook_once_despite_repeats(webhook) -> None:
    from datetime import UTC, datetime

    from models.registry import RegistryEntry
    from pipeline.alerts import LakeWatch
    from trader.domain import Fill, Liquidity
    from trader.notify import SessionAlerts
    from trader.risk import TradingState

    url, hooks = webhook
    t = [0.0]
    alerter = Alerter(AlertSettings(dedup_window_s=300, rate_limit_per_min=100), apprise_sender([url]),
                      clock=lambda: t[0])
    session = SessionAlerts(alerter, "desk", (0.05, 0.10))
    node = _node(1000.0)
    equity = [1000.0]
    node.portfolio.equity = lambda: equity[0]
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    node.fills = [Fill(f"f{i}", f"o{i}", f"c{i}", "binance", "BTC/USDT", "buy", 50000.0 + i, 0.001, 0.05, "USDT", ts,
                       Liquidity.TAKER) for i in range(2)]
    session.check(node)
    session.check(node)  # nothing new
    again = SessionAlerts(alerter, "desk", (0.05, 0.10))  # a restart: the restored fills were reported before
    again.baseline(node)
    assert again.check(node) == []
    node.risk.state, node.risk.halt_reason = TradingState.HALTED, "stale market data: no bar for 9.0s"
    for _ in range(3):
        session.check(node)
    node.risk.state, node.risk.halt_reason = TradingState.ACTIVE, ""
    for value in (940.0, 930.0, 890.0, 880.0, 990.0, 945.0):  # 6%, 7%, 11%, 12%, recovered, 5.5% again
        equity[0] = value
        session.check(node)
    session.flush()
    assert alerter.counts.deduplicated == 1  # the re-armed 5% inside the window: counted, not sent

    lake = LakeWatch(alerter, stale_after_s=3600)
    row = {"table": "silver.bars", "version": 7, "age_s": 7200.0, "last_commit": ts}
    entry = RegistryEntry(version="m1", kind="lstm", seq=1, trained_at=ts, oos_start=ts, promoted=True,
                          metadata={}, gate={"passed": True, "reason": "beat every baseline"})
    lake.check([row], entry)  # the champion at the first look is the baseline, not a promotion
    lake.check([row], entry)
    lake.check([{**row, "version": 8}], entry.model_copy(update={"version": "m2", "seq": 2}))
    lake.check([{**row, "version": 8, "age_s": 10.0}], entry.model_copy(update={"version": "m2", "seq": 2}))
    titles = [h["title"] for h in hooks]
    assert titles == ["Fill buy BTC/USDT", "Fill buy BTC/USDT", "Trading halted: desk", "Drawdown 6.0%: desk",
                      "Drawdown 11.0%: desk", "Stale data: silver.bars", "Stale data: silver.bars",
                      "New champion: m2"], titles
    assert "50001" in hooks[1]["message"] and hooks[2]["message"] == "stale market data: no bar for 9.0s"
    assert hooks[2]["type"] == "failure" and "threshold 10%" in hooks[4]["message"]
    assert "version 8" in hooks[6]["message"] and "replaces m1" in hooks[7]["message"]
    t[0] += 301
    equity[0] = 990.0
    session.check(node)
    equity[0] = 945.0
    session.check(node)
    session.flush()
    assert [h["title"] for h in hooks][-1] == "Drawdown 5.5%: desk"  # past the window it may be said again
