"""Run a sweep: the plan's members trained as one population, stored as a study of their own.

The sweep goes through the same study loop and trial lifecycle as `tune` (loops.py,
lifecycle.py), with every member enqueued in Optuna beforehand (its value as the trial's
params, its seed as a user attribute) and no scheduler: every member trains all its epochs. So
the sweep's study looks like any other to `dltune report`, `dltune trials` and optuna-dashboard,
a Ctrl-C keeps the finished members, and running the same command again trains only the
members still missing.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..errors import DLTuneError, StudyError
from ..lifecycle import TrialLifecycle
from ..loops import Budget, StudyLoop
from ..progress import ProgressListener
from ..records import trial_state
from ..storage import DEFAULT_STORAGE, display_url, fail_stale_trials, normalize_url, storage_lost
from ..vocabulary import DEFAULT_METRIC, loss_applies
from .estimate import TrainedMember, one_at_a_time
from .plan import SEED_ATTR, SWEEP_ATTR, VALUE_ATTR, SweepPlan
from .study import FINISHED_STATES, enqueue_members, missing_members, open_sweep_study
from .values import default_values, parse_range, parse_values

if TYPE_CHECKING:
    import optuna

    from ..data import Dataset
    from ..space import SearchSpace

DEFAULT_SEEDS = 3
DEFAULT_SEED = 0  # sweeps are for learning: the same command gives the same curves


@dataclass
class SweepResult:
    study: optuna.Study
    storage: str
    plan: SweepPlan
    data: Dataset
    seconds: float  # this call, the estimate's sample included
    trained: int  # members trained in this call
    interrupted: bool = False
    timing: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def sweep(
    param: str,
    *,
    values: str | list[Any] | tuple[Any, ...] | None = None,
    value_range: str | None = None,
    data: Dataset | str | Path | None = None,
    base: SearchSpace | str | Path | dict[str, Any] | None = None,
    from_study: str | None = None,
    storage: str = DEFAULT_STORAGE,
    study_name: str | None = None,
    epochs: int | None = None,
    seeds: int = DEFAULT_SEEDS,
    seed: int = DEFAULT_SEED,
    estimate: bool = True,
    memory: str | int | None = None,
    device: str = "cpu",
    target: str | None = None,
    task: str | None = None,
    data_dir: str | Path | None = None,
    progress: ProgressListener | None = None,
) -> SweepResult:
    """Train the base configuration with `param` set to each of its values, `seeds` times each.

    The base is the best trial of study `from_study` (in `storage`), or the space `base` with
    its fixed values and, for what it samples, the textbook configuration's nearest values
    (the default space: one Dense(128, relu) layer, dropout 0.2, Adam at 1e-3, batch 32).
    `data`: None is the study's data with `from_study`, else digits.
    `values` ("V1,V2,..." or a list) or `value_range` ("LOW:HIGH:N[:log]") choose the values;
    neither: every choice of a categorical, a wide default range of a numeric one.
    """
    from .values import parameter_name

    started = time.perf_counter()
    progress = progress or ProgressListener()
    param = parameter_name(param)
    if values is not None and value_range is not None:
        raise DLTuneError("give --values or --range, not both")
    if from_study is not None and base is not None:
        raise DLTuneError("give --from-study or --base, not both: each names the base")
    if seeds < 1:
        raise DLTuneError(f"--seeds must be at least 1; got {seeds}")
    storage = normalize_url(storage)
    dataset, config, metric, target = _base(from_study, base, data, storage, target, task, data_dir)
    plan = _plan(param, values, value_range, config, dataset.task, epochs, seeds, seed)
    study, meta, space = open_sweep_study(plan, metric, dataset, storage, study_name, target)
    result = SweepResult(study, storage, plan, dataset, 0.0, 0)
    _run(result, space, meta, memory, device, estimate, progress)
    result.seconds = time.perf_counter() - started
    return result


# ---- the base configuration and the plan --------------------------------------------------


def _base(
    from_study: str | None,
    base: SearchSpace | str | Path | dict[str, Any] | None,
    data: Dataset | str | Path | None,
    storage: str,
    target: str | None,
    task: str | None,
    data_dir: str | Path | None,
) -> tuple[Dataset, Config, str, str | None]:
    """The data, the base configuration, the metric and the target column."""
    from ..data import Dataset, load_data
    from ..tuner import resolve_space

    if from_study is not None:
        from ..export.retrain import study_data
        from ..records import best_trial, study_meta
        from ..storage import load_study

        source = load_study(storage, from_study)
        best = best_trial(source)
        if best is None:
            raise StudyError(
                f"--from-study {from_study!r}: the study has no complete trial yet, so no best "
                "configuration to sweep around; run it longer, or use --base SPACE"
            )
        # The study's data unless other data is given: the sweep then asks the same question
        # of another dataset, which is allowed (the base is only a starting point).
        if data is None:
            dataset, stored_target = study_data(source, data_dir=data_dir)
        else:
            dataset = (
                data
                if isinstance(data, Dataset)
                else load_data(data, target=target, task=task, data_dir=data_dir)
            )
            stored_target = target
        config = Config.from_dict(best.user_attrs["config"])
        metric = study_meta(source).get("metric") or DEFAULT_METRIC[dataset.task]
        if not loss_applies(config.loss, dataset.task):
            raise StudyError(
                f"--from-study {from_study!r}: its best loss {config.loss!r} does not apply to "
                f"a {dataset.task} target ({dataset.describe()})"
            )
        return dataset, config, metric, None if stored_target is None else str(stored_target)
    data = "digits" if data is None else data
    dataset = (
        data
        if isinstance(data, Dataset)
        else load_data(data, target=target, task=task, data_dir=data_dir)
    )
    space, _notes = resolve_space(base).for_task(dataset.task)
    config = space.config_from_params(space.baseline_params())
    return dataset, config, space.metric or DEFAULT_METRIC[dataset.task], target


def _plan(
    param: str,
    values: str | list[Any] | tuple[Any, ...] | None,
    value_range: str | None,
    base: Config,
    task: str,
    epochs: int | None,
    seeds: int,
    seed: int,
) -> SweepPlan:
    if epochs is not None and epochs < 1:
        raise DLTuneError(f"--epochs must be at least 1; got {epochs}")
    most = epochs or base.epochs
    if values is not None:
        text = values if isinstance(values, str) else ",".join(str(v) for v in values)
        chosen = parse_values(param, text)
    elif value_range is not None:
        chosen = parse_range(param, value_range)
    else:
        chosen = default_values(param, task, most)
    if param == "loss":
        wrong = [v for v in chosen if not loss_applies(v, task)]
        if wrong:
            raise DLTuneError(
                f"--values: loss {', '.join(wrong)} does not apply to a {task} target; losses "
                f"that apply: {', '.join(default_values('loss', task, 1))}"
            )
    if param == "epochs":
        if epochs is not None and max(chosen) > epochs:
            raise DLTuneError(
                f"--values: epochs {max(chosen)} is above --epochs {epochs}; drop --epochs "
                "(an epochs sweep trains up to its largest value)"
            )
        most = max(chosen)
        chosen = tuple(sorted(chosen))
    return SweepPlan(param, tuple(chosen), base.replace(epochs=most), seeds, seed)


# ---- training -------------------------------------------------------------------------------


def _run(
    result: SweepResult,
    space: SearchSpace,
    meta: dict[str, Any],
    memory: str | int | None,
    device: str,
    estimate: bool,
    progress: ProgressListener,
) -> None:
    from ..devices import resolve_device
    from ..engine.population import PopulationTrainer
    from ..schedule import make_scheduler

    study, plan = result.study, result.plan
    fail_stale_trials(study)
    missing, _ = missing_members(study, plan)
    enqueue_members(study, plan, missing)
    if not missing:
        result.notes.append("every member was trained before: nothing to train")
        return
    resolved = resolve_device(device)
    shuffle_seed = int(meta["shuffle_seed"])
    trainer = PopulationTrainer(
        result.data,
        metric=meta["metric"],
        device=resolved,
        shuffle_seed=shuffle_seed,
        memory=memory,
        track_train=True,
    )
    scheduler = make_scheduler(
        "none",
        min_epochs=plan.epochs,
        max_epochs=plan.epochs,
        reduction=3,
        direction=study.direction.name.lower(),
    )
    lifecycle = TrialLifecycle(study, space, int(meta["seed"]), progress)
    loop = StudyLoop(
        lifecycle, trainer, scheduler, Budget(len(missing), None), patience=None, slots=len(missing)
    )
    progress.study_started(
        {
            "study": study.study_name,
            "storage": display_url(result.storage),
            "data": result.data.describe(),
            "metric": meta["metric"],
            "trials": len(missing),
            "timeout": None,
            "existing_trials": len(study.trials) - len(missing),
            "engine": "population",
            "schedule": "none",
            "notes": [f"sweep of {plan.param}: {len(plan.values)} values x {plan.seeds} seeds"],
        }
    )
    started = time.perf_counter()
    run_started = datetime.datetime.now()  # Optuna's datetime_start: naive local time
    try:
        loop.run()
    except KeyboardInterrupt:
        result.interrupted = True
        lifecycle.fail_running("interrupted", "stopped by the user (Ctrl-C)")
    except Exception as exc:
        lifecycle.fail_running("failed", f"{type(exc).__name__}: {exc}")
        lost = storage_lost(result.storage, exc)
        if lost is not None:
            raise lost from exc
        raise
    finally:
        lifecycle.close()
        progress.study_finished()
    seconds = time.perf_counter() - started
    result.trained = loop.budget.started
    if result.interrupted:
        return
    timing: dict[str, Any] = {
        "seconds": seconds,  # wall time of the loop: training, evaluating, storing
        "train_seconds": sum(trainer.bucket_seconds.values()),  # training and evaluating
        "members": len(missing),
        "earlier": len(plan.members()) - len(missing),  # finished by an interrupted run
        "member_epochs": trainer.epochs_trained,
        "overhead_seconds": loop.overhead_seconds,
        "buckets": len(trainer.bucket_seconds),
        "param": plan.param,
    }
    if estimate:
        trained, usable = _trained_members(study, plan, since=run_started)
        try:
            timing["one_at_a_time"] = one_at_a_time(
                plan,
                result.data,
                trained,
                usable=usable,
                metric=meta["metric"],
                shuffle_seed=shuffle_seed,
                device=resolved,
            )
        except KeyboardInterrupt:
            result.notes.append("the one-at-a-time estimate was interrupted: not stored")
    result.timing = timing
    stored = dict(study.user_attrs.get(SWEEP_ATTR) or {})
    stored["timing"] = timing
    study.set_user_attr(SWEEP_ATTR, stored)


def _trained_members(
    study: optuna.Study, plan: SweepPlan, since: datetime.datetime
) -> tuple[list[TrainedMember], list[int]]:
    """Every member finished in this run (started `since`), charged its finished epochs; the
    values none of whose members diverged (the ones worth timing)."""
    members, diverged = [], set()
    for trial in study.get_trials(deepcopy=False):
        if SEED_ATTR not in trial.user_attrs or trial_state(trial) not in FINISHED_STATES:
            continue
        if trial.datetime_start is None or trial.datetime_start < since:
            continue
        value_index = trial.user_attrs.get(VALUE_ATTR)
        epochs = len(trial.user_attrs.get("train_loss", []))
        if trial_state(trial) == "diverged":
            diverged.add(value_index)
            epochs -= 1
        members.append(TrainedMember(value_index, max(0, epochs)))
    usable = [i for i in range(len(plan.values)) if i not in diverged]
    return members, usable
