"""edgeagents: latency- and fairness-aware multi-modal inference across a city of edge GPUs.

The core (this package) holds the typed state, scenarios, the simulated city, workloads, the
latency model and profiles, baseline policies, metrics and the CLI. It imports no Ray, Chroma
or LLM client at module level.
"""

from edgeagents.bench import BenchReport, compare
from edgeagents.city import EpisodeOutcomes, SimulatedCity
from edgeagents.driver import EpisodeRun, run_episode
from edgeagents.env import Environment
from edgeagents.metrics import PolicyResult, jain, jain_rescaled, summarize
from edgeagents.policies import BASELINES, POLICIES, ROUTERS, Controller, PolicySpec, Router
from edgeagents.scenario import Scenario, ScenarioError, load_scenario
from edgeagents.state import (
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
from edgeagents.workload import Workload, generate_workload, load_trace

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
