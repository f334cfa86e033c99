"""Chain data as a long-running connector: the real Etherscan daily statistics replayed to a local explorer API.

The explorer's daily figures (tx count, average gas price, gas used) fit a poll loop: one small request per
action and window, a figure per closed UTC day, thousands of real days in ``chain/etherscan_daily`` to replay.
The EVM node's new blocks and transfers (:class:`EvmFollower`, below) replay the only real blocks the shared
data holds: two consecutive mainnet blocks with all their transactions and logs.
The local server (:func:`ingest.testing_servers.apis.explorer_app`) serves the real days a batch per poll; the
poll runs the real :class:`ingest.chain.explorer.ExplorerDailyStatsConnector` over the batch's days.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cryptolake import topics
from cryptolake.retry import RetryPolicy
from ingest.chain.evm import EvmConnector
from ingest.chain.explorer import ACTIONS
from ingest.connectors.base import Connector, Item

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


# --- EVM node: new blocks and their transfers over JSON-RPC --------------------------------------------------------
# The shared data holds two REAL consecutive Ethereum mainnet blocks with every transaction and log
# (chain/ethereum_etl/blocks_17173049_17173050: 298 transactions, 681 logs): the local node serves them as the
# chain's head advancing, a block per release, then the head stays at 17,173,050 (nothing more to replay).
ETL_BLOCKS = Path("chain") / "ethereum_etl" / "blocks_17173049_17173050"


def _ndjson(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def evm_blocks(data_root: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The real blocks (``eth_getBlockByNumber(n, true)`` shape, oldest first) and logs (``eth_getLogs`` shape)."""
    from ingest.testing_servers.apis import etl_block_to_rpc, etl_log_to_rpc

    folder = data_root / ETL_BLOCKS
    txs = _ndjson(folder / "expected_transactions.json")
    blocks = [etl_block_to_rpc(b, [t for t in txs if t["block_number"] == b["number"]])
              for b in sorted(_ndjson(folder / "expected_blocks.json"), key=lambda b: b["number"])]
    logs = [etl_log_to_rpc(lg) for lg in _ndjson(folder / "expected_logs.json")]
    return blocks, logs


def last_block(chain: str, seen: set[str]) -> int | None:
    """The highest block number ``chain.blocks`` holds for ``chain`` (keys ``<chain>:<number>``)."""
    numbers = [int(k.rsplit(":", 1)[1]) for k in seen
               if k.startswith(f"{chain}:") and k.count(":") == 1 and k.rsplit(":", 1)[1].isdigit()]
    return max(numbers, default=None)


class EvmReplay:
    """The chain's head replayed: ``release(n)`` appends the next ``n`` real blocks (and their logs) to the node."""

    def __init__(self, blocks: list[dict[str, Any]], logs: list[dict[str, Any]], chain: str = "ethereum",
                 seen: set[str] | None = None) -> None:
        last = last_block(chain, seen or set())
        # A restart resumes AT the last block the topic holds: its transfers not yet sent are sent, once.
        self.pending = [b for b in blocks if last is None or int(b["number"], 16) >= last]
        self.logs = logs
        self.visible_blocks: list[dict[str, Any]] = []
        self.visible_logs: list[dict[str, Any]] = []

    def release(self, n: int) -> int:
        batch, self.pending = self.pending[:n], self.pending[n:]
        numbers = {b["number"] for b in batch}
        self.visible_blocks.extend(batch)
        self.visible_logs.extend(lg for lg in self.logs if lg["blockNumber"] in numbers)
        return len(batch)


class EvmFollower:
    """Follows a chain's head across polls: each poll reads ``eth_blockNumber`` and asks for the blocks after the
    last one asked for (at most ``max_blocks``), through :class:`ingest.chain.evm.EvmConnector`."""

    def __init__(self, chain: str, rpc_url: str, next_block: int | None, *, max_blocks: int = 10,
                 policy: RetryPolicy = RetryPolicy(), sleep: Callable[[float], None] = time.sleep) -> None:
        self.chain, self.rpc_url, self.next_block, self.max_blocks = chain, rpc_url, next_block, max_blocks
        self.policy, self.sleep = policy, sleep

    def make(self) -> Connector:
        """A fresh connector for one poll (what :class:`ingest.altlive.PollingPublisher` calls)."""
        return _EvmTail(self)


class _EvmTail(Connector):
    name = "evm"
    topic = topics.CHAIN_BLOCKS

    def __init__(self, follower: EvmFollower) -> None:
        self.f = follower

    def items(self) -> Iterator[Item]:
        f = self.f
        conn = EvmConnector(f.chain, 0, -1, rpc_url=f.rpc_url, batch_size=f.max_blocks, policy=f.policy,
                            sleep=f.sleep)
        head = conn.head()
        lo = head if f.next_block is None else f.next_block  # live with nothing published: from the head on
        hi = min(head, lo + f.max_blocks - 1)
        if lo > hi:
            return
        conn.from_block, conn.to_block = lo, hi
        yield from conn.items()
        f.next_block = hi + 1
