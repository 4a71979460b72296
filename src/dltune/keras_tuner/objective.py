"""Keras Tuner's objective ("val_accuracy", kt.Objective("val_loss", "min")) in dltune's terms.

dltune ranks trials by a metric on the validation split (vocabulary.METRICS: accuracy for
classes, rmse or mae for values). Keras Tuner names the same quantities as Keras's logs do:

- "val_accuracy" (and "val_acc", "val_categorical_accuracy",
  "val_sparse_categorical_accuracy"): accuracy, to maximize;
- "val_root_mean_squared_error" ("val_rmse"), and "val_mean_squared_error" ("val_mse"): rmse,
  to minimize (the square root keeps the mean squared error's order);
- "val_mean_absolute_error" ("val_mae"): mae, to minimize;
- "val_loss": for values, the metric of the compiled loss (mean squared error: rmse, mean
  absolute error: mae); for classes it has no metric of dltune's, and is refused.

Any other name, a training metric ("accuracy", "loss": dltune ranks on validation), a list of
objectives, or a direction against the metric's, raises a KerasTunerError saying what works.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .arguments import KerasTunerError

DIRECTIONS = {"max": "maximize", "min": "minimize"}
# Keras's log names -> (dltune's metric, the task it applies to).
_NAMES: dict[str, tuple[str, str]] = {
    **dict.fromkeys(
        (
            "val_accuracy",
            "val_acc",
            "val_categorical_accuracy",
            "val_sparse_categorical_accuracy",
        ),
        ("accuracy", "classification"),
    ),
    **dict.fromkeys(
        ("val_root_mean_squared_error", "val_rmse", "val_mean_squared_error", "val_mse"),
        ("rmse", "regression"),
    ),
    **dict.fromkeys(("val_mean_absolute_error", "val_mae"), ("mae", "regression")),
}
VAL_LOSS = "val_loss"
# A regression's compiled loss (dltune's name) -> the metric that ranks as its val_loss does.
_LOSS_METRICS = {"mean_squared_error": "rmse", "mean_absolute_error": "mae"}
SUPPORTED = "'val_accuracy' (classes), 'val_loss', 'val_mean_squared_error' or "
SUPPORTED += "'val_mean_absolute_error' (values)"


@dataclass(frozen=True)
class Objective:
    """Keras Tuner's Objective: a metric's name in Keras's logs and "min" or "max"."""

    name: str
    direction: str

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise KerasTunerError(
                f"Objective({self.name!r}, direction={self.direction!r}): direction must be "
                "'min' or 'max'"
            )

    def __repr__(self) -> str:  # as Keras Tuner prints it in results_summary()
        return f'Objective(name="{self.name}", direction="{self.direction}")'


def as_objective(objective: Any) -> Objective:
    """Keras Tuner's `objective` argument as an Objective whose name dltune knows (its
    metric is resolved in `metric_of`, once the data's task and compile()'s loss are known)."""
    if objective is None:
        raise KerasTunerError(
            "objective=None: give the metric to tune, e.g. objective='val_accuracy' (Keras "
            "Tuner needs one too where build(hp)'s model is fitted by the tuner)"
        )
    if isinstance(objective, list | tuple):
        raise KerasTunerError(
            f"objective={list(objective)!r}: dltune tunes one objective; give one of them "
            f"({SUPPORTED}); several metrics: a space file's objectives (dltune run)"
        )
    if isinstance(objective, str):
        name, direction = objective, None
    elif hasattr(objective, "name") and hasattr(objective, "direction"):
        name, direction = str(objective.name), str(objective.direction)
    else:
        raise KerasTunerError(
            f"objective={objective!r}: give a name ({SUPPORTED}) or kt.Objective(name, direction)"
        )
    if name not in _NAMES and name != VAL_LOSS:
        raise KerasTunerError(f"objective {name!r} is not one dltune tunes: {_why_not(name)}")
    natural = "min" if name == VAL_LOSS else _natural(name)
    if direction is not None and direction != natural:
        raise KerasTunerError(
            f"kt.Objective({name!r}, direction={direction!r}): {name} is better when "
            f"{'higher' if natural == 'max' else 'lower'}; give direction={natural!r}"
        )
    return Objective(name, natural)


def _natural(name: str) -> str:
    return "max" if _NAMES[name][0] == "accuracy" else "min"


def _why_not(name: str) -> str:
    if not name.startswith("val_") and f"val_{name}" in {*_NAMES, VAL_LOSS}:
        return (
            f"dltune ranks trials on the validation data, not the training data: give "
            f"'val_{name}' (and validation_data or validation_split to search())"
        )
    return f"give {SUPPORTED}"


def metric_of(objective: Objective, task: str, loss: str | None) -> str:
    """dltune's metric for `objective` on data of `task`, whose compile() names `loss`
    (dltune's name, or None)."""
    if objective.name == VAL_LOSS:
        metric = _LOSS_METRICS.get(loss or "") if task == "regression" else None
        if metric is None:
            what = f"the loss {loss}" if loss else "a model compiled without a loss"
            raise KerasTunerError(
                f"objective 'val_loss' on {task} with {what}: dltune ranks classes by "
                "accuracy and values by rmse or mae; give objective='val_accuracy' for "
                "classes, or compile a mean squared (or absolute) error for values"
            )
        return metric
    metric, wanted = _NAMES[objective.name]
    if wanted != task:
        raise KerasTunerError(
            f"objective {objective.name!r} measures {wanted}, but the data are {task} "
            f"(the targets given to search()); give {SUPPORTED}"
        )
    return metric
