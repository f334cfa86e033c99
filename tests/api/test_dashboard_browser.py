"""The dashboard in Debian's headless Chromium (Playwright, no browser download).

Log in over HTTPS, see the equity of a stored run, see a fill the trader stores appear within a second over
the websocket, and render on a 390x844 phone without horizontal scrolling. Screenshots are kept in
``.state/artifacts/screenshots`` (the CI artefacts).
"""

from __future__ import annotations

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
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not shutil.which("chromium"),
                                                   reason="Debian's chromium is installed by infra/setup.sh")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path):
    import uvicorn

    from api.app import create_app
    from api.tls import self_signed

    api = make_api(tmp_path, https=True)
    result = backtest_run(api.store_url, "bt1", 120)
    cert, key = self_signed(tmp_path / "tls", datetime.now(UTC))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(api.svc), host="127.0.0.1", port=port, log_level="warning",
                                           ssl_certfile=str(cert), ssl_keyfile=str(key)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"https://127.0.0.1:{port}", api, result
    server.should_exit = True
    thread.join(10)


def test_login_equity_live_fill_and_phone(served) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, api, result = served
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        # The certificate is the generated self-signed one; Chromium registers no service worker over a
        # certificate it distrusts unless told to ignore that.
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--ignore-certificate-errors"])
        try:
            page = browser.new_context(ignore_https_errors=True).new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(url + "/")
            page.fill("#username", "tess")
            page.fill("#password", PASSWORDS["tess"])
            page.click("#login-button")
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
            browser.close()
