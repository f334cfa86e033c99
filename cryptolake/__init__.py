"""cryptolake shared contracts: settings, table specs, message schemas, types, errors and the SQL.

Every other package imports this one (``infra``, ``ingest``, ``spark_jobs``, ``models``, ``trader``,
``pipeline``, ``dags``, ``cli``); it never imports any of them, not even inside a function. The
import-linter contract in ``pyproject.toml`` and ``tests/cryptolake/test_layers.py`` check it.
"""

__version__ = "0.1.0"
