"""A sweep's study in storage: opened (new, resumed, or under a free name), its members
enqueued, the ones still missing found.

The plan is stored with the study (storage.schema.SWEEP) with the data's chance level (what
the readings measure progress from); each member is a trial enqueued with its value as Optuna
params and its value index, seed index and seed as attributes (schema.sweep_member_attrs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import StudyError, param
from ..storage import schema, trial_state
from ..study.opening import OpenedStudy, open_study
from ..vocabulary import FINISHED_STATES
from .plan import SweepPlan

if TYPE_CHECKING:
    import optuna

    from ..data import Dataset
    from ..storage import Storage


def open_sweep_study(
    plan: SweepPlan,
    metric: str,
    dataset: Dataset,
    storage: Storage,
    study_name: str | None,
    target: str | None,
) -> OpenedStudy:
    """The sweep's study, new or resumed; the same plan under the same name, or an error."""
    from ..space import SearchSpace

    space = SearchSpace.from_dict(plan.space_dict(metric), source=f"dltune sweep {plan.param}")
    if study_name is not None:
        _check_named(storage, study_name, plan)
    name = study_name or _free_name(storage, f"sweep-{plan.param}-{dataset.name}", plan, dataset)
    opened = open_study(
        space,
        dataset,
        storage,
        study_name=name,
        sampler="random",  # never consulted: every member is enqueued with its params
        seed=plan.seed,
        parallel=True,
        target=target,
    )
    study = opened.study
    if schema.read_sweep(study) is None:
        chance = chance_level(dataset, opened.metric)
        schema.write_sweep(study, {"plan": plan.to_dict(), "chance": chance})
    return opened


def _check_named(storage: Storage, name: str, plan: SweepPlan) -> None:
    """A study named by the caller that exists must hold this very sweep (to resume it)."""
    found = next((s for s in storage.summaries() if s.study_name == name), None)
    if found is None:
        return
    stored = schema.read_sweep(found)
    new_name = param("study_name", shown="NEW_NAME")
    if stored is None:
        raise StudyError(
            f"study {name!r} in {storage.shown} is a study, not a sweep; "
            f"use {new_name} for the sweep"
        )
    if stored.get("plan") != plan.to_dict():
        raise StudyError(
            f"study {name!r} in {storage.shown} holds a sweep with another plan "
            f"({_plan_text(stored.get('plan'))}); use {new_name} to store this one "
            "separately, or the same options to resume it"
        )


def _plan_text(plain: Any) -> str:
    try:
        plan = SweepPlan.from_dict(plain)
    except (KeyError, TypeError, ValueError):
        return "unreadable"
    return f"{plan.param} = {', '.join(plan.labels())}; {plan.seeds} seeds, {plan.epochs} epochs"


def chance_level(dataset: Dataset, metric: str) -> float:
    """The validation metric of a model that learned nothing but the targets' distribution:
    the commonest class's share (accuracy), the spread around the mean (rmse) or the median
    (mae). The readings measure how far each value got from here."""
    import numpy as np

    y = np.asarray(dataset.y_val)
    if metric == "accuracy":
        return float(np.bincount(y.astype(np.int64)).max() / len(y))
    if metric == "mae":
        return float(np.mean(np.abs(y - np.median(y))))
    return float(np.std(y))


def _free_name(storage: Storage, wanted: str, plan: SweepPlan, dataset: Dataset) -> str:
    """`wanted`, or `wanted-2`, `-3`, ...: the first name that is free or holds this very
    sweep (to resume it), so that sweeps with other values never collide."""
    existing = {s.study_name: s for s in storage.summaries()}
    for n in range(1, 1000):
        name = wanted if n == 1 else f"{wanted}-{n}"
        summary = existing.get(name)
        if summary is None:
            return name
        attrs = schema.study_attrs(summary)
        same_plan = (schema.read_sweep(attrs) or {}).get("plan") == plan.to_dict()
        same_data = schema.read_study_meta(attrs).get("data", {}).get("fingerprint") == (
            dataset.fingerprint()
        )
        if same_plan and same_data:
            return name
    raise StudyError(
        f"{storage.shown} holds 999 sweeps named {wanted!r}; use {param('study_name')}"
    )


def missing_members(
    study: optuna.Study, plan: SweepPlan
) -> tuple[list[tuple[int | None, int]], int]:
    """Members with no finished trial, and how many of them wait enqueued from an earlier,
    interrupted run (they are not enqueued again)."""
    done, waiting = set(), set()
    for trial in study.get_trials(deepcopy=False):
        key = schema.read_sweep_member(trial)
        state = trial_state(trial)
        if state in FINISHED_STATES:
            done.add(key)
        elif state == "waiting":
            waiting.add(key)
    missing = [m for m in plan.members() if m not in done]
    return missing, sum(1 for m in missing if m in waiting)


def enqueue_members(
    study: optuna.Study, plan: SweepPlan, missing: list[tuple[int | None, int]]
) -> None:
    queued = {
        schema.read_sweep_member(t)
        for t in study.get_trials(deepcopy=False)
        if trial_state(t) == "waiting"
    }
    for value_index, seed_index in missing:
        if (value_index, seed_index) in queued:
            continue
        schema.enqueue_sweep_member(
            study,
            plan.params_for(value_index),
            value_index,
            seed_index,
            plan.member_seed(seed_index),
        )
