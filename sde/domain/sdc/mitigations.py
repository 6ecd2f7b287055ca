"""Mitigations: suppression (with secondary suppression) and rounding.

Secondary suppression. Publishing a table's row and column totals (or having them from
another output) gives one linear equation per row and per column over its cells. A
withheld cell is *recoverable* when those equations pin its value down exactly, which
happens exactly when its unit vector lies in the row space of the equations restricted
to the withheld cells. :func:`recoverable` tests that with an SVD;
:func:`secondary_suppression` completes each failing cell to the cheapest rectangle of
withheld cells (the classic method for two-way tables: a union of rectangles leaves no
cell recoverable), then checks with :func:`recoverable` and adds cells greedily until no
withheld cell is recoverable (1-row and 1-column tables). The
familiar rule "every row and column with a withheld cell has at least two" follows, and
so does the subtler case it misses (a withheld cell bridging two groups of withheld cells).
It protects against exact recovery, not against a narrow feasible interval: that is
still for a checker to judge.

Rounding. ``round_to_base`` rounds to the nearest multiple of ``base`` (halves up).
``midpoint6`` is OpenSAFELY's "midpoint 6" rounding: 0 stays 0, and any other count
becomes the midpoint of its band of six: 1-6 -> 3, 7-12 -> 9, 13-18 -> 15, i.e.
``ceil(x / 6) * 6 - 3``. Unbiased, zero stays zero, and the true value is within
``x-2 .. x+3``.
"""

from __future__ import annotations

import numpy as np

from sde.domain.sdc.rules import BoolArray, FloatArray

_TOL = 1e-9
_LAST = 1e15  # the cost of withholding an empty or zero cell: chosen only when nothing else


def _equations(shape: tuple[int, int]) -> FloatArray:
    """The margin equations over a table's cells (flattened row-major): one per row
    (when there are two or more columns), one per column (when two or more rows)."""
    rows, cols = shape
    eqs: list[FloatArray] = []
    if cols > 1:
        for r in range(rows):
            e = np.zeros(rows * cols)
            e[r * cols : (r + 1) * cols] = 1.0
            eqs.append(e)
    if rows > 1 or cols == 1:
        for c in range(cols):
            e = np.zeros(rows * cols)
            e[c::cols] = 1.0
            eqs.append(e)
    return np.array(eqs)


def recoverable(suppressed: BoolArray) -> BoolArray:
    """The withheld cells whose values the row and column totals determine exactly."""
    shape = (int(suppressed.shape[0]), int(suppressed.shape[1]))
    flat = np.flatnonzero(suppressed.ravel())
    out = np.zeros(shape[0] * shape[1], dtype=bool)
    if flat.size == 0:
        return out.reshape(shape)
    a = _equations(shape)[:, flat]
    a = a[np.any(a != 0, axis=1)]
    if a.shape[0] == 0:
        return out.reshape(shape)
    _, s, vt = np.linalg.svd(a, full_matrices=False)
    basis = vt[s > _TOL * max(1.0, float(s[0]))]
    # projection of each unit vector onto the row space; 1 means determined
    proj = (basis**2).sum(axis=0)
    out[flat[proj > 1 - 1e-6]] = True
    return out.reshape(shape)


def secondary_suppression(primary: BoolArray, values: FloatArray) -> tuple[BoolArray, BoolArray]:
    """``(secondary, margins_needed)``: the extra cells to withhold so that no withheld
    cell is recoverable from the row and column totals, each primary cell joined
    to the cheapest rectangle of withheld cells (smallest non-zero ``values``), then,
    where that is not possible, greedily.
    ``margins_needed`` marks cells for which no further cell could help: publish no
    totals for them (only a 1x1 table)."""
    withheld = primary.copy()
    rows, cols = withheld.shape
    cost = np.where(np.isfinite(values), np.abs(values), _LAST)
    cost = np.where(
        cost == 0, _LAST, np.minimum(cost, _LAST)
    )  # a withheld zero protects little: last resort
    margins = np.zeros_like(withheld)
    if rows > 1 and cols > 1:
        # Each primary cell joins the cheapest rectangle (r, c), (r, c2), (r2, c), (r2, c2):
        # a union of rectangles has no recoverable cell.
        for r, c in np.argwhere(primary):
            open_cost = np.where(withheld, 0.0, cost)
            total = open_cost[r, :][None, :] + open_cost[:, c][:, None] + open_cost
            total[r, :] = np.inf
            total[:, c] = np.inf
            r2, c2 = np.unravel_index(int(np.argmin(total)), total.shape)
            withheld[r, c2] = withheld[r2, c] = withheld[r2, c2] = True
    # Then (1-row or 1-column tables, or anything left) greedily until none is recoverable.
    for _ in range(rows * cols + 1):
        bad = recoverable(withheld) & ~margins
        if not bad.any():
            break
        row_has: BoolArray = np.any(withheld, axis=1)
        col_has: BoolArray = np.any(withheld, axis=0)
        # candidates: the open cells in the rows and columns of recoverable cells;
        # non-empty cells first, then those that close a cycle, then the smallest
        candidates: set[tuple[bool, bool, float, int, int]] = set()
        for r, c in np.argwhere(bad):
            for cc in np.flatnonzero(~withheld[r]):
                k = float(cost[r, cc])
                candidates.add((k >= _LAST, not bool(col_has[cc]), k, int(r), int(cc)))
            for rr in np.flatnonzero(~withheld[:, c]):
                k = float(cost[rr, c])
                candidates.add((k >= _LAST, not bool(row_has[rr]), k, int(rr), int(c)))
        if not candidates:
            margins |= bad  # nothing left to withhold beside them: drop the totals
            continue
        pick = min(candidates)
        withheld[pick[3], pick[4]] = True
    return withheld & ~primary, margins


def round_to_base(values: FloatArray, base: int) -> FloatArray:
    """Nearest multiple of ``base``, halves rounded up; NaN stays NaN."""
    if base < 1:
        raise ValueError("the rounding base must be a positive whole number")
    result: FloatArray = np.floor(values / base + 0.5) * base
    return result


def midpoint6(values: FloatArray) -> FloatArray:
    """OpenSAFELY's midpoint-6 rounding of counts: 0 -> 0, 1-6 -> 3, 7-12 -> 9, ..."""
    rounded: FloatArray = np.where(values == 0, 0.0, np.ceil(values / 6) * 6 - 3)
    return rounded
