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
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import Config
from ..errors import DataError, ModelError, StudyError
from ..records import best_trial, study_meta, test_result
from ..storage import DEFAULT_STORAGE, load_study, normalize_url
from .card import library_versions, now
from .loaded import TunedModel
from .preprocessing import Preprocessing

if TYPE_CHECKING:
    import optuna

    from ..data import Dataset

ON = ("train+val", "train")


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
        given = f"--data {source!r}"
        try:
            dataset = load_data(source, target=target, task=stored["task"], data_dir=data_dir)
        except DataError as e:
            if data is not None:
                raise
            raise DataError(
                f"the data of study {study.study_name!r} ({stored['description']}) cannot be "
                f"loaded again from {source!r}: {e} Give it with --data PATH (and --target "
                f"COLUMN for a table)."
            ) from None
    if dataset.fingerprint() != stored["fingerprint"]:
        found, expected = dataset.fingerprint()[:12], stored["fingerprint"][:12]
        raise DataError(
            f"{given} is not the data study {study.study_name!r} was tuned on: its fingerprint "
            f"{found}... differs from the study's {expected}... "
            f"(the study's data: {stored['description']}, source {stored['source']!r}). Give the "
            f"same file with the same target, so that the splits, and the test split, are the same."
        )
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
    storage: str = DEFAULT_STORAGE,
    study: str | optuna.Study | None = None,
    *,
    on: str = "train+val",
    data: Dataset | str | Path | None = None,
    target: str | int | None = None,
    data_dir: str | Path | None = None,
    epochs: int | None = None,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
) -> TrainBest:
    """Retrain the best trial of `study` (a name in `storage`, or a Study) and test it once.

    `on`: "train+val" (default) or "train". `data`, `target`, `data_dir`: where the study's data
    are when not where the study found them (they must have the study's fingerprint). `epochs`
    overrides the epoch rule. Returns the model and its card; `.save(DIR)` writes the folder.
    """
    from ..devices import resolve_device
    from ..engine import SequentialTrainer

    if on not in ON:
        raise ModelError(f"--on {on!r} is not known; choose from {', '.join(ON)}")
    if epochs is not None and epochs < 1:
        raise ModelError(f"--epochs must be at least 1; got {epochs}")
    say = log or (lambda _line: None)
    if study is None or isinstance(study, str):
        study = load_study(storage, study)
    best = best_trial(study)
    if best is None:
        raise StudyError(f"study {study.study_name!r} has no complete trial yet; run it first")
    meta = study_meta(study)
    dataset, target = study_data(study, data, target=target, data_dir=data_dir)
    config = Config.from_dict(best.user_attrs["config"])
    seed = int(best.user_attrs["seed"])
    best_epoch = int(best.user_attrs.get("best_epoch") or config.epochs)
    shuffle_seed = int(meta.get("shuffle_seed", 0))
    metric = str(meta["metric"])

    train_data = dataset
    if on == "train+val":
        train_data = dataclasses.replace(
            dataset,
            x_train=np.concatenate([dataset.x_train, dataset.x_val]),
            y_train=np.concatenate([dataset.y_train, dataset.y_val]),
        )
    n_rows = len(train_data.y_train)
    if epochs is not None:
        rule = f"{epochs} epoch(s), as asked (the trial's best epoch was {best_epoch})"
    elif on == "train":
        epochs, rule = best_epoch, "the trial's best epoch, on the same rows"
    else:
        epochs, rule = scaled_epochs(best_epoch, len(dataset.y_train), n_rows, config.batch_size)
    say(f"Retraining trial {best.number} of study {study.study_name!r} on {on} ({n_rows} rows):")
    say(f"  {config.short()}")
    say(f"  epochs: {rule}")

    started = time.perf_counter()
    trainer = SequentialTrainer(
        train_data, metric=metric, device=resolve_device(device), shuffle_seed=shuffle_seed
    )
    run = trainer.start(config, seed=seed, epochs=epochs)
    while run.advance() is None:
        pass
    if run.result.status == "diverged":
        raise ModelError(
            f"trial {best.number} diverged when retrained on {on} (training loss not finite at "
            f"epoch {run.result.diverged_epoch}); try --on train or fewer --epochs"
        )
    seconds = time.perf_counter() - started
    state = {k: v.detach().cpu() for k, v in run.model.state_dict().items()}
    model = TunedModel(config, Preprocessing.from_dataset(dataset, config.loss, target), state)

    # The test split, once: through the same steps `predict` takes on raw rows.
    predictions = model.head(model.outputs(dataset.x_test))[0]
    truth = _truth(dataset)
    value = metric_of(metric, predictions, truth)
    say(f"  test {metric}: {value:.6g} ({len(truth)} rows), in {seconds:.1f}s")
    stored_test = test_result(study, best.number)
    card = {
        "created": now(),
        "study": {
            "name": study.study_name,
            "storage": _storage_url(study, storage),
            "trial": best.number,
            "metric": metric,
            "direction": study.direction.name.lower(),
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
        },
        "training": {
            "on": on,
            "rows": n_rows,
            "epochs": epochs,
            "epoch_rule": rule,
            "seed": seed,
            "shuffle_seed": shuffle_seed,
            "statistics": model.preprocessing.statistics,
            "final_train_loss": run.result.history[-1].train_loss,
            "seconds": round(seconds, 3),
            "config": config.to_dict(),
        },
        "test": {
            "metric": metric,
            "value": value,
            "rows": len(truth),
            "how": "evaluated once, after retraining, through the same steps as predict",
        },
        "libraries": library_versions(),
    }
    return TrainBest(model, card, [f"epochs: {rule}"])


def _storage_url(study: optuna.Study, given: str) -> str:
    """The storage's URL for the card, its password hidden (the card is meant to be shared)."""
    backend = getattr(study._storage, "_backend", study._storage)  # under Optuna's cache
    url = str(getattr(backend, "url", None) or normalize_url(given))
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def _truth(dataset: Dataset) -> np.ndarray:
    """The test split's targets as `predict` outputs them: labels, or values."""
    if dataset.classes is None:
        return np.asarray(dataset.y_test, dtype=np.float32)
    return np.asarray(np.asarray(dataset.classes, dtype=object)[dataset.y_test].tolist())


def metric_of(metric: str, predictions: np.ndarray, truth: np.ndarray) -> float:
    """The study's metric of predictions against the truth (labels or values), in float64."""
    if metric == "accuracy":
        return float(np.mean(predictions == truth)) if len(truth) else math.nan
    error = np.asarray(predictions, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    if metric == "rmse":
        return float(np.sqrt(np.mean(error**2)))
    if metric == "mae":
        return float(np.mean(np.abs(error)))
    raise ModelError(f"metric {metric!r} is not known to train-best")
