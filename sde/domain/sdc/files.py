"""The airlock's automatic checks on files not made by ``sde.workspace.stats``.

Pure: a file's name, bytes, kind and metadata in, :class:`CheckResult` values out. The
rule names are the airlock contract's *blocking* rules (no exception can override them):
``file_type``, ``file_size``, ``readable``, ``row_level``, ``pseudonyms``,
``dates_of_birth``, ``free_text``, ``identifiers``, ``figure_table``.

Every message names rules, columns, counts and row numbers only -- never a cell value.
A column whose header itself looks like a value (a pseudonym, a date, a long number, a
sentence) is named by its position instead.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from sde.domain.disclosure import CheckResult, CheckStatus
from sde.errors import ConfigError

__all__ = [
    "BLOCKING_RULES",
    "CATEGORIES",
    "STATS_KINDS",
    "FileRules",
    "category",
    "check_file",
    "kind_category",
    "table_shape",
]

MIB = 1024 * 1024
CATEGORIES = ("table", "figure", "text", "code")
STATS_KINDS = frozenset(
    {"crosstab", "pivot_table", "hist", "histogram", "survival", "ols", "logit", "probit"}
)
BLOCKING_RULES = (
    "file_type",
    "file_size",
    "readable",
    "row_level",
    "pseudonyms",
    "dates_of_birth",
    "free_text",
    "identifiers",
    "figure_table",
)
_SHOWN = 5  # row or line numbers listed in a message before "and N more"


@dataclass(frozen=True)
class FileRules:
    """The airlock's file rules; loaded from the ``airlock:`` section of ``config.yaml``."""

    table_suffixes: tuple[str, ...] = (".csv",)
    figure_suffixes: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".svg")
    text_suffixes: tuple[str, ...] = (".txt", ".md", ".html")
    code_suffixes: tuple[str, ...] = (".py", ".ipynb", ".r", ".sql")
    max_table_bytes: int = 1 * MIB
    max_figure_bytes: int = 5 * MIB
    max_text_bytes: int = 1 * MIB
    max_code_bytes: int = 1 * MIB
    max_table_rows: int = 500  # a table with more data rows is row-level
    free_text_min_words: int = 8  # a cell with at least this many words is free text
    pseudonym_hex_length: int = 32  # project pseudonyms: 128 bits as lowercase hex

    def __post_init__(self) -> None:
        for cat in CATEGORIES:
            name = f"{cat}_suffixes"
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, Sequence):
                raise ConfigError(f"airlock setting {name!r} must be a list of suffixes")
            cleaned = tuple(str(s).strip().lower() for s in value)
            if any(not s.startswith(".") or len(s) < 2 or "/" in s for s in cleaned):
                raise ConfigError(
                    f"airlock setting {name!r} must list suffixes that start with a dot"
                )
            object.__setattr__(self, name, cleaned)
        seen: dict[str, str] = {}
        for cat in CATEGORIES:
            for s in getattr(self, f"{cat}_suffixes"):
                if s in seen and seen[s] != cat:
                    raise ConfigError(f"airlock suffix {s!r} is listed for {seen[s]} and {cat}")
                seen[s] = cat
        for name in (
            "max_table_bytes",
            "max_figure_bytes",
            "max_text_bytes",
            "max_code_bytes",
            "max_table_rows",
            "free_text_min_words",
            "pseudonym_hex_length",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"airlock setting {name!r} must be a positive whole number")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> FileRules:
        """From the ``airlock:`` section of ``config.yaml``; unknown keys are an error (a
        typo must not silently leave a default in force)."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError("the 'airlock' section of config.yaml must be a mapping")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise ConfigError(f"unknown airlock settings: {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for key, value in data.items():
            if str(key).endswith("_suffixes") and isinstance(value, list):
                value = tuple(value)
            values[str(key)] = value
        return cls(**values)

    def suffixes(self, cat: str) -> tuple[str, ...]:
        value: tuple[str, ...] = getattr(self, f"{cat}_suffixes")
        return value

    def max_bytes(self, cat: str) -> int:
        value: int = getattr(self, f"max_{cat}_bytes")
        return value

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


_DEFAULT = FileRules()


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def category(name: str, rules: FileRules | None = None) -> str | None:
    """The category of a file by its suffix: table, figure, text, code, or None."""
    suffix = _suffix(name)
    for cat in CATEGORIES:
        if suffix in (rules or _DEFAULT).suffixes(cat):
            return cat
    return None


def kind_category(kind: str) -> str | None:
    """The category a release request's ``kind`` claims (stats kinds and "table" are CSV)."""
    if kind == "table" or kind in STATS_KINDS:
        return "table"
    if kind in ("figure", "text", "code"):
        return kind
    return None


# --- parsing ------------------------------------------------------------------------


def _decode(content: bytes) -> str | None:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def _read_csv(content: bytes) -> tuple[list[str], list[list[str]]] | None:
    """(header, data rows) of a UTF-8 CSV, blank lines dropped; None when unreadable."""
    text = _decode(content)
    if text is None:
        return None
    try:
        rows = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    except csv.Error:
        return None
    if not rows:
        return None
    header = rows[0]
    if not any(cell.strip() for cell in header):
        return None
    return header, rows[1:]


def table_shape(content: bytes) -> tuple[int, int] | None:
    """(data rows, columns) of a CSV table, for the egress budget; None if unreadable."""
    parsed = _read_csv(content)
    if parsed is None:
        return None
    header, rows = parsed
    return len(rows), len(header)


# --- value patterns -----------------------------------------------------------------

_DATE_PATTERNS = (
    re.compile(r"(?<!\d)(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?!\d)"),  # yyyy-mm-dd
    re.compile(r"(?<!\d)(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})(?!\d)"),  # dd/mm/yyyy
)
_MONTHS = (
    r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
_DATE_ANY = (
    r"(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?[ \t]+(?:{_MONTHS})[ \t,]+\d{{2,4}})"
)
_DOB_IN_TEXT = re.compile(
    r"(?i)\b(?:d\.?o\.?b\.?|date[ \t_-]*of[ \t_-]*birth|birth[ \t_-]*date|born(?:[ \t]+on)?)"
    rf"[\s:=,'\"(\-]{{0,6}}{_DATE_ANY}"
)
_WORD = re.compile(r"[^\W\d_]")
_PLAIN_NUMBER = re.compile(r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")


def _is_full_date(cell: str) -> bool:
    for pattern in _DATE_PATTERNS:
        for match in pattern.finditer(cell):
            a, b, c = (int(g) for g in match.groups())
            year, month, day = (a, b, c) if len(match.group(1)) == 4 else (c, b, a)
            if 1 <= month <= 12 and 1 <= day <= 31 and 1800 <= year <= 2200:
                return True
    return False


def _pseudonym_pattern(length: int) -> re.Pattern[str]:
    return re.compile(rf"(?<![0-9A-Fa-f])[0-9A-Fa-f]{{{length}}}(?![0-9A-Fa-f])")


def _is_dob_header(header: str) -> bool:
    norm = re.sub(r"[^a-z0-9]+", "_", header.strip().lower()).strip("_")
    tokens = set(norm.split("_"))
    squashed = norm.replace("_", "")
    return (
        "dob" in tokens
        or squashed in {"dob", "dateofbirth", "birthdate", "birthday", "birthdt", "dtofbirth"}
        or "dateofbirth" in squashed
        or "birthdate" in squashed
        or ("birth" in tokens and bool(tokens & {"date", "dt", "day"}))
    )


def _words(cell: str) -> int:
    return sum(1 for token in cell.split() if _WORD.search(token))


def _safe_header(header: str, pseudonym: re.Pattern[str], min_words: int) -> bool:
    h = header.strip()
    return (
        0 < len(h) <= 64
        and pseudonym.search(h) is None
        and not _is_full_date(h)
        and re.search(r"\d{6}", h) is None
        and "@" not in h
        and _words(h) < min_words
    )


def _columns(names: Sequence[str]) -> str:
    return ", ".join(names)


def _numbers(values: Sequence[int], noun: str) -> str:
    shown = ", ".join(str(v) for v in values[:_SHOWN])
    more = f" and {len(values) - _SHOWN} more" if len(values) > _SHOWN else ""
    return f"{noun}{'s' if len(values) != 1 else ''} {shown}{more}"


def _does(n: int) -> str:
    return "does" if n == 1 else "do"


def _hold(n: int) -> str:
    return "holds" if n == 1 else "hold"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


# --- the checks ---------------------------------------------------------------------


def check_file(
    name: str,
    content: bytes,
    *,
    kind: str,
    metadata: Mapping[str, Any] | None,
    other_names: Collection[str],
    rules: FileRules,
    scan_text: Callable[[str], Mapping[str, int]] | None = None,
) -> list[CheckResult]:
    """The blocking checks for one output file, passing ones included (a checker sees
    what was checked). ``other_names`` are the other files of the same request;
    ``scan_text`` finds identifiers (entity type -> count) in text, when given."""
    results: list[CheckResult] = []
    by_suffix = category(name, rules)
    claimed = kind_category(kind)
    problems = _name_problems(name, rules, by_suffix, claimed, kind)
    if problems:
        results.append(
            CheckResult("file_type", CheckStatus.FAIL, "; ".join(problems), {"kind": kind})
        )
    else:
        results.append(
            CheckResult(
                "file_type",
                CheckStatus.PASS,
                f"a {by_suffix} file ({_suffix(name)}), as its kind {kind!r} says",
                {"category": by_suffix, "kind": kind},
            )
        )
    cat = by_suffix or claimed
    if cat is None:
        return results
    results.append(_check_size(content, cat, rules))
    if cat == "table":
        results.extend(_check_table(content, rules, scan_text))
    elif cat == "figure":
        results.append(_check_figure_readable(name, content))
        results.append(_check_figure_table(metadata, other_names, rules))
    else:
        results.extend(_check_text(name, content, cat, rules, scan_text))
    return results


def _name_problems(
    name: str, rules: FileRules, by_suffix: str | None, claimed: str | None, kind: str
) -> list[str]:
    problems = []
    plain = (
        bool(name)
        and name == name.strip()
        and "/" not in name
        and "\\" not in name
        and name not in (".", "..")
        and not name.startswith(".")
        and not any(ord(ch) < 32 or ord(ch) == 127 for ch in name)
        and len(name) <= 255
    )
    if not plain:
        problems.append("the file name must be a plain name (no folders, not hidden)")
    if by_suffix is None:
        allowed = " ".join(s for cat in CATEGORIES for s in rules.suffixes(cat))
        problems.append(
            f"files ending {_suffix(name) or '(no suffix)'!r} are not allowed (allowed: {allowed})"
        )
    if claimed is None:
        problems.append(f"unknown kind {kind!r}")
    elif by_suffix is not None and claimed != by_suffix:
        problems.append(f"kind {kind!r} needs a {claimed} file, not a {by_suffix} file")
    return problems


def _check_size(content: bytes, cat: str, rules: FileRules) -> CheckResult:
    limit = rules.max_bytes(cat)
    size = len(content)
    details: dict[str, object] = {"bytes": size, "max_bytes": limit}
    if size == 0:
        return CheckResult("file_size", CheckStatus.FAIL, "the file is empty", details)
    if size > limit:
        return CheckResult(
            "file_size",
            CheckStatus.FAIL,
            f"{size} bytes is more than the {limit} bytes allowed for a {cat} file",
            details,
        )
    return CheckResult(
        "file_size", CheckStatus.PASS, f"{size} bytes (at most {limit} for a {cat} file)", details
    )


def _check_table(
    content: bytes, rules: FileRules, scan_text: Callable[[str], Mapping[str, int]] | None
) -> list[CheckResult]:
    text = _decode(content)
    parsed = _read_csv(content) if text is not None else None
    if parsed is None:
        why = (
            "the table is not UTF-8 text"
            if text is None
            else "the table is not a CSV file with a header row"
        )
        return [CheckResult("readable", CheckStatus.FAIL, why)]
    header, rows = parsed
    width = len(header)
    ragged = [i for i, row in enumerate(rows, start=1) if len(row) != width]
    if ragged:
        return [
            CheckResult(
                "readable",
                CheckStatus.FAIL,
                f"{_plural(len(ragged), 'row')} {_does(len(ragged))} not have the header's "
                f"{width} columns ({_numbers(ragged, 'row')})",
                {"rows": ragged[:100], "columns": width},
            )
        ]
    pseudonym = _pseudonym_pattern(rules.pseudonym_hex_length)
    labels = [
        h.strip() if _safe_header(h, pseudonym, rules.free_text_min_words) else f"column {j + 1}"
        for j, h in enumerate(header)
    ]
    results = [
        CheckResult(
            "readable",
            CheckStatus.PASS,
            f"a UTF-8 CSV table: a header and {_plural(len(rows), 'data row')} of "
            f"{_plural(width, 'column')}",
            {"rows": len(rows), "columns": width},
        )
    ]
    # row_level
    if len(rows) > rules.max_table_rows:
        results.append(
            CheckResult(
                "row_level",
                CheckStatus.FAIL,
                f"{len(rows)} data rows is more than {rules.max_table_rows}: a table this long "
                "is treated as row-level data; aggregate it",
                {"rows": len(rows), "max_table_rows": rules.max_table_rows},
            )
        )
    else:
        results.append(
            CheckResult(
                "row_level",
                CheckStatus.PASS,
                f"{len(rows)} data rows (at most {rules.max_table_rows})",
                {"rows": len(rows), "max_table_rows": rules.max_table_rows},
            )
        )
    results.append(
        _cell_rule(
            "pseudonyms",
            rows,
            labels,
            lambda c: bool(pseudonym.search(c)),
            header_hit=any(pseudonym.search(h) for h in header),
            what=f"a {rules.pseudonym_hex_length}-character hex pseudonym",
        )
    )
    dob_columns = [labels[j] for j, h in enumerate(header) if _is_dob_header(h)]
    dated = _cell_rule(
        "dates_of_birth",
        rows,
        labels,
        _is_full_date,
        header_hit=False,
        what="a full date (day, month and year; give month and year only)",
    )
    if dob_columns:
        message = f"column{'s' if len(dob_columns) > 1 else ''} {_columns(dob_columns)} " + (
            "look like dates of birth" if len(dob_columns) > 1 else "looks like a date of birth"
        )
        if dated.status == CheckStatus.FAIL:
            message += "; " + dated.message
        results.append(
            CheckResult(
                "dates_of_birth",
                CheckStatus.FAIL,
                message,
                {**dated.details, "date_of_birth_columns": dob_columns},
            )
        )
    else:
        results.append(dated)
    n = rules.free_text_min_words
    results.append(
        _cell_rule(
            "free_text",
            rows,
            labels,
            lambda c: _words(c) >= n,
            header_hit=False,
            what=f"free text ({n} or more words)",
        )
    )
    if scan_text is not None:
        results.append(_identifiers(scan_text(_table_text(header, rows)), "table"))
    return results


def _cell_rule(
    rule: str,
    rows: Sequence[Sequence[str]],
    labels: Sequence[str],
    fires: Callable[[str], bool],
    *,
    header_hit: bool,
    what: str,
) -> CheckResult:
    hit_rows: list[int] = []
    hit_columns: dict[int, int] = {}
    cells = 0
    for i, row in enumerate(rows, start=1):
        fired = False
        for j, cell in enumerate(row):
            if cell and fires(cell):
                cells += 1
                hit_columns[j] = hit_columns.get(j, 0) + 1
                fired = True
        if fired:
            hit_rows.append(i)
    if not cells and not header_hit:
        return CheckResult(rule, CheckStatus.PASS, f"no cell holds {what}", {"cells": 0})
    columns = {labels[j]: k for j, k in sorted(hit_columns.items())}
    parts = []
    if cells:
        parts.append(
            f"{_plural(cells, 'cell')} {_hold(cells)} {what}: "
            f"column{'s' if len(columns) > 1 else ''} {_columns(list(columns))}, "
            f"{_numbers(hit_rows, 'row')}"
        )
    if header_hit:
        parts.append(f"the header holds {what}")
    return CheckResult(
        rule,
        CheckStatus.FAIL,
        "; ".join(parts),
        {"cells": cells, "columns": columns, "rows": hit_rows[:100], "header": header_hit},
    )


def _table_text(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The cells to scan for identifiers, one a line. Short whole numbers and decimals
    (counts, means) are left out: they cannot be names or addresses, and a count must not
    read as a phone number. Long digit runs (an NHS or phone number) stay in."""
    lines = []
    for row in (header, *rows):
        for cell in row:
            c = cell.strip()
            if not c:
                continue
            if _PLAIN_NUMBER.fullmatch(c) and (("." in c) or len(c.lstrip("+-")) < 9):
                continue
            lines.append(c)
    return "\n".join(lines)


def _identifiers(found: Mapping[str, int], what: str) -> CheckResult:
    counts = {str(k): int(v) for k, v in sorted(found.items()) if int(v) > 0}
    if not counts:
        return CheckResult(
            "identifiers", CheckStatus.PASS, f"no identifier found in the {what}", {"found": {}}
        )
    listed = ", ".join(f"{k} x{v}" for k, v in counts.items())
    return CheckResult(
        "identifiers",
        CheckStatus.FAIL,
        f"the {what} seems to hold identifiers: {listed}; remove them",
        {"found": counts},
    )


def _check_figure_readable(name: str, content: bytes) -> CheckResult:
    suffix = _suffix(name)
    ok: bool
    if suffix == ".png":
        ok = content.startswith(b"\x89PNG\r\n\x1a\n")
        what = "a PNG image"
    elif suffix in (".jpg", ".jpeg"):
        ok = content.startswith(b"\xff\xd8\xff")
        what = "a JPEG image"
    elif suffix == ".svg":
        text = _decode(content)
        low = (text or "").lower()
        ok = text is not None and "<svg" in low
        what = "an SVG image"
        if ok and ("<script" in low or "javascript:" in low or "<foreignobject" in low):
            return CheckResult(
                "readable",
                CheckStatus.FAIL,
                "the SVG image holds scripts or embedded HTML; export a plain image",
            )
    else:
        return CheckResult("readable", CheckStatus.PASS, "an image (format not inspected)")
    if not ok:
        return CheckResult("readable", CheckStatus.FAIL, f"the file is not {what}")
    return CheckResult("readable", CheckStatus.PASS, f"{what}")


def _check_figure_table(
    metadata: Mapping[str, Any] | None, other_names: Collection[str], rules: FileRules
) -> CheckResult:
    table = (metadata or {}).get("table")
    if not isinstance(table, str) or not table:
        return CheckResult(
            "figure_table",
            CheckStatus.FAIL,
            "a figure must name the table it shows (metadata 'table'), released with it",
        )
    if table not in other_names:
        return CheckResult(
            "figure_table",
            CheckStatus.FAIL,
            f"the figure's table {table} is not a file of this request",
            {"table": table},
        )
    if category(table, rules) != "table":
        return CheckResult(
            "figure_table",
            CheckStatus.FAIL,
            f"the figure's table {table} is not a CSV table",
            {"table": table},
        )
    return CheckResult(
        "figure_table", CheckStatus.PASS, f"the figure shows table {table}", {"table": table}
    )


def _notebook(text: str) -> tuple[str, int] | None:
    """(the notebook's cell sources, its number of outputs); None if it is not one."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        return None
    sources: list[str] = []
    outputs = 0
    for cell in data["cells"]:
        if not isinstance(cell, dict):
            return None
        source = cell.get("source", "")
        sources.append("".join(source) if isinstance(source, list) else str(source))
        out = cell.get("outputs")
        if isinstance(out, list):
            outputs += len(out)
    return "\n".join(sources), outputs


def _lines_matching(text: str, pattern: re.Pattern[str]) -> list[int]:
    return [i for i, line in enumerate(text.splitlines(), start=1) if pattern.search(line)]


def _check_text(
    name: str,
    content: bytes,
    cat: str,
    rules: FileRules,
    scan_text: Callable[[str], Mapping[str, int]] | None,
) -> Iterator[CheckResult]:
    text = _decode(content)
    if text is None:
        yield CheckResult("readable", CheckStatus.FAIL, f"the {cat} file is not UTF-8 text")
        return
    body = text
    if _suffix(name) == ".ipynb":
        notebook = _notebook(text)
        if notebook is None:
            yield CheckResult("readable", CheckStatus.FAIL, "the notebook is not valid JSON")
            return
        body, outputs = notebook
        yield CheckResult("readable", CheckStatus.PASS, "a notebook (JSON)")
        if outputs:
            yield CheckResult(
                "row_level",
                CheckStatus.FAIL,
                f"the notebook holds {_plural(outputs, 'cell output')}, which can show data; "
                "clear all outputs before release",
                {"outputs": outputs},
            )
        else:
            yield CheckResult(
                "row_level", CheckStatus.PASS, "the notebook holds no cell outputs", {"outputs": 0}
            )
    else:
        yield CheckResult(
            "readable", CheckStatus.PASS, f"UTF-8 text, {_plural(len(text.splitlines()), 'line')}"
        )
    pseudonym = _pseudonym_pattern(rules.pseudonym_hex_length)
    lines = _lines_matching(body, pseudonym)
    if lines:
        yield CheckResult(
            "pseudonyms",
            CheckStatus.FAIL,
            f"{_plural(len(pseudonym.findall(body)), 'token')} "
            f"{'looks' if len(pseudonym.findall(body)) == 1 else 'look'} like "
            f"{rules.pseudonym_hex_length}-character hex pseudonyms ({_numbers(lines, 'line')})",
            {"lines": lines[:100]},
        )
    else:
        yield CheckResult("pseudonyms", CheckStatus.PASS, "no token looks like a pseudonym")
    dob_lines = _lines_matching(body, _DOB_IN_TEXT)
    if dob_lines:
        yield CheckResult(
            "dates_of_birth",
            CheckStatus.FAIL,
            f"a date of birth is written out ({_numbers(dob_lines, 'line')})",
            {"lines": dob_lines[:100]},
        )
    else:
        yield CheckResult("dates_of_birth", CheckStatus.PASS, "no date of birth is written out")
    if scan_text is not None:
        yield _identifiers(scan_text(body), f"{cat} file")
