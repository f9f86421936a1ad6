"""The environment protocol: what agents and baselines steer, simulated or real."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from edgeagents.state import ApplyReport, Decision, Telemetry


@runtime_checkable
class Environment(Protocol):
    """A city the control plane can observe and change. `SimulatedCity` implements it here;
    the Ray Serve city implements it in `serving/`. Agents never know which one they steer."""

    @property
    def now(self) -> float:
        """Current time in seconds (simulated or wall-clock since start)."""
        ...

    def observe(self) -> Telemetry:
        """Live state and windowed aggregates now."""
        ...

    def apply(self, decision: Decision) -> ApplyReport:
        """Apply routing and deployment actions now; infeasible actions are refused."""
        ...

    def advance(self, until: float) -> None:
        """Let time pass until `until`."""
        ...
