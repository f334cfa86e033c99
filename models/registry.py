"""The model registry: trained models by version, with their metadata, and a champion per point in time.

Layout under its root (``settings.paths.artifacts_dir / "models"``, where training saves models)::

    <version>/    the model's own files, written by ``Model.save``
    index.json    every registered version: kind, trained_at, oos_start, promoted, metadata
    .lock         held (flock) around every read-modify-write of the index

Loading dispatches on the registered kind through a kind -> class map, so callers get a
:class:`models.base.Model` and never name a concrete class. The index is the commit point: a
model folder counts only once its entry is in the index, and the index is replaced atomically
(temporary file + rename), so a crash leaves the old index or the new one, never half of one.

Champion policy: ``champion(as_of)`` is the *promoted* model with the latest ``trained_at <= as_of``
(among equal ``trained_at``, the one registered last: a re-run of an interval that retrains on
rewritten tables registers a new version with the same ``trained_at``), so a run for a past
interval uses the champion it would have had then. Training promotes what it trains; to roll
back, demote the newer model.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from cryptolake.errors import ConfigError, DataValidationError, ModelNotFoundError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings
from models.base import Model
from models.ppo import KIND as PPO_KIND
from models.ppo import PpoModel
from models.sequence import NET_KINDS, SequenceModel

log = get_logger(__name__)

INDEX_FILE = "index.json"
LOCK_FILE = ".lock"

MODEL_KINDS: Mapping[str, type[Model]] = {**dict.fromkeys(NET_KINDS, SequenceModel), PPO_KIND: PpoModel}


class RegistryEntry(BaseModel):
    """One registered model version, as the index records it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    kind: str
    seq: int  # registration order, 1-based: breaks ties between equal trained_at
    trained_at: datetime
    oos_start: datetime
    promoted: bool = False
    metadata: dict[str, Any]
    gate: dict[str, Any] | None = None  # the champion gate's decision (models.gate.GateDecision), if one ran

    @property
    def may_trade(self) -> tuple[bool, str]:
        """Whether a scorer may publish this model's signals, and why (a failed gate says what it lost to)."""
        if self.gate is None:
            return True, "no gate decision recorded (registered without one)"
        return bool(self.gate.get("passed")), str(self.gate.get("reason", ""))


class _Index(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal[1] = 1
    models: dict[str, RegistryEntry] = {}


def _utc(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise DataValidationError(name, value, "must be a UTC-aware datetime")
    return value


def _check_version(version: str) -> str:
    if not version or version.startswith(".") or "/" in version or "\\" in version:
        raise DataValidationError("model_version", version, "must be a plain folder name")
    return version


class ModelRegistry:
    """Register, list, load and promote models under ``root``."""

    def __init__(self, root: Path, kinds: Mapping[str, type[Model]] | None = None) -> None:
        self.root = Path(root)
        self.kinds: Mapping[str, type[Model]] = dict(kinds) if kinds is not None else dict(MODEL_KINDS)

    @classmethod
    def for_settings(cls, settings: Settings) -> ModelRegistry:
        """The registry where the pipeline keeps its models."""
        return cls(settings.paths.artifacts_dir / "models")

    # --- reading ---------------------------------------------------------------------------
    def versions(self) -> list[RegistryEntry]:
        """Every registered version with its metadata, oldest ``trained_at`` first (then registration order)."""
        return sorted(self._read().models.values(), key=lambda e: (e.trained_at, e.seq))

    def entry(self, version: str) -> RegistryEntry:
        """The index entry of ``version``; ModelNotFoundError if it is not registered."""
        found = self._read().models.get(version)
        if found is None:
            raise ModelNotFoundError(version, f"not registered in {self.root}")
        return found

    def path(self, version: str) -> Path:
        """The folder holding a registered version's files."""
        return self.root / self.entry(version).version

    def load(self, version: str) -> Model:
        """Load a registered version through its kind's class."""
        entry = self.entry(version)
        cls = self.kinds.get(entry.kind)
        if cls is None:
            raise ConfigError(f"model {version!r} is of kind {entry.kind!r}; known kinds: {sorted(self.kinds)}")
        model = cls.load(self.root / entry.version)
        if model.model_version != version:
            raise ConfigError(f"model folder {self.root / version} holds version {model.model_version!r}")
        return model

    def champion(self, as_of: datetime | None = None) -> RegistryEntry:
        """The promoted model with the latest ``trained_at <= as_of`` (any time if ``as_of`` is None)."""
        cut = _utc("as_of", as_of) if as_of is not None else None
        candidates = [e for e in self.versions() if e.promoted and (cut is None or e.trained_at <= cut)]
        if not candidates:
            when = f"trained at or before {cut.isoformat()}" if cut is not None else "at all"
            raise ModelNotFoundError("champion", f"no promoted model {when} in {self.root}")
        return candidates[-1]

    def load_champion(self, as_of: datetime | None = None) -> Model:
        """Load :meth:`champion` ``(as_of)``."""
        return self.load(self.champion(as_of).version)

    # --- writing ---------------------------------------------------------------------------
    def register(self, model: Model, *, promote: bool = False, gate: Mapping[str, Any] | None = None) -> RegistryEntry:
        """Save ``model`` under its version and index it; a version already registered is left as it is.

        ``promote`` then makes it a champion candidate (see the module's policy); ``gate`` records
        the champion gate's decision (a model that failed it must not be promoted).
        """
        if promote and gate is not None and not gate.get("passed"):
            raise ConfigError(f"model {model.model_version!r} failed the gate and cannot be promoted: "
                              f"{gate.get('reason')}")
        version = _check_version(model.model_version)
        if model.kind not in self.kinds:
            raise ConfigError(f"model kind {model.kind!r} has no class to load it; known: {sorted(self.kinds)}")
        with self._locked():
            index = self._read()
            entry = index.models.get(version)
            if entry is None:
                self._save_folder(model, version)
                entry = RegistryEntry(
                    version=version, kind=model.kind, seq=max((e.seq for e in index.models.values()), default=0) + 1,
                    trained_at=_utc("trained_at", model.trained_at),
                    oos_start=_utc("oos_start", model.oos_start), metadata=model.describe(),
                    gate=dict(gate) if gate is not None else None,
                )
                log.info("registry.registered", extra={"model_version": version, "kind": model.kind})
            elif entry.kind != model.kind:
                raise ConfigError(f"model {version!r} is registered as kind {entry.kind!r}, not {model.kind!r}")
            if gate is not None and entry.gate != dict(gate):
                entry = entry.model_copy(update={"gate": dict(gate)})
            if promote and not entry.promoted:
                entry = entry.model_copy(update={"promoted": True})
            if index.models.get(version) != entry:
                self._write(_Index(models={**index.models, version: entry}))
        return entry

    def promote(self, version: str) -> RegistryEntry:
        """Make a registered version a champion candidate."""
        return self._set_promoted(version, True)

    def demote(self, version: str) -> RegistryEntry:
        """Withdraw a version from the champions (the previous promoted model takes over)."""
        return self._set_promoted(version, False)

    # --- internals -------------------------------------------------------------------------
    def _set_promoted(self, version: str, promoted: bool) -> RegistryEntry:
        with self._locked():
            index = self._read()
            entry = index.models.get(version)
            if entry is None:
                raise ModelNotFoundError(version, f"not registered in {self.root}")
            if promoted and not entry.may_trade[0]:
                raise ConfigError(f"model {version!r} failed the gate and cannot be promoted: {entry.may_trade[1]}")
            if entry.promoted != promoted:
                entry = entry.model_copy(update={"promoted": promoted})
                self._write(_Index(models={**index.models, version: entry}))
                log.info("registry.promoted" if promoted else "registry.demoted", extra={"model_version": version})
        return entry

    def _read(self) -> _Index:
        path = self.root / INDEX_FILE
        if not path.exists():
            return _Index()
        try:
            return _Index.model_validate_json(path.read_text())
        except ValidationError as exc:
            raise ConfigError(f"model registry index {path} is not valid: {exc}") from exc

    def _write(self, index: _Index) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{INDEX_FILE}.")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(index.model_dump_json(indent=2))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.root / INDEX_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _save_folder(self, model: Model, version: str) -> None:
        """Save into a temporary folder, then rename it into place (a stale unindexed folder is replaced)."""
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{version}."))
        try:
            model.save(tmp)
            final = self.root / version
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
