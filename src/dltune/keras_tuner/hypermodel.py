"""Keras Tuner's HyperParameters and HyperModel, as dltune's build(hp) takes them.

`HyperParameters` is dltune's `hp` (usermodel.hp: Int, Float, Choice, Boolean, Fixed, get,
values, on Optuna's suggest API) with what Keras Tuner's users also call on the object a tuner
hands back: `values` holds every stored value before any build ran (``best_hps.values``) and
``get(name)`` reads one. Empty, it gives each hyperparameter's default
(``build_model(kt.HyperParameters())``).

`HyperModel` is Keras Tuner's base class: a subclass writes ``build(self, hp)``. A subclass that
overrides ``fit`` is refused: dltune trains the model itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..usermodel.hp import HyperParameters as _DefineByRun
from ..usermodel.hp import Value
from .arguments import KerasTunerError


class HyperParameters(_DefineByRun):
    """Keras Tuner's `hp`: given to build(hp) empty (defaults) or as a tuner's result."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        super().__init__(values=values)

    @property
    def values(self) -> dict[str, Value]:
        """Every value this object holds: the stored ones, then those a build asked for."""
        return {**self._stored, **super().values}

    def get(self, name: str) -> Value:
        if name in self._stored and name not in super().values:
            return self._stored[name]
        return super().get(name)

    def __repr__(self) -> str:
        return f"HyperParameters({self.values!r})"


class HyperModel:
    """Keras Tuner's HyperModel: subclass it and write build(self, hp)."""

    def __init__(self, name: str | None = None, tunable: bool = True) -> None:
        self.name = name
        self.tunable = tunable

    def build(self, hp: Any) -> Any:
        raise NotImplementedError("a HyperModel subclass writes build(self, hp)")

    def fit(self, hp: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
        return model.fit(*args, **kwargs)


class FunctionHyperModel(HyperModel):
    """A build function given as the hypermodel, as `tuner.hypermodel` shows it."""

    def __init__(self, build: Callable[..., Any]) -> None:
        super().__init__(name=getattr(build, "__name__", None))
        self.build = build  # type: ignore[method-assign]


def build_of(hypermodel: Any) -> tuple[Callable[..., Any], HyperModel, bool]:
    """The build(hp) to tune, the hypermodel as `tuner.hypermodel`, and whether another process
    can import the build again (a function can; an instance's bound method cannot)."""
    if hypermodel is None:
        raise KerasTunerError(
            "hypermodel=None: give build_model (a function build(hp) that returns a compiled "
            "Keras model) or a kt.HyperModel; dltune does not tune a custom run_trial"
        )
    if callable(hypermodel) and not hasattr(hypermodel, "build"):
        return hypermodel, FunctionHyperModel(hypermodel), True
    build = getattr(hypermodel, "build", None)
    if not callable(build):
        raise KerasTunerError(
            f"hypermodel={hypermodel!r}: give a function build(hp) or an object with build(hp)"
        )
    owner = next((c for c in type(hypermodel).__mro__ if "fit" in vars(c)), None)
    if owner is not None and not _base_class(owner):
        raise KerasTunerError(
            f"{type(hypermodel).__name__}.fit() is overridden: dltune trains the model itself "
            "and cannot run a fit of your own. Tune the batch size with search(batch_size=...), "
            "the rest in build(hp); or use Keras Tuner for a custom fit"
        )
    hyper = hypermodel if isinstance(hypermodel, HyperModel) else FunctionHyperModel(build)
    return build, hyper, False


def _base_class(owner: type) -> bool:
    """Keras Tuner's own HyperModel or this one: fit() is model.fit, not the user's."""
    return owner.__module__.startswith(("keras_tuner", __name__))


def default_space(build: Callable[..., Any]) -> HyperParameters:
    """The hyperparameters build(hp) asks for on its defaults (a dry build, its model thrown
    away), for search_space_summary(); an error of the build's hp calls raised as it is."""
    from ..usermodel.network import seeded_build

    hp = HyperParameters()
    seeded_build(build, hp, seed=0)
    return hp
