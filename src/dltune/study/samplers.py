"""Optuna samplers by name (settings.SAMPLERS). Pruning is dltune's own scheduler: see
dltune.schedule."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import optuna

from ..errors import DLTuneError, param
from .settings import SAMPLERS

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial, TrialState

    from ..space import SearchSpace


class AskTellGridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler without its stop() after the last grid point, which Optuna allows
    only inside Study.optimize; dltune's ask/tell loop asks is_exhausted() instead."""

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        return None


def make_sampler(
    name: str, space: SearchSpace, seed: int | None, *, parallel: bool = False
) -> optuna.samplers.BaseSampler:
    """The sampler `name`; `parallel`: many trials run at once (a population)."""
    if name == "tpe":
        # multivariate + group: the per-layer widths exist only for deep enough networks, and
        # TPE models such conditional parameters jointly only with group=True. constant_liar:
        # with trials running side by side, TPE would otherwise propose near-copies of them.
        with warnings.catch_warnings():  # multivariate, group, constant_liar: "experimental"
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=seed,
                multivariate=True,
                group=True,
                n_startup_trials=10,
                constant_liar=parallel,
            )
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return AskTellGridSampler(space.grid(), seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    raise DLTuneError(f"{param('sampler', name)} is not known; choose from {', '.join(SAMPLERS)}")
