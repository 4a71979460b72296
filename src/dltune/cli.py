"""The command line: thin, it parses options and calls the library.

Heavy modules (torch, optuna) are imported inside the commands that need them, so that
`dltune --help` and `dltune space --show` start fast. A DLTuneError is printed as one clear line
and exits with status 2, without a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from . import __version__
from .cli_options import data_options, storage_option
from .errors import DLTuneError

F = TypeVar("F", bound=Callable[..., Any])


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    # soft_wrap: plain lines (logs, pipes) are not folded at 80 columns; tables still fit.
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def user_errors(func: F) -> F:
    """Turn dltune's own errors into a message and exit status 2 (no traceback)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DLTuneError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dltune")
def main() -> None:
    """Tune the hyperparameters of dense neural networks, and explain the result."""


@main.command()
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
@click.option(
    "--sampler",
    type=click.Choice(["tpe", "random", "grid", "gp"]),
    default="tpe",
    show_default=True,
)
@click.option(
    "--schedule",
    type=click.Choice(["asha", "hyperband", "none"]),
    default="asha",
    show_default=True,
    help="Successive halving over epochs (rungs: the space's min_epochs, reduction), "
    "in Hyperband brackets, or none.",
)
@click.option(
    "--baseline/--no-baseline",
    default=True,
    show_default=True,
    help="Start a new study with the textbook configuration (Dense 128 relu, Adam 1e-3).",
)
@click.option(
    "--cost-aware/--no-cost-aware",
    default=False,
    show_default=True,
    help="Promote the cheapest of the trials that earned a rung first.",
)
@click.option(
    "--engine",
    type=click.Choice(["sequential", "population"]),
    default="sequential",
    show_default=True,
    help="Train trials one at a time, or many at once, stacked.",
)
@click.option(
    "--population",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Trials trained at once by the population engine.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes on this machine working on the study together (e.g. one per core).",
)
@click.option(
    "--ray",
    "ray_address",
    metavar="ADDRESS",
    help="Train on a Ray cluster: HOST:PORT of its head, or auto (extra: dltune[ray]).",
)
@click.option(
    "--memory",
    default="auto",
    show_default=True,
    help="Memory the population may use (e.g. 4GB; auto: a quarter of RAM, <= 8GB).",
)
@click.option("--device", default="cpu", show_default=True, help="auto, cpu or cuda.")
@user_errors
def run(
    space: str | None,
    data: str,
    target: str | None,
    task: str | None,
    data_dir: str | None,
    storage: str,
    study_name: str | None,
    trials: int | None,
    timeout: float | None,
    epoch_budget: float | None,
    seed: int | None,
    sampler: str,
    schedule: str,
    baseline: bool,
    cost_aware: bool,
    engine: str,
    population: int,
    workers: int,
    ray_address: str | None,
    memory: str,
    device: str,
) -> None:
    """Run (or continue) a study: SPACE is a YAML search space [default: the built-in one]."""
    import optuna

    from .cli_display import best_table, make_progress
    from .tuner import tune

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    console = _console()
    result = tune(
        space,
        data,
        storage=storage,
        study_name=study_name,
        trials=trials,
        timeout=timeout,
        seed=seed,
        sampler=sampler,
        schedule=schedule,
        epoch_budget=epoch_budget,
        cost_aware=cost_aware,
        baseline=baseline,
        engine=engine,
        population=population,
        workers=workers,
        ray=ray_address,
        memory=memory,
        device=device,
        target=target,
        task=task,
        data_dir=data_dir,
        progress=make_progress(console),
    )
    from .records import state_counts

    counts = ", ".join(f"{n} {s}" for s, n in sorted(state_counts(result.study).items()))
    console.print(
        f"\n{result.trials_run} trials in {result.seconds:.0f}s this run; "
        f"study {result.study.study_name!r} now holds {len(result.study.trials)} ({counts})."
    )
    for note in result.notes:
        console.print(f"note: {note}")
    if result.best is None:
        console.print("No trial completed yet: there is no best configuration.")
    else:
        console.print(f"Data: {result.data.describe()}")
        console.print(best_table(result.best, "Best configuration"))
        _print_top_diagnostics(console, result.study)
    from .storage import display_url

    shown = display_url(result.storage)  # a password is not printed
    console.print(f"Stored in {shown} as study {result.study.study_name!r}.")
    console.print(f"See it again: dltune best --storage {shown} --study {result.study.study_name}")
    if result.interrupted:
        console.print("Interrupted: finished trials are kept; run the same command to continue.")
        sys.exit(130)


def _print_top_diagnostics(console: Any, study: Any, count: int = 3) -> None:
    """The end of the run's summary: the most important findings, one line and a fix each."""
    from .analysis import load_trials
    from .analysis.diagnostics import diagnose

    found = diagnose(load_trials(study))[:count]
    if not found:
        return
    console.print("\nWhat the study shows (dltune report -o report.html for the evidence):")
    for d in found:
        console.print(f"- {d.title}.\n  Try: {d.suggestion}", markup=False)


def _load_study(storage: str, study_name: str | None) -> Any:
    from .storage import load_study

    return load_study(storage, study_name)


@main.command()
@storage_option
@click.option("--study", "study_name", help="Study name [default: the most recent].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@user_errors
def best(storage: str, study_name: str | None, as_json: bool) -> None:
    """The best trial of a study."""
    from .cli_display import best_table
    from .errors import StudyError
    from .records import best_record

    study = _load_study(storage, study_name)
    record = best_record(study)
    if record is None:
        raise StudyError(f"study {study.study_name!r} has no complete trial yet")
    if as_json:
        click.echo(json.dumps(record, indent=2))
    else:
        _console().print(best_table(record, f"Best of study {study.study_name!r}"))


@main.command()
@storage_option
@click.option("--study", "study_name", help="Study name [default: the most recent].")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@user_errors
def trials(storage: str, study_name: str | None, as_json: bool) -> None:
    """One row per trial of a study."""
    from rich.table import Table

    from .cli_display import config_text
    from .records import trial_records

    study = _load_study(storage, study_name)
    records = trial_records(study)
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    table = Table(title=f"Trials of study {study.study_name!r}", title_justify="left")
    for column in ("trial", "state", "value", "epochs", "best epoch", "seconds", "configuration"):
        table.add_column(column, justify="right" if column != "configuration" else "left")
    for r in records:
        table.add_row(
            str(r["trial"]),
            r["state"],
            "-" if r["value"] is None else f"{r['value']:.4f}",
            str(r["epochs"]),
            "-" if r["best_epoch"] is None else str(r["best_epoch"]),
            "-" if r["seconds"] is None else f"{r['seconds']:.1f}",
            config_text(r["params"]),
        )
    _console().print(table)


@main.command()
@storage_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@user_errors
def studies(storage: str, as_json: bool) -> None:
    """The studies in a storage."""
    import optuna
    from rich.table import Table

    from .storage import display_url, normalize_url, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = normalize_url(storage)
    summaries = optuna.get_all_study_summaries(open_storage(url), include_best_trial=True)
    url = display_url(url)
    rows = [
        {
            "study": s.study_name,
            "trials": s.n_trials,
            "direction": s.direction.name.lower(),
            "best": s.best_trial.value if s.best_trial else None,
            "metric": (s.user_attrs.get("dltune") or {}).get("metric"),
            "started": s.datetime_start.isoformat(timespec="seconds") if s.datetime_start else None,
        }
        for s in summaries
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"{url} holds no study yet.")
        return
    table = Table(title=f"Studies in {url}", title_justify="left")
    for column in ("study", "trials", "metric", "best", "started"):
        table.add_column(column)
    for row in rows:
        best_value = "-" if row["best"] is None else f"{row['best']:.4f}"
        table.add_row(
            str(row["study"]),
            str(row["trials"]),
            str(row["metric"] or "-"),
            best_value,
            str(row["started"] or "-"),
        )
    _console().print(table)


@main.command()
@storage_option
@click.option("--study", "study_name", help="Study name [default: the most recent].")
@click.option(
    "-o",
    "--output",
    default="report.html",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The HTML file to write (or .json: the analysis as data; .png: a sweep's figures).",
)
@user_errors
def report(storage: str, study_name: str | None, output: str) -> None:
    """Write a study's report: best configuration, diagnostics, importance, effects, curves
    (for a sweep's study: the sweep's page)."""
    from pathlib import Path

    from .errors import StudyError

    study = _load_study(storage, study_name)
    target = Path(output)
    if not target.parent.is_dir():
        raise StudyError(
            f"-o {output!r}: the folder {str(target.parent)!r} does not exist; create it first"
        )
    if target.suffix == ".json":
        from .analysis import analyze
        from .analysis.sweeps import analyze_sweep, is_sweep

        analysis = analyze_sweep(study) if is_sweep(study) else analyze(study)
        target.write_text(json.dumps(analysis.to_dict(), indent=1, allow_nan=False))
    else:
        from .report import write_report

        write_report(study, target)
    click.echo(f"Wrote the report of study {study.study_name!r} to {target}")


@main.command()
@storage_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@user_errors
def dashboard(storage: str, host: str, port: int) -> None:
    """Open optuna-dashboard on the storage (extra: pip install 'dltune[dashboard]')."""
    from .errors import StudyError
    from .storage import normalize_url, open_storage

    try:
        import optuna_dashboard
    except ImportError:
        raise StudyError(
            "`dltune dashboard` needs optuna-dashboard, which is not installed; "
            "install the extra: pip install 'dltune[dashboard]'"
        ) from None
    backend = open_storage(normalize_url(storage))
    click.echo(f"optuna-dashboard on http://{host}:{port}/ (Ctrl-C to stop)")
    optuna_dashboard.run_server(backend, host=host, port=port)


@main.command()
@click.option(
    "--show",
    "show",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Print the parsed space of FILE.",
)
@click.option("--yaml", "as_yaml", is_flag=True, help="Print the canonical YAML.")
@user_errors
def space(show: str | None, as_yaml: bool) -> None:
    """Show a search space as dltune reads it [default: the built-in space]."""
    from rich.table import Table

    from .space import SearchSpace

    parsed = SearchSpace.from_file(show) if show else SearchSpace.default()
    if as_yaml:
        click.echo(parsed.to_yaml(), nl=False)
        return
    table = Table(title=f"Search space {parsed.name!r} ({parsed.source})", title_justify="left")
    table.add_column("key", style="bold")
    table.add_column("values")
    for key, description in parsed.describe():
        table.add_row(key, description)
    _console().print(table)


@main.command("train-best")
@storage_option
@click.option("--study", "study_name", help="Study name [default: the most recent].")
@click.option(
    "--on",
    type=click.Choice(["train+val", "train"]),
    default="train+val",
    show_default=True,
    help="The rows to retrain on (train+val keeps the best trial's optimizer steps).",
)
@click.option("--epochs", type=click.IntRange(min=1), help="Override the epoch rule.")
@click.option(
    "--data", help="Where the study's data are now [default: where the study found them]."
)
@click.option("--target", help="The target column of a .csv or .parquet file.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="Where local copies of downloadable data live (or DLTUNE_DATA_DIR).",
)
@click.option("--device", default="cpu", show_default=True, help="auto, cpu or cuda.")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="The model folder to write (created if needed).",
)
@user_errors
def train_best(
    storage: str,
    study_name: str | None,
    on: str,
    epochs: int | None,
    data: str | None,
    target: str | None,
    data_dir: str | None,
    device: str,
    output: str,
) -> None:
    """Retrain the best configuration, test it once, write the model folder."""
    from .export import train_best as retrain

    result = retrain(
        storage,
        study_name,
        on=on,
        data=data,
        target=target,
        data_dir=data_dir,
        epochs=epochs,
        device=device,
        log=click.echo,
    )
    path = result.save(output)
    click.echo(
        f"Wrote {path}/: model.safetensors, config.json, preprocessing.json, model_card.json, "
        f"model_card.md"
    )
    click.echo(f"Use it: dltune predict {path} DATA -o predictions.csv")


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["onnx", "torchscript", "keras"]),
    required=True,
    help="onnx (extra: onnx), torchscript, or keras (a Keras 3 .keras file; extra: keras).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="The file to write [default: DIRECTORY/model.onnx, model.torchscript.pt, model.keras].",
)
@user_errors
def export(directory: str, fmt: str, output: str | None) -> None:
    """Export a model folder; the file takes raw features and is checked against torch."""
    from pathlib import Path

    from .export import load
    from .export.formats import FILES, require
    from .export.formats import export as write_export

    require(fmt)  # before loading anything: a missing extra is the likeliest failure
    model = load(directory)
    result = write_export(model, fmt, output or Path(directory) / FILES[fmt])
    click.echo(
        f"Wrote {result.path} ({fmt}); it agrees with the torch model on {result.rows} check "
        f"rows (largest difference {result.max_difference:.2g})."
    )


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.argument("data")
@click.option(
    "-o",
    "--output",
    default="predictions.csv",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The CSV to write: prediction, and a probability per class.",
)
@user_errors
def predict(directory: str, data: str, output: str) -> None:
    """Predict DATA (.csv with or without header, .parquet, .npz, or digits) with a model folder."""
    from .export import load
    from .export.predict import predict_table, read_table, write_predictions

    model = load(directory)
    result = predict_table(model, read_table(data))
    path = write_predictions(result, model, output)
    click.echo(f"Wrote {result.rows} predictions to {path}")
    if result.value is not None:
        click.echo(f"{result.metric} on these rows (the data hold the target): {result.value:.6g}")


def _register_subcommands() -> None:
    """Commands that live in modules of their own (imported here, after `main` exists)."""
    from .cli_sweep import sweep_command

    main.add_command(sweep_command)


_register_subcommands()


if __name__ == "__main__":  # pragma: no cover
    main()
