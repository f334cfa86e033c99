"""``cryptolake train --model ppo``: its argument errors name the option (training itself: tests/models/test_ppo.py)."""

from __future__ import annotations

from typer.testing import CliRunner

from cli.main import app


def test_ppo_refuses_the_lake_source_and_says_why() -> None:
    result = CliRunner().invoke(app, ["train", "--model", "ppo", "--source", "lake"])
    assert result.exit_code == 2
    assert "bar opens" in result.output and "--source embedded" in result.output


def test_an_unknown_model_names_ppo_among_the_choices() -> None:
    result = CliRunner().invoke(app, ["train", "--model", "ppo2"])
    assert result.exit_code == 2
    assert "ppo2" in result.output and "'ppo'" in result.output


def test_fold_must_be_one_of_the_folds() -> None:
    result = CliRunner().invoke(app, ["train", "--model", "ppo", "--walk-forward", "3", "--fold", "4"])
    assert result.exit_code == 2
    assert "--fold 4" in result.output
