from __future__ import annotations

import pytest
import torch

from cryptolake.errors import ConfigError
from models.nets import LSTMClassifier, build_net


def test_lstm_gives_one_logit_per_window():
    torch.manual_seed(0)
    net = build_net("lstm", 5, hidden_size=4)
    assert isinstance(net, LSTMClassifier)
    out = net(torch.zeros(7, 12, 5))
    assert out.shape == (7,)


def test_lstm_rejects_wrong_feature_count():
    net = build_net("lstm", 5, hidden_size=4)
    with pytest.raises(ValueError, match=r"\(batch, window, 5\)"):
        net(torch.zeros(2, 3, 4))


def test_unknown_net_is_named():
    with pytest.raises(ConfigError, match="'rnn'"):
        build_net("rnn", 3)
