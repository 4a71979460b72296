"""The :class:`Dataset` every engine trains on: three standardized splits and how they were made."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from ..errors import InvalidDataError, InvalidParameterError
from ..vocabulary import TASKS
from .encoding import TableEncoding
from .folds import Folds, make_folds

Task = Literal["classification", "regression"]


def digest_arrays(arrays: Iterable[np.ndarray], classes: list[Any] | None = None) -> str:
    """sha256 over arrays (dtype, shape and little-endian bytes) and the class labels, in order.

    Independent of the machine's byte order and of memory layout, so two workers that load the
    same data the same way agree on it.
    """
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(a.tobytes())
    h.update(repr(classes).encode())
    return h.hexdigest()


@dataclass(eq=False, repr=False)
class Dataset:
    """Train/validation/test splits, standardized with statistics of the training split alone.

    ``x_*`` are float32 ``(n, n_features)``; ``y_*`` are int64 class indices ``0..K-1``
    (classification; ``classes[k]`` is the original label of index k) or float32 targets in
    their original units (regression; engines standardize them with ``target_mean`` and
    ``target_std``).
    """

    name: str
    source: str  # a built-in name ("digits", "mnist") or the path it was read from
    task: Task
    task_reason: str  # why this task, e.g. "target has 10 distinct integer values"
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    feature_names: list[str] | None
    classes: list[Any] | None
    x_mean: np.ndarray  # float32 (n_features,), of the training split
    x_std: np.ndarray  # float32 (n_features,), of the training split; zeros replaced by 1
    target_mean: float | None
    target_std: float | None
    split: str  # how it was split, e.g. "70/15/15 stratified, seed 0" or "given"
    # sha256 of the split arrays before standardization, set by from_arrays; see fingerprint().
    raw_digest: str = field(default="")
    # The shape of one example as the networks see it: (n_features,) for a table, (C, L) for a
    # signal of C channels, (C, H, W) for an image. The x_* arrays stay flat, (n, n_features),
    # row-major in this shape, so that standardization, storage and the exports treat every
    # dataset alike; a convolutional network reshapes each batch (see dltune.nets).
    input_shape: tuple[int, ...] = ()
    # Whether input_shape was asked for (load_data's `shape`, from_arrays' `input_shape`) rather
    # than read from the data's own form: a continued study lends its recorded shape to data
    # loaded without one, but refuses a given shape that differs from it (study/opening.py).
    shape_given: bool = False
    # How a table's columns became these features (categories one-hot, missing cells imputed,
    # columns dropped), fitted on the training split: None for data that were numbers already
    # (arrays, images) or a table read with encode=False. A model keeps it (export).
    encoding: TableEncoding | None = None
    # What loading did that the user should know (the encoder's notes, rows dropped for a
    # missing target), shown with the study's notes.
    notes: list[str] = field(default_factory=list)
    # K-fold cross-validation over the pool (the training split, then the validation split):
    # each trial is K fold members, fold f trained on the others and validated on fold f
    # (folds.py). None: the validation split decides (holdout).
    folds: Folds | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise InvalidParameterError(f"Dataset task must be one of {TASKS}. Got {self.task!r}.")
        self.set_input_shape(self.input_shape, self.shape_given)

    def set_input_shape(self, shape: Iterable[int], given: bool = False) -> None:
        """Give the examples another shape of the same size (the arrays stay flat); () is flat."""
        new = tuple(int(n) for n in shape) or (self.n_features,)
        if math.prod(new) != self.n_features:
            raise InvalidDataError(
                f"input_shape {new} holds {math.prod(new)} values per example, but the data "
                f"have {self.n_features} features."
            )
        self.input_shape, self.shape_given = new, given

    def reshaped(self, shape: Iterable[int] | None) -> Dataset:
        """This dataset (the same arrays, not copied) with examples of ``shape``, marked as asked
        for; itself when ``shape`` is None. InvalidDataError (a ValueError) if it does not hold
        n_features values
        (load_data checks first, with a DataError that says the fix)."""
        if shape is None:
            return self
        return replace(self, input_shape=tuple(shape), shape_given=True)

    @property
    def shaped(self) -> bool:
        """Whether examples are signals or images (a shape of two or three axes), not rows."""
        return len(self.input_shape) > 1

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int | None:
        if self.task != "classification" or self.classes is None:
            return None
        return len(self.classes)

    @property
    def sizes(self) -> tuple[int, int, int]:
        """(train, validation, test) sample counts."""
        return (len(self.y_train), len(self.y_val), len(self.y_test))

    def pool(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of every example outside the test split: training rows, then validation."""
        return (
            np.concatenate([self.x_train, self.x_val]),
            np.concatenate([self.y_train, self.y_val]),
        )

    def with_folds(self, k: int, seed: int) -> Dataset:
        """This dataset (the same arrays) cross-validated in `k` folds of the pool, seeded;
        stratified by class where every class has k examples."""
        labels = None
        if self.task == "classification":
            labels = np.concatenate([self.y_train, self.y_val])
        n_pool = len(self.y_train) + len(self.y_val)
        return replace(self, folds=make_folds(n_pool, k, seed, labels))

    def holdout(self) -> Dataset:
        """This dataset without folds: the validation split decides."""
        return self if self.folds is None else replace(self, folds=None)

    def fold(self, index: int) -> Dataset:
        """Fold `index` as a dataset of its own: its member's training rows as the training
        split, its validation rows as the validation split, the same test split and scaling.
        A fold member trained alone on it is the member the population trains."""
        if self.folds is None:
            raise ValueError("this dataset has no folds")
        x, y = self.pool()
        train, val = self.folds.train_rows[index], self.folds.val_rows(index)
        return replace(
            self,
            x_train=x[train],
            y_train=y[train],
            x_val=x[val],
            y_val=y[val],
            split=f"{self.split}; fold {index + 1} of {self.folds.k} of the rest",
            folds=None,
        )

    @property
    def validation(self) -> str:
        """How trials are validated, in words."""
        if self.folds is None:
            return f"holdout: the validation split of {len(self.y_val)} examples"
        return self.folds.describe()

    def fingerprint(self) -> str:
        """A stable sha256 hex digest of the data: same source, splits and seed, same digest.

        It covers the raw (unstandardized) split arrays and the class labels, recorded when the
        dataset was built; a Dataset built by hand hashes the arrays it holds instead.
        """
        if self.raw_digest:
            return self.raw_digest
        arrays = (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test)
        return digest_arrays(arrays, self.classes)

    def describe(self) -> str:
        """One line, e.g. 'digits: classification (10 classes), 64 features of shape 1x8x8, ...'."""
        task: str = self.task
        if self.n_classes is not None:
            task += f" ({self.n_classes} classes)"
        n_train, n_val, n_test = self.sizes
        features = f"{self.n_features} features"
        if self.shaped:
            features += f" of shape {'x'.join(str(n) for n in self.input_shape)}"
        return f"{self.name}: {task}, {features}, {n_train}/{n_val}/{n_test} train/val/test"

    def __repr__(self) -> str:
        return f"<Dataset {self.describe()}; split {self.split}>"
