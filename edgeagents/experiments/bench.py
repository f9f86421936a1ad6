"""Benchmarks: every policy on the same scenario, workload and seed, in one process."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeagents.core.env import DecisionCharge
from edgeagents.core.scenario import Scenario
from edgeagents.experiments.driver import EpisodeRun, run_episode
from edgeagents.policies import POLICIES, PolicySpec
from edgeagents.sim.bounds import lower_bound_s, reference_s, standalone_matrix_s
from edgeagents.sim.city import EpisodeOutcomes
from edgeagents.sim.metrics import PolicyResult, summarize
from edgeagents.sim.workload import Workload, generate_workload

if TYPE_CHECKING:
    from edgeagents.experiments.checkpoint import RunCheckpoint
    from edgeagents.policies import Controller, Router

LOWER_BOUND = "lower-bound"
REFERENCE_POLICY = "round-robin"


class BenchReport(BaseModel):
    """What `edgeagents bench` writes as JSON."""

    model_config = ConfigDict(extra="forbid")

    scenario: str
    seed: int
    duration_s: float
    engine: str
    prompts: int
    prompts_by_model: dict[str, int]
    results: list[PolicyResult]
    sim_prompts_per_s: float = Field(
        description="Prompts simulated per wall second, over all policies (one core)."
    )
    attribution: str = Field(
        default="Text-LLM arrivals and token counts: Azure LLM inference trace 2023 "
        "(conversation), CC-BY 4.0, Patel et al., Splitwise, ISCA 2024."
    )

    def result(self, policy: str) -> PolicyResult:
        for r in self.results:
            if r.policy == policy:
                return r
        raise KeyError(policy)


PolicyLike = str | PolicySpec | tuple["Router", "Controller"]


def compare(
    scenario: Scenario,
    policies: Sequence[PolicyLike],
    *,
    duration_s: float | None = None,
    seed: int = 0,
    trace_path: str | Path | None = None,
    workload: Workload | None = None,
    names: Sequence[str] | None = None,
    on_progress: Callable[[str, float], None] | None = None,
    charge_decision_time: DecisionCharge = True,
    checkpoint: RunCheckpoint | None = None,
) -> tuple[BenchReport, dict[str, EpisodeRun]]:
    """Run each policy on one workload; figures, ratios to round-robin and the lower bound.
    With a `checkpoint`, each episode is logged in it under its name (and replayed from it)."""
    duration = scenario.duration_s if duration_s is None else duration_s
    if workload is None:
        workload = generate_workload(
            scenario, duration_s=duration, seed=seed, trace_path=trace_path
        )
    matrix = standalone_matrix_s(scenario, workload)
    bound = lower_bound_s(matrix)
    refs = reference_s(scenario, workload, matrix)
    runs: dict[str, EpisodeRun] = {}
    results: list[PolicyResult] = []
    sim_wall = 0.0
    for k, policy in enumerate(policies):
        name = names[k] if names else _name(policy)
        progress = (lambda t, n=name: on_progress(n, t)) if on_progress else None
        run = run_episode(
            scenario, workload, policy, seed=seed, duration_s=duration, on_progress=progress,
            charge_decision_time=charge_decision_time,
            log=checkpoint.episode(name) if checkpoint is not None else None,
        )  # fmt: skip
        run.policy = name
        runs[name] = run
        sim_wall += run.sim_wall_s
        results.append(summarize(name, scenario, workload, run.outcomes, refs, bound,
                                 wall_s=run.wall_s))  # fmt: skip
    results.append(summarize(LOWER_BOUND, scenario, workload, bound_outcomes(bound), refs, bound))
    reference = next((r for r in results if r.policy == REFERENCE_POLICY), None)
    if reference is not None and reference.mean_latency_s:
        for r in results:
            if r.mean_latency_s is not None:
                r.ratio_to_round_robin = r.mean_latency_s / reference.mean_latency_s
    report = BenchReport(
        scenario=scenario.name,
        seed=seed,
        duration_s=duration,
        engine=scenario.engine,
        prompts=len(workload),
        prompts_by_model=workload.counts_by_model(),
        results=results,
        sim_prompts_per_s=len(workload) * len(runs) / sim_wall if sim_wall > 0 else 0.0,
    )
    return report, runs


def _name(policy: PolicyLike) -> str:
    if isinstance(policy, str):
        return policy
    if isinstance(policy, PolicySpec):
        return policy.name
    return getattr(policy[1], "name", type(policy[1]).__name__)


def bound_outcomes(bound: np.ndarray) -> EpisodeOutcomes:
    n = len(bound)
    zeros = np.zeros(n)
    return EpisodeOutcomes(
        latency_s=bound.copy(),
        site=np.full(n, -1, dtype=np.int16),
        uplink_s=zeros,
        backhaul_s=zeros,
        queue_s=zeros,
        cold_s=zeros,
        infer_s=zeros,
        refused=np.full(n, -1, dtype=np.int8),
        done_s=zeros,
    )


def resolve_policies(text: str | None) -> list[str]:
    """Comma-separated policy names (default: every baseline); unknown names raise KeyError."""
    if not text:
        return POLICIES.names()
    names = [p.strip() for p in text.split(",") if p.strip()]
    for n in names:
        POLICIES.create(n)
    return names


class ScalingPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duration_s: float
    prompts: int
    wall_s: float
    prompts_per_s: float
    us_per_prompt: float


def scaling(
    scenario: Scenario, durations: Sequence[float], *, policy: str = "least-loaded", seed: int = 0
) -> list[ScalingPoint]:
    """Simulator cost at several workload sizes: linear growth means flat µs per prompt."""
    points = []
    for d in durations:
        workload = generate_workload(scenario, duration_s=d, seed=seed)
        t0 = time.perf_counter()
        run = run_episode(scenario, workload, policy, seed=seed, duration_s=d)
        wall = time.perf_counter() - t0
        n = len(workload)
        points.append(
            ScalingPoint(
                duration_s=d,
                prompts=n,
                wall_s=wall,
                prompts_per_s=n / run.sim_wall_s if run.sim_wall_s > 0 else 0.0,
                us_per_prompt=run.sim_wall_s / max(n, 1) * 1e6,
            )
        )
    return points
