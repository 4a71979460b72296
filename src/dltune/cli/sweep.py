"""`dltune sweep PARAM`: one hyperparameter varied, the rest held; its table, readings, page."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import StudyError
from ..sweep.plan import DEFAULT_SEED, DEFAULT_SEEDS
from .common import (
    console,
    data_options,
    device_option,
    quiet_optuna,
    storage_option,
    tune_option,
    user_errors,
)

if TYPE_CHECKING:
    from ..analysis.sweep_data import SweepAnalysis
    from ..sweep.runner import SweepResult

TABLE_WIDTH = 110
HELP_PARAM = (
    "PARAM: layers, units, dropout, activation, loss, optimizer, learning_rate (lr), "
    "weight_decay, batch_size or epochs."
)


@click.command("sweep", epilog=HELP_PARAM)
@click.argument("param")
@click.option("--values", help="The values, separated by commas: 0,0.2,0.4 or relu,tanh,linear.")
@click.option(
    "--range",
    "value_range",
    metavar="LOW:HIGH:N[:log]",
    help="N values from LOW to HIGH, evenly or on a log scale: 1e-5:10:13:log.",
)
@click.option("--from-study", help="Hold the rest at this study's best trial (same storage).")
@click.option(
    "--base",
    type=click.Path(dir_okay=False),
    help="Hold the rest at this space file's fixed values (textbook values for the others).",
)
@data_options("[default: digits; with --from-study, that study's data]", default=None)
@storage_option
@click.option("--study", "study_name", help="Study name [default: sweep-PARAM-DATA].")
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    help="Epochs per run [default: the base's]; for an epochs sweep, the most.",
)
@click.option("--seeds", type=click.IntRange(min=1), default=DEFAULT_SEEDS, show_default=True)
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True, help="The first seed.")
@click.option(
    "--estimate/--no-estimate",
    default=True,
    show_default=True,
    help="Time a sample one at a time, to tell what the population saved.",
)
@tune_option("memory")
@device_option
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Also write the sweep's page (.html) or picture (.png).",
)
@user_errors
def sweep(param: str, output: str | None, **options: Any) -> None:
    """Train one configuration with PARAM varied and the rest held, K seeds per value."""
    from ..sweep.values import parameter_name

    # Mistakes in the options are told before the heavy imports (torch, optuna: seconds).
    param = parameter_name(param)
    _check_options(param, output, options["values"], options["value_range"])

    from ..analysis.sweeps import analyze_sweep
    from ..sweep.runner import sweep as run_sweep
    from .display import SweepProgress

    quiet_optuna()
    out = console()
    if not out.is_terminal:
        out.width = max(out.width, TABLE_WIDTH)  # a log: the table on one line a value
    result = run_sweep(param, progress=SweepProgress(out, param), **options)
    _print_result(out, result, analyze_sweep(result.study), output)
    if result.interrupted:
        out.print("Interrupted: finished runs are kept; run the same command to continue.")
        sys.exit(130)


def _check_options(
    param: str, output: str | None, values: str | None, value_range: str | None
) -> None:
    from ..errors import DLTuneError
    from ..errors import param as named
    from ..sweep.values import parse_range, parse_values

    if output is not None:
        _check_output(output)
    if values is not None and value_range is not None:
        raise DLTuneError(f"give {named('values')} or {named('value_range')}, not both")
    if values is not None:
        parse_values(param, values)
    elif value_range is not None:
        parse_range(param, value_range)


def _print_result(
    out: Any, result: SweepResult, analysis: SweepAnalysis, output: str | None
) -> None:
    """The table, the timing, the readings, and where the sweep is stored (and its page)."""
    from .tables import sweep_table

    out.print()
    out.print(sweep_table(analysis))
    for line in _timing_lines(result, analysis):
        out.print(line, markup=False)
    for note in result.notes:
        out.print(f"note: {note}", markup=False)
    if analysis.readings:
        out.print("\nWhat it shows:")
        for reading in analysis.readings:
            out.print(f"- {reading.text}", markup=False)
    shown = result.storage.shown
    out.print(f"\nStored in {shown} as study {result.study.study_name!r}.", markup=False)
    if output is not None:
        from ..report import write_report

        write_report(result.study, output)
        out.print(f"Wrote {output}", markup=False)
    else:
        out.print(
            f"Its page: dltune report --storage {shown} --study {result.study.study_name} "
            "-o sweep.html",
            markup=False,
        )


def _check_output(output: str) -> None:
    target = Path(output)
    if target.suffix.lower() not in (".html", ".png"):
        raise StudyError(f"-o {output!r}: write the sweep as .html or .png")
    if not target.parent.is_dir():
        raise StudyError(
            f"-o {output!r}: the folder {str(target.parent)!r} does not exist; create it first"
        )


def _timing_lines(result: SweepResult, a: SweepAnalysis) -> list[str]:
    """How long the population took, against the one-at-a-time estimate."""
    from ..analysis.sweeps import timing_sentences

    if not result.timing and not a.timing:
        return [f"{result.seconds:.0f} s in all."]
    lines = timing_sentences(a.timing)
    if not result.timing:
        lines.insert(0, "Nothing left to train; the times of the run that trained them:")
    return lines
