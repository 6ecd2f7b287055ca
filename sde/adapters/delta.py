"""Delta tables with delta-rs (``deltalake``): append, read, versions, time travel.

Tables sde creates are append-only (``delta.appendOnly``): a delete or overwrite is
refused by the table itself. Each append is one commit; ``custom_metadata`` is stored
with the commit (sde puts the source file's SHA-256 there, never a patient value).

A table is a local folder (a :class:`~pathlib.Path`) or a :class:`RemoteTable` on object
storage (``s3://``, ``az://``/``abfss://``, ``gs://``) with the storage options delta-rs
needs (endpoint, credentials). Commits on object storage are conditional writes
(``If-None-Match: *``): two writers never overwrite each other's commit, so no locking
service is needed where the store honours that header (AWS S3, MinIO, versitygw, Azure).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import SchemaMismatchError

from sde.errors import InputError

APPEND_ONLY = {"delta.appendOnly": "true"}
REMOTE_SCHEMES = ("s3://", "s3a://", "az://", "abfs://", "abfss://", "gs://")


@dataclass(frozen=True)
class RemoteTable:
    """A table (or a folder of tables) on object storage, e.g. ``s3://lake/linked/gp``.
    ``storage_options`` are delta-rs's (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...);
    they are never shown (not in ``repr``, not in a message)."""

    uri: str
    storage_options: Mapping[str, str] = field(default_factory=dict, repr=False, hash=False)

    def __post_init__(self) -> None:
        if not self.uri.startswith(REMOTE_SCHEMES):
            raise InputError(
                f"an object-storage location must start with one of {', '.join(REMOTE_SCHEMES)}"
            )

    @property
    def name(self) -> str:
        return self.uri.rstrip("/").rsplit("/", 1)[-1]

    def __truediv__(self, child: str) -> RemoteTable:
        return RemoteTable(f"{self.uri.rstrip('/')}/{child}", self.storage_options)

    def __str__(self) -> str:
        return self.uri


Location = Path | RemoteTable


def _open(table: Location, version: int | None = None) -> DeltaTable:
    if isinstance(table, RemoteTable):
        return DeltaTable(table.uri, version=version, storage_options=dict(table.storage_options))
    return DeltaTable(str(table), version=version)


def exists(table: Location) -> bool:
    if isinstance(table, RemoteTable):
        try:
            return bool(
                DeltaTable.is_deltatable(table.uri, storage_options=dict(table.storage_options))
            )
        except OSError as exc:
            # A refusing or unreachable store is not "no table" (fail closed, and say why
            # without the store's message).
            from sde.adapters.lake_files import unavailable

            raise unavailable(table, exc) from None
    return bool(DeltaTable.is_deltatable(str(table)))


def version(table: Location) -> int | None:
    """The table's current version, or None if there is no table there."""
    if not exists(table):
        return None
    return int(_open(table).version())


def append(
    table_path: Location,
    data: pa.Table | pa.RecordBatchReader,
    *,
    custom_metadata: Mapping[str, str] | None = None,
) -> int:
    """Append ``data`` as one commit (creating an append-only table on first write) and
    return the table's new version. A reader is streamed: nothing is committed if it
    raises part-way."""
    if isinstance(table_path, Path):
        table_path.parent.mkdir(parents=True, exist_ok=True)
    configuration = None if exists(table_path) else APPEND_ONLY
    try:
        write_deltalake(
            str(table_path),
            data,
            mode="append",
            configuration=configuration,
            commit_properties=CommitProperties(custom_metadata=dict(custom_metadata or {})),
            storage_options=(
                dict(table_path.storage_options) if isinstance(table_path, RemoteTable) else None
            ),
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
    table_path: Location,
    version: int | None = None,
    columns: Sequence[str] | None = None,
) -> pa.Table:
    """The whole table (or some columns) as Arrow, at ``version`` (default: latest)."""
    return dataset(table_path, version).to_table(columns=list(columns) if columns else None)


def dataset(table_path: Location, version: int | None = None) -> pads.Dataset:
    """An Arrow dataset over the table at ``version``: filters and projections are
    pushed down, batches are streamed.

    For a local table without partitions or reader features (every table sde writes),
    the dataset reads the commit's Parquet files with Arrow's own filesystem.
    ``DeltaTable.to_pyarrow_dataset()`` goes through a Python filesystem handler whose
    scanner threads can outlive the interpreter and abort the process at exit
    ("terminate called without an active exception", apache/arrow#45214); that path is
    kept for anything else."""
    table = _open(table_path, version)
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


def history(table_path: Location) -> list[dict[str, Any]]:
    """Commit history, newest first (each with ``version`` and any custom metadata)."""
    if not exists(table_path):
        return []
    return list(_open(table_path).history())


def batches(
    table_path: Location,
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
