"""train-best: retrain a study's best configuration, test it once, hand over the model.

The best trial's configuration is trained again from its seed, on the same data (checked by
fingerprint), for its best number of epochs: on the training split alone (`on="train"`, which
reproduces the trial's weights at its best epoch) or on training plus validation
(`on="train+val"`, the default: more data, and the validation split has done its job once the
configuration is chosen). Then the test split is used once.

With more rows per epoch, the same number of epochs would mean more optimizer steps than the
trial needed; the rule kept here is the number of steps (Goodfellow et al., Deep Learning, 7.8,
name both choices): epochs = best epoch x steps per epoch on train / steps per epoch on
train+val, rounded to whole epochs (at least 1). `epochs=` overrides it. The feature statistics
stay those of the training split: the splits are stored standardized with them, so merging keeps
them exact, and the network was tuned on inputs scaled this way.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import Config
from ..devices import DEFAULT_DEVICE
from ..engine.losses import reduce_metric
from ..errors import DataError, ModelError, StudyError, param
from ..storage import (
    DEFAULT_STORAGE,
    IN_MEMORY,
    best_trial,
    directions,
    display_url,
    internals,
    resolve_storage,
    schema,
    study_meta,
    test_result,
)
from ..storage.schema import read_input_shape
from ..vocabulary import RETRAIN_ON
from .card import library_versions, now
from .loaded import TunedModel, user_networks
from .preprocessing import Preprocessing

if TYPE_CHECKING:
    import optuna

    from ..data import Dataset
    from ..nets import NetworkFactory
    from ..storage import Storage, TrialRecord


@dataclasses.dataclass
class TrainBest:
    """What train_best returns: the model, its card, and what to tell the user."""

    model: TunedModel
    card: dict[str, Any]
    notes: list[str]

    @property
    def test(self) -> float:
        return float(self.card["test"]["value"])

    def save(self, directory: str | Path) -> Path:
        from .bundle import write_bundle

        return write_bundle(directory, self.model, self.card)


def study_data(
    study: optuna.Study,
    data: Dataset | str | Path | None = None,
    *,
    target: str | int | None = None,
    data_dir: str | Path | None = None,
) -> tuple[Dataset, str | int | None]:
    """The study's dataset, loaded again (or `data`), refused if its fingerprint differs."""
    from ..data import Dataset, load_data

    meta = study_meta(study)
    stored = meta.get("data")
    if not isinstance(stored, dict) or "fingerprint" not in stored:
        raise StudyError(
            f"study {study.study_name!r} was not made by dltune; it has no data record"
        )
    target = target if target is not None else stored.get("target")
    if isinstance(data, Dataset):
        dataset = data
        given = f"the dataset given ({dataset.describe()})"
    else:
        source = str(data) if data is not None else stored["source"]
        given = param("data", source)
        try:
            dataset = load_data(
                source,
                target=target,
                task=stored["task"],
                data_dir=data_dir,
                encode=bool(stored.get("encoded", False)),  # a table as the study read it
            )
        except DataError as e:
            if data is not None:
                raise
            raise DataError(
                f"the data of study {study.study_name!r} ({stored['description']}) cannot be "
                f"loaded again from {source!r}: {e.template} Give it with "
                f"{param('data', shown='PATH')} (and {param('target', shown='COLUMN')} for a "
                "table)."
            ) from None
    if dataset.fingerprint() != stored["fingerprint"]:
        found, expected = dataset.fingerprint()[:12], stored["fingerprint"][:12]
        raise DataError(
            f"{given} is not the data study {study.study_name!r} was tuned on: its fingerprint "
            f"{found}... differs from the study's {expected}... "
            f"(the study's data: {stored['description']}, source {stored['source']!r}). Give the "
            f"same file with the same target, so that the splits, and the test split, are the same."
        )
    # Examples of the shape the study was run on (flat, if recorded before shapes were).
    dataset.set_input_shape(read_input_shape(meta))
    return dataset, target


def scaled_epochs(best_epoch: int, n_train: int, n_all: int, batch_size: int) -> tuple[int, str]:
    """Epochs on `n_all` rows that keep the optimizer steps of `best_epoch` epochs on `n_train`."""
    per_train = math.ceil(n_train / batch_size)
    per_all = math.ceil(n_all / batch_size)
    steps = best_epoch * per_train
    epochs = max(1, math.floor(steps / per_all + 0.5))
    rule = (
        f"{epochs} epoch(s) of {per_all} steps ({epochs * per_all} steps) on train+val keep "
        f"about the {steps} optimizer steps of the trial's best epoch {best_epoch} on the "
        f"training split ({per_train} steps per epoch, batch size {batch_size})"
    )
    return epochs, rule


def train_best(
    storage: str | Storage = DEFAULT_STORAGE,
    study: str | optuna.Study | None = None,
    *,
    on: str = "train+val",
    data: Dataset | str | Path | None = None,
    target: str | int | None = None,
    data_dir: str | Path | None = None,
    epochs: int | None = None,
    device: str = DEFAULT_DEVICE,
    log: Callable[[str], None] | None = None,
    pick: str | int | None = None,
) -> TrainBest:
    """Retrain the best trial of `study` (a name in `storage`, or a Study) and test it once.

    `pick` chooses another point of the study's Pareto front (dltune.study.front): a trial
    number, or "smallest within 0.005 of the best accuracy" (also "fastest", "cheapest", a
    margin in %). `on`: "train+val" (default) or "train". `data`, `target`, `data_dir`: where
    the study's data are when not where the study found them (they must have the study's
    fingerprint). `epochs` overrides the epoch rule. Returns the model and its card;
    `.save(DIR)` writes the folder.
    """
    if on not in RETRAIN_ON:
        raise ModelError(f"{param('on', on)} is not known; choose from {', '.join(RETRAIN_ON)}")
    if epochs is not None and epochs < 1:
        raise ModelError(f"{param('epochs')} must be at least 1; got {epochs}")
    say = log or (lambda _line: None)
    shown = None
    if study is None or isinstance(study, str):
        opened = resolve_storage(storage)
        study, shown = opened.load_study(study), opened.shown
    best = best_trial(study) if pick is None else _picked(study, pick, say)
    if best is None:
        raise StudyError(f"study {study.study_name!r} has no complete trial yet; run it first")
    dataset, target = study_data(study, data, target=target, data_dir=data_dir)
    config = Config.from_dict(best.config)
    best_epoch = int(best.best_epoch or config.epochs)
    train_data = _training_rows(dataset, on)
    n_rows = len(train_data.y_train)
    epochs, rule = _epoch_rule(epochs, on, best_epoch, dataset, n_rows, config.batch_size)
    say(f"Retraining trial {best.number} of study {study.study_name!r} on {on} ({n_rows} rows):")
    say(f"  {config.short()}")
    say(f"  epochs: {rule}")
    source = schema.read_model_source(study)  # a user model's build, or None
    prep = Preprocessing.from_dataset(dataset, config.loss, target)
    network = user_networks(source, prep)
    retrained = _retrain(study, best, train_data, on, epochs, device, network)
    retrained.rule = rule
    model = TunedModel(config, prep, retrained.state, network, source)
    # The test split, once: through the same steps `predict` takes on raw rows.
    predictions = model.head(model.outputs(dataset.x_test))[0]
    truth = _truth(dataset)
    metric = str(study_meta(study)["metric"])
    value = metric_of(metric, predictions, truth)
    say(f"  test {metric}: {value:.6g} ({len(truth)} rows), in {retrained.seconds:.1f}s")
    test = {
        "metric": metric,
        "value": value,
        "rows": len(truth),
        "how": "evaluated once, after retraining, through the same steps as predict",
    }
    card = _card(study, shown, best, best_epoch, dataset, target, model, retrained, test)
    if pick is not None:  # a point of the front, not the best: the card says which rule
        card["study"]["picked"] = str(pick)
    return TrainBest(model, card, [f"epochs: {rule}"])


def _picked(study: optuna.Study, pick: str | int, say: Callable[[str], None]) -> TrialRecord:
    """The point of the study's front that `pick` chooses, said with its objectives."""
    from ..study.front import pareto_front, parse_pick, pick_costs, pick_point

    rule = parse_pick(pick)
    front = pareto_front(study, pick_costs(study, rule))
    chosen = pick_point(front, rule)
    shown = ", ".join(
        f"{name} {value:.6g}" for name, value in zip(front.names, front.values(chosen), strict=True)
    )
    say(f"Picked trial {chosen.number} ({pick}) of the front of {len(front.points)}: {shown}")
    return chosen


def _training_rows(dataset: Dataset, on: str) -> Dataset:
    """The rows to retrain on: the training split, or training and validation together."""
    if on == "train":
        return dataset
    return dataclasses.replace(
        dataset,
        x_train=np.concatenate([dataset.x_train, dataset.x_val]),
        y_train=np.concatenate([dataset.y_train, dataset.y_val]),
    )


def _epoch_rule(
    epochs: int | None, on: str, best_epoch: int, dataset: Dataset, rows: int, batch_size: int
) -> tuple[int, str]:
    """How many epochs to retrain for, and the rule that says so (see the module's note)."""
    if epochs is not None:
        return epochs, f"{epochs} epoch(s), as asked (the trial's best epoch was {best_epoch})"
    if on == "train":
        return best_epoch, "the trial's best epoch, on the same rows"
    return scaled_epochs(best_epoch, len(dataset.y_train), rows, batch_size)


@dataclasses.dataclass
class _Retrained:
    """How the final model was trained, for its card."""

    state: dict[str, Any]  # the weights, on the CPU
    on: str
    rows: int
    epochs: int
    seed: int
    shuffle_seed: int
    final_train_loss: float
    seconds: float
    rule: str = ""  # the epoch rule, in words


def _retrain(
    study: optuna.Study,
    best: TrialRecord,
    rows: Dataset,
    on: str,
    epochs: int,
    device: str,
    network: NetworkFactory | None = None,
) -> _Retrained:
    """Train the best trial's configuration from its seed on `rows` for `epochs` epochs."""
    from ..devices import resolve_device
    from ..engine import SequentialTrainer

    meta = study_meta(study)
    if best.seed is None:
        raise StudyError(f"trial {best.number} has no stored seed: it was not trained by dltune")
    seed, shuffle_seed = best.seed, int(meta.get("shuffle_seed", 0))
    started = time.perf_counter()
    trainer = SequentialTrainer(
        rows,
        metric=str(meta["metric"]),
        device=resolve_device(device),
        shuffle_seed=shuffle_seed,
        network=network,
    )
    run = trainer.start(Config.from_dict(best.config), seed=seed, epochs=epochs)
    while run.advance() is None:
        pass
    if run.result.status == "diverged":
        raise ModelError(
            f"trial {best.number} diverged when retrained on {on} (training loss not finite at "
            f"epoch {run.result.diverged_epoch}); try {param('on', shown='train')} or fewer "
            f"{param('epochs')}"
        )
    state = {k: v.detach().cpu() for k, v in run.model.state_dict().items()}
    seconds = time.perf_counter() - started
    final_loss = run.result.history[-1].train_loss
    return _Retrained(state, on, len(rows.y_train), epochs, seed, shuffle_seed, final_loss, seconds)


def _card(
    study: optuna.Study,
    shown: str | None,
    best: TrialRecord,
    best_epoch: int,
    dataset: Dataset,
    target: str | int | None,
    model: TunedModel,
    retrained: _Retrained,
    test: dict[str, Any],
) -> dict[str, Any]:
    """The model card's record of where the model came from and how it was trained."""
    stored_test = test_result(study, best.number)
    return {
        "created": now(),
        "study": {
            "name": study.study_name,
            "storage": shown or _storage_shown(study),
            "trial": best.number,
            "metric": str(study_meta(study)["metric"]),
            "direction": directions(study)[0],
            "validation_value": best.value,
            "best_epoch": best_epoch,
            "study_test": stored_test.get("value") if stored_test else None,
        },
        "data": {
            "name": dataset.name,
            "source": dataset.source,
            "target": target,
            "task": dataset.task,
            "description": dataset.describe(),
            "split": dataset.split,
            "fingerprint": dataset.fingerprint(),
            "n_features": dataset.n_features,
            "classes": dataset.classes,
            # a table's encoding, in words (columns encoded, imputed, dropped)
            "encoding": dataset.notes if dataset.encoding is not None else None,
        },
        "training": {
            "on": retrained.on,
            "rows": retrained.rows,
            "epochs": retrained.epochs,
            "epoch_rule": retrained.rule,
            "seed": retrained.seed,
            "shuffle_seed": retrained.shuffle_seed,
            "statistics": model.preprocessing.statistics,
            "final_train_loss": retrained.final_train_loss,
            "seconds": round(retrained.seconds, 3),
            "config": dict(best.config),
        },
        "test": test,
        "libraries": library_versions(),
    }


def _storage_shown(study: optuna.Study) -> str:
    """The study's storage for the card (meant to be shared: its password hidden)."""
    url = internals.database_url(study)
    return display_url(url) if url else IN_MEMORY


def _truth(dataset: Dataset) -> np.ndarray:
    """The test split's targets as `predict` outputs them: labels, or values."""
    if dataset.classes is None:
        return np.asarray(dataset.y_test, dtype=np.float32)
    return np.asarray(np.asarray(dataset.classes, dtype=object)[dataset.y_test].tolist())


def metric_of(metric: str, predictions: np.ndarray, truth: np.ndarray) -> float:
    """The study's metric of predictions against the truth (labels or values), in float64.

    Computed by the engine's own definition (reduce_metric), on labels rather than indices.
    """
    if metric == "accuracy":
        if not len(truth):
            return math.nan
        hits = np.asarray(predictions == truth, dtype=np.float64)
        return float(reduce_metric(metric, hits))
    error = np.asarray(predictions, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    try:
        return float(reduce_metric(metric, error))
    except ValueError:  # a name the definition does not know
        raise ModelError(f"metric {metric!r} is not known to train-best") from None
