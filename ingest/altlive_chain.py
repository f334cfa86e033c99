"""Chain data as a long-running connector: the real Etherscan daily statistics replayed to a local explorer API.

The explorer's daily figures (tx count, average gas price, gas used) fit a poll loop: one small request per
action and window, a figure per closed UTC day, thousands of real days in ``chain/etherscan_daily`` to replay.
(The EVM node's blocks would need a node keeping pace with the chain; the shared data holds two blocks.)
The local server (:func:`ingest.testing_servers.apis.explorer_app`) serves the real days a batch per poll; the
poll runs the real :class:`ingest.chain.explorer.ExplorerDailyStatsConnector` over the batch's days.
"""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from pathlib import Path

from ingest.chain.explorer import ACTIONS

_FILES = {"dailytx": "TxGrowth", "dailyavggasprice": "AvgGasPrice", "dailygasused": "GasUsed"}


def etherscan_days(data_root: Path) -> dict[str, dict[str, str]]:
    """Per explorer action, the real daily value (as the export writes it) per ISO day."""
    out: dict[str, dict[str, str]] = {}
    for action, name in _FILES.items():
        with open(data_root / "chain" / "etherscan_daily" / f"export-{name}.csv", newline="") as fh:
            rows = list(csv.reader(fh))[1:]  # Date(UTC), UnixTimeStamp, Value (its header varies per export)
        out[action] = {datetime.strptime(r[0], "%m/%d/%Y").replace(tzinfo=UTC).date().isoformat(): r[2]
                       for r in rows}
    return out


def day_keys(chain: str, day: str) -> set[str]:
    """The topic keys of one day's figures (``ChainDailyStatV1.key``)."""
    return {f"{chain}:{metric}:{day}" for _, metric in ACTIONS.values()}


class ChainReplay:
    """The explorer's days replayed: ``release(n)`` makes the next ``n`` real days visible to the local API."""

    def __init__(self, days: dict[str, dict[str, str]], chain: str = "ethereum",
                 seen: set[str] | None = None) -> None:
        self.source = days
        flow = sorted(set().union(*(d.keys() for d in days.values())))
        # A restart resumes at the last day the topic holds a figure of (its missing figures are sent, once).
        done = [i for i, d in enumerate(flow) if day_keys(chain, d) & (seen or set())]
        self.pending = flow[done[-1]:] if done else flow
        self.visible: dict[str, dict[str, str]] = {a: {} for a in days}
        self.since = self.until = date(1970, 1, 1)

    def release(self, n: int) -> int:
        """The next ``n`` days become available; [since, until] is the batch (what a poll asks)."""
        batch, self.pending = self.pending[:n], self.pending[n:]
        for action, values in self.source.items():
            self.visible[action].update({d: values[d] for d in batch if d in values})
        if batch:
            self.since, self.until = date.fromisoformat(batch[0]), date.fromisoformat(batch[-1])
        return len(batch)
