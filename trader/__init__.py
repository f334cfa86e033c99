"""The trader: strategies, risk, execution clients, engine, backtest and live paper trading.

Entry points: :func:`trader.backtest.run_backtest` and :func:`trader.live.run_live` (identical
fills for identical inputs), :func:`trader.export.export_run` (a finished run to Delta).
Imported lazily so ``import trader`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trader.backtest import run_backtest
    from trader.config import TraderConfig
    from trader.export import export_run
    from trader.live import run_live

__all__ = ["TraderConfig", "export_run", "run_backtest", "run_live"]


def __getattr__(name: str) -> Any:
    if name == "run_backtest":
        from trader.backtest import run_backtest

        return run_backtest
    if name == "run_live":
        from trader.live import run_live

        return run_live
    if name == "export_run":
        from trader.export import export_run

        return export_run
    if name == "TraderConfig":
        from trader.config import TraderConfig

        return TraderConfig
    raise AttributeError(name)
