"""What a tuner hands back: its best trials, their hyperparameters, their trained models.

The best trials are the complete ones, best first, the study's chosen trial at their head (the
one `dltune best` shows: with executions_per_trial, chosen on its re-evaluated mean). A trial's
model is the Keras model its build(hp) makes from the trial's values (compiled as the build
compiles it), with the weights of the trial's best epoch, trained on the training split, as
Keras Tuner's get_best_models() loads its checkpoint: the weights this process kept while it
searched (study.predictions: the best 20), otherwise retrained from the trial's seed for its
best epoch on the same rows, which is what `dltune.train_best(..., on="train",
ensemble=False)` delivers and `dltune.load` reads back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..storage import best_trial, maximizes, read_trials
from .hypermodel import HyperParameters

if TYPE_CHECKING:
    import optuna

    from ..data import Dataset
    from ..storage import TrialRecord


def ranked(study: optuna.Study, count: int | None = None) -> list[TrialRecord]:
    """The complete trials, best first (the study's chosen trial first), at most `count`."""
    best = best_trial(study)
    if best is None:
        return []
    sign = -1.0 if maximizes(study) else 1.0
    complete = [r for r in read_trials(study) if r.state == "complete" and r.value is not None]
    others = sorted(
        (r for r in complete if r.number != best.number),
        key=lambda r: (sign * float(r.value or 0.0), r.number),
    )
    return [best, *others][:count]


def hyperparameters_of(record: TrialRecord) -> HyperParameters:
    """The trial's own hyperparameters (those its build asked for) as Keras Tuner's hp."""
    return HyperParameters(values=dict(record.config.get("model", {})))


def trained_model(
    study: optuna.Study,
    record: TrialRecord,
    build: Callable[..., Any],
    data: Dataset,
    kept: list[dict[str, Any]] | None,
) -> Any:
    """The trial's model (a Keras model, or the torch module of a torch build) with the weights
    of its best epoch: `kept` (this process's, from the search), else retrained."""
    from ..usermodel import UserNetworks

    factory = UserNetworks(build, data.input_shape)
    config = Config.from_dict(record.config)
    state = kept[0] if kept else _retrained(study, record, data, factory)
    network = factory(config, data.n_classes or 1, seed=0, device="cpu")
    network.load_state_dict(state)
    network.eval()
    module = network.model  # behind the reshape to the data's shape (ShapedInput)
    to_keras = getattr(module, "to_keras", None)  # a KerasNetwork: its Keras model
    return to_keras() if to_keras is not None else module


def _retrained(
    study: optuna.Study, record: TrialRecord, data: Dataset, factory: Any
) -> dict[str, Any]:
    """The weights of the trial's best epoch, retrained from its seed on the training split
    (export.delivery.train_one: what train-best on="train" trains)."""
    from ..export.delivery import train_one

    epochs = int(record.best_epoch or Config.from_dict(record.config).epochs)
    rule = "the trial's best epoch, on the same rows"
    return train_one(study, record, 1.0, data, "train", epochs, rule, "cpu", factory).state
