"""The value forms of a hyperparameter: fixed, a choice, an int or float range, per layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from dltune.errors import SpaceError, param

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
        return f"fixed {_text(self.value)}"


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
        return "one of " + ", ".join(_text(o) for o in self.options)


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
    """Values drawn per layer (hidden-layer widths; a convolutional block's filters or kernel
    size): from one distribution (`each`) or one spec per layer."""

    each: Param | None = None  # `per_layer: true`: every layer draws from this
    specs: tuple[Param, ...] = ()  # `per_layer: [...]`: layer k (from 1) draws from specs[k - 1]
    key: str = "units"  # or "filters", "kernel_size": per convolutional block

    def for_layer(self, k: int) -> Param:
        """The distribution of layer `k`, counted from 1 like the Optuna names units_1, units_2."""
        return self.each if self.each is not None else self.specs[k - 1]

    def name(self, k: int) -> str:
        """Layer `k`'s Optuna name: units_1, filters_2, ..."""
        return f"{self.key}_{k}"

    def label(self, k: int) -> str:
        """Where layer `k`'s spec is written in the space, for error messages."""
        return self.key if self.each is not None else f"{self.key}.per_layer[{k - 1}]"

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


def _text(value: Scalar) -> str:
    """A value as a space file writes it (true/false for booleans)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


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
        f"{where}the grid sampler needs lists of values: {'; '.join(hints)} or use "
        f"{param('sampler', shown='tpe')}"
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
