"""Sweeps: values, plans, the runner (one population, stored as a study), the readings."""

from __future__ import annotations

import json
import math
from typing import Any

import optuna
import pytest

from dltune.analysis.sweeps import analyze_sweep, mean_of
from dltune.config import Config
from dltune.errors import DLTuneError, StudyError
from dltune.space import SearchSpace
from dltune.storage.schema import STUDY_META
from dltune.storage.schema import SWEEP_SEED as SEED_ATTR
from dltune.storage.schema import SWEEP_VALUE as VALUE_ATTR
from dltune.study import ProgressListener
from dltune.sweep import SWEEPABLE, SweepPlan, sweep
from dltune.sweep.values import default_values, parameter_name, parse_range, parse_values

from .helpers import dltune
from .synthetic_studies import Run, config, rising, write_study

optuna.logging.set_verbosity(optuna.logging.WARNING)

BASE = Config(1, (32,), 0.0, "relu", "categorical_crossentropy", "adam", 1e-2, 0.0, 64, 3)


@pytest.fixture(scope="module")
def digits():
    """digits as flat rows: these sweeps read the dense network (as 8x8 images, the base would
    be the textbook convnet)."""
    from dltune.data import load_data

    return load_data("digits", shape="64")


@pytest.fixture
def memory():
    """An in-memory storage, for the sweeps whose readings are the point rather than how they
    are stored (SQLite's writes, one per member and epoch, were a large share of their time).
    Resuming, naming and the command line below keep SQLite."""
    return optuna.storages.InMemoryStorage()


# ---- values ---------------------------------------------------------------------------------


def test_log_range_gives_rounded_points_from_low_to_high():
    assert parse_range("learning_rate", "1e-4:1:5:log") == (1e-4, 1e-3, 1e-2, 0.1, 1.0)
    assert parse_range("dropout", "0:0.6:4") == (0.0, 0.2, 0.4, 0.6)


def test_integer_range_is_rounded_and_repeats_dropped():
    assert parse_range("units", "8:16:9") == (8, 9, 10, 11, 12, 13, 14, 15, 16)
    assert parse_range("layers", "1:3:5") == (1, 2, 3)  # 1, 1.5->2, 2, 2.5->2, 3


def test_values_are_canonicalised_and_checked():
    assert parse_values("activation", "ReLU, none,silu") == ("relu", "linear", "swish")
    assert parse_values("batch_size", "32,64") == (32, 64)


@pytest.mark.parametrize(
    ("param", "values", "value_range", "said"),
    [
        ("activation", "relu,rleu", None, ["'rleu'", "did you mean 'relu'"]),
        ("dropout", "0,1.2", None, ["values: dropout 1.2", "in [0, 1)", "0.2"]),
        ("units", "16,24.5", None, ["24.5 is not a whole number"]),
        ("learning_rate", "0.1,fast", None, ["'fast' is not a number"]),
        ("dropout", "0.2,0.2", None, ["at least two different values"]),
        ("learning_rate", None, "0:1:5:log", ["log range needs LOW > 0"]),
        ("learning_rate", None, "1:0.1:5", ["HIGH 0.1 must be above LOW 1"]),
        ("learning_rate", None, "1e-3:1:1", ["whole number of values >= 2"]),
        ("learning_rate", None, "1e-3-1-5", ["LOW:HIGH:N"]),
        ("optimizer", None, "1:2:3", ["value_range='1:2:3'", "choice of names", "values=sgd"]),
        ("loss", "categorical_crossentropy,mse,huber", None, None),  # fine for classification
    ],
)
def test_bad_values_are_refused_with_the_option_value_and_fix(
    param: str, values: str | None, value_range: str | None, said: list[str] | None
):
    def parse() -> Any:
        return parse_values(param, values) if values else parse_range(param, value_range or "")

    if said is None:
        assert len(parse()) == 3
        return
    with pytest.raises(DLTuneError) as caught:
        parse()
    for part in said:
        assert part in str(caught.value)


def test_parameter_names_take_aliases_and_suggest():
    assert parameter_name("lr") == "learning_rate"
    assert parameter_name("Batch-Size") == "batch_size"
    with pytest.raises(DLTuneError, match="did you mean 'dropout'"):
        parameter_name("dropuot")


def test_every_hyperparameter_has_default_values():
    for param in SWEEPABLE:
        values = default_values(param, "classification", 27)
        assert len(values) >= 2, param
    assert "linear" in default_values("activation", "classification", 27)
    assert "categorical_crossentropy" not in default_values("loss", "regression", 27)
    assert default_values("epochs", "classification", 27) == (1, 2, 3, 5, 8, 13, 20, 27)
    lr = default_values("learning_rate", "classification", 27)
    assert min(lr) <= 1e-5 and max(lr) >= 10  # from barely moving to diverging


@pytest.mark.parametrize(
    ("param", "values"),
    [
        ("units", (8, 64)),
        ("layers", (1, 3)),
        ("layers", (0, 2)),  # the linear model beside a network
        ("dropout", (0.0, 0.5)),
        ("learning_rate", (1e-3, 0.1)),
        ("optimizer", ("sgd", "adam")),
        ("activation", ("relu", "linear")),
        ("loss", ("categorical_crossentropy", "huber")),
        ("weight_decay", (0.0, 1e-3)),
        ("batch_size", (16, 128)),
        ("epochs", (2, 5)),
    ],
)
def test_the_sweep_space_trains_exactly_the_planned_configurations(
    param: str, values: tuple[Any, ...]
):
    base = BASE.replace(layers=2, units=[64, 16], epochs=max(values) if param == "epochs" else 4)
    plan = SweepPlan(param, values, base, seeds=2, seed=0)
    space = SearchSpace.from_dict(plan.space_dict("accuracy"))
    for index, value in enumerate(values):
        index_or_none = None if param == "epochs" else index
        assert space.config_from_params(plan.params_for(index_or_none)) == plan.config_for(value)
    # seed k is the same for every value and every plan: the values are compared paired
    other = SweepPlan(param, values[::-1], base, seeds=2, seed=0)
    assert other.member_seed(1) == plan.member_seed(1) != plan.member_seed(0)


def test_sweeps_from_and_to_the_linear_model_and_of_kernels_per_block():
    assert default_values("layers", "classification", 27)[0] == 0  # the linear model first
    linear = BASE.replace(layers=0, epochs=2)
    plan = SweepPlan("layers", (0, 1, 3), linear, seeds=1, seed=0)
    space = SearchSpace.from_dict(plan.space_dict("accuracy"))
    for index, value in enumerate(plan.values):
        config = space.config_from_params(plan.params_for(index))
        assert config == plan.config_for(value) and config.layers == value
    assert plan.config_for(3).units == (64, 64, 64)  # Config.replace's width from none
    # a sweep of kernel_size sets every block's; the others keep theirs per block
    fcn = BASE.replace(layers=0, conv_layers=3, filters=[8, 16, 8], kernel_size=[8, 5, 3])
    for param, values in [("kernel_size", (3, 8)), ("learning_rate", (1e-3, 1e-2))]:
        plan = SweepPlan(param, values, fcn, seeds=1, seed=0)
        space, _ = SearchSpace.from_dict(plan.space_dict("accuracy")).for_input((1, 24))
        for index, value in enumerate(values):
            config = space.config_from_params(plan.params_for(index))
            assert config == plan.config_for(value)
    assert SweepPlan("kernel_size", (3, 8), fcn, 1, 0).config_for(8).kernel_size == (8, 8, 8)
    assert plan.config_for(1e-2).kernel_size == (8, 5, 3)
    # a sweep of the hidden layers' width or dropout needs hidden layers
    from dltune.sweep.runner import _plan

    for param in ("units", "dropout"):
        with pytest.raises(DLTuneError, match=f"a sweep of {param} varies the hidden layers"):
            _plan(param, None, None, linear, "classification", None, 1, 0)


# ---- running --------------------------------------------------------------------------------


def test_learning_rate_sweep_names_the_divergence_and_too_slow_regions(digits, memory):
    result = sweep(
        "lr",
        value_range="1e-5:100:8:log",
        data=digits,
        base={"optimizer": "sgd", "dropout": 0.0, "units": 64},
        storage=memory,
        # 4 epochs read as 6 did, at 6 seeds: 0.01 gains about 0.7 of the best's gain over
        # chance (slow is below 0.5), 1e-3 at most 0.11.
        epochs=4,
        seeds=2,
        estimate=False,
    )
    a = analyze_sweep(result.study)
    readings = {r.kind: r for r in a.readings}
    assert readings["diverged"].values == [10.0, 100.0]
    assert all(row.all_diverged for row in a.rows if row.value >= 10)
    assert "learning_rate ≥ 10" in readings["diverged"].text
    slow = readings["slow"].values
    assert {1e-5, 1e-4} <= set(slow) and max(slow) <= 1e-3
    assert "learning_rate ≤" in readings["slow"].text and "too slow" in readings["slow"].text
    assert 0.01 <= a.ranked[0].value <= 1.0  # the best lies between the two regions
    assert mean_of(a.ranked[0].score) > 0.9


def test_adam_at_a_huge_learning_rate_is_told_as_an_exploding_loss(digits, memory):
    result = sweep(
        "lr",
        values="0.001,10",
        data=digits,
        base={"optimizer": "adam", "units": 32},
        storage=memory,
        epochs=3,
        seeds=1,
        estimate=False,
    )
    a = analyze_sweep(result.study)
    exploded = next(r for r in a.readings if r.kind == "exploded")
    assert exploded.values == [10.0] and "without becoming NaN" in exploded.text
    assert a.rows[1].diverged == 0  # finite, yet far above anything a good run sees


def test_dropout_sweep_on_a_wide_network_trained_long_shrinks_the_gap(digits, memory):
    result = sweep(
        "dropout",
        values="0,0.25,0.5,0.75",
        data=digits,
        base={"units": 256, "optimizer": "adam", "learning_rate": 1e-3},
        storage=memory,
        epochs=16,
        seeds=2,
        estimate=False,
    )
    a = analyze_sweep(result.study)
    gaps = [mean_of(row.gap) for row in a.rows]
    assert gaps[0] > 0.005  # without dropout it fits the training rows better than the rest
    assert gaps[-1] < gaps[0] / 2
    gap = next(r for r in a.readings if r.kind == "gap")
    assert "shrinks as dropout grows" in gap.text
    # what each value costs, beside its metric: dropout changes no weight's count
    assert {row.parameters for row in a.rows} == {64 * 256 + 256 + 256 * 10 + 10}
    assert all(row.latency is not None and row.latency > 0 for row in a.rows)


def test_activation_sweep_includes_linear_and_shows_it_below_the_others(digits, memory):
    # Digits are nearly linearly separable: a linear network comes close to the others on
    # them. Two hidden layers trained long enough show the difference the nonlinearity makes.
    result = sweep(
        "activation",
        values="relu,tanh,linear",
        data=digits,
        base={"layers": 2, "units": 128, "batch_size": 128, "learning_rate": 3e-3},
        storage=memory,
        epochs=30,
        seeds=2,
        estimate=False,
    )
    a = analyze_sweep(result.study)
    rows = {row.value: row for row in a.rows}
    for other in ("relu", "tanh"):
        assert mean_of(rows["linear"].best) < mean_of(rows[other].best)
        assert mean_of(rows["linear"].final) < mean_of(rows[other].final) - 0.01
        assert mean_of(rows["linear"].gap) > mean_of(rows[other].gap)
    assert a.ranked[-1].value == "linear"
    assert default_values("activation", "classification", 1)[-1] == "linear"  # swept by default


def test_epochs_sweep_reads_every_value_off_one_run_per_seed(digits, memory):
    result = sweep(
        "epochs",
        values="1,3,6",
        data=digits,
        base={"units": 32, "learning_rate": 1e-2, "optimizer": "adam"},
        storage=memory,
        seeds=2,
        estimate=True,
    )
    trials = result.study.get_trials()
    assert len(trials) == 2 and all(len(t.intermediate_values) == 6 for t in trials)
    a = analyze_sweep(result.study)
    for row in a.rows:
        for run, trial in zip(row.runs, trials, strict=True):
            assert len(run.curve) == row.value
            assert run.final == pytest.approx(trial.intermediate_values[row.value])
    # one at a time, each value is its own run: 1 + 3 + 6 epochs per seed
    alone = result.timing["one_at_a_time"]
    per_epoch = alone["sample"][0]["seconds_per_epoch"]
    assert alone["seconds"] == pytest.approx(2 * 10 * per_epoch)


class _StopAfter(ProgressListener):
    """Ctrl-C after `n` members finished."""

    def __init__(self, n: int) -> None:
        self.left = n

    def trial_finished(self, record: dict[str, Any], best: dict[str, Any] | None) -> None:
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt


def test_an_interrupted_sweep_keeps_its_runs_and_trains_only_the_rest(digits, storage_url):
    kwargs: dict[str, Any] = {
        "values": "16,32,64",  # three buckets: members finish one bucket at a time
        "data": digits,
        "base": {"learning_rate": 1e-2, "dropout": 0.0},
        "storage": storage_url,
        "epochs": 2,
        "seeds": 2,
        "estimate": False,
    }
    first = sweep("units", progress=_StopAfter(2), **kwargs)
    assert first.interrupted
    finished = [t for t in first.study.get_trials() if t.state.is_finished()]
    kept = {
        (t.user_attrs[VALUE_ATTR], t.user_attrs[SEED_ATTR])
        for t in finished
        if t.state == optuna.trial.TrialState.COMPLETE
    }
    assert len(kept) >= 2
    second = sweep("units", **kwargs)
    assert not second.interrupted and second.study.study_name == first.study.study_name
    assert second.trained == 6 - len(kept)
    a = analyze_sweep(second.study)
    assert [len(row.runs) for row in a.rows] == [2, 2, 2]
    assert [row.runs[0].seed for row in a.rows] == [0, 0, 0]
    widths = {tuple(t.user_attrs["config"]["units"]) for t in second.study.get_trials()}
    assert widths == {(16,), (32,), (64,)}


def test_another_plan_gets_its_own_study_and_a_named_one_refuses(digits, storage_url):
    kwargs: dict[str, Any] = {"data": digits, "storage": storage_url, "epochs": 1, "seeds": 1}
    kwargs["estimate"] = False
    one = sweep("optimizer", values="sgd,adam", **kwargs)
    other = sweep("optimizer", values="sgd,rmsprop", **kwargs)
    assert other.study.study_name == one.study.study_name + "-2"
    again = sweep("optimizer", values="sgd,adam", **kwargs)
    assert again.study.study_name == one.study.study_name and again.trained == 0
    with pytest.raises(StudyError, match="another plan"):
        sweep("optimizer", values="adam,rmsprop", study_name=one.study.study_name, **kwargs)
    assert len(one.study.get_trials()) == 2  # nothing lost


def test_a_shape_sweep_times_every_value_alone(digits, memory):
    result = sweep(
        "batch_size",
        values="32,128",
        data=digits,
        base={"units": 32},
        storage=memory,
        epochs=2,
        seeds=2,
    )
    timing = result.timing
    assert timing["buckets"] == 2 and timing["members"] == 4
    alone = timing["one_at_a_time"]
    assert [s["value"] for s in alone["sample"]] == ["32", "128"]
    by_value = {s["value"]: s["seconds_per_epoch"] for s in alone["sample"]}
    expected = 2 * 2 * (by_value["32"] + by_value["128"])  # 2 seeds x 2 epochs per value
    assert alone["seconds"] == pytest.approx(expected)
    assert math.isfinite(timing["seconds"]) and timing["member_epochs"] == 8


def test_from_study_holds_the_rest_at_its_best_trial(digits, storage_url):
    best = config(units=[48], learning_rate=0.02, optimizer="rmsprop", epochs=2)
    tuned = write_study(
        storage_url,
        [Run(config(epochs=2), rising(0.8, 2)), Run(best, rising(0.95, 2))],
        name="tuned",
    )
    meta = tuned.user_attrs[STUDY_META]
    meta["data"] = {
        "name": "digits",
        "source": "digits",
        "task": "classification",
        "fingerprint": digits.fingerprint(),
        "description": digits.describe(),
    }
    tuned.set_user_attr(STUDY_META, meta)  # as if tuned on digits: the sweep loads them again
    result = sweep(
        "dropout",
        values="0,0.4",
        from_study="tuned",
        storage=storage_url,
        seeds=1,
        estimate=False,
    )
    assert result.plan.base == Config.from_dict(best)
    assert result.data.name == "digits"
    configs = [t.user_attrs["config"] for t in result.study.get_trials()]
    assert [c["dropout"] for c in configs] == [0.0, 0.4]
    assert {c["optimizer"] for c in configs} == {"rmsprop"}


# ---- the command line and the page ----------------------------------------------------------


def test_the_command_prints_the_table_and_readings_and_writes_page_and_picture(tmp_path):
    db = f"sqlite:///{tmp_path / 'sweeps.db'}"
    done = dltune(
        "sweep",
        "optimizer",
        "--values",
        "sgd,adam",
        "--epochs",
        "2",
        "--seeds",
        "2",
        "--storage",
        db,
        "-o",
        "sweep.png",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Sweep of optimizer" in out and "What it shows" in out
    assert "sgd" in out and "adam" in out and "One at a time" in out
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from dltune.report import write_report  # what `dltune report` calls (test_report.py)

    study = optuna.load_study(study_name="sweep-optimizer-digits", storage=db)
    html = write_report(study, tmp_path / "s.html").read_text()
    assert "Sweep of optimizer" in html and html.count("<svg") >= 2
    assert "<script" not in html and "https://" not in html.replace("http://www.w3.org", "")
    data = dltune(
        "report", "--storage", db, "--study", "sweep-optimizer-digits", "-o", "s.json", cwd=tmp_path
    )
    assert data.returncode == 0, data.stderr
    plain = json.loads((tmp_path / "s.json").read_text())
    assert [row["label"] for row in plain["rows"]] == ["sgd", "adam"]
    assert "params" in out and "ms/pred" in out  # the cost of each value, beside its metric
    assert all(row["parameters"] > 0 and row["latency"] > 0 for row in plain["rows"])
    assert plain["timing"]["one_at_a_time"]["seconds"] > 0 and plain["readings"]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["dropuot"], "did you mean 'dropout'"),
        (["lr", "--values", "0.1,1", "--range", "0.1:1:3"], "--values or --range, not both"),
        (["units", "--values", "8,16", "-o", "sweep.pdf"], "write the sweep as .html or .png"),
    ],
)
def test_the_command_refuses_bad_input_in_one_line(tmp_path, args: list[str], said: str):
    done = dltune("sweep", *args, cwd=tmp_path)
    assert done.returncode == 2
    assert said in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "dltune.db").exists()  # refused before any storage is opened
