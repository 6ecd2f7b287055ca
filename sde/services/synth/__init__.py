"""``sde synth``: a seeded, realistic, UK-shaped synthetic population written as the seven
provider files of the ingest contract, with a share of deliberately bad rows and a manifest
that counts them.

Typical use::

    from sde.services.synth import synthesise
    summary = synthesise(home.sources, patients=10_000, seed=42)
    summary.file("patients.csv").bad_rows["duplicate_key"]

See ``docs/synthetic-data.md``.
"""

from __future__ import annotations

from sde.services.synth.files import MANIFEST, manifest_json, read_manifest, synthesise
from sde.services.synth.generator import (
    AS_OF,
    BAD_DATE,
    BAD_KINDS,
    DUPLICATE_KEY,
    DUPLICATE_ROW,
    FILES,
    INVALID_NHS_NUMBER,
    LAYOUT_BY_NAME,
    LAYOUTS,
    MISSING_REQUIRED,
    FileSummary,
    Layout,
    SynthSummary,
    generate,
)

__all__ = [
    "AS_OF",
    "BAD_DATE",
    "BAD_KINDS",
    "DUPLICATE_KEY",
    "DUPLICATE_ROW",
    "FILES",
    "INVALID_NHS_NUMBER",
    "LAYOUTS",
    "LAYOUT_BY_NAME",
    "MANIFEST",
    "MISSING_REQUIRED",
    "FileSummary",
    "Layout",
    "SynthSummary",
    "generate",
    "manifest_json",
    "read_manifest",
    "synthesise",
]
