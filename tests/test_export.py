"""dltune.export: train-best, the model folder, load, predict; round trips exact, errors clear."""

from __future__ import annotations

import csv
import json
import math
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

import dltune
from dltune import tune
from dltune.engine.losses import metric_named, reduce_metric
from dltune.errors import DataError, ModelError
from dltune.export import read_bundle, train_best, write_bundle
from dltune.export.predict import predict_table, read_table, write_predictions
from dltune.export.retrain import metric_of, scaled_epochs

from .helpers import dltune as run_cli

SMALL = {
    "layers": [1, 2],
    "units": [16, 32],
    "activation": ["relu", "tanh"],
    "dropout": [0.0, 0.2],
    "optimizer": ["adam"],
    "loss": "categorical_crossentropy",
    "learning_rate": {"low": 3e-3, "high": 3e-2, "log": True},
    "batch_size": [32],
    "epochs": 3,
}
NAMES = [f"f{j}" for j in range(6)]


def blobs_splits(seed: int = 0) -> dict[str, np.ndarray]:
    """Three classes with text labels in 6 named features, as given train/val/test splits."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 2.5, size=(3, 6))
    out: dict[str, np.ndarray] = {}
    for split, n in (("", 240), ("_val", 60), ("_test", 60)):
        k = rng.integers(0, 3, size=n)
        out[f"x{split}"] = (centers[k] + rng.normal(size=(n, 6)) * 1.5 + 10).astype(np.float32)
        out[f"y{split}"] = np.array(["ant", "bee", "cat"])[k]
    return out


def regression_splits(seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for split, n in (("", 200), ("_val", 50), ("_test", 50)):
        x = rng.normal(size=(n, 4)).astype(np.float32)
        y = x @ np.array([3.0, -2.0, 1.0, 0.5]) * 10 + 100 + rng.normal(0, 1, n)
        out[f"x{split}"], out[f"y{split}"] = x, y.astype(np.float32)
    return out


@pytest.fixture(scope="module")
def classified(tmp_path_factory):
    """A 3-trial holdout study (no ensemble) on an .npz with given splits, and its model
    folder (one network, train+val); tests/test_delivered.py has k-fold and ensembles."""
    root = tmp_path_factory.mktemp("classified")
    arrays = blobs_splits()
    np.savez(root / "blobs.npz", feature_names=np.array(NAMES), **arrays)
    np.savez(root / "test.npz", x=arrays["x_test"], y=arrays["y_test"], feature_names=NAMES)
    storage = f"sqlite:///{root / 'studies.db'}"
    tune(
        SMALL,
        str(root / "blobs.npz"),
        storage=storage,
        trials=3,
        seed=0,
        schedule="none",
        cv="holdout",
        ensemble=False,
    )
    result = train_best(storage)
    result.save(root / "model")
    return {"root": root, "storage": storage, "result": result, "arrays": arrays}


@pytest.fixture(scope="module")
def regressed(tmp_path_factory):
    """A 2-trial regression study on a CSV with a target column, and its model folder
    (holdout: 3 epochs are too few for fold models of 4/5 of the rows to pass rmse < 10)."""
    root = tmp_path_factory.mktemp("regressed")
    arrays = regression_splits()
    x = np.concatenate([arrays["x"], arrays["x_val"], arrays["x_test"]])
    y = np.concatenate([arrays["y"], arrays["y_val"], arrays["y_test"]])
    with open(root / "houses.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["a", "b", "c", "d", "price"])
        writer.writerows([*row.tolist(), float(v)] for row, v in zip(x, y, strict=True))
    np.savez(root / "given.npz", **arrays)
    space = {**SMALL, "loss": "mean_squared_error", "activation": "relu", "epochs": 3}
    storage = f"sqlite:///{root / 'studies.db'}"
    tune(
        space,
        str(root / "houses.csv"),
        target="price",
        storage=storage,
        study_name="houses",
        trials=2,
        seed=0,
        cv="holdout",
    )
    given = str(root / "given.npz")
    tune(space, given, storage=storage, study_name="given", trials=2, seed=0, cv="holdout")
    result = train_best(storage, "houses")  # the target column comes from the study
    result.save(root / "model")
    given = train_best(storage, "given")
    given.save(root / "given-model")
    return {"root": root, "storage": storage, "result": result, "given": given, "arrays": arrays}


def read_predictions(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


# ---- the round trip: in memory, on disk, loaded --------------------------------------------


def test_the_folder_holds_weights_configuration_preprocessing_and_cards(classified):
    folder = classified["root"] / "model"
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "model.safetensors",
        "model_card.json",
        "model_card.md",
        "preprocessing.json",
    ]
    prep = json.loads((folder / "preprocessing.json").read_text())
    assert prep["classes"] == ["ant", "bee", "cat"] and prep["feature_names"] == NAMES
    card = json.loads((folder / "model_card.json").read_text())
    assert card["training"]["on"] == "train+val" and card["training"]["rows"] == 300
    assert (
        card["data"]["fingerprint"] == dltune.load_data(folder.parent / "blobs.npz").fingerprint()
    )
    assert card["data"]["split"] == "given"
    assert card["study"]["trial"] is not None and card["training"]["seed"] is not None
    assert {"dltune", "torch", "numpy", "optuna", "python"} <= set(card["libraries"])
    assert "steps" in card["training"]["epoch_rule"]
    markdown = (folder / "model_card.md").read_text()
    assert f"{card['test']['value']:.6g}" in markdown and card["data"]["fingerprint"] in markdown


def test_a_loaded_model_predicts_exactly_what_the_trained_one_did(classified):
    x = np.concatenate([classified["arrays"]["x_test"], classified["arrays"]["x"]])
    trained = classified["result"].model
    loaded = dltune.load(classified["root"] / "model")
    assert np.array_equal(loaded.predict_proba(x), trained.predict_proba(x))
    assert np.array_equal(loaded.predict(x), trained.predict(x))
    assert set(loaded.predict(x)) <= {"ant", "bee", "cat"}
    assert loaded.card["test"] == classified["result"].card["test"]
    again = pickle.loads(pickle.dumps(loaded))  # the sklearn estimators pickle their model
    assert np.array_equal(again.predict_proba(x), trained.predict_proba(x))


def test_the_card_test_metric_is_what_predict_gives_on_the_test_split(classified, tmp_path):
    root = classified["root"]
    out = tmp_path / "p.csv"
    run = run_cli(
        "predict", str(root / "model"), str(root / "test.npz"), "-o", str(out), cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    header, rows = read_predictions(out)
    assert header == ["prediction", "probability_ant", "probability_bee", "probability_cat"]
    labels = np.array([r[0] for r in rows])
    accuracy = float(np.mean(labels == classified["arrays"]["y_test"]))
    card = json.loads((root / "model" / "model_card.json").read_text())
    assert card["test"]["metric"] == "accuracy" and card["test"]["rows"] == 60
    assert accuracy == card["test"]["value"]
    assert f"accuracy on these rows (the data hold the target): {accuracy:.6g}" in run.stdout
    proba = np.array([[float(c) for c in r[1:]] for r in rows], dtype=np.float32)
    expected = classified["result"].model.predict_proba(classified["arrays"]["x_test"])
    assert np.array_equal(proba, expected)  # the CSV keeps every float32 bit


def test_the_regression_card_rmse_is_what_predict_gives_on_the_test_split(regressed):
    given, arrays = regressed["given"], regressed["arrays"]
    loaded = dltune.load(regressed["root"] / "given-model")
    values = loaded.predict(arrays["x_test"])
    assert values.dtype == np.float32
    rmse = float(np.sqrt(np.mean((values.astype(np.float64) - arrays["y_test"]) ** 2)))
    assert given.card["test"]["metric"] == "rmse" and rmse == given.card["test"]["value"]
    assert rmse < 10  # the target's scale is about 40: it learned something


def test_retraining_on_train_alone_reproduces_the_studys_test(classified):
    result = train_best(classified["storage"], on="train")
    assert result.card["training"]["rows"] == 240
    assert result.card["training"]["epochs"] == result.card["study"]["best_epoch"]
    # float32 (the study's evaluation) against float64 (ours): the same count of hits
    assert result.test == pytest.approx(result.card["study"]["study_test"], abs=1e-6)


def test_the_epoch_rule_keeps_the_optimizer_steps():
    assert scaled_epochs(3, 100, 100, 10)[0] == 3
    epochs, rule = scaled_epochs(9, 1257, 1527, 32)  # digits: 40 steps an epoch, then 48
    assert epochs == 8 and "360 optimizer steps" in rule
    assert scaled_epochs(1, 100, 10_000, 10)[0] == 1  # never below one epoch


def test_a_table_study_remembers_its_target_and_predict_matches_names(regressed, tmp_path):
    root = regressed["root"]
    assert regressed["result"].card["data"]["target"] == "price"
    model = dltune.load(root / "model")
    # the CSV with its target column: features by name, the target set aside and scored
    result = predict_table(model, read_table(root / "houses.csv"))
    assert result.rows == 300 and result.metric == "rmse" and result.value < 10
    # columns in another order give the same predictions
    with open(root / "houses.csv", newline="") as f:
        rows = list(csv.reader(f))
    reordered = tmp_path / "reordered.csv"
    with open(reordered, "w", newline="") as f:
        csv.writer(f).writerows([r[4], r[3], r[2], r[1], r[0]] for r in rows)
    assert np.array_equal(
        predict_table(model, read_table(reordered)).predictions, result.predictions
    )
    # without a header: by position
    headless = tmp_path / "headless.csv"
    with open(headless, "w", newline="") as f:
        csv.writer(f).writerows(r[:4] for r in rows[1:])
    by_position = predict_table(model, read_table(headless))
    assert np.array_equal(by_position.predictions, result.predictions) and by_position.value is None
    out = write_predictions(by_position, model, tmp_path / "out.csv")
    header, written = read_predictions(out)
    assert header == ["prediction"] and len(written) == 300
    assert np.array_equal(np.array([float(r[0]) for r in written], np.float32), result.predictions)


def test_predict_reads_parquet_and_the_builtin_digits(classified, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    arrays = classified["arrays"]
    columns = {name: arrays["x_test"][:, j] for j, name in enumerate(NAMES)}
    pq.write_table(pa.table(columns), tmp_path / "test.parquet")
    model = classified["result"].model
    result = predict_table(model, read_table(tmp_path / "test.parquet"))
    assert np.array_equal(result.predictions, model.predict(arrays["x_test"]))
    with pytest.raises(DataError, match="'f0', 'f1'"):
        predict_table(model, read_table("digits"))  # 64 pixels are not this model's features


def test_predict_reads_csv_with_or_without_a_header_and_keeps_its_messages(tmp_path):
    named = tmp_path / "named.csv"
    named.write_text("f0, f1\n 1.5 ,a\n\n2,b\n")
    table = read_table(named)  # names and cells stripped, line numbers of the file
    assert table.columns == ["f0", "f1"] and [c.tolist() for c in table.cells] == [
        ["1.5", "2"],
        ["a", "b"],
    ]
    assert [table.row_label(i) for i in range(2)] == ["line 2", "line 4"]
    headless = tmp_path / "headless.csv"
    headless.write_text("1,2\n3,4\n")
    assert read_table(headless).columns is None and len(read_table(headless).cells[0]) == 2
    for text, message in [
        ("", "the file is empty."),
        ("f0,f0\n1,2\n", "column name 'f0' in the header is empty or repeated; fix the header."),
        ("1,2\n3\n", "line 2 has 1 fields, but the first line has 2."),
    ]:
        headless.write_text(text)
        with pytest.raises(DataError) as info:
            read_table(headless)
        assert str(info.value) == f"{headless}: {message}"


def test_predict_without_pyarrow_says_how_to_install_it(tmp_path, monkeypatch):
    path = tmp_path / "t.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(DataError) as info:
        read_table(path)
    assert str(info.value) == (
        f"{path}: reading .parquet files needs pyarrow, which is not installed. "
        f"Install it with: pip install 'dltune[parquet]'"
    )


# ---- the one metric: the engine's, train-best's and predict's ------------------------------

# Four rows worked by hand: errors 0, -1, 2, 0 (in the target's units); two hits of four labels.
VALUES, TRUTH = [1.0, 2.0, 4.0, 8.0], [1.0, 3.0, 2.0, 8.0]
BY_HAND = {"accuracy": 2 / 4, "rmse": math.sqrt((0 + 1 + 4 + 0) / 4), "mae": (0 + 1 + 2 + 0) / 4}


@pytest.mark.parametrize("metric", sorted(BY_HAND))
def test_one_metric_definition_equals_the_hand_computation(metric):
    if metric == "accuracy":
        predictions = np.array(["ant", "bee", "cat", "ant"])
        truth = np.array(["ant", "cat", "cat", "bee"])
    else:
        predictions, truth = np.array(VALUES, np.float32), np.array(TRUTH, np.float32)
    # train-best and predict: labels or values, in float64
    value = metric_of(metric, predictions, truth)
    assert type(value) is float and value == BY_HAND[metric]
    terms = (predictions == truth) if metric == "accuracy" else np.array(VALUES) - TRUTH
    assert reduce_metric(metric, terms.astype(np.float64)) == BY_HAND[metric]


@pytest.mark.parametrize("metric", sorted(BY_HAND))
def test_the_engine_computes_the_same_metric_per_member(metric):
    import torch

    if metric == "accuracy":  # class indices: member 0 gets rows 0 and 2 right, member 1 all
        targets = torch.tensor([0, 2, 2, 1])
        picks = torch.tensor([[0, 1, 2, 0], [0, 2, 2, 1]])
        outputs = torch.nn.functional.one_hot(picks, 3).to(torch.float32)  # (P, N, C)
        expected = [BY_HAND[metric], 1.0]
    else:  # standardized targets (std 2, mean 5): member 0 makes the errors above, member 1 none
        truth = torch.tensor(TRUTH)
        targets = (truth - 5.0) / 2.0
        outputs = torch.stack([(torch.tensor(VALUES) - 5.0) / 2.0, targets])[..., None]
        expected = [BY_HAND[metric], 0.0]
    value = metric_named(metric).compute(outputs, targets, target_mean=5.0, target_std=2.0)
    assert value.shape == (2,) and value.dtype == torch.float32
    assert value.tolist() == pytest.approx(expected, rel=1e-6)


def test_metric_of_without_rows_or_with_an_unknown_metric():
    assert math.isnan(metric_of("accuracy", np.array([]), np.array([])))
    with pytest.raises(ModelError, match="metric 'f1' is not known to train-best"):
        metric_of("f1", np.zeros(3), np.zeros(3))


# ---- errors --------------------------------------------------------------------------------


def test_wrong_columns_get_errors_that_name_them(classified, tmp_path):
    model = classified["result"].model
    x = classified["arrays"]["x_test"]

    def table(header: list[str] | None, data: np.ndarray) -> Path:
        path = tmp_path / "data.csv"
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            if header:
                writer.writerow(header)
            writer.writerows(data.tolist())
        return path

    with pytest.raises(DataError, match=r"5 columns, but the model takes 6 features"):
        predict_table(model, read_table(table(None, x[:, :5])))
    with pytest.raises(DataError, match=r"unknown column\(s\) 'f9'.*Drop the others"):
        predict_table(model, read_table(table([*NAMES, "f9"], np.c_[x, x[:, :1]])))
    with pytest.raises(DataError, match=r"feature column\(s\) 'f5' are missing"):
        predict_table(model, read_table(table(NAMES[:5], x[:, :5])))
    with pytest.raises(DataError, match="5 features per row, but the model takes 6"):
        model.predict(x[:, :5])
    with pytest.raises(DataError, match="no such file"):
        read_table(tmp_path / "nowhere.csv")


def test_train_best_refuses_other_data_and_says_how_to_give_the_right_data(
    classified, blobs, storage_url, tmp_path
):
    other = blobs_splits(seed=5)
    np.savez(tmp_path / "other.npz", feature_names=np.array(NAMES), **other)
    with pytest.raises(DataError, match="fingerprint") as info:
        train_best(classified["storage"], data=tmp_path / "other.npz")
    assert "not the data study" in str(info.value)
    # a study on data held only in memory: loading it again needs --data
    tune(SMALL, blobs, storage=storage_url, trials=1, seed=0, schedule="none")
    with pytest.raises(DataError, match="Give it with data=PATH"):
        train_best(storage_url)
    # k-fold (auto, 510 examples): each of the 5 fold models for at most the epochs asked
    assert train_best(storage_url, data=blobs, epochs=1).card["training"]["epochs"] == [1] * 5


def test_a_broken_folder_gets_an_error_naming_the_file(classified, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(classified["root"] / "model", folder)
    prep = json.loads((folder / "preprocessing.json").read_text())
    prep["x_mean"] = prep["x_mean"][:3]
    (folder / "preprocessing.json").write_text(json.dumps(prep))
    with pytest.raises(ModelError, match=r"preprocessing\.json: x_mean, x_std"):
        read_bundle(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelError, match=r"model\.safetensors is missing"):
        read_bundle(folder)


def test_loading_runs_no_pickle_and_no_torch_load(classified, monkeypatch):
    import torch

    def forbidden(*args, **kwargs):
        raise AssertionError("a model folder must load without pickle")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    model = dltune.load(classified["root"] / "model")
    assert model.predict(classified["arrays"]["x_test"][:3]).shape == (3,)


# ---- the folder is written whole or not at all (dltune.atomic) -----------------------------


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def written(classified, folder: Path, **card) -> Path:
    result = classified["result"]
    return write_bundle(folder, result.model, {**result.card, **card})


@pytest.mark.parametrize("step", ["weights", "card"])
def test_a_write_that_fails_midway_leaves_the_old_folder_or_none(
    classified, tmp_path, monkeypatch, step
):
    import safetensors.torch

    from dltune.export import bundle

    def crash(*args, **kwargs):
        raise OSError("the disk went away mid-write")

    target = tmp_path / "model"
    monkeypatch.setattr(
        *((safetensors.torch, "save_file") if step == "weights" else (bundle, "card_markdown")),
        crash,
    )
    with pytest.raises(OSError, match="went away"):  # no model folder before: none after
        written(classified, target)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    written(classified, target, created="old")
    before = folder_bytes(target)
    monkeypatch.setattr(
        *((safetensors.torch, "save_file") if step == "weights" else (bundle, "card_markdown")),
        crash,
    )
    with pytest.raises(OSError, match="went away"):
        written(classified, target, created="new")
    assert folder_bytes(target) == before  # the old folder, whole: not a file of the new
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folder left
    monkeypatch.undo()
    written(classified, target, created="new")
    assert json.loads((target / "model_card.json").read_text())["created"] == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_writer_killed_midway_leaves_the_old_folder_and_the_next_write_cleans_up(
    classified, tmp_path, monkeypatch
):
    import signal
    import time

    from dltune.export import bundle

    target = tmp_path / "model"
    written(classified, target, created="old")
    before = folder_bytes(target)
    marker = tmp_path.parent / f"{tmp_path.name}-reached"

    def stuck(card):  # the weights and JSON files are written by now
        marker.touch()
        time.sleep(120)

    monkeypatch.setattr(bundle, "card_markdown", stuck)
    pid = os.fork()
    if pid == 0:  # the writer: killed while it writes the card
        try:
            written(classified, target, created="new")
        finally:
            os._exit(0)
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    monkeypatch.undo()
    assert marker.exists(), "the writer never reached the card"
    assert folder_bytes(target) == before
    assert len(list(tmp_path.iterdir())) == 2  # the model, and the dead writer's new folder
    written(classified, target, created="next")
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert dltune.load(target).card["created"] == "next"


def test_a_link_planted_in_the_folder_is_not_followed(classified, tmp_path):
    target = tmp_path / "model"
    written(classified, target)
    victim = tmp_path / "victim.json"
    victim.write_text('{"mine": true}')
    (target / "config.json").unlink()
    (target / "config.json").symlink_to(victim)
    (target / "model_card.md").unlink()
    (target / "model_card.md").symlink_to(tmp_path / "nowhere.md")  # a dangling one too
    written(classified, target)
    assert victim.read_text() == '{"mine": true}' and not (tmp_path / "nowhere.md").exists()
    assert not any(p.is_symlink() for p in target.iterdir())
    assert dltune.load(target).predict(classified["arrays"]["x_test"][:2]).shape == (2,)


def test_a_target_that_must_not_be_replaced_is_refused(classified, tmp_path, monkeypatch):
    target = tmp_path / "model"
    written(classified, target)
    (target / "predictions.csv").write_text("the user's")
    with pytest.raises(ModelError, match=r"holds predictions\.csv, besides a model's files"):
        written(classified, target)
    assert (target / "predictions.csv").read_text() == "the user's"
    (target / "predictions.csv").unlink()
    (target / "model.onnx").write_text("an export of this model")  # goes with the folder
    written(classified, target)
    assert not (target / "model.onnx").exists()
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(ModelError, match="symbolic link"):
        written(classified, link)
    monkeypatch.chdir(target)
    with pytest.raises(ModelError, match="the current folder"):
        written(classified, Path("."))


def test_the_predictions_csv_is_replaced_whole(classified, tmp_path, monkeypatch):
    from dltune.export import predict

    model = classified["result"].model
    x = classified["arrays"]["x_test"]
    result = predict.Predictions(len(x), model.predict(x), model.predict_proba(x))
    out = tmp_path / "predictions.csv"
    out.write_text("the previous predictions\n")
    inode = out.stat().st_ino
    calls = []

    def failing(value):  # the disk fills after a few rows
        calls.append(value)
        if len(calls) > 10:
            raise OSError(28, "No space left on device")
        return str(value)

    monkeypatch.setattr(predict, "_cell", failing)
    with pytest.raises(OSError, match="No space left"):
        write_predictions(result, model, out)
    assert out.read_text() == "the previous predictions\n"
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.csv"]
    monkeypatch.undo()
    write_predictions(result, model, out)
    header, rows = read_predictions(out)
    assert header[0] == "prediction" and len(rows) == len(x)
    assert out.stat().st_ino != inode  # a new file took the name: a reader keeps the old
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.csv"]


# ---- the command line ----------------------------------------------------------------------


def test_train_best_on_the_command_line_says_its_epoch_rule(classified, tmp_path):
    out = tmp_path / "model"
    run = run_cli("train-best", "--storage", classified["storage"], "-o", str(out), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "epochs:" in run.stdout and "optimizer steps" in run.stdout
    assert "test accuracy:" in run.stdout
    # retrained from the same seeds: the same model as the one trained in this process
    again = dltune.load(out)
    x = classified["arrays"]["x_test"]
    assert np.array_equal(again.predict_proba(x), classified["result"].model.predict_proba(x))
    wrong = run_cli("predict", str(out), str(classified["root"] / "blobs.npz"), cwd=tmp_path)
    assert wrong.returncode == 2 and wrong.stderr.startswith("error: ")
    assert "expected an array 'x'" in wrong.stderr


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_export_on_the_command_line_writes_a_checked_file(classified, tmp_path, monkeypatch):
    import shutil

    import torch

    folder = tmp_path / "model"
    shutil.copytree(classified["root"] / "model", folder)
    run = run_cli("export", str(folder), "--format", "torchscript", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "agrees with the torch model on 64 check rows" in run.stdout
    x = classified["arrays"]["x_test"]
    with torch.no_grad():
        got = torch.jit.load(str(folder / "model.torchscript.pt"))(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(got, classified["result"].model.predict_proba(x), atol=1e-5)
    # without the onnx extra (simulated): one line naming it, exit status 2
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    missing = run_cli("export", str(folder), "--format", "onnx", cwd=tmp_path)
    assert missing.returncode == 2 and "pip install 'dltune[onnx]'" in missing.stderr


def test_a_table_with_named_columns_is_matched_by_name(classified):
    class Frame:  # the two things TunedModel reads from a pandas DataFrame
        def __init__(self, columns: list[str], values: np.ndarray) -> None:
            self.columns, self.values = columns, values

        def __array__(self, dtype=None, copy=None):
            return self.values

    model = classified["result"].model
    x = classified["arrays"]["x_test"]
    reversed_frame = Frame(NAMES[::-1], x[:, ::-1])
    assert np.array_equal(model.predict_proba(reversed_frame), model.predict_proba(x))
    with pytest.raises(DataError, match="unknown column"):
        model.predict(Frame([*NAMES, "g"], np.c_[x, x[:, :1]]))


# ---- no code runs from a folder unless the caller says so ----------------------------------

# A build whose file writes a marker when it is imported: what a hostile folder would hold.
MARKING_BUILD = """\
from pathlib import Path

Path({marker!r}).write_text("ran")


def build(hp):
    from torch import nn

    return nn.Linear(6, 3)
"""


def sha256_of(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def crafted_folder(classified, tmp_path: Path, **record) -> tuple[Path, Path, Path]:
    """A copy of the built-in model folder whose config.json names a build(hp) in a file of
    its own (inside the folder) that writes a marker when imported; its record's fields
    overridden by `record`. (folder, the file, the marker)."""
    import shutil

    folder = tmp_path / "crafted"
    shutil.copytree(classified["root"] / "model", folder)
    marker = tmp_path / "marker"
    code = folder / "evil.py"
    code.write_text(MARKING_BUILD.format(marker=str(marker)))
    source = {"kind": "file", "path": str(code), "module": None, "attr": "build"}
    source |= {"sha256": sha256_of(code), **record}
    config = json.loads((folder / "config.json").read_text())
    config["model_source"] = source
    (folder / "config.json").write_text(json.dumps(config))
    return folder, code, marker


def test_a_folder_naming_a_build_is_refused_unless_trusted_and_nothing_runs(classified, tmp_path):
    folder, code, marker = crafted_folder(classified, tmp_path)
    with pytest.raises(ModelError) as refused:
        dltune.load(folder)
    message = str(refused.value)
    assert f"would import and run Python code to rebuild its network: the file {code}" in message
    assert "'build'" in message and "allow it with trust_source=True" in message
    assert str(folder / "config.json") in message
    assert not marker.exists()
    # the caller's word is the only gate: trusted, the (unchanged) file runs
    with pytest.raises(dltune.DLTuneError):  # its build fits no weights of the folder
        dltune.load(folder, trust_source=True)
    assert marker.read_text() == "ran"


@pytest.mark.parametrize("command", ["predict", "export"])
def test_predict_and_export_refuse_a_folders_build_without_trust_source(
    classified, tmp_path, command
):
    folder, code, marker = crafted_folder(classified, tmp_path)
    rest = [str(classified["root"] / "test.npz")] if command == "predict" else []
    rest += ["--format", "torchscript"] if command == "export" else []
    ran = run_cli(command, str(folder), *rest, cwd=tmp_path)
    assert ran.returncode == 2 and ran.stderr.startswith("error: ")
    assert str(code) in ran.stderr and "allow it with --trust-source" in ran.stderr
    assert "trust_source=True" not in ran.stderr  # the flag, not the keyword
    assert not marker.exists() and not (tmp_path / "predictions.csv").exists()


@pytest.mark.parametrize(
    ("record", "words"),
    [
        ({"sha256": None}, "has no sha256 in its record"),
        ({"sha256": "abc"}, "has a malformed sha256 'abc'"),
        ({"sha256": "0" * 64}, "changed since it was recorded"),
        ({"path": "evil.py"}, "a relative path; dltune does not resolve it"),
        ({"kind": "module", "module": "dltune_crafted_mod"}, "not the recorded"),
        ({"kind": "module", "module": "json"}, "would be imported from .*json"),
        ({"kind": "module", "module": "sys"}, "'sys' has no file of its own"),
        ({"kind": "module", "module": "../evil"}, "not a name"),
        ({"path": 3}, "not one dltune wrote"),
    ],
)
def test_a_trusted_build_runs_only_from_the_bytes_its_record_hashes(
    classified, tmp_path, monkeypatch, record, words
):
    """Even trusted: a missing or malformed hash is an error, not a skip; a relative path is
    not looked for in the current folder (the model folder here); a module is hashed as the
    file Python would import, which here is not the recorded one."""
    folder, code, marker = crafted_folder(classified, tmp_path, **record)
    monkeypatch.chdir(folder)  # where a relative path would have found the file
    other = tmp_path / "elsewhere"
    other.mkdir()  # a module of the same name, first on the path, that marks too
    (other / "dltune_crafted_mod.py").write_text(code.read_text().replace("ran", "other"))
    monkeypatch.syspath_prepend(str(other))
    monkeypatch.delitem(sys.modules, "dltune_crafted_mod", raising=False)
    with pytest.raises(ModelError, match=words) as refused:
        dltune.load(folder, trust_source=True)
    if record.get("path") == "evil.py":
        assert f"that would be {folder / 'evil.py'}" in str(refused.value)
    assert not marker.exists() and "dltune_crafted_mod" not in sys.modules


def test_a_built_in_folder_imports_nothing_trusted_or_not(classified, monkeypatch):
    import importlib.util

    from dltune.usermodel import source

    def forbidden(*args, **kwargs):
        raise AssertionError("a folder of dltune's own networks must import no code")

    monkeypatch.setattr(source, "import_file", forbidden)
    monkeypatch.setattr(source, "import_module", forbidden)
    monkeypatch.setattr(source, "_exec_module", forbidden)
    monkeypatch.setattr(source.ModelSource, "load", forbidden)
    monkeypatch.setattr(importlib.util, "spec_from_file_location", forbidden)
    before = set(sys.modules)
    x = classified["arrays"]["x_test"][:3]
    for trust in (False, True):
        loaded = dltune.load(classified["root"] / "model", trust_source=trust)
        assert loaded.predict(x).shape == (3,)
    assert not [name for name in set(sys.modules) - before if name.startswith("_dltune_model_")]
