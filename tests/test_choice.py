"""The choice of the best trial (dltune.study.choice): the top candidates re-evaluated with
other seeds, the best fresh mean chosen and stored, honoured by every reader of best_trial,
kept within the budget, redone for nothing on resume, and "max" as today."""

from __future__ import annotations

import json
import math
import time

import optuna
import pytest

from dltune.engine import TrainResult
from dltune.errors import DLTuneError
from dltune.storage import best_record, best_trial, schema
from dltune.storage.records import SINGLE_RUN
from dltune.study.choice import (
    ENSEMBLE_RESERVE,
    RESERVE,
    ChoiceRule,
    Reserve,
    choose,
    held_back,
    parse_choice,
    reevaluation_seed,
)

from .synthetic_studies import Run, config, in_memory

# learning rate -> (the stored single run's final value, what other seeds reach on average)
LUCKY, STEADY, THIRD, POOR = 0.1, 0.01, 0.001, 0.5
TRUTH = {LUCKY: (0.95, 0.85), STEADY: (0.94, 0.92), THIRD: (0.93, 0.90), POOR: (0.60, 0.60)}


def _study() -> optuna.Study:
    """Trial 0 the lucky maximum (0.95 once, 0.85 on other seeds), trial 1 the steady one."""
    runs = [
        Run(config(learning_rate=lr, epochs=4), [v - 0.03, v - 0.01, v, v - 0.005])
        for lr, (v, _) in TRUTH.items()
    ]
    return in_memory(runs)


class FakeTrainer:
    """A trainer whose every run of a configuration reaches that configuration's true value,
    give or take a little by seed: the choice's arithmetic without training anything."""

    def __init__(
        self, fail: bool = False, stop_after: int | None = None, truth: dict | None = None
    ) -> None:
        self.truth = truth or {lr: fresh for lr, (_, fresh) in TRUTH.items()}
        self.calls: list[tuple[float, int, int | None]] = []
        self.fail = fail
        self.stop_after = stop_after

    def train(self, config, *, seed, epochs=None, on_epoch=None, **_):
        if self.fail:
            raise AssertionError("a stored re-evaluation was trained again")
        if self.stop_after is not None and len(self.calls) >= self.stop_after:
            raise KeyboardInterrupt
        self.calls.append((config.learning_rate, seed, epochs))
        value = self.truth[config.learning_rate] + (0.01 if seed % 2 else -0.01)
        return TrainResult("complete", best_epoch=epochs, best_value=value, history=[None] * epochs)


def test_the_candidate_with_the_best_fresh_mean_is_chosen_and_said_so():
    study = _study()
    trainer = FakeTrainer()
    assert best_trial(study).number == 0  # before: the lucky maximum
    assert choose(study, trainer, "top3x2")
    # the top 3 by value, 2 seeds each, a round of seeds at a time, each for its epochs
    assert [(lr, e) for lr, _, e in trainer.calls] == [(LUCKY, 4), (STEADY, 4), (THIRD, 4)] * 2
    assert best_trial(study).number == 1
    best = best_record(study)
    assert best["trial"] == 1
    from dltune.analysis import load_trials

    assert load_trials(study).best().number == 1  # the report and diagnostics read it too
    choice = best["choice"]
    assert choice["rule"] == "top3x2" and choice["candidates"] == [0, 1, 2]
    assert choice["seeds"] == 2 and choice["rounds"] == 2
    assert choice["single"] == pytest.approx(0.94, abs=1e-3)
    assert choice["reevaluated"] == pytest.approx(0.92)
    assert choice["optimism"] == pytest.approx(choice["single"] - 0.92)
    assert choice["extra_epochs"] == 24
    assert best["chosen_by"].startswith("chosen among the top 3 by mean validation over 2 ")
    assert "re-evaluated 0.92" in best["chosen_by"] and "(optimism +0.0" in best["chosen_by"]
    json.dumps(best)  # what `dltune best --json` prints


def test_reevaluations_are_stored_with_their_seeds_and_not_redone():
    study = _study()
    choose(study, FakeTrainer(), "top3x2")
    runs = schema.read_reevaluations(study, 0)
    seed = best_trial(study).seed  # the synthetic trials' seed, 0
    assert [r["seed"] for r in runs] == [reevaluation_seed(seed, 0), reevaluation_seed(seed, 1)]
    assert all(r["epochs"] == 4 and r["value"] is not None for r in runs)
    # the study's next end: everything is stored, nothing is trained again
    assert choose(study, FakeTrainer(fail=True), "top3x2")
    assert best_trial(study).number == 1


def test_an_interrupted_choice_keeps_what_finished_and_the_next_goes_on_from_there():
    study = _study()
    assert not choose(study, FakeTrainer(stop_after=4), "top3x2")  # Ctrl-C in round 2
    assert schema.read_choice(study) is None
    assert best_trial(study).number == 0  # no choice yet: the maximum
    again = FakeTrainer()
    assert choose(study, again, "top3x2")
    assert [lr for lr, _, _ in again.calls] == [STEADY, THIRD]  # only the missing two
    assert best_trial(study).number == 1


def test_a_trial_completed_after_the_choice_makes_it_stale():
    study = _study()
    choose(study, FakeTrainer(), "top3x2")
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE,
            value=0.97,
            intermediate_values={1: 0.97},
            user_attrs={"config": config(learning_rate=0.2), "seed": 9},
        )
    )
    assert best_trial(study).number == 4  # until the next study end chooses again
    assert best_record(study)["choice"] is None


def test_max_is_todays_choice():
    study = _study()
    trainer = FakeTrainer(fail=True)
    assert choose(study, trainer, "max")
    assert best_trial(study).number == 0
    best = best_record(study)
    assert best["choice"] is None and best["chosen_by"] == SINGLE_RUN
    assert held_back("max") == 0.0  # nothing held back from the search (test_plan.py)


def test_ties_are_broken_by_the_lower_validation_loss():
    runs = [
        Run(config(learning_rate=lr), [0.9], val_loss=[loss])
        for lr, loss in ((0.1, 0.5), (0.01, 0.3), (0.001, 0.4))
    ]
    study = in_memory(runs)
    choose(study, FakeTrainer(truth={0.1: 0.8, 0.01: 0.8, 0.001: 0.8}), "top2x1")  # equal again
    assert schema.read_choice(study)["candidates"] == [1, 2]  # loss 0.3, then 0.4
    assert best_trial(study).number == 1


def test_the_share_held_back_is_the_reevaluations_or_a_continued_ensembles():
    assert held_back("top3x2") == held_back("top3x2", ensemble=True) == RESERVE
    assert held_back("max", ensemble=True) == ENSEMBLE_RESERVE
    assert held_back(ChoiceRule(), ensemble=False) == 0.0


def test_only_whole_rounds_of_seeds_that_fit_in_the_reserve_count():
    study = _study()
    trainer = FakeTrainer()
    choose(study, trainer, "top3x2", Reserve(epochs=16))  # room for one round and one more
    assert len(trainer.calls) == 4
    choice = schema.read_choice(study)
    assert choice["rounds"] == 1 and choice["trial"] == 1
    assert "(2 seeds asked, 1 fitted in the reserve)" in choice["how"]


def test_a_reserve_too_small_for_a_round_falls_back_to_the_maximum_and_says_so():
    study = _study()
    choose(study, FakeTrainer(), "top3x2", Reserve(epochs=5))
    choice = schema.read_choice(study)
    assert choice["rule"] == "max" and choice["trial"] == 0
    assert "did not fit in the reserve" in choice["how"]
    passed = Reserve(deadline=time.time() - 1)  # the run's deadline: wall-clock (plan.py)
    fresh = _study()
    choose(fresh, FakeTrainer(fail=True), "top3x2", passed)
    assert schema.read_choice(fresh)["trial"] == 0


@pytest.mark.parametrize("text", ["top1x2", "top3x0", "best", "top3", "3x2"])
def test_a_rule_that_is_not_one_names_the_setting_and_the_forms(text):
    with pytest.raises(DLTuneError, match=r"choose.*top<k>x<m>"):
        parse_choice(text)


def test_the_rules_read():
    assert parse_choice("top4x3") == ChoiceRule(4, 3)
    assert parse_choice("MAX").name == "max" and parse_choice("off").reevaluates is False


def test_tune_chooses_within_its_epoch_budget_and_everyone_reads_the_chosen(blobs):
    import dltune
    from dltune.config import Config

    space = {
        "layers": 1,
        "units": [8, 16],
        "learning_rate": {"low": 1e-3, "high": 0.1, "log": True},
        "epochs": 3,
    }
    result = dltune.tune(
        space,
        data=blobs,
        storage=optuna.storages.InMemoryStorage(),
        epoch_budget=24,
        seed=0,
        schedule="none",
        engine="sequential",
        workers=1,
        choose="top2x1",
        cv="holdout",  # re-evaluating with other seeds: the holdout's rule
    )
    study = result.study
    choice = schema.read_choice(study)
    assert choice is not None and choice["rule"] == "top2x1"
    assert result.epochs_trained <= 24 * (1 - RESERVE) + 3  # a run ends at its checkpoint
    assert choice["extra_epochs"] <= 24 * RESERVE
    assert result.best["trial"] == choice["trial"] == best_trial(study).number
    assert result.best["test"] is not None  # the chosen one, tested once
    assert schema.read_test_values(study).keys() == {choice["trial"]}
    assert Config.from_dict(result.best["params"]) == result.best_config
    assert result.best["chosen_by"] == choice["how"]
    from rich.console import Console

    from dltune.cli.tables import best_table

    console = Console(record=True, width=200)
    console.print(best_table(result.best, "best"))
    shown = console.export_text()
    assert "chosen by" in shown and "chosen among the top 2 by mean validation" in shown


def test_tune_with_max_keeps_todays_choice(blobs):
    import dltune

    result = dltune.tune(
        {"layers": 1, "units": [8, 16], "epochs": 2},
        data=blobs,
        storage=optuna.storages.InMemoryStorage(),
        trials=3,
        seed=0,
        schedule="none",
        engine="sequential",
        workers=1,
        choose="max",
        cv="holdout",
    )
    values = [t.value for t in result.study.trials if t.value is not None]
    assert result.best["value"] == max(values) and result.best["choice"] is None
    assert not any(k.startswith(schema.REEVAL_PREFIX) for k in result.study.user_attrs)
    assert math.isfinite(result.best["test"])


@pytest.mark.xdist_group("trained")
def test_the_command_line_says_how_and_choose_max_turns_it_off(trained_copy):
    from .helpers import dltune

    folder = trained_copy  # `dltune run small.yaml --trials 4 --seed 0`: the default choice
    best = json.loads(dltune("best", "--json", cwd=folder).stdout)
    assert best["choice"]["rule"] == "top3x2" and best["trial"] in best["choice"]["candidates"]
    assert "chosen by" in dltune("best", cwd=folder).stdout
    refused = dltune("run", "small.yaml", "--trials", "1", "--choose", "top1x2", cwd=folder)
    assert refused.returncode != 0 and "--choose" in refused.stderr
    ran = dltune("run", "small.yaml", "--trials", "1", "--seed", "0", "--choose", "max", cwd=folder)
    assert ran.returncode == 0, ran.stderr
    assert "chosen by" in ran.stdout  # the run summary's best table
    after = json.loads(dltune("best", "--json", cwd=folder).stdout)
    assert after["choice"] is None and after["chosen_by"] == SINGLE_RUN
    values = json.loads(dltune("trials", "--json", cwd=folder).stdout)
    assert after["value"] == max(r["value"] for r in values if r["state"] == "complete")


def test_auto_re_evaluates_where_the_validation_split_is_small_only():
    from dltune.study.choice import SMALL_VALIDATION, rule_for

    assert rule_for("auto", 8).name == "top3x2"  # GunPoint's 8 validation examples
    assert rule_for("auto", SMALL_VALIDATION).name == "max"  # MNIST-10k's 1500 too
    assert rule_for("top5x1", 10_000).name == "top5x1"  # an explicit rule is obeyed
