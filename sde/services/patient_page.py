"""The patient's own page: sign-in, the record history, and changing choices.

Sign-in (the embedded default) matches the NHS number, date of birth and postcode the
patient types against the sign-in check kept at ingest (:mod:`sde.domain.patient_sign_in`):
``pid`` is recomputed from the number, and the keyed check of ``pid`` with the date of
birth and postcode must equal one kept from the patients' dataset's latest load of that
record. Nothing the patient types is stored or logged.

Every attempt is recorded, per patient (keyed subject) and per client address (keyed),
and a lock-out follows too many failures (:data:`PATIENT_RULE`, :data:`CLIENT_RULE`). The
same words answer a wrong NHS number, a number we hold no record for, and wrong details,
so the page does not tell anyone whether a number is in the environment.

Audit events (never the NHS number, ``pid``, date of birth or postcode):
``patient.signin`` and ``patient.signin.refused`` (reason ``no_match``, ``locked``,
``client_locked``, ``invalid``) under the patient's keyed subject (or
``patient:not-identified`` for a number that is not valid), ``patient.history.viewed``
with channel ``page``, ``patient.choice.changed`` (scope, target, choice, the choices
table's version).
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import pyarrow.compute as pc

from sde.adapters import delta
from sde.domain import nhs_number as nhs
from sde.domain.audit import AuditEntry
from sde.domain.datasets import PID
from sde.domain.generalise import normalise_postcode
from sde.domain.optouts import Scope
from sde.domain.patient_sign_in import (
    CLIENT_RULE,
    FAILURE,
    LOCKED,
    PATIENT_RULE,
    SUCCESS,
    LockoutRule,
    birth_date,
    client_key,
    locked_until,
    sign_in_check,
    sign_in_key,
)
from sde.domain.projects import Project, ProjectStatus
from sde.domain.pseudonyms import LinkagePseudonymiser
from sde.errors import InputError, SdeError
from sde.services.home import Home
from sde.services.ingest import sign_in_path
from sde.services.optouts import record_choice_for_pid
from sde.services.patient import (
    REFUSED_SUBJECT,
    PatientStore,
    RecordHistory,
    audit_subject,
    history_for_pid,
)
from sde.services.ports import AuditSink

SIGNED_IN = "patient.signin"
SIGN_IN_REFUSED = "patient.signin.refused"
CHOICE_CHANGED = "patient.choice.changed"
NO_MATCH_WORDS = (
    "We could not match these details to a record we hold. Check your NHS number, date of "
    "birth and postcode (the one your GP practice has for you) and try again."
)
LOCKED_WORDS = (
    "For your safety, signing in with this NHS number is paused until {until}, after too "
    "many attempts that did not match. You can also ask us by post."
)
CLIENT_LOCKED_WORDS = (
    "Too many sign-in attempts have come from this device or network. Please try again "
    "after {until}, or ask us by post."
)
# Projects a patient can name in a choice: those that exist in public (not drafts).
NAMEABLE = frozenset(s for s in ProjectStatus if s.value != "draft")


class SignInStore(PatientStore, Protocol):
    """What the page needs from the control plane (``sde.adapters.sql.ControlPlane``)."""

    @property
    def audit(self) -> AuditSink: ...

    def record_sign_in_attempt(
        self, keys: Sequence[str], outcome: str, at: dt.datetime, *, audit: AuditEntry
    ) -> None: ...

    def sign_in_failures(self, key: str, since: dt.datetime) -> list[dt.datetime]: ...


class SignInRefused(SdeError):
    """Sign-in refused; ``str()`` is the sentence to show. ``status`` is the HTTP status
    the page answers with (401, or 429 while locked)."""

    def __init__(
        self, message: str, *, status: int = 401, until: dt.datetime | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.until = until


@dataclass(frozen=True)
class SignedInPatient:
    """Who is signed in to the page: held by the page's session, never sent out."""

    pid: str
    subject: str


def _clock_words(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%H:%M UTC on %d %B %Y")


def _locked(
    store: SignInStore, key: str, rule: LockoutRule, now: dt.datetime
) -> dt.datetime | None:
    return locked_until(store.sign_in_failures(key, now - rule.lookback), now, rule)


def _held_checks(home: Home, pid: str) -> list[str]:
    """The sign-in checks of ``pid`` from the latest load that had the record."""
    path = sign_in_path(home)
    if not delta.exists(path):
        return []
    rows = (
        delta.dataset(path)
        .to_table(columns=["check", "loaded_at"], filter=pc.field(PID) == pid)
        .to_pylist()
    )
    if not rows:
        return []
    latest = max(r["loaded_at"] for r in rows)
    return [str(r["check"]) for r in rows if r["loaded_at"] == latest]


def sign_in(
    home: Home,
    store: SignInStore,
    *,
    nhs_number: str,
    day: str,
    month: str,
    year: str,
    postcode: str,
    client: str,
    now: dt.datetime,
    patient_rule: LockoutRule = PATIENT_RULE,
    client_rule: LockoutRule = CLIENT_RULE,
) -> SignedInPatient:
    """Sign a patient in, or raise :class:`SignInRefused` (or :class:`InputError` naming
    the field whose form is wrong, never its value). Every outcome is recorded."""
    master = home.master_key()
    client_subject = client_key(master, client)

    def attempt(
        keys: Sequence[str], outcome: str, action: str, subject: str, **details: object
    ) -> None:
        store.record_sign_in_attempt(
            keys, outcome, now, audit=AuditEntry(subject, action, subject, dict(details))
        )

    until = _locked(store, client_subject, client_rule, now)
    if until is not None:
        attempt([client_subject], LOCKED, SIGN_IN_REFUSED, REFUSED_SUBJECT, reason="client_locked")
        raise SignInRefused(CLIENT_LOCKED_WORDS.format(until=_clock_words(until)), status=429)

    digits = nhs.normalise(nhs_number)
    born = birth_date(day, month, year)
    problems: list[str] = []
    if digits is None or not nhs.is_valid_digits(digits):
        problems.append("Enter your NHS number: 10 digits, as on a letter from the NHS.")
    if born is None:
        problems.append("Enter your date of birth as day, month and year, for example 27 3 1980.")
    if normalise_postcode(postcode) is None:
        problems.append("Enter your full postcode, for example LS1 4AP.")
    if problems or digits is None or born is None:
        attempt([client_subject], FAILURE, SIGN_IN_REFUSED, REFUSED_SUBJECT, reason="invalid")
        raise InputError(" ".join(problems))

    pid = LinkagePseudonymiser(master).pid(digits)
    subject = audit_subject(master, pid)
    until = _locked(store, subject, patient_rule, now)
    if until is not None:
        attempt([subject, client_subject], LOCKED, SIGN_IN_REFUSED, subject, reason="locked")
        raise SignInRefused(LOCKED_WORDS.format(until=_clock_words(until)), status=429)

    expected = sign_in_check(sign_in_key(master), pid, born, postcode)
    held = _held_checks(home, pid)
    if expected is not None and any(hmac.compare_digest(expected, h) for h in held):
        attempt([subject], SUCCESS, SIGNED_IN, subject, channel="page")
        return SignedInPatient(pid=pid, subject=subject)

    failures = store.sign_in_failures(subject, now - patient_rule.lookback)
    locks = locked_until([*failures, now], now, patient_rule)
    details: dict[str, object] = {"reason": "no_match"}
    if locks is not None:
        details["locked_until"] = locks.isoformat(timespec="seconds")
    attempt([subject, client_subject], FAILURE, SIGN_IN_REFUSED, subject, **details)
    if locks is not None:
        raise SignInRefused(
            NO_MATCH_WORDS + " " + LOCKED_WORDS.format(until=_clock_words(locks)),
            status=429,
            until=locks,
        )
    raise SignInRefused(NO_MATCH_WORDS)


def sign_in_verified(
    home: Home, store: SignInStore, *, nhs_number: str, via: str, now: dt.datetime
) -> SignedInPatient:
    """Sign in a patient whose NHS number an identity provider vouched for (``via``, e.g.
    ``oidc``: its ID token was verified). No lock-out: the provider has its own."""
    digits = nhs.normalise(nhs_number)
    if digits is None or not nhs.is_valid_digits(digits):
        raise InputError("the identity provider gave no valid NHS number")
    master = home.master_key()
    pid = LinkagePseudonymiser(master).pid(digits)
    subject = audit_subject(master, pid)
    store.record_sign_in_attempt(
        [subject],
        SUCCESS,
        now,
        audit=AuditEntry(subject, SIGNED_IN, subject, {"channel": "page", "via": via}),
    )
    return SignedInPatient(pid=pid, subject=subject)


def record_history(
    home: Home, store: SignInStore, patient: SignedInPatient, now: dt.datetime | None = None
) -> RecordHistory:
    """The signed-in patient's record history (audited, channel ``page``)."""
    return history_for_pid(
        home,
        store,
        patient.pid,
        actor=patient.subject,
        audit=store.audit,
        channel="page",
        now=now,
    )


@dataclass(frozen=True)
class ChoiceTargets:
    """What a patient can name in a choice: organisations that sponsor projects here, and
    the projects (id, title) that are public."""

    organisations: tuple[str, ...]
    projects: tuple[tuple[str, str], ...]


def choice_targets(projects: Sequence[Project]) -> ChoiceTargets:
    public = [p for p in projects if p.status in NAMEABLE]
    return ChoiceTargets(
        organisations=tuple(sorted({p.sponsor for p in public})),
        projects=tuple(sorted((p.id, p.title) for p in public)),
    )


def change_choice(
    home: Home,
    store: SignInStore,
    patient: SignedInPatient,
    scope: str,
    target: str | None,
    *,
    opt_in: bool,
    now: dt.datetime | None = None,
) -> int:
    """Record the patient's own choice (opt out, or withdraw an opt-out); it takes effect
    at the next build of each extract. Returns the choices table's version; audited."""
    try:
        parsed = Scope(scope)
    except ValueError:
        raise InputError("choose what the choice is about") from None
    targets = choice_targets(store.list_projects())
    if parsed is Scope.PROJECT and target not in {p for p, _ in targets.projects}:
        raise InputError("choose one of the projects listed")
    if parsed is Scope.ORGANISATION and not (target or "").strip():
        raise InputError("name the organisation")
    version, event = record_choice_for_pid(
        home,
        patient.pid,
        parsed.value,
        target if parsed in (Scope.PROJECT, Scope.ORGANISATION) else None,
        opt_in=opt_in,
        source="patient page",
        now=now,
    )
    store.audit.record(
        patient.subject,
        CHOICE_CHANGED,
        patient.subject,
        {
            "scope": event.scope.value,
            "target": event.target,
            "choice": event.choice.value,
            "version": version,
            "channel": "page",
        },
    )
    return version
