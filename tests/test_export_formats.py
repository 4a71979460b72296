"""dltune.export.formats: ONNX, TorchScript and Keras exports agree with the torch model."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

from dltune.config import Config
from dltune.errors import ModelError
from dltune.export import TunedModel
from dltune.export.formats import check_rows, export, reference
from dltune.export.preprocessing import Preprocessing
from dltune.nets.dense import DenseNet

os.environ.setdefault("KERAS_BACKEND", "torch")

# Keras's torch backend (3.15) and torch.jit (2.13) warn about themselves, not about dltune.
pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning"),
]


def model_for(
    activation: str = "relu", loss: str = "categorical_crossentropy", task: str = "classification"
) -> TunedModel:
    """A network with seeded random weights and non-trivial scaling: exports are about
    arithmetic, not training."""
    rng = np.random.default_rng(0)
    classes = ["no", "yes", "maybe"] if task == "classification" else None
    prep = Preprocessing(
        task=task,
        loss=loss,
        feature_names=[f"f{j}" for j in range(5)],
        x_mean=rng.normal(5, 2, 5).astype(np.float32),
        x_std=rng.uniform(0.5, 3, 5).astype(np.float32),
        classes=classes,
        target_mean=None if classes else 120.0,
        target_std=None if classes else 35.0,
        target=None,
        statistics="test",
    )
    config = Config(2, (12, 7), 0.2, activation, loss, "adam", 1e-3, 0.0, 32, 3)
    network = DenseNet(config, 5, prep.n_outputs, seed=3)
    return TunedModel(config, prep, network.state_dict())


def fresh_rows(model: TunedModel) -> np.ndarray:
    """Rows the export's own check did not see."""
    prep = model.preprocessing
    z = np.random.default_rng(1).normal(size=(33, prep.n_features)).astype(np.float32)
    return (z * prep.x_std * 2 + prep.x_mean).astype(np.float32)


def close(got: np.ndarray, expected: np.ndarray) -> None:
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * scale)


def test_the_exported_module_is_predict_proba_as_one_torch_module():
    model = model_for()
    x = fresh_rows(model)
    with torch.no_grad():
        close(model.module(torch.as_tensor(x)).numpy(), model.predict_proba(x))


def test_torchscript_agrees_with_torch(tmp_path):
    for model in (model_for("tanh"), model_for("gelu", "mean_squared_error", "regression")):
        result = export(model, "torchscript", tmp_path / "m.pt")
        assert result.max_difference < 1e-4
        loaded = torch.jit.load(str(result.path))
        x = fresh_rows(model)
        close(loaded(torch.as_tensor(x)).detach().numpy(), reference(model, x))


@pytest.mark.slow
def test_onnx_runs_in_onnxruntime_and_agrees_with_torch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    for model in (
        model_for("selu", "binary_crossentropy"),
        model_for("elu", "huber", "regression"),
    ):
        result = export(model, "onnx", tmp_path / "m.onnx")
        session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
        x = fresh_rows(model)
        (got,) = session.run(None, {"features": x})
        close(got, reference(model, x))


@pytest.mark.parametrize(
    "activation",
    ["relu", "sigmoid", "tanh", "elu", "selu", "gelu", "leaky_relu", "softplus", "swish", "linear"],
)
def test_keras_loads_and_agrees_with_torch_for_every_activation(activation, tmp_path):
    keras = pytest.importorskip("keras")
    loss = "binary_crossentropy" if activation == "sigmoid" else "categorical_crossentropy"
    model = model_for(activation, loss)
    result = export(model, "keras", tmp_path / "m.keras")
    loaded = keras.saving.load_model(str(result.path))
    x = fresh_rows(model)
    close(keras.ops.convert_to_numpy(loaded(x, training=False)), reference(model, x))


def test_keras_regression_gives_values_in_the_targets_units(tmp_path):
    keras = pytest.importorskip("keras")
    model = model_for("relu", "mean_squared_error", "regression")
    loaded = keras.saving.load_model(str(export(model, "keras", tmp_path / "m.keras").path))
    x = fresh_rows(model)
    close(keras.ops.convert_to_numpy(loaded(x)), model.predict(x).reshape(-1, 1))


@pytest.mark.parametrize(("fmt", "module"), [("onnx", "onnxruntime"), ("keras", "keras")])
def test_a_missing_extra_names_what_to_install(fmt, module, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    with pytest.raises(ModelError, match=rf"pip install 'dltune\[{fmt}\]'"):
        export(model_for(), fmt, tmp_path / "m")


@pytest.mark.parametrize("fmt", ["torchscript", "keras"])
def test_an_export_that_fails_its_check_leaves_no_file_and_an_old_one_as_it_was(
    fmt, tmp_path, monkeypatch
):
    from dltune.export import formats

    if fmt == "keras":
        pytest.importorskip("keras")
    model = model_for()
    out = tmp_path / ("m.pt" if fmt == "torchscript" else "m.keras")
    right = formats.reference
    monkeypatch.setattr(formats, "reference", lambda m, x: right(m, x) + 0.5)  # a wrong export
    with pytest.raises(ModelError, match=f"not written: the {fmt} export differs"):
        export(model, fmt, out)
    assert list(tmp_path.iterdir()) == []  # no file, not even a temporary one
    out.write_bytes(b"the previous export")
    with pytest.raises(ModelError, match="not written"):
        export(model, fmt, out)
    assert out.read_bytes() == b"the previous export"  # not replaced by a bad one
    assert list(tmp_path.iterdir()) == [out]
    monkeypatch.undo()
    assert export(model, fmt, out).path == out and out.read_bytes() != b"the previous export"
    assert list(tmp_path.iterdir()) == [out]


def test_an_output_that_cannot_be_written_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ModelError, match="does not exist; create it first"):
        export(model_for(), "torchscript", tmp_path / "nowhere" / "m.pt")
    with pytest.raises(ModelError, match="is a folder"):
        export(model_for(), "torchscript", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_check_rows_are_spread_like_the_training_data():
    model = model_for()
    x = check_rows(model, 4000)
    prep = model.preprocessing
    np.testing.assert_allclose(x.mean(axis=0), prep.x_mean, atol=0.15 * prep.x_std.max())


def test_a_convolutional_study_trains_best_round_trips_its_folder_and_exports(tmp_path) -> None:
    """digits as 8x8 images, a space of convolutional networks only: train-best, the folder,
    load, predict and the exports, from a stored study to files."""
    from dltune import tune
    from dltune.export import load, train_best

    storage = f"sqlite:///{tmp_path / 'conv.db'}"
    space = {
        "conv_layers": [1, 2],
        "filters": [4, 6],
        "batch_norm": [False, True],
        "layers": 1,
        "units": 16,
        "epochs": 2,
        "optimizer": "adam",
        "learning_rate": 1e-2,
        "batch_size": 64,
    }
    tune(space, "digits", storage=storage, trials=2, seed=0, schedule="none")
    trained = train_best(storage, epochs=1)
    assert trained.model.config.conv_layers in (1, 2)
    trained.save(tmp_path / "model")
    loaded = load(tmp_path / "model")
    assert loaded.preprocessing.input_shape == (1, 8, 8)
    rows = fresh_rows(loaded)
    assert np.array_equal(loaded.predict_proba(rows), trained.model.predict_proba(rows))
    for fmt in ("onnx", "torchscript"):
        if fmt == "onnx":
            pytest.importorskip("onnxruntime")
        assert export(loaded, fmt, tmp_path / f"model.{fmt}").max_difference < 1e-4
    with pytest.raises(ModelError, match="dense network only"):
        export(loaded, "keras", tmp_path / "model.keras")


def test_the_linear_model_and_the_fcn_export(tmp_path) -> None:
    """layers 0 (one Dense layer) to Keras; the FCN (kernels 8, 5, 3; an even kernel padded
    before its convolution) to ONNX and TorchScript, for signals of shape (2, 20)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("keras")
    from dltune.nets import ConvNet

    linear = model_for()
    config = linear.config.replace(layers=0)
    network = DenseNet(config, 5, linear.preprocessing.n_outputs, seed=3)
    linear = TunedModel(config, linear.preprocessing, network.state_dict())
    assert export(linear, "keras", tmp_path / "linear.keras").max_difference < 1e-4

    rng = np.random.default_rng(2)
    prep = Preprocessing(
        task="classification",
        loss="categorical_crossentropy",
        feature_names=[f"f{j}" for j in range(40)],
        x_mean=rng.normal(0, 1, 40).astype(np.float32),
        x_std=rng.uniform(0.5, 2, 40).astype(np.float32),
        classes=["a", "b"],
        target_mean=None,
        target_std=None,
        target=None,
        statistics="test",
        input_shape=(2, 20),
    )
    fcn = config.replace(
        conv_layers=3, filters=[8, 16, 8], kernel_size=[8, 5, 3], batch_norm=True, global_pool=True
    )
    net = ConvNet(fcn, (2, 20), 2, seed=1)
    model = TunedModel(fcn, prep, net.state_dict())
    for fmt in ("onnx", "torchscript"):
        assert export(model, fmt, tmp_path / f"fcn.{fmt}").max_difference < 1e-4
