"""What the planner's LM may answer (its schema, the city's names only in its own plans) and
how an answer is made safe: the choice guarded, extra loads and own plans checked against the
GPUs' memory and scored by the twin, priorities bounded."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edgeagents.agents.agent import HARM_TOLERANCE, Choice, Repaired, guard_choice
from edgeagents.agents.notice_names import NameIndex
from edgeagents.agents.tools import Layout, PlanCandidate, describe_moves
from edgeagents.agents.twin import WhatIf
from edgeagents.core.notice import PRIORITY_RANGE
from edgeagents.core.scenario import Scenario
from edgeagents.core.state import DeploymentAction, Telemetry

LM_PLAN_SOURCE = "LM plan"
"""The name prefix of a plan the LM wrote itself (`PlannerAnswer.plans`)."""


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
