"""Every net learns a planted SYNTHETIC signal, and the same seed gives identical predictions."""

from __future__ import annotations

import numpy as np
import pytest

from models.sequence import NET_KINDS, SequenceConfig, SequenceModel
from tests.models.synthetic import FEATURES, synthetic_dataset, synthetic_frame


@pytest.fixture(scope="module")
def dataset():
    return synthetic_dataset(synthetic_frame(n=3000, seed=3))


def _config(net: str, seed: int = 5) -> SequenceConfig:
    return SequenceConfig(net=net, feature_columns=FEATURES, window=6, hidden_size=16, num_layers=2,
                          learning_rate=1e-2, batch_size=128, max_epochs=10, patience=3, samples_per_epoch=0,
                          valid_fraction=0.15, test_fraction=0.2, seed=seed, heads=2)


@pytest.mark.parametrize("net", NET_KINDS)
def test_each_net_learns_the_synthetic_signal_and_is_deterministic(dataset, net):
    model = SequenceModel(_config(net))
    report = model.fit(dataset)
    assert model.kind == net
    assert report.metrics[net].accuracy > 0.9, report.metrics[net]
    assert report.metrics[net].accuracy > report.metrics["logistic"].accuracy + 0.1
    again = SequenceModel(_config(net))
    again.fit(dataset)
    a, b = model.predict(dataset.frame), again.predict(dataset.frame)
    assert np.array_equal(a["probability"].to_numpy(), b["probability"].to_numpy())
    assert model.model_version == again.model_version


def test_the_forward_return_target_is_learnt_net_of_costs(dataset):
    cfg = _config("tcn").model_copy(update={"target": "forward_return", "horizon": 3, "cost": 0.0005,
                                            "embargo_bars": 2})
    model = SequenceModel(cfg)
    report = model.fit(dataset)
    assert model.describe()["config"]["horizon"] == 3
    assert report.fold.gap >= (3 + 2) * dataset.frame["ts"].diff().dropna().iloc[0]
    # Three bars of +-1..2 bps returns never beat a 5 bps cost unless all are up: a rarer, harder class.
    positive = report.metrics["tcn"].positive_rate
    assert 0.05 < positive < 0.5
    assert report.metrics["tcn"].auc > 0.8
