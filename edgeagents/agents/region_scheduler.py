"""Routing per region, in a city of several: each region's routing options run on its own
twin, and a tick's twin work is bounded by a prompt budget. Regions whose replicas moved go
first, then those evaluated longest ago; the line stops at the first region the budget does
not reach (no twin is built for those after it), and every region not reached this tick keeps
its routes (a replica missing from them counts at full weight, so none is starved)."""

from __future__ import annotations

import time
from typing import Any

from edgeagents.agents.agent import run_step
from edgeagents.agents.regions import RegionView, region_views, region_whatif
from edgeagents.agents.scheduler import (
    Scheduler,
    SchedulerAnswer,
    drain,
    render_scheduler_prompt,
    repair_scheduler_answer,
)
from edgeagents.agents.tools import model_facts, rank_routing, routing_strategies
from edgeagents.agents.twin import forecast_demand
from edgeagents.core.control_state import ControlState
from edgeagents.core.notice import draining_sites
from edgeagents.core.scenario import Scenario
from edgeagents.core.state import AgentRecord, RoutingPolicy, SiteWeight

TICK_PROMPT_BUDGET = 30_000
"""Prompts the scheduler's twin may simulate in one tick, over every region and routing
option; the first region in line is always evaluated (docs/decisions.md)."""


def hosts_changed(view: RegionView, routing: RoutingPolicy | None) -> bool:
    """Whether the region's replicas sit elsewhere than its routes say (or it has none)."""
    if routing is None:
        return True
    up = {s.site for s in view.telemetry.sites if s.up}
    hosts: dict[str, set[str]] = {}
    for r in view.telemetry.replicas:
        if r.deployment.site in up:
            hosts.setdefault(r.deployment.model, set()).add(r.deployment.site)
    routed = {m: {w.site for w in ws if w.site in view.sites} for m, ws in routing.routes.items()}
    return any(routed.get(m, set()) != s for m, s in hosts.items())


def kept_routes(view: RegionView, routing: RoutingPolicy | None) -> dict[str, list[SiteWeight]]:
    """The region's part of the routes in force."""
    if routing is None:
        return {}
    return {m: [w for w in ws if w.site in view.sites] for m, ws in routing.routes.items()}


def regional_routing(
    scheduler: Scheduler, state: ControlState, scenario: Scenario
) -> dict[str, Any]:
    """The scheduler's node in a city of several regions: one step (menu, LM, repair) per
    region the tick's budget reaches, the routes merged, draining sites at weight 0."""
    started = time.perf_counter()
    telemetry = state["telemetry"]
    forecast = state.get("forecast") or forecast_demand(telemetry)
    intents = list((state.get("intents") or {}).values())
    previous = state.get("routing")
    evaluated = dict(state.get("routing_evaluated") or {})
    cycle = state.get("cycle", 0)
    views = region_views(scenario, telemetry, forecast)
    order = sorted(
        views,
        key=lambda v: (not hosts_changed(v, previous), evaluated.get(v.name, -1), v.name),
    )
    recalled = (state.get("recalled") or []) if state.get("shift") else []
    routes: dict[str, list[SiteWeight]] = {}
    records: dict[str, AgentRecord] = {}
    spent = reached = 0
    full = False
    for view in order:
        if not full:
            whatif = region_whatif(
                view,
                intents,
                state.get("intent_baselines"),
                horizon_s=scheduler.horizon_s,
                seed=cycle,
            )
            cost = len(whatif.workload) * len(routing_strategies(view.telemetry, view.scenario))
            full = bool(reached) and spent + cost > TICK_PROMPT_BUDGET
        if full:
            part = kept_routes(view, previous)
        else:
            menu = rank_routing(whatif, view.telemetry, view.scenario)
            facts = model_facts(view.telemetry, whatif.references)
            routing, record = run_step(
                agent=f"{scheduler.name}:{view.name}", model=scheduler.model,
                system=scheduler.system, user=render_scheduler_prompt(facts, menu, recalled),
                schema=SchedulerAnswer, menu_size=len(menu),
                repair=lambda a, menu=menu, view=view, whatif=whatif: repair_scheduler_answer(
                    a, menu, view.telemetry, whatif),
                fallback=lambda menu=menu: menu[0].routing, timeout_s=scheduler.timeout_s,
                lm_call=scheduler.lm_call,
            )  # fmt: skip
            part = routing.routes
            records[record.agent] = record
            evaluated[view.name] = cycle
            spent += whatif.simulated
            reached += 1
        for m, ws in part.items():
            routes.setdefault(m, []).extend(ws)
    routing = drain(RoutingPolicy(routes=routes), draining_sites(intents, telemetry.time_s))
    records[scheduler.name] = AgentRecord(
        agent=scheduler.name, path="tools", wall_s=time.perf_counter() - started,
        rationale=f"{reached} of {len(views)} regions routed anew ({spent:,} twin prompts; "
        f"tick budget {TICK_PROMPT_BUDGET:,})",
    )  # fmt: skip
    return {"routing": routing, "routing_evaluated": evaluated, "records": records}
