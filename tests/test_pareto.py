"""Non-dominated sorting, crowding distance and the 2-D hypervolume (schedule/pareto.py),
against brute force on random points."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from dltune.schedule.pareto import (
    crowding_distances,
    dominates,
    hypervolume_2d,
    hypervolume_contributions,
    non_dominated_fronts,
    pareto_order,
)


def brute_force_fronts(points, directions):
    """Peel the set: each front is what no remaining point dominates."""
    left, fronts = list(range(len(points))), []
    while left:
        front = [
            i for i in left if not any(dominates(points[j], points[i], directions) for j in left)
        ]
        fronts.append(front)
        left = [i for i in left if i not in front]
    return fronts


@pytest.mark.parametrize("seed", range(20))
def test_the_fronts_are_the_ones_brute_force_peels(seed):
    rng = random.Random(seed)
    objectives = rng.choice([2, 3])
    directions = [rng.choice(["maximize", "minimize"]) for _ in range(objectives)]
    # few distinct values, so that ties and equal points occur
    points = [
        tuple(rng.choice([0.1, 0.2, 0.3, 0.5, 0.8]) for _ in range(objectives))
        for _ in range(rng.randint(1, 40))
    ]
    assert non_dominated_fronts(points, directions) == brute_force_fronts(points, directions)


def test_directions_decide_what_is_better_and_nan_is_worst():
    points = [(0.9, 1000.0), (0.95, 5000.0), (0.9, 800.0), (math.nan, 10.0), (0.5, 100.0)]
    fronts = non_dominated_fronts(points, ["maximize", "minimize"])
    # accurate, small, tiny, or tiniest: none beats another on both (NaN loses on accuracy
    # only: the diverged trial is the smallest)
    assert fronts[0] == [1, 2, 3, 4]
    assert fronts[1] == [0]  # (0.9, 1000) loses to (0.9, 800)
    # a diverged trial (NaN accuracy) is beaten by any trial at least as small
    assert dominates(points[4], (math.nan, 100.0), ["maximize", "minimize"])
    assert not dominates((math.nan, 100.0), (math.nan, 100.0), ["maximize", "minimize"])
    assert non_dominated_fronts(points, ["minimize", "minimize"])[0] == [3, 4]
    with pytest.raises(ValueError, match="direction 'up'"):
        non_dominated_fronts(points, ["up", "minimize"])


def test_the_crowding_distance_favours_the_ends_and_the_sparse_stretches():
    # a front along accuracy up, size up: evenly spaced but for one crowded pair
    points = [(0.80, 10), (0.85, 20), (0.86, 21), (0.90, 40), (0.95, 80)]
    front = non_dominated_fronts(points, ["maximize", "minimize"])[0]
    assert front == [0, 1, 2, 3, 4]
    distance = crowding_distances(points, front)
    assert distance[0] == distance[4] == math.inf
    # member 2's neighbours are 1 and 3: gaps (0.90 - 0.85) / 0.15 + (40 - 20) / 70
    assert distance[2] == pytest.approx(0.05 / 0.15 + 20 / 70)
    assert distance[1] < distance[3] and distance[2] < distance[3]
    order = pareto_order(points, ["maximize", "minimize"])
    assert order[:2] == [0, 4] and order[2] == 3  # the ends, then the sparsest
    assert crowding_distances(points, [1, 2]) == {1: math.inf, 2: math.inf}


def test_the_order_puts_every_front_before_the_next():
    rng = random.Random(3)
    points = [(rng.random(), rng.random()) for _ in range(60)]
    directions = ["maximize", "minimize"]
    order = pareto_order(points, directions)
    assert sorted(order) == list(range(60))
    level = {
        i: k for k, front in enumerate(non_dominated_fronts(points, directions)) for i in front
    }
    assert [level[i] for i in order] == sorted(level[i] for i in order)


@pytest.mark.parametrize("seed", range(4))
def test_a_contribution_is_the_hypervolume_lost_without_the_point(seed):
    rng = random.Random(seed)
    directions = ["maximize", "minimize"]
    points = [(rng.random(), rng.random()) for _ in range(40)]
    front = non_dominated_fronts(points, directions)[0]
    share = hypervolume_contributions(points, directions, front)
    reference = (-1.0, 2.0)  # worse than every point on both
    whole = hypervolume_2d([points[i] for i in front], directions, reference)
    for i in front:
        rest = [points[j] for j in front if j != i]
        lost = whole - hypervolume_2d(rest, directions, reference)
        ends = {max(front, key=lambda j: points[j][0]), min(front, key=lambda j: points[j][1])}
        if i in ends:  # what the ends lose depends on the reference alone: they go first
            assert math.isinf(share[i])
        else:
            assert share[i] == pytest.approx(lost)
    order = pareto_order(points, directions, tie_break="hypervolume")
    inner = [i for i in order[: len(front)] if not math.isinf(share[i])]
    assert inner == sorted(inner, key=lambda i: -share[i])
    with pytest.raises(ValueError, match="tie_break 'area'"):
        pareto_order(points, directions, tie_break="area")


@pytest.mark.parametrize("seed", range(5))
def test_the_hypervolume_is_the_area_a_grid_counts(seed):
    rng = np.random.default_rng(seed)
    points = [tuple(p) for p in rng.uniform(0, 1, size=(rng.integers(1, 15), 2))]
    directions = ["maximize", "minimize"]
    reference = (0.0, 1.0)  # accuracy 0, size 1: worse than every point
    exact = hypervolume_2d(points, directions, reference)
    # a grid of cell centres: a cell counts when some point is better on both objectives
    n = 400
    grid = (np.arange(n) + 0.5) / n
    acc, size = np.meshgrid(grid, grid, indexing="ij")
    covered = np.zeros_like(acc, dtype=bool)
    for a, s in points:
        covered |= (acc <= a) & (size >= s)
    assert exact == pytest.approx(covered.mean(), abs=4 / n)
    # adding a dominated point changes nothing; a point past the reference adds nothing
    best = max(points, key=lambda p: p[0])
    assert hypervolume_2d([*points, (best[0] / 2, 1.0)], directions, reference) == exact
    assert hypervolume_2d([(1.5, 0.5)], ["minimize", "minimize"], (1.0, 1.0)) == 0.0
