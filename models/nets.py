"""Torch networks: (batch, window, features) -> one logit per window.

Only the network lives here; training, data handling and persistence live in the wrappers
(``models/lstm.py``). Every network takes ``n_features`` plus its own hyper-parameters and is
built by name through :data:`NETS`: LSTM, GRU, a Transformer encoder (sinusoidal positions, the
last position's state as the summary) and a TCN (dilated causal convolutions: the output at a bar
sees only that bar and earlier ones). Each accepts the shared ``hidden_size``/``num_layers``/``dropout``
so one config and one training loop drive them all.
"""

from __future__ import annotations

import math
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

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.n_features:
            raise ValueError(f"expected input (batch, window, {self.n_features}), got {tuple(x.shape)}")


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
        self._check(x)
        out, _ = self.lstm(x)
        logits: torch.Tensor = self.head(out[:, -1, :]).squeeze(-1)
        return logits


class GRUClassifier(SequenceClassifier):
    """GRU over the window; a linear head on the last hidden state."""

    def __init__(
        self, n_features: int, hidden_size: int = 32, num_layers: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__(n_features)
        self.gru = nn.GRU(
            input_size=n_features, hidden_size=hidden_size, num_layers=num_layers, batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        out, _ = self.gru(x)
        logits: torch.Tensor = self.head(out[:, -1, :]).squeeze(-1)
        return logits


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """The (length, dim) sine/cosine position table of "Attention is all you need"."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10_000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div[: dim // 2])
    return table


class TransformerClassifier(SequenceClassifier):
    """Transformer encoder with causal attention; the last bar's state feeds the head.

    The causal mask means the last position attends to the whole window but no position sees a
    later one, so the representation is the same whether or not more bars follow.
    """

    def __init__(
        self, n_features: int, hidden_size: int = 32, num_layers: int = 1, dropout: float = 0.0, heads: int = 4
    ) -> None:
        super().__init__(n_features)
        if hidden_size % heads:
            raise ConfigError(f"hidden_size={hidden_size} must be a multiple of heads={heads}")
        self.embed = nn.Linear(n_features, hidden_size)
        layer = nn.TransformerEncoderLayer(
            d_model=hidden_size, nhead=heads, dim_feedforward=2 * hidden_size, dropout=dropout, batch_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=num_layers, enable_nested_tensor=False)
        self.head = nn.Linear(hidden_size, 1)
        self.hidden_size = hidden_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        length = x.shape[1]
        h = self.embed(x) + sinusoidal_positions(length, self.hidden_size).to(x.dtype)
        mask = nn.Transformer.generate_square_subsequent_mask(length, dtype=x.dtype)
        out = self.encoder(h, mask=mask, is_causal=True)
        logits: torch.Tensor = self.head(out[:, -1, :]).squeeze(-1)
        return logits


class _CausalBlock(nn.Module):
    """Two dilated causal convolutions with a residual connection (Bai et al., 2018)."""

    def __init__(self, channels_in: int, channels: int, kernel_size: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.pad = (kernel_size - 1) * dilation
        self.conv1 = nn.Conv1d(channels_in, channels, kernel_size, dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size, dilation=dilation)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv1d(channels_in, channels, 1) if channels_in != channels else nn.Identity()

    def _causal(self, conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = conv(nn.functional.pad(x, (self.pad, 0)))  # left padding only: no future bar
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(torch.relu(self._causal(self.conv1, x)))
        h = self.drop(torch.relu(self._causal(self.conv2, h)))
        out: torch.Tensor = torch.relu(h + self.skip(x))
        return out


class TCNClassifier(SequenceClassifier):
    """Temporal convolutional network: ``num_layers`` blocks with dilations 1, 2, 4, ...; head on the last bar."""

    def __init__(
        self, n_features: int, hidden_size: int = 32, num_layers: int = 2, dropout: float = 0.0, kernel_size: int = 3
    ) -> None:
        super().__init__(n_features)
        blocks = [
            _CausalBlock(n_features if i == 0 else hidden_size, hidden_size, kernel_size, 2**i, dropout)
            for i in range(num_layers)
        ]
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        out = self.blocks(x.transpose(1, 2))  # (batch, channels, window)
        logits: torch.Tensor = self.head(out[:, :, -1]).squeeze(-1)
        return logits


NETS: dict[str, Callable[..., SequenceClassifier]] = {
    "lstm": LSTMClassifier,
    "gru": GRUClassifier,
    "transformer": TransformerClassifier,
    "tcn": TCNClassifier,
}


def build_net(kind: str, n_features: int, **params: Any) -> SequenceClassifier:
    """Instantiate the network registered as ``kind``."""
    try:
        factory = NETS[kind]
    except KeyError as e:
        raise ConfigError(f"net={kind!r}: unknown network; known: {sorted(NETS)}") from e
    return factory(n_features, **params)
