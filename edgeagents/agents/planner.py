"""The planner: long-term placement and fairness priorities, once per planning epoch."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

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
from edgeagents.agents.notice_names import NameIndex
from edgeagents.agents.notices import extract_intent
from edgeagents.agents.tools import (
    Layout,
    ModelFact,
    PlanCandidate,
    describe_moves,
    model_facts,
    search_plans,
)
from edgeagents.agents.twin import WhatIf, forecast_demand, operator_priorities
from edgeagents.core.notice import PRIORITY_RANGE, Intent, Notice, intents_ahead
from edgeagents.core.scenario import Scenario
from edgeagents.core.state import (
    AgentRecord,
    ControlState,
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
LM_PLAN_SOURCE = "LM plan"
"""The name prefix of a plan the LM wrote itself (`PlannerAnswer.plans`)."""
INTENT_PATHS: dict[str, DecisionPath] = {
    "lm": "lm", "repaired": "repaired", "strict": "tools", "none": "fallback",
}  # fmt: skip
"""How a notice's reading shows in the decision log: strict form read by the tools, free
text the LM could not (or, with --llm none, did not) read as the fallback."""


NAME_CHARS = 40
"""Free-string names in the planner's answer are bounded, so a small LM that loops inside a
string stops there instead of running its answer past the token limit."""


class SiteModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    site: str = Field(max_length=NAME_CHARS)
    model: str = Field(max_length=NAME_CHARS)


class ModelPriority(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(max_length=NAME_CHARS)
    priority: float = Field(description="Fairness priority, 1 = neutral.")


PLANS_HELP = "Plans of your own (moves by site and model), scored beside the menu."
MOVES_PER_PLAN = 3


class PlanMove(BaseModel):
    model_config = ConfigDict(extra="ignore")

    op: Literal["load", "unload"]
    model: str
    site: str


class OwnPlan(BaseModel):
    model_config = ConfigDict(extra="ignore")

    moves: list[PlanMove] = Field(default_factory=list, max_length=MOVES_PER_PLAN)


class PlannerAnswer(Choice):
    extra_loads: list[SiteModel] = Field(
        default_factory=list, max_length=2, description="Replicas to load besides the plan."
    )
    priorities: list[ModelPriority] = Field(
        default_factory=list,
        max_length=4,
        description="Fairness priorities to change; the others keep the tools' priorities.",
    )
    plans: list[OwnPlan] = Field(default_factory=list, max_length=3, description=PLANS_HELP)


@lru_cache(maxsize=32)
def _planner_schema(models: tuple[str, ...], sites: tuple[str, ...]) -> type[PlannerAnswer]:
    from pydantic import create_model

    move = create_model(
        "PlanMove",
        __base__=PlanMove,
        model=(Literal[models], ...),  # type: ignore[valid-type]
        site=(Literal[sites], ...),  # type: ignore[valid-type]
    )
    own = create_model(
        "OwnPlan",
        __base__=OwnPlan,
        moves=(list[move], Field(default_factory=list, max_length=MOVES_PER_PLAN)),
    )
    return create_model(
        "PlannerAnswer",
        __base__=PlannerAnswer,
        plans=(list[own], Field(default_factory=list, max_length=3, description=PLANS_HELP)),
    )


def planner_schema(scenario: Scenario) -> type[PlannerAnswer]:
    """The planner's answer schema for a city: its own plans name only the city's models and
    sites, so the grammar keeps a small LM's moves short and well-formed (free strings ran
    SmolLM2's answers past their token limit)."""
    return _planner_schema(tuple(scenario.model_names), tuple(scenario.site_names))


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
    own, own_notes = lm_plans(answer, telemetry, scenario, whatif)
    notes += own_notes
    if own:
        best_own = min(own, key=lambda c: c.prediction.score())
        if best_own.prediction.score() < chosen.prediction.score():
            chosen = best_own
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


def lm_plans(
    answer: PlannerAnswer, telemetry: Telemetry, scenario: Scenario, whatif: WhatIf
) -> tuple[list[PlanCandidate], list[str]]:
    """The LM's own plans as twin-scored candidates: each move's names mapped to the
    scenario's, loads placed on the site's GPU with the most free memory that fits, unloads
    on a replica that exists; an infeasible move is dropped with a note."""
    names = NameIndex(scenario)
    current = [r.deployment for r in telemetry.replicas]
    out: list[PlanCandidate] = []
    notes: list[str] = []
    for k, own in enumerate(answer.plans):
        layout = Layout(telemetry, scenario)
        actions: list[DeploymentAction] = []
        for mv in own.moves:
            models, (sites, _) = names.model(mv.model), names.place(mv.site)
            if len(models) != 1 or len(sites) != 1:
                notes.append(f"plan {k + 1}: unknown {mv.model}@{mv.site}")
                continue
            m, site = next(iter(models)), next(iter(sites))
            if mv.op == "load":
                spec = scenario.model(m)
                room = [g for g in layout.gpus if g[0] == site and layout.fits(spec, g)]
                if not room:
                    notes.append(f"plan {k + 1}: {m} does not fit at {site}")
                    continue
                gpu = max(room, key=lambda g: layout.free[g])[1]
            else:
                on = [d.gpu_index for d in layout.replicas if (d.site, d.model) == (site, m)]
                if not on:
                    notes.append(f"plan {k + 1}: no {m} at {site} to unload")
                    continue
                gpu = on[0]
            action = DeploymentAction(site=site, model=m, op=mv.op, gpu_index=gpu)
            if layout.apply(action):
                actions.append(action)
        if actions:
            out.append(
                PlanCandidate(
                    name=f"{LM_PLAN_SOURCE} {k + 1}: {describe_moves(actions)}",
                    actions=actions,
                    prediction=whatif.evaluate(current, actions),
                )
            )
    return out, notes


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
