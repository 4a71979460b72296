"""Cross-validated trials: the folds (stratified, seeded, disjoint, every example validated
once, one training size), fold members equal to their folds trained alone in every engine, a
trial as the mean of its folds (reported, ranked at rungs, paused, checkpointed, restored,
diverged), and a k-fold study's records (validation, folds, predictions, the ensemble)."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
import torch

from dltune.data import from_arrays, load_data
from dltune.data.folds import make_folds
from dltune.engine import SequentialEngine, SequentialTrainer
from dltune.engine.capture import snapshot_of
from dltune.engine.folds import FoldEngine, fold_seed
from dltune.engine.losses import metric_named
from dltune.engine.population import PopulationTrainer
from dltune.engine.snapshot import from_bytes, to_bytes
from dltune.errors import DLTuneError, StudyError
from dltune.storage import read_trials, schema
from dltune.study import tune
from dltune.study.validation import AUTO_KFOLD_BELOW, parse_cv

from .helpers import make_config

SPACE = {
    "layers": {"low": 1, "high": 2},
    "units": [16, 32],
    "activation": ["relu", "tanh"],
    "optimizer": ["adam"],
    "learning_rate": {"low": 1e-3, "high": 1e-2, "log": True},
    "batch_size": [64],
    "epochs": 3,
}


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


@pytest.fixture(scope="module")
def folded(digits):
    return digits.with_folds(5, 0)


# ---- the folds -------------------------------------------------------------------------------


def test_folds_are_disjoint_stratified_seeded_and_validate_every_example_once(digits, folded):
    folds = folded.folds
    pool_y = np.concatenate([digits.y_train, digits.y_val])
    assert folds.n_pool == len(pool_y)
    counted = np.zeros(folds.n_pool, dtype=int)
    for f in range(folds.k):
        val = folds.val_rows(f)
        counted[val] += 1
        train = folds.train_rows[f]
        assert not set(train) & set(val)  # a member never trains on what validates it
        assert len(set(train)) == len(train) == folds.n_train  # one shape: they stack
        # stratified: each class's share in the fold is its share in the pool, to one example
        for label in np.unique(pool_y):
            expected = np.mean(pool_y == label) * len(val)
            assert abs(np.sum(pool_y[val] == label) - expected) <= 1.0
    assert (counted == 1).all()  # every example validated exactly once
    assert max(folds.sizes) - min(folds.sizes) <= 1
    again = make_folds(folds.n_pool, 5, 0, pool_y)
    assert (again.assignment == folds.assignment).all()
    assert (again.train_rows == folds.train_rows).all()
    other = make_folds(folds.n_pool, 5, 1, pool_y)
    assert (other.assignment != folds.assignment).any()


def test_a_class_too_rare_to_stratify_falls_back_to_plain_folds_and_says_so():
    labels = np.array([0] * 30 + [1] * 2)
    folds = make_folds(32, 4, 0, labels)
    assert "not stratified" in folds.how
    assert sorted(np.bincount(folds.assignment)) == [8, 8, 8, 8]
    with pytest.raises(ValueError, match="at least 10 examples"):
        make_folds(9, 5, 0)


def test_a_fold_as_a_dataset_holds_its_members_rows(folded):
    x, y = folded.pool()
    for f in (0, 3):
        alone = folded.fold(f)
        assert (alone.x_train == x[folded.folds.train_rows[f]]).all()
        assert (alone.y_val == y[folded.folds.val_rows(f)]).all()
        assert (alone.x_test == folded.x_test).all() and alone.folds is None


# ---- fold members are their folds trained alone ------------------------------------------


def _alone(folded, config, seed, fold):
    trainer = SequentialTrainer(folded.fold(fold), shuffle_seed=3)
    return trainer.train(config, seed=seed, keep_best_state=True)


@pytest.mark.parametrize(
    "changes",
    [
        {"layers": 1, "units": (32,), "dropout": 0.2},
        {"layers": 0, "units": ()},  # the linear model
        {"conv_layers": 1, "filters": (4,), "pool": 2, "batch_norm": True, "dropout": 0.1},
    ],
    ids=["dense", "linear", "conv"],
)
def test_each_stacked_fold_member_equals_its_fold_trained_alone(folded, changes):
    config = make_config(epochs=2, batch_size=64, **changes)
    population = PopulationTrainer(folded, shuffle_seed=3)
    for f in range(folded.folds.k):
        population.add((7, f), config, seed=10 + f, keep_best_state=True, fold=f)
    stacked = {}
    while len(population):
        stacked.update(population.run_epoch())
    assert len(population.buckets) + len(population.modules.buckets) == 0  # all left together
    for f in range(folded.folds.k):
        alone = _alone(folded, config, 10 + f, f)
        mine = stacked[(7, f)]
        np.testing.assert_allclose(
            [r.train_loss for r in mine.history], [r.train_loss for r in alone.history], rtol=2e-6
        )
        assert [r.val_metric for r in mine.history] == [r.val_metric for r in alone.history]
        # a fold member keeps its latest epoch's weights and outputs (its trial chooses which
        # it delivers): those of the same fold trained alone
        trainer = SequentialTrainer(folded, shuffle_seed=3)
        same = trainer.train(config, seed=10 + f, keep_best_state=True, fold=f)
        np.testing.assert_allclose(mine.last_outputs, same.last_outputs, atol=5e-5)
        assert mine.last_outputs.shape[0] == len(folded.folds.val_rows(f))
        for name, value in same.last_state.items():
            torch.testing.assert_close(mine.last_state[name], value, atol=5e-5, rtol=1e-4)


def test_members_of_folded_data_need_their_fold(folded, digits):
    with pytest.raises(ValueError, match="give each member its fold"):
        PopulationTrainer(folded).add(0, make_config(), seed=0)
    with pytest.raises(ValueError, match="no folds"):
        SequentialTrainer(digits).start(make_config(), seed=0, fold=1)


# ---- a trial is the mean of its folds ------------------------------------------------------


def _run(engine, until=None, pause_at=None):
    """Train one trial to its end: the reports, the checkpoints, the result."""
    reports, checkpoints, done = [], [], []
    while len(engine) or not done:
        finished, reached = engine.advance(lambda k, r: reports.append(r) or True)
        done += finished
        for point in reached:
            checkpoints.append(point)
            paused = engine.pause(point.key)
            restored = engine.restore(from_bytes(to_bytes(snapshot_of(paused))), point.key)
            engine.resume(restored, None)
    return reports, checkpoints, done[0][1]


@pytest.mark.parametrize("inner", ["population", "sequential"])
def test_a_trial_reports_its_folds_mean_and_survives_a_checkpoint_at_its_rung(folded, inner):
    config = make_config(epochs=3, batch_size=64, dropout=0.2)
    engines = {
        "population": lambda: PopulationTrainer(folded, shuffle_seed=3),
        "sequential": lambda: SequentialEngine(SequentialTrainer(folded, shuffle_seed=3)),
    }
    engine = FoldEngine(engines[inner](), folded.folds.k, metric_named("accuracy"))
    engine.add(4, config, seed=21, keep_best_state=True, until=1)
    reports, checkpoints, result = _run(engine)
    alone = [_alone(folded, config, fold_seed(21, f), f) for f in range(folded.folds.k)]
    for epoch, report in enumerate(reports):
        values = [a.history[epoch].val_metric for a in alone]
        assert report.val_metric == pytest.approx(np.mean(values), abs=1e-7)
    (point,) = checkpoints
    assert point.epochs == 1 and point.value == pytest.approx(reports[0].val_metric)
    assert result.status == "complete" and len(result.folds) == folded.folds.k
    best = int(np.argmax([r.val_metric for r in reports])) + 1
    assert result.best_epoch == best and result.best_value == reports[best - 1].val_metric
    # the checkpoint changed nothing: each fold's curve is its own run, unbroken; and each
    # fold delivers its model at the trial's best epoch (where the mean was best), whatever
    # its own best: the fold trained that many epochs alone
    trainer = SequentialTrainer(folded, shuffle_seed=3)
    for f, fold in enumerate(result.folds):
        assert [r.val_metric for r in fold.history] == [r.val_metric for r in alone[f].history]
        there = trainer.train(
            config, seed=fold_seed(21, f), epochs=best, keep_best_state=True, fold=f
        )
        np.testing.assert_allclose(fold.best_outputs, there.last_outputs, atol=5e-5)


def test_a_fold_that_diverges_makes_its_trial_diverged(folded):
    config = make_config(epochs=3, optimizer="sgd", learning_rate=1e4, batch_size=64)
    engine = FoldEngine(PopulationTrainer(folded), folded.folds.k, metric_named("accuracy"))
    engine.add(0, config, seed=1, keep_best_state=True)
    _reports, _points, result = _run(engine)
    assert result.status == "diverged" and result.diverged_epoch is not None
    assert len(engine) == 0


def test_patience_watches_the_mean_of_the_folds(folded):
    config = make_config(epochs=12, learning_rate=0.5, optimizer="sgd", batch_size=64)
    engine = FoldEngine(PopulationTrainer(folded), folded.folds.k, metric_named("accuracy"))
    engine.add(0, config, seed=1, patience=1, keep_best_state=True)
    reports, _points, result = _run(engine)
    if result.stopped_early:
        values = [r.val_metric for r in reports]
        assert values[-1] <= max(values[:-1])  # the mean did not improve for one epoch
        assert len(reports) < 12
    assert all(len(f.history) == len(reports) for f in result.folds)


# ---- a k-fold study ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kfold_study(tmp_path_factory):
    db = tmp_path_factory.mktemp("kfold") / "study.db"
    return tune(SPACE, data="digits", storage=f"sqlite:///{db}", trials=8, seed=0, workers=1,
                cv=3)  # fmt: skip


def test_a_kfold_study_stores_its_validation_folds_predictions_and_ensemble(kfold_study):
    study, best = kfold_study.study, kfold_study.best
    assert schema.read_validation(study)["kind"] == "kfold"
    assert best["validation"]["k"] == 3 and best["folds"]["spread"] is not None
    complete = [r for r in read_trials(study) if r.state == "complete"]
    assert complete
    pool = len(kfold_study.data.y_train) + len(kfold_study.data.y_val)
    for record in complete:
        folds = record.folds
        assert len(folds["values"]) == 3 and len(folds["seeds"]) == 3
        # the trial's value is the mean of its folds at its best epoch
        assert record.value == pytest.approx(np.mean(folds["values"]), abs=1e-6)
        predictions = schema.read_predictions(study.trials[record.number])
        assert predictions.shape == (pool, 10)
        np.testing.assert_allclose(predictions.sum(axis=1), 1.0, atol=5e-3)
    # the rung records rank trials by the mean over their folds
    for record in complete:
        rungs = schema.read_rungs(study.trials[record.number])
        for epochs, value in (rungs or {}).get("values", {}).items():
            at = int(float(epochs))
            if float(epochs) == at and value is not None:
                curves = record.folds["curves"]
                assert value == pytest.approx(np.mean([c[at - 1] for c in curves]), abs=1e-6)
    assert best["delivered_test"] is not None and 0.5 < best["delivered_test"] <= 1.0
    ensemble = best["ensemble"]
    if ensemble is not None:  # two or more stored candidates
        assert math.isclose(sum(m["weight"] for m in ensemble["members"]), 1.0)
        assert ensemble["score"] >= ensemble["best_single"]["score"] - 1e-12


def test_a_continued_study_keeps_its_folds_and_refuses_another_validation(kfold_study):
    storage, name = kfold_study.storage.url, kfold_study.study.study_name
    again = tune(SPACE, data="digits", storage=storage, study_name=name, trials=1, workers=1)
    assert any("3-fold" in note for note in again.notes)
    with pytest.raises(StudyError, match="validated by 3 folds"):
        tune(SPACE, data="digits", storage=storage, study_name=name, trials=1, cv="holdout")


def test_auto_cross_validates_small_data_and_keeps_holdout_on_large(tmp_path):
    rng = np.random.default_rng(0)
    n = int(AUTO_KFOLD_BELOW / 0.85) + 200  # outside the test split: just over the threshold
    x = rng.normal(size=(n, 4)).astype(np.float32)
    large = from_arrays(x, (x[:, 0] > 0).astype(int), name="large", seed=0)
    small = from_arrays(x[:300], (x[:300, 0] > 0).astype(int), name="small", seed=0)
    options = dict(storage=f"sqlite:///{tmp_path / 's.db'}", trials=1, workers=1, seed=0)
    tiny = {**SPACE, "epochs": 1, "layers": 1}
    assert schema.read_validation(tune(tiny, data=small, **options).study)["kind"] == "kfold"
    assert schema.read_validation(tune(tiny, data=large, **options).study)["kind"] == "holdout"


@pytest.mark.parametrize("bad", ["3fold", "1", "99", True, "several"])
def test_a_bad_cv_is_a_clear_error(bad):
    with pytest.raises(DLTuneError, match="cv"):
        parse_cv(bad)
    assert parse_cv("kfold") == 5 and parse_cv(" Holdout ") == "holdout" and parse_cv(4) == 4


def test_the_fold_members_of_a_trial_draw_their_own_seeds():
    seeds = [fold_seed(12345, f) for f in range(5)]
    assert seeds[0] == 12345 and len(set(seeds)) == 5
    assert torch.Generator().manual_seed(seeds[1]).initial_seed() == seeds[1]


def test_optuna_sees_one_trial_per_configuration(kfold_study):
    trials = kfold_study.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len({t.number for t in trials}) == len(trials)


class StopAfter:
    """Ctrl-C once `epochs` trial epochs (fold means) have been reported."""

    def __init__(self, epochs: int) -> None:
        from dltune.study.progress import ProgressListener

        self.listener = type(
            "Stop", (ProgressListener,), {"epoch_done": lambda _self, n, r: self._tick()}
        )()
        self.left = epochs

    def _tick(self) -> None:
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt


def test_an_interrupted_kfold_study_resumes_each_trial_from_its_folds_checkpoint(tmp_path):
    """Ctrl-C mid-study: the interrupted trials' K members are checkpointed together; the
    next run resumes each from there, and every finished trial's folds are their folds trained
    alone, unbroken."""
    space = {**SPACE, "epochs": 4, "min_epochs": 1}
    options = dict(data="digits", storage=f"sqlite:///{tmp_path / 'k.db'}", seed=0, workers=1,
                   checkpoint_every=0, cv=3)  # fmt: skip
    first = tune(space, trials=12, progress=StopAfter(9).listener, **options)
    assert first.interrupted
    left = [t for t in first.study.get_trials() if t.state == optuna.trial.TrialState.FAIL]
    saved = {t.number for t in left if schema.read_checkpoint(t)}
    assert saved
    again = tune(space, trials=2, **options)
    assert any("resuming" in note for note in again.notes), again.notes
    study = again.study
    continued = {schema.read_resumes(t) for t in study.get_trials()} - {None}
    assert saved <= continued
    folded = load_data("digits").with_folds(3, schema.read_validation(study)["seed"])
    meta = schema.read_study_meta(study)
    from dltune.config import Config

    checked = 0
    for record in read_trials(study):
        if record.state not in ("complete", "pruned") or not record.folds:
            continue
        config = Config.from_dict(record.config)
        for f, seed in enumerate(record.folds["seeds"]):
            curve = record.folds["curves"][f]
            trainer = SequentialTrainer(
                folded.fold(f), metric=meta["metric"], shuffle_seed=meta["shuffle_seed"]
            )
            alone = trainer.train(config, seed=seed, epochs=len(curve))
            assert [r.val_metric for r in alone.history] == pytest.approx(curve, abs=1e-6)
        checked += 1
    assert checked >= 4
