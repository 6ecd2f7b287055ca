"""Writing a synthetic population into a ``sources`` directory, with its manifest."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TextIO

from sde.errors import InputError, StateError
from sde.services.synth.generator import AS_OF, FILES, SynthSummary, generate

MANIFEST = "synth-manifest.json"
_PARTIAL = ".partial"


def synthesise(
    sources_dir: Path,
    patients: int,
    seed: int = 42,
    events_per_patient: float = 10.0,
    bad_share: float = 0.008,
    batch_size: int = 10_000,
    progress: bool = False,
    *,
    as_of: dt.date = AS_OF,
    overwrite: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> SynthSummary:
    """Write the seven provider files and ``synth-manifest.json`` into ``sources_dir``
    (created if missing). Same arguments, same bytes.

    Files are written beside their targets and renamed into place at the end, so a failure
    leaves the directory as it was. Existing provider files are replaced only if they were
    written by synth (a manifest is present) or ``overwrite`` is set: never clobber what a
    provider delivered.
    """
    if patients < 0:
        raise InputError("the number of patients must not be negative")
    if batch_size < 1:
        raise InputError("the batch size must be at least 1")
    if not 0.0 <= bad_share < 0.5:
        raise InputError("the bad-row share must be at least 0 and below 0.5")
    if events_per_patient < 0:
        raise InputError("the events per patient must not be negative")
    sources_dir.mkdir(parents=True, exist_ok=True)
    existing = [name for name in FILES if (sources_dir / name).exists()]
    if existing and not overwrite and not (sources_dir / MANIFEST).exists():
        raise StateError(
            f"{sources_dir} already holds provider files not written by sde synth "
            f"({', '.join(existing)}); refusing to overwrite them"
        )

    partials = {name: sources_dir / f"{name}{_PARTIAL}" for name in FILES}
    bar = _progress_bar(patients) if progress else None
    try:
        with _open_all(partials) as streams:
            callback = on_batch
            if bar is not None:
                callback = _chain(bar.update, on_batch)
            summary = generate(
                streams,
                patients,
                seed=seed,
                events_per_patient=events_per_patient,
                bad_share=bad_share,
                batch_size=batch_size,
                as_of=as_of,
                on_batch=callback,
            )
    except BaseException:
        for path in partials.values():
            path.unlink(missing_ok=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    for name, path in partials.items():
        os.replace(path, sources_dir / name)
    manifest_tmp = sources_dir / f"{MANIFEST}{_PARTIAL}"
    manifest_tmp.write_text(manifest_json(summary), encoding="utf-8")
    os.replace(manifest_tmp, sources_dir / MANIFEST)
    return summary


def manifest_json(summary: SynthSummary) -> str:
    """The manifest text: stable key order, so it is byte-identical for the same seed."""
    return json.dumps(summary.to_dict(), indent=2, sort_keys=True) + "\n"


def read_manifest(sources_dir: Path) -> SynthSummary:
    """The summary written by :func:`synthesise` into ``sources_dir``."""
    path = sources_dir / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StateError(f"no {MANIFEST} in {sources_dir}; run `sde synth` first") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path}: {type(exc).__name__}") from None
    try:
        return SynthSummary.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise InputError(f"{path} is not an sde synth manifest") from None


@contextlib.contextmanager
def _open_all(paths: dict[str, Path]) -> Iterator[dict[str, TextIO]]:
    with contextlib.ExitStack() as stack:
        streams: dict[str, TextIO] = {
            name: stack.enter_context(
                path.open("w", encoding="utf-8", newline="", buffering=1 << 20)
            )
            for name, path in paths.items()
        }
        yield streams


def _chain(
    first: Callable[[int], object], second: Callable[[int], None] | None
) -> Callable[[int], None]:
    def both(n: int) -> None:
        first(n)
        if second is not None:
            second(n)

    return both


class _Progress(Protocol):
    def update(self, n: float | None = 1) -> bool | None: ...

    def close(self) -> None: ...


def _progress_bar(total: int) -> _Progress:
    from tqdm import tqdm

    bar: _Progress = tqdm(
        total=total, unit=" patients", unit_scale=True, file=sys.stderr, leave=False
    )
    return bar
