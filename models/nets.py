"""Torch networks: (batch, window, features) -> one logit per window.

Only the network lives here; training, data handling and persistence live in the wrappers
(``models/lstm.py``). Every network takes ``n_features`` plus its own hyper-parameters and is
built by name through :data:`NETS`, so GRU/Transformer/TCN can be added beside the LSTM.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from cryptolake.errors import ConfigError


class SequenceClassifier(nn.Module):
    """Base class: ``forward(x[batch, window, features]) -> logits[batch]``."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        if n_features < 1:
            raise ConfigError(f"n_features={n_features}: a network needs at least one feature")
        self.n_features = n_features


class LSTMClassifier(SequenceClassifier):
    """LSTM over the window; a linear head on the last hidden state gives the up-move logit."""

    def __init__(
        self, n_features: int, hidden_size: int = 32, num_layers: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__(n_features)
        self.lstm = nn.LSTM(
            input_size=n_features,
            hidden_size=hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.n_features:
            raise ValueError(f"expected input (batch, window, {self.n_features}), got {tuple(x.shape)}")
        out, _ = self.lstm(x)
        logits: torch.Tensor = self.head(out[:, -1, :]).squeeze(-1)
        return logits


NETS: dict[str, Callable[..., SequenceClassifier]] = {"lstm": LSTMClassifier}


def build_net(kind: str, n_features: int, **params: Any) -> SequenceClassifier:
    """Instantiate the network registered as ``kind``."""
    try:
        factory = NETS[kind]
    except KeyError as e:
        raise ConfigError(f"net={kind!r}: unknown network; known: {sorted(NETS)}") from e
    return factory(n_features, **params)
