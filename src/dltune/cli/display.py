"""What the command line shows: while a study runs (a live display on a terminal, one plain
line per trial in logs and pipes) and the tables of trials, studies, the best trial and a
sweep. Built from the library's records; the commands only print them.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..config import Config
from ..engine.result import EpochReport
from ..storage import TrialRecord
from ..study.progress import ProgressListener
from ..sweep.values import label
from ..vocabulary import HYPERPARAMETERS

if TYPE_CHECKING:
    from ..analysis.sweep_data import SweepAnalysis
    from ..study.front import Front


def _fmt_time(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _fmt_value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def config_text(params: dict[str, Any]) -> str:
    try:
        return Config.from_dict(params).short()
    except (KeyError, TypeError, ValueError):
        return ", ".join(f"{k}={v}" for k, v in params.items())


class _Running:
    """A trial in flight, as the display knows it: who trains it, its last epoch."""

    def __init__(self, worker: int, config: Config) -> None:
        self.worker, self.config = worker, config
        self.epoch: EpochReport | None = None


class _Tracker(ProgressListener):
    """Counts shared by both displays, over every local worker's trials (the other workers'
    events arrive through worker_event, tagged)."""

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}
        self.started = time.perf_counter()
        self.done = 0
        self.counts: dict[str, int] = {}
        self.best: dict[str, Any] | None = None
        self.running: dict[int, _Running] = {}  # trial number -> in flight, in start order
        self.workers_seen: set[int] = {0}
        self.worker = 0  # whose event is being handled: 0 this process, 1.. the others

    def study_started(self, info: dict[str, Any]) -> None:
        self.info = info
        self.started = time.perf_counter()

    def worker_event(self, worker: int, event: str, args: tuple[Any, ...]) -> None:
        self.worker = worker
        self.workers_seen.add(worker)
        try:
            super().worker_event(worker, event, args)
        finally:
            self.worker = 0

    def trial_started(self, number: int, config: Config) -> None:
        self.running[number] = _Running(self.worker, config)

    def epoch_done(self, number: int, report: EpochReport) -> None:
        if number in self.running:
            self.running[number].epoch = report

    def trial_finished(self, record: TrialRecord, best: dict[str, Any] | None) -> None:
        self.done += 1
        self.counts[record.state] = self.counts.get(record.state, 0) + 1
        self.best = _better(self.best, best)
        self.running.pop(record.number, None)

    @property
    def several(self) -> bool:
        return len(self.workers_seen) > 1

    def tag(self, worker: int | None) -> str:
        """`[w1] ` before a line of worker 1's when several workers train, else nothing."""
        return f"[w{worker or 0}] " if self.several else ""

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def remaining(self) -> float | None:
        timeout, budget = self.info.get("timeout"), self.info.get("trials")
        left = []
        if timeout:
            left.append(timeout - self.elapsed())
        if budget and self.done:
            left.append(self.elapsed() / self.done * (budget - self.done))
        return min(left) if left else None

    def counts_text(self) -> str:
        return ", ".join(f"{n} {state}" for state, n in sorted(self.counts.items()))


def _better(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any] | None:
    """The better of two bests (each worker reports the study's best as it last read it: a
    late report from one must not hide a better one from another)."""
    if old is None or new is None:
        return new if new is not None else old
    if old["value"] is None or new["value"] is None:
        return new if new["value"] is not None else old
    if new["trial"] == old["trial"]:
        return new
    sign = -1 if new.get("direction") == "minimize" else 1
    return new if sign * new["value"] >= sign * old["value"] else old


class PlainProgress(_Tracker):
    """One line per trial, for logs and pipes."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def study_started(self, info: dict[str, Any]) -> None:
        super().study_started(info)
        budget = info["trials"] if info["trials"] is not None else "until timeout"
        self.console.print(
            f"study {info['study']!r} in {info['storage']} · {info['data']} · "
            f"metric {info['metric']} · {info['existing_trials']} trials so far · "
            f"this run: {budget} trials"
            + (f", timeout {info['timeout']:g}s" if info["timeout"] else ""),
            highlight=False,
        )
        if info.get("schedule"):
            self.console.print(f"schedule: {info['schedule']}", highlight=False)
        for note in info.get("notes", []):
            self.console.print(f"note: {note}", highlight=False)

    def trial_finished(self, record: TrialRecord, best: dict[str, Any] | None) -> None:
        super().trial_finished(record, best)
        best_text = f"best {_fmt_value(best['value'])} (#{best['trial']})" if best else "no best"
        self.console.print(
            f"{self.tag(self.worker or record.worker)}trial {record.number:>4} {record.state:<9} "
            f"{_fmt_value(record.value)} after {record.epochs} epochs "
            f"in {record.seconds or 0:.1f}s · {best_text} · {config_text(record.config)}",
            highlight=False,
            markup=False,  # "[w1]" is no style
        )


class LiveProgress(_Tracker):
    """A live panel on a terminal: trials done, the best so far, time elapsed and left."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console
        self.live = Live(console=console, refresh_per_second=4, transient=False)

    def _render(self) -> Group:
        info = self.info
        lines = [
            Text.assemble(
                ("study ", "dim"),
                (str(info.get("study")), "bold"),
                ("  storage ", "dim"),
                str(info.get("storage")),
            ),
            Text.assemble(("data ", "dim"), str(info.get("data"))),
        ]
        budget = info.get("trials")
        done = f"{self.done}/{budget}" if budget else str(self.done)
        remaining = self.remaining()
        lines.append(
            Text.assemble(
                ("trials ", "dim"),
                (done, "bold"),
                f"  ({self.counts_text() or 'none yet'})",
                ("  elapsed ", "dim"),
                _fmt_time(self.elapsed()),
                ("  left ", "dim"),
                "~" + _fmt_time(remaining) if remaining is not None else "?",
            )
        )
        lines.extend(self._now_lines())
        if self.best:
            lines.append(
                Text.assemble(
                    ("best ", "dim"),
                    (f"{self.best['metric']} {_fmt_value(self.best['value'])}", "bold green"),
                    f" (#{self.best['trial']}, epoch {self.best['best_epoch']})  ",
                    config_text(self.best["params"]),
                )
            )
        return Group(*lines)

    def _now_lines(self) -> list[Text]:
        """One line per worker: its latest trial in flight (and how many more it trains)."""
        by_worker: dict[int, list[tuple[int, _Running]]] = {}
        for number, run in self.running.items():
            by_worker.setdefault(run.worker, []).append((number, run))
        lines = []
        for worker in sorted(by_worker):
            number, run = by_worker[worker][-1]
            epoch, config = run.epoch, run.config
            progress = (
                f"epoch {epoch.epoch}/{config.epochs} {self.info.get('metric')} "
                f"{epoch.val_metric:.4f}"
                if epoch
                else "starting"
            )
            more = len(by_worker[worker]) - 1
            extra = f" (+{more} more)" if more else ""
            label = f"w{worker} " if self.several else "now "
            lines.append(
                Text.assemble((label, "dim"), f"#{number} {progress}{extra}  {config.short()}")
            )
        return lines

    def study_started(self, info: dict[str, Any]) -> None:
        super().study_started(info)
        if info.get("schedule"):
            self.console.print(f"schedule: {info['schedule']}", highlight=False)
        for note in info.get("notes", []):
            self.console.print(f"note: {note}", highlight=False)
        self.live.update(self._render())
        self.live.start()

    def trial_started(self, number: int, config: Config) -> None:
        super().trial_started(number, config)
        self.live.update(self._render())

    def epoch_done(self, number: int, report: EpochReport) -> None:
        super().epoch_done(number, report)
        self.live.update(self._render())

    def trial_finished(self, record: TrialRecord, best: dict[str, Any] | None) -> None:
        super().trial_finished(record, best)
        self.live.update(self._render())

    def study_finished(self) -> None:
        self.running.clear()
        self.live.update(self._render())
        self.live.stop()


def make_progress(console: Console) -> ProgressListener:
    return LiveProgress(console) if console.is_terminal else PlainProgress(console)


def best_table(best: dict[str, Any], title: str) -> Table:
    """The best configuration and its metrics, as a two-column table."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="dim")
    table.add_column()
    metric = best.get("metric") or "value"
    table.add_row("trial", f"#{best['trial']}")
    table.add_row(f"validation {metric}", _fmt_value(best["value"]))
    table.add_row(f"test {metric}", _fmt_value(best["test"]) if best["test"] is not None else "-")
    table.add_row("best epoch", f"{best['best_epoch']} of {best['epochs']} run")
    table.add_row("chosen by", str(best.get("chosen_by") or "the best validation value"))
    params = dict(best["params"])
    model = params.pop("model", None)
    if model:  # a user's build(hp): its own hyperparameters instead of dltune's network keys
        for key in ("layers", "units", "dropout", "activation"):
            params.pop(key, None)
    for key in HYPERPARAMETERS:
        if key in params:
            value = params.pop(key)
            if isinstance(value, float):
                value = f"{value:.4g}"
            table.add_row(key, str(value))
    for key, value in (model or {}).items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    for key, value in params.items():
        table.add_row(key, str(value))
    return table


def front_table(front: Front, study_name: str) -> Table:
    """The Pareto front: one row per point, its objectives and configuration."""
    table = Table(
        title=f"Pareto front of study {study_name!r} ({len(front.points)} of "
        f"{len(front.points) + len(front.dominated)} trials trained a whole epoch or more)",
        title_justify="left",
    )
    table.add_column("trial", justify="right")
    for name, direction in zip(front.names, front.directions, strict=True):
        table.add_column(f"{name} {'↑' if direction == 'maximize' else '↓'}", justify="right")
    table.add_column("epochs", justify="right")
    table.add_column("configuration")
    for record in front.points:
        values = [_fmt_objective(v) for v in front.values(record)]
        # a stopped trial's point is its best epoch's model; train-best retrains that many
        epochs = f"{record.best_epoch}" + ("" if record.state == "complete" else " (stopped)")
        table.add_row(f"#{record.number}", *values, epochs, config_text(record.config))
    return table


def _fmt_objective(value: float) -> str:
    """A metric to 4 decimals, a count as a whole number, a latency in ms to 3 figures."""
    if value.is_integer() and abs(value) >= 10:
        return f"{int(value):,}"
    return f"{value:.4g}" if abs(value) >= 1 else f"{value:.4f}"


class SweepProgress(ProgressListener):
    """One line per epoch of the population: runs training, the best value so far, time."""

    def __init__(self, console: Console, param: str) -> None:
        self.console = console
        self.param = param
        self.values: dict[int, str] = {}  # trial number -> the value it trains
        self.latest: dict[int, EpochReport] = {}  # running trial -> its last epoch
        self.epochs = 0
        self.shown = 0  # the last epoch printed
        self.diverged = 0
        self.started = time.perf_counter()
        self.metric = "value"

    def study_started(self, info: dict[str, Any]) -> None:
        self.started = time.perf_counter()
        self.metric = str(info.get("metric"))
        self.console.print(
            f"sweep {info['study']!r} in {info['storage']} · {info['data']} · "
            f"{info['trials']} runs to train",
            highlight=False,
            markup=False,
        )

    def trial_started(self, number: int, config: Config) -> None:
        self.epochs = max(self.epochs, config.epochs)
        value = getattr(config, self.param, None) if self.param != "epochs" else None
        if self.param == "units":
            value = config.units[0]
        self.values[number] = "all" if value is None else label(value)

    def epoch_done(self, number: int, report: EpochReport) -> None:
        self.latest[number] = report
        self._maybe_print()

    def trial_finished(self, record: TrialRecord, best: dict[str, Any] | None) -> None:
        self.diverged += record.state == "diverged"
        self.latest.pop(record.number, None)
        self._maybe_print()

    def _maybe_print(self) -> None:
        """Print an epoch once every running run has finished it."""
        if not self.latest:
            return
        epoch = min(r.epoch for r in self.latest.values())
        if epoch <= self.shown:
            return
        self.shown = epoch
        scores = [(r.val_metric, n) for n, r in self.latest.items() if math.isfinite(r.val_metric)]
        best = ""
        if scores:
            value, number = max(scores) if self.metric == "accuracy" else min(scores)
            best = f" · best now {self.param}={self.values.get(number)} {self.metric} {value:.4f}"
        elapsed = time.perf_counter() - self.started
        self.console.print(
            f"epoch {epoch}/{self.epochs} · {len(self.latest)} runs training{best}"
            + (f" · {self.diverged} diverged" if self.diverged else "")
            + f" · {elapsed:.0f}s",
            highlight=False,
            markup=False,
        )


def trials_table(study_name: str, records: list[TrialRecord]) -> Table:
    """One row per trial: state, value, epochs, best epoch, seconds, configuration."""
    table = Table(title=f"Trials of study {study_name!r}", title_justify="left")
    for column in ("trial", "state", "value", "epochs", "best epoch", "seconds", "configuration"):
        table.add_column(column, justify="right" if column != "configuration" else "left")
    for r in records:
        table.add_row(
            str(r.number),
            r.state,
            "-" if r.value is None else f"{r.value:.4f}",
            str(r.epochs),
            "-" if r.best_epoch is None else str(r.best_epoch),
            "-" if r.seconds is None else f"{r.seconds:.1f}",
            config_text(r.config),
        )
    return table


def study_rows(summaries: list[Any]) -> list[dict[str, Any]]:
    """Optuna's study summaries as `dltune studies --json` prints them."""
    from ..storage import study_summary_meta

    return [
        {
            "study": s.study_name,
            "trials": s.n_trials,
            # the metric's (the first objective's); a study of several has no single best
            "direction": s.directions[0].name.lower(),
            "best": s.best_trial.values[0] if s.best_trial else None,
            "metric": study_summary_meta(s).get("metric"),
            "started": s.datetime_start.isoformat(timespec="seconds") if s.datetime_start else None,
        }
        for s in summaries
    ]


def studies_table(shown_url: str, rows: list[dict[str, Any]]) -> Table:
    """One row per study of a storage (rows as study_rows gives them)."""
    table = Table(title=f"Studies in {shown_url}", title_justify="left")
    for column in ("study", "trials", "metric", "best", "started", "checkpoints"):
        table.add_column(column)
    for row in rows:
        best_value = "-" if row["best"] is None else f"{row['best']:.4f}"
        held = row.get("checkpoints") or {"count": 0, "bytes": 0}
        table.add_row(
            str(row["study"]),
            str(row["trials"]),
            str(row["metric"] or "-"),
            best_value,
            str(row["started"] or "-"),
            f"{held['count']} ({held['bytes'] / 2**20:.1f} MiB)" if held["count"] else "none",
        )
    return table


def sweep_table(a: SweepAnalysis) -> Table:
    """One row per value: final and best validation metric with their spread over seeds, the
    median best epoch, the train-validation gap, divergence, seconds per run, and what the
    value's network costs: its parameters and its latency."""
    from rich import box

    from ..analysis.sweep_data import mean_of, median_of, sd_of

    seeds = a.plan.seeds
    table = Table(
        title=(
            f"Sweep of {a.param}: validation {a.metric} (mean ± sd over {seeds} seed"
            f"{'s' * (seeds > 1)}), {a.plan.epochs} epochs; * best"
        ),
        title_justify="left",
        caption=(
            "gap: train minus validation metric at the last epoch; s/run: a run's share of "
            "the population's seconds; ms/pred: median milliseconds of one prediction of one "
            "example"
        ),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column(a.param, no_wrap=True)
    for head in ("final", "best", "best ep.", "gap", "diverged", "s/run", "params", "ms/pred"):
        table.add_column(head, justify="right", no_wrap=True)
    best = a.ranked[0].index if a.ranked else None
    for row in a.rows:
        gap = mean_of(row.gap)
        epochs = row.best_epochs
        table.add_row(
            row.label + (" *" if row.index == best else ""),
            _spread(mean_of(row.final), sd_of(row.final)),
            _spread(mean_of(row.best), sd_of(row.best)),
            f"{median_of(epochs):g}" if epochs else "-",
            f"{gap:+.3f}" if math.isfinite(gap) else "-",
            f"{row.diverged}/{len(row.runs)}" if row.diverged else "no",
            f"{row.seconds:.1f}" if math.isfinite(row.seconds) else "-",
            f"{row.parameters:,}" if row.parameters is not None else "-",
            f"{row.latency:.3g}" if row.latency is not None else "-",
        )
    return table


def _spread(mean: float, sd: float) -> str:
    if not math.isfinite(mean):
        return "-"
    return f"{mean:.3f}±{sd:.3f}" if math.isfinite(sd) else f"{mean:.3f}"
