"""What a data-plane router sees of a city, and the router's interface.

Routers pick a replica for each prompt in microseconds, no LM involved. They see the city
through `CityView` and its replicas through `ReplicaView`, so a router works on any city that
offers these (the simulated one, a replay of a Ray Serve run) without reaching into it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeVar

if TYPE_CHECKING:
    import numpy as np

    from edgeagents.core.scenario import Scenario
    from edgeagents.core.state import RoutingPolicy


class ReplicaView(Protocol):
    """One placed model on one GPU, as a router sees it."""

    @property
    def id(self) -> int: ...

    @property
    def site(self) -> int:
        """Index into the scenario's sites."""
        ...

    @property
    def max_batch(self) -> int: ...

    def outstanding(self) -> int:
        """Prompts sent to it and not yet done (inbound, queued, running)."""
        ...


class CityView(Protocol):
    """The city as a router sees it: the prompt's model, predicted latencies, the scheduler's
    routing policy, and the episode's random generator (so random routers are seeded)."""

    @property
    def rng(self) -> np.random.Generator: ...

    @property
    def scenario(self) -> Scenario: ...

    @property
    def routing(self) -> RoutingPolicy: ...

    def prompt_model(self, i: int) -> int:
        """Index into the scenario's models of prompt `i`."""
        ...

    def net_in_s(self, i: int, r: ReplicaView) -> float:
        """Seconds for prompt `i`'s input to reach replica `r`."""
        ...

    def predict_s(self, i: int, r: ReplicaView) -> float:
        """Predicted end-to-end latency of prompt `i` on replica `r`."""
        ...


R = TypeVar("R", bound=ReplicaView)


class Router(ABC):
    """Chooses one of `candidates` for prompt `i`. One instance per episode."""

    name: ClassVar[str]

    @abstractmethod
    def route(self, i: int, candidates: list[R], city: CityView) -> R: ...
