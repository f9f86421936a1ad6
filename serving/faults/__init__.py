"""`edgeagents bench faults --target ray`: the fault campaign on the Ray Serve city, one Ray
node per site (a local `ray.cluster_utils.Cluster`). `RAY_TARGET` is what
`edgeagents.experiments.faults.targets` finds here by name; importing this package loads no
Ray (the campaign does, when it runs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from serving.faults.cases import RAY_CASES, RAY_NOT_IMPLEMENTED, ray_city

if TYPE_CHECKING:
    from edgeagents.core.scenario import Scenario
    from edgeagents.experiments.faults.report import FaultsReport, FaultsSettings
    from serving.faults.cluster import SiteCluster


class RayTarget:
    """The Ray Serve city as a fault target."""

    name = "ray"
    cases = RAY_CASES
    not_implemented = RAY_NOT_IMPLEMENTED

    def check(self) -> None:
        """Ray Serve, llama.cpp and the agents' graph are installed."""
        from edgeagents.experiments.faults.targets import TargetUnavailable

        try:
            import langgraph  # noqa: F401
            import llama_cpp  # noqa: F401
            import ray.serve  # noqa: F401
        except ImportError as e:
            raise TargetUnavailable(
                "--target ray needs the serve and agents extras: pip install "
                f"'edgeagents[serve,agents]' ({e.name} missing)"
            ) from e

    def check_scenario(self, scenario: Scenario, settings: FaultsSettings) -> None:
        """The scenario cuts to a Ray city (ValueError, one line, if not)."""
        ray_city(scenario, settings.ray.sites if settings.ray else 3)

    def run(
        self,
        scenario: Scenario,
        settings: FaultsSettings,
        cases: Sequence[str],
        *,
        on_progress: Callable[[str, float], None] | None = None,
        cluster: SiteCluster | None = None,
    ) -> FaultsReport:
        """Run the named cases on the Ray Serve city (`cluster`: one already running)."""
        from serving.faults.campaign import RayCampaign

        return RayCampaign(scenario, settings, on_progress, cluster).run(cases)


RAY_TARGET = RayTarget()

__all__ = ["RAY_CASES", "RAY_NOT_IMPLEMENTED", "RAY_TARGET", "RayTarget", "ray_city"]
