"""What a tuner hands back: its best trials, their hyperparameters, their trained models.

The best trials are the complete ones, best first, the study's chosen trial at their head (the
one `dltune best` shows: with executions_per_trial, chosen on its re-evaluated mean). A trial's
model is the Keras model its build(hp) makes from the trial's values (compiled as the build
compiles it), with the weights of the trial's best epoch, trained on the training split, as
Keras Tuner's get_best_models() loads its checkpoint: the weights this process kept while it
searched (study.predictions: a study without an ensemble keeps its best trial's); else the
weights a search wrote to the project folder (`best-weights/trial-N.pt`, what it kept of the
best KEPT_WEIGHTS trials: a later process, a project reopened after a restart, gets its best
model without data, as Keras Tuner reloads its checkpoints; read with
torch.load(weights_only=True), which runs no code from the file); otherwise retrained from the
trial's seed for its best epoch on the same rows, which is what `dltune.train_best(...,
on="train", ensemble=False)` delivers and `dltune.load` reads back.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import write_file
from ..config import Config
from ..storage import best_trial, maximizes, read_trials
from .hypermodel import HyperParameters

if TYPE_CHECKING:
    import optuna
    import torch

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


WEIGHTS = "best-weights"  # the project folder's: the best trials' weights
KEPT_WEIGHTS = 10
_WEIGHTS_FILE = re.compile(r"trial-(\d+)\.pt")


def save_weights(project: Path, study: optuna.Study, kept: dict[int, list[Any]]) -> None:
    """Write the weights this process kept of the study's best KEPT_WEIGHTS trials to the
    project folder, one file per trial (whole or absent), and remove the files of trials no
    longer among them."""
    import torch

    folder = project / WEIGHTS
    folder.mkdir(exist_ok=True)
    best = {r.number for r in ranked(study, KEPT_WEIGHTS)}
    for number in sorted(best & kept.keys()):
        state: dict[str, Any] = kept[number][0]

        def save(path: Path, state: dict[str, Any] = state) -> None:
            torch.save(state, path)

        write_file(folder / f"trial-{number}.pt", save)
    for path in folder.iterdir():
        named = _WEIGHTS_FILE.fullmatch(path.name)
        if named is not None and int(named.group(1)) not in best:
            path.unlink(missing_ok=True)


def saved_weights(project: Path, number: int) -> dict[str, torch.Tensor] | None:
    """Trial `number`'s weights as a search saved them (save_weights), or None."""
    import torch

    path = project / WEIGHTS / f"trial-{number}.pt"
    if not path.is_file():
        return None
    return dict(torch.load(path, map_location="cpu", weights_only=True))  # runs no code


def trained_model(
    record: TrialRecord,
    build: Callable[..., Any],
    shape: tuple[int, ...],
    n_outputs: int,
    state: dict[str, Any],
) -> Any:
    """The trial's model (a Keras model, or the torch module of a torch build) for examples of
    `shape` and `n_outputs` outputs, with the weights `state` of its best epoch."""
    from ..usermodel import UserNetworks

    factory = UserNetworks(build, shape)
    network = factory(Config.from_dict(record.config), n_outputs, seed=0, device="cpu")
    network.load_state_dict(state)
    network.eval()
    module = network.model  # behind the reshape to the data's shape (ShapedInput)
    to_keras = getattr(module, "to_keras", None)  # a KerasNetwork: its Keras model
    return to_keras() if to_keras is not None else module


def retrained(
    study: optuna.Study, record: TrialRecord, build: Callable[..., Any], data: Dataset
) -> dict[str, Any]:
    """The weights of the trial's best epoch, retrained from its seed on the training split
    (export.delivery.train_one: what train-best on="train" trains)."""
    from ..export.delivery import train_one
    from ..usermodel import UserNetworks

    factory = UserNetworks(build, data.input_shape)
    epochs = int(record.best_epoch or Config.from_dict(record.config).epochs)
    rule = "the trial's best epoch, on the same rows"
    return train_one(study, record, 1.0, data, "train", epochs, rule, "cpu", factory).state
