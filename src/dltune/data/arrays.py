"""``from_arrays``: the path every loader goes through (checks, task, labels, split, scaling)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dltune.errors import DataError

from .checks import as_features, as_target, column_label
from .dataset import Dataset, Task, digest_arrays
from .encoding import TableEncoding
from .shapes import array_example_shape, check_shape, parse_shape, same_example_shape
from .split import split_one, split_three
from .task import detect_task, encode_labels

MIN_SAMPLES = 10  # in the training part, before validation/test are carved from it
_CHUNK = 8192  # rows per chunk when computing feature statistics (bounds float64 temporaries)


def feature_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std (ddof 0) of ``x`` as float32; a zero std is replaced by 1.

    Accumulates in float64 over row chunks, so a large float32 array needs no float64 copy.
    """
    n, d = x.shape
    total = np.zeros(d, dtype=np.float64)
    for start in range(0, n, _CHUNK):
        total += x[start : start + _CHUNK].sum(axis=0, dtype=np.float64)
    mean = total / n
    squares = np.zeros(d, dtype=np.float64)
    for start in range(0, n, _CHUNK):
        squares += ((x[start : start + _CHUNK] - mean) ** 2).sum(axis=0)
    mean32 = mean.astype(np.float32)
    std32 = np.sqrt(squares / n).astype(np.float32)
    std32[std32 == 0] = 1.0  # a constant feature: centred, not scaled
    return mean32, std32


def standardize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        out = ((x - mean) / std).astype(np.float32, copy=False)
    if not np.isfinite(out).all():  # x - mean overflowed float32 (values near +-3.4e38)
        out = ((np.asarray(x, dtype=np.float64) - mean) / std).astype(np.float32)
    return out


def _standardized(
    x: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    split: str,
    where: str,
    names: Sequence[str] | None,
) -> np.ndarray:
    """``standardize``, refusing a value too far from the training mean for float32."""
    with np.errstate(over="ignore"):
        out = standardize(x, mean, std)
    bad = np.argwhere(~np.isfinite(out))
    if len(bad):
        i, j = (int(v) for v in bad[0])
        sds = abs(float(x[i, j]) - float(mean[j])) / float(std[j])
        raise DataError(
            f"{where}: {column_label(j, names)} of the {split} split holds {float(x[i, j])!r} "
            f"(row {i} of that split), {sds:.3g} training standard deviations from the training "
            f"mean {float(mean[j])!r}, beyond float32's range. Rescale that column (e.g. divide "
            f"it by a large constant) or drop it."
        )
    return out


def _columns_of(x_dims: tuple[int, ...]) -> int:
    """How many feature columns an x of these dimensions has once flat (as_features makes it)."""
    return 1 if len(x_dims) <= 1 else int(np.prod(x_dims[1:]))


def _feature_names(names: Sequence[str] | None, n_features: int, where: str) -> list[str] | None:
    if names is None:
        return None
    names = [str(n) for n in names]
    if len(names) != n_features:
        raise DataError(
            f"{where}: {len(names)} feature names given for {n_features} feature columns."
        )
    return names


def _pair(
    x: Any,
    y: Any,
    label: str,
    where: str,
    names: Sequence[str] | None,
    n_features: int,
    x_dims: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray] | None:
    """A given validation or test split, checked against the training part (``x_dims``: the
    shape of x as given); None if absent."""
    if x is None and y is None:
        return None
    if x is None or y is None:
        given, missing = ("x", "y") if y is None else ("y", "x")
        raise DataError(
            f"{where}: {given}_{label} is given without {missing}_{label}; give both or neither."
        )
    xa = as_features(x, f"{where} (x_{label})", names)
    dims = np.shape(x)
    if len(dims) > 2 or len(x_dims) > 2:  # images or signals: the same shape, not just size
        same_example_shape(x_dims, dims, where, "x", f"x_{label}")
    ya = as_target(y, f"{where} (y_{label})")
    if len(xa) != len(ya):
        raise DataError(
            f"{where}: x_{label} has {len(xa)} rows but y_{label} has {len(ya)}; "
            f"they must match row for row."
        )
    if len(xa) == 0:
        raise DataError(f"{where}: x_{label} and y_{label} are empty.")
    if xa.shape[1] != n_features:
        raise DataError(
            f"{where}: x_{label} has {xa.shape[1]} features but x has {n_features}; "
            f"every split needs the same feature columns."
        )
    return xa, ya


def from_arrays(
    x: Any,
    y: Any,
    *,
    name: str = "arrays",
    task: str | None = None,
    seed: int = 0,
    x_val: Any = None,
    y_val: Any = None,
    x_test: Any = None,
    y_test: Any = None,
    feature_names: Sequence[str] | None = None,
    source: str | None = None,
    input_shape: str | Sequence[int] | None = None,
    scale: bool = True,
) -> Dataset:
    """Build a :class:`Dataset` from arrays: check, detect the task, encode, split, standardize.

    ``x`` holds one example per row: ``(n, n_features)`` is a table, ``(n, C, L)`` a signal
    of C channels, ``(n, C, H, W)`` an image (more axes are refused); ``y`` one target per
    example. The arrays are kept flat, ``(n, n_features)`` row-major, and the shape of one
    example goes to ``Dataset.input_shape``; ``input_shape`` (``(C, L)``, ``(C, H, W)`` or the
    text "C,H,W") gives it instead, for any ``x`` with that many values per example.
    Validation and test splits given as arrays are used as they are (with the same per-example
    shape as ``x``); a missing one is carved from ``x`` (15%, stratified for classification,
    ``seed``); with neither, 70/15/15. ``task`` ("classification"/"regression") overrides
    detection. ``source`` (default ``name``) is what error messages and ``Dataset.source`` name.
    ``scale=False`` keeps the features and a regression target as given (mean 0 and scale 1
    recorded): a model then takes the user's own arrays, as Keras's fit() trains on them
    (dltune.keras_tuner).
    """
    where = source or name
    given = parse_shape(input_shape)
    x_dims = tuple(np.shape(x))
    # The names are checked against x's columns first: the feature checks name columns by them.
    names = _feature_names(feature_names, _columns_of(x_dims), where)
    xa = as_features(x, where, names)
    example = given if given is not None else array_example_shape(x_dims, where)
    check_shape(example, xa.shape[1], where)
    ya = as_target(y, f"{where} (target)")
    _check_rows(xa, ya, where)
    val = _pair(x_val, y_val, "val", where, names, xa.shape[1], x_dims)
    test = _pair(x_test, y_test, "test", where, names, xa.shape[1], x_dims)
    ys, classes, reason = _encoded_targets(ya, val, test, task, where)
    rest = iter(ys[1:])
    if val is not None:
        val = (val[0], next(rest))
    if test is not None:
        test = (test[0], next(rest))

    splits, how = _split(xa, ys[0], val, test, seed, classes)
    return assemble(
        splits,
        how,
        classes,
        reason,
        name=name,
        where=where,
        names=names,
        example=example,
        shape_given=given is not None,
        scale=scale,
    )


def assemble(
    splits: tuple[np.ndarray, ...],
    how: str,
    classes: list[Any] | None,
    reason: str,
    *,
    name: str,
    where: str,
    names: list[str] | None,
    example: tuple[int, ...],
    shape_given: bool = False,
    encoding: TableEncoding | None = None,
    notes: Sequence[str] = (),
    scale: bool = True,
) -> Dataset:
    """The Dataset of raw splits (x_train, y_train, x_val, y_val, x_test, y_test): fingerprinted,
    standardized with the training split's statistics (`scale`; else kept as they are, with
    mean 0 and scale 1). `example`: one example's shape if it was asked for, else () (flat) or
    the data's own."""
    x_train, y_train, x_val, y_val, x_test, y_test = splits
    digest = digest_arrays(splits, classes)
    mean, std = feature_stats(x_train)
    target_mean, target_std = _target_stats(y_train, classes, where)
    if not scale:  # the arrays as given (the checks above still ran)
        mean, std = np.zeros_like(mean), np.ones_like(std)
        target_mean, target_std = (None, None) if classes is not None else (0.0, 1.0)
        # not the fingerprint of the same arrays standardized: a study of one refuses the other
        digest = digest_arrays([np.frombuffer(bytes.fromhex(digest), np.uint8)], ["unscaled"])
    final_task: Task = "classification" if classes is not None else "regression"
    return Dataset(
        name=name,
        source=where,
        task=final_task,
        task_reason=reason,
        x_train=_standardized(x_train, mean, std, "training", where, names),
        y_train=y_train,
        x_val=_standardized(x_val, mean, std, "validation", where, names),
        y_val=y_val,
        x_test=_standardized(x_test, mean, std, "test", where, names),
        y_test=y_test,
        feature_names=names,
        classes=classes,
        x_mean=mean,
        x_std=std,
        target_mean=target_mean,
        target_std=target_std,
        split=how,
        raw_digest=digest,
        input_shape=example,
        shape_given=shape_given,
        encoding=encoding,
        notes=list(notes),
    )


def encoded_targets(
    y: Any, task: str | None, where: str
) -> tuple[np.ndarray, list[Any] | None, str]:
    """One split's targets checked and encoded for the task: (class indices or float32 values,
    the classes or None, why that task)."""
    ys, classes, reason = _encoded_targets(
        as_target(y, f"{where} (target)"), None, None, task, where
    )
    return ys[0], classes, reason


def check_row_count(n: int, where: str) -> None:
    if n < MIN_SAMPLES:
        raise DataError(
            f"{where}: only {n} sample(s) to train on; dltune needs at least {MIN_SAMPLES} "
            f"(and far more to tune anything meaningful)."
        )


def _check_rows(xa: np.ndarray, ya: np.ndarray, where: str) -> None:
    if len(xa) != len(ya):
        raise DataError(
            f"{where}: x has {len(xa)} rows but y has {len(ya)}; they must match row for row."
        )
    check_row_count(len(xa), where)


def _encoded_targets(
    ya: np.ndarray, val: Any, test: Any, task: str | None, where: str
) -> tuple[list[np.ndarray], list[Any] | None, str]:
    """Every split's targets (y, then y_val and y_test where given) encoded for the detected
    task: class indices (int64) and the classes, or float32 values; and why that task."""
    ys = [ya] + [p[1] for p in (val, test) if p is not None]
    if any(v.dtype.kind == "U" for v in ys):
        ys = [v.astype(str) for v in ys]  # text labels in one split: compare all as text
    detected, reason = detect_task(np.concatenate(ys), task, where)
    classes: list[Any] | None = None
    if detected == "classification":
        ys, classes = encode_labels(ys)
        _check_classes(ys[0], classes, where)
        ys = [v.astype(np.int64) for v in ys]
    else:
        ys = [
            _float32_target(v, f"{where} ({split})")
            for v, split in zip(ys, _ys_names(val, test), strict=True)
        ]
    return ys, classes, reason


def _target_stats(
    y_train: np.ndarray, classes: list[Any] | None, where: str
) -> tuple[float | None, float | None]:
    """A regression target's mean and spread on the training split (None for classes)."""
    if classes is not None:
        return None, None
    target_mean = float(y_train.mean(dtype=np.float64))
    target_std = float(y_train.std(dtype=np.float64))
    if target_std == 0:
        raise DataError(
            f"{where}: the target is constant ({target_mean!r}) in the training split; "
            f"there is nothing to learn."
        )
    return target_mean, target_std


def _ys_names(val: Any, test: Any) -> list[str]:
    """What each entry of from_arrays' ``ys`` is: the target, then y_val and y_test if given."""
    return ["target"] + ["y_val"] * (val is not None) + ["y_test"] * (test is not None)


def _float32_target(y: np.ndarray, where: str) -> np.ndarray:
    """A regression target as float32 (what training uses), refusing values past its range."""
    with np.errstate(over="ignore"):
        out = y.astype(np.float32)
    bad = np.nonzero(~np.isfinite(out))[0]
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"{where}: the target is {y[i]!r} at row {i} ({len(bad)} row(s) in all), beyond "
            f"float32's range (+-3.4e38) that training uses. Rescale the target (e.g. divide it "
            f"by a large constant)."
        )
    return out


Pair = tuple[np.ndarray, np.ndarray]


def _split(
    x: np.ndarray,
    y: np.ndarray,
    val: Pair | None,
    test: Pair | None,
    seed: int,
    classes: list[Any] | None,
) -> tuple[tuple[np.ndarray, ...], str]:
    """(x_train, y_train, x_val, y_val, x_test, y_test) and how they were made: given splits
    kept as they are, missing ones carved from (x, y)."""
    labels = y if classes is not None else None  # stratify classification only
    if val is None:
        if test is None:
            tr, va, te, how = split_three(len(x), labels, seed, classes)
            return (x[tr], y[tr], x[va], y[va], x[te], y[te]), how
        tr, va, how = split_one(len(x), labels, seed, "validation", classes)
        return (x[tr], y[tr], x[va], y[va], *test), f"test given; {how}"
    if test is None:
        tr, te, how = split_one(len(x), labels, seed, "test", classes)
        return (x[tr], y[tr], *val, x[te], y[te]), f"validation given; {how}"
    return (x, y, *val, *test), "given"


def _check_classes(y_train: np.ndarray, classes: list[Any], where: str) -> None:
    if len(classes) < 2:
        raise DataError(
            f"{where}: the target has one class only ({classes[0]!r}); classification needs at "
            f"least two. Check the target column, or use task 'regression' for a number."
        )
    present = np.unique(y_train)
    if len(present) < 2:
        raise DataError(
            f"{where}: the training data has one class only ({classes[int(present[0])]!r}); "
            f"classification needs at least two."
        )
