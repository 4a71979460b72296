"""Tables with text categories and empty cells: the default study against a plain baseline.

    python benchmarks/tabular.py [--seeds 0 1] [--tasks cancer wine diabetes] [--out FILE]

Each task is one of scikit-learn's bundled sets (nothing downloaded) made into a table as
people have it, written as a CSV: some numeric columns turned into text bins or labels, a
boolean column, empty cells in numeric and text columns (about 8%), a running id and a
constant column (which the encoder drops), a text target for classification:

- cancer: breast cancer (569 rows, 2 classes): 'mean radius' as size words (4 quantile bins),
  'mean texture' as t1..t5, 'worst concavity' as c0..c9, 'mean area' above its median as
  true/false; 26 numeric columns left, 5 of them with empty cells.
- wine: wine (178 rows, 3 classes): 'alcohol' as low/mid/high, 'color_intensity' as k0..k7,
  'flavanoids' above its median as true/false; empty cells in 4 columns.
- diabetes: diabetes, raw units (442 rows, regression): 'sex' as female/male, 'age' as its
  decade ("50s"), empty cells in 'bmi', 'bp', 's5' and 'sex'.

dltune: `dltune.tune(data=CSV, target=..., seed=seed)` with everything else default (the
built-in space, 50 trials, the default arrangement of workers and the default choice), its
chosen model tested once (result.best["test"]). The baseline: LogisticRegression
(classification) or Ridge (regression) from scikit-learn, fitted on the same encoded and
standardized features (dltune.load_data of the same CSV: the same encoder, fitted on the
training split) of training + validation, scored on the same test split. Accuracy, or RMSE in
the target's units.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TASKS = ("cancer", "wine", "diabetes")
BLANK = 0.08  # the share of cells emptied in the columns that get empty cells


def _bins(values: np.ndarray, words: list[str]) -> np.ndarray:
    """Each value's quantile bin, named by `words`."""
    edges = np.quantile(values, np.linspace(0, 1, len(words) + 1)[1:-1])
    return np.array(words, dtype=object)[np.searchsorted(edges, values)]


def _blank(column: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = column.astype(object)
    out[rng.random(len(out)) < BLANK] = ""
    return out


def make_table(task: str) -> tuple[list[str], list[list[Any]], str]:
    """(header, rows, target column) of a task, made from a bundled set (fixed seed)."""
    from sklearn import datasets

    rng = np.random.default_rng(19)
    if task == "diabetes":
        bunch = datasets.load_diabetes(scaled=False)
    else:
        bunch = datasets.load_breast_cancer() if task == "cancer" else datasets.load_wine()
    names = [str(n) for n in bunch.feature_names]
    columns: dict[str, np.ndarray] = {"id": np.arange(len(bunch.target)) + 1}
    data = {n: bunch.data[:, j] for j, n in enumerate(names)}
    if task == "cancer":
        data["mean radius"] = _bins(data["mean radius"], ["small", "medium", "large", "huge"])
        data["mean texture"] = _bins(data["mean texture"], [f"t{k}" for k in range(1, 6)])
        data["worst concavity"] = _bins(data["worst concavity"], [f"c{k}" for k in range(10)])
        area = data["mean area"]
        data["mean area"] = np.where(area > np.median(area), "true", "false")
        blanks = ["mean radius", "mean smoothness", "worst texture", "mean symmetry", "area error"]
        blanks += ["worst concavity"]
    elif task == "wine":
        data["alcohol"] = _bins(data["alcohol"], ["low", "mid", "high"])
        data["color_intensity"] = _bins(data["color_intensity"], [f"k{k}" for k in range(8)])
        flav = data["flavanoids"]
        data["flavanoids"] = np.where(flav > np.median(flav), "True", "False")
        blanks = ["alcohol", "magnesium", "hue", "proline"]
    else:
        data["sex"] = np.where(data["sex"] == 1, "female", "male")
        data["age"] = np.array([f"{int(a) // 10 * 10}s" for a in data["age"]], dtype=object)
        blanks = ["bmi", "bp", "s5", "sex"]
    for name in blanks:
        data[name] = _blank(data[name], rng)
    columns |= data
    columns["source"] = np.full(len(bunch.target), "sklearn")  # a constant column
    if task == "diabetes":
        target, y = "progression", bunch.target
    else:
        target = "diagnosis" if task == "cancer" else "cultivar"
        y = np.array([str(bunch.target_names[k]) for k in bunch.target], dtype=object)
    columns[target] = y
    header = list(columns)
    rows = [[_cell(columns[c][i]) for c in header] for i in range(len(y))]
    return header, rows, target


def _cell(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    return str(value)


def write_table(task: str, folder: Path) -> tuple[Path, str]:
    header, rows, target = make_table(task)
    path = folder / f"{task}.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path, target


def baseline(path: Path, target: str) -> dict[str, Any]:
    """LogisticRegression or Ridge on dltune's encoded, standardized splits (train + val)."""
    from sklearn.linear_model import LogisticRegression, Ridge

    import dltune

    ds = dltune.load_data(path, target=target)
    x = np.concatenate([ds.x_train, ds.x_val])
    y = np.concatenate([ds.y_train, ds.y_val])
    if ds.task == "classification":
        model = LogisticRegression(max_iter=5000).fit(x, y)
        value = float(np.mean(model.predict(ds.x_test) == ds.y_test))
    else:
        model = Ridge(alpha=1.0).fit(x, y)
        error = model.predict(ds.x_test).astype(np.float64) - ds.y_test
        value = float(np.sqrt(np.mean(error**2)))
    return {
        "value": value,
        "metric": "accuracy" if ds.task == "classification" else "rmse",
        "describe": ds.describe(),
        "notes": ds.notes,
        "columns": len(ds.encoding.columns) if ds.encoding else None,
        "features": ds.n_features,
    }


def run_dltune(path: Path, target: str, seed: int, folder: Path) -> dict[str, Any]:
    import optuna

    import dltune

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    result = dltune.tune(
        data=str(path),
        target=target,
        storage=f"sqlite:///{folder / f'{path.stem}-{seed}.db'}",
        study_name=f"{path.stem}-{seed}",
        seed=seed,
    )
    seconds = time.perf_counter() - started
    best = result.best or {}
    return {"value": best.get("test"), "seconds": seconds, "trials": result.trials_run}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; seeds {args.seeds}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for task in args.tasks:
            path, target = write_table(task, folder)
            base = baseline(path, target)
            print(f"\n[{task}] {base['describe']}")
            for note in base["notes"]:
                print(f"  note: {note}")
            runs = [run_dltune(path, target, seed, folder) for seed in args.seeds]
            for seed, r in zip(args.seeds, runs, strict=True):
                print(f"  dltune seed {seed}: test {base['metric']} {r['value']:.4f} "
                      f"({r['trials']} trials, {r['seconds']:.0f}s)")  # fmt: skip
            values = [r["value"] for r in runs]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            row = {
                "task": task,
                "metric": base["metric"],
                "dltune_mean": statistics.mean(values),
                "dltune_sd": spread,
                "baseline": base["value"],
                "seconds": statistics.mean(r["seconds"] for r in runs),
                "columns": base["columns"],
                "features": base["features"],
                "runs": runs,
            }
            print(f"  baseline ({'logistic' if base['metric'] == 'accuracy' else 'ridge'}, "
                  f"same encoding): test {base['metric']} {base['value']:.4f}")  # fmt: skip
            rows.append(row)
    print("\n| task | metric | columns -> features | dltune (mean ± sd) | baseline | s per study |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['task']} | {r['metric']} | {r['columns']} -> {r['features']} | "
            f"{r['dltune_mean']:.4f} ± {r['dltune_sd']:.4f} | {r['baseline']:.4f} | "
            f"{r['seconds']:.0f} |"
        )
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    sys.exit(main())
