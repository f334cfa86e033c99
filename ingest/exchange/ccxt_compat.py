"""The ccxt boundary lives in the contracts (:mod:`cryptolake.ccxt_compat`) so the trader's execution
client and the market connectors share ONE error translation; this module keeps the ingest names."""

from cryptolake.ccxt_compat import point_ccxt_at, translate

__all__ = ["point_ccxt_at", "translate"]
