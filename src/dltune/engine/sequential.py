"""The sequential trainer: one configuration at a time, epoch by epoch.

It is the reference for every faster engine: a population member must reproduce its learning
curve. Data order depends only on the shuffle seed and the epoch (not on the trial), so members
that share a batch size can share batches.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..config import Config
from ..nets import BuiltinNetworks, NetworkFactory
from .device_data import DeviceData, check_fold
from .divergence import diverged
from .losses import Metric, loss_function
from .optim import make_optimizer
from .protocol import EpochCallback
from .result import Checkpoint, EpochReport, TrainResult
from .snapshot import (
    Snapshot,
    as_float,
    as_json_number,
    dropout_generators,
    owned,
    prefixed,
    progress_meta,
    put_best,
    result_from,
)

if TYPE_CHECKING:
    from ..data import Dataset

# How often (in steps) the training loss is checked for NaN/inf. Each check is a device sync,
# so not every step; often enough that a diverged run stops within a few milliseconds of work.
DIVERGENCE_CHECK_EVERY = 16
EVAL_CHUNK = 8192

RunCallback = Callable[[EpochReport], bool]  # one run's epoch report -> keep training?


def failed(result: TrainResult, exc: BaseException) -> TrainResult:
    """`result` ended by what a user's model raised while it trained."""
    result.status = "failed"
    result.error = f"training raised {type(exc).__name__}: {exc}"
    return result


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Optimizer steps in an epoch of `n` rows: batches of `batch_size`, the last one the rest;
    a rest of one row joins the batch before it instead (batch normalization cannot normalize
    a batch of one example, and one row's gradient is noise), in every engine alike."""
    if n % batch_size == 1 and n > batch_size:
        return n // batch_size
    return -(-n // batch_size)


def batch_rows(step: int, n: int, batch_size: int) -> tuple[int, int]:
    """(start, end) of step `step`'s rows (0-based) in the epoch's order (steps_per_epoch)."""
    start = step * batch_size
    last = step == steps_per_epoch(n, batch_size) - 1
    return start, n if last else start + batch_size


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
        track_train: bool = False,
        network: NetworkFactory | None = None,
    ) -> None:
        self.tensors = DeviceData(data, metric=metric, device=device)
        # What builds each configuration's module: dltune's own families unless a user's model
        self.network: NetworkFactory = network or BuiltinNetworks(data.input_shape)
        # Measure the metric on a sample of the training rows after every epoch (sweeps show
        # the train-validation gap); an evaluation pass more per epoch.
        self.track_train = track_train
        if track_train:
            self.tensors.add_train_sample()
        self.data = data
        self.device = self.tensors.device
        self.metric: Metric = self.tensors.metric
        self.shuffle_seed = shuffle_seed
        self.n_outputs = self.tensors.n_outputs
        self.splits = self.tensors.splits

    def build_model(self, config: Config, seed: int) -> torch.nn.Module:
        return self.network(config, self.n_outputs, seed=seed, device=self.device)

    @torch.no_grad()
    def evaluate(
        self, model: torch.nn.Module, split: str, loss: str, fold: int | None = None
    ) -> tuple[float, float]:
        """(mean loss, metric) of `model` on a split ("train", "val" or "test"), of fold
        `fold`'s own rows where given."""
        return self.measure(model, split, loss, fold)[:2]

    @torch.no_grad()
    def measure(
        self, model: torch.nn.Module, split: str, loss: str, fold: int | None = None
    ) -> tuple[float, float, torch.Tensor]:
        """evaluate's (mean loss, metric) and the raw outputs they came from."""
        x, y = self.tensors.split(split, fold)
        loss_fn = loss_function(loss, self.data.task, self.n_outputs)
        was_training = model.training
        model.eval()
        outputs = torch.cat([model(x[i : i + EVAL_CHUNK]) for i in range(0, len(x), EVAL_CHUNK)])
        model.train(was_training)
        return float(loss_fn(outputs, y)), float(self.tensors.metric_value(outputs, y)), outputs

    def train(
        self,
        config: Config,
        *,
        seed: int,
        epochs: int | None = None,
        patience: int | None = None,
        on_epoch: RunCallback | None = None,
        keep_best_state: bool = False,
        fold: int | None = None,
    ) -> TrainResult:
        """Train `config` for up to `epochs` (default config.epochs) and return its curve.

        `on_epoch` is called after each epoch's validation; returning False stops the trial
        (pruned). A NaN or infinite training loss ends it as diverged. `fold`: the fold
        member of cross-validated data to train.
        """
        run = self.start(
            config,
            seed=seed,
            epochs=epochs,
            patience=patience,
            keep_best_state=keep_best_state,
            fold=fold,
        )
        while run.advance(on_epoch) is None:
            pass
        return run.result

    def start(
        self,
        config: Config,
        *,
        seed: int,
        epochs: int | None = None,
        patience: int | None = None,
        keep_best_state: bool = False,
        segments: int = 1,
        fold: int | None = None,
    ) -> TrainingRun:
        """A training run that can be advanced, paused (kept) and resumed; see TrainingRun.
        `fold`: a fold member of cross-validated data, trained on its fold's rows."""
        return TrainingRun(
            self, config, seed, epochs or config.epochs, patience, keep_best_state, segments, fold
        )

    def model_from_state(self, config: Config, state: dict[str, torch.Tensor]) -> torch.nn.Module:
        model = self.build_model(config, seed=0)
        model.load_state_dict(state)
        return model


class TrainingRun:
    """One configuration in training: its model, optimizer state and position, kept between
    calls so that successive halving can pause it at a rung and promote it later without
    losing anything (or retraining).

    An epoch is cut into `segments` equal runs of steps (1: whole epochs), the points where a
    rung inside an epoch can stop it; validation runs at each epoch's end and at `until`.
    """

    def __init__(
        self,
        trainer: SequentialTrainer,
        config: Config,
        seed: int,
        max_epochs: int,
        patience: int | None,
        keep_best_state: bool,
        segments: int,
        fold: int | None = None,
    ) -> None:
        check_fold(trainer.tensors, fold)
        self.trainer = trainer
        self.fold = fold  # the fold it trains on and is validated on (None: the splits)
        self.config = config
        self.seed = seed  # its weights' and dropout's (a checkpoint rebuilds it from this)
        self.max_epochs = max_epochs
        self.patience = patience
        self.keep_best_state = keep_best_state
        self.segments = segments
        self.until = float(max_epochs)  # the next point where the caller wants a say
        self.model = trainer.build_model(config, seed)
        self.optimizer = make_optimizer(
            config.optimizer, self.model.parameters(), config.learning_rate, config.weight_decay
        )
        self.loss_fn = loss_function(config.loss, trainer.data.task, trainer.n_outputs)
        self.result = TrainResult(status="running")
        self.epoch = 0  # epochs completed
        self.segment = 0  # segments completed of the current epoch
        self.loss_sum = torch.zeros((), device=trainer.device)
        self.epoch_seconds = 0.0
        self.checkpoint_value = math.nan  # the validation metric where it last stopped
        self.key: Any = None  # the study loop's name for it

    @property
    def epochs_done(self) -> float:
        return self.epoch + self.segment / self.segments

    @property
    def seconds(self) -> float:
        """Training time so far, the current epoch's part included."""
        return self.result.seconds + self.epoch_seconds

    def advance(self, on_epoch: RunCallback | None = None) -> str | None:
        """Train up to the next stopping point; the status if the run ended there
        ("complete", "diverged", "pruned"), "target" when it reached `until`, else None."""
        trainer, device = self.trainer, self.trainer.device
        x_train, y_train = trainer.tensors.split("train", self.fold)
        n, batch_size = len(x_train), self.config.batch_size
        steps = steps_per_epoch(n, batch_size)
        started = time.perf_counter()
        self.model.train()
        order = torch.as_tensor(epoch_order(n, trainer.shuffle_seed, self.epoch + 1), device=device)
        first = steps * self.segment // self.segments
        last = steps * (self.segment + 1) // self.segments
        for step in range(first, last):
            start, end = batch_rows(step, n, batch_size)
            batch = order[start:end]
            loss = self.loss_fn(self.model(x_train[batch]), y_train[batch])
            if step == 0 and self.epoch == 0:  # before any step: what this network cost fresh
                self.result.start_loss = float(loss.detach())
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.loss_sum += loss.detach() * len(batch)
            if (step + 1) % DIVERGENCE_CHECK_EVERY == 0 and not torch.isfinite(self.loss_sum):
                break
        self.segment += 1
        self.epoch_seconds += time.perf_counter() - started
        started = time.perf_counter()
        if self.segment == self.segments:
            return self._end_epoch(on_epoch)
        if not torch.isfinite(self.loss_sum):
            return self._end_epoch(on_epoch)  # diverged inside an epoch: end it there
        if self.epochs_done >= self.until - 1e-9:
            self.checkpoint_value = trainer.evaluate(
                self.model, "val", self.config.loss, self.fold
            )[1]
            self.epoch_seconds += time.perf_counter() - started
            return "target"
        return None

    def _end_epoch(self, on_epoch: RunCallback | None) -> str | None:
        """Validate, record the epoch and apply the end-of-epoch rules, in the order the
        population engine applies them too."""
        started = time.perf_counter()
        self.epoch += 1
        self.segment = 0
        train_loss = float(self.loss_sum) / self.trainer.tensors.n_train
        val_loss, value, outputs = self.trainer.measure(
            self.model, "val", self.config.loss, self.fold
        )
        train_metric = math.nan
        if self.trainer.track_train and math.isfinite(train_loss):
            train_metric = self.trainer.evaluate(
                self.model, "train_sample", self.config.loss, self.fold
            )[1]
        seconds = self.epoch_seconds + time.perf_counter() - started
        report = EpochReport(self.epoch, train_loss, val_loss, value, seconds, train_metric)
        self.loss_sum = torch.zeros((), device=self.trainer.device)
        self.epoch_seconds = 0.0
        result = self.result
        result.history.append(report)
        result.seconds += seconds
        self.checkpoint_value = value
        if diverged(result, self.config.loss, self.trainer.tensors):
            result.status, result.diverged_epoch = "diverged", self.epoch
            return result.status
        improved = self.trainer.metric.improves(result.best_value, value)
        if improved:
            result.best_value, result.best_epoch = value, self.epoch
        if self.keep_best_state and (improved or self.fold is not None):
            state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            kept = outputs.detach().cpu().numpy()
            # a fold member keeps its latest epoch: its trial (folds.py) says which it delivers
            if self.fold is not None:
                result.last_state, result.last_outputs = state, kept
            else:
                result.best_state, result.best_outputs = state, kept
        if on_epoch is not None and not on_epoch(report):
            result.status = "pruned"
            return result.status
        if self.patience is not None and self.epoch - (result.best_epoch or 0) >= self.patience:
            result.stopped_early = True
            result.status = "complete"
            return result.status
        if self.epoch >= self.max_epochs:
            result.status = "complete"
            return result.status
        if self.epoch >= self.until - 1e-9:
            return "target"
        return None

    def snapshot(self) -> Snapshot:
        """Its whole state as plain data, to checkpoint (snapshot.py): weights, optimizer
        state, dropout generators, position and curve."""
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        for index, state in self.optimizer.state_dict()["state"].items():
            for name, value in state.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optim.{index}.{name}"] = value
        for i, generator in enumerate(dropout_generators(self.model)):
            tensors[f"rng.{i}"] = generator.get_state()
        tensors["loss_sum"] = self.loss_sum.reshape(1)
        put_best(tensors, self.result)
        meta = progress_meta(
            self.config, self.max_epochs, self.patience, self.keep_best_state, self.result
        )
        meta |= {
            "seed": self.seed,
            "epoch": self.epoch,
            "segment": self.segment,
            "segments": self.segments,
            "epoch_seconds": self.epoch_seconds,
            "checkpoint_value": as_json_number(self.checkpoint_value),
            "fold": self.fold,
        }
        return Snapshot("run", meta, owned(tensors))

    def load(self, snapshot: Snapshot) -> None:
        """Take the state a snapshot of a run of the same configuration holds."""
        meta, tensors = snapshot.meta, snapshot.tensors
        self.model.load_state_dict(prefixed(tensors, "model."))
        state: dict[int, dict[str, torch.Tensor]] = {}
        for name, tensor in prefixed(tensors, "optim.").items():
            index, field_name = name.split(".", 1)
            state.setdefault(int(index), {})[field_name] = tensor.clone()
        groups = self.optimizer.state_dict()["param_groups"]
        self.optimizer.load_state_dict({"state": state, "param_groups": groups})
        for i, generator in enumerate(dropout_generators(self.model)):
            generator.set_state(tensors[f"rng.{i}"])
        self.epoch, self.segment = int(meta["epoch"]), int(meta["segment"])
        self.loss_sum = tensors["loss_sum"].reshape(()).to(self.trainer.device).clone()
        self.epoch_seconds = float(meta["epoch_seconds"])
        self.checkpoint_value = as_float(meta["checkpoint_value"])
        self.result = result_from(meta, tensors)


class SequentialEngine:
    """Training runs advanced one at a time, behind the population engine's interface (add,
    advance, set_until, pause, resume, stop), so that one study loop drives both."""

    def __init__(self, trainer: SequentialTrainer, segments: int = 1) -> None:
        self.trainer = trainer
        self.segments = segments
        # a user's modules: what they raise as they train fails their trial alone
        self.user_code = not isinstance(trainer.network, BuiltinNetworks)
        self.runs: dict[Any, TrainingRun] = {}
        self.epochs_trained = 0.0

    def __len__(self) -> int:
        return len(self.runs)

    def has_room(self, config: Config) -> bool:
        return True

    def add(
        self,
        key: Any,
        config: Config,
        *,
        seed: int,
        patience: int | None = None,
        keep_best_state: bool = False,
        until: float | None = None,
        fold: int | None = None,
    ) -> None:
        run = self.trainer.start(
            config,
            seed=seed,
            patience=patience,
            keep_best_state=keep_best_state,
            segments=self.segments,
            fold=fold,
        )
        self.resume(run, until, key=key)

    def resume(self, run: TrainingRun, until: float | None = None, *, key: Any = None) -> None:
        run.until = float(run.max_epochs) if until is None else until
        self.runs[run.key if key is None else key] = run
        run.key = run.key if key is None else key

    def running_result(self, key: Any) -> TrainResult:
        """A run's result so far, in place."""
        return self.runs[key].result

    def set_until(self, key: Any, until: float) -> None:
        self.runs[key].until = until

    def pause(self, key: Any) -> TrainingRun:
        return self.runs.pop(key)

    def stop(self, key: Any, status: str = "pruned") -> TrainResult:
        result = self.runs.pop(key).result
        result.status = status
        return result

    def snapshot(self, key: Any) -> TrainingRun | None:
        """The running trial itself: a checkpoint serializes it at once (snapshot.py)."""
        return self.runs.get(key)

    def restore(self, snapshot: Snapshot, key: Any) -> TrainingRun | None:
        """A paused run in a checkpoint's state, named `key`, for resume(); None for a
        population member's checkpoint (this engine trains runs only)."""
        if snapshot.kind != "run":
            return None
        meta = snapshot.meta
        run = self.trainer.start(
            Config.from_dict(meta["config"]),
            seed=int(meta["seed"]),
            epochs=int(meta["max_epochs"]),
            patience=meta["patience"],
            keep_best_state=bool(meta["keep_best_state"]),
            segments=int(meta["segments"]),
            fold=meta.get("fold"),
        )
        run.load(snapshot)
        run.key = key
        return run

    def advance(
        self, on_epoch: EpochCallback | None = None
    ) -> tuple[list[tuple[Any, TrainResult]], list[Checkpoint]]:
        """One segment of each run (one run, as the study loop uses it)."""
        finished: list[tuple[Any, TrainResult]] = []
        at_target: list[Checkpoint] = []
        for key, run in list(self.runs.items()):

            def callback(report: EpochReport, key: Any = key) -> bool:
                return on_epoch is None or on_epoch(key, report)

            try:
                status = run.advance(callback)
            except (Exception, SystemExit) as exc:
                if not self.user_code:
                    raise
                # a user's model raised (or called sys.exit()) as it trained: its trial
                # fails, the study goes on
                del self.runs[key]
                finished.append((key, failed(run.result, exc)))
                continue
            self.epochs_trained += 1 / self.segments
            if status == "target":
                at_target.append(
                    Checkpoint(key, run.epochs_done, run.checkpoint_value, run.seconds)
                )
            elif status is not None:
                del self.runs[key]
                finished.append((key, run.result))
        return finished, at_target
