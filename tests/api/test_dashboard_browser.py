"""The dashboard in Debian's headless Chromium (Playwright, no browser download).

Log in over HTTPS, see the equity of a stored run, see a fill the trader stores appear within a second over
the websocket, and render on a 390x844 phone without horizontal scrolling. Then a live trading session on
the local exchange: a fill the venue makes is on the page within a second; pause and resume from the page
(with confirmation) reach the session; a viewer has no flatten button and the API answers it 403.
One exchange, one server and one browser serve the whole module. Screenshots are kept in
``.state/artifacts/screenshots`` (the CI artefacts).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from cryptolake.settings import PROJECT_ROOT
from tests.api.conftest import PASSWORDS, backtest_run, make_api
from trader.domain import Fill, Liquidity
from trader.node import NodeChanges
from trader.store import TradeStore

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = PROJECT_ROOT / ".state" / "artifacts" / "screenshots"
ACCOUNT = "desk"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not shutil.which("chromium"),
                                                   reason="Debian's chromium is installed by infra/setup.sh")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def venue(shared_data):
    from ingest.localexchange.server import LocalExchange
    from tests.trader.live.conftest import venue_config

    ex = LocalExchange(venue_config(shared_data))
    ex.start()
    yield ex
    ex.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory, venue):
    import uvicorn

    from api.app import create_app
    from api.tls import self_signed

    tmp = tmp_path_factory.mktemp("dashboard")
    api = make_api(tmp, https=True)
    result = backtest_run(api.store_url, "bt1", 120)
    cert, key = self_signed(tmp / "tls", datetime.now(UTC))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(api.svc), host="127.0.0.1", port=port, log_level="warning",
                                           ssl_certfile=str(cert), ssl_keyfile=str(key), timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"https://127.0.0.1:{port}", api, result
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def session(served, venue):
    """A live trading session (the churn test strategy) on the local exchange, running in its loop."""
    from tests.trader.live.conftest import SYMBOLS
    from tests.trader.live.trading import CHURN
    from trader.config import TraderConfig
    from trader.execution.ccxt_client import CcxtVenueConfig
    from trader.killswitch import KillSwitchConfig
    from trader.session import SessionConfig, TradingSession

    _, api, _ = served
    venue.add_account("k-dash", "s-dash")
    keys = {"CRYPTOLAKE__TRADER__API_KEY": "k-dash", "CRYPTOLAKE__TRADER__API_SECRET": "s-dash"}
    os.environ.update(keys)
    try:
        trader = TraderConfig(exchange="binance", symbols=tuple(SYMBOLS), timeframe="1h",
                              strategies=({"kind": CHURN, "markup": 0.05},))
        cfg = SessionConfig(account_id=ACCOUNT, mode="live", venue=CcxtVenueConfig(base_url=venue.base_url),
                            poll_interval_s=0.1, kill=KillSwitchConfig(stale_bars=None))
        s = TradingSession(trader, cfg, TradeStore(api.store_url))
    finally:
        for k in keys:
            os.environ.pop(k, None)
    stop = threading.Event()
    thread = threading.Thread(target=s.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while api.svc.data.account(ACCOUNT) is None or not api.svc.data.account(ACCOUNT)["strategies"]:
        assert time.monotonic() < deadline, "the session never started"
        time.sleep(0.1)
    yield s
    stop.set()
    thread.join(30)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        # The certificate is the generated self-signed one; Chromium registers no service worker over a
        # certificate it distrusts unless told to ignore that.
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--ignore-certificate-errors"])
        yield b
        b.close()


def _login(browser, url: str, user: str):
    from playwright.sync_api import expect

    page = browser.new_context(ignore_https_errors=True).new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url + "/")
    page.fill("#username", user)
    page.fill("#password", PASSWORDS[user])
    page.click("#login-button")
    expect(page.locator("#who")).to_contain_text(user, timeout=10_000)
    return page, errors


def test_login_equity_live_fill_and_phone(served, browser) -> None:
    from playwright.sync_api import expect

    url, api, result = served
    page, errors = _login(browser, url, "tess")
    try:
        final = f"{result.metrics['final_equity']:,.2f}"
        expect(page.locator("#stat-equity")).to_have_text(final, timeout=10_000)
        expect(page.locator("#live")).to_have_text("live", timeout=5_000)
        assert page.locator("#fills tbody tr").count() == len(result.fills)
        page.screenshot(path=str(SHOTS / "dashboard-desktop.png"), full_page=True)

        # The trader stores a new fill; it must be on the page within a second.
        last = result.fills["ts"].max().to_pydatetime()
        fill = Fill(id="live-fill-1", order_id="o-live", client_id="c-live", exchange="gymcrypto",
                    symbol="BTC/USD", side="buy", price=12345.67, qty=0.0421, fee=0.52, fee_currency="USD",
                    ts=last + timedelta(minutes=30), liquidity=Liquidity.TAKER)
        store = TradeStore(api.store_url)
        started = time.monotonic()
        store.write_changes("bt1", NodeChanges(fills=[fill]), [])
        expect(page.locator("#fills tbody tr").first).to_contain_text("12,345.67", timeout=1_000)
        latency = time.monotonic() - started
        assert latency < 1.0 and page.locator("#fills tbody tr").count() == len(result.fills) + 1
        assert page.locator("#stat-fills").inner_text() == str(len(result.fills) + 1)

        page.set_viewport_size({"width": 390, "height": 844})
        page.wait_for_timeout(300)
        widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert widths[0] <= widths[1] == 390
        page.screenshot(path=str(SHOTS / "dashboard-phone.png"), full_page=True)
        manifest = page.evaluate("fetch('/manifest.webmanifest').then(r => r.json())")
        assert manifest["display"] == "standalone"
        assert page.evaluate("navigator.serviceWorker.getRegistration().then(r => !!r)")
        assert [e for e in errors if "Content Security Policy" in e] == []
    finally:
        page.context.close()


def _confirm(page, button: str, reason: str) -> None:
    page.click(button)
    dialog = page.locator("#confirm")
    dialog.wait_for(state="visible")
    page.fill("#confirm-reason", reason)
    page.click("#confirm-ok")


def test_a_venue_fill_is_live_and_pause_resume_reach_the_session(served, session, venue, browser) -> None:
    from playwright.sync_api import expect

    from trader.risk import TradingState

    url, api, _ = served
    page, errors = _login(browser, url, "tess")
    try:
        page.select_option("#run", f"account:{ACCOUNT}")
        expect(page.locator("#account-state")).to_have_text("active", timeout=5_000)
        expect(page.locator("#live")).to_have_text("live", timeout=5_000)
        shown = page.locator("#fills tbody tr").count()
        before = len(api.svc.data.account_fills(ACCOUNT))
        assert shown == before
        for sid in ("BTCUSDT", "ETHUSDT"):  # a new candle: the session's strategy buys at market on the venue
            venue.step(sid)
        seen_ms = page.wait_for_function(
            f"() => document.querySelectorAll('#fills tbody tr').length > {shown} ? Date.now() : false",
            polling="raf", timeout=30_000).json_value()
        new = api.svc.data.account_fills(ACCOUNT)[before:]
        assert new and {f["side"] for f in new} == {"buy"}
        venue_fill_ms = min(int(f["ts_ms"]) for f in new)
        latency_ms = seen_ms - venue_fill_ms
        print(f"venue fill -> page: {latency_ms} ms")
        assert 0 <= latency_ms < 1000, latency_ms
        page.screenshot(path=str(SHOTS / "dashboard-session-fill.png"), full_page=True)

        _confirm(page, "#pause", "browser test pause")
        expect(page.locator("#account-state")).to_have_text("halted", timeout=5_000)
        expect(page.locator("#halt-reason")).to_contain_text("paused by operator: browser test pause (by tess)")
        assert session.node.risk.state is TradingState.HALTED
        page.screenshot(path=str(SHOTS / "dashboard-paused.png"), full_page=True)
        page.click("#resume")  # cancelling the confirmation sends nothing
        page.click("#confirm-cancel")
        page.wait_for_timeout(500)
        assert session.node.risk.state is TradingState.HALTED
        _confirm(page, "#resume", "browser test resume")
        expect(page.locator("#account-state")).to_have_text("active", timeout=5_000)
        assert session.node.risk.state is TradingState.ACTIVE
        rows = api.client.get("/api/v1/audit", headers=api.bearer("ada")).json()
        audit = [(a["action"], a["username"]) for a in rows if a["action"].startswith("control")]
        assert audit[:2] == [("control.resume", "tess"), ("control.pause", "tess")]
        assert [e for e in errors if "Content Security Policy" in e] == []
    finally:
        page.context.close()


def test_a_viewer_has_no_flatten_button_and_the_api_refuses_it(served, session, browser) -> None:
    from playwright.sync_api import expect

    url, _, _ = served
    page, _ = _login(browser, url, "vic")
    try:
        page.select_option("#run", f"account:{ACCOUNT}")
        expect(page.locator("#account-state")).to_have_text("active", timeout=5_000)
        assert page.locator("#flatten").count() == 0 and page.locator("#pause").count() == 0
        status = page.evaluate(f"""fetch('/api/v1/accounts/{ACCOUNT}/controls/flatten', {{method: 'POST',
            headers: {{'content-type': 'application/json', authorization: 'Bearer ' + state.token}},
            body: JSON.stringify({{reason: 'not mine to do'}})}}).then(r => r.status)""")
        assert status == 403
        page.screenshot(path=str(SHOTS / "dashboard-viewer.png"), full_page=True)
    finally:
        page.context.close()
