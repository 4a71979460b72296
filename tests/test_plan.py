"""A run resolved once (dltune.study.plan): its trial count, its deadline, what it holds back for
the end, each worker's share and device; the settings it is made from, built by keyword only
and handed over by tune() under each parameter's own name."""

from __future__ import annotations

import dataclasses
import inspect
import re
import time
from types import SimpleNamespace
from typing import Any

import pytest

from dltune.study import execute, resolve
from dltune.study.arrangement import Arrangement
from dltune.study.choice import ENSEMBLE_RESERVE, RESERVE, Reserve, parse_choice
from dltune.study.plan import Plan, make_plan
from dltune.study.settings import DEFAULT_TRIALS, TuneSettings
from dltune.study.tuning import tune

ONE = Arrangement(workers=1, engine="sequential", threads=2)
TWO_GPUS = Arrangement(workers=2, engine="population", threads=1, devices=("cuda:0", "cuda:1"))


def _plan(
    rule: str = "max",
    *,
    continued: bool = False,
    began: float = 1000.0,
    arrangement: Arrangement = ONE,
    **asked: Any,
) -> Plan:
    settings = TuneSettings(**asked)
    return make_plan(settings, arrangement, parse_choice(rule), continued=continued, began=began)


def test_neither_a_trial_count_nor_a_timeout_means_the_default_count():
    assert _plan().trials == DEFAULT_TRIALS
    assert _plan(epoch_budget=10.0).trials == DEFAULT_TRIALS  # an epoch budget alone too
    assert _plan(timeout=60.0).trials is None  # until the deadline
    assert _plan(trials=7, timeout=60.0).trials == 7


def test_the_timeout_becomes_one_deadline_that_every_part_reads():
    plan = _plan(timeout=100.0, began=1000.0)
    assert plan.deadline == plan.search_ends == 1100.0
    assert plan.budget(0).deadline == plan.reserve().deadline == 1100.0
    assert _plan().deadline is None and _plan().budget(0).deadline is None


def test_the_deadline_is_on_the_clock_every_process_shares():
    assert _plan(timeout=10.0, began=time.time() - 20).budget(0).spent()
    assert not _plan(timeout=3600.0, began=time.time()).budget(0).spent()


def test_max_holds_nothing_back_and_retrains_nothing_past_the_budget():
    plan = _plan("max", timeout=60.0, epoch_budget=300.0, began=40.0)
    budget, reserve = plan.budget(0), plan.reserve()
    assert (budget.deadline, budget.epochs) == (100.0, 300.0)
    assert reserve == Reserve(0.0, 100.0) and not reserve.allows(1)
    assert _plan("max", trials=10).reserve() == Reserve()


def test_the_reserve_is_a_share_of_the_timeout_and_of_the_epoch_budget():
    two = dataclasses.replace(ONE, workers=2)
    plan = _plan("top3x2", timeout=100.0, epoch_budget=400.0, began=900.0, arrangement=two)
    assert plan.search_ends == pytest.approx(1000.0 - RESERVE * 100.0)
    assert plan.budget(1).epochs == pytest.approx(200.0 * (1 - RESERVE))  # a worker's share
    assert plan.reserve().epochs == pytest.approx(400.0 * RESERVE)  # the study's whole reserve
    assert plan.reserve().deadline == 1000.0
    trials_only = _plan("top3x2", trials=20)
    assert trials_only.budget(0).trials == 20 and not trials_only.reserve().counted()


def test_a_continued_study_holds_back_for_its_ensembles_members():
    assert _plan(timeout=100.0, continued=True).held == ENSEMBLE_RESERVE
    assert _plan(timeout=100.0, continued=False).held == 0.0


def test_each_worker_gets_its_share_and_its_device():
    plan = _plan(trials=5, epoch_budget=9.0, arrangement=TWO_GPUS)
    assert [plan.budget(i).trials for i in (0, 1)] == [3, 2]
    assert [plan.budget(i).epochs for i in (0, 1)] == [4.5, 4.5]
    assert [plan.device_of(i) for i in (0, 1, 2)] == ["cuda:0", "cuda:1", "cuda:0"]
    assert plan.several and plan.parallel and plan.threads == 1 and plan.slots == 16
    alone = _plan(device="auto")
    assert alone.device_of(0) == "auto"  # a CPU run: the device as asked
    assert not alone.parallel and alone.threads is None and alone.slots == 1


def test_the_arrangement_sizes_the_job_by_the_plans_trial_count(monkeypatch):
    seen = []
    monkeypatch.setattr(resolve.arrangements, "arrange", lambda w, e, facts: seen.append(facts))
    storage = SimpleNamespace(url="sqlite:///x.db")
    space = SimpleNamespace(epochs=3)
    dataset = SimpleNamespace(x_train=[0] * 10, n_features=4)
    resolve.arrange(TuneSettings(), storage, space, dataset)  # type: ignore[arg-type]
    resolve.arrange(TuneSettings(timeout=30.0), storage, space, dataset)  # type: ignore[arg-type]
    assert [f.trials for f in seen] == [DEFAULT_TRIALS, None]


# ---- the settings the plan is made from --------------------------------------------------


def test_settings_are_built_by_keyword_only():
    with pytest.raises(TypeError):
        TuneSettings(None, "digits")  # type: ignore[misc]
    assert TuneSettings(data="mnist").data == "mnist"


def _handed_over() -> list[str]:
    """tune()'s parameters that reach TuneSettings under their own names."""
    skipped = ("space_or_build", "progress", "model")  # the first resolved; the listener apart
    return [n for n in inspect.signature(tune).parameters if n not in skipped]


def test_tune_hands_each_parameter_to_the_setting_of_its_name(monkeypatch):
    handed: list[TuneSettings] = []
    monkeypatch.setattr(TuneSettings, "validate", lambda self: self)
    monkeypatch.setattr(execute, "run_main", lambda settings, progress: handed.append(settings))
    values = {name: object() for name in _handed_over()}  # each one of its kind
    tune(**values)
    for name, value in values.items():
        assert getattr(handed[0], name) is value, name
    fields = {f.name for f in dataclasses.fields(TuneSettings)}
    assert fields == {*values, "model"}  # and no setting tune() cannot give


def test_tunes_docstring_names_every_parameter():
    doc = inspect.getdoc(tune) or ""
    args = doc.split("Args:", 1)[1].split("Returns:", 1)[0]
    named = re.findall(r"^    (\w+):", args, re.MULTILINE)
    assert named == list(inspect.signature(tune).parameters)
    assert "Returns:" in doc and "Raises:" in doc
