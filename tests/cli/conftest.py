"""The SQL tests' hand-made gold lake, for the `cryptolake sql` command tests."""

from tests.sql.conftest import hand_lake

__all__ = ["hand_lake"]
