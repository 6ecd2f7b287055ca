"""Write the public register as a static site: HTML pages, each with CSV and JSON beside it.

Layout (relative to the output folder)::

    index.html                      what the register is, projects by status, the checkpoint
    checkpoint.json                 the audit chain's head when the register was built
    checkpoints.html .csv .json     every checkpoint the register has published, oldest first
    projects/index.html .csv .json  every application
    projects/<id>.html .json        one application in full
    flows.html .csv .json           every extract and refresh, counts rounded
    releases.html .csv .json        every released file: checks, checksum, code
    sanctions.html .csv .json       bans of people and organisations, project suspensions
    code/<request-id>/<file>        the released code files themselves
    static/register.css

No scripts. The output is deterministic: the same register gives byte-identical files.

:func:`write_site` carries the checkpoint history of the register already in the folder
forward (:func:`read_history`), and refuses to replace it when that history cannot be read or
the new head contradicts it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import jinja2

from sde.errors import ConfigError, InputError, StateError
from sde.services.audit import PublishedCheckpoint, checkpoints_from_bytes
from sde.services.register import (
    FORMAT,
    FlowEntry,
    ProjectEntry,
    Register,
    check_history,
    extend_history,
    with_history,
)

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
MARKER = ".sde-register"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def templates() -> jinja2.Environment:
    """The register's templates: autoescaped, failing on an undefined name."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["urlpart"] = lambda s: quote(str(s), safe="")
    return env


def csv_cell(value: object) -> str:
    """A CSV cell; text a spreadsheet would run as a formula is prefixed with ``'``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
    return buffer.getvalue().encode("utf-8")


def to_json(data: Mapping[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def _downloads(stem: str, words: str) -> list[tuple[str, str]]:
    return [
        (f"{stem}.csv", f"{words} as CSV (for spreadsheets)"),
        (f"{stem}.json", f"{words} as JSON (for computers)"),
    ]


def site_files(register: Register) -> dict[str, bytes]:
    """Every file of the site: relative POSIX path → bytes."""
    env = templates()
    files: dict[str, bytes] = {}
    checkpoint = register.checkpoint.to_json()

    def page(path: str, template: str, **context: Any) -> None:
        depth = len(PurePosixPath(path).parts) - 1
        html = env.get_template(template).render(
            root="../" * depth, checkpoint=register.checkpoint, **context
        )
        files[path] = html.encode("utf-8")

    def data(path: str, key: str, items: Any) -> None:
        files[path] = to_json({"format": FORMAT, "checkpoint": checkpoint, key: items})

    def section(
        stem: str,
        template: str,
        *,
        words: str,
        key: str,
        items: Any,
        columns: Sequence[str],
        rows: Iterable[Sequence[object]],
        **context: Any,
    ) -> None:
        """A list page with the same list as JSON and CSV beside it."""
        name = PurePosixPath(stem).name
        page(f"{stem}.html", template, downloads=_downloads(name, words), **context)
        data(f"{stem}.json", key, items)
        files[f"{stem}.csv"] = to_csv(columns, rows)

    # index
    page(
        "index.html",
        "index.html",
        title="Public register",
        section="home",
        downloads=[("checkpoint.json", "The audit checkpoint as JSON (for computers)")],
        status_counts=register.status_counts(),
        total_projects=len(register.projects),
        flow_count=len(register.flows),
        release_count=len(register.releases),
    )
    files["checkpoint.json"] = to_json({"format": FORMAT, **checkpoint})

    history = extend_history(register.history, register.checkpoint)
    section(
        "checkpoints",
        "checkpoints.html",
        words="Every audit checkpoint",
        key="checkpoints",
        items=[c.to_json() for c in history],
        columns=CHECKPOINT_COLUMNS,
        rows=([c.seq, c.hash, c.published_at] for c in history),
        title="Audit checkpoints",
        section="checkpoints",
        history=history,
    )
    section(
        "projects/index",
        "projects.html",
        words="All project applications",
        key="projects",
        items=[p.to_json() for p in register.projects],
        columns=PROJECT_COLUMNS,
        rows=(project_row(p) for p in register.projects),
        title="Project applications",
        section="projects",
        projects=register.projects,
    )
    for p in register.projects:
        page(
            f"projects/{p.id}.html",
            "project.html",
            title=p.title,
            section="projects",
            downloads=[(f"{quote(p.id, safe='')}.json", f"Project {p.id} as JSON (for computers)")],
            p=p,
            flows=[f for f in register.flows if f.project_id == p.id],
            releases=[r for r in register.releases if r.project_id == p.id],
        )
        data(f"projects/{p.id}.json", "project", p.to_json())
    section(
        "flows",
        "flows.html",
        words="All data flows",
        key="flows",
        items=[f.to_json() for f in register.flows],
        columns=FLOW_COLUMNS,
        rows=(flow_row(f) for f in register.flows),
        title="Data flows",
        section="flows",
        flows=register.flows,
    )
    section(
        "releases",
        "releases.html",
        words="All released files",
        key="releases",
        items=[r.to_json() for r in register.releases],
        columns=RELEASE_COLUMNS,
        rows=release_rows(register),
        title="Released results",
        section="releases",
        releases=register.releases,
    )
    files.update(register.code)
    section(
        "sanctions",
        "sanctions.html",
        words="All sanctions",
        key="sanctions",
        items={
            "person_bans": [b.to_json() for b in register.person_bans],
            "organisation_bans": [b.to_json() for b in register.organisation_bans],
            "project_status_changes": [c.to_json() for c in register.status_changes],
        },
        columns=SANCTION_COLUMNS,
        rows=sanction_rows(register),
        title="Sanctions and incidents",
        section="sanctions",
        person_bans=register.person_bans,
        organisation_bans=register.organisation_bans,
        status_changes=register.status_changes,
    )

    files["static/register.css"] = (TEMPLATES / "register.css").read_bytes()
    return dict(sorted(files.items()))


def flow_row(f: FlowEntry) -> list[object]:
    return [
        f.at,
        f.project_id,
        f.kind,
        f.dataset,
        f.rows,
        f.patients_removed,
        "; ".join(f"{r.rule}={r.patients}" for r in f.removed_by_rule),
        f.source_version,
        f.extract_version,
        f.recorded_from,
    ]


def release_rows(register: Register) -> Iterator[list[object]]:
    """One row per released file."""
    for r in register.releases:
        for f in r.files:
            yield [
                r.released_at,
                r.request_id,
                r.project_id,
                f.name,
                f.kind,
                f.size_bytes,
                f.worst_status,
                "; ".join(f.rules_not_passed),
                f.with_exception,
                f.sha256,
                f.code_path,
            ]


PROJECT_COLUMNS = (
    "id",
    "title",
    "status",
    "summary",
    "purpose",
    "sponsor",
    "sponsor_type",
    "legal_basis_type",
    "legal_basis",
    "national_opt_out_applies",
    "datasets",
    "ai_ml_use",
    "ai_ml_description",
    "public_benefit",
    "created_at",
    "published_at",
    "decided_at",
    "decision_reasons",
    "status_reason",
    "status_changed_at",
    "benefit_sharing",
    "exclusive_access",
)
FLOW_COLUMNS = (
    "at",
    "project_id",
    "kind",
    "dataset",
    "rows",
    "patients_removed_by_opt_out",
    "removed_by_rule",
    "source_version",
    "extract_version",
    "recorded_from",
)
RELEASE_COLUMNS = (
    "released_at",
    "request_id",
    "project_id",
    "file",
    "kind",
    "size_bytes",
    "worst_check_status",
    "checks_not_passed",
    "released_with_exception",
    "sha256",
    "published_code",
)
SANCTION_COLUMNS = ("type", "subject", "organisation", "from", "until", "lifted", "reason")
CHECKPOINT_COLUMNS = ("seq", "hash", "published_at")


def project_row(p: ProjectEntry) -> list[object]:
    return [
        p.id,
        p.title,
        p.status,
        p.summary,
        p.purpose,
        p.sponsor,
        p.sponsor_type,
        p.legal_basis_type,
        p.legal_basis,
        p.national_opt_out_applies,
        "; ".join(f"{d.name}: {', '.join(d.columns)}" for d in p.datasets),
        p.ai_ml_use,
        p.ai_ml_description,
        p.public_benefit,
        p.created_at,
        p.published_at,
        p.decided_at,
        "; ".join(p.decision_reasons),
        p.status_reason,
        p.status_changed_at,
        p.benefit_sharing if p.commercial else None,
        p.exclusive_access if p.commercial else None,
    ]


def sanction_rows(register: Register) -> list[list[object]]:
    rows: list[list[object]] = []
    for b in register.person_bans:
        rows.append(
            [
                "person ban",
                b.person_id,
                b.organisation,
                b.banned_at,
                b.banned_until,
                b.lifted_at,
                b.reason,
            ]
        )
    for o in register.organisation_bans:
        rows.append(
            [
                "organisation ban",
                o.organisation,
                o.organisation,
                o.banned_at,
                o.banned_until,
                None,
                o.reason,
            ]
        )
    for c in register.status_changes:
        rows.append([f"project {c.change}", c.project_id, None, c.at, None, None, c.reason])
    return rows


def read_history(out: Path) -> tuple[PublishedCheckpoint, ...]:
    """The checkpoint history of the register in ``out`` (empty when there is none yet).

    A register built before the history was kept has only ``checkpoint.json``: its one
    checkpoint starts the history. A register whose history is missing, unreadable or
    malformed is refused (:class:`~sde.errors.StateError`): dropping it would silently
    forget what was published."""
    if not (out / MARKER).exists():
        return ()
    for name in ("checkpoints.json", "checkpoint.json"):
        path = out / name
        if not path.exists():
            continue
        try:
            history = checkpoints_from_bytes(path.read_bytes(), str(path))
        except (OSError, InputError) as exc:
            raise StateError(
                f"the checkpoint history of the register in {out} cannot be read ({exc}); "
                f"the register was not built. Restore {name} from a backup or a published "
                "copy: building without it would forget the checkpoints published so far"
            ) from None
        history = tuple(c for c in history if c.seq > 0)
        check_history(history)
        return history
    raise StateError(
        f"the register in {out} has no checkpoints.json or checkpoint.json; the register "
        "was not built. Restore them from a backup or a published copy: building without "
        "them would forget the checkpoints published so far"
    )


def write_site(register: Register, out: Path) -> list[Path]:
    """Write the site to ``out``, replacing an earlier register there (never any other
    folder: a non-empty ``out`` must hold a register), with the earlier register's
    checkpoint history carried forward (refused if it cannot be read or the new head
    contradicts it). Written to a staging folder beside it first, so readers never see
    half a register."""
    out = out.resolve()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).exists())):
        raise ConfigError(
            f"{out} exists and is not a register built by sde; choose an empty or new folder"
        )
    register = with_history(register, read_history(out))
    files = site_files(register)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for rel, content in files.items():
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        (staging / MARKER).write_text("sde public register\n")
        old = out.parent / f".{out.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if out.exists():
            os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [out / rel for rel in files]
