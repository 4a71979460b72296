"""The analysis and each diagnostic, on studies written into storage for the purpose: each
diagnostic fires where the situation is there, and stays silent where it is not. None of these
is about storage itself, so the studies live in Optuna's in-memory storage (synthetic_studies
keeps what is stored as a database would)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dltune.analysis import analyze, load_trials
from dltune.analysis.diagnostics import (
    divergence,
    edge_of_space,
    overfit_start,
    overfitting,
    slow_learning,
    too_few_trials,
    underfitting,
    wasted_budget,
)
from dltune.analysis.importance import importance
from dltune.analysis.interactions import interactions

from .synthetic_studies import (
    DEFAULT_SPACE,
    Run,
    config,
    falling_loss,
    in_memory,
    mixed_runs,
    overfitting_runs,
    rising,
    sgd_runs_diverging_above,
    varied_runs,
    write_study,
)


def trials_of(runs, **kwargs):
    """The analysis's view of a study holding `runs`, in memory."""
    return load_trials(in_memory(runs, **kwargs))


# ---- divergence ----


def test_divergence_names_the_optimizer_and_the_learning_rate_bound():
    study = trials_of(sgd_runs_diverging_above(0.3))
    [found] = divergence(study)
    assert found.kind == "diverged"
    assert "sgd" in found.title and "0.3" in found.title and "Every" in found.title
    assert "0.2" in found.explanation  # the highest rate that still trained
    assert "below 0.3" in found.suggestion
    assert [e["trial"] for e in found.evidence] == [5, 6, 7]  # the diverged runs, by rate
    assert all(e["epoch"] == 2 for e in found.evidence)


def test_divergence_counts_runs_above_the_bound_that_did_not_diverge():
    runs = sgd_runs_diverging_above(0.3)
    runs[6] = Run(config(optimizer="sgd", learning_rate=0.5), rising(0.6, 6))  # one survived
    [found] = divergence(trials_of(runs))
    assert "2 of 3" in found.title


def test_divergence_is_silent_without_diverged_runs():
    assert divergence(trials_of(varied_runs(20))) == []


# ---- overfitting ----


def test_overfitting_finds_where_it_starts_and_what_prevented_it():
    study = trials_of(overfitting_runs())
    assert [overfit_start(t) for t in study.trials] == [5, 6, 7, None, None, None]
    [found] = overfitting(study)
    assert found.kind == "overfit"
    assert "3 of 6" in found.title and "from epoch 5" in found.title
    assert "dropout ≥ 0.4" in found.title
    assert "at least 0.4" in found.suggestion
    assert [e["trial"] for e in found.evidence] == [0, 1, 2]
    assert [e["epoch"] for e in found.evidence] == [5, 6, 7]


def test_a_rising_validation_loss_with_accuracy_still_improving_is_not_overfitting():
    val = [0.5 - 0.05 * e if e <= 4 else 0.3 + 0.04 * (e - 4) for e in range(12)]
    run = Run(config(), rising(0.95, 12), train_loss=falling_loss(12, end=0.02), val_loss=val)
    assert overfitting(trials_of([run])) == []


def test_overfitting_is_silent_when_validation_loss_barely_moves_or_training_loss_rises():
    flat = [0.30, 0.25, 0.20, 0.20, 0.205, 0.206, 0.207]  # +3.5%: within noise
    both_rise = [0.3, 0.2, 0.15, 0.2, 0.3, 0.4, 0.5]
    runs = [
        Run(config(), rising(0.9, 7), train_loss=falling_loss(7), val_loss=flat),
        Run(config(), rising(0.9, 7), train_loss=both_rise, val_loss=both_rise),
    ]
    assert overfitting(trials_of(runs)) == []


# ---- underfitting ----


def test_underfitting_fires_when_the_best_run_was_still_improving():
    still = [0.5 + 0.04 * e for e in range(9)]  # climbing to the last epoch
    same_loss = [1.0 - 0.08 * e for e in range(9)]
    runs = [Run(config(), still, train_loss=same_loss, val_loss=same_loss)]
    runs += [Run(config(learning_rate=0.1), rising(0.6, 9)) for _ in range(3)]
    study = trials_of(runs, space=dict(DEFAULT_SPACE, epochs=9))  # 9 epochs at most
    [found] = underfitting(study)
    assert found.kind == "underfit"
    assert "#0" in found.title and "maximum of 9 epochs" in found.title
    assert "underfitting" in found.explanation
    assert "Raise `epochs`" in found.suggestion


def test_underfitting_is_silent_when_the_best_run_levelled_off():
    runs = [Run(config(), rising(0.9, 20))]  # best epoch is the last, but the gain is ~0
    runs[0].curve[5:] = [0.9] * 15
    runs += [Run(config(learning_rate=0.1), rising(0.6, 20)) for _ in range(3)]
    assert underfitting(trials_of(runs)) == []


# ---- slow learning ----


def slow_runs(slow_first: float) -> list[Run]:
    runs = []
    for i in range(5):
        c = config(activation="sigmoid", loss="mean_squared_error", learning_rate=1e-3 * (i + 1))
        runs.append(Run(c, [slow_first + 0.01 * i, 0.5, 0.6]))
    for i in range(6):
        runs.append(Run(config(learning_rate=1e-3 * (i + 1)), [0.85 + 0.01 * i, 0.9, 0.92]))
    return runs


def test_slow_learning_fires_for_sigmoid_with_mean_squared_error():
    [found] = slow_learning(trials_of(slow_runs(0.2)))
    assert found.kind == "slow"
    assert "sigmoid or tanh with mean squared error" in found.title
    assert "0.22" in found.title  # the group's median after one epoch
    assert len(found.evidence) == 5


def test_slow_learning_is_silent_when_the_group_keeps_up():
    assert slow_learning(trials_of(slow_runs(0.86))) == []


def test_slow_learning_does_not_blame_mean_squared_error_in_regression():
    runs = slow_runs(0.2)
    study = trials_of(runs, task="regression", metric="rmse")
    assert slow_learning(study) == []


# ---- budget wasted ----


def adagrad_share_runs(adagrad_final: float) -> list[Run]:
    runs = [
        Run(config(optimizer="adagrad", learning_rate=1e-3 * (i + 1)), rising(adagrad_final, 9))
        for i in range(6)
    ]
    runs += [
        Run(config(optimizer=opt, learning_rate=1e-3 * (i + 1)), rising(0.9 + 0.005 * i, 9))
        for i in range(4)
        for opt in ("adam", "rmsprop", "sgd")
    ]
    return runs


def test_wasted_budget_names_the_region_that_never_worked():
    found = wasted_budget(trials_of(adagrad_share_runs(0.5)))
    assert found and found[0].kind == "wasted"
    assert "optimizer = adagrad" in found[0].title
    assert "33%" in found[0].title  # 6 of 18 runs of 9 epochs each
    assert "adagrad" in found[0].suggestion


def test_wasted_budget_is_silent_when_the_region_competes():
    found = wasted_budget(trials_of(adagrad_share_runs(0.95)))
    assert not any("adagrad" in d.title for d in found)


# ---- edge of the space ----


def test_a_best_learning_rate_at_the_top_of_its_range_says_widen_it():
    runs = varied_runs(20, score=lambda c: 0.5 + 0.4 * math.log10(c["learning_rate"] * 1e4) / 4)
    runs.append(Run(config(learning_rate=0.95), rising(0.95, 9)))
    found = edge_of_space(trials_of(runs))
    [lr] = [d for d in found if "learning_rate" in d.title]
    assert lr.kind == "edge"
    assert "Widen the range of learning_rate above 1" in lr.suggestion


def test_edges_are_silent_for_a_best_inside_the_range_and_for_no_dropout():
    runs = varied_runs(20)
    runs.append(Run(config(learning_rate=1e-3, dropout=0.0, units=[128]), rising(0.99, 9)))
    assert edge_of_space(trials_of(runs)) == []


# ---- too few trials ----


def test_too_few_trials_fires_for_a_handful_and_not_for_many():
    [found] = too_few_trials(trials_of(varied_runs(6)))
    assert found.kind == "few_trials" and "Only 6" in found.title
    assert too_few_trials(trials_of(varied_runs(60))) == []


# ---- importance, interactions, the whole analysis ----


def test_importance_ranks_the_hyperparameter_that_drives_the_score_first():
    def score(c):
        return 0.95 - 0.15 * abs(math.log10(c["learning_rate"]) + 3)

    values = importance(trials_of(varied_runs(60, score=score)))["values"]
    assert max(values, key=values.get) == "learning_rate"
    assert values["learning_rate"] > 0.5
    assert math.isclose(sum(values.values()), 1.0, abs_tol=1e-3)
    assert "epochs" not in values


def test_importance_needs_enough_trials():
    result = importance(trials_of(varied_runs(4)))
    assert result["values"] == {} and "at least" in result["note"]


def test_an_interaction_of_learning_rate_and_optimizer_is_found():
    def score(c):  # sgd wants a high rate, the others a low one: neither alone explains it
        high = c["learning_rate"] > 1e-2
        return 0.9 if high == (c["optimizer"] == "sgd") else 0.5

    pairs = interactions(trials_of(varied_runs(120, score=score)))
    assert pairs and set(pairs[0]["params"]) == {"learning_rate", "optimizer"}
    assert len(pairs[0]["points"]) == 120


def test_additive_effects_show_no_interaction():
    rng = np.random.default_rng(3)

    def score(c):
        return (
            0.5
            + 0.1 * math.log10(c["learning_rate"])
            + (0.1 if c["optimizer"] == "adam" else 0.0)
            + rng.normal(0, 0.01)
        )

    pairs = interactions(trials_of(varied_runs(120, score=score)))
    assert not any(set(p["params"]) == {"learning_rate", "optimizer"} for p in pairs)


def test_analyze_gives_plain_json_with_everything_the_report_draws():
    runs = mixed_runs()
    result = analyze(in_memory(runs)).to_dict()
    text = json.dumps(result, allow_nan=False)  # no NaN: diverged epochs become null
    assert json.loads(text)["study"] == "synthetic"
    assert result["counts"] == {"complete": len(runs) - 3, "diverged": 3}
    assert result["best"]["state"] == "complete"
    assert set(result["effects"]) >= {"learning_rate", "optimizer", "units", "dropout"}
    lr = result["effects"]["learning_rate"]
    assert lr["kind"] == "numeric" and lr["log"]
    assert sum(g["trials"] for g in lr["groups"]) == len(runs)  # every trial in one bin
    assert result["epochs"]["by_epoch"][0]["trials"] == len(runs)
    labels = [c["label"] for c in result["curves"]]
    assert labels[0] == "best" and "diverged" in labels and "overfit" in labels
    best_so_far = [h["best"] for h in result["history"] if h["best"] is not None]
    assert best_so_far == sorted(best_so_far)
    kinds = [d["kind"] for d in result["diagnostics"]]
    assert {"diverged", "overfit"} <= set(kinds)
    weights = [d["weight"] for d in result["diagnostics"]]
    assert weights == sorted(weights, reverse=True)


def test_a_study_with_no_finished_trial_analyzes_without_error():
    import optuna

    storage = optuna.storages.InMemoryStorage()
    study = write_study(storage, [])
    study.ask()  # one running trial, nothing finished
    result = analyze(optuna.load_study(study_name="synthetic", storage=storage))
    assert result.best is None and result.importance["values"] == {}
    assert result.diagnostics == []


@pytest.mark.parametrize("state", ["pruned", "complete"])
def test_scores_are_each_trials_best_value_whatever_its_state(state):
    runs = [Run(config(), [0.5, 0.7, 0.6], state=state)]
    [t] = trials_of(runs).trials
    assert t.score == 0.7 and t.state == state and t.params["epochs"] == 2


def test_the_analysis_compares_the_convolutional_and_dense_families():
    """Convolutional networks that beat dense ones, and batch normalization that helps them: the
    importance sees conv_layers (a dense trial counts as 0 blocks) and the effects show each
    block key per value, over the trials that have blocks."""
    import random

    from dltune.analysis import analyze

    rng = random.Random(0)
    runs = []
    for i in range(24):
        blocks = i % 3  # 0, 1 or 2 convolutional blocks
        conv = {}
        if blocks:
            bn = bool(i % 2)
            conv = {
                "conv_layers": blocks,
                "filters": [16] * blocks,
                "kernel_size": 3,
                "pool": 2,
                "batch_norm": bn,
                "global_pool": False,
            }
        final = 0.90 + 0.03 * blocks + (0.01 if conv.get("batch_norm") else 0.0)
        lr = 10 ** rng.uniform(-4, -2)
        runs.append(Run(config(learning_rate=lr, **conv), rising(final + rng.uniform(0, 0.003), 6)))
    study = in_memory(runs)
    analysis = analyze(study)
    values = analysis.importance["values"]
    assert max(values, key=values.get) == "conv_layers"
    effect = analysis.effects["conv_layers"]
    assert effect["kind"] == "categorical"
    assert [g["value"] for g in effect["groups"]] == [0, 1, 2]
    bn = analysis.effects["batch_norm"]
    assert [g["value"] for g in bn["groups"]] == [False, True]
    assert sum(g["trials"] for g in bn["groups"]) == 16  # only the trials with blocks


# ---- the linear model against the networks ----

LINEAR_SPACE = {**DEFAULT_SPACE, "layers": {"low": 0, "high": 3}}


def linear_runs(score: float, n: int = 4, epochs: int = 9) -> list[Run]:
    """`n` linear models (layers 0) whose best reaches `score`, the rest a little below."""
    return [
        Run(config(layers=0, learning_rate=10 ** (-3 + i / 2)), [*rising(top, epochs - 1), top])
        for i, top in enumerate(score - 0.01 * i for i in range(n))
    ]


def best_of(runs: list[Run]) -> float:
    return max(max(r.curve) for r in runs)


def test_a_linear_model_as_good_as_the_networks_is_said_so():
    from dltune.analysis.diagnostics import LINEAR_LESSON, linear_model
    from dltune.analysis.sweep_readings import WHY

    networks = varied_runs(20)
    best_net = best_of(networks)
    study = trials_of(networks + linear_runs(best_net - 0.003), space=LINEAR_SPACE)
    [found] = linear_model(study)
    assert found.kind == "linear"
    assert found.title.startswith(
        "A linear model (no hidden layer) did as well as any network here: accuracy "
    )
    assert f"against {best_net:.4g}" in found.title
    # the lesson of the activation sweep, shown on these data
    assert (
        found.explanation.startswith(LINEAR_LESSON)
        and WHY[("activation", "behind")] == LINEAR_LESSON
    )
    assert "straight boundaries were enough" in found.explanation
    assert "layers: 0" in found.suggestion
    notes = [e["note"] for e in found.evidence]
    assert notes[:3] == ["linear model (no hidden layer)"] * 3
    assert all(n.startswith("network: ") and "hidden layers" in n for n in notes[3:])
    linear_best = found.evidence[0]
    assert study.trials[linear_best["trial"]].params["layers"] == 0
    # better than the networks is as well as them too
    ahead = trials_of(networks + linear_runs(best_net + 0.05), space=LINEAR_SPACE)
    assert linear_model(ahead)[0].title.startswith("A linear model (no hidden layer) did as well")


def test_networks_that_beat_the_linear_model_say_by_how_much():
    from dltune.analysis.diagnostics import linear_model

    networks = varied_runs(20)
    best_net = best_of(networks)
    study = trials_of(networks + linear_runs(0.80), space=LINEAR_SPACE)
    [found] = linear_model(study)
    gap = best_net - 0.80
    assert found.title == (
        f"Networks beat the linear model by {gap:.3g} (accuracy {best_net:.4g} against 0.8)"
    )
    assert "need boundaries that are not straight" in found.explanation
    # a margin of 0.02 at most, however scattered the best trials: 0.03 behind is beaten
    close = trials_of(networks + linear_runs(best_net - 0.03), space=LINEAR_SPACE)
    assert linear_model(close)[0].title.startswith("Networks beat the linear model by 0.03")


def test_the_linear_model_in_regression_ties_within_two_percent():
    from dltune.analysis.diagnostics import linear_model

    def regression(net: float, lin: float):
        falling = [
            Run(config(layers=2, loss="mean_squared_error", learning_rate=lr), [9.0, 5.0, net + d])
            for d, lr in [(0.0, 1e-3), (0.5, 1e-2), (1.0, 1e-1)]
        ]
        flat = [Run(config(layers=0, loss="mean_squared_error"), [8.0, lin])]
        study = trials_of(falling + flat, space=LINEAR_SPACE, task="regression", metric="rmse")
        return linear_model(study)[0]

    tied = regression(3.60, 3.62)  # 0.6% behind
    assert tied.title == (
        "A linear model (no hidden layer) did as well as any network here: rmse 3.62 against 3.6"
    )
    assert "straight-line fit" in tied.explanation and "moves in straight lines" in tied.explanation
    beaten = regression(3.60, 3.80)  # 5.6% behind
    assert beaten.title == "Networks beat the linear model by 0.2 (rmse 3.6 against 3.8)"
    assert "a straight line does not fit these data" in beaten.explanation


def test_the_linear_model_finding_needs_both_and_a_space_that_holds_it():
    from dltune.analysis.diagnostics import linear_model

    networks = varied_runs(12)
    assert linear_model(trials_of(networks, space=LINEAR_SPACE)) == []
    assert linear_model(trials_of(linear_runs(0.9), space=LINEAR_SPACE)) == []
    # a user's build: its configurations have layers 0 but the space fixes dltune's network
    own = [Run(config(layers=0, model={"k": k}), rising(0.9 - 0.01 * k, 6)) for k in range(3)]
    assert linear_model(trials_of(networks + own, space={**DEFAULT_SPACE, "layers": 1})) == []
    # convolutions without hidden layers are a network (the FCN), not the linear model
    conv = {"conv_layers": 2, "filters": [8, 8], "kernel_size": [8, 5], "pool": 0}
    fcn = [Run(config(layers=0, batch_norm=True, global_pool=True, **conv), [0.9, 0.97])]
    [found] = linear_model(trials_of(fcn + linear_runs(0.85), space=LINEAR_SPACE))
    assert found.title == "Networks beat the linear model by 0.12 (accuracy 0.97 against 0.85)"
    assert found.evidence[-1]["note"] == "network: 2 convolutional blocks"


def test_a_study_with_linear_models_is_analysed_whole():
    """Trials without hidden layers have no units: the importance counts them as 0 units, the
    effects and the overfitting contrast leave them out of units, and the finding is in."""
    runs = mixed_runs() + linear_runs(0.88, n=6)
    analysis = analyze(in_memory(runs, space=LINEAR_SPACE))
    assert analysis.importance["trials"] == len(runs)  # the linear models with the others
    assert "layers" in analysis.importance["values"]
    layers = analysis.effects["layers"]
    assert [g["value"] for g in layers["groups"]] == [0, 1, 2, 3]
    assert sum(g["trials"] for g in analysis.effects["units"]["groups"]) == len(runs) - 6
    kinds = [d.kind for d in analysis.diagnostics]
    assert "linear" in kinds
    json.dumps(analysis.to_dict())


def _folded(runs, spread: float) -> None:
    """Give each run folds around its value: 5 folds within +-spread of it."""
    for run in runs:
        top = max(v for v in run.curve if math.isfinite(v))
        values = [top + spread * d for d in (-1.0, -0.5, 0.0, 0.5, 1.0)]
        run.folds = {"values": values, "spread": float(np.std(values)), "curves": []}


def test_folds_that_disagree_more_than_the_top_trials_are_said_so():
    from dltune.analysis.diagnostics import fold_disagreement

    runs = varied_runs(20)
    _folded(runs, 0.2)  # folds 0.2 either side: far more than the top trials differ
    study = trials_of(runs)
    [found] = fold_disagreement(study)
    best = study.ranked()[0]
    assert found.kind == "folds" and f"best trial's 5 folds range {best.value - 0.2:.4g}" in (
        found.title
    )
    assert [e["trial"] for e in found.evidence] == [best.number] * 5
    assert "Treat the top configurations as equals" in found.suggestion
    calm = varied_runs(20)
    _folded(calm, 0.0001)  # folds that agree: the ranking of the trials means something
    assert fold_disagreement(trials_of(calm)) == []
    assert fold_disagreement(trials_of(varied_runs(20))) == []  # holdout: nothing to say
