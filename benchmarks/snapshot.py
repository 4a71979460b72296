"""What the commands print and store on digits for one seed, with times taken out: run it
before and after a change that must not change behaviour, and diff the two folders.

    python benchmarks/snapshot.py /tmp/before      # on the old code
    python benchmarks/snapshot.py /tmp/after       # on the new code
    diff -r /tmp/before /tmp/after

Each command runs as a user runs it (`python -m dltune.cli ...`, in a fresh folder). Seconds,
dates, paths and library versions are replaced by placeholders; everything else (trials,
values, curves, configurations, test results, predictions, readings) must be equal.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SPACE = """\
layers: [1, 2]
units: [16, 32]
activation: [relu, tanh]
optimizer: [adam, sgd]
lr: {low: 1.0e-3, high: 0.3, log: true}
batch_size: [32, 64]
epochs: 4
"""

TIMES = re.compile(
    r"\b\d+(\.\d+)?\s*(s|ms|seconds)\b|\d+:\d\d(:\d\d)?|\b\d{4}-\d\d-\d\d[T ][\d:.]+\b"
    r"|in \d+(\.\d+)?s\b|\d+(\.\d+)?s/run|\(\d+(\.\d+)?x\)|\d+(\.\d+)?x the|│\s+\d+\.\d │"
)
VOLATILE_KEYS = {
    "seconds",
    "epoch_seconds",
    "started",
    "created",
    "libraries",
    "datetime_start",
    "datetime_complete",
    "duration",
    "timing",
    "storage",
    "version",
}


def scrub(value: Any) -> Any:
    """`value` with times and machine-specific parts replaced."""
    if isinstance(value, dict):
        return {k: ("<volatile>" if k in VOLATILE_KEYS else scrub(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return TIMES.sub("<time>", value)
    return value


def dltune(folder: Path, *args: str, as_json: bool = False) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dltune.cli", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=600,
    )
    stdout = done.stdout
    if as_json and done.returncode == 0:
        stdout = json.dumps(scrub(json.loads(stdout)), indent=1) + "\n"
    text = f"exit {done.returncode}\n--- stdout\n{stdout}--- stderr\n{done.stderr}"
    return TIMES.sub("<time>", text.replace(str(folder), "<folder>"))


def stored_study(folder: Path, name: str) -> dict[str, Any]:
    """The study as Optuna holds it: attributes, and each trial's params, values and curve."""
    import optuna

    study = optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'dltune.db'}")
    return scrub(
        {
            "direction": study.direction.name,
            "user_attrs": study.user_attrs,
            "trials": [
                {
                    "number": t.number,
                    "state": t.state.name,
                    "value": t.value,
                    "params": t.params,
                    "intermediate": {str(k): v for k, v in sorted(t.intermediate_values.items())},
                    "user_attrs": t.user_attrs,
                }
                for t in study.get_trials(deepcopy=False)
            ],
        }
    )


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "small.yaml").write_text(SPACE)
        outputs = {
            "run": dltune(folder, "run", "small.yaml", "--trials", "8", "--seed", "0"),
            "run-again": dltune(folder, "run", "small.yaml", "--trials", "3", "--seed", "0"),
            "best": dltune(folder, "best", "--json", as_json=True),
            "trials": dltune(folder, "trials", "--json", as_json=True),
            "trials-table": dltune(folder, "trials"),
            "studies": dltune(folder, "studies", "--json", as_json=True),
            "report-json": dltune(folder, "report", "-o", "analysis.json"),
            "report-html": dltune(folder, "report", "-o", "report.html"),
            "train-best": dltune(folder, "train-best", "-o", "model"),
            "predict": dltune(folder, "predict", "model", "digits", "-o", "predictions.csv"),
            "export": dltune(folder, "export", "model", "--format", "torchscript"),
            "sweep": dltune(
                folder, "sweep", "dropout", "--values", "0,0.5", "--seeds", "2", "--epochs", "3"
            ),
            "sweep-report": dltune(
                folder, "report", "-o", "sweep.json", "--study", "sweep-dropout-digits"
            ),
            "error-engine": dltune(folder, "run", "--engine", "x"),
            "error-storage": dltune(folder, "best", "--storage", "nosuch://x"),
        }
        for name, text in outputs.items():
            (out / f"{name}.txt").write_text(text)
        for name in ("analysis.json", "sweep.json", "model/config.json", "model/model_card.json"):
            plain = json.loads((folder / name).read_text())
            (out / name.replace("/", "-")).write_text(json.dumps(scrub(plain), indent=1))
        (out / "predictions.csv").write_text((folder / "predictions.csv").read_text())
        for study in ("small-digits", "sweep-dropout-digits"):
            (out / f"stored-{study}.json").write_text(
                json.dumps(stored_study(folder, study), indent=1, sort_keys=True)
            )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
