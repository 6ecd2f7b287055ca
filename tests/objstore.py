"""A real S3 server for the tests of the lake on object storage: versitygw (an S3 gateway
that keeps objects as plain files), built from its Go module by ``scripts/setup.sh`` with
``SDE_SETUP_OBJSTORE=1`` (``./run test`` does), run on 127.0.0.1 over a temporary folder.

A bucket is a top-level folder of that folder (versitygw's ``posix`` backend), so the
tests make one without an S3 client. Credentials are made up per run.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.browser import free_port
from tests.processes import running

ROOT = Path(__file__).resolve().parent.parent
VERSITYGW = ROOT / ".build" / "bin" / "versitygw"
SETUP = "`SDE_SETUP_OBJSTORE=1 bash scripts/setup.sh`"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    root: Path
    """The folder the server keeps buckets and objects in."""

    def storage_options(self, **changes: str) -> dict[str, str]:
        """delta-rs's options to reach this server (``changes`` override some)."""
        options = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
        }
        options.update(changes)
        return options

    def bucket(self, name: str) -> str:
        (self.root / name).mkdir(exist_ok=True)
        return f"s3://{name}"


@contextmanager
def s3_server(folder: Path, timeout_s: float = 15.0) -> Iterator[S3Server]:
    if not VERSITYGW.exists():
        pytest.fail(f"the object-storage tests need versitygw: run {SETUP}", pytrace=False)
    root = folder / "objects"
    root.mkdir(parents=True)
    port = free_port()
    access, secret = "sde-test", secrets.token_urlsafe(18)
    env = {**os.environ, "ROOT_ACCESS_KEY": access, "ROOT_SECRET_KEY": secret}
    endpoint = f"http://127.0.0.1:{port}"
    argv = [str(VERSITYGW), "--port", f"127.0.0.1:{port}", "posix", str(root)]
    # it answers an unsigned request with 403: any status means it is up
    with running(
        argv,
        name="versitygw",
        ready_url=endpoint,
        log=folder / "versitygw.log",
        env=env,
        any_status=True,
        timeout_s=timeout_s,
    ):
        yield S3Server(endpoint, access, secret, root)


AZURITE = ROOT / ".build" / "node" / "node_modules" / ".bin" / "azurite-blob"
AZURITE_SETUP = "`SDE_SETUP_HUB=1 bash scripts/setup.sh`"
AZURITE_ACCOUNT = "sdelake"


@dataclass(frozen=True)
class AzureServer:
    """Azurite's blob service: one storage account with a key made up per run."""

    endpoint: str
    """``http://127.0.0.1:<port>/<account>``, as delta-rs and pyarrow take it."""
    account: str
    key: str = field(repr=False)
    root: Path = field(default=Path("."))

    def storage_options(self, **changes: str) -> dict[str, str]:
        options = {
            "AZURE_STORAGE_ACCOUNT_NAME": self.account,
            "AZURE_STORAGE_ACCOUNT_KEY": self.key,
            "AZURE_ENDPOINT": self.endpoint,
            "AZURE_ALLOW_HTTP": "true",
        }
        options.update(changes)
        return options

    def container(self, name: str) -> str:
        """Make a container (through pyarrow's Azure filesystem: Azurite keeps its blobs in
        its own database, not as files)."""
        import pyarrow.fs as pafs

        authority = self.endpoint.split("://", 1)[1].split("/", 1)[0]
        fs = pafs.AzureFileSystem(
            self.account,
            account_key=self.key,
            blob_storage_authority=authority,
            blob_storage_scheme="http",
            dfs_storage_authority=authority,
            dfs_storage_scheme="http",
        )
        fs.create_dir(name)
        return f"az://{name}"


@contextmanager
def azure_server(folder: Path, timeout_s: float = 30.0) -> Iterator[AzureServer]:
    """Azurite (Microsoft's Azure Storage emulator, from npm) on 127.0.0.1 over a
    temporary folder, with its own account and key (``AZURITE_ACCOUNTS``)."""
    if not AZURITE.exists():
        pytest.fail(f"the Azure lake tests need Azurite: run {AZURITE_SETUP}", pytrace=False)
    root = folder / "azurite"
    root.mkdir(parents=True)
    port = free_port()
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    env = {**os.environ, "AZURITE_ACCOUNTS": f"{AZURITE_ACCOUNT}:{key}"}
    argv = [
        str(AZURITE),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--location",
        str(root),
        "--skipApiVersionCheck",
        "--disableTelemetry",
        "--silent",
    ]
    with running(
        argv,
        name="Azurite",
        ready_url=f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}?comp=list",
        log=folder / "azurite.log",
        env=env,
        any_status=True,
        timeout_s=timeout_s,
    ):
        yield AzureServer(f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}", AZURITE_ACCOUNT, key, root)
