"""Build a project's extract: linked zone → project zone.

Only the approved datasets and columns; opt-outs applied as
:func:`sde.services.optouts.exclusions` answers for the project and each dataset's origin
(national data opt-out unless the project is exempt, type 1 for GP data, and patients'
own choices by purpose, commercial sponsor, organisation and project); the manifest
counts the patients and rows each rule removed. ``pid`` replaced by the project pseudonym
``patient_id``; the source Delta versions pinned in the manifest so the extract can be
rebuilt exactly. Streams in Arrow batches, so memory stays flat on large tables.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from deltalake import write_deltalake

from sde.adapters import delta, lake_files
from sde.adapters.arrow_hmac import ArrowProjectPseudonymiser
from sde.adapters.delta import Location
from sde.domain.optouts import ExclusionTerms
from sde.errors import InputError, NotFound
from sde.services.home import Home
from sde.services.optouts import Exclusions, load_opt_outs
from sde.services.ports import AuditSink

PATIENT_ID = "patient_id"
LINK_COLUMN = "pid"
MANIFEST = "manifest.json"
LOCAL_ENGINE = "local"


@dataclass(frozen=True)
class ExtractRequest:
    """What the project's approval allows, as plain values.

    ``sponsor_type`` and ``sponsor_organisation`` decide which patients' choices apply;
    left out (``None``) they are taken at their strictest: every commercial and every
    organisation opt-out is applied."""

    project_id: str
    purpose: str
    national_opt_out_applies: bool
    datasets: Mapping[str, tuple[str, ...]]
    sponsor_type: str | None = None
    sponsor_organisation: str | None = None

    def terms(self, origin: str) -> ExclusionTerms:
        return ExclusionTerms(
            project_id=self.project_id,
            purpose=self.purpose,
            national_opt_out_applies=self.national_opt_out_applies,
            sponsor_type=self.sponsor_type,
            sponsor_organisation=self.sponsor_organisation,
            origin=origin,
        )


@dataclass(frozen=True)
class TableManifest:
    dataset: str
    columns: list[str]
    source_version: int
    rows_in_source: int
    rows_written: int
    rows_removed_by_opt_out: int
    opt_outs_applied: list[str]
    version: int
    patients_removed_by_opt_out: int = 0
    """Distinct patients present in the source that any rule removed."""
    removed_by_rule: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per applied rule: ``{"patients": n, "rows": m}`` it removed from the source. A
    patient excluded by two rules counts under each."""


@dataclass(frozen=True)
class ExtractManifest:
    project_id: str
    built_at: str
    built_by: str
    opt_out_versions: dict[str, int]
    tables: dict[str, TableManifest] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ExtractManifest:
        tables_raw = data.get("tables")
        if not isinstance(tables_raw, dict):
            raise InputError("the extract manifest has no tables")
        return cls(
            project_id=str(data["project_id"]),
            built_at=str(data["built_at"]),
            built_by=str(data["built_by"]),
            opt_out_versions={str(k): int(v) for k, v in dict(data["opt_out_versions"]).items()},  # type: ignore[call-overload]
            tables={name: TableManifest(**t) for name, t in tables_raw.items()},
        )


def extract_dir(home: Home, project_id: str) -> Location:
    """Where the project's extract is: a folder, or a prefix on object storage."""
    return home.project_extract(project_id)


def read_manifest(home: Home, project_id: str) -> ExtractManifest:
    path = extract_dir(home, project_id) / MANIFEST
    try:
        text = lake_files.read_bytes(path)
    except FileNotFoundError:
        raise NotFound(
            f"project {project_id} has no extract yet; run `sde extract {project_id}`"
        ) from None
    return ExtractManifest.from_json(json.loads(text))


def build_extract(
    home: Home,
    request: ExtractRequest,
    origins: Mapping[str, str],
    *,
    actor: str,
    audit: AuditSink | None = None,
    batch_rows: int = 131_072,
) -> ExtractManifest:
    """Write the project's extract tables and manifest. Overwrites an earlier extract of
    the same project (a refresh), as a new Delta version of each table."""
    if not request.datasets:
        raise InputError(f"project {request.project_id} has no approved datasets")
    # Registers and choices read once, at pinned versions, for every table.
    opt_outs = load_opt_outs(home)
    register_versions = dict(opt_outs.versions)

    pseudonymiser = ArrowProjectPseudonymiser(home.master_key(), request.project_id)
    out_dir, manifest = start_manifest(home, request, actor, register_versions)
    for dataset, columns in sorted(request.datasets.items()):
        manifest.tables[dataset] = _extract_table(
            home,
            dataset,
            list(columns),
            opt_outs.exclusions(request.terms(dataset_origin(origins, dataset))),
            pseudonymiser,
            out_dir,
            batch_rows,
        )
    finish_manifest(manifest, out_dir, actor=actor, audit=audit, engine=LOCAL_ENGINE)
    return manifest


def dataset_origin(origins: Mapping[str, str], dataset: str) -> str:
    """The dataset's origin (gp, hospital, ...), which decides the opt-outs that apply."""
    if dataset not in origins:
        raise InputError(f"dataset {dataset} has no spec; it cannot be extracted")
    return origins[dataset]


def start_manifest(
    home: Home, request: ExtractRequest, actor: str, register_versions: Mapping[str, int]
) -> tuple[Location, ExtractManifest]:
    """The extract's folder (made if absent) and its manifest, with no tables yet."""
    out_dir = extract_dir(home, request.project_id)
    lake_files.make_folder(out_dir)
    manifest = ExtractManifest(
        project_id=request.project_id,
        built_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        built_by=actor,
        opt_out_versions=dict(register_versions),
    )
    return out_dir, manifest


def finish_manifest(
    manifest: ExtractManifest,
    out_dir: Location,
    *,
    actor: str,
    audit: AuditSink | None,
    engine: str,
) -> None:
    """Write the manifest beside the tables and record the ``extract.build`` event (which
    names the engine that built the tables)."""
    lake_files.write_bytes(
        out_dir / MANIFEST,
        json.dumps(manifest.to_json(), indent=2, sort_keys=True).encode("utf-8"),
    )
    if audit is not None:
        audit.record(
            actor,
            "extract.build",
            manifest.project_id,
            {
                "engine": engine,
                "tables": {
                    name: {
                        "rows": t.rows_written,
                        "removed_by_opt_out": t.rows_removed_by_opt_out,
                        "patients_removed_by_opt_out": t.patients_removed_by_opt_out,
                        "removed_by_rule": t.removed_by_rule,
                        "source_version": t.source_version,
                        "version": t.version,
                    }
                    for name, t in manifest.tables.items()
                },
                "opt_out_versions": dict(manifest.opt_out_versions),
            },
        )


@dataclass(frozen=True)
class SourceTable:
    """A linked table as an extract reads it: pinned at ``version``, with the approved
    ``columns`` (``pid`` excluded) and the ``schema`` of the extract table to write
    (``patient_id`` NOT NULL first, then the approved columns as the source has them)."""

    dataset: str
    location: Location
    version: int
    columns: tuple[str, ...]
    schema: pa.Schema


def open_source(
    home: Home, dataset: str, columns: Sequence[str]
) -> tuple[SourceTable, pads.Dataset]:
    """The linked table of ``dataset`` at its current version (pinned), checked against
    the approved ``columns``, and an Arrow dataset over that version."""
    source_path = home.linked / dataset
    source_version = delta.version(source_path)
    if source_version is None:
        raise NotFound(f"dataset {dataset} has not been ingested")
    ds = delta.dataset(source_path, source_version)
    available = set(ds.schema.names)
    wanted = [c for c in columns if c != LINK_COLUMN]
    unknown = [c for c in wanted if c not in available]
    if unknown:
        raise InputError(f"approved columns not in dataset {dataset}: {', '.join(sorted(unknown))}")
    if LINK_COLUMN not in available:
        raise InputError(f"dataset {dataset} has no {LINK_COLUMN} column")
    out_schema = pa.schema(
        [pa.field(PATIENT_ID, pa.string(), nullable=False)] + [ds.schema.field(c) for c in wanted]
    )
    return SourceTable(dataset, source_path, source_version, tuple(wanted), out_schema), ds


def pseudonymised_batch(
    batch: pa.RecordBatch, pseudonymiser: ArrowProjectPseudonymiser, schema: pa.Schema
) -> pa.RecordBatch:
    """One batch of the extract table (``schema``): ``pid`` replaced by the project
    pseudonym, then the approved columns. Both engines call it on every kept batch."""
    # Each distinct pid in the batch is MACed once (values equal the per-value
    # ProjectPseudonymiser's; tested in tests/unit/test_arrow_hmac.py).
    patient_ids = pseudonymiser.pseudonym_array(batch.column(LINK_COLUMN))
    return pa.RecordBatch.from_arrays(
        [patient_ids, *[batch.column(name) for name in schema.names[1:]]], schema=schema
    )


class RemovalTally:
    """What the opt-outs removed from one source table: rows and distinct patients, in
    all and per applied rule (a patient excluded by two rules counts under each). Both
    engines count through it, so their manifests count alike: the local engine gives it
    each batch's removed ``pid`` s, the Spark engine the removed rows per ``pid``."""

    def __init__(self, exclusions: Exclusions) -> None:
        self._applied = exclusions.applied
        self._rule_pids = {name: exclusions.array(name) for name in exclusions.applied}
        self._rows_by_rule = dict.fromkeys(self._applied, 0)
        self._patients_by_rule: dict[str, set[str]] = {name: set() for name in self._applied}
        self._patients: set[str] = set()
        self.rows = 0
        """Rows removed, in all."""

    def add_rows(self, removed: pa.Array) -> None:
        """Count removed rows given by their ``pid`` (one item per row)."""
        tally = pc.value_counts(removed)
        self.add_counts(tally.field("values"), tally.field("counts"))

    def add_counts(self, pids: pa.Array, rows: pa.Array) -> None:
        """Count removed rows given per distinct ``pid``: ``rows[i]`` rows of ``pids[i]``."""
        # Per distinct removed pid: how many rows, and which rules exclude it.
        self._patients.update(pids.to_pylist())
        self.rows += int(pc.sum(rows).as_py() or 0)
        for name, rule_pids in self._rule_pids.items():
            hit = pc.is_in(pids, value_set=rule_pids)
            self._rows_by_rule[name] += int(pc.sum(rows.filter(hit)).as_py() or 0)
            self._patients_by_rule[name].update(pids.filter(hit).to_pylist())

    @property
    def patients(self) -> int:
        """Distinct patients removed, whatever the rule."""
        return len(self._patients)

    def by_rule(self) -> dict[str, dict[str, int]]:
        return {
            name: {"patients": len(self._patients_by_rule[name]), "rows": self._rows_by_rule[name]}
            for name in self._applied
        }


def _extract_table(
    home: Home,
    dataset: str,
    columns: list[str],
    exclusions: Exclusions,
    pseudonymiser: ArrowProjectPseudonymiser,
    out_dir: Location,
    batch_rows: int,
) -> TableManifest:
    source, ds = open_source(home, dataset, columns)
    wanted = list(source.columns)
    out_schema = source.schema
    counts = {"in": 0, "out": 0}
    excluded = exclusions.excluded()
    tally = RemovalTally(exclusions)

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in ds.to_batches(columns=[LINK_COLUMN, *wanted], batch_size=batch_rows):
            counts["in"] += batch.num_rows
            drop = pc.is_in(batch.column(LINK_COLUMN), value_set=excluded)
            if pc.any(drop).as_py():
                tally.add_rows(batch.column(LINK_COLUMN).filter(drop))
            batch = batch.filter(pc.invert(drop))
            if batch.num_rows == 0:
                continue
            counts["out"] += batch.num_rows
            yield pseudonymised_batch(batch, pseudonymiser, out_schema)

    reader = pa.RecordBatchReader.from_batches(out_schema, batches())
    target = out_dir / dataset
    write_deltalake(
        str(target),
        reader,
        mode="overwrite",
        schema_mode="overwrite",
        storage_options=(
            dict(target.storage_options) if isinstance(target, delta.RemoteTable) else None
        ),
    )
    version = delta.version(target)
    if version is None:  # pragma: no cover - written just above
        raise NotFound(f"the extract table {dataset} was not written")
    return TableManifest(
        dataset=dataset,
        columns=[PATIENT_ID, *wanted],
        source_version=source.version,
        rows_in_source=counts["in"],
        rows_written=counts["out"],
        rows_removed_by_opt_out=counts["in"] - counts["out"],
        opt_outs_applied=list(exclusions.applied),
        version=version,
        patients_removed_by_opt_out=tally.patients,
        removed_by_rule=tally.by_rule(),
    )
