"""Where cross-validation pays: the default study with `cv="holdout"` against `cv=5`, the same
budget, on data of growing size, to place `auto`'s threshold (study/validation.py).

    python benchmarks/validation.py [--budget 60] [--seeds 0 1 2] [--sizes 1797 4000 10000]
                                    [--out /tmp/validation.json]

Data: scikit-learn's digits (1,797 images: 1,527 outside the test split) and the MNIST images
in ../shared/data/mnist-10k, the first N of them for each size N (70/15/15, seed 0: the same
test split for both arms of a size). Each arm runs `dltune.tune` as a user would, everything
else default (the arrangement of workers included), in a child process of its own; printed:
the test metric of what each delivers (its ensemble, or bag) and its validation value, per
seed, and the mean per arm, with the examples outside the test split.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"


def load(size: int) -> Any:
    from dltune.data import from_arrays, load_data

    if size == 1797:
        return load_data("digits")
    mnist = load_data(SHARED / "mnist-10k")
    import numpy as np

    x = np.concatenate([mnist.x_train, mnist.x_val, mnist.x_test]) * mnist.x_std + mnist.x_mean
    y = np.concatenate([mnist.y_train, mnist.y_val, mnist.y_test])
    return from_arrays(x[:size], y[:size], name=f"mnist-{size}", input_shape=(1, 28, 28), seed=0)


def arm(size: int, cv: str, seed: int, budget: float) -> dict[str, Any]:
    import dltune

    data = load(size)
    folder = tempfile.mkdtemp(prefix="dltune-validation-")
    result = dltune.tune(
        data=data, storage=f"sqlite:///{folder}/s.db", timeout=budget, seed=seed, cv=cv
    )
    best = result.best or {}
    return {
        "test": best.get("delivered_test"),
        "val": best.get("value"),
        "trials": result.trials_run,
        "pool": len(data.y_train) + len(data.y_val),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1797, 4000, 10000])
    parser.add_argument("--out", type=Path, default=Path("/tmp/validation.json"))
    parser.add_argument("--arm", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        size, cv, seed, budget, out = args.arm
        Path(out).write_text(json.dumps(arm(int(size), cv, int(seed), float(budget))))
        return
    runs = []
    for size in args.sizes:
        for seed in args.seeds:
            for cv in ("holdout", "5") if seed % 2 == 0 else ("5", "holdout"):
                with tempfile.TemporaryDirectory() as folder:
                    out = Path(folder) / "r.json"
                    command = [sys.executable, __file__, "--arm", str(size), cv, str(seed)]
                    subprocess.run([*command, str(args.budget), str(out)], check=True,
                                   capture_output=True, timeout=args.budget + 600)  # fmt: skip
                    run = {"size": size, "cv": cv, "seed": seed, **json.loads(out.read_text())}
                runs.append(run)
                print(json.dumps(run), flush=True)
                args.out.write_text(json.dumps(runs, indent=1))
    print(f"\nmean test of what each delivers, {args.budget:g} s each, seeds {args.seeds}")
    for size in args.sizes:
        row = [f"{size:6d} examples"]
        for cv in ("holdout", "5"):
            tests = [r["test"] for r in runs if r["size"] == size and r["cv"] == cv]
            pool = next(r["pool"] for r in runs if r["size"] == size)
            row.append(f"cv {cv:7s} {statistics.fmean(tests):.4f} ({pool} outside test)")
        print("  ".join(row))


if __name__ == "__main__":
    main()
