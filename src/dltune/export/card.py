"""The model card: where a model came from and how good it is, as JSON and as Markdown.

An ensemble's card has an "ensemble" entry beside the others:

    {"validation": "kfold" | "holdout", "folds": K or None, "metric": "accuracy",
     "score": the ensemble's out-of-fold (k-fold) or validation (holdout) metric,
     "best_single": {"trial": t, "value": v},
     "members": [{"trial": t, "weight": w, "value": v, "config": "short text"}, ...]}

(`value`: that member's own out-of-fold or validation metric; weights per trial, summing to 1.)
"""

from __future__ import annotations

import datetime
import platform
from typing import Any

from ..storage.urls import display_url
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
    if value is None:
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _listed(value: Any) -> str:
    """A number, or one per fold model: '3' or '3, 2, 3'."""
    return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)


def _ensemble_size(ensemble: dict[str, Any]) -> str:
    n, folds = len(ensemble["members"]), ensemble.get("folds")
    networks = f" ({n * folds} networks)" if ensemble.get("validation") == "kfold" and folds else ""
    return f"An ensemble of {n} configuration{'s' if n != 1 else ''}{networks}"


def ensemble_lines(ensemble: dict[str, Any], task: str) -> list[str]:
    """The card's ensemble section: how it was chosen, its score beside the best single
    member's, and a table of its members."""
    members = ensemble["members"]
    folds = ensemble.get("folds")
    if ensemble.get("validation") == "kfold":
        where = "out-of-fold"
        rows = (
            f"their out-of-fold predictions ({folds} folds: each member is its configuration's "
            f"{folds} fold models, each trained on the other folds, averaged with equal weights)"
        )
    else:
        where = "validation"
        rows = "their predictions on the validation split"
    what = "class probabilities" if task == "classification" else "predictions"
    metric, best = ensemble["metric"], ensemble["best_single"]
    lines = [
        "## Ensemble",
        "",
        f"The weighted average of the {what} of {len(members)} configuration(s), chosen by "
        f"greedy ensemble selection with replacement (Caruana et al. 2004) on {rows}.",
        "",
        f"- **{where} {metric} of the ensemble: {_number(ensemble['score'])}**",
        f"- {where} {metric} of the best single member (trial {best['trial']}): "
        f"{_number(best['value'])}",
        "",
        f"| trial | weight | {where} {metric} | configuration |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {m['trial']} | {_number(m['weight'])} | {_number(m.get('value'))} | {m['config']} |"
        for m in members
    ]
    return [*lines, ""]


def card_markdown(card: dict[str, Any]) -> str:
    """The card for people: the same facts as model_card.json."""
    study, data, training, test = card["study"], card["data"], card["training"], card["test"]
    config = training["config"]
    ensemble = card.get("ensemble")
    made = f"tuned by dltune {card['libraries']['dltune']}, made {card['created']}."
    folds = training.get("on") == "folds"  # fold models, each on its fold's training rows
    what = _ensemble_size(ensemble) if ensemble else "A dense network"
    if folds and not ensemble:
        what = f"A bag of {training.get('networks')} fold models of one configuration"
    lines = [
        f"# Model card: {data['name']} ({data['task']})",
        "",
        f"{what} {made}",
        "",
        "## Test result",
        "",
        f"- **{test['metric']} on the test split: {_number(test['value'])}** "
        f"({test['rows']} rows, {test['how']})",
        f"- validation {study['metric']} of the trial in the study: "
        f"{_number(study['validation_value'])}",
    ]
    if study.get("study_test") is not None:
        how = study.get("study_test_how") or "for that trial, trained on the training split alone"
        lines.append(
            f"- test {study['metric']} the study recorded {how}: {_number(study['study_test'])}"
        )
    lines.append("")
    if ensemble:
        lines += ensemble_lines(ensemble, data["task"])
    rows = f"{training['on']} ({training['rows']} rows)"
    if folds:
        rows = f"each fold model on its fold's training rows ({training['rows']} rows)"
    lines += ["## Training", ""]
    if ensemble and training.get("trial") is not None:
        lines.append(f"Of trial {training['trial']}, the heaviest member (the others alike):")
        lines.append("")
    lines += [
        f"- trained on: {rows}",
        f"- epochs: {_listed(training['epochs'])}: {training['epoch_rule']}",
        f"- seed of the weights and dropout: {_listed(training['seed'])}; of the data order: "
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
        # masked again: a card read back from a folder may come from anywhere
        f"- study `{study['name']}` in `{display_url(str(study['storage']))}`, "
        f"trial {study['trial']} "
        f"(best epoch {study['best_epoch']})",
        "",
        "## Libraries",
        "",
    ]
    lines += [f"- {name} {version}" for name, version in card["libraries"].items()]
    return "\n".join(lines) + "\n"
