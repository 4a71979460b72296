"""Accurate and small (issue 18): dltune's successive halving on the Pareto front against an
Optuna NSGA-II study of the same two objectives, which Optuna cannot prune, in the same time.

    python benchmarks/multiobjective.py [--budget 300] [--seeds 0 1 2]
                                        [--arms dltune nsga2 dltune-hv] [--out /tmp/mo.json]
    python benchmarks/multiobjective.py --quick     # one seed of 60 s per arm

The objectives: validation accuracy (maximize) and the network's parameters (minimize). The
space: dltune's default dense space (peers.py's constants, checked against dltune's), the data
the 10,000 MNIST test images in ../shared/data/mnist-10k, split 7000/1500/1500 by
dltune.load_data; every arm trains on those float32 arrays.

The arms, each in a child process of its own, its clock started after imports and data:

- dltune: tune({"objectives": [accuracy, parameters], "min_epochs": 0.25}, timeout=budget):
  the scheduler ranks each rung by non-dominated sorting with the crowding-distance tie-break;
- dltune-hv: the same with the hypervolume-contribution tie-break (DLTUNE_TIE_BREAK), the
  measurement that chooses between the two;
- nsga2: optuna.create_study(directions=[maximize, minimize], sampler=NSGAIISampler(seed)),
  a plain PyTorch loop as peers.py's Optuna arm, every trial trained its 27 epochs (Optuna
  cannot prune a study of several objectives) and told its best epoch's validation accuracy
  (as dltune's trials are) and its parameters. A trial in flight at the budget is told its
  best so far, as dltune's trials end at the timeout (generous to NSGA-II: Optuna's timeout
  would lose it).

What counts is judged on data the search never saw. Each arm's front is chosen on validation
(its non-dominated complete trials); each of its points is then tested: NSGA-II's at the best
epoch during training, dltune's retrained from its seed for its best epochs (exact on a CPU; a
measurement outside the budget, never used to choose). Printed per arm and seed:

- the hypervolume of the front on (test accuracy, log10 parameters), with the reference point
  (chance accuracy 0.1, log10 of the largest network of the space): larger is better; and on
  validation, what the search itself saw;
- dltune's `--pick "smallest within 0.005 of the best accuracy"` (on validation) and its test
  accuracy against the most accurate point's, and the issue's figure: the parameters of the
  smallest front point within 0.005 test accuracy of the most accurate (by test), as a fraction
  of that model's;
- trials complete, front size. Medians over seeds; everything to --out as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # the shared space, data and checks

ARMS = ("dltune", "nsga2", "dltune-hv")
CHANCE = 0.1  # ten classes
GRACE_S = 60.0  # past the budget: an epoch in flight, a final test
MEASURE_S = 900.0  # dltune's front retrained and tested, after its search
PICK = "smallest within 0.005 of the best accuracy"
MARGINS = {0.005: "0.005", 0.02: "0.02"}  # of test accuracy: the issue's, and a looser one


def largest_network(n_features: int, n_classes: int) -> int:
    """The parameters of the space's largest network: 3 hidden layers of 1024."""
    widest, depth = peers.UNITS[1], peers.LAYERS[1]
    hidden = (n_features + 1) * widest + (depth - 1) * (widest + 1) * widest
    return hidden + (widest + 1) * n_classes


# ---------------------------------------------------------------------------------------------
# The arms (each in a child process of its own); each writes result.json in its folder
# ---------------------------------------------------------------------------------------------


def arm_dltune(seed: int, budget: float, folder: Path) -> dict[str, Any]:
    import optuna

    import dltune
    from dltune.study.front import pareto_front, pick_point

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = peers.load_dataset()
    started = time.perf_counter()
    result = dltune.tune(
        space={"objectives": ["accuracy", "parameters"], **peers.DLTUNE_RUNGS},
        data=data,
        storage=f"sqlite:///{folder}/dltune.db",
        study_name=f"mo-{seed}",
        timeout=budget,
        seed=seed,
        choose="max",
    )
    search_s = time.perf_counter() - started
    front = pareto_front(result.study)  # complete and stopped trials, at their best epoch
    complete = pareto_front(result.study, stopped=False)  # Optuna's: the complete alone
    picked = pick_point(front, PICK).number if front.points else None
    numbered = {r.number: r for r in front.points + complete.points}
    tests = test_front(result, data, numbered)
    return {
        "search_s": search_s,
        "complete": len(complete.points) + len(complete.dominated),
        "counted": len(front.points) + len(front.dominated),
        "trials": len(result.study.trials),
        "front": [_point(r, tests) for r in front.points],
        "front_complete": [_point(r, tests) for r in complete.points],
        "picked": picked,
    }


def _point(record: Any, tests: dict[int, float]) -> dict[str, Any]:
    return {
        "trial": record.number,
        "state": record.state,
        "val": record.value,
        "epoch": record.best_epoch,
        "parameters": record.parameters,
        "test": tests[record.number],
        "config": record.config,
    }


def test_front(result: Any, data: Any, records: dict[int, Any]) -> dict[int, float]:
    """Each front point's test accuracy: its trial retrained from its seed for its best epochs
    (a measurement; the search is over)."""
    from dltune.config import Config
    from dltune.engine import SequentialTrainer
    from dltune.storage import schema

    meta = schema.read_study_meta(schema.study_attrs(result.study))
    trainer = SequentialTrainer(data, metric=meta["metric"], shuffle_seed=int(meta["shuffle_seed"]))
    tests = {}
    for number, record in records.items():
        config = Config.from_dict(record.config)
        run = trainer.train(
            config, seed=int(record.seed), epochs=int(record.best_epoch or config.epochs),
            keep_best_state=True,
        )  # fmt: skip
        model = trainer.model_from_state(config, run.best_state)
        tests[number] = trainer.evaluate(model, "test", config.loss)[1]
    return tests


def arm_nsga2(seed: int, budget: float, folder: Path) -> dict[str, Any]:
    import optuna
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    import plain_torch  # this folder's: the Optuna arms' torch pieces, shared with peers.py

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = peers.load_dataset()
    x, y = plain_torch.classification_splits(data)
    n_classes = int(data.n_classes)
    torch.manual_seed(seed)

    def accuracy(model: nn.Module, split: str) -> float:
        return plain_torch.accuracy(model, x[split], y[split])

    started = time.perf_counter()

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        model = plain_torch.dense_network(trial, x["train"].shape[1], n_classes)
        parameters = sum(p.numel() for p in model.parameters())
        loss_name = trial.suggest_categorical("loss", peers.LOSSES)
        optimizer = plain_torch.OPTIMIZERS[
            trial.suggest_categorical("optimizer", peers.OPTIMIZERS)
        ](
            model.parameters(),
            lr=trial.suggest_float("learning_rate", *peers.LEARNING_RATE, log=True),
        )
        batch_size = trial.suggest_categorical("batch_size", peers.BATCH_SIZES)
        loader = DataLoader(
            TensorDataset(x["train"], y["train"]), batch_size=batch_size, shuffle=True
        )
        best, best_test = -math.inf, math.nan
        for _ in range(peers.MAX_EPOCHS):
            model.train()
            for batch_x, batch_y in loader:
                optimizer.zero_grad()
                loss = plain_torch.classification_loss(
                    loss_name, model(batch_x), batch_y, n_classes
                )
                loss.backward()
                optimizer.step()
            if time.perf_counter() - started > budget:  # this epoch ended past the budget
                trial.study.stop()
                break
            value = accuracy(model, "val")
            if value > best:  # the best epoch's model is the one kept (as dltune's)
                best, best_test = value, accuracy(model, "test")
        if best == -math.inf:
            raise optuna.TrialPruned()  # not one epoch within the budget
        trial.set_user_attr("test", best_test)
        return best, float(parameters)

    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=optuna.samplers.NSGAIISampler(seed=seed)
    )
    study.optimize(objective, timeout=budget)
    search_s = time.perf_counter() - started
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    front = {t.number for t in study.best_trials}
    points = [
        {
            "trial": t.number,
            "val": t.values[0],
            "parameters": int(t.values[1]),
            "test": t.user_attrs["test"],
            "config": t.params,
        }
        for t in sorted(complete, key=lambda t: -t.values[0])
        if t.number in front
    ]
    return {
        "search_s": search_s,
        "complete": len(complete),
        "trials": len(study.trials),
        "front": points,
        "picked": None,
    }


ARM_FUNCTIONS = {"dltune": arm_dltune, "dltune-hv": arm_dltune, "nsga2": arm_nsga2}


# ---------------------------------------------------------------------------------------------
# The parent: run the arms one after the other, then compare
# ---------------------------------------------------------------------------------------------


def run_arm(arm: str, seed: int, budget: float, folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["DLTUNE_TIE_BREAK"] = "hypervolume" if arm == "dltune-hv" else "crowding"
    command = [sys.executable, str(Path(__file__).resolve()), "--arm", arm, "--seed", str(seed)]
    command += ["--budget", str(budget), "--workdir", str(folder)]
    limit = peers.STARTUP_LIMIT_S + budget + GRACE_S + (MEASURE_S if arm != "nsga2" else 0)
    started = time.perf_counter()
    # a child past its limit is killed; what it wrote still counts
    output = open(folder / "output.txt", "wb")  # noqa: SIM115 - closed below
    with output, contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, timeout=limit, env=env)
    path = folder / "result.json"
    result = json.loads(path.read_text()) if path.exists() else {"failed": True}
    result["wall_s"] = time.perf_counter() - started
    return result


def hypervolume(points: list[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Of (accuracy, log10 parameters) points, maximize and minimize."""
    from dltune.schedule.pareto import hypervolume_2d

    logged = [(a, math.log10(p)) for a, p in points]
    return hypervolume_2d(logged, ["maximize", "minimize"], reference)


def figures(result: dict[str, Any], reference: tuple[float, float]) -> dict[str, Any]:
    front = result["front"]
    if not front:
        return {"hv_test": 0.0, "hv_val": 0.0, "front": 0}
    out: dict[str, Any] = {
        "hv_test": hypervolume([(p["test"], p["parameters"]) for p in front], reference),
        "hv_test_complete": hypervolume(
            [(p["test"], p["parameters"]) for p in result.get("front_complete", front)], reference
        ),
        "hv_val": hypervolume([(p["val"], p["parameters"]) for p in front], reference),
        "front": len(front),
        "complete": result["complete"],
        "counted": result.get("counted", result["complete"]),
        "trials": result["trials"],
        "search_s": result["search_s"],
    }
    best = max(front, key=lambda p: p["test"])  # the most accurate on test
    out |= {"best_test": best["test"], "best_parameters": best["parameters"]}
    for margin, key in MARGINS.items():  # the smallest within each margin of it, on test
        near = [p for p in front if p["test"] >= best["test"] - margin]
        smallest = min(near, key=lambda p: p["parameters"])
        out |= {
            f"smallest_{key}_test": smallest["test"],
            f"smallest_{key}_parameters": smallest["parameters"],
            f"fraction_{key}": smallest["parameters"] / best["parameters"],
        }
    by_val = front[0]  # the most accurate on validation: the study's best
    out["val_best_test"], out["val_best_parameters"] = by_val["test"], by_val["parameters"]
    if result.get("picked") is not None:
        picked = next(p for p in front if p["trial"] == result["picked"])
        out |= {
            "pick_test": picked["test"],
            "pick_parameters": picked["parameters"],
            "pick_fraction": picked["parameters"] / by_val["parameters"],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=300.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("/tmp/multiobjective.json"))
    parser.add_argument("--table", type=Path, help="print the figures of a finished run's --out")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:  # a child: one arm, its result beside it
        result = ARM_FUNCTIONS[args.arm](args.seed, args.budget, args.workdir)
        (args.workdir / "result.json").write_text(json.dumps(result))
        return
    if args.table:
        saved = json.loads(args.table.read_text())
        report(_rows_of(saved["raw"], tuple(saved["reference"])))
        return
    if args.quick:
        args.budget, args.seeds = 60.0, [0]
    peers.check_space()
    import tempfile

    data = peers.load_dataset()
    reference = (CHANCE, math.log10(largest_network(data.n_features, data.n_classes)))
    root = Path(tempfile.mkdtemp(prefix="multiobjective-"))
    print(f"MNIST-10k, {args.budget:.0f} s per arm, seeds {args.seeds}; reference {reference}")
    rows: dict[str, list[dict[str, Any]]] = {arm: [] for arm in args.arms}
    raw: dict[str, Any] = {}
    for k, seed in enumerate(args.seeds):
        order = args.arms[k % len(args.arms) :] + args.arms[: k % len(args.arms)]  # rotated
        for arm in order:
            result = run_arm(arm, seed, args.budget, root / f"{arm}-{seed}")
            raw[f"{arm}-{seed}"] = result
            if result.get("failed"):
                print(f"{arm} seed {seed}: FAILED, see {root / f'{arm}-{seed}' / 'output.txt'}")
                continue
            row = figures(result, reference) | {"seed": seed}
            rows[arm].append(row)
            print(f"{arm:9s} seed {seed}: " + ", ".join(f"{k} {_shown(v)}" for k, v in row.items()))
            sys.stdout.flush()
    report(rows)
    args.out.write_text(json.dumps({"rows": rows, "raw": raw, "reference": reference}, indent=1))
    print(f"All figures: {args.out}")


def _rows_of(
    raw: dict[str, Any], reference: tuple[float, float]
) -> dict[str, list[dict[str, Any]]]:
    """A finished run's figures again, from its arms' saved results ("ARM-SEED": result)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for name, result in raw.items():
        arm, seed = name.rsplit("-", 1)
        if not result.get("failed"):
            rows.setdefault(arm, []).append(figures(result, reference) | {"seed": int(seed)})
    for arm_rows in rows.values():
        arm_rows.sort(key=lambda r: r["seed"])
    return rows


def report(rows: dict[str, list[dict[str, Any]]]) -> None:
    """Each arm's medians over seeds, and the ratios seed by seed."""
    print()
    print(
        "arm        HV test  HV val  front  complete  trials  smallest/best (test): within 0.005"
        "  within 0.02  pick/best"
    )
    for arm, arm_rows in rows.items():
        if not arm_rows:
            continue

        def median(key: str, of: list[dict[str, Any]] = arm_rows) -> float:
            values = [r[key] for r in of if key in r]
            return statistics.median(values) if values else math.nan

        print(
            f"{arm:9s}  {median('hv_test'):7.3f}  {median('hv_val'):6.3f}  {median('front'):5.0f}"
            f"  {median('complete'):8.0f}  {median('trials'):6.0f}"
            f"  {median('fraction_0.005'):34.3f}  {median('fraction_0.02'):11.3f}"
            f"  {median('pick_fraction'):9.3f}"
        )
        for row in arm_rows:
            print(
                f"    seed {row['seed']}: within 0.005 {row['fraction_0.005']:.3f}, within 0.02 "
                f"{row['fraction_0.02']:.3f} ({row['smallest_0.02_parameters']:,} parameters at "
                f"{row['smallest_0.02_test']:.4f}, the best {row['best_parameters']:,} at "
                f"{row['best_test']:.4f})"
            )
    for top, bottom, what in (
        ("dltune", "nsga2", "dltune / nsga2"),
        ("dltune-hv", "dltune", "hypervolume tie-break / crowding"),
    ):
        ratios = _ratios(rows.get(top, []), rows.get(bottom, []))
        if ratios:
            print(f"{what} hypervolume (test), per seed: {ratios}")


def _ratios(top: list[dict[str, Any]], bottom: list[dict[str, Any]]) -> list[float]:
    """Seed by seed, one arm's test hypervolume over another's."""
    return [
        round(a["hv_test"] / b["hv_test"], 3)
        for a, b in zip(top, bottom, strict=False)
        if b["hv_test"] > 0
    ]


def _shown(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    main()
