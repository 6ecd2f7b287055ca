"""The Presidio-based de-identifier as ingest uses it (``FreeTextDeidentifier``).

The engine is ``sde.deid`` (sde's recognizers in a Presidio ``RecognizerRegistry``);
this adapter maps ingest's known values, ``(Pii kind, raw value)`` pairs from the row
and its ``known_from`` datasets, to a ``Known``, and checks itself on a canary letter
before first use: a de-identifier that lets a canary identifier through refuses to run.
"""

from __future__ import annotations

from collections.abc import Iterable

from sde.deid import LABELS, Deidentifier, Known
from sde.domain.datasets import Pii

INGEST_ENTITIES = tuple(label for label in LABELS if label != "DATE_OF_BIRTH")


def known_from_pairs(known: Iterable[tuple[Pii, str]]) -> Known:
    """A ``Known`` from ingest's (kind, value) pairs; a town joins the address lines."""
    names: list[str] = []
    nhs: list[str] = []
    dobs: list[str] = []
    address: list[str] = []
    postcodes: list[str] = []
    phones: list[str] = []
    emails: list[str] = []
    numbers: list[str] = []
    bucket = {
        Pii.PERSON: names,
        Pii.NHS_NUMBER: nhs,
        Pii.DATE: dobs,
        Pii.ADDRESS: address,
        Pii.LOCATION: address,
        Pii.POSTCODE: postcodes,
        Pii.PHONE: phones,
        Pii.EMAIL: emails,
        Pii.IDENTIFIER: numbers,
    }
    for kind, raw in known:
        value = raw.strip()
        target = bucket[kind]
        if value and value not in target:
            target.append(value)
    return Known(
        names=tuple(names),
        nhs_number=nhs[0] if nhs else None,
        date_of_birth=dobs[0] if dobs else None,
        address="\n".join(address) if address else None,
        postcode=postcodes[0] if postcodes else None,
        phones=tuple(phones),
        emails=tuple(emails),
        hospital_numbers=tuple(numbers),
        other_nhs_numbers=tuple(nhs[1:]),
        other_dates_of_birth=tuple(dobs[1:]),
        other_postcodes=tuple(postcodes[1:]),
    )


class PresidioDeidentifier:
    """De-identifies free text for ingest. Build once and reuse."""

    def __init__(self, engine: Deidentifier | None = None) -> None:
        # Ingest's placeholders: a date of birth is <DATE> like any other date (the
        # linked zone's letters need not tell researchers which date was the birth date).
        self.engine = engine or Deidentifier(entities=INGEST_ENTITIES)
        self._self_test()

    def deidentify(self, text: str, known: Iterable[tuple[Pii, str]] = ()) -> str:
        """``text`` with every identifier replaced by its typed placeholder."""
        return self.engine.redact(text, known_from_pairs(known))

    def _self_test(self) -> None:
        canary = (
            "Re: Alys Canary-Test, DOB 02/01/1970, NHS No 943 476 5919. Tel 0113 496 0000, "
            "alys@example.org, 1 Test Road, LS1 4AP. Seen by Dr Okafor with her son Idris."
        )
        known = [(Pii.PERSON, "Alys"), (Pii.PERSON, "Canary-Test"), (Pii.DATE, "1970-01-02")]
        out = self.deidentify(canary, known)
        for secret in (
            "Alys",
            "Canary",
            "1970",
            "5919",
            "0113",
            "example.org",
            "Test Road",
            "4AP",
            "Okafor",
            "Idris",
        ):
            if secret in out:
                raise RuntimeError("the free-text de-identifier failed its self-test; refusing")
