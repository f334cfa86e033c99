"""silver.chain_activity on REAL Ethereum data, checked against an independent pandas/Python computation.

Inputs: Raphtory's mainnet transactions (blocks 3,300,000-3,302,204, March 2017) as native
transfers, ethereum-etl's blocks 17173049-17173050 (May 2023) with their transactions and ERC-20
transfers, and Etherscan's address labels.
"""

from __future__ import annotations

import csv
import gzip
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cryptolake import topics
from cryptolake.errors import DataValidationError
from cryptolake.schemas import ChainBlockV1, ChainTransferV1
from cryptolake.settings import Settings
from cryptolake.tables import SILVER_CHAIN_ACTIVITY
from ingest.chain.replay import EthereumEtlReplay, RaphtoryTransactionsReplay
from ingest.connectors.base import ListSink
from spark_jobs.silver.chain import EXCHANGE_FAMILIES, exchange_addresses, run_silver_chain
from tests.spark_jobs.silver.alt_bronze import append_bronze, bronze_rows

CLOCK = lambda: datetime(2026, 1, 1, tzinfo=UTC)  # noqa: E731
WHALE = 100


def _labels(shared_data: Path) -> Path:
    return shared_data / "chain" / "raphtory" / "etherscan_tags.csv.gz"


def _independent_exchanges(path: Path) -> set[str]:
    with gzip.open(path, "rt", newline="") as fh:
        return {r["address"].strip().lower() for r in csv.DictReader(fh)
                if r["family"].strip().lower() in EXCHANGE_FAMILIES}  # one address has a leading space


def test_exchange_addresses_need_an_exchange_family_and_fail_on_a_bad_file(shared_data: Path) -> None:
    ex = exchange_addresses(_labels(shared_data))
    assert ex == _independent_exchanges(_labels(shared_data)) and len(ex) > 300
    frame = pd.DataFrame({"address": ["0xAB", "0xcd"], "family": ["Binance", "phish-hack"]})
    assert exchange_addresses(frame) == frozenset({"0xab"})
    with pytest.raises(DataValidationError, match="family"):
        exchange_addresses(pd.DataFrame({"address": ["0x1"]}))


def _raphtory_expected(shared_data: Path, exchanges: set[str]) -> pd.DataFrame:
    """Hourly native flows straight from the CSV with exact integer/decimal arithmetic."""
    path = shared_data / "chain" / "raphtory" / "transactions_03300000_03399999_small.csv.gz"
    acc: dict[datetime, dict[str, Any]] = {}
    seen: set[str] = set()
    with gzip.open(path, "rt", newline="") as fh:
        for r in csv.DictReader(fh):
            if not r["to_address"] or int(r["value"]) == 0 or r["hash"] in seen:
                continue
            seen.add(r["hash"])
            hour = datetime.fromtimestamp(int(r["block_timestamp"]) // 3600 * 3600, UTC)
            a = acc.setdefault(hour, {"whale_transfers": 0, "whale_volume": Decimal(0), "exchange_inflow": Decimal(0),
                                      "exchange_outflow": Decimal(0), "native_volume": Decimal(0), "addr": set()})
            eth = Decimal(int(r["value"])) / Decimal(10**18)
            fr, to = r["from_address"].lower(), r["to_address"].lower()
            a["native_volume"] += eth
            a["addr"] |= {fr, to}
            if eth >= WHALE:
                a["whale_transfers"] += 1
                a["whale_volume"] += eth
            if to in exchanges and fr not in exchanges:
                a["exchange_inflow"] += eth
            if fr in exchanges and to not in exchanges:
                a["exchange_outflow"] += eth
    rows = [{"bucket_start": pd.Timestamp(h).tz_localize(None), **{k: float(v) for k, v in a.items() if k != "addr"},
             "active_addresses": len(a["addr"])} for h, a in acc.items()]
    return pd.DataFrame(rows).set_index("bucket_start").sort_index()


@pytest.mark.spark
def test_whale_and_exchange_flows_on_real_transfers_match_an_independent_computation(
        spark: Any, lake_settings: Settings, shared_data: Path) -> None:
    sink = ListSink()
    RaphtoryTransactionsReplay(shared_data / "chain" / "raphtory" / "transactions_03300000_03399999_small.csv.gz",
                               clock=CLOCK).run(sink)
    EthereumEtlReplay(shared_data / "chain" / "ethereum_etl" / "blocks_17173049_17173050", clock=CLOCK).run(sink)
    assert not sink.quarantine
    blocks = [m for m in sink.accepted if isinstance(m, ChainBlockV1)]
    transfers = [m for m in sink.accepted if isinstance(m, ChainTransferV1)]
    append_bronze(spark, topics.CHAIN_BLOCKS, bronze_rows(topics.CHAIN_BLOCKS, blocks), lake_settings)
    # every transfer once, plus the first 5 again (a Kafka re-delivery must not double-count)
    append_bronze(spark, topics.CHAIN_TRANSFERS, bronze_rows(topics.CHAIN_TRANSFERS, [*transfers, *transfers[:5]]),
                  lake_settings)

    res = run_silver_chain(datetime(2017, 3, 6, tzinfo=UTC), datetime(2017, 3, 7, tzinfo=UTC), lake_settings,
                           labels=_labels(shared_data), whale_threshold=WHALE)
    res23 = run_silver_chain(datetime(2023, 5, 2, 12, tzinfo=UTC), datetime(2023, 5, 2, 13, tzinfo=UTC),
                             lake_settings, labels=_labels(shared_data), whale_threshold=WHALE)

    silver = spark.read.format("delta").load(SILVER_CHAIN_ACTIVITY.path(lake_settings)).toPandas()
    got = silver[silver.bucket_start < "2018-01-01"].set_index("bucket_start").sort_index()
    exp = _raphtory_expected(shared_data, _independent_exchanges(_labels(shared_data)))
    assert res.rows == len(exp) == len(got) == 9  # 03:00 .. 11:00
    assert list(got.index) == list(exp.index)
    assert (got.whale_transfers == exp.whale_transfers).all() and exp.whale_transfers.sum() > 1000
    assert (got.active_addresses == exp.active_addresses).all()
    for col in ("whale_volume", "exchange_inflow", "exchange_outflow", "native_volume"):
        assert got[col].to_numpy() == pytest.approx(exp[col].to_numpy(), rel=1e-12), col
    assert exp.exchange_inflow.sum() > 0 and exp.exchange_outflow.sum() > 0
    assert (got.blocks == 0).all() and got.tx_count.isna().all()  # transfers-only replay: no block data

    folder = shared_data / "chain" / "ethereum_etl" / "blocks_17173049_17173050"
    raw_blocks = [json.loads(x) for x in (folder / "expected_blocks.json").read_text().splitlines() if x.strip()]
    raw_txs = [json.loads(x) for x in (folder / "expected_transactions.json").read_text().splitlines() if x.strip()]
    row = silver[silver.bucket_start == pd.Timestamp("2023-05-02 12:00")].iloc[0]
    assert res23.rows == 1 and row.blocks == 2 == res23.blocks
    assert row.tx_count == sum(b["transaction_count"] for b in raw_blocks) == len(raw_txs)
    assert row.gas_used == sum(b["gas_used"] for b in raw_blocks)
    assert row.avg_gas_price_gwei == pytest.approx(sum(t["gas_price"] for t in raw_txs) / len(raw_txs) / 1e9)
    erc20 = [m for m in transfers if m.token_address != "native" and m.block_number >= 17173049]
    assert row.token_transfers == len(erc20) > 0
    natives = [t for t in raw_txs if t["to_address"] and int(t["value"]) > 0]
    assert row.native_volume == pytest.approx(float(sum(Decimal(int(t["value"])) for t in natives) / 10**18))
    assert row.bucket_end == pd.Timestamp("2023-05-02 13:00")

    again = run_silver_chain(datetime(2017, 3, 6, tzinfo=UTC), datetime(2017, 3, 7, tzinfo=UTC), lake_settings,
                             labels=_labels(shared_data), whale_threshold=WHALE)
    assert (again.inserted, again.updated) == (0, 0)
    with pytest.raises(DataValidationError, match="whole UTC hour"):
        run_silver_chain(datetime(2017, 3, 6, 0, 30, tzinfo=UTC), datetime(2017, 3, 7, tzinfo=UTC), lake_settings,
                         labels=_labels(shared_data))
