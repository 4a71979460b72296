"""Which rule chooses the trial whose test accuracy holds: today's maximum against re-evaluation.

    python benchmarks/choice.py --data digits mnist --budget 300 --seeds 0 1 2 3 4 \
        [--reserve 0.25] [--out /tmp/choice.json]

For each data set and seed, `dltune.tune` runs the default study on the dense family with 9
epochs at most (`conv_layers: 0, epochs: 9`, to keep it within this shared CPU; `choose="max"`,
sequential engine, one process) with an epoch budget, twice: with the whole `--budget` (today's
rule spends it all on the search) and with `(1 - reserve) x budget` (the search part when a
share is kept back for re-evaluating the top candidates). Budgets are member-epochs, not wall
time.

On each study, every rule picks one complete trial; its test accuracy is that trial retrained
from its stored seed for its best epoch (the sequential engine reproduces it exactly: the model
`evaluate_test` would test). Rules:

    max             today: the first trial with the best validation value
    max+loss        the same, ties broken by the lowest validation loss at the best epoch
    smooth          the best mean of the curve at the best epoch and its two neighbours
    top{k}x{m}      the top k by (value, loss) retrained with m other seeds for the epochs each
                    trained; chosen by the mean validation maximum over the m new seeds only
                    (the stored run is the selected, optimistic one)
    top{k}x{m}+run  the same, the stored run's value counted in the mean
    top{k}x{m}~     the same as top{k}x{m}, each run scored by its smoothed curve

Extra epochs: the re-evaluations' member-epochs. Optimism: the chosen trial's single-run value
minus the mean of its fresh re-evaluations (what the maximum promised and did not keep).

Data: mnist = ../shared/data/mnist-10k (7000/1500/1500, split seed 0), digits (scikit-learn's
8x8 images, dltune's default split, seed 0).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
SOURCES: dict[str, Any] = {"mnist": SHARED / "mnist-10k", "digits": "digits"}
SPACES: dict[str, Any] = {
    "mnist": {"conv_layers": 0, "epochs": 9},
    "digits": {"conv_layers": 0, "epochs": 9},
}
KS = (3, 5)
MS = (1, 2)


def smooth(curve: list[float], best_epoch: int | None) -> float:
    """The mean of the curve at the best epoch and its neighbours (NaNs skipped)."""
    if not curve:
        return math.nan
    b = (best_epoch or len(curve)) - 1
    window = [v for v in curve[max(0, b - 1) : b + 2] if math.isfinite(v)]
    return sum(window) / len(window) if window else math.nan


def loss_at_best(record: Any) -> float:
    b = (record.best_epoch or 1) - 1
    if b < len(record.val_loss) and math.isfinite(record.val_loss[b]):
        return float(record.val_loss[b])
    return math.inf


class Study:
    """One finished study, with cached retrains: tests of chosen trials, re-evaluations."""

    def __init__(self, result: Any, data: Any, base_seed: int) -> None:
        from dltune.engine import SequentialTrainer
        from dltune.storage import read_trials
        from dltune.storage.records import study_meta

        self.study = result.study
        meta = study_meta(self.study)
        self.trainer = SequentialTrainer(
            data, metric=str(meta["metric"]), shuffle_seed=int(meta.get("shuffle_seed", 0))
        )
        self.done = [
            r for r in read_trials(self.study) if r.state == "complete" and r.value is not None
        ]
        self.base_seed = base_seed
        self.tests: dict[int, float] = {}
        self.reevals: dict[tuple[int, int], tuple[float, float, int]] = {}
        self.epochs_trained = result.epochs_trained

    def test(self, number: int) -> float:
        from dltune.config import Config

        if number not in self.tests:
            record = next(r for r in self.done if r.number == number)
            config = Config.from_dict(record.config)
            run = self.trainer.start(
                config, seed=int(record.seed), epochs=int(record.best_epoch or 1)
            )
            while run.advance() is None:
                pass
            self.tests[number] = self.trainer.evaluate(run.model, "test", config.loss)[1]
        return self.tests[number]

    def reeval(self, record: Any, j: int) -> tuple[float, float, int]:
        """(validation maximum, smoothed value, epochs) of `record` retrained with seed j."""
        from dltune.config import Config

        key = (record.number, j)
        if key not in self.reevals:
            config = Config.from_dict(record.config)
            seed = 1_000_003 * (j + 1) + 7919 * record.number + self.base_seed
            result = self.trainer.train(config, seed=seed, epochs=record.epochs)
            curve = [h.val_metric for h in result.history]
            self.reevals[key] = (
                float(result.best_value if result.best_value is not None else math.nan),
                smooth(curve, result.best_epoch),
                result.epochs_run,
            )
        return self.reevals[key]

    def ranked(self) -> list[Any]:
        return sorted(self.done, key=lambda r: (-(r.value or 0.0), loss_at_best(r), r.number))

    def rules(self) -> dict[str, tuple[int, float, float]]:
        """Rule -> (chosen trial, extra epochs, optimism of the chosen maximum or NaN)."""
        out: dict[str, tuple[int, float, float]] = {}
        first = max(self.done, key=lambda r: r.value or 0.0)  # the first of the best
        out["max"] = (first.number, 0.0, math.nan)
        out["max+loss"] = (self.ranked()[0].number, 0.0, math.nan)
        smoothed = max(self.done, key=lambda r: smooth(r.curve, r.best_epoch))
        out["smooth"] = (smoothed.number, 0.0, math.nan)
        for k in KS:
            top = self.ranked()[:k]
            for m in MS:
                runs = {r.number: [self.reeval(r, j) for j in range(m)] for r in top}
                extra = float(sum(e for rs in runs.values() for _, _, e in rs))
                fresh = {n: statistics.fmean(v for v, _, _ in rs) for n, rs in runs.items()}
                by = {r.number: r for r in top}
                for name, score in (
                    (f"top{k}x{m}", fresh),
                    (
                        f"top{k}x{m}+run",
                        {
                            n: (by[n].value + sum(v for v, _, _ in rs)) / (m + 1)
                            for n, rs in runs.items()
                        },
                    ),
                    (
                        f"top{k}x{m}~",
                        {n: statistics.fmean(s for _, s, _ in rs) for n, rs in runs.items()},
                    ),
                ):
                    chosen = max(top, key=lambda r: score[r.number])  # ties: the higher ranked
                    optimism = (chosen.value or 0.0) - fresh[chosen.number]
                    out[name] = (chosen.number, extra, optimism)
        return out


def run_study(name: str, seed: int, budget: float) -> Any:
    import optuna

    import dltune
    from dltune.data import load_data

    data = load_data(SOURCES[name], seed=0)
    result = dltune.tune(
        SPACES[name],
        data=data,
        storage=optuna.storages.InMemoryStorage(),
        study_name=f"choice-{name}-{seed}-{budget:g}",
        epoch_budget=budget,
        seed=seed,
        engine="sequential",
        workers=1,
        choose="max",  # the rules are applied here, on the same trials
    )
    return Study(result, data, seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", choices=sorted(SOURCES), default=["digits"])
    parser.add_argument("--budget", type=float, default=300.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--reserve", type=float, default=0.25)
    parser.add_argument(
        "--parts", nargs="+", choices=["full", "search"], default=["full", "search"]
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows: list[dict[str, Any]] = []
    for name in args.data:
        for seed in args.seeds:
            searched = args.budget * (1 - args.reserve)
            for part, budget in (("full", args.budget), ("search", searched)):
                if part not in args.parts:
                    continue
                study = run_study(name, seed, budget)
                for rule, (number, extra, optimism) in study.rules().items():
                    record = next(r for r in study.done if r.number == number)
                    rows.append(
                        {
                            "data": name,
                            "seed": seed,
                            "budget": budget,
                            "part": part,
                            "rule": rule,
                            "trial": number,
                            "val": record.value,
                            "test": study.test(number),
                            "search_epochs": study.epochs_trained,
                            "extra_epochs": extra,
                            "optimism": optimism,
                            "complete": len(study.done),
                        }
                    )
                print(
                    f"{name} seed {seed} budget {budget:g}: {len(study.done)} complete, "
                    f"{study.epochs_trained:.0f} epochs searched",
                    flush=True,
                )
                if args.out:
                    args.out.write_text(json.dumps(rows, indent=1))
    table(rows, args.budget)


def table(rows: list[dict[str, Any]], budget: float) -> None:
    """Rule, mean test accuracy over seeds, its spread, extra epochs, optimism; per data set."""
    for name in dict.fromkeys(r["data"] for r in rows):
        print(f"\n{name} (epoch budget {budget:g}; test accuracy of the chosen trial over seeds)")
        print(f"{'search':>7} {'rule':<14} {'test':>7} {'sd':>6} {'val':>7} "
              f"{'extra ep':>9} {'total ep':>9} {'optimism':>9}")  # fmt: skip
        for part in ("full", "search"):
            mine = [r for r in rows if r["data"] == name and r["part"] == part]
            for rule in dict.fromkeys(r["rule"] for r in mine):
                rs = [r for r in mine if r["rule"] == rule]
                tests = [r["test"] for r in rs]
                sd = statistics.stdev(tests) if len(tests) > 1 else 0.0
                extra = statistics.fmean(r["extra_epochs"] for r in rs)
                total = statistics.fmean(r["search_epochs"] + r["extra_epochs"] for r in rs)
                opt = [r["optimism"] for r in rs if math.isfinite(r["optimism"])]
                shown = f"{statistics.fmean(opt):+.4f}" if opt else "-"
                print(
                    f"{rs[0]['budget']:>7g} {rule:<14} {statistics.fmean(tests):>7.4f} "
                    f"{sd:>6.4f} {statistics.fmean(r['val'] for r in rs):>7.4f} "
                    f"{extra:>9.0f} {total:>9.0f} {shown:>9}"
                )


if __name__ == "__main__":
    main()
