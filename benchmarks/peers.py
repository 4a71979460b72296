"""dltune against the tools people use today, side by side: how soon each reaches a good model.

    python benchmarks/peers.py [--budget 300] [--seeds 0 1 2] [--tools optuna kerastuner dltune]
                               [--quick] [--out /tmp/peers.json]

Same search space (dltune's default: 1-3 layers of 16-1024 units (log), relu/sigmoid/tanh/elu,
dropout 0-0.5, categorical cross-entropy or mean squared error, sgd/adam/rmsprop/adagrad,
learning rate 1e-4 to 1 (log), batch size 16-256, up to 27 epochs), same data (the 10,000 MNIST
images in ../shared/data/mnist-10k, split 7000/1500/1500 by dltune.load_data, seed 0, the same
standardized arrays for every tool), same wall-clock budget, seeds alternating:

1. optuna: TPE + HyperbandPruner(1, 27, 3) driving a plain PyTorch loop, written as Optuna's
   own PyTorch example (pytorch_simple.py) writes it: define-by-run model, DataLoader,
   report the validation accuracy each epoch, prune when told;
2. kerastuner: Keras Tuner's Hyperband(max_epochs=27, factor=3) on Keras 3, torch backend;
3. dltune: dltune.tune with DLTUNE_OPTIONS below.

Each arm runs in a child process of its own (no shared imports, threads or caches) and logs
every epoch's validation accuracy with the time since its search began. The budget's clock
starts when the search starts (after imports and data loading, which every arm pays apart).

What is printed: each tool's best validation accuracy over time and its final choice's test
accuracy; for each peer, the time the peer needed to reach its own final best validation
accuracy, the time dltune needed to reach it, and the ratio (the target: at most 0.25); and
dltune's test accuracy minus the peer's. Medians over seeds at the end.

The final choice of a peer is its model at the epoch with the best validation accuracy (the
test split is evaluated there, when a trial sets a new best for its arm: rare and cheap, and
never used for choosing). dltune's is its own best trial, tested once by dltune itself.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-10k"
TOOLS = ("optuna", "kerastuner", "dltune")
MAX_EPOCHS = 27

# dltune's settings for this benchmark (the search space is the default one either way):
# rungs from a quarter of an epoch, so that hopeless configurations cost little.
DLTUNE_OPTIONS: dict[str, Any] = {"space": {"min_epochs": 0.25}, "engine": "sequential"}

# The default space, spelled out for the peers.
LAYERS = (1, 3)
UNITS = (16, 1024)
ACTIVATIONS = ["relu", "sigmoid", "tanh", "elu"]
DROPOUT = (0.0, 0.5)
LOSSES = ["categorical_crossentropy", "mean_squared_error"]
OPTIMIZERS = ["sgd", "adam", "rmsprop", "adagrad"]
LEARNING_RATE = (1e-4, 1.0)
BATCH_SIZES = [16, 32, 64, 128, 256]


# ---------------------------------------------------------------------------------------------
# The arms (each in its own process)
# ---------------------------------------------------------------------------------------------


class EventLog:
    """JSON lines of {t, val, test, trial, epoch}: one per epoch of any trial."""

    def __init__(self, path: str, budget: float) -> None:
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed at exit
        self.budget = budget
        self.best = -1.0
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def over(self) -> bool:
        return self.elapsed() >= self.budget

    def epoch(self, val: float, trial: Any, epoch: int, test: float | None = None) -> None:
        event = {"t": self.elapsed(), "val": val, "test": test, "trial": trial, "epoch": epoch}
        self.file.write(json.dumps(event) + "\n")
        self.file.flush()
        self.best = max(self.best, val)

    def final(self, **fields: Any) -> None:
        self.file.write(json.dumps({"final": True, **fields}) + "\n")
        self.file.flush()


def load_arrays() -> dict[str, Any]:
    import dltune

    data = dltune.load_data(MNIST)
    return {
        name: getattr(data, name)
        for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
    }


def arm_optuna(seed: int, budget: float, log_path: str) -> None:
    import optuna
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    arrays = {k: torch.as_tensor(v) for k, v in load_arrays().items()}
    torch.manual_seed(seed)
    activations = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "elu": nn.ELU}
    optimizers = {
        "sgd": torch.optim.SGD,
        "adam": torch.optim.Adam,
        "rmsprop": torch.optim.RMSprop,
        "adagrad": torch.optim.Adagrad,
    }

    def define_model(trial: optuna.Trial) -> nn.Module:
        n_layers = trial.suggest_int("layers", *LAYERS)
        units = trial.suggest_int("units", *UNITS, log=True)
        activation = trial.suggest_categorical("activation", ACTIVATIONS)
        dropout = trial.suggest_float("dropout", *DROPOUT)
        layers: list[nn.Module] = []
        in_features = arrays["x_train"].shape[1]
        for _ in range(n_layers):
            layers += [
                nn.Linear(in_features, units),
                activations[activation](),
                nn.Dropout(dropout),
            ]
            in_features = units
        layers.append(nn.Linear(in_features, 10))
        return nn.Sequential(*layers)

    def loss_of(name: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if name == "categorical_crossentropy":
            return nn.functional.cross_entropy(output, target)
        one_hot = nn.functional.one_hot(target, 10).float()
        return nn.functional.mse_loss(output.softmax(dim=1), one_hot)

    log = EventLog(log_path, budget)

    def accuracy(model: nn.Module, split: str) -> float:
        model.eval()
        with torch.no_grad():
            predicted = model(arrays[f"x_{split}"]).argmax(dim=1)
        return float((predicted == arrays[f"y_{split}"]).float().mean())

    def objective(trial: optuna.Trial) -> float:
        model = define_model(trial)
        loss_name = trial.suggest_categorical("loss", LOSSES)
        optimizer_name = trial.suggest_categorical("optimizer", OPTIMIZERS)
        lr = trial.suggest_float("learning_rate", *LEARNING_RATE, log=True)
        batch_size = trial.suggest_categorical("batch_size", BATCH_SIZES)
        optimizer = optimizers[optimizer_name](model.parameters(), lr=lr)
        train_loader = DataLoader(
            TensorDataset(arrays["x_train"], arrays["y_train"]),
            batch_size=batch_size,
            shuffle=True,
        )
        value = 0.0
        for epoch in range(MAX_EPOCHS):
            model.train()
            for x, y in train_loader:
                optimizer.zero_grad()
                loss = loss_of(loss_name, model(x), y)
                loss.backward()
                optimizer.step()
            value = accuracy(model, "val")
            if log.over():
                log.file.close()
                os._exit(0)  # the budget is spent: nothing after it counts
            test = accuracy(model, "test") if value > log.best else None
            log.epoch(value, trial.number, epoch + 1, test)
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=MAX_EPOCHS, reduction_factor=3
        ),
    )
    log.started = time.perf_counter()
    study.optimize(objective, timeout=budget)
    log.final(trials=len(study.trials))


def arm_kerastuner(seed: int, budget: float, log_path: str) -> None:
    os.environ["KERAS_BACKEND"] = "torch"
    import keras
    import keras_tuner
    import numpy as np

    arrays = load_arrays()
    one_hot = {s: np.eye(10, dtype="float32")[arrays[f"y_{s}"]] for s in ("train", "val", "test")}
    log = EventLog(log_path, budget)
    keras.utils.set_random_seed(seed)

    class Hypermodel(keras_tuner.HyperModel):
        def build(self, hp: Any) -> Any:
            model = keras.Sequential([keras.Input((arrays["x_train"].shape[1],))])
            layers = hp.Int("layers", *LAYERS)
            units = hp.Int("units", *UNITS, sampling="log")
            activation = hp.Choice("activation", ACTIVATIONS)
            dropout = hp.Float("dropout", *DROPOUT)
            for _ in range(layers):
                model.add(keras.layers.Dense(units))
                model.add(keras.layers.Activation(activation))
                model.add(keras.layers.Dropout(dropout))
            model.add(keras.layers.Dense(10, activation="softmax"))
            optimizer = keras.optimizers.get(
                {
                    "class_name": hp.Choice("optimizer", OPTIMIZERS),
                    "config": {
                        "learning_rate": hp.Float("learning_rate", *LEARNING_RATE, sampling="log")
                    },
                }
            )
            model.compile(
                optimizer=optimizer,
                loss=hp.Choice("loss", LOSSES),
                metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
            )
            return model

        def fit(self, hp: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
            return model.fit(*args, batch_size=hp.Choice("batch_size", BATCH_SIZES), **kwargs)

    class Logger(keras.callbacks.Callback):
        """Logs each epoch; ends the process once the budget is spent."""

        trial = 0

        def on_train_begin(self, logs: Any = None) -> None:
            Logger.trial += 1
            self.epoch_count = 0

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if log.over():
                log.file.close()
                os._exit(0)
            self.epoch_count += 1
            value = float(logs["val_accuracy"])
            test = None
            if value > log.best:
                test = float(self.model.evaluate(arrays["x_test"], one_hot["test"], verbose=0)[1])
            log.epoch(value, Logger.trial, self.epoch_count, test)

    tuner = keras_tuner.Hyperband(
        Hypermodel(),
        objective="val_accuracy",
        max_epochs=MAX_EPOCHS,
        factor=3,
        seed=seed,
        directory=tempfile.mkdtemp(prefix="kt-"),
        project_name="peers",
        overwrite=True,
    )
    log.started = time.perf_counter()
    tuner.search(
        arrays["x_train"],
        one_hot["train"],
        validation_data=(arrays["x_val"], one_hot["val"]),
        callbacks=[Logger()],
        verbose=0,
    )
    log.final(trials=Logger.trial)


def arm_dltune(seed: int, budget: float, log_path: str) -> None:
    import optuna

    import dltune
    from dltune.progress import ProgressListener

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = dltune.load_data(MNIST)
    log = EventLog(log_path, budget)

    class Listener(ProgressListener):
        def epoch_done(self, number: int, report: Any) -> None:
            log.epoch(report.val_metric, number, report.epoch)

    folder = tempfile.mkdtemp(prefix="dltune-peers-")
    log.started = time.perf_counter()
    result = dltune.tune(
        data=data,
        storage=f"sqlite:///{folder}/dltune.db",
        study_name=f"peers-{seed}",
        timeout=budget,
        seed=seed,
        progress=Listener(),
        **DLTUNE_OPTIONS,
    )
    best = result.best or {}
    log.final(
        trials=result.trials_run,
        choice_val=best.get("value"),
        choice_test=best.get("test"),
        seconds=result.seconds,
        overhead_seconds=result.overhead_seconds,
        epochs_trained=result.epochs_trained,
        best_epoch=best.get("best_epoch"),
        params=best.get("params"),
    )


ARMS = {"optuna": arm_optuna, "kerastuner": arm_kerastuner, "dltune": arm_dltune}


# ---------------------------------------------------------------------------------------------
# The parent: run the arms, read their logs, compare
# ---------------------------------------------------------------------------------------------


def run_arm(tool: str, seed: int, budget: float) -> dict[str, Any]:
    """Run one arm in a child process; its events and final line."""
    if tool == "kerastuner" and not all(
        importlib.util.find_spec(name) for name in ("keras", "keras_tuner")
    ):
        return {"skipped": "pip install keras keras-tuner"}
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as handle:
        log_path = handle.name
    command = [sys.executable, __file__, "--arm", tool, "--seed", str(seed)]
    command += ["--budget", str(budget), "--log", log_path]
    started = time.perf_counter()
    # Imports and data loading come before the clock starts; dltune tests its choice after.
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run(command, check=False, timeout=budget + 180)
    wall = time.perf_counter() - started
    lines = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line]
    os.unlink(log_path)
    events = [e for e in lines if not e.get("final") and e["t"] <= budget]
    final = next((e for e in lines if e.get("final")), {})
    return {"events": events, "final": final, "wall": wall}


def best_over_time(events: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(time, best validation accuracy so far) at each improvement."""
    curve, best = [], -1.0
    for event in sorted(events, key=lambda e: e["t"]):
        if event["val"] > best:
            best = event["val"]
            curve.append((event["t"], best))
    return curve


def time_to_reach(curve: list[tuple[float, float]], target: float) -> float | None:
    return next((t for t, v in curve if v >= target - 1e-9), None)


def summarize(tool: str, run: dict[str, Any], budget: float) -> dict[str, Any]:
    curve = best_over_time(run["events"])
    final_val = curve[-1][1] if curve else None
    if tool == "dltune":
        choice_val = run["final"].get("choice_val")
        choice_test = run["final"].get("choice_test")
    else:  # the peer's model at its best validation epoch
        best = max(run["events"], key=lambda e: e["val"], default=None)
        choice_val = best["val"] if best else None
        choice_test = best["test"] if best else None
    return {
        "curve": curve,
        "final_val": final_val,
        "reached_final_at": time_to_reach(curve, final_val) if final_val is not None else None,
        "choice_val": choice_val,
        "choice_test": choice_test,
        "trials": len({e["trial"] for e in run["events"]}),
        "epochs": len(run["events"]),
        "final": run["final"],
    }


def fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(results: dict[int, dict[str, dict[str, Any]]], budget: float, tools: list[str]) -> None:
    marks = [budget * f for f in (0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)]
    print("\nBest validation accuracy over time (seconds since the search began)")
    print(f"{'seed':>4} {'tool':>11} " + " ".join(f"{m:>7.0f}" for m in marks) + "  trials  test")
    for seed, by_tool in results.items():
        for tool in tools:
            s = by_tool.get(tool)
            if s is None or "skipped" in s:
                print(f"{seed:>4} {tool:>11}  skipped: {s and s['skipped']}")
                continue
            row = []
            for m in marks:
                done = [v for t, v in s["curve"] if t <= m]
                row.append(fmt(done[-1] if done else None))
            print(
                f"{seed:>4} {tool:>11} "
                + " ".join(f"{x:>7}" for x in row)
                + f"  {s['trials']:>6}  {fmt(s['choice_test'])}"
            )
    if "dltune" not in tools:
        return
    print("\nTime to reach each peer's final best validation accuracy (target: ratio <= 0.25)")
    print(
        f"{'seed':>4} {'peer':>11} {'peer best':>9} {'peer s':>7} {'dltune s':>8} "
        f"{'ratio':>6} {'test dltune-peer':>16}"
    )
    ratios: dict[str, list[float]] = {}
    tests: dict[str, list[float]] = {}
    for seed, by_tool in results.items():
        ours = by_tool["dltune"]
        for peer in (t for t in tools if t != "dltune"):
            theirs = by_tool.get(peer)
            if theirs is None or "skipped" in theirs or theirs["final_val"] is None:
                continue
            peer_time = theirs["reached_final_at"]
            our_time = time_to_reach(ours["curve"], theirs["final_val"])
            ratio = (our_time / peer_time) if our_time is not None and peer_time else None
            ratios.setdefault(peer, []).append(ratio if ratio is not None else float("inf"))
            diff = None
            if ours["choice_test"] is not None and theirs["choice_test"] is not None:
                diff = ours["choice_test"] - theirs["choice_test"]
                tests.setdefault(peer, []).append(diff)
            print(
                f"{seed:>4} {peer:>11} {fmt(theirs['final_val']):>9} {fmt(peer_time, 1):>7} "
                f"{(fmt(our_time, 1) if our_time is not None else 'never'):>8} "
                f"{(fmt(ratio, 3) if ratio is not None else 'inf'):>6} {fmt(diff):>16}"
            )
    print("\nMedians over seeds")
    for peer, values in ratios.items():
        test_values = tests.get(peer, [])
        median_test = statistics.median(test_values) if test_values else None
        print(
            f"  vs {peer:<11} time ratio {statistics.median(values):.3f} (target <= 0.25), "
            f"test accuracy difference {fmt(median_test)} (target >= 0)"
        )


def machine() -> str:
    import importlib.metadata as metadata

    import torch

    versions = []
    for name in ("torch", "optuna", "keras", "keras-tuner", "dltune"):
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return f"{os.cpu_count()} cores, {torch.get_num_threads()} torch threads; " + ", ".join(
        versions
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=300.0, help="seconds per tool and seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    parser.add_argument("--quick", action="store_true", help="45 s, one seed (under 3 minutes)")
    parser.add_argument("--out", default="/tmp/peers.json", help="all events and results (JSON)")
    parser.add_argument("--arm", choices=TOOLS, help=argparse.SUPPRESS)  # a child process
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        ARMS[args.arm](args.seed, args.budget, args.log)
        return
    if args.quick:
        args.budget, args.seeds = 45.0, args.seeds[:1]
    print(f"peers: {machine()}")
    print(f"budget {args.budget:.0f} s per tool and seed; seeds {args.seeds}; data {MNIST}")
    print(f"dltune options: {DLTUNE_OPTIONS}")
    results: dict[int, dict[str, dict[str, Any]]] = {}
    raw: dict[str, Any] = {}
    for i, seed in enumerate(args.seeds):
        order = args.tools[i % len(args.tools) :] + args.tools[: i % len(args.tools)]
        results[seed] = {}
        for tool in order:  # rotated from seed to seed, so drift favours no tool
            print(f"  seed {seed}: {tool} ...", flush=True)
            run = run_arm(tool, seed, args.budget)
            raw[f"{seed}/{tool}"] = run
            results[seed][tool] = run if "skipped" in run else summarize(tool, run, args.budget)
    report(results, args.budget, args.tools)
    Path(args.out).write_text(json.dumps({"results": results, "raw": raw}, default=str))
    print(f"\nAll events: {args.out}")


if __name__ == "__main__":
    main()
