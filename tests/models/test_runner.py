"""The walk-forward runner: every net on every fold, ensembles, leaderboard, registration and the champion."""

from __future__ import annotations

from models.registry import ModelRegistry
from models.runner import RunPlan, register_run, run_walk_forward
from models.sequence import SequenceConfig
from tests.models.synthetic import FEATURES, synthetic_dataset, synthetic_frame


def test_two_nets_on_three_folds_register_with_fold_metrics_and_a_gated_champion(tmp_path):
    from cryptolake.settings import Settings

    ds = synthetic_dataset(synthetic_frame(n=2400, seed=6, symbols=("A/USD", "B/USD")))
    base = SequenceConfig(feature_columns=FEATURES, window=6, hidden_size=8, max_epochs=3, patience=2,
                          samples_per_epoch=1024, batch_size=128, learning_rate=1e-2, seed=3)
    plan = RunPlan(nets=("gru", "tcn"), n_folds=3, base=base, select="mutual_info", select_k=2)
    seen: list[tuple[str, int, str]] = []
    result = run_walk_forward(ds, plan, Settings(), progress=lambda n, f, e: seen.append((n, f, e)))
    assert [(n, f) for n, f, e in seen if e == "done"] == [(n, f) for f in range(3) for n in ("gru", "tcn")]
    assert sorted(result.folds["fold"].unique()) == [0, 1, 2]
    assert {"gru", "tcn", "ens_mean", "ens_stack", "ens_select", "logistic", "base_rate"} <= set(result.folds["model"])
    board = result.board.set_index("model")
    assert board.loc["gru", "accuracy"] > 0.75 and board.loc["gru", "auc"] > board.loc["logistic", "auc"]
    registry = ModelRegistry(tmp_path)
    register_run(result, registry, Settings())
    assert set(result.registered) == {"gru", "tcn"}
    for net, entry in result.registered.items():
        meta = entry.metadata
        assert len(meta["fold_metrics"]) == 3 and net in meta["fold_metrics"][0]
        assert meta["feature_selection"]["method"] == "mutual_info"
        assert tuple(meta["feature_columns"]) == ("f0", "log_ret_1") or "f0" in meta["feature_columns"]
        assert entry.gate is not None and entry.gate["passed"] is True
    best = max(result.gates, key=lambda n: result.gates[n].score)
    assert result.champion == result.registered[best].version == registry.champion().version
