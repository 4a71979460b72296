"""Plain-language diagnostics of a study, each with its evidence (trials, epochs, values) and a
suggestion: what went wrong or could go better, in the terms people use when they tune.

Each reads what every family stores (curves, losses, the configuration), so it holds for the
dense network, convolutional networks and a user's build alike, and its advice names only the
knobs the study's trials have (findings.py); the best value at an end of a range is edges.py's.

Every check reads only the analysis' view of storage (StudyTrials) and returns zero or more
Diagnosis objects; `diagnose` runs them all and orders them by weight, the most useful first.
The thresholds are deliberately conservative: a diagnostic that fires on noise teaches the
wrong lesson, so each one asks for a clear margin and enough trials.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import Any

from ..engine.divergence import AT_CHANCE, EXPLODING
from .edges import edge_of_space
from .effects import effect, top_trials
from .findings import (
    MAX_EVIDENCE,
    Diagnosis,
    capacity_knobs,
    has_dense_layers,
    own_capacity_knobs,
)
from .findings import evidence as _evidence
from .trials import StudyTrials, TrialView

__all__ = ["Diagnosis", "diagnose", "edge_of_space"]

WASTE_SHARE = 0.15  # a region that took 15% of all epochs ...
OVERFIT_RISE = 0.05  # validation loss 5% above its minimum ...
OVERFIT_AFTER = 2  # ... for at least 2 epochs after it, while the training loss kept falling


def diagnose(study: StudyTrials) -> list[Diagnosis]:
    """Every diagnostic that fires on `study`, the weightiest first."""
    checks: list[Callable[[StudyTrials], list[Diagnosis]]] = [
        divergence,
        overfitting,
        underfitting,
        slow_learning,
        wasted_budget,
        edge_of_space,
        linear_model,
        fold_disagreement,
        too_few_trials,
    ]
    found = [d for check in checks for d in check(study)]
    return sorted(found, key=lambda d: -d.weight)


# ---- divergence ----


# How each way of diverging (engine.divergence) reads in a divergence's evidence
DIVERGED_HOW = {
    AT_CHANCE: "at chance, its training loss above a fresh network's",
    EXPLODING: "its training loss exploded",
}
DIVERGED_WHY = (
    "A step too large overshoots the minimum: the loss grows until it is no longer a number "
    "(NaN or infinity), or the network is thrown to where it predicts no better than chance, "
    "its training loss above that of a network that learnt nothing (batch normalization, mean "
    "squared error on softmax outputs and saturating activations keep such a loss finite). "
    "Those epochs are wasted."
)


def divergence(study: StudyTrials) -> list[Diagnosis]:
    """Runs that diverged (engine.divergence's rule, whatever the family), and the learning
    rate above which they do, per optimizer."""
    finished = [t for t in study.finished if t.params.get("learning_rate") is not None]
    diverged = [t for t in finished if t.state == "diverged"]
    if not diverged:
        return []
    by_optimizer = "optimizer" in study.varied()
    groups = sorted({t.params["optimizer"] for t in diverged}) if by_optimizer else [None]
    found = []
    for optimizer in groups:
        members = [t for t in finished if optimizer is None or t.params["optimizer"] == optimizer]
        bad = [t for t in members if t.state == "diverged"]
        bound = min(t.params["learning_rate"] for t in bad)
        above = [t for t in members if t.params["learning_rate"] >= bound]
        safe = [
            t.params["learning_rate"]
            for t in members
            if t.state != "diverged" and t.params["learning_rate"] < bound
        ]
        run = f"{optimizer} run" if optimizer else "run"
        share = "Every" if len(bad) == len(above) else f"{len(bad)} of {len(above)}"
        safe_text = (
            f" The highest learning rate that trained without diverging was {max(safe):.3g}."
            if safe
            else ""
        )
        found.append(
            Diagnosis(
                kind="diverged",
                title=(
                    f"{share} {run}{'' if share == 'Every' else 's'} with learning_rate ≥ "
                    f"{bound:.3g} diverged"
                    + (f" ({len(bad)} of {len(above)})" if share == "Every" else "")
                ),
                explanation=DIVERGED_WHY + safe_text,
                suggestion=(
                    f"Cap learning_rate below {bound:.3g}"
                    + (f" for {optimizer}" if optimizer else "")
                    + " (or narrow the space's range), so the budget goes to runs that can learn."
                ),
                evidence=[
                    _evidence(t, t.diverged_epoch, None, _diverged_note(t, by_optimizer))
                    for t in sorted(bad, key=lambda t: t.params["learning_rate"])[:MAX_EVIDENCE]
                ],
                weight=min(1.0, 0.45 + len(bad) / max(1, len(study.finished))),
                proposes={"learning_rate": bound},
            )
        )
    return found


def _diverged_note(t: TrialView, by_optimizer: bool) -> str:
    note = f"learning_rate {t.params['learning_rate']:.3g}"
    if by_optimizer:
        note += f", {t.params['optimizer']}"
    how = DIVERGED_HOW.get(t.diverged_how or "")
    return f"{note}; {how}" if how else note


# ---- overfitting ----


def overfit_start(trial: TrialView) -> int | None:
    """The first epoch after which validation loss rose while training loss kept falling and
    the validation metric stopped improving, or None.

    The minimum of validation loss must be followed by OVERFIT_AFTER or more epochs, the last of
    them OVERFIT_RISE above it, the training loss lower at the end than there, and the trial's
    best metric at least OVERFIT_AFTER epochs before its end. (A validation loss that rises
    while accuracy still improves is over-confidence on a few examples, not yet a worse model.)
    """
    val, train = trial.val_loss, trial.train_loss
    n = min(len(val), len(train))
    if n < OVERFIT_AFTER + 2 or not all(math.isfinite(v) for v in val[:n] + train[:n]):
        return None
    lowest = min(range(n), key=lambda i: val[i])
    if n - 1 - lowest < OVERFIT_AFTER:
        return None
    if trial.best_epoch is None or trial.best_epoch > n - OVERFIT_AFTER:
        return None
    rose = val[n - 1] > val[lowest] * (1 + OVERFIT_RISE) + 1e-9
    return lowest + 1 if rose and train[n - 1] < train[lowest] else None


def overfitting(study: StudyTrials) -> list[Diagnosis]:
    long_runs = [t for t in study.finished if len(t.val_loss) >= OVERFIT_AFTER + 2]
    overfit = [(t, e) for t in long_runs if (e := overfit_start(t)) is not None]
    if not overfit:
        return []
    starts = [e for _, e in overfit]
    fine = [t for t in long_runs if overfit_start(t) is None]
    detail = _overfit_contrast(study, [t for t, _ in overfit], fine)
    best = study.best()
    best_note = ""
    if best is not None and any(t.number == best.number for t, _ in overfit):
        best_note = (
            f" The best trial (#{best.number}) overfitted too: its weights from epoch "
            f"{best.best_epoch} are the ones kept."
        )
    return [
        Diagnosis(
            kind="overfit",
            title=(
                f"{len(overfit)} of {len(long_runs)} runs of {OVERFIT_AFTER + 2}+ epochs "
                f"overfitted, from epoch {min(starts)} at the earliest "
                f"(median {statistics.median(starts):g})" + detail["title"]
            ),
            explanation=(
                "Their validation loss rose again while the training loss kept falling: the "
                "network began to memorise the training set instead of learning what carries "
                "over to new data." + detail["text"] + best_note
            ),
            suggestion=_overfit_fix([t for t, _ in overfit], detail.get("dropout")),
            evidence=[
                _evidence(
                    t,
                    e,
                    t.val_loss[e - 1],
                    f"validation loss {t.val_loss[e - 1]:.4g} at epoch {e}, "
                    f"{t.val_loss[-1]:.4g} at epoch {len(t.val_loss)}; training loss "
                    f"{t.train_loss[e - 1]:.4g} → {t.train_loss[len(t.val_loss) - 1]:.4g}",
                )
                for t, e in sorted(overfit, key=lambda p: p[1])[:MAX_EVIDENCE]
            ],
            weight=min(0.95, 0.4 + 0.5 * len(overfit) / len(long_runs) + (0.1 if best_note else 0)),
            proposes={"dropout": detail["dropout"]} if detail.get("dropout") else {},
        )
    ]


def _overfit_fix(overfit: list[TrialView], dropout: float | None) -> str:
    """What to change against overfitting, in the knobs the overfitting runs have: dropout
    where they have Dense layers (or their build names it), fewer units or filters, else
    weight decay (every family has it)."""
    fixes = ["train fewer epochs (dltune keeps each trial's best epoch)"]
    if any(_dropout_of(t) is not None for t in overfit):
        fixes.append("raise dropout" + (f" to at least {dropout:.2g}" if dropout else ""))
    fewer = [k for k in capacity_knobs(overfit) if k in ("units", "filters")]
    own = [k for k in own_capacity_knobs(overfit) if k not in ("layers", "depth")]
    if fewer:
        fixes.append(f"use fewer {' or '.join(fewer)}")
    elif own:
        fixes.append(f"lower {' or '.join(own)}")
    else:
        fixes.append("raise weight_decay")
    text = ", ".join(fixes[:-1]) + f", or {fixes[-1]}"
    return text[0].upper() + text[1:] + "; set `patience` in the space to stop such runs early."


def _dropout_of(t: TrialView) -> float | None:
    """A trial's dropout where it acts: dltune's on its Dense layers (none without them), or
    a user's build's own."""
    value = t.params.get("dropout")
    return value if has_dense_layers(t) or "dropout" in (t.config.get("model") or {}) else None


def _overfit_contrast(
    study: StudyTrials, overfit: list[TrialView], fine: list[TrialView]
) -> dict[str, Any]:
    """What set the overfitting runs apart: lower dropout, wider layers (when it is clear)."""
    out: dict[str, Any] = {"title": "", "text": ""}
    rates = {t.number: d for t in study.finished if (d := _dropout_of(t)) is not None}
    if "dropout" in study.varied() and fine and all(t.number in rates for t in overfit):
        worst = max(rates[t.number] for t in overfit)
        held = [t for t in fine if rates.get(t.number, -1.0) > worst]
        if len(held) >= 2 and len(held) >= 0.5 * len(
            [
                t
                for t in study.finished
                if rates.get(t.number, -1.0) > worst and len(t.val_loss) >= OVERFIT_AFTER + 2
            ]
        ):
            cut = min(rates[t.number] for t in held)
            out["dropout"] = cut
            out["title"] = f"; none with dropout ≥ {cut:.2g} did"
            out["text"] = (
                f" Every overfitting run had dropout ≤ {worst:.2g}; {len(held)} runs as long "
                f"with dropout ≥ {cut:.2g} did not overfit."
            )
    wide_runs = [t.params["units"] for t in overfit if t.params.get("units") is not None]
    narrow_runs = [t.params["units"] for t in fine if t.params.get("units") is not None]
    if "units" in study.varied() and wide_runs and narrow_runs:  # (none without hidden layers)
        wide = statistics.median(wide_runs)
        narrow = statistics.median(narrow_runs)
        if wide >= 2 * narrow:
            out["text"] += (
                f" The overfitting runs were wider (median {wide:g} units in the widest "
                f"layer, against {narrow:g})."
            )
    return out


# ---- underfitting, still improving ----


def underfitting(study: StudyTrials) -> list[Diagnosis]:
    """The best run was still improving when it stopped: it had not learnt all it could."""
    best = study.best()
    if best is None or best.epochs < 3:
        return []
    curve = [v for v in best.curve if math.isfinite(v)]
    if len(curve) < 3 or best.best_epoch is None or best.best_epoch < len(best.curve) - 1:
        return []
    spread = _spread([t.score for t in study.scored if t.score is not None])
    third = max(1, len(curve) // 3)
    gain = (curve[-1] - curve[-1 - third]) * (1 if study.maximize else -1)
    if spread <= 0 or gain <= 0.05 * spread or overfit_start(best) is not None:
        return []  # levelling off, or already overfitting: not a case for more training
    max_epochs = study.space.get("epochs")
    ran_all = isinstance(max_epochs, int) and best.epochs >= max_epochs
    gap = ""
    if best.train_loss and best.val_loss and math.isfinite(best.train_loss[-1]):
        train, val = best.train_loss[-1], best.val_loss[-1]
        if val > 0 and train >= 0.9 * val:
            gap = (
                f" Its training loss ({train:.4g}) is as high as its validation loss "
                f"({val:.4g}): the network has not even fitted the training data, the mark of "
                "underfitting."
            )
    limit = (
        f"the space's maximum of {max_epochs} epochs"
        if ran_all
        else f"epoch {best.epochs}, where the budget stopped it"
    )
    return [
        Diagnosis(
            kind="underfit",
            title=(
                f"The best trial (#{best.number}) was still improving at {limit}: "
                f"{gain:+.3g} {study.metric} over its last {third} epochs"
            ),
            explanation=(
                "Its best epoch was its last or next to last, so more training would likely "
                "have helped." + gap
            ),
            suggestion=(
                "Raise `epochs` in the space"
                if ran_all
                else "Give the study a larger budget (--timeout, --epoch-budget)"
            )
            + (f", or add capacity ({_capacity(best)}) or a higher learning rate." if gap else "."),
            evidence=[
                _evidence(
                    best,
                    len(curve),
                    curve[-1],
                    f"{study.metric} {curve[-1 - third]:.4g} at epoch {len(curve) - third} → "
                    f"{curve[-1]:.4g} at epoch {len(curve)}",
                )
            ],
            weight=0.6 if gap else 0.5,
        )
    ]


def _capacity(best: TrialView) -> str:
    knobs = capacity_knobs([best]) or own_capacity_knobs([best])
    return ", ".join(knobs) if knobs else "a wider or deeper model"


# ---- slow learning, saturation ----

SLOW_GROUPS: list[tuple[str, str, Callable[[dict[str, Any]], bool], str]] = [
    (
        "sigmoid or tanh with mean squared error",
        "Sigmoid and tanh saturate, and with mean squared error the gradient of a saturated "
        "unit is nearly zero, so these runs learn slowly.",
        lambda p: (
            p.get("activation") in ("sigmoid", "tanh") and p.get("loss") == "mean_squared_error"
        ),
        "use categorical_crossentropy with sigmoid or tanh, or relu/elu with either loss",
    ),
    (
        "learning rates below 1e-3 with sgd or adagrad",
        "Plain SGD and Adagrad take steps proportional to the learning rate; below 1e-3 they "
        "move so little per epoch that the budget runs out first.",
        lambda p: (
            p.get("optimizer") in ("sgd", "adagrad") and (p.get("learning_rate") or 1.0) < 1e-3
        ),
        "raise the lower end of learning_rate for sgd and adagrad, or prefer adam/rmsprop",
    ),
]


def slow_learning(study: StudyTrials) -> list[Diagnosis]:
    """Groups of runs that learn much more slowly than the rest, after the same epochs."""
    if study.data.get("task") == "regression":
        groups = [g for g in SLOW_GROUPS if "mean squared" not in g[0]]
    else:
        groups = SLOW_GROUPS
    first = [t for t in study.finished if t.curve and math.isfinite(t.curve[0])]
    spread = _spread([t.curve[0] for t in first])
    found = []
    for name, why, member, fix in groups:
        inside = [t for t in first if member(t.params)]
        outside = [t for t in first if not member(t.params)]
        if len(inside) < 3 or len(outside) < 3 or spread <= 0:
            continue
        slow = statistics.median(t.curve[0] for t in inside)
        rest = statistics.median(t.curve[0] for t in outside)
        lag = (rest - slow) * (1 if study.maximize else -1)
        if lag < 0.25 * spread:
            continue
        found.append(
            Diagnosis(
                kind="slow",
                title=(
                    f"Runs with {name} learned slowly: median {study.metric} {slow:.4g} after "
                    f"one epoch, against {rest:.4g} for the others ({len(inside)} runs)"
                ),
                explanation=why,
                suggestion=fix[0].upper() + fix[1:] + ".",
                evidence=[
                    _evidence(t, 1, t.curve[0], _config_note(t))
                    for t in sorted(inside, key=lambda t: t.curve[0], reverse=not study.maximize)[
                        :MAX_EVIDENCE
                    ]
                ],
                weight=min(0.8, 0.3 + 0.5 * lag / spread),
            )
        )
    return found


# ---- budget spent where nothing worked ----


def wasted_budget(study: StudyTrials) -> list[Diagnosis]:
    """A region (a value of a categorical, a stretch of a numeric range) that took a large share
    of the epochs and never produced a trial better than the median of all trials."""
    scored = study.ranked()
    total_epochs = sum(t.epochs for t in study.finished)
    if len(scored) < 12 or total_epochs == 0:
        return []
    good = statistics.median(float(t.score) for t in scored if t.score is not None)
    found = []
    for name in [n for n in study.varied() if n != "epochs"]:
        for group in effect(study, name)["groups"]:
            share = group["epochs"] / total_epochs
            best = group["best"]
            if share < WASTE_SHARE or best is None or good is None:
                continue
            if best == good or study.better(best, good):
                continue
            region = (
                f"{name} = {group['value']}"
                if "value" in group
                else f"{name} in [{group['low']:.3g}, {group['high']:.3g}]"
            )
            found.append(
                Diagnosis(
                    kind="wasted",
                    title=(
                        f"{share:.0%} of all epochs went to {region}, where no trial reached "
                        f"the median of the study (best {best:.4g}, median {good:.4g})"
                    ),
                    explanation=(
                        f"{group['trials']} trials there used {group['epochs']} epochs without a "
                        "competitive result; the sampler kept returning to it."
                    ),
                    suggestion=f"Remove or narrow {region} in the space.",
                    evidence=[
                        {"trials": group["trials"], "epochs": group["epochs"], "value": best}
                    ],
                    weight=min(0.7, 0.2 + share),
                )
            )
    found.sort(key=lambda d: -d.weight)
    return found[:2]


# ---- the linear model against the networks ----

# The lesson of a network without a nonlinearity (the activation sweep's, sweep_readings.WHY),
# which the linear-model finding shows on the study's own data.
LINEAR_LESSON = (
    "Without a nonlinearity the layers collapse into one linear map, which can only draw "
    "straight boundaries between the classes."
)
LINEAR_LESSON_REGRESSION = (
    "Without a nonlinearity the layers collapse into one linear map, which can only fit a "
    "target that moves in straight lines with the inputs."
)
# How close the best linear model must come to the best network to count as doing as well:
# for a metric to maximize (accuracy), the spread of the study's top trials (the best tenth,
# at least three: how finely this validation tells good configurations apart), at least
# LINEAR_TIE_LEAST and at most LINEAR_TIE_MOST (a gap of 2 points is a difference, however
# scattered the top); for one to minimize (rmse, mae), LINEAR_TIE_RELATIVE of the network's.
LINEAR_TIE_LEAST = 0.005
LINEAR_TIE_MOST = 0.02
LINEAR_TIE_RELATIVE = 0.02


def is_linear(trial: TrialView) -> bool:
    """Whether a trial is the linear model: no hidden layer and no convolutions (logistic,
    softmax or linear regression on the inputs)."""
    return trial.params.get("layers") == 0 and not trial.params.get("conv_layers")


def linear_model(study: StudyTrials) -> list[Diagnosis]:
    """The best linear model (layers 0, no convolutions) against the best network (hidden
    layers or convolutions), when the study tried both: which did better, and by how much."""
    if not _may_be_linear(study.space.get("layers")):
        return []  # a user's build (its configurations have no layers of dltune's)
    own = [t for t in study.ranked() if not t.config.get("model")]
    linear = [t for t in own if is_linear(t)]
    networks = [t for t in own if not is_linear(t)]
    if not linear or not networks:
        return []
    lin, net = float(linear[0].score or 0.0), float(networks[0].score or 0.0)
    margin = _linear_margin(study, net)
    tie = lin >= net - margin if study.maximize else lin <= net + margin
    regression = study.data.get("task") == "regression"
    lesson = LINEAR_LESSON_REGRESSION if regression else LINEAR_LESSON
    metric = study.metric
    if tie:
        title = (
            f"A linear model (no hidden layer) did as well as any network here: {metric} "
            f"{lin:.4g} against {net:.4g}"
        )
        shown = (
            "a straight-line fit was all these data supported"
            if regression
            else "straight boundaries were enough to separate these classes"
        )
        explanation = (
            f"{lesson} A network with no hidden layer is that map, and here {shown}: the "
            f"best of {len(networks)} networks came within {margin:.3g} of it or behind it "
            f"(the noise between the best trials), so its nonlinearity bought nothing the "
            "validation could see."
        )
        weight = 0.6
    else:
        gap = abs(net - lin)
        title = (
            f"Networks beat the linear model by {gap:.3g} ({metric} {net:.4g} against {lin:.4g})"
        )
        shown = (
            "a straight line does not fit these data"
            if regression
            else "these classes need boundaries that are not straight"
        )
        explanation = (
            f"{lesson} A network with no hidden layer is that map, and {shown}: the best "
            f"network did better by more than the noise between the best trials "
            f"({margin:.3g})."
        )
        weight = 0.3
    suggestion, proposes = _linear_advice(study, tie, networks[0])
    evidence = [
        _evidence(t, t.best_epoch, t.score, "linear model (no hidden layer)") for t in linear[:3]
    ] + [_evidence(t, t.best_epoch, t.score, _network_note(t)) for t in networks[:3]]
    return [
        Diagnosis(
            kind="linear",
            title=title,
            explanation=explanation,
            suggestion=suggestion,
            evidence=evidence,
            weight=weight,
            proposes=proposes,
        )
    ]


def _linear_advice(
    study: StudyTrials, tie: bool, best_network: TrialView
) -> tuple[str, dict[str, Any]]:
    """What to do after the linear-model finding, and the values it proposes: fix the linear
    model, or leave it out by the key that keeps the best network's family (conv_layers from
    1 where that network has convolutions: layers from 1 would also leave out convolutional
    networks without Dense layers)."""
    shaped = "conv_layers" in study.space
    if tie:
        return (
            "Prefer the linear model: fewer parameters, faster, less to overfit. To spend the "
            "budget on its optimizer, learning rate and weight decay, fix layers: 0 in the "
            "space" + (" and conv_layers: 0." if shaped else "."),
            {"layers": 0, **({"conv_layers": 0} if shaped else {})},
        )
    if best_network.params.get("conv_layers"):
        return (
            "Keep the convolutions. On a short budget, conv_layers from 1 leaves the linear "
            "model (and the dense network) out of the space, to give their trials to the "
            "convolutional networks.",
            {"conv_layers": 1},
        )
    others = " (and convolutional networks without Dense layers)" if shaped else ""
    return (
        "Keep the hidden layers. On a short budget, layers from 1 leaves the linear model"
        f"{others} out of the space, to give its trials to the networks.",
        {"layers": 1},
    )


def _linear_margin(study: StudyTrials, net: float) -> float:
    """How far behind the best network the best linear model may be and still tie with it."""
    if not study.maximize:
        return LINEAR_TIE_RELATIVE * abs(net)
    top = [float(t.score) for t in top_trials(study) if t.score is not None]
    spread = max(top) - min(top) if top else 0.0
    return min(LINEAR_TIE_MOST, max(LINEAR_TIE_LEAST, spread))


def _may_be_linear(spec: Any) -> bool:
    """Whether a stored space's `layers` allows 0 (absent: unknown, allowed)."""
    if spec is None:
        return True
    if isinstance(spec, dict):
        if "choices" in spec:
            return 0 in spec["choices"]
        return float(spec.get("low", 1)) <= 0
    if isinstance(spec, list):
        return 0 in spec
    return spec == 0


def _network_note(t: TrialView) -> str:
    p = t.params
    parts = []
    if p.get("conv_layers"):
        parts.append(f"{p['conv_layers']} convolutional blocks")
    if p.get("layers"):
        widths = ",".join(str(w) for w in t.widths)
        parts.append(f"{p['layers']} hidden layers [{widths}] {p.get('activation')}")
    return "network: " + (", ".join(parts) or "no hidden layer")


# ---- too few trials ----


def too_few_trials(study: StudyTrials) -> list[Diagnosis]:
    finished = len(study.finished)
    dims = len(study.varied())
    needed = max(20, 5 * dims)
    if finished >= needed or dims == 0:
        return []
    return [
        Diagnosis(
            kind="few_trials",
            title=(
                f"Only {finished} finished trials for {dims} tuned hyperparameters: the "
                "importances and effects below are rough"
            ),
            explanation=(
                "Each conclusion compares groups of trials; with this few, a group holds a "
                "handful of runs and chance can decide which looks better."
            ),
            suggestion=(
                f"Run the study longer (about {needed} trials or more) before trusting the ranking."
            ),
            evidence=[{"trials": finished, "hyperparameters": dims}],
            weight=0.9 if finished < 10 else 0.35,
        )
    ]


# ---- cross-validation ----

TOP_TRIALS = 10  # the trials whose spread the folds' is compared with


def fold_disagreement(study: StudyTrials) -> list[Diagnosis]:
    """In k-fold, the best trial's folds differ more than the top trials do: which fold of
    the data a model is judged on moves its score more than which of the top configurations
    it is, so the ranking among them is within the noise of the data."""
    ranked = [t for t in study.ranked() if t.state == "complete" and t.value is not None]
    if len(ranked) < 3 or not ranked[0].folds:
        return []
    best, folds = ranked[0], ranked[0].folds or {}
    values = [v for v in folds.get("values", []) if v is not None]
    top = [t.value for t in ranked[:TOP_TRIALS] if t.value is not None]
    if len(values) < 2:
        return []
    folds_range, top_range = max(values) - min(values), max(top) - min(top)
    if folds_range <= top_range:
        return []
    k = len(values)
    return [
        Diagnosis(
            kind="folds",
            title=(
                f"The folds disagree more than the trials do: the best trial's {k} folds range "
                f"{min(values):.4g} to {max(values):.4g}, the top {len(top)} trials' values "
                f"only {min(top):.4g} to {max(top):.4g}"
            ),
            explanation=(
                "Which part of the data a model is validated on moves its score more than "
                "which of the top configurations it is: their order is within the noise of "
                "so few examples. Each trial's value is already the mean of its folds, and "
                "the delivered model averages the best of them (the ensemble), which is what "
                "such data reward."
            ),
            suggestion=(
                "Treat the top configurations as equals; more data, or more folds, narrows "
                "the folds' range. Tuning longer will mostly reorder trials within it."
            ),
            evidence=[
                _evidence(best, best.best_epoch, v, f"fold {f + 1} of {k}")
                for f, v in enumerate(folds.get("values", []))
                if v is not None
            ],
            weight=0.45,
        )
    ]


# ---- helpers ----


def _spread(values: list[float]) -> float:
    """The 10th-to-90th percentile range: the scale against which a gap is large."""
    finite = sorted(v for v in values if v is not None and math.isfinite(v))
    if len(finite) < 2:
        return 0.0
    q = statistics.quantiles(finite, n=10, method="inclusive")
    return q[-1] - q[0]


def _config_note(t: TrialView) -> str:
    """Activation (a user's build has none of dltune's), loss, optimizer, learning rate."""
    p = t.params
    names = [str(p[k]) for k in ("activation", "loss", "optimizer") if p.get(k) is not None]
    return ", ".join([*names, f"learning_rate {p.get('learning_rate') or 0:.3g}"])
