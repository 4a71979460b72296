"""Studies written straight into storage, with the curves and attributes dltune stores, so that
the analysis and the report can be tested on known situations without training anything; and the
runs of those situations that more than one test file builds.

A test that only reads the study back (the analysis, the report) writes it into Optuna's
in-memory storage (`in_memory`), which is far faster than a SQLite file; one that needs a URL
(the command line, a dashboard server) passes `write_study` a URL instead."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import optuna

DEFAULT_SPACE = {
    "name": "default",
    "metric": None,
    "layers": {"low": 1, "high": 3},
    "units": {"low": 16, "high": 1024, "log": True},
    "dropout": {"low": 0.0, "high": 0.5},
    "activation": ["relu", "sigmoid", "tanh", "elu"],
    "loss": ["categorical_crossentropy", "mean_squared_error"],
    "optimizer": ["sgd", "adam", "rmsprop", "adagrad"],
    "learning_rate": {"low": 0.0001, "high": 1.0, "log": True},
    "weight_decay": 0.0,
    "batch_size": [16, 32, 64, 128, 256],
    "epochs": 27,
    "patience": None,
    "min_epochs": 1.0,
    "reduction": 3,
}


@dataclass
class Run:
    """One trial: its configuration, state and per-epoch curves."""

    config: dict[str, Any]
    curve: list[float]  # validation metric per epoch
    state: str = "complete"  # complete, pruned, diverged
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    folds: dict[str, Any] | None = None  # a cross-validated trial's (schema.FOLDS)


def config(**changes: Any) -> dict[str, Any]:
    base = {
        "layers": 1,
        "units": [128],
        "dropout": 0.2,
        "activation": "relu",
        "loss": "categorical_crossentropy",
        "optimizer": "adam",
        "learning_rate": 1e-3,
        "weight_decay": 0.0,
        "batch_size": 32,
        "epochs": 27,
    }
    base.update(changes)
    if "layers" in changes and "units" not in changes:
        base["units"] = [128] * changes["layers"]
    return base


def rising(final: float, epochs: int, start: float = 0.3) -> list[float]:
    """An accuracy curve that climbs towards `final` and levels off."""
    return [final - (final - start) * math.exp(-e / 2.0) for e in range(1, epochs + 1)]


def falling_loss(epochs: int, start: float = 1.0, end: float = 0.1) -> list[float]:
    return [end + (start - end) * math.exp(-e / 3.0) for e in range(1, epochs + 1)]


def _as_stored(value: Any) -> Any:
    """`value` as a database gives it back (Optuna's RDB storage keeps attributes as JSON: lists
    for tuples, copies rather than this test's objects). Optuna's in-memory storage keeps the
    object itself, so without this a study there would share, say, DEFAULT_SPACE."""
    return json.loads(json.dumps(value))


def write_study(
    storage: str | optuna.storages.BaseStorage,
    runs: list[Run],
    name: str = "synthetic",
    space: dict[str, Any] | None = None,
    task: str = "classification",
    metric: str = "accuracy",
    data: dict[str, Any] | None = None,
) -> optuna.Study:
    """A study in `storage` (a URL, or an Optuna storage such as InMemoryStorage()) holding
    `runs` as dltune would have stored them; `data`: more of the data's description (e.g.
    "classes", which a real study stores for the chance level)."""
    import optuna
    from optuna.trial import TrialState

    from dltune.storage.schema import STATE as STATE_ATTR
    from dltune.storage.schema import STUDY_META

    direction = "maximize" if metric == "accuracy" else "minimize"
    study = optuna.create_study(storage=storage, study_name=name, direction=direction)
    meta = {
        "space": space or DEFAULT_SPACE,
        "metric": metric,
        "seed": 0,
        "data": {"name": "synthetic", "task": task, "description": "synthetic", **(data or {})},
    }
    study.set_user_attr(STUDY_META, _as_stored(meta))
    pick = max if direction == "maximize" else min
    frozen = []
    for run in runs:
        finite = [(v, e) for e, v in enumerate(run.curve, 1) if math.isfinite(v)]
        best_value, best_epoch = pick(finite) if finite else (None, None)
        n = len(run.curve)
        attrs: dict[str, Any] = {
            "config": run.config,
            "seed": 0,
            "train_loss": run.train_loss or falling_loss(n),
            "val_loss": run.val_loss or falling_loss(n, end=0.15),
            "epoch_seconds": [0.5] * n,
            "best_epoch": best_epoch,
            "stopped_early": False,
        }
        if run.folds is not None:
            attrs["folds"] = run.folds
        if run.state == "diverged":
            attrs[STATE_ATTR] = "diverged"
            attrs["diverged_epoch"] = next(
                (e for e, v in enumerate(run.curve, 1) if not math.isfinite(v)), n
            )
        complete = run.state == "complete"
        frozen.append(
            optuna.trial.create_trial(
                state=TrialState.COMPLETE if complete else TrialState.PRUNED,
                value=best_value if complete else None,
                intermediate_values={e: v for e, v in enumerate(run.curve, 1) if math.isfinite(v)},
                user_attrs=_as_stored(attrs),
            )
        )
    study.add_trials(frozen)
    return study


def in_memory(runs: list[Run], **kwargs: Any) -> optuna.Study:
    """`write_study` into a fresh in-memory storage of its own (for a test that needs no URL)."""
    import optuna

    return write_study(optuna.storages.InMemoryStorage(), runs, **kwargs)


def varied_runs(
    n: int, seed: int = 0, score: Any = None, epochs: int = 9, **fixed: Any
) -> list[Run]:
    """`n` runs of random configurations of the default space; `score(config)` gives each
    run's final accuracy (default: a mild preference for learning rates near 1e-3)."""
    rng = np.random.default_rng(seed)
    runs = []
    for _ in range(n):
        layers = int(rng.integers(1, 4))
        c = config(
            layers=layers,
            units=[int(2 ** rng.uniform(4, 10)) for _ in range(layers)],
            dropout=float(rng.uniform(0, 0.5)),
            activation=str(rng.choice(["relu", "sigmoid", "tanh", "elu"])),
            loss=str(rng.choice(["categorical_crossentropy", "mean_squared_error"])),
            optimizer=str(rng.choice(["sgd", "adam", "rmsprop", "adagrad"])),
            learning_rate=float(10 ** rng.uniform(-4, 0)),
            batch_size=int(rng.choice([16, 32, 64, 128, 256])),
        )
        c.update(fixed)
        final = (
            score(c)
            if score is not None
            else 0.9 - 0.05 * abs(math.log10(c["learning_rate"]) + 3) + rng.normal(0, 0.005)
        )
        runs.append(Run(c, rising(final, epochs)))
    return runs


# ---- situations more than one test file builds ----


def sgd_runs_diverging_above(bound: float) -> list[Run]:
    """SGD at eight learning rates, diverging (NaN at epoch 2) at `bound` and above; Adam at four
    rates up to 0.8, never diverging."""
    runs = []
    for lr in (0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8):
        diverged = lr >= bound
        curve = [0.5, math.nan] if diverged else rising(0.85, 6)
        runs.append(
            Run(
                config(optimizer="sgd", learning_rate=lr),
                curve,
                "diverged" if diverged else "complete",
            )
        )
    for lr in (0.001, 0.01, 0.3, 0.8):  # Adam never diverges in this study
        runs.append(Run(config(optimizer="adam", learning_rate=lr), rising(0.9, 6)))
    return runs


def overfitting_runs() -> list[Run]:
    """Six runs of 12 epochs at dropouts 0 to 0.5: the three below 0.3 overfit (validation loss
    bottoms out at epochs 5, 6, 7, then rises), the three above do not."""
    runs = []
    for i, dropout in enumerate((0.0, 0.05, 0.1, 0.4, 0.45, 0.5)):
        train = falling_loss(12, end=0.02)
        curve = rising(0.9, 12)
        if dropout < 0.3:  # validation loss bottoms out at epoch 5 + i, then rises
            low = 4 + i
            val = [
                0.5 - 0.05 * e if e <= low else 0.5 - 0.05 * low + 0.04 * (e - low)
                for e in range(12)
            ]
            peak = low + 2  # accuracy peaks two epochs after the loss's minimum, then slips
            curve = [
                a if e <= peak else curve[peak] - 0.01 * (e - peak) for e, a in enumerate(curve)
            ]
        else:
            val = falling_loss(12, end=0.2)
        runs.append(Run(config(dropout=dropout), curve, train_loss=train, val_loss=val))
    return runs


def mixed_runs() -> list[Run]:
    """A study with a bit of everything (diverged SGD runs, 30 varied runs, overfitting runs):
    what the whole analysis and the whole report are tested on."""
    return sgd_runs_diverging_above(0.3) + varied_runs(30) + overfitting_runs()
