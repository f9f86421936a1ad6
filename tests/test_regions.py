"""Planning regions: the scenario field, per-region planning and routing, the coordinator's
cross-region moves, and the graph end to end on a city of two regions."""

from __future__ import annotations

import itertools
import json

import pytest

pytest.importorskip("langgraph", reason="needs the `agents` extra")

import yaml
from conftest import TINY
from scripted import ScriptedChatModel
from typer.testing import CliRunner

from edgeagents.agents import region_scheduler
from edgeagents.agents.coordinator import cross_region_loads
from edgeagents.agents.region_planner import RegionJob, allot_search
from edgeagents.agents.regions import home_regions, region_views
from edgeagents.agents.twin import Prediction, forecast_demand
from edgeagents.cli import app
from edgeagents.core.region import RegionSpec, generate_region
from edgeagents.core.scenario import Scenario, ScenarioError
from edgeagents.policies import ROUTERS
from edgeagents.sim.city import SimulatedCity
from edgeagents.sim.workload import generate_workload
from graphs.control import create_control_graph
from graphs.controller import CARRIED

CELL = {"uplink_mbps": 40, "downlink_mbps": 200, "radio_rtt_ms": 10}


def city(
    sites: dict[str, str],
    regions: dict[str, list[str]],
    placement: dict[str, list[str]],
    users: dict[str, int],
    rate: float,
) -> Scenario:
    """Sites in a line (site -> GPU type), a cell per site with users, llm demand `rate`."""
    data = yaml.safe_load(TINY)
    names = list(sites)
    data |= {
        "gpu_types": [{"name": "tiny-8", "memory_gb": 8, "bf16_tflops": 10,
                       "memory_bandwidth_gbps": 300}],
        "sites": [{"name": s, "gpus": [{"type": g}]} for s, g in sites.items()],
        "cells": [{"name": f"{s}-c", "site": s, "users": users.get(s, 0), **CELL} for s in names],
        "links": [{"a": a, "b": b, "latency_ms": 1.0, "bandwidth_gbps": 10}
                  for a, b in itertools.pairwise(names)],
        "regions": [{"name": r, "sites": ss} for r, ss in regions.items()],
        "placement": placement,
        "workload": {"demands": [{"model": "llm", "arrivals": {"rate_per_s": rate}}]},
        "control": {"tick_s": 5, "planning_epoch_s": 20, "drain_limit_s": 30},
        "duration_s": 30,
    }  # fmt: skip
    return Scenario.model_validate(data)


def two_regions(rate: float = 40.0) -> Scenario:
    """West (a, b) carries all the demand on one replica at a; east (c, d) has free H200s."""
    return city(
        {"a": "H200", "b": "H200", "c": "H200", "d": "H200"},
        {"west": ["a", "b"], "east": ["c", "d"]},
        {"a": ["llm"], "c": ["llm"]},
        {"a": 100},
        rate,
    )


def cycle(sc: Scenario, model=None, ticks: int = 1, **kw):
    """`ticks` control cycles of the graph on a fresh city; every cycle's final state."""
    workload = generate_workload(sc, duration_s=ticks * sc.control.tick_s, seed=1)
    env = SimulatedCity(sc, workload, ROUTERS.create("weighted"), seed=1)
    graph = create_control_graph(model, **kw).compile()
    carry: dict = {}
    states = []
    for k in range(ticks):
        env.advance((k + 1) * sc.control.tick_s)
        config = {"configurable": {"env": env, "scenario": sc, "charge_decision_time": False},
                  "recursion_limit": 50}  # fmt: skip
        states.append(graph.invoke(carry, config=config))
        carry = {f: states[-1][f] for f in CARRIED if f in states[-1]}
    return env, states


def test_a_region_plans_only_its_own_sites():
    sc = two_regions()
    _, (state,) = cycle(sc)
    home = home_regions(sc)
    plans = state["region_plans"]
    assert set(plans) <= {"west", "east"} and "west" in plans
    for name, plan in plans.items():
        assert all(home[a.site] == name for a in plan.candidate.actions), name
    loads = [a for a in state["plan"].actions if a.op == "load"]
    assert loads, "west's load needs more replicas"
    assert {home[a.site] for a in loads} == {"west"}, "east has room, but west's load stays home"
    agents = {r.agent for r in state["decision"].records}
    assert {"planner", "planner:west", "coordinator", "scheduler:west"} <= agents


def test_the_coordinator_lends_a_neighbours_gpu_only_when_a_region_has_no_room():
    # west's only GPU cannot hold llm; llm lives only in east, two regions away.
    sc = city(
        {"a": "tiny-8", "b": "H200", "c": "H200"},
        {"west": ["a"], "mid": ["b"], "east": ["c"]},
        {"c": ["llm"]},
        {"a": 100, "c": 10},
        5.0,
    )
    env = SimulatedCity(sc, generate_workload(sc, duration_s=5, seed=1), ROUTERS.create("greedy"))
    env.advance(5.0)
    telemetry = env.observe()
    forecast = forecast_demand(telemetry)
    loads, notes = cross_region_loads(sc, telemetry, forecast, [])
    assert [(a.site, a.model, a.op) for a in loads] == [("b", "llm", "load")]
    assert any("west: no room for llm, none next door: load at b (mid)" in n for n in notes)
    # once mid holds llm, west borrows it by routing alone: no move
    sc2 = sc.model_copy(update={"placement": {"b": ["llm"], "c": ["llm"]}})
    env2 = SimulatedCity(sc2, generate_workload(sc2, duration_s=5, seed=1),
                         ROUTERS.create("greedy"))  # fmt: skip
    env2.advance(5.0)
    loads2, notes2 = cross_region_loads(sc2, env2.observe(), forecast, [])
    assert loads2 == [] and notes2 == ["west borrows llm from mid (no room in west)"]


def test_the_coordinators_loan_reaches_the_plan_in_the_graph():
    sc = city(
        {"a": "tiny-8", "b": "H200", "c": "H200"},
        {"west": ["a"], "mid": ["b"], "east": ["c"]},
        {"c": ["llm"]},
        {"a": 100, "c": 10},
        5.0,
    )
    _, (state,) = cycle(sc)
    assert any((a.site, a.op) == ("b", "load") for a in state["plan"].actions)
    assert "load at b (mid)" in state["plan"].notes


def test_an_lm_cannot_move_a_region_outside_it():
    sc = two_regions()

    def reply(messages):
        system = str(messages[0].content)
        if system.startswith("Planner"):
            return json.dumps({"choice": 1, "rationale": "x",
                               "extra_loads": [{"site": "c", "model": "llm"}]})  # fmt: skip
        return json.dumps({"choice": 1, "rationale": "x"})

    model = ScriptedChatModel(reply=reply)
    _, (state,) = cycle(sc, model, planner_kwargs={"search_budget_s": 1e6})
    home = home_regions(sc)
    west = next(r for r in state["decision"].records if r.agent == "planner:west")
    assert west.path == "repaired" and "unknown llm@c" in west.rationale
    assert all(home[a.site] == "west" for a in state["region_plans"]["west"].candidate.actions)
    prompts = [str(m[1].content) for m in model.seen if str(m[0].content).startswith("Planner")]
    assert prompts and all("Plans: predicted mean s" in p for p in prompts)
    routed = {r.agent for r in state["decision"].records if r.agent.startswith("scheduler:")}
    assert routed == {"scheduler:west", "scheduler:east"}, "each region's menu is its own step"


def test_graph_with_regions_runs_ticks_with_no_lm():
    env, states = cycle(two_regions(), ticks=3)
    assert [s["run_planner"] for s in states] == [True, False, False]
    for s in states:
        assert s["report"] is not None and s["routing"].routes["llm"]
    assert env.now >= 15.0
    deployers = [[r.agent for r in s["decision"].records if r.agent.startswith("deployer:")]
                 for s in states]  # fmt: skip
    assert deployers[0], "the new plan's moves and shares have deployers"
    assert deployers[1:] == [[], []], "ticks with nothing planned or lost run none"


def test_scheduler_budget_reaches_every_region_in_turn(monkeypatch):
    monkeypatch.setattr(region_scheduler, "TICK_PROMPT_BUDGET", 1)
    _, states = cycle(two_regions(), ticks=3)
    routed = [
        sorted(r.agent for r in s["decision"].records if r.agent.startswith("scheduler:"))
        for s in states
    ]
    assert all(len(r) == 1 for r in routed), "the budget lets one region through per tick"
    assert {r[0] for r in routed[:2]} == {"scheduler:west", "scheduler:east"}
    first = {w.site for w in states[0]["routing"].routes["llm"]}
    assert first == {"c"}, "east goes first (both new, by name); west has no routes yet"
    for s in states[1:]:  # from then on, the region not reached keeps its routes
        assert {"a", "c"} <= {w.site for w in s["routing"].routes["llm"]}


def test_search_budget_goes_to_the_regions_in_most_need():
    def job(name: str, mean: float, prompts: int) -> RegionJob:
        hold = Prediction(mean_latency_s=mean, jain=1.0, per_model_mean_s={}, refused=0,
                          prompts=prompts)  # fmt: skip
        return RegionJob(region=name, hold=hold, references={}, evaluation_prompts=prompts)

    jobs = [job("calm", 1.0, 100), job("busy", 9.0, 100), job("mid", 3.0, 100)]
    given = {j.region: j.prompt_budget for j in allot_search(jobs, budget=300 + 2 * 1600)}
    assert given == {"busy": 1600, "mid": 1600, "calm": 0}


def test_a_city_without_regions_is_one_region_of_itself():
    sc = Scenario.model_validate(yaml.safe_load(TINY))
    assert sc.region_sites == {"city": ["a", "b", "c"]}
    env = SimulatedCity(sc, generate_workload(sc, duration_s=2, seed=0), ROUTERS.create("greedy"))
    env.advance(1.0)
    t = env.observe()
    f = forecast_demand(t)
    (view,) = region_views(sc, t, f)
    assert view.scenario is sc and view.telemetry is t and view.forecast is f


def test_generated_cities_have_a_region_per_aggregation_group():
    small = generate_region(RegionSpec(sites=7, seed=0))
    assert len(small.regions) == 1
    sc = generate_region(RegionSpec(sites=100, seed=0))
    sizes = [len(r.sites) for r in sc.regions]
    assert len(sizes) == 5 and max(sizes) <= 24 and sum(sizes) == 100
    assert all(len({s.split("-")[0] for s in r.sites}) == 1 for r in sc.regions)


@pytest.mark.parametrize(
    ("regions", "error"),
    [
        ([{"name": "w", "sites": ["a", "zz"]}], "regions[0].sites: unknown site 'zz'"),
        ([{"name": "w", "sites": ["a", "b"]}, {"name": "e", "sites": ["b", "c"]}],
         "regions[1].sites: site 'b' is already in region 'w'"),
        ([{"name": "w", "sites": ["a", "b"]}], "regions: site 'c' is in no region"),
        ([{"name": "w", "sites": ["a", "c"]}, {"name": "e", "sites": ["b"]}],
         "regions[0]: its sites are not joined by links among them"),
        ([{"name": "w", "sites": ["a"]}, {"name": "w", "sites": ["b", "c"]}],
         "regions[1].name: duplicate name 'w'"),
    ],
)  # fmt: skip
def test_bad_regions_are_one_line(regions, error, tmp_path):
    data = yaml.safe_load(TINY) | {"regions": regions}
    with pytest.raises(ScenarioError) as e:
        Scenario.from_yaml(yaml.safe_dump(data), source="x.yaml")
    assert str(e.value) == f"x.yaml: {error}"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    res = CliRunner().invoke(app, ["scenario", "validate", str(path)])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
