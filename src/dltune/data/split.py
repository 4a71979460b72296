"""Train/validation/test index splits: 70/15/15, stratified for classification, seeded.

Sizes are computed in integers (15% rounded half up) so that, e.g., 10,000 samples always give
7000/1500/1500 and sklearn's float rounding never moves a sample between splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

HELD_OUT_PERCENT = 15  # the validation and the test share, each


def held_out_size(n: int) -> int:
    """15% of n, rounded half up, at least 1."""
    return max(1, (n * HELD_OUT_PERCENT + 50) // 100)


def _rarest(labels: np.ndarray, classes: Sequence[Any] | None) -> str:
    values, counts = np.unique(labels, return_counts=True)
    k = int(np.argmin(counts))
    label = classes[int(values[k])] if classes is not None else values[k]
    return f"class {label!r} has {int(counts[k])} sample(s)"


def carve(
    n: int,
    size: int,
    labels: np.ndarray | None,
    seed: int,
    classes: Sequence[Any] | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Split ``range(n)`` into (kept, carved) index arrays, ``size`` carved.

    Stratified by ``labels`` (class indices into ``classes``) when given and possible; the text says
    "stratified", "random", or why stratification fell back to random.
    """
    from sklearn.model_selection import train_test_split  # lazy: sklearn is slow to import

    idx = np.arange(n)
    if labels is not None:
        try:
            kept, carved = train_test_split(
                idx, test_size=size, random_state=seed, shuffle=True, stratify=labels
            )
            return np.sort(kept), np.sort(carved), "stratified"
        except ValueError:
            how = f"random (too few samples to stratify: {_rarest(labels, classes)})"
    else:
        how = "random"
    kept, carved = train_test_split(idx, test_size=size, random_state=seed, shuffle=True)
    return np.sort(kept), np.sort(carved), how


def split_three(
    n: int, labels: np.ndarray | None, seed: int, classes: Sequence[Any] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(train, val, test) indices for 70/15/15 and a description like
    "70/15/15 stratified, seed 0"."""
    n_held = held_out_size(n)
    rest, test, how_test = carve(n, n_held, labels, seed, classes)
    sub = labels[rest] if labels is not None else None
    train, val, how_val = carve(len(rest), n_held, sub, seed, classes)
    how = how_test if how_test != "stratified" else how_val
    return rest[train], rest[val], test, f"70/15/15 {how}, seed {seed}"


def split_one(
    n: int,
    labels: np.ndarray | None,
    seed: int,
    what: str,
    classes: Sequence[Any] | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """(kept, carved) indices carving ``what`` ("validation" or "test") as 15% of n."""
    kept, carved, how = carve(n, held_out_size(n), labels, seed, classes)
    return kept, carved, f"{what} {HELD_OUT_PERCENT}% of train, {how}, seed {seed}"
