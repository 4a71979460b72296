"""dltune.study.ensemble: greedy ensemble selection with replacement, against brute force."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from dltune.errors import DLTuneError, StudyError
from dltune.study.ensemble import Selection, mixture, score_of, select_ensemble


def probabilities(rng: np.random.Generator, n: int, classes: int) -> np.ndarray:
    return rng.dirichlet(np.ones(classes), size=n).astype(np.float32)


def classification_case(seed: int, candidates: int = 4, n: int = 12, classes: int = 3):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, classes, size=n)
    # trial numbers out of order: the order of the mapping is the rank, not the number
    trials = [11, 3, 7, 0, 5, 9][:candidates]
    return {t: probabilities(rng, n, classes) for t in trials}, truth


def regression_case(seed: int, candidates: int = 4, n: int = 15):
    rng = np.random.default_rng(seed)
    truth = rng.normal(50, 10, size=n)
    predictions = {
        t: (truth + rng.normal(rng.normal(0, 3), 4, size=n)).astype(np.float32)
        for t in range(candidates)
    }
    return predictions, truth


def brute_force_greedy(predictions, truth, metric, rounds):
    """Every multiset of up to `rounds` candidates scored from its plain average; the greedy path
    read off them: each step the one-larger multiset (ties: finer score, then the rank of the
    candidate added) that best extends the last."""
    trials = list(predictions)
    sign = -1 if metric == "accuracy" else 1
    scored = {}
    for size in range(1, rounds + 1):
        for multiset in itertools.combinations_with_replacement(range(len(trials)), size):
            average = np.mean([predictions[trials[i]].astype(np.float64) for i in multiset], 0)
            scored[multiset] = score_of(average, truth, metric)
    current: tuple[int, ...] = ()
    path, added = [], []
    for _ in range(rounds):

        def key(i, current=current):
            value, finer = scored[tuple(sorted((*current, i)))]
            return (sign * value, finer, i)

        best = min(range(len(trials)), key=key)
        current = tuple(sorted((*current, best)))
        path.append(scored[current][0])
        added.append(trials[best])
    return path, added, scored


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("task", ["classification", "rmse", "mae"])
def test_the_greedy_path_is_the_brute_force_one(seed, task):
    if task == "classification":
        predictions, truth = classification_case(seed)
        metric = "accuracy"
    else:
        predictions, truth = regression_case(seed)
        metric = task
    kind = "classification" if task == "classification" else "regression"
    selection = select_ensemble(predictions, truth, metric, task=kind, rounds=3)
    path, added, scored = brute_force_greedy(predictions, truth, metric, rounds=3)
    assert selection.path == pytest.approx(path, rel=1e-12, abs=1e-12)
    # the kept prefix: the round whose score is best, the earliest of equals
    sign = -1 if metric == "accuracy" else 1
    kept = min(range(3), key=lambda r: (sign * path[r], r)) + 1
    counts = {t: added[:kept].count(t) / kept for t in set(added[:kept])}
    assert selection.weights == pytest.approx(counts)
    assert selection.score == selection.path[kept - 1] and selection.rounds == kept
    assert sign * selection.score == min(sign * v for v in selection.path)
    # greedy is no search of every multiset: never better than the best of them
    assert sign * selection.score >= min(sign * v for v, _ in scored.values()) - 1e-12
    # the first round takes the best single candidate
    assert selection.best_single == added[0]
    assert selection.path[0] == selection.single[selection.best_single]
    # the weights: summing to 1, heaviest first; the mixture is what was scored
    assert math.isclose(sum(selection.weights.values()), 1.0)
    assert list(selection.weights.values()) == sorted(selection.weights.values(), reverse=True)
    value, _ = score_of(mixture(predictions, selection.weights), truth, metric)
    assert value == pytest.approx(selection.score, rel=1e-12)


def test_single_scores_are_each_candidates_own_metric():
    predictions, truth = classification_case(3, candidates=5, n=40)
    selection = select_ensemble(predictions, truth, "accuracy", task="classification")
    for trial, p in predictions.items():
        assert selection.single[trial] == np.mean(p.argmax(axis=1) == truth)
    assert list(selection.single) == list(predictions)
    assert len(selection.path) == 25


def complementary(n: int = 30):
    """Three models, each confidently wrong on its own third of the rows, right elsewhere."""
    truth = np.arange(n) % 3
    models = {}
    for trial, block in zip((4, 8, 2), range(3), strict=True):
        p = np.full((n, 3), 0.2, dtype=np.float32)
        wrong = (np.arange(n) // (n // 3)) == block
        label = np.where(wrong, (truth + 1) % 3, truth)
        p[np.arange(n), label] = 0.6
        models[trial] = p
    return models, truth


def test_complementary_models_together_beat_each_alone():
    models, truth = complementary()
    selection = select_ensemble(models, truth, "accuracy", task="classification")
    assert all(v == pytest.approx(2 / 3) for v in selection.single.values())
    assert selection.score == 1.0 and max(selection.single.values()) < selection.score
    assert selection.weights == pytest.approx({4: 1 / 3, 8: 1 / 3, 2: 1 / 3})
    assert list(selection.weights) == [4, 8, 2]  # equal weights: in the order given
    # their log losses differ only by the rounding of sums in another order: no tie to test
    assert selection.best_single in models


def test_a_dominant_model_takes_all_the_weight():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, size=50)
    perfect = np.full((50, 4), 0.1 / 3, dtype=np.float32)
    perfect[np.arange(50), truth] = 0.9
    predictions = {1: probabilities(rng, 50, 4), 6: perfect, 2: probabilities(rng, 50, 4)}
    selection = select_ensemble(predictions, truth, "accuracy", task="classification")
    assert selection.weights == {6: 1.0} and selection.best_single == 6
    assert selection.score == 1.0 and selection.rounds == 1


def test_regression_averages_opposite_biases():
    rng = np.random.default_rng(1)
    truth = rng.normal(100, 20, size=200)
    predictions = {
        0: truth + 5 + rng.normal(0, 1, 200),
        1: truth - 5 + rng.normal(0, 1, 200),
        2: truth + rng.normal(0, 8, 200),
    }
    for metric in ("rmse", "mae"):
        selection = select_ensemble(predictions, truth, metric, task="regression")
        assert selection.score < 0.5 * min(selection.single.values())
        assert selection.weights[0] == pytest.approx(selection.weights[1], abs=0.15)
        assert selection.score == min(selection.path)


def test_candidates_limits_the_choice_to_the_first_given():
    predictions, truth = classification_case(2, candidates=6, n=30)
    selection = select_ensemble(predictions, truth, "accuracy", task="classification", candidates=2)
    assert set(selection.single) == {11, 3} and set(selection.weights) <= {11, 3}


def test_the_selection_is_deterministic_and_round_trips_through_json():
    predictions, truth = classification_case(4, candidates=5, n=60)
    one = select_ensemble(predictions, truth, "accuracy", task="classification", rounds=10)
    again = select_ensemble(dict(predictions), truth.copy(), "accuracy", task="classification")
    assert (
        one.weights
        == select_ensemble(predictions, truth, "accuracy", task="classification", rounds=10).weights
    )
    assert again.path[:10] == one.path
    text = json.dumps(one.to_json(), allow_nan=False)
    back = Selection.from_json(json.loads(text))
    assert back == one and list(back.weights) == list(one.weights)
    with pytest.raises(StudyError, match="cannot be read"):
        Selection.from_json({"weights": []})


def test_invalid_inputs_are_named():
    predictions, truth = classification_case(0)
    values, target = regression_case(0)
    bad = {**predictions, 3: predictions[3][:, :2]}
    cases = [
        ({}, truth, "accuracy", "classification", "predictions is empty"),
        (bad, truth, "accuracy", "classification", r"predictions\[3\] has shape \(12, 2\)"),
        (predictions, truth[:5], "accuracy", "classification", r"has shape \(12, 3\)"),
        (predictions, truth + 3, "accuracy", "classification", "class indices 0..2"),
        (predictions, truth, "f1", "classification", "metric='f1' is not known"),
        (predictions, truth, "rmse", "classification", "is a regression metric"),
        ({0: values[0][:, None]}, target, "rmse", "regression", r"expected \(15,\)"),
        ({0: values[0], 1: values[1] * np.nan}, target, "rmse", "regression", "not finite"),
        ({0: values[0]}, target.reshape(3, 5), "rmse", "regression", "one value per row"),
    ]
    for given, y, metric, task, message in cases:
        with pytest.raises(DLTuneError, match=message):
            select_ensemble(given, y, metric, task=task)
    with pytest.raises(StudyError, match="rounds=0 must be"):
        select_ensemble(predictions, truth, "accuracy", task="classification", rounds=0)
    with pytest.raises(StudyError, match="without predictions"):
        mixture(predictions, {99: 1.0})


def test_exact_ties_go_to_the_candidate_given_first():
    predictions, truth = classification_case(5, candidates=2, n=20)
    copies = {9: predictions[11], 1: predictions[11].copy()}
    selection = select_ensemble(copies, truth, "accuracy", task="classification")
    assert selection.weights == {9: 1.0} and selection.best_single == 9
    values, target = regression_case(5, candidates=1)
    twins = {3: values[0], 0: values[0].copy()}
    assert select_ensemble(twins, target, "mae", task="regression").weights == {3: 1.0}
