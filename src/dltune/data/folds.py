"""K-fold cross-validation over the examples outside the test split (the "pool").

The pool is the training split followed by the validation split, in that order, as a Dataset
holds them (standardized with the training split's statistics: one fixed affine map for every
fold, fitted on pool rows alone, so the test split stays out of everything). Each example is
assigned to one of K folds, stratified by class for classification, by a seeded shuffle; fold
f's member trains on the other K-1 folds and is validated on fold f, so that every example is
validated exactly once (its out-of-fold prediction).

The K members of one trial stack into one population only if they share a shape: the same
number of training rows (the same steps per epoch). Folds whose sizes differ (the pool does not
divide by K, or stratification rounds) would give training sets that differ by a row or a few,
so each fold's training rows are cut to the smallest training set: a fold with a smaller
validation part leaves out the difference, rows drawn by the seed. Every example is still
validated once; at most a few examples sit out the training of one fold member.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_FOLDS = 5
MAX_FOLDS = 20


@dataclass(frozen=True, eq=False)
class Folds:
    """The fold of every pool row, and the training rows each fold member uses."""

    k: int
    seed: int
    assignment: np.ndarray  # (n_pool,) int64: the fold that validates each pool row
    train_rows: np.ndarray  # (k, n_train) int64: each fold member's training rows, sorted
    how: str  # e.g. "5-fold stratified, seed 0"

    @property
    def n_pool(self) -> int:
        return len(self.assignment)

    @property
    def n_train(self) -> int:
        """Training rows of every fold member (one shape: they stack)."""
        return int(self.train_rows.shape[1])

    def val_rows(self, fold: int) -> np.ndarray:
        """The pool rows fold `fold` validates, in pool order."""
        return np.flatnonzero(self.assignment == fold)

    @property
    def sizes(self) -> list[int]:
        """Validation rows per fold."""
        return [int(n) for n in np.bincount(self.assignment, minlength=self.k)]

    @property
    def left_out(self) -> int:
        """Training rows left out, over all fold members, to give them one shape."""
        return sum(self.n_pool - size - self.n_train for size in self.sizes)

    def describe(self) -> str:
        sizes = self.sizes
        shown = f"{min(sizes)}" if min(sizes) == max(sizes) else f"{min(sizes)}-{max(sizes)}"
        return (
            f"{self.how}: {self.n_pool} examples, {shown} validated per fold, "
            f"{self.n_train} trained on per fold member"
        )

    def to_json(self) -> dict[str, Any]:
        """What a study records of its folds (they are made again from this and the data)."""
        return {"k": self.k, "seed": self.seed, "how": self.how}


def make_folds(n_pool: int, k: int, seed: int, labels: np.ndarray | None = None) -> Folds:
    """K folds over `n_pool` examples, stratified by `labels` (class indices) when given and
    possible, seeded. ValueError when there are fewer examples than twice the folds."""
    from sklearn.model_selection import KFold, StratifiedKFold  # lazy: slow to import

    if not 2 <= k <= MAX_FOLDS:
        raise ValueError(f"folds must be in [2, {MAX_FOLDS}]; got {k}")
    if n_pool < 2 * k:
        raise ValueError(f"{k} folds need at least {2 * k} examples; the pool has {n_pool}")
    rows = np.arange(n_pool)
    splitter: Any = KFold(n_splits=k, shuffle=True, random_state=seed)
    how = f"{k}-fold, seed {seed}"
    if labels is not None:
        counts = np.bincount(np.asarray(labels, dtype=np.int64))
        if counts[counts > 0].min() >= k:
            splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
            how = f"{k}-fold stratified, seed {seed}"
        else:
            how += f" (not stratified: a class has {int(counts[counts > 0].min())} examples)"
    assignment = np.empty(n_pool, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for fold, (_, held) in enumerate(splitter.split(rows, labels)):
            assignment[held] = fold
    n_train = n_pool - int(np.bincount(assignment, minlength=k).max())
    rng = np.random.default_rng([seed, n_pool, k])
    train_rows = np.empty((k, n_train), dtype=np.int64)
    for fold in range(k):
        own = np.flatnonzero(assignment != fold)
        if len(own) > n_train:  # a smaller validation part: leave the difference out
            own = np.sort(rng.choice(own, size=n_train, replace=False))
        train_rows[fold] = own
    return Folds(k, seed, assignment, train_rows, how)
