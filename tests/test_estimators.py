"""dltune.DLTuneClassifier / DLTuneRegressor: scikit-learn's own checks, and a real fit."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from dltune import DLTuneClassifier, DLTuneRegressor
from dltune.export.estimators import expected_failed_checks

# A budget that keeps scikit-learn's ~40 fits per estimator quick: one small configuration.
TINY = {
    "layers": 1,
    "units": 16,
    "activation": "relu",
    "optimizer": "adam",
    "learning_rate": 0.01,
    "batch_size": 16,
    "epochs": 3,
}


# About 50 s on 2 cores: every check fits anew, and each fit opens a SQLite study.
@pytest.mark.slow
@parametrize_with_checks(
    [DLTuneClassifier(space=TINY, trials=1), DLTuneRegressor(space=TINY, trials=1)],
    expected_failed_checks=expected_failed_checks,
)
def test_scikit_learn_checks(estimator, check):
    check(estimator)


def test_a_classifier_tunes_refits_and_scores(blobs):
    x = np.concatenate([blobs.x_train, blobs.x_val])
    y = np.array(["a", "b", "c"])[np.concatenate([blobs.y_train, blobs.y_val])]
    space = {**TINY, "learning_rate": {"low": 1e-3, "high": 3e-2, "log": True}}
    clf = DLTuneClassifier(space=space, trials=3).fit(x, y)
    assert list(clf.classes_) == ["a", "b", "c"] and clf.n_features_in_ == 8
    assert clf.score(blobs.x_test, np.array(["a", "b", "c"])[blobs.y_test]) > 0.9
    assert set(clf.best_params_) >= {"learning_rate", "units"}
    # 510 rows: cross-validated over all of X; the model is the study's ensemble of bags
    assert clf.validation_["kind"] == "kfold" and clf.model_.is_ensemble
    assert clf.model_card_["training"]["on"] == "folds"
    proba = clf.predict_proba(blobs.x_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert np.array_equal(clf.predict(blobs.x_test), clf.classes_[proba.argmax(axis=1)])


def test_holdout_without_an_ensemble_refits_one_network_on_all_of_x(blobs):
    x = np.concatenate([blobs.x_train, blobs.x_val])
    y = np.concatenate([blobs.y_train, blobs.y_val])
    clf = DLTuneClassifier(space=TINY, trials=2, cv="holdout", ensemble=False).fit(x, y)
    assert clf.validation_ == {"kind": "holdout"} and not clf.model_.is_ensemble
    assert clf.model_card_["training"]["on"] == "train+val"
    assert clf.model_card_["training"]["rows"] == len(x)
    assert clf.get_params()["cv"] == "holdout" and clf.get_params()["ensemble"] is False


def test_a_regressor_scores_r2_on_held_out_rows(linear_regression):
    data = linear_regression
    reg = DLTuneRegressor(space={**TINY, "epochs": 9}, trials=1).fit(data.x_train, data.y_train)
    assert reg.score(data.x_test, data.y_test) > 0.9


def test_a_kept_study_lives_in_the_given_storage(blobs, storage_url):
    import optuna

    DLTuneClassifier(space=TINY, trials=2, storage=storage_url, study_name="kept").fit(
        blobs.x_train, blobs.y_train
    )
    assert len(optuna.load_study(study_name="kept", storage=storage_url).trials) == 2


def test_too_few_samples_is_a_value_error():
    with pytest.raises(ValueError, match="n_samples = 5"):
        DLTuneRegressor(space=TINY, trials=1).fit(np.zeros((5, 2)), np.arange(5.0))
