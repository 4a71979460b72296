"""How a study validates its trials: on the validation split (holdout) or by K-fold
cross-validation of everything outside the test split, decided once and recorded.

`cv` (tune's argument, `--cv`): "auto" (the default), "holdout", or a number of folds K
(2-20; "kfold" is 5). "auto" cross-validates where the examples outside the test split are
few enough that one validation split decides by luck (fewer than AUTO_KFOLD_BELOW), and keeps
the holdout split otherwise, where a K-fold trial would cost K times the training for a choice
the validation split already makes well. The decision is stored with the study
(schema.VALIDATION), so that every worker, every later run and train-best use the same folds;
a continued study keeps it (asking for another one is refused).
"""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING, Any

from ..data.folds import DEFAULT_FOLDS, MAX_FOLDS
from ..errors import DLTuneError, StudyError, param
from ..storage import schema

if TYPE_CHECKING:
    import optuna

    from ..data import Dataset
    from ..engine import TrainResult

# Cross-validate below this many examples outside the test split (see the module's note):
# at 60 s, 5 folds beat holdout on 1,527 (0.987 against 0.982) and 3,400 examples (0.967
# against 0.951); holdout keeps MNIST-10k's 8,500 at 0.98 (benchmarks/RESULTS.md, issue 27).
AUTO_KFOLD_BELOW = 5000
CV_CHOICES = ("auto", "holdout", "kfold")


def parse_cv(value: str | int) -> str | int:
    """ "auto", "holdout" or a number of folds, from tune's `cv` or the command line's --cv;
    a DLTuneError that says the forms otherwise."""
    if isinstance(value, bool):
        raise DLTuneError(f"{param('cv', value)}: give auto, holdout or a number of folds")
    text = str(value).strip().lower()
    if text in ("auto", "holdout"):
        return text
    if text == "kfold":
        return DEFAULT_FOLDS
    try:
        k = int(text)
    except ValueError:
        k = -1
    if not 2 <= k <= MAX_FOLDS or str(k) != text:
        raise DLTuneError(
            f"{param('cv', value)} is not a validation: give auto (k-fold on small data, "
            f"else holdout), holdout (the validation split), kfold ({DEFAULT_FOLDS} folds) or a "
            f"number of folds from 2 to {MAX_FOLDS}"
        )
    return k


def resolve(
    cv: str | int, dataset: Dataset, study: optuna.Study, seed: int, first: bool
) -> tuple[Dataset, str]:
    """`dataset` as the study validates it (with its folds in k-fold), and a note that says
    how and why. The first process of a new study decides and records it (`first`); every
    other reads the record."""
    asked = parse_cv(cv)
    stored = schema.read_validation(study)
    if stored is None and _has_run(study):
        stored = {"kind": "holdout"}  # a study made before k-fold: validated on its split
    if stored is not None:
        _check_same(asked, stored, study.study_name)
        record, why = stored, "as the study was validated"
    else:
        record, why = _decide(asked, dataset, seed)
        if first:
            schema.write_validation(study, record)
    if record["kind"] == "holdout":
        return dataset.holdout(), f"validation: {dataset.holdout().validation} ({why})"
    folded = dataset
    folds = dataset.folds
    if folds is None or folds.k != record["k"] or folds.seed != record["seed"]:
        folded = dataset.with_folds(int(record["k"]), int(record["seed"]))
    assert folded.folds is not None
    return folded, f"validation: {folded.folds.describe()} ({why})"


def _has_run(study: optuna.Study) -> bool:
    """Whether any trial of the study ever started (an enqueued one has not)."""
    import optuna

    waiting = optuna.trial.TrialState.WAITING
    return any(t.state != waiting for t in study.get_trials(deepcopy=False))


def _decide(asked: str | int, dataset: Dataset, seed: int) -> tuple[dict[str, Any], str]:
    pool = len(dataset.y_train) + len(dataset.y_val)
    if asked == "holdout":
        return {"kind": "holdout"}, "asked"
    if asked == "auto":
        if pool >= AUTO_KFOLD_BELOW:
            return {"kind": "holdout"}, (
                f"auto: {pool} examples outside the test split, {AUTO_KFOLD_BELOW} or more"
            )
        k = min(DEFAULT_FOLDS, pool // 2)
        if k < 2:
            return {"kind": "holdout"}, f"auto: {pool} examples are too few to fold"
        why = (
            f"auto: {pool} examples outside the test split, fewer than {AUTO_KFOLD_BELOW}, "
            f"where one validation split of {len(dataset.y_val)} decides by luck"
        )
    else:
        k = int(asked)
        if pool < 2 * k:
            raise DLTuneError(
                f"{param('cv', k)}: {k} folds need at least {2 * k} examples outside the test "
                f"split; these data have {pool}. Give fewer folds or holdout."
            )
        why = "asked"
    folded = dataset.with_folds(k, seed)
    assert folded.folds is not None
    record = {"kind": "kfold", "k": k, "seed": seed, "how": folded.folds.how, "examples": pool}
    return record, why


def _check_same(asked: str | int, stored: dict[str, Any], name: str) -> None:
    if asked == "auto":
        return
    kind = "holdout" if asked == "holdout" else "kfold"
    if kind == stored["kind"] and (kind == "holdout" or int(asked) == int(stored["k"])):
        return
    shown = "holdout" if stored["kind"] == "holdout" else f"{stored['k']} folds"
    raise StudyError(
        f"study {name!r} was validated by {shown}; {param('cv', asked)} asks otherwise, and "
        f"its trials' values would not compare. Give {param('cv', shown='auto')} to continue "
        f"it, or {param('study_name', shown='NEW_NAME')} to start a separate study."
    )


def fold_record(result: TrainResult, seeds: list[int]) -> dict[str, Any]:
    """What a cross-validated trial stores of its folds: each fold's value at the trial's best
    epoch (their mean is the trial's value; the epoch each fold's delivered model is at) and
    their spread, each fold's own best epoch and value, seed, and curve."""
    best = result.best_epoch
    values = [
        _json(f.history[best - 1].val_metric) if best and len(f.history) >= best else None
        for f in result.folds
    ]
    finite = [v for v in values if v is not None]
    return {
        "values": values,
        "spread": _json(statistics.pstdev(finite)) if len(finite) > 1 else None,
        "epoch": best,  # each fold's delivered model is at this epoch (engine/folds.py)
        "best_epochs": [f.best_epoch for f in result.folds],
        "best_values": [_json(f.best_value) for f in result.folds],
        "seeds": seeds,
        "curves": [[_json(r.val_metric) for r in f.history] for f in result.folds],
    }


def _json(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None
