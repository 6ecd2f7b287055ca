"""Run a real server for a test: start it with its output in a log, wait until it answers,
stop it afterwards (terminate, then kill). Used for OPA, versitygw and the OpenID provider."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest


def answers(url: str, *, any_status: bool = False) -> bool:
    """Whether ``url`` answers 200 (or, with ``any_status``, any HTTP status at all)."""
    try:
        with urllib.request.urlopen(url, timeout=0.5) as answer:  # loopback only
            return bool(answer.status == 200 or any_status)
    except urllib.error.HTTPError:
        return any_status
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def running(
    argv: Sequence[str],
    *,
    name: str,
    ready_url: str,
    log: Path,
    env: Mapping[str, str] | None = None,
    any_status: bool = False,
    timeout_s: float = 20.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv``; yield once ``ready_url`` answers (see :func:`answers`). Fails the
    test, pointing at ``log``, if the process exits or does not answer in time."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(argv), stdout=out, stderr=subprocess.STDOUT, env=dict(env) if env else None
        )
    try:
        deadline = time.monotonic() + timeout_s
        while not answers(ready_url, any_status=any_status):
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                pytest.fail(f"{name} exited ({process.returncode}): {tail}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"{name} did not answer in {timeout_s:g} s; see {log}", pytrace=False)
            time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
