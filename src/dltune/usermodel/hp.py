"""`HyperParameters`: Keras Tuner's `hp` object, define-by-run on top of Optuna's suggest API.

A user's `build(hp)` asks for its hyperparameters while it builds (``hp.Int("filters", 16,
64)``); conditional parameters are plain ``if``s, since only what the build asks for exists.
The same build runs three ways:

- on an Optuna trial (:meth:`HyperParameters.from_trial`): each call is a
  ``trial.suggest_int/float/categorical``, so the sampler chooses;
- on stored values (:meth:`HyperParameters.from_values`): each call returns the value a trial
  chose (an engine, a worker, train-best and `dltune.load` rebuild the same module);
- on nothing (``HyperParameters()``): each call returns its default, for a dry build.

Optuna parameter names are the user's names, unprefixed, so that `best`, `trials` and the report
show ``filters``, not ``model.filters``. The space's training knobs (loss, optimizer,
learning_rate, ...) are Optuna parameters of the same trial where the space tunes them, so such
a name is refused on a trial that already holds it, with a message that says to rename
(:data:`RESERVED`); where the space fixes the knob (a Keras build's compile() gives it, as
Keras Tuner's ``Adam(hp.Choice("learning_rate", ...))`` does) the name is the build's. The
dense network's keys (layers, units, dropout, activation) are free, since they are not sampled
for a user model.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import DLTuneError
from ..space.rules import TRAINING_KEYS

if TYPE_CHECKING:
    import optuna

# Names the space's training knobs (and the study's own keys) use as Optuna parameters.
RESERVED: tuple[str, ...] = TRAINING_KEYS
SAMPLINGS = ("linear", "log")
Value = int | float | str | bool


class HyperParameterError(DLTuneError):
    """A hyperparameter asked for wrongly in build(hp): bad range, name clash, redefinition."""


@dataclass(frozen=True)
class Spec:
    """What one call asked for: its kind and arguments, to compare a second call with."""

    kind: str
    args: tuple[tuple[str, Any], ...]

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.args)
        return f"hp.{self.kind}({shown})"


class HyperParameters:
    """The `hp` a build function receives (Keras Tuner's names and signatures)."""

    def __init__(
        self,
        trial: optuna.trial.BaseTrial | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        self.trial = trial
        self._stored = dict(values or {})
        self._values: dict[str, Value] = {}  # in the order asked
        self._specs: dict[str, Spec] = {}
        self.sampled: list[str] = []  # the names that are Optuna parameters (not Fixed)

    @classmethod
    def from_trial(cls, trial: optuna.trial.BaseTrial) -> HyperParameters:
        return cls(trial=trial)

    @classmethod
    def from_values(cls, values: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> HyperParameters:
        """Replaying stored values: a Config's `model` (pairs) or a dict."""
        return cls(values=dict(values))

    @property
    def values(self) -> dict[str, Value]:
        """Each name asked and its value, in the order the build asked for them."""
        return dict(self._values)

    def specs(self) -> dict[str, Spec]:
        """Each name asked and what it was asked as (kind and arguments)."""
        return dict(self._specs)

    def get(self, name: str) -> Value:
        """The value of a parameter already asked for (Keras Tuner's hp.get)."""
        if name not in self._values:
            raise HyperParameterError(
                f"hp.get({name!r}): no hyperparameter of that name was asked for yet; "
                f"asked: {', '.join(self._values) or 'none'}"
            )
        return self._values[name]

    # ---- Keras Tuner's methods -------------------------------------------------------------

    def Int(
        self,
        name: str,
        min_value: int,
        max_value: int,
        step: int | None = None,
        sampling: str = "linear",
        default: int | None = None,
    ) -> int:
        """A whole number in [min_value, max_value]; `step` a grid (a factor with "log")."""
        args = _args(min_value=min_value, max_value=max_value, step=step, sampling=sampling)
        spec = Spec("Int", (*args, ("default", default)))
        self._check_range(name, spec, min_value, max_value, step, sampling, whole=True)
        grid = _log_grid(min_value, max_value, step, True) if _log_step(sampling, step) else None
        fallback = default if default is not None else min_value

        def suggest(trial: optuna.trial.BaseTrial) -> Value:
            if grid is not None:
                return int(trial.suggest_categorical(name, grid))
            log = sampling == "log"
            return trial.suggest_int(name, min_value, max_value, step=step or 1, log=log)

        return int(self._ask(name, spec, suggest, fallback))

    def Float(
        self,
        name: str,
        min_value: float,
        max_value: float,
        step: float | None = None,
        sampling: str = "linear",
        default: float | None = None,
    ) -> float:
        """A real number in [min_value, max_value], uniform or log-uniform ("log")."""
        args = _args(min_value=min_value, max_value=max_value, step=step, sampling=sampling)
        spec = Spec("Float", (*args, ("default", default)))
        self._check_range(name, spec, min_value, max_value, step, sampling, whole=False)
        grid = _log_grid(min_value, max_value, step, False) if _log_step(sampling, step) else None
        fallback = default if default is not None else min_value

        def suggest(trial: optuna.trial.BaseTrial) -> Value:
            if grid is not None:
                return float(trial.suggest_categorical(name, grid))
            return trial.suggest_float(name, min_value, max_value, step=step, log=sampling == "log")

        return float(self._ask(name, spec, suggest, fallback))

    def Choice(
        self,
        name: str,
        values: Sequence[Value],
        ordered: bool | None = None,
        default: Value | None = None,
    ) -> Any:
        """One of `values` (numbers, names or booleans), sampled as a categorical."""
        options = list(values)
        args = (("values", tuple(options)), ("ordered", ordered), ("default", default))
        spec = Spec("Choice", args)
        self._check_name(name, spec)
        if not options:
            raise HyperParameterError(f"{spec.describe()}: give at least one value")
        for option in options:
            if not isinstance(option, (int, float, str, bool)):
                raise HyperParameterError(
                    f"{spec.describe()}: {option!r} is a {type(option).__name__}; the values "
                    "must be numbers, strings or booleans (map names to objects inside build)"
                )
        if default is not None and default not in options:
            raise HyperParameterError(f"{spec.describe()}: default {default!r} is not a value")
        fallback = default if default is not None else options[0]
        return self._ask(
            name, spec, lambda trial: trial.suggest_categorical(name, options), fallback
        )

    def Boolean(self, name: str, default: bool = False) -> bool:
        """True or False, e.g. ``if hp.Boolean("pool"): ...``."""
        spec = Spec("Boolean", (("default", default),))
        self._check_name(name, spec)
        pick = [False, True]
        return bool(self._ask(name, spec, lambda t: t.suggest_categorical(name, pick), default))

    def Fixed(self, name: str, value: Value) -> Any:
        """One value, never sampled (recorded in `values`, not an Optuna parameter)."""
        spec = Spec("Fixed", (("value", value),))
        self._check_name(name, spec)
        if name in self._specs:
            return self._values[name]
        self._specs[name] = spec
        self._values[name] = value
        return value

    @contextlib.contextmanager
    def conditional_scope(self, parent_name: str, parent_values: Any) -> Iterator[None]:
        """Keras Tuner's scope of a conditional hyperparameter, accepted: define-by-run, a
        hyperparameter exists only where the build asked for it, so the scope adds nothing."""
        yield

    # ---- the common path -------------------------------------------------------------------

    def _ask(self, name: str, spec: Spec, suggest: Any, fallback: Value) -> Value:
        if name in self._specs:  # asked again with the same spec (checked): the same value
            return self._values[name]
        self._specs[name] = spec
        if self.trial is not None:
            value = suggest(self.trial)
            self.sampled.append(name)
        else:
            value = self._stored.get(name, fallback)
        self._values[name] = value
        return value

    def _check_name(self, name: str, spec: Spec) -> None:
        if not isinstance(name, str) or not name:
            raise HyperParameterError(f"{spec.describe()}: the name must be a non-empty string")
        if name in RESERVED and self.trial is not None and name in self.trial.params:
            compiled = name in ("learning_rate", "optimizer", "loss", "weight_decay")
            raise HyperParameterError(
                f"build(hp) asks for {name!r} ({spec.describe()}), a training knob the space "
                f"tunes too (its knobs: {', '.join(RESERVED)}); rename it, e.g. "
                f"'model_{name}', or tune it in the space file"
                + (
                    " (or leave it out of the space: a Keras model's compile() then gives "
                    "it, and Adam(hp.Float('learning_rate', ...)) tunes the rate that way)"
                    if compiled
                    else ""
                )
            )
        old = self._specs.get(name)
        if old is not None and old != spec:
            raise HyperParameterError(
                f"build(hp) asks for {name!r} twice with different definitions: first "
                f"{old.describe()}, then {spec.describe()}; give each hyperparameter one "
                "definition (or different names)"
            )

    def _check_range(
        self,
        name: str,
        spec: Spec,
        low: float,
        high: float,
        step: float | None,
        sampling: str,
        *,
        whole: bool,
    ) -> None:
        self._check_name(name, spec)
        kinds: tuple[type, ...] = (int,) if whole else (int, float)
        for label, number in (("min_value", low), ("max_value", high), ("step", step)):
            if number is None:  # only step may be None (the signature says so)
                continue
            if isinstance(number, bool) or not isinstance(number, kinds):
                kind = "a whole number" if whole else "a number"
                raise HyperParameterError(f"{spec.describe()}: {label} must be {kind}")
            if not math.isfinite(number):
                raise HyperParameterError(f"{spec.describe()}: {label} must be finite")
        if low > high:
            raise HyperParameterError(f"{spec.describe()}: min_value is above max_value")
        if sampling not in SAMPLINGS:
            raise HyperParameterError(
                f"{spec.describe()}: sampling {sampling!r} is not supported; use "
                f"{' or '.join(map(repr, SAMPLINGS))}"
            )
        if sampling == "log" and low <= 0:
            raise HyperParameterError(f"{spec.describe()}: sampling='log' needs min_value > 0")
        if step is not None and step <= 0:
            raise HyperParameterError(f"{spec.describe()}: step must be above 0")
        if step is not None and sampling == "log" and step <= 1:
            raise HyperParameterError(
                f"{spec.describe()}: with sampling='log', step is a factor (Keras Tuner's "
                "meaning) and must be above 1"
            )


def _args(**named: Any) -> tuple[tuple[str, Any], ...]:
    return tuple(named.items())


def _log_step(sampling: str, step: float | None) -> bool:
    return sampling == "log" and step is not None


def _log_grid(low: float, high: float, factor: float | None, whole: bool) -> list[Any]:
    """Keras Tuner's log sampling with a step: low, low*factor, ... up to high. Optuna has no
    such distribution, so it is sampled as a categorical of these values."""
    factor = factor or 2.0  # never None here: _log_step checked
    values: list[Any] = []
    value = float(low)
    while value <= high * (1 + 1e-9):
        values.append(round(value) if whole else value)
        value *= factor
    return list(dict.fromkeys(values))
