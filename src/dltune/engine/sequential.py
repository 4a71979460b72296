"""The sequential trainer: one configuration at a time, epoch by epoch.

It is the reference for every faster engine: a population member must reproduce its learning
curve. Data order depends only on the shuffle seed and the epoch (not on the trial), so members
that share a batch size can share batches.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..config import Config
from ..models import DenseNet
from .device_data import DeviceData
from .losses import Metric, loss_function
from .optim import make_optimizer
from .result import EpochReport, TrainResult

if TYPE_CHECKING:
    from ..data import Dataset

# How often (in steps) the training loss is checked for NaN/inf. Each check is a device sync,
# so not every step; often enough that a diverged run stops within a few milliseconds of work.
DIVERGENCE_CHECK_EVERY = 16
EVAL_CHUNK = 8192

EpochCallback = Callable[[EpochReport], bool]


def epoch_order(n: int, shuffle_seed: int, epoch: int) -> np.ndarray:
    """The order of the training rows in `epoch` (1-based), from the seed and epoch alone."""
    return np.random.default_rng([shuffle_seed, epoch]).permutation(n)


class SequentialTrainer:
    """Trains configurations one at a time on a dataset held on `device`."""

    def __init__(
        self,
        data: Dataset,
        *,
        metric: str | None = None,
        device: str | torch.device = "cpu",
        shuffle_seed: int = 0,
    ) -> None:
        self.tensors = DeviceData(data, metric=metric, device=device)
        self.data = data
        self.device = self.tensors.device
        self.metric: Metric = self.tensors.metric
        self.shuffle_seed = shuffle_seed
        self.n_outputs = self.tensors.n_outputs
        self.splits = self.tensors.splits

    def build_model(self, config: Config, seed: int) -> DenseNet:
        return DenseNet(config, self.data.n_features, self.n_outputs, seed=seed, device=self.device)

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, split: str, loss: str) -> tuple[float, float]:
        """(mean loss, metric) of `model` on a split ("train", "val" or "test")."""
        x, y = self.splits[split]
        loss_fn = loss_function(loss, self.data.task, self.n_outputs)
        was_training = model.training
        model.eval()
        outputs = torch.cat([model(x[i : i + EVAL_CHUNK]) for i in range(0, len(x), EVAL_CHUNK)])
        model.train(was_training)
        return float(loss_fn(outputs, y)), float(self.tensors.metric_value(outputs, y))

    def train(
        self,
        config: Config,
        *,
        seed: int,
        epochs: int | None = None,
        patience: int | None = None,
        on_epoch: EpochCallback | None = None,
        keep_best_state: bool = False,
    ) -> TrainResult:
        """Train `config` for up to `epochs` (default config.epochs) and return its curve.

        `on_epoch` is called after each epoch's validation; returning False stops the trial
        (pruned). A NaN or infinite training loss ends it as diverged.
        """
        started = time.perf_counter()
        model = self.build_model(config, seed)
        optimizer = make_optimizer(
            config.optimizer, model.parameters(), config.learning_rate, config.weight_decay
        )
        loss_fn = loss_function(config.loss, self.data.task, self.n_outputs)
        x_train, y_train = self.splits["train"]
        n = len(x_train)
        result = TrainResult(status="complete")
        for epoch in range(1, (epochs or config.epochs) + 1):
            epoch_started = time.perf_counter()
            model.train()
            order = torch.as_tensor(epoch_order(n, self.shuffle_seed, epoch), device=self.device)
            loss_sum = torch.zeros((), device=self.device)
            for step, start in enumerate(range(0, n, config.batch_size), start=1):
                batch = order[start : start + config.batch_size]
                loss = loss_fn(model(x_train[batch]), y_train[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach() * len(batch)
                if step % DIVERGENCE_CHECK_EVERY == 0 and not torch.isfinite(loss_sum):
                    break
            train_loss = float(loss_sum) / n
            val_loss, value = self.evaluate(model, "val", config.loss)
            report = EpochReport(
                epoch, train_loss, val_loss, value, time.perf_counter() - epoch_started
            )
            result.history.append(report)
            if not math.isfinite(train_loss):
                result.status, result.diverged_epoch = "diverged", epoch
                break
            if self.metric.improves(result.best_value, value):
                result.best_value, result.best_epoch = value, epoch
                if keep_best_state:
                    result.best_state = {
                        k: v.detach().clone() for k, v in model.state_dict().items()
                    }
            if on_epoch is not None and not on_epoch(report):
                result.status = "pruned"
                break
            if patience is not None and epoch - (result.best_epoch or epoch) >= patience:
                result.stopped_early = True
                break
        result.seconds = time.perf_counter() - started
        return result

    def model_from_state(self, config: Config, state: dict[str, torch.Tensor]) -> DenseNet:
        model = self.build_model(config, seed=0)
        model.load_state_dict(state)
        return model
