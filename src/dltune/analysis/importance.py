"""Which hyperparameters mattered: Optuna's fANOVA over the trials' scores.

Optuna's evaluators read a study's trial params, where dltune stores one width per layer
(units_1, units_2, ... that exist only for some trials). The analysis wants the eight
hyperparameters as people name them, so the scores are copied into an in-memory study whose
params are those eight (units: the widest layer), and fANOVA runs there.

The number of epochs is left out on purpose: under successive halving a trial's best epoch is
mostly where the scheduler stopped it, so its "importance" would measure the scheduler. Its
effect is shown through the learning curves instead (effects.epoch_effect).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from ..vocabulary import BOOLEAN, CONVOLUTIONAL, LOG_SCALE
from .trials import StudyTrials, TrialView

MIN_TRIALS = 8  # below this, a forest of trees on the scores says nothing useful
# Keys a network may lack: the blocks' without blocks, units without hidden layers (layers 0).
_ABSENT_AS_NONE = (*CONVOLUTIONAL, "units")


def importance(study: StudyTrials, seed: int = 0) -> dict[str, Any]:
    """{"method", "trials", "values": {param: share of variance, summing to 1}, "note"}."""
    names = [n for n in study.varied() if n != "epochs"]
    scored = [
        t
        for t in study.scored
        if all(t.params.get(n) is not None or n in _ABSENT_AS_NONE for n in names)
    ]
    result: dict[str, Any] = {"method": "fANOVA", "trials": len(scored), "values": {}}
    if not names:
        result["note"] = "no hyperparameter took more than one value"
        return result
    if len(scored) < MIN_TRIALS:
        result["note"] = f"{len(scored)} finished trials; importance needs at least {MIN_TRIALS}"
        return result
    values = [float(t.score) for t in scored if t.score is not None]
    if max(values) - min(values) < 1e-12:
        result["note"] = "every trial scored the same"
        return result

    import optuna
    from optuna.importance import FanovaImportanceEvaluator

    kinds = {n: study.categorical(n) for n in names}
    distributions = {n: _distribution(n, [_value(t, n) for t in scored], kinds[n]) for n in names}
    proxy = optuna.create_study(direction="maximize" if study.maximize else "minimize")
    proxy.add_trials(
        [
            optuna.trial.create_trial(
                params={n: _param(_value(t, n), kinds[n]) for n in names},
                distributions=distributions,
                value=float(t.score),  # type: ignore[arg-type]
            )
            for t in scored
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-API and few-trials warnings
        raw = optuna.importance.get_param_importances(
            proxy, evaluator=FanovaImportanceEvaluator(seed=seed), normalize=True
        )
    result["values"] = {k: round(float(v), 4) for k, v in raw.items() if math.isfinite(v)}
    return result


def _value(trial: TrialView, name: str) -> Any:
    """A trial's value of `name`; a block key of a network without blocks reads as none of it
    (0 filters, no pooling, False), and so do the units of one without hidden layers (0), so
    that one forest compares both families, and the linear model with the networks."""
    value = trial.params.get(name)
    if value is None and name in _ABSENT_AS_NONE:
        return False if name in BOOLEAN else 0
    return value


def _param(value: Any, categorical: bool) -> Any:
    return str(value) if categorical else value


def _distribution(name: str, values: list[Any], categorical: bool) -> Any:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if categorical:
        return CategoricalDistribution(sorted({str(v) for v in values}))
    low, high = min(values), max(values)
    log = name in LOG_SCALE and low > 0
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return IntDistribution(int(low), int(high), log=log)
    return FloatDistribution(float(low), float(high), log=log)
