"""A known-good configuration, projected into a space: the study's first trial.

What people write first (TensorFlow's beginner tutorial: one Dense(128, relu) layer,
Dropout(0.2), Adam at 1e-3, categorical cross-entropy, batch size 32) is a strong start on most
small problems. Trying it first, as SMAC's initial design tries a space's default configuration,
gives every study a known-good baseline within seconds, and the report something to compare the
winner with. Images start from Keras' MNIST convnet (TEXTBOOK's convolutional keys).

Signals (C, L) start from the fully convolutional network (FCN) of Wang, Yan and Oates, "Time
series classification from scratch with deep neural networks: a strong baseline" (IJCNN 2017),
the reference network of the UCR benchmarks (Fawaz et al. 2019): three convolutions of 128, 256
and 128 filters with kernels 8, 5 and 3, each with batch normalization and ReLU, no pooling,
global average pooling, then the output layer directly (no hidden Dense layer); Adam at 1e-3,
categorical cross-entropy, batch size 16 (Fawaz et al.'s code: min(n / 10, 16)).
`signal_baseline(width)` scales its filters for a short budget.

A value per convolutional block (PerBlock) goes to filters_k / kernel_size_k where the space
draws them per block, and its `shared` value where the space draws one for every block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .params import Choice, Fixed, FloatRange, IntRange, Param


@dataclass(frozen=True)
class PerBlock:
    """One wanted value per convolutional block, and the one to use where a space draws a
    single value for every block."""

    values: tuple[int, ...]
    shared: int

    def block(self, k: int) -> int:
        """Block `k`'s value, counted from 1 (blocks past the last repeat it)."""
        return self.values[min(k, len(self.values)) - 1]


TEXTBOOK: dict[str, Any] = {
    "layers": 1,
    "units": 128,
    "dropout": 0.2,
    "activation": "relu",
    "loss": ("categorical_crossentropy", "mean_squared_error"),  # the first one the space has
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "weight_decay": 0.0,
    "batch_size": 32,
    # Keras' MNIST convnet example: two 3x3 convolutions of 32 and 64, max pooling of 2
    "conv_layers": 2,
    "filters": 32,
    "kernel_size": 3,
    "pool": 2,
    "batch_norm": False,
    "global_pool": False,
}

# The textbook's dense network alone: a signal's or an image's first trial where the budget
# affords no convolutional one (study/first_trial.py)
TEXTBOOK_DENSE: dict[str, Any] = {**TEXTBOOK, "conv_layers": 0}

FCN_FILTERS = (128, 256, 128)
FCN_KERNELS = (8, 5, 3)

# Wang et al.'s FCN (see the module's note). `units` and `dropout` have no layer to act on
# (layers 0); their values are the textbook's and none, for a space that samples them anyway.
FCN: dict[str, Any] = {
    **TEXTBOOK,
    "layers": 0,
    "dropout": 0.0,
    "batch_size": 16,
    "conv_layers": 3,
    "filters": PerBlock(FCN_FILTERS, shared=128),  # shared: two blocks of three
    "kernel_size": PerBlock(FCN_KERNELS, shared=5),  # shared: the middle one
    "pool": 0,
    "batch_norm": True,
    "global_pool": True,
}


def signal_baseline(width: float = 1.0) -> dict[str, Any]:
    """The FCN with its filters times `width` (1: the published 128/256/128; 0.25: 32/64/32),
    for a study whose budget is too short for the full size. A space projects the result to
    its own values (nearest), so filters outside its range are cut to the range."""
    if not (math.isfinite(width) and width > 0):
        raise ValueError(f"the FCN's width must be a number > 0; got {width!r}")
    filters = tuple(max(1, round(f * width)) for f in FCN_FILTERS)
    return {**FCN, "filters": PerBlock(filters, shared=max(1, round(128 * width)))}


def wanted(targets: dict[str, Any], name: str) -> Any:
    """The value `targets` want for the Optuna param `name` (units_2 is units' for layer 2)."""
    key, _, layer = name.rpartition("_")
    if layer.isdigit() and key in targets:
        value = targets[key]
        return value.block(int(layer)) if isinstance(value, PerBlock) else value
    value = targets[name]
    return value.shared if isinstance(value, PerBlock) else value


def nearest(param: Param, wanted: Any) -> Any:
    """The value of `param` closest to `wanted` (for numbers, on a log scale when positive)."""
    if isinstance(param, Fixed):
        return param.value
    if isinstance(param, Choice):
        options = list(param.options)
        preferences = wanted if isinstance(wanted, tuple) else (wanted,)
        for preferred in preferences:
            if preferred in options:
                return preferred
        numbers = [o for o in options if isinstance(o, int | float) and not isinstance(o, bool)]
        if numbers and isinstance(preferences[0], int | float):
            return min(numbers, key=lambda o: _distance(o, preferences[0]))
        return options[0]
    if isinstance(param, IntRange | FloatRange):
        value = min(max(wanted, param.low), param.high)
        if param.step:
            value = param.low + round((value - param.low) / param.step) * param.step
            value = min(value, param.high)
        return round(value) if isinstance(param, IntRange) else float(value)
    raise TypeError(f"no nearest value for {param!r}")  # pragma: no cover - all kinds above


def _distance(a: float, b: float) -> float:
    if a > 0 and b > 0:
        return abs(math.log(a) - math.log(b))
    return abs(a - b)
