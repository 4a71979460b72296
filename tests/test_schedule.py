"""The scheduler alone, driven by synthetic learning curves: no model, no training."""

from __future__ import annotations

import math
import random

import optuna
import pytest

from dltune.schedule import Rungs, Scheduler, make_scheduler
from dltune.schedule.pareto import dominates
from dltune.study import stored_rungs as stored

# ---------------------------------------------------------------------------------------------
# Rung placement
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("min_epochs", "max_epochs", "reduction", "expected"),
    [
        (1, 27, 3, (1, 3, 9, 27)),
        (1, 20, 3, (1, 3, 9, 20)),  # the last rung is max_epochs even off the ladder
        (0.25, 27, 3, (0.25, 0.75, 2, 7, 20, 27)),  # fractions under 1, whole epochs above
        (2, 10, 2, (2, 4, 8, 10)),
        (1, 1, 3, (1,)),
        (27, 27, 3, (27,)),
        (0.1, 20, 4, (0.1, 0.4, 2, 6, 20)),
    ],
)
def test_rungs_sit_at_min_epochs_times_powers_of_the_reduction(
    min_epochs, max_epochs, reduction, expected
):
    rungs = Rungs(min_epochs, max_epochs, reduction)
    assert rungs.base == tuple(float(e) for e in expected)
    assert rungs.base == tuple(sorted(set(rungs.base)))


def test_segments_cut_an_epoch_only_when_a_rung_falls_inside_one():
    assert Rungs(1, 27).segments == 1
    assert Rungs(0.25, 27).segments == 4
    assert Rungs(0.5, 27, 2).segments == 2
    # every fractional rung is a whole number of segments
    rungs = Rungs(0.1, 20, 4)
    assert all(
        abs(r * rungs.segments - round(r * rungs.segments)) < 1e-9 for r in rungs.base if r < 1
    )


def test_schedule_none_is_one_rung_at_max_epochs():
    scheduler = make_scheduler(
        "none", min_epochs=1, max_epochs=9, reduction=3, direction="maximize"
    )
    scheduler.start(0)
    assert scheduler.target(0) == 9
    assert scheduler.record(0, 0.5) == "complete"


# ---------------------------------------------------------------------------------------------
# Promotion: cutoffs with few entries, order, ties, NaN
# ---------------------------------------------------------------------------------------------


def asha(direction="maximize", **kw) -> Scheduler:
    return Scheduler(Rungs(1, 27, 3, **kw), direction=direction)


def test_with_fewer_entries_than_the_reduction_nobody_goes_on():
    s = asha()
    s.start(0)
    assert s.record(0, 0.9) == "pause"  # alone at its rung: top floor(1/3) = nobody
    s.start(1)
    assert s.record(1, 0.95) == "pause"  # floor(2/3) = 0
    assert s.promotion({0, 1}) is None
    assert s.cutoff(0, 0) is None


def test_the_third_entry_lets_the_best_go_on_and_a_paused_one_is_promoted_later():
    s = asha()
    for number, value in enumerate([0.9, 0.5]):
        s.start(number)
        assert s.record(number, value) == "pause"
    s.start(2)
    # floor(3/3) = 1: the best of the three is trial 0, not the newcomer
    assert s.record(2, 0.7) == "pause"
    assert s.promotion({0, 1, 2}) == 0
    assert s.target(0) == 3  # promoted to the next rung
    assert s.promotion({0, 1, 2}) is None  # promoted once only
    s.start(3)
    s.record(3, 0.1)
    s.start(4)
    s.record(4, 0.2)
    s.start(5)
    assert s.record(5, 0.99) == "continue"  # 6 entries, top 2: 0.99 and 0.9 -> goes on at once
    assert s.target(5) == 3
    assert s.cutoff(0, 0) == 0.9


def test_promotion_prefers_higher_rungs_then_better_values():
    s = asha()
    values = [0.50, 0.60, 0.70, 0.80, 0.90, 0.95, 0.10, 0.20, 0.30]
    for number, value in enumerate(values):
        s.start(number)
        s.record(number, value)
    held = {n for n in range(9) if s.trials[n].promoted < 0}
    order = []
    while (number := s.promotion(held)) is not None:
        order.append(number)
        held.discard(number)
    assert sorted(order, key=lambda n: -values[n]) == order  # best first
    # Two trials reach rung 1 (3 epochs); the third that arrives lets the best one go on,
    # and a trial waiting at rung 1 goes before anybody at rung 0.
    s2 = asha()
    for number, (v1, v3) in enumerate([(0.9, 0.95), (0.9, 0.5), (0.9, 0.6)]):
        s2.start(number)
        s2.trials[number].values[0] = v1
        s2.trials[number].promoted = 0
        s2.record(number, v3)
    for number in range(3, 9):
        s2.start(number)
        s2.record(number, 0.1 * number)
    assert s2.promotion(set(range(9))) == 0  # at rung 1, ahead of the rung-0 candidates


def test_minimize_ranks_the_lowest_first_and_nan_last():
    s = asha("minimize")
    for number, value in enumerate([3.0, math.nan, 1.0, 2.0, 5.0, 4.0]):
        s.start(number)
        s.record(number, value)
    # 6 entries, top 2: 1.0 and 2.0 (NaN, a diverged trial, is worst)
    assert s._top(0, 0) == {2, 3}


def test_ties_go_to_the_earlier_trial():
    s = asha()
    for number in range(3):
        s.start(number)
        s.record(number, 0.5)
    assert s.promotion({0, 1, 2}) == 0


def test_a_trial_at_the_last_rung_is_complete():
    s = Scheduler(Rungs(1, 3, 3))  # rungs 1, 3
    for number in range(3):
        s.start(number)
        s.record(number, [0.1, 0.2, 0.9][number])
    assert s.trials[2].promoted == 0
    assert s.record(2, 0.95) == "complete"


def test_draining_rounds_the_cutoff_up_so_the_best_of_a_small_study_finishes():
    s = asha()
    for number, value in enumerate([0.4, 0.8]):
        s.start(number)
        s.record(number, value)
    assert s.promotion({0, 1}) is None
    assert s.promotion({0, 1}, draining=True) == 1  # ceil(2/3) = 1: the better one
    assert s.promotion({0}, draining=True) is None  # the worse one is not let through


def test_cost_aware_promotion_takes_the_cheapest_of_those_that_earned_it():
    plain = asha()
    aware = Scheduler(Rungs(1, 27, 3), cost_aware=True)
    for s in (plain, aware):
        for number, (value, cost) in enumerate([(0.90, 5.0), (0.85, 0.5), (0.1, 0.1)] * 2):
            s.start(number)
            s.record(number, value, seconds_per_epoch=cost)
    # top 2 of 6 at rung 0: trials 0 and 3 (0.90), then 1 and 4 (0.85) are below
    assert plain.promotion(set(range(6))) == 0
    assert aware.promotion({1, 3, 4}) == 3  # only 3 earned it among those held
    # The two good ones arrive first (nobody goes on while fewer than three are in), then
    # seven poor ones: the top three are 0 (0.90, 5 s an epoch), 1 (0.89, 0.5 s) and 2.
    entries = [(0.90, 5.0), (0.89, 0.5)] + [(0.1, 1.0)] * 7
    for cost_aware, expected in ((False, 0), (True, 1)):
        s = Scheduler(Rungs(1, 27, 3), cost_aware=cost_aware)
        for number, (value, cost) in enumerate(entries):
            s.start(number)
            assert s.record(number, value, seconds_per_epoch=cost) == "pause"
        assert s.promotion(set(range(9))) == expected


def test_paused_hopeless_lists_the_worst_paused_first():
    s = asha()
    for number, value in enumerate([0.3, 0.9, 0.1, 0.5]):
        s.start(number)
        s.record(number, value)
    assert s.paused_hopeless({0, 1, 2, 3})[:2] == [2, 0]


# ---------------------------------------------------------------------------------------------
# Hyperband brackets
# ---------------------------------------------------------------------------------------------


def test_hyperband_gives_brackets_hyperbands_shares_interleaved():
    rungs = Rungs(1, 27, 3, hyperband=True)
    assert rungs.n_brackets == 4
    assert rungs.of_bracket(0) == (1, 3, 9, 27)
    assert rungs.of_bracket(3) == (27,)
    cycle = [rungs.bracket_of(n) for n in range(49)]
    # Hyperband's n_s for s = 3, 2, 1, 0 halvings: 27, 12, 6, 4 configurations
    assert [cycle.count(b) for b in range(4)] == [27, 12, 6, 4]
    assert set(cycle[:8]) == {0, 1, 2, 3}  # every bracket starts early
    assert [rungs.bracket_of(n) for n in range(49, 98)] == cycle  # a function of the number


def test_brackets_keep_separate_rung_tables():
    s = Scheduler(Rungs(1, 27, 3, hyperband=True))
    numbers = [n for n in range(40) if s.rungs.bracket_of(n) == 1][:3]
    for number, value in zip(numbers, [0.3, 0.2, 0.1], strict=True):
        s.start(number)
        assert s.target(number) == 3  # bracket 1 starts at 3 epochs
        assert s.record(number, value) == "pause"
    zero = next(n for n in range(40) if s.rungs.bracket_of(n) == 0)
    s.start(zero)
    assert s.record(zero, 0.99) == "pause"  # alone in bracket 0's first rung
    assert s.promotion(set(numbers) | {zero}) == numbers[0]


# ---------------------------------------------------------------------------------------------
# Resumption from storage
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("objectives", [1, 2], ids=["one objective", "and the size"])
def test_a_scheduler_read_back_from_storage_makes_the_same_decisions(tmp_path, objectives):
    storage = f"sqlite:///{tmp_path / 'rungs.db'}"
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    rungs = Rungs(1, 27, 3, hyperband=True)
    directions = ("minimize",) * (objectives - 1)
    first = Scheduler(rungs, static_directions=directions)
    curve = {n: 0.5 + 0.4 * math.sin(n * 1.7) ** 2 for n in range(30)}
    size = {n: (float(1000 + 300 * ((n * 7) % 11)),)[: objectives - 1] for n in range(33)}
    for number in range(30):
        trial = study.ask()
        first.start(trial.number, size[number])
        first.record(trial.number, curve[number] if number % 7 else math.nan)
        if number % 5 == 0:  # a few promoted now and then
            first.promotion({trial.number})
        stored.save(trial, first.trials[trial.number], first.ladder(trial.number))
    again = Scheduler(rungs, static_directions=directions)
    stored.load(optuna.load_study(study_name="s", storage=storage), again)
    assert _same_with_nan(first, again)
    assert all(first.trials[n].static == again.trials[n].static for n in first.trials)
    held = set(range(30))
    assert again.promotion(held) == first.promotion(held)
    for number in (30, 31, 32):
        first.start(number, size[number])
        again.start(number, size[number])
        assert first.record(number, 0.8) == again.record(number, 0.8)
    if objectives == 1:  # a record of other objectives is not read into this scheduler
        other = Scheduler(rungs, static_directions=("minimize",))
        stored.load(optuna.load_study(study_name="s", storage=storage), other)
        assert other.trials == {}


def _same_with_nan(a: Scheduler, b: Scheduler) -> bool:
    """Equality of rung tables where NaN == NaN (a diverged trial's value)."""
    if a.trials.keys() != b.trials.keys():
        return False
    for n, x in a.trials.items():
        y = b.trials[n]
        if (x.bracket, x.promoted, x.values.keys()) != (y.bracket, y.promoted, y.values.keys()):
            return False
        for k, v in x.values.items():
            w = y.values[k]
            if not (v == w or (math.isnan(v) and math.isnan(w))):
                return False
    return True


def test_load_keeps_what_this_process_knows_better():
    s = asha()
    s.start(0)
    s.record(0, 0.9)
    from dltune.schedule import RungRecord

    s.load([RungRecord(0, 0, {}, -1)])  # an older copy from storage
    assert s.trials[0].values == {0: 0.9}


# ---------------------------------------------------------------------------------------------
# Several objectives: successive halving on the Pareto front
# ---------------------------------------------------------------------------------------------


DIRECTIONS = ("maximize", "minimize")


def pareto_asha() -> Scheduler:
    """Accuracy (maximize) with the parameter count (minimize), known before training."""
    return Scheduler(Rungs(1, 27, 3), direction="maximize", static_directions=("minimize",))


def test_a_trial_beaten_on_accuracy_and_size_at_its_rung_does_not_go_on():
    s = pareto_asha()
    # (accuracy at rung 1, parameters): 6 entries, top 2 by Pareto order
    entries = [(0.90, 1000), (0.80, 5000), (0.85, 500), (0.70, 800), (0.95, 9000), (0.60, 100)]
    for number, (value, size) in enumerate(entries):
        s.start(number, (size,))
        s.record(number, value)
    ranked = s._ranked(0, 0)
    # the first front: 0.95 at 9000, 0.90 at 1000, 0.85 at 500, 0.60 at 100; its ends first
    assert set(ranked[:4]) == {0, 2, 4, 5} and set(ranked[:2]) == {4, 5}
    top = s._top(0, 0)
    assert top == {4, 5}  # the two ends of the front: the most accurate and the smallest
    # a newcomer that the smallest beats on both (0.55 at 200) is paused, whatever its rank
    s.start(6, (200,))
    assert s.record(6, 0.55) == "pause"
    assert 6 not in s._top(0, 0)
    assert s.cutoff(0, 0) is None  # no single value draws the line


def test_a_dominated_trial_goes_on_only_behind_every_trial_that_dominates_it():
    s = pareto_asha()
    # each trial beats every later one on both: six fronts of one
    entries = [(0.90, 100), (0.80, 200), (0.70, 300), (0.60, 400), (0.50, 500), (0.40, 600)]
    for number, (value, size) in enumerate(entries):
        s.start(number, (size,))
        s.record(number, value)
    assert s._ranked(0, 0) == [0, 1, 2, 3, 4, 5]  # front by front
    assert s._top(0, 0) == {0, 1}  # the top third, as MO-ASHA: 1 goes on, behind 0
    assert s.promotion(set(range(6))) == 0
    assert s.promotion(set(range(6))) == 1
    assert s.promotion(set(range(6))) is None
    rng = random.Random(0)  # on random rungs: every dominator of a trial that goes on, goes on
    for _ in range(20):
        s = pareto_asha()
        points = [(rng.random(), rng.randint(1, 1000)) for _ in range(rng.randint(3, 30))]
        for number, (value, size) in enumerate(points):
            s.start(number, (size,))
            s.record(number, value)
        top = s._top(0, 0)
        assert len(top) == len(points) // 3
        for n in top:
            rivals = [m for m, p in enumerate(points) if dominates(p, points[n], DIRECTIONS)]
            assert set(rivals) <= top


def test_paused_trials_on_the_front_are_promoted_first_and_the_diverged_last():
    s = pareto_asha()
    entries = [(0.5, 100), (math.nan, 10), (0.9, 1000), (0.4, 900), (0.7, 300), (0.3, 5000)]
    for number, (value, size) in enumerate(entries):
        s.start(number, (size,))
        s.record(number, value)
    held = set(range(6))
    hopeless = s.paused_hopeless(held)
    assert hopeless[0] == 1  # diverged: the first to let go
    assert set(hopeless[:3]) >= {1, 5}  # 0.3 at 5000 is beaten by every other
    # draining: ceil(6/3) = 2 of the order, both on the front
    promoted = s.promotion(held, draining=True)
    assert promoted in {0, 2, 4} and not math.isnan(entries[promoted][0])
    with pytest.raises(ValueError, match="static objectives"):
        s.start(9)
