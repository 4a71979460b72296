"""An ensemble as one model: it predicts the weighted mixture of its members, saves and loads
exactly, pickles, exports to ONNX, TorchScript and Keras as one graph, and its card says so."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle

import numpy as np
import pytest
import torch

import dltune
from dltune.config import Config
from dltune.errors import ModelError
from dltune.export import EnsembleMember, TunedModel, read_bundle, write_bundle
from dltune.export.bundle import FORMAT_VERSION
from dltune.export.card import card_markdown
from dltune.export.formats import export, reference
from dltune.export.preprocessing import Preprocessing
from dltune.nets.dense import DenseNet

os.environ.setdefault("KERAS_BACKEND", "torch")

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning"),
]

N_FEATURES = 5


def prep_for(task: str, loss: str = "categorical_crossentropy") -> Preprocessing:
    rng = np.random.default_rng(0)
    classes = ["no", "yes", "maybe"] if task == "classification" else None
    return Preprocessing(
        task=task,
        loss=loss,
        feature_names=[f"f{j}" for j in range(N_FEATURES)],
        x_mean=rng.normal(5, 2, N_FEATURES).astype(np.float32),
        x_std=rng.uniform(0.5, 3, N_FEATURES).astype(np.float32),
        classes=classes,
        target_mean=None if classes else 120.0,
        target_std=None if classes else 35.0,
        target=None,
        statistics="test",
    )


def configs(task: str) -> list[Config]:
    """Three members' configurations; the classifiers read their outputs by two losses."""
    losses = (
        ["categorical_crossentropy", "binary_crossentropy", "categorical_crossentropy"]
        if task == "classification"
        else ["mean_squared_error", "huber", "mean_absolute_error"]
    )
    return [
        Config(2, (12, 7), 0.2, "relu", losses[0], "adam", 1e-3, 0.0, 32, 3),
        Config(1, (9,), 0.0, "tanh", losses[1], "sgd", 1e-2, 0.0, 64, 3),
        Config(1, (6,), 0.1, "leaky_relu", losses[2], "adam", 3e-3, 0.0, 32, 3),
    ]


# (config index, seed, weight, trial, fold): trial 3 bagged over two folds (0.5 in all)
LAYOUT = [(0, 1, 0.25, 3, 0), (0, 2, 0.25, 3, 1), (1, 3, 0.3, 8, None), (2, 4, 0.2, 5, None)]


def members_for(task: str) -> list[EnsembleMember]:
    prep, chosen = prep_for(task), configs(task)
    return [
        EnsembleMember(
            chosen[c], DenseNet(chosen[c], N_FEATURES, prep.n_outputs, seed=s).state_dict(), w, t, f
        )
        for c, s, w, t, f in LAYOUT
    ]


def ensemble_for(task: str) -> TunedModel:
    return TunedModel.ensemble(members_for(task), prep_for(task))


def singles(task: str) -> list[tuple[float, TunedModel]]:
    """Each member as a model of its own, its outputs read by its own loss."""
    prep = prep_for(task)
    return [
        (m.weight, TunedModel(m.config, dataclasses.replace(prep, loss=m.config.loss), m.state))
        for m in members_for(task)
    ]


def rows(n: int = 41, seed: int = 1) -> np.ndarray:
    prep = prep_for("classification")
    z = np.random.default_rng(seed).normal(size=(n, N_FEATURES)).astype(np.float32)
    return (z * prep.x_std * 2 + prep.x_mean).astype(np.float32)


def close(got: np.ndarray, expected: np.ndarray) -> None:
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * scale)


# ---- the mixture ---------------------------------------------------------------------------


def test_a_classifier_ensemble_predicts_the_weighted_mixture_of_its_members():
    model, x = ensemble_for("classification"), rows()
    by_hand = sum(
        w * single.predict_proba(x).astype(np.float64) for w, single in singles("classification")
    )
    proba = model.predict_proba(x)
    assert proba.shape == (len(x), 3) and proba.dtype == np.float32
    close(proba, by_hand)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    labels = np.array(["no", "yes", "maybe"])[by_hand.argmax(axis=1)]
    assert np.array_equal(model.predict(x), labels)
    assert model.preprocessing.loss == "categorical_crossentropy"  # the head reads log-mixtures
    with torch.no_grad():  # the exported pipeline is predict_proba too
        close(model.module(torch.as_tensor(x)).numpy(), by_hand)


def test_a_regression_ensemble_predicts_the_weighted_mean_of_its_members():
    model, x = ensemble_for("regression"), rows()
    by_hand = sum(w * single.predict(x).astype(np.float64) for w, single in singles("regression"))
    values = model.predict(x)
    assert values.shape == (len(x),) and values.dtype == np.float32
    close(values, by_hand)
    with pytest.raises(dltune.errors.DataError, match="regression model"):
        model.predict_proba(x)


def test_an_ensemble_lists_its_members_and_takes_its_heaviest_trials_configuration():
    model = ensemble_for("classification")
    assert model.is_ensemble and len(model.members) == 4
    assert [(m.trial, m.fold, m.weight) for m in model.members] == [
        (t, f, w) for _, _, w, t, f in LAYOUT
    ]
    assert model.config == configs("classification")[0]  # trial 3: 0.25 + 0.25 > 0.3
    assert model.members[2].config == configs("classification")[1]
    assert "an ensemble of 4 networks of trials 3, 5, 8" in repr(model)
    assert all(k.startswith("members.") for k in model.state_dict())
    single = singles("classification")[0][1]
    assert not single.is_ensemble and single.members == [(None, None, 1.0, single.config)]


def test_a_one_member_ensemble_predicts_what_its_member_does():
    member = members_for("classification")[0]
    prep = prep_for("classification")
    model = TunedModel.ensemble([dataclasses.replace(member, weight=1.0)], prep)
    single = TunedModel(member.config, prep, member.state)
    close(model.predict_proba(rows()), single.predict_proba(rows()))


def test_members_that_do_not_fit_are_refused_clearly():
    members, prep = members_for("classification"), prep_for("classification")
    with pytest.raises(ModelError, match="members is empty"):
        TunedModel.ensemble([], prep)
    with pytest.raises(ModelError, match=r"sum to 0\.75.*divide each by their sum"):
        TunedModel.ensemble(members[1:], prep)
    with pytest.raises(ModelError, match=r"members\[0\]\.weight is 0\.0"):
        TunedModel.ensemble([dataclasses.replace(members[0], weight=0.0), *members[1:]], prep)
    wrong = dataclasses.replace(members[2], state=members[0].state)
    with pytest.raises(RuntimeError, match=r"member 2 \(trial 8\)"):
        TunedModel.ensemble([*members[:2], wrong, members[3]], prep)


# ---- the folder, pickle --------------------------------------------------------------------


def card_for(model: TunedModel, ensemble: dict | None = None) -> dict:
    card = {
        "created": "2026-01-01T00:00:00+00:00",
        "libraries": {"dltune": dltune.__version__, "torch": torch.__version__},
        "study": {
            "name": "s",
            "storage": "sqlite:///x.db",
            "trial": 3,
            "best_epoch": 2,
            "metric": "accuracy",
            "validation_value": 0.9,
        },
        "data": {
            "name": "blobs",
            "task": model.task,
            "description": "three blobs",
            "source": "blobs.npz",
            "split": "given",
            "fingerprint": "abc",
            "classes": model.classes,
        },
        "training": {
            "config": model.config.to_dict(),
            "on": "train+val",
            "rows": 300,
            "epochs": 3,
            "epoch_rule": "as studied",
            "seed": 0,
            "shuffle_seed": 0,
            "statistics": "training split",
            "final_train_loss": 0.25,
        },
        "test": {"metric": "accuracy", "value": 0.93, "rows": 60, "how": "once"},
    }
    if ensemble is not None:
        card["ensemble"] = ensemble
    return card


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_an_ensemble_folder_loads_back_exactly_without_pickle(task, tmp_path, monkeypatch):
    model, x = ensemble_for(task), rows()
    write_bundle(tmp_path / "model", model, card_for(model))
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["format_version"] == FORMAT_VERSION == 2
    assert config["config"] == model.config.to_dict()
    assert [(m["trial"], m["fold"], m["weight"]) for m in config["ensemble"]["members"]] == [
        (t, f, w) for _, _, w, t, f in LAYOUT
    ]
    assert [m["config"] for m in config["ensemble"]["members"]] == [
        m.config.to_dict() for m in model.members
    ]

    def forbidden(*args, **kwargs):
        raise AssertionError("a model folder must load without pickle")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    loaded = dltune.load(tmp_path / "model")
    monkeypatch.undo()
    assert loaded.is_ensemble and loaded.members == model.members
    assert np.array_equal(loaded.predict(x), model.predict(x))
    if task == "classification":
        assert np.array_equal(loaded.predict_proba(x), model.predict_proba(x))
    again = pickle.loads(pickle.dumps(loaded))
    assert again.is_ensemble and again.members == model.members
    assert np.array_equal(again.predict(x), model.predict(x))


def test_a_single_model_is_still_written_and_read_as_version_1(tmp_path):
    _, single = singles("classification")[0]
    write_bundle(tmp_path / "model", single, card_for(single))
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["format_version"] == 1 and "ensemble" not in config
    loaded = read_bundle(tmp_path / "model")
    assert not loaded.is_ensemble
    assert np.array_equal(loaded.predict_proba(rows()), single.predict_proba(rows()))
    assert "## Ensemble" not in (tmp_path / "model" / "model_card.md").read_text()
    config["format_version"] = 3
    (tmp_path / "model" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="format_version 3 is newer"):
        read_bundle(tmp_path / "model")


def test_a_broken_ensemble_folder_is_named(tmp_path):
    from safetensors.torch import load_file, save_file

    model = ensemble_for("classification")
    folder = tmp_path / "model"
    write_bundle(folder, model, card_for(model))
    config = json.loads((folder / "config.json").read_text())
    fewer = {**config, "ensemble": {"members": config["ensemble"]["members"][:3]}}
    (folder / "config.json").write_text(json.dumps(fewer))
    with pytest.raises(ModelError, match=r"'members\.3\.[a-z0-9.]+' belongs to none of the 3"):
        read_bundle(folder)
    heavier = [{**m, "weight": 0.5} for m in config["ensemble"]["members"]]
    (folder / "config.json").write_text(json.dumps({**config, "ensemble": {"members": heavier}}))
    with pytest.raises(ModelError, match=r"config\.json: 'ensemble': the weights of members"):
        read_bundle(folder)
    (folder / "config.json").write_text(json.dumps(config))
    state = load_file(str(folder / "model.safetensors"))
    state["members.1.output.weight"] = state["members.1.output.weight"][:2]
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(ModelError, match=r"weights do not fit.*member 1 \(trial 3, fold 1\)"):
        read_bundle(folder)


USER_BUILD = """\
from torch import nn


def build(hp):
    width = hp.Int("width", 4, 16, step=4, default=8)
    return nn.Sequential(nn.Linear(5, width), nn.ReLU(), nn.Linear(width, 3))
"""


def test_an_ensemble_of_a_users_build_saves_its_source_and_loads_back(tmp_path):
    from dltune.usermodel import UserNetworks, resolve_model

    from .helpers import make_config

    (tmp_path / "user_build.py").write_text(USER_BUILD)
    source = resolve_model(f"{tmp_path / 'user_build.py'}:build")
    networks = UserNetworks(source.build, (N_FEATURES,))
    prep = prep_for("classification")
    members = [
        EnsembleMember(config, networks(config, 3, seed=s, device="cpu").state_dict(), w, t)
        for config, s, w, t in [
            (make_config(model=(("width", 4),)), 1, 0.6, 2),
            (make_config(model=(("width", 12),)), 2, 0.4, 9),
        ]
    ]
    model = TunedModel.ensemble(members, prep, networks, source.to_dict())
    write_bundle(tmp_path / "model", model, card_for(model))
    loaded = dltune.load(tmp_path / "model", trust_source=True)
    x = rows()
    assert loaded.members == model.members and loaded.source == source.to_dict()
    assert np.array_equal(loaded.predict_proba(x), model.predict_proba(x))
    singles = [TunedModel(m.config, prep, m.state, networks) for m in members]
    close(
        model.predict_proba(x),
        0.6 * singles[0].predict_proba(x) + 0.4 * singles[1].predict_proba(x),
    )


# ---- the exports ---------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_torchscript_of_an_ensemble_is_one_graph_that_agrees_with_torch(task, tmp_path):
    model = ensemble_for(task)
    result = export(model, "torchscript", tmp_path / "m.pt")
    assert result.max_difference < 1e-4
    loaded = torch.jit.load(str(result.path))
    x = rows()
    close(loaded(torch.as_tensor(x)).detach().numpy(), reference(model, x))


@pytest.mark.slow
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_onnx_of_an_ensemble_is_one_graph_that_agrees_with_torch(task, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    model = ensemble_for(task)
    result = export(model, "onnx", tmp_path / "m.onnx")
    graph = onnx.load(str(result.path)).graph
    assert [i.name for i in graph.input] == ["features"] and len(graph.output) == 1
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    x = rows()
    (got,) = session.run(None, {"features": x})
    close(got, reference(model, x))
    if task == "classification":
        close(got, model.predict_proba(x))


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_keras_of_an_ensemble_adds_its_weighted_members(task, tmp_path):
    keras = pytest.importorskip("keras")
    model = ensemble_for(task)
    result = export(model, "keras", tmp_path / "m.keras")
    loaded = keras.saving.load_model(str(result.path))
    x = rows()
    got = keras.ops.convert_to_numpy(loaded(x, training=False))
    close(got, reference(model, x))


# ---- the card ------------------------------------------------------------------------------

ENSEMBLE_CARD = {
    "validation": "kfold",
    "folds": 2,
    "metric": "accuracy",
    "score": 0.9625,
    "best_single": {"trial": 3, "value": 0.95},
    "members": [
        {"trial": 3, "weight": 0.5, "value": 0.95, "config": "2x(12, 7) relu adam"},
        {"trial": 8, "weight": 0.3, "value": 0.9375, "config": "1x(9,) tanh sgd"},
        {"trial": 5, "weight": 0.2, "value": 0.925, "config": "1x(6,) leaky_relu adam"},
    ],
}


def test_the_card_shows_the_members_and_the_ensembles_score_beside_the_best_single():
    model = ensemble_for("classification")
    markdown = card_markdown(card_for(model, ENSEMBLE_CARD))
    assert "An ensemble of 3 configurations (6 networks) tuned by dltune" in markdown
    assert "## Ensemble" in markdown and "out-of-fold predictions (2 folds" in markdown
    assert "- **out-of-fold accuracy of the ensemble: 0.9625**" in markdown
    assert "- out-of-fold accuracy of the best single member (trial 3): 0.95" in markdown
    assert "| trial | weight | out-of-fold accuracy | configuration |" in markdown
    assert "| 8 | 0.3 | 0.9375 | 1x(9,) tanh sgd |" in markdown
    holdout = {**ENSEMBLE_CARD, "validation": "holdout", "folds": None}
    markdown = card_markdown(card_for(model, holdout))
    assert "An ensemble of 3 configurations tuned" in markdown
    assert "on their predictions on the validation split" in markdown
    assert "- **validation accuracy of the ensemble: 0.9625**" in markdown
    single = card_markdown(card_for(model))
    assert "## Ensemble" not in single and "A dense network tuned by dltune" in single
    assert "\n\n## Training\n" in single and "\n\n\n" not in single
