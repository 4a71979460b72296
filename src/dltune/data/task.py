"""Classification or regression, told apart from the target; labels encoded as class indices."""

from __future__ import annotations

from typing import Any

import numpy as np

from dltune.errors import DataError, did_you_mean

from ..vocabulary import TASKS

# An integer target with at most this many distinct values (and fewer than half the samples) is
# a class label; beyond it, a count or a measurement.
MAX_CLASSES_DETECTED = 50


def is_string_target(y: np.ndarray) -> bool:
    """True for text labels (``y`` as normalized by ``checks.as_target``: kind U, b, i, u or f)."""
    return y.dtype.kind in "US"


def detect_task(y: np.ndarray, task: str | None, where: str) -> tuple[str, str]:
    """Return (task, reason) for target values ``y`` (1-D, no missing values)."""
    if task is not None:
        if task not in TASKS:
            raise DataError(
                f"task must be 'classification' or 'regression'. Got {task!r}."
                f"{did_you_mean(task, TASKS)}"
            )
        if task == "regression" and is_string_target(y):
            example = str(y[0])
            raise DataError(
                f"{where}: task 'regression' needs a numeric target, but the target has "
                f"non-numeric values (e.g. {example!r}). Use task 'classification', or choose "
                f"a numeric target column."
            )
        return task, f"task={task!r} given"
    if y.dtype.kind == "b":
        return "classification", "target is boolean"
    if is_string_target(y):
        return "classification", "target has non-numeric values"
    values = y.astype(np.float64)
    if not np.all(values == np.round(values)):
        return "regression", "target has non-integer values"
    n_distinct = len(np.unique(values))
    if n_distinct > MAX_CLASSES_DETECTED:
        return (
            "regression",
            f"target has {n_distinct} distinct integer values (more than {MAX_CLASSES_DETECTED})",
        )
    if n_distinct * 2 >= len(values):
        return (
            "regression",
            f"target has {n_distinct} distinct integer values, not fewer than half "
            f"of the {len(values)} samples",
        )
    return "classification", f"target has {n_distinct} distinct integer values"


def _plain(v: Any) -> Any:
    """A numpy scalar as a plain python value; integer-valued floats as int."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def encode_labels(ys: list[np.ndarray]) -> tuple[list[np.ndarray], list[Any]]:
    """Encode every split's labels with one shared, sorted list of classes.

    Returns the int64 index arrays (same order as ``ys``) and the classes as plain python values.
    """
    joined = np.concatenate(ys)
    uniq = np.unique(joined)
    codes = [np.searchsorted(uniq, y).astype(np.int64) for y in ys]
    return codes, [_plain(v) for v in uniq]
