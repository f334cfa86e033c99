"""The Model interface (qlib style): a model sees only a training set; persistence is its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from models.dataset import TrainingSet


@runtime_checkable
class Model(Protocol):
    """``fit(dataset) / predict(frame) / save(path) / load(path)``.

    ``predict`` returns one row per scorable bar of ``frame`` with the key columns
    (exchange, symbol, timeframe, ts) and ``probability`` of an up move on the next bar.
    """

    @property
    def model_version(self) -> str: ...

    @property
    def threshold(self) -> float: ...

    def fit(self, dataset: TrainingSet) -> Any: ...

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame: ...

    def save(self, path: str | Path) -> Path: ...

    @classmethod
    def load(cls, path: str | Path) -> Model: ...
