"""Run a suite: per scenario, every baseline and the agents on the same seeds, then the
ratios the issue asks for, a summary row and the targets. A scenario that fails is recorded
with its reason and the others go on."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edgeagents.core.scenario import Scenario
from edgeagents.experiments.suite.load import at_load, utilisation
from edgeagents.experiments.suite.spec import SuiteEntry, SuiteError, SuiteFile, build_scenario
from edgeagents.policies import BASELINES

TARGET_TO_ROUND_ROBIN = 0.2
TARGET_TO_LOWER_BOUND_GEOMEAN = 1.8
TARGET_JAIN = 0.90
AGENTS = "agents"
ROUND_ROBIN = "round-robin"


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeedFigures(_Row):
    seed: int
    prompts: int
    agents_mean_s: float | None
    round_robin_mean_s: float | None
    best_heuristic: str = Field(description="The baseline with the lowest mean latency.")
    best_heuristic_mean_s: float | None
    lower_bound_mean_s: float
    agents_to_lower_bound: float | None
    jain: float | None = Field(description="The agents' normalized Jain index.")
    refused: dict[str, int] = Field(description="Policy -> prompts refused.")
    wall_s: float


class ScenarioResult(_Row):
    scenario: str
    description: str
    sites: int
    gpus: int
    demand_factor: float = Field(description="What the load rule multiplied every rate by.")
    utilisation_before: float
    prompts_mean: float
    best_heuristic: str = Field(description="The best baseline on most seeds.")
    agents_to_round_robin: float | None = Field(description="Geometric mean over seeds.")
    agents_to_best: float | None
    agents_to_lower_bound: float | None
    jain: float | None = Field(description="Mean over seeds of the agents' normalized Jain.")
    jain_min: float | None
    seeds: list[SeedFigures]
    wall_s: float


class SummaryRow(_Row):
    """Across scenarios: geometric means of the ratios, the mean Jain, and the worst case."""

    agents_to_round_robin: float | None
    agents_to_best: float | None
    agents_to_lower_bound: float | None
    jain: float | None
    worst_to_round_robin: float | None
    worst_to_best: float | None
    worst_to_lower_bound: float | None
    worst_jain: float | None


class FailedScenario(_Row):
    scenario: str
    error: str


class SuiteReport(_Row):
    """What `edgeagents bench suite --json` writes."""

    suite: str
    seeds: list[int]
    duration_s: float
    decision_s: float | None = Field(description="Fixed decision charge (None: wall time).")
    llm: str
    load_rule: str
    reference_utilisation: float
    baselines: list[str]
    scenarios: list[ScenarioResult]
    summary: SummaryRow | None
    targets: dict[str, bool | None]
    failed: list[FailedScenario]
    wall_s: float


LOAD_RULE = (
    "every scenario's arrival rates x one factor so that demand / estimated capacity (every "
    "GPU serving the city's prompt mix at full batches) equals the reference city's"
)

Progress = Callable[[str, str, int, float], None]
"""(scenario, policy, seed, simulated seconds done)."""


def geomean(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None and x > 0 and math.isfinite(x)]
    if not vals or len(vals) < len(xs):
        return None
    return math.exp(sum(math.log(x) for x in vals) / len(vals))


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def seed_figures(report: Any, seed: int, baselines: Sequence[str], wall_s: float) -> SeedFigures:
    """One episode set's figures from `run_agents`'s report."""
    by = {r.policy: r for r in report.results}
    agents, rr = by[AGENTS], by.get(ROUND_ROBIN)
    scored = [b for b in baselines if by[b].mean_latency_s is not None]
    best = min(scored, key=lambda b: by[b].mean_latency_s) if scored else baselines[0]
    return SeedFigures(
        seed=seed, prompts=report.prompts, agents_mean_s=agents.mean_latency_s,
        round_robin_mean_s=rr.mean_latency_s if rr else None, best_heuristic=best,
        best_heuristic_mean_s=by[best].mean_latency_s,
        lower_bound_mean_s=agents.lower_bound_mean_s,
        agents_to_lower_bound=agents.lower_bound_ratio, jain=agents.jain,
        refused={p: r.refused for p, r in by.items() if r.refused}, wall_s=wall_s,
    )  # fmt: skip


def scenario_result(
    sc: Scenario, factor: float, before: float, seeds: list[SeedFigures], wall_s: float
) -> ScenarioResult:
    jains = [s.jain for s in seeds if s.jain is not None]
    best = Counter(s.best_heuristic for s in seeds).most_common(1)[0][0]
    return ScenarioResult(
        scenario=sc.name, description=sc.description, sites=len(sc.sites),
        gpus=sum(g.count for s in sc.sites for g in s.gpus), demand_factor=factor,
        utilisation_before=before, prompts_mean=sum(s.prompts for s in seeds) / len(seeds),
        best_heuristic=best,
        agents_to_round_robin=geomean(
            [_ratio(s.agents_mean_s, s.round_robin_mean_s) for s in seeds]),
        agents_to_best=geomean([_ratio(s.agents_mean_s, s.best_heuristic_mean_s) for s in seeds]),
        agents_to_lower_bound=geomean([s.agents_to_lower_bound for s in seeds]),
        jain=sum(jains) / len(jains) if len(jains) == len(seeds) else None,
        jain_min=min(jains) if jains else None, seeds=seeds, wall_s=wall_s,
    )  # fmt: skip


def summarize_suite(results: list[ScenarioResult]) -> tuple[SummaryRow | None, dict]:
    """The summary row and whether each target is met (None: nothing to judge)."""
    if not results:
        return None, dict.fromkeys(("to_round_robin", "below_best", "to_lower_bound", "jain"))

    def col(name: str) -> list[float | None]:
        return [getattr(r, name) for r in results]

    def worst(xs: list[float | None], pick: Callable = max) -> float | None:
        return None if any(x is None for x in xs) else pick(xs)

    rr, best, lb, jain = (col(n) for n in ("agents_to_round_robin", "agents_to_best",
                                            "agents_to_lower_bound", "jain"))  # fmt: skip
    row = SummaryRow(
        agents_to_round_robin=geomean(rr), agents_to_best=geomean(best),
        agents_to_lower_bound=geomean(lb),
        jain=None if any(j is None for j in jain) else sum(jain) / len(jain),
        worst_to_round_robin=worst(rr), worst_to_best=worst(best), worst_to_lower_bound=worst(lb),
        worst_jain=worst(jain, min),
    )  # fmt: skip
    w = row
    targets = {
        "to_round_robin": None if w.worst_to_round_robin is None
        else w.worst_to_round_robin <= TARGET_TO_ROUND_ROBIN,
        "below_best": None if w.worst_to_best is None else w.worst_to_best < 1.0,
        "to_lower_bound": None if w.agents_to_lower_bound is None
        else w.agents_to_lower_bound <= TARGET_TO_LOWER_BOUND_GEOMEAN,
        "jain": None if w.worst_jain is None else w.worst_jain >= TARGET_JAIN,
    }  # fmt: skip
    return row, targets


def run_scenario(
    entry: SuiteEntry,
    target: float,
    *,
    seeds: list[int],
    duration_s: float,
    lm_config: Any,
    decision_s: float | None,
    on_progress: Progress | None = None,
) -> ScenarioResult:
    """One scenario at the suite's load, every baseline and the agents on each seed."""
    from edgeagents.experiments.run import run_agents
    from edgeagents.sim.workload import generate_workload

    t0 = time.perf_counter()
    sc, factor, before = at_load(build_scenario(entry), target)
    figures = []
    for seed in seeds:
        s0 = time.perf_counter()
        workload = generate_workload(sc, duration_s=duration_s, seed=seed)
        report, _ = run_agents(
            sc, lm_config, baselines=list(BASELINES), duration_s=duration_s, seed=seed,
            workload=workload, with_none=False,
            charge_decision_time=True if decision_s is None else decision_s,
            on_progress=(lambda p, t, s=seed: on_progress(sc.name, p, s, t))
            if on_progress else None,
        )  # fmt: skip
        figures.append(seed_figures(report, seed, BASELINES, time.perf_counter() - s0))
    return scenario_result(sc, factor, before, figures, time.perf_counter() - t0)


def reference_target(suite: SuiteFile) -> float:
    """The reference city's estimated utilisation; raises SuiteError (one line) if it cannot
    be loaded, since no scenario can be scaled without it."""
    from edgeagents.core.scenario import ScenarioError, load_scenario

    try:
        return utilisation(load_scenario(suite.reference))
    except ScenarioError as e:
        raise SuiteError(f"reference: {e}") from e


def run_suite(
    suite: SuiteFile,
    *,
    name: str,
    seeds: list[int],
    duration_s: float,
    lm_config: Any,
    llm: str,
    decision_s: float | None = 1.0,
    only: Sequence[str] | None = None,
    on_progress: Progress | None = None,
    on_failed: Callable[[str, str], None] | None = None,
) -> SuiteReport:
    """Every scenario of `suite` (or those `only` names), each caught on its own."""
    t0 = time.perf_counter()
    target = reference_target(suite)
    results: list[ScenarioResult] = []
    failed: list[FailedScenario] = []
    for entry in suite.scenarios:
        if only is not None and entry.name not in only:
            continue
        try:
            results.append(run_scenario(
                entry, target, seeds=seeds, duration_s=duration_s, lm_config=lm_config,
                decision_s=decision_s, on_progress=on_progress,
            ))  # fmt: skip
        except Exception as e:  # a failing scenario is reported; the suite goes on
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            failed.append(FailedScenario(scenario=entry.name, error=reason))
            if on_failed is not None:
                on_failed(entry.name, reason)
    summary, targets = summarize_suite(results)
    return SuiteReport(
        suite=name, seeds=seeds, duration_s=duration_s, decision_s=decision_s, llm=llm,
        load_rule=f"{LOAD_RULE} ({suite.reference}: {target:.3f})",
        reference_utilisation=target, baselines=list(BASELINES), scenarios=results,
        summary=summary, targets=targets, failed=failed, wall_s=time.perf_counter() - t0,
    )  # fmt: skip
