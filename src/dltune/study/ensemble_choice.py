"""The model a study delivers, chosen at its end and tested once: an ensemble of its best
configurations (ensemble.py's greedy selection on their stored predictions), or its best trial
alone; in k-fold each member is bagged (its K fold models, each trained on the other folds).

The members' weights are those the search trained: kept in memory by the processes that
trained them (predictions.KeptModels), or, where a member was trained elsewhere (an earlier
run), retrained from its seeds for its best epochs (deterministic on a CPU) within the
reserve; a member that fits in neither is left out and the others' weights renormalized. Then
the ensemble is evaluated once on the test split, and the record stored (schema.ENSEMBLE):
members and weights, the ensemble's validation (out-of-fold) score beside the best single
member's, its test. In k-fold, the best trial's own test is its bag's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import Config
from ..engine.losses import reduce_metric
from ..storage import best_trial, maximizes, read_trial, schema, study_meta
from .ensemble import select_ensemble
from .predictions import ValidationRows

if TYPE_CHECKING:
    import optuna

    from ..data import Dataset
    from ..engine import SequentialTrainer
    from ..storage import TrialRecord
    from .choice import Reserve

CANDIDATES = 20  # the best complete trials the selection chooses among


@dataclass
class Delivered:
    """The delivered model's members: trial -> weight, and each member's weights (one state
    per fold, or the one model's)."""

    weights: dict[int, float]
    states: dict[int, list[dict[str, Any]]]
    how: str


def deliver(
    study: optuna.Study,
    dataset: Dataset,
    trainer: SequentialTrainer,
    kept: dict[int, list[dict[str, Any]]],
    reserve: Reserve,
    ensemble: bool,
) -> dict[str, Any] | None:
    """Choose the ensemble (when `ensemble`), have its members' weights, test it once and
    store the record; in k-fold, test the best trial's bag too. The record, or None (no
    complete trial, or nothing to deliver beyond the best trial's own test)."""
    best = best_trial(study)
    if best is None:
        return None
    records = _ranked(study)
    rows = ValidationRows(dataset)
    if dataset.folds is not None and schema.read_test_result(study, best.number) is None:
        bag = _members({best.number: 1.0}, records, dataset, trainer, kept, reserve)
        if bag.weights:
            _store_single_test(study, best, _test_of(bag, records, dataset, trainer, rows))
    if not ensemble:
        return None
    predictions = {}
    for candidate in records[:CANDIDATES]:
        stored = schema.read_predictions(_frozen(study, candidate.number))
        if stored is not None and len(stored) == len(rows.truth):
            predictions[candidate.number] = stored
    if len(predictions) < 2:
        return None
    metric = str(study_meta(study)["metric"])
    selection = select_ensemble(predictions, rows.truth, metric, task=dataset.task)
    delivered = _members(selection.weights, records, dataset, trainer, kept, reserve)
    if not delivered.weights:
        return None
    record = {
        "validation": schema.read_validation(study) or {"kind": "holdout"},
        "rows": len(rows.truth),
        "metric": metric,
        "members": [
            {
                "trial": t,
                "weight": w,
                "score": selection.single[t],
                "value": next(r.value for r in records if r.number == t),
            }
            for t, w in delivered.weights.items()
        ],
        "score": selection.score,
        "best_single": {
            "trial": selection.best_single,
            "score": selection.single[selection.best_single],
        },
        "chosen": best.number,
        "complete": len(records),
        "candidates": len(predictions),
        "rounds": selection.rounds,
        "selected": selection.to_json(),
        "weights_from": delivered.how,
        "test": _test_of(delivered, records, dataset, trainer, rows),
    }
    schema.write_ensemble(study, record)
    return record


def _ranked(study: optuna.Study) -> list[TrialRecord]:
    """The complete trials, best first (value, then validation loss, then number)."""
    from optuna.trial import TrialState

    from .choice import _rank

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    maximize = maximizes(study)
    return sorted((read_trial(t) for t in complete), key=lambda r: _rank(r, maximize))


def _frozen(study: optuna.Study, number: int) -> Any:
    return study.get_trials(deepcopy=False)[number]


def _members(
    weights: dict[int, float],
    records: list[TrialRecord],
    dataset: Dataset,
    trainer: SequentialTrainer,
    kept: dict[int, list[dict[str, Any]]],
    reserve: Reserve,
) -> Delivered:
    """Each member's weights, kept or retrained within the reserve; those that fit in
    neither are left out (the others' weights renormalized)."""
    by_number = {r.number: r for r in records}
    states: dict[int, list[dict[str, Any]]] = {}
    retrained = 0
    for number in weights:
        if number in kept:
            states[number] = kept[number]
            continue
        trained = _retrain(by_number[number], dataset, trainer, reserve)
        if trained is not None:
            states[number] = trained
            retrained += 1
    total = sum(weights[n] for n in states)
    kept_weights = {n: weights[n] / total for n in states} if total > 0 else {}
    left_out = len(weights) - len(states)
    how = "the weights the search trained"
    if retrained:
        how += f"; {retrained} member(s) retrained from their seeds"
    if left_out:
        how += f"; {left_out} member(s) left out (no weights kept and no reserve to retrain)"
    return Delivered(kept_weights, states, how)


def _retrain(
    record: TrialRecord, dataset: Dataset, trainer: SequentialTrainer, reserve: Reserve
) -> list[dict[str, Any]] | None:
    """A trial's weights at its best epoch(s), retrained from its seed(s): each fold's member
    in k-fold (its fold's seed and best epoch), or the one model."""
    config = Config.from_dict(record.config)
    folds = _fold_plan(record, dataset)
    if folds is None:
        return None
    needed = sum(epochs for _, _, epochs in folds)
    if not reserve.allows(needed):
        return None
    states = []
    for fold, seed, epochs in folds:
        run = trainer.start(config, seed=seed, epochs=epochs, keep_best_state=True, fold=fold)
        while run.advance() is None:
            pass
        reserve.spent += run.result.epochs_run
        # a fold member is delivered at its trial's best epoch (its latest here); a holdout
        # trial at its own best
        state = run.result.last_state if fold is not None else run.result.best_state
        if state is None:
            return None
        states.append(state)
    return states


def _fold_plan(record: TrialRecord, dataset: Dataset) -> list[tuple[int | None, int, int]] | None:
    """(fold, seed, epochs) of each member of a trial to retrain; None without its seeds."""
    if record.seed is None:
        return None
    if dataset.folds is None:
        return [(None, record.seed, max(1, int(record.best_epoch or 1)))]
    folds = record.folds
    if folds is None:
        return None
    epoch = max(1, int(folds.get("epoch") or record.best_epoch or 1))
    return [(f, int(seed), epoch) for f, seed in enumerate(folds["seeds"])]


def _test_of(
    delivered: Delivered,
    records: list[TrialRecord],
    dataset: Dataset,
    trainer: SequentialTrainer,
    rows: ValidationRows,
) -> float:
    """The delivered model's metric on the test split: its members' predictions averaged
    (each member's folds with equal weights), as the model folder predicts."""
    by_number = {r.number: r for r in records}
    mix: np.ndarray | None = None
    for number, weight in delivered.weights.items():
        config = Config.from_dict(by_number[number].config)
        states = delivered.states[number]
        for state in states:
            model = trainer.model_from_state(config, state)
            outputs = trainer.measure(model, "test", config.loss)[2].cpu().numpy()
            part = rows.head(outputs, config.loss).astype(np.float64) * (weight / len(states))
            mix = part if mix is None else mix + part
    assert mix is not None
    return metric_on(mix, dataset, trainer.metric.name)


def metric_on(mix: np.ndarray, dataset: Dataset, metric: str) -> float:
    """The metric of averaged predictions (probabilities or values) on the test split."""
    truth = np.asarray(dataset.y_test)
    if mix.ndim == 2:
        terms = (mix.argmax(axis=1) == truth).astype(np.float64)
    else:
        terms = mix - truth.astype(np.float64)
    value = float(reduce_metric(metric, terms))
    return value if math.isfinite(value) else math.nan


def _store_single_test(study: optuna.Study, best: TrialRecord, value: float) -> None:
    """The best trial's test in k-fold: its bag (its K fold models averaged)."""
    schema.write_test_result(
        study,
        best.number,
        {
            "value": value,
            "loss": None,
            "metric": str(study_meta(study)["metric"]),
            "how": "its K fold models averaged (the bag), weights of their best epochs",
        },
    )
