"""The search space: parse it, validate it, and sample it through Optuna.

A space is a YAML file in Keras's vocabulary, or the same structure as Python keywords or a dict::

    SearchSpace.from_file("space.yaml")
    SearchSpace(activation=["relu", "tanh"], lr={"low": 1e-3, "high": 0.1, "log": True})

Every key is optional; a missing key takes its default:

==============  ===================================  ============================================
key             default                              rule
==============  ===================================  ============================================
name            the file's stem                      text; "default" built in, "space" for a dict
metric          null (the task's default)            one of accuracy, rmse, mae
layers          {low: 1, high: 3}                    whole numbers in [1, 32]
units           {low: 16, high: 1024, log: true}     whole numbers in [1, 65536]; may be per layer
dropout         {low: 0.0, high: 0.5}                numbers in [0, 1)
activation      [relu, sigmoid, tanh, elu]           names in vocabulary.ACTIVATIONS
loss            [categorical_crossentropy,           names in vocabulary.LOSSES
                mean_squared_error]
optimizer       [sgd, adam, rmsprop, adagrad]        names in vocabulary.OPTIMIZERS
learning_rate   {low: 0.0001, high: 1.0, log: true}  numbers > 0 (alias: lr, not both)
weight_decay    0.0                                  numbers >= 0
batch_size      [16, 32, 64, 128, 256]               whole numbers >= 1
epochs          27                                   one whole number >= 1: the maximum
patience        null (no early stopping)             null or one whole number >= 1
==============  ===================================  ============================================

Each hyperparameter (layers .. batch_size) takes one of these forms:

- a scalar, ``0.2``: fixed, never sampled (:class:`Fixed`);
- a list, ``[relu, tanh]``, or the mapping ``{choices: [relu, tanh]}``: one of them
  (:class:`Choice`);
- a mapping ``{low, high, log?, step?}``: a range (:class:`IntRange` for layers, units and
  batch_size; :class:`FloatRange` for the others). ``log`` needs ``low > 0`` and excludes ``step``;
- for ``units`` only, widths per hidden layer (:class:`PerLayer`): ``{per_layer: true, low: 16,
  high: 512}`` (or ``choices``) draws each layer's width from one distribution, and
  ``{per_layer: [spec1, spec2, ...]}`` gives one spec (any form above) per layer, at least as many
  as the most layers the space allows.

Numbers may be written as strings (PyYAML reads ``1e-3``, without a dot, as the string "1e-3");
booleans are never numbers. Names are canonicalised (``mse`` -> ``mean_squared_error``,
``none`` -> ``linear``). Every mistake raises :class:`~dltune.errors.SpaceError` naming the file,
the key (with a path such as ``units.per_layer[2].low``, lists counted from 0), the value, the rule
and the fix.

Optuna parameter names: ``layers``, ``units`` (one width for every layer) or ``units_1`` ..
``units_N`` (per layer; only the first ``layers`` are suggested, define-by-run), ``dropout``,
``activation``, ``loss``, ``optimizer``, ``learning_rate``, ``weight_decay``, ``batch_size``.
Fixed values are not suggested, so they do not appear in a trial's params.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, cast

import yaml

from dltune import vocabulary
from dltune.config import Config
from dltune.errors import SpaceError, did_you_mean

if TYPE_CHECKING:  # optuna is only needed for types here; importing it costs ~0.5 s at start-up
    import optuna

Scalar = int | float | str

# --------------------------------------------------------------------------------------------
# Parameters: the four forms a hyperparameter's values can take.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fixed:
    """One value, never sampled."""

    value: Scalar

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> Scalar:
        # A fixed value is not a parameter of the study: samplers would only waste effort on it.
        return self.value

    def values(self) -> list[Scalar]:
        return [self.value]

    def grid_values(self, key: str) -> list[Scalar]:
        return [self.value]

    def to_plain(self) -> Scalar:
        return self.value

    def describe(self) -> str:
        return f"fixed {self.value}"


@dataclass(frozen=True)
class Choice:
    """One of a list of values (names or numbers), sampled as a categorical."""

    options: tuple[Scalar, ...]

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> Scalar:
        return cast(Scalar, trial.suggest_categorical(name, list(self.options)))

    def values(self) -> list[Scalar]:
        return list(self.options)

    def grid_values(self, key: str) -> list[Scalar]:
        return list(self.options)

    def to_plain(self) -> list[Scalar]:
        return list(self.options)

    def describe(self) -> str:
        return "one of " + ", ".join(str(o) for o in self.options)


@dataclass(frozen=True)
class IntRange:
    """Whole numbers in [low, high], uniform or log-uniform, optionally on a grid of `step`."""

    low: int
    high: int
    log: bool = False
    step: int | None = None

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step or 1, log=self.log)

    def grid_values(self, key: str) -> list[Scalar]:
        raise _grid_error([self.grid_hint(key)])

    def grid_hint(self, key: str) -> str:
        return _grid_hint(key, self, _int_examples(self))

    def to_plain(self) -> dict[str, Any]:
        return _range_plain(self.low, self.high, self.log, self.step)

    def describe(self) -> str:
        kind = "log-uniform integers" if self.log else "integers"
        return _range_text(kind, self.low, self.high, self.step)


@dataclass(frozen=True)
class FloatRange:
    """Real numbers in [low, high], uniform or log-uniform, optionally on a grid of `step`."""

    low: float
    high: float
    log: bool = False
    step: float | None = None

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def grid_values(self, key: str) -> list[Scalar]:
        raise _grid_error([self.grid_hint(key)])

    def grid_hint(self, key: str) -> str:
        return _grid_hint(key, self, _float_examples(self))

    def to_plain(self) -> dict[str, Any]:
        return _range_plain(self.low, self.high, self.log, self.step)

    def describe(self) -> str:
        return _range_text("log-uniform" if self.log else "uniform", self.low, self.high, self.step)


Param = Fixed | Choice | IntRange | FloatRange


@dataclass(frozen=True)
class PerLayer:
    """Hidden-layer widths drawn per layer: from one distribution (`each`) or one spec per layer."""

    each: Param | None = None  # `per_layer: true`: every layer draws from this
    specs: tuple[Param, ...] = ()  # `per_layer: [...]`: layer k (from 1) draws from specs[k - 1]

    def for_layer(self, k: int) -> Param:
        """The distribution of layer `k`, counted from 1 like the Optuna names units_1, units_2."""
        return self.each if self.each is not None else self.specs[k - 1]

    def label(self, k: int) -> str:
        """Where layer `k`'s spec is written in the space, for error messages."""
        return "units" if self.each is not None else f"units.per_layer[{k - 1}]"

    def to_plain(self) -> dict[str, Any]:
        if self.each is None:
            return {"per_layer": [spec.to_plain() for spec in self.specs]}
        inner = self.each.to_plain()
        # a Choice's plain form is a list; next to per_layer it needs its mapping form
        return {"per_layer": True, **(inner if isinstance(inner, dict) else {"choices": inner})}

    def describe(self) -> str:
        if self.each is not None:
            return f"per layer, each {self.each.describe()}"
        return "; ".join(f"layer {k}: {s.describe()}" for k, s in enumerate(self.specs, 1))


def _range_plain(low: float, high: float, log: bool, step: float | None) -> dict[str, Any]:
    plain: dict[str, Any] = {"low": low, "high": high}
    if log:
        plain["log"] = True
    if step is not None:
        plain["step"] = step
    return plain


def _range_text(kind: str, low: float, high: float, step: float | None) -> str:
    text = f"{kind} in [{low:g}, {high:g}]"
    return text if step is None else f"{text}, step {step:g}"


def _grid_hint(key: str, param: IntRange | FloatRange, examples: list[Scalar]) -> str:
    listed = ", ".join(str(v) for v in examples)
    return f"key {key!r} is a range ({param.describe()}); give a list such as [{listed}]"


def _grid_error(hints: list[str], source: str = "") -> SpaceError:
    where = f"{source}: " if source else ""
    return SpaceError(
        f"{where}the grid sampler needs lists of values: {'; '.join(hints)} or use --sampler tpe"
    )


def _int_examples(r: IntRange) -> list[Scalar]:
    step = r.step or 1
    if (r.high - r.low) // step < 8:  # few enough to list them all
        return list(range(r.low, r.high + 1, step))
    if r.log:
        points = _geometric(r.low, r.high, 5)
    else:
        points = [r.low + (r.high - r.low) * i / 4 for i in range(5)]
    return sorted({r.low + round((p - r.low) / step) * step for p in points})


def _float_examples(r: FloatRange) -> list[Scalar]:
    points = _geometric(r.low, r.high, 5) if r.log else _linear(r.low, r.high, 5)
    if r.step is not None:
        points = [r.low + round((p - r.low) / r.step) * r.step for p in points]
    return sorted({float(f"{p:.3g}") for p in points})


def _geometric(low: float, high: float, n: int) -> list[float]:
    ratio = (high / low) ** (1 / (n - 1))
    return [low * ratio**i for i in range(n)]


def _linear(low: float, high: float, n: int) -> list[float]:
    return [low + (high - low) * i / (n - 1) for i in range(n)]


# --------------------------------------------------------------------------------------------
# The rules each key's values must follow.
# --------------------------------------------------------------------------------------------


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
    "layers": _Rule("int", 1, 32, hint="Use a count such as 2."),
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

PARAM_KEYS: tuple[str, ...] = tuple(_RULES)
KEYS: tuple[str, ...] = ("name", "metric", *PARAM_KEYS, "epochs", "patience")
_ALIASES = {"lr": "learning_rate"}

# The defaults, in the plain form a space file would give them (parsed like any user value).
_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "metric": None,
        "layers": {"low": 1, "high": 3},
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
    }
)

_RANGE_KEYS = ("low", "high", "log", "step")
_VOCABULARY: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "activation": (vocabulary.ACTIVATIONS, vocabulary.ACTIVATION_ALIASES),
    "loss": (tuple(vocabulary.LOSSES), vocabulary.LOSS_ALIASES),
    "optimizer": (vocabulary.OPTIMIZERS, vocabulary.OPTIMIZER_ALIASES),
}


def _show(value: Any) -> str:
    """A value as the user wrote it (YAML spelling for null and booleans)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return repr(value)


def _unknown(head: str, value: object, options: list[str]) -> str:
    """`head` ("activation 'rleu' is not known") plus "; did you mean 'relu'?" when one is close."""
    hint = did_you_mean(value, options)
    return f"{head};{hint}" if hint else f"{head}."


# --------------------------------------------------------------------------------------------
# The parser: plain data in, validated parameters out. Each method checks one form.
# --------------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, message: str) -> SpaceError:
        return SpaceError(f"{self.source}: {message}")

    # ---- single values ----

    def number(self, value: Any, rule: _Rule, path: str) -> int | float:
        """A number of the rule's kind, from a number or a numeric string; bounds not checked."""
        if isinstance(value, bool):  # YAML `true` is an int to Python, never a number to a user
            raise self.error(
                f"{path} must be a number, not a boolean; got {_show(value)}. {rule.hint}".strip()
            )
        if isinstance(value, str):
            try:
                number: float = float(value.strip())  # PyYAML reads `1e-3` (no dot) as text
            except ValueError:
                raise self.error(f"{path} must be a number; got {_show(value)}.") from None
        elif isinstance(value, numbers.Integral):
            number = int(value)
        elif isinstance(value, numbers.Real):
            number = float(value)
        else:
            raise self.error(f"{path} must be a number; got {_show(value)}. {rule.hint}".strip())
        if not math.isfinite(number):
            raise self.error(f"{path} must be a finite number; got {_show(value)}. {rule.hint}")
        if rule.kind != "int":
            return float(number)
        if not float(number).is_integer():
            raise self.error(f"{path} must be a whole number; got {_show(value)}. {rule.hint}")
        return int(number)

    def bounded(self, value: Any, rule: _Rule, path: str) -> int | float:
        number = self.number(value, rule, path)
        if not rule.allows(number):
            shown = _show(value if isinstance(value, numbers.Real) else number)  # as written
            raise self.error(f"{path} must be {rule.text()}; got {shown}. {rule.hint}".strip())
        return number

    def name(self, value: Any, kind: str, path: str) -> str:
        names, aliases = _VOCABULARY[kind]
        if not isinstance(value, str):
            raise self.error(
                f"{path} must be a name such as {names[0]!r}; got {_show(value)}. "
                f"Choose from: {', '.join(names)}."
            )
        canonical = vocabulary.canonical(kind, value)
        if canonical is None:
            options = [*names, *aliases]
            head = _unknown(f"{path} {_show(value)} is not known", value, options)
            raise self.error(f"{head} Choose from: {', '.join(names)}.")
        return canonical

    def scalar(self, value: Any, key: str, path: str) -> Scalar:
        rule = _RULES[key]
        if rule.kind == "name":
            return self.name(value, key, path)
        return self.bounded(value, rule, path)

    # ---- the value forms ----

    def param(self, value: Any, key: str, path: str) -> Param:
        """One key's value in any shared form: scalar, list, range or {choices: [...]}."""
        if value is None:
            raise self.error(
                f"{path} is null; give a value, or remove the key to use the default "
                f"{_show(_DEFAULTS[key])}."
            )
        if isinstance(value, Mapping):
            return self.mapping(value, key, path)
        if isinstance(value, list | tuple):
            return self.choice(value, key, path)
        return Fixed(self.scalar(value, key, path))

    def units(self, value: Any, path: str) -> Param | PerLayer:
        """`units` takes the shared forms, and also the per-layer ones."""
        if isinstance(value, Mapping) and "per_layer" in value:
            return self.per_layer(value, path)
        return self.param(value, "units", path)

    def choice(self, items: Any, key: str, path: str) -> Choice:
        if not isinstance(items, list | tuple):
            raise self.error(f"{path} must be a list of values; got {_show(items)}.")
        if not items:
            raise self.error(
                f"{path} is an empty list {_show(items)}: there is nothing to choose from; "
                "give at least one value, or remove the key to use the default."
            )
        options: list[Scalar] = []
        for i, item in enumerate(items):
            if isinstance(item, Mapping | list | tuple) or item is None:
                raise self.error(f"{path}[{i}] must be a single value; got {_show(item)}.")
            option = self.scalar(item, key, f"{path}[{i}]")
            if option in options:
                first = options.index(option)
                raise self.error(
                    f"{path} lists {_show(option)} twice (items {first}: {_show(items[first])} "
                    f"and {i}: {_show(item)}); each choice must be different."
                )
            options.append(option)
        return Choice(tuple(options))

    def mapping(self, m: Mapping[Any, Any], key: str, path: str) -> Param:
        allowed = [*_RANGE_KEYS, "choices"]
        for sub in m:
            if sub == "per_layer":
                # top-level units with per_layer never get here (see `units`): this one is nested
                where = "nested inside per_layer" if key == "units" else f"used for {key}"
                raise self.error(f"{path}.per_layer cannot be {where}; it applies to units only.")
            if sub not in allowed:
                head = _unknown(f"{path}: unknown key {_show(sub)}", sub, allowed)
                raise self.error(f"{head} Known keys: {', '.join(allowed)}.")
        if "choices" in m:
            others = [str(k) for k in m if k != "choices"]
            if others:
                raise self.error(
                    f"{path}: choices cannot be combined with {', '.join(others)}; "
                    f"give either choices or a range. Got {_show(m)}."
                )
            return self.choice(m["choices"], key, f"{path}.choices")
        if _RULES[key].kind == "name":
            raise self.error(
                f"{path} is categorical: give a name or a list of names, not a range; "
                f"got {_show(m)}."
            )
        return self.range(m, key, path)

    def range(self, m: Mapping[Any, Any], key: str, path: str) -> IntRange | FloatRange:
        rule = _RULES[key]
        missing = [k for k in ("low", "high") if k not in m]
        if missing:
            raise self.error(
                f"{path}: a range needs both low and high; {' and '.join(missing)} missing "
                f"in {_show(m)}. Or give a list of values."
            )
        low = self.bounded(m["low"], rule, f"{path}.low")
        high = self.bounded(m["high"], rule, f"{path}.high")
        log = m.get("log", False)
        if not isinstance(log, bool):
            raise self.error(f"{path}.log must be true or false; got {_show(log)}.")
        step = m.get("step")
        if low > high:
            raise self.error(
                f"{path}: low {_show(low)} is greater than high {_show(high)}; swap them."
            )
        if log and step is not None:
            raise self.error(
                f"{path}: log and step cannot be combined (Optuna samples on a log scale or on a "
                f"grid of steps, not both); remove one. Got {_show(m)}."
            )
        if log and low <= 0:
            raise self.error(
                f"{path}: log: true needs low > 0 (a log scale has no zero); got low {_show(low)}. "
                "Set low to a small positive value such as 1e-05, or remove log."
            )
        if step is not None:
            step = self.step(step, rule, low, high, f"{path}.step")
        if rule.kind == "int":
            return IntRange(int(low), int(high), log, None if step is None else int(step))
        return FloatRange(float(low), float(high), log, step)

    def step(self, value: Any, rule: _Rule, low: float, high: float, path: str) -> int | float:
        step_rule = _Rule(rule.kind, 0, low_open=True, hint="")
        step = self.bounded(value, step_rule, path)
        count = (high - low) / step
        # Optuna would silently lower `high` to the last step; say so instead.
        if abs(count - round(count)) > 1e-9 * max(1.0, count):
            last = low + math.floor(count + 1e-9) * step
            raise self.error(
                f"{path}: high - low must be a multiple of step {_show(step)}; got low "
                f"{_show(low)}, high {_show(high)}. Use high {last:g}, or another step."
            )
        return step

    def per_layer(self, m: Mapping[Any, Any], path: str) -> Param | PerLayer:
        flag = m["per_layer"]
        rest = {k: v for k, v in m.items() if k != "per_layer"}
        if isinstance(flag, bool):
            if not rest:
                raise self.error(
                    f"{path}: per_layer: {_show(flag)} needs a distribution next to it: low/high "
                    f"(with log or step) or choices; got {_show(m)}."
                )
            param = self.mapping(rest, "units", path)
            return PerLayer(each=param) if flag else param
        if isinstance(flag, list | tuple):
            if rest:
                raise self.error(
                    f"{path}: with per_layer as a list each entry is one layer's spec; move "
                    f"{', '.join(map(str, rest))} into the entries. Got {_show(m)}."
                )
            if not flag:
                raise self.error(f"{path}.per_layer is an empty list; give one spec per layer.")
            specs = (self.param(v, "units", f"{path}.per_layer[{i}]") for i, v in enumerate(flag))
            return PerLayer(specs=tuple(specs))
        raise self.error(
            f"{path}.per_layer must be true or a list of one spec per layer; got {_show(flag)}."
        )

    # ---- the keys that are not sampled ----

    def fixed_count(self, value: Any, key: str, why: str) -> int:
        if isinstance(value, Mapping | list | tuple):
            raise self.error(f"{key} must be a single whole number; got {_show(value)}. {why}")
        return int(self.bounded(value, _EPOCHS_RULE, key))

    def metric(self, value: Any) -> str | None:
        if value is None:
            return None
        options = list(vocabulary.METRICS)
        if not isinstance(value, str) or value.strip().lower() not in vocabulary.METRICS:
            head = _unknown(f"metric {_show(value)} is not known", value, options)
            raise self.error(
                f"{head} Choose from: {', '.join(options)}, or null for the task's default."
            )
        return value.strip().lower()

    def space_name(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(f"name must be non-empty text; got {_show(value)}.")
        return value.strip()


_EPOCHS_WHY = (
    "epochs is the maximum number of epochs, not a hyperparameter to sample: each trial "
    "records its best epoch (and may stop early), so give the most you will allow, such as 27."
)
_PATIENCE_WHY = "patience is the number of epochs without improvement before a trial stops early."


def _top_keys(parser: _Parser, data: Any) -> dict[str, Any]:
    """The user's keys as a dict, checked for unknown names and for lr with learning_rate."""
    if not isinstance(data, Mapping):
        raise parser.error(
            "the top level must be a mapping of keys to values, such as "
            f"'layers: {{low: 1, high: 3}}'; got {type(data).__name__} {_show(data)[:80]}."
        )
    known = [*KEYS, *_ALIASES]
    for key in data:
        if key not in known:
            head = _unknown(f"unknown key {_show(key)}", key, known)
            raise parser.error(
                f"{head} Known keys: {', '.join(KEYS)} (lr is an alias of learning_rate)."
            )
    keys = dict(data)
    if "lr" in keys and "learning_rate" in keys:
        raise parser.error(
            f"give either lr or learning_rate, not both (lr is an alias); got lr "
            f"{_show(keys['lr'])} and learning_rate {_show(keys['learning_rate'])}."
        )
    return keys


def _parse_params(parser: _Parser, keys: dict[str, Any]) -> dict[str, Param | PerLayer]:
    params: dict[str, Param | PerLayer] = {}
    for key in PARAM_KEYS:
        path = "lr" if key == "learning_rate" and "lr" in keys else key
        value = keys.get(path, _DEFAULTS[key])
        params[key] = (
            parser.units(value, path) if key == "units" else parser.param(value, key, path)
        )
    most, units = _max_of(params["layers"]), params["units"]
    if isinstance(units, PerLayer) and units.each is None and len(units.specs) < most:
        raise parser.error(
            f"units.per_layer has {len(units.specs)} entries but layers can be up to {most}; "
            f"give one spec per layer (at least {most}). Got {_show(keys.get('units'))}."
        )
    return params


def _max_of(layers: Param | PerLayer) -> int:
    """The most layers a `layers` parameter allows."""
    if isinstance(layers, PerLayer):  # the parser never makes one for `layers`
        raise TypeError("layers cannot be per layer")
    if isinstance(layers, Fixed):
        return int(layers.value)
    if isinstance(layers, Choice):
        return max(int(v) for v in layers.options)
    return int(layers.high)


# --------------------------------------------------------------------------------------------
# Reading a file.
# --------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice (PyYAML would quietly keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` merges may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool):
                continue  # an unhashable key: the base class says so, with its line
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _read_yaml(path: Path, source: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpaceError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise SpaceError(f"{source}: is a directory, not a space file") from None
    except UnicodeDecodeError:
        raise SpaceError(f"{source}: not UTF-8 text; save the space file as UTF-8") from None
    except OSError as exc:
        raise SpaceError(f"{source}: cannot be read ({exc.strerror})") from None
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader: no arbitrary objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or ""
        if exc.context:  # "while parsing a flow sequence": says which bracket is unclosed
            problem = f"{problem} ({exc.context})" if problem else exc.context
        raise SpaceError(f"{source}: not valid YAML{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise SpaceError(f"{source}: not valid YAML: {exc}") from None


# --------------------------------------------------------------------------------------------
# The space.
# --------------------------------------------------------------------------------------------


class SearchSpace:
    """A validated search space. Build it from keywords, a dict, a YAML file, or the defaults."""

    KEYS: ClassVar[tuple[str, ...]] = KEYS
    PARAM_KEYS: ClassVar[tuple[str, ...]] = PARAM_KEYS

    name: str
    metric: str | None
    epochs: int
    patience: int | None
    source: str
    params: Mapping[str, Param | PerLayer]

    def __init__(self, **keys: Any) -> None:
        self._load(keys, "<dict>", "space")

    def _load(self, data: Any, source: str, default_name: str) -> None:
        parser = _Parser(source)
        keys = _top_keys(parser, data)
        self.source = source
        self.name = parser.space_name(keys.get("name", default_name))
        self.metric = parser.metric(keys.get("metric"))
        self.params = MappingProxyType(_parse_params(parser, keys))
        self.epochs = parser.fixed_count(
            keys.get("epochs", _DEFAULTS["epochs"]), "epochs", _EPOCHS_WHY
        )
        patience = keys.get("patience")
        self.patience = (
            None if patience is None else parser.fixed_count(patience, "patience", _PATIENCE_WHY)
        )

    @classmethod
    def _build(cls, data: Any, source: str, default_name: str) -> SearchSpace:
        space = cls.__new__(cls)
        space._load(data, source, default_name)
        return space

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any], source: str = "<dict>") -> SearchSpace:
        return cls._build(mapping, source, "space")

    @classmethod
    def from_file(cls, path: str | Path) -> SearchSpace:
        """Read a YAML space file; an empty file is the default space (named after the file)."""
        path = Path(path)
        data = _read_yaml(path, str(path))
        return cls._build({} if data is None else data, str(path), path.stem)

    @classmethod
    def default(cls) -> SearchSpace:
        return cls._build({}, "<default>", "default")

    # ---- reading it ----

    @property
    def max_layers(self) -> int:
        return _max_of(self.params["layers"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SearchSpace):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __reduce__(self) -> tuple[Any, ...]:
        # params is a read-only MappingProxyType, which pickle refuses: travel as plain data
        return (_rebuild, (self.to_dict(), self.source))

    def __repr__(self) -> str:
        return f"SearchSpace(name={self.name!r}, source={self.source!r})"

    def to_dict(self) -> dict[str, Any]:
        """Every key with canonical names (learning_rate, not lr): YAML- and JSON-able."""
        plain: dict[str, Any] = {"name": self.name, "metric": self.metric}
        plain.update({key: self.params[key].to_plain() for key in PARAM_KEYS})
        plain.update({"epochs": self.epochs, "patience": self.patience})
        return plain

    def to_yaml(self) -> str:
        # flow style for leaves keeps `activation: [relu, tanh]` on one line, as people write it
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    def describe(self) -> list[tuple[str, str]]:
        """(key, description) rows, for `dltune space --show`."""
        rows = [("name", self.name), ("metric", self.metric or "the task's default")]
        rows += [(key, self.params[key].describe()) for key in PARAM_KEYS]
        rows.append(("epochs", f"at most {self.epochs}; each trial records its best epoch"))
        patience = "off" if self.patience is None else f"{self.patience} epochs without improvement"
        rows.append(("patience", patience))
        return rows

    # ---- sampling ----

    def suggest(self, trial: optuna.trial.BaseTrial) -> Config:
        """Draw one configuration; define-by-run, so units_k exists only for k <= layers."""
        values: dict[str, Any] = {}
        for key in PARAM_KEYS:
            param = self.params[key]
            if isinstance(param, PerLayer):
                layers = int(values["layers"])
                values[key] = [
                    param.for_layer(k).suggest(trial, f"units_{k}") for k in range(1, layers + 1)
                ]
            else:
                values[key] = param.suggest(trial, key)
        return self._config(values)

    def config_from_params(self, params: Mapping[str, Any]) -> Config:
        """The Config a trial with these Optuna params trained: the inverse of :meth:`suggest`."""

        def value(param: Param, name: str) -> Any:
            if isinstance(param, Fixed):
                return param.value
            if name not in params:
                raise SpaceError(
                    f"{self.source}: the trial's params lack {name!r}, which space {self.name!r} "
                    f"samples; was the study made with another space? Params: {_show(dict(params))}"
                )
            return params[name]

        values: dict[str, Any] = {}
        for key in PARAM_KEYS:
            param = self.params[key]
            if isinstance(param, PerLayer):
                layers = int(values["layers"])
                values[key] = [
                    value(param.for_layer(k), f"units_{k}") for k in range(1, layers + 1)
                ]
            else:
                values[key] = value(param, key)
        return self._config(values)

    def _config(self, values: dict[str, Any]) -> Config:
        layers = int(values["layers"])
        units = values["units"]
        widths = tuple(int(u) for u in units) if isinstance(units, list) else (int(units),) * layers
        return Config(
            layers=layers,
            units=widths,
            dropout=float(values["dropout"]),
            activation=str(values["activation"]),
            loss=str(values["loss"]),
            optimizer=str(values["optimizer"]),
            learning_rate=float(values["learning_rate"]),
            weight_decay=float(values["weight_decay"]),
            batch_size=int(values["batch_size"]),
            epochs=self.epochs,
        )

    def _sampled(self) -> list[tuple[str, str, Param]]:
        """(Optuna name, key as written, param) for every param that is not fixed."""
        out: list[tuple[str, str, Param]] = []
        for key in PARAM_KEYS:
            param = self.params[key]
            if isinstance(param, PerLayer):
                specs = [
                    (f"units_{k}", param.label(k), param.for_layer(k)) for k in self._layer_ks()
                ]
                out += [spec for spec in specs if not isinstance(spec[2], Fixed)]
            elif not isinstance(param, Fixed):
                out.append((key, key, param))
        return out

    def _layer_ks(self) -> range:
        return range(1, self.max_layers + 1)

    def grid(self) -> dict[str, list[Scalar]]:
        """The search_space for optuna.samplers.GridSampler: every sampled param's values.

        Per-layer widths give units_1 .. units_<max_layers>; a trial with fewer layers ignores the
        rest, so such a grid repeats those configurations (GridSampler crosses every list).
        """
        grid: dict[str, list[Scalar]] = {}
        hints: list[str] = []  # every range, so that one error lists all there are to fix
        for name, label, param in self._sampled():
            if isinstance(param, IntRange | FloatRange):
                hint = param.grid_hint(label)
                hints += [] if hint in hints else [hint]
            else:
                grid[name] = param.grid_values(label)
        if hints:
            raise _grid_error(hints, self.source)
        return grid

    # ---- fitting a task ----

    def for_task(self, task: str) -> tuple[SearchSpace, list[str]]:
        """This space with only the losses that apply to `task`, and a note per dropped loss."""
        if task not in vocabulary.TASKS:
            raise SpaceError(
                f"{self.source}: task {task!r} is not known; "
                f"choose from: {', '.join(vocabulary.TASKS)}."
            )
        self._check_metric(task)
        applicable = [name for name in vocabulary.LOSSES if vocabulary.loss_applies(name, task)]
        loss = self.params["loss"]
        if not isinstance(loss, Fixed | Choice):  # the parser makes only these for a name key
            raise TypeError(f"loss is {loss!r}")
        kept = [name for name in loss.values() if vocabulary.loss_applies(str(name), task)]
        dropped = [name for name in loss.values() if name not in kept]
        if isinstance(loss, Fixed) and dropped:
            raise SpaceError(
                f"{self.source}: loss {loss.value!r} does not apply to a {task} target. "
                f"Losses that apply: {', '.join(applicable)}."
            )
        if not kept:
            raise SpaceError(
                f"{self.source}: none of the losses in loss ({', '.join(map(str, dropped))}) "
                f"applies to a {task} target. Losses that apply: {', '.join(applicable)}."
            )
        if not dropped:
            return self, []
        notes = [
            f"loss {name!r} does not apply to a {task} target; dropped from the choices"
            for name in dropped
        ]
        plain = self.to_dict() | {"loss": kept}
        return SearchSpace._build(plain, self.source, self.name), notes

    def _check_metric(self, task: str) -> None:
        if self.metric is None or vocabulary.METRICS[self.metric][0] == task:
            return
        fitting = [m for m, (t, _) in vocabulary.METRICS.items() if t == task]
        raise SpaceError(
            f"{self.source}: metric {self.metric!r} is for {vocabulary.METRICS[self.metric][0]}, "
            f"but the target is {task}; use {' or '.join(fitting)}, or null for the default "
            f"({vocabulary.DEFAULT_METRIC[task]})."
        )


def _rebuild(plain: dict[str, Any], source: str) -> SearchSpace:
    """Unpickle a space from its plain form (see SearchSpace.__reduce__)."""
    return SearchSpace.from_dict(plain, source=source)
