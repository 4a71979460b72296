"""`dltune run`: run (or continue) a study, then say what it found."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..study.settings import TuneSettings
from .common import (
    ON_OFF,
    OnOff,
    console,
    data_options,
    device_option,
    quiet_optuna,
    storage_option,
    tune_option,
    user_errors,
)

DEFAULTS = TuneSettings()  # the library's defaults, shown as the flags' defaults


# Every option but --encode is a parameter of tune(): its type, bounds, choices and help come
# from the parameter table (dltune.study.parameters), its default from TuneSettings.
@click.command()
@click.argument("space", required=False, type=click.Path(dir_okay=False))
@data_options()
@storage_option
@tune_option("study_name")
@tune_option("trials")
@tune_option("timeout")
@tune_option("epoch_budget")
@tune_option("seed")
@tune_option("sampler", default=DEFAULTS.sampler, show_default=True)
@tune_option("schedule", default=DEFAULTS.schedule, show_default=True)
@tune_option("baseline", "--baseline/--no-baseline", default=DEFAULTS.baseline, show_default=True)
@tune_option(
    "cost_aware", "--cost-aware/--no-cost-aware", default=DEFAULTS.cost_aware, show_default=True
)
@tune_option("engine", default=DEFAULTS.engine, show_default=True)
@tune_option("population", default=DEFAULTS.population, show_default=True)
@tune_option("workers", default=DEFAULTS.workers, show_default=True)
@tune_option("choose", default=DEFAULTS.choose, show_default=True)
@tune_option("cv", default=str(DEFAULTS.cv), show_default=True)
@tune_option(
    "ensemble",
    type=OnOff(),
    metavar=OnOff.name,
    default=ON_OFF[0] if DEFAULTS.ensemble else ON_OFF[1],
    show_default=True,
)
@tune_option("ray")
@tune_option("memory", default="auto", show_default=True)
@tune_option("model")
@tune_option("trust_source", is_flag=True, default=DEFAULTS.trust_source)
@tune_option("checkpoints")
@tune_option("checkpoint_every", default=DEFAULTS.checkpoint_every, show_default=True)
@click.option(
    "--encode/--no-encode",
    default=True,
    show_default=True,
    help="Encode a table's text, categorical and boolean columns (one-hot, at most 16 labels "
    "each plus <other>), impute its missing numbers (median, and an is-missing column), drop "
    "identifiers and constant columns, all from the training split; --no-encode: every "
    "feature must be a number, present.",
)
@device_option
@user_errors
def run(space: str | None, encode: bool, **options: Any) -> None:
    """Run (or continue) a study: SPACE is a YAML search space [default: the built-in one]."""
    from ..study import tune
    from .display import make_progress

    quiet_optuna()
    out = console()
    if not encode:  # the table read strictly here; tune() then takes it as it is
        options = _strict_data(options)
    result = tune(space, progress=make_progress(out), **options)
    _summary(out, result)
    if result.interrupted:
        out.print(
            "Interrupted: finished trials are kept, and the others' last checkpoints; run the "
            "same command to continue them."
        )
        sys.exit(130)


def _strict_data(options: dict[str, Any]) -> dict[str, Any]:
    """The options with --data loaded without the encoder (load_data's encode=False): a
    Dataset, which tune() uses as it is (the study records its source and target)."""
    from ..data import load_data

    data = load_data(
        options["data"],
        target=options["target"],
        task=options["task"],
        data_dir=options["data_dir"],
        shape=options["shape"],
        encode=False,
    )
    return {**options, "data": data, "shape": None}


def _summary(out: Any, result: Any) -> None:
    """The end of the run: counts, notes, the best configuration, the top findings, where the
    study is stored."""
    from ..storage import state_counts
    from .tables import best_table

    counts = ", ".join(f"{n} {s}" for s, n in sorted(state_counts(result.study).items()))
    out.print(
        f"\n{result.trials_run} trials in {result.seconds:.0f}s this run; "
        f"study {result.study.study_name!r} now holds {len(result.study.trials)} ({counts})."
    )
    for note in result.notes:
        out.print(f"note: {note}")
    if result.best is None:
        out.print("No trial completed yet: there is no best configuration.")
    else:
        out.print(f"Data: {result.data.describe()}")
        holdout = len(result.data.y_val) if result.data.folds is None else None
        out.print(best_table(result.best, "Best configuration", holdout))
        _top_diagnostics(out, result.study)
    shown = result.storage.shown  # a password is not printed
    out.print(f"Stored in {shown} as study {result.study.study_name!r}.")
    out.print(f"See it again: dltune best --storage {shown} --study {result.study.study_name}")


def _top_diagnostics(out: Any, study: Any, count: int = 3) -> None:
    """The most important findings, one line and a fix each."""
    from ..analysis import load_trials
    from ..analysis.diagnostics import diagnose

    found = diagnose(load_trials(study))[:count]
    if not found:
        return
    out.print("\nWhat the study shows (dltune report -o report.html for the evidence):")
    for d in found:
        out.print(f"- {d.title}.\n  Try: {d.suggestion}", markup=False)
