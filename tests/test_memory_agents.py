"""The planner's prompt carries retrieved experience when memory is on, and not when off."""

from __future__ import annotations

import pytest

pytest.importorskip("chromadb", reason="needs the `memory` extra")
pytest.importorskip("langgraph", reason="needs the `agents` extra")

from conftest import tiny_scenario
from scripted import ScriptedChatModel

from edgeagents.experiments.driver import run_episode
from edgeagents.policies import ROUTERS
from edgeagents.sim.workload import generate_workload
from graphs.controller import AgentsController
from memory.store import ExperienceStore

SC = tiny_scenario(
    placement={"a": ["llm"], "c": ["llm"]},
    control={"tick_s": 5, "planning_epoch_s": 15, "drain_limit_s": 30},
    duration_s=60,
    workload={"demands": [{"model": "llm", "arrivals": {"rate_per_s": 30.0}}]},
)
MARK = "Past situations like this one"


def planner_prompts(model: ScriptedChatModel) -> list[str]:
    return [str(call[-1].content) for call in model.seen if "Planner" in str(call[0].content)]


def run(store=None) -> tuple[ScriptedChatModel, object]:
    model = ScriptedChatModel(replies=['{"choice": 1, "rationale": "scripted"}'])
    controller = AgentsController(model, memory=store)
    run = run_episode(
        SC, generate_workload(SC, seed=4), (ROUTERS.create("weighted"), controller), seed=4,
        charge_decision_time=False,
    )  # fmt: skip
    return model, run


def test_each_epoch_stores_how_the_previous_plan_went(tmp_path):
    store = ExperienceStore(tmp_path / "mem", embedding="features")
    run(store)
    stored = store.all()
    assert len(stored) >= 5, "one experience per planning epoch after the first"
    assert all(e.scenario == "tiny" and e.mean_latency_s for e in stored)
    assert any("load llm@b" in e.action for e in stored), "the first plan's move is remembered"


def test_recalled_experience_reaches_the_planner_only_with_memory(tmp_path):
    from edgeagents.agents.planner import create_planner
    from edgeagents.sim.city import SimulatedCity
    from graphs.memory_nodes import create_recall

    store = ExperienceStore(tmp_path / "mem", embedding="features")
    run(store)
    city = SimulatedCity(SC, generate_workload(SC, seed=5), ROUTERS.create("weighted"))
    city.advance(5.0)
    state = {"telemetry": city.observe(), "cycle": 1, "run_planner": True}
    config = {"configurable": {"scenario": SC, "thread_id": "t"}}
    recalled = create_recall(store, k=2)(state, config)["recalled"]
    assert len(recalled) == 2 and all("mean latency" in line for line in recalled)

    prompts = {}
    for label, extra in (("on", {"recalled": recalled}), ("off", {})):
        model = ScriptedChatModel(replies=['{"choice": 1, "rationale": "scripted"}'])
        create_planner(model, scenario=SC)({**state, **extra}, config)
        prompts[label] = planner_prompts(model)
    assert prompts["on"] and prompts["off"], "the planner had a choice to ask about"
    assert MARK in prompts["on"][0] and recalled[0] in prompts["on"][0]
    assert MARK not in prompts["off"][0]


def test_a_failing_store_warns_and_the_run_goes_on(tmp_path):
    import numpy as np

    store = ExperienceStore(tmp_path / "mem", embedding="features")
    db = tmp_path / "mem" / "chroma.sqlite3"
    db.write_bytes(b"\0" * db.stat().st_size)  # the disk under the open store goes bad
    with pytest.warns(UserWarning, match="experience memory off for this cycle"):
        _, episode = run(store)
    out = episode.outcomes
    assert len(out.latency_s) > 0
    assert np.all(~np.isnan(out.latency_s) | (out.refused >= 0)), "served or refused, each"
