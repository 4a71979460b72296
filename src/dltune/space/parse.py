"""Parsing a space's plain data: values checked against the rules, errors that say the fix."""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Mapping
from typing import Any

from dltune import vocabulary
from dltune.errors import SpaceError

from .params import Choice, Fixed, FloatRange, IntRange, Param, PerLayer, Scalar
from .rules import (
    _ALIASES,
    _CONV_DEFAULTS,
    _DEFAULTS,
    _EPOCHS_RULE,
    _MIN_EPOCHS_RULE,
    _RANGE_KEYS,
    _REDUCTION_RULE,
    _RULES,
    _VOCABULARY,
    CONV_PARAM_KEYS,
    KEYS,
    PARAM_KEYS,
    PER_LAYER_KEYS,
    _Rule,
    _show,
    _unknown,
)


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
            if abs(number) > sys.float_info.max:  # math.isfinite would raise OverflowError
                raise self.error(
                    f"{path} must be a number of a sensible size; got an integer of "
                    f"{len(str(abs(number)))} digits. {rule.hint}".strip()
                )
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

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(f"{path} must be true or false; got {_show(value)}.")
        return value

    def scalar(self, value: Any, key: str, path: str) -> Scalar:
        rule = _RULES[key]
        if rule.kind == "name":
            return self.name(value, key, path)
        if rule.kind == "bool":
            return self.boolean(value, path)
        return self.bounded(value, rule, path)

    # ---- the value forms ----

    def param(self, value: Any, key: str, path: str) -> Param:
        """One key's value in any shared form: scalar, list, range or {choices: [...]}."""
        if value is None:
            raise self.error(
                f"{path} is null; give a value, or remove the key to use the default "
                f"{_show(_default_of(key))}."
            )
        if isinstance(value, Mapping):
            return self.mapping(value, key, path)
        if isinstance(value, list | tuple):
            return self.choice(value, key, path)
        return Fixed(self.scalar(value, key, path))

    def layered(self, value: Any, key: str, path: str) -> Param | PerLayer:
        """`units`, `filters` and `kernel_size` take the shared forms, and also the per-layer
        ones."""
        if isinstance(value, Mapping) and "per_layer" in value:
            return self.per_layer(value, key, path)
        return self.param(value, key, path)

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
                # a per-layer key's per_layer never gets here (see `layered`): this one is nested
                where = "nested inside per_layer" if key in PER_LAYER_KEYS else f"used for {key}"
                raise self.error(
                    f"{path}.per_layer cannot be {where}; it applies to units, filters and "
                    "kernel_size only."
                )
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
        if _RULES[key].kind == "bool":
            raise self.error(
                f"{path} is true or false: give one of them or the list [false, true], not a "
                f"range; got {_show(m)}."
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
        if not math.isfinite(count):  # a subnormal step such as 1e-320: round(inf) would raise
            raise self.error(
                f"{path}: step {_show(step)} is too small for low {_show(low)} and high "
                f"{_show(high)}: the range would have more steps than a number can count. "
                "Use a larger step, or remove it."
            )
        # Optuna would silently lower `high` to the last step; say so instead.
        if abs(count - round(count)) > 1e-9 * max(1.0, count):
            last = low + math.floor(count + 1e-9) * step
            raise self.error(
                f"{path}: high - low must be a multiple of step {_show(step)}; got low "
                f"{_show(low)}, high {_show(high)}. Use high {last:g}, or another step."
            )
        return step

    def per_layer(self, m: Mapping[Any, Any], key: str, path: str) -> Param | PerLayer:
        flag = m["per_layer"]
        rest = {k: v for k, v in m.items() if k != "per_layer"}
        if isinstance(flag, bool):
            if not rest:
                raise self.error(
                    f"{path}: per_layer: {_show(flag)} needs a distribution next to it: low/high "
                    f"(with log or step) or choices; got {_show(m)}."
                )
            param = self.mapping(rest, key, path)
            return PerLayer(each=param, key=key) if flag else param
        if isinstance(flag, list | tuple):
            if rest:
                raise self.error(
                    f"{path}: with per_layer as a list each entry is one layer's spec; move "
                    f"{', '.join(map(str, rest))} into the entries. Got {_show(m)}."
                )
            if not flag:
                raise self.error(f"{path}.per_layer is an empty list; give one spec per layer.")
            specs = (self.param(v, key, f"{path}.per_layer[{i}]") for i, v in enumerate(flag))
            return PerLayer(specs=tuple(specs), key=key)
        raise self.error(
            f"{path}.per_layer must be true or a list of one spec per layer; got {_show(flag)}."
        )

    # ---- the keys that are not sampled ----

    def fixed_count(self, value: Any, key: str, why: str) -> int:
        if isinstance(value, Mapping | list | tuple):
            raise self.error(f"{key} must be a single whole number; got {_show(value)}. {why}")
        return int(self.bounded(value, _EPOCHS_RULE, key))

    def min_epochs(self, value: Any, epochs: int) -> float:
        """The lowest rung, in epochs: a fraction of an epoch, or up to `epochs`."""
        if isinstance(value, Mapping | list | tuple):
            raise self.error(f"min_epochs must be a single number; got {_show(value)}. {_MIN_WHY}")
        number = float(self.bounded(value, _MIN_EPOCHS_RULE, "min_epochs"))
        if number > epochs:
            raise self.error(
                f"min_epochs must be at most epochs ({epochs}); got {_show(value)}. {_MIN_WHY}"
            )
        if number < 1 and not _whole_fraction(number):
            raise self.error(
                f"min_epochs under 1 must be a whole fraction of an epoch (1/2, 1/4, 1/10 ...); "
                f"got {_show(value)}. Use 0.25 rather than 0.3, for instance."
            )
        return number

    def reduction(self, value: Any) -> int:
        if isinstance(value, Mapping | list | tuple):
            raise self.error(f"reduction must be a single whole number; got {_show(value)}.")
        return int(self.bounded(value, _REDUCTION_RULE, "reduction"))

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

    def objectives(self, value: Any, metric: str | None) -> tuple[str | None, tuple[str, ...]]:
        """The `objectives` key: at most one metric (it goes first whatever its place, since
        it is the one trained towards) and costs known before training (vocabulary.COSTS).
        Returns (the metric, or `metric` when the list names none; the costs)."""
        if value is None:
            return metric, ()
        if isinstance(value, str):
            value = [value]
        known = [*vocabulary.METRICS, *vocabulary.COSTS]
        if not isinstance(value, list | tuple) or not value:
            raise self.error(
                f"objectives must be a list of names, such as [accuracy, parameters]; got "
                f"{_show(value)}. Names: {', '.join(known)}."
            )
        names = [self._objective_name(v, known) for v in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise self.error(f"objectives names {twice[0]!r} twice; name each objective once.")
        metrics = [n for n in names if n in vocabulary.METRICS]
        if len(metrics) > 1:
            raise self.error(
                f"objectives names {len(metrics)} metrics ({', '.join(metrics)}); a study trains "
                "towards one metric: keep one, beside costs such as parameters or latency."
            )
        if metrics and metric is not None and metrics[0] != metric:
            raise self.error(
                f"objectives names the metric {metrics[0]!r} but metric is {metric!r}; "
                "give the same one, or leave one of them out."
            )
        return (metrics[0] if metrics else metric), tuple(n for n in names if n in vocabulary.COSTS)

    def _objective_name(self, value: Any, known: list[str]) -> str:
        name = value.strip().lower() if isinstance(value, str) else None
        if name in known:
            return name
        head = _unknown(f"objective {_show(value)} is not known", value, known)
        costs = "; ".join(f"{n}: {why}" for n, why in vocabulary.COSTS.items())
        raise self.error(
            f"{head} Choose metrics from: {', '.join(vocabulary.METRICS)}; or costs ({costs})."
        )

    def space_name(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(f"name must be non-empty text; got {_show(value)}.")
        return value.strip()


def _whole_fraction(number: float) -> bool:
    """Whether 0 < number < 1 is 1/k for a whole k (1e-320 is not: 1/1e-320 is infinite)."""
    try:
        k = 1 / number
    except OverflowError:
        return False
    return math.isfinite(k) and abs(k - round(k)) <= 1e-6


_EPOCHS_WHY = (
    "epochs is the maximum number of epochs, not a hyperparameter to sample: each trial "
    "records its best epoch (and may stop early), so give the most you will allow, such as 27."
)
_MIN_WHY = (
    "min_epochs is where successive halving first compares trials (its lowest rung); "
    "the next rungs are min_epochs times reduction, reduction squared, ... up to epochs."
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
            parser.layered(value, key, path)
            if key in PER_LAYER_KEYS
            else parser.param(value, key, path)
        )
    _check_per_layer(parser, params, keys, "units", "layers")
    return params


def _parse_conv(
    parser: _Parser, keys: Mapping[str, Any], defaults: bool
) -> dict[str, Param | PerLayer]:
    """The convolutional keys the space gives; with `defaults`, every one (the missing ones
    from their defaults), as for data with a shape."""
    given = {key: keys[key] for key in CONV_PARAM_KEYS if key in keys}
    if defaults:
        given = {key: given.get(key, _CONV_DEFAULTS[key]) for key in CONV_PARAM_KEYS}
    params: dict[str, Param | PerLayer] = {}
    for key, value in given.items():
        params[key] = (
            parser.layered(value, key, key)
            if key in PER_LAYER_KEYS
            else parser.param(value, key, key)
        )
    if "conv_layers" in params:
        for key in ("filters", "kernel_size"):
            _check_per_layer(parser, params, keys, key, "conv_layers")
    return params


def _check_per_layer(
    parser: _Parser,
    params: Mapping[str, Param | PerLayer],
    keys: Mapping[str, Any],
    key: str,
    count_key: str,
) -> None:
    """A per-layer list gives a spec for every layer the count allows."""
    spec = params.get(key)
    most = _max_of(params[count_key])
    if isinstance(spec, PerLayer) and spec.each is None and len(spec.specs) < most:
        raise parser.error(
            f"{key}.per_layer has {len(spec.specs)} entries but {count_key} can be up to "
            f"{most}; give one spec per layer (at least {most}). Got {_show(keys.get(key))}."
        )


def _default_of(key: str) -> Any:
    return _CONV_DEFAULTS[key] if key in _CONV_DEFAULTS else _DEFAULTS[key]


def _max_of(layers: Param | PerLayer) -> int:
    """The most layers a `layers` (or `conv_layers`) parameter allows."""
    if isinstance(layers, PerLayer):  # the parser never makes one for `layers`
        raise TypeError("layers cannot be per layer")
    if isinstance(layers, Fixed):
        return int(layers.value)
    if isinstance(layers, Choice):
        return max(int(v) for v in layers.options)
    return int(layers.high)


def _plain(param: Param | PerLayer) -> Param:
    if isinstance(param, PerLayer):  # only PER_LAYER_KEYS have per-layer specs
        raise TypeError(f"{param!r} is per layer")
    return param
