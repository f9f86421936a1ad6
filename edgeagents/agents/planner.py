"""The planner: long-term placement and fairness priorities, once per planning epoch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgeagents.agents.agent import (
    AgentNode,
    LMCall,
    Repaired,
    Step,
    option_number,
)
from edgeagents.agents.lmconfig import DEFAULT_TIMEOUT_S
from edgeagents.agents.notices import extract_intent
from edgeagents.agents.plan_answer import (
    LM_PLAN_SOURCE,
    PlannerAnswer,
    planner_schema,
    repair_planner_answer,
)
from edgeagents.agents.plan_search import search_plans
from edgeagents.agents.tools import Layout, ModelFact, PlanCandidate, model_facts
from edgeagents.agents.twin import WhatIf, forecast_demand, operator_priorities
from edgeagents.core.control_state import ControlState
from edgeagents.core.notice import PRIORITY_RANGE, Intent, Notice, intents_ahead
from edgeagents.core.scenario import Scenario
from edgeagents.core.state import (
    AgentRecord,
    DecisionPath,
    DeploymentAction,
    Forecast,
    Plan,
    Telemetry,
)

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

PLANNER_PROMPT = (
    "Planner of a city of edge GPU sites. Choose the placement plan with the lowest predicted "
    "mean latency; a Jain index near 1 is fairer. Reply in JSON."
)
INTENT_PATHS: dict[str, DecisionPath] = {
    "lm": "lm", "repaired": "repaired", "strict": "tools", "none": "fallback",
}  # fmt: skip
"""How a notice's reading shows in the decision log: strict form read by the tools, free
text the LM could not (or, with --llm none, did not) read as the fallback."""


class Planner(AgentNode):
    """Makes a `Plan` from telemetry, the demand forecast and the twin (see `create_planner`)."""

    default_prompt = PLANNER_PROMPT

    def __init__(
        self,
        model: BaseChatModel | None,
        *,
        horizon_s: float,
        search_budget_s: float,
        **node: Any,
    ) -> None:
        super().__init__(model, **node)
        self.horizon_s = horizon_s
        self.search_budget_s = search_budget_s

    def prepare(self, state: ControlState, scenario: Scenario) -> Step[Any]:
        sc = scenario
        telemetry = state["telemetry"]
        forecast = forecast_demand(telemetry, state.get("forecast"))
        remembered = state.get("recalled_plan") or {}
        forecast = remembered_forecast(forecast, remembered)
        intents, baselines, notice_records = read_notices(
            self.model, state, sc, forecast, timeout_s=self.timeout_s, lm_call=self.lm_call
        )
        now = telemetry.time_s
        ahead = intents_ahead(list(intents.values()), now, self.horizon_s)
        whatif = WhatIf(
            sc, forecast, telemetry, horizon_s=self.horizon_s, seed=state.get("cycle", 0),
            intents=ahead, baselines=baselines,
        )  # fmt: skip
        menu = search_plans(
            whatif, telemetry, sc, budget_s=self.search_budget_s,
            remembered=remembered.get("placement"),
        )  # fmt: skip
        facts = model_facts(telemetry, whatif.references)
        epoch = int(telemetry.time_s // sc.control.planning_epoch_s)

        def repair(answer: PlannerAnswer) -> Repaired[tuple[PlanCandidate, dict[str, float]]]:
            return repair_planner_answer(answer, menu, telemetry, sc, whatif)

        def finish(decided: tuple[PlanCandidate, dict[str, float]]) -> dict[str, Any]:
            chosen, priorities = decided
            in_force = operator_priorities([i for i in ahead if i.active(now)])
            priorities = with_operator_priorities(fairness_priorities(facts, priorities), in_force)
            plan = build_plan(chosen, priorities, telemetry, sc, epoch)
            pending: dict[str, list[DeploymentAction]] = {s.name: [] for s in sc.sites}
            for a in plan.actions:
                pending[a.site].append(a)
            errors = state.get("notice_errors") or []
            return {
                "plan": plan, "forecast": forecast, "pending": pending,
                "intents": intents, "intent_baselines": baselines,
                "notice_errors_seen": [*(state.get("notice_errors_seen") or []), *errors],
            }  # fmt: skip

        return Step(
            agent=self.name,
            user=render_planner_prompt(
                facts, menu, forecast.rates_per_s, state.get("recalled") or [], ahead
            ),
            schema=planner_schema(sc), menu_size=len(menu), repair=repair,
            fallback=lambda: (menu[0], {}), finish=finish, records=notice_records,
        )  # fmt: skip


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
) -> Planner:
    """A LangGraph node that makes a `Plan` from telemetry, the demand forecast and the twin.

    Args:
        model: The chat model, or None for tools and fallback only.
        scenario: The city; if None, read from `config["configurable"]["scenario"]`.
        prompt: System prompt replacing the default.
        name: The node's name and the agent name in decision records.
        horizon_s: How far ahead the twin simulates each candidate plan.
        search_budget_s: Wall-time budget of the plan search.
        timeout_s: Limit of one LM call; past it the fallback decides.
        lm_call: Replaces `edgeagents.agents.llm.structured_call` (tests).

    With experience memory on, `state["recalled_plan"]` (from the recall node) adds the
    remembered placement to the menu and, after a sharp shift, raises the forecast to the
    demand that followed the remembered shift (`remembered_forecast`). The raised forecast is
    handed on, so the next epochs' smoothing starts from it: planning on the observed rates
    alone lags a real surge. A false alarm decays by half each epoch, and only confirmed
    shifts are remembered (`memory.experience.shift_persists`).
    """
    return Planner(
        model, scenario=scenario, prompt=prompt, name=name, horizon_s=horizon_s,
        search_budget_s=search_budget_s, timeout_s=timeout_s, lm_call=lm_call,
    )  # fmt: skip


def read_notices(
    model: BaseChatModel | None,
    state: ControlState,
    scenario: Scenario,
    forecast: Forecast,
    *,
    timeout_s: float,
    lm_call: LMCall | None,
) -> tuple[dict[str, Intent], dict[str, dict[str, float]], dict[str, AgentRecord]]:
    """The planner's LM reads each new notice into an intent (`extract_intent`); each
    reading, and each notice refused at the door, is a record in the decision log. A surge's
    baseline is the forecast rate when it was read."""
    intents: dict[str, Intent] = dict(state.get("intents") or {})
    baselines = dict(state.get("intent_baselines") or {})
    records: dict[str, AgentRecord] = {}
    for notice in state.get("unread_notices") or []:
        if not isinstance(notice, Notice):
            continue
        intent, cost = extract_intent(model, notice, scenario, timeout_s=timeout_s, lm_call=lm_call)
        intents[notice.id] = intent
        baselines[notice.id] = {m: forecast.rates_per_s.get(m, 0.0) for m in intent.models}
        said = [*intent.notes, *([f"not usable: {intent.refusal}"] if intent.refusal else [])]
        if cost.get("kind_by") == "encoder":
            said.append("kind read by the encoder")
        why = intent.strict() + (f" [{'; '.join(said)}]" if said else "")
        records[f"notices:{notice.id}"] = AgentRecord(
            agent=f"notices:{notice.id}", path=INTENT_PATHS[intent.path], rationale=why,
            wall_s=cost["wall_s"], lm_calls=cost["lm_calls"], tokens=cost["tokens"],
        )  # fmt: skip
    for k, error in enumerate(state.get("notice_errors") or []):
        records[f"notices:refused:{k}"] = AgentRecord(
            agent="notices:refused", path="fallback", rationale=error
        )
    return intents, baselines, records


def with_operator_priorities(
    priorities: dict[str, float], operator: dict[str, float]
) -> dict[str, float]:
    """The tools' (and the LM's) fairness priorities times the operators' priority factors
    in force, within `PRIORITY_RANGE`."""
    out = dict(priorities)
    lo, hi = PRIORITY_RANGE
    for m, f in operator.items():
        out[m] = min(max(out.get(m, 1.0) * f, lo), hi)
    return out


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
    intents: list[Intent] | None = None,
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
    if intents:
        lines.append("Operator notices ahead (in the twin's predictions):")
        lines += [i.strict() for i in intents]
    return "\n".join(lines)


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
        source="lm"
        if chosen.name.startswith(LM_PLAN_SOURCE)
        else ("memory" if chosen.name.startswith("remembered") else "tools"),
    )
