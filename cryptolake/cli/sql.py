"""`cryptolake sql` (work in progress)."""

from __future__ import annotations


def sql() -> None:
    """Run SQL over the lake."""
    raise NotImplementedError
