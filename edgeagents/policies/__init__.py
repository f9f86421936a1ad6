"""Baseline policies: data-plane routers and control-plane controllers, registered by name.

A *policy* in a benchmark pairs one router with one controller. Imports only
`edgeagents.core`: routers see a city through `core.dataplane`, controllers through the
`Environment` protocol, so they work on the simulated city and the Ray Serve one alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeagents.policies.deployment import (
    CONTROLLERS,
    AutoscaleConfig,
    AutoscaleController,
    Controller,
    StaticController,
)
from edgeagents.policies.registry import Registry
from edgeagents.policies.routing import ROUTERS, Router


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """A named pairing of a routing rule and a deployment controller."""

    name: str
    router: str
    controller: str

    def create(self) -> tuple[Router, Controller]:
        return ROUTERS.create(self.router), CONTROLLERS.create(self.controller)


POLICIES: Registry[PolicySpec] = Registry("policy")
for _name, _router, _controller in (
    ("random", "random", "static"),
    ("round-robin", "round-robin", "static"),
    ("nearest", "nearest", "static"),
    ("least-loaded", "least-loaded", "static"),
    ("power-of-two", "power-of-two", "static"),
    ("greedy", "greedy", "static"),
    ("greedy-autoscale", "greedy", "autoscale"),
):
    POLICIES.register(_name, lambda n=_name, r=_router, c=_controller: PolicySpec(n, r, c))

BASELINES: tuple[str, ...] = tuple(POLICIES.names())

__all__ = [
    "BASELINES",
    "CONTROLLERS",
    "POLICIES",
    "ROUTERS",
    "AutoscaleConfig",
    "AutoscaleController",
    "Controller",
    "PolicySpec",
    "Registry",
    "Router",
    "StaticController",
]
