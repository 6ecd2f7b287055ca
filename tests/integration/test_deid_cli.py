"""``sde deid detect`` and ``sde deid redact`` on JSONL files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sde.cli import main

pytestmark = pytest.mark.presidio

NOTES: list[dict[str, Any]] = [
    {"id": 1, "text": "Re: Amina Okafor, NHS 943 476 5919. BP 132/84."},
    {
        "id": "b",
        "text": "zorvath phoned from 0113 496 0321",
        "known": {"names": ["Zorvath", "Quibble"], "phone": "01134960321"},
    },
    {"id": 3, "text": "Metformin 500 mg bd."},
]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout + result.stderr


def test_detect_writes_spans_per_note(tmp_path: Path) -> None:
    src = write(tmp_path / "notes.jsonl", [json.dumps(n) for n in NOTES])
    out = tmp_path / "spans.jsonl"
    code, output = run("deid", "detect", "--in", str(src), "--out", str(out))
    assert code == 0, output
    assert "3 note(s)" in output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, "b", 3]
    first = NOTES[0]["text"]
    assert isinstance(first, str)
    assert [(first[s["start"] : s["end"]], s["label"]) for s in rows[0]["spans"]] == [
        ("Amina Okafor", "PERSON"),
        ("943 476 5919", "NHS_NUMBER"),
    ]
    assert set(rows[0]["spans"][0]) == {"start", "end", "label", "score"}
    assert [s["label"] for s in rows[1]["spans"]] == ["PERSON", "PHONE"]
    assert rows[2]["spans"] == []


def test_redact_writes_placeholders_and_processes_give_the_same_result(tmp_path: Path) -> None:
    src = write(tmp_path / "notes.jsonl", [json.dumps(n) for n in NOTES])
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    assert run("deid", "redact", "--in", str(src), "--out", str(one))[0] == 0
    code, output = run("deid", "redact", "--in", str(src), "--out", str(two), "--processes", "2")
    assert code == 0, output
    assert one.read_text() == two.read_text()
    rows = [json.loads(line) for line in one.read_text().splitlines()]
    assert rows[0] == {"id": 1, "text": "Re: <PERSON>, NHS <NHS_NUMBER>. BP 132/84."}
    assert rows[1]["text"] == "<PERSON> phoned from <PHONE>"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "line 2: not valid JSON"),
        ("[1, 2]", "line 2: not a JSON object"),
        ('{"text": "Amina Okafor"}', "line 2: no 'id'"),
        ('{"id": 2, "text": 5}', "line 2: 'text' is missing or not a string"),
        (
            '{"id": 2, "text": "Amina Okafor", "known": {"shoe": "x"}}',
            "line 2: 'known' has an unknown key 'shoe'",
        ),
        ('{"id": 2, "text": "Amina Okafor", "extra": 1}', "line 2: unknown key 'extra'"),
    ],
)
def test_a_bad_line_is_refused_by_number_without_echoing_text(
    tmp_path: Path, line: str, problem: str
) -> None:
    src = write(tmp_path / "notes.jsonl", [json.dumps(NOTES[0]), line])
    out = tmp_path / "out.jsonl"
    code, output = run("deid", "detect", "--in", str(src), "--out", str(out))
    assert code == 2
    assert problem in output
    assert "Amina" not in output
    assert "Okafor" not in output
    assert not out.exists()


def test_unknown_entity_and_missing_model_are_refused(tmp_path: Path) -> None:
    src = write(tmp_path / "notes.jsonl", [json.dumps(NOTES[0])])
    out = tmp_path / "out.jsonl"
    code, output = run(
        "deid", "detect", "--in", str(src), "--out", str(out), "--entities", "PERSON,SHOE_SIZE"
    )
    assert code == 2
    assert "no recognizer for entity SHOE_SIZE" in output
    code, output = run(
        "deid", "redact", "--in", str(src), "--out", str(out), "--nlp", "spacy:xx_none"
    )
    assert code == 2
    assert "not installed" in output
    assert not out.exists()


@pytest.mark.parametrize("command", ["detect", "redact"])
def test_home_is_not_an_option(tmp_path: Path, command: str) -> None:
    # deid needs no state directory, so it takes no --home (a usage error, before any work).
    src = write(tmp_path / "notes.jsonl", [json.dumps(NOTES[2])])
    out = tmp_path / "out.jsonl"
    code, output = run(
        "deid", command, "--in", str(src), "--out", str(out), "--home", str(tmp_path / "h")
    )
    assert code == 2
    assert "No such option '--home'" in output
    assert not out.exists()


def test_importing_the_cli_does_not_import_presidio() -> None:
    import subprocess
    import sys

    probe = "import sys, sde.cli; print('presidio_analyzer' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
