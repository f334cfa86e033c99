"""Typed, frozen settings of the alternative-data pipeline (news, social, chain; issue #5).

Kept apart from :mod:`cryptolake.settings` (owned by the lead) but built the same way: every field
can be overridden from the environment with the ``CRYPTOLAKE__ALTDATA__`` prefix, e.g.
``CRYPTOLAKE__ALTDATA__WHALE_THRESHOLD=500`` or ``CRYPTOLAKE__ALTDATA__LANGUAGES='["en","es"]'``.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cryptolake.settings import PROJECT_ROOT

DEFAULT_SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


class AltDataSettings(BaseSettings):
    """Knobs of the silver documents/chain jobs."""

    model_config = SettingsConfigDict(env_prefix="CRYPTOLAKE__ALTDATA__", frozen=True, extra="ignore")

    languages: tuple[str, ...] = Field(("en",), description="ISO 639-1 languages kept in silver.documents")
    whale_threshold: float = Field(100.0, gt=0, description="Native coins per transfer that make a whale transfer")
    exchange_labels_path: Path = Field(
        DEFAULT_SHARED_DATA / "chain" / "raphtory" / "etherscan_tags.csv.gz",
        description="Etherscan address labels CSV (address,family,...) naming exchange addresses",
    )
    dedup_lookback_days: int = Field(
        7, ge=0, description="Days of earlier silver documents a new document is deduplicated against"
    )

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("languages: at least one language is needed")
        bad = [v for v in value if not (len(v) == 2 and v.isalpha() and v.islower())]
        if bad:
            raise ValueError(f"languages: {bad!r} are not lower-case ISO 639-1 codes")
        return value

    @property
    def dedup_lookback(self) -> timedelta:
        """``dedup_lookback_days`` as a timedelta."""
        return timedelta(days=self.dedup_lookback_days)


@lru_cache(maxsize=1)
def get_altdata_settings() -> AltDataSettings:
    """The process-wide alternative-data settings (read once from the environment)."""
    return AltDataSettings()
