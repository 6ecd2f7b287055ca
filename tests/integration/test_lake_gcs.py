"""The lake on Google Cloud Storage, end to end, against a real GCS emulator
(fake-gcs-server, built from its Go module by ``SDE_SETUP_OBJSTORE=1 bash
scripts/setup.sh``): a home whose ``config.yaml`` puts the lake at ``gs://sde-lake/prod``
with the emulator's address in the file (``GOOGLE_BASE_URL``, ``GOOGLE_ALLOW_HTTP``) and
``GOOGLE_SKIP_SIGNATURE``: the emulator takes no credentials, and sde allows that switch
only for a plain-http emulator address.

The same path as the S3 and Azure tests: ``sde ingest --all`` and ``sde extract`` write
there, the zones are listed, a patient's record history and a notebook (with the home, and
as a session with only the extract's URL and the store's variables) read there, nothing
lands under ``<home>/lake``; then the refusals (a credential in ``config.yaml``, plain
http without the switch, no credentials against anything but a plain-http emulator, an
environment that would redirect Google's client, a missing bucket).

fake-gcs-server v1.56.1 serves the JSON API (pyarrow's ``GcsFileSystem``) and the XML
API's reads and listings (delta-rs's object_store), but not the XML API's object upload
(``PUT /<bucket>/<object>``; fsouza/fake-gcs-server#331, the patch in #1164 is not
merged). A small proxy run beside it (:func:`_serve_xml_proxy`, its own process) turns
that one request into the JSON API's media upload, keeping the generation precondition
(``x-goog-if-generation-match`` becomes ``ifGenerationMatch``, which the emulator
honours); and its XML listing ignores ``start-after`` (which delta-rs lists a table's log
with), so the proxy drops the keys up to it. Everything else passes through unchanged."""

from __future__ import annotations

import http.client
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.etree import ElementTree

import pytest
from click.testing import Result

from sde.adapters import delta, lake_files
from sde.adapters.delta import RemoteTable
from sde.adapters.lake_files import LakeUnavailable
from sde.errors import ConfigError
from sde.hub.spawner import lake_session_env
from sde.services.extract import read_manifest
from sde.services.home import Home, init_home, open_home
from sde.services.synth.files import synthesise
from sde.services.wiring import control_plane, policy_engine
from tests.browser import free_port
from tests.factories import airlock_project
from tests.integration.test_lake_object_store import cli, write_lake_config
from tests.lake_sessions import (
    assert_extract_on_the_store,
    assert_zones_on_the_store,
    count_as_a_pod,
    count_with_the_home,
    exercise_zone_files,
    history_of_an_extracted_patient,
)
from tests.processes import running

pytestmark = [pytest.mark.delta, pytest.mark.sql, pytest.mark.policy, pytest.mark.duckdb]

ROOT = Path(__file__).resolve().parents[2]
FAKE_GCS_SERVER = ROOT / ".build" / "bin" / "fake-gcs-server"
SETUP = "`SDE_SETUP_OBJSTORE=1 bash scripts/setup.sh`"
BUCKET = "sde-lake"
PREFIX = "prod"
PROJECT = "diabetes"
SESSION_VARS = (
    "SDE_HOME",
    "SDE_API_URL",
    "SDE_TOKEN",
    "SDE_PROJECT",
    "SDE_USER",
    "SDE_EXTRACT",
    "SDE_SCRATCH",
    "SDE_OUTPUTS",
    "GOOGLE_BASE_URL",
    "GOOGLE_ALLOW_HTTP",
    "GOOGLE_SKIP_SIGNATURE",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
)


@dataclass(frozen=True)
class GcsServer:
    endpoint: str
    """The address both clients use: ``http://127.0.0.1:<port>`` (the proxy)."""

    def options(self, **changes: str) -> dict[str, str]:
        options = {
            "GOOGLE_BASE_URL": self.endpoint,
            "GOOGLE_ALLOW_HTTP": "true",
            "GOOGLE_SKIP_SIGNATURE": "true",
        }
        options.update(changes)
        return options

    def bucket(self, name: str) -> None:
        request = urllib.request.Request(
            f"{self.endpoint}/storage/v1/b",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # loopback only
            assert answer.status == 200


@contextmanager
def gcs_server(folder: Path, timeout_s: float = 20.0) -> Iterator[GcsServer]:
    """fake-gcs-server on 127.0.0.1 (objects in memory), behind the upload proxy."""
    if not FAKE_GCS_SERVER.exists():
        pytest.fail(f"the GCS lake tests need fake-gcs-server: run {SETUP}", pytrace=False)
    port, proxy_port = free_port(), free_port()
    server = [
        str(FAKE_GCS_SERVER),
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-port",
        str(port),
        # the XML API answers requests whose Host is the public host (port ignored)
        "-public-host",
        "127.0.0.1",
        "-backend",
        "memory",
        "-log-level",
        "warn",
    ]
    proxy = [sys.executable, __file__, "xml-proxy", str(port), str(proxy_port)]
    endpoint = f"http://127.0.0.1:{proxy_port}"
    with (
        running(
            server,
            name="fake-gcs-server",
            ready_url=f"http://127.0.0.1:{port}/storage/v1/b",
            log=folder / "fake-gcs-server.log",
            timeout_s=timeout_s,
        ),
        running(
            proxy,
            name="the GCS upload proxy",
            ready_url=f"{endpoint}/storage/v1/b",
            log=folder / "gcs-proxy.log",
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout_s=timeout_s,
        ),
    ):
        yield GcsServer(endpoint)


@dataclass(frozen=True)
class World:
    gcs: GcsServer
    root: Path
    ingest: Result
    extract: Result

    def home(self) -> Home:
        return open_home(self.root)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("lake-gcs")
    with gcs_server(folder) as gcs:
        gcs.bucket(BUCKET)
        home = init_home(folder / "h")
        write_lake_config(
            home.root,
            {
                "url": f"gs://{BUCKET}/{PREFIX}",
                "options": gcs.options(),
                "workspace_credentials": "inherit",
            },
        )
        synthesise(home.sources, 120, seed=13)
        ingested = cli(home.root, {}, "ingest", "--all", "--no-progress", "--actor", "olu")
        with control_plane(home) as plane:
            airlock_project(plane, policy_engine(home))
        extracted = cli(home.root, {}, "extract", PROJECT, "--actor", "olu")
        yield World(gcs, home.root, ingested, extracted)


def test_ingest_writes_the_zones_to_the_bucket(world: World) -> None:
    assert world.ingest.exit_code == 0, world.ingest.output
    home = world.home()
    # the zones' folders are prefixes only (no marker objects): listed all the same
    assert_zones_on_the_store(home, f"gs://{BUCKET}/{PREFIX}", range(110, 121))
    assert len(delta.history(home.linked / "patients")) >= 1


def test_extract_and_its_manifest_are_in_the_bucket(world: World) -> None:
    assert world.extract.exit_code == 0, world.extract.output
    location = assert_extract_on_the_store(world.home(), f"gs://{BUCKET}/{PREFIX}", PROJECT)
    assert "manifest.json" not in lake_files.folders(location)
    assert "patients" in lake_files.list_tables(location)


def test_a_patients_history_and_a_notebook_read_the_bucket(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = world.home()
    history = history_of_an_extracted_patient(home, PROJECT)
    assert history.has_record
    assert "patients" in [d.name for d in history.datasets]
    [use] = history.projects
    assert use.project_id == PROJECT
    assert use.in_latest_extract

    for name in SESSION_VARS:
        monkeypatch.delenv(name, raising=False)
    n = count_with_the_home(home, PROJECT, tmp_path, monkeypatch)
    assert n == read_manifest(home, PROJECT).tables["patients"].rows_written


def test_a_session_reads_its_extract_by_url_with_the_plain_options(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a pod: the extract's URL and the store's plain variables from the spawner (the
    emulator's address and switches; no credential exists to pass)."""
    for name in SESSION_VARS:
        monkeypatch.delenv(name, raising=False)
    home = world.home()
    session = lake_session_env(home, PROJECT)
    assert session == {
        "SDE_EXTRACT": f"gs://{BUCKET}/{PREFIX}/projects/{PROJECT}/extract",
        **world.gcs.options(),
        # the emulator form delta-rs needs (no key in it), passed with `inherit`
        "GOOGLE_SERVICE_ACCOUNT_KEY": session["GOOGLE_SERVICE_ACCOUNT_KEY"],
    }
    assert json.loads(session["GOOGLE_SERVICE_ACCOUNT_KEY"])["private_key"] == ""
    n = count_as_a_pod(home, PROJECT, session, tmp_path, monkeypatch)
    assert n == read_manifest(home, PROJECT).tables["patients"].rows_written


def test_zone_files_on_the_bucket(world: World, tmp_path: Path) -> None:
    zone = RemoteTable(f"gs://{BUCKET}/files-{tmp_path.name}", world.gcs.options())
    exercise_zone_files(zone, make_folder=False)  # folders are prefixes only on GCS


def test_the_rig_keeps_the_commit_precondition(world: World) -> None:
    """delta-rs commits with ``x-goog-if-generation-match: 0`` (create only): through the
    proxy the emulator refuses a second write of an existing commit, as GCS does, so
    these tests do not run a weaker commit protocol than the real store's."""
    commit = f"{PREFIX}/linked/patients/_delta_log/{0:020d}.json"
    url = f"{world.gcs.endpoint}/{BUCKET}/{quote(commit, safe='')}"
    request = urllib.request.Request(
        url, data=b"{}", method="PUT", headers={"x-goog-if-generation-match": "0"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)  # loopback only
    refused.value.close()
    assert refused.value.code == 412
    with urllib.request.urlopen(url, timeout=10) as answer:  # loopback only
        assert answer.read() != b"{}"


# --- refusals ---------------------------------------------------------------------------


def _home_with(world: World, tmp_path: Path, options: Mapping[str, str], url: str = "") -> Path:
    root = init_home(tmp_path / "h").root
    write_lake_config(root, {"url": url or f"gs://{BUCKET}/{PREFIX}", "options": dict(options)})
    return root


def test_a_credential_in_the_config_file_is_refused(world: World, tmp_path: Path) -> None:
    canary = '{"private_key": "canary-gcs-key-4b1d"}'
    root = _home_with(world, tmp_path, world.gcs.options(GOOGLE_SERVICE_ACCOUNT_KEY=canary))
    with pytest.raises(ConfigError, match="holds a credential \\(GOOGLE_SERVICE_ACCOUNT_KEY\\)"):
        open_home(root)
    result = cli(root, {}, "optout", "status")
    assert result.exit_code == 2
    assert "SDE_LAKE_GOOGLE_SERVICE_ACCOUNT_KEY" in result.output
    assert "canary-gcs-key" not in result.output


@pytest.mark.parametrize(
    ("change", "env", "message"),
    [
        # plain http without the switch
        ({"GOOGLE_ALLOW_HTTP": "false"}, {}, "plain http: set GOOGLE_ALLOW_HTTP"),
        # plain http with credentials (the platform's tokens would travel in clear)
        ({"GOOGLE_SKIP_SIGNATURE": "false"}, {}, "only for a GCS emulator"),
        # no credentials at all, against anything but a plain-http emulator address
        ({"GOOGLE_BASE_URL": "https://storage.example.org"}, {}, "GOOGLE_SKIP_SIGNATURE"),
        ({"GOOGLE_BASE_URL": "http://127.0.0.1:9/storage"}, {}, "bare http"),
        # no credentials, and a credential beside the switch: one or the other
        (
            {},
            {"SDE_LAKE_GOOGLE_SERVICE_ACCOUNT_KEY": '{"private_key": "canary-9d2e"}'},
            "turns credentials off, but GOOGLE_SERVICE_ACCOUNT_KEY",
        ),
        # an environment that would send pyarrow's requests elsewhere
        ({}, {"CLOUD_STORAGE_EMULATOR_ENDPOINT": "http://127.0.0.1:9"}, "unset it"),
    ],
)
def test_an_unsafe_endpoint_or_switch_is_refused(
    world: World,
    tmp_path: Path,
    change: Mapping[str, str],
    env: Mapping[str, str],
    message: str,
) -> None:
    options = world.gcs.options(**change)
    root = _home_with(world, tmp_path, options)
    result = cli(root, env, "extract", PROJECT, "--actor", "olu")
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "canary" not in result.output
    assert "Traceback" not in result.output


def test_the_switch_and_endpoint_are_checked_where_delta_rs_gets_them() -> None:
    """Every ``gs://`` location, a session's too, not only the home's."""
    with pytest.raises(ConfigError, match="GOOGLE_ALLOW_HTTP"):
        RemoteTable("gs://b/p", {"GOOGLE_BASE_URL": "http://127.0.0.1:9"})
    with pytest.raises(ConfigError, match="plain-http address"):
        RemoteTable("gs://b/p", {"GOOGLE_SKIP_SIGNATURE": "true"})
    private = RemoteTable("gs://b/p", {"GOOGLE_BASE_URL": "https://gcs.internal.example"})
    assert dict(private.storage_options) == {"GOOGLE_BASE_URL": "https://gcs.internal.example"}
    fs, path = lake_files.filesystem(private)
    assert type(fs).__name__ == "GcsFileSystem"
    assert path == "b/p"
    emulator = RemoteTable(
        "gs://b/p",
        {
            "GOOGLE_BASE_URL": "http://127.0.0.1:9",
            "GOOGLE_ALLOW_HTTP": "true",
            "GOOGLE_SKIP_SIGNATURE": "true",
        },
    )
    key = json.loads(emulator.storage_options["GOOGLE_SERVICE_ACCOUNT_KEY"])
    assert key["disable_oauth"] is True
    assert key["gcs_base_url"] == "http://127.0.0.1:9"
    assert key["private_key"] == ""
    assert emulator / "linked" == RemoteTable("gs://b/p/linked", emulator.storage_options)


def test_a_missing_bucket_fails_clearly(world: World, tmp_path: Path) -> None:
    root = _home_with(world, tmp_path, world.gcs.options(), url="gs://no-such-bucket/prod")
    with pytest.raises(LakeUnavailable, match="does not exist"):
        lake_files.check_access(open_home(root).lake)
    result = cli(root, {}, "extract", PROJECT, "--actor", "olu")
    assert result.exit_code == 2
    assert "gs://no-such-bucket/prod" in result.output


# --- file systems are built once per store and options ----------------------------------


def test_file_systems_are_cached_per_store_and_options() -> None:
    s3 = {"AWS_ENDPOINT_URL": "https://objects.example.org", "AWS_REGION": "eu-west-2"}
    first, _ = lake_files.filesystem(RemoteTable("s3://b/prod/linked", s3))
    again, path = lake_files.filesystem(RemoteTable("s3://b/prod/quarantine", dict(s3)))
    assert again is first
    assert path == "b/prod/quarantine"
    other, _ = lake_files.filesystem(RemoteTable("s3://b/prod", {**s3, "AWS_REGION": "eu-west-1"}))
    assert other is not first
    gcs, _ = lake_files.filesystem(RemoteTable("gs://b/prod"))
    assert gcs is lake_files.filesystem(RemoteTable("gs://c/other"))[0]
    assert gcs is not first
    azure = {"AZURE_STORAGE_ACCOUNT_NAME": "acct", "AZURE_STORAGE_ACCOUNT_KEY": "a2V5"}
    az, _ = lake_files.filesystem(RemoteTable("az://lake/prod", azure))
    assert az is lake_files.filesystem(RemoteTable("az://other/x", dict(azure)))[0]
    renamed = {**azure, "AZURE_STORAGE_ACCOUNT_NAME": "acct2"}
    assert az is not lake_files.filesystem(RemoteTable("az://lake/prod", renamed))[0]


# --- the upload proxy (run as its own process by gcs_server) ----------------------------

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


def _serve_xml_proxy(upstream: int, port: int) -> None:
    """Serve on 127.0.0.1:``port``, passing requests to fake-gcs-server on ``upstream``,
    except the XML API's object upload, ``PUT /<bucket>/<object>`` (no query, no copy
    source), which becomes ``POST /upload/storage/v1/b/<bucket>/o?uploadType=media``.

    It must run in a process of its own: delta-rs holds the GIL in some calls
    (``DeltaTable.history``), so a proxy thread in the test's process would never answer."""

    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _upstream(
            self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
        ) -> tuple[int, list[tuple[str, str]], bytes]:
            conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=60)
            try:
                conn.request(method, path, body=body, headers=dict(headers))
                answer = conn.getresponse()
                return answer.status, answer.getheaders(), answer.read()
            finally:
                conn.close()

        def _reply(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
            self.send_response(status)
            length = str(len(data))
            for name, value in headers:
                if name.lower() == "content-length" and self.command == "HEAD":
                    length = value
                elif name.lower() not in _HOP_BY_HOP and name.lower() not in ("date", "server"):
                    self.send_header(name, value)
            self.send_header("Content-Length", length)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _pass(self) -> None:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            body = self._body()
            self._reply(*self._upstream(self.command, self.path, body or None, headers))

        do_HEAD = do_POST = do_DELETE = _pass

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            after = query.get("start-after", [""])[0]
            if query.get("list-type") != ["2"] or not after:
                return self._pass()
            # the emulator ignores start-after: keep only the keys after it, as GCS does
            status, headers, data = self._upstream("GET", self.path, None, {})
            if status != 200:
                return self._reply(status, headers, data)
            listing = ElementTree.fromstring(data)
            for entry in listing.findall("Contents"):
                if entry.findtext("Key", "") <= after:
                    listing.remove(entry)
            count = listing.find("KeyCount")
            if count is not None:
                count.text = str(len(listing.findall("Contents")))
            body = ElementTree.tostring(listing, encoding="utf-8", xml_declaration=True)
            self._reply(200, [("Content-Type", "application/xml")], body)

        def do_PUT(self) -> None:
            parts = urlsplit(self.path)
            bucket, _, name = parts.path.lstrip("/").partition("/")
            if (
                parts.query
                or not name
                or bucket in ("upload", "storage", "_internal")
                or "x-goog-copy-source" in self.headers
            ):
                return self._pass()
            query = f"uploadType=media&name={quote(unquote(name), safe='')}"
            condition = self.headers.get("x-goog-if-generation-match")
            if condition is not None:
                query += f"&ifGenerationMatch={int(condition)}"
            bucket_path = quote(unquote(bucket), safe="")
            status, headers, data = self._upstream(
                "POST",
                f"/upload/storage/v1/b/{bucket_path}/o?{query}",
                self._body(),
                {"Content-Type": self.headers.get("Content-Type", "application/octet-stream")},
            )
            if status != 200:
                return self._reply(status, headers, data)
            stored = json.loads(data)
            self._reply(
                200,
                [("ETag", stored["etag"]), ("x-goog-generation", str(stored["generation"]))],
                b"",
            )

    ThreadingHTTPServer(("127.0.0.1", port), Proxy).serve_forever()


if __name__ == "__main__" and sys.argv[1:2] == ["xml-proxy"]:
    _serve_xml_proxy(int(sys.argv[2]), int(sys.argv[3]))
