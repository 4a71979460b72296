"""Populations that fill: the population engine with cohorts of one shape against the same
engine with every configuration asked freely (unconstrained TPE), and the sequential engine.

    python benchmarks/filling.py [--timeout 60] [--seeds 0 1 2] [--data digits mnist]
                                 [--workers 2] [--out /tmp/filling.json]

Each arm is one study in a child process of its own (`dltune.tune`, the default space, the
given timeout, seed and workers), one after the other, the arms' order rotated from seed to
seed. The arms:

- filled: `engine="population"`, cohorts of 4 (DLTUNE_FILL_COHORT=4, the default);
- free: `engine="population"`, DLTUNE_FILL_COHORT=1 (every configuration asked freely);
- sequential: `engine="sequential"` (one trial at a time per worker).

Printed per data set and arm: member-epochs trained, trials, the best validation accuracy and
the chosen model's test accuracy (dltune's one test), mean over seeds; and, per seed, each
arm's best validation accuracy at the quarter, half and end of the budget (from the stored
trials' completion times), so that search quality is read by time, not only at the end.
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

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ARMS = {
    "filled": {"engine": "population", "cohort": "4"},
    "free": {"engine": "population", "cohort": "1"},
    "sequential": {"engine": "sequential", "cohort": "4"},
}

CHILD = """
import json, sys
import optuna
from dltune import tune
data, storage, seed, timeout, engine, workers = sys.argv[1:7]
r = tune(data=data, storage=storage, seed=int(seed), timeout=float(timeout), engine=engine,
         workers=int(workers))
study = r.study
start = min(t.datetime_start for t in study.trials)
done = [((t.datetime_complete - start).total_seconds(), t.value) for t in study.trials
        if t.state == optuna.trial.TrialState.COMPLETE]
print(json.dumps({"epochs": r.epochs_trained, "trials": r.trials_run, "seconds": r.seconds,
                  "val": r.best["value"] if r.best else None,
                  "test": (r.best or {}).get("test"),
                  "completed": done, "notes": r.notes}))
"""


def run_arm(arm: str, data: str, seed: int, timeout: float, workers: int) -> dict[str, Any]:
    import os

    settings = ARMS[arm]
    path = str(SHARED / "mnist-10k") if data == "mnist" else data
    with tempfile.TemporaryDirectory() as folder:
        command = [
            sys.executable, "-c", CHILD, path, f"sqlite:///{folder}/study.db", str(seed),
            str(timeout), settings["engine"], str(workers),
        ]  # fmt: skip
        env = {**os.environ, "DLTUNE_FILL_COHORT": settings["cohort"]}
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=folder)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def best_by(completed: list[list[float]], seconds: float) -> float | None:
    values = [value for at, value in completed if at <= seconds and value is not None]
    return max(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", nargs="+", default=["digits", "mnist"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--out", type=Path, default=Path("/tmp/filling.json"))
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    for data in args.data:
        for index, seed in enumerate(args.seeds):
            order = args.arms[index % len(args.arms) :] + args.arms[: index % len(args.arms)]
            for arm in order:
                result = {"data": data, "arm": arm, "seed": seed}
                result |= run_arm(arm, data, seed, args.timeout, args.workers)
                results.append(result)
                marks = [
                    best_by(result.get("completed", []), args.timeout * f) for f in (0.25, 0.5, 1)
                ]
                shown = " ".join("—" if m is None else f"{m:.4f}" for m in marks)
                print(
                    f"{data:7} seed {seed} {arm:10} epochs {result.get('epochs', 0):7.1f} "
                    f"trials {result.get('trials', 0):4} best val at 1/4, 1/2, end: {shown}  "
                    f"test {result.get('test')}  {result.get('error') or ''}",
                    flush=True,
                )
                args.out.write_text(json.dumps(results, indent=1))
    print(f"\nMeans over seeds {args.seeds}, {args.timeout:g} s, {args.workers} workers")
    for data in args.data:
        for arm in args.arms:
            mine = [
                r for r in results if r["data"] == data and r["arm"] == arm and "error" not in r
            ]
            if not mine:
                continue

            def mean(key: str, rows: list[dict[str, Any]] = mine) -> float:
                values = [r[key] for r in rows if r.get(key) is not None]
                return statistics.fmean(values) if values else float("nan")

            print(
                f"{data:7} {arm:10} epochs {mean('epochs'):7.1f}  trials {mean('trials'):6.1f}  "
                f"best val {mean('val'):.4f}  test {mean('test'):.4f}"
            )
    print(f"Everything in {args.out}")


if __name__ == "__main__":
    main()
