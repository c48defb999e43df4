"""Optuna's samplers, pruners and importance evaluators over the trials kept in Epochly's tables.

Optuna stores nothing: each decision builds an in-memory study from the trial rows (params, the
per-trial attributes Optuna's samplers and pruners keep, and each epoch's objective value), asks
or prunes, and hands back what Optuna wrote, to be kept with the trial. The database stays the one
record, any process may decide, and a restart loses nothing. Building a study is cheap next to an
epoch: milliseconds for a few hundred trials.

A random or TPE sampler is seeded per trial from (sweep seed, trial number), so a rebuilt study
does not draw the first trial's values again; the grid sampler is seeded per sweep, as its order of
grid points must stay the same from one trial to the next."""

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from app.sweeps.spec import ChoiceSpec, IntSpec, UniformSpec, grid_values

optuna.logging.set_verbosity(optuna.logging.WARNING)
log = logging.getLogger("epochly.sweeps")

# Median pruning starts once this many trials have completed unpruned. Optuna skips steps below the
# warm-up, and epochs count from 1: a trial can be pruned from its first epoch on. bench/sweep.py
# found that this keeps the tutorial grid's best trial while training about half its epochs; the
# verdict takes effect an epoch later anyway (the worker does not wait for it).
MEDIAN_STARTUP_TRIALS = 3
MEDIAN_WARMUP_EPOCHS = 1
HYPERBAND_REDUCTION_FACTOR = 3


@dataclass(frozen=True)
class SearchConfig:
    """A sweep's settings that every decision needs."""

    sweep_id: str
    search: dict[str, ChoiceSpec | UniformSpec | IntSpec]
    sampler: Literal["grid", "random", "tpe"]
    pruner: Literal["none", "median", "hyperband"]
    direction: Literal["maximize", "minimize"]
    seed: int
    epochs: int


@dataclass
class TrialRecord:
    """One trial as Optuna sees it. `number` is Optuna's (0-based): Epochly's `trial` minus one."""

    number: int
    state: TrialState
    params: dict[str, Any]
    value: float | None = None
    intermediate: dict[int, float] = field(default_factory=dict)
    system_attrs: dict[str, Any] = field(default_factory=dict)


def distributions(config: SearchConfig) -> dict[str, BaseDistribution]:
    result: dict[str, BaseDistribution] = {}
    for path, spec in config.search.items():
        if isinstance(spec, ChoiceSpec):
            result[path] = CategoricalDistribution(spec.values)
        elif isinstance(spec, IntSpec):
            result[path] = IntDistribution(spec.low, spec.high, step=spec.step)
        else:
            result[path] = FloatDistribution(spec.low, spec.high, log=spec.type == "loguniform")
    return result


def _sampler(config: SearchConfig, number: int) -> optuna.samplers.BaseSampler:
    if config.sampler == "grid":
        space = {path: grid_values(spec) for path, spec in config.search.items() if not isinstance(spec, UniformSpec)}
        return optuna.samplers.GridSampler(space, seed=config.seed)
    trial_seed = (config.seed * 1_000_003 + number) % 2**32
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=trial_seed)
    return optuna.samplers.TPESampler(seed=trial_seed)


def _pruner(config: SearchConfig) -> optuna.pruners.BasePruner:
    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=MEDIAN_WARMUP_EPOCHS)
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=config.epochs, reduction_factor=HYPERBAND_REDUCTION_FACTOR
        )
    return optuna.pruners.NopPruner()


def _study(config: SearchConfig, records: list[TrialRecord], number: int) -> optuna.Study:
    # The study name is the sweep's id: Hyperband assigns each trial its bracket by (name, number).
    study = optuna.create_study(
        study_name=config.sweep_id,
        storage=optuna.storages.InMemoryStorage(),
        sampler=_sampler(config, number),
        pruner=_pruner(config),
        direction=config.direction,
    )
    known = distributions(config)
    for record in sorted(records, key=lambda r: r.number):
        study.add_trial(
            optuna.trial.create_trial(
                state=record.state,
                params=record.params,
                distributions={path: known[path] for path in record.params},
                value=record.value if record.state is TrialState.COMPLETE else None,
                intermediate_values=record.intermediate,
                system_attrs=record.system_attrs,
            )
        )
    return study


def ask(config: SearchConfig, records: list[TrialRecord]) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """The next trial's number, params and Optuna's attributes for it, given every trial so far."""
    study = _study(config, records, len(records))
    trial = study.ask(distributions(config))
    if trial.number != len(records):  # the rows must be numbered 0..n-1 for the study to line up
        raise RuntimeError(f"sweep {config.sweep_id}: trial rows are not numbered 0..{len(records) - 1}")
    attrs = study._storage.get_trial_system_attrs(trial._trial_id)
    return trial.number, dict(trial.params), dict(attrs)


def should_prune(config: SearchConfig, records: list[TrialRecord], number: int) -> tuple[bool, dict[str, Any]]:
    """Whether the running trial `number` should stop now, judged from its and the other trials'
    epochs so far, and the attributes the pruner keeps for it (Hyperband's rungs)."""
    study = _study(config, records, number)
    trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    if trial.last_step is None:
        return False, dict(trial.system_attrs)
    prune = bool(study.pruner.prune(study, trial))  # numpy's bool, from some pruners
    return prune, dict(study._storage.get_trial_system_attrs(trial._trial_id))


def importances(config: SearchConfig, records: list[TrialRecord]) -> dict[str, float]:
    """Optuna's PED-ANOVA over the completed trials: how much each parameter matters for landing in
    the best group of trials, summing to 1. The group is the best 10 %, but at least 3 trials (at
    most half): with Optuna's fixed 10 %, a sweep of a dozen trials judges by one trial alone.
    Empty until two trials have completed."""
    finished = [r for r in records if r.state is TrialState.COMPLETE]
    if len(finished) < 2:
        return {}
    study = _study(config, finished, len(records))
    evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=min(0.5, max(0.1, 3 / len(finished))))
    try:
        return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
    except (RuntimeError, ValueError) as exc:  # e.g. every trial drew the same value
        log.info("no importances for sweep %s: %s", config.sweep_id, exc)
        return {}
