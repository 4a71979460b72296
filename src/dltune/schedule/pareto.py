"""Ranking trials on several objectives at once: non-dominated sorting, crowding distance, and
the hypervolume of a two-objective front (issue 18: successive halving on the Pareto front).

Pure arithmetic on points (one tuple of objective values per trial) and their directions
("maximize" or "minimize"), with no Optuna and no torch, so the scheduler and the benchmarks
share it and tests can check it against brute force.

A point dominates another when it is at least as good on every objective and better on one.
NaN (a diverged trial's metric) is worse than any number on its objective; such a trial may
still be on the first front by another objective (the smallest network), so the scheduler
leaves diverged trials out before ranking.

Within a front the ranking is by crowding distance (NSGA-II, Deb et al. 2002; MO-ASHA's
"NSGA-II selection", Schmucker et al. 2021): points at the ends of the front and in its sparse
stretches come first, so the survivors of a rung span the front rather than crowd one end of
it. The alternative, each point's hypervolume contribution (SMS-EMOA), is here too
(`TIE_BREAK`). Measured on MNIST in 300 s (benchmarks/multiobjective.py, RESULTS.md issue 18),
its fronts' hypervolume was 0.99-1.05x crowding's: no difference beyond the seeds' spread.
Crowding stays: MO-ASHA's default, no reference point, and cheap for three or more objectives.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

Point = Sequence[float]
DIRECTIONS = ("maximize", "minimize")


def _oriented(points: Sequence[Point], directions: Sequence[str]) -> list[tuple[float, ...]]:
    """Every objective turned into one to minimize; NaN into +inf (the worst)."""
    for direction in directions:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction {direction!r}: one of {DIRECTIONS}")
    signs = [-1.0 if d == "maximize" else 1.0 for d in directions]
    oriented = []
    for point in points:
        if len(point) != len(signs):
            raise ValueError(f"point {tuple(point)} has {len(point)} values, not {len(signs)}")
        oriented.append(
            tuple(
                math.inf if math.isnan(v) else s * float(v)
                for v, s in zip(point, signs, strict=True)
            )
        )
    return oriented


def dominates(a: Point, b: Point, directions: Sequence[str]) -> bool:
    """Whether `a` is at least as good as `b` on every objective and better on one."""
    x, y = _oriented([a, b], directions)
    return _dominates(x, y)


def _dominates(x: tuple[float, ...], y: tuple[float, ...]) -> bool:
    return all(p <= q for p, q in zip(x, y, strict=True)) and any(
        p < q for p, q in zip(x, y, strict=True)
    )


def non_dominated_fronts(points: Sequence[Point], directions: Sequence[str]) -> list[list[int]]:
    """The indices of `points`, front by front: the first front is dominated by no point, the
    second only by the first, ... (Deb's fast non-dominated sort, O(M N^2)). Equal points share
    a front. Within a front, indices keep their order."""
    oriented = _oriented(points, directions)
    n = len(oriented)
    dominated_by_count = [0] * n
    dominating: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if _dominates(oriented[i], oriented[j]):
                dominating[i].append(j)
                dominated_by_count[j] += 1
            elif _dominates(oriented[j], oriented[i]):
                dominating[j].append(i)
                dominated_by_count[i] += 1
    fronts: list[list[int]] = []
    current = [i for i in range(n) if dominated_by_count[i] == 0]
    while current:
        fronts.append(sorted(current))
        following = []
        for i in current:
            for j in dominating[i]:
                dominated_by_count[j] -= 1
                if dominated_by_count[j] == 0:
                    following.append(j)
        current = following
    return fronts


def crowding_distances(points: Sequence[Point], front: Sequence[int]) -> dict[int, float]:
    """Each front member's crowding distance: the sum over objectives of the gap between its
    neighbours along that objective, scaled by the objective's range on the front; infinite at
    the ends. (Direction does not matter: a gap is a gap.)"""
    distance = {i: 0.0 for i in front}
    if len(front) <= 2:
        return {i: math.inf for i in front}
    objectives = len(points[front[0]])
    for m in range(objectives):
        values = {i: _finite(points[i][m]) for i in front}
        ordered = sorted(front, key=lambda i: (values[i], i))
        low, high = values[ordered[0]], values[ordered[-1]]
        distance[ordered[0]] = distance[ordered[-1]] = math.inf
        if not high > low:  # every member equal on this objective: it separates none
            continue
        for before, here, after in zip(ordered, ordered[1:], ordered[2:], strict=False):
            distance[here] += (values[after] - values[before]) / (high - low)
    return distance


def _finite(value: float) -> float:
    return math.inf if math.isnan(value) else float(value)


TIE_BREAKS = ("crowding", "hypervolume")
# The tie-break within a front that the scheduler uses. DLTUNE_TIE_BREAK sets it for a process
# and the workers it starts: benchmarks/multiobjective.py measures one against the other.
TIE_BREAK = os.environ.get("DLTUNE_TIE_BREAK", "crowding")


def pareto_order(
    points: Sequence[Point], directions: Sequence[str], tie_break: str | None = None
) -> list[int]:
    """All indices, best first: by front, then by the tie-break (TIE_BREAK unless given:
    crowding distance or hypervolume contribution, largest first), then by index (the older
    trial first, as single-objective successive halving breaks its ties)."""
    tie_break = tie_break or TIE_BREAK
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"tie_break {tie_break!r}: one of {TIE_BREAKS}")
    order: list[int] = []
    for front in non_dominated_fronts(points, directions):
        if tie_break == "hypervolume" and len(directions) == 2:
            share = hypervolume_contributions(points, directions, front)
        else:  # crowding, and the only tie-break of more than two objectives
            share = crowding_distances(points, front)
        order += sorted(front, key=lambda i: (-share[i], i))
    return order


def hypervolume_contributions(
    points: Sequence[Point], directions: Sequence[str], front: Sequence[int]
) -> dict[int, float]:
    """Each member of a two-objective front's exclusive hypervolume: the area only it
    dominates, the product of the gaps to its neighbours along the front (the SMS-EMOA
    tie-break, Beume et al. 2007); infinite at the ends, which have no reference of their own.
    Equal points share their area: each adds none."""
    oriented = _oriented(points, directions)
    ordered = sorted(front, key=lambda i: (oriented[i], i))  # first objective up, second down
    share = {i: math.inf for i in (ordered[0], ordered[-1])}
    for before, here, after in zip(ordered, ordered[1:], ordered[2:], strict=False):
        # the rectangle between the next point's first objective and the previous one's second
        share[here] = (oriented[after][0] - oriented[here][0]) * (
            oriented[before][1] - oriented[here][1]
        )
    return share


def hypervolume_2d(points: Sequence[Point], directions: Sequence[str], reference: Point) -> float:
    """The area two-objective points dominate up to `reference` (a point worse than all on
    both: a front's quality in one number, larger is better). Points not better than the
    reference on both objectives add nothing."""
    if len(directions) != 2:
        raise ValueError("hypervolume_2d takes two objectives")
    oriented = _oriented(points, directions)
    ref = _oriented([reference], directions)[0]
    inside = sorted({p for p in oriented if p[0] < ref[0] and p[1] < ref[1]})
    area, best_second = 0.0, ref[1]
    for first, second in inside:  # by the first objective, ascending
        if second < best_second:
            area += (ref[0] - first) * (best_second - second)
            best_second = second
    return area
