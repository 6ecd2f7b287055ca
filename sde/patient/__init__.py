"""A patient's record history as a letter (``sde patient report``), for requests by post.

:func:`sde.services.patient.record_history` computes what the patient may see;
:func:`render_letter` writes it as a self-contained HTML page (no scripts, no outside
resources, a Content-Security-Policy that forbids both) or as plain text;
:func:`sde.patient.pdf.render_pdf` writes it as a PDF, and :func:`letter_bytes` gives any
of the three as the bytes of a file. The NHS number appears in the letter itself (it is
the patient's own letter) and nowhere else.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from sde.domain import nhs_number as nhs
from sde.domain.optouts import Scope
from sde.errors import InputError
from sde.services.patient import RecordHistory

TEMPLATES = Path(__file__).parent / "templates"
FORMATS = ("html", "text")
"""The formats :func:`render_letter` writes as text."""
LETTER_FORMATS = (*FORMATS, "pdf")
"""Every format of the letter (:func:`letter_bytes`)."""
SPONSOR_WORDS = {
    "nhs": "an NHS organisation",
    "academic": "a university or research institute",
    "charity": "a charity",
    "commercial": "a commercial company",
}
PURPOSE_WORDS = {"research": "research", "planning": "planning health and care services"}
CHANGEABLE = tuple(s.value for s in Scope)


def environment() -> jinja2.Environment:
    """The patient templates (letter and page): HTML autoescaped, undefined names fail."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        # HTML escaped; the plain-text letter is not HTML and is written as is.
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["day"] = lambda iso: str(iso)[:10] if iso else "not recorded"
    return env


def spaced(digits: str) -> str:
    """An NHS number as it is printed: ``943 476 5919``."""
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


def render_letter(history: RecordHistory, nhs_number: str, fmt: str = "html") -> str:
    """The letter for the patient whose number is ``nhs_number`` (valid, checked again)."""
    if fmt not in FORMATS:
        raise InputError(
            f"letter format must be one of {', '.join(FORMATS)} (a PDF is bytes: letter_bytes)"
        )
    digits = nhs.normalise(nhs_number)
    if digits is None or not nhs.is_valid_digits(digits):
        raise InputError("the NHS number given is not a valid NHS number")
    env = environment()
    template = env.get_template("letter.html" if fmt == "html" else "letter.txt")
    return template.render(
        h=history,
        nhs_number=spaced(digits),
        sponsor_words=SPONSOR_WORDS,
        purpose_words=PURPOSE_WORDS,
        changeable=CHANGEABLE,
    )


def letter_bytes(history: RecordHistory, nhs_number: str, fmt: str = "html") -> bytes:
    """The letter as the bytes of a file: HTML or text in UTF-8, or a PDF."""
    if fmt == "pdf":
        from sde.patient.pdf import render_pdf

        return render_pdf(history, nhs_number)
    if fmt not in FORMATS:
        raise InputError(f"letter format must be one of {', '.join(LETTER_FORMATS)}")
    return render_letter(history, nhs_number, fmt).encode("utf-8")


__all__ = ["FORMATS", "LETTER_FORMATS", "letter_bytes", "render_letter", "spaced"]
