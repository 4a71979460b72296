"""The default arrangement of processes against today's one process, on the same study.

    python benchmarks/arrangement.py [--epoch-budget 300] [--seeds 0 1 2] [--data mnist digits]
                                     [--arrangements today default] [--out /tmp/arrangement.json]

Each run is `dltune run` as a user types it (a real process, so that the default's worker
processes start as they would for the user), on its own fresh SQLite file, with the same
`--epoch-budget` and `--seed`: "today" adds `--workers 1 --engine sequential` (the arrangement
before issue 16), "default" adds nothing (--workers auto --engine auto). Other arrangements
(for measuring, e.g. which engine each of two workers should run): "w2-sequential",
"w2-population" (`--workers 2 --engine X`), "w1-population".

Printed per data set and seed: each arrangement's wall time (the whole command: start-up,
workers, the test), the best validation accuracy, the member-epochs trained, and the ratio of
today's time to each other's; then the medians over seeds. The data: ../shared/data/mnist-10k
(the 10,000 MNIST test images, split by dltune's loader with seed 0) and scikit-learn's digits.
The JSON (--out) holds every run, with the command and the arrangement's note.

    python benchmarks/arrangement.py --startup [--repeats 3]

times what a worker process costs before it trains (spawn, import torch and dltune, open a
SQLite study): the figure behind dltune.study.arrangement.WORKER_START_SECONDS.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
DATA = {"mnist": str(SHARED / "mnist-10k"), "digits": "digits"}
ARRANGEMENTS = {
    "today": ["--workers", "1", "--engine", "sequential"],
    "default": [],
    "w2-sequential": ["--workers", "2", "--engine", "sequential"],
    "w2-population": ["--workers", "2", "--engine", "population"],
    "w1-population": ["--workers", "1", "--engine", "population"],
}


def run_one(data: str, arrangement: str, seed: int, budget: float) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix=f"arrangement-{arrangement}-{seed}-"))
    storage = f"sqlite:///{folder / 'study.db'}"
    command = [
        sys.executable, "-m", "dltune.cli", "run", "--data", DATA[data], "--storage", storage,
        "--study", "bench", "--seed", str(seed), "--epoch-budget", f"{budget:g}",
        *ARRANGEMENTS[arrangement],
    ]  # fmt: skip
    started = time.perf_counter()
    ran = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if ran.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{ran.stdout}\n{ran.stderr}")
    notes = [line[6:] for line in ran.stdout.splitlines() if line.startswith("note: ")]
    return {
        "data": data,
        "arrangement": arrangement,
        "seed": seed,
        "seconds": round(seconds, 2),
        **_study_figures(storage),
        "notes": notes,
        "command": command,
        "storage": storage,
    }


def _study_figures(storage: str) -> dict[str, Any]:
    import optuna

    from dltune.storage import best_record

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="bench", storage=storage)
    best = best_record(study) or {}
    epochs = sum(len(t.intermediate_values) for t in study.trials)
    return {
        "val": best.get("value"),
        "test": best.get("test"),
        "trials": len(study.trials),
        "epochs": epochs,
        "workers": sorted({t.user_attrs.get("worker", 0) for t in study.trials}),
    }


def _child_start(results: Any, url: str) -> None:
    """A worker's start, as study/workers.py's children do it: imports, then the study."""
    import optuna
    import torch  # noqa: F401

    from dltune.storage import resolve_storage
    from dltune.study import tuning  # noqa: F401

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = resolve_storage(url)
    optuna.create_study(storage=storage.backend, study_name="start", load_if_exists=True)
    results.put(time.perf_counter())


def startup(repeats: int) -> list[float]:
    """Seconds from starting a spawned child to its study being open, `repeats` times."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    url = f"sqlite:///{tempfile.mkdtemp(prefix='arrangement-start-')}/start.db"
    seconds = []
    for _ in range(repeats):
        results = context.Queue()
        started = time.perf_counter()
        child = context.Process(target=_child_start, args=(results, url))
        child.start()
        seconds.append(results.get() - started)
        child.join()
        print(f"worker start-up: {seconds[-1]:.2f} s", flush=True)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epoch-budget", type=float, default=300.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", nargs="+", choices=sorted(DATA), default=["mnist", "digits"])
    parser.add_argument(
        "--arrangements", nargs="+", choices=list(ARRANGEMENTS), default=["today", "default"]
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--startup", action="store_true", help="time a worker's start-up")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.startup:
        seconds = startup(args.repeats)
        print(f"median {statistics.median(seconds):.2f} s over {len(seconds)}")
        return 0
    runs: list[dict[str, Any]] = []
    base = args.arrangements[0]
    for data in args.data:
        for seed in args.seeds:
            row = {}
            for arrangement in args.arrangements:
                run = run_one(data, arrangement, seed, args.epoch_budget)
                runs.append(run)
                row[arrangement] = run
                ratio = row[base]["seconds"] / run["seconds"]
                print(
                    f"{data:6s} seed {seed} {arrangement:14s} {run['seconds']:7.1f} s  "
                    f"val {_fmt(run['val'])}  test {_fmt(run['test'])}  "
                    f"trials {run['trials']:4d}  epochs {run['epochs']:5d}  "
                    f"workers {len(run['workers'])}  x{ratio:.2f} vs {base}"
                    + (f"  ({run['notes'][0]})" if run["notes"] else ""),
                    flush=True,
                )
            if args.out:
                args.out.write_text(json.dumps(runs, indent=1))
    print(f"\nmedians over seeds {args.seeds}, --epoch-budget {args.epoch_budget:g}:")
    summary = []
    for data in args.data:
        for arrangement in args.arrangements:
            mine = [r for r in runs if r["data"] == data and r["arrangement"] == arrangement]
            theirs = [r for r in runs if r["data"] == data and r["arrangement"] == base]
            seconds = statistics.median(r["seconds"] for r in mine)
            ratio = statistics.median(
                b["seconds"] / m["seconds"] for b, m in zip(theirs, mine, strict=True)
            )
            val = statistics.median(r["val"] for r in mine if r["val"] is not None)
            summary.append(
                {"data": data, "arrangement": arrangement, "seconds": seconds, "ratio": ratio,
                 "val": val}
            )  # fmt: skip
            print(
                f"  {data:6s} {arrangement:14s} {seconds:7.1f} s  x{ratio:.2f} vs {base}  "
                f"median best val {val:.4f}"
            )
    if args.out:
        args.out.write_text(json.dumps({"runs": runs, "medians": summary}, indent=1))
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    sys.exit(main())
