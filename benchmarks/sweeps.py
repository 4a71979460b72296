"""A sweep trained as one population against the same runs trained one at a time, for real.

    python benchmarks/sweeps.py [--param learning_rate] [--epochs 5] [--seeds 3] [--data PATH]

The sweep itself prints an estimate of the one-at-a-time time, measured on a sample of its runs
(sweep/estimate.py). This benchmark checks that estimate: it runs the sweep (population, with the
estimate), then trains every one of its runs alone with the sequential trainer, the way a
one-model-per-trial tool would, and prints the three figures side by side: the population's
training time, the estimate, the real one-at-a-time time, their ratios, and the estimate's error.

Data: the 10,000 MNIST test images in ../shared/data/mnist-10k (7000/1500/1500), or --data.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import optuna
import torch

from dltune.data import load_data
from dltune.engine import SequentialTrainer
from dltune.sweep.plan import SEED_ATTR, VALUE_ATTR
from dltune.sweep.runner import SweepResult, sweep

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-10k"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--param", default="learning_rate")
    parser.add_argument("--values", default=None)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data", default=str(MNIST))
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = load_data(args.data)
    print(f"data: {data.describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as folder:
        result = sweep(
            args.param,
            values=args.values,
            data=data,
            storage=f"sqlite:///{folder}/bench.db",
            epochs=args.epochs,
            seeds=args.seeds,
        )
        timing = result.timing
        population = float(timing["train_seconds"])
        estimate = float(timing["one_at_a_time"]["seconds"])
        alone = one_at_a_time(result)
    plan = result.plan
    print(
        f"sweep of {plan.param}: {len(plan.values)} values x {plan.seeds} seeds, "
        f"{plan.epochs} epochs, base {plan.base.short()}"
    )
    print(f"  population (training)    : {population:8.1f} s  ({timing['buckets']} buckets)")
    print(f"  estimate, one at a time  : {estimate:8.1f} s  ({estimate / population:.2f}x)")
    print(f"  measured, one at a time  : {alone:8.1f} s  ({alone / population:.2f}x)")
    print(f"  estimate's error         : {100 * (estimate - alone) / alone:+8.1f} %")


def one_at_a_time(result: SweepResult) -> float:
    """Train every finished run of the sweep alone (sequential trainer, same seed, same data
    order, stopping where it diverges); the training seconds in all."""
    plan = result.plan
    meta = result.study.user_attrs["dltune"]
    trainer = SequentialTrainer(
        result.data, metric=meta["metric"], shuffle_seed=int(meta["shuffle_seed"]), track_train=True
    )
    total = 0.0
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    for trial in result.study.get_trials(states=finished):
        index = trial.user_attrs[VALUE_ATTR]
        config = plan.base if index is None else plan.config_for(plan.values[index])
        seed = plan.member_seed(int(trial.user_attrs[SEED_ATTR]))
        if index is None:  # an epochs sweep: one run per value, each its own length
            for value in plan.values:
                total += trainer.train(config, seed=seed, epochs=int(value)).seconds
        else:
            total += trainer.train(config, seed=seed).seconds
    return total


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"({time.perf_counter() - started:.0f} s in all)")
