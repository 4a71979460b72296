"""`dltune run`: run (or continue) a study, then say what it found."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..data.folds import DEFAULT_FOLDS, MAX_FOLDS
from ..schedule import SCHEDULES
from ..study.settings import DEFAULT_SLOTS, ENGINES, SAMPLERS, TuneSettings
from ..study.validation import AUTO_KFOLD_BELOW, CV_CHOICES
from .common import (
    ON_OFF,
    OnOff,
    console,
    data_options,
    device_option,
    quiet_optuna,
    storage_option,
    trust_source_option,
    user_errors,
)

DEFAULTS = TuneSettings()  # the library's defaults, shown as the flags' defaults


class WorkersType(click.ParamType):
    """A whole number of processes, at least 1, or auto."""

    name = "N|auto"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | str:
        if isinstance(value, int) or str(value).strip().lower() == "auto":
            return value if isinstance(value, int) else "auto"
        try:
            number = int(value)
        except ValueError:
            self.fail(f"{value!r} is neither a whole number nor auto", param, ctx)
        if number < 1:
            self.fail(f"{number} is not at least 1 (or give auto)", param, ctx)
        return number


@click.command()
@click.argument("space", required=False, type=click.Path(dir_okay=False))
@data_options()
@storage_option
@click.option("--study", "study_name", help="Study name [default: SPACE's name and the data's].")
@click.option("--trials", type=click.IntRange(min=1), help="Run N more trials [default: 50].")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    help="Stop after S seconds (running trials end at their next checkpoint).",
)
@click.option(
    "--epoch-budget",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop after training this many epochs in all trials together.",
)
@click.option("--seed", type=int, help="Seed of the sampler and of the trials' weights.")
@click.option("--sampler", type=click.Choice(SAMPLERS), default=DEFAULTS.sampler, show_default=True)
@click.option(
    "--schedule",
    type=click.Choice(SCHEDULES),
    default=DEFAULTS.schedule,
    show_default=True,
    help="Successive halving over epochs (rungs: the space's min_epochs, reduction), "
    "in Hyperband brackets, or none.",
)
@click.option(
    "--baseline/--no-baseline",
    default=DEFAULTS.baseline,
    show_default=True,
    help="Start a new study with the textbook configuration (Dense 128 relu, Adam 1e-3).",
)
@click.option(
    "--cost-aware/--no-cost-aware",
    default=DEFAULTS.cost_aware,
    show_default=True,
    help="Promote the cheapest of the trials that earned a rung first.",
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default=DEFAULTS.engine,
    show_default=True,
    help="Train trials one at a time, or many at once, stacked; auto: the population engine "
    "on a GPU, on a CPU the faster one per worker as measured (see the run's note).",
)
@click.option(
    "--population",
    type=click.IntRange(min=1),
    default=DEFAULT_SLOTS,
    show_default=True,
    help="Trials trained at once by the population engine.",
)
@click.option(
    "--workers",
    type=WorkersType(),
    default=DEFAULTS.workers,
    show_default=True,
    help="Processes on this machine working on the study together; auto: one per core on a "
    "CPU (one per GPU), or 1 for a job too small to pay for another process's start-up.",
)
@click.option(
    "--choose",
    metavar="auto|max|topKxM",
    default=DEFAULTS.choose,
    show_default=True,
    help="How the best trial is chosen before its test: topKxM retrains the top K with M "
    "other seeds and takes the best mean (in a quarter of --timeout/--epoch-budget); max: the "
    "best single run; auto: top3x2 when the validation split has under 1000 examples, else max.",
)
@click.option(
    "--cv",
    metavar="|".join(CV_CHOICES) + "|K",
    default=str(DEFAULTS.cv),
    show_default=True,
    help=f"How trials are validated: kfold ({DEFAULT_FOLDS} folds) or K folds (2-{MAX_FOLDS}) "
    "cross-validate every example outside the test split (a trial is its configuration "
    "trained K times, each on the other folds; its value their mean); holdout: the validation "
    f"split; auto: k-fold below {AUTO_KFOLD_BELOW} examples outside the test split, else "
    "holdout. A continued study keeps its own (give auto, or the same).",
)
@click.option(
    "--ensemble",
    type=OnOff(),
    metavar=OnOff.name,
    default=ON_OFF[0] if DEFAULTS.ensemble else ON_OFF[1],
    show_default=True,
    help="on: the study delivers an ensemble of its best configurations, chosen by greedy "
    "selection on their out-of-fold (or validation) predictions and tested once; off: its "
    "best trial alone (in k-fold its bag, the K fold models).",
)
@click.option(
    "--ray",
    metavar="ADDRESS",
    help="Train on a Ray cluster: HOST:PORT of its head, or auto (extra: dltune[ray]).",
)
@click.option(
    "--memory",
    default="auto",
    show_default=True,
    help="Memory the population may use (e.g. 4GB; auto: a quarter of RAM, <= 8GB).",
)
@click.option(
    "--model",
    metavar="FILE.py:build|MODULE:build",
    help="Tune your own PyTorch model: a build(hp) function returning a torch.nn.Module "
    "(hp.Int, hp.Float, hp.Choice, hp.Boolean, hp.Fixed as in Keras Tuner); SPACE then gives "
    "the training knobs [default: a continued study's own build, with --trust-source].",
)
@trust_source_option("a continued study (run without --model)")
@click.option(
    "--checkpoints",
    metavar="DIR|s3://BUCKET|gs://BUCKET|off",
    help="Where each unfinished trial's latest checkpoint is kept, so that the same command "
    "resumes it after a crash, kill -9, SIGTERM or Ctrl-C [default: beside the SQLite or "
    "journal file; off for a database server unless given].",
)
@click.option(
    "--checkpoint-every",
    type=click.FloatRange(min=0),
    default=DEFAULTS.checkpoint_every,
    show_default=True,
    metavar="SECONDS",
    help="Checkpoint a running trial at least this often (besides at every rung).",
)
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
