"""A held-out signal set written as a flat .npz (issue 31): x (N, 40), y, x_test, y_test.

    python benchmarks/bumps.py OUT.npz [--train 6000] [--test 2000] [--seed 1] [--noise 0.25]

Each series of length 40 holds one shape of 6-10 steps at a random place, scaled by a random
amplitude (0.8-1.6), on Gaussian noise (`--noise`) and a random offset; its class is the shape:
0 a ramp up then a drop, 1 a rise then a ramp down, 2 one bump, 3 two narrow bumps. The shapes
differ in their order in time, not in their sum, and move from series to series: what
convolutions see and a dense network on the flat rows does not. With the defaults (6,000
series: holdout, a validation split of 900) a two-layer MLP trained alone reaches about 0.64
test accuracy and a small CNN 0.80 after 20 epochs, 0.93 and more in a longer study, as the
issue's set did (dense 0.62-0.69, the default study 0.935 at 180 s).

Read it as signals with ``--shape 1,40`` (the flat rows are a table otherwise):
``dltune run --data OUT.npz --shape 1,40 --timeout 30``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

LENGTH = 40
CLASSES = 4


def make(n: int, seed: int, noise: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """`n` series (n, LENGTH) float32 and their classes (n,) int64."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, LENGTH), np.float32)
    y = rng.integers(0, CLASSES, n)
    for i in range(n):
        amplitude = rng.uniform(0.8, 1.6)
        width = int(rng.integers(6, 11))
        at = int(rng.integers(0, LENGTH - width))
        x[i, at : at + width] = amplitude * _shape(int(y[i]), width)
        x[i] += rng.normal(0, noise, LENGTH) + rng.normal(0, 0.2)
    return x, y


def _shape(kind: int, width: int) -> np.ndarray:
    k = np.arange(width)
    if kind == 0:
        return k / (width - 1)  # a ramp up, then the drop
    if kind == 1:
        return 1 - k / (width - 1)  # the rise, then a ramp down
    if kind == 2:
        return np.exp(-0.5 * ((k - (width - 1) / 2) / (width / 5)) ** 2)
    return np.exp(-0.5 * ((k - 1) / 0.8) ** 2) + np.exp(-0.5 * ((k - (width - 2)) / 0.8) ** 2)


def write(
    path: Path, train: int = 6000, test: int = 2000, seed: int = 1, noise: float = 0.25
) -> Path:
    """The set written to `path` (the test split from the next seed)."""
    x, y = make(train, seed, noise)
    x_test, y_test = make(test, seed + 1, noise)
    np.savez(path, x=x, y=y, x_test=x_test, y_test=y_test)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=6000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--noise", type=float, default=0.25)
    args = parser.parse_args()
    write(args.out, args.train, args.test, args.seed, args.noise)
    shown = f"x ({args.train}, {LENGTH}), x_test ({args.test}, {LENGTH})"
    print(f"{args.out}: {shown}, {CLASSES} classes")


if __name__ == "__main__":
    main()
