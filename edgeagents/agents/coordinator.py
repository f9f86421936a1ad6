"""The city-level coordinator: merges the region plans of an epoch into one `Plan` and makes
the only moves that cross regions. A region plan keeps to its own sites (a move outside is
dropped); the coordinator lends a region a neighbour's GPU only when the region has demand
for a model, no replica of it, no room for one, and no neighbouring region that holds one
(whose replicas its prompts then reach over the core)."""

from __future__ import annotations

import time
from typing import Any

from langchain_core.runnables import RunnableConfig

from edgeagents.agents.agent import NO_CONFIG, scenario_from_config
from edgeagents.agents.plan_answer import LM_PLAN_SOURCE
from edgeagents.agents.planner import build_plan, fairness_priorities, with_operator_priorities
from edgeagents.agents.region_planner import RegionJob, RegionPlan
from edgeagents.agents.regions import home_regions, region_forecast
from edgeagents.agents.tools import Layout, PlanCandidate, model_facts, speed_at
from edgeagents.agents.twin import Prediction, operator_priorities
from edgeagents.core.control_state import ControlState
from edgeagents.core.scenario import Scenario
from edgeagents.core.state import AgentRecord, DeploymentAction, Forecast, Telemetry

COORDINATOR = "coordinator"
"""The node's name and its record's agent; its record's wall time is the whole epoch
decision's, from the planner node's start."""


def neighbour_regions(scenario: Scenario) -> dict[str, list[str]]:
    """Region -> the regions a backhaul link joins it to."""
    home = home_regions(scenario)
    out: dict[str, set[str]] = {r: set() for r in scenario.region_sites}
    for lk in scenario.links:
        a, b = home[lk.a], home[lk.b]
        if a != b:
            out[a].add(b)
            out[b].add(a)
    return {r: sorted(v) for r, v in out.items()}


def cross_region_loads(
    scenario: Scenario,
    telemetry: Telemetry,
    forecast: Forecast,
    actions: list[DeploymentAction],
) -> tuple[list[DeploymentAction], list[str]]:
    """The loads the coordinator allows outside a region, after the region plans' `actions`,
    and why each (and each loan by routing alone). A model with no replica in the whole city
    is left to the deployers' recovery."""
    layout = Layout(telemetry, scenario)
    for a in actions:
        layout.apply(a)
    home = home_regions(scenario)
    near = neighbour_regions(scenario)
    loads: list[DeploymentAction] = []
    notes: list[str] = []
    for name, sites in scenario.region_sites.items():
        cells = {c.name for c in scenario.cells if c.site in set(sites)}
        demand = region_forecast(forecast, scenario, cells).rates_per_s
        for spec in scenario.models:
            m = spec.name
            holders = {home[d.site] for d in layout.replicas if d.model == m}
            if demand.get(m, 0.0) <= 0 or not holders or name in holders:
                continue
            if any(layout.fits(spec, k) for k in layout.gpus if home[k[0]] == name):
                continue  # room at home: the region's own planner decides
            lender = next((q for q in near[name] if q in holders), None)
            if lender is not None:
                notes.append(f"{name} borrows {m} from {lender} (no room in {name})")
                continue
            room = [k for k in layout.gpus if home[k[0]] in near[name] and layout.fits(spec, k)]
            if not room:
                notes.append(f"{name}: no room for {m} there or next door")
                continue
            key = max(room, key=lambda k: (speed_at(layout, spec, k), layout.free[k], k))
            action = DeploymentAction(site=key[0], model=m, op="load", gpu_index=key[1])
            layout.apply(action)
            loads.append(action)
            notes.append(f"{name}: no room for {m}, none next door: load at {key[0]} "
                         f"({home[key[0]]})")  # fmt: skip
    return loads, notes


def merged_prediction(predictions: list[Prediction]) -> Prediction:
    """The city's prediction from its regions': the prompt-weighted mean, the least fair
    region's Jain index."""
    prompts = sum(p.prompts for p in predictions)
    mean = sum(p.mean_latency_s * p.prompts for p in predictions) / max(1, prompts)
    return Prediction(
        mean_latency_s=mean, jain=min((p.jain for p in predictions), default=1.0),
        per_model_mean_s={}, refused=sum(p.refused for p in predictions), prompts=prompts,
    )  # fmt: skip


def coordinate(state: ControlState, config: RunnableConfig = NO_CONFIG) -> dict[str, Any]:
    """The epoch's `Plan` from the region plans (a region that was not searched holds)."""
    scenario = scenario_from_config(config)
    telemetry = state["telemetry"]
    jobs: dict[str, RegionJob] = state["region_jobs"]
    plans: dict[str, RegionPlan] = state.get("region_plans") or {}
    home = home_regions(scenario)
    actions: list[DeploymentAction] = []
    chosen: list[PlanCandidate] = []
    notes: list[str] = []
    for name, job in jobs.items():
        plan = plans.get(name)
        cand = plan.candidate if plan else PlanCandidate(name="hold", actions=[],
                                                         prediction=job.hold)  # fmt: skip
        inside = [a for a in cand.actions if home.get(a.site) == name]
        if len(inside) < len(cand.actions):
            notes.append(f"{name}: {len(cand.actions) - len(inside)} moves outside it dropped")
        actions += inside
        chosen.append(cand)
        if cand.actions:
            notes.append(f"{name}: {cand.name}")
    loads, loan_notes = cross_region_loads(scenario, telemetry, state["forecast"], actions)
    refs: dict[str, float] = {}
    for job in jobs.values():
        for m, r in job.references.items():
            refs[m] = min(r, refs.get(m, r))
    lm = {m: p for plan in plans.values() for m, p in plan.priorities.items()}
    now = telemetry.time_s
    active = [i for i in (state.get("intents") or {}).values() if i.active(now)]
    priorities = with_operator_priorities(
        fairness_priorities(model_facts(telemetry, refs), lm), operator_priorities(active)
    )
    moved = sum(1 for c in chosen if c.actions)
    summary = f"{moved} of {len(jobs)} regions move"
    merged = PlanCandidate(
        name="; ".join([summary, *notes, *loan_notes]), actions=[*actions, *loads],
        prediction=merged_prediction([c.prediction for c in chosen]),
    )  # fmt: skip
    epoch = int(now // scenario.control.planning_epoch_s)
    plan = build_plan(merged, priorities, telemetry, scenario, epoch)
    if any(c.name.startswith(LM_PLAN_SOURCE) for c in chosen):
        plan = plan.model_copy(update={"source": "lm"})
    elif any(c.name.startswith("remembered") for c in chosen):
        plan = plan.model_copy(update={"source": "memory"})
    pending: dict[str, list[DeploymentAction]] = {s.name: [] for s in scenario.sites}
    for a in plan.actions:
        pending[a.site].append(a)
    started = state.get("plan_started_wall_s") or time.time()
    record = AgentRecord(
        agent=COORDINATOR, path="tools", wall_s=max(0.0, time.time() - started),
        rationale="; ".join([summary, *loan_notes])[:400],
    )  # fmt: skip
    return {"plan": plan, "pending": pending, "records": {COORDINATOR: record}}
