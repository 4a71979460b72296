"""What train-best delivers, and each of its networks trained again from its seed.

The plan follows the study's validation and its choice (study/ensemble_choice.py):

- k-fold, by default (or `on="train"`): each member's configuration is its K fold models, fold
  f trained on fold f's training rows from fold f's seed for its trial's best epoch (where the
  mean of the folds was best: engine/folds.py), the weights of that epoch kept; weight w/K
  each. These are the models the search measured: the
  out-of-fold score of the study (the ensemble's, or the best trial's) is theirs, and the
  study's test of them is repeated to float rounding. Without an ensemble (or `ensemble=False`)
  the best trial's bag: its K fold models, 1/K each.
- k-fold with `on="train+val"` given: each member trained once on the whole pool (every example
  outside the test split), for its trial's best epoch scaled to keep the optimizer steps
  (retrain.scaled_epochs). More data per network, but a model nothing measured.
- holdout: each member trained as the single best always was: on training and validation rows
  with scaled epochs (`on="train+val"`, the default), or on the training split for its best
  epoch (`on="train"`, which reproduces the trial's weights).

Fold models are trained stacked, in one population (engine/population.py, the engine the
search trained them in: each member as it would be alone), every configuration's K fold
models together as far as the population's memory budget holds them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..errors import ModelError, StudyError, param
from ..storage import read_trial, schema, study_meta
from ..storage.records import current_ensemble

if TYPE_CHECKING:
    import optuna

    from ..data import Dataset
    from ..nets import NetworkFactory
    from ..storage import TrialRecord

FOLDS = "folds"  # the card's training "on" of fold models (each on its fold's training rows)


@dataclasses.dataclass
class Plan:
    """What to deliver: each member's trial and weight, how they are trained, and why."""

    mode: str  # "folds" (fold models), "pool" (k-fold data, one model on the pool), "holdout"
    members: list[tuple[TrialRecord, float]]
    on: str  # the rows: "folds", "train+val" or "train"
    ensemble: dict[str, Any] | None  # the study's ensemble record delivered, or None
    validation: dict[str, Any]  # schema.read_validation's record
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def k(self) -> int | None:
        return int(self.validation["k"]) if self.validation["kind"] == "kfold" else None

    @property
    def what(self) -> str:
        """In words: 'the ensemble of 3 configurations (15 fold models)', 'trial 4's bag'."""
        count = len(self.members)
        networks = count * (self.k or 1) if self.mode == FOLDS else count
        if self.ensemble is not None:
            many = "s" if count != 1 else ""
            shown = f" ({networks} fold models)" if self.mode == FOLDS else ""
            return f"the study's ensemble of {count} configuration{many}{shown}"
        trial = self.members[0][0].number
        if self.mode == FOLDS:
            return f"trial {trial}'s bag (its {self.k} fold models)"
        return f"trial {trial}"


def plan_delivery(
    study: optuna.Study,
    best: TrialRecord,
    *,
    on: str | None,
    ensemble: bool,
    picked: bool,
) -> Plan:
    """The members and how to train them (see the module's note); `picked`: `best` is a
    point of the front chosen by the caller (delivered alone)."""
    from optuna.trial import TrialState

    validation = schema.read_validation(study) or {"kind": "holdout"}
    kfold = validation["kind"] == "kfold"
    if kfold:
        mode = "pool" if on == "train+val" else FOLDS
        rows = "train+val" if on == "train+val" else FOLDS
    else:
        mode, rows = "holdout", on or "train+val"
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    notes: list[str] = []
    record = None
    if ensemble and not picked:
        stored = schema.read_ensemble(study)
        record = current_ensemble(stored, len(complete))
        if stored is not None and record is None:
            notes.append(
                f"the study's ensemble was chosen among {stored.get('complete')} complete "
                f"trials and {len(complete)} are complete now: the best trial alone is "
                "delivered (the study's next end chooses the ensemble again)"
            )
    if record is None:
        return Plan(mode, [(best, 1.0)], rows, None, validation, notes)
    by_number = {t.number: t for t in complete}
    members = []
    for member in record["members"]:
        trial = by_number.get(int(member["trial"]))
        if trial is None:  # pragma: no cover - current_ensemble counts the same trials
            raise StudyError(f"the ensemble's member trial {member['trial']} is not complete")
        members.append((read_trial(trial), float(member["weight"])))
    total = sum(w for _, w in members)
    members = [(r, w / total) for r, w in members]  # exactly 1, whatever was rounded
    return Plan(mode, members, rows, record, validation, notes)


@dataclasses.dataclass
class Network:
    """One trained network of the delivered model, and how it was trained."""

    trial: int
    fold: int | None
    weight: float
    config: Config
    state: dict[str, Any]  # on the CPU
    seed: int
    epochs: int
    rows: int
    final_train_loss: float
    rule: str  # its epoch rule, in words


Say = Callable[[str], None]


def train_fold_models(
    plan: Plan,
    folded: Dataset,
    *,
    metric: str,
    shuffle_seed: int,
    device: str,
    epochs: int | None,
    network: NetworkFactory | None,
    say: Say,
) -> list[Network]:
    """Each member's K fold models (see the module's note), trained stacked: a trial's K
    folds join together, as many trials at once as the population's memory holds."""
    from ..devices import resolve_device
    from ..engine.population import PopulationTrainer

    assert folded.folds is not None
    population = PopulationTrainer(
        folded,
        metric=metric,
        device=resolve_device(device),
        shuffle_seed=shuffle_seed,
        network=network,
    )
    planned: dict[tuple[int, int], tuple[int, int, float]] = {}  # key -> (seed, epochs, weight)
    waiting = list(plan.members)
    results: dict[Any, Any] = {}
    while waiting or len(population):
        while waiting and (not len(population) or population.has_room(_config(waiting[0][0]))):
            record, weight = waiting.pop(0)
            for fold, seed, best_epoch in fold_plan(record, folded.folds.k):
                key = (record.number, fold)
                n = epochs or best_epoch
                planned[key] = (seed, n, weight / folded.folds.k)
                population.add(
                    key, _config(record), seed=seed, epochs=n, keep_best_state=True, fold=fold
                )
        results.update(population.run_epoch())
    networks = []
    for record, _ in plan.members:
        for fold in range(folded.folds.k):
            key = (record.number, fold)
            seed, n, weight = planned[key]
            networks.append(_fold_network(record, fold, seed, n, weight, results[key], folded))
    rule = (
        f"each fold model trained {epochs} epochs"
        if epochs
        else "each fold model at its trial's best epoch (the models the search measured)"
    )
    say(f"  {len(networks)} fold models ({folded.folds.k} per configuration): {rule}")
    return networks


def _fold_network(
    record: TrialRecord,
    fold: int,
    seed: int,
    epochs: int,
    weight: float,
    result: Any,
    folded: Dataset,
) -> Network:
    if result.status == "diverged" or result.last_state is None:
        raise ModelError(
            f"fold {fold} of trial {record.number} diverged when retrained (at epoch "
            f"{result.diverged_epoch}); try {param('on', shown='train+val')}"
        )
    assert folded.folds is not None
    # a fold member keeps its latest epoch (engine/folds.py): trained for its trial's best
    # epoch, that is the model the search delivered
    state = {k: v.detach().cpu() for k, v in result.last_state.items()}
    loss = result.history[-1].train_loss
    rule = f"{epochs} epochs (its trial's best) on fold {fold}'s training rows"
    return Network(
        record.number, fold, weight, _config(record), state, seed, epochs,
        folded.folds.n_train, loss, rule,
    )  # fmt: skip


def fold_plan(record: TrialRecord, k: int) -> list[tuple[int, int, int]]:
    """(fold, seed, epochs) of each of a trial's fold models: each fold's seed as the study
    recorded it, and the trial's best epoch (where the folds' mean was best: each fold's
    model is delivered there); a StudyError when it recorded none."""
    folds = record.folds
    if folds is None or len(folds.get("seeds") or []) != k:
        raise StudyError(
            f"trial {record.number} has no record of its {k} folds (seeds, best epochs), so its "
            f"fold models cannot be trained again; give {param('on', shown='train+val')} to "
            "train it once on every example outside the test split"
        )
    epoch = max(1, int(folds.get("epoch") or record.best_epoch or 1))
    return [(f, int(seed), epoch) for f, seed in enumerate(folds["seeds"])]


def mean_best_epoch(record: TrialRecord) -> float:
    """A cross-validated trial's best epoch: where the mean of its folds was best (the epoch
    each fold's delivered model trained)."""
    return float(record.best_epoch or Config.from_dict(record.config).epochs)


def train_one(
    study: optuna.Study,
    record: TrialRecord,
    weight: float,
    rows: Dataset,
    on: str,
    epochs: int,
    rule: str,
    device: str,
    network: NetworkFactory | None = None,
) -> Network:
    """A member's configuration trained once from its trial's seed on `rows` for `epochs`
    epochs, the weights of the last epoch kept."""
    from ..devices import resolve_device
    from ..engine import SequentialTrainer

    meta = study_meta(study)
    if record.seed is None:
        raise StudyError(f"trial {record.number} has no stored seed: it was not trained by dltune")
    trainer = SequentialTrainer(
        rows,
        metric=str(meta["metric"]),
        device=resolve_device(device),
        shuffle_seed=int(meta.get("shuffle_seed", 0)),
        network=network,
    )
    run = trainer.start(_config(record), seed=record.seed, epochs=epochs)
    while run.advance() is None:
        pass
    if run.result.status == "diverged":
        raise ModelError(
            f"trial {record.number} diverged when retrained on {on} (at epoch "
            f"{run.result.diverged_epoch}); try {param('on', shown='train')} or fewer "
            f"{param('epochs')}"
        )
    state = {k: v.detach().cpu() for k, v in run.model.state_dict().items()}
    loss = run.result.history[-1].train_loss
    return Network(
        record.number, None, weight, _config(record), state, record.seed, epochs,
        len(rows.y_train), loss, rule,
    )  # fmt: skip


def _config(record: TrialRecord) -> Config:
    return Config.from_dict(record.config)


def timed() -> Callable[[], float]:
    """Seconds since this call, when called."""
    started = time.perf_counter()
    return lambda: time.perf_counter() - started
