"""A network's deployment cost before it trains (nets/footprint.py): parameters and flops
against hand counts for the dense and convolutional families, and a latency measured without
changing the model."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dltune.nets import BuiltinNetworks
from dltune.nets.footprint import flops, latency_ms, parameter_count

from .helpers import make_config


def test_a_dense_networks_parameters_and_flops_are_its_layers():
    config = make_config(layers=2, units=(32, 16), dropout=0.2)
    model = BuiltinNetworks((64,))(config, 10, seed=0, device="cpu")
    linears = [(64, 32), (32, 16), (16, 10)]
    assert parameter_count(model) == sum(i * o + o for i, o in linears)
    assert flops(model, 64) == sum(2 * i * o for i, o in linears)


def test_a_convolutional_networks_flops_count_each_output_position():
    config = make_config(conv_layers=1, filters=(4,), kernel_size=3, pool=2, units=(16,))
    model = BuiltinNetworks((1, 8, 8))(config, 10, seed=0, device="cpu")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 and convs[0].padding == "same"
    counted = flops(model, 64)
    conv = 2 * (4 * 8 * 8) * (1 * 3 * 3)  # 'same' padding: 4 channels of 8 x 8 outputs
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    dense = sum(2 * m.in_features * m.out_features for m in linears)
    assert counted == conv + dense
    assert parameter_count(model) == sum(p.numel() for p in model.parameters())


def test_the_latency_is_a_median_of_predictions_that_leave_the_model_as_it_was():
    model = BuiltinNetworks((64,))(make_config(dropout=0.5), 10, seed=0, device="cpu")
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    one, many = latency_ms(model, 64, batch=1), latency_ms(model, 64, batch=256, repeats=5)
    assert math.isfinite(one) and one > 0 and math.isfinite(many) and many > 0
    assert model.training  # evaluation mode only while timing
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(RuntimeError):
        latency_ms(model, 63)  # the wrong width is torch's error, not a figure


def test_every_trial_of_a_study_stores_its_networks_size_before_it_trains(blobs, tmp_path):
    from dltune.config import Config
    from dltune.storage import read_trials
    from dltune.study import tune

    space = {"layers": [1, 2], "units": [8, 64], "epochs": 2, "optimizer": "adam"}
    storage = f"sqlite:///{tmp_path / 'sizes.db'}"
    result = tune(space, blobs, storage=storage, trials=4, seed=0, schedule="none", workers=1)
    records = read_trials(result.study)
    assert records and all(r.parameters and r.flops for r in records)
    n_features = blobs.x_train.shape[1]
    for record in records:
        config = Config.from_dict(record.config)
        model = BuiltinNetworks(blobs.input_shape)(config, 3, seed=0, device="cpu")
        assert record.parameters == parameter_count(model)
        assert record.flops == flops(model, n_features)
        assert record.to_json()["parameters"] == record.parameters
