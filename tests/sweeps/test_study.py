"""Optuna over studies rebuilt from trial records: what the worker, API and scheduler rely on."""

from optuna.trial import TrialState

from app.sweeps.spec import ChoiceSpec, IntSpec, UniformSpec
from app.sweeps.study import (
    MEDIAN_STARTUP_TRIALS,
    MEDIAN_WARMUP_EPOCHS,
    SearchConfig,
    TrialRecord,
    ask,
    importances,
    should_prune,
)

GRID = {
    "compile.optimizer.learning_rate": ChoiceSpec(type="choice", values=[0.001, 0.01, 0.1]),
    "model.layers[0].units": IntSpec(type="int", low=8, high=16, step=8),
}


def config(sampler="grid", pruner="none", search=None, seed=0) -> SearchConfig:
    return SearchConfig("swp_test", search or GRID, sampler, pruner, "maximize", seed, epochs=10)


def ask_all(cfg: SearchConfig, n: int) -> list[TrialRecord]:
    records: list[TrialRecord] = []
    for _ in range(n):
        number, params, attrs = ask(cfg, records)
        records.append(TrialRecord(number, TrialState.RUNNING, params, system_attrs=attrs))
    return records


def point(record: TrialRecord) -> tuple:
    return tuple(sorted(record.params.items()))


def test_a_grid_rebuilt_for_every_trial_visits_each_point_once_in_a_seeded_order():
    first = ask_all(config(seed=4), 6)
    assert len({point(r) for r in first}) == 6  # 3 x 2 points, none twice
    assert [point(r) for r in ask_all(config(seed=4), 6)] == [point(r) for r in first]
    assert [point(r) for r in ask_all(config(seed=5), 6)] != [point(r) for r in first]


def test_random_draws_differ_per_trial_and_repeat_per_seed():
    search = {"compile.optimizer.learning_rate": UniformSpec(type="loguniform", low=1e-4, high=1e-1)}
    draws = [r.params["compile.optimizer.learning_rate"] for r in ask_all(config("random", search=search), 5)]
    assert len(set(draws)) == 5 and all(1e-4 <= d <= 1e-1 for d in draws)
    again = [r.params["compile.optimizer.learning_rate"] for r in ask_all(config("random", search=search), 5)]
    assert draws == again


def curve(level: float, epochs: int) -> dict[int, float]:
    return {epoch: level + 0.01 * epoch for epoch in range(1, epochs + 1)}


def test_the_median_pruner_stops_a_trial_behind_the_completed_ones_only_after_warm_up_and_start_up():
    cfg = config(pruner="median")
    done = [
        TrialRecord(
            n,
            TrialState.COMPLETE,
            {"compile.optimizer.learning_rate": 0.01, "model.layers[0].units": 8},
            value=0.9,
            intermediate=curve(0.8, 10),
        )
        for n in range(MEDIAN_STARTUP_TRIALS)
    ]
    behind = TrialRecord(len(done), TrialState.RUNNING, {"compile.optimizer.learning_rate": 0.001, "model.layers[0].units": 8})
    behind.intermediate = curve(0.4, MEDIAN_WARMUP_EPOCHS - 1)
    assert should_prune(cfg, [*done, behind], behind.number)[0] is False  # still warming up
    behind.intermediate = curve(0.4, MEDIAN_WARMUP_EPOCHS + 1)
    assert should_prune(cfg, [*done, behind], behind.number)[0] is True
    ahead = TrialRecord(behind.number, TrialState.RUNNING, behind.params, intermediate=curve(0.85, MEDIAN_WARMUP_EPOCHS + 1))
    assert should_prune(cfg, [*done, ahead], ahead.number)[0] is False
    too_few = done[: MEDIAN_STARTUP_TRIALS - 1]
    late = TrialRecord(len(too_few), TrialState.RUNNING, behind.params, intermediate=behind.intermediate)
    assert should_prune(cfg, [*too_few, late], late.number)[0] is False


def test_hyperband_notes_its_rungs_on_the_trial_for_the_next_verdict():
    cfg = config(pruner="hyperband")
    running = TrialRecord(
        0, TrialState.RUNNING, {"compile.optimizer.learning_rate": 0.01, "model.layers[0].units": 8}, intermediate=curve(0.5, 3)
    )
    _, attrs = should_prune(cfg, [running], 0)
    assert any(key.startswith("completed_rung_") for key in attrs)


def test_importances_rank_the_parameter_that_moves_the_objective():
    records = []
    for number, (rate, units) in enumerate([(r, u) for r in (0.001, 0.01, 0.1) for u in (8, 16)] * 2):
        value = {0.001: 0.5, 0.01: 0.8, 0.1: 0.9}[rate] + 0.001 * (units == 16) + 0.0001 * number
        records.append(
            TrialRecord(
                number,
                TrialState.COMPLETE,
                {"compile.optimizer.learning_rate": rate, "model.layers[0].units": units},
                value=value,
            )
        )
    ranked = importances(config(), records)
    assert ranked["compile.optimizer.learning_rate"] > ranked["model.layers[0].units"]
    assert importances(config(), records[:1]) == {}
