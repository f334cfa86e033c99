"""The champion gate, the registry's gate record and the scorer's refusal of a failed model."""

from __future__ import annotations

import pytest

from cryptolake.errors import ConfigError, DataValidationError
from models.gate import decide
from models.registry import ModelRegistry
from models.sequence import SequenceConfig, SequenceModel
from tests.models.synthetic import FEATURES, synthetic_dataset, synthetic_frame

FOLDS = [
    {"net": {"auc": 0.56, "log_loss": 0.68}, "logistic": {"auc": 0.54, "log_loss": 0.69},
     "base_rate": {"auc": 0.5, "log_loss": 0.693}},
    {"net": {"auc": 0.54, "log_loss": 0.69}, "logistic": {"auc": 0.53, "log_loss": 0.692},
     "base_rate": {"auc": 0.5, "log_loss": 0.693}},
]


def test_a_challenger_beating_every_baseline_by_the_margin_passes():
    gate = decide("net", FOLDS, ["logistic", "base_rate"], metric="auc", margin=0.01)
    assert gate.passed and gate.score == pytest.approx(0.55)
    assert gate.baselines == pytest.approx({"logistic": 0.535, "base_rate": 0.5})


def test_the_margin_and_the_champion_are_enforced_and_named():
    gate = decide("net", FOLDS, ["logistic", "base_rate"], metric="auc", margin=0.02)
    assert not gate.passed and "logistic (auc 0.5350)" in gate.reason and "base_rate" not in gate.reason
    champ = decide("net", FOLDS, ["logistic"], metric="auc", margin=0.0, champion=("old", 0.56))
    assert not champ.passed and "champion old" in champ.reason
    lower = decide("net", FOLDS, ["logistic"], metric="log_loss", margin=0.0)
    assert lower.passed  # 0.685 < 0.691: lower is better for log loss
    with pytest.raises(DataValidationError, match="gate_metric"):
        decide("net", FOLDS, ["logistic"], metric="sharpe", margin=0.0)


def test_a_failed_model_is_registered_never_promoted_and_the_scorer_refuses_it(tmp_path):
    from pipeline.scorer import gate_refusal

    ds = synthetic_dataset(synthetic_frame(n=800, seed=4))
    model = SequenceModel(SequenceConfig(net="gru", feature_columns=FEATURES, window=4, hidden_size=4, max_epochs=1,
                                         samples_per_epoch=64, batch_size=32))
    model.fit(ds)
    registry = ModelRegistry(tmp_path)
    failed = decide("net", FOLDS, ["logistic"], metric="auc", margin=0.5).as_dict()
    with pytest.raises(ConfigError, match="failed the gate"):
        registry.register(model, promote=True, gate=failed)
    entry = registry.register(model, gate=failed)
    assert entry.kind == "gru" and not entry.promoted and entry.may_trade[0] is False
    with pytest.raises(ConfigError, match="failed the gate"):
        registry.promote(entry.version)
    refusal = gate_refusal(registry, entry.version)
    assert refusal is not None and "does not beat logistic" in refusal
    loaded = registry.load(entry.version)
    assert loaded.kind == "gru" and loaded.model_version == entry.version
    meta = registry.entry(entry.version).metadata
    assert meta["code_hash"] and meta["table_versions"] == {"gold.features": 1, "gold.labels": 1}
    assert meta["config"]["net"] == "gru" and tuple(meta["feature_columns"]) == FEATURES
