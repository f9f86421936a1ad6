"""The episode driver: control ticks over an environment, then the figures."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from edgeagents.core.env import DecisionCharge
from edgeagents.core.scenario import Scenario
from edgeagents.core.state import ApplyReport, Decision
from edgeagents.experiments.checkpoint import replay_cycle
from edgeagents.policies import POLICIES, Controller, PolicySpec, Router
from edgeagents.sim.city import EpisodeOutcomes, SimulatedCity
from edgeagents.sim.workload import Workload

if TYPE_CHECKING:
    from edgeagents.experiments.checkpoint import EpisodeLog


@dataclass(slots=True)
class TickRecord:
    """A light sample per control tick, for timelines."""

    time_s: float
    replicas: dict[str, int]
    window_mean_latency_s: float | None
    queue_len: int


@dataclass(slots=True)
class EpisodeRun:
    policy: str
    outcomes: EpisodeOutcomes
    decisions: list[Decision] = field(default_factory=list)
    reports: list[ApplyReport] = field(default_factory=list)
    ticks: list[TickRecord] = field(default_factory=list)
    wall_s: float = 0.0
    sim_wall_s: float = 0.0
    setup_s: float = 0.0
    """Building the city (its network paths), part of `wall_s` and `sim_wall_s`."""


def _tick_record(t: float, city: SimulatedCity) -> TickRecord:
    telemetry = city.observe()
    lat = [m.mean_latency_s for m in telemetry.models if m.mean_latency_s is not None]
    return TickRecord(
        time_s=t,
        replicas={m.model: m.replicas for m in telemetry.models},
        window_mean_latency_s=float(np.mean(lat)) if lat else None,
        queue_len=sum(m.queue_len for m in telemetry.models),
    )


def run_episode(
    scenario: Scenario,
    workload: Workload,
    policy: str | PolicySpec | tuple[Router, Controller],
    *,
    seed: int = 0,
    duration_s: float | None = None,
    charge_decision_time: DecisionCharge = True,
    on_progress: Callable[[float], None] | None = None,
    log: EpisodeLog | None = None,
) -> EpisodeRun:
    """Run one episode: every prompt ends served or refused.

    Args:
        scenario: The city.
        workload: The prompts (the same object for every policy compared).
        policy: A registered policy name, a `PolicySpec`, or a (router, controller) pair.
        seed: Seeds the router's random choices.
        duration_s: Arrival horizon; control ticks continue past it while prompts drain, up to
            `scenario.control.drain_limit_s`. Default: the scenario's duration.
        charge_decision_time: When a decision takes effect (see `DecisionCharge`): by
            default after the wall time its agents took.
        on_progress: Called with the simulated time after every tick.
        log: The episode in a run's checkpoint: its recorded cycles are replayed on the city
            (no controller called), then every new cycle is written to it.
    """
    if isinstance(policy, str):
        spec = POLICIES.create(policy)
        name = spec.name
        router, controller = spec.create()
    elif isinstance(policy, PolicySpec):
        name = policy.name
        router, controller = policy.create()
    else:
        router, controller = policy
        name = getattr(controller, "name", type(controller).__name__)
    horizon = scenario.duration_s if duration_s is None else duration_s
    tick = scenario.control.tick_s
    deadline = horizon + scenario.control.drain_limit_s
    start = time.perf_counter()
    city = SimulatedCity(scenario, workload, router, seed=seed)
    run = EpisodeRun(policy=name, outcomes=city.out, setup_s=time.perf_counter() - start)
    replay = log.replay_plan(controller) if log is not None else []
    decide_wall = sum(c.decide_s for c in replay)
    t = tick
    while t <= deadline + 1e-9:
        city.advance(t)
        k = len(run.decisions)
        t0 = time.perf_counter()
        if k < len(replay):
            decision, report = replay_cycle(city, replay[k])
        else:
            decision, report = controller.step(
                city, scenario, charge_decision_time=charge_decision_time
            )
            decide_wall += time.perf_counter() - t0
            if log is not None:
                if k and k == len(replay) and not log.finished:
                    log.resumed(k, t0 - start)
                log.record(k, t, decision, report, controller=controller,
                           decide_s=time.perf_counter() - t0,
                           elapsed_s=time.perf_counter() - start + prior_s(replay))  # fmt: skip
        run.reports.append(report)
        run.decisions.append(decision)
        run.ticks.append(_tick_record(t, city))
        if on_progress is not None:
            on_progress(min(t, horizon))
        if t >= horizon and city.unfinished == 0:
            break
        t = max(t + tick, city.now)
    run.outcomes = city.finish()
    run.wall_s = time.perf_counter() - start + prior_s(replay)
    run.sim_wall_s = run.wall_s - decide_wall
    if log is not None:
        run.wall_s, run.sim_wall_s = log.walls or (run.wall_s, run.sim_wall_s)
        log.finish(run.wall_s, run.sim_wall_s)
    return run


def prior_s(replay: list) -> float:
    """Wall seconds the killed process had spent on the episode when it wrote its last cycle."""
    return replay[-1].elapsed_s if replay else 0.0
