"""The patient's letter as a PDF (``sde patient report --format pdf``), with fpdf2.

The PDF holds what the HTML and text letters hold, laid out as a letter on A4: the
heading, the date, the NHS number the patient asked about, where their record is held,
the projects that used it (with their released results: file, date, SHA-256), the
projects it was kept from and why, their opt-outs and choices, and how to change them.

**Fonts and characters.** The letter uses the PDF core fonts (Helvetica, and Courier for
checksums), which every PDF reader has, so nothing is embedded and nothing depends on the
fonts of the machine that writes the letter. Core fonts hold Latin-1 only, so every
piece of text goes through :func:`latin1` first, whose rule is:

1. the text is put in Unicode normal form NFC (so ``e`` + a combining accent is ``é``);
2. typographic punctuation becomes its plain form: dashes and minus signs ``-``, curly
   single quotes and primes ``'``, curly double quotes ``"``, the ellipsis ``...``, the
   bullet ``*``, the euro sign ``EUR``, and the other Unicode spaces a plain space;
   the Latin letters that have no decomposition become their plain letter (``ł`` is
   ``l``, ``đ`` is ``d``, ``ħ``, ``ŧ``, the dotless i, ``ŋ``) and ``œ`` is ``oe``;
3. a character in Latin-1 (``é``, ``ß``, ``£``...) is kept;
4. any other character is replaced by its compatibility decomposition (NFKD) without
   accents when that is Latin-1 (``ő`` is ``o``, the ligature ``ﬁ`` is ``fi``);
5. invisible formatting characters (zero-width spaces, direction marks) are dropped, and
   control characters become a space;
6. anything left (Greek, Cyrillic, Chinese, Arabic...) becomes ``?``.

So a title written outside the Latin alphabet is not faithfully printed in the PDF: the
HTML and text letters carry it exactly, and the project reference (an ASCII identifier)
is printed beside every title so the project can still be found in the public register.

**Deterministic.** The same history renders to the same bytes: the creation date is the
history's ``generated_at`` (in the document information and the file identifier, which
fpdf2 computes from the content and that date), and nothing else varies. The document
information holds the letter's title, the writer and the date: never the NHS number.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Sequence

from fpdf import FPDF
from fpdf.enums import Align, TableBordersLayout, WrapMode, XPos, YPos
from fpdf.fonts import FontFace

from sde.domain import nhs_number as nhs
from sde.errors import InputError
from sde.patient import PURPOSE_WORDS, SPONSOR_WORDS, spaced
from sde.services.patient import ProjectUse, RecordHistory

TITLE = "Your health record in the Secure Data Environment"
AUTHOR = "Secure Data Environment"
CREATOR = "sde patient report"
FONT = "Helvetica"
MONO = "Courier"
BLUE = (0, 94, 184)  # NHS blue, as the HTML letter's section rules
INK = (11, 12, 12)
LINE = 5.5  # mm, body line height
MARGIN = 20  # mm
UNKNOWN_DATE = "not recorded"

_PLAIN = {
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2043\ufe58\ufe63\uff0d", "-"),
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u2035\u02bc\uff07", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u2036\uff02", '"'),
    **dict.fromkeys("\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f", " "),
    **dict.fromkeys("\u3000", " "),
    **dict(zip("ŁłĐđĦħŦŧıŊŋ", "LlDdHhTtiNn", strict=True)),
    "Œ": "OE",
    "œ": "oe",
    "\u2026": "...",
    "\u2022": "*",
    "\u20ac": "EUR",
}


def latin1(text: str) -> str:
    """``text`` in Latin-1, by the rule in this module's documentation: never fails."""
    out: list[str] = []
    for char in unicodedata.normalize("NFC", text):
        out.append(_latin1_char(char))
    return "".join(out)


def _latin1_char(char: str) -> str:
    if char in _PLAIN:
        return _PLAIN[char]
    category = unicodedata.category(char)
    if category == "Cc" or char in "\u2028\u2029":
        return " "
    if category == "Cf":
        return ""
    if ord(char) < 0x100:
        return char
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    if base and all(ord(c) < 0x100 and unicodedata.category(c)[0] != "C" for c in base):
        return base
    return "?"


def _day(iso: str | None) -> str:
    return iso[:10] if iso else UNKNOWN_DATE


def _created(history: RecordHistory) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(history.generated_at)
    except ValueError:
        raise InputError("the record history has no valid time it was generated at") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


class _Letter(FPDF):
    """A4 portrait, millimetres, core fonts; a footer with the page number."""

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font(FONT, size=8)
        self.set_text_color(80, 90, 95)
        self.cell(0, 5, f"{TITLE} - page {self.page_no()} of {{nb}}", align=Align.C)

    # --- building blocks --------------------------------------------------------------

    def paragraph(self, text: str, *, bold: bool = False, size: float = 11) -> None:
        self.set_font(FONT, "B" if bold else "", size)
        self.set_text_color(*INK)
        self.multi_cell(0, LINE, latin1(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT, align=Align.L)
        self.ln(2)

    def bullets(self, items: Sequence[str]) -> None:
        self.set_font(FONT, size=11)
        for item in items:
            self.set_x(self.l_margin + 4)
            self.cell(5, LINE, "-")
            self.multi_cell(
                0, LINE, latin1(item), new_x=XPos.LMARGIN, new_y=YPos.NEXT, align=Align.L
            )
        self.ln(2)

    def section(self, heading: str) -> None:
        """A level-2 heading: a blue rule above, kept with what follows, in the outline."""
        if self.will_page_break(30):
            self.add_page()
        self.ln(3)
        self.set_draw_color(*BLUE)
        self.set_line_width(0.6)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(3)
        self.start_section(heading, level=0)
        self.set_font(FONT, "B", 14)
        self.set_text_color(*INK)
        self.multi_cell(0, 7, latin1(heading), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(2)

    def subheading(self, heading: str) -> None:
        """A project's title: starts a new page unless its details fit below it."""
        if self.will_page_break(60):
            self.add_page()
        self.ln(1)
        self.start_section(latin1(heading), level=1)
        self.set_font(FONT, "B", 12)
        self.set_text_color(*INK)
        self.multi_cell(0, 6, latin1(heading), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(1)

    def caption(self, text: str) -> None:
        if self.will_page_break(20):
            self.add_page()
        self.set_font(FONT, "B", 11)
        self.multi_cell(0, LINE, latin1(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(1)

    def grid(
        self,
        headings: Sequence[str],
        rows: Sequence[Sequence[str]],
        widths: Sequence[float],
        *,
        mono_column: int | None = None,
        wrap: WrapMode = WrapMode.WORD,
    ) -> None:
        """A table with a heading row (repeated on a new page); cells wrap."""
        self.set_font(FONT, size=10)
        self.set_draw_color(80, 90, 95)
        self.set_line_width(0.2)
        mono = FontFace(family=MONO, size_pt=8)
        with self.table(
            col_widths=tuple(widths),
            text_align=Align.L,
            v_align="TOP",
            borders_layout=TableBordersLayout.HORIZONTAL_LINES,
            headings_style=FontFace(emphasis="BOLD"),
            line_height=LINE,
            padding=1.2,
            wrapmode=wrap,
        ) as table:
            heading = table.row()
            for text in headings:
                heading.cell(latin1(text))
            for values in rows:
                row = table.row()
                for i, text in enumerate(values):
                    row.cell(latin1(text), style=mono if i == mono_column else None)
        self.ln(3)

    def fields(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Label / value lines (a definition list): bold labels, values wrap."""
        self.set_font(FONT, size=10)
        with self.table(
            col_widths=(2, 5),
            text_align=Align.L,
            v_align="TOP",
            borders_layout=TableBordersLayout.NONE,
            first_row_as_headings=False,
            line_height=LINE,
            padding=(0.6, 1.2),
        ) as table:
            for label, value in pairs:
                row = table.row()
                row.cell(latin1(label), style=FontFace(emphasis="BOLD"))
                row.cell(latin1(value))
        self.ln(3)


def render_pdf(history: RecordHistory, nhs_number: str) -> bytes:
    """The letter as PDF bytes, for the patient whose number is ``nhs_number`` (valid,
    checked again). The same history and number give the same bytes."""
    digits = nhs.normalise(nhs_number)
    if digits is None or not nhs.is_valid_digits(digits):
        raise InputError("the NHS number given is not a valid NHS number")
    pdf = _Letter(orientation="portrait", unit="mm", format="A4")
    pdf.set_creation_date(_created(history))
    pdf.set_title(TITLE)
    pdf.set_author(AUTHOR)
    pdf.set_creator(CREATOR)
    pdf.set_lang("en-GB")
    pdf.set_display_mode(zoom="fullwidth")
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_auto_page_break(auto=True, margin=22)
    pdf.alias_nb_pages()
    pdf.add_page()
    _opening(pdf, history, spaced(digits))
    _datasets(pdf, history)
    _projects(pdf, history)
    _withheld(pdf, history)
    _choices(pdf, history)
    _closing(pdf)
    return bytes(pdf.output())


def _opening(pdf: _Letter, history: RecordHistory, number: str) -> None:
    pdf.set_font(FONT, "B", 11)
    pdf.set_text_color(*BLUE)
    pdf.cell(0, LINE, AUTHOR, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(*INK)
    pdf.set_font(FONT, size=11)
    pdf.cell(0, LINE, f"Date: {_day(history.generated_at)}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(6)
    pdf.set_font(FONT, "B", 18)
    pdf.multi_cell(0, 8, TITLE, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    pdf.paragraph("Dear patient,")
    pdf.paragraph(
        "You asked us where your health record has been used. This letter answers for the "
        "NHS number:"
    )
    pdf.paragraph(f"NHS number {number}", bold=True, size=13)
    pdf.paragraph(
        "It tells you which of our collections of records hold your record, which approved "
        "projects used it, what those projects have published, and the choices you have "
        "made. It ends with how to change your choices."
    )


def _datasets(pdf: _Letter, history: RecordHistory) -> None:
    pdf.section("Where your record is held")
    if not history.datasets:
        pdf.paragraph(
            "We hold no record linked to this NHS number. If you expected us to, please "
            "check the number on the letter you sent us."
        )
        return
    pdf.paragraph(
        "These collections of records in the Secure Data Environment hold information about "
        "you. Your name, address, date of birth and NHS number are not kept in them: each "
        "record is labelled with a code made from your NHS number with a secret key."
    )
    pdf.caption("Collections that hold your record")
    pdf.grid(
        ("Collection", "Number of entries about you"),
        [(d.title, str(d.rows)) for d in history.datasets],
        (3, 1),
    )


def _in_use(use: ProjectUse) -> str:
    if use.in_latest_extract:
        return "Yes"
    because = f" because of: {'; '.join(use.withheld_by)}" if use.withheld_by else ""
    return f"No: the latest update of this project's data left your record out{because}."


def _projects(pdf: _Letter, history: RecordHistory) -> None:
    pdf.section("Projects that used your record")
    if not history.projects:
        pdf.paragraph("No project has been given your record.")
        return
    pdf.paragraph(
        "Researchers never see your name, address, date of birth or NHS number. Each project "
        "gets its own code for you, so two projects cannot join their data about you. They "
        "work inside the Secure Data Environment, and only results checked by two "
        "independent checkers leave it: tables and figures about groups of people, never a "
        "single person's record."
    )
    for use in history.projects:
        pdf.subheading(use.title)
        sponsor_kind = SPONSOR_WORDS.get(use.sponsor_type, use.sponsor_type)
        pdf.fields(
            [
                ("Project reference", use.project_id),
                ("Organisation", f"{use.sponsor} ({sponsor_kind})"),
                ("Purpose", PURPOSE_WORDS.get(use.purpose, use.purpose)),
                ("Project dates", f"{_day(use.start_date)} to {_day(use.end_date)}"),
                ("Your record first used", _day(use.first_included_at)),
                ("Project data last updated", _day(use.extract_built_at)),
                ("Is your record used now?", _in_use(use)),
            ]
        )
        if not use.releases:
            pdf.paragraph("This project has not released any results yet.")
            continue
        pdf.caption("Results this project has released")
        pdf.grid(
            ("File", "Released on", "Checksum (SHA-256)"),
            [(r.name, _day(r.released_at), r.sha256) for r in use.releases],
            (4, 2, 5),
            mono_column=2,
            wrap=WrapMode.CHAR,
        )
        references = ", ".join(dict.fromkeys(r.request_id for r in use.releases))
        pdf.paragraph(
            "Each result is listed, with its checks, in our public register under the "
            f"release reference {references}. The checksum lets anyone confirm that a "
            "published file is the one released."
        )


def _withheld(pdf: _Letter, history: RecordHistory) -> None:
    if not history.withheld:
        return
    pdf.section("Projects that did not receive your record")
    pdf.paragraph(
        "These projects were approved to use collections that hold your record, but your "
        "record was left out."
    )
    pdf.caption("Projects your record was kept from")
    pdf.grid(
        ("Project", "Organisation", "Why it was left out"),
        [
            (
                f"{w.title} ({w.project_id})",
                w.sponsor,
                "; ".join(w.withheld_by)
                if w.withheld_by
                else "Your record was not part of the data when the project's data was "
                "last updated.",
            )
            for w in history.withheld
        ],
        (4, 3, 4),
    )


def _register(state: bool | None, opted_out: str) -> str:
    if state is None:
        return "We could not check this: our copy of the register has not been loaded."
    return opted_out if state else "You have not opted out."


def _choices(pdf: _Letter, history: RecordHistory) -> None:
    pdf.section("Your choices")
    pdf.fields(
        [
            (
                "National data opt-out",
                _register(
                    history.national_opt_out,
                    "You have opted out. Your record is not used for research or planning, "
                    "unless a project has a legal exemption, which we publish.",
                ),
            ),
            (
                "Type 1 opt-out (at your GP practice)",
                _register(
                    history.type1_opt_out,
                    "You have opted out. Your GP record is not used by any project.",
                ),
            ),
        ]
    )
    if not history.choices:
        pdf.paragraph("You have not made any other choices with us.")
        return
    pdf.caption("Choices you have made with us")
    pdf.grid(
        ("Your choice", "Applies to", "Made on"),
        [(c.words, c.target or "every project", _day(c.recorded_at)) for c in history.choices],
        (5, 3, 2),
    )


def _closing(pdf: _Letter) -> None:
    pdf.section("How to change your choices")
    pdf.paragraph("You can tell us that you do not want your record used:")
    pdf.bullets(
        [
            "for research;",
            "for planning health and care services;",
            "by projects with a commercial sponsor;",
            "by a named organisation;",
            "by a named project.",
        ]
    )
    pdf.paragraph(
        "You can also withdraw a choice you made before. Write to us, or sign in to the "
        "patient page, with your NHS number. For the national data opt-out, use the NHS's "
        'own service ("Your NHS data matters"); for a type 1 opt-out, ask your GP practice.'
    )
    pdf.paragraph(
        "When a change takes effect: at the next update of each project's data. Each "
        "project's data is rebuilt from the collections when it is updated, and every choice "
        "in force at that moment is applied. Until then a project keeps the data it already "
        "has. Results already released cannot be taken back, but they are about groups of "
        "people and never identify you."
    )
    pdf.section("How we worked this out")
    pdf.paragraph(
        "We do not store NHS numbers. When you asked, we turned your NHS number into the same "
        "code, using our secret key, and looked for that code in every collection and in "
        "every project's data, including earlier versions. Your NHS number is printed in "
        "this letter only; it is not written in our records of this request. We keep a "
        "record that this letter was produced, without your NHS number."
    )
    pdf.paragraph("Yours faithfully,")
    pdf.paragraph("The Secure Data Environment team")


__all__ = ["latin1", "render_pdf"]
