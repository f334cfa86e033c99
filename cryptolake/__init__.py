"""cryptolake shared contracts: settings, table specs, message schemas, types and errors.

This package is imported by ``spark_jobs``, ``models``, ``trader``, ``infra`` and ``dags``;
it never imports them (``cryptolake.cli`` is the application layer and sits on top).
"""

__version__ = "0.1.0"
