"""A locked-down DuckDB connection over Delta tables, and the guard that audits refusals.

:func:`locked_connection` registers each table as an Arrow dataset
(``sde.adapters.delta.dataset``: filters and projections are pushed down), then disables
external access and locks the configuration. From SQL, the connection can then read only
what was registered, plus files under its scratch directory when it is given one (DuckDB's
``allowed_directories``): ``COPY ... TO``, ``read_csv``/``read_parquet``/``read_text`` of a
path, ``glob``, ``ATTACH`` and ``EXPORT DATABASE`` anywhere else, ``INSTALL``/``LOAD`` and
changing any setting are refused. DuckDB checks an allowed path after removing ``..``
and following symbolic links (measured on 2.0.1), so ``<scratch>/../x`` and a link in the
scratch area to a file outside it are refused too. A *hard* link is a file like any
other: only a process that can already read the target can make one, and a workspace
does not mount the lake.

DuckDB's temporary directory is always an allowed directory, whatever the other
settings say, so it is put inside the scratch area (``<scratch>/.duckdb-tmp``), or
switched off (no spilling to disk) when there is none: left at its default it would be
``./.tmp`` of whatever the working directory is.

:class:`GuardedConnection` wraps such a connection for a researcher's session: a refused
operation is reported to ``on_refusal`` (the workspace writes it to the audit log), then
raised as :class:`WorkspaceRefused`, which is both an ``sde.errors.PolicyDenied`` naming
the rule and a ``duckdb.PermissionException`` (so code that catches ``duckdb.Error`` still
does). Neither the refusal nor its message carries the SQL text or a value from it: only
the rule, the statement's first keyword and the SHA-256 of the text.

The lock guards SQL only: host Python can still reach the raw connection. What a
researcher's process can read at all is decided by what is mounted into its workspace.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, NoReturn, TypeVar

import duckdb
import pandas as pd

from sde.adapters import delta
from sde.errors import PolicyDenied

T = TypeVar("T")

TEMP_DIR: Final = ".duckdb-tmp"

# The rules a refusal names (the ``reason`` of a ``workspace.refused`` audit event).
FILE_ACCESS: Final = "file access outside the scratch area"
ATTACH: Final = "ATTACH"
LOCKED_SETTING: Final = "changing a locked setting"
EXTENSIONS: Final = "extension install/load"
HOST_DATA: Final = "registering host data"
RULES: Final = (FILE_ACCESS, ATTACH, LOCKED_SETTING, EXTENSIONS, HOST_DATA)

# First keywords recorded as they are; anything else is recorded as "other".
_KEYWORDS: Final = frozenset(
    {
        "ALTER",
        "ATTACH",
        "CALL",
        "COPY",
        "CREATE",
        "DELETE",
        "DESCRIBE",
        "DETACH",
        "DROP",
        "EXPLAIN",
        "EXPORT",
        "FORCE",
        "FROM",
        "IMPORT",
        "INSERT",
        "INSTALL",
        "LOAD",
        "PIVOT",
        "PRAGMA",
        "RESET",
        "SELECT",
        "SET",
        "SHOW",
        "SUMMARIZE",
        "UNPIVOT",
        "UPDATE",
        "USE",
        "VALUES",
        "WITH",
    }
)
_COMMENT = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.DOTALL)
_WORD = re.compile(r"[A-Za-z_]+")
_LOCKED = "the configuration has been locked"
_SETTING = re.compile(r'configuration option "([a-z_]{1,64})"')


def locked_connection(
    tables: Mapping[str, delta.Location],
    *,
    versions: Mapping[str, int] | None = None,
    memory_limit: str = "2GB",
    threads: int = 2,
    scratch: Path | None = None,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with each Delta table registered under its name
    (at the pinned version when given), external access off and configuration locked.
    With ``scratch`` (an existing directory), files under it may be read and written,
    and nothing outside it."""
    allowed = _scratch_forms(scratch) if scratch is not None else []
    con = duckdb.connect(":memory:")
    try:
        for name, path in tables.items():
            version = (versions or {}).get(name)
            con.register(name, delta.dataset(path, version))
        temp = _quote(f"{allowed[0]}/{TEMP_DIR}") if allowed else "''"
        statements = [
            f"SET memory_limit='{_size(memory_limit)}'",
            f"SET threads={int(threads)}",
            "SET autoinstall_known_extensions=false",
            "SET autoload_known_extensions=false",
            "SET allow_community_extensions=false",
            f"SET temp_directory={temp}",
        ]
        if allowed:
            listed = ", ".join(_quote(a) for a in allowed)
            statements.append(f"SET allowed_directories=[{listed}]")
        statements += ["SET enable_external_access=false", "SET lock_configuration=true"]
        for statement in statements:
            con.execute(statement)
    except BaseException:
        con.close()
        raise
    return con


def _scratch_forms(scratch: Path) -> list[str]:
    """The scratch directory as written and as resolved (both name the same place)."""
    if not scratch.is_absolute():
        raise ValueError("the scratch directory must be an absolute path")
    if not scratch.is_dir():
        raise ValueError("the scratch directory must exist")
    forms = [str(scratch).rstrip("/") or "/", str(scratch.resolve()).rstrip("/") or "/"]
    if "/" in forms:
        raise ValueError("the scratch directory cannot be the root directory")
    if any("\x00" in f for f in forms):
        raise ValueError("the scratch directory path holds a NUL character")
    return list(dict.fromkeys(forms))


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _size(value: str) -> str:
    cleaned = value.strip().upper()
    if not cleaned[:-2].replace(".", "").isdigit() or cleaned[-2:] not in {"KB", "MB", "GB"}:
        raise ValueError("memory limit must look like 512MB or 2GB")
    return cleaned


# --- refusals ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """What is recorded of a refused operation: the rule, the statement's first keyword
    (``"other"`` when not a known one, ``"python"`` for a Python call) and the SHA-256 of
    the SQL text; the locked setting's name for :data:`LOCKED_SETTING`. Never the text."""

    rule: str
    statement: str
    sql_sha256: str | None = None
    setting: str | None = None

    def details(self) -> dict[str, str]:
        out = {"reason": self.rule, "statement": self.statement}
        if self.sql_sha256 is not None:
            out["sql_sha256"] = self.sql_sha256
        if self.setting is not None:
            out["setting"] = self.setting
        return out


RefusalSink = Callable[[Refusal], None]


class WorkspaceRefused(PolicyDenied, duckdb.PermissionException):
    """An operation a workspace session may not do. ``rule`` is one of :data:`RULES`;
    the message says what is allowed instead. Also a ``duckdb.Error``."""

    def __init__(self, refusal: Refusal, *, scratch: Path | None, recorded: bool = True) -> None:
        self.refusal = refusal
        self.rule = refusal.rule
        reasons = [f"{refusal.rule}: {_explain(refusal, scratch)}"]
        if not recorded:
            reasons.append(
                "the refusal could not be recorded in the audit log, so the connection was closed"
            )
        super().__init__("workspace operation", reasons)


def _explain(refusal: Refusal, scratch: Path | None) -> str:
    where = (
        f"files may be read and written only in your scratch area, {scratch}"
        if scratch is not None
        else "this connection has no scratch area, so it reads and writes no files"
    )
    if refusal.rule == FILE_ACCESS:
        return where
    if refusal.rule == ATTACH:
        return (
            "a workspace reads its own project's extract only; other databases (another "
            f"project's extract, the linked zone) cannot be attached; {where}"
        )
    if refusal.rule == LOCKED_SETTING:
        named = f" ({refusal.setting})" if refusal.setting else ""
        return f"the workspace's settings{named} are locked"
    if refusal.rule == EXTENSIONS:
        return "DuckDB extensions cannot be installed or loaded in a workspace"
    if refusal.rule == HOST_DATA:
        return (
            "the connection reads only your project's extract; to query a table you "
            "made, write it to your scratch area (df.to_parquet) and read it with "
            "read_parquet"
        )
    return "not allowed in a workspace"


def statement_keyword(sql: str | None) -> str:
    """The statement's first keyword, upper case, if it is one sde records; else
    ``"other"``, or ``"python"`` when there is no SQL."""
    if sql is None:
        return "python"
    rest = sql[_COMMENT.match(sql).end() :]  # type: ignore[union-attr]  # \A(...)* always matches
    word = _WORD.match(rest)
    keyword = word.group(0).upper() if word else ""
    return keyword if keyword in _KEYWORDS else "other"


def sql_digest(sql: str | None) -> str | None:
    return None if sql is None else hashlib.sha256(sql.encode("utf-8")).hexdigest()


def refusal_for(exc: duckdb.Error, sql: str | None) -> Refusal | None:
    """The :class:`Refusal` a DuckDB error stands for, or ``None`` if it is an ordinary
    error (a typo, a missing table) rather than the lock refusing something."""
    message = str(exc)
    keyword = statement_keyword(sql)
    if _LOCKED in message:
        setting = _SETTING.search(message)
        return Refusal(
            LOCKED_SETTING, keyword, sql_digest(sql), setting.group(1) if setting else None
        )
    if not isinstance(exc, duckdb.PermissionException):
        return None
    if keyword in ("INSTALL", "LOAD", "FORCE") or "extension" in message.lower():
        rule = EXTENSIONS
    elif keyword in ("ATTACH", "DETACH"):
        rule = ATTACH
    else:
        rule = FILE_ACCESS
    return Refusal(rule, keyword, sql_digest(sql))


class _Guard:
    """Runs calls on a connection; turns a refusal into an audit record and a
    :class:`WorkspaceRefused` raised with no trace of the SQL text."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, scratch: Path | None, on_refusal: RefusalSink
    ) -> None:
        self.con = con
        self.scratch = scratch
        self._on_refusal = on_refusal

    def run(self, sql: str | None, call: Callable[[], T]) -> T:
        try:
            return call()
        except WorkspaceRefused:
            raise
        except duckdb.Error as exc:
            refusal = refusal_for(exc, sql)
            if refusal is None:
                raise
        # Raised outside the ``except`` block: the DuckDB message (which quotes the SQL
        # text) is not chained onto the refusal.
        self.refuse(refusal)

    def refuse(self, refusal: Refusal) -> NoReturn:
        try:
            self._on_refusal(refusal)
            recorded = True
        except Exception:  # fail closed: an unrecorded refusal ends the session
            recorded = False
        if not recorded:
            self.con.close()
        raise WorkspaceRefused(refusal, scratch=self.scratch, recorded=recorded)


class GuardedRelation:
    """A DuckDB relation whose every call goes through the guard. Everything a relation
    offers is forwarded (``df``, ``fetchall``, ``filter``, ``aggregate``, ...); a call
    that returns a relation returns a guarded one."""

    def __init__(self, relation: duckdb.DuckDBPyRelation, guard: _Guard, sql: str | None) -> None:
        self._relation = relation
        self._guard = guard
        self._sql = sql

    def _wrap(self, value: object) -> Any:
        if isinstance(value, duckdb.DuckDBPyRelation):
            return GuardedRelation(value, self._guard, self._sql)
        return value

    def df(self, *, date_as_object: bool = False) -> pd.DataFrame:
        frame: pd.DataFrame = self._guard.run(
            self._sql, lambda: self._relation.df(date_as_object=date_as_object)
        )
        return frame

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._guard.run(self._sql, self._relation.fetchall)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        attribute = getattr(self._relation, name)
        if not callable(attribute):
            return self._wrap(attribute)

        def call(*args: Any, **kwargs: Any) -> Any:
            plain = [_unwrap(a) for a in args]
            named = {k: _unwrap(v) for k, v in kwargs.items()}
            return self._wrap(self._guard.run(self._sql, lambda: attribute(*plain, **named)))

        return call

    def __getitem__(self, key: Any) -> Any:
        return self._wrap(self._guard.run(self._sql, lambda: self._relation[key]))

    def __len__(self) -> int:
        return self._guard.run(self._sql, lambda: len(self._relation))

    def __repr__(self) -> str:
        return self._guard.run(self._sql, lambda: repr(self._relation))

    def __str__(self) -> str:
        return self._guard.run(self._sql, lambda: str(self._relation))

    def _repr_mimebundle_(self, *args: Any, **kwargs: Any) -> Any:
        return self._guard.run(self._sql, lambda: self._relation._repr_mimebundle_(*args, **kwargs))


def _unwrap(value: object) -> object:
    """A guarded relation passed to a relation method (``a.join(b, ...)``) as DuckDB's own."""
    return value._relation if isinstance(value, GuardedRelation) else value


class GuardedConnection:
    """A researcher's connection: what notebooks use of a ``DuckDBPyConnection``
    (``sql``/``query``, ``execute`` then ``fetchall``/``fetchone``/``df``, ``table``,
    ``close``, ``with``), every refusal recorded and raised as :class:`WorkspaceRefused`.
    ``register`` is refused: host data is not part of the extract."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        scratch: Path | None,
        on_refusal: RefusalSink,
    ) -> None:
        self._guard = _Guard(con, scratch, on_refusal)
        self._sql: str | None = None

    @property
    def scratch(self) -> Path | None:
        """Where this connection may read and write files (``None``: nowhere)."""
        return self._guard.scratch

    def sql(self, query: str, *, alias: str = "", params: object = None) -> GuardedRelation:
        relation = self._guard.run(
            query, lambda: self._guard.con.sql(query, alias=alias, params=params)
        )
        return GuardedRelation(relation, self._guard, query)

    query = sql

    def execute(self, query: str, parameters: object = None) -> GuardedConnection:
        self._sql = query
        self._guard.run(query, lambda: self._guard.con.execute(query, parameters))
        return self

    def table(self, table_name: str) -> GuardedRelation:
        relation = self._guard.run(None, lambda: self._guard.con.table(table_name))
        return GuardedRelation(relation, self._guard, None)

    def view(self, view_name: str) -> GuardedRelation:
        relation = self._guard.run(None, lambda: self._guard.con.view(view_name))
        return GuardedRelation(relation, self._guard, None)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._guard.run(self._sql, self._guard.con.fetchall)

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._guard.run(self._sql, self._guard.con.fetchone)

    def fetchmany(self, size: int = 1) -> list[tuple[Any, ...]]:
        return self._guard.run(self._sql, lambda: self._guard.con.fetchmany(size))

    def df(self, *, date_as_object: bool = False) -> pd.DataFrame:
        return self._guard.run(self._sql, lambda: self._guard.con.df(date_as_object=date_as_object))

    fetchdf = df
    fetch_df = df

    @property
    def description(self) -> list[tuple[str, Any, None, None, None, None, None]] | None:
        return self._guard.con.description

    def register(self, view_name: str, python_object: object) -> NoReturn:
        """Refused (and recorded): a workspace queries its project's extract only."""
        self._guard.refuse(Refusal(HOST_DATA, "python"))

    def close(self) -> None:
        self._guard.con.close()

    def __enter__(self) -> GuardedConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<sde workspace connection; scratch area: {self.scratch or 'none'}>"
