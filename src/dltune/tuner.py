"""The study loop: ask, train, report, tell; budgets; resume; the test split used once.

The loop is Optuna's ask/tell, so a custom loop and this one share one path. Everything a later
run needs (the space, the data's fingerprint, seeds, each trial's configuration and learning
curve, the test result) is written to storage; nothing lives only in this process.
"""

from __future__ import annotations

import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from . import __version__
from .config import Config
from .engine import EpochReport, SequentialTrainer, TrainResult
from .errors import DLTuneError, StudyError
from .progress import ProgressListener
from .records import STATE_ATTR, STUDY_META, TEST_PREFIX, best_record, best_trial, trial_record
from .samplers import make_pruner, make_sampler
from .storage import (
    DEFAULT_STORAGE,
    Heartbeat,
    fail_stale_trials,
    normalize_url,
    open_storage,
)
from .vocabulary import DEFAULT_METRIC, METRICS

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from .data import Dataset
    from .space import SearchSpace

DEFAULT_TRIALS = 50  # when neither a trial count nor a timeout is given


@dataclass
class TuneResult:
    """What `tune` returns: the study (still in storage) and its best trial as plain data."""

    study: optuna.Study
    storage: str
    space: SearchSpace
    data: Dataset
    best: dict[str, Any] | None
    trials_run: int
    seconds: float
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def best_config(self) -> Config | None:
        return Config.from_dict(self.best["params"]) if self.best else None


def resolve_space(space: SearchSpace | str | Path | dict[str, Any] | None) -> SearchSpace:
    from .space import SearchSpace

    if space is None:
        return SearchSpace.default()
    if isinstance(space, SearchSpace):
        return space
    if isinstance(space, dict):
        return SearchSpace.from_dict(space)
    return SearchSpace.from_file(space)


def trial_seed(base_seed: int, number: int) -> int:
    """Each trial's seed (weights, dropout): a function of the study's seed and its number."""
    return (base_seed * 1_000_003 + number) % (2**31 - 1)


def _study_meta(space: SearchSpace, data: Dataset, metric: str, seed: int) -> dict[str, Any]:
    return {
        "version": __version__,
        "space": space.to_dict(),
        "metric": metric,
        "seed": seed,
        "shuffle_seed": seed,
        "data": {
            "name": data.name,
            "source": data.source,
            "task": data.task,
            "fingerprint": data.fingerprint(),
            "description": data.describe(),
        },
    }


def _check_same_data(study: optuna.Study, data: Dataset, storage: str) -> None:
    """Refuse to mix another dataset into a stored study (checked before anything else)."""
    old = study.user_attrs.get(STUDY_META)
    if not isinstance(old, dict):
        if study.trials:
            raise StudyError(
                f"study {study.study_name!r} in {storage} was not made by dltune; "
                "choose another name with --study"
            )
        return
    if old["data"]["fingerprint"] != data.fingerprint():
        raise StudyError(
            f"study {study.study_name!r} in {storage} was run on data "
            f"{old['data']['description']!r}, not {data.describe()!r}; {_NEW_STUDY}"
        )


def _check_same_space(study: optuna.Study, new: dict[str, Any], storage: str) -> dict[str, Any]:
    """The study's stored metadata (written now if new); an error if the space or metric differ."""
    old = study.user_attrs.get(STUDY_META)
    if not isinstance(old, dict):
        study.set_user_attr(STUDY_META, new)
        return new
    if old["space"] != new["space"] or old["metric"] != new["metric"]:
        raise StudyError(
            f"study {study.study_name!r} in {storage} was run with another search space or "
            f"metric; run it with the same space file, or {_NEW_STUDY}"
        )
    return old


def _direction(metric: str) -> Literal["minimize", "maximize"]:
    return "maximize" if METRICS[metric][1] == "maximize" else "minimize"


_NEW_STUDY = "use --study NEW_NAME to start a separate study"


def open_study(
    space: SearchSpace,
    data: Dataset,
    *,
    storage: str,
    study_name: str | None,
    sampler: str,
    schedule: str,
    seed: int | None,
) -> tuple[optuna.Study, dict[str, Any], SearchSpace, list[str]]:
    """Create the study, or load it to continue, checked against this run's data and space.

    Returns the study, its stored metadata, the space restricted to the data's task and notes
    on what that restriction dropped.
    """
    import optuna

    name = study_name or f"{space.name}-{data.name}"
    study = optuna.create_study(
        storage=open_storage(storage),
        study_name=name,
        direction=_direction(space.metric or DEFAULT_METRIC[data.task]),
        pruner=make_pruner(schedule),
        load_if_exists=True,
    )
    _check_same_data(study, data, storage)
    space, notes = space.for_task(data.task)
    metric = space.metric or DEFAULT_METRIC[data.task]
    direction = _direction(metric)
    if study.direction.name.lower() != direction:
        raise StudyError(
            f"study {name!r} in {storage} is to {study.direction.name.lower()} but the metric "
            f"{metric!r} is to {direction}; {_NEW_STUDY}"
        )
    base_seed = seed if seed is not None else random.randrange(2**31 - 1)
    meta = _check_same_space(study, _study_meta(space, data, metric, base_seed), storage)
    # A resumed study keeps its seeds; the sampler's seed moves on with the trial count, so
    # that a resumed random search does not propose the first configurations again.
    sampler_seed = None if seed is None else seed + len(study.trials)
    study.sampler = make_sampler(sampler, space, sampler_seed)
    return study, meta, space, notes


class _TrialRunner:
    """Runs one asked trial: trains it, reports each epoch, tells its outcome."""

    def __init__(
        self,
        study: optuna.Study,
        trainer: SequentialTrainer,
        space: SearchSpace,
        base_seed: int,
        progress: ProgressListener,
    ) -> None:
        self.study = study
        self.trainer = trainer
        self.space = space
        self.base_seed = base_seed
        self.progress = progress
        # The weights of the best trial trained in this process, kept for its one test.
        self.best_state: tuple[int, dict[str, Any]] | None = None

    def run(self, trial: optuna.Trial) -> TrainResult:
        import optuna

        config = self.space.suggest(trial)
        seed = trial_seed(self.base_seed, trial.number)
        trial.set_user_attr("config", config.to_dict())
        trial.set_user_attr("seed", seed)
        self.progress.trial_started(trial.number, config)

        def on_epoch(report: EpochReport) -> bool:
            trial.report(report.val_metric, report.epoch)
            self.progress.epoch_done(trial.number, report)
            return not trial.should_prune()

        with Heartbeat(self.study._storage, trial._trial_id):
            result = self.trainer.train(
                config,
                seed=seed,
                patience=self.space.patience,
                on_epoch=on_epoch,
                keep_best_state=True,
            )
        self._store_curve(trial, result)
        state = optuna.trial.TrialState
        if result.status == "complete":
            self.study.tell(trial, result.best_value)
        else:
            if result.status == "diverged":
                trial.set_user_attr(STATE_ATTR, "diverged")
                trial.set_user_attr("diverged_epoch", result.diverged_epoch)
                last = result.history[-1]
                if last.val_metric == last.val_metric:  # not NaN: a score for the sampler
                    trial.report(last.val_metric, last.epoch)
            self.study.tell(trial, state=state.PRUNED)
        self._keep_if_best(trial.number, result)
        return result

    @staticmethod
    def _store_curve(trial: optuna.Trial, result: TrainResult) -> None:
        # The validation metric per epoch is stored as intermediate values by trial.report.
        trial.set_user_attr("train_loss", [r.train_loss for r in result.history])
        trial.set_user_attr("val_loss", [r.val_loss for r in result.history])
        trial.set_user_attr("epoch_seconds", [round(r.seconds, 4) for r in result.history])
        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("stopped_early", result.stopped_early)

    def _keep_if_best(self, number: int, result: TrainResult) -> None:
        best = best_trial(self.study)
        if best is not None and best.number == number and result.best_state is not None:
            self.best_state = (number, result.best_state)


def evaluate_test(
    study: optuna.Study,
    trainer: SequentialTrainer,
    kept: tuple[int, dict[str, Any]] | None,
) -> dict[str, Any] | None:
    """Evaluate the best trial on the test split, once; stored so it is never evaluated again.

    The weights come from this run when the best trial was trained here; otherwise the trial is
    retrained from its seed for its best number of epochs (deterministic on a CPU).
    """
    best = best_trial(study)
    if best is None:
        return None
    key = f"{TEST_PREFIX}{best.number}"
    stored = study.user_attrs.get(key)
    if isinstance(stored, dict):
        return stored
    config = Config.from_dict(best.user_attrs["config"])
    if kept is not None and kept[0] == best.number:
        model = trainer.model_from_state(config, kept[1])
        how = "weights of its best epoch"
    else:
        epochs = int(best.user_attrs.get("best_epoch") or config.epochs)
        model = trainer.model_from_state(config, _retrained_state(trainer, config, best, epochs))
        how = f"retrained from its seed for {epochs} epochs"
    loss, value = trainer.evaluate(model, "test", config.loss)
    result = {"value": value, "loss": loss, "metric": trainer.metric.name, "how": how}
    study.set_user_attr(key, result)
    return result


def _retrained_state(
    trainer: SequentialTrainer, config: Config, best: FrozenTrial, epochs: int
) -> dict[str, Any]:
    """The weights of `best` at its best epoch, retrained from its seed (same data order)."""
    result = trainer.train(
        config, seed=int(best.user_attrs["seed"]), epochs=epochs, keep_best_state=True
    )
    if result.best_state is None:
        raise DLTuneError(f"trial {best.number} diverged when retrained for its test")
    return result.best_state


def tune(
    space: SearchSpace | str | Path | dict[str, Any] | None = None,
    data: Dataset | str | Path = "digits",
    *,
    storage: str = DEFAULT_STORAGE,
    study_name: str | None = None,
    trials: int | None = None,
    timeout: float | None = None,
    seed: int | None = None,
    sampler: str = "tpe",
    schedule: str = "asha",
    device: str = "cpu",
    target: str | None = None,
    task: str | None = None,
    data_dir: str | Path | None = None,
    progress: ProgressListener | None = None,
) -> TuneResult:
    """Tune a dense network's hyperparameters on `data`; the study lives in `storage`.

    `trials` more trials are run in this call (like Optuna's n_trials), or until `timeout`
    seconds have passed; a study of the same name in the storage is continued. At the end the
    best trial is evaluated once on the test split.
    """
    import optuna

    from .data import Dataset, load_data
    from .devices import resolve_device

    started = time.perf_counter()
    progress = progress or ProgressListener()
    space = resolve_space(space)
    dataset = (
        data
        if isinstance(data, Dataset)
        else load_data(data, target=target, task=task, data_dir=data_dir)
    )
    storage = normalize_url(storage)
    study, meta, space, notes = open_study(
        space,
        dataset,
        storage=storage,
        study_name=study_name,
        sampler=sampler,
        schedule=schedule,
        seed=seed,
    )
    fail_stale_trials(study)
    trainer = SequentialTrainer(
        dataset,
        metric=meta["metric"],
        device=resolve_device(device),
        shuffle_seed=int(meta["shuffle_seed"]),
    )
    runner = _TrialRunner(study, trainer, space, int(meta["seed"]), progress)
    budget = trials if trials is not None else (None if timeout else DEFAULT_TRIALS)
    progress.study_started(
        {
            "study": study.study_name,
            "storage": storage,
            "data": dataset.describe(),
            "metric": meta["metric"],
            "trials": budget,
            "timeout": timeout,
            "existing_trials": len(study.trials),
            "notes": notes,
        }
    )
    trials_run, interrupted = 0, False
    try:
        while budget is None or trials_run < budget:
            if timeout is not None and time.perf_counter() - started >= timeout:
                break
            if isinstance(study.sampler, optuna.samplers.GridSampler) and (
                study.sampler.is_exhausted(study)
            ):
                notes.append("the grid is exhausted: every combination has been tried")
                break
            trial = _ask(study)
            try:
                runner.run(trial)
            except KeyboardInterrupt:
                _mark_failed(study, trial, "interrupted", "stopped by the user (Ctrl-C)")
                raise
            except DLTuneError:
                _mark_failed(study, trial, "failed", "invalid configuration")
                raise
            except Exception as exc:
                _mark_failed(study, trial, "failed", f"{type(exc).__name__}: {exc}")
                raise
            trials_run += 1
            progress.trial_finished(trial_record(study.trials[trial.number]), best_record(study))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.study_finished()
    if not interrupted:
        evaluate_test(study, trainer, runner.best_state)
    elif runner.best_state is not None:
        # Cheap: the weights are in memory. A retrain waits for the next, uninterrupted run.
        best = best_trial(study)
        if best is not None and best.number == runner.best_state[0]:
            evaluate_test(study, trainer, runner.best_state)
    return TuneResult(
        study=study,
        storage=storage,
        space=space,
        data=dataset,
        best=best_record(study),
        trials_run=trials_run,
        seconds=time.perf_counter() - started,
        interrupted=interrupted,
        notes=notes,
    )


def _ask(study: optuna.Study) -> optuna.Trial:
    # Optuna warns that heartbeats are meant for Study.optimize; this loop records them itself
    # (storage.Heartbeat), so the warning does not apply.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        return study.ask()


def _mark_failed(study: optuna.Study, trial: optuna.Trial, state: str, error: str) -> None:
    """End a trial that did not finish, keeping why in storage."""
    import optuna

    try:
        trial.set_user_attr(STATE_ATTR, state)
        trial.set_user_attr("error", error[:500])
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    except Exception:  # already told, or the storage is gone: nothing more to keep
        pass
