"""Populations that fill: new trials asked in cohorts that share one shape, so that the
population engine's buckets hold several members instead of one.

The population engine stacks members that share a batch size and a network shape (the dense
network's depth and ladder width, or a convolutional architecture): one bucket's members take
their training steps together. Configurations drawn independently almost never share a shape
(5 batch sizes x 3 depths x ~24 ladder widths in the default space), so most buckets hold one
member and stacking gains nothing (benchmarks/RESULTS.md: 0.87x on random configurations).

A cohort: one configuration is asked of the sampler as usual (it explores shapes freely); the
next `cohort - 1` trials are asked with its shape parameters fixed (Optuna's
PartialFixedSampler around the study's own sampler, so TPE still models the other parameters:
learning rate, optimizer, dropout, activation, loss), and join its bucket. A cohort ends when
its followers were all asked or when none of its members trains any more (all pruned early):
the next ask explores again. So 1 ask in `cohort` chooses a shape; the sampler sees every trial,
with all its parameters, like any other. Off unless DLTUNE_FILL_COHORT asks for it (measured:
see DEFAULT_COHORT).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..vocabulary import CONVOLUTIONAL

if TYPE_CHECKING:
    import optuna

# The parameters that decide which bucket a built-in network's member trains in (the padded
# dense path: batch size, depth, widths; a module bucket: the whole architecture).
SHAPE_KEYS = frozenset({"batch_size", "layers", "units", *CONVOLUTIONAL})

Shape = tuple[tuple[str, Any], ...]


def shape_of(params: Mapping[str, Any]) -> Shape:
    """The shape parameters among a trial's Optuna params (units_2 is units', filters_1
    filters')."""
    return tuple(
        sorted((name, value) for name, value in params.items() if _key(name) in SHAPE_KEYS)
    )


def _key(name: str) -> str:
    base, _, layer = name.rpartition("_")
    return base if layer.isdigit() and base in SHAPE_KEYS else name


@dataclass
class _Cohort:
    shape: Shape
    followers_left: int


class ShapeFiller:
    """Decides, before each new trial is asked, which shape parameters (if any) to fix."""

    def __init__(self, cohort: int) -> None:
        if cohort < 1:
            raise ValueError(f"cohort must be at least 1, got {cohort}")
        self.cohort = cohort
        self._current: _Cohort | None = None
        self.filled = 0  # trials asked with a fixed shape (the run's note counts them)
        self.explored = 0  # trials whose shape the sampler chose freely

    def fixed_params(self, training: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
        """The shape to fix for the next ask, or None to let the sampler choose it.
        `training`: the params of the trials in the engine now (paused ones excluded)."""
        current = self._current
        if current is None or current.followers_left <= 0 or not current.shape:
            return None
        if not any(shape_of(params) == current.shape for params in training):
            return None  # nothing left training in this shape: a bucket no more
        return dict(current.shape)

    def asked(self, params: Mapping[str, Any], fixed: Mapping[str, Any] | None) -> None:
        """Record what was asked: a follower of the cohort, or the leader of a new one."""
        if fixed is not None and self._current is not None:
            self._current.followers_left -= 1
            self.filled += 1
            return
        self.explored += 1
        self._current = _Cohort(shape_of(params), self.cohort - 1)

    def note(self) -> str | None:
        if self.filled == 0:
            return None
        return (
            f"populations filled: {self.filled} trials joined the shape of a freely sampled one "
            f"(cohorts of {self.cohort}: batch size and network shape fixed, the rest sampled), "
            f"{self.explored} chose their shape freely"
        )


@contextlib.contextmanager
def fixing(study: optuna.Study, fixed: Mapping[str, Any] | None) -> Iterator[None]:
    """While a trial is asked and its configuration suggested, the study's sampler with these
    params fixed (the sampler is asked inside trial.suggest_*, so both steps need it)."""
    if not fixed:
        yield
        return
    import optuna

    base = study.sampler
    with warnings.catch_warnings():  # PartialFixedSampler is "experimental" since 2.4
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.sampler = optuna.samplers.PartialFixedSampler(dict(fixed), base)
    try:
        yield
    finally:
        study.sampler = base


# Off by default, by measurement (benchmarks/filling.py, digits, 2 workers, 30 s, seeds 0-2):
# cohorts of 4 trained 1.25x the member-epochs of free asks (160 against 128) but chose worse
# (best val 0.979 against 0.983, test 0.958 against 0.973); DLTUNE_FILL_COHORT=4 turns it on
# (a quarter of the default population of 16: four buckets, new shapes often).
DEFAULT_COHORT = 1


def filler_for(
    engine: object, slots: int, *, user_model: bool, sampler: object
) -> ShapeFiller | None:
    """A ShapeFiller where cohorts fill buckets: a stacking engine on built-in networks
    (a user model's architectural hyperparameters are its own: not guessed), any sampler but
    the grid. The cohort size comes from DLTUNE_FILL_COHORT when set (1, the default: off).
    """
    import os

    from ..engine.population import PopulationTrainer

    cohort = int(os.environ.get("DLTUNE_FILL_COHORT", DEFAULT_COHORT))
    # Ray's actors stack too when they train populations (RayEngine.stacks): it routes a trial
    # to the actor that trains most of its shape
    stacks = isinstance(engine, PopulationTrainer) or getattr(engine, "stacks", False) is True
    # a grid is a plan of its own: fixing a cohort's shape would leave its points
    if user_model or sampler == "grid" or slots < 2 or cohort < 2 or not stacks:
        return None
    return ShapeFiller(min(cohort, slots))
