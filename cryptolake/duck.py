"""The DuckDB connection factory over the Delta lake: one view per table, ``<layer>_<entity>``.

Why the DuckDB ``delta`` extension (``delta_scan``) and not delta-rs Arrow datasets: the
extension reads the Delta log itself at query time, so a view always sees the latest committed
version, and it pushes projections and filters (including partition pruning) into the scan;
an Arrow dataset from ``deltalake`` is a snapshot frozen when the view is registered and must
be rebuilt after every commit. On a 175k-row bronze table the two are measured by
``bench/bench_duck.py`` (results in docs/benchmarks.md). The extension is loaded BY PATH from
the ``duckdb-extension-delta`` PyPI package, which is pinned to our duckdb version (the binary is
signed, so unsigned extensions stay disallowed); nothing is ever installed from the network
(auto-install and auto-load are switched off).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from cryptolake.errors import InfrastructureError, TableNotFoundError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings, get_settings

log = get_logger(__name__)


def delta_extension_path() -> Path:
    """The delta extension binary shipped by the ``duckdb-extension-delta`` wheel for our duckdb."""
    import duckdb_extension_delta

    base = Path(duckdb_extension_delta.__file__).parent / "extensions" / f"v{duckdb.__version__}"
    path = base / "delta.duckdb_extension"
    if not path.exists():
        raise InfrastructureError(
            f"no DuckDB delta extension at {path}: duckdb-extension-delta must match duckdb {duckdb.__version__}"
        )
    return path


def view_name(table_name: str) -> str:
    """``bronze.market_ohlcv`` -> ``bronze_market_ohlcv`` (valid unquoted SQL identifier)."""
    return table_name.replace(".", "_").replace("-", "_")


def lake_tables(settings: Settings | None = None) -> dict[str, str]:
    """``{"<layer>.<entity>": path}`` for every Delta table under the (local) lake root."""
    settings = settings or get_settings()
    root = settings.paths.lake()
    if "://" in root and not root.startswith("file://"):
        raise InfrastructureError(f"table discovery needs a local lake root, got {root!r}")
    base = Path(root.removeprefix("file://"))
    found: dict[str, str] = {}
    if not base.exists():
        return found
    for layer in sorted(p for p in base.iterdir() if p.is_dir()):
        for entity in sorted(p for p in layer.iterdir() if p.is_dir()):
            if (entity / "_delta_log").is_dir():
                found[f"{layer.name}.{entity.name}"] = str(entity)
    return found


def connect(settings: Settings | None = None, *, views: bool = True,
            database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the delta extension loaded and (by default) one view per lake table."""
    settings = settings or get_settings()
    try:
        con = duckdb.connect(database, config={
            "autoinstall_known_extensions": "false",
            "autoload_known_extensions": "false",
        })
        con.load_extension(str(delta_extension_path()))
    except duckdb.Error as exc:
        raise InfrastructureError(f"could not load the DuckDB delta extension: {exc}") from exc
    if views:
        for name, path in lake_tables(settings).items():
            create_view(con, name, path)
    return con


def create_view(con: duckdb.DuckDBPyConnection, table_name: str, path: str) -> str:
    """(Re)create the view of one Delta table; returns the view name."""
    view = view_name(table_name)
    literal = path.replace("'", "''")
    try:
        con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM delta_scan('{literal}')")
    except duckdb.Error as exc:
        raise InfrastructureError(f"could not create view {view} over {path}: {exc}") from exc
    log.debug("duck.view", extra={"view": view, "path": path})
    return view


def table_versions(settings: Settings | None = None) -> dict[str, int]:
    """The current Delta version of every lake table (recorded with models and reports)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError as DeltaTableNotFound

    versions: dict[str, int] = {}
    for name, path in lake_tables(settings).items():
        try:
            versions[name] = int(DeltaTable(path).version())
        except DeltaTableNotFound as exc:
            raise TableNotFoundError(f"{name} at {path}: {exc}") from exc
    return versions
