"""`dltune train-best`, `export` and `predict`: the tuned model, retrained, written, used."""

from __future__ import annotations

from pathlib import Path

import click

from ..vocabulary import EXPORT_FORMATS, RETRAIN_ON
from .common import (
    ON_OFF,
    OnOff,
    device_option,
    quiet_optuna,
    storage_option,
    study_option,
    trust_source_option,
    tune_option,
    user_errors,
)


@click.command("train-best")
@storage_option
@study_option
@click.option(
    "--on",
    type=click.Choice(RETRAIN_ON),
    help="The rows to retrain on. Holdout: train+val (the default; it keeps the trial's "
    "optimizer steps) or train (the trial's own weights). K-fold: by default each "
    "configuration's K fold models, each on its fold's training rows (the models the search "
    "measured; train too); train+val trains one network per configuration on every example "
    "outside the test split instead.",
)
@click.option(
    "--ensemble",
    type=OnOff(),
    metavar=OnOff.name,
    default=ON_OFF[0],
    show_default=True,
    help="on: the study's ensemble where it chose one; off: its best trial alone (in k-fold "
    "its bag, the K fold models).",
)
@click.option("--epochs", type=click.IntRange(min=1), help="Override the epoch rule.")
@click.option(
    "--data", help="Where the study's data are now [default: where the study found them]."
)
@tune_option("target")
@tune_option("data_dir", type=click.Path(file_okay=False))
@click.option(
    "--pick",
    help='A point of the Pareto front instead of the best: a trial number, or "smallest '
    'within 0.005 of the best accuracy" (also fastest, cheapest; a margin in %).',
)
@device_option
@trust_source_option("the study")
@click.option(
    "-o",
    "--output",
    "directory",
    required=True,
    type=click.Path(file_okay=False),
    help="The model folder to write (created if needed).",
)
@user_errors
def train_best(
    storage: str,
    study_name: str | None,
    on: str | None,
    ensemble: bool,
    epochs: int | None,
    data: str | None,
    target: str | None,
    data_dir: str | None,
    pick: str | None,
    device: str,
    trust_source: bool,
    directory: str,
) -> None:
    """Retrain what the study delivers (its ensemble, or its best trial; or --pick a point of
    the front), test it once, write the model folder."""
    from ..export import train_best as retrain

    quiet_optuna()
    result = retrain(
        storage,
        study_name,
        on=on,
        ensemble=ensemble,
        data=data,
        target=target,
        data_dir=data_dir,
        epochs=epochs,
        device=device,
        log=click.echo,
        pick=pick,
        trust_source=trust_source,
    )
    path = result.save(directory)
    click.echo(
        f"Wrote {path}/: model.safetensors, config.json, preprocessing.json, model_card.json, "
        f"model_card.md"
    )
    click.echo(f"Use it: dltune predict {path} DATA -o predictions.csv")


@click.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(EXPORT_FORMATS),
    required=True,
    help="onnx (extra: onnx), torchscript, or keras (a Keras 3 .keras file; extra: keras).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="The file to write [default: DIRECTORY/model.onnx, model.torchscript.pt, model.keras].",
)
@trust_source_option("the model folder")
@user_errors
def export(directory: str, fmt: str, output: str | None, trust_source: bool) -> None:
    """Export a model folder; the file takes raw features and is checked against torch."""
    from ..export import load
    from ..export.formats import FILES, require
    from ..export.formats import export as write_export

    require(fmt)  # before loading anything: a missing extra is the likeliest failure
    model = load(directory, trust_source=trust_source)
    result = write_export(model, fmt, output or Path(directory) / FILES[fmt])
    click.echo(
        f"Wrote {result.path} ({fmt}); it agrees with the torch model on {result.rows} check "
        f"rows (largest difference {result.max_difference:.2g})."
    )


@click.command()
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
@trust_source_option("the model folder")
@user_errors
def predict(directory: str, data: str, output: str, trust_source: bool) -> None:
    """Predict DATA (.csv with or without header, .parquet, .npz, or digits) with a model folder."""
    from ..export import load
    from ..export.predict import predict_table, read_table, write_predictions

    model = load(directory, trust_source=trust_source)
    result = predict_table(model, read_table(data))
    path = write_predictions(result, model, output)
    click.echo(f"Wrote {result.rows} predictions to {path}")
    for note in result.notes:  # what the table's encoder did: cells imputed, labels unseen
        click.echo(f"note: {note}")
    if result.value is not None:
        click.echo(f"{result.metric} on these rows (the data hold the target): {result.value:.6g}")
