"""A locked-down DuckDB connection over Delta tables.

Tables are registered as Arrow datasets (``sde.adapters.delta.dataset``: filters and
projections are pushed down), then external access is disabled and the configuration
locked. From SQL, the connection can then read only what was registered: ``COPY ... TO``,
``read_csv``/``read_parquet`` of a path, ``glob``, ``ATTACH``, ``INSTALL``/``LOAD`` and
changing any setting are refused.

The lock guards SQL only: host Python can still ``register`` more. What a researcher's
process can read at all is decided by what is mounted into its workspace.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import duckdb

from sde.adapters import delta


def locked_connection(
    tables: Mapping[str, Path],
    *,
    versions: Mapping[str, int] | None = None,
    memory_limit: str = "2GB",
    threads: int = 2,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with each Delta table registered under its name
    (at the pinned version when given), external access off and configuration locked."""
    con = duckdb.connect(":memory:")
    try:
        for name, path in tables.items():
            version = (versions or {}).get(name)
            con.register(name, delta.dataset(path, version))
        for statement in (
            f"SET memory_limit='{_size(memory_limit)}'",
            f"SET threads={int(threads)}",
            "SET autoinstall_known_extensions=false",
            "SET autoload_known_extensions=false",
            "SET allow_community_extensions=false",
            "SET enable_external_access=false",
            "SET lock_configuration=true",
        ):
            con.execute(statement)
    except BaseException:
        con.close()
        raise
    return con


def _size(value: str) -> str:
    cleaned = value.strip().upper()
    if not cleaned[:-2].replace(".", "").isdigit() or cleaned[-2:] not in {"KB", "MB", "GB"}:
        raise ValueError("memory limit must look like 512MB or 2GB")
    return cleaned
