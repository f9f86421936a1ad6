"""`edgeagents bench faults`: a campaign of fault cases on the simulated city.

Each case runs the agents and, for reference, one baseline (greedy-autoscale) on the same
workload and seed, decisions charged a fixed time so that a row repeats to the digit: a site
crash and a link cut (the scenario's own failure events, down then up), an overload (every
demand x3 in a window, queues bounded), the agents' LM endpoint down, slow or answering
garbage (a local HTTP server, `lm_server`), and the experience store's disk going bad mid-run
(`store_fault`), and `edgeagents run` SIGKILLed mid-episode and resumed from its checkpoint
(`kill_resume`). A row says where every prompt went (none may be lost), latency before,
during and after the fault window, when it came back, and which path each decision took.
A case that cannot run yet is a row that says why, never a result.

`targets` names where the faults happen: `sim` (this package) or `ray` (`serving.faults`, the
Ray Serve city on a local Ray cluster, imported by name only when asked for).
"""

from edgeagents.experiments.faults.campaign import run_faults
from edgeagents.experiments.faults.cases import CASES, NOT_IMPLEMENTED, fault_window
from edgeagents.experiments.faults.lm_server import FakeLMServer, lm_endpoint
from edgeagents.experiments.faults.metrics import DecisionPaths, PolicyFigures
from edgeagents.experiments.faults.report import (
    FaultRow,
    FaultsReport,
    FaultsSettings,
    LMFaultFigures,
    MemoryFaultFigures,
    ProcessFaultFigures,
    RayFaultsSettings,
    RayRowFigures,
    TargetName,
)
from edgeagents.experiments.faults.targets import (
    FAULT_TARGETS,
    FaultTarget,
    TargetUnavailable,
    fault_target,
)

__all__ = [
    "CASES",
    "FAULT_TARGETS",
    "NOT_IMPLEMENTED",
    "DecisionPaths",
    "FakeLMServer",
    "FaultRow",
    "FaultTarget",
    "FaultsReport",
    "FaultsSettings",
    "LMFaultFigures",
    "MemoryFaultFigures",
    "PolicyFigures",
    "ProcessFaultFigures",
    "RayFaultsSettings",
    "RayRowFigures",
    "TargetName",
    "TargetUnavailable",
    "fault_target",
    "fault_window",
    "lm_endpoint",
    "run_faults",
]
