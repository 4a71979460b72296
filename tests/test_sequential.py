"""The sequential trainer on tiny problems: it learns, it detects divergence, it is seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dltune.engine import SequentialTrainer
from dltune.vocabulary import ACTIVATIONS, LOSSES, OPTIMIZERS

from .helpers import make_config


def test_accuracy_rises_on_separable_classes(blobs):
    trainer = SequentialTrainer(blobs)
    result = trainer.train(make_config(), seed=0)
    curve = [r.val_metric for r in result.history]
    assert result.status == "complete"
    assert len(curve) == 5
    assert curve[-1] > 0.9 > 1 / 3  # far above chance (1/3)
    assert result.best_value == max(curve)
    assert result.best_epoch == curve.index(max(curve)) + 1
    # the training loss falls
    assert result.history[-1].train_loss < result.history[0].train_loss


def test_huge_learning_rate_is_reported_as_diverged(blobs):
    trainer = SequentialTrainer(blobs)
    # (With mean squared error on softmax outputs a huge step saturates the softmax instead:
    # the gradients vanish and the loss stays finite. Cross-entropy's do not.)
    config = make_config(optimizer="sgd", learning_rate=1e3, layers=2, units=(64, 64), epochs=10)
    result = trainer.train(config, seed=0)
    assert result.status == "diverged"
    assert result.diverged_epoch is not None
    assert result.epochs_run == result.diverged_epoch < 10


def test_same_seed_same_curve_and_other_seed_another(blobs):
    trainer = SequentialTrainer(blobs)
    config = make_config(dropout=0.3, layers=2, units=(32, 16))
    a = trainer.train(config, seed=7)
    torch.manual_seed(12345)  # the global generator must not matter
    torch.rand(100)
    b = trainer.train(config, seed=7)
    c = trainer.train(config, seed=8)
    assert [r.train_loss for r in a.history] == [r.train_loss for r in b.history]
    assert [r.train_loss for r in a.history] != [r.train_loss for r in c.history]


def _combinations() -> list[tuple[str, str, str]]:
    """Every optimizer, every activation and every classification loss, each at least once."""
    n = max(len(OPTIMIZERS), len(ACTIVATIONS), len(LOSSES))
    return [
        (
            OPTIMIZERS[i % len(OPTIMIZERS)],
            ACTIVATIONS[i % len(ACTIVATIONS)],
            list(LOSSES)[i % len(LOSSES)],
        )
        for i in range(n)
    ]


@pytest.mark.parametrize(("optimizer", "activation", "loss"), _combinations())
def test_every_optimizer_activation_and_loss_trains(blobs, optimizer, activation, loss):
    lr = 0.5 if optimizer in ("sgd", "adagrad") else 0.01
    config = make_config(
        optimizer=optimizer, activation=activation, loss=loss, learning_rate=lr, epochs=8
    )
    result = SequentialTrainer(blobs).train(config, seed=0)
    assert result.status == "complete"
    assert result.best_value is not None and result.best_value > 0.6


def test_pruning_callback_stops_the_trial(blobs):
    seen = []

    def stop_after_two(report):
        seen.append(report.epoch)
        return report.epoch < 2

    result = SequentialTrainer(blobs).train(make_config(), seed=0, on_epoch=stop_after_two)
    assert result.status == "pruned"
    assert seen == [1, 2]
    assert result.epochs_run == 2


def test_patience_stops_on_a_plateau(blobs):
    # A tiny learning rate barely moves: validation accuracy plateaus at once.
    config = make_config(optimizer="sgd", learning_rate=1e-7, epochs=30)
    result = SequentialTrainer(blobs).train(config, seed=0, patience=2)
    assert result.stopped_early
    assert result.epochs_run == result.best_epoch + 2 < 30


def test_best_state_holds_the_weights_of_the_best_epoch(blobs):
    trainer = SequentialTrainer(blobs)
    config = make_config(epochs=4)
    result = trainer.train(config, seed=3, keep_best_state=True)
    model = trainer.model_from_state(config, result.best_state)
    _, value = trainer.evaluate(model, "val", config.loss)
    assert value == result.best_value


def test_regression_reports_rmse_in_original_units(linear_regression):
    trainer = SequentialTrainer(linear_regression)
    assert trainer.metric.name == "rmse"
    config = make_config(
        loss="mean_squared_error", activation="linear", epochs=30, learning_rate=0.01
    )
    result = trainer.train(config, seed=0, keep_best_state=True)
    model = trainer.model_from_state(config, result.best_state)
    x = torch.as_tensor(linear_regression.x_val)
    with torch.no_grad():
        predicted = model(x).squeeze(-1) * trainer.tensors.target_std + trainer.tensors.target_mean
    manual_rmse = float((predicted - torch.as_tensor(linear_regression.y_val)).pow(2).mean().sqrt())
    assert result.best_value == pytest.approx(manual_rmse, rel=1e-4)
    # the target's scale is ~35: a linear model recovers it to within the noise (~1) and a bit
    assert result.best_value < 3.0


def test_a_run_paused_at_a_rung_inside_an_epoch_goes_on_as_if_never_stopped(blobs):
    trainer = SequentialTrainer(blobs)
    config = make_config(epochs=3, dropout=0.2)
    run = trainer.start(config, seed=5, segments=4)
    run.until = 0.75
    statuses = [run.advance() for _ in range(3)]
    assert statuses == [None, None, "target"]
    assert run.epochs_done == 0.75 and 0 <= run.checkpoint_value <= 1
    run.until = 2
    while (status := run.advance()) is None:
        pass
    assert status == "target" and run.epochs_done == 2
    run.until = 3
    while run.advance() is None:
        pass
    whole = trainer.train(config, seed=5)
    assert run.result.status == "complete"
    np.testing.assert_allclose(
        [r.val_loss for r in run.result.history], [r.val_loss for r in whole.history], rtol=1e-6
    )
    np.testing.assert_allclose(
        [r.train_loss for r in run.result.history],
        [r.train_loss for r in whole.history],
        rtol=1e-6,
    )
