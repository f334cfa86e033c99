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

A lake on an object store (``paths.lake_root`` = ``s3a://bucket/...``, as Spark writes it) is read
through the same views: the ``httpfs`` extension (``duckdb-extension-httpfs``, loaded by path) and
an S3 secret built from ``s3.*`` settings (keys from the environment), tables discovered by listing
``_delta_log`` folders, ``s3a://`` read as ``s3://``. delta-rs gets the same store through
:func:`delta_storage_options`; its commits use S3's conditional PUT (``If-None-Match: *``), so
several delta-rs writers of one table are safe without a lock table.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from cryptolake.errors import InfrastructureError, TableNotFoundError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings, get_settings

log = get_logger(__name__)


def extension_path(name: str) -> Path:
    """The ``name`` extension binary shipped by the ``duckdb-extension-<name>`` wheel for our duckdb."""
    import importlib

    try:
        package = importlib.import_module(f"duckdb_extension_{name}")
    except ImportError as exc:
        raise InfrastructureError(f"duckdb-extension-{name} is not installed (uv sync)") from exc
    base = Path(str(package.__file__)).parent / "extensions" / f"v{duckdb.__version__}"
    path = base / f"{name}.duckdb_extension"
    if not path.exists():
        raise InfrastructureError(
            f"no DuckDB {name} extension at {path}: duckdb-extension-{name} must match duckdb {duckdb.__version__}"
        )
    return path


def delta_extension_path() -> Path:
    """The delta extension binary shipped by the ``duckdb-extension-delta`` wheel for our duckdb."""
    return extension_path("delta")


def on_object_store(root: str) -> bool:
    """True for ``s3://`` / ``s3a://`` lake roots."""
    return root.startswith(("s3://", "s3a://"))


def duck_uri(path: str) -> str:
    """A table path as DuckDB and delta-rs name it: ``s3a://`` (Hadoop's scheme) becomes ``s3://``."""
    return "s3://" + path.removeprefix("s3a://") if path.startswith("s3a://") else path


def scan_literal(path: str) -> str:
    """A table path quoted for ``delta_scan('...')``: DuckDB's URI with single quotes doubled."""
    return duck_uri(path).replace("'", "''")


def delta_exists(path: str, settings: Settings | None = None) -> bool:
    """Whether ``path`` holds a Delta table (delta-rs; on the configured object store too)."""
    from deltalake import DeltaTable

    return bool(DeltaTable.is_deltatable(duck_uri(path), storage_options=delta_storage_options(settings) or None))


def s3_secret_sql(settings: Settings) -> str:
    """``CREATE SECRET`` for the configured S3 store (keys from the environment; never logged)."""
    s3 = settings.s3
    key, secret = s3.credentials()

    def q(v: str) -> str:
        return "'" + v.replace("'", "''") + "'"

    parts = ["TYPE s3", f"REGION {q(s3.region)}", f"URL_STYLE {q('path' if s3.path_style else 'vhost')}",
             f"USE_SSL {str(s3.ssl).lower()}"]
    if key and secret:
        parts += [f"KEY_ID {q(key)}", f"SECRET {q(secret)}"]
    if s3.endpoint_url:
        parts.append(f"ENDPOINT {q(s3.host_port)}")
    return f"CREATE OR REPLACE SECRET cryptolake_s3 ({', '.join(parts)})"


def delta_storage_options(settings: Settings | None = None) -> dict[str, str]:
    """delta-rs ``storage_options`` for the configured store (empty for a local lake)."""
    settings = settings or get_settings()
    if not on_object_store(settings.paths.lake()):
        return {}
    s3 = settings.s3
    key, secret = s3.credentials()
    opts = {"AWS_REGION": s3.region, "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": str(not s3.path_style).lower()}
    if s3.endpoint_url:
        opts["AWS_ENDPOINT_URL"] = s3.endpoint_url
        opts["AWS_ALLOW_HTTP"] = str(not s3.ssl).lower()
    if key and secret:
        opts |= {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}
    return opts


def view_name(table_name: str) -> str:
    """``bronze.market_ohlcv`` -> ``bronze_market_ohlcv`` (valid unquoted SQL identifier)."""
    return table_name.replace(".", "_").replace("-", "_")


def lake_tables(settings: Settings | None = None) -> dict[str, str]:
    """``{"<layer>.<entity>": path}`` for every Delta table under the (local) lake root."""
    settings = settings or get_settings()
    root = settings.paths.lake()
    if on_object_store(root):
        return _object_store_tables(root, settings)
    if "://" in root and not root.startswith("file://"):
        raise InfrastructureError(f"table discovery needs a local or s3a:// lake root, got {root!r}")
    base = Path(root.removeprefix("file://"))
    found: dict[str, str] = {}
    if not base.exists():
        return found
    for layer in sorted(p for p in base.iterdir() if p.is_dir()):
        for entity in sorted(p for p in layer.iterdir() if p.is_dir()):
            if (entity / "_delta_log").is_dir():
                found[f"{layer.name}.{entity.name}"] = str(entity)
    return found


def _object_store_tables(root: str, settings: Settings) -> dict[str, str]:
    """``{"<layer>.<entity>": s3://...}`` for every ``<root>/<layer>/<entity>/_delta_log`` in the bucket."""
    base = duck_uri(root).rstrip("/")
    con = _bare_connection(settings, s3=True)
    try:
        files = con.execute("SELECT file FROM glob(?)", [f"{base}/*/*/_delta_log/*.json"]).fetchall()
    except duckdb.Error as exc:
        raise InfrastructureError(f"could not list the lake at {root}: {exc}") from exc
    finally:
        con.close()
    found: dict[str, str] = {}
    for (file,) in files:
        layer, entity = str(file)[len(base) + 1:].split("/")[:2]
        found[f"{layer}.{entity}"] = f"{base}/{layer}/{entity}"
    return dict(sorted(found.items()))


def _bare_connection(settings: Settings, *, s3: bool, database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A connection with the delta extension (and httpfs plus the S3 secret when ``s3``), no views."""
    try:
        con = duckdb.connect(database, config={
            "autoinstall_known_extensions": "false",
            "autoload_known_extensions": "false",
        })
        if s3:
            con.load_extension(str(extension_path("httpfs")))
            con.execute(s3_secret_sql(settings))
        con.load_extension(str(delta_extension_path()))
    except duckdb.Error as exc:
        raise InfrastructureError(f"could not load the DuckDB extensions: {exc}") from exc
    return con


def connect(settings: Settings | None = None, *, views: bool = True,
            database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the delta extension loaded and (by default) one view per lake table."""
    settings = settings or get_settings()
    con = _bare_connection(settings, s3=on_object_store(settings.paths.lake()), database=database)
    if views:
        for name, path in lake_tables(settings).items():
            create_view(con, name, path)
    return con


def create_view(con: duckdb.DuckDBPyConnection, table_name: str, path: str) -> str:
    """(Re)create the view of one Delta table; returns the view name."""
    view = view_name(table_name)
    try:
        con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM delta_scan('{scan_literal(path)}')")
    except duckdb.Error as exc:
        raise InfrastructureError(f"could not create view {view} over {path}: {exc}") from exc
    log.debug("duck.view", extra={"view": view, "path": path})
    return view


def table_versions(settings: Settings | None = None) -> dict[str, int]:
    """The current Delta version of every lake table (recorded with models and reports)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError as DeltaTableNotFound

    versions: dict[str, int] = {}
    options = delta_storage_options(settings)
    for name, path in lake_tables(settings).items():
        try:
            versions[name] = int(DeltaTable(duck_uri(path), storage_options=options or None).version())
        except DeltaTableNotFound as exc:
            raise TableNotFoundError(f"{name} at {path}: {exc}") from exc
    return versions
