"""``sde patient report``: a patient's record history as a letter, for requests by post."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from sde.cli import home_option, load_home, main
from sde.cli.people import actor_option
from sde.errors import InputError


@main.group()
def patient() -> None:
    """A patient's record history: where their record is held and who used it."""


def _write_private(path: Path, data: bytes) -> None:
    """Write a new file readable by its owner only (the letter holds the NHS number)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InputError(f"{path} already exists; choose a new file for the letter") from None
    except OSError as exc:
        raise InputError(f"cannot write the letter to {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)


@patient.command("report")
@click.option(
    "--nhs-number",
    "nhs_number",
    prompt="NHS number",
    hide_input=True,
    help="The patient's NHS number (asked for, hidden, if not given). It appears in the "
    "letter only: never in a message or the audit log.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "text", "pdf"]),
    default="html",
    show_default=True,
    help="HTML (self-contained, no scripts), plain text, or PDF (A4, core fonts; binary: "
    "give --out, or redirect standard output to a file or pipe).",
)
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the letter to this new file (mode 0600) instead of printing it.",
)
@actor_option
@home_option
def report(
    nhs_number: str, fmt: str, out_file: Path | None, actor: str, home_dir: Path | None
) -> None:
    """Write the letter answering a patient's request by post: which datasets hold their
    record, which projects' extracts included it (with their released results), their
    opt-outs and choices, and how to change them. Computed from the NHS number (no NHS
    number is stored); the look-up is audited as patient.history.viewed."""
    from sde.patient import letter_bytes, render_letter
    from sde.services.patient import check_nhs_number, record_history
    from sde.services.wiring import control_plane

    if fmt == "pdf" and out_file is None and sys.stdout.isatty():
        # Checked before the look-up, so a refused run neither audits nor computes anything.
        raise InputError(
            "a PDF letter is binary and is not written to a terminal: give --out FILE "
            "(or redirect standard output to a file)"
        )
    home = load_home(home_dir)
    with control_plane(home) as store:
        history = record_history(
            home, store, nhs_number, actor=actor, audit=store.audit, channel="letter"
        )
    digits = check_nhs_number(nhs_number)
    if out_file is None and fmt != "pdf":
        click.echo(render_letter(history, digits, fmt), nl=False)
        return
    letter = letter_bytes(history, digits, fmt)
    if out_file is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(letter)
        sys.stdout.buffer.flush()
        return
    _write_private(out_file, letter)
    click.echo(f"wrote the letter to {out_file}")
