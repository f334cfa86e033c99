"""`cryptolake doctor` (work in progress)."""

from __future__ import annotations


def doctor() -> None:
    """Check every component of the local stack."""
    raise NotImplementedError
