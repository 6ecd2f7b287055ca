"""Delta tables on object storage through sde's delta adapter, against a real S3 server
(versitygw, tests/objstore.py): the same append-only tables, versions, history, time travel
and streamed datasets as on a local folder; wrong credentials refused without showing them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from sde.adapters import delta
from sde.adapters.delta import RemoteTable
from sde.errors import InputError
from tests.objstore import S3Server, s3_server

pytestmark = pytest.mark.delta


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def lake(s3: S3Server, request: pytest.FixtureRequest) -> RemoteTable:
    bucket = s3.bucket(request.node.name.replace("_", "-")[:40].strip("-").lower())
    return RemoteTable(f"{bucket}/lake", s3.storage_options())


def rows(start: int, n: int) -> pa.Table:
    return pa.table(
        {
            "pid": [f"{i:032x}" for i in range(start, start + n)],
            "value": list(range(start, start + n)),
        }
    )


def test_append_read_version_history_and_time_travel(lake: RemoteTable) -> None:
    table = lake / "linked" / "events"
    assert table.uri.endswith("/lake/linked/events")
    assert table.name == "events"
    assert not delta.exists(table)
    assert delta.version(table) is None
    assert delta.history(table) == []
    assert delta.append(table, rows(0, 100), custom_metadata={"sde.source_sha256": "ab" * 32}) == 0
    assert delta.append(table, rows(100, 50)) == 1
    assert delta.exists(table)
    assert delta.version(table) == 1
    assert delta.read(table).num_rows == 150
    assert delta.read(table, version=0).num_rows == 100
    assert delta.read(table, columns=["value"]).column_names == ["value"]
    newest, oldest = delta.history(table)
    assert (newest["version"], oldest["version"]) == (1, 0)
    assert oldest["sde.source_sha256"] == "ab" * 32
    filtered = delta.dataset(table).to_table(filter=pc.field("value") >= 140)
    assert filtered.num_rows == 10
    streamed = sum(b.num_rows for b in delta.batches(table, batch_rows=16))
    assert streamed == 150


def test_tables_on_object_storage_are_append_only(lake: RemoteTable) -> None:
    table = lake / "linked" / "patients"
    delta.append(table, rows(0, 10))
    opened = DeltaTable(table.uri, storage_options=dict(table.storage_options))
    assert opened.metadata().configuration == {"delta.appendOnly": "true"}
    with pytest.raises(Exception, match=r"(?i)append"):
        opened.delete("value < 5")
    assert delta.read(table).num_rows == 10


def test_a_changed_schema_is_refused_by_name(lake: RemoteTable) -> None:
    table = lake / "linked" / "deaths"
    delta.append(table, rows(0, 3))
    with pytest.raises(InputError, match="deaths"):
        delta.append(table, pa.table({"other": [1]}))


def test_wrong_credentials_are_refused_and_not_shown(s3: S3Server) -> None:
    bucket = s3.bucket("refused")
    good = RemoteTable(f"{bucket}/t", s3.storage_options())
    delta.append(good, rows(0, 3))
    wrong = RemoteTable(
        f"{bucket}/t", s3.storage_options(AWS_SECRET_ACCESS_KEY="not-the-secret-4d2a")
    )
    with pytest.raises(Exception) as refused:
        delta.read(wrong)
    assert "not-the-secret-4d2a" not in str(refused.value)
    assert s3.secret_key not in repr(good)
    assert "not-the-secret" not in repr(wrong)


def test_only_object_storage_locations_are_remote() -> None:
    for uri in ("s3://b/t", "az://c/t", "abfss://c@a.dfs.core.windows.net/t", "gs://b/t"):
        assert RemoteTable(uri).name == "t"
    for uri in ("/tmp/t", "file:///tmp/t", "http://example.org/t", "t"):
        with pytest.raises(InputError, match="object-storage location"):
            RemoteTable(uri)


def test_the_server_keeps_the_table_as_delta_files(s3: S3Server, lake: RemoteTable) -> None:
    """A control: the objects really went to the server's store (not a local folder)."""
    table = lake / "linked" / "admissions"
    delta.append(table, rows(0, 5))
    bucket = table.uri.removeprefix("s3://").split("/", 1)[0]
    stored = Path(s3.root / bucket / "lake" / "linked" / "admissions")
    assert (stored / "_delta_log" / "00000000000000000000.json").is_file()
    assert list(stored.glob("*.parquet"))
