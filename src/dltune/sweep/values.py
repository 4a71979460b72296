"""Which values a sweep tries: each hyperparameter's default, or the user's --values / --range.

Categorical hyperparameters sweep all their choices by default (the losses that apply to the
task); numeric ones a range wide enough to show both ends of the story: the learning rate from
barely moving to diverging, dropout from none to most units, widths and batch sizes by powers of
two, epochs on a roughly geometric ladder.
"""

from __future__ import annotations

import math
from typing import Any

from .. import errors, vocabulary
from ..errors import DLTuneError, did_you_mean
from ..space.rules import value_rule
from ..vocabulary import CATEGORICAL

SWEEPABLE = vocabulary.HYPERPARAMETERS  # every one of them can be swept
INTEGER = (
    "layers",
    "units",
    "batch_size",
    "epochs",
    "conv_layers",
    "filters",
    "kernel_size",
    "pool",
)
# What the sweep changes alters the network's shape or its steps: no shared population.
SHAPE_CHANGING = ("layers", "units", "batch_size", *vocabulary.CONVOLUTIONAL)

ALIASES = {
    "lr": "learning_rate",
    "dense": "units",
    "batch": "batch_size",
    "activations": "activation",
    "hidden_layers": "layers",
    "wd": "weight_decay",
}

EPOCH_LADDER = (1, 2, 3, 5, 8, 13, 20, 30, 50, 80, 130, 200, 300, 500, 800)

NUMERIC_DEFAULTS: dict[str, tuple[Any, ...]] = {
    "layers": (0, 1, 2, 3, 4, 5),  # 0: the linear model, the reference a depth must beat
    "units": (8, 16, 32, 64, 128, 256, 512, 1024),
    "dropout": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8),
    # half decades from barely moving to diverging for every optimizer
    "learning_rate": (
        1e-05,
        3.16e-05,
        1e-04,
        3.16e-04,
        1e-03,
        3.16e-03,
        1e-02,
        3.16e-02,
        0.1,
        0.316,
        1.0,
        3.16,
        10.0,
    ),
    "weight_decay": (0.0, 1e-05, 1e-04, 1e-03, 1e-02, 1e-01),
    "batch_size": (16, 32, 64, 128, 256, 512, 1024),
    "conv_layers": (0, 1, 2, 3),
    "filters": (4, 8, 16, 32, 64, 128),
    "kernel_size": (1, 3, 5, 7, 8),  # every block's; 8: the FCN's first
    "pool": (0, 2, 3),
    "batch_norm": (False, True),
    "global_pool": (False, True),
}


def parameter_name(text: str) -> str:
    """The canonical name of a sweepable hyperparameter, or an error listing them."""
    key = text.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in SWEEPABLE:
        raise DLTuneError(
            f"dltune sweep {text!r}: not a hyperparameter a sweep can vary;"
            f"{did_you_mean(key, SWEEPABLE)} choose from {', '.join(SWEEPABLE)} "
            "(lr for learning_rate)."
        )
    return key


def default_values(param: str, task: str, epochs: int) -> tuple[Any, ...]:
    """The values a sweep of `param` tries when none are given."""
    if param == "activation":
        return vocabulary.ACTIVATIONS
    if param == "optimizer":
        return vocabulary.OPTIMIZERS
    if param == "loss":
        return tuple(n for n in vocabulary.LOSSES if vocabulary.loss_applies(n, task))
    if param == "epochs":
        return epoch_ladder(epochs)
    return NUMERIC_DEFAULTS[param]


def epoch_ladder(most: int) -> tuple[int, ...]:
    """1, 2, 3, 5, 8, 13, ... below `most`, and `most` itself."""
    return (*(e for e in EPOCH_LADDER if e < most), most)


def parse_values(param: str, text: str) -> tuple[Any, ...]:
    """--values "V1,V2,...": names canonicalised, numbers checked against the param's rule."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise DLTuneError(
            f"{errors.param('values', text)} for {param}: give values separated by commas"
        )
    values = tuple(_one_value(param, item, errors.param("values")) for item in items)
    return _distinct(param, values, errors.param("values", text))


def parse_range(param: str, text: str) -> tuple[Any, ...]:
    """--range "LOW:HIGH:N[:log]": N values from LOW to HIGH, evenly or on a log scale."""
    where = f"{errors.param('value_range', text)} for {param}"
    if param in vocabulary.BOOLEAN:
        raise DLTuneError(f"{where}: {param} is true or false; sweep it without a range (both)")
    if param in CATEGORICAL:
        names = ",".join(default_values(param, "classification", 1)[:3])
        raise DLTuneError(
            f"{where}: {param} is a choice of names, not a number; use "
            f"{errors.param('values', shown=names)} (or neither: all)"
        )
    parts = [p.strip() for p in text.split(":")]
    log = len(parts) == 4 and parts[3].lower() == "log"
    if len(parts) not in (3, 4) or (len(parts) == 4 and not log):
        raise DLTuneError(f"{where}: write LOW:HIGH:N or LOW:HIGH:N:log, such as 1e-4:1:9:log")
    low, high = (_number(p, where) for p in parts[:2])
    count = _number(parts[2], where)
    if count != int(count) or count < 2:
        raise DLTuneError(f"{where}: N is {parts[2]!r}; give a whole number of values >= 2")
    if high <= low:
        raise DLTuneError(f"{where}: HIGH {high:g} must be above LOW {low:g}")
    if log and low <= 0:
        raise DLTuneError(f"{where}: a log range needs LOW > 0 (got {low:g}); drop :log or raise")
    n = int(count)
    if log:
        points = [math.exp(math.log(low) + i * math.log(high / low) / (n - 1)) for i in range(n)]
    else:
        points = [low + i * (high - low) / (n - 1) for i in range(n)]
    values = tuple(_checked(param, _tidy(param, v), where) for v in points)
    return _distinct(param, values, where)


def _one_value(param: str, item: str, where: str) -> Any:
    if param in vocabulary.BOOLEAN:
        if item.lower() not in ("true", "false"):
            raise DLTuneError(f"{where}: {param} is true or false; got {item!r}")
        return item.lower() == "true"
    if param in CATEGORICAL:
        name = vocabulary.canonical(param, item)
        if name is None:
            known = _names(param)
            raise DLTuneError(
                f"{where}: {param} {item!r} is not known;"
                f"{did_you_mean(item, known)} choose from {', '.join(known)}"
            )
        return name
    return _checked(param, _number(item, f"{where} for {param}"), where)


def _names(param: str) -> tuple[str, ...]:
    if param == "activation":
        return vocabulary.ACTIVATIONS
    if param == "loss":
        return tuple(vocabulary.LOSSES)
    return vocabulary.OPTIMIZERS


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DLTuneError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DLTuneError(f"{where}: {text!r} is not a finite number")
    return value


def _tidy(param: str, value: float) -> float | int:
    """Whole numbers for integer params; three significant digits for a range's points."""
    if param in INTEGER:
        return round(value)
    return float(f"{value:.3g}")


def _checked(param: str, value: float | int, where: str) -> float | int:
    rule = value_rule(param)
    if param in INTEGER:
        if value != int(value):
            raise DLTuneError(f"{where}: {param} {value:g} is not a whole number. {rule.hint}")
        value = int(value)
    else:
        value = float(value)
    if not rule.allows(value):
        raise DLTuneError(f"{where}: {param} {value:g} is not {rule.text()}. {rule.hint}")
    return value


def _distinct(param: str, values: tuple[Any, ...], where: str) -> tuple[Any, ...]:
    """The values without repeats (a rounded range may repeat), in the order given."""
    unique = tuple(dict.fromkeys(values))
    if len(unique) < 2:
        raise DLTuneError(
            f"{where}: a sweep of {param} needs at least two different values; got "
            f"{', '.join(map(str, unique))}"
        )
    return unique


def label(value: Any) -> str:
    """A value as the table and the figures show it."""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
