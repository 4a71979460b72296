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
    """Features and targets of each split on `device`; regression targets standardized.

    A cross-validated dataset (data.folds) holds its pool as the "train" split, and the rows of
    each fold: a member of fold f gathers its batches from its fold's training rows of the pool
    and is validated on its fold's rows (member_orders, member_rows); `split(name, fold)` gives
    one fold's rows as a split of their own, what a fold member trained alone sees.
    """

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
        self.folds = data.folds
        self._fold_splits: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}
        if self.folds is not None:
            x_pool, y_pool = data.pool()
            self.splits["train"] = (self._features(x_pool), self._targets(y_pool))
            # (K, n_train) each fold member's training rows of the pool
            self.fold_train = torch.as_tensor(self.folds.train_rows, device=self.device)
            self.fold_val = [
                torch.as_tensor(self.folds.val_rows(f), device=self.device)
                for f in range(self.folds.k)
            ]

    @property
    def n_train(self) -> int:
        """Training rows of one member (of one fold member, where the data have folds)."""
        return self.folds.n_train if self.folds is not None else len(self.splits["train"][0])

    def split(self, name: str, fold: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of a split; of fold `fold`'s own rows where given ("train", "val",
        "train_sample"): what that fold member sees, as a dataset of its own would hold it."""
        if fold is None or name == "test":
            return self.splits[name]
        if self.folds is None:
            raise ValueError("a fold was asked of data without folds")
        key = (name, fold)
        if key not in self._fold_splits:
            x, y = self.splits["train"]
            if name == "train_sample":
                train_x, train_y = self.split("train", fold)
                size = min(len(train_x), max(1, len(self.fold_val[fold])), MAX_TRAIN_SAMPLE)
                index = _sample_index(len(train_x), size, self.device)
                self._fold_splits[key] = (train_x[index], train_y[index])
            else:
                rows = self.fold_train[fold] if name == "train" else self.fold_val[fold]
                self._fold_splits[key] = (x[rows], y[rows])
        return self._fold_splits[key]

    def member_orders(self, folds: list[int | None], orders: torch.Tensor) -> torch.Tensor:
        """(P, n) rows of the "train" split to draw each member's batches from, given (P, n)
        positions in its own training rows (its epoch's order): the positions themselves for
        members of no fold, its fold's training rows of the pool in that order otherwise."""
        if all(f is None for f in folds):
            return orders
        table = self.fold_train[torch.as_tensor(folds, device=self.device)]  # (P, n_train)
        return table.gather(1, orders.to(self.device))

    def member_rows(
        self, split: str, folds: list[int | None]
    ) -> tuple[torch.Tensor, torch.Tensor, list[int]] | None:
        """Each member's own rows of `split` where members have folds: x (P, V, F) and y (P, V),
        padded to the longest fold by repeating its rows, and each member's own count; None
        when the members share the split's rows (no folds)."""
        if all(f is None for f in folds) or split == "test":
            return None
        parts = [self.split(split, f) for f in folds]
        lengths = [len(p[1]) for p in parts]
        longest = max(lengths)

        def padded(t: torch.Tensor) -> torch.Tensor:
            if len(t) == longest:
                return t
            return torch.cat([t, t[: longest - len(t)]])

        x = torch.stack([padded(p[0]) for p in parts])
        y = torch.stack([padded(p[1]) for p in parts])
        return x, y, lengths

    def add_train_sample(self) -> None:
        """Add split "train_sample": a fixed random sample of the training rows, as many as the
        validation split (at most MAX_TRAIN_SAMPLE), on which the train metric is measured
        in evaluation mode. Only trainers that track the train metric pay for it."""
        if "train_sample" in self.splits:
            return
        x, y = self.splits["train"]
        size = min(len(x), max(1, len(self.splits["val"][0])), MAX_TRAIN_SAMPLE)
        index = _sample_index(len(x), size, self.device)
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


def _sample_index(n: int, size: int, device: torch.device) -> torch.Tensor:
    """A fixed random sample of `size` of `n` rows, in order."""
    rows = np.random.default_rng(TRAIN_SAMPLE_SEED).permutation(n)[:size]
    return torch.as_tensor(np.sort(rows), device=device)


def check_fold(data: DeviceData, fold: int | None) -> None:
    """A member of cross-validated data trains on one fold, and a member of other data on
    none: its training rows would otherwise include its validation rows."""
    if data.folds is None and fold is not None:
        raise ValueError(f"fold {fold} was given, but the data have no folds")
    if data.folds is not None and (fold is None or not 0 <= fold < data.folds.k):
        raise ValueError(
            f"the data are cross-validated in {data.folds.k} folds: give each member its fold "
            f"(0..{data.folds.k - 1}); got {fold!r}"
        )
