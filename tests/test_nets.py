"""The networks a configuration describes: shapes, seeds, and training through the trainers."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from dltune.config import Config, conv_shape_problem
from dltune.nets import BuiltinNetworks, ConvNet, DenseNet

DENSE = Config(1, (16,), 0.0, "relu", "categorical_crossentropy", "adam", 1e-2, 0.0, 32, 2)


def _conv(**changes) -> Config:
    return DENSE.replace(**{"conv_layers": 2, "filters": [4, 6], **changes})


SHAPES = [(1, 8, 8), (3, 9, 7), (1, 24), (6, 100), (2, 5)]


@pytest.mark.parametrize(
    ("shape", "kernel_size", "pool", "batch_norm", "global_pool"),
    [
        (shape, k, pool, bn, gap)
        for shape, k, pool, bn, gap in itertools.product(
            SHAPES, (1, 2, 3, 5), (0, 1, 2, 3), (False, True), (False, True)
        )
    ],
)
def test_every_block_combination_maps_flat_rows_to_one_output_per_class(
    shape, kernel_size, pool, batch_norm, global_pool
) -> None:
    config = _conv(
        kernel_size=kernel_size, pool=pool, batch_norm=batch_norm, global_pool=global_pool
    )
    problem = conv_shape_problem(shape, config.conv_layers, pool)
    if problem:  # refused before training, with the reason, never a torch shape error
        with pytest.raises(ValueError, match="below one element"):
            ConvNet(config, shape, 3)
        assert min(size // pool // pool for size in shape[1:]) == 0
        return
    net = ConvNet(config, shape, 3)
    rows = torch.randn(4, math.prod(shape))
    assert net(rows).shape == (4, 3)
    conv = torch.nn.Conv2d if len(shape) == 3 else torch.nn.Conv1d
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv1d | torch.nn.Conv2d)]
    assert len(convs) == 2 and all(isinstance(c, conv) for c in convs)
    norms = [m for m in net.features if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(norms) == (2 if batch_norm else 0)


def test_flat_rows_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="flat rows of 64 values"):
        ConvNet(_conv(), (64,), 10)


def test_the_factory_builds_the_family_the_configuration_names() -> None:
    networks = BuiltinNetworks((1, 8, 8))
    assert isinstance(networks(DENSE, 10, seed=0, device="cpu"), DenseNet)
    assert isinstance(networks(_conv(), 10, seed=0, device="cpu"), ConvNet)
    dense = networks(DENSE, 10, seed=0, device="cpu")
    assert dense.linears()[0].in_features == 64  # the dense network sees the flat rows


def test_a_seed_gives_one_network_and_another_seed_another() -> None:
    def weights(seed: int) -> list[torch.Tensor]:
        return list(ConvNet(_conv(batch_norm=True), (1, 8, 8), 10, seed=seed).state_dict().values())

    assert all(torch.equal(a, b) for a, b in zip(weights(3), weights(3), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(weights(3), weights(4), strict=True))


def test_the_dense_head_is_drawn_as_a_dense_network_of_the_same_seed() -> None:
    net = ConvNet(_conv(global_pool=True), (1, 8, 8), 10, seed=5)
    alone = DenseNet(DENSE, 6, 10, seed=5)  # global pooling: 6 channels into the head
    for a, b in zip(net.head.state_dict().values(), alone.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_convolutional_configuration_trains_and_learns_digits_as_images() -> None:
    from sklearn.datasets import load_digits

    from dltune.data import from_arrays
    from dltune.engine import SequentialTrainer

    bunch = load_digits()
    data = from_arrays(bunch.data, bunch.target, name="digits", seed=0)
    data.input_shape = (1, 8, 8)
    trainer = SequentialTrainer(data)
    config = _conv(filters=[8, 16], pool=2, epochs=3)
    result = trainer.train(config, seed=0)
    assert result.status == "complete" and len(result.history) == 3
    assert result.best_value > 0.85
    again = trainer.train(config, seed=0)  # one seed, one learning curve
    assert [r.val_metric for r in again.history] == [r.val_metric for r in result.history]
    model = trainer.build_model(config, seed=0)
    assert isinstance(model, ConvNet)
    assert np.isfinite(result.history[-1].train_loss)


# ---- the linear model (layers 0) and the fully convolutional network -------------------------


def test_a_network_without_hidden_layers_is_one_linear_layer_drawn_from_the_seed() -> None:
    config = DENSE.replace(layers=0, dropout=0.3)
    net = DenseNet(config, 8, 3, seed=11)
    assert list(net.state_dict()) == ["output.weight", "output.bias"] and len(net.hidden) == 0
    # nn.Linear's own initialization, drawn from the trial's seed: weights, then biases
    generator = torch.Generator().manual_seed(11)
    linear = torch.nn.Linear(8, 3)
    with torch.no_grad():
        linear.weight.uniform_(-(8**-0.5), 8**-0.5, generator=generator)
        linear.bias.uniform_(-(8**-0.5), 8**-0.5, generator=generator)
    x = torch.randn(5, 8)
    net.train()  # no dropout layer: training and evaluation give the same map
    assert torch.equal(net(x), linear(x))


def test_layers_0_trains_the_logistic_regression_of_scikit_learn() -> None:
    """On linearly separable classes, softmax regression trained by Adam with weight decay
    finds scikit-learn's L2 logistic regression: 100% on the training split, the same test
    predictions, the same weight vector (direction and length). The penalties match when
    weight_decay = 2 / (C n): dltune's loss is the batch mean and both output rows are decayed
    (w = row 1 - row 0), scikit-learn's the sum with ||w||^2 / (2 C)."""
    from sklearn.linear_model import LogisticRegression

    from dltune.data import from_arrays
    from dltune.engine import SequentialTrainer

    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 4))
    margin = x @ np.array([1.5, -2.0, 0.5, 1.0]) + 0.3
    keep = np.abs(margin) > 0.5  # a gap between the classes
    data = from_arrays(x[keep].astype(np.float32), (margin[keep] > 0).astype(int), seed=0)
    c = 1.0
    config = DENSE.replace(
        layers=0, learning_rate=0.05, weight_decay=2 / (c * len(data.x_train)), epochs=100
    )
    run = SequentialTrainer(data).start(config, seed=0)
    while run.advance() is None:
        pass
    assert run.result.status == "complete" and run.result.best_value == 1.0
    with torch.no_grad():
        w = (run.model.output.weight[1] - run.model.output.weight[0]).numpy()
        b = float(run.model.output.bias[1] - run.model.output.bias[0])
    reference = LogisticRegression(C=c, max_iter=10_000).fit(data.x_train, data.y_train)
    assert ((data.x_train @ w + b > 0) == data.y_train).all()
    assert reference.score(data.x_train, data.y_train) == 1.0
    agree = ((data.x_test @ w + b > 0) == reference.predict(data.x_test)).mean()
    assert agree >= 0.98
    theirs = reference.coef_[0]
    cosine = w @ theirs / np.linalg.norm(w) / np.linalg.norm(theirs)
    assert cosine > 0.999
    assert np.linalg.norm(w) == pytest.approx(np.linalg.norm(theirs), rel=0.05)


FCN = DENSE.replace(
    layers=0,
    batch_size=16,
    learning_rate=1e-3,
    conv_layers=3,
    filters=[128, 256, 128],
    kernel_size=[8, 5, 3],
    pool=0,
    batch_norm=True,
    global_pool=True,
)


def test_the_fcn_has_the_published_layer_structure() -> None:
    """Wang et al. 2017: Conv1D(128, 8) BN ReLU, Conv1D(256, 5) BN ReLU, Conv1D(128, 3) BN
    ReLU, global average pooling, the softmax layer; no pooling, no hidden Dense layer."""
    net = ConvNet(FCN, (1, 150), 4, seed=0)
    layers = [(type(m).__name__, m) for m in net.features]
    assert [name for name, _ in layers] == [
        "EvenSameConv1d", "BatchNorm1d", "ReLU",
        "Conv1d", "BatchNorm1d", "ReLU",
        "Conv1d", "BatchNorm1d", "ReLU",
    ]  # fmt: skip
    convs = [m for _, m in layers if isinstance(m, torch.nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1, 128, (8,)),
        (128, 256, (5,)),
        (256, 128, (3,)),
    ]
    assert all(c.bias is None for c in convs)  # batch normalization's shift is the bias
    assert [m.num_features for _, m in layers if isinstance(m, torch.nn.BatchNorm1d)] == [
        128,
        256,
        128,
    ]
    assert not any(isinstance(m, torch.nn.MaxPool1d) for m in net.modules())
    assert net.head.linears() == [net.head.output]  # one Linear, to the classes
    assert (net.head.output.in_features, net.head.output.out_features) == (128, 4)
    x = torch.randn(2, 150)
    assert net.features(x.unflatten(1, (1, 150))).shape == (2, 128, 150)  # "same": no shrinking
    assert net(x).shape == (2, 4)
    assert "conv3x[128,256,128] k=8,5,3 bn gap relu 0x[]" in FCN.short()


@pytest.mark.parametrize("kernel", [2, 4, 8])
@pytest.mark.parametrize("shape", [(3, 13), (3, 11, 9)])
def test_an_even_kernel_is_padded_same_as_torch_pads_it_without_its_warning(kernel, shape) -> None:
    import warnings

    from dltune.nets.conv import same_conv

    two_d = len(shape) == 3
    ours = same_conv(two_d, 3, 5, kernel, bias=True)
    theirs = (torch.nn.Conv2d if two_d else torch.nn.Conv1d)(3, 5, kernel, padding="same")
    theirs.load_state_dict(ours.state_dict())  # the same parameters, by the same names
    x = torch.randn(2, *shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ours(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch: "may require a zero-padded copy"
        expected = theirs(x)
    assert out.shape == expected.shape == (2, 5, *shape[1:])
    torch.testing.assert_close(out, expected)


def test_kernels_per_block_in_images_too() -> None:
    net = ConvNet(_conv(kernel_size=[5, 2], layers=0, global_pool=True), (1, 8, 8), 10)
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(5, 5), (2, 2)]
    assert net(torch.randn(3, 64)).shape == (3, 10)


def test_the_footprint_of_the_linear_model_and_of_the_fcn() -> None:
    from dltune.nets.footprint import footprint_of

    linear = footprint_of(BuiltinNetworks((8,)), DENSE.replace(layers=0), 3, 8)
    assert linear == {"parameters": 8 * 3 + 3, "flops": 2 * 8 * 3}
    fcn = footprint_of(BuiltinNetworks((1, 150)), FCN, 4, 150)
    convs = 1 * 8 * 128 + 128 * 5 * 256 + 256 * 3 * 128  # no biases: batch normalization's
    assert fcn["parameters"] == convs + 2 * (128 + 256 + 128) + 128 * 4 + 4
    assert fcn["flops"] == 2 * 150 * convs + 2 * 128 * 4
