"""The scheduler: the routing policy the data plane applies, every control tick."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from edgeagents.agents.agent import (
    HARM_TOLERANCE,
    AgentNode,
    Choice,
    LMCall,
    Repaired,
    Step,
    guard_choice,
    option_number,
)
from edgeagents.agents.lmconfig import DEFAULT_TIMEOUT_S
from edgeagents.agents.tools import RoutingCandidate, model_facts, rank_routing
from edgeagents.agents.twin import WhatIf, forecast_demand
from edgeagents.core.control_state import ControlState
from edgeagents.core.notice import draining_sites
from edgeagents.core.scenario import Scenario
from edgeagents.core.state import RoutingPolicy, SiteWeight, Telemetry

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

SCHEDULER_PROMPT = (
    "Scheduler of a city of edge GPU sites. Choose the routing option with the lowest "
    "predicted mean latency; a Jain index near 1 is fairer. Reply in JSON."
)


class RouteOverride(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    site: str
    weight: float = Field(description="0 avoids the site; 1 is the most preferred.")


class SchedulerAnswer(Choice):
    weights: list[RouteOverride] = Field(
        default_factory=list, max_length=4, description="Site weights overriding the option's."
    )


class Scheduler(AgentNode):
    """Sets the `RoutingPolicy` from live telemetry (see `create_scheduler`)."""

    default_prompt = SCHEDULER_PROMPT

    def __init__(self, model: BaseChatModel | None, *, horizon_s: float, **node: Any) -> None:
        super().__init__(model, **node)
        self.horizon_s = horizon_s

    def prepare(self, state: ControlState, scenario: Scenario) -> Step[RoutingPolicy]:
        telemetry = state["telemetry"]
        forecast = state.get("forecast") or forecast_demand(telemetry)
        intents = list((state.get("intents") or {}).values())
        whatif = WhatIf(
            scenario, forecast, telemetry, horizon_s=self.horizon_s, seed=state.get("cycle", 0),
            intents=intents, baselines=state.get("intent_baselines"),
        )  # fmt: skip
        menu = rank_routing(whatif, telemetry, scenario)
        facts = model_facts(telemetry, whatif.references)

        def repair(answer: SchedulerAnswer) -> Repaired[RoutingPolicy]:
            return repair_scheduler_answer(answer, menu, telemetry, whatif)

        def finish(routing: RoutingPolicy) -> dict[str, Any]:
            return {"routing": drain(routing, draining_sites(intents, telemetry.time_s))}

        recalled = (state.get("recalled") or []) if state.get("shift") else []
        return Step(
            agent=self.name, user=render_scheduler_prompt(facts, menu, recalled),
            schema=SchedulerAnswer, menu_size=len(menu), repair=repair,
            fallback=lambda: menu[0].routing, finish=finish,
        )  # fmt: skip


def create_scheduler(
    model: BaseChatModel | None,
    *,
    scenario: Scenario | None = None,
    prompt: str | None = None,
    name: str = "scheduler",
    horizon_s: float = 60.0,
    timeout_s: float = DEFAULT_TIMEOUT_S["scheduler"],
    lm_call: LMCall | None = None,
) -> Scheduler:
    """A LangGraph node that sets the `RoutingPolicy` from live telemetry.

    Args:
        model: The chat model, or None for tools and fallback only.
        scenario: The city; if None, read from `config["configurable"]["scenario"]`.
        prompt: System prompt replacing the default.
        name: The node's name and the agent name in decision records.
        horizon_s: How far ahead the twin simulates each routing option.
        timeout_s: Limit of one LM call; past it the fallback decides.
        lm_call: Replaces `edgeagents.agents.llm.structured_call` (tests).

    On a sharp shift with experience memory on, the prompt also shows the recalled past shifts
    (`state["recalled"]`, written by the recall node).
    """
    return Scheduler(
        model, scenario=scenario, prompt=prompt, name=name, horizon_s=horizon_s,
        timeout_s=timeout_s, lm_call=lm_call,
    )  # fmt: skip


def drain(routing: RoutingPolicy, sites: set[str]) -> RoutingPolicy:
    """Weight 0 at sites about to go offline for maintenance: the router sends there only
    when nothing else can serve, so their queues empty before the site goes."""
    if not sites:
        return routing
    routes = {
        m: [SiteWeight(site=w.site, weight=0.0 if w.site in sites else w.weight) for w in ws]
        for m, ws in routing.routes.items()
    }
    return RoutingPolicy(routes=routes)


def render_scheduler_prompt(
    facts: list, menu: list[RoutingCandidate], recalled: list[str] | None = None
) -> str:
    lines = ["Model: demand/s, replicas, queue, slowdown"]
    for f in facts:
        slow = "-" if f.slowdown is None else f"{f.slowdown:.2f}"
        lines.append(f"{f.model} {f.demand_per_s:.2f} {f.replicas} {f.queue_len} {slow}")
    lines.append("Options: predicted mean s, Jain")
    lines += [
        f"{option_number(k)} {c.name} {c.prediction.mean_latency_s:.2f} {c.prediction.jain:.3f}"
        for k, c in enumerate(menu)
    ]
    if recalled:
        lines.append("Past situations like this one (what was done -> how it went):")
        lines += recalled
    return "\n".join(lines)


def repair_scheduler_answer(
    answer: SchedulerAnswer,
    menu: list[RoutingCandidate],
    telemetry: Telemetry,
    whatif: WhatIf,
) -> Repaired[RoutingPolicy]:
    """Guard the choice (`guard_choice`); keep only weight overrides for known models at sites
    that host them, finite and non-negative, not zero everywhere; drop them if the twin
    predicts harm."""
    chosen, notes = guard_choice(answer.choice, menu)
    hosts: dict[str, set[str]] = {}
    for r in telemetry.replicas:
        hosts.setdefault(r.deployment.model, set()).add(r.deployment.site)
    routes = dict(chosen.routing.routes)
    overridden = False
    wanted: dict[str, dict[str, float]] = {}
    for o in answer.weights:
        wanted.setdefault(o.model, {})[o.site] = o.weight
    for m, by_site in wanted.items():
        if m not in hosts:
            notes.append(f"unknown model {m!r}")
            continue
        clean: dict[str, float] = {}
        for site, w in by_site.items():
            if site not in hosts[m]:
                notes.append(f"{m} has no replica at {site!r}")
            elif not math.isfinite(w) or w < 0:
                notes.append(f"weight {w} of {m}@{site} set to 0")
                clean[site] = 0.0
            else:
                clean[site] = float(w)
        if not clean:
            continue
        merged = {w.site: w.weight for w in routes.get(m, [])} | clean
        if max(merged.values(), default=0.0) <= 0:
            notes.append(f"weights of {m} all zero: ignored")
            continue
        routes[m] = [SiteWeight(site=s, weight=w) for s, w in sorted(merged.items())]
        overridden = True
    routing = RoutingPolicy(routes=routes)
    if overridden:
        current = [r.deployment for r in telemetry.replicas]
        pred = whatif.evaluate(current, router="weighted", routing=routing)
        if pred.score() > chosen.prediction.score() * (1 + HARM_TOLERANCE):
            notes.append(f"weights predicted worse ({pred.mean_latency_s:.2f} s)")
            routing = chosen.routing
    return Repaired.from_notes(routing, notes)
