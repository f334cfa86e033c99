"""Overfitting figures, tail risk, the parameter search and the tearsheet (values checked by hand)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from research.overfit import pbo_cscv
from research.search import Series, search, segments
from research.tearsheet import monthly_returns, write_tearsheet
from research.vector import bar_columns
from tests.trader.conftest import gym_candles
from trader.metrics import deflated_sharpe, expected_max_sharpe, tail_risk


def test_tail_risk_by_hand() -> None:
    r = np.array([-0.05, -0.03, -0.02, -0.01, 0.0, 0.01, 0.01, 0.02, 0.03, 0.04] * 10)  # SYNTHETIC
    out = tail_risk(r, alpha=0.1)
    q = np.quantile(r, 0.1)
    assert out["var"] == pytest.approx(-q) and out["cvar"] == pytest.approx(-r[r <= q].mean())
    mu, sd = r.mean(), r.std(ddof=1)
    m2 = ((r - mu) ** 2).mean()
    s, k = ((r - mu) ** 3).mean() / m2**1.5, ((r - mu) ** 4).mean() / m2**2 - 3
    z = norm.ppf(0.1)
    zcf = z + (z**2 - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s**2 / 36
    assert out["cf_var"] == pytest.approx(-(mu + sd * zcf))
    assert out["cf_cvar"] > out["cf_var"]  # the shortfall is beyond the quantile


def test_cornish_fisher_equals_gaussian_without_skew_or_kurtosis() -> None:
    r = norm.ppf((np.arange(20_000) + 0.5) / 20_000) * 0.01  # SYNTHETIC exact normal quantiles
    out = tail_risk(r)
    assert out["cf_var"] == pytest.approx(-norm.ppf(0.05) * r.std(ddof=1), rel=2e-3)
    assert out["cf_cvar"] == pytest.approx(norm.pdf(norm.ppf(0.05)) / 0.05 * r.std(ddof=1), rel=5e-3)


def test_deflated_sharpe_by_hand() -> None:
    sr0 = expected_max_sharpe(100, 0.0004)
    g = 0.5772156649015329
    assert sr0 == pytest.approx(0.02 * ((1 - g) * norm.ppf(0.99) + g * norm.ppf(1 - 1 / (100 * math.e))))
    r = norm.ppf((np.arange(1000) + 0.5) / 1000) * 0.01 + 0.001  # SYNTHETIC: Sharpe 0.1 per bar, no skew
    out = deflated_sharpe(r, 100, 0.0004)
    sr = r.mean() / r.std(ddof=1)
    assert out["dsr"] == pytest.approx(norm.cdf((sr - sr0) * math.sqrt(999) / math.sqrt(1 + 0.5 * sr**2)), abs=2e-3)
    assert out["dsr"] < out["psr"]  # deflating for 100 trials lowers the confidence


def test_pbo_separates_skill_from_noise() -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.01, (2000, 40))  # SYNTHETIC
    skill = noise.copy()
    skill[:, 3] += 0.002
    assert pbo_cscv(skill).pbo == 0.0
    assert 0.2 < pbo_cscv(noise).pbo < 0.8
    with pytest.raises(ValueError, match="n_blocks=3"):
        pbo_cscv(noise, n_blocks=3)


def test_walk_forward_segments_never_look_ahead() -> None:
    segs = segments(700, 6)
    assert len(segs) == 6
    for (a, b), out in segs:
        assert out is not None and out[0] == b and a < b < out[1]


@pytest.fixture(scope="module")
def series() -> list[Series]:
    return [Series(s, bar_columns(gym_candles(s.split("/")[0]).iloc[:3000])) for s in ("BTC/USD", "ETH/USD")]


def test_search_grid_and_tpe_on_real_bars(series: list[Series]) -> None:
    tpe = search("breakout", series, method="tpe", trials=8, walk_forward=2, seed=1)
    again = search("breakout", series[:1] * 0 + series, method="tpe", trials=8, walk_forward=2, seed=1)
    assert tpe.chosen == again.chosen  # seeded: reproducible
    assert len(tpe.folds) == 2 and all(f.best_out is not None for f in tpe.folds)
    best = max(tpe.folds[-1].trials, key=lambda t: t["sharpe"])
    assert tpe.chosen == best["params"]
    assert 0.0 <= tpe.pbo <= 1.0 and 0.0 <= tpe.deflated["dsr"] <= 1.0
    nsga = search("breakout", series[:1], method="nsga2", trials=6, walk_forward=0)
    assert len(nsga.folds) == 1 and nsga.folds[0].best_out is None


@pytest.mark.slow
def test_search_on_dask(series: list[Series]) -> None:
    from cryptolake.compute import dask_client

    with dask_client(n_workers=1) as client:
        on_dask = search("daytrade", series[:1], method="random", trials=4, walk_forward=2, seed=3, client=client)
    local = search("daytrade", series[:1], method="random", trials=4, walk_forward=2, seed=3)
    assert on_dask.chosen == local.chosen and on_dask.walk_forward_sharpe == pytest.approx(local.walk_forward_sharpe)


def test_tearsheet_files(tmp_path: Path) -> None:
    idx = pd.date_range("2019-01-01", periods=3000, freq="30min", tz="UTC")
    eq = pd.Series(10_000 * np.cumprod(1 + np.random.default_rng(2).normal(0, 0.002, 3000)), index=idx)  # SYNTHETIC
    m = monthly_returns(eq)
    assert m.loc[2019, 1] == pytest.approx(eq[eq.index.month == 1].iloc[-1] / eq.iloc[0] - 1)
    trades = pd.DataFrame({"symbol": ["BTC/USD"], "pnl": [12.5]})
    html, png = write_tearsheet(tmp_path / "t.html", title="SYNTHETIC", equity=eq, benchmark=eq * 0.9,
                                metrics={"sharpe": 1.0}, trades=trades, exposure=(eq > eq.mean()).astype(float),
                                timeline=pd.DataFrame({"regime": ["trend"] * 3000}, index=idx))
    text = html.read_text()
    assert "Monthly returns" in text and "Regime and strategy timeline" in text and "12.5000" in text
    assert png.read_bytes()[:4] == b"\x89PNG"
