"""The cost of a member-epoch, measured against dltune's estimate (dltune.study.costs).

    python benchmarks/budget_costs.py [--data bumps digits] [--repeats 2]

For each network (the textbook dense network; blocks of 16-256 filters with batch
normalization and global average pooling, at batch 16 and 128), one epoch of one member alone
(the sequential trainer, a holdout split) and of 5 fold members stacked (a k-fold trial: the
population engine), after one warm-up epoch. Times are the process's CPU time with one torch
thread: what one core of an idle machine gives, and nearly the same when other jobs share the
cores (wall-clock time would count their share too). Printed: seconds per member-epoch,
measured and estimated, and their ratio (the best of `--repeats`).

Data: bumps = benchmarks/bumps.py's signals of 1x40 (6,000: 5,100 trained on alone, 4,800 a
fold member), digits = 8x8 images (1,527 outside the test split).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def networks(two_d: bool) -> dict[str, Any]:
    from dltune.config import Config

    base = Config(
        layers=0, units=(), dropout=0.0, activation="relu", loss="categorical_crossentropy",
        optimizer="adam", learning_rate=1e-3, weight_decay=0.0, batch_size=16, epochs=100,
    )  # fmt: skip
    made = {"textbook Dense(128), batch 32": _dense(base)}
    kernel = 5 if two_d else 8
    for blocks, filters, batch in [(1, 16, 16), *((3, f, 16) for f in (16, 32, 64, 128, 256))]:
        made[f"{blocks} block(s) of {filters}, kernel {kernel if blocks > 1 else 3}"] = _conv(
            base, blocks, filters, kernel if blocks > 1 else 3, batch
        )
    made[f"3 blocks of 16, kernel {kernel}, batch 128"] = _conv(base, 3, 16, kernel, 128)
    made[f"3 blocks of 128, kernel {kernel}, batch 128"] = _conv(base, 3, 128, kernel, 128)
    return made


def _dense(base: Any) -> Any:
    import dataclasses

    return dataclasses.replace(base, layers=1, units=(128,), dropout=0.2, batch_size=32)


def _conv(base: Any, blocks: int, filters: int, kernel: int, batch: int) -> Any:
    import dataclasses

    return dataclasses.replace(
        base, batch_size=batch, conv_layers=blocks, filters=(filters,) * blocks,
        kernel_size=(kernel,) * blocks, pool=0, batch_norm=True, global_pool=True,
    )  # fmt: skip


def alone(data: Any, config: Any) -> float:
    from dltune.engine import SequentialTrainer

    trainer = SequentialTrainer(data, shuffle_seed=0)
    trainer.train(config, seed=0, epochs=1)  # warm-up
    started = time.process_time()
    trainer.train(config, seed=0, epochs=1)
    return time.process_time() - started


def stacked(data: Any, config: Any, k: int = 5) -> float:
    from dltune.engine.population import PopulationTrainer

    def epoch() -> float:
        population = PopulationTrainer(data, shuffle_seed=0)
        for fold in range(k):
            population.add(fold, config, seed=fold, epochs=1, keep_best_state=True, fold=fold)
        started = time.process_time()
        while len(population):
            population.run_epoch()
        return (time.process_time() - started) / k

    epoch()  # warm-up
    return epoch()


def load(name: str) -> Any:
    from dltune.data import load_data

    if name == "digits":
        return load_data("digits", seed=0)
    sys.path.insert(0, str(HERE))
    from bumps import write

    path = Path(tempfile.gettempdir()) / "dltune-bumps.npz"
    return load_data(path if path.exists() else write(path), seed=0, shape=(1, 40))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["bumps", "digits"])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    import torch

    from dltune.study import costs

    torch.set_num_threads(1)
    for name in args.data:
        data = load(name)
        holdout, folded = data.holdout(), data.with_folds(5, 0)
        estimate_alone, estimate_stacked = costs.for_data(holdout), costs.for_data(folded)
        print(f"\n{name}: {data.describe()}; seconds per member-epoch (CPU time, 1 thread)")
        print(f"{'network':42} {'alone':>7} {'est.':>7} {'ratio':>6} {'stacked':>8} "
              f"{'est.':>7} {'ratio':>6}")  # fmt: skip
        for label, config in networks(len(data.input_shape) == 3).items():
            one = min(alone(holdout, config) for _ in range(args.repeats))
            five = min(stacked(folded, config) for _ in range(args.repeats))
            guess_one, guess_five = estimate_alone(config), estimate_stacked(config)
            print(
                f"{label:42} {one:7.3f} {guess_one:7.3f} {guess_one / one:6.2f} {five:8.3f} "
                f"{guess_five:7.3f} {guess_five / five:6.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
