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
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv1d | torch.nn.Conv2d)]
    assert [type(c).__name__ for c in convs] == ["Conv2d" if len(shape) == 3 else "Conv1d"] * 2
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
