"""train-best: train again what a study delivers, test it once, hand over the model.

What is delivered follows the study (export/delivery.py has the plan):

- a cross-validated (k-fold) study: by default its ensemble, each configuration bagged as its
  K fold models, fold f trained on fold f's training rows from fold f's seed for that fold's
  best epoch: the very models the search measured, so that the ensemble's out-of-fold score is
  theirs and the study's test of them is repeated (to float rounding). Without an ensemble
  (`ensemble=False`, or none chosen) the best trial's bag: its K fold models, 1/K each.
  `on="train+val"`, given, trains each configuration once on the whole pool instead (every
  example outside the test split), for the mean of its folds' best epochs scaled by steps:
  more data, but a model no validation measured.
- a holdout study: its ensemble, or its best trial alone, each configuration trained again as
  one network from its seed for its best number of epochs: on the training split alone
  (`on="train"`, which reproduces the trial's weights at its best epoch) or on training plus
  validation (`on="train+val"`, the default: more data, and the validation split has done its
  job once the configuration is chosen).

With more rows per epoch, the same number of epochs would mean more optimizer steps than the
trial needed; the rule kept here is the number of steps (Goodfellow et al., Deep Learning, 7.8,
name both choices): epochs = best epoch x steps per epoch on train / steps per epoch on
train+val, rounded to whole epochs (at least 1). `epochs=` overrides it. The feature statistics
stay those of the training split: the splits are stored standardized with them, so merging keeps
them exact, and the network was tuned on inputs scaled this way. Then the test split is used
once, through the same steps as `predict`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import Config
from ..devices import DEFAULT_DEVICE
from ..engine.losses import reduce_metric
from ..engine.sequential import steps_per_epoch
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
from ..usermodel.source import stored
from ..vocabulary import RETRAIN_ON
from .card import library_versions, now
from .delivery import (
    FOLDS,
    Network,
    Plan,
    mean_best_epoch,
    plan_delivery,
    timed,
    train_fold_models,
    train_one,
)
from .ensemble_net import EnsembleMember
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


def scaled_epochs(
    best_epoch: float,
    n_train: int,
    n_all: int,
    batch_size: int,
    *,
    best: str = "the trial's best epoch",
    on: str = "train+val",
) -> tuple[int, str]:
    """Epochs on `n_all` rows that keep the optimizer steps of `best_epoch` epochs on `n_train`
    (`best`, `on`: how the rule names them)."""
    per_train = steps_per_epoch(n_train, batch_size)
    per_all = steps_per_epoch(n_all, batch_size)
    steps = round(best_epoch * per_train)
    epochs = max(1, math.floor(steps / per_all + 0.5))
    rule = (
        f"{epochs} epoch(s) of {per_all} steps ({epochs * per_all} steps) on {on} keep "
        f"about the {steps} optimizer steps of {best} {best_epoch:.3g} on the "
        f"training rows ({per_train} steps per epoch, batch size {batch_size})"
    )
    return epochs, rule


def train_best(
    storage: str | Storage = DEFAULT_STORAGE,
    study: str | optuna.Study | None = None,
    *,
    on: str | None = None,
    ensemble: bool = True,
    data: Dataset | str | Path | None = None,
    target: str | int | None = None,
    data_dir: str | Path | None = None,
    epochs: int | None = None,
    device: str = DEFAULT_DEVICE,
    log: Callable[[str], None] | None = None,
    pick: str | int | None = None,
    trust_source: bool = False,
) -> TrainBest:
    """Train again what `study` (a name in `storage`, or a Study) delivers, and test it once.

    By default that is the study's ensemble where it chose one (`ensemble=False`: its best
    trial alone), each configuration trained again from its seed(s) (see the module's note):
    in a cross-validated study its K fold models (the bag the search measured), in a holdout
    study one network per configuration. `on`: the rows; holdout: "train+val" (default) or
    "train"; k-fold: None or "train" (the fold models), "train+val" (one network per
    configuration on every example outside the test split). `pick` chooses another point of
    the study's Pareto front (dltune.study.front), delivered alone: a trial number, or
    "smallest within 0.005 of the best accuracy" (also "fastest", "cheapest", a margin in %).
    `data`, `target`, `data_dir`: where the study's data are when not where the study found
    them (they must have the study's fingerprint). `epochs` overrides the epoch rule (fold
    models: at most that many, the best kept). `trust_source`: import the build(hp) a user-model
    study records (see `_recorded_build`). Returns the model and its card; `.save(DIR)`
    writes the folder.
    """
    if on is not None and on not in RETRAIN_ON:
        raise ModelError(f"{param('on', on)} is not known; choose from {', '.join(RETRAIN_ON)}")
    if epochs is not None and epochs < 1:
        raise ModelError(f"{param('epochs')} must be at least 1; got {epochs}")
    if not isinstance(ensemble, bool):
        raise ModelError(f"{param('ensemble', ensemble)}: give True or False")
    say = log or (lambda _line: None)
    shown = None
    if study is None or isinstance(study, str):
        opened = resolve_storage(storage)
        study, shown = opened.load_study(study), opened.shown
    best = best_trial(study) if pick is None else _picked(study, pick, say)
    if best is None:
        raise StudyError(f"study {study.study_name!r} has no complete trial yet; run it first")
    source, where = _recorded_build(study, shown, trust_source)  # before the data are loaded
    dataset, target = study_data(study, data, target=target, data_dir=data_dir)
    plan = plan_delivery(study, best, on=on, ensemble=ensemble, picked=pick is not None)
    for note in plan.notes:
        say(f"note: {note}")
    main = max(plan.members, key=lambda m: m[1])[0]  # the heaviest: config.json's
    prep = Preprocessing.from_dataset(dataset, Config.from_dict(main.config).loss, target)
    network = user_networks(source, prep, trust=trust_source, where=where)
    say(f"Retraining {plan.what} of study {study.study_name!r}:")
    clock = timed()
    networks = _networks(study, plan, dataset, epochs, device, network, say)
    seconds = clock()
    model = _model(networks, prep, network, source)
    # The test split, once: through the same steps `predict` takes on raw rows.
    predictions = model.head(model.outputs(dataset.x_test))[0]
    truth = _truth(dataset)
    metric = str(study_meta(study)["metric"])
    value = metric_of(metric, predictions, truth)
    say(f"  test {metric}: {value:.6g} ({len(truth)} rows), in {seconds:.1f}s")
    test = {
        "metric": metric,
        "value": value,
        "rows": len(truth),
        "how": "evaluated once, after retraining, through the same steps as predict",
    }
    parts = _CardParts(shown, best, main, plan, networks, seconds)
    card = _card(study, parts, dataset, target, model, test)
    if pick is not None:  # a point of the front, not the best: the card says which rule
        card["study"]["picked"] = str(pick)
    rules = sorted({n.rule for n in networks if n.fold is None})
    notes = [*plan.notes, *(f"epochs: {rule}" for rule in rules)]
    return TrainBest(model, card, notes)


def _recorded_build(
    study: optuna.Study, shown: str | None, trust: bool
) -> tuple[dict[str, Any] | None, str]:
    """The build(hp) record of a user-model study (None: dltune's own networks) and how
    messages name the study. The record names a Python file, someone's code (a stored study may
    come from anyone): without `trust` a SourceError names it and how to allow it; nothing is
    imported here (its sha256 is checked when it is)."""
    source = schema.read_model_source(study)
    where = f"study {study.study_name!r}" + (f" in {shown}" if shown else "")
    if source is not None:
        stored(source, where, trust=trust)
    return source, where


def _networks(
    study: optuna.Study,
    plan: Plan,
    dataset: Dataset,
    epochs: int | None,
    device: str,
    network: NetworkFactory | None,
    say: Callable[[str], None],
) -> list[Network]:
    """Every network of the delivered model, trained again (delivery.py)."""
    meta = study_meta(study)
    for record, weight in plan.members:
        shown = f" (weight {weight:.3g})" if len(plan.members) > 1 else ""
        say(f"  trial {record.number}{shown}: {Config.from_dict(record.config).short()}")
    if plan.mode == FOLDS:
        k, seed = int(plan.validation["k"]), int(plan.validation["seed"])
        return train_fold_models(
            plan,
            dataset.with_folds(k, seed),
            metric=str(meta["metric"]),
            shuffle_seed=int(meta.get("shuffle_seed", 0)),
            device=device,
            epochs=epochs,
            network=network,
            say=say,
        )
    rows = _training_rows(dataset, plan.on)
    n_rows = len(rows.y_train)
    fold_rows = None
    if plan.mode == "pool":  # the rows each fold member trained on, for the epoch rule
        folded = dataset.with_folds(int(plan.validation["k"]), int(plan.validation["seed"]))
        fold_rows = folded.folds.n_train if folded.folds is not None else len(dataset.y_train)
    networks = []
    for record, weight in plan.members:
        batch_size = Config.from_dict(record.config).batch_size
        if fold_rows is not None:
            count, rule = _pool_rule(epochs, record, fold_rows, n_rows, batch_size)
        else:
            best_epoch = int(record.best_epoch or Config.from_dict(record.config).epochs)
            count, rule = _epoch_rule(epochs, plan.on, best_epoch, dataset, n_rows, batch_size)
        say(f"  trial {record.number} on {plan.on} ({n_rows} rows), epochs: {rule}")
        networks.append(
            train_one(study, record, weight, rows, plan.on, count, rule, device, network)
        )
    return networks


def _pool_rule(
    epochs: int | None, record: TrialRecord, fold_rows: int, rows: int, batch_size: int
) -> tuple[int, str]:
    """Epochs on the pool: the mean of the folds' best epochs, scaled to keep their steps."""
    mean = mean_best_epoch(record)
    if epochs is not None:
        return epochs, f"{epochs} epoch(s), as asked (its folds' mean best epoch was {mean:.3g})"
    return scaled_epochs(
        mean, fold_rows, rows, batch_size, best="the mean of its folds' best epochs", on="the pool"
    )


def _model(
    networks: list[Network],
    prep: Preprocessing,
    factory: NetworkFactory | None,
    source: dict[str, Any] | None,
) -> TunedModel:
    """One network as a single model; several (fold models, members) as one ensemble."""
    if len(networks) == 1 and networks[0].fold is None:
        only = networks[0]
        return TunedModel(only.config, prep, only.state, factory, source)
    members = [EnsembleMember(n.config, n.state, n.weight, n.trial, n.fold) for n in networks]
    return TunedModel.ensemble(members, prep, factory, source)


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
class _CardParts:
    """What the card records beside the data and the test."""

    shown: str | None  # the storage as shown (password hidden), or None: read it from the study
    best: TrialRecord  # the study's chosen trial (or the picked point)
    main: TrialRecord  # the heaviest member: the configuration config.json names
    plan: Plan
    networks: list[Network]
    seconds: float


def _card(
    study: optuna.Study,
    parts: _CardParts,
    dataset: Dataset,
    target: str | int | None,
    model: TunedModel,
    test: dict[str, Any],
) -> dict[str, Any]:
    """The model card's record of where the model came from and how it was trained."""
    best, plan = parts.best, parts.plan
    study_test, how = _study_test(study, plan)
    card: dict[str, Any] = {
        "created": now(),
        "study": {
            "name": study.study_name,
            "storage": parts.shown or _storage_shown(study),
            "trial": best.number,
            "metric": str(study_meta(study)["metric"]),
            "direction": directions(study)[0],
            "validation_value": best.value,
            "best_epoch": int(best.best_epoch or Config.from_dict(best.config).epochs),
            "validation": plan.validation,
            "delivered": plan.what,
            "study_test": study_test,
            "study_test_how": how,
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
        "training": _training(parts, model, study),
        "test": test,
    }
    if plan.ensemble is not None:
        card["ensemble"] = _ensemble_entry(plan, parts.networks)
    card["libraries"] = library_versions()
    return card


def _training(parts: _CardParts, model: TunedModel, study: optuna.Study) -> dict[str, Any]:
    """How the heaviest member's networks were trained (its K fold models: one entry per
    fold in `epochs` and `seed`), and how many networks the model holds."""
    own = [n for n in parts.networks if n.trial == parts.main.number]
    folds = own[0].fold is not None
    if folds:
        epochs: Any = [n.epochs for n in own]
        seed: Any = [n.seed for n in own]
        rule = (
            f"each of its {len(own)} fold models for its trial's best epoch in the study "
            f"({', '.join(str(e) for e in epochs)}), on its fold's training rows: the models "
            "the search measured, their weights at that epoch"
        )
    else:
        epochs, seed, rule = own[0].epochs, own[0].seed, own[0].rule
    losses = [n.final_train_loss for n in own]
    return {
        "trial": parts.main.number,
        "on": parts.plan.on,
        "rows": own[0].rows,
        "epochs": epochs,
        "epoch_rule": rule,
        "seed": seed,
        "shuffle_seed": int(study_meta(study).get("shuffle_seed", 0)),
        "statistics": model.preprocessing.statistics,
        "final_train_loss": sum(losses) / len(losses),
        "seconds": round(parts.seconds, 3),
        "networks": len(parts.networks),
        "config": dict(parts.main.config),
    }


def _ensemble_entry(plan: Plan, networks: list[Network]) -> dict[str, Any]:
    """The card's "ensemble" (card.py's format): how it was validated, its score beside the
    best single member's, and each member's weight, own score, configuration and training."""
    record = plan.ensemble
    assert record is not None
    scores = {int(m["trial"]): m.get("score") for m in record["members"]}
    members = []
    for trial, weight in plan.members:
        own = [n for n in networks if n.trial == trial.number]
        members.append(
            {
                "trial": trial.number,
                "weight": weight,
                "value": scores.get(trial.number),
                "config": Config.from_dict(trial.config).short(),
                "epochs": [n.epochs for n in own] if own[0].fold is not None else own[0].epochs,
                "seed": [n.seed for n in own] if own[0].fold is not None else own[0].seed,
            }
        )
    single = record.get("best_single") or {}
    return {
        "validation": plan.validation["kind"],
        "folds": plan.k,
        "metric": record.get("metric"),
        "score": record.get("score"),
        "best_single": {"trial": single.get("trial"), "value": single.get("score")},
        "members": members,
        "rows": record.get("rows"),
        "study_test": record.get("test"),
    }


def _study_test(study: optuna.Study, plan: Plan) -> tuple[float | None, str]:
    """The test the study recorded for what is delivered, and what it was of."""
    if plan.ensemble is not None:
        value = plan.ensemble.get("test")
        return value, "for its ensemble, with the weights the search trained"
    stored = test_result(study, plan.members[0][0].number)
    value = stored.get("value") if stored else None
    if plan.k is not None:
        return value, f"for that trial's bag, its {plan.k} fold models"
    return value, "for that trial, trained on the training split alone"


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
