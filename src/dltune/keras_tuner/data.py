"""search()'s arrays as the Dataset a study trains on, as Keras's fit() would read them.

- Validation: `validation_data=(x_val, y_val)` as given, else `validation_split` as fit()
  takes it (the last fraction of the arrays, before any shuffling); with neither, a
  KerasTunerError (an objective on validation data needs them; Keras Tuner fails too).
- The arrays are kept as given: no standardization (data.from_arrays' scale=False), so that the
  trained model takes the user's own arrays, as a model Keras fitted does.
- Labels: one-hot rows (keras.utils.to_categorical) become class indices, (n, 1) a column.
- Layout: Keras's examples are channels last, dltune's channels first. (n, H, W, C) is moved to
  (n, C, H, W) (kept where keras.config.image_data_format() is channels_first), (n, A, B) is one
  channel of A x B; KerasNetwork moves them back to the layout the model declares, so the model
  receives the arrays in the user's own layout.
- The test split: search() has none (the user holds theirs), and a Dataset must have one: it is
  the validation data again, and a note says that a study's "test" figure repeats them.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .arguments import KerasTunerError

if TYPE_CHECKING:
    from ..data import Dataset

TEST_NOTE = (
    "dltune's test split is the validation data (search() takes no test data): the study's "
    "'test' figure repeats them; test the delivered model on a test set of your own"
)


def search_data(
    x: Any,
    y: Any,
    validation_data: Any,
    validation_split: float,
    *,
    name: str,
    task: str | None,
    channels_last: bool,
) -> Dataset:
    """The Dataset of search()'s arrays (see the module's notes)."""
    from ..data import from_arrays

    x, y = _array(x, "x"), _labels(_array(y, "y"), "y")
    if validation_data is not None:
        x_val, y_val, how = *_validation(validation_data), "validation_data given"
    else:
        x, y, x_val, y_val = _split(x, y, validation_split)
        how = f"validation_split {validation_split:g} (the last {len(y_val)} examples)"
    examples, shape = _channels_first(x, channels_last, "x")
    val_examples, _ = _channels_first(x_val, channels_last, "validation_data's x")
    dataset = from_arrays(
        examples, y, x_val=val_examples, y_val=y_val, x_test=val_examples, y_test=y_val,
        name=name, source=f"{name} (arrays given to search())", task=task,
        input_shape=shape, scale=False,
    )  # fmt: skip
    dataset.notes.append(TEST_NOTE)
    return replace(dataset, split=f"Keras Tuner's search(): {how}; the test split is the same")


def _array(value: Any, what: str) -> np.ndarray:
    """`value` as a NumPy array; a KerasTunerError for what fit() takes and dltune does not
    (a tf.data.Dataset, a generator, a PyDataset, several inputs)."""
    if value is None:
        raise KerasTunerError(
            f"search(): {what} is missing; give the training arrays, search(x, y, ...)"
        )
    several = isinstance(value, dict) or (
        isinstance(value, list | tuple) and any(hasattr(v, "shape") for v in value)
    )
    if several or hasattr(value, "element_spec") or hasattr(value, "__next__"):
        kind = "several inputs" if several else type(value).__name__
        raise KerasTunerError(
            f"search(): {what} is {kind}; dltune trains on one NumPy array of examples and "
            "one of targets (convert a dataset or generator with np.concatenate of its batches)"
        )
    array = np.asarray(value)
    if array.dtype == object or array.ndim == 0:
        raise KerasTunerError(f"search(): {what} must be an array of numbers, one row a sample")
    return array


def _labels(y: np.ndarray, what: str) -> np.ndarray:
    """Targets as fit() reads them: one-hot rows become class indices, a column a vector."""
    if y.ndim == 2 and y.shape[1] == 1:
        return y[:, 0]
    if y.ndim == 2:
        one_hot = np.isin(y, (0, 1)).all() and bool((y.sum(axis=1) == 1).all())
        if one_hot:
            return y.argmax(axis=1)
        raise KerasTunerError(
            f"search(): {what} has {y.shape[1]} columns that are not one-hot labels; dltune "
            "tunes one target: class labels (indices or one-hot) or one value per example"
        )
    if y.ndim > 2:
        raise KerasTunerError(f"search(): {what} of shape {y.shape}; give one target per example")
    return y


def _validation(validation_data: Any) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(validation_data, list | tuple) or len(validation_data) != 2:
        extra = " (sample weights are not supported)" if _triple(validation_data) else ""
        raise KerasTunerError(f"search(validation_data=...): give a pair (x_val, y_val){extra}")
    x_val, y_val = validation_data
    return _array(x_val, "validation_data's x"), _labels(
        _array(y_val, "validation_data's y"), "validation_data's y"
    )


def _triple(value: Any) -> bool:
    return isinstance(value, list | tuple) and len(value) == 3


def _split(
    x: np.ndarray, y: np.ndarray, fraction: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """fit()'s validation_split: the last `fraction` of the arrays validates."""
    if not isinstance(fraction, int | float) or not 0 < fraction < 1:
        raise KerasTunerError(
            f"search(): validation_split={fraction!r}; the objective is measured on validation "
            "data: give validation_data=(x_val, y_val) or validation_split between 0 and 1 "
            "(e.g. 0.2), as Keras's fit() takes them"
        )
    if len(x) != len(y):
        raise KerasTunerError(f"search(): x has {len(x)} rows but y has {len(y)}")
    at = math.floor(len(x) * (1.0 - fraction))  # as Keras's fit() splits
    if at == 0 or at == len(x):
        raise KerasTunerError(
            f"search(): validation_split={fraction:g} of {len(x)} examples leaves one side empty"
        )
    return x[:at], y[:at], x[at:], y[at:]


def _channels_first(
    x: np.ndarray, channels_last: bool, what: str
) -> tuple[np.ndarray, tuple[int, ...]]:
    """The examples in dltune's layout (channels first) and one example's shape."""
    if x.ndim <= 2:
        return x, (x.shape[1] if x.ndim == 2 else 1,)
    if x.ndim == 3:  # (n, A, B): one channel of A x B
        return x, (1, *x.shape[1:])
    if x.ndim == 4:
        moved = np.moveaxis(x, -1, 1) if channels_last else x
        return np.ascontiguousarray(moved), tuple(moved.shape[1:])
    raise KerasTunerError(
        f"search(): {what} has shape {x.shape}; dltune takes rows (n, F), (n, A, B) or images "
        "(n, H, W, C)"
    )
