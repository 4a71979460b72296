"""Defaults fitted to a short budget (dltune.study.budget): the default space's filters, the
first trial and the choice's reserve, decided once in the plan from the estimated cost of
training (here a fake one, so that the rules are tested apart from this machine's speed), and
said in one note."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import optuna
import pytest

from dltune.config import Config
from dltune.space import SearchSpace
from dltune.space.narrowing import (
    costliest,
    filter_range,
    has_blocks,
    with_filters_at_most,
    without_blocks,
)
from dltune.study import costs, resolve
from dltune.study.arrangement import Arrangement
from dltune.study.budget import BudgetFit, Facts, fit_budget
from dltune.study.choice import ChoiceRule, parse_choice
from dltune.study.plan import make_plan
from dltune.study.settings import TuneSettings

SIGNALS = SearchSpace.default().for_input((1, 40))[0]
IMAGES = SearchSpace.default().for_input((1, 8, 8))[0]
REEVALUATES = ChoiceRule(3, 2)


def fake_cost(config: Config) -> float:
    """Seconds of a member-epoch: 0.01 for a dense network, 1 ms a filter of the widest block
    per block for a convolutional one (the costliest trial of 3 blocks of 256: 0.768 s)."""
    if not config.conv_layers:
        return 0.01
    return 0.001 * max(config.filters) * config.conv_layers


def fit(timeout: float | None = None, space: SearchSpace = SIGNALS, **facts: object) -> BudgetFit:
    asked = {"narrow": True, "rule": REEVALUATES, "rule_auto": True, **facts}
    return fit_budget(Facts(timeout=timeout, **asked), space, fake_cost)  # type: ignore[arg-type]


# ---- the rules, at short and long budgets --------------------------------------------------


def test_a_long_budget_fits_nothing():
    fitted = fit(1000.0)  # the costliest trial's rung 0.77 s, 1/30 of 1000 s is 33 s
    assert fitted == BudgetFit(first=fitted.first)
    assert (fitted.first.width, fitted.first.dense) == (1.0, False)
    assert fitted.note is None and fitted.space(SIGNALS) is SIGNALS


def test_a_short_timeout_caps_the_filters_and_narrows_the_first_trial():
    fitted = fit(10.0)  # 1/30 of 10 s: 0.33 s a rung, which blocks of 64 filters fit (0.19 s)
    assert fitted.filters == 64 and not fitted.dense_only
    searched = fitted.space(SIGNALS)
    assert filter_range(searched) == (16, 64)
    assert fitted.first.width == 0.25  # 32/64/32: the widest the capped space holds
    assert fitted.first.params(searched)["filters_2"] == 64
    assert not fitted.reserve  # 6 x 27 epochs at 0.19 s: 31 s, more than a quarter of 10 s
    note = fitted.note or ""
    assert note.startswith("fitted to the budget (10 s, its costs estimated for this CPU): ")
    assert "at most 64 filters (not 256)" in note
    assert "at 0.25 of its width" in note and "no reserve for top3x2" in note


def test_more_workers_give_more_training_to_fit_the_space_to():
    assert fit(10.0).filters == 64
    assert fit(10.0, workers=2).filters == 128  # 20 s of training: 0.67 s a rung


def test_a_timeout_too_short_for_any_block_leaves_the_dense_network_alone():
    fitted = fit(1.0)  # 1/30 of a second: not even blocks of 16 (0.048 s)
    assert fitted.dense_only and fitted.filters is None
    searched = fitted.space(SIGNALS)
    assert not has_blocks(searched)
    first = fitted.first.config(searched)
    assert (first.conv_layers, first.layers, first.units) == (0, 1, (128,))  # the textbook's
    assert "no convolutional blocks" in (fitted.note or "")


def test_a_cross_validated_first_trial_fits_a_quarter_of_the_timeout_or_ends_within_it():
    # k-fold: the first trial is not paused, so its whole training must fit a quarter of the
    # timeout: 27 epochs x 5 members of the FCN at an eighth (0.096 s) take 13 s
    assert fit(100.0, members=5).first.width == 0.125
    late = fit(20.0, members=5, rule=ChoiceRule())  # more than 5 s, but it ends within 20 s
    assert late.first.width == 0.125 and "which it ends within" in (late.note or "")
    mine = fit(5.0, members=5, rule=ChoiceRule(), narrow=False)  # 13 s: not within 5 s
    assert mine.first.dense and mine.first.seconds == pytest.approx(27 * 5 * 0.01)
    assert "first trial the textbook dense network" in (mine.note or "")


def test_the_reserve_is_kept_where_the_whole_reevaluation_fits_in_it():
    assert fit(1000.0).reserve  # 6 x 27 x 0.768 s: 124 s of the 250 s reserve
    assert not fit(400.0).reserve  # ... more than 100 s
    assert not fit(epoch_budget=600.0).reserve  # 6 x 27 = 162 epochs, more than 150
    assert fit(epoch_budget=700.0).reserve
    assert fit(10.0, rule_auto=False).reserve  # a rule asked for by name is kept
    assert fit(10.0, rule=ChoiceRule()).reserve  # nothing to re-evaluate, nothing to say


def test_a_users_space_and_an_untimed_run_are_not_narrowed():
    mine = fit(10.0, narrow=False)
    assert mine.filters is None and not mine.dense_only
    assert mine.first.width == 0.25  # the first trial is still sized: its rung fits 1/30
    gpu = fit(10.0, timed=False)  # a CPU's rates say nothing of a GPU's
    assert gpu == BudgetFit()
    assert not fit(epoch_budget=100.0, timed=False).reserve  # epochs are counted anywhere


def test_an_epoch_budget_leaves_the_space_whole():
    fitted = fit(epoch_budget=50.0)  # every family's epoch counts the same
    assert fitted.filters is None and not fitted.dense_only and fitted.first.width == 1.0
    assert (fitted.note or "").startswith("fitted to the budget (50 epochs): ")


# ---- the plan carries the fit --------------------------------------------------------------


def test_a_dropped_reserve_leaves_the_best_single_run_and_holds_nothing_back():
    one = Arrangement(workers=1, engine="sequential", threads=1)
    settings = TuneSettings(timeout=100.0)
    rule = parse_choice("top3x2")
    kept = make_plan(settings, one, rule, continued=False, began=0.0)
    assert kept.rule == rule and kept.search_ends == 75.0
    dropped = make_plan(
        settings, one, rule, continued=False, began=0.0, fit=BudgetFit(reserve=False)
    )
    assert dropped.rule == ChoiceRule() and dropped.held == 0.0
    assert dropped.search_ends == dropped.deadline == 100.0


def test_the_space_is_narrowed_only_in_what_the_run_samples():
    capped = with_filters_at_most(SIGNALS, 32)
    assert filter_range(capped) == (16, 32) and capped.input_shape == (1, 40)
    assert capped.epochs == SIGNALS.epochs and capped.source == SIGNALS.source
    assert filter_range(with_filters_at_most(IMAGES, 16)) == (8, 16)
    dense = without_blocks(SIGNALS)
    assert not has_blocks(dense) and dense.params == SIGNALS.params
    widest = costliest(SIGNALS, 64)
    assert (widest.conv_layers, widest.filters, widest.kernel_size) == (3, (64,) * 3, (8,) * 3)
    assert (widest.pool, widest.batch_size, widest.layers) == (0, 16, 0)


def test_a_signal_space_without_blocks_starts_from_the_textbook_dense_network():
    space = SearchSpace(conv_layers=0).for_input((1, 40))[0]
    first = space.config_from_params(space.baseline_params())
    assert (first.layers, first.units, first.dropout, first.batch_size) == (1, (128,), 0.2, 32)


def test_the_cost_estimate_counts_steps_and_flops(blobs):
    config = Config(
        layers=1, units=(4,), dropout=0.0, activation="relu", loss="categorical_crossentropy",
        optimizer="adam", learning_rate=1e-3, weight_decay=0.0, batch_size=10, epochs=1,
    )  # fmt: skip
    seconds = costs.member_epoch_seconds(config, 9e10 / 3, 100)
    assert seconds == pytest.approx(10 * costs.STEP_SECONDS + 100 + costs.EPOCH_SECONDS)
    cnn = dataclasses.replace(config, conv_layers=2, filters=(4, 4), kernel_size=(3, 3))
    stacked = costs.member_epoch_seconds(cnn, 0.0, 100, stacked=True)
    assert stacked == pytest.approx(10 * 3 * costs.STACKED_STEP_SECONDS + costs.EPOCH_SECONDS)
    folded = blobs.with_folds(5, 0)
    flops = costs.prediction_flops(config, (8,), 3)
    assert flops == 2 * (8 * 4 + 4 * 3)
    rows = folded.folds.n_train
    expected = costs.member_epoch_seconds(config, flops, rows, stacked=True)
    assert costs.for_data(folded)(config) == pytest.approx(expected)
    assert math.isfinite(costs.for_data(blobs.holdout())(config))


# ---- a run says what was fitted, once ------------------------------------------------------


def _signals(n: int = 400, length: int = 16):
    """Signals of which a pass holds more than EPOCH_EXAMPLES: a rung of one epoch."""
    from dltune.data import from_arrays

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=n)
    x = rng.normal(size=(n, 1, length)).astype(np.float32)
    x[y == 1, 0, 4:8] += 2.0
    return from_arrays(x, y, name="bumps", seed=0)


def test_a_run_fitted_to_its_budget_says_so_once_and_samples_the_fitted_space(monkeypatch):
    import dltune

    # 1/30 of 3 s is 0.1 s: blocks of 32 filters (0.096 s) fit it, not 64 (0.19 s)
    monkeypatch.setattr(resolve.costs, "for_data", lambda dataset: fake_cost)
    storage = optuna.storages.InMemoryStorage()
    started = []

    class Listener(dltune.ProgressListener):
        def study_started(self, start):  # type: ignore[no-untyped-def]
            started.append(start)

    result = dltune.tune(
        None, _signals(), storage=storage, timeout=3.0, seed=0, workers=1, cv="holdout",
        progress=Listener(),
    )  # fmt: skip
    fitted = [n for n in result.notes if n.startswith("fitted to the budget")]
    assert len(fitted) == 1 and "at most 32 filters (not 256)" in fitted[0]
    assert [n for n in started[0].notes if n.startswith("fitted")] == fitted
    trials = result.study.trials
    assert trials[0].user_attrs.get("baseline") is True
    first = trials[0].user_attrs["config"]
    assert first["filters"] == [16, 32, 16]  # the FCN at an eighth: its rung fits (0.096 s)
    for trial in trials:
        assert max(trial.user_attrs["config"].get("filters") or [0]) <= 32
    # the stored space is the whole default: a later run with a budget that narrows nothing
    # (epochs count alike for every network) continues the study over all of it
    more = dltune.tune(
        None, _signals(), storage=storage, epoch_budget=3, seed=1, workers=1, choose="max"
    )
    assert not [n for n in more.notes if n.startswith("fitted")]
    assert len(more.study.trials) > len(trials)
