"""Compose the edgeagents nodes into your own LangGraph StateGraph.

Here a user keeps the planner and the scheduler, drops the per-site deployers, and adds an
audit node that refuses to apply a plan predicted to be slower than 10 s. The simulated city
is the environment; swap in any object with observe/apply/advance.

Run: .venv/bin/python examples/custom_graph.py
"""

from __future__ import annotations

from typing import Annotated

from langgraph.graph import END, START, StateGraph

from edgeagents import Decision, generate_workload, load_scenario
from edgeagents.agents.planner import create_planner
from edgeagents.agents.scheduler import create_scheduler
from edgeagents.core.control_state import ControlState, merge_by_key
from edgeagents.policies import ROUTERS
from edgeagents.sim.city import SimulatedCity


class AuditedState(ControlState, total=False):
    """The shared state plus a field of our own, with its own reducer."""

    audit: Annotated[dict[str, str], merge_by_key]


scenario = load_scenario("bristol")
city = SimulatedCity(scenario, generate_workload(scenario, seed=0), ROUTERS.create("weighted"))


def observe(state: AuditedState) -> dict:
    return {"telemetry": city.observe(), "cycle": state.get("cycle", 0) + 1}


def audit(state: AuditedState) -> dict:
    plan = state.get("plan")
    slow = plan is not None and (plan.predicted_mean_latency_s or 0.0) > 10.0
    verdict = "plan held back: predicted too slow" if slow else "ok"
    return {"audit": {f"cycle-{state['cycle']}": verdict}}


def apply(state: AuditedState) -> dict:
    plan = state.get("plan")
    ok = state["audit"][f"cycle-{state['cycle']}"] == "ok"
    actions = plan.actions if plan is not None and ok and state["cycle"] == 1 else []
    report = city.apply(Decision(time_s=city.now, routing=state.get("routing"), actions=actions))
    return {"report": report}


graph = StateGraph(AuditedState)
graph.add_node("observe", observe)
graph.add_node("planner", create_planner(None, scenario=scenario))  # None: tools + fallback
graph.add_node("scheduler", create_scheduler(None, scenario=scenario))
graph.add_node("audit", audit)
graph.add_node("apply", apply)
graph.add_edge(START, "observe")
graph.add_edge("observe", "planner")
graph.add_edge("planner", "scheduler")
graph.add_edge("scheduler", "audit")
graph.add_edge("audit", "apply")
graph.add_edge("apply", END)
app = graph.compile()

state: dict = {}
for tick in range(1, 4):
    city.advance(tick * scenario.control.tick_s)
    state = app.invoke({k: state[k] for k in ("cycle", "plan", "audit") if k in state})
    print(f"t={city.now:.0f}s audit={state['audit']} applied={len(state['report'].applied)}")
