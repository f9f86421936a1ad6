"""Planning per region, in a city of several: the planner node reads the notices and the
forecast once, runs each region's twin on holding still, and hands the epoch's twin budget
to the regions that need it most; a `RegionPlanner` per such region (in parallel, through
`Send`) searches moves among its own sites only, with the LM (if any) shown its region's
menu; the coordinator (`edgeagents.agents.coordinator`) merges the region plans."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict

from edgeagents.agents.agent import AgentNode, Repaired, Step
from edgeagents.agents.plan_answer import PlannerAnswer, planner_schema, repair_planner_answer
from edgeagents.agents.plan_search import PLAN_PROMPT_BUDGET, search_plans
from edgeagents.agents.planner import (
    PLANNER_PROMPT,
    Planner,
    read_notices,
    remembered_forecast,
    render_planner_prompt,
)
from edgeagents.agents.regions import region_view, region_views, region_whatif
from edgeagents.agents.tools import PlanCandidate, model_facts
from edgeagents.agents.twin import Prediction, forecast_demand
from edgeagents.core.control_state import ControlState
from edgeagents.core.notice import intents_ahead
from edgeagents.core.scenario import Scenario
from edgeagents.core.state import AgentRecord

SEARCH_EVALUATIONS = 16
"""A searched region's slice of the epoch's twin budget, in evaluations of its workload:
enough for holding still and the first step of the search with room for a second."""


class RegionJob(BaseModel):
    """One region's part of an epoch: what holding still is predicted to do, and the twin
    prompts its search may spend (0: it holds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str
    hold: Prediction
    references: dict[str, float]
    evaluation_prompts: int
    prompt_budget: int = 0

    @property
    def need(self) -> float:
        """The latency its prompts add up to if it holds: where a search pays most."""
        return self.hold.score() * self.hold.prompts


class RegionPlan(BaseModel):
    """What a region's planner chose: moves among its own sites, and the LM's priorities."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str
    candidate: PlanCandidate
    priorities: dict[str, float]


def allot_search(jobs: list[RegionJob], budget: int = PLAN_PROMPT_BUDGET) -> list[RegionJob]:
    """Each region's search budget: what is left of `budget` after the holds goes, a slice
    of `SEARCH_EVALUATIONS` evaluations each, to the regions in order of need."""
    left = budget - sum(j.hold.prompts for j in jobs)
    given: dict[str, int] = {}
    for j in sorted(jobs, key=lambda j: (-j.need, j.region)):
        want = SEARCH_EVALUATIONS * j.evaluation_prompts
        if 0 < want <= left:
            given[j.region] = want
            left -= want
    return [j.model_copy(update={"prompt_budget": given.get(j.region, 0)}) for j in jobs]


def open_regions(planner: Planner, state: ControlState, scenario: Scenario) -> dict[str, Any]:
    """The planner's node in a city of several regions: the forecast, the notices read, each
    region's hold and search budget (`region_jobs`) for the region planners."""
    started, wall = time.perf_counter(), time.time()
    telemetry = state["telemetry"]
    forecast = forecast_demand(telemetry, state.get("forecast"))
    forecast = remembered_forecast(forecast, state.get("recalled_plan") or {})
    intents, baselines, notice_records = read_notices(
        planner.model, state, scenario, forecast, timeout_s=planner.timeout_s,
        lm_call=planner.lm_call,
    )  # fmt: skip
    ahead = intents_ahead(list(intents.values()), telemetry.time_s, planner.horizon_s)
    jobs = []
    for view in region_views(scenario, telemetry, forecast):
        whatif = region_whatif(
            view, ahead, baselines, horizon_s=planner.horizon_s, seed=state.get("cycle", 0)
        )
        hold = whatif.evaluate([r.deployment for r in view.telemetry.replicas])
        jobs.append(
            RegionJob(region=view.name, hold=hold, references=whatif.references,
                      evaluation_prompts=len(whatif.workload))
        )  # fmt: skip
    jobs = allot_search(jobs)
    searched = sum(1 for j in jobs if j.prompt_budget)
    record = AgentRecord(
        agent=planner.name, path="tools", wall_s=time.perf_counter() - started,
        rationale=f"{len(jobs)} regions held in the twin; {searched} get a search "
        f"(epoch twin budget {PLAN_PROMPT_BUDGET:,} prompts)",
    )  # fmt: skip
    errors = state.get("notice_errors") or []
    return {
        "forecast": forecast, "intents": intents, "intent_baselines": baselines,
        "notice_errors_seen": [*(state.get("notice_errors_seen") or []), *errors],
        "region_jobs": {j.region: j for j in jobs}, "plan_started_wall_s": wall,
        "records": {planner.name: record, **notice_records},
    }  # fmt: skip


class RegionPlanner(AgentNode):
    """Plans one region (`state["region"]`) on its own twin; its moves, its LM's own plans
    and extra loads can name only its own sites (see `create_region_planner`)."""

    default_prompt = PLANNER_PROMPT

    def __init__(self, planner: Planner) -> None:
        super().__init__(
            planner.model, scenario=planner.scenario, prompt=planner.system, name=planner.name,
            timeout_s=planner.timeout_s, lm_call=planner.lm_call,
        )  # fmt: skip
        self.horizon_s = planner.horizon_s
        self.search_budget_s = planner.search_budget_s

    def prepare(self, state: ControlState, scenario: Scenario) -> Step[Any]:
        name = state["region"]
        job: RegionJob = state["region_jobs"][name]
        view = region_view(scenario, state["telemetry"], state["forecast"], name)
        now = view.telemetry.time_s
        ahead = intents_ahead(list((state.get("intents") or {}).values()), now, self.horizon_s)
        whatif = region_whatif(
            view, ahead, state.get("intent_baselines"), horizon_s=self.horizon_s,
            seed=state.get("cycle", 0),
        )  # fmt: skip
        remembered = (state.get("recalled_plan") or {}).get("placement")
        mine = {s: ms for s, ms in remembered.items() if s in view.sites} if remembered else None
        menu = search_plans(
            whatif, view.telemetry, view.scenario, budget_s=self.search_budget_s,
            remembered=mine, prompt_budget=job.prompt_budget,
        )  # fmt: skip
        facts = model_facts(view.telemetry, whatif.references)

        def repair(answer: PlannerAnswer) -> Repaired[tuple[PlanCandidate, dict[str, float]]]:
            return repair_planner_answer(answer, menu, view.telemetry, view.scenario, whatif)

        def finish(decided: tuple[PlanCandidate, dict[str, float]]) -> dict[str, Any]:
            chosen, priorities = decided
            plan = RegionPlan(region=name, candidate=chosen, priorities=priorities)
            return {"region_plans": {name: plan}}

        return Step(
            agent=f"{self.name}:{name}",
            user=render_planner_prompt(
                facts, menu, view.forecast.rates_per_s, state.get("recalled") or [], ahead
            ),
            schema=planner_schema(view.scenario), menu_size=len(menu), repair=repair,
            fallback=lambda: (menu[0], {}), finish=finish,
        )  # fmt: skip


def create_region_planner(planner: Planner) -> RegionPlanner:
    """The node that plans one region with `planner`'s model, prompt, horizon and limits;
    its records are named `{planner.name}:{region}`."""
    return RegionPlanner(planner)
