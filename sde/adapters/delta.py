"""Delta tables with delta-rs (``deltalake``): append, read, versions, time travel.

Tables sde creates are append-only (``delta.appendOnly``): a delete or overwrite is
refused by the table itself. Each append is one commit; ``custom_metadata`` is stored
with the commit (sde puts the source file's SHA-256 there, never a patient value).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import SchemaMismatchError

from sde.errors import InputError

APPEND_ONLY = {"delta.appendOnly": "true"}


def exists(table_path: Path) -> bool:
    return bool(DeltaTable.is_deltatable(str(table_path)))


def version(table_path: Path) -> int | None:
    """The table's current version, or None if there is no table there."""
    if not exists(table_path):
        return None
    return int(DeltaTable(str(table_path)).version())


def append(
    table_path: Path,
    data: pa.Table | pa.RecordBatchReader,
    *,
    custom_metadata: Mapping[str, str] | None = None,
) -> int:
    """Append ``data`` as one commit (creating an append-only table on first write) and
    return the table's new version. A reader is streamed: nothing is committed if it
    raises part-way."""
    table_path.parent.mkdir(parents=True, exist_ok=True)
    configuration = None if exists(table_path) else APPEND_ONLY
    try:
        write_deltalake(
            str(table_path),
            data,
            mode="append",
            configuration=configuration,
            commit_properties=CommitProperties(custom_metadata=dict(custom_metadata or {})),
        )
    except SchemaMismatchError:
        raise InputError(
            f"the data's columns do not match the existing table {table_path.name}; "
            "was its dataset spec changed?"
        ) from None
    new_version = version(table_path)
    assert new_version is not None
    return new_version


def read(
    table_path: Path,
    version: int | None = None,
    columns: Sequence[str] | None = None,
) -> pa.Table:
    """The whole table (or some columns) as Arrow, at ``version`` (default: latest)."""
    return dataset(table_path, version).to_table(columns=list(columns) if columns else None)


def dataset(table_path: Path, version: int | None = None) -> pads.Dataset:
    """An Arrow dataset over the table at ``version``: filters and projections are
    pushed down, batches are streamed.

    For a local table without partitions or reader features (every table sde writes),
    the dataset reads the commit's Parquet files with Arrow's own filesystem.
    ``DeltaTable.to_pyarrow_dataset()`` goes through a Python filesystem handler whose
    scanner threads can outlive the interpreter and abort the process at exit
    ("terminate called without an active exception", apache/arrow#45214); that path is
    kept for anything else."""
    table = DeltaTable(str(table_path), version=version)
    uris = table.file_uris()
    plain = (
        not table.metadata().partition_columns
        and not (table.protocol().reader_features or [])
        and all(uri.startswith("/") for uri in uris)
    )
    if not plain:
        return table.to_pyarrow_dataset()
    schema = pa.schema(table.schema().to_arrow())
    return pads.dataset(uris, format="parquet", schema=schema)


def history(table_path: Path) -> list[dict[str, Any]]:
    """Commit history, newest first (each with ``version`` and any custom metadata)."""
    if not exists(table_path):
        return []
    return list(DeltaTable(str(table_path)).history())


def batches(
    table_path: Path,
    *,
    version: int | None = None,
    columns: Sequence[str] | None = None,
    batch_rows: int = 131_072,
) -> Iterable[pa.RecordBatch]:
    """Stream the table in record batches."""
    stream: Iterable[pa.RecordBatch] = dataset(table_path, version).to_batches(
        columns=list(columns) if columns else None, batch_size=batch_rows
    )
    return stream
