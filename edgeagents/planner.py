"""The planner: long-term placement and fairness priorities, once per planning epoch."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from edgeagents.agent import (
    NO_CONFIG,
    Choice,
    LMCall,
    Repaired,
    guard_choice,
    option_number,
    run_step,
    scenario_from_config,
)
from edgeagents.lmconfig import DEFAULT_TIMEOUT_S
from edgeagents.scenario import Scenario
from edgeagents.state import ControlState, DeploymentAction, Forecast, Plan, Telemetry
from edgeagents.tools import Layout, ModelFact, PlanCandidate, model_facts, search_plans
from edgeagents.twin import WhatIf, forecast_demand

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.runnables import RunnableConfig

PLANNER_PROMPT = (
    "Planner of a city of edge GPU sites. Choose the placement plan with the lowest predicted "
    "mean latency; a Jain index near 1 is fairer. Reply in JSON."
)
PRIORITY_RANGE = (0.25, 4.0)
HARM_TOLERANCE = 0.02


class SiteModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    site: str
    model: str


class ModelPriority(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    priority: float = Field(description="Fairness priority, 1 = neutral.")


class PlannerAnswer(Choice):
    extra_loads: list[SiteModel] = Field(
        default_factory=list, max_length=2, description="Replicas to load besides the plan."
    )
    priorities: list[ModelPriority] = Field(
        default_factory=list,
        max_length=4,
        description="Fairness priorities to change; the others keep the tools' priorities.",
    )


def create_planner(
    model: BaseChatModel | None,
    *,
    scenario: Scenario | None = None,
    prompt: str | None = None,
    name: str = "planner",
    horizon_s: float = 120.0,
    search_budget_s: float = 6.0,
    timeout_s: float = DEFAULT_TIMEOUT_S["planner"],
    lm_call: LMCall | None = None,
) -> Callable[..., dict[str, Any]]:
    """A LangGraph node that makes a `Plan` from telemetry, the demand forecast and the twin.

    Args:
        model: The chat model, or None for tools and fallback only.
        scenario: The city; if None, read from `config["configurable"]["scenario"]`.
        prompt: System prompt replacing the default.
        name: The node's name and the agent name in decision records.
        horizon_s: How far ahead the twin simulates each candidate plan.
        search_budget_s: Wall-time budget of the plan search.
        timeout_s: Limit of one LM call; past it the fallback decides.
        lm_call: Replaces `edgeagents.llm.structured_call` (tests).

    With experience memory on, `state["recalled_plan"]` (from the recall node) adds the
    remembered placement to the menu and, after a sharp shift, raises the forecast to the
    demand that followed the remembered shift (`remembered_forecast`). The raised forecast is
    handed on, so the next epochs' smoothing starts from it: planning on the observed rates
    alone lags a real surge (on the `--llm none` surge reference, warm's post-shift mean rose
    from 11.3 to 13.5 s when the raise was not carried). A false alarm decays by half each
    epoch, and only confirmed shifts are remembered (`memory.experience.shift_persists`).
    """
    system = prompt or PLANNER_PROMPT

    def planner(state: ControlState, config: RunnableConfig = NO_CONFIG) -> dict[str, Any]:
        started = time.perf_counter()
        sc = scenario or scenario_from_config(config)
        telemetry = state["telemetry"]
        forecast = forecast_demand(telemetry, state.get("forecast"))
        remembered = state.get("recalled_plan") or {}
        forecast = remembered_forecast(forecast, remembered)
        whatif = WhatIf(sc, forecast, telemetry, horizon_s=horizon_s, seed=state.get("cycle", 0))
        menu = search_plans(
            whatif, telemetry, sc, budget_s=search_budget_s,
            remembered=remembered.get("placement"),
        )  # fmt: skip
        facts = model_facts(telemetry, whatif.references)
        epoch = int(telemetry.time_s // sc.control.planning_epoch_s)

        def fallback() -> tuple[PlanCandidate, dict[str, float]]:
            return menu[0], {}

        def repair(answer: PlannerAnswer) -> Repaired[tuple[PlanCandidate, dict[str, float]]]:
            return repair_planner_answer(answer, menu, telemetry, sc, whatif)

        (chosen, priorities), record = run_step(
            agent=name, model=model, system=system,
            user=render_planner_prompt(
                facts, menu, forecast.rates_per_s, state.get("recalled") or []
            ),
            schema=PlannerAnswer, menu_size=len(menu), repair=repair, fallback=fallback,
            timeout_s=timeout_s, lm_call=lm_call,
        )  # fmt: skip
        plan = build_plan(chosen, fairness_priorities(facts, priorities), telemetry, sc, epoch)
        pending: dict[str, list[DeploymentAction]] = {s.name: [] for s in sc.sites}
        for a in plan.actions:
            pending[a.site].append(a)
        record = record.model_copy(update={"wall_s": time.perf_counter() - started})
        return {"plan": plan, "forecast": forecast, "pending": pending, "records": {name: record}}

    planner.__name__ = name
    return planner


def remembered_forecast(forecast: Forecast, remembered: dict[str, Any]) -> Forecast:
    """After a recalled shift: a surged model's rate is at least what followed that shift;
    demand that moved takes the cell shares that followed it. A lost site changes no demand."""
    shift = str(remembered.get("shift") or "")
    demand = remembered.get("demand") or {}
    if shift.startswith("surge "):
        m = shift.removeprefix("surge ")
        if m in demand and m in forecast.rates_per_s:
            rates = {**forecast.rates_per_s, m: max(forecast.rates_per_s[m], demand[m])}
            return forecast.model_copy(update={"rates_per_s": rates})
    if shift.startswith("demand moved") and remembered.get("cell_weights"):
        return forecast.model_copy(update={"cell_weights": remembered["cell_weights"]})
    return forecast


def render_planner_prompt(
    facts: list[ModelFact],
    menu: list[PlanCandidate],
    forecast: dict[str, float],
    recalled: list[str] | None = None,
) -> str:
    lines = ["Model: demand/s, replicas, slowdown"]
    for f in facts:
        slow = "-" if f.slowdown is None else f"{f.slowdown:.2f}"
        lines.append(f"{f.model} {forecast.get(f.model, 0.0):.2f} {f.replicas} {slow}")
    lines.append("Plans: predicted mean s, Jain, moves")
    lines += [
        f"{option_number(k)} {c.prediction.mean_latency_s:.2f} {c.prediction.jain:.3f} {c.name}"
        for k, c in enumerate(menu)
    ]
    if recalled:
        lines.append("Past situations like this one (what was done -> how it went):")
        lines += recalled
    return "\n".join(lines)


def repair_planner_answer(
    answer: PlannerAnswer,
    menu: list[PlanCandidate],
    telemetry: Telemetry,
    scenario: Scenario,
    whatif: WhatIf,
) -> Repaired[tuple[PlanCandidate, dict[str, float]]]:
    """Guard the choice (`guard_choice`), drop unknown or oversized loads, clip priorities,
    and drop extra loads the twin predicts to make things worse."""
    chosen, notes = guard_choice(answer.choice, menu)
    layout = Layout(telemetry, scenario)
    for a in chosen.actions:
        layout.apply(a)
    extras: list[DeploymentAction] = []
    sites, models = set(scenario.site_names), set(scenario.model_names)
    for load in answer.extra_loads:
        if load.site not in sites or load.model not in models:
            notes.append(f"unknown {load.model}@{load.site}")
            continue
        spec = scenario.model(load.model)
        room = [key for key in layout.gpus if key[0] == load.site and layout.fits(spec, key)]
        if not room:
            notes.append(f"{load.model} does not fit at {load.site}")
            continue
        action = DeploymentAction(site=load.site, model=load.model, op="load", gpu_index=room[0][1])
        layout.apply(action)
        extras.append(action)
    if extras:
        current = [r.deployment for r in telemetry.replicas]
        pred = whatif.evaluate(current, [*chosen.actions, *extras])
        if pred.score() > chosen.prediction.score() * (1 + HARM_TOLERANCE):
            notes.append(f"extra loads predicted worse ({pred.mean_latency_s:.2f} s)")
        else:
            chosen = PlanCandidate(
                name=f"{chosen.name} + LM loads", actions=[*chosen.actions, *extras],
                prediction=pred,
            )  # fmt: skip
    priorities: dict[str, float] = {}
    for item in answer.priorities:
        m, p = item.model, item.priority
        if m not in models or not math.isfinite(p):
            notes.append(f"priority of {m!r} dropped")
            continue
        clipped = min(max(p, PRIORITY_RANGE[0]), PRIORITY_RANGE[1])
        if clipped != p:
            notes.append(f"priority of {m} clipped")
        priorities[m] = clipped
    return Repaired.from_notes((chosen, priorities), notes)


def fairness_priorities(
    facts: list[ModelFact], changed: dict[str, float] | None = None
) -> dict[str, float]:
    """Priority of each model: its slowdown over the mean slowdown (slowed models first), with
    the LM's `changed` priorities over it (a model the LM did not name keeps its own)."""
    slow = {f.model: f.slowdown for f in facts if f.slowdown}
    mean = sum(slow.values()) / len(slow) if slow else 1.0
    own = {m: min(max(s / mean, PRIORITY_RANGE[0]), PRIORITY_RANGE[1]) for m, s in slow.items()}
    return {**own, **(changed or {})}


def build_plan(
    chosen: PlanCandidate,
    priorities: dict[str, float],
    telemetry: Telemetry,
    scenario: Scenario,
    epoch: int,
) -> Plan:
    layout = Layout(telemetry, scenario)
    for a in chosen.actions:
        layout.apply(a)
    placement: dict[str, list[str]] = {s: [] for s in scenario.site_names}
    for d in layout.replicas:
        placement[d.site].append(d.model)
    return Plan(
        placement={s: sorted(ms) for s, ms in placement.items()},
        priorities=priorities,
        actions=chosen.actions,
        epoch=epoch,
        predicted_mean_latency_s=chosen.prediction.mean_latency_s,
        predicted_jain=chosen.prediction.jain,
        notes=chosen.name,
    )
