"""edgeagents: latency- and fairness-aware multi-modal inference across a city of edge GPUs.

The package stands in layers, each importing only those below it:

- `edgeagents.core`: typed state, scenarios, GPU profiles, notices' types, the environment
  protocol and the router's view of a city;
- `edgeagents.sim`: the simulated city (engine, network, workloads, bounds, metrics);
- `edgeagents.policies`: baseline routers and controllers, registered by name;
- `edgeagents.agents`: the planner, scheduler and deployers, their tools, the twin, LM backends;
- `edgeagents.experiments`: the episode driver, benchmarks and plots;
- `edgeagents.cli`: the `edgeagents` command.

`graphs` (LangGraph assembly), `memory` (the Chroma experience store) and `serving` (Ray
Serve) are packages beside this one. Names below load on first use, so `import edgeagents` is
cheap and no Ray, Chroma or LLM client loads until asked for.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_PUBLIC = {
    "ApplyReport": "edgeagents.core.state",
    "Decision": "edgeagents.core.state",
    "Deployment": "edgeagents.core.state",
    "DeploymentAction": "edgeagents.core.state",
    "ModelSpec": "edgeagents.core.state",
    "Plan": "edgeagents.core.state",
    "Prompt": "edgeagents.core.state",
    "RoutingPolicy": "edgeagents.core.state",
    "Telemetry": "edgeagents.core.state",
    "Scenario": "edgeagents.core.scenario",
    "ScenarioError": "edgeagents.core.scenario",
    "load_scenario": "edgeagents.core.scenario",
    "Environment": "edgeagents.core.env",
    "Intent": "edgeagents.core.notice",
    "Notice": "edgeagents.core.notice",
    "Router": "edgeagents.core.dataplane",
    "EpisodeOutcomes": "edgeagents.sim.outcomes",
    "SimulatedCity": "edgeagents.sim.city",
    "PolicyResult": "edgeagents.sim.metrics",
    "jain": "edgeagents.sim.metrics",
    "jain_rescaled": "edgeagents.sim.metrics",
    "summarize": "edgeagents.sim.metrics",
    "Workload": "edgeagents.sim.workload",
    "generate_workload": "edgeagents.sim.workload",
    "load_trace": "edgeagents.sim.trace",
    "BASELINES": "edgeagents.policies",
    "POLICIES": "edgeagents.policies",
    "ROUTERS": "edgeagents.policies",
    "Controller": "edgeagents.policies",
    "PolicySpec": "edgeagents.policies",
    "create_planner": "edgeagents.agents.planner",
    "create_scheduler": "edgeagents.agents.scheduler",
    "create_deployer": "edgeagents.agents.deployer",
    "create_chat_model": "edgeagents.agents.llm",
    "extract_intent": "edgeagents.agents.notices",
    "BenchReport": "edgeagents.experiments.bench",
    "compare": "edgeagents.experiments.bench",
    "EpisodeRun": "edgeagents.experiments.driver",
    "run_episode": "edgeagents.experiments.driver",
}

__all__ = sorted(_PUBLIC)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'edgeagents' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
