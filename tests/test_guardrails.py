"""Guardrails: over a thousand generated bad LM answers, every one is repaired or falls back,
and the decision that reaches the city is feasible (nothing refused, weights sane)."""

from __future__ import annotations

import math
from typing import TypeVar

import pytest

pytest.importorskip("langgraph", reason="needs the `agents` extra")

from conftest import tiny_scenario
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scripted import ScriptedChatModel

from edgeagents.agents.agent import CHOICE_TOLERANCE, HARM_TOLERANCE, RATIONALE_CHARS, run_step
from edgeagents.agents.deployer import DeployerAnswer, ModelBatch, repair_deployer_answer
from edgeagents.agents.plan_answer import (
    ModelPriority,
    PlannerAnswer,
    SiteModel,
    repair_planner_answer,
)
from edgeagents.agents.plan_search import search_plans
from edgeagents.agents.planner import fairness_priorities, render_planner_prompt
from edgeagents.agents.scheduler import (
    RouteOverride,
    SchedulerAnswer,
    render_scheduler_prompt,
    repair_scheduler_answer,
)
from edgeagents.agents.tools import (
    ModelFact,
    PlanCandidate,
    RoutingCandidate,
    deployer_menu,
    rank_routing,
)
from edgeagents.agents.twin import WhatIf, forecast_demand
from edgeagents.core.state import Decision
from edgeagents.policies import ROUTERS
from edgeagents.sim.city import SimulatedCity
from edgeagents.sim.workload import generate_workload

SC = tiny_scenario(
    placement={"a": ["llm"], "c": ["llm"]},
    control={"tick_s": 5, "planning_epoch_s": 20},
    duration_s=60,
    workload={"demands": [{"model": "llm", "arrivals": {"rate_per_s": 16.0}}]},
)
WORKLOAD = generate_workload(SC, seed=2)


def fresh_city() -> SimulatedCity:
    city = SimulatedCity(SC, WORKLOAD, ROUTERS.create("weighted"))
    city.advance(20.0)
    return city


CITY = fresh_city()
TELEMETRY = CITY.observe()
WHATIF = WhatIf(SC, forecast_demand(TELEMETRY), TELEMETRY, horizon_s=30)
PLANS = search_plans(WHATIF, TELEMETRY, SC, budget_s=2)
ROUTES = rank_routing(WHATIF, TELEMETRY, SC, tolerance=0.0)
assert len(ROUTES) > 1, "the guardrail menus need a real choice"
MENUS = {s: deployer_menu(s, TELEMETRY, SC, None, []) for s in SC.site_names}

names = st.sampled_from([*SC.site_names, *SC.model_names, "", "site-3", "gpt-9", "llm "])
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**9), max_value=10**9).map(float),
)
choices = st.integers(min_value=-(10**6), max_value=10**6)
rationales = st.text(max_size=RATIONALE_CHARS)
EXAMPLES = 400


def assert_feasible(decision: Decision) -> None:
    city = fresh_city()
    report = city.apply(decision)
    assert report.refused == [], [r.reason for r in report.refused]
    if decision.routing is not None:
        for model, weights in decision.routing.routes.items():
            assert model in SC.model_names
            assert all(math.isfinite(w.weight) and w.weight >= 0 for w in weights)
            assert any(w.weight > 0 for w in weights)
            assert {w.site for w in weights} <= set(SC.site_names)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    choice=choices,
    loads=st.lists(st.builds(SiteModel, site=names, model=names), max_size=2),
    priorities=st.lists(st.builds(ModelPriority, model=names, priority=numbers), max_size=4),
    rationale=rationales,
)
def test_bad_planner_answers_become_feasible_plans(choice, loads, priorities, rationale):
    answer = PlannerAnswer(
        choice=choice, extra_loads=loads, priorities=priorities, rationale=rationale
    )
    fixed = repair_planner_answer(answer, PLANS, TELEMETRY, SC, WHATIF)
    plan, prio = fixed.value
    assert plan in PLANS or plan.name.endswith("+ LM loads")
    best = min(c.prediction.score() for c in PLANS)
    assert plan.prediction.score() <= best * (1 + CHOICE_TOLERANCE) * (1 + HARM_TOLERANCE) + 1e-9
    assert all(0.25 <= p <= 4.0 and math.isfinite(p) for p in prio.values())
    assert set(prio) <= set(SC.model_names)
    assert_feasible(Decision(time_s=TELEMETRY.time_s, actions=plan.actions))
    if not 1 <= choice <= len(PLANS):
        assert fixed.changed


Option = TypeVar("Option", PlanCandidate, RoutingCandidate)


def predicted_at(option: Option, mean_s: float, name: str | None = None) -> Option:
    """A menu option the twin is made to predict at `mean_s`, perfectly fair."""
    pred = option.prediction.model_copy(update={"mean_latency_s": mean_s, "jain": 1.0})
    return option.model_copy(update={"prediction": pred, "name": name or option.name})


def test_a_plan_predicted_clearly_worse_than_the_best_is_not_taken():
    """The LM's pick stands among near-equal plans; past the tolerance the best plan is taken
    and the decision says so."""

    def plan(name: str, mean_s: float) -> PlanCandidate:
        return predicted_at(PLANS[0], mean_s, name)

    close = [plan("best", 10.0), plan("hold", 10.0 * (1 + CHOICE_TOLERANCE) - 0.1)]
    kept = repair_planner_answer(PlannerAnswer(choice=2), close, TELEMETRY, SC, WHATIF)
    assert kept.value[0].name == "hold" and not kept.changed
    far = [plan("best", 10.0), plan("hold", 40.0)]
    fixed = repair_planner_answer(PlannerAnswer(choice=2), far, TELEMETRY, SC, WHATIF)
    assert fixed.value[0].name == "best" and fixed.changed
    assert "took the best" in fixed.note


def test_a_routing_predicted_clearly_worse_than_the_best_is_not_taken():
    """The scheduler's menu has the same guard as the planner's."""

    def route(k: int, mean_s: float) -> RoutingCandidate:
        return predicted_at(ROUTES[k], mean_s)

    assert ROUTES[0].routing != ROUTES[1].routing
    close = [route(0, 10.0), route(1, 10.0 * (1 + CHOICE_TOLERANCE) - 0.1)]
    kept = repair_scheduler_answer(SchedulerAnswer(choice=2), close, TELEMETRY, WHATIF)
    assert kept.value == ROUTES[1].routing and not kept.changed
    far = [route(0, 10.0), route(1, 40.0)]
    fixed = repair_scheduler_answer(SchedulerAnswer(choice=2), far, TELEMETRY, WHATIF)
    assert fixed.value == ROUTES[0].routing and fixed.changed
    assert "took the best" in fixed.note


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    choice=choices,
    weights=st.lists(st.builds(RouteOverride, model=names, site=names, weight=numbers), max_size=4),
    rationale=rationales,
)
def test_bad_scheduler_answers_become_sane_routing(choice, weights, rationale):
    answer = SchedulerAnswer(choice=choice, weights=weights, rationale=rationale)
    fixed = repair_scheduler_answer(answer, ROUTES, TELEMETRY, WHATIF)
    assert_feasible(Decision(time_s=TELEMETRY.time_s, routing=fixed.value))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    site=st.sampled_from(SC.site_names),
    choice=choices,
    batches=st.lists(
        st.builds(ModelBatch, model=names, batch=st.integers(-(10**6), 10**6)), max_size=2
    ),
    rationale=rationales,
)
def test_bad_deployer_answers_become_feasible_actions(site, choice, batches, rationale):
    answer = DeployerAnswer(choice=choice, max_batch=batches, rationale=rationale)
    fixed = repair_deployer_answer(answer, MENUS[site], site, TELEMETRY, SC)
    assert all(a.site == site for a in fixed.value.actions)
    for a in fixed.value.actions:
        if a.max_batch is not None:
            assert a.max_batch >= SC.model(a.model).max_batch // 2
    assert_feasible(Decision(time_s=TELEMETRY.time_s, actions=fixed.value.actions))


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.one_of(st.text(max_size=300), st.binary(max_size=100).map(repr),
                     st.just(""), st.just("{}"), st.just('{"choice": "zero"}')))  # fmt: skip
def test_malformed_text_falls_back_and_never_raises(raw):
    model = ScriptedChatModel(replies=[raw])
    value, record = run_step(
        agent="scheduler", model=model, system="s", user="u", schema=SchedulerAnswer,
        menu_size=len(ROUTES),
        repair=lambda a: repair_scheduler_answer(a, ROUTES, TELEMETRY, WHATIF),
        fallback=lambda: ROUTES[0].routing, timeout_s=5,
    )  # fmt: skip
    assert record.path in ("fallback", "lm", "repaired")
    assert_feasible(Decision(time_s=TELEMETRY.time_s, routing=value))


def test_the_record_keeps_the_lms_own_pick_when_the_guard_replaces_it():
    """The decision log must show what the LM chose, not only what was used."""
    far = [predicted_at(ROUTES[0], 10.0), predicted_at(ROUTES[1], 40.0)]
    _, record = run_step(
        agent="scheduler", model=ScriptedChatModel(replies=['{"choice": 2}']), system="s",
        user="u", schema=SchedulerAnswer, menu_size=2,
        repair=lambda a: repair_scheduler_answer(a, far, TELEMETRY, WHATIF),
        fallback=lambda: far[0].routing, timeout_s=5,
    )  # fmt: skip
    assert record.path == "repaired" and record.lm_choice == 2
    _, none = run_step(
        agent="scheduler", model=None, system="s", user="u", schema=SchedulerAnswer,
        menu_size=2, repair=lambda a: repair_scheduler_answer(a, far, TELEMETRY, WHATIF),
        fallback=lambda: far[0].routing, timeout_s=5,
    )  # fmt: skip
    assert none.lm_choice is None


def test_a_hanging_lm_times_out_to_the_fallback():
    model = ScriptedChatModel(replies=['{"choice": 1}'], sleep_s=3)
    value, record = run_step(
        agent="scheduler", model=model, system="s", user="u", schema=SchedulerAnswer,
        menu_size=len(ROUTES), repair=lambda a: repair_scheduler_answer(a, ROUTES, TELEMETRY,
        WHATIF), fallback=lambda: ROUTES[0].routing, timeout_s=0.3,
    )  # fmt: skip
    assert record.path == "fallback" and "timeout" in record.rationale
    assert record.wall_s < 2.5, "cut at its 0.3-s limit, not after the LM's 3 s"
    assert value == ROUTES[0].routing


def test_an_lm_that_raises_falls_back():
    class Broken(ScriptedChatModel):
        def _generate(self, *a, **k):
            raise ConnectionError("endpoint unreachable")

    value, record = run_step(
        agent="planner", model=Broken(), system="s", user="u", schema=PlannerAnswer,
        menu_size=2, repair=lambda a: None, fallback=lambda: "first", timeout_s=2,
    )  # fmt: skip
    assert value == "first" and record.path == "fallback"
    assert "unreachable" in record.rationale


def test_the_lms_priorities_change_only_the_models_it_names():
    """The planner's schema asks for priorities "to change": a model the LM leaves out keeps
    the tools' priority instead of falling back to neutral."""

    def fact(model: str, slowdown: float) -> ModelFact:
        return ModelFact(
            model=model, demand_per_s=1.0, replicas=1, queue_len=0, mean_latency_s=slowdown,
            reference_s=1.0, slowdown=slowdown,
        )  # fmt: skip

    facts = [fact("llm", 3.0), fact("vlm", 1.0), fact("asr", 2.0)]
    own = fairness_priorities(facts)
    assert own == pytest.approx({"llm": 1.5, "vlm": 0.5, "asr": 1.0})
    assert fairness_priorities(facts, {"vlm": 4.0}) == pytest.approx(
        {"llm": 1.5, "vlm": 4.0, "asr": 1.0}
    )
    assert fairness_priorities([], {"vlm": 2.0}) == {"vlm": 2.0}


def test_menus_are_numbered_from_one_and_answer_one_is_the_best():
    """A small LM answers the first number it sees: that must be the tools' best option."""
    planner = render_planner_prompt([], PLANS, {}).splitlines()
    shown = planner[planner.index("Plans: predicted mean s, Jain, moves") + 1 :]
    assert [line.split()[0] for line in shown] == [str(k + 1) for k in range(len(PLANS))]
    routes = render_scheduler_prompt([], ROUTES).splitlines()
    assert routes[routes.index("Options: predicted mean s, Jain") + 1].startswith("1 ")
    best = min(PLANS, key=lambda c: c.prediction.score())
    first = repair_planner_answer(PlannerAnswer(choice=1), PLANS, TELEMETRY, SC, WHATIF)
    assert first.value[0] == best and not first.changed
    zero = repair_planner_answer(PlannerAnswer(choice=0), PLANS, TELEMETRY, SC, WHATIF)
    assert zero.value[0] == PLANS[0] and "out of range" in zero.note


def test_a_repeated_bad_priority_is_noted_once_with_its_count():
    """SmolLM2 often names one made-up model in every item; the record says so once, counted."""
    bad = [ModelPriority(model="slowdown", priority=2.0)] * 3
    fixed = repair_planner_answer(
        PlannerAnswer(choice=1, priorities=[*bad, ModelPriority(model="x y", priority=1.0)]),
        PLANS, TELEMETRY, SC, WHATIF,
    )  # fmt: skip
    assert fixed.changed and fixed.value[1] == {}
    assert fixed.note == "priority of 'slowdown' dropped (x3); priority of 'x y' dropped"
