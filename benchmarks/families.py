"""The default study on images and signals, with and without the convolutional family.

    python benchmarks/families.py --data mnist --budget 300 --seeds 0 1 2 [--families default dense]
                                  [--out /tmp/families-mnist.json]

Issue 31 (defaults fitted to the budget), one command for both sets, both budgets and both
families, interleaved (each seed's runs next to each other, so that a change in the machine's
load falls on both families alike), about 45 minutes on the idle 2-core machine:

    python benchmarks/families.py --data bumps digits --budget 30 180 --seeds 0 1 2 \
        --families default dense --no-anytime-tests --out benchmarks/results/families-31.json

For each data set, budget, seed and family, `dltune.tune` runs the default study (the default
space fitted to the data's shape: conv_layers from 0 to 3, and to the budget: study/budget.py)
or the same space with `conv_layers: 0` (the dense network alone, today's ceiling) for
`--budget` seconds on the data, SQLite storage in a temporary folder, the default arrangement
(one worker per core). Printed per run: the delivered test accuracy (the test split used once,
by dltune), the chosen trial's family, the trials and epochs trained. Then per data set and
budget the median test accuracy per family over the seeds, next to each other, and what the
default study fitted to the budget (its note).

The anytime curve (best validation so far, by time, and the test accuracy of that best trial) is
logged as JSON: every time a trial beats the best so far its time and validation value are
recorded, and after the budget each of those trials is retrained from its stored seed for its
best epoch (the sequential engine reproduces a trial exactly) to measure its test accuracy,
outside the timed budget. A study's clock starts at `tune()`'s call (data already loaded).

Data: mnist = ../shared/data/mnist-10k (10,000 images, 7000/1500/1500), digits (8x8 images),
gunpoint / italy / basicmotions / tecator = ../shared/data/ucr/*.npz (the archive's test split;
validation 15% of the training part), bumps = benchmarks/bumps.py's flat (N, 40) signal set
(6,000 series and 2,000 held out, written to a temporary file), read with shape 1,40.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
SOURCES = {
    "mnist": SHARED / "mnist-10k",
    "digits": "digits",
    "gunpoint": SHARED / "ucr" / "GunPoint.npz",
    "italy": SHARED / "ucr" / "ItalyPowerDemand.npz",
    "basicmotions": SHARED / "ucr" / "BasicMotions.npz",
    "tecator": SHARED / "ucr" / "Tecator.npz",
    "bumps": "bumps",  # written by benchmarks/bumps.py when asked for (data_source)
}
SHAPES = {"bumps": (1, 40)}  # flat rows read as signals
FAMILIES = {"default": None, "dense": {"conv_layers": 0}}


class Anytime:
    """Records each new best trial with its time since the study started."""

    def __init__(self, maximize: bool) -> None:
        from dltune.study.progress import ProgressListener

        self.started = time.perf_counter()
        self.points: list[dict[str, Any]] = []
        self.maximize = maximize
        outer = self

        class Listener(ProgressListener):
            def trial_finished(self, record: Any, best: dict[str, Any] | None) -> None:
                if best is None:
                    return
                if outer.points and outer.points[-1]["trial"] == best["trial"]:
                    return
                outer.points.append(
                    {
                        "t": round(time.perf_counter() - outer.started, 2),
                        "trial": best["trial"],
                        "val": best["value"],
                    }
                )

        self.listener = Listener()


def _test_of(study: Any, number: int, data: Any) -> float | None:
    """The test metric of trial `number`, retrained from its seed for its best epoch: its
    model, or in a k-fold study its bag (each fold's model at the trial's best epoch, their
    probabilities or values averaged), as the study delivers it."""
    import numpy as np

    from dltune.config import Config
    from dltune.engine import SequentialTrainer
    from dltune.storage import read_trials, schema
    from dltune.storage.records import study_meta
    from dltune.study.ensemble_choice import metric_on
    from dltune.study.predictions import ValidationRows

    record = next(r for r in read_trials(study) if r.number == number)
    meta = study_meta(study)
    validation = schema.read_validation(study) or {"kind": "holdout"}
    if validation["kind"] == "kfold":
        data = data.with_folds(int(validation["k"]), int(validation["seed"]))
    trainer = SequentialTrainer(
        data, metric=str(meta["metric"]), shuffle_seed=int(meta.get("shuffle_seed", 0))
    )
    config = Config.from_dict(record.config)
    epochs = int(record.best_epoch or 1)
    members = [(None, int(record.seed))]
    if record.folds:
        members = list(enumerate(int(s) for s in record.folds["seeds"]))
    mix = None
    for fold, seed in members:
        run = trainer.start(config, seed=seed, epochs=epochs, fold=fold)
        while run.advance() is None:
            pass
        outputs = trainer.measure(run.model, "test", config.loss)[2].numpy()
        part = ValidationRows(data).head(outputs, config.loss).astype(np.float64) / len(members)
        mix = part if mix is None else mix + part
    return metric_on(mix, data, str(meta["metric"]))


def data_source(name: str) -> Any:
    """What `load_data` reads for the data set `name` (bumps: written first, once)."""
    if name != "bumps":
        return SOURCES[name]
    from bumps import write

    path = Path(tempfile.gettempdir()) / "dltune-bumps.npz"
    return path if path.exists() else write(path)


def run_one(
    source: Any,
    family: str,
    seed: int,
    budget: float,
    anytime_tests: bool = True,
    shape: tuple[int, ...] | None = None,
    epochs: bool = False,
) -> dict[str, Any]:
    import dltune
    from dltune.data import load_data

    data = load_data(source, seed=0, shape=shape)
    space = FAMILIES[family]
    folder = tempfile.mkdtemp(prefix=f"families-{family}-{seed}-")
    storage = f"sqlite:///{folder}/study.db"
    anytime = Anytime(maximize=data.task == "classification")
    limit = {"epoch_budget": budget} if epochs else {"timeout": budget}
    listener = anytime.listener
    result = dltune.tune(space, data, storage=storage, seed=seed, progress=listener, **limit)
    best = result.best or {}
    config = best.get("params") or {}
    for point in anytime.points if anytime_tests else []:  # outside the budget
        point["test"] = _test_of(result.study, point["trial"], data)
    ensemble = best.get("ensemble") or {}
    return {
        "family": family,
        "seed": seed,
        "budget": budget,
        "val": best.get("value"),
        "test": best.get("delivered_test"),  # what the study delivers (ensemble, bag, model)
        "single_test": best.get("test"),
        "validation": (best.get("validation") or {}).get("kind"),
        "members": [(m["trial"], round(m["weight"], 3)) for m in ensemble.get("members", [])],
        "ensemble_val": ensemble.get("score"),
        "conv_layers": int(config.get("conv_layers", 0)),
        "config": config,
        "trials": result.trials_run,
        "epochs": round(result.epochs_trained, 1),
        "seconds": round(result.seconds, 1),
        "fitted": next((n for n in result.notes if n.startswith("fitted to the budget")), None),
        "anytime": anytime.points,
        "data": data.describe(),
        "storage": storage,  # for benchmarks/ties.py
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", choices=sorted(SOURCES), default=["mnist"])
    parser.add_argument("--budget", type=float, nargs="+", default=[300.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--families", nargs="+", choices=sorted(FAMILIES), default=["default"])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--epochs", action="store_true", help="the budgets are epoch budgets, not seconds"
    )
    parser.add_argument(
        "--no-anytime-tests",
        action="store_true",
        help="skip retraining each best-so-far trial for its test (k-fold: K models each)",
    )
    args = parser.parse_args(argv)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    runs = []
    for name in args.data:
        source, shape = data_source(name), SHAPES.get(name)
        for budget in args.budget:
            for seed in args.seeds:
                for family in args.families:
                    tests = not args.no_anytime_tests
                    run = run_one(source, family, seed, budget, tests, shape, args.epochs)
                    runs.append({"dataset": name, **run})
                    unit = "epochs" if args.epochs else "s"
                    print(
                        f"{name} {budget:g} {unit} {family:7s} seed {seed}: val {run['val']:.4f} "
                        f"test {run['test']:.4f} conv_layers {run['conv_layers']} trials "
                        f"{run['trials']} epochs {run['epochs']} ({run['seconds']} s)",
                        flush=True,
                    )
                    if args.out:
                        args.out.write_text(json.dumps(runs, indent=1))
    for name in args.data:
        for budget in args.budget:
            _summary([r for r in runs if r["dataset"] == name and r["budget"] == budget], args)
    return 0


def _summary(runs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Per family: the median test over the seeds, each seed's, how often convolutions won;
    and what the default study fitted to the budget (its first seed's note)."""
    unit = "epochs" if args.epochs else "s"
    print(f"\n{runs[0]['dataset']}, {runs[0]['budget']:g} {unit} a study, seeds {args.seeds}:")
    for family in args.families:
        tests = [r["test"] for r in runs if r["family"] == family and r["test"] is not None]
        shown = ", ".join(f"{t:.4f}" for t in tests)
        median = statistics.median(tests) if tests else math.nan
        conv = sum(r["conv_layers"] > 0 for r in runs if r["family"] == family)
        print(f"  {family:7s} median test {median:.4f} ({shown}); convolutional chosen {conv}x")
    fitted = next((r["fitted"] for r in runs if r["family"] == "default" and r["fitted"]), None)
    print(f"  default: {fitted or 'nothing fitted to the budget'}")


if __name__ == "__main__":
    sys.exit(main())
