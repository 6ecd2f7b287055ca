"""Ask for a release from the notebook: the airlock's checks first, then the request.

    import sde.workspace as ws
    from sde.workspace import stats

    by_sex = stats.crosstab(df, "region", "sex")
    ws.check_release({"by_sex.csv": by_sex})             # what would fail, nothing filed
    ws.request_release(
        {"by_sex.csv": by_sex, "trend.png": ("trend.png", {"table": "by_sex.csv"})},
        title="Admissions by region and sex",
        exceptions={"by_sex.csv": "the two small cells are national totals, published"},
    )

An output is a table made with :mod:`sde.workspace.stats` (its CSV and its per-cell
disclosure metadata travel together), a file in the project's outputs folder, or a
``(file, {"table": "<table in the request>"})`` pair for a figure drawn from a table.
The notebook or script that made them is attached as code (``code=``, or the notebook
JupyterLab names in ``JPY_SESSION_NAME``).

Like :func:`sde.workspace.connect` this module is an entry point: ``home``, ``user`` and
``project`` default to ``SDE_HOME``, ``SDE_USER`` and ``SDE_PROJECT``. In service mode
(``SDE_API_URL`` and ``SDE_TOKEN`` set, no ``home`` given) the files are read from
``SDE_OUTPUTS`` and sent to the sde service (:mod:`sde.workspace.service`), which checks
them (file types included) and files the request for the token's person and project.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from sde.domain.projects import check_project_id
from sde.domain.sdc.files import CATEGORIES, FileRules, category
from sde.errors import InputError
from sde.services.home import Home
from sde.services.release import FileCheck, OutputFile
from sde.workspace.service import (
    FiledRequest,
    WorkspaceService,
    file_check_from_json,
    from_environment,
    service_mode,
)
from sde.workspace.stats import SdcOutput

if TYPE_CHECKING:
    from sde.domain.projects import ReleaseRequest
    from sde.services.release import ReleaseService

__all__ = ["ReleaseCheck", "check_release", "request_release"]

TABLE_SUFFIXES = frozenset({".csv"})  # what a stats output is released as

Output = SdcOutput | str | Path | tuple[str | Path, Mapping[str, str]]
Outputs = Mapping[str, Output] | Sequence[Output]
CodeFiles = Sequence[str | Path] | str | Path | None
HomeLike = str | Path | Home | None

_DATAFRAME_REFUSED = (
    "a DataFrame cannot be released as it is: build it with sde.workspace.stats (so the "
    "checks have the row-level evidence behind every cell), or save it first with "
    "sde.workspace.save_output and pass the file"
)


def request_release(
    outputs: Outputs,
    *,
    project: str | None = None,
    title: str,
    comment: str | None = None,
    exceptions: Mapping[str, str] | None = None,
    code: CodeFiles = None,
    home: HomeLike = None,
    user: str | None = None,
) -> ReleaseRequest | FiledRequest:
    """File a release request for ``outputs`` (checked at once) and submit it to the
    output checkers. ``exceptions`` maps a file name to your justification for releasing
    it although a rule flagged it; rules that no exception can override (identifiers,
    row-level data, file type, ...) still block it. In service mode the answer is a
    :class:`~sde.workspace.service.FiledRequest` (``id``, ``status``, ``project_id``,
    ``author``, ``title``)."""
    if not title or not title.strip():
        raise InputError("a release request needs a title")
    if service_mode(home):
        files = _service_files(outputs, project, user, exceptions, code)
        return _service().request(files, title, comment)
    the_home, person, project_id = _context(home, user, project)
    files = _home_files(outputs, the_home, project_id, exceptions, code)
    with _airlock(the_home, person) as airlock:
        return airlock.request(project_id, person, files, title=title, comment=comment)


def check_release(
    outputs: Outputs,
    *,
    project: str | None = None,
    code: CodeFiles = None,
    exceptions: Mapping[str, str] | None = None,
    home: HomeLike = None,
    user: str | None = None,
) -> ReleaseCheck:
    """The airlock's automatic checks on ``outputs``, exactly as a request would get
    them, with nothing filed: see what would fail before a checker does."""
    if service_mode(home):
        files = _service_files(outputs, project, user, exceptions, code)
        return ReleaseCheck(file_check_from_json(c) for c in _service().preview(files))
    the_home, person, project_id = _context(home, user, project)
    files = _home_files(outputs, the_home, project_id, exceptions, code)
    with _airlock(the_home, person) as airlock:
        return ReleaseCheck(airlock.preview(project_id, person, files))


class ReleaseCheck(list[FileCheck]):
    """The checks on each file (a list of ``FileCheck``), shown as a table in a notebook."""

    def rows(self) -> list[tuple[str, str, str, list[tuple[str, str, str]]]]:
        """(file, kind, worst status, [(rule, status, message) for each check that did
        not pass])."""
        out = []
        for fc in self:
            results = [_result_tuple(r) for r in _results(fc)]
            worst = _worst([s for _, s, _ in results])
            problems = [r for r in results if r[1] != "pass"]
            out.append((str(fc.name), str(getattr(fc, "kind", "")), worst, problems))
        return out

    @property
    def status(self) -> str:
        """The worst status over the files: pass, review or fail."""
        return _worst([row[2] for row in self.rows()])

    def __repr__(self) -> str:
        lines = [f"release check: {self.status}"]
        for name, kind, worst, problems in self.rows():
            lines.append(f"  {name} ({kind}): {worst}")
            lines.extend(f"    {rule} ({status}): {message}" for rule, status, message in problems)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colour = {"pass": "#1b7f3b", "review": "#9a6700", "fail": "#b42318"}
        body = []
        for name, kind, worst, problems in self.rows():
            detail = "<br>".join(
                f"<b>{html.escape(rule)}</b> ({html.escape(status)}): {html.escape(message)}"
                for rule, status, message in problems
            )
            body.append(
                f"<tr><td>{html.escape(name)}</td><td>{html.escape(kind)}</td>"
                f'<td style="color:{colour.get(worst, "#b42318")}"><b>{html.escape(worst)}</b></td>'
                f"<td>{detail or 'all checks passed'}</td></tr>"
            )
        return (
            f"<p>release check: <b>{html.escape(self.status)}</b></p>"
            "<table><thead><tr><th>file</th><th>kind</th><th>status</th><th>checks</th>"
            f"</tr></thead><tbody>{''.join(body)}</tbody></table>"
        )


# --- internals ------------------------------------------------------------------------


def _context(home: HomeLike, user: str | None, project: str | None) -> tuple[Home, str, str]:
    from sde.workspace import _home, _user  # the package imports this module

    project_id = project or os.environ.get("SDE_PROJECT")
    if not project_id:
        raise InputError("name the project: project='...' (or set SDE_PROJECT)")
    return _home(home), _user(user), check_project_id(project_id)


@contextmanager
def _airlock(home: Home, person: str) -> Iterator[ReleaseService]:
    from sde.services.wiring import control_plane, policy_engine, release_service

    with control_plane(home) as store:
        engine = policy_engine(home, audit=store.audit, actor=person)
        yield release_service(home, store, engine)


def _service() -> WorkspaceService:
    return from_environment()


def _home_files(
    outputs: Outputs,
    home: Home,
    project: str,
    exceptions: Mapping[str, str] | None,
    code: CodeFiles,
) -> list[OutputFile]:
    outputs_folder = home.project_outputs(project)
    rules = FileRules.from_mapping(home.settings.extra.get("airlock"))
    return _files(outputs, outputs_folder, rules, exceptions, code)


def _service_files(
    outputs: Outputs,
    project: str | None,
    user: str | None,
    exceptions: Mapping[str, str] | None,
    code: CodeFiles,
) -> list[OutputFile]:
    """The files from the session's outputs folder, by the default file rules (the
    service checks the file types again, by the home's own)."""
    from sde.workspace import _session_scope, outputs_dir  # the package imports this module

    _session_scope(project, user)
    folder = outputs_dir()
    return _files(outputs, folder, FileRules.from_mapping(None), exceptions, code)


def _files(
    outputs: Outputs,
    outputs_folder: Path,
    rules: FileRules,
    exceptions: Mapping[str, str] | None,
    code: CodeFiles,
) -> list[OutputFile]:
    named: list[tuple[str | None, Any]]
    if isinstance(outputs, pd.DataFrame):
        raise InputError(_DATAFRAME_REFUSED)
    if isinstance(outputs, Mapping):
        named = [(str(k), v) for k, v in outputs.items()]
    elif isinstance(outputs, str | Path | SdcOutput) or _is_figure_pair(outputs):
        named = [(None, outputs)]
    else:
        named = [(None, v) for v in outputs]
    files = [_output_file(name, value, outputs_folder, rules) for name, value in named]
    files.extend(_code_file(Path(p), rules) for p in _code_paths(code))
    if not files:
        raise InputError("a release request needs at least one output")
    names = [f.name for f in files]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(f"two files in the request are named {', '.join(repeated)}")
    justified = dict(exceptions or {})
    unknown = sorted(set(justified) - set(names))
    if unknown:
        raise InputError(f"exceptions name files not in the request: {', '.join(unknown)}")
    for name, reason in justified.items():
        if not isinstance(reason, str) or not reason.strip():
            raise InputError(f"the exception for {name} needs a justification")
    return [
        OutputFile(
            name=f.name,
            content=f.content,
            kind=f.kind,
            metadata=f.metadata,
            exception=justified.get(f.name, f.exception),
        )
        for f in files
    ]


def _is_figure_pair(value: object) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], str | Path)
        and isinstance(value[1], Mapping)
    )


def _output_file(name: str | None, value: Any, folder: Path, rules: FileRules) -> OutputFile:
    if isinstance(value, pd.DataFrame):
        raise InputError(_DATAFRAME_REFUSED)
    if isinstance(value, SdcOutput):
        if name is None:
            raise InputError(
                f"name each {value.kind} output: pass a mapping such as {{'by_sex.csv': output}}"
            )
        _require_plain_name(name, TABLE_SUFFIXES, "a table made with sde.workspace.stats")
        return OutputFile(
            name=name,
            content=value.table.to_csv().encode("utf-8"),
            kind=value.kind,
            metadata=value.to_json(),
        )
    metadata: dict[str, Any] | None = None
    if _is_figure_pair(value):
        path_value, extra = value
        unknown = sorted(str(k) for k in extra if k != "table")
        if unknown or not isinstance(extra.get("table"), str):
            raise InputError(
                "a figure is given as (file, {'table': '<the table it was drawn from>'})"
            )
        metadata = {"table": str(extra["table"])}
        value = path_value
    if not isinstance(value, str | Path):
        raise InputError(
            f"cannot release a {type(value).__name__}: give a table from sde.workspace.stats, "
            "a file in the project's outputs folder, or (figure, {'table': ...})"
        )
    path = _in_outputs(Path(value), folder)
    file_name = name or path.name
    if Path(file_name).name != file_name:
        raise InputError(f"{file_name}: a released file has a plain name (no folders)")
    kind = _kind(file_name, rules)
    if metadata is not None and kind != "figure":
        raise InputError(f"{file_name}: only a figure (png, jpg, svg) names its table")
    return OutputFile(name=file_name, content=path.read_bytes(), kind=kind, metadata=metadata)


def _in_outputs(path: Path, folder: Path) -> Path:
    """``path`` (relative to the outputs folder, or absolute) if it is a file inside it."""
    full = path if path.is_absolute() else folder / path
    resolved = full.resolve()
    if not resolved.is_relative_to(folder.resolve()):
        raise InputError(
            f"{path.name} is not in the project's outputs folder; save it there first "
            "(sde.workspace.outputs_dir(project))"
        )
    if not resolved.is_file():
        raise InputError(f"{path.name} is not a file in the project's outputs folder")
    return resolved


def _kind(name: str, rules: FileRules) -> str:
    """table, figure, text or code, by the suffixes the airlock is configured with."""
    kind = category(name, rules)
    if kind is None:
        allowed = sorted(s for cat in CATEGORIES for s in rules.suffixes(cat))
        raise InputError(f"{name}: files of this type cannot be released ({', '.join(allowed)})")
    return kind


def _require_plain_name(name: str, suffixes: frozenset[str], what: str) -> None:
    if Path(name).name != name or Path(name).suffix.lower() not in suffixes:
        raise InputError(
            f"{name}: {what} is released as a plain file name ending in "
            f"{', '.join(sorted(suffixes))}"
        )


def _code_paths(code: CodeFiles) -> list[str | Path]:
    if code is None:
        session = os.environ.get("JPY_SESSION_NAME")
        if session and Path(session).is_file():
            return [session]
        return []
    if isinstance(code, str | Path):
        return [code]
    return list(code)


def _code_file(path: Path, rules: FileRules) -> OutputFile:
    if category(path.name, rules) != "code":
        raise InputError(
            f"{path.name}: code is attached as {', '.join(rules.suffixes('code'))} files"
        )
    if not path.is_file():
        raise InputError(f"code file {path.name} not found")
    return OutputFile(name=path.name, content=path.read_bytes(), kind="code")


def _results(fc: Any) -> Sequence[Any]:
    for attr in ("checks", "results"):
        value = getattr(fc, attr, None)
        if value is not None:
            return list(value)
    return []


def _result_tuple(result: Any) -> tuple[str, str, str]:
    if isinstance(result, Mapping):
        return str(result.get("name")), str(result.get("status")), str(result.get("message"))
    status = getattr(result, "status", "")
    return str(result.name), str(getattr(status, "value", status)), str(result.message)


def _worst(statuses: Sequence[str]) -> str:
    rank = {"pass": 0, "review": 1, "fail": 2}
    if not statuses:
        return "fail"  # nothing was checked: fail closed
    if any(s not in rank for s in statuses):
        return "fail"
    return max(statuses, key=rank.__getitem__)
