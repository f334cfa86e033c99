"""The one training loop every net shares: seeded, deterministic, early stopping on validation loss.

``deterministic`` seeds torch, forces deterministic kernels and a fixed intra-op thread count for
the duration of a fit or a prediction (float sums depend on how work is split across threads, so
the thread count is part of what makes a result reproducible). ``train_net`` draws a seeded
permutation of training windows per epoch, steps Adam on BCE-with-logits and keeps the weights of
the epoch with the lowest validation loss.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from cryptolake.logs import get_logger
from models.nets import SequenceClassifier

log = get_logger(__name__)

Batch = Callable[[np.ndarray], torch.Tensor]


@contextmanager
def deterministic(seed: int, threads: int) -> Iterator[None]:
    """Seed every RNG, force deterministic kernels and a fixed thread count; restore afterwards."""
    previous_threads = torch.get_num_threads()
    previous_det = torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous_det)
        torch.set_num_threads(previous_threads)


@dataclass(frozen=True)
class LoopConfig:
    """The loop's knobs (a subset of every net's config)."""

    learning_rate: float
    weight_decay: float
    batch_size: int
    max_epochs: int
    patience: int
    samples_per_epoch: int
    seed: int


def probabilities(net: SequenceClassifier, batch: Batch, ends: np.ndarray, step: int = 4096) -> np.ndarray:
    """Sigmoid of the net's logits for the windows ending at ``ends`` (eval mode, no gradients)."""
    net.eval()
    out = np.empty(len(ends), dtype=np.float32)
    with torch.no_grad():
        for lo in range(0, len(ends), step):
            out[lo : lo + step] = torch.sigmoid(net(batch(ends[lo : lo + step]))).numpy()
    return out


def train_net(
    net: SequenceClassifier,
    batch: Batch,
    labels: np.ndarray,
    train_ends: np.ndarray,
    valid_ends: np.ndarray,
    cfg: LoopConfig,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> tuple[list[dict[str, float]], int]:
    """Train ``net`` in place; return the per-epoch history and the best (restored) epoch."""
    rng = np.random.default_rng(cfg.seed)
    optimiser = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    y_valid = torch.from_numpy(labels[valid_ends].astype(np.float32))
    best_loss, best_epoch, best_state = float("inf"), 0, copy.deepcopy(net.state_dict())
    history: list[dict[str, float]] = []
    for epoch in range(1, cfg.max_epochs + 1):
        n = len(train_ends) if cfg.samples_per_epoch == 0 else min(cfg.samples_per_epoch, len(train_ends))
        chosen = rng.permutation(train_ends)[:n]
        net.train()
        total = 0.0
        for lo in range(0, n, cfg.batch_size):
            rows = chosen[lo : lo + cfg.batch_size]
            optimiser.zero_grad()
            loss = loss_fn(net(batch(rows)), torch.from_numpy(labels[rows].astype(np.float32)))
            loss.backward()
            optimiser.step()
            total += float(loss.item()) * len(rows)
        p_valid = torch.from_numpy(probabilities(net, batch, valid_ends)).clamp(1e-7, 1 - 1e-7)
        valid_loss = float(torch.nn.functional.binary_cross_entropy(p_valid, y_valid).item())
        history.append({"epoch": epoch, "train_loss": total / n, "valid_loss": valid_loss})
        log.debug("net.epoch", extra={**history[-1], "of": cfg.max_epochs})
        if on_epoch is not None:
            on_epoch(history[-1])
        if valid_loss < best_loss - 1e-6:
            best_loss, best_epoch, best_state = valid_loss, epoch, copy.deepcopy(net.state_dict())
        elif epoch - best_epoch >= cfg.patience:
            break
    net.load_state_dict(best_state)
    return history, best_epoch
