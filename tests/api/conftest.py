"""An API over a temporary database and a trading store holding one real backtest run."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from api.app import build_services, create_app
from api.deps import Services
from cryptolake.settings import ApiSettings, PathSettings, Settings
from tests.trader.conftest import btc_frame, make_config, synthetic_signals
from trader.backtest import run_backtest
from trader.strategies.threshold import ThresholdConfig

PASSWORDS = {"ada": "correct horse battery", "tess": "trader password 1", "vic": "viewer password 1"}
ROLES = {"ada": "admin", "tess": "trader", "vic": "viewer"}


class Clock:
    """A clock the tests move (epoch seconds)."""

    def __init__(self, now: float = 1_780_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Api:
    client: TestClient
    svc: Services
    clock: Clock
    store_url: str

    def login(self, user: str, password: str | None = None) -> dict:
        r = self.client.post("/api/v1/auth/login", json={"username": user, "password": password or PASSWORDS[user]})
        assert r.status_code == 200, r.text
        return r.json()

    def bearer(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.login(user)['access_token']}"}


def make_api(tmp_path, **api_overrides) -> Api:
    store_url = f"sqlite:///{tmp_path}/trader.db"
    settings = Settings(paths=PathSettings(state_dir=tmp_path / "state", artifacts_dir=tmp_path / "artifacts"),
                        api=ApiSettings(**{"https": False, "store_url": store_url, "argon2_time_cost": 1,
                                           "argon2_memory_kib": 1024, **api_overrides}))
    svc = build_services(settings)
    clock = Clock()
    svc.auth.clock = clock
    for user, password in PASSWORDS.items():
        svc.auth.add_user(user, password, ROLES[user])
    return Api(TestClient(create_app(svc)), svc, clock, store_url)


def backtest_run(store_url: str, run_id: str = "bt1", n: int = 120):
    """A real backtest over real BTC bars (SYNTHETIC on/off probabilities) written to the store."""
    bars = btc_frame(n)
    probs = [0.9 if (i // 7) % 2 == 0 else 0.2 for i in range(n)]
    cfg = make_config(strategy=ThresholdConfig(threshold=0.6, fraction=0.5, stop_loss_pct=0.01, take_profit_pct=0.01))
    return run_backtest(bars, synthetic_signals(bars, probs), cfg, run_id=run_id, store_url=store_url)


@pytest.fixture
def api(tmp_path) -> Api:
    return make_api(tmp_path)
