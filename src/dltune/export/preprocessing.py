"""What a tuned model does to its inputs and outputs, as plain data: input scaling, label encoding.

A table's encoder (``encoding``: categories, medians, the columns' order; dltune.data.encoding)
comes first when the data were a table: the model then takes the table's columns.
The network was trained on standardized features (statistics of the study's training split) and,
for regression, on standardized targets; a model folder keeps both so that raw features go in and
labels or values in the target's units come out. Everything here round-trips through JSON
exactly: float32 statistics are written as the doubles they are, and read back to the same bits.
It also keeps the shape of one example (``input_shape``), so that the network is rebuilt for
the same signals or images; a folder written before shapes has none: its examples are flat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.encoding import TableEncoding
from ..errors import ModelError

if TYPE_CHECKING:
    from ..data import Dataset


@dataclass(frozen=True)
class Preprocessing:
    task: str  # "classification" or "regression"
    loss: str  # decides how a classifier's outputs become probabilities
    feature_names: list[str] | None  # None: features are matched by position
    x_mean: np.ndarray  # float32 (n_features,)
    x_std: np.ndarray  # float32 (n_features,), no zeros
    classes: list[Any] | None  # the label of each output (classification)
    target_mean: float | None  # regression: the network predicts (y - mean) / std
    target_std: float | None
    target: str | None  # the target column's name in the data, when the data had one
    statistics: str  # which rows the statistics come from, for the model card
    # One example's shape as the network sees it: (n_features,) flat, (C, L), (C, H, W); the
    # features stay flat rows, row-major in this shape. () reads as flat.
    input_shape: tuple[int, ...] = field(default=())
    # A table's encoder (categories one-hot, medians, dropped columns, the columns' order),
    # fitted on the training split: the model then takes the table's columns, and its
    # features are the encoder's output; None: the features are the data's own numbers.
    encoding: TableEncoding | None = None

    def __post_init__(self) -> None:
        shape = tuple(int(n) for n in self.input_shape) or (self.n_features,)
        object.__setattr__(self, "input_shape", shape)

    @property
    def shaped(self) -> bool:
        """Whether examples are signals or images (two or three axes), not rows."""
        return len(self.input_shape) > 1

    @property
    def n_features(self) -> int:
        return len(self.x_mean)

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.classes is not None else 1

    @classmethod
    def from_dataset(cls, data: Dataset, loss: str, target: str | int | None) -> Preprocessing:
        n_train = len(data.y_train)
        return cls(
            task=data.task,
            loss=loss,
            feature_names=list(data.feature_names) if data.feature_names else None,
            x_mean=np.asarray(data.x_mean, dtype=np.float32),
            x_std=np.asarray(data.x_std, dtype=np.float32),
            classes=list(data.classes) if data.classes is not None else None,
            target_mean=data.target_mean,
            target_std=data.target_std,
            # A position (e.g. -1) names no column a later file is sure to share.
            target=target if isinstance(target, str) else None,
            statistics=f"training split of the study ({n_train} rows)",
            input_shape=tuple(data.input_shape),
            encoding=data.encoding,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "loss": self.loss,
            "feature_names": self.feature_names,
            "x_mean": [float(v) for v in self.x_mean],
            "x_std": [float(v) for v in self.x_std],
            "classes": self.classes,
            "target_mean": self.target_mean,
            "target_std": self.target_std,
            "target": self.target,
            "statistics": self.statistics,
            "input_shape": list(self.input_shape),
            "encoding": self.encoding.to_dict() if self.encoding is not None else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> Preprocessing:
        """Read back `to_dict`'s output; `where` (the file) names what is wrong in errors."""
        for key in ("task", "loss", "x_mean", "x_std"):
            if key not in d:
                raise ModelError(f"{where}: key {key!r} is missing; write the folder again")
        mean = np.asarray(d["x_mean"], dtype=np.float32)
        std = np.asarray(d["x_std"], dtype=np.float32)
        names = d.get("feature_names")
        if mean.ndim != 1 or mean.shape != std.shape or (names and len(names) != len(mean)):
            raise ModelError(
                f"{where}: x_mean, x_std and feature_names must have one entry per feature "
                f"(got {mean.shape}, {std.shape} and {len(names or [])}); write the folder again"
            )
        shape = _input_shape(d.get("input_shape"), len(mean), where)
        encoding = _encoding(d.get("encoding"), names, where)
        if (std == 0).any():
            raise ModelError(f"{where}: x_std holds a zero; write the folder again")
        task = d["task"]
        if task not in ("classification", "regression"):
            raise ModelError(
                f"{where}: task {task!r} is not 'classification' or 'regression'; write the "
                f"folder again"
            )
        if task == "classification" and not d.get("classes"):
            raise ModelError(f"{where}: a classifier needs its 'classes'; write the folder again")
        if task == "regression" and not d.get("target_std"):
            raise ModelError(f"{where}: a regressor needs 'target_std'; write the folder again")
        return cls(
            task=task,
            loss=d["loss"],
            feature_names=[str(n) for n in names] if names else None,
            x_mean=mean,
            x_std=std,
            classes=d.get("classes"),
            target_mean=d.get("target_mean"),
            target_std=d.get("target_std"),
            target=d.get("target"),
            statistics=str(d.get("statistics", "")),
            input_shape=shape,
            encoding=encoding,
        )


def _encoding(value: Any, names: list[str] | None, where: str) -> TableEncoding | None:
    """The stored encoder, checked against the features it must make; absent: none."""
    if value is None:
        return None
    try:
        encoding = TableEncoding.from_dict(value, where)
    except (TypeError, ValueError) as e:
        raise ModelError(
            f"{where}: 'encoding' cannot be read ({e}); write the folder again"
        ) from None
    if names is None or encoding.feature_names != list(names):
        raise ModelError(
            f"{where}: 'encoding' makes the features {encoding.feature_names[:4]}..., not the "
            f"'feature_names' {(names or [])[:4]}...; write the folder again"
        )
    return encoding


def _input_shape(value: Any, n_features: int, where: str) -> tuple[int, ...]:
    """The stored shape of one example, checked against the feature count; absent: flat."""
    if value is None:
        return (n_features,)  # written before shapes were kept: the examples were rows
    ok = isinstance(value, list) and 1 <= len(value) <= 3
    ok = ok and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in value)
    if not ok or math.prod(value) != n_features:
        raise ModelError(
            f"{where}: input_shape {value!r} is not the shape of one example of {n_features} "
            f"features (a list of 1 to 3 positive whole numbers whose product is {n_features}); "
            f"write the folder again"
        )
    return tuple(value)
