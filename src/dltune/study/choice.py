"""The choice of the best trial at a study's end, made so that it holds on new data.

With many trials judged on one small validation split, the trial with the best single-run
validation maximum is partly the luckiest: its seed, its epoch. Before the one test, the top
`k` complete trials (by validation value, ties broken by the lower validation loss at the best
epoch) are retrained with `m` other seeds each, for the epochs each trained, and the one with
the best mean of those fresh validation maxima is chosen; the stored run, selected for being
high, is not counted (benchmarks/choice.py measured both). Beside it, the optimism of the
maximum: the chosen trial's single-run value minus its re-evaluated mean.

The cost is kept inside the study's budget: with a timeout or an epoch budget, a share
(RESERVE) of it is held back from the search and spent here, a round of seeds at a time (every
candidate's j-th seed before any (j+1)-th), only whole rounds counting; with a trial count
alone, the re-evaluation is k x m trainings beyond it. Every re-evaluation is stored as it
ends (schema.REEVAL_PREFIX) and the choice itself too (schema.CHOICE), so a resumed study
redoes none of them and every reader of `best_trial` sees the chosen trial.

Rules (the `choose` setting, `--choose`): "max" (today's: the best single run, first of the
best) or "top{k}x{m}", e.g. "top3x2".
"""

from __future__ import annotations

import math
import re
import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import DLTuneError, param

if TYPE_CHECKING:
    import optuna

    from ..engine import SequentialTrainer
    from ..storage import TrialRecord

# "auto": re-evaluate (top3x2) where the validation split is small enough for the luck of one
# run to decide the maximum; otherwise the best single run (see rule_for).
DEFAULT_CHOICE = "auto"
SMALL_VALIDATION = 1000  # examples: an accuracy's standard error there is ~0.005-0.016
AUTO_RULE = (3, 2)
RESERVE = 0.25  # share of a timeout or epoch budget held back for the re-evaluation
# Held back instead, in a continued study, where nothing is re-evaluated but the delivered
# ensemble's (or bag's) members may have to be retrained: those an earlier run trained, whose
# weights no process of this run kept. A fresh study keeps them all (9 of 9 studies of
# families.py delivered the weights the search trained), and holds nothing back.
ENSEMBLE_RESERVE = 0.05
SEED_STRIDE = 1_000_003  # re-evaluation seed j of a trial: its seed + (j + 1) x this, mod 2**31
_RULE = re.compile(r"top(\d+)x(\d+)")


@dataclass(frozen=True)
class ChoiceRule:
    """The top `candidates` re-evaluated with `seeds` other seeds each; 1 candidate or 0 seeds:
    the single-run maximum ("max")."""

    candidates: int = 1
    seeds: int = 0

    @property
    def reevaluates(self) -> bool:
        return self.candidates > 1 and self.seeds > 0

    @property
    def name(self) -> str:
        return f"top{self.candidates}x{self.seeds}" if self.reevaluates else "max"


def rule_for(value: str | ChoiceRule, validation_examples: int) -> ChoiceRule:
    """The rule `value` names, "auto" resolved for a validation split of this size: below
    SMALL_VALIDATION examples the top 3 re-evaluated with 2 other seeds, where many trials tie
    or differ by a few examples (benchmarks/ties.py: 8-10 examples on GunPoint decided among
    dozens of trials tied at 1.0); otherwise the maximum, whose optimism measured on digits
    (270 examples) was within +-0.004 (benchmarks/choice.py), not worth a quarter of the
    budget."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return ChoiceRule(*AUTO_RULE) if validation_examples < SMALL_VALIDATION else ChoiceRule()
    return parse_choice(value)


def parse_choice(value: str | ChoiceRule) -> ChoiceRule:
    """The rule `value` names ("max", "top{k}x{m}"; "auto" is resolved by rule_for), or a
    DLTuneError that says the forms."""
    if isinstance(value, ChoiceRule):
        return value
    text = str(value).strip().lower()
    if text in ("max", "off", "none"):
        return ChoiceRule()
    match = _RULE.fullmatch(text)
    if match and int(match[1]) >= 2 and int(match[2]) >= 1:
        return ChoiceRule(int(match[1]), int(match[2]))
    raise DLTuneError(
        f"{param('choose', value)} is not a rule: give auto, max (the best single run) or "
        "top<k>x<m> (the top k, k >= 2, re-evaluated with m >= 1 other seeds), e.g. top3x2"
    )


@dataclass
class Reserve:
    """What the re-evaluation may spend: member-epochs (None: not counted) and a deadline
    (time.time() seconds, the run's: plan.py; None: none)."""

    epochs: float | None = None
    deadline: float | None = None
    spent: float = 0.0

    def allows(self, epochs: float) -> bool:
        if self.deadline is not None and time.time() >= self.deadline:
            return False
        return self.epochs is None or self.spent + epochs <= self.epochs + 1e-9

    def counted(self) -> bool:
        return self.epochs is not None or self.deadline is not None


def held_back(rule: str | ChoiceRule, *, ensemble: bool = False) -> float:
    """The share of a run's timeout and of its epoch budget held back from the search for its
    end (plan.py splits them): RESERVE where the rule re-evaluates; otherwise
    ENSEMBLE_RESERVE where the delivered `ensemble`'s members may need retraining (a
    continued study's); else nothing."""
    if parse_choice(rule).reevaluates:
        return RESERVE
    return ENSEMBLE_RESERVE if ensemble else 0.0


def choose(
    study: optuna.Study,
    trainer: SequentialTrainer,
    rule: str | ChoiceRule,
    held: Reserve | None = None,
) -> bool:
    """Choose the best trial by `rule` and store the choice (best_trial then returns it).
    False when Ctrl-C stopped the re-evaluation (what finished is stored; no choice is made,
    the next run goes on from there)."""
    from ..storage import maximizes, read_trials, schema

    rule = parse_choice(rule)
    held = held or Reserve()
    maximize = maximizes(study)
    complete = [r for r in read_trials(study) if r.state == "complete"]
    if not complete:
        return True
    ranked = sorted(complete, key=lambda r: _rank(r, maximize))
    first = max_first(complete, maximize)
    record: dict[str, Any] = {"rule": "max", "trial": first.number, "complete": len(complete)}
    top = ranked[: rule.candidates]
    if rule.reevaluates and len(top) > 1:
        runs = {r.number: schema.read_reevaluations(study, r.number) for r in top}
        try:
            spent = _reevaluate(study, trainer, top, runs, rule.seeds, held)
        except KeyboardInterrupt:
            return False
        record = _chosen(rule, top, runs, maximize, spent, len(complete)) or {
            **record,
            "how": f"the best validation value of a single run (re-evaluating the top "
            f"{len(top)} did not fit in the reserve)",
        }
    schema.write_choice(study, record)
    return True


def max_first(complete: list[TrialRecord], maximize: bool) -> TrialRecord:
    """The first of the trials with the best value: today's choice, the rule "max"."""
    pick = max if maximize else min
    return pick(complete, key=lambda r: r.value if r.value is not None else math.nan)


def _rank(record: TrialRecord, maximize: bool) -> tuple[float, float, int]:
    """Order of the candidates: best value, then the lower validation loss at its best epoch
    (the finer measure where a small split ties many), then the earlier trial."""
    value = record.value if record.value is not None else (-math.inf if maximize else math.inf)
    return (-value if maximize else value, _loss_at_best(record), record.number)


def _loss_at_best(record: TrialRecord) -> float:
    at = (record.best_epoch or 1) - 1
    loss = record.val_loss[at] if 0 <= at < len(record.val_loss) else math.nan
    return loss if math.isfinite(loss) else math.inf


def reevaluation_seed(trial_seed: int, j: int) -> int:
    return (trial_seed + (j + 1) * SEED_STRIDE) % 2**31


def _reevaluate(
    study: optuna.Study,
    trainer: SequentialTrainer,
    top: list[TrialRecord],
    runs: dict[int, list[dict[str, Any]]],
    seeds: int,
    held: Reserve,
) -> float:
    """Train what is missing of `seeds` rounds, a round at a time, within `held`; each run
    stored as it ends. Returns the member-epochs trained here."""
    from ..config import Config
    from ..storage import schema

    trained = 0.0
    for j in range(seeds):
        for record in top:
            if len(runs[record.number]) > j:
                continue  # stored by an earlier run of the study
            epochs = max(1, record.epochs)
            if record.seed is None or not held.allows(epochs):
                return trained
            seed = reevaluation_seed(record.seed, j)
            result = trainer.train(
                Config.from_dict(record.config),
                seed=seed,
                epochs=epochs,
                on_epoch=lambda _report: held.allows(0),  # stop at the deadline
            )
            trained += result.epochs_run
            held.spent += result.epochs_run
            if result.status == "pruned":  # the deadline came mid-run: not a whole run
                return trained
            value = result.best_value if result.status == "complete" else None
            runs[record.number].append(
                {
                    "seed": seed,
                    "value": value if value is not None and math.isfinite(value) else None,
                    "epochs": result.epochs_run,
                    "best_epoch": result.best_epoch,
                }
            )
            schema.write_reevaluations(study, record.number, runs[record.number])
    return trained


def _chosen(
    rule: ChoiceRule,
    top: list[TrialRecord],
    runs: dict[int, list[dict[str, Any]]],
    maximize: bool,
    spent: float,
    complete: int,
) -> dict[str, Any] | None:
    """The choice by the mean over the whole rounds of re-evaluation (None: not one round)."""
    rounds = min(len(runs[r.number]) for r in top)
    rounds = min(rounds, rule.seeds)
    if rounds == 0:
        return None
    worst = -math.inf if maximize else math.inf

    def mean(number: int) -> float:
        values = [run["value"] for run in runs[number][:rounds]]
        return statistics.fmean(worst if v is None else float(v) for v in values)

    scores = {r.number: mean(r.number) for r in top}
    pick = max if maximize else min
    chosen = pick(top, key=lambda r: scores[r.number])  # ties: the higher ranked
    single = chosen.value
    again = scores[chosen.number]
    optimism = (
        (single - again if maximize else again - single)
        if single is not None and math.isfinite(again)
        else None
    )
    extra = sum(float(run.get("epochs", 0)) for r in top for run in runs[r.number][:rounds])
    over = f"{rounds} other seed" + ("s" if rounds > 1 else "")
    how = f"chosen among the top {len(top)} by mean validation over {over}"
    if single is not None and optimism is not None:
        how += (
            f"; its single-run maximum was {single:.4f}, re-evaluated {again:.4f} "
            f"(optimism {optimism:+.4f})"
        )
    if rounds < rule.seeds:
        how += f" ({rule.seeds} seeds asked, {rounds} fitted in the reserve)"
    return {
        "rule": rule.name,
        "trial": chosen.number,
        "complete": complete,
        "candidates": [r.number for r in top],
        "seeds": rule.seeds,
        "rounds": rounds,
        "scores": {str(n): (s if math.isfinite(s) else None) for n, s in scores.items()},
        "single": single,
        "reevaluated": again if math.isfinite(again) else None,
        "optimism": optimism,
        "extra_epochs": extra,
        "trained_now": spent,
        "how": how,
    }
