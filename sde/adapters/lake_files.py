"""Small file operations in a lake zone, wherever the lake is: a local folder (pathlib)
or a prefix of an object store (``pyarrow.fs``: ``S3FileSystem``, ``AzureFileSystem``,
``GcsFileSystem``, built from the same delta-rs storage options as
:class:`~sde.adapters.delta.RemoteTable`). The file systems are built once per store and
options in a process (:func:`filesystem`).

On GCS the folders of a zone are listed through delta-rs's own client (object_store,
``deltalake.fs.DeltaStorageHandler``, given the table's options): pyarrow's
``GcsFileSystem`` lists only objects, so it never sees a folder that is only a prefix of
other objects, as every folder delta-rs writes is.

Only what sde needs beside the Delta tables themselves: whether something is there, the
tables of a zone, a small file (an extract's manifest) read and written whole, a folder
made. Tables are read and written by :mod:`sde.adapters.delta`.

A store that refuses or cannot be reached raises :class:`~sde.errors.ConfigError` naming
the location and what went wrong in general terms (access denied, not reachable), never
the store's own message (which might echo a request) nor an option's value.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import pyarrow.fs as pafs
from deltalake.fs import DeltaStorageHandler

from sde.adapters.delta import (
    GCS_BASE_URL,
    Location,
    RemoteTable,
    flag,
    gcs_unauthenticated,
    s3_endpoint,
)
from sde.errors import ConfigError

DELTA_LOG = "_delta_log"

_DENIED = (
    "ACCESS_DENIED",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "SIGNATURE_DOES_NOT_MATCH",
    "INVALID_ACCESS_KEY_ID",
    "UserNotFound",
    "EXPIRED_TOKEN",
    "403",
    "401",
    "AuthorizationFailure",
    "AuthenticationFailed",
    "Forbidden",
    "Unauthorized",
)


class LakeUnavailable(ConfigError):
    """The lake's store refused or could not be reached."""


_UNUSABLE: Final = {
    "gs": ("GOOGLE_SERVICE_ACCOUNT", "GOOGLE_SERVICE_ACCOUNT_KEY"),
    "az": ("AZURE_STORAGE_TOKEN",),
    "abfs": ("AZURE_STORAGE_TOKEN",),
    "abfss": ("AZURE_STORAGE_TOKEN",),
}
"""Credentials delta-rs takes but pyarrow's file systems cannot: refused, rather than
silently reaching the store with the platform's default identity instead."""


GCS_RETRY_LIMIT: Final = timedelta(seconds=30)
"""How long pyarrow's GCS client retries (its own default is 15 minutes), so an
unreachable endpoint stops a command in seconds, not a quarter of an hour."""


def _options(remote: RemoteTable) -> tuple[str, str, dict[str, str]]:
    scheme, _, rest = remote.uri.partition("://")
    options = {k.upper(): v for k, v in remote.storage_options.items()}
    unusable = [name for name in _UNUSABLE.get(scheme, ()) if name in options]
    if scheme == "gs" and gcs_unauthenticated(options):
        # the emulator form delta.gcs_storage_options put there: no credential in it
        unusable = [name for name in unusable if name != "GOOGLE_SERVICE_ACCOUNT_KEY"]
    if unusable:
        raise ConfigError(
            f"sde cannot use {', '.join(unusable)} to reach a {scheme}:// lake yet (its file "
            "access, pyarrow, takes no such credential): use workload identity (the "
            "platform's default credentials)" + (" or an account key" if scheme != "gs" else "")
        )
    return scheme, rest, options


def filesystem(remote: RemoteTable) -> tuple[pafs.FileSystem, str]:
    """A pyarrow file system for ``remote`` and the path of ``remote`` inside it.

    The file system is built once per store and options in this process (an LRU cache
    keyed by them: the options, credentials among them, are held there, in this
    process's memory, as they are in the ``RemoteTable``; never written anywhere), so a
    page that lists a zone per request does not build a client each time."""
    scheme, rest, options = _options(remote)
    if scheme in ("az", "abfs", "abfss"):
        authority, _, path = rest.partition("/")
        container, at, host = authority.partition("@")
        account = options.get("AZURE_STORAGE_ACCOUNT_NAME") or (host.split(".", 1)[0] if at else "")
        if not account:
            raise ConfigError("an Azure lake needs AZURE_STORAGE_ACCOUNT_NAME (or an abfss:// URL)")
        return _cached("azure", account, _frozen(options)), f"{container}/{path}".rstrip("/")
    if scheme in ("s3", "s3a", "gs"):
        return _cached(scheme.rstrip("a"), "", _frozen(options)), rest.rstrip("/")
    raise ConfigError(f"no file system for {scheme}:// locations")  # pragma: no cover


def _frozen(options: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(options.items()))


@functools.lru_cache(maxsize=32)
def _cached(kind: str, scope: str, options: tuple[tuple[str, str], ...]) -> pafs.FileSystem:
    given = dict(options)
    if kind == "s3":
        return _s3(given)
    if kind == "azure":
        return _azure(scope, given)
    if kind == "gs":
        return _gcs(given)
    if kind == "gs-listing":
        # delta-rs's client over the bucket, with the table's own options
        return pafs.PyFileSystem(DeltaStorageHandler(f"gs://{scope}", given))
    raise ConfigError(f"no file system for {kind}")  # pragma: no cover


def _gcs(options: Mapping[str, str]) -> pafs.GcsFileSystem:
    """pyarrow's GCS client: the platform's default credentials (Application Default
    Credentials, workload identity), or none at all for an emulator
    (``GOOGLE_SKIP_SIGNATURE``, checked by :func:`sde.adapters.delta.gcs_storage_options`
    to be a plain-http ``GOOGLE_BASE_URL`` with no credential beside it)."""
    kwargs: dict[str, object] = {"retry_time_limit": GCS_RETRY_LIMIT}
    base = options.get(GCS_BASE_URL)
    if base:
        parts = urlsplit(base)
        kwargs["endpoint_override"] = parts.netloc
        kwargs["scheme"] = parts.scheme
    if gcs_unauthenticated(options):
        kwargs["anonymous"] = True
    return pafs.GcsFileSystem(**kwargs)


def _s3(options: Mapping[str, str]) -> pafs.S3FileSystem:
    kwargs: dict[str, object] = {}
    parts = s3_endpoint(options)
    if parts is not None:
        kwargs["endpoint_override"] = parts.netloc + parts.path.rstrip("/")
        kwargs["scheme"] = parts.scheme
    region = options.get("AWS_REGION") or options.get("AWS_DEFAULT_REGION")
    if region:
        kwargs["region"] = region
    if "AWS_ACCESS_KEY_ID" in options or "AWS_SECRET_ACCESS_KEY" in options:
        kwargs["access_key"] = options.get("AWS_ACCESS_KEY_ID", "")
        kwargs["secret_key"] = options.get("AWS_SECRET_ACCESS_KEY", "")
        if "AWS_SESSION_TOKEN" in options:
            kwargs["session_token"] = options["AWS_SESSION_TOKEN"]
    elif options.get("AWS_ROLE_ARN") and options.get("AWS_WEB_IDENTITY_TOKEN_FILE"):
        kwargs["role_arn"] = options["AWS_ROLE_ARN"]
        kwargs["session_name"] = options.get("AWS_ROLE_SESSION_NAME", "sde")
        kwargs["load_frequency"] = 900
    kwargs["force_virtual_addressing"] = flag(options, "AWS_VIRTUAL_HOSTED_STYLE_REQUEST")
    return pafs.S3FileSystem(**kwargs)


def _azure(account: str, options: Mapping[str, str]) -> pafs.AzureFileSystem:
    kwargs: dict[str, object] = {}
    if "AZURE_STORAGE_ACCOUNT_KEY" in options:
        kwargs["account_key"] = options["AZURE_STORAGE_ACCOUNT_KEY"]
    if "AZURE_STORAGE_SAS_KEY" in options:
        kwargs["sas_token"] = options["AZURE_STORAGE_SAS_KEY"]
    for option, name in (
        ("AZURE_CLIENT_ID", "client_id"),
        ("AZURE_TENANT_ID", "tenant_id"),
        ("AZURE_CLIENT_SECRET", "client_secret"),
    ):
        if option in options:
            kwargs[name] = options[option]
    endpoint = options.get("AZURE_ENDPOINT")
    if endpoint:
        parts = urlsplit(endpoint)
        # The same host serves the blob and the Data Lake (dfs) APIs here: an emulator or
        # a private endpoint (pyarrow would otherwise ask <account>.dfs.core.windows.net).
        kwargs["blob_storage_authority"] = parts.netloc
        kwargs["blob_storage_scheme"] = parts.scheme
        kwargs["dfs_storage_authority"] = parts.netloc
        kwargs["dfs_storage_scheme"] = parts.scheme
    return pafs.AzureFileSystem(account, **kwargs)


def unavailable(location: Location, exc: BaseException) -> LakeUnavailable:
    """The error to raise for a store's failure at ``location`` (the store's own message
    is looked at, never repeated)."""
    text = f"{type(exc).__name__} {exc}"
    if any(marker in text for marker in _DENIED):
        return LakeUnavailable(
            f"the lake's store refused access to {location}: check the lake credentials "
            "(SDE_LAKE_* variables) and the store's policy"
        )
    return LakeUnavailable(
        f"cannot reach the lake at {location} ({type(exc).__name__}); check lake.url, "
        "the endpoint and the network"
    )


def _info(location: RemoteTable) -> pafs.FileInfo:
    fs, path = filesystem(location)
    try:
        return fs.get_file_info(path)
    except (OSError, ValueError) as exc:
        raise unavailable(location, exc) from None


def exists(location: Location) -> bool:
    """Whether a file or a non-empty folder is at ``location``."""
    if isinstance(location, Path):
        return location.exists()
    return bool(_info(location).type != pafs.FileType.NotFound)


def folders(location: Location) -> list[str]:
    """The names of the folders directly in ``location`` (sorted; none if it is absent)."""
    if isinstance(location, Path):
        if not location.is_dir():
            return []
        return sorted(p.name for p in location.iterdir() if p.is_dir())
    fs, path = _listing_filesystem(location)
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    except (OSError, ValueError) as exc:
        raise unavailable(location, exc) from None
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)


def _listing_filesystem(remote: RemoteTable) -> tuple[pafs.FileSystem, str]:
    """The file system that lists ``remote``'s folders: on GCS delta-rs's client over
    the bucket (see the module's note), elsewhere :func:`filesystem`'s."""
    if not remote.uri.startswith("gs://"):
        return filesystem(remote)
    _, rest, options = _options(remote)
    bucket, _, path = rest.partition("/")
    return _cached("gs-listing", bucket, _frozen(options)), path.rstrip("/")


def list_tables(location: Location) -> list[str]:
    """The names of the Delta tables directly in ``location`` (a zone such as ``linked``),
    sorted: folders holding a ``_delta_log``."""
    return [name for name in folders(location) if exists(location / name / DELTA_LOG)]


def read_bytes(location: Location) -> bytes:
    """A small file, whole. :class:`FileNotFoundError` when there is none."""
    if isinstance(location, Path):
        return location.read_bytes()
    fs, path = filesystem(location)
    try:
        with fs.open_input_stream(path) as stream:
            return bytes(stream.read())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        if _info(location).type == pafs.FileType.NotFound:
            raise FileNotFoundError(str(location)) from None
        raise unavailable(location, exc) from None


def write_bytes(location: Location, data: bytes) -> None:
    """Write a small file whole: locally through a temporary file renamed into place, on
    object storage as one PUT (readers see the old or the new file, never part of one)."""
    if isinstance(location, Path):
        location.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=location.parent, prefix=f".{location.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(temp, location)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return
    fs, path = filesystem(location)
    try:
        with fs.open_output_stream(path) as stream:
            stream.write(data)
    except (OSError, ValueError) as exc:
        raise unavailable(location, exc) from None


def make_folder(location: Location) -> None:
    """A local folder (with its parents); nothing on object storage, where a prefix
    exists as soon as an object is written under it."""
    if isinstance(location, Path):
        location.mkdir(parents=True, exist_ok=True)


def check_access(location: Location) -> None:
    """Fail early, with a clear error, when the lake cannot be listed (wrong
    credentials, unreachable endpoint, missing bucket)."""
    if isinstance(location, Path):
        return
    fs, path = filesystem(location)
    bucket = path.split("/", 1)[0]
    try:
        info = fs.get_file_info(bucket)
        fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    except (OSError, ValueError) as exc:
        raise unavailable(location, exc) from None
    if info.type == pafs.FileType.NotFound:
        raise LakeUnavailable(f"the lake's bucket or container for {location} does not exist")
