"""``sde deid``: de-identify free text in JSONL files (no state directory needed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click

from sde.cli import main
from sde.deid.known import Known  # light: Presidio is imported by the commands only
from sde.errors import InputError


@main.group()
def deid() -> None:
    """Find or remove identifiers in free text (JSONL in, JSONL out)."""


def _options(func: Any) -> Any:
    # Applied innermost first: the help lists them in the reverse of this order.
    func = click.option(
        "--entities", default=None, help="Comma-separated labels to find (default: all)."
    )(func)
    func = click.option(
        "--nlp",
        default="none",
        show_default=True,
        help="'none', or 'spacy:MODEL' to add an installed spaCy model's names.",
    )(func)
    func = click.option(
        "--processes",
        default=1,
        show_default=True,
        type=click.IntRange(min=1),
        help="Worker processes.",
    )(func)
    func = click.option(
        "--out",
        "out_path",
        required=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="JSONL output.",
    )(func)
    return click.option(
        "--in",
        "in_path",
        required=True,
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        help='JSONL input: one {"id", "text", "known"?} object per line.',
    )(func)


@deid.command()
@_options
def detect(
    in_path: Path,
    out_path: Path,
    processes: int,
    nlp: str,
    entities: str | None,
) -> None:
    """Write the identifiers found in each note: {"id", "spans": [{start, end, label, score}]}."""
    count = _run(in_path, out_path, processes, nlp, entities, redacting=False)
    click.echo(f"{count} note(s) read; spans written to {out_path}")


@deid.command()
@_options
def redact(
    in_path: Path,
    out_path: Path,
    processes: int,
    nlp: str,
    entities: str | None,
) -> None:
    """Write each note with typed placeholders: {"id", "text"}."""
    count = _run(in_path, out_path, processes, nlp, entities, redacting=True)
    click.echo(f"{count} note(s) read; redacted text written to {out_path}")


def _run(
    in_path: Path,
    out_path: Path,
    processes: int,
    nlp: str,
    entities: str | None,
    *,
    redacting: bool,
) -> int:
    from sde.deid import LABELS, Deidentifier
    from sde.deid.spans import redact as apply

    wanted = tuple(e.strip() for e in entities.split(",") if e.strip()) if entities else LABELS
    engine = Deidentifier(entities=wanted, nlp=nlp)
    notes = list(_read(in_path))  # validated up front: a bad line writes nothing
    tmp = out_path.with_name(out_path.name + ".partial")
    with tmp.open("w", encoding="utf-8") as out:
        results = engine.detect_many(((t, k) for _, t, k in notes), processes=processes)
        for (note_id, text, _), spans in zip(notes, results, strict=True):
            record: dict[str, object] = {"id": note_id}
            if redacting:
                record["text"] = apply(text, spans)
            else:
                record["spans"] = [
                    {"start": s.start, "end": s.end, "label": s.label, "score": round(s.score, 3)}
                    for s in spans
                ]
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(out_path)
    return len(notes)


def _read(path: Path) -> Iterator[tuple[object, str, Known | None]]:
    with path.open(encoding="utf-8") as f:
        yield from _lines(f, path.name)


def _lines(f: IO[str], name: str) -> Iterator[tuple[object, str, Known | None]]:
    number = 0
    try:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                raise InputError(f"{name} line {number}: not valid JSON") from None
            if not isinstance(data, dict):
                raise InputError(f"{name} line {number}: not a JSON object")
            if "id" not in data:
                raise InputError(f"{name} line {number}: no 'id'")
            text = data.get("text")
            if not isinstance(text, str):
                raise InputError(f"{name} line {number}: 'text' is missing or not a string")
            unknown = sorted(set(data) - {"id", "text", "known"})
            if unknown:
                raise InputError(f"{name} line {number}: unknown key {unknown[0][:40]!r}")
            raw = data.get("known")
            try:
                known = Known.from_json(raw) if raw is not None else None
            except InputError as exc:
                raise InputError(f"{name} line {number}: {exc}") from None
            yield data["id"], text, known
    except UnicodeDecodeError:
        raise InputError(f"{name} is not UTF-8 text (near line {number + 1})") from None
