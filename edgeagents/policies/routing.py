"""Data-plane routing rules: pick a replica for each prompt in microseconds, no LM involved.

Each rule is one small class behind `Router.route` (`edgeagents.core.dataplane`), seeing the
city through `CityView`. Candidates are the live replicas of the prompt's model that its cell
can reach and whose queues are not full (ready ones if any).
"""

from __future__ import annotations

from collections import defaultdict
from typing import ClassVar

from edgeagents.core.dataplane import CityView, R, Router
from edgeagents.policies.registry import Registry


class RandomRouter(Router):
    name = "random"

    def route(self, i: int, candidates: list[R], city: CityView) -> R:
        return candidates[int(city.rng.integers(len(candidates)))]


class RoundRobinRouter(Router):
    """Cycles through a model's replicas in placement order."""

    name = "round-robin"

    def __init__(self) -> None:
        self._next: defaultdict[int, int] = defaultdict(int)

    def route(self, i: int, candidates: list[R], city: CityView) -> R:
        m = city.prompt_model(i)
        k = self._next[m]
        self._next[m] = k + 1
        return candidates[k % len(candidates)]


class NearestRouter(Router):
    """Least backhaul latency from the prompt's cell; ties by replica id."""

    name = "nearest"

    def route(self, i: int, candidates: list[R], city: CityView) -> R:
        return min(candidates, key=lambda r: (city.net_in_s(i, r), r.id))


class LeastLoadedRouter(Router):
    """Join the shortest queue: fewest outstanding prompts per batch slot; ties nearest."""

    name = "least-loaded"

    def route(self, i: int, candidates: list[R], city: CityView) -> R:
        return min(candidates, key=lambda r: (r.outstanding() / r.max_batch, city.net_in_s(i, r)))


class PowerOfTwoRouter(Router):
    """Two replicas drawn at random; the one with fewer outstanding prompts per batch slot."""

    name = "power-of-two"

    def route(self, i: int, candidates: list[R], city: CityView) -> R:
        if len(candidates) == 1:
            return candidates[0]
        a, b = city.rng.choice(len(candidates), size=2, replace=False)
        ra, rb = candidates[int(a)], candidates[int(b)]
        return ra if ra.outstanding() / ra.max_batch <= rb.outstanding() / rb.max_batch else rb


class GreedyRouter(Router):
    """Minimum predicted end-to-end latency (network, cold start, queue, service)."""

    name = "greedy"

    def route(self, i: int, candidates: list[R], city: CityView) -> R:
        return min(candidates, key=lambda r: (city.predict_s(i, r), r.id))


class WeightedRouter(Router):
    """Applies the scheduler's `RoutingPolicy`: among the model's candidate sites with a
    positive weight, the replica with the least predicted latency, scaled by
    `(w_max / w) ** strength`, so weights steer between control ticks while live queues and
    cold starts still count for every prompt. The prediction is also scaled by
    `(1 + outstanding / max_batch) ** backlog_power`: a deep queue's prediction is the least
    sure (prefills and long answers behind it are only estimated), so a replica with a backlog
    must predict clearly less to win. Sites the policy does not list (a replica loaded since)
    count at full weight; a model without a route is routed greedily."""

    name = "weighted"
    strength: ClassVar[float] = 0.5
    backlog_power: ClassVar[float] = 0.5

    def route(self, i: int, candidates: list[R], city: CityView) -> R:
        model = city.scenario.models[city.prompt_model(i)].name
        routes = city.routing.routes.get(model)
        if not routes:
            return min(candidates, key=lambda r: (city.predict_s(i, r), r.id))
        weights = {w.site: w.weight for w in routes}
        top = max(weights.values())
        sites = city.scenario.sites
        best: R | None = None
        best_score = float("inf")
        for r in candidates:
            w = weights.get(sites[r.site].name, top)
            if w <= 0:
                continue
            backlog = (1.0 + r.outstanding() / r.max_batch) ** self.backlog_power
            score = city.predict_s(i, r) * backlog * (top / w) ** self.strength
            if score < best_score:
                best, best_score = r, score
        if best is None:
            return min(candidates, key=lambda r: (city.predict_s(i, r), r.id))
        return best


ROUTERS: Registry[Router] = Registry("router")
for _cls in (
    RandomRouter, RoundRobinRouter, NearestRouter, LeastLoadedRouter, PowerOfTwoRouter,
    GreedyRouter, WeightedRouter,
):  # fmt: skip
    ROUTERS.register(_cls.name, _cls)
