"""What each key of a space accepts: its kind, bounds, default and vocabulary."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from dltune import vocabulary
from dltune.errors import did_you_mean


@dataclass(frozen=True)
class _Rule:
    kind: str  # "int", "float" or "name" (a vocabulary kind: the key itself)
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    hint: str = ""  # a fix, shown after the rule, e.g. "Use a rate such as 0.2."

    def allows(self, v: float) -> bool:
        above = v > self.low if self.low_open else v >= self.low
        below = v < self.high if self.high_open else v <= self.high
        return above and below

    def text(self) -> str:
        if math.isinf(self.high):
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {left}{self.low:g}, {self.high:g}{right}"


_RULES: dict[str, _Rule] = {
    "layers": _Rule("int", 0, 32, hint="Use a count such as 2 (0: the linear model)."),
    "units": _Rule("int", 1, 65536, hint="Use a width such as 128."),
    "dropout": _Rule("float", 0, 1, high_open=True, hint="Use a rate such as 0.2."),
    "activation": _Rule("name"),
    "loss": _Rule("name"),
    "optimizer": _Rule("name"),
    "learning_rate": _Rule("float", 0, low_open=True, hint="Use a rate such as 0.001."),
    "weight_decay": _Rule("float", 0, hint="Use 0 for none, or a value such as 0.0001."),
    "batch_size": _Rule("int", 1, hint="Use a size such as 64."),
}
_EPOCHS_RULE = _Rule("int", 1, hint="Use a number such as 27.")
# The convolutional blocks before the Dense layers (for data with a shape; see dltune.nets.conv).
_CONV_RULES: dict[str, _Rule] = {
    "conv_layers": _Rule("int", 0, 16, hint="Use a count such as 2 (0: no convolutions)."),
    "filters": _Rule("int", 1, 4096, hint="Use a count such as 32."),
    "kernel_size": _Rule("int", 1, 64, hint="Use a size such as 3."),
    "pool": _Rule("int", 0, 16, hint="Use 2 (halves each axis), or 0 for no pooling."),
    "batch_norm": _Rule("bool"),
    "global_pool": _Rule("bool"),
}


def value_rule(key: str) -> _Rule:
    """The rule one value of hyperparameter `key` must keep ("epochs": a whole number >= 1)."""
    return _EPOCHS_RULE if key == "epochs" else _RULES[key]


_MIN_EPOCHS_RULE = _Rule(
    "float", 0, low_open=True, hint="Use 1, or a fraction of an epoch such as 0.25 for large data."
)
_REDUCTION_RULE = _Rule("int", 2, 100, hint="Use 3 (the top third goes on at each rung).")

PARAM_KEYS: tuple[str, ...] = tuple(_RULES)  # the dense network's
CONV_PARAM_KEYS: tuple[str, ...] = tuple(_CONV_RULES)
# may be given per layer (units_k; filters_k and kernel_size_k per convolutional block)
PER_LAYER_KEYS = ("units", "filters", "kernel_size")
_RULES.update(_CONV_RULES)
KEYS: tuple[str, ...] = (
    "name",
    "metric",
    "objectives",
    *PARAM_KEYS,
    *CONV_PARAM_KEYS,
    "epochs",
    "patience",
    "min_epochs",
    "reduction",
)
# The keys that describe dltune's own network (a user's build(hp) defines its own), and the
# rest of a space's keys but its name: the training knobs, which every model takes from the space.
NETWORK_KEYS: tuple[str, ...] = ("layers", "units", "dropout", "activation", *CONV_PARAM_KEYS)
TRAINING_KEYS: tuple[str, ...] = tuple(k for k in KEYS if k != "name" and k not in NETWORK_KEYS)
_ALIASES = {"lr": "learning_rate"}

# The defaults, in the plain form a space file would give them (parsed like any user value).
_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "metric": None,
        "objectives": None,
        # 0: no hidden layer, the linear model (logistic, softmax or linear regression), so
        # that the search finds it where that is what the data support
        "layers": {"low": 0, "high": 3},
        "units": {"low": 16, "high": 1024, "log": True},
        "dropout": {"low": 0.0, "high": 0.5},
        "activation": ["relu", "sigmoid", "tanh", "elu"],
        "loss": ["categorical_crossentropy", "mean_squared_error"],
        "optimizer": ["sgd", "adam", "rmsprop", "adagrad"],
        "learning_rate": {"low": 1e-4, "high": 1.0, "log": True},
        "weight_decay": 0.0,
        "batch_size": [16, 32, 64, 128, 256],
        "epochs": 27,
        "patience": None,
        "min_epochs": 1,
        "reduction": 3,
    }
)
# The convolutional keys' defaults where the data are images (C, H, W) and the space does not
# say; conv_layers' range is fitted to the input (see SearchSpace.for_input). Flat data get no
# convolutional keys at all: the dense network, as before they existed.
_CONV_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "conv_layers": {"low": 0, "high": 3},
        "filters": {"low": 8, "high": 64, "log": True},
        "kernel_size": [3, 5],
        "pool": 2,
        "batch_norm": [False, True],
        "global_pool": [False, True],
    }
)
# The same for signals (C, L): a space around the fully convolutional network of Wang et al.
# (2017; space/baseline.py FCN, a signal study's first trial): three blocks of 128, 256, 128
# filters with kernels 8, 5, 3, batch normalization, no pooling, global average pooling and
# no hidden Dense layer. Each block draws its own filters and kernel, so the FCN is a point of
# the space, and its neighbours (fewer or narrower blocks, other kernels, pooling, Flatten,
# Dense layers after the blocks: `layers` 0..3) are a step away.
_SIGNAL_CONV_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "conv_layers": {"low": 0, "high": 3},
        "filters": {"per_layer": True, "low": 16, "high": 256, "log": True},
        "kernel_size": {"per_layer": True, "choices": [3, 5, 8]},
        "pool": [0, 2],
        "batch_norm": [True, False],
        "global_pool": [True, False],
    }
)


def conv_defaults(input_shape: tuple[int, ...]) -> Mapping[str, Any]:
    """The convolutional keys' defaults for examples of `input_shape`: signals' (C, L) or
    images' (C, H, W)."""
    return _SIGNAL_CONV_DEFAULTS if len(input_shape) == 2 else _CONV_DEFAULTS


_RANGE_KEYS = ("low", "high", "log", "step")
_VOCABULARY: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "activation": (vocabulary.ACTIVATIONS, vocabulary.ACTIVATION_ALIASES),
    "loss": (tuple(vocabulary.LOSSES), vocabulary.LOSS_ALIASES),
    "optimizer": (vocabulary.OPTIMIZERS, vocabulary.OPTIMIZER_ALIASES),
}


SHOW_LIMIT = 300  # characters of a value an error message shows, at most


def _show(value: Any, limit: int = SHOW_LIMIT) -> str:
    """A value as the user wrote it (YAML spelling for null and booleans), cut to about
    `limit` characters.

    A list or mapping that contains itself (YAML aliases: `&a [*a]`) shows as ``...`` where it
    recurs, as Python's repr does, and nesting deeper than 20 levels is cut the same way. The
    rendering stops once `limit` characters are written: aliases nested in aliases (a "billion
    laughs" file) stand for exponentially many items, which an error must not try to print.
    """
    parts: list[str] = []
    left = [limit]

    def put(text: str) -> bool:
        parts.append(text[: max(0, left[0])])
        left[0] -= len(text)
        return left[0] > 0

    def walk(item: Any, inside: tuple[int, ...]) -> bool:
        if item is None or isinstance(item, bool):
            return put("null" if item is None else "true" if item else "false")
        if not isinstance(item, Mapping | list | tuple):
            return put(repr(item))
        if id(item) in inside or len(inside) >= 20:
            return put("...")
        inner = (*inside, id(item))
        mapping = isinstance(item, Mapping)
        if not put("{" if mapping else "["):
            return False
        entries: Any = item.items() if isinstance(item, Mapping) else item
        for i, entry in enumerate(entries):
            if i and not put(", "):
                return False
            if mapping and not put(f"{entry[0]}: "):
                return False
            if not walk(entry[1] if mapping else entry, inner):
                return False
        return put("}" if mapping else "]")

    whole = walk(value, ())
    return "".join(parts) + ("" if whole else "...")


def _unknown(head: str, value: object, options: list[str]) -> str:
    """`head` ("activation 'rleu' is not known") plus "; did you mean 'relu'?" when one is close."""
    hint = did_you_mean(value, options)
    return f"{head};{hint}" if hint else f"{head}."


# --------------------------------------------------------------------------------------------
# The parser: plain data in, validated parameters out. Each method checks one form.
# --------------------------------------------------------------------------------------------
