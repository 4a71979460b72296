"""train-best delivers what the study chose: its ensemble, or its best trial (its bag of fold
models in k-fold), retrained from the seeds and tested once; the command line's --cv and
--ensemble; `dltune best` saying how the study validated, what it delivers and how optimistic
its validation was."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import dltune
from dltune.export import train_best
from dltune.storage import best_record, resolve_storage
from dltune.storage.records import delivered_optimism

from .helpers import dltune as run_cli

# One small dense family on noisy classes: the trials differ, and the ensemble has members.
SPACE = {
    "layers": 1,
    "units": [8, 16, 32],
    "activation": ["relu", "tanh"],
    "optimizer": "adam",
    "learning_rate": {"low": 1e-3, "high": 3e-2, "log": True},
    "batch_size": 32,
    "epochs": 3,
}
K = 3


def noisy_splits(seed: int = 3) -> dict[str, np.ndarray]:
    """Three overlapping classes in 6 features, as given splits (300 outside the test)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1.5, size=(3, 6))
    out: dict[str, np.ndarray] = {}
    for split, n in (("", 240), ("_val", 60), ("_test", 90)):
        k = rng.integers(0, 3, size=n)
        out[f"x{split}"] = (centers[k] + rng.normal(size=(n, 6)) * 1.5).astype(np.float32)
        out[f"y{split}"] = np.array(["ant", "bee", "cat"])[k]
    return out


def _plain(output: str) -> str:
    """A command's output as one line of words: table borders and wrapping gone."""
    return " ".join(output.replace("│", " ").split())


def _study(root, cv):
    np.savez(root / "noisy.npz", **noisy_splits())
    storage = f"sqlite:///{root / 'studies.db'}"
    result = dltune.tune(
        SPACE, str(root / "noisy.npz"), storage=storage, trials=6, cv=cv, seed=0, schedule="none"
    )
    return {"root": root, "storage": storage, "result": result, "best": result.best}


@pytest.fixture(scope="module")
def kfold(tmp_path_factory):
    """A 3-fold study of 6 trials whose ensemble has several members."""
    study = _study(tmp_path_factory.mktemp("kfold"), K)
    assert study["best"]["validation"]["kind"] == "kfold"
    assert len(study["best"]["ensemble"]["members"]) >= 2
    return study


@pytest.fixture(scope="module")
def holdout(tmp_path_factory):
    """The same, validated on the validation split."""
    study = _study(tmp_path_factory.mktemp("holdout"), "holdout")
    assert study["best"]["validation"] == {"kind": "holdout"}
    assert len(study["best"]["ensemble"]["members"]) >= 2
    return study


# ---- what train-best delivers --------------------------------------------------------------


def test_a_kfold_study_delivers_its_ensemble_of_bags_and_repeats_its_test(kfold):
    best = kfold["best"]
    delivered = train_best(kfold["storage"])
    model, card = delivered.model, delivered.card
    members = best["ensemble"]["members"]
    assert model.is_ensemble and len(model.members) == K * len(members)
    for member in members:  # each configuration's K fold models, w/K each
        own = [m for m in model.members if m.trial == member["trial"]]
        assert sorted(m.fold for m in own) == list(range(K))
        assert all(m.weight == pytest.approx(member["weight"] / K) for m in own)
    # the very models the search measured: the study's test of its ensemble, again
    assert abs(delivered.test - best["delivered_test"]) < 1e-6
    assert card["study"]["study_test"] == best["delivered_test"]
    # the card: how it was validated, the ensemble's out-of-fold score beside the best single's
    entry = card["ensemble"]
    assert entry["validation"] == "kfold" and entry["folds"] == K
    assert entry["score"] == best["ensemble"]["score"]
    assert entry["best_single"]["trial"] == best["ensemble"]["best_single"]["trial"]
    assert [m["trial"] for m in entry["members"]] == [m["trial"] for m in members]
    assert all(isinstance(m["config"], str) and m["value"] is not None for m in entry["members"])
    assert card["training"]["on"] == "folds" and card["training"]["networks"] == len(model.members)
    assert card["study"]["validation"]["k"] == K


def test_the_fold_models_are_the_searchs_own_weights(kfold):
    """Retrained from each fold's seed for its own best epoch: the weights the search kept."""
    kept = kfold["result"].kept
    model = train_best(kfold["storage"]).model
    compared = 0
    for member, network in zip(model.members, model.network.members, strict=True):
        if member.trial not in kept:
            continue
        expected = kept[member.trial][member.fold]
        for name, tensor in network.state_dict().items():
            np.testing.assert_allclose(tensor.numpy(), expected[name].numpy(), atol=1e-5)
        compared += 1
    assert compared >= K


def test_ensemble_off_in_kfold_delivers_the_best_trials_bag(kfold):
    best = kfold["best"]
    bag = train_best(kfold["storage"], ensemble=False)
    assert bag.model.is_ensemble and "ensemble" not in bag.card
    assert {m.trial for m in bag.model.members} == {best["trial"]}
    assert [m.fold for m in bag.model.members] == list(range(K))
    assert all(m.weight == pytest.approx(1 / K) for m in bag.model.members)
    assert abs(bag.test - best["test"]) < 1e-6  # the study's test of the bag
    assert (
        bag.card["training"]["seed"]
        == kfold["result"].study.trials[best["trial"]].user_attrs["folds"]["seeds"]
    )


def test_train_val_given_in_kfold_trains_once_on_the_pool(kfold):
    pooled = train_best(kfold["storage"], on="train+val", ensemble=False)
    assert not pooled.model.is_ensemble
    training = pooled.card["training"]
    assert training["on"] == "train+val" and training["rows"] == 300
    assert "the mean of its folds' best epochs" in training["epoch_rule"]
    ensemble = train_best(kfold["storage"], on="train+val")  # one network per configuration
    assert len(ensemble.model.members) == len(kfold["best"]["ensemble"]["members"])
    assert {m.fold for m in ensemble.model.members} == {None}


def test_a_holdout_study_delivers_its_ensemble_one_network_per_configuration(holdout):
    best = holdout["best"]
    members = best["ensemble"]["members"]
    default = train_best(holdout["storage"])
    assert default.model.is_ensemble and len(default.model.members) == len(members)
    assert default.card["training"]["on"] == "train+val"
    assert default.card["ensemble"]["validation"] == "holdout"
    assert default.card["ensemble"]["folds"] is None
    # on the training split alone: the members' own weights, the study's test again
    again = train_best(holdout["storage"], on="train")
    assert abs(again.test - best["delivered_test"]) < 1e-6
    single = train_best(holdout["storage"], ensemble=False)
    assert not single.model.is_ensemble and "ensemble" not in single.card
    assert single.card["study"]["trial"] == best["trial"]


def test_the_delivered_ensemble_saves_loads_and_predicts_through_the_command_line(kfold, tmp_path):
    out = tmp_path / "model"
    ran = run_cli("train-best", "--storage", kfold["storage"], "-o", str(out), cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "Retraining the study's ensemble" in ran.stdout and "fold models" in ran.stdout
    card = json.loads((out / "model_card.json").read_text())
    assert "## Ensemble" in (out / "model_card.md").read_text()
    arrays = noisy_splits()
    np.savez(tmp_path / "test.npz", x=arrays["x_test"], y=arrays["y_test"])
    predicted = run_cli("predict", str(out), str(tmp_path / "test.npz"), cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert f"accuracy on these rows (the data hold the target): {card['test']['value']:.6g}" in (
        predicted.stdout
    )
    loaded = dltune.load(out)
    assert loaded.is_ensemble and len(loaded.members) == card["training"]["networks"]


@pytest.mark.parametrize(("which", "networks"), [("kfold", K), ("holdout", 1)])
def test_ensemble_off_on_the_command_line(which, networks, kfold, holdout, tmp_path):
    study = {"kfold": kfold, "holdout": holdout}[which]
    out = tmp_path / "model"
    args = ["train-best", "--storage", study["storage"], "--ensemble", "off", "-o", str(out)]
    ran = run_cli(*args, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    model = dltune.load(out)
    assert len(model.members) == networks and model.is_ensemble == (networks > 1)
    assert {m.trial for m in model.members} <= {study["best"]["trial"], None}
    bad = run_cli(*args[:-3], "--ensemble", "maybe", "-o", str(out), cwd=tmp_path)
    assert bad.returncode == 2 and "neither on nor off" in bad.stderr


def test_a_kfold_regression_delivers_what_the_study_tested(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {}
    for split, n in (("", 200), ("_val", 50), ("_test", 50)):
        x = rng.normal(size=(n, 4)).astype(np.float32)
        y = x @ np.array([3.0, -2.0, 1.0, 0.5]) * 10 + 100 + rng.normal(0, 1, n)
        arrays[f"x{split}"], arrays[f"y{split}"] = x, y.astype(np.float32)
    np.savez(tmp_path / "values.npz", **arrays)
    space = {**SPACE, "loss": "mean_squared_error", "activation": "relu"}
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    result = dltune.tune(
        space, str(tmp_path / "values.npz"), storage=storage, trials=4, cv=K, seed=0,
        schedule="none",
    )  # fmt: skip
    best = result.best
    delivered = train_best(storage)
    assert delivered.card["test"]["metric"] == "rmse"
    # float32 averages of values against the study's float64: equal to float rounding
    assert delivered.test == pytest.approx(best["delivered_test"], rel=1e-5)
    assert len(delivered.model.members) == K * len(
        (best["ensemble"] or {"members": [best]})["members"]
    )


# ---- dltune best: the validation, the ensemble, the optimism -------------------------------


def test_best_says_how_the_study_validated_and_what_it_delivers(kfold, holdout, tmp_path):
    shown = run_cli("best", "--storage", kfold["storage"], cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    text = _plain(shown.stdout)  # the table may wrap
    assert "3-fold cross-validation over 300 examples: fold values" in text and "spread" in text
    assert "its ensemble (" in text and "fold models" in text
    assert "out-of-fold accuracy" in text and "for the best single" in text
    assert "optimism" in text
    record = json.loads(
        run_cli("best", "--json", "--storage", kfold["storage"], cwd=tmp_path).stdout
    )
    ensemble = record["ensemble"]
    assert record["optimism"] == pytest.approx(ensemble["score"] - ensemble["test"])
    held = _plain(run_cli("best", "--storage", holdout["storage"], cwd=tmp_path).stdout)
    assert "holdout: 60 validation examples" in held and "validation accuracy" in held


def test_the_optimism_is_positive_when_the_validation_promised_more():
    record = {"direction": "maximize", "value": 0.9, "test": 0.85, "ensemble": None}
    assert delivered_optimism(record) == pytest.approx(0.05)
    minimized = {"direction": "minimize", "value": 2.0, "test": 2.5, "ensemble": None}
    assert delivered_optimism(minimized) == pytest.approx(0.5)
    with_ensemble = {**record, "ensemble": {"score": 0.95, "test": 0.9}}
    assert delivered_optimism(with_ensemble) == pytest.approx(0.05)
    assert delivered_optimism({**record, "test": None}) is None


# ---- dltune run --cv --ensemble ------------------------------------------------------------


def test_run_passes_cv_and_ensemble_to_tune(monkeypatch, tmp_path):
    import dltune.study

    seen = {}

    def fake_tune(space, **options):
        seen.update(options)
        raise dltune.DLTuneError("stopped here")

    monkeypatch.setattr(dltune.study, "tune", fake_tune)
    ran = run_cli("run", "--cv", "4", "--ensemble", "off", "--trials", "1", cwd=tmp_path)
    assert ran.returncode == 2 and "stopped here" in ran.stderr
    assert seen["cv"] == "4" and seen["ensemble"] is False
    run_cli("run", "--trials", "1", cwd=tmp_path)
    assert seen["cv"] == "auto" and seen["ensemble"] is True


@pytest.mark.parametrize("value", ["1", "lots", "21"])
def test_a_bad_cv_is_refused_naming_the_flag(value, tmp_path):
    ran = run_cli("run", "--cv", value, "--trials", "1", cwd=tmp_path)
    assert ran.returncode == 2 and "Traceback" not in ran.stderr
    assert ran.stderr.startswith(f"error: --cv '{value}' is not a validation")
    assert "holdout" in ran.stderr and "kfold" in ran.stderr
    assert not (tmp_path / "dltune.db").exists()  # refused before anything was opened


def test_a_holdout_run_without_ensemble_says_so(tmp_path):
    np.savez(tmp_path / "noisy.npz", **noisy_splits())
    args = ["run", "--data", "noisy.npz", "--cv", "holdout", "--ensemble", "off"]
    ran = run_cli(*args, "--trials", "2", "--schedule", "none", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    text = _plain(ran.stdout)
    assert "holdout: 60 validation examples" in text and "delivers trial #" in text
    record = best_record(resolve_storage(f"sqlite:///{tmp_path / 'dltune.db'}").load_study(None))
    assert record is not None and record["ensemble"] is None
    assert record["validation"] == {"kind": "holdout"} and not math.isnan(record["value"])
