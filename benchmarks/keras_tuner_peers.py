"""Keras Tuner's Hyperband against the same code under dltune's Keras Tuner API.

    python benchmarks/keras_tuner_peers.py [--budget 300] [--seeds 0 1 2] [--batch-size 64]
                                           [--quick] [--out benchmarks/results/....json]
    python benchmarks/keras_tuner_peers.py --from-json benchmarks/results/....json

`--quick` is one seed of 45 s per tool (about 3 minutes in all, start-up and the final tests
included). Needs `pip install keras keras-tuner six` (Keras Tuner is a benchmark-only
dependency; it imports six without declaring it).

What is compared. One script, two imports: `import keras_tuner as kt` (Keras Tuner 1.4 on
Keras 3, torch backend) and `from dltune import keras_tuner as kt`, each running

    tuner = kt.Hyperband(build_model, objective="val_accuracy", max_epochs=27, factor=3,
                         hyperband_iterations=None, seed=seed, directory=..., project_name=...)
    tuner.search(x_train, y_train, batch_size=64, validation_data=(x_val, y_val))
    model = tuner.get_best_models(1)[0]          # then model.evaluate(x_test, y_test)

with the same build_model (Keras Tuner's getting-started model: 1-3 Dense layers of 32-512
units, relu or tanh, optional dropout, Adam at 1e-4 to 1e-2, softmax) on the same arrays: the
10,000 MNIST test images in ../shared/data/mnist-10k, split 7000/1500/1500 as dltune.load_data
splits them (stratified, seed 0), as pixels / 255 of shape (28, 28, 1) with one-hot labels, as
the tutorial feeds Keras. Same wall-clock budget: hyperband_iterations=None runs Hyperband
until stopped in both. Keras Tuner has no time budget: at the budget a callback sets
model.stop_training and the tuner's pre_create_trial raises, which ends search() (as
benchmarks/peers.py stops it); dltune's search() takes timeout=budget (its own argument; the
running trials end at their next checkpoint).

Each tool runs in a child process of its own (this script with a hidden --arm), one after the
other, the order rotated from seed to seed. Its clock starts when search() starts; every epoch
of any trial is logged ({"t", "val", "trial", "epoch"}: Keras Tuner's from a Keras callback,
dltune's from a ProgressListener given to search()), and nothing logged after the budget
counts. After the search (outside the budget) each arm takes get_best_models(1)[0], the model
the tool delivers, and measures its test accuracy with Keras's evaluate().

Printed, and written to --out as JSON: each tool's best validation accuracy by time; for each
seed Keras Tuner's final best validation accuracy, the time Keras Tuner needed to reach it,
the time dltune needed (or "never"), their ratio (target: at most 0.25), and the test
accuracies of the delivered models; then medians over seeds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from peers import (  # this folder's: the event log, the watchdog, the curves, Keras Tuner's stop
    MNIST,
    BudgetSpent,
    EventLog,
    best_at,
    best_over_time,
    fmt,
    kerastuner_at_budget,
    machine,
    read_jsonl,
    time_marks,
    time_to_reach,
    watch,
)

TOOLS = ("kerastuner", "dltune")
MAX_EPOCHS, FACTOR = 27, 3
GRACE_S = 60.0  # past the budget: an epoch in flight, get_best_models and the test
QUICK_BUDGET_S = 45.0
LEVELS = (0.94, 0.95, 0.96, 0.965)  # validation accuracies whose times report_levels prints
RESULTS = Path(__file__).resolve().parent / "results"


def build_model(hp: Any) -> Any:
    """Keras Tuner's getting-started model (its multi-layer version), on 28x28x1 images."""
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten()])
    for i in range(hp.Int("num_layers", 1, 3)):
        model.add(
            layers.Dense(
                units=hp.Int(f"units_{i}", min_value=32, max_value=512, step=32),
                activation=hp.Choice("activation", ["relu", "tanh"]),
            )
        )
    if hp.Boolean("dropout"):
        model.add(layers.Dropout(rate=0.25))
    model.add(layers.Dense(10, activation="softmax"))
    learning_rate = hp.Float("lr", min_value=1e-4, max_value=1e-2, sampling="log")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def arrays() -> tuple[dict[str, Any], dict[str, Any], str]:
    """The splits as the tutorial feeds Keras: x (n, 28, 28, 1) in [0, 1], one-hot y; and the
    data's fingerprint (the same in both arms)."""
    import numpy as np

    import dltune

    data = dltune.load_data(MNIST)  # dltune's split: 7000/1500/1500, stratified, seed 0
    x, y = {}, {}
    for split in ("train", "val", "test"):
        raw = getattr(data, f"x_{split}") * data.x_std + data.x_mean  # the pixels, 0..255
        x[split] = (np.rint(raw) / 255.0).astype(np.float32).reshape(-1, 28, 28, 1)
        y[split] = np.eye(10, dtype=np.float32)[getattr(data, f"y_{split}")]
    return x, y, data.fingerprint()


def arm(tool: str, seed: int, budget: float, folder: Path, batch_size: int) -> None:
    """One tool's search, logged; then its delivered model tested."""
    os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported
    if tool == "dltune":
        from dltune import keras_tuner as kt
    else:
        import keras_tuner as kt
    import keras

    x, y, fingerprint = arrays()
    keras.utils.set_random_seed(seed)
    log = EventLog(folder / "events.jsonl", budget)
    tuner = kt.Hyperband(
        build_model, objective="val_accuracy", max_epochs=MAX_EPOCHS, factor=FACTOR,
        hyperband_iterations=None, seed=seed, directory=str(folder), project_name="mnist",
        overwrite=True,
    )  # fmt: skip
    log.start(data=fingerprint)
    fit = {"batch_size": batch_size, "validation_data": (x["val"], y["val"]), "verbose": 0}
    if tool == "dltune":
        trials = search_dltune(tuner, x["train"], y["train"], fit, log)
    else:
        trials = search_kerastuner(keras, tuner, x["train"], y["train"], fit, log)
    searched = log.elapsed()
    model = tuner.get_best_models(1)[0]
    _, test = model.evaluate(x["test"], y["test"], verbose=0)
    _, val = model.evaluate(x["val"], y["val"], verbose=0)
    log.final(trials=trials, searched=searched, delivered_val=val, delivered_test=test)


def search_dltune(tuner: Any, x: Any, y: Any, fit: dict[str, Any], log: EventLog) -> int:
    from dltune import ProgressListener

    class Listener(ProgressListener):
        def epoch_done(self, number: int, report: Any) -> None:
            log.epoch(report.val_metric, number, report.epoch)

    tuner.search(x, y, timeout=log.budget, progress=Listener(), **fit)
    return int(tuner.result.trials_run)


def search_kerastuner(
    keras: Any, tuner: Any, x: Any, y: Any, fit: dict[str, Any], log: EventLog
) -> int:
    """Keras Tuner's search, stopped at the budget (it has no timeout of its own)."""
    logger, current = kerastuner_at_budget(keras, tuner, log)
    with contextlib.suppress(BudgetSpent):
        tuner.search(x, y, callbacks=[logger], **fit)
    return int(current["trials"])


# ---- the parent ------------------------------------------------------------------------------


def run_arm(tool: str, seed: int, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True)
    log_path, output_path = folder / "events.jsonl", folder / "output.txt"
    command = [sys.executable, str(Path(__file__).resolve()), "--arm", tool, "--seed", str(seed)]
    command += ["--budget", str(args.budget), "--workdir", str(folder)]
    command += ["--batch-size", str(args.batch_size)]
    with open(output_path, "wb") as output:
        child = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        launched = time.perf_counter()
        setup, ended = watch(child, log_path, args.budget, GRACE_S)
    lines = read_jsonl(log_path)
    events = [e for e in lines if "val" in e and e["t"] <= args.budget]
    final = next((e for e in lines if e.get("final")), {})
    curve = best_over_time(events)
    return {
        "events": events,
        "curve": curve,
        "final_val": curve[-1][1] if curve else None,
        "reached_final_at": time_to_reach(curve, curve[-1][1]) if curve else None,
        "trials": final.get("trials", len({e["trial"] for e in events})),
        "delivered_val": final.get("delivered_val"),
        "delivered_test": final.get("delivered_test"),
        "data": next((e.get("data") for e in lines if e.get("start")), None),
        "setup_s": setup,
        "wall_s": time.perf_counter() - launched,
        "ended": ended,
        "output_tail": output_path.read_text(errors="replace")[-3000:],
    }


def compare(results: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per seed: Keras Tuner's final best validation accuracy, when each tool reached it."""
    rows = []
    for seed, by_tool in results.items():
        peer, ours = by_tool["kerastuner"], by_tool["dltune"]
        if peer["final_val"] is None:
            continue
        ours_s = time_to_reach(ours["curve"], peer["final_val"])
        peer_s = peer["reached_final_at"]
        rows.append(
            {
                "seed": seed,
                "kerastuner_best_val": peer["final_val"],
                "kerastuner_s": peer_s,
                "dltune_s": ours_s,
                "ratio": ours_s / peer_s if ours_s is not None and peer_s else None,
                "kerastuner_test": peer["delivered_test"],
                "dltune_test": ours["delivered_test"],
            }
        )
    return rows


def report(results: dict[int, dict[str, Any]], rows: list[dict[str, Any]], budget: float) -> dict:
    marks = time_marks(budget)
    print("\nBest validation accuracy by time (seconds since search() began)")
    print(f"{'seed':>4} {'tool':>10} " + " ".join(f"{m:>6.0f}s" for m in marks) + "  trials")
    for seed, by_tool in results.items():
        for tool, run in by_tool.items():
            row = " ".join(f"{fmt(best_at(run['curve'], m)):>7}" for m in marks)
            print(f"{seed:>4} {tool:>10} {row}  {run['trials']:>6}")
    print("\nTime to Keras Tuner's final best validation accuracy (target: ratio <= 0.25), and")
    print("the test accuracy of the model each delivers (get_best_models(1)[0])")
    print(f"{'seed':>4} {'KT best':>8} {'KT s':>7} {'dltune s':>8} {'ratio':>6} {'KT test':>8} "
          f"{'dltune test':>11}")  # fmt: skip
    for r in rows:
        reached = fmt(r["dltune_s"], 1) if r["dltune_s"] is not None else "never"
        ratio = fmt(r["ratio"], 3) if r["ratio"] is not None else "inf"
        print(
            f"{r['seed']:>4} {fmt(r['kerastuner_best_val']):>8} {fmt(r['kerastuner_s'], 1):>7} "
            f"{reached:>8} {ratio:>6} {fmt(r['kerastuner_test']):>8} {fmt(r['dltune_test']):>11}"
        )
    report_levels(results)
    report_epochs(results)
    if not rows:
        return {}
    ratios = [r["ratio"] if r["ratio"] is not None else float("inf") for r in rows]
    tests = {t: [r[f"{t}_test"] for r in rows if r[f"{t}_test"] is not None] for t in TOOLS}
    medians = {
        "ratio": statistics.median(ratios),
        **{f"{t}_test": statistics.median(v) if v else None for t, v in tests.items()},
    }
    print(
        f"\nMedians over {len(rows)} seed(s): ratio {medians['ratio']:.3f} (target <= 0.25); "
        f"test accuracy Keras Tuner {fmt(medians['kerastuner_test'])}, "
        f"dltune {fmt(medians['dltune_test'])}"
    )
    return medians


def report_levels(results: dict[Any, dict[str, Any]]) -> None:
    """When each tool first reached each of LEVELS, and dltune's time over Keras Tuner's."""
    print("\nTime to each level of validation accuracy: Keras Tuner s / dltune s (ratio)")
    print(f"{'level':>6} " + " ".join(f"{'seed ' + str(seed):>24}" for seed in results))
    for level in LEVELS:
        cells = []
        for by_tool in results.values():
            peer = time_to_reach(by_tool["kerastuner"]["curve"], level)
            ours = time_to_reach(by_tool["dltune"]["curve"], level)
            ratio = f"({ours / peer:.2f})" if peer and ours is not None else ""
            cells.append(f"{fmt(peer, 1) if peer else 'never'} / "
                         f"{fmt(ours, 1) if ours is not None else 'never'} {ratio}")  # fmt: skip
        print(f"{level:>6} " + " ".join(f"{c:>24}" for c in cells))


def report_epochs(results: dict[Any, dict[str, Any]]) -> None:
    """Where each tool's epochs went: all it trained, the trials it ran to max_epochs, and
    the median epoch at which those trials were best (late: their long runs paid)."""
    print(f"\nEpochs trained, trials run to {MAX_EPOCHS} epochs, and those trials' median best "
          "epoch")  # fmt: skip
    for seed, by_tool in results.items():
        for tool, run in by_tool.items():
            curves: dict[Any, list[tuple[int, float]]] = {}
            for e in run["events"]:
                curves.setdefault(e["trial"], []).append((e["epoch"], e["val"]))
            full = [c for c in curves.values() if max(epoch for epoch, _ in c) >= MAX_EPOCHS]
            best = [max(c, key=lambda point: point[1])[0] for c in full]
            middle = f"{statistics.median(best):g}" if best else "-"
            print(f"{seed:>4} {tool:>10} {len(run['events']):>6} epochs, {len(full):>3} "
                  f"full-length trials, median best epoch {middle}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=300.0, help="seconds per tool and seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch-size", type=int, default=64, help="search()'s batch_size")
    parser.add_argument("--quick", action="store_true", help="45 s, one seed")
    parser.add_argument("--out", type=Path, help="all events and results (JSON)")
    parser.add_argument("--from-json", type=Path, help="print the report of a saved --out file")
    parser.add_argument("--arm", choices=TOOLS, help=argparse.SUPPRESS)  # in a child process
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        arm(args.arm, args.seed, args.budget, args.workdir, args.batch_size)
        return
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        report(saved["results"], compare(saved["results"]), saved["budget"])
        return
    if args.quick:
        args.budget, args.seeds = QUICK_BUDGET_S, args.seeds[:1]
    out = args.out or RESULTS / f"keras-tuner-peers-{args.budget:.0f}s.json"
    print(f"keras_tuner_peers: {machine()}")
    print(f"budget {args.budget:.0f} s per tool and seed; seeds {args.seeds}; data {MNIST}")
    scratch = Path(tempfile.mkdtemp(prefix="dltune-kt-peers-"))
    results: dict[int, dict[str, Any]] = {}
    try:
        for i, seed in enumerate(args.seeds):
            order = TOOLS[i % 2 :] + TOOLS[: i % 2]
            for tool in order:
                print(f"  seed {seed}: {tool} ...", end=" ", flush=True)
                run = run_arm(tool, seed, args, scratch / f"{seed}-{tool}")
                results.setdefault(seed, {})[tool] = run
                print(f"{len(run['events'])} epochs, {run['trials']} trials, {run['ended']}")
                if run["ended"] != "exit 0":
                    print("\n".join(run["output_tail"].splitlines()[-15:]))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    digests = {r["data"] for by_tool in results.values() for r in by_tool.values() if r["data"]}
    if len(digests) > 1:
        print(f"WARNING: the arms trained on different data: {sorted(digests)}")
    results = {s: r for s, r in results.items() if set(r) == set(TOOLS)}
    rows = compare(results)
    medians = report(results, rows, args.budget)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"machine": machine(), "budget": args.budget, "seeds": args.seeds,
              "batch_size": args.batch_size, "results": results, "comparison": rows,
              "medians": medians}  # fmt: skip
    out.write_text(json.dumps(record, default=str))
    print(f"\nAll events and results: {out}")


if __name__ == "__main__":
    main()
