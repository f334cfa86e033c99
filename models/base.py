"""The Model interface (qlib style): a model sees only a training set; persistence is its own.

Everything a scorer or the registry needs is on the interface, so neither names a concrete class:
what to feed it (``feature_columns``, ``window``), from when its scores are out of sample
(``oos_start``), what kind it is (``kind``, the registry's key to its class) and when it was
trained (``trained_at``, logical time).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from models.dataset import TrainingSet


@runtime_checkable
class Model(Protocol):
    """``fit(dataset) / predict(frame) / save(path) / load(path)`` plus what scoring needs.

    ``predict`` returns one row per scorable bar of ``frame`` with the key columns
    (exchange, symbol, timeframe, ts) and ``probability`` of an up move on the next bar.
    """

    @property
    def kind(self) -> str:
        """The model family (``"lstm"``): how the registry finds the class that loads it."""
        ...

    @property
    def model_version(self) -> str: ...

    @property
    def threshold(self) -> float: ...

    @property
    def feature_columns(self) -> tuple[str, ...]:
        """The gold feature columns ``predict`` reads, in order."""
        ...

    @property
    def window(self) -> int:
        """Bars per input: a bar is scorable once ``window`` bars up to it are present."""
        ...

    @property
    def oos_start(self) -> datetime:
        """The first bar time it may score without look-ahead: the start of its held-out test segment."""
        ...

    @property
    def trained_at(self) -> datetime:
        """The logical time it was trained at (its data's as-of cut unless given)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Its saved metadata as a JSON-able dict (what the registry lists)."""
        ...

    def fit(self, dataset: TrainingSet) -> Any: ...

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame: ...

    def save(self, path: str | Path) -> Path: ...

    @classmethod
    def load(cls, path: str | Path) -> Model: ...
