"""The textbook configuration, projected into a space: the study's first trial.

What people write first (TensorFlow's beginner tutorial: one Dense(128, relu) layer,
Dropout(0.2), Adam at 1e-3, categorical cross-entropy, batch size 32) is a strong start on most
small problems. Trying it first, as SMAC's initial design tries a space's default configuration,
gives every study a known-good baseline within seconds, and the report something to compare the
winner with.
"""

from __future__ import annotations

import math
from typing import Any

from .params import Choice, Fixed, FloatRange, IntRange, Param

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
