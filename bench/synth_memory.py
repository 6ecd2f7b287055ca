"""Peak memory and throughput of ``sde synth`` at two population sizes.

Usage::

    .venv/bin/python bench/synth_memory.py [SMALL [LARGE]]      # default 20000 200000

Each size runs in a fresh subprocess (so peak RSS is that run's alone) writing into a
temporary directory that is removed afterwards. A run with 0 patients measures the fixed
cost of the interpreter and imports. Generation streams in batches, so the peak RSS of the
large run should be about that of the small one (ratio ~1) while throughput stays flat.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


def child(patients: int, target: Path) -> None:
    from sde.services.synth import synthesise

    started = time.perf_counter()
    summary = synthesise(target, patients, seed=42)
    seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in target.iterdir())
    print(
        json.dumps(
            {
                "patients": patients,
                "seconds": seconds,
                "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "bytes": size,
                "rows": sum(f.rows for f in summary.files),
            }
        )
    )


@dataclass(frozen=True)
class Run:
    patients: int
    seconds: float
    peak_rss_kib: int
    bytes: int
    wall_seconds: float

    @property
    def rate(self) -> float:
        return self.patients / self.seconds if self.patients else 0.0

    @property
    def rss_mib(self) -> float:
        return self.peak_rss_kib / 1024


def measure(patients: int) -> Run:
    with tempfile.TemporaryDirectory(prefix="sde-synth-bench-") as tmp:
        started = time.perf_counter()
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(patients), str(Path(tmp) / "sources")],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        wall = time.perf_counter() - started
    data = json.loads(out)
    return Run(
        patients=int(data["patients"]),
        seconds=float(data["seconds"]),
        peak_rss_kib=int(data["peak_rss_kib"]),
        bytes=int(data["bytes"]),
        wall_seconds=wall,
    )


def main(argv: list[str]) -> None:
    small_n = int(argv[0]) if argv else 20_000
    large_n = int(argv[1]) if len(argv) > 1 else 200_000
    base, small, large = (measure(n) for n in (0, small_n, large_n))
    print(f"{'patients':>10} {'seconds':>8} {'patients/s':>11} {'peak RSS MiB':>13} {'MB':>9}")
    for run in (base, small, large):
        print(
            f"{run.patients:>10,} {run.seconds:>8.2f} {run.rate:>11,.0f} "
            f"{run.rss_mib:>13.1f} {run.bytes / 1e6:>9.1f}"
        )
    print(f"memory ratio large/small:     {large.rss_mib / small.rss_mib:.2f} (1.00 = constant)")
    print(
        f"memory above start-up:        {small.rss_mib - base.rss_mib:.1f} MiB small, "
        f"{large.rss_mib - base.rss_mib:.1f} MiB large"
    )
    print(f"throughput ratio large/small: {large.rate / small.rate:.2f}")
    million = 1_000_000
    print(
        f"extrapolated to {million:,} patients: ~{million / large.rate / 60:.1f} min, "
        f"peak RSS ~{large.rss_mib:.0f} MiB, "
        f"~{large.bytes / large.patients * million / 1e9:.1f} GB on disk"
    )
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"kernel's peak RSS of any child (getrusage): {children:.1f} MiB")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), Path(sys.argv[3]))
    else:
        main(sys.argv[1:])
