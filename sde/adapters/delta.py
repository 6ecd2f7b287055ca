"""Delta tables with delta-rs (``deltalake``): append, read, versions, time travel.

Tables sde creates are append-only (``delta.appendOnly``): a delete or overwrite is
refused by the table itself. Each append is one commit; ``custom_metadata`` is stored
with the commit (sde puts the source file's SHA-256 there, never a patient value).

A table is a local folder (a :class:`~pathlib.Path`) or a :class:`RemoteTable` on object
storage (``s3://``, ``az://``/``abfss://``, ``gs://``) with the storage options delta-rs
needs (endpoint, credentials). Commits on object storage are conditional writes
(``If-None-Match: *``; ``x-goog-if-generation-match: 0`` on GCS): two writers never
overwrite each other's commit, so no locking service is needed where the store honours
that condition (AWS S3, MinIO, versitygw, Azure, GCS).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import SplitResult, urlsplit

import pyarrow as pa
import pyarrow.dataset as pads
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import SchemaMismatchError

from sde.errors import ConfigError, InputError

APPEND_ONLY = {"delta.appendOnly": "true"}
REMOTE_SCHEMES = ("s3://", "s3a://", "az://", "abfs://", "abfss://", "gs://")


@dataclass(frozen=True)
class RemoteTable:
    """A table (or a folder of tables) on object storage, e.g. ``s3://lake/linked/gp``.
    ``storage_options`` are delta-rs's (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...);
    they are never shown (not in ``repr``, not in a message). A ``gs://`` location's
    options are checked and completed for delta-rs on creation (:func:`gcs_storage_options`)."""

    uri: str
    storage_options: Mapping[str, str] = field(default_factory=dict, repr=False, hash=False)

    def __post_init__(self) -> None:
        if not self.uri.startswith(REMOTE_SCHEMES):
            raise InputError(
                f"an object-storage location must start with one of {', '.join(REMOTE_SCHEMES)}"
            )
        if self.uri.startswith("gs://"):
            object.__setattr__(self, "storage_options", gcs_storage_options(self.storage_options))

    @property
    def name(self) -> str:
        return self.uri.rstrip("/").rsplit("/", 1)[-1]

    def __truediv__(self, child: str) -> RemoteTable:
        return RemoteTable(f"{self.uri.rstrip('/')}/{child}", self.storage_options)

    def __str__(self) -> str:
        return self.uri


Location = Path | RemoteTable

GCS_BASE_URL: Final = "GOOGLE_BASE_URL"
GCS_ALLOW_HTTP: Final = "GOOGLE_ALLOW_HTTP"
GCS_UNAUTHENTICATED: Final = "GOOGLE_SKIP_SIGNATURE"
_GCS_CREDENTIALS: Final = (
    "GOOGLE_SERVICE_ACCOUNT",
    "GOOGLE_SERVICE_ACCOUNT_PATH",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS",
)
_TRUE: Final = frozenset({"true", "1", "yes", "on"})


def _flag(options: Mapping[str, str], name: str) -> bool:
    return options.get(name, "").strip().lower() in _TRUE


def flag(options: Mapping[str, str], name: str) -> bool:
    """A storage option that is a switch (``true``, ``1``, ``yes``, ``on``)."""
    return _flag(options, name)


def s3_endpoint(options: Mapping[str, str]) -> SplitResult | None:
    """The lake's S3 endpoint (``AWS_ENDPOINT_URL``, else ``AWS_ENDPOINT``), checked as
    every client of the lake needs it: an http(s) address, plain http only with
    ``AWS_ALLOW_HTTP``. None: the store's own default."""
    endpoint = options.get("AWS_ENDPOINT_URL") or options.get("AWS_ENDPOINT")
    if not endpoint:
        return None
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError("the lake's AWS_ENDPOINT_URL must be an http(s) address")
    if parts.scheme == "http" and not _flag(options, "AWS_ALLOW_HTTP"):
        raise ConfigError(
            "the lake's AWS_ENDPOINT_URL is plain http: set AWS_ALLOW_HTTP to true to allow it"
        )
    return parts


def gcs_unauthenticated(options: Mapping[str, str]) -> bool:
    """Whether ``options`` reach a GCS emulator with no credentials at all
    (``GOOGLE_SKIP_SIGNATURE``; :func:`gcs_storage_options` has checked the rest)."""
    return _flag({k.upper(): v for k, v in options.items()}, GCS_UNAUTHENTICATED)


def _emulator_key(base_url: str) -> str:
    # object_store's documented emulator form: a service-account key with no key in it,
    # which turns OAuth off (empty bearer token) and names the endpoint.
    return json.dumps(
        {
            "gcs_base_url": base_url.rstrip("/"),
            "disable_oauth": True,
            "client_email": "",
            "private_key": "",
            "private_key_id": "",
        },
        sort_keys=True,
    )


def gcs_storage_options(options: Mapping[str, str]) -> dict[str, str]:
    """Check a ``gs://`` location's options and give delta-rs what it needs.

    - ``GOOGLE_BASE_URL`` (a GCS emulator or a private endpoint) must be a bare
      ``http(s)://host[:port]``; plain ``http`` needs ``GOOGLE_ALLOW_HTTP`` and
      ``GOOGLE_SKIP_SIGNATURE``: a plain-http address would carry the lake's access
      tokens in clear, so it is only for an emulator that takes none.
    - ``GOOGLE_SKIP_SIGNATURE`` (no credentials at all) needs a plain-http
      ``GOOGLE_BASE_URL`` and no credential beside it: never a silent fallback to
      anonymous access. delta-rs's GCS client (object_store 0.13) still asks for an OAuth
      token on every upload when it is on, so the emulator form object_store documents is
      added: a ``GOOGLE_SERVICE_ACCOUNT_KEY`` holding no key, ``disable_oauth`` and the
      endpoint.

    Messages name options, never their values."""
    upper = {k.upper(): v for k, v in options.items()}
    out = dict(options)
    base = upper.get(GCS_BASE_URL)
    unauthenticated = _flag(upper, GCS_UNAUTHENTICATED)
    if base is not None:
        parts = urlsplit(base)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or "@" in parts.netloc
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
        ):
            raise ConfigError(
                f"the lake's {GCS_BASE_URL} must be a bare http(s)://host[:port] address "
                "(no path, user, query or fragment)"
            )
        if parts.scheme == "http":
            if not _flag(upper, GCS_ALLOW_HTTP):
                raise ConfigError(
                    f"the lake's {GCS_BASE_URL} is plain http: set {GCS_ALLOW_HTTP} to true "
                    "to allow it"
                )
            if not unauthenticated:
                raise ConfigError(
                    f"the lake's {GCS_BASE_URL} is plain http, which would carry the lake's "
                    f"access tokens in clear: it is only for a GCS emulator, with "
                    f"{GCS_UNAUTHENTICATED} set to true (no credentials)"
                )
    if not unauthenticated:
        return out
    if base is None or urlsplit(base).scheme != "http":
        raise ConfigError(
            f"{GCS_UNAUTHENTICATED} (no credentials at all) is only for a GCS emulator: set "
            f"{GCS_BASE_URL} to its plain-http address (with {GCS_ALLOW_HTTP})"
        )
    key = _emulator_key(base)
    given = [
        name
        for name in _GCS_CREDENTIALS
        if name in upper and not (name == "GOOGLE_SERVICE_ACCOUNT_KEY" and upper[name] == key)
    ]
    if given:
        raise ConfigError(
            f"{GCS_UNAUTHENTICATED} turns credentials off, but {', '.join(given)} is set: "
            "give one or the other"
        )
    for name in [k for k in out if k.upper() == "GOOGLE_SERVICE_ACCOUNT_KEY"]:
        del out[name]
    out["GOOGLE_SERVICE_ACCOUNT_KEY"] = key
    return out


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
