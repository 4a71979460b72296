"""The model card: where a model came from and how good it is, as JSON and as Markdown."""

from __future__ import annotations

import datetime
import platform
from typing import Any

from ..version import __version__


def library_versions() -> dict[str, str]:
    """The versions that made the model (what to install to reproduce it)."""
    import numpy
    import optuna
    import torch

    versions = {
        "dltune": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "optuna": optuna.__version__,
    }
    try:
        import safetensors

        versions["safetensors"] = safetensors.__version__
    except ImportError:  # pragma: no cover - a dependency of dltune
        pass
    return versions


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _number(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def card_markdown(card: dict[str, Any]) -> str:
    """The card for people: the same facts as model_card.json."""
    study, data, training, test = card["study"], card["data"], card["training"], card["test"]
    config = training["config"]
    lines = [
        f"# Model card: {data['name']} ({data['task']})",
        "",
        f"A dense network tuned by dltune {card['libraries']['dltune']}, made {card['created']}.",
        "",
        "## Test result",
        "",
        f"- **{test['metric']} on the test split: {_number(test['value'])}** "
        f"({test['rows']} rows, {test['how']})",
        f"- validation {study['metric']} of the trial in the study: "
        f"{_number(study['validation_value'])}",
    ]
    if study.get("study_test") is not None:
        lines.append(
            f"- test {study['metric']} the study recorded for that trial (trained on the "
            f"training split alone): {_number(study['study_test'])}"
        )
    lines += [
        "",
        "## Training",
        "",
        f"- trained on: {training['on']} ({training['rows']} rows)",
        f"- epochs: {training['epochs']}: {training['epoch_rule']}",
        f"- seed of the weights and dropout: {training['seed']}; of the data order: "
        f"{training['shuffle_seed']}",
        f"- input scaling: standardized with the statistics of the {training['statistics']}",
        f"- final training loss: {_number(training['final_train_loss'])}",
        "",
        "| hyperparameter | value |",
        "|---|---|",
    ]
    lines += [f"| {key} | {_number(value)} |" for key, value in config.items()]
    lines += [
        "",
        "## Data",
        "",
        f"- {data['description']}",
        f"- source: `{data['source']}`"
        + (f", target column `{data['target']}`" if data.get("target") else ""),
        f"- split: {data['split']}",
        f"- fingerprint (sha256 of the split arrays): `{data['fingerprint']}`",
    ]
    if data.get("classes") is not None:
        lines.append(f"- classes: {', '.join(str(c) for c in data['classes'])}")
    if data.get("encoding"):  # a table through the encoder: what it did (preprocessing.json)
        lines.append("- the table's columns, encoded from the training split:")
        lines += [f"  - {note}" for note in data["encoding"]]
    lines += [
        "",
        "## Study",
        "",
        f"- study `{study['name']}` in `{study['storage']}`, trial {study['trial']} "
        f"(best epoch {study['best_epoch']})",
        "",
        "## Libraries",
        "",
    ]
    lines += [f"- {name} {version}" for name, version in card["libraries"].items()]
    return "\n".join(lines) + "\n"
