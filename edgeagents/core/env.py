"""The environment protocol: what agents and baselines steer, simulated or real."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from edgeagents.core.state import ApplyReport, Decision, Telemetry


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


DecisionCharge = bool | float
"""How long a decision takes before it applies: True, the wall time its agents took; False
(or 0), no time; a number, that many seconds for every decision (so an episode does not depend
on how loaded the machine running it is)."""


def decision_delay_s(charge: DecisionCharge, wall_s: float) -> float:
    """Seconds a decision that took `wall_s` of wall time waits before it applies."""
    if isinstance(charge, bool):
        return max(0.0, wall_s) if charge else 0.0
    return max(0.0, float(charge))
