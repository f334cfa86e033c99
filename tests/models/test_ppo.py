"""The PPO agent: learns a SYNTHETIC trend better than a random policy, is deterministic for a seed,
loads through the registry, and its policy trades on the node exactly as in its environment."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium
import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env

from cryptolake.errors import DataValidationError
from models.base import Model
from models.env import ExecutionRules, TradingEnv, market_data
from models.ppo import PpoConfig, PpoFitReport, PpoModel
from models.registry import ModelRegistry
from models.scoring import score_frame
from models.windows import run_ids, sort_series, window_ends
from tests.models.ppo_synthetic import TREND_FEATURES, trending_dataset, trending_frame
from trader.backtest import run_backtest
from trader.config import TraderConfig
from trader.strategies.ppo import PpoStrategyConfig

CONFIG = PpoConfig(feature_columns=TREND_FEATURES, window=8, hidden_size=32, n_envs=4, n_steps=64, episode_bars=128,
                   max_iterations=20, eval_every=5, patience=3, seed=3)
SMALL = CONFIG.model_copy(update={"max_iterations": 4, "eval_every": 2, "n_steps": 32})


@pytest.fixture(scope="module")
def trend() -> pd.DataFrame:
    return trending_frame(n=3000, seed=0)


@pytest.fixture(scope="module")
def fitted(trend: pd.DataFrame) -> tuple[PpoModel, PpoFitReport]:
    model = PpoModel(CONFIG)
    return model, model.fit(trending_dataset(trend))


def test_beats_a_random_policy_on_a_synthetic_trend(fitted: tuple[PpoModel, PpoFitReport]) -> None:
    _, report = fitted
    test = report.backtest["test"]
    ppo, rand, hold = test["ppo"], test["random"], test["buy_and_hold"]
    assert ppo["total_return"] > rand["total_return"] + 0.5, (ppo, rand)
    assert ppo["sharpe"] > rand["sharpe"] + 10
    assert ppo["fills"] < rand["fills"] / 5  # it holds trends instead of churning
    assert 0 < ppo["exposure"] < 1  # and goes flat in the down trends buy-and-hold sits through
    assert ppo["max_drawdown"] > hold["max_drawdown"]
    assert report.metrics["ppo"].accuracy > 0.7 > report.metrics["base_rate"].accuracy
    assert report.best_iteration >= CONFIG.eval_every


def test_same_seed_same_policy(trend: pd.DataFrame) -> None:
    ds = trending_dataset(trend)
    a, b, c = PpoModel(SMALL), PpoModel(SMALL), PpoModel(SMALL.model_copy(update={"seed": 4}))
    ra, rb, _ = a.fit(ds), b.fit(ds), c.fit(ds)
    assert a.model_version == b.model_version
    pa, pb, pc = a.predict(trend), b.predict(trend), c.predict(trend)
    np.testing.assert_array_equal(pa["probability"].to_numpy(), pb["probability"].to_numpy())
    assert not np.array_equal(pa["probability"].to_numpy(), pc["probability"].to_numpy())
    assert ra.history == rb.history
    assert json.dumps(ra.backtest, sort_keys=True) == json.dumps(rb.backtest, sort_keys=True)


def test_registry_round_trip(fitted: tuple[PpoModel, PpoFitReport], trend: pd.DataFrame, tmp_path: Path) -> None:
    model, _ = fitted
    assert isinstance(model, Model)
    registry = ModelRegistry(tmp_path / "models")
    entry = registry.register(model, promote=True)
    assert entry.kind == "ppo" and entry.metadata["backtest"]["test"]["ppo"]["fills"] > 0
    loaded = registry.load_champion()
    assert type(loaded) is PpoModel and loaded.model_version == model.model_version
    pd.testing.assert_frame_equal(loaded.predict(trend), model.predict(trend))


def test_the_policy_trades_on_the_node_as_in_its_env(fitted: tuple[PpoModel, PpoFitReport],
                                                     trend: pd.DataFrame) -> None:
    """The model's signals through the ppo strategy on the node give the env's test-segment result."""
    model, report = fitted
    test_rows = report.predictions[report.predictions["segment"] == "test"]
    decision_ts = pd.to_datetime(test_rows["ts"], utc=True).iloc[:-1]  # the last has no next bar in the data
    signals = score_frame(model, trend)
    signals = signals[signals["bar_time"].isin(decision_ts)]
    signals = signals.assign(available_time=signals["bar_time"] + pd.Timedelta(minutes=30))
    first, last = decision_ts.min(), decision_ts.max() + pd.Timedelta(minutes=30)
    part = trend[(trend["ts"] >= first) & (trend["ts"] <= last)]
    bars = pd.DataFrame({"symbol": "TREND/USD", "open_time": part["ts"], "open": part["open"],
                         "high": np.maximum(part["open"], part["close"]),
                         "low": np.minimum(part["open"], part["close"]), "close": part["close"], "volume": 1.0})
    config = TraderConfig(exchange="synthetic", symbol="TREND/USD", strategies=(PpoStrategyConfig(),))
    result = run_backtest(bars, signals, config, run_id="ppo-node", persist_run=False)
    node_return = result.equity["equity"].iloc[-1] / config.initial_cash - 1
    assert len(signals) == len(decision_ts)
    assert node_return == pytest.approx(report.backtest["test"]["ppo"]["total_return"], abs=1e-9)
    assert len(result.fills) == report.backtest["test"]["ppo"]["fills"] > 0


@pytest.mark.filterwarnings("ignore:.*Box observation space")  # standardised features are unbounded
def test_env_follows_the_gymnasium_api(trend: pd.DataFrame) -> None:
    frame = sort_series(trend)
    x = frame[list(TREND_FEATURES)].to_numpy(np.float32)
    ends = window_ends(frame, TREND_FEATURES, 8)
    market = market_data(frame, x, ends, run_ids(frame, TREND_FEATURES), 8)
    env = TradingEnv(market, ExecutionRules(), episode_bars=50)
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=1)
    assert obs.shape == (8 * len(TREND_FEATURES),) and isinstance(env.action_space, gymnasium.spaces.Discrete)
    np.testing.assert_array_equal(obs, x[info["row"] - 7 : info["row"] + 1].reshape(-1))
    steps, truncated, rewards, equity = 0, False, [], [env.equity]
    while not truncated:
        obs, reward, terminated, truncated, info = env.step(steps % 7 < 4)
        rewards.append(reward)
        equity.append(info["equity"])
        steps += 1
    assert steps == 50 and not terminated
    np.testing.assert_allclose(rewards, 100 * np.diff(np.log(equity)), rtol=0, atol=1e-10)
    assert env.account.fills > 10


def test_bars_are_required(trend: pd.DataFrame) -> None:
    with pytest.raises(DataValidationError, match="bars"):
        PpoModel(SMALL).fit(trending_dataset(trend.drop(columns=["open"])))
