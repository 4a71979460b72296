"""Does compiling the fused optimizer update pay on this machine? One population, several epochs.

    DLTUNE_COMPILE=auto python benchmarks/compile_cost.py --epochs 3
    DLTUNE_COMPILE=0    python benchmarks/compile_cost.py --epochs 3

16 members of throughput.py's workload 1 (784-256-256-10, batch 32, four optimizers, learning
rates 1e-3 to 1.6e-2) trained together on MNIST-10k for `--epochs` epochs; prints the seconds and
whether the update was compiled (DLTUNE_COMPILE: "auto" compiles after COMPILE_AFTER_UPDATES,
"0" never). Run each in a fresh process; run "auto" twice to see a cold and a warm inductor cache.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-10k"
OPTIMIZERS = ("sgd", "adam", "rmsprop", "adagrad")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--members", type=int, default=16)
    args = parser.parse_args()
    from dltune.config import Config
    from dltune.data import load_data
    from dltune.engine.population import PopulationTrainer

    data = load_data(SHARED, seed=0)
    configs = [
        (
            i,
            Config(2, (256, 256), 0.0, "relu", "categorical_crossentropy",
                   OPTIMIZERS[i % 4], 1e-3 * (1 + i), 0.0, 32, args.epochs),
            i,
        )
        for i in range(args.members)
    ]  # fmt: skip
    started = time.perf_counter()
    trainer = PopulationTrainer(data)
    trainer.train(configs)
    seconds = time.perf_counter() - started
    mode = os.environ.get("DLTUNE_COMPILE", "auto")
    print(
        f"DLTUNE_COMPILE={mode}: {args.members} members x {args.epochs} epochs in {seconds:.1f} s; "
        f"compiled: {trainer.kernel.compiled}"
    )


if __name__ == "__main__":
    main()
