"""Optuna samplers by name (parameters.SAMPLERS), or the caller's own sampler object as it is.
Pruning is dltune's own scheduler: see dltune.schedule."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import optuna

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
    sampler: str | optuna.samplers.BaseSampler,
    space: SearchSpace,
    seed: int | None,
    *,
    parallel: bool = False,
    worker: int = 0,
) -> optuna.samplers.BaseSampler:
    """The sampler `sampler` names (checked with the other settings: TuneSettings.validate);
    `parallel`: many trials run at once (a population).

    A sampler object is the caller's own and is used as it is, with its own seed (`seed`
    seeds the trials' weights, not it). In a worker process (`worker` > 0) it is the pickled
    copy of the caller's, in the same state: its generator is reseeded (Optuna's
    reseed_rng), so that the workers do not propose the same configurations."""
    if not isinstance(sampler, str):
        if worker > 0:
            sampler.reseed_rng()
        return sampler
    if sampler == "tpe":
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
    if sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if sampler == "grid":
        return AskTellGridSampler(space.grid(), seed=seed)
    assert sampler == "gp", sampler  # the one name left (parameters.SAMPLERS)
    return optuna.samplers.GPSampler(seed=seed)
