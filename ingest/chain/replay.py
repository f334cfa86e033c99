"""Replays of the real chain data: ethereum-etl blocks/transactions/transfers, Raphtory transactions
and Etherscan daily chart exports, as the same records the live connectors produce."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from cryptolake import topics
from cryptolake.schemas import ChainBlockV1, ChainDailyStatV1, ChainTransferV1
from cryptolake.types import to_ms
from ingest.chain.explorer import day_payload
from ingest.connectors.base import Clock, Connector, Item, make_record, utc_now


def _ndjson(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


class EthereumEtlReplay(Connector):
    """An ethereum-etl export folder -> chain.blocks (with txs) and chain.transfers (native + 3-topic ERC-20)."""

    name = "replay-ethereum-etl"
    topic = topics.CHAIN_BLOCKS

    def __init__(self, folder: Path, chain: str = "ethereum", *, clock: Clock = utc_now) -> None:
        self.folder, self.chain, self.clock = folder, chain, clock

    def items(self) -> Iterator[Item]:
        from ingest.chain.evm import native_transfer_payloads

        ingest_ms = to_ms(self.clock())
        txs = _ndjson(self.folder / "expected_transactions.json")
        n_topics = {(lg["transaction_hash"], lg["log_index"]): len(lg["topics"])
                    for lg in _ndjson(self.folder / "expected_logs.json")}
        for b in _ndjson(self.folder / "expected_blocks.json"):
            def block(r: dict[str, Any]) -> dict[str, Any]:
                mine = sorted((t for t in txs if t["block_number"] == r["number"]),
                              key=lambda t: t["transaction_index"])
                ts = r["timestamp"] * 1000
                return {"schema_version": 1, "chain": self.chain, "number": r["number"], "hash": r["hash"],
                        "parent_hash": r["parent_hash"], "miner": r["miner"], "gas_used": r["gas_used"],
                        "gas_limit": r["gas_limit"], "base_fee_per_gas": r.get("base_fee_per_gas"),
                        "tx_count": len(mine), "event_time": ts, "available_time": ts, "ingest_time": ingest_ms,
                        "transactions": [{"hash": t["hash"], "from_address": t["from_address"],
                                          "to_address": t["to_address"], "value": str(t["value"]), "gas": t["gas"],
                                          "gas_price": t["gas_price"]} for t in mine]}
            rec = make_record(ChainBlockV1, b, block, f"{self.chain}:{b.get('number')}")
            yield rec
            if isinstance(rec, ChainBlockV1):
                for p in native_transfer_payloads(self.chain, rec):
                    yield make_record(ChainTransferV1, p, lambda r: r, f"{self.chain}:{p['tx_hash']}:-1")
        for t in _ndjson(self.folder / "expected_token_transfers.json"):
            if n_topics.get((t["transaction_hash"], t["log_index"])) != 3:
                continue  # ERC-721 (value is a token id), as in the live connector
            yield make_record(ChainTransferV1, t, lambda r: {
                "schema_version": 1, "chain": self.chain, "token_address": r["token_address"],
                "tx_hash": r["transaction_hash"], "log_index": r["log_index"], "block_number": r["block_number"],
                "from_address": r["from_address"], "to_address": r["to_address"], "value": str(r["value"]),
                "event_time": r["block_timestamp"] * 1000, "available_time": r["block_timestamp"] * 1000,
                "ingest_time": ingest_ms}, f"{self.chain}:{t.get('transaction_hash')}:{t.get('log_index')}")


class RaphtoryTransactionsReplay(Connector):
    """Raphtory's ethereum-etl-layout transactions CSV -> native chain.transfers (value > 0)."""

    name = "replay-raphtory-tx"
    topic = topics.CHAIN_TRANSFERS

    def __init__(self, path: Path, chain: str = "ethereum", *, clock: Clock = utc_now) -> None:
        self.path, self.chain, self.clock = path, chain, clock

    def items(self) -> Iterator[Item]:
        df = pd.read_csv(self.path, dtype=str, keep_default_na=False)
        ingest_ms = to_ms(self.clock())
        for r in df.to_dict("records"):
            if not r["to_address"] or int(r["value"]) == 0:
                continue  # contract creations and zero-value calls move no native value
            yield make_record(ChainTransferV1, r, lambda x: {
                "schema_version": 1, "chain": self.chain, "token_address": "native", "tx_hash": x["hash"],
                "log_index": -1, "block_number": int(x["block_number"]), "from_address": x["from_address"],
                "to_address": x["to_address"], "value": x["value"], "event_time": int(x["block_timestamp"]) * 1000,
                "available_time": int(x["block_timestamp"]) * 1000, "ingest_time": ingest_ms}, r["hash"])


_ETHERSCAN_FILES = {"TxGrowth": "tx_count", "AvgGasPrice": "avg_gas_price_wei", "GasUsed": "gas_used",
                    "GasLimit": "gas_limit", "EtherPrice": "ether_price_usd"}


class EtherscanChartReplay(Connector):
    """Etherscan chart exports (``export-<Name>.csv``) -> chain.daily_stats."""

    name = "replay-etherscan-charts"
    topic = topics.CHAIN_DAILY_STATS

    def __init__(self, folder: Path, chain: str = "ethereum", *, clock: Clock = utc_now) -> None:
        self.folder, self.chain, self.clock = folder, chain, clock

    def items(self) -> Iterator[Item]:
        ingest_ms = to_ms(self.clock())
        for name, metric in _ETHERSCAN_FILES.items():
            df = pd.read_csv(self.folder / f"export-{name}.csv", dtype=str)
            value_col = df.columns[2]
            for r in df.to_dict("records"):
                day = datetime.strptime(r["Date(UTC)"], "%m/%d/%Y").replace(tzinfo=UTC).date().isoformat()
                yield make_record(ChainDailyStatV1, r, lambda x, d=day, c=value_col, m=metric: day_payload(  # type: ignore[misc]
                    self.chain, "etherscan-charts", m, {"UTCDate": d, c: x[c]}, c, ingest_ms), f"{metric}:{day}")
