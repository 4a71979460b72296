"""The study loop: ask, train, report, tell; budgets; resume; the test split used once.

The loop is Optuna's ask/tell, so a custom loop and this one share one path. Everything a later
run needs (the space, the data's fingerprint, seeds, each trial's configuration and learning
curve, the test result) is written to storage; nothing lives only in this process.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from . import __version__
from .config import Config
from .engine import SequentialEngine, SequentialTrainer
from .errors import DLTuneError, StudyError
from .lifecycle import TrialLifecycle
from .loops import Budget, StudyLoop
from .progress import ProgressListener
from .records import STUDY_META, TEST_PREFIX, best_record, best_trial
from .samplers import make_sampler
from .schedule import make_scheduler
from .storage import (
    DEFAULT_STORAGE,
    display_url,
    fail_stale_trials,
    normalize_url,
    open_storage,
    storage_lost,
)
from .vocabulary import DEFAULT_METRIC, METRICS
from .workers import SEED_STRIDE, LocalWorkers, share, threads_per_worker

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
    epochs_trained: float = 0.0  # member-epochs trained in this call
    overhead_seconds: float = 0.0  # asking, storing and scheduling, not training

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


def _study_meta(
    space: SearchSpace, data: Dataset, metric: str, seed: int, target: str | int | None = None
) -> dict[str, Any]:
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
            # The target column of a table, so that train-best can load the same data again.
            "target": target,
        },
    }


def _check_same_data(study: optuna.Study, data: Dataset, storage: str) -> None:
    """Refuse to mix another dataset into a stored study (checked before anything else)."""
    old = study.user_attrs.get(STUDY_META)
    if not isinstance(old, dict):
        if study.trials:
            raise StudyError(
                f"study {study.study_name!r} in {display_url(storage)} was not made by dltune; "
                "choose another name with --study"
            )
        return
    if old["data"]["fingerprint"] != data.fingerprint():
        raise StudyError(
            f"study {study.study_name!r} in {display_url(storage)} was run on data "
            f"{old['data']['description']!r}, not {data.describe()!r}; {_NEW_STUDY}"
        )


def _check_same_space(study: optuna.Study, new: dict[str, Any], storage: str) -> dict[str, Any]:
    """The study's stored metadata (written now if new); an error if the space or metric differ."""
    old = study.user_attrs.get(STUDY_META)
    if not isinstance(old, dict):
        study.set_user_attr(STUDY_META, new)
        # Two processes starting a new study together (a shared database) may both write it:
        # read back what storage kept, so that both go on with the same seeds.
        kept = study._storage.get_study_user_attrs(study._study_id).get(STUDY_META)
        return kept if isinstance(kept, dict) else new
    if old["space"] != new["space"] or old["metric"] != new["metric"]:
        raise StudyError(
            f"study {study.study_name!r} in {display_url(storage)} was run with another search "
            f"space or metric; run it with the same space file, or {_NEW_STUDY}"
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
    seed: int | None,
    parallel: bool = False,
    worker_index: int = 0,
    target: str | int | None = None,
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
        # dltune's scheduler decides at rungs (loops.py); Optuna's pruner is not consulted.
        pruner=optuna.pruners.NopPruner(),
        load_if_exists=True,
    )
    _check_same_data(study, data, storage)
    space, notes = space.for_task(data.task)
    metric = space.metric or DEFAULT_METRIC[data.task]
    direction = _direction(metric)
    if study.direction.name.lower() != direction:
        raise StudyError(
            f"study {name!r} in {display_url(storage)} is to {study.direction.name.lower()} but "
            f"the metric {metric!r} is to {direction}; {_NEW_STUDY}"
        )
    base_seed = seed if seed is not None else random.randrange(2**31 - 1)
    meta = _check_same_space(study, _study_meta(space, data, metric, base_seed, target), storage)
    # A resumed study keeps its seeds; the sampler's seed moves on with the trial count, so
    # that a resumed random search does not propose the first configurations again.
    sampler_seed = None if seed is None else seed + len(study.trials) + SEED_STRIDE * worker_index
    study.sampler = make_sampler(sampler, space, sampler_seed, parallel=parallel)
    return study, meta, space, notes


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


ENGINES = ("sequential", "population")
DEFAULT_SLOTS = 16  # trials trained at once by the population engine


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
    epoch_budget: float | None = None,
    cost_aware: bool = False,
    baseline: bool = True,
    engine: str = "sequential",
    population: int = DEFAULT_SLOTS,
    workers: int = 1,
    worker_index: int = 0,
    memory: str | int | None = None,
    device: str = "cpu",
    target: str | None = None,
    task: str | None = None,
    data_dir: str | Path | None = None,
    progress: ProgressListener | None = None,
    ray: str | None = None,
) -> TuneResult:
    """Tune a dense network's hyperparameters on `data`; the study lives in `storage`.

    `trials` more trials are started in this call (like Optuna's n_trials), until `timeout`
    seconds have passed or `epoch_budget` member-epochs have been trained: then the running
    trials end at their next checkpoint (complete with their best epoch so far). A study of the
    same name in the storage is continued.

    `schedule`: "asha" (asynchronous successive halving over epochs, with promotion: rungs at
    the space's min_epochs times powers of its reduction, up to its epochs), "hyperband" (the
    same in Hyperband's brackets) or "none" (every trial trains all its epochs). `cost_aware`:
    among the trials that earned a promotion, the cheapest per epoch goes first.

    `baseline`: a new study's first trial is the textbook configuration (one Dense(128, relu)
    layer, dropout 0.2, Adam at 1e-3, batch size 32), projected into the space, so that every
    study has a known-good start and a baseline to beat.

    `engine` trains trials one at a time ("sequential") or up to `population` at once, stacked,
    within a `memory` budget ("population"). `workers` > 1 runs that many processes on the
    study (this one and workers - 1 children, see workers.py), sharing the trial and epoch
    budgets. `ray` ("auto" or HOST:PORT): trials are trained by Ray actors on that cluster,
    one per CPU, fed from this process's study (distributed/ray_engine.py). At the end the best
    trial is evaluated once on the test split.
    """
    import torch

    from .data import Dataset, load_data
    from .devices import resolve_device
    from .engine.population import PopulationTrainer

    if engine not in ENGINES:
        raise DLTuneError(f"--engine {engine!r} is not known; choose from {', '.join(ENGINES)}")
    if workers < 1:
        raise DLTuneError(f"--workers must be at least 1; got {workers}")
    if ray is not None and workers > 1:
        raise DLTuneError("--ray and --workers do not mix: Ray places the workers itself")
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
        seed=seed,
        parallel=engine == "population" or workers > 1 or worker_index > 0,
        worker_index=worker_index,
        target=target,
    )
    scheduler = make_scheduler(
        schedule,
        min_epochs=space.min_epochs,
        max_epochs=space.epochs,
        reduction=space.reduction,
        direction=study.direction.name.lower(),
        cost_aware=cost_aware,
    )
    segments = scheduler.rungs.segments
    fail_stale_trials(study)
    if baseline and sampler != "grid" and not study.trials:
        # skip_if_exists: another process starting the same study may just have enqueued it.
        study.enqueue_trial(
            space.baseline_params(), user_attrs={"baseline": True}, skip_if_exists=True
        )
    helpers = None
    if workers > 1:
        helpers = LocalWorkers(
            workers,
            {
                "space": space,
                "data": dataset,
                "storage": storage,
                "study_name": study.study_name,
                "trials": trials,
                "timeout": None if timeout is None else timeout - (time.perf_counter() - started),
                "seed": seed,
                "sampler": sampler,
                "schedule": schedule,
                "epoch_budget": epoch_budget,
                "cost_aware": cost_aware,
                "engine": engine,
                "population": population,
                "memory": memory,
                "device": device,
            },
        )
        helpers.start()
        trials = share(trials, workers, 0)
        epoch_budget = share(epoch_budget, workers, 0)
    threads = torch.get_num_threads()
    if workers > 1:
        torch.set_num_threads(threads_per_worker(workers))
    device = resolve_device(device)
    shuffle_seed = int(meta["shuffle_seed"])
    # The sequential trainer also evaluates the test split and retrains for it.
    trainer = SequentialTrainer(
        dataset, metric=meta["metric"], device=device, shuffle_seed=shuffle_seed
    )
    tagged = worker_index if workers > 1 or worker_index > 0 else None
    lifecycle = TrialLifecycle(study, space, int(meta["seed"]), progress, worker=tagged)
    n_trials = trials if trials is not None else (None if timeout else DEFAULT_TRIALS)
    budget = Budget(n_trials, None if timeout is None else started + timeout, epoch_budget)
    progress.study_started(
        {
            "study": study.study_name,
            "storage": display_url(storage),
            "data": dataset.describe(),
            "metric": meta["metric"],
            "trials": n_trials,
            "timeout": timeout,
            "existing_trials": len(study.trials),
            "engine": engine,
            "schedule": scheduler.rungs.describe() if schedule != "none" else "none",
            "notes": notes,
        }
    )
    interrupted = False
    slots = population if engine == "population" else 1
    if ray is not None:
        from .distributed.ray_engine import RayEngine

        members: Any = RayEngine.start(ray, dataset, meta["metric"], shuffle_seed, segments)
        slots = len(members.actors)
        notes.append(
            f"Ray at {ray}: {slots} workers ("
            + ", ".join(f"{n['host']}:{n['pid']}" for n in members.nodes)
            + ")"
        )
    elif engine == "population":
        members = PopulationTrainer(
            dataset,
            metric=meta["metric"],
            device=device,
            shuffle_seed=shuffle_seed,
            memory=memory,
            segments=segments,
        )
    else:
        members = SequentialEngine(trainer, segments)
    loop = StudyLoop(
        lifecycle,
        members,
        scheduler,
        budget,
        patience=space.patience,
        slots=slots,
    )
    try:
        loop.run()
    except KeyboardInterrupt:
        interrupted = True
        lifecycle.fail_running("interrupted", "stopped by the user (Ctrl-C)")
    except Exception as exc:
        lifecycle.fail_running("failed", f"{type(exc).__name__}: {exc}")
        lost = storage_lost(storage, exc)  # the database went away: a message, not a traceback
        if lost is not None:
            raise lost from exc
        raise
    finally:
        lifecycle.close()
        others = helpers.join() if helpers is not None else []
        torch.set_num_threads(threads)
        progress.study_finished()
    kept = lifecycle.best_state
    best = best_trial(study)
    cheap = kept is not None and best is not None and best.number == kept[0]
    if cheap or (not interrupted and worker_index == 0):
        # After Ctrl-C, or in a child worker, only when cheap (the weights are in memory); a
        # retrain waits for the next, uninterrupted run of the main process.
        evaluate_test(study, trainer, kept)
    failed = [o for o in others if "error" in o]
    if failed:
        raise DLTuneError(f"worker {failed[0]['worker']} failed: {failed[0]['error']}")
    return TuneResult(
        study=study,
        storage=storage,
        space=space,
        data=dataset,
        best=best_record(study),
        trials_run=budget.started + sum(o.get("trials", 0) for o in others),
        seconds=time.perf_counter() - started,
        interrupted=interrupted,
        notes=notes,
        epochs_trained=members.epochs_trained + sum(o.get("epochs", 0.0) for o in others),
        overhead_seconds=loop.overhead_seconds + sum(o.get("overhead", 0.0) for o in others),
    )
