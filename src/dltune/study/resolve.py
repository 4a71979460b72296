"""What a run was asked, resolved once, in the main process: the space and the data from their
names, the arrangement from this machine's facts, how the best trial is chosen from the data,
the defaults fitted to a short budget (budget.py), and from them all the run's Plan (plan.py),
which the main process and every worker execute.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import arrangement as arrangements
from . import budget, costs
from .choice import ChoiceRule, rule_for
from .plan import Plan, make_plan, trial_count

if TYPE_CHECKING:
    from ..data import Dataset
    from ..space import SearchSpace
    from ..storage import Storage
    from .arrangement import Arrangement
    from .budget import BudgetFit
    from .opening import OpenedStudy
    from .settings import TuneSettings


def resolve_space(space: SearchSpace | str | Path | dict[str, Any] | None) -> SearchSpace:
    """The space a name, a file, a dict or nothing (the built-in space) stands for."""
    from ..space import SearchSpace

    if space is None:
        return SearchSpace.default()
    if isinstance(space, SearchSpace):
        return space
    if isinstance(space, dict):
        return SearchSpace.from_dict(space)
    return SearchSpace.from_file(space)


def resolve_data(settings: TuneSettings) -> Dataset:
    """The data `settings` name, loaded (or given, reshaped where asked)."""
    from ..data import Dataset, load_data, with_shape

    if isinstance(settings.data, Dataset):
        return with_shape(settings.data, settings.shape)
    return load_data(
        settings.data,
        target=settings.target,
        task=settings.task,
        data_dir=settings.data_dir,
        shape=settings.shape,
    )


def arrange(
    settings: TuneSettings, storage: Storage, space: SearchSpace, dataset: Dataset
) -> Arrangement:
    """Workers, engine, threads and devices for this run on this machine (arrangement.py),
    with the note that says what was chosen."""
    model_problem = None
    if settings.model is not None:
        from ..usermodel.source import importable

        model_problem = importable(settings.model)
    device = settings.device.lower()
    facts = arrangements.Facts(
        cpus=arrangements.cpu_count(),
        cuda_devices=arrangements.cuda_count(device),
        device=device,
        trials=trial_count(settings.trials, settings.timeout),
        timeout=settings.timeout,
        epoch_budget=settings.epoch_budget,
        examples=len(dataset.x_train),
        features=dataset.n_features,
        max_epochs=space.epochs,
        storage_url=storage.url is not None,
        model_problem=model_problem,
        ray=settings.ray is not None,
        main_problem=arrangements.main_problem() if settings.workers == "auto" else None,
    )
    return arrangements.arrange(settings.workers, settings.engine, facts)


def choice_rule(settings: TuneSettings, dataset: Dataset, notes: list[str]) -> ChoiceRule:
    """How the best trial is chosen: `choose` for the validation split's size; in k-fold the
    best mean over the folds (re-evaluating with other seeds is what the folds already do)."""
    if dataset.folds is None:
        return rule_for(settings.choose, len(dataset.y_val))
    asked = rule_for(settings.choose, dataset.folds.n_pool)
    if asked.reevaluates and str(settings.choose).strip().lower() != "auto":
        notes.append(
            f"choose {asked.name}: not in k-fold, whose trials are already the mean of "
            f"{dataset.folds.k} runs; the best mean is chosen"
        )
    return ChoiceRule()


def plan_run(
    settings: TuneSettings,
    storage: Storage,
    opened: OpenedStudy,
    dataset: Dataset,
    arrangement: Arrangement,
    began: float,
) -> Plan:
    """The run's plan, once its study is open and its data validated as the study says
    (`dataset`, with its folds in k-fold): the settings with every name resolved, for the
    workers; the choice rule and what was fitted to the budget (their notes in
    `opened.notes`); what is held back for the end, which depends on whether the study had
    complete trials before (a continued study's delivered members may need retraining:
    benchmarks/RESULTS.md)."""
    rule = choice_rule(settings, dataset, opened.notes)
    fit = fit_to_budget(settings, opened, dataset, arrangement, rule)
    if fit.note:
        opened.notes.append(fit.note)
    study = opened.study
    continued = any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False))
    resolved = settings.replace(
        space=opened.space,
        data=dataset,
        storage=storage.url if storage.url is not None else settings.storage,
        study_name=study.study_name,
        model=opened.model,  # its record: each worker imports the build again
    )
    return make_plan(resolved, arrangement, rule, continued=continued, began=began, fit=fit)


def fit_to_budget(
    settings: TuneSettings,
    opened: OpenedStudy,
    dataset: Dataset,
    arrangement: Arrangement,
    rule: ChoiceRule,
) -> BudgetFit:
    """The defaults fitted to the run's timeout or epoch budget (budget.py): the default space
    narrowed (never a space the user gave, nor a user model's), the first trial, the choice's
    reserve (where "auto" chose the rule), with costs estimated for a CPU run alone."""
    from ..space import DEFAULT_SOURCE

    if settings.timeout is None and settings.epoch_budget is None:
        return budget.BudgetFit()
    facts = budget.Facts(
        timeout=settings.timeout,
        epoch_budget=settings.epoch_budget,
        workers=arrangement.workers,
        members=dataset.folds.k if dataset.folds is not None else 1,
        timed=arrangement.devices == ("cpu",) and settings.ray is None,
        narrow=opened.space.source == DEFAULT_SOURCE and opened.model is None,
        rule=rule,
        rule_auto=str(settings.choose).strip().lower() == "auto",
    )
    return budget.fit_budget(facts, opened.space, costs.for_data(dataset))
