"""The test split, used once: the best trial of a study (the one choice.py chose, as
`best_trial` returns it) is evaluated on it when the study ends, and the result is stored, so
that no later run evaluates it again (and no choice is ever made on it: the choice among the
top candidates is made on validation alone, before)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config import Config
from ..errors import DLTuneError
from ..storage import best_trial, schema

if TYPE_CHECKING:
    import optuna

    from ..engine import SequentialTrainer
    from ..storage import TrialRecord


def evaluate_test(
    study: optuna.Study,
    trainer: SequentialTrainer,
    kept: tuple[int, dict[str, Any]] | None,
) -> dict[str, Any] | None:
    """Evaluate the best trial on the test split, once; stored so it is never evaluated again.

    The weights come from this run when the best trial was trained here (`kept`: its number and
    weights); otherwise the trial is retrained from its seed for its best number of epochs
    (deterministic on a CPU).
    """
    best = best_trial(study)
    if best is None:
        return None
    stored = schema.read_test_result(study, best.number)
    if stored is not None:
        return stored
    config = Config.from_dict(best.config)
    if kept is not None and kept[0] == best.number:
        model = trainer.model_from_state(config, kept[1])
        how = "weights of its best epoch"
    else:
        epochs = int(best.best_epoch or config.epochs)
        model = trainer.model_from_state(config, _retrained_state(trainer, config, best, epochs))
        how = f"retrained from its seed for {epochs} epochs"
    loss, value = trainer.evaluate(model, "test", config.loss)
    result = {"value": value, "loss": loss, "metric": trainer.metric.name, "how": how}
    schema.write_test_result(study, best.number, result)
    return result


def _retrained_state(
    trainer: SequentialTrainer, config: Config, best: TrialRecord, epochs: int
) -> dict[str, Any]:
    """The weights of `best` at its best epoch, retrained from its seed (same data order)."""
    if best.seed is None:
        raise DLTuneError(f"trial {best.number} has no stored seed: it was not trained by dltune")
    result = trainer.train(config, seed=best.seed, epochs=epochs, keep_best_state=True)
    if result.best_state is None:
        raise DLTuneError(f"trial {best.number} diverged when retrained for its test")
    return result.best_state
