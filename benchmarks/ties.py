"""How much the choice of the best trial is luck: the trials tied at the best validation value.

    python benchmarks/ties.py --data gunpoint sqlite:////tmp/families-default-0-.../study.db ...

For each study (the `storage` of a families.py run, printed in its --out JSON), the complete
trials whose validation value ties the best, each retrained from its seed for its best epoch
(the sequential engine reproduces a trial exactly) to measure its test metric: the number tied,
the test of the one dltune chose (the first), of the one with the lowest validation loss at its
best epoch, and the mean over the tied ones. Where many tie on a validation split of a few
examples, the chosen trial's test is a draw among them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from families import SOURCES, _test_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=sorted(SOURCES), required=True)
    parser.add_argument("storages", nargs="+")
    args = parser.parse_args()
    import optuna

    from dltune.data import load_data
    from dltune.storage import read_trials

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = load_data(SOURCES[args.data], seed=0)
    for url in args.storages:
        name = optuna.get_all_study_names(url)[0]
        study = optuna.load_study(study_name=name, storage=url)
        done = [r for r in read_trials(study) if r.state == "complete" and r.value is not None]
        top = max(r.value for r in done)
        tied = [r for r in done if abs(r.value - top) <= 1e-9]
        tests = {r.number: _test_of(study, r.number, data) for r in tied}
        first = min(tied, key=lambda r: r.number)
        calm = min(tied, key=lambda r: r.val_loss[(r.best_epoch or 1) - 1])
        mean = sum(tests.values()) / len(tests)
        print(
            f"{url}: {len(tied)} of {len(done)} complete trials tied at {top:.4f}; test of the "
            f"first (chosen) {tests[first.number]:.4f}, of the lowest validation loss "
            f"{tests[calm.number]:.4f}, mean of the tied {mean:.4f}"
        )


if __name__ == "__main__":
    main()
