"""Find a strategy class by reference, and validate its config: an open discriminated union.

A reference is one of:

* a registered name (``threshold``; see :func:`register_strategy`),
* ``package.module:Class`` (imported),
* ``path/to/file.py:Class`` (loaded from the file; relative paths from the working directory).

A strategy config is a dict (or model) whose ``kind`` is such a reference; :func:`parse_strategy_config`
resolves the class and validates the dict against the class's ``Config``, so a
:class:`~trader.config.TraderConfig` holds each strategy's own frozen config type, and a user's
strategy needs no change to cryptolake.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from cryptolake.errors import ConfigError
from trader.strategy import Strategy, StrategyConfig

S = TypeVar("S", bound=type[Strategy])

_REGISTRY: dict[str, type[Strategy]] = {}
_BUILTINS = (
    "trader.strategies.threshold", "trader.strategies.swing", "trader.strategies.breakout",
    "trader.strategies.daytrade", "trader.strategies.vote", "trader.strategies.mlsignal", "trader.strategies.selector",
    "trader.strategies.ppo",
    "trader.strategies.portfolio", "trader.strategies.sleeves",
)


def register_strategy(name: str) -> Callable[[S], S]:
    """Class decorator: make a strategy findable by ``name``."""

    def deco(cls: S) -> S:
        other = _REGISTRY.get(name)
        if other is not None and other is not cls:
            raise ConfigError(f"strategy name {name!r} is already registered by {other.__module__}.{other.__name__}")
        _REGISTRY[name] = cls
        return cls

    return deco


def registered() -> dict[str, type[Strategy]]:
    """Every registered strategy by name (the built-ins are always there)."""
    _load_builtins()
    return dict(_REGISTRY)


def _load_builtins() -> None:
    for module in _BUILTINS:
        importlib.import_module(module)


def _load_file(path: Path) -> Any:
    resolved = path.expanduser().resolve()
    if not resolved.is_file():
        raise ConfigError(f"strategy file {str(path)!r} does not exist (resolved to {resolved})")
    name = f"cryptolake_user_strategy_{hashlib.sha256(str(resolved).encode()).hexdigest()[:12]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise ConfigError(f"strategy file {str(path)!r} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a user's file: any error there is theirs to fix, reported with its cause
        del sys.modules[name]
        raise ConfigError(f"strategy file {str(path)!r} failed to import: {type(exc).__name__}: {exc}") from exc
    return module


def resolve_strategy(ref: str) -> type[Strategy]:
    """The strategy class ``ref`` names (see the module docstring); ConfigError naming ``ref`` otherwise."""
    _load_builtins()
    if ref in _REGISTRY:
        return _REGISTRY[ref]
    target, sep, attr = ref.rpartition(":")
    if not sep or not target or not attr:
        raise ConfigError(
            f"strategy {ref!r} is not registered ({sorted(_REGISTRY)}) and is not module:Class or file.py:Class"
        )
    if target.endswith(".py"):
        module = _load_file(Path(target))
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ConfigError(f"strategy {ref!r}: cannot import module {target!r}: {exc}") from exc
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ConfigError(f"strategy {ref!r}: {attr!r} in {target!r} is not a trader.strategy.Strategy subclass")
    return cls


def parse_strategy_config(value: Any) -> StrategyConfig:
    """A strategy config from a dict with ``kind`` (or an already built config): its class's own ``Config``."""
    if isinstance(value, StrategyConfig):
        return value
    if not isinstance(value, dict) or not isinstance(value.get("kind"), str):
        raise ConfigError(f"strategy config {value!r} must be a mapping with a 'kind' (registry name or reference)")
    cls = resolve_strategy(value["kind"])
    try:
        return cls.Config.model_validate(value)
    except ValidationError as exc:
        raise ConfigError(f"strategy {value['kind']!r}: invalid config: {exc}") from exc


def build_strategy(config: StrategyConfig, instruments: list[Any]) -> Strategy:
    """An instance of the strategy ``config.kind`` names, over ``instruments``."""
    return resolve_strategy(config.kind)(config, instruments)
