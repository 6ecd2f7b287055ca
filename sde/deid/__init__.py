"""Free-text de-identification: ``Deidentifier`` finds identifiers in clinical notes
(``detect``) and replaces them with typed placeholders (``redact``); ``Known`` holds the
patient's own identifiers, always removed in any layout. See docs/deidentification.md.

``Deidentifier`` is imported on first use (it pulls in Presidio), so the pure modules
(``sde.deid.dates``, ``sde.deid.spans``) stay cheap to import."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sde.deid.known import Known
from sde.deid.spans import LABELS, Span

if TYPE_CHECKING:
    from sde.deid.engine import Deidentifier

__all__ = ["LABELS", "Deidentifier", "Known", "Span"]


def __getattr__(name: str) -> Any:
    if name == "Deidentifier":
        from sde.deid.engine import Deidentifier

        return Deidentifier
    raise AttributeError(name)
