"""Member-epochs per second: the population engine against the sequential trainer, side by side.

    python benchmarks/throughput.py [--quick] [--device cpu|cuda] [--members 16]

Data: the 10,000 MNIST test images in ../shared/data/mnist-10k, split 7000/1500/1500 (seed 0).
Three workloads, each timed for both engines in the same run:
  1. same shapes: 784-256-256-10 at batch size 32, members differing in learning rate, dropout,
     optimizer, activation and loss;
  2. the same at batch size 128;
  3. random configurations from the default space (mixed depths, widths 16-1024, batch 16-256),
     with the population's time broken down by bucket;
  4. one small CNN on the images as (1, 28, 28) (two 3x3 convolutions of 8 and 16 filters, max
     pooling 2, Dense 64, batch 64), members differing in learning rate, optimizer and dropout:
     the exact-shape stacked path (torch.func) against the sequential trainer.
It prints member-epochs per second, the ratio, and the achieved GFLOP/s against a matrix-multiply
peak measured here. Keras (torch backend) is timed too where it is installed.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

from dltune.config import Config
from dltune.data import load_data
from dltune.engine import SequentialTrainer
from dltune.engine.population import PopulationTrainer
from dltune.space import SearchSpace

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-10k"


def matmul_peak(device: str, size: int = 2048, seconds: float = 1.0) -> float:
    """GFLOP/s of a large float32 matrix product: the machine's practical peak."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    torch.mm(a, b)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        torch.mm(a, b)
        count += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * size**3 * count / (time.perf_counter() - started) / 1e9


def epoch_flops(config: Config, n_features: int, n_outputs: int, n_train: int, n_val: int) -> int:
    """Multiply-adds x2 of one epoch: forward+backward on train (x3), forward on validation."""
    dims = (n_features, *config.units, n_outputs)
    weights = sum(dims[i] * dims[i + 1] for i in range(len(dims) - 1))
    return 6 * n_train * weights + 2 * n_val * weights


def same_shape_members(n: int, batch_size: int, rng: random.Random) -> list[Config]:
    activations = ["relu", "tanh", "sigmoid", "elu"]
    losses = ["categorical_crossentropy", "mean_squared_error"]
    optimizers = ["sgd", "adam", "rmsprop", "adagrad", "momentum", "adamw"]
    return [
        Config(
            layers=2,
            units=(256, 256),
            dropout=rng.choice([0.0, 0.1, 0.3, 0.5]),
            activation=activations[i % len(activations)],
            loss=losses[i % len(losses)],
            optimizer=optimizers[i % len(optimizers)],
            learning_rate=10 ** rng.uniform(-4, -1),
            weight_decay=0.0,
            batch_size=batch_size,
            epochs=1,
        )
        for i in range(n)
    ]


def small_cnn_members(n: int, rng: random.Random) -> list[Config]:
    """Workload 4: one architecture (what a sweep or a study's late phase trains), members
    differing in learning rate, optimizer and dropout."""
    optimizers = ["adam", "sgd", "rmsprop", "momentum", "adamw", "nesterov"]
    return [
        Config(
            layers=1,
            units=(64,),
            dropout=rng.choice([0.1, 0.25, 0.4, 0.5]),
            activation="relu",
            loss="categorical_crossentropy",
            optimizer=optimizers[i % len(optimizers)],
            learning_rate=10 ** rng.uniform(-3.5, -1.5),
            weight_decay=0.0,
            batch_size=64,
            epochs=1,
            conv_layers=2,
            filters=(8, 16),
            kernel_size=3,
            pool=2,
        )
        for i in range(n)
    ]


def run_cnn_workload(configs: list[Config], data, device: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Workload 4: seconds of both engines for one epoch of every member, and their ratio."""
    if not data.shaped:
        data.set_input_shape((1, 28, 28))
    sequential = SequentialTrainer(data, device=device)
    population = PopulationTrainer(data, device=device)
    # one member of each, untimed: the first vmapped step and the allocator's warm-up
    time_sequential(sequential, configs[:1])
    time_population(population, configs[:2])
    seq_s = time_sequential(sequential, configs)
    pop_s = time_population(population, configs)
    n = len(configs)
    print(f"\n[4: small CNN 8-16 filters on 1x28x28, batch 64] {n} members, 1 epoch each")
    print(f"  sequential : {n / seq_s:7.2f} member-epochs/s  {seq_s:6.2f} s")
    print(f"  population : {n / pop_s:7.2f} member-epochs/s  {pop_s:6.2f} s")
    print(f"  ratio      : {seq_s / pop_s:5.2f}x population over sequential (target 2x on CPU)")
    for note in population.notes:
        print(f"  note       : {note}")
    return {"sequential_s": seq_s, "population_s": pop_s, "ratio": seq_s / pop_s}


def random_members(n: int, seed: int) -> list[Config]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    space = SearchSpace.default()
    return [space.suggest(study.ask()).replace(epochs=1) for _ in range(n)]


def time_sequential(trainer: SequentialTrainer, configs: list[Config]) -> float:
    started = time.perf_counter()
    for i, config in enumerate(configs):
        trainer.train(config, seed=i, epochs=1)
    return time.perf_counter() - started


def time_population(trainer: PopulationTrainer, configs: list[Config]) -> float:
    started = time.perf_counter()
    trainer.bucket_seconds.clear()
    trainer.train([(i, c, i) for i, c in enumerate(configs)])
    return time.perf_counter() - started


_WORKER_DATA = None


def _worker_start(path: str) -> None:
    """A worker process: one thread, the data loaded once, the compiled kernels warmed up."""
    global _WORKER_DATA
    torch.set_num_threads(1)
    _WORKER_DATA = load_data(path)
    time_population(PopulationTrainer(_WORKER_DATA), same_shape_members(2, 128, random.Random(1)))


def _worker_train(configs: list[Config]) -> float:
    assert _WORKER_DATA is not None
    return time_population(PopulationTrainer(_WORKER_DATA), configs)


def time_population_workers(configs: list[Config], workers: int, path: Path) -> float:
    """Seconds for `workers` single-threaded processes, each training its own population, the
    configurations dealt out by estimated cost (largest first, to the least loaded)."""
    import multiprocessing as mp

    shares: list[list[Config]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for config in sorted(configs, key=lambda c: -epoch_flops(c, 784, 10, 1, 0)):
        i = loads.index(min(loads))
        shares[i].append(config)
        loads[i] += epoch_flops(config, 784, 10, 1, 0) + 2e6 * 7000 / config.batch_size
    with mp.get_context("spawn").Pool(workers, _worker_start, (str(path),)) as pool:
        return max(pool.map(_worker_train, [s for s in shares if s]))


def keras_seconds(configs: list[Config], data) -> float | None:  # type: ignore[no-untyped-def]
    """One epoch of each configuration in Keras 3 with the torch backend, or None."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        return None
    started = time.perf_counter()
    for config in configs:
        model = keras.Sequential([keras.Input((data.n_features,))])
        for width in config.units:
            model.add(keras.layers.Dense(width, activation=config.activation))
            if config.dropout:
                model.add(keras.layers.Dropout(config.dropout))
        model.add(keras.layers.Dense(data.n_classes, activation="softmax"))
        model.compile(optimizer=config.optimizer, loss="sparse_categorical_crossentropy")
        model.fit(
            data.x_train,
            data.y_train,
            batch_size=config.batch_size,
            epochs=1,
            verbose=0,
            validation_data=(data.x_val, data.y_val),
        )
    return time.perf_counter() - started


def run_workload(
    name: str,
    configs: list[Config],
    data,
    device: str,
    peak: float,  # type: ignore[no-untyped-def]
    keras: bool,
    workers: int = 0,
) -> dict[str, float]:
    sequential = SequentialTrainer(data, device=device)
    population = PopulationTrainer(data, device=device)
    n_train, n_val = len(data.x_train), len(data.x_val)
    flops = sum(epoch_flops(c, data.n_features, data.n_classes, n_train, n_val) for c in configs)
    seq_s = time_sequential(sequential, configs)
    pop_s = time_population(population, configs)
    n = len(configs)
    print(f"\n[{name}] {n} members, 1 epoch each")
    print(
        f"  sequential : {n / seq_s:7.2f} member-epochs/s  {flops / seq_s / 1e9:6.1f} GFLOP/s "
        f"({100 * flops / seq_s / 1e9 / peak:4.1f}% of peak)  {seq_s:6.2f} s"
    )
    print(
        f"  population : {n / pop_s:7.2f} member-epochs/s  {flops / pop_s / 1e9:6.1f} GFLOP/s "
        f"({100 * flops / pop_s / 1e9 / peak:4.1f}% of peak)  {pop_s:6.2f} s"
    )
    print(f"  ratio      : {seq_s / pop_s:5.2f}x population over sequential")
    if workers > 1 and device == "cpu":
        par_s = time_population_workers(configs, workers, MNIST)
        print(
            f"  population, {workers} single-threaded workers: {n / par_s:7.2f} member-epochs/s"
            f"  {flops / par_s / 1e9:6.1f} GFLOP/s  {par_s:6.2f} s  "
            f"ratio {seq_s / par_s:5.2f}x over sequential"
        )
    if keras:
        keras_s = keras_seconds(configs, data)
        if keras_s is None:
            print("  keras      : not installed (pip install keras) - skipped")
        else:
            print(
                f"  keras      : {n / keras_s:7.2f} member-epochs/s  "
                f"(population {keras_s / pop_s:.2f}x faster)"
            )
    if len(population.bucket_seconds) > 1:
        print("  population time by bucket (batch size, padded widths): seconds")
        for (batch, widths), seconds in sorted(
            population.bucket_seconds.items(), key=lambda kv: -kv[1]
        ):
            print(f"    bs={batch:<4} {list(widths)!s:<22} {seconds:6.2f}")
    return {"sequential_s": seq_s, "population_s": pop_s, "ratio": seq_s / pop_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--random-members", type=int, default=24)
    parser.add_argument("--quick", action="store_true", help="fewer members (a smoke run)")
    parser.add_argument("--workloads", default="1,2,3,4")
    parser.add_argument("--keras", action="store_true", help="also time Keras (torch backend)")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="also time N single-threaded worker processes (0: skip)",
    )
    args = parser.parse_args(argv)
    if not MNIST.is_dir():
        print(f"needs the MNIST test split in {MNIST}", file=sys.stderr)
        return 2
    members = 4 if args.quick else args.members
    random_n = 6 if args.quick else args.random_members
    data = load_data(MNIST)
    print(
        f"data: {data.describe()}; torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads, device {args.device}"
    )
    peak = matmul_peak(args.device)
    print(f"matrix-multiply peak: {peak:.1f} GFLOP/s")
    # Warm up both engines (allocator, kernels) so the first workload is not penalized.
    warm = same_shape_members(2, 128, random.Random(1))
    time_sequential(SequentialTrainer(data, device=args.device), warm)
    time_population(PopulationTrainer(data, device=args.device), warm)
    chosen = set(args.workloads.split(","))
    if "1" in chosen:
        run_workload(
            "1: 784-256-256-10, batch 32",
            same_shape_members(members, 32, random.Random(0)),
            data,
            args.device,
            peak,
            args.keras,
            args.workers,
        )
    if "2" in chosen:
        run_workload(
            "2: 784-256-256-10, batch 128",
            same_shape_members(members, 128, random.Random(0)),
            data,
            args.device,
            peak,
            args.keras,
            args.workers,
        )
    if "3" in chosen:
        run_workload(
            "3: random configurations of the default space",
            random_members(random_n, 0),
            data,
            args.device,
            peak,
            args.keras,
            args.workers,
        )
    if "4" in chosen:
        cnn_data = load_data(MNIST)
        if args.quick:  # a smoke run: a tenth of the training rows
            cnn_data.x_train, cnn_data.y_train = cnn_data.x_train[:700], cnn_data.y_train[:700]
        run_cnn_workload(small_cnn_members(members, random.Random(0)), cnn_data, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
