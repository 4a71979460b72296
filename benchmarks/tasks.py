"""dltune against Optuna and a plain scikit-learn model, over many tasks that need no download.

    python benchmarks/tasks.py [--budget 20] [--seeds 0 1 2] [--tasks digits wine ...]
                               [--out /tmp/tasks.json]
    python benchmarks/tasks.py --table /tmp/tasks.json     # the table of a finished run

The tasks: scikit-learn's bundled digits, wine, breast cancer (classification) and diabetes
(regression); the 10,000 MNIST images in ../shared/data/mnist-10k; the time-series sets in
../shared/data/ucr (GunPoint, ItalyPowerDemand, BasicMotions: classification of signals;
Tecator: regression). Every tool gets the same dltune Dataset (dltune.load_data or
from_arrays, seed 0: the UCR sets' own test split, a stratified 15% validation carved from
their training split; 70/15/15 otherwise), standardized, and the same wall-clock budget.

The tools, each run in a child process of its own (imports and threads do not leak):

- dltune: `dltune.tune(data=dataset, timeout=budget, seed=seed)`, everything else default
  (the default space fitted to the data's shape, the default arrangement of workers); its
  chosen model is tested once by dltune (result.best["test"]).
- optuna: TPESampler(seed) + HyperbandPruner(1, 27, 3) on a plain PyTorch MLP over the flat
  features, the default dense space (benchmarks/peers.py's constants: 1-3 layers, 16-1024
  units, activations, dropout, losses, optimizers, learning rate, batch size, 27 epochs),
  study.optimize(timeout=budget); its choice is the epoch with the best validation value of
  any trial, tested there (the test is measured when an epoch sets a new best, never used to
  choose).
- baseline: LogisticRegression (classification) or Ridge (regression) on the standardized
  features, fitted on training + validation: the floor a user compares with, not timed.

The metric is the test accuracy (classification) or the test RMSE in the target's units
(regression). The table: per task, each tool's mean and spread (standard deviation) over the
seeds; dltune wins against Optuna when its mean is better by more than the larger spread,
loses when worse by more, ties otherwise; "floor" says whether dltune is at or above the plain
baseline (within the spread).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"
sys.path.insert(0, str(HERE))
import peers  # noqa: E402 - the default space's constants, spelled out for the peers

SKLEARN_TASKS = ("digits", "wine", "breast_cancer", "diabetes")
UCR_TASKS = ("GunPoint", "ItalyPowerDemand", "BasicMotions", "Tecator")
TASKS = (*SKLEARN_TASKS, "mnist", *UCR_TASKS)
TOOLS = ("dltune", "optuna", "baseline")
GRACE_S = 60.0  # past the budget: an epoch's end, dltune's choice and test, process exit


def load_task(name: str) -> Any:
    """The task's dltune Dataset (the same call in every arm, so the same split)."""
    import numpy as np

    import dltune
    from dltune.data import from_arrays

    if name == "digits":
        return dltune.load_data("digits")
    if name == "mnist":
        return dltune.load_data(SHARED / "mnist-10k")
    if name in SKLEARN_TASKS:
        from sklearn import datasets

        bunch = getattr(datasets, f"load_{name}")()
        task = "regression" if name == "diabetes" else "classification"
        return from_arrays(bunch.data, bunch.target, name=name, task=task, seed=0)
    with np.load(SHARED / "ucr" / f"{name}.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in ("x", "y", "x_test", "y_test")}
    task = "regression" if name == "Tecator" else "classification"
    return from_arrays(
        arrays["x"], arrays["y"], x_test=arrays["x_test"], y_test=arrays["y_test"],
        name=name, task=task, seed=0,
    )  # fmt: skip


# ---- the arms --------------------------------------------------------------------------------


def arm_dltune(task: str, seed: int, budget: float) -> dict[str, Any]:
    import dltune

    data = load_task(task)
    folder = tempfile.mkdtemp(prefix="dltune-tasks-")
    started = time.perf_counter()
    result = dltune.tune(
        data=data, storage=f"sqlite:///{folder}/study.db", timeout=budget, seed=seed
    )
    best = result.best or {}
    ensemble = best.get("ensemble") or {}
    linear = _linear_best(result.study)
    return {
        # dltune's one test of what it delivers: the ensemble (or the best trial's bag in
        # k-fold, or the best trial in holdout)
        "test": best.get("delivered_test"),
        "single_test": best.get("test"),  # the best trial's own test
        "val": best.get("value"),
        "delivered_val": ensemble.get("score", best.get("value")),
        "optimism": best.get("optimism"),
        "validation": (best.get("validation") or {}).get("kind"),
        "members": [(m["trial"], round(m["weight"], 3)) for m in ensemble.get("members", [])],
        "ensemble_val": ensemble.get("score"),
        "best_single_val": (ensemble.get("best_single") or {}).get("score"),
        "linear_val": linear,
        "chosen_layers": len((best.get("params") or {}).get("units", [])),
        "chosen_conv": int((best.get("params") or {}).get("conv_layers", 0)),
        "trials": result.trials_run,
        "epochs": result.epochs_trained,
        "seconds": time.perf_counter() - started,
        "notes": result.notes,
    }


def _linear_best(study: Any) -> float | None:
    """The best validation value of a trial without hidden layers or convolutions."""
    from dltune.storage import maximizes, read_trials

    values = [
        r.value
        for r in read_trials(study)
        if r.state == "complete"
        and r.value is not None
        and not r.config.get("units")
        and not r.config.get("conv_layers")
        and not r.config.get("model")
    ]
    if not values:
        return None
    return max(values) if maximizes(study) else min(values)


def arm_optuna(task: str, seed: int, budget: float) -> dict[str, Any]:
    import numpy as np
    import optuna
    import torch
    from torch import nn
    from torch.nn import functional as F
    from torch.utils.data import DataLoader, TensorDataset

    import plain_torch  # this folder's: the Optuna arms' torch pieces

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = load_task(task)
    classify = data.task == "classification"
    splits = ("train", "val", "test")
    x = {s: torch.from_numpy(np.asarray(getattr(data, f"x_{s}"), dtype=np.float32)) for s in splits}
    if classify:
        y = {
            s: torch.from_numpy(np.asarray(getattr(data, f"y_{s}"), dtype=np.int64)) for s in splits
        }
        outputs = int(data.n_classes)
    else:  # standardized targets to train on; the RMSE is reported in the target's units
        mean, std = float(data.target_mean), float(data.target_std)
        y = {
            s: torch.from_numpy(
                (np.asarray(getattr(data, f"y_{s}"), dtype=np.float32) - mean) / std
            )
            for s in splits
        }
        outputs = 1
    torch.manual_seed(seed)
    activations, optimizers = plain_torch.ACTIVATIONS, plain_torch.OPTIMIZERS
    losses = peers.LOSSES if classify else ["mean_squared_error"]

    def define_model(trial: optuna.Trial) -> nn.Module:
        units = trial.suggest_int("units", *peers.UNITS, log=True)
        activation = trial.suggest_categorical("activation", peers.ACTIVATIONS)
        dropout = trial.suggest_float("dropout", *peers.DROPOUT)
        layers: list[nn.Module] = []
        width = x["train"].shape[1]
        for _ in range(trial.suggest_int("layers", *peers.LAYERS)):
            layers += [nn.Linear(width, units), activations[activation](), nn.Dropout(dropout)]
            width = units
        layers.append(nn.Linear(width, outputs))
        return nn.Sequential(*layers)

    def loss_of(name: str, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not classify:
            return F.mse_loss(out.squeeze(1), target)
        if name == "categorical_crossentropy":
            return F.cross_entropy(out, target)
        return F.mse_loss(out.softmax(dim=1), F.one_hot(target, outputs).float())

    def score(model: nn.Module, split: str) -> float:
        """Accuracy, or RMSE in the target's units (lower is better: negated to maximize)."""
        model.eval()
        with torch.no_grad():
            out = model(x[split])
        if classify:
            return float((out.argmax(dim=1) == y[split]).float().mean())
        rmse = float(((out.squeeze(1) - y[split]) ** 2).mean().sqrt()) * std
        return -rmse if math.isfinite(rmse) else -math.inf

    best = {"val": -math.inf, "test": None}
    started = time.perf_counter()

    def objective(trial: optuna.Trial) -> float:
        model = define_model(trial)
        loss_name = trial.suggest_categorical("loss", losses)
        optimizer = optimizers[trial.suggest_categorical("optimizer", peers.OPTIMIZERS)](
            model.parameters(),
            lr=trial.suggest_float("learning_rate", *peers.LEARNING_RATE, log=True),
        )
        loader = DataLoader(
            TensorDataset(x["train"], y["train"]),
            batch_size=trial.suggest_categorical("batch_size", peers.BATCH_SIZES),
            shuffle=True,
        )
        value = -math.inf
        for epoch in range(peers.MAX_EPOCHS):
            model.train()
            for batch_x, batch_y in loader:
                optimizer.zero_grad()
                loss_of(loss_name, model(batch_x), batch_y).backward()
                optimizer.step()
            if time.perf_counter() - started >= budget:  # what is learned after it: not counted
                trial.study.stop()
                raise optuna.TrialPruned()
            value = score(model, "val")
            if value > best["val"]:
                best.update(val=value, test=score(model, "test"))
            trial.report(value, epoch)
            if not math.isfinite(value) or trial.should_prune():
                raise optuna.TrialPruned()
        return value

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=peers.MAX_EPOCHS, reduction_factor=3
        ),
    )
    study.optimize(objective, timeout=budget)
    sign = 1 if classify else -1
    test = best["test"]
    return {
        "test": None if test is None else sign * test,
        "val": sign * best["val"] if math.isfinite(best["val"]) else None,
        "trials": len(study.trials),
        "seconds": time.perf_counter() - started,
    }


def arm_baseline(task: str, seed: int, budget: float) -> dict[str, Any]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression, Ridge

    data = load_task(task)
    x = np.concatenate([data.x_train, data.x_val])
    y = np.concatenate([data.y_train, data.y_val])
    if data.task == "classification":
        model = LogisticRegression(max_iter=5000, random_state=seed).fit(x, y)
        return {"test": float((model.predict(data.x_test) == data.y_test).mean())}
    model = Ridge().fit(x, y)
    return {"test": float(np.sqrt(((model.predict(data.x_test) - data.y_test) ** 2).mean()))}


ARMS = {"dltune": arm_dltune, "optuna": arm_optuna, "baseline": arm_baseline}


# ---- the parent ------------------------------------------------------------------------------


def run_arm(tool: str, task: str, seed: int, budget: float) -> dict[str, Any]:
    """One arm in a child process; its result, or the reason it has none."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        command = [sys.executable, __file__, "--arm", tool, task, str(seed), str(budget), str(out)]
        try:
            done = subprocess.run(
                command, timeout=budget + GRACE_S + 120, capture_output=True, text=True
            )
        except subprocess.TimeoutExpired:
            return {"error": "timed out"}
        if done.returncode != 0 or not out.exists():
            return {"error": done.stderr.strip().splitlines()[-1:] or f"exit {done.returncode}"}
        return json.loads(out.read_text())


def higher_is_better(task: str) -> bool:
    return task not in ("diabetes", "Tecator")


def summary(results: list[dict[str, Any]], tasks: list[str]) -> list[dict[str, Any]]:
    rows = []
    for task in tasks:
        row: dict[str, Any] = {
            "task": task,
            "metric": "accuracy" if higher_is_better(task) else "rmse",
        }
        for tool in TOOLS:
            values = [
                r["test"]
                for r in results
                if r["task"] == task and r["tool"] == tool and r.get("test") is not None
            ]
            row[tool] = (
                statistics.fmean(values) if values else None,
                statistics.pstdev(values) if len(values) > 1 else 0.0,
                len(values),
            )
        row["vs_optuna"] = verdict(row["dltune"], row["optuna"], higher_is_better(task))
        row["vs_baseline"] = verdict(row["dltune"], row["baseline"], higher_is_better(task))
        rows.append(row)
    return rows


def verdict(mine: tuple[Any, float, int], theirs: tuple[Any, float, int], higher: bool) -> str:
    if mine[0] is None or theirs[0] is None:
        return "n/a"
    gap = (mine[0] - theirs[0]) * (1 if higher else -1)
    spread = max(mine[1], theirs[1])
    return "win" if gap > spread else "loss" if gap < -spread else "tie"


def print_table(rows: list[dict[str, Any]], budget: float, seeds: list[int]) -> None:
    print(f"\nTest metric of each tool's chosen model, mean ± spread over seeds {seeds}, ", end="")
    print(f"{budget:g} s each")
    head = f"{'task':18} {'metric':8} {'dltune':>16} {'optuna':>16} {'baseline':>16}"
    print(f"{head}  vs optuna  vs baseline")
    for row in rows:
        cells = [
            f"{m:.4f} ± {s:.4f}" if m is not None else "—" for m, s, _ in (row[t] for t in TOOLS)
        ]
        line = f"{row['task']:18} {row['metric']:8} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16}"
        print(f"{line}  {row['vs_optuna']:9}  {row['vs_baseline']}")
    counts = {v: sum(r["vs_optuna"] == v for r in rows) for v in ("win", "tie", "loss")}
    floor = sum(r["vs_baseline"] == "loss" for r in rows)
    print(
        f"against Optuna: {counts['win']} wins, {counts['tie']} ties, {counts['loss']} losses; "
        f"below the plain baseline: {floor}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=30.0, help="seconds per tool and run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    parser.add_argument("--out", type=Path, default=Path("/tmp/tasks.json"))
    parser.add_argument("--table", type=Path, help="print the table of a finished run's JSON")
    parser.add_argument("--arm", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        tool, task, seed, budget, out = args.arm
        Path(out).write_text(json.dumps(ARMS[tool](task, int(seed), float(budget))))
        return
    if args.table:
        saved = json.loads(args.table.read_text())
        print_table(summary(saved["results"], saved["tasks"]), saved["budget"], saved["seeds"])
        return
    results: list[dict[str, Any]] = []
    for task in args.tasks:
        for index, seed in enumerate(args.seeds):
            # the order of the timed tools rotated from seed to seed: no tool always first
            tools = args.tools[index % len(args.tools) :] + args.tools[: index % len(args.tools)]
            for tool in tools:
                result = {
                    "task": task,
                    "tool": tool,
                    "seed": seed,
                    **run_arm(tool, task, seed, args.budget),
                }
                results.append(result)
                shown = {
                    k: result.get(k)
                    for k in ("test", "val", "trials", "error")
                    if result.get(k) is not None
                }
                print(f"{task:18} seed {seed} {tool:8} {shown}", flush=True)
                args.out.write_text(
                    json.dumps(
                        {
                            "budget": args.budget,
                            "seeds": args.seeds,
                            "tasks": args.tasks,
                            "results": results,
                        },
                        indent=1,
                    )
                )
    print_table(summary(results, args.tasks), args.budget, args.seeds)
    print(f"\nEverything in {args.out}")


if __name__ == "__main__":
    main()
