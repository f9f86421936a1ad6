"""Region scale: simulator speed, routing cost, the agents' decision time and memory as a
generated region grows from a few sites to a thousand.

For each size N, `generate_region(RegionSpec(sites=N, seed=S))` builds the city, then:

1. **Simulator speed**: a `greedy` episode (static placement, `run_episode`) over enough
   simulated seconds for about `target_prompts` prompts; prompts per wall second and µs per
   prompt without the controller's steps and the city's setup (all-pairs backhaul paths,
   `EpisodeRun.setup_s`; the driver's per-tick telemetry sample counts in);
   `episode_us_per_prompt` keeps the setup in.
2. **Routing cost**: in that episode the router instance's `route` is wrapped by a timer (its
   two `perf_counter` calls included, well under 1 µs); µs per prompt = time inside `route`
   over the prompts (re-dispatches count too).
3. **Agents' decisions** (`--llm none`): `AgentsController` on a fresh city for `agent_ticks`
   ticks, planning every `epoch_ticks` ticks (the first tick plans); per tick the step's wall
   and CPU time and the records' `wall_s` (planner or, with several regions, the
   coordinator's epoch; scheduler; deployers). Decisions apply at once. The *epoch decision*
   is the planner's (or coordinator's) record; the *tick decision* is the step's wall time
   less it. Generated cities of more than one aggregation group plan and route per region.
4. **Memory**: the tracemalloc peak of generating the workload and simulating the episode
   again (a separate pass: tracemalloc slows Python, so it times nothing), and the process's
   peak resident memory once the agents ran (`ru_maxrss`).
"""

from __future__ import annotations

import itertools
import resource
import time
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeagents.agents.coordinator import COORDINATOR
from edgeagents.core.region import RegionSpec, generate_region
from edgeagents.core.scenario import Scenario
from edgeagents.experiments.driver import run_episode
from edgeagents.policies import POLICIES
from edgeagents.sim.workload import generate_workload

ROUTE_TARGET_US = 20.0
"""The issue's target: routing µs per prompt at 1,000 sites."""
PLANNER_TARGET_S = 30.0
"""The issue's target: the planner's epoch decision, wall s."""
TARGET_SITES = 1000
EPOCH_TICKS = 3
"""The bench's planning epoch, in ticks: 4 ticks hold 2 epochs, each followed by a tick
without planning."""
MIN_DURATION_S = 2.0
MAX_DURATION_S = 600.0
PROMPTS_PER_S_PER_SITE = 10.0
"""`bench scale`'s default load: 10,000 prompts/s at 1,000 sites (the issue's), the same per
site at every size."""
TARGET_PROMPTS = 60_000
"""Prompts the greedy episode aims for: 6 s of arrivals at 10,000 prompts/s."""

Progress = Callable[[str], None]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentTick(_Model):
    tick: int
    time_s: float = Field(description="Simulated time of the tick.")
    wall_s: float = Field(description="Wall time of the whole control step.")
    cpu_s: float = Field(description="CPU time of this process over the step.")
    planner_s: float | None = Field(
        description="The epoch decision, when the planner ran: its record's wall time, or in a "
        "city of several regions the coordinator's (from the planner's start to the merge)."
    )
    decision_s: float = Field(description="Tick decision: the step's wall time less the epoch's.")
    scheduler_s: float | None
    deployers: int
    deployer_max_s: float | None
    deployer_sum_s: float
    records: int


class Spread(_Model):
    p50: float
    p95: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread | None:
        if not values:
            return None
        return cls(
            p50=float(np.percentile(values, 50)), p95=float(np.percentile(values, 95)),
            max=float(max(values)),
        )  # fmt: skip


class AgentsFigures(_Model):
    skipped: str | None = Field(default=None, description="Why the agents did not run.")
    tick_s: float
    regions: int = 1
    epoch_ticks: int = Field(default=0, description="Ticks per planning epoch in the run.")
    ticks: list[AgentTick] = Field(default_factory=list)
    tick_decision: Spread | None = Field(default=None, description="Over every tick, wall s.")
    tick_cpu: Spread | None = Field(
        default=None, description="CPU s of the steps of the ticks without planning."
    )
    epoch_cpu: Spread | None = Field(
        default=None, description="CPU s of the steps that planned (the tick's decision too)."
    )
    epoch_decision: Spread | None = Field(default=None, description="Over the epochs, wall s.")
    tick_decision_p95_s: float | None = None
    planner_s: float | None = Field(default=None, description="The slowest epoch decision.")
    peak_rss_mib: float | None = Field(
        default=None,
        description="The process's peak resident memory once the agents ran (ru_maxrss: the "
        "high-water mark of the whole run so far, so sizes run smallest first).",
    )
    tick_met: bool | None = None
    planner_met: bool | None = None


class ScaleRow(_Model):
    sites: int
    cells: int
    links: int
    gpus: int
    replicas: int
    rate_per_s: float = Field(description="The city's offered load, prompts/s.")
    generate_s: float
    duration_s: float
    prompts: int
    served: int = Field(description="Prompts of the greedy episode served.")
    mean_latency_s: float | None = Field(description="Their mean latency, s (None: none).")
    refused: int = Field(description="Prompts of the greedy episode refused (each with a reason).")
    setup_s: float = Field(description="Building the city alone (network paths), wall s.")
    sim_wall_s: float = Field(description="The greedy episode, setup included, wall s.")
    prompts_per_s: float = Field(description="Prompts per wall second, setup left out.")
    prompts_per_cpu_s: float = Field(
        description="Prompts per CPU second of this process, setup left out: what the "
        "machine's other load changes least."
    )
    us_per_prompt: float = Field(description="Wall µs per prompt, setup left out.")
    episode_us_per_prompt: float = Field(description="Wall µs per prompt, setup included.")
    route_calls: int
    route_us_per_prompt: float
    route_us_per_call: float
    peak_mib: float = Field(description="tracemalloc peak of workload + greedy episode.")
    agents: AgentsFigures


class Growth(_Model):
    """Ratios of the larger size's figure to the smaller's (None where either is missing)."""

    from_sites: int
    to_sites: int
    sites: float
    us_per_prompt: float | None
    route_us_per_prompt: float | None
    peak_mib: float | None
    tick_decision_p95_s: float | None
    tick_cpu_p95_s: float | None
    planner_s: float | None
    peak_rss_mib: float | None


class ScaleReport(_Model):
    seed: int
    prompts_per_s: float | None = Field(
        description="Offered at the largest size (smaller sizes: the same per site, with GPUs "
        "scaled alike); None: each city's native demand, 0.7 prompts/s per 1,000 users."
    )
    target_prompts: int
    agent_ticks: int
    epoch_ticks: int = EPOCH_TICKS
    rows: list[ScaleRow]
    growth: list[Growth]
    route_target_us: float = ROUTE_TARGET_US
    planner_target_s: float = PLANNER_TARGET_S
    targets: dict[str, bool | None] = Field(
        description="sim: at 1,000 sites, prompts per CPU second (one core) at least the "
        "offered rate, i.e. real time; route: µs per prompt at 1,000 sites (None: not measured "
        "there); tick: "
        "p95 tick decision within the tick at every size with agents; planner: every epoch "
        "decision at most 30 s."
    )


def duration_for(scenario: Scenario, target_prompts: int) -> float:
    """Simulated seconds of arrivals for about `target_prompts` prompts, within bounds."""
    rate = sum(d.arrivals.rate_per_s for d in scenario.workload.demands)
    want = target_prompts / rate if rate > 0 else MAX_DURATION_S
    return float(min(MAX_DURATION_S, max(MIN_DURATION_S, want)))


def timed_route(router: Any) -> list[float]:
    """Wrap `router.route` on the instance; the returned [seconds, calls] grows as it runs."""
    inner = router.route
    acc = [0.0, 0.0]
    clock = time.perf_counter

    def route(i, candidates, city):
        t0 = clock()
        r = inner(i, candidates, city)
        acc[0] += clock() - t0
        acc[1] += 1
        return r

    router.route = route
    return acc


def cpu_timed_step(controller: Any) -> list[float]:
    """Wrap `controller.step` on the instance; the returned [CPU seconds] grows as it runs
    (the wall figures leave the controller's steps out, so the CPU figure does too)."""
    inner = controller.step
    acc = [0.0]

    def step(*args, **kwargs):
        c0 = time.process_time()
        out = inner(*args, **kwargs)
        acc[0] += time.process_time() - c0
        return out

    controller.step = step
    return acc


def simulate(sc: Scenario, duration: float, seed: int) -> dict[str, Any]:
    """The greedy episode: speed in wall and CPU time and routing cost. The city's setup (its
    network paths) is timed apart: a city is built first, so the episode finds its paths
    computed, and a second build's CPU time is what the episode's own build costs; the
    controller's steps are left out of both figures."""
    from edgeagents.sim.city import SimulatedCity

    workload = generate_workload(sc, duration_s=duration, seed=seed)
    router, controller = POLICIES.create("greedy").create()
    t0 = time.perf_counter()
    SimulatedCity(sc, workload, router, seed=seed)
    setup = time.perf_counter() - t0
    c0 = time.process_time()
    SimulatedCity(sc, workload, router, seed=seed)
    build_cpu = time.process_time() - c0
    acc = timed_route(router)
    steps = cpu_timed_step(controller)
    c0 = time.process_time()
    run = run_episode(
        sc, workload, (router, controller), seed=seed, duration_s=duration,
        charge_decision_time=False,
    )  # fmt: skip
    cpu = time.process_time() - c0 - build_cpu - steps[0]
    running = run.sim_wall_s - run.setup_s
    n = max(len(workload), 1)
    lat = run.outcomes.latency_s
    served = ~np.isnan(lat)
    return {
        "duration_s": duration,
        "prompts": len(workload),
        "served": int(served.sum()),
        "refused": int((run.outcomes.refused >= 0).sum()),
        "mean_latency_s": float(lat[served].mean()) if served.any() else None,
        "setup_s": setup,
        "sim_wall_s": setup + running,
        "prompts_per_s": len(workload) / running if running > 0 else 0.0,
        "prompts_per_cpu_s": len(workload) / cpu if cpu > 0 else 0.0,
        "us_per_prompt": running / n * 1e6,
        "episode_us_per_prompt": (setup + running) / n * 1e6,
        "route_calls": int(acc[1]),
        "route_us_per_prompt": acc[0] / n * 1e6,
        "route_us_per_call": acc[0] / max(acc[1], 1) * 1e6,
    }


def peak_mib(sc: Scenario, duration: float, seed: int) -> float:
    """tracemalloc peak of generating the workload and running the greedy episode, MiB."""
    tracemalloc.start()
    try:
        workload = generate_workload(sc, duration_s=duration, seed=seed)
        run_episode(sc, workload, "greedy", seed=seed, duration_s=duration)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def agent_tick(k: int, decision: Any, wall: float, cpu: float) -> AgentTick:
    recs = decision.records
    by_agent = {r.agent: r.wall_s for r in recs}
    planner_s = by_agent.get(COORDINATOR, by_agent.get("planner"))
    deployers = [r.wall_s for r in recs if r.agent.startswith("deployer:")]
    return AgentTick(
        tick=k, time_s=decision.time_s, wall_s=wall, cpu_s=cpu, planner_s=planner_s,
        decision_s=max(0.0, wall - (planner_s or 0.0)), scheduler_s=by_agent.get("scheduler"),
        deployers=len(deployers), deployer_max_s=max(deployers) if deployers else None,
        deployer_sum_s=float(sum(deployers)), records=len(recs),
    )  # fmt: skip


def run_agents(
    sc: Scenario, ticks: int, seed: int, epoch_ticks: int = EPOCH_TICKS
) -> AgentsFigures:
    """The agents with no LM on a fresh city of the region for `ticks` control ticks, the
    planner every `epoch_ticks` ticks (the bench's epoch, so a short run has several)."""
    from edgeagents.policies import ROUTERS
    from edgeagents.sim.city import SimulatedCity
    from graphs.controller import AgentsController

    tick_s = sc.control.tick_s
    control = sc.control.model_copy(update={"planning_epoch_s": epoch_ticks * tick_s})
    sc = sc.model_copy(update={"control": control})
    workload = generate_workload(sc, duration_s=ticks * tick_s, seed=seed)
    city = SimulatedCity(sc, workload, ROUTERS.create("weighted"), seed=seed)
    controller = AgentsController(None)
    out = []
    for k in range(ticks):
        city.advance((k + 1) * tick_s)
        t0, c0 = time.perf_counter(), time.process_time()
        decision, _ = controller.step(city, sc, charge_decision_time=False)
        out.append(agent_tick(k, decision, time.perf_counter() - t0, time.process_time() - c0))
    tick = Spread.of([t.decision_s for t in out])
    epoch = Spread.of([t.planner_s for t in out if t.planner_s is not None])
    assert tick is not None
    return AgentsFigures(
        tick_s=tick_s, regions=len(sc.region_sites), epoch_ticks=epoch_ticks, ticks=out,
        tick_decision=tick, epoch_decision=epoch,
        tick_cpu=Spread.of([t.cpu_s for t in out if t.planner_s is None]),
        epoch_cpu=Spread.of([t.cpu_s for t in out if t.planner_s is not None]),
        tick_decision_p95_s=tick.p95, planner_s=None if epoch is None else epoch.max,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        tick_met=tick.p95 <= tick_s,
        planner_met=None if epoch is None else epoch.max <= PLANNER_TARGET_S,
    )  # fmt: skip


def scale_row(
    sites: int, *, seed: int, target_prompts: int, agent_ticks: int, agents: bool,
    epoch_ticks: int = EPOCH_TICKS, prompts_per_s: float | None = None,
    on_step: Progress | None = None,
) -> ScaleRow:  # fmt: skip
    """Every figure at one region size, offering `prompts_per_s` (None: its native demand)."""
    step = on_step or (lambda _: None)
    t0 = time.perf_counter()
    sc = generate_region(RegionSpec(sites=sites, seed=seed, prompts_per_s=prompts_per_s))
    generate_s = time.perf_counter() - t0
    duration = duration_for(sc, target_prompts)
    step(f"{sites} sites: greedy episode")
    sim = simulate(sc, duration, seed)
    step(f"{sites} sites: memory")
    peak = peak_mib(sc, duration, seed)
    step(f"{sites} sites: agents")
    figures = (
        run_agents(sc, agent_ticks, seed, epoch_ticks)
        if agents and agent_ticks > 0
        else AgentsFigures(skipped="--no-agents" if not agents else "0 ticks",
                           tick_s=sc.control.tick_s, regions=len(sc.region_sites))
    )  # fmt: skip
    return ScaleRow(
        sites=sites, cells=len(sc.cells), links=len(sc.links),
        gpus=sum(g.count for s in sc.sites for g in s.gpus),
        replicas=sum(len(v) for v in sc.placement.values()),
        rate_per_s=sum(d.arrivals.rate_per_s for d in sc.workload.demands),
        generate_s=generate_s, peak_mib=peak, agents=figures, **sim,
    )  # fmt: skip


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or a <= 0 else b / a


def _p95(spread: Spread | None) -> float | None:
    return None if spread is None else spread.p95


def growth(rows: Sequence[ScaleRow]) -> list[Growth]:
    """Ratios between consecutive sizes."""
    out = []
    for a, b in itertools.pairwise(rows):
        aa, ba = a.agents, b.agents
        g = Growth(
            from_sites=a.sites, to_sites=b.sites, sites=b.sites / a.sites,
            us_per_prompt=_ratio(a.us_per_prompt, b.us_per_prompt),
            route_us_per_prompt=_ratio(a.route_us_per_prompt, b.route_us_per_prompt),
            peak_mib=_ratio(a.peak_mib, b.peak_mib),
            tick_decision_p95_s=_ratio(aa.tick_decision_p95_s, ba.tick_decision_p95_s),
            tick_cpu_p95_s=_ratio(_p95(aa.tick_cpu), _p95(ba.tick_cpu)),
            planner_s=_ratio(aa.planner_s, ba.planner_s),
            peak_rss_mib=_ratio(aa.peak_rss_mib, ba.peak_rss_mib),
        )  # fmt: skip
        out.append(g)
    return out


def targets(rows: Sequence[ScaleRow]) -> dict[str, bool | None]:
    at = next((r for r in rows if r.sites == TARGET_SITES), None)
    ran = [r.agents for r in rows if r.agents.skipped is None]
    planners = [a.planner_met for a in ran if a.planner_met is not None]
    return {
        "sim": None if at is None else at.prompts_per_cpu_s >= at.rate_per_s,
        "route": None if at is None else at.route_us_per_prompt <= ROUTE_TARGET_US,
        "tick": all(bool(a.tick_met) for a in ran) if ran else None,
        "planner": all(planners) if planners else None,
    }


def rate_at(sites: int, largest: int, prompts_per_s: float | None) -> float | None:
    """The load a size offers: `prompts_per_s` at the largest size, the same per site below."""
    return None if prompts_per_s is None else prompts_per_s * sites / largest


def region_scale(
    sizes: Sequence[int], *, seed: int = 0, target_prompts: int = TARGET_PROMPTS,
    agent_ticks: int = 4, agents: bool = True, epoch_ticks: int = EPOCH_TICKS,
    prompts_per_s: float | None = None, on_step: Progress | None = None,
) -> ScaleReport:  # fmt: skip
    """Every figure at each region size, their growth and the issue's targets; the largest
    size offers `prompts_per_s` (None: every size its native demand)."""
    if not sizes or min(sizes) < 1:
        raise ValueError("sizes: give at least one, each of 1 site or more")
    if prompts_per_s is not None and not prompts_per_s > 0:
        raise ValueError(f"prompts_per_s {prompts_per_s}: give a rate above 0")
    rows = [
        scale_row(n, seed=seed, target_prompts=target_prompts, agent_ticks=agent_ticks,
                  agents=agents, epoch_ticks=epoch_ticks,
                  prompts_per_s=rate_at(n, max(sizes), prompts_per_s), on_step=on_step)
        for n in sizes
    ]  # fmt: skip
    return ScaleReport(
        seed=seed, prompts_per_s=prompts_per_s, target_prompts=target_prompts,
        agent_ticks=agent_ticks if agents else 0,
        epoch_ticks=epoch_ticks, rows=rows, growth=growth(rows), targets=targets(rows),
    )  # fmt: skip
