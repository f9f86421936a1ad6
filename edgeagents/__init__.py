"""edgeagents: latency- and fairness-aware multi-modal inference across a city of edge GPUs.

The core (this package) holds the typed state, scenarios, the simulated city, workloads, the
latency model and profiles, baseline policies, metrics and the CLI. It imports no Ray, Chroma
or LLM client at module level.
"""

from edgeagents.core.env import Environment
from edgeagents.core.scenario import Scenario, ScenarioError, load_scenario
from edgeagents.core.state import (
    ApplyReport,
    Decision,
    Deployment,
    DeploymentAction,
    ModelSpec,
    Plan,
    Prompt,
    RoutingPolicy,
    Telemetry,
)
from edgeagents.experiments.bench import BenchReport, compare
from edgeagents.experiments.driver import EpisodeRun, run_episode
from edgeagents.policies import BASELINES, POLICIES, ROUTERS, Controller, PolicySpec, Router
from edgeagents.sim.city import EpisodeOutcomes, SimulatedCity
from edgeagents.sim.metrics import PolicyResult, jain, jain_rescaled, summarize
from edgeagents.sim.workload import Workload, generate_workload, load_trace

__all__ = [
    "BASELINES",
    "POLICIES",
    "ROUTERS",
    "ApplyReport",
    "BenchReport",
    "Controller",
    "Decision",
    "Deployment",
    "DeploymentAction",
    "Environment",
    "EpisodeOutcomes",
    "EpisodeRun",
    "ModelSpec",
    "Plan",
    "PolicyResult",
    "PolicySpec",
    "Prompt",
    "Router",
    "RoutingPolicy",
    "Scenario",
    "ScenarioError",
    "SimulatedCity",
    "Telemetry",
    "Workload",
    "compare",
    "generate_workload",
    "jain",
    "jain_rescaled",
    "load_scenario",
    "load_trace",
    "run_episode",
    "summarize",
]
__version__ = "0.1.0"
