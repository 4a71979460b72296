"""Several objectives at once (issue 18): the `objectives` key, the Optuna study of several
directions it opens, every complete trial told its metric and its costs, the learning curve
kept where Optuna refuses intermediate values, and a study of one objective left as it was."""

from __future__ import annotations

import json
import math

import optuna
import pytest

from dltune.errors import SpaceError, StudyError
from dltune.space import SearchSpace
from dltune.storage import TrialRecord, objective_names, read_trials, schema
from dltune.study import tune
from dltune.study.front import front_of, pareto_front, pick_point

from .helpers import dltune


def memory() -> optuna.storages.InMemoryStorage:
    return optuna.storages.InMemoryStorage()


SMALL = {"layers": [1, 2], "units": [4, 64], "optimizer": "adam", "epochs": 4, "min_epochs": 1}


@pytest.mark.parametrize(
    ("given", "metric", "costs"),
    [
        (["accuracy", "parameters"], "accuracy", ("parameters",)),
        (["parameters", "RMSE"], "rmse", ("parameters",)),  # the metric goes first
        (["latency", "flops"], None, ("latency", "flops")),  # the task's default metric
        ("parameters", None, ("parameters",)),
    ],
)
def test_the_objectives_key_names_one_metric_and_costs(given, metric, costs):
    space = SearchSpace(objectives=given)
    assert (space.metric, space.costs) == (metric, costs)
    assert SearchSpace.from_dict(space.to_dict()) == space  # stored and read back alike


def test_a_space_of_one_objective_keeps_its_stored_form():
    assert "objectives" not in SearchSpace().to_dict()
    assert SearchSpace().costs == ()


@pytest.mark.parametrize(
    ("given", "words"),
    [
        (["accuracy", "rmse"], "one metric"),
        (["acuracy"], "did you mean 'accuracy'"),
        (["parameters", "parameters"], "twice"),
        ([], "a list of names"),
        ({"a": 1}, "a list of names"),
    ],
)
def test_a_wrong_objectives_key_says_what_to_write(given, words, tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(f"objectives: {given!r}\n".replace("'", ""))
    with pytest.raises(SpaceError) as raised:
        SearchSpace.from_file(path)
    assert str(path) in str(raised.value) and words in str(raised.value)


def test_objectives_and_metric_must_agree():
    with pytest.raises(SpaceError, match="metric is 'mae'"):
        SearchSpace(metric="mae", objectives=["rmse", "parameters"])


@pytest.fixture(scope="module")
def two_objectives(blobs, tmp_path_factory):
    storage = f"sqlite:///{tmp_path_factory.mktemp('mo') / 'mo.db'}"
    space = SMALL | {"objectives": ["accuracy", "parameters"]}
    result = tune(space, blobs, storage=storage, trials=12, seed=0, workers=1)
    return result, storage


def test_a_study_of_two_objectives_is_an_optuna_study_of_two_directions(two_objectives):
    result, storage = two_objectives
    study = optuna.load_study(study_name=result.study.study_name, storage=storage)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert objective_names(study) == ["accuracy", "parameters"]  # what the dashboard shows
    assert study.best_trials  # Optuna's own front reads it


def test_every_complete_trial_is_told_its_metric_and_its_size(two_objectives):
    result, _ = two_objectives
    records = read_trials(result.study)
    complete = [r for r in records if r.state == "complete"]
    assert complete and any(r.state == "pruned" for r in records)
    for record in complete:
        assert record.values == [record.value, float(record.parameters)]
        assert record.value == max(v for v in record.curve if math.isfinite(v))
    for trial, record in zip(result.study.trials, records, strict=True):  # the scheduler's too
        assert schema.read_rungs(trial)["static"] == [float(record.parameters)]


def test_the_curve_of_a_study_of_several_objectives_is_kept_beside_optunas(two_objectives):
    result, _ = two_objectives
    trials = result.study.get_trials(deepcopy=False)
    assert all(not t.intermediate_values for t in trials)  # Optuna refuses them here
    for trial, record in zip(trials, read_trials(result.study), strict=True):
        assert len(record.curve) == len(trial.user_attrs[schema.CURVE]) >= 1


def test_a_study_of_two_objectives_resumes_and_refuses_other_objectives(two_objectives, blobs):
    result, storage = two_objectives
    name, before = result.study.study_name, len(result.study.trials)
    space = SMALL | {"objectives": ["accuracy", "parameters"]}
    again = tune(space, blobs, storage=storage, study_name=name, trials=2, seed=0, workers=1)
    assert len(again.study.trials) >= before + 2
    for other in (["accuracy", "flops"], ["accuracy"]):
        with pytest.raises(StudyError, match="has the objectives accuracy, parameters"):
            tune(SMALL | {"objectives": other}, blobs, storage=storage, study_name=name, trials=1)


def test_latency_is_measured_before_training_and_told(blobs):
    space = SMALL | {"objectives": ["accuracy", "latency"], "epochs": 1}
    result = tune(space, blobs, storage=memory(), trials=3, seed=0, workers=1, schedule="none")
    complete = [r for r in read_trials(result.study) if r.state == "complete"]
    assert complete
    for record in complete:
        assert record.latency is not None and record.latency > 0
        assert record.latency_256 is not None and record.latency_256 > 0
        assert record.values == [record.value, record.latency]


def test_a_study_of_one_objective_keeps_optunas_intermediate_values(blobs):
    result = tune(SMALL, blobs, storage=memory(), trials=3, seed=0, workers=1, schedule="none")
    for trial in result.study.get_trials(deepcopy=False):
        assert trial.intermediate_values and schema.CURVE not in trial.user_attrs
        assert len(trial.values or [0.0]) == 1
    assert all(r.latency is None for r in read_trials(result.study))  # measured when asked


def _brute_front(records, names):
    """The trials no other beats on every objective, by definition: the complete at their
    value, the stopped at the best of their whole epochs."""
    metric = {r.number: r.value for r in records if r.state == "complete"}
    for r in records:
        finite = [v for v in r.curve if math.isfinite(v)]
        if r.state in ("pruned", "paused", "interrupted") and finite:
            metric[r.number] = max(finite)
    complete = [r for r in records if r.number in metric]

    def values(r):
        return [-metric[r.number], *(r.cost(n) for n in names[1:])]  # all to minimize

    def beats(a, b):
        x, y = values(a), values(b)
        pairs = list(zip(x, y, strict=True))
        return all(p <= q for p, q in pairs) and any(p < q for p, q in pairs)

    return {r.number for r in complete if not any(beats(o, r) for o in complete)}


def test_the_front_is_the_complete_trials_none_dominates(two_objectives):
    result, _ = two_objectives
    # the trials of the call that returned this front (the resume test adds more)
    records = [r for r in read_trials(result.study) if r.number < result.trials_run]
    expected = _brute_front(records, ["accuracy", "parameters"])
    assert {point["trial"] for point in result.front} == expected
    values = [point["values"]["accuracy"] for point in result.front]
    assert values == sorted(values, reverse=True)  # the most accurate first
    sizes = [point["values"]["parameters"] for point in result.front]
    assert sizes == sorted(sizes)  # on a front of two, the less accurate are the smaller


def test_best_json_lists_the_front_and_the_table_shows_it(two_objectives, tmp_path):
    result, storage = two_objectives
    name = result.study.study_name
    ran = dltune("best", "--storage", storage, "--study", name, "--json", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    shown = json.loads(ran.stdout)
    expected = _brute_front(read_trials(result.study), ["accuracy", "parameters"])
    assert shown["objectives"] == ["accuracy", "parameters"]
    assert {p["trial"] for p in shown["front"]} == expected
    assert all(set(p) >= {"trial", "values", "params"} for p in shown["front"])
    table = dltune("best", "--storage", storage, "--study", name, cwd=tmp_path)
    assert "Pareto front" in table.stdout and "parameters" in table.stdout
    for trial in expected:
        assert f"#{trial}" in table.stdout


def _record(number, value, parameters, latency=None):
    return TrialRecord(
        number, "complete", value=value, parameters=parameters, latency=latency, config={}
    )


def test_a_stopped_trial_counts_at_its_best_whole_epoch():
    stopped = TrialRecord(
        5, "pruned", parameters=50, config={}, curve=[0.80, 0.93, 0.91], best_epoch=None
    )
    early = TrialRecord(6, "pruned", parameters=10, config={}, partial=0.9)  # no whole epoch
    records = [_record(0, 0.95, 1000), stopped, early]
    front = front_of(records, ["accuracy", "parameters"], ["maximize", "minimize"])
    assert [r.number for r in front.points] == [0, 5]
    assert (front.points[1].value, front.points[1].best_epoch) == (0.93, 2)  # retrain 2 epochs
    only = front_of(records, ["accuracy", "parameters"], ["maximize", "minimize"], stopped=False)
    assert [r.number for r in only.points] == [0]


def test_a_pick_chooses_the_smallest_within_the_margin_on_the_front():
    records = [
        _record(0, 0.95, 1000),
        _record(1, 0.947, 300),  # within 0.005 of the best, and the smallest such
        _record(2, 0.90, 50),  # smaller still, but 0.05 below
        _record(3, 0.946, 400),  # dominated by trial 1
    ]
    front = front_of(records, ["accuracy", "parameters"], ["maximize", "minimize"])
    assert [r.number for r in front.points] == [0, 1, 2]
    assert [r.number for r in front.dominated] == [3]
    assert pick_point(front, "smallest within 0.005 of the best accuracy").number == 1
    assert pick_point(front, "smallest within 0.001 of the best").number == 0
    assert pick_point(front, "smallest within 6% of the best accuracy").number == 2
    assert pick_point(front, "2").number == 2
    for wrong, words in [
        ("3", "trial 3 is dominated"),
        ("7", "not a complete trial"),
        ("fastest within 0.01 of the best", "needs a cost"),
        ("smallest within 0.01 of the best rmse", "the study's is 'accuracy'"),
        ("biggest", "not a rule"),
    ]:
        with pytest.raises(StudyError, match=words):
            pick_point(front, wrong)


def test_a_pick_on_an_error_metric_keeps_within_the_margin_above_the_least():
    records = [_record(0, 2.0, 900), _record(1, 2.1, 100), _record(2, 2.5, 10)]
    front = front_of(records, ["rmse", "parameters"], ["minimize", "minimize"])
    assert pick_point(front, "smallest within 0.2 of the best rmse").number == 1


def test_train_best_retrains_the_picked_point(two_objectives, blobs):
    from dltune.export import train_best

    result, storage = two_objectives
    rule = "smallest within 0.005 of the best accuracy"
    front = pareto_front(result.study)
    expected = pick_point(front, rule)
    trained = train_best(storage, result.study.study_name, data=blobs, pick=rule, on="train")
    assert trained.card["study"]["trial"] == expected.number
    assert trained.card["study"]["picked"] == rule
    assert trained.model.config.to_dict() == expected.config


def test_train_best_pick_refuses_a_rule_it_does_not_know(two_objectives, tmp_path):
    result, storage = two_objectives
    name = result.study.study_name
    for pick, words in [("biggest", "not a rule"), ("99999", "not a complete trial")]:
        ran = dltune(
            "train-best", "--storage", storage, "--study", name, "--pick", pick, "-o", "m",
            cwd=tmp_path,
        )  # fmt: skip
        assert ran.returncode != 0 and words in ran.stderr
        assert not (tmp_path / "m").exists()


def _view(number, value, units, parameters, state="complete"):
    from dltune.analysis.trials import TrialView

    config = {"layers": 1, "units": [units]}
    return TrialView(number, state, value=value, parameters=parameters, config=config, score=value)


def _study(views, classes=10):
    from dltune.analysis.trials import StudyTrials

    return StudyTrials(
        name="s", maximize=True, metric="accuracy", trials=views, space={},
        data={"classes": classes}, tests={},
        objectives=["accuracy", "parameters"], directions=["maximize", "minimize"],
    )  # fmt: skip


def test_the_front_reads_as_plain_words_with_its_evidence():
    from dltune.analysis.tradeoffs import front_view, read_front

    views = [
        _view(0, 0.950, 256, 120_000),  # the most accurate
        _view(1, 0.947, 32, 10_000),  # within 0.005, 12x smaller
        _view(2, 0.930, 512, 400_000),  # wider, worse: dominated
        _view(3, 0.940, 1024, 900_000),  # wider, worse: dominated
        _view(4, 0.101, 4, 300),  # chance, but the smallest: on the front
        _view(5, 0.990, 64, 20_000, state="pruned"),  # not complete: not a point
    ]
    found = read_front(_study(views))
    assert len(found) == 3 and all(d.kind == "front" for d in found)
    cheaper = next(d for d in found if "fewer parameters" in d.title)
    assert "12x fewer parameters" in cheaper.title and "#1" in cheaper.title
    assert cheaper.suggestion == (
        'dltune train-best --pick "smallest within 0.005 of the best accuracy" -o model/'
    )
    assert [e["trial"] for e in cheaper.evidence] == [0, 1, 4]
    wider = next(d for d in found if d.title.startswith("Above 256 units"))
    assert {e["trial"] for e in wider.evidence} == {2, 3}
    chance = next(d for d in found if "chance" in d.title)
    assert chance.title.startswith("#4 is on the front only for its size")
    view = front_view(_study(views))
    assert [p["trial"] for p in view["points"]] == [0, 1, 4]
    assert [p["trial"] for p in view["dominated"]] == [2, 3]


def test_a_front_with_no_cheaper_point_worth_saying_says_nothing_of_it():
    from dltune.analysis.tradeoffs import read_front

    views = [_view(0, 0.95, 64, 10_000), _view(1, 0.90, 48, 8_000)]
    assert read_front(_study(views)) == []  # 0.90 is past the margin; 1.25x is no news
    one = _study(views)
    one.objectives, one.directions = [], []
    assert read_front(one) == []  # a study of one objective has no front
