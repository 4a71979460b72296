"""The divergence rule (dltune.engine.divergence), the one the engines and the analysis share:
its chance levels against the losses the engines compute, the runs it calls diverged and the
ones it leaves be, both engines ending such runs whatever the family, and real studies of each
family (digits through convolutions with batch normalization, a signal set, a user's build) whose
run summary and report say that trials diverged and from which learning rate."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
import torch
from torch import nn

from dltune.analysis import load_trials
from dltune.analysis.diagnostics import diagnose
from dltune.engine import SequentialTrainer
from dltune.engine.divergence import (
    AT_CHANCE,
    EXPLODING,
    NOT_FINITE,
    chance,
    divergence,
)
from dltune.engine.losses import loss_function
from dltune.engine.population import PopulationTrainer
from dltune.space.rules import value_rule
from dltune.vocabulary import LOSSES

from .helpers import bright_rows, dltune, make_config

LN10 = math.log(10)


# ---- chance levels ----


@pytest.mark.parametrize("classes", [2, 3, 10])
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_the_chance_loss_is_the_engines_loss_of_uniform_outputs(loss, classes):
    targets = torch.arange(60) % classes
    uniform = loss_function(loss, "classification", classes)(torch.zeros(60, classes), targets)
    level = chance(loss, "classification", classes)
    assert level.loss == pytest.approx(float(uniform), rel=1e-5)
    assert level.accuracy == pytest.approx(1 / classes)
    assert level.fresh is not None and level.fresh >= 1.2 * level.loss


@pytest.mark.parametrize("loss", ["mean_squared_error", "mean_absolute_error", "huber"])
def test_in_regression_the_chance_loss_bounds_the_mean_predictors(loss):
    rng = np.random.default_rng(0)
    target = rng.exponential(size=500)  # skewed, then standardized as the engines get it
    standard = torch.tensor((target - target.mean()) / target.std(), dtype=torch.float32)
    mean_loss = loss_function(loss, "regression", 1)(torch.zeros(500, 1), standard)
    level = chance(loss, "regression", 1)
    assert level.loss is not None and float(mean_loss) <= level.loss + 1e-6
    assert level.accuracy is None


@pytest.mark.parametrize("classes", [2, 3, 10])
def test_a_fresh_network_starts_below_the_rules_limit(classes):
    """The allowance for a fresh network's spread of outputs holds for PyTorch's defaults."""
    rng = np.random.default_rng(classes)
    x = torch.tensor(rng.normal(size=(400, 16)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, classes, 400))
    for seed in range(10):
        torch.manual_seed(seed)
        for net in (
            nn.Linear(16, classes),
            nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, classes)),
            nn.Sequential(nn.Linear(16, 64), nn.Sigmoid(), nn.Linear(64, classes)),
        ):
            with torch.no_grad():
                out = net(x)
            for loss in ("categorical_crossentropy", "mean_squared_error"):
                fresh = float(loss_function(loss, "classification", classes)(out, y))
                limit = chance(loss, "classification", classes).fresh
                assert limit is not None and fresh < limit


# ---- the rule on curves ----

TEN = chance("categorical_crossentropy", "classification", 10)


def test_a_loss_that_is_not_a_number_diverges_where_it_became_one():
    assert divergence([2.0, math.nan], [2.0, math.nan], [0.5, 0.1], TEN) == (2, NOT_FINITE)
    assert divergence([2.0, 1.5], [2.0, math.inf], [0.5, 0.6], TEN) == (2, NOT_FINITE)


def test_a_network_at_chance_with_its_loss_above_a_fresh_ones_diverged():
    assert divergence([1.5 * LN10], [2.4], [0.1], TEN) == (1, AT_CHANCE)
    # batch normalization keeps the loss finite however large the step: still diverged
    assert divergence([0.5, 3e16], [0.6, 1e9], [0.8, 0.1], TEN) == (2, AT_CHANCE)


def test_a_slow_start_and_a_confident_learner_are_not_divergence():
    slow = divergence([LN10, 0.998 * LN10, 0.99 * LN10], [LN10] * 3, [0.1, 0.1, 0.12], TEN)
    assert slow is None  # at chance, but its loss is where a fresh network's is
    # Adam at a learning rate of 1: the loss far above chance, but it learns
    assert divergence([144 * LN10, 263 * LN10], [300.0, 500.0], [0.88, 0.9], TEN) is None


def test_a_run_that_started_above_the_fresh_level_is_measured_from_its_own_start():
    """Unstandardized inputs: the fresh network costs 40, far above ten classes' level."""
    learning = ([1.5 * LN10, 1.2 * LN10], [2.4, 2.2], [0.12, 0.3])
    assert divergence(*learning, TEN) == (1, AT_CHANCE)  # as if it had started at ln 10
    assert divergence(*learning, TEN, start_loss=40.0) is None  # it fell from 40: it learns
    assert divergence([50.0], [60.0], [0.1], TEN, start_loss=40.0) == (1, AT_CHANCE)
    # a start below the level changes nothing; an unknown one (an older study) neither
    assert divergence(*learning, TEN, start_loss=1.0) == (1, AT_CHANCE)
    assert divergence(*learning, TEN, start_loss=math.nan) == (1, AT_CHANCE)


def test_a_loss_that_climbs_a_hundredfold_above_chance_exploded():
    assert divergence([0.02, 0.05, 3.0], [0.1, 0.2, 5.0], [0.9, 0.8, 0.6], TEN) == (3, EXPLODING)


def test_without_the_number_of_classes_only_a_broken_loss_counts():
    unknown = chance("categorical_crossentropy", "classification", None)
    assert divergence([50.0], [60.0], [0.1], unknown) is None
    assert divergence([math.nan], [math.nan], [0.1], unknown) == (1, NOT_FINITE)


def test_in_regression_chance_is_a_validation_loss_no_better_than_the_mean():
    level = chance("mean_squared_error", "regression", 1)
    assert divergence([3.0], [1.5], [40.0], level) == (1, AT_CHANCE)
    assert divergence([3.0], [0.5], [10.0], level) is None  # it predicts better than the mean


# ---- both engines, every family ----


@pytest.fixture(scope="module")
def images():
    """Noisy 8x8 images of three classes (helpers.bright_rows)."""
    return bright_rows(300, seed=0)


def batch_normed(config, n_outputs, *, seed, device):
    """A user's module whose batch normalization keeps a huge step's loss finite."""
    torch.manual_seed(seed)
    layers = [nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(16, n_outputs)).to(device)


CONV = {"layers": 0, "units": (), "conv_layers": 1, "filters": (8,), "pool": 2}
FAMILIES = {
    # sigmoid with mean squared error: a huge step saturates the softmax, the loss stays finite
    "dense": ("blobs", None, {"activation": "sigmoid", "loss": "mean_squared_error"}, 100.0),
    "conv": ("images", None, {**CONV, "batch_norm": True, "global_pool": True}, 100.0),
    "user": ("images", batch_normed, {}, 100.0),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_both_engines_end_a_run_that_meets_the_rule_as_diverged(family, request):
    source, network, changes, wild_rate = FAMILIES[family]
    data = request.getfixturevalue(source)
    base = {"optimizer": "sgd", "epochs": 2, **changes}
    calm = make_config(**base, learning_rate=0.1)
    wild = make_config(**base, learning_rate=wild_rate)
    alone = SequentialTrainer(data, network=network).train(wild, seed=0)
    assert alone.status == "diverged" and alone.diverged_epoch == 1
    assert all(math.isfinite(r.train_loss) for r in alone.history)  # finite, yet diverged
    stacked = PopulationTrainer(data, network=network).train([("wild", wild, 0), ("calm", calm, 1)])
    assert stacked["wild"].status == "diverged" and stacked["wild"].diverged_epoch == 1
    assert stacked["calm"].status == "complete"


def test_a_slow_run_on_inputs_far_from_standardized_is_measured_from_its_own_start(images):
    """Inputs 30 times standardized: a fresh network costs 3.5, far above three classes' 1.43.
    At a tiny rate the first epoch stays there, at chance, and then learns; a huge rate
    still diverges."""
    from dltune.data import from_arrays

    raw = from_arrays(images.x_train.reshape(-1, 1, 8, 8) * 30, images.y_train, seed=0, scale=False)
    base = {"layers": 1, "units": (16,), "optimizer": "sgd", "epochs": 3, "batch_size": 32}
    slow, wild = make_config(**base, learning_rate=1e-4), make_config(**base, learning_rate=100.0)
    alone = SequentialTrainer(raw).train(slow, seed=0)
    stacked = PopulationTrainer(raw).train([("slow", slow, 0), ("wild", wild, 1)])
    level = chance("categorical_crossentropy", "classification", 3)
    for run in (alone, stacked["slow"]):
        assert run.status == "complete" and run.epochs_run == 3
        first = run.history[0]
        assert first.train_loss > level.fresh and first.val_metric < 0.4  # the rule's level alone
        assert run.start_loss > 2 * level.fresh  # what it cost fresh, before its first step
        assert run.history[-1].train_loss < first.train_loss  # and it learns
    assert stacked["slow"].start_loss == pytest.approx(alone.start_loss, rel=1e-5)
    assert stacked["wild"].status == "diverged"


def test_a_cross_validated_trial_whose_fold_diverges_finitely_is_diverged(blobs):
    import dltune
    from dltune.storage import read_trials

    space = {
        "optimizer": "sgd",
        "activation": "sigmoid",
        "loss": "mean_squared_error",
        "learning_rate": [0.1, 100.0],
        "layers": 1,
        "units": 16,
        "dropout": 0.0,
        "batch_size": 64,
        "epochs": 2,
    }
    result = dltune.tune(
        space, data=blobs, storage=optuna.storages.InMemoryStorage(), trials=2, sampler="grid",
        schedule="none", cv=3, choose="max", ensemble=False, baseline=False, seed=0,
    )  # fmt: skip
    states = {t.config["learning_rate"]: t.state for t in read_trials(result.study)}
    assert states == {100.0: "diverged", 0.1: "complete"}


# ---- real studies: the summary and the report say it ----

SPACE = """\
optimizer: sgd
learning_rate: [0.1, 1.0, 100, 1000]
loss: categorical_crossentropy
activation: relu
layers: 0
units: 16
dropout: 0.0
batch_size: 128
epochs: 2
"""
CONV_SPACE = SPACE + "conv_layers: 1\nfilters: 8\nkernel_size: 3\npool: 2\nbatch_norm: true\n"
BUILD = """\
from torch import nn


def build(hp):
    width = hp.Choice("width", [16])
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, 10)
    )
"""
RUN = ("--sampler", "grid", "--trials", "4", "--schedule", "none", "--cv", "holdout")
QUICK = ("--choose", "max", "--ensemble", "off", "--no-baseline", "--seed", "0")


def _signals(path):
    """400 signals of length 32 in four classes (a sine of 1 to 4 periods, noisy), as .npz."""
    rng = np.random.default_rng(0)
    y = np.arange(400) % 4
    t = np.linspace(0, 1, 32)
    x = np.sin(2 * np.pi * (y[:, None] + 1) * t + rng.uniform(0, 6.3, (400, 1)))
    x = (x + rng.normal(0, 0.3, x.shape))[:, None, :].astype(np.float32)
    np.savez(path, x=x, y=y)
    return path


def _says_it_diverged(folder, ran, lacks=(), safe="1"):
    """The run's summary and the report both say every run from learning_rate 100 diverged;
    every trial stored the curves the diagnostics read, and no diagnostic proposes a value its
    key does not allow or names a knob the family lacks (`lacks`)."""
    assert ran.returncode == 0, ran.stdout + ran.stderr
    summary = ran.stdout.split("What the study shows")[1]
    assert "Every run with learning_rate ≥ 100 diverged (2 of 2)" in summary
    assert "Cap learning_rate below 100" in summary
    assert "(2 complete, 2 diverged)" in ran.stdout
    written = dltune("report", "-o", "r.html", cwd=folder)
    assert written.returncode == 0, written.stderr
    page = (folder / "r.html").read_text()
    assert "Every run with learning_rate ≥ 100 diverged" in page
    assert f"The highest learning rate that trained without diverging was {safe}." in page
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{folder / 'dltune.db'}")
    trials = load_trials(study)
    for t in trials.trials:
        assert len(t.curve) == len(t.train_loss) == len(t.val_loss) == t.epochs >= 1
    for d in diagnose(trials):
        assert all(value_rule(key).allows(value) for key, value in d.proposes.items())
        assert not [word for word in lacks if word in d.suggestion], d.suggestion


def test_a_digits_study_of_convolutions_says_from_which_learning_rate_trials_diverged(tmp_path):
    """The issue's study: batch normalization keeps the loss of a huge step finite, and such
    trials ended at chance listed as complete or pruned, the summary silent about it."""
    (tmp_path / "div.yaml").write_text(CONV_SPACE + "global_pool: true\n")
    ran = dltune("run", "div.yaml", *RUN, *QUICK, cwd=tmp_path)
    _says_it_diverged(tmp_path, ran, lacks=("dropout", "units"))  # blocks straight to the output


def test_its_twin_on_the_dense_network_says_it_as_before(tmp_path):
    # every block key fixed: a grid crosses them, and the dense network would repeat its points
    blocks = "conv_layers: 0\nfilters: 8\nkernel_size: 3\npool: 2\nbatch_norm: false\n"
    blocks += "global_pool: false\n"
    (tmp_path / "div.yaml").write_text(SPACE.replace("layers: 0", "layers: 1") + blocks)
    ran = dltune("run", "div.yaml", *RUN, *QUICK, cwd=tmp_path)
    _says_it_diverged(tmp_path, ran, lacks=("filters", "conv_layers"))


def test_its_twin_on_signals_says_it_too(tmp_path):
    (tmp_path / "div.yaml").write_text(CONV_SPACE + "global_pool: true\n")
    data = str(_signals(tmp_path / "waves.npz"))
    ran = dltune("run", "div.yaml", "--data", data, *RUN, *QUICK, cwd=tmp_path)
    assert "1x32" in ran.stdout  # a signal: one channel of 32 steps
    _says_it_diverged(tmp_path, ran, lacks=("dropout", "units"))


def test_its_twin_on_a_users_build_says_it_too(tmp_path):
    (tmp_path / "div.yaml").write_text(SPACE)
    (tmp_path / "net.py").write_text(BUILD)
    ran = dltune("run", "div.yaml", "--model", "net.py:build", *RUN, *QUICK, cwd=tmp_path)
    _says_it_diverged(tmp_path, ran, lacks=("dropout", "units", "filters", "layers"))
