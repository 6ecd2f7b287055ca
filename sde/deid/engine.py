"""The de-identifier: sde's recognizers in a Presidio ``RecognizerRegistry``, the
patient's own identifiers, name propagation and overlap resolution."""

from __future__ import annotations

import multiprocessing
import re
import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sde.deid import recognizers as rec
from sde.deid.known import Folded, Known, finder, fold
from sde.deid.names import is_blocked, lexicon, zipf
from sde.deid.spans import (
    CONTEXT,
    GUESS,
    LABELS,
    Candidate,
    Span,
    join_names,
    redact,
    resolve,
    words,
)
from sde.errors import ConfigError

_NAME_TOKEN = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*")
_PARTICLES = words("ap da das de del della der di do dos du van von den la le bin ibn al el ter")
_ADDRESS_LINE = re.compile(
    r"(?!.*(?:ist|ian|Consultant|Registrar|Nurse|Sister|Practitioner|Specialist|Midwife|Surgeon"
    r"|Officer|Manager|Worker|Coordinator|Lead|Assistant|Team|Hospital|Clinic|Service|Unit"
    r"|Department|Infirmary|Centre|Practice|Surgery|Ward)\b)"
    r"[ \t]*(?:(?i:flat|apartment|apt\.?|unit)[ \t]+[0-9]{1,4}[A-Za-z]?"
    r"|[0-9]{1,4}[A-Za-z]?[ \t]+)?"
    r"[A-Z\u00c0-\u00de][\w'\u2019.\-]*(?:[ \t]+(?:[A-Z\u00c0-\u00de][\w'\u2019.\-]*|upon|on|under"
    r"|le|in|by|the|de))*,?[ \t]*"
)
_MAX_ADDRESS_LINE = 48
# spaCy entity labels -> ours (a model's places are addresses or towns).
_MODEL_LABELS = {"PERSON": "PERSON", "GPE": "ADDRESS", "LOC": "ADDRESS", "FAC": "ADDRESS"}


class Deidentifier:
    """Finds identifiers in free text (``detect``) and replaces them with typed
    placeholders (``redact``). Build once and reuse: building loads the name lexicon
    (about a second); each note then costs well under a millisecond."""

    def __init__(self, *, entities: Sequence[str] = LABELS, nlp: str = "none") -> None:
        self.entities = tuple(dict.fromkeys(entities))
        self.nlp = nlp
        self.registry = build_registry()
        supported = set(self.registry.get_supported_entities([rec.LANGUAGE]))
        missing = [e for e in self.entities if e not in supported]
        if missing:
            raise ConfigError(
                f"no recognizer for entit{'y' if len(missing) == 1 else 'ies'} "
                f"{', '.join(missing)}; supported: {', '.join(LABELS)}"
            )
        if not self.entities:
            raise ConfigError("no entities asked for: nothing would be de-identified")
        wanted = list(self.entities)
        if "DATE" in wanted and "DATE_OF_BIRTH" not in wanted:
            wanted.append("DATE_OF_BIRTH")  # found, then reported as DATE
        self._wanted = frozenset(wanted)
        self._recognizers: list[rec.SdeRecognizer] = [
            r
            for r in self.registry.get_recognizers(rec.LANGUAGE, entities=wanted)
            if isinstance(r, rec.SdeRecognizer)
        ]
        self._names = "PERSON" in self._wanted
        self._addresses = "ADDRESS" in self._wanted
        self._nlp_engine = _nlp_engine(nlp)
        self._pool: Any = None
        self._pool_size = 0
        self._pool_finalizer: weakref.finalize[Any, Any] | None = None

    # --- the API ---------------------------------------------------------------------

    def detect(self, text: str, known: Known | None = None) -> list[Span]:
        """Identifiers in ``text``: sorted, non-overlapping spans."""
        candidates: list[Candidate] = []
        for recognizer in self._recognizers:
            candidates.extend(recognizer.find(text))
        folded: Folded | None = None
        if known is not None:
            folded = Folded(text)
            candidates.extend(finder(known).find(text, folded))
        if self._nlp_engine is not None:
            candidates.extend(self._model_findings(text))
        if self._names or self._addresses:
            protected = rec.protected_regions(text)
            if protected:
                candidates = [c for c in candidates if not _inside(c, protected)]
            if self._names:
                candidates.extend(_later_mentions(text, candidates, protected, folded))
            if self._addresses:
                candidates.extend(_address_lines(text, candidates))
        if "DATE_OF_BIRTH" in self._wanted:
            candidates = _dates_after_names(text, candidates)
        return join_names(text, resolve(self._reported(candidates)))

    def redact(self, text: str, known: Known | None = None) -> str:
        """``text`` with every identifier replaced by ``<LABEL>``."""
        return redact(text, self.detect(text, known))

    def detect_many(
        self, items: Iterable[tuple[str, Known | None]], processes: int = 1
    ) -> Iterator[list[Span]]:
        """``detect`` for each (text, known), in order. With ``processes`` > 1, a pool of
        'spawn' workers, each building its own de-identifier once."""
        if processes <= 1:
            for text, known in items:
                yield self.detect(text, known)
            return
        yield from self._worker_pool(processes).imap(_detect_in_worker, items, chunksize=32)

    def close(self) -> None:
        """Stop the worker processes of ``detect_many``, if any were started."""
        if self._pool_finalizer is not None:
            self._pool_finalizer()
        self._pool = None
        self._pool_finalizer = None

    def __enter__(self) -> Deidentifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _worker_pool(self, processes: int) -> Any:
        """The worker pool, started once and reused by every later call with the same
        number of processes: a 'spawn' worker takes seconds to import Presidio and build
        its lexicon, which would otherwise be paid again on every call."""
        if self._pool is not None and self._pool_size == processes:
            return self._pool
        self.close()
        context = multiprocessing.get_context("spawn")
        pool = context.Pool(processes, initializer=_init_worker, initargs=(self.entities, self.nlp))
        self._pool, self._pool_size = pool, processes
        self._pool_finalizer = weakref.finalize(self, _stop_pool, pool)
        return pool

    # --- internals -------------------------------------------------------------------

    def _reported(self, candidates: Iterable[Candidate]) -> Iterator[Candidate]:
        for c in candidates:
            if c.label == "DATE_OF_BIRTH" and "DATE_OF_BIRTH" not in self.entities:
                c = Candidate(c.start, c.end, "DATE", c.score, c.strength)
            if c.label in self.entities:
                yield c

    def _model_findings(self, text: str) -> Iterator[Candidate]:
        assert self._nlp_engine is not None
        artifacts = self._nlp_engine.process_text(text, rec.LANGUAGE)
        for entity in artifacts.entities:
            mapped = _MODEL_LABELS.get(entity.label_)
            if mapped is not None:
                yield Candidate(entity.start_char, entity.end_char, mapped, 0.6, GUESS)


def build_registry() -> Any:
    """A Presidio ``RecognizerRegistry`` holding sde's recognizers (and nothing else)."""
    from presidio_analyzer import RecognizerRegistry

    recognizers: list[rec.SdeRecognizer] = [
        rec.SdeNhsNumberRecognizer(),
        rec.SdeEmailRecognizer(),
        rec.SdeUrlRecognizer(),
        rec.SdeNinoRecognizer(),
        rec.SdeHospitalNumberRecognizer(),
        rec.SdePhoneRecognizer(),
        rec.SdeDateRecognizer(),
        rec.SdePostcodeRecognizer(),
        rec.SdeAddressRecognizer(),
        rec.SdePersonRecognizer(lexicon()),
    ]
    return RecognizerRegistry(recognizers=recognizers, supported_languages=[rec.LANGUAGE])


def _nlp_engine(nlp: str) -> Any:
    if nlp == "none":
        return None
    kind, _, model = nlp.partition(":")
    if kind != "spacy" or not model:
        raise ConfigError(f"unknown NLP engine {nlp!r}: use 'none' or 'spacy:<model name>'")
    try:
        import spacy
    except ImportError:
        raise ConfigError("spaCy is not installed; use --nlp none") from None
    if not spacy.util.is_package(model):
        raise ConfigError(
            f"spaCy model {model!r} is not installed (sde never downloads one); install it "
            "or use --nlp none"
        )
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    engine = SpacyNlpEngine(models=[{"lang_code": rec.LANGUAGE, "model_name": model}])
    engine.load()
    return engine


def _inside(candidate: Candidate, regions: Sequence[tuple[int, int]]) -> bool:
    if candidate.label not in ("PERSON", "ADDRESS"):
        return False
    if candidate.strength == GUESS:  # a lexicon guess touching one is dropped
        return any(candidate.start < b and a < candidate.end for a, b in regions)
    return any(a <= candidate.start and candidate.end <= b for a, b in regions)


def _later_mentions(
    text: str,
    candidates: Sequence[Candidate],
    protected: Sequence[tuple[int, int]],
    folded: Folded | None,
) -> list[Candidate]:
    """Once a name is found, its other mentions in the same note are too: capitalised
    anywhere, lower case where the word is not an ordinary English word."""
    tokens: dict[str, int] = {}  # name word -> strength of the finding it came from
    for c in candidates:
        if c.label != "PERSON":
            continue
        for match in _NAME_TOKEN.finditer(text, c.start, c.end):
            token = re.sub(r"['\u2019]s$", "", match.group())
            if len(token) >= 3 and token.lower() not in _PARTICLES and not is_blocked(token):
                tokens[token] = max(tokens.get(token, GUESS), min(c.strength, CONTEXT))
    if not tokens:
        return []
    folded = folded or Folded(text)
    found = []
    for token, strength in tokens.items():
        lower_ok = zipf(token) < 3.5
        for start, end in folded.find_all(fold(token)):
            if text[start].isupper() or lower_ok:
                found.append(Candidate(start, end, "PERSON", 0.75, strength))
    if protected:
        found = [c for c in found if not _inside(c, protected)]
    return found


def _dates_after_names(text: str, candidates: list[Candidate]) -> list[Candidate]:
    """A date right after a person's name (``Re: MOORE, Arthur (06/09/45)``, ``Rayyan Ali |
    1983-05-16``) is that person's date of birth."""
    ends = {c.end for c in candidates if c.label == "PERSON"}
    if not ends:
        return candidates
    out = []
    for c in candidates:
        if c.label == "DATE":
            at = c.start
            while at > 0 and c.start - at < 4 and text[at - 1] in " \t(|,":
                at -= 1
            if at in ends and at < c.start:
                c = Candidate(c.start, c.end, "DATE_OF_BIRTH", c.score, c.strength)
        out.append(c)
    return out


def _address_lines(text: str, candidates: Sequence[Candidate]) -> list[Candidate]:
    """Lines of an address block next to a line already found as an address or postcode
    (the flat, the block, the locality, the town), each a span of its own."""
    if "\n" not in text:
        return []
    anchors = [c for c in candidates if c.label in ("ADDRESS", "UK_POSTCODE")]
    if not anchors:
        return []
    people = [c for c in candidates if c.label == "PERSON" and c.strength >= CONTEXT]
    lines: list[tuple[int, int]] = []
    at = 0
    for line in text.split("\n"):
        lines.append((at, at + len(line.rstrip("\r"))))
        at += len(line) + 1

    def covered(lo: int, hi: int, spans: Iterable[Candidate]) -> bool:
        return any(c.start < hi and lo < c.end for c in spans)

    address = [covered(lo, hi, anchors) for lo, hi in lines]
    found: list[Candidate] = []
    for _ in range(3):
        grew = False
        for i, (lo, hi) in enumerate(lines):
            if address[i] or hi - lo > _MAX_ADDRESS_LINE or hi == lo:
                continue
            near = (i > 0 and address[i - 1]) or (i + 1 < len(lines) and address[i + 1])
            if not near or covered(lo, hi, people):
                continue
            if _ADDRESS_LINE.fullmatch(text, lo, hi) is None:
                continue
            start = lo + len(text[lo:hi]) - len(text[lo:hi].lstrip())
            end = lo + len(text[lo:hi].rstrip(" \t,"))
            found.append(Candidate(start, end, "ADDRESS", 0.7, GUESS))
            address[i] = grew = True
        if not grew:
            break
    return found


# --- worker processes --------------------------------------------------------------------

_WORKER: Deidentifier | None = None


def _stop_pool(pool: Any) -> None:
    pool.terminate()
    pool.join()


def _init_worker(entities: Sequence[str], nlp: str) -> None:
    global _WORKER
    _WORKER = Deidentifier(entities=entities, nlp=nlp)


def _detect_in_worker(item: tuple[str, Known | None]) -> list[Span]:
    assert _WORKER is not None
    text, known = item
    return _WORKER.detect(text, known)
