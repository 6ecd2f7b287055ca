"""Benchmark: checking a 10,000-cell table with dominance rules, against ACRO.

Builds ~1,000,000 synthetic rows (two 100-level keys with skewed frequencies so that some
cells fall below the threshold, a lognormal value with a few dominant contributions),
then times, in the same run:

- ours: ``sde.workspace.stats.crosstab(df, "a", "b", values="v", aggfunc="mean")`` --
  the table, the per-cell evidence and every rule (threshold, zeros, NK, p%, negatives);
  and the rules alone on evidence already computed;
- ACRO 1.0.2 (``acro.crosstab`` on the same rows, ``suppress=False``), run in its own
  virtual env (``.build/acro-venv``, made on first run: ACRO needs pandas<=2.3.3) in a
  subprocess, the rows exchanged as Parquet.

Prints both times, the ratio, and the agreement of per-cell verdicts on the checks
ACRO runs (its MinimumThresholdCheck against our threshold+zero, NKCheck against
nk_dominance, PPercentCheck against p_percent). Targets: under 100 ms, 10x ACRO.

    .venv/bin/python bench/sdc_speed.py [ROWS]       # default 1000000
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sde.domain.sdc import RiskAppetite, aggregate_cells, evidence_from_codes
from sde.workspace import stats

ROOT = Path(__file__).resolve().parent.parent
ACRO_VENV = ROOT / ".build" / "acro-venv"
ACRO_VERSION = "1.0.2"

ACRO_SCRIPT = r"""
import contextlib, io, json, logging, sys, time
import pandas as pd
logging.disable(logging.CRITICAL)
from acro import ACRO
df = pd.read_parquet(sys.argv[1])
times = []
for _ in range(int(sys.argv[3])):
    with contextlib.redirect_stdout(io.StringIO()):
        acro = ACRO(suppress=False)
        start = time.perf_counter()
        table = acro.crosstab(df.a, df.b, values=df.v, aggfunc="mean")
        times.append(time.perf_counter() - start)
record = list(acro.results.results.values())[-1]
json.dump(
    {
        "seconds": min(times),
        "index": [int(x) for x in table.index],
        "columns": [int(x) for x in table.columns],
        "status": record.status,
        "cells": {k: [list(map(int, rc)) for rc in v] for k, v in record.sdc["cells"].items()},
    },
    open(sys.argv[2], "w"),
)
"""


def synthetic(rows: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, 101) ** 0.9
    p = weights / weights.sum()
    a = rng.choice(100, size=rows, p=p)
    b = rng.choice(100, size=rows, p=p[::-1])
    v = rng.lognormal(3.0, 0.6, size=rows)
    # a few people with very large values: dominance in their cells
    big = rng.choice(rows, size=300, replace=False)
    v[big] *= rng.uniform(50, 5000, size=300)
    df = pd.DataFrame({"a": a.astype(np.int64), "b": b.astype(np.int64), "v": v})
    # a few empty cells (every label still present): zeros for both checkers
    empty = (df.a % 37 == 1) & (df.b % 41 == 2)
    return df[~empty].reset_index(drop=True)


def ours(df: pd.DataFrame, repeats: int = 5) -> tuple[float, float, stats.SdcOutput]:
    best = best_rules = float("inf")
    out = stats.crosstab(df, "a", "b", values="v", aggfunc="mean")
    for _ in range(repeats):
        start = time.perf_counter()
        out = stats.crosstab(df, "a", "b", values="v", aggfunc="mean")
        best = min(best, time.perf_counter() - start)
    codes = (df["a"].to_numpy() * 100 + df["b"].to_numpy()).astype(np.int64)
    ev = evidence_from_codes(codes, (100, 100), df["v"].to_numpy(), top_n=2)
    for _ in range(repeats):
        start = time.perf_counter()
        aggregate_cells("mean", ev, RiskAppetite())
        best_rules = min(best_rules, time.perf_counter() - start)
    return best, best_rules, out


def ensure_acro() -> Path | str:
    """The ACRO venv's python, made on first run; or why it cannot be had."""
    python = ACRO_VENV / "bin" / "python"
    probe = [str(python), "-c", "import acro, pyarrow"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    for interpreter in ("python3.11", "python3"):
        made = subprocess.run(
            [interpreter, "-m", "venv", str(ACRO_VENV)], capture_output=True, text=True
        )
        if made.returncode == 0:
            break
    else:
        return f"cannot make a virtual env: {made.stderr.strip()[-300:]}"
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"acro=={ACRO_VERSION}", "pyarrow"],
        capture_output=True,
        text=True,
    )
    if pip.returncode != 0:
        return f"pip install acro failed: {pip.stderr.strip()[-300:]}"
    return python


def run_acro(python: Path, parquet: Path, result: Path, repeats: int) -> dict[str, object] | str:
    script = parquet.parent / "acro_bench.py"
    script.write_text(ACRO_SCRIPT)
    done = subprocess.run(
        [str(python), str(script), str(parquet), str(result), str(repeats)],
        capture_output=True,
        text=True,
        cwd=parquet.parent,
    )
    if done.returncode != 0:
        return f"ACRO failed: {done.stderr.strip()[-500:]}"
    loaded: dict[str, object] = json.loads(result.read_text())
    return loaded


def agreement(out: stats.SdcOutput, acro: dict[str, object]) -> None:
    cells = out.cells
    index = [int(x) for x in cells.index]
    columns = [int(x) for x in cells.columns]
    if index != acro["index"] or columns != acro["columns"]:
        print("the two tables have different labels; cannot compare cells")
        return
    ours_by_rule: dict[str, set[tuple[int, int]]] = {}
    for (r, c), rules in np.ndenumerate(cells.to_numpy(dtype=object)):
        for rule in rules:
            ours_by_rule.setdefault(rule, set()).add((int(r), int(c)))
    pairs = {
        "MinimumThresholdCheck": ("threshold", "zero"),
        "NKCheck": ("nk_dominance",),
        "PPercentCheck": ("p_percent",),
    }
    acro_cells = acro["cells"]
    assert isinstance(acro_cells, dict)
    total = len(index) * len(columns)
    print(f"{'ACRO check':<24}{'ours':<22}{'ACRO':>7}{'ours':>7}{'both':>7}{'agree':>9}")
    for check, names in pairs.items():
        theirs = {(int(r), int(c)) for r, c in acro_cells.get(check, [])}
        mine: set[tuple[int, int]] = set().union(*(ours_by_rule.get(n, set()) for n in names))
        agree = total - len(theirs ^ mine)
        print(
            f"{check:<24}{'+'.join(names):<22}{len(theirs):>7}{len(mine):>7}"
            f"{len(theirs & mine):>7}{agree / total:>9.2%}"
        )


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    df = synthetic(rows)
    print(f"{len(df):,} rows, table 100 x 100 = 10,000 cells, mean of v with dominance rules")
    ours_s, rules_s, out = ours(df)
    print(f"ours: crosstab + evidence + rules {ours_s * 1000:8.1f} ms   (target < 100 ms)")
    print(f"ours: rules alone on the evidence  {rules_s * 1000:8.1f} ms")
    print(f"ours: status {out.status}, rules fired {out.rules_fired()}")
    python = ensure_acro()
    if isinstance(python, str):
        print(f"ACRO not run: {python}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        parquet = Path(tmp) / "rows.parquet"
        df.to_parquet(parquet)
        acro = run_acro(python, parquet, Path(tmp) / "acro.json", repeats=2)
    if isinstance(acro, str):
        print(f"ACRO not run: {acro}")
        return
    seconds = float(str(acro["seconds"]))
    print(f"ACRO {ACRO_VERSION}: crosstab with checks {seconds * 1000:8.1f} ms")
    print(f"ratio ACRO / ours: {seconds / ours_s:.1f}x   (target >= 10x)")
    print(f"ACRO status {acro['status']}; ours {out.status}")
    agreement(out, acro)


if __name__ == "__main__":
    main()
