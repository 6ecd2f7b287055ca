"""Ports: the interfaces services depend on. Adapters implement them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class AuditSink(Protocol):
    """Appends one event to the hash-chained audit log.

    ``details`` holds counts, names, ids, versions and checksums: never a patient-level
    value. ``actor`` is a person id or ``"system"``.
    """

    def record(
        self, actor: str, action: str, subject: str, details: Mapping[str, object]
    ) -> None: ...
