"""The model registry: register, load by version, list, champion as of a time, idempotence, errors.

Models are tiny LSTMs trained on a SYNTHETIC frame (random features, labels from the sign of a
noisy ``log_ret_1``), so these tests need no lake, no Spark and take a few seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryptolake.errors import ConfigError, DataValidationError, ModelNotFoundError
from cryptolake.tables import FEATURE_COLUMNS
from models.base import Model
from models.dataset import TrainingSet
from models.lstm import LstmConfig, LstmModel
from models.registry import INDEX_FILE, ModelRegistry

BAR = timedelta(minutes=30)
T0 = datetime(2018, 1, 1, tzinfo=UTC)
CONFIG = LstmConfig(window=4, hidden_size=4, max_epochs=1, patience=1, samples_per_epoch=64, batch_size=32,
                    valid_fraction=0.2, test_fraction=0.2, seed=3)


def synthetic_training_set(bars: int, seed: int) -> TrainingSet:
    """SYNTHETIC: ``bars`` 30m bars for two symbols from T0; as-of = the last bar's close."""
    rng = np.random.default_rng(seed)
    parts = []
    for symbol in ("AAA/USD", "BBB/USD"):
        ts = pd.date_range(T0, periods=bars, freq="30min", tz="UTC")
        feats = rng.normal(size=(bars, len(FEATURE_COLUMNS)))
        frame = pd.DataFrame(feats, columns=list(FEATURE_COLUMNS))
        frame.insert(0, "ts", ts)
        frame.insert(0, "timeframe", "30m")
        frame.insert(0, "symbol", symbol)
        frame.insert(0, "exchange", "synthetic")
        frame["close_time"] = frame["ts"] + BAR
        frame["next_direction"] = (frame["log_ret_1"] + rng.normal(scale=0.5, size=bars) > 0).astype("int32")
        frame["label_available_time"] = frame["close_time"] + BAR
        parts.append(frame)
    as_of = T0 + bars * BAR + BAR
    return TrainingSet(frame=pd.concat(parts, ignore_index=True), table_versions={"gold.features": seed},
                       symbols=("AAA/USD", "BBB/USD"), start=T0, end=as_of, as_of=as_of)


def trained(bars: int, seed: int, trained_at: datetime | None = None) -> LstmModel:
    model = LstmModel(CONFIG)
    model.fit(synthetic_training_set(bars, seed), trained_at=trained_at)
    return model


@pytest.fixture(scope="module")
def older() -> LstmModel:
    return trained(240, seed=1)  # trained at T0 + 241 bars


@pytest.fixture(scope="module")
def newer() -> LstmModel:
    return trained(300, seed=2)  # trained at T0 + 301 bars


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "models")


def test_lstm_satisfies_the_model_protocol_with_its_out_of_sample_start(older: LstmModel) -> None:
    assert isinstance(older, Model)
    meta = older.metadata
    assert meta is not None
    assert older.kind == "lstm"
    assert older.feature_columns == FEATURE_COLUMNS and older.window == 4
    assert older.oos_start == meta.segments["test"][0]
    assert meta.segments["valid"][1] < older.oos_start < meta.segments["test"][1]
    assert older.trained_at == T0 + 241 * BAR
    assert older.describe()["model_version"] == older.model_version


def test_a_registered_model_loads_by_version_with_the_same_predictions(
    registry: ModelRegistry, older: LstmModel
) -> None:
    entry = registry.register(older)
    assert entry.version == older.model_version and entry.kind == "lstm" and not entry.promoted
    loaded = registry.load(older.model_version)
    assert isinstance(loaded, Model) and loaded.model_version == older.model_version
    assert loaded.oos_start == older.oos_start and loaded.trained_at == older.trained_at
    frame = synthetic_training_set(240, seed=1).frame
    assert np.array_equal(loaded.predict(frame)["probability"].to_numpy(),
                          older.predict(frame)["probability"].to_numpy())
    assert registry.path(older.model_version) == registry.root / older.model_version


def test_loading_dispatches_on_the_registered_kind(tmp_path: Path, older: LstmModel) -> None:
    class Tagged(LstmModel):
        """Stands in for another class registered under the kind."""

    ModelRegistry(tmp_path).register(older)
    assert type(ModelRegistry(tmp_path, kinds={"lstm": Tagged}).load(older.model_version)) is Tagged
    with pytest.raises(ConfigError, match="kind 'lstm'"):
        ModelRegistry(tmp_path, kinds={"gru": Tagged}).load(older.model_version)


def test_versions_are_listed_oldest_first_with_their_metadata(
    registry: ModelRegistry, older: LstmModel, newer: LstmModel
) -> None:
    registry.register(newer)
    registry.register(older)
    listed = registry.versions()
    assert [e.version for e in listed] == [older.model_version, newer.model_version]
    assert [e.trained_at for e in listed] == [older.trained_at, newer.trained_at]
    assert [e.oos_start for e in listed] == [older.oos_start, newer.oos_start]
    first = listed[0].metadata
    assert first["model_version"] == older.model_version
    assert first["samples"] == older.describe()["samples"] and "lstm" in first["metrics"]


def test_registering_the_same_version_twice_changes_nothing(registry: ModelRegistry, older: LstmModel) -> None:
    first = registry.register(older)
    index = (registry.root / INDEX_FILE).read_bytes()
    weights = registry.path(older.model_version) / "model.pt"
    stamp = weights.stat().st_mtime_ns
    again = trained(240, seed=1)  # a fresh fit of the same data and config: the same version
    assert again.model_version == older.model_version
    assert registry.register(again) == first
    assert (registry.root / INDEX_FILE).read_bytes() == index
    assert weights.stat().st_mtime_ns == stamp
    assert len(registry.versions()) == 1


def test_index_writes_leave_no_temporary_files(registry: ModelRegistry, older: LstmModel, newer: LstmModel) -> None:
    registry.register(older, promote=True)
    registry.register(newer)
    registry.demote(older.model_version)
    names = sorted(p.name for p in registry.root.iterdir())
    assert names == sorted([".lock", INDEX_FILE, older.model_version, newer.model_version])


def test_a_failed_save_leaves_the_index_and_folder_as_they_were(
    registry: ModelRegistry, older: LstmModel, newer: LstmModel
) -> None:
    class Broken(LstmModel):
        def save(self, path: str | Path) -> Path:
            (Path(path) / "model.pt").write_text("half")
            raise OSError("disk full")

    registry.register(older)
    before = (registry.root / INDEX_FILE).read_bytes()
    broken = Broken(newer.config)
    broken.net, broken.standardiser, broken.metadata = newer.net, newer.standardiser, newer.metadata
    with pytest.raises(OSError, match="disk full"):
        registry.register(broken)
    assert (registry.root / INDEX_FILE).read_bytes() == before
    assert sorted(p.name for p in registry.root.iterdir()) == sorted([".lock", INDEX_FILE, older.model_version])
    with pytest.raises(ModelNotFoundError):
        registry.load(newer.model_version)


def test_champion_is_the_latest_promoted_model_trained_by_as_of(
    registry: ModelRegistry, older: LstmModel, newer: LstmModel
) -> None:
    registry.register(older, promote=True)
    registry.register(newer, promote=True)
    assert registry.champion().version == newer.model_version
    assert registry.champion(newer.trained_at).version == newer.model_version
    between = newer.trained_at - BAR
    assert older.trained_at <= between
    assert registry.champion(between).version == older.model_version  # a past run keeps its champion
    assert registry.load_champion(between).model_version == older.model_version
    with pytest.raises(ModelNotFoundError, match="no promoted model trained at or before") as info:
        registry.champion(older.trained_at - BAR)
    assert info.value.version == "champion"


def test_among_equal_trained_at_the_model_registered_last_is_champion(
    registry: ModelRegistry, older: LstmModel
) -> None:
    retrained = trained(240, seed=9, trained_at=older.trained_at)  # a re-run on rewritten tables
    assert retrained.model_version != older.model_version and retrained.trained_at == older.trained_at
    registry.register(retrained, promote=True)
    registry.register(older, promote=True)
    assert [e.seq for e in registry.versions()] == [1, 2]
    assert registry.champion(older.trained_at).version == older.model_version


def test_only_promoted_models_are_champions_and_demotion_rolls_back(
    registry: ModelRegistry, older: LstmModel, newer: LstmModel
) -> None:
    registry.register(older)
    registry.register(newer)
    with pytest.raises(ModelNotFoundError, match="no promoted model at all"):
        registry.champion()
    registry.promote(older.model_version)
    registry.promote(newer.model_version)
    assert registry.champion().version == newer.model_version
    assert registry.demote(newer.model_version).promoted is False
    assert registry.champion().version == older.model_version
    assert registry.register(newer, promote=True).promoted is True  # re-registering may promote
    assert registry.champion().version == newer.model_version


def test_unknown_versions_raise_a_typed_error_naming_them(registry: ModelRegistry, older: LstmModel) -> None:
    registry.register(older)
    for call in (registry.load, registry.entry, registry.path, registry.promote, registry.demote):
        with pytest.raises(ModelNotFoundError, match="lstm-nope") as info:
            call("lstm-nope")
        assert info.value.version == "lstm-nope"


def test_bad_inputs_are_refused_naming_the_field(registry: ModelRegistry) -> None:
    with pytest.raises(DataValidationError, match="as_of"):
        registry.champion(datetime(2018, 1, 1))  # naive
    registry.root.mkdir(parents=True)
    (registry.root / INDEX_FILE).write_text('{"format": 1, "models": {"x": {"version": "x"}}}')
    with pytest.raises(ConfigError, match="index"):
        registry.versions()


def test_the_pipeline_registry_lives_where_training_saved_models(tmp_path: Path) -> None:
    from tests.conftest import settings_in

    settings = settings_in(tmp_path)
    assert ModelRegistry.for_settings(settings).root == settings.paths.artifacts_dir / "models"
