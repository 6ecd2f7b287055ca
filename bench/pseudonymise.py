"""Benchmark: linkage pseudonyms per second.

Compares sde's LinkagePseudonymiser (HMAC-SHA256 with precomputed inner/outer states)
with the baseline of a fresh ``hmac.new(...)`` per value, measured in the same run, and
the effect of pseudonymising distinct values once on an event table where each patient
appears ~10 times.

    .venv/bin/python bench/pseudonymise.py [N]
"""

from __future__ import annotations

import hashlib
import hmac
import random
import sys
import time

from sde.domain import nhs_number
from sde.domain.pseudonyms import LINKAGE_INFO, LinkagePseudonymiser, hkdf_sha256


def numbers(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        made = nhs_number.complete(f"{rng.randrange(400_000_000, 800_000_000):09d}")
        if made is not None:
            out.append(made)
    return out


def rate(label: str, func, values: list[str]) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    func(values)
    elapsed = time.perf_counter() - start
    per_s = len(values) / elapsed
    print(f"{label:<48} {per_s:>12,.0f} values/s")
    return per_s


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    master = bytes(range(32))
    key = hkdf_sha256(master, LINKAGE_INFO)
    values = numbers(n)
    link = LinkagePseudonymiser(master)

    def baseline(vs: list[str]) -> None:
        for v in vs:
            hmac.new(key, v.encode(), hashlib.sha256).digest()

    def sde_each(vs: list[str]) -> None:
        for v in vs:
            link.pid(v)

    base = rate("baseline: hmac.new per value (no validation)", baseline, values)
    each = rate("sde: pid() per value (with Modulus 11 check)", sde_each, values)
    events = [v for v in values[: n // 10] for _ in range(10)]
    distinct = rate("sde: pids() on events, 10 rows per patient", link.pids, events)
    print(f"ratio pid()/baseline:        {each / base:.2f}")
    print(f"ratio pids() events/baseline: {distinct / base:.2f}")


if __name__ == "__main__":
    main()
