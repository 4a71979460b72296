"""A dataset's splits as tensors on the training device, in the form the losses expect."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..vocabulary import DEFAULT_METRIC
from .losses import Metric, metric_named

if TYPE_CHECKING:
    from ..data import Dataset

# The training rows on which the train metric is measured (see train_sample): as many as the
# validation split has, so that the train-validation gap compares samples of one size.
TRAIN_SAMPLE_SEED = 20_240_917
MAX_TRAIN_SAMPLE = 10_000


class DeviceData:
    """Features and targets of each split on `device`; regression targets standardized."""

    def __init__(
        self, data: Dataset, *, metric: str | None = None, device: str | torch.device = "cpu"
    ) -> None:
        self.data = data
        self.task = data.task
        self.device = torch.device(device)
        self.metric: Metric = metric_named(metric or DEFAULT_METRIC[data.task])
        self.n_features = data.n_features
        self.n_outputs: int = (data.n_classes or 1) if data.task == "classification" else 1
        self.target_mean = float(data.target_mean or 0.0)
        self.target_std = float(data.target_std or 1.0)
        self.splits = {
            "train": (self._features(data.x_train), self._targets(data.y_train)),
            "val": (self._features(data.x_val), self._targets(data.y_val)),
            "test": (self._features(data.x_test), self._targets(data.y_test)),
        }

    def add_train_sample(self) -> None:
        """Add split "train_sample": a fixed random sample of the training rows, as many as the
        validation split (at most MAX_TRAIN_SAMPLE), on which the train metric is measured
        in evaluation mode. Only trainers that track the train metric pay for it."""
        if "train_sample" in self.splits:
            return
        x, y = self.splits["train"]
        size = min(len(x), max(1, len(self.splits["val"][0])), MAX_TRAIN_SAMPLE)
        rows = np.random.default_rng(TRAIN_SAMPLE_SEED).permutation(len(x))[:size]
        index = torch.as_tensor(np.sort(rows), device=self.device)
        self.splits["train_sample"] = (x.index_select(0, index), y.index_select(0, index))

    def _features(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32), device=self.device)

    def _targets(self, y: np.ndarray) -> torch.Tensor:
        if self.task == "classification":
            return torch.as_tensor(np.asarray(y, dtype=np.int64), device=self.device)
        # Regression targets are standardized for training; metrics undo it.
        scaled = (np.asarray(y, dtype=np.float32) - self.target_mean) / self.target_std
        return torch.as_tensor(scaled, device=self.device)

    def metric_value(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The metric in the target's own units; one value per leading (member) index."""
        return self.metric.compute(
            outputs, targets, target_mean=self.target_mean, target_std=self.target_std
        )
