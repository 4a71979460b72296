"""dltune against the tools people use today, side by side: how soon each reaches a good model.

    python benchmarks/peers.py [--budget 300] [--seeds 0 1 2] [--tools optuna kerastuner dltune]
                               [--quick] [--out /tmp/peers.json]
    python benchmarks/peers.py --merge A.json B.json [--seeds 1 2 3]   # several runs' tables

`--quick` is one seed of 45 s per tool (under 3 minutes in all, start-up included).

What is compared. Three tools search the same space on the same data within the same wall-clock
budget, one after the other, the order rotated from seed to seed so that drift of a shared
machine favours no tool:

1. optuna: TPESampler(seed) + HyperbandPruner(1, 27, 3) driving a plain PyTorch loop, written
   the way Optuna's own PyTorch example (optuna-examples/pytorch/pytorch_simple.py) writes it:
   define_model(trial) with trial.suggest_*, a DataLoader (shuffle=True), the validation
   accuracy reported every epoch, pruned when the pruner says so, study.optimize(timeout=budget);
2. kerastuner: Keras Tuner's Hyperband(max_epochs=27, factor=3, objective val_accuracy, seed) on
   Keras 3 with the torch backend, a build(hp) of Dense/Activation/Dropout layers; it has no
   timeout, so a callback ends it at the budget (see arm_kerastuner);
3. dltune: dltune.tune(space=None, the default space) with DLTUNE_OPTIONS below.

The space is dltune's default (`dltune space --show`): 1-3 hidden layers of one width, 16-1024
units (log-uniform integers), relu/sigmoid/tanh/elu, dropout 0-0.5, categorical cross-entropy or
mean squared error (softmax probabilities against one-hot targets), sgd/adam/rmsprop/adagrad at
their library's defaults, learning rate 1e-4 to 1 (log), batch size one of 16/32/64/128/256, up
to 27 epochs. The data: the 10,000 MNIST test images in ../shared/data/mnist-10k, split
7000/1500/1500 (stratified, seed 0) and standardized by dltune.load_data; every tool trains on
exactly those float32 arrays (each arm prints the data's fingerprint and the parent checks that
they agree).

How it is measured. Each arm runs in a child process of its own (this script with a hidden
--arm option), so that imports, threads and memory do not leak between tools. Its clock starts
when the search starts, after imports and data loading (reported apart as "setup"). It logs one
JSON line per epoch of any trial: {"t": seconds since its start, "val": validation accuracy,
"test": test accuracy or null, "trial": id, "epoch": n}. The parent kills an arm that runs more
than GRACE_S past its budget and keeps what it logged; nothing logged after the budget counts.

The final choice of a peer is its model at the epoch with the best validation accuracy (first
on ties); its test accuracy is measured there, when an epoch sets a new best for its arm (rare
and cheap, never used to choose). dltune's is its own best trial, tested once by dltune itself
(result.best["test"]).

What is printed: each tool's best validation accuracy over time, trials, final best validation
and test accuracy; for each peer and seed the time the peer needed to reach its own final best
validation accuracy, the time dltune needed to reach it ("never" if it did not), their ratio
(target: at most 0.25) and dltune's test accuracy minus the peer's; then, the issue's figure,
the time at which dltune's chosen model reached the test accuracy of the peer's chosen model at
the end of the budget, as a fraction of the budget (target: at most 0.25). dltune's choice at
time t is the complete trial with the best validation value so far; after its search the arm
retrains each of those from its seed and tests it (measured only, outside the budget: never
used to choose); the last point is dltune's own final choice and test. Medians over seeds.
Everything (events included) goes to --out as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# dltune's default space, spelled out for the peers (checked against dltune in check_space);
# peers.LAYERS etc. stay importable from here for the other benchmarks.
from default_space import (  # this folder's
    ACTIVATIONS,
    BATCH_SIZES,
    DROPOUT,
    LAYERS,
    LEARNING_RATE,
    LOSSES,
    MAX_EPOCHS,
    OPTIMIZERS,
    SPLITS,
    UNITS,
)

# dltune's settings for this benchmark. The hyperparameters searched are the default space's
# whatever these say: DLTUNE_RUNGS holds only successive halving's keys of a space file (its
# lowest rung a quarter of an epoch), the rest of the space left to its defaults.
DLTUNE_OPTIONS: dict[str, Any] = {}  # the default arrangement of workers and engine
DLTUNE_RUNGS: dict[str, Any] = {"min_epochs": 0.25}

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-10k"
TOOLS = ("optuna", "kerastuner", "dltune")
GRACE_S = 30.0  # how long past its budget an arm may run (finishing an epoch, a final test)
# dltune's arm, after its search: the test accuracy of each model that was its choice at some
# time, retrained from its seed (a measurement only, never used to choose; see choice_curve)
MEASURE_S = 400.0
STARTUP_LIMIT_S = 180.0  # imports and data loading, before an arm's clock starts
QUICK_BUDGET_S = 45.0


# ---------------------------------------------------------------------------------------------
# The arms (each in a child process of its own)
# ---------------------------------------------------------------------------------------------


class EventLog:
    """The arm's JSON-lines log; its clock starts with start(), when the search starts."""

    def __init__(self, path: Path, budget: float) -> None:
        self.path = path
        self.budget = budget
        self.best = float("-inf")  # best validation accuracy logged so far
        self.started = 0.0
        self.file: Any = None

    def start(self, **info: Any) -> None:
        # The file appears only now: the parent takes its appearance as the start of the clock.
        self.file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by final()
        self._write({"start": True, **info})
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def over(self) -> bool:
        return self.elapsed() >= self.budget

    def is_new_best(self, val: float) -> bool:
        return val > self.best

    def epoch(self, val: float, trial: Any, epoch: float, test: float | None = None) -> None:
        self._write({"t": self.elapsed(), "val": val, "test": test, "trial": trial, "epoch": epoch})
        self.best = max(self.best, val)

    def final(self, **fields: Any) -> None:
        self._write({"final": True, "t": self.elapsed(), **fields})
        self.file.close()

    def _write(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()  # the parent may kill the arm at any moment


def load_dataset() -> Any:
    """The benchmark's data, as dltune loads it (the same call in every arm)."""
    import dltune

    return dltune.load_data(MNIST)


def check_space() -> None:
    """Fail loudly if dltune's default space drifted from the constants the peers use."""
    import dltune

    expected = {
        "layers": {"low": LAYERS[0], "high": LAYERS[1]},
        "units": {"low": UNITS[0], "high": UNITS[1], "log": True},
        "dropout": {"low": DROPOUT[0], "high": DROPOUT[1]},
        "activation": ACTIVATIONS,
        "loss": LOSSES,
        "optimizer": OPTIMIZERS,
        "learning_rate": {"low": LEARNING_RATE[0], "high": LEARNING_RATE[1], "log": True},
        "weight_decay": 0.0,
        "batch_size": BATCH_SIZES,
        "epochs": MAX_EPOCHS,
    }
    actual = dltune.SearchSpace.default().to_dict()
    drifted = {k: actual.get(k) for k, v in expected.items() if actual.get(k) != v}
    if drifted:
        raise SystemExit(f"dltune's default space changed; update peers.py: {drifted}")


def arm_optuna(seed: int, budget: float, folder: Path) -> None:
    import optuna
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    import plain_torch  # this folder's: the arm's torch pieces

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = load_dataset()
    x, y = plain_torch.classification_splits(data)
    n_classes = int(data.n_classes)
    torch.manual_seed(seed)

    def define_model(trial: optuna.Trial) -> nn.Module:
        return plain_torch.dense_network(trial, x["train"].shape[1], n_classes)

    def loss_of(name: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return plain_torch.classification_loss(name, logits, target, n_classes)

    def accuracy(model: nn.Module, split: str) -> float:
        return plain_torch.accuracy(model, x[split], y[split])

    log = EventLog(folder / "events.jsonl", budget)

    def objective(trial: optuna.Trial) -> float:
        model = define_model(trial)
        loss_name = trial.suggest_categorical("loss", LOSSES)
        optimizer_name = trial.suggest_categorical("optimizer", OPTIMIZERS)
        lr = trial.suggest_float("learning_rate", *LEARNING_RATE, log=True)
        batch_size = trial.suggest_categorical("batch_size", BATCH_SIZES)
        optimizer = plain_torch.OPTIMIZERS[optimizer_name](model.parameters(), lr=lr)
        train_loader = DataLoader(
            TensorDataset(x["train"], y["train"]), batch_size=batch_size, shuffle=True
        )
        value = 0.0
        for epoch in range(MAX_EPOCHS):
            model.train()
            for batch_x, batch_y in train_loader:
                optimizer.zero_grad()
                loss_of(loss_name, model(batch_x), batch_y).backward()
                optimizer.step()
            value = accuracy(model, "val")
            if log.over():
                # study.optimize's timeout is only checked between trials; a long trial would
                # run on past the budget. What it learned after the budget does not count.
                trial.study.stop()
                raise optuna.TrialPruned()
            test = accuracy(model, "test") if log.is_new_best(value) else None
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
    log.start(data=data.fingerprint())
    study.optimize(objective, timeout=budget)
    log.final(trials=len(study.trials))


def arm_kerastuner(seed: int, budget: float, folder: Path) -> None:
    """Keras Tuner has no timeout. At the budget a callback sets model.stop_training (the epoch
    in progress ends after its current batch and is not logged) and the tuner's pre_create_trial
    hook raises BudgetSpent before the next trial, which ends tuner.search()."""
    os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported
    import keras
    import keras_tuner
    import numpy as np

    data = load_dataset()
    n_classes = int(data.n_classes)
    x = {s: np.asarray(getattr(data, f"x_{s}"), dtype=np.float32) for s in SPLITS}
    y = {s: np.asarray(getattr(data, f"y_{s}")) for s in SPLITS}
    one_hot = {s: np.eye(n_classes, dtype=np.float32)[y[s]] for s in SPLITS}
    keras.utils.set_random_seed(seed)
    log = EventLog(folder / "events.jsonl", budget)

    class HyperModel(keras_tuner.HyperModel):
        def build(self, hp: Any) -> Any:
            model = keras.Sequential([keras.Input((x["train"].shape[1],))])
            units = hp.Int("units", *UNITS, sampling="log")
            activation = hp.Choice("activation", ACTIVATIONS)
            dropout = hp.Float("dropout", *DROPOUT)
            for _ in range(hp.Int("layers", *LAYERS)):
                model.add(keras.layers.Dense(units))
                model.add(keras.layers.Activation(activation))
                model.add(keras.layers.Dropout(dropout))
            model.add(keras.layers.Dense(n_classes, activation="softmax"))
            learning_rate = hp.Float("learning_rate", *LEARNING_RATE, sampling="log")
            optimizer = keras.optimizers.get(
                {
                    "class_name": hp.Choice("optimizer", OPTIMIZERS),
                    "config": {"learning_rate": learning_rate},
                }
            )
            model.compile(
                optimizer=optimizer,
                loss=hp.Choice("loss", LOSSES),  # on softmax outputs and one-hot targets
                metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
            )
            return model

        def fit(self, hp: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
            return model.fit(*args, batch_size=hp.Choice("batch_size", BATCH_SIZES), **kwargs)

    tuner = keras_tuner.Hyperband(
        HyperModel(),
        objective="val_accuracy",
        max_epochs=MAX_EPOCHS,
        factor=3,
        # One Hyperband iteration may end before the budget; later ones start new brackets, as
        # Optuna and dltune keep sampling until their timeout.
        hyperband_iterations=1000,
        seed=seed,
        directory=str(folder / "kerastuner"),
        project_name="peers",
        overwrite=True,
    )
    logger, current = kerastuner_at_budget(keras, tuner, log, test=(x["test"], y["test"]))
    log.start(data=data.fingerprint())
    with contextlib.suppress(BudgetSpent):
        tuner.search(
            x["train"],
            one_hot["train"],
            validation_data=(x["val"], one_hot["val"]),
            callbacks=[logger],
            verbose=0,
        )
    log.final(trials=current["trials"])


class BudgetSpent(Exception):
    """Raised by a Keras Tuner's pre_create_trial once the budget is spent: outside Keras
    Tuner's per-trial error handling, so search() ends there."""


def kerastuner_at_budget(
    keras: Any, tuner: Any, log: EventLog, test: tuple[Any, Any] | None = None
) -> tuple[Any, dict[str, Any]]:
    """Make a Keras Tuner stop at the budget and log its epochs (it has no timeout): its
    pre_create_trial raises BudgetSpent, and the callback returned (give it to search()) sets
    model.stop_training at the budget (the epoch in progress ends after its current batch and
    is not logged) and logs each epoch's val_accuracy, with the test accuracy of each new best
    where `test` = (x, y labels) is given. Also returned: the current trial and the count of
    trials begun (Keras Tuner deep-copies callbacks for every trial: shared state lives here)."""
    import numpy as np

    current: dict[str, Any] = {"trial": "", "trials": 0}

    def pre_create_trial() -> None:
        if log.over():
            raise BudgetSpent

    began = tuner.on_trial_begin

    def on_trial_begin(trial: Any) -> None:
        current["trial"], current["trials"] = trial.trial_id, current["trials"] + 1
        began(trial)

    tuner.pre_create_trial, tuner.on_trial_begin = pre_create_trial, on_trial_begin

    class Logger(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if log.over():
                self.model.stop_training = True

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if log.over():
                self.model.stop_training = True
                return
            value = float((logs or {})["val_accuracy"])
            tested = None
            if test is not None and log.is_new_best(value):
                predicted = np.asarray(self.model.predict_on_batch(test[0])).argmax(axis=1)
                tested = float((predicted == test[1]).mean())
            # epoch counts from the trial's start: Hyperband's continued trials resume there
            log.epoch(value, current["trial"], epoch + 1, tested)

    return Logger(), current


def arm_dltune(seed: int, budget: float, folder: Path) -> None:
    import optuna

    import dltune
    from dltune.study import ProgressListener

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = load_dataset()
    log = EventLog(folder / "events.jsonl", budget)

    class Listener(ProgressListener):
        def epoch_done(self, number: int, report: Any) -> None:
            log.epoch(report.val_metric, number, report.epoch)

    log.start(data=data.fingerprint())
    wall_start = time.time()  # trials' completion times are wall-clock datetimes
    result = dltune.tune(
        space=DLTUNE_RUNGS,  # the default space, with these rungs
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
        best_epoch=best.get("best_epoch"),
        params=best.get("params"),
        seconds=result.seconds,
        overhead_seconds=result.overhead_seconds,
        epochs_trained=result.epochs_trained,
        notes=result.notes,
    )
    with open(folder / "choices.jsonl", "w", encoding="utf-8") as out:
        for point in choice_curve(result, data, wall_start, budget):
            out.write(json.dumps(point) + "\n")
            out.flush()


def choice_curve(result: Any, data: Any, wall_start: float, budget: float) -> Any:
    """(t, trial, test accuracy) of dltune's choice as it stood at each time t within the
    budget: the complete trial with the best validation value so far (by completion time),
    retrained from its seed for its best epochs (exact on a CPU) and tested. The last point is
    dltune's own final choice and its one test, as dltune made them."""
    import optuna

    from dltune.config import Config
    from dltune.engine import SequentialTrainer
    from dltune.storage import read_trial, schema

    meta = schema.read_study_meta(schema.study_attrs(result.study))
    trainer = SequentialTrainer(data, metric=meta["metric"], shuffle_seed=int(meta["shuffle_seed"]))
    complete = [t for t in result.study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    complete.sort(key=lambda t: t.datetime_complete)
    best_value = float("-inf")
    for frozen in complete:
        t = frozen.datetime_complete.timestamp() - wall_start
        if t > budget or frozen.value is None or frozen.value <= best_value:
            continue
        best_value = frozen.value
        record = read_trial(frozen)
        config = Config.from_dict(record.config)
        run = trainer.train(
            config, seed=int(record.seed), epochs=int(record.best_epoch or config.epochs),
            keep_best_state=True,
        )  # fmt: skip
        if run.best_state is None:
            continue
        _, test = trainer.evaluate(
            trainer.model_from_state(config, run.best_state), "test", config.loss
        )
        yield {"t": t, "trial": frozen.number, "val": frozen.value, "test": test}
    best = result.best or {}
    if best.get("test") is not None:
        yield {
            "t": budget,
            "trial": best["trial"],
            "val": best["value"],
            "test": best["test"],
            "final": True,
        }


ARMS: dict[str, Callable[[int, float, Path], None]] = {
    "optuna": arm_optuna,
    "kerastuner": arm_kerastuner,
    "dltune": arm_dltune,
}


# ---------------------------------------------------------------------------------------------
# The parent: run the arms, read their logs, compare
# ---------------------------------------------------------------------------------------------


def missing_packages(tool: str) -> str | None:
    """Why `tool` cannot run here (a pip command), or None."""
    if tool == "kerastuner" and not all(
        importlib.util.find_spec(name) for name in ("keras", "keras_tuner")
    ):
        return "pip install keras keras-tuner"
    return None


def run_arm(tool: str, seed: int, budget: float, folder: Path) -> dict[str, Any]:
    """Run one arm in a child process, kill it if it overruns, and read what it logged."""
    folder.mkdir(parents=True)
    log_path, output_path = folder / "events.jsonl", folder / "output.txt"
    command = [sys.executable, str(Path(__file__).resolve()), "--arm", tool]
    command += ["--seed", str(seed), "--budget", str(budget), "--workdir", str(folder)]
    with open(output_path, "wb") as output:
        # A session of its own, so that killing it takes any process it started along.
        child = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        launched = time.perf_counter()
        setup, ended = watch(
            child, log_path, budget, GRACE_S + (MEASURE_S if tool == "dltune" else 0)
        )
    lines = read_jsonl(log_path)
    start = next((e for e in lines if e.get("start")), {})
    final = next((e for e in lines if e.get("final")), {})
    return {
        "events": [e for e in lines if "val" in e],
        "choices": read_jsonl(folder / "choices.jsonl"),
        "final": final,
        "data": start.get("data"),
        "setup_s": setup,
        "wall_s": time.perf_counter() - launched,
        # how long the search went on past its budget (epochs in flight, a final test)
        "overrun_s": final["t"] - budget if "t" in final else None,
        "ended": ended,
        "output_tail": output_path.read_text(errors="replace")[-3000:],
    }


def watch(
    child: subprocess.Popen[bytes], log_path: Path, budget: float, grace: float = GRACE_S
) -> tuple[float | None, str]:
    """Wait for the child; kill it past its start-up limit or budget + grace.

    Returns (seconds before its clock started, how it ended)."""
    launched = time.perf_counter()
    started: float | None = None
    ended = ""
    while not ended:
        time.sleep(0.25)
        now = time.perf_counter()
        if started is None and log_path.exists():
            started = now  # the arm opens its log when its search starts
        deadline = launched + STARTUP_LIMIT_S if started is None else started + budget + grace
        if child.poll() is not None:
            ended = f"exit {child.returncode}"
        elif now > deadline:
            kill(child)
            ended = "killed (overran its budget by the grace)"
    return (None if started is None else started - launched), ended


def kill(child: subprocess.Popen[bytes]) -> None:
    """Terminate the child's process group (it is the group's leader), then kill it."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(wait)
            return


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a line cut short by a kill
            lines.append(json.loads(line))
    return lines


def best_over_time(events: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(time, best validation accuracy so far) at each improvement."""
    curve: list[tuple[float, float]] = []
    for event in sorted(events, key=lambda e: e["t"]):
        if not curve or event["val"] > curve[-1][1]:
            curve.append((event["t"], event["val"]))
    return curve


def time_to_reach(curve: list[tuple[float, float]], target: float) -> float | None:
    return next((t for t, v in curve if v >= target - 1e-9), None)


def best_at(curve: list[tuple[float, float]], when: float) -> float | None:
    reached = [v for t, v in curve if t <= when]
    return reached[-1] if reached else None


def summarize(tool: str, run: dict[str, Any], budget: float) -> dict[str, Any]:
    """The arm's curve (events within the budget only), final best and final choice."""
    events = sorted((e for e in run["events"] if e["t"] <= budget), key=lambda e: e["t"])
    curve = best_over_time(events)
    final_val = curve[-1][1] if curve else None
    if tool == "dltune":  # its own choice, tested once by dltune
        choice_val = run["final"].get("choice_val")
        choice_test = run["final"].get("choice_test")
    else:  # the model at the epoch of the best validation accuracy, the first on ties
        chosen = max(events, key=lambda e: e["val"], default=None)
        choice_val = chosen["val"] if chosen else None
        choice_test = chosen["test"] if chosen else None
    if tool == "dltune":
        choice_curve_ = [(c["t"], c["test"]) for c in run.get("choices", [])]
    else:  # a peer's choice changes when an epoch sets a new best; its test was logged then
        choice_curve_ = [(t, e["test"]) for t, e in _new_bests(events)]
    return {
        "curve": curve,
        "choice_curve": choice_curve_,
        "final_val": final_val,
        "reached_final_at": time_to_reach(curve, final_val) if final_val is not None else None,
        "choice_val": choice_val,
        "choice_test": choice_test,
        # trials as the tool counts them; from the log if the arm was killed before its end
        "trials": run["final"].get("trials", len({e["trial"] for e in events})),
        "epochs_logged": len(events),
    }


def _new_bests(events: list[dict[str, Any]]) -> list[tuple[float, dict[str, Any]]]:
    best, out = float("-inf"), []
    for event in events:
        if event["val"] > best and event.get("test") is not None:
            best = event["val"]
            out.append((event["t"], event))
    return out


def time_to_test(choice_curve: list[tuple[float, float]], target: float) -> float | None:
    """When the choice's test accuracy first reached `target` (None: never within the budget)."""
    return next((t for t, test in choice_curve if test >= target - 1e-9), None)


def fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def time_marks(budget: float) -> list[float]:
    """5, 10, 15, 30, 60, 120, ... seconds below the budget, then the budget."""
    marks, mark = [5.0, 10.0], 15.0
    while mark < budget:
        marks.append(mark)
        mark *= 2
    return [m for m in marks if m < budget] + [budget]


def print_timelines(results: dict[int, dict[str, Any]], tools: list[str], budget: float) -> None:
    marks = time_marks(budget)
    print("\nBest validation accuracy by time (seconds since the search began; setup apart)")
    header = f"{'seed':>4} {'tool':>10} " + " ".join(f"{m:>6.0f}s" for m in marks)
    print(header + f" {'trials':>6} {'best val':>8} {'chosen':>6} {'test':>6} {'setup':>6}")
    for seed, by_tool in results.items():
        for tool in tools:
            s = by_tool[tool]
            if "skipped" in s:
                print(f"{seed:>4} {tool:>10}  skipped: {s['skipped']}")
                continue
            row = " ".join(f"{fmt(best_at(s['curve'], m)):>7}" for m in marks)
            print(
                f"{seed:>4} {tool:>10} {row} {s['trials']:>6} {fmt(s['final_val']):>8} "
                f"{fmt(s['choice_val']):>6} {fmt(s['choice_test']):>6} {fmt(s['setup_s'], 1):>5}s"
            )
    print(
        "best val: within the budget; chosen: validation accuracy of the final choice, whose\n"
        "test accuracy is shown (dltune's choice may include epochs that were in flight at the\n"
        "budget and finished after it)"
    )


def compare(
    results: dict[int, dict[str, Any]], tools: list[str], budget: float
) -> list[dict[str, Any]]:
    """For each seed and peer: time to the peer's final best val, for the peer and dltune."""
    rows = []
    for seed, by_tool in results.items():
        ours = by_tool["dltune"]
        for peer in (t for t in tools if t != "dltune"):
            theirs = by_tool[peer]
            if "skipped" in theirs or "skipped" in ours or theirs["final_val"] is None:
                continue
            peer_s = theirs["reached_final_at"]
            ours_s = time_to_reach(ours["curve"], theirs["final_val"])
            ratio = ours_s / peer_s if ours_s is not None and peer_s else None
            # the figure: when dltune's chosen model reached the test accuracy of the
            # peer's chosen model at the end of the budget, as a fraction of that budget
            peer_test = theirs["choice_test"]
            test_s = time_to_test(ours.get("choice_curve", []), peer_test) if peer_test else None
            diff = None
            if ours["choice_test"] is not None and theirs["choice_test"] is not None:
                diff = ours["choice_test"] - theirs["choice_test"]
            rows.append(
                {
                    "seed": seed,
                    "peer": peer,
                    "peer_best_val": theirs["final_val"],
                    "peer_s": peer_s,
                    "dltune_s": ours_s,
                    "ratio": ratio,
                    "test_diff": diff,
                    "peer_test": peer_test,
                    "dltune_test_s": test_s,
                    "test_ratio": test_s / budget if test_s is not None else None,
                }
            )
    return rows


def print_comparison(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    print("\nTime to reach each peer's final best validation accuracy (target: ratio <= 0.25)")
    print(
        f"{'seed':>4} {'peer':>10} {'peer best':>9} {'peer s':>7} {'dltune s':>8} "
        f"{'ratio':>6} {'test: dltune - peer':>20}"
    )
    for r in rows:
        dltune_s = fmt(r["dltune_s"], 1) if r["dltune_s"] is not None else "never"
        ratio = fmt(r["ratio"], 3) if r["ratio"] is not None else "inf"
        print(
            f"{r['seed']:>4} {r['peer']:>10} {fmt(r['peer_best_val']):>9} "
            f"{fmt(r['peer_s'], 1):>7} {dltune_s:>8} {ratio:>6} {fmt(r['test_diff']):>20}"
        )
    print(
        "\nWhen dltune's chosen model reached the test accuracy of the peer's chosen model at "
        "the end (target: at most a quarter of the budget)"
    )
    print(f"{'seed':>4} {'peer':>10} {'peer test':>9} {'dltune s':>8} {'fraction':>8}")
    for r in rows:
        reached = fmt(r["dltune_test_s"], 1) if r["dltune_test_s"] is not None else "never"
        fraction = fmt(r["test_ratio"], 3) if r["test_ratio"] is not None else "inf"
        print(f"{r['seed']:>4} {r['peer']:>10} {fmt(r['peer_test']):>9} {reached:>8} {fraction:>8}")
    medians: dict[str, dict[str, float | None]] = {}
    print("\nMedians over seeds")
    for peer in dict.fromkeys(r["peer"] for r in rows):
        mine = [r for r in rows if r["peer"] == peer]
        # "never" counts as an infinite ratio: a median over seeds stays honest about it
        ratios = [r["ratio"] if r["ratio"] is not None else float("inf") for r in mine]
        diffs = [r["test_diff"] for r in mine if r["test_diff"] is not None]
        median_ratio = statistics.median(ratios)
        diff = statistics.median(diffs) if diffs else None
        fractions = [r["test_ratio"] if r["test_ratio"] is not None else float("inf") for r in mine]
        median_fraction = statistics.median(fractions)
        medians[peer] = {"ratio": median_ratio, "test_diff": diff, "test_fraction": median_fraction}
        print(
            f"  vs {peer:<10} time to the peer's best val: ratio {median_ratio:.3f}; time to the "
            f"peer's final test: {median_fraction:.3f} of the budget (target <= 0.25); "
            f"test accuracy dltune - {peer} {fmt(diff)} (over {len(mine)} seeds)"
        )
    return medians


def machine() -> str:
    import torch

    versions = []
    for name in ("torch", "optuna", "keras", "keras-tuner", "dltune"):
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} not installed")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"{os.cpu_count()} cores (load {load}), {torch.get_num_threads()} torch threads, "
        f"{'cuda' if torch.cuda.is_available() else 'no GPU'}; " + ", ".join(versions)
    )


def run_all(args: argparse.Namespace, scratch: Path) -> dict[int, dict[str, Any]]:
    """Every seed, every tool, in an order rotated from seed to seed."""
    results: dict[int, dict[str, Any]] = {}
    for i, seed in enumerate(args.seeds):
        shift = i % len(args.tools)
        order = args.tools[shift:] + args.tools[:shift]
        results[seed] = {}
        for tool in order:
            skipped = missing_packages(tool)
            if skipped:
                print(f"  seed {seed}: {tool} skipped: {skipped}", flush=True)
                results[seed][tool] = {"skipped": skipped}
                continue
            print(f"  seed {seed}: {tool} ...", end=" ", flush=True)
            run = run_arm(tool, seed, args.budget, scratch / f"{seed}-{tool}")
            summary = summarize(tool, run, args.budget)
            results[seed][tool] = {**run, **summary}
            print(
                f"setup {fmt(run['setup_s'], 1)} s, {summary['epochs_logged']} epochs within "
                f"the budget, search ended {fmt(run['overrun_s'], 1)} s after it, "
                f"wall {run['wall_s']:.0f} s, {run['ended']}",
                flush=True,
            )
            if not summary["curve"] or run["ended"] != "exit 0":
                tail = "\n".join(run["output_tail"].splitlines()[-15:])
                print(f"    the arm's output ends with:\n{tail}")
    return results


def check_same_data(results: dict[int, dict[str, Any]]) -> None:
    digests = {r["data"] for by_tool in results.values() for r in by_tool.values() if r.get("data")}
    if len(digests) > 1:
        print(f"WARNING: the arms trained on different data: {sorted(digests)}")


def merge(args: argparse.Namespace) -> None:
    """The tables of several runs together: e.g. a seed, or one tool, rerun because the machine
    was busy or the tool failed."""
    results: dict[int, dict[str, Any]] = {}
    budgets, tools = set(), list(args.tools)
    for path in args.merge:
        run = json.loads(path.read_text())
        budgets.add(run["budget"])
        for seed, by_tool in run["results"].items():
            # JSON keys are strings; a later file's tool replaces that tool's run only (a tool
            # rerun alone), unless it failed there (no events)
            merged = results.setdefault(int(seed), {})
            merged.update({t: r for t, r in by_tool.items() if r.get("events") or t not in merged})
        print(f"{path}: seeds {run['seeds']}, {run['machine']}")
    if len(budgets) != 1:
        raise SystemExit(f"the runs have different budgets: {sorted(budgets)}")
    wanted = [s for s in args.seeds if s in results] if "--seeds" in sys.argv else sorted(results)
    results = {seed: results[seed] for seed in wanted}
    budget = budgets.pop()
    print_timelines(results, tools, budget)
    medians = print_comparison(compare(results, tools, budget))
    Path(args.out).write_text(
        json.dumps(
            {
                "merged": [str(p) for p in args.merge],
                "budget": budget,
                "seeds": wanted,
                "results": results,
                "medians": medians,
            },
            default=str,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=300.0, help="seconds per tool and seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    parser.add_argument("--quick", action="store_true", help="45 s, one seed (under 3 minutes)")
    parser.add_argument("--out", default="/tmp/peers.json", help="all events and results (JSON)")
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        metavar="JSON",
        help="print the tables of earlier runs' --out files together (later files win per seed)",
    )
    parser.add_argument("--arm", choices=TOOLS, help=argparse.SUPPRESS)  # in a child process
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        ARMS[args.arm](args.seed, args.budget, args.workdir)
        return
    if args.merge:
        merge(args)
        return
    if args.quick:
        args.budget, args.seeds = QUICK_BUDGET_S, args.seeds[:1]
    args.tools = list(dict.fromkeys(args.tools))
    check_space()
    print(f"peers: {machine()}")
    print(f"budget {args.budget:.0f} s per tool and seed; seeds {args.seeds}; data {MNIST}")
    print(f"dltune options: {DLTUNE_OPTIONS}, space keys {DLTUNE_RUNGS} (hyperparameters: default)")
    scratch = Path(tempfile.mkdtemp(prefix="dltune-peers-"))
    try:
        results = run_all(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    check_same_data(results)
    print_timelines(results, args.tools, args.budget)
    rows = compare(results, args.tools, args.budget) if "dltune" in args.tools else []
    medians = print_comparison(rows) if rows else {}
    Path(args.out).write_text(
        json.dumps(
            {
                "machine": machine(),
                "budget": args.budget,
                "seeds": args.seeds,
                "tools": args.tools,
                "dltune_options": DLTUNE_OPTIONS,
                "results": results,
                "comparison": rows,
                "medians": medians,
            },
            default=str,
        )
    )
    print(f"\nAll events and results: {args.out}")


if __name__ == "__main__":
    main()
