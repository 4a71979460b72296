"""Throughput of a cross-validated trial: its K fold members stacked in one population against
the same K members trained one after the other, in the same process.

    python benchmarks/folds.py [--k 5] [--epochs 5] [--threads 1] [--repeats 3]

Workloads (each a study's first trial on its data, as dltune's default makes it):
- digits (1527 examples outside the test split, 5 folds of 1221 training rows): the textbook
  dense network, one Dense(128, relu), dropout 0.2, Adam, batch 32;
- GunPoint (../shared/data/ucr: 50 signals of length 150, 5 folds of 40): Wang et al.'s fully
  convolutional network at a quarter of its width (32/64/32 filters, kernels 8/5/3, batch
  normalization, global average pooling), batch 16, as a 120 s study sizes it.

Stacked: one PopulationTrainer holding the K fold members (one bucket: one shape), each member
on its own fold's rows, its own seed, data order and dropout. One after the other: a
SequentialTrainer run of each fold member in turn. Both train the same K x epochs member-epochs
with the same arithmetic per member (test_folds.py checks that they give the same curves);
printed: seconds of each (the best of `--repeats`), member-epochs per second, and the ratio.
The threads are torch's (1: what each of the default two worker processes gets on this CPU).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"


def workloads() -> dict[str, tuple[Any, Any]]:
    from dltune.config import Config
    from dltune.data import load_data

    dense = Config(
        layers=1, units=(128,), dropout=0.2, activation="relu",
        loss="categorical_crossentropy", optimizer="adam", learning_rate=1e-3,
        weight_decay=0.0, batch_size=32, epochs=100,
    )  # fmt: skip
    fcn = Config(
        layers=0, units=(), dropout=0.0, activation="relu", loss="categorical_crossentropy",
        optimizer="adam", learning_rate=1e-3, weight_decay=0.0, batch_size=16, epochs=100,
        conv_layers=3, filters=(32, 64, 32), kernel_size=(8, 5, 3), pool=0, batch_norm=True,
        global_pool=True,
    )  # fmt: skip
    return {
        "digits, Dense(128)": (load_data("digits"), dense),
        "GunPoint, FCN x0.25": (load_data(SHARED / "ucr" / "GunPoint.npz", seed=0), fcn),
    }


def stacked(data: Any, config: Any, k: int, epochs: int) -> float:
    from dltune.engine.population import PopulationTrainer

    population = PopulationTrainer(data, shuffle_seed=0)
    for fold in range(k):
        population.add(fold, config, seed=fold, epochs=epochs, keep_best_state=True, fold=fold)
    started = time.perf_counter()
    while len(population):
        population.run_epoch()
    return time.perf_counter() - started


def one_by_one(data: Any, config: Any, k: int, epochs: int) -> float:
    from dltune.engine import SequentialTrainer

    trainer = SequentialTrainer(data, shuffle_seed=0)
    started = time.perf_counter()
    for fold in range(k):
        trainer.train(config, seed=fold, epochs=epochs, keep_best_state=True, fold=fold)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(f"{args.k} fold members x {args.epochs} epochs, {args.threads} thread(s), best of "
          f"{args.repeats}")  # fmt: skip
    print(f"{'workload':22} {'one by one':>12} {'stacked':>10} {'member-epochs/s':>22} ratio")
    for name, (data, config) in workloads().items():
        folded = data.with_folds(args.k, 0)
        stacked(folded, config, args.k, 1)  # warm-up: first calls, allocator
        alone = min(one_by_one(folded, config, args.k, args.epochs) for _ in range(args.repeats))
        together = min(stacked(folded, config, args.k, args.epochs) for _ in range(args.repeats))
        work = args.k * args.epochs
        rates = f"{work / alone:8.1f} -> {work / together:8.1f}"
        print(f"{name:22} {alone:10.2f} s {together:8.2f} s {rates:>22} {alone / together:.2f}x")


if __name__ == "__main__":
    main()
