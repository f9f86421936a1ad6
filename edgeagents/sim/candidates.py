"""Which replicas of a model a prompt's router is shown.

A router compares every candidate it is given, so over a whole region its cost per prompt grows
with the replicas of the model. Past `PRUNE_ABOVE` replicas of a model, a prompt is offered
only the `ROUTE_CANDIDATES` that admit it and would serve it soonest with empty queues
(backhaul latency from its cell's site plus a typical prompt's service on that GPU; the
fleet's order among equals), those with a free batch slot first (among the first
`SCAN_CANDIDATES` and `SPREAD_CANDIDATES` more further down), so its cost stays flat as a
region grows while fast GPUs a few hops away stay in reach and a busy neighbourhood spills
over. Below that, the router sees every replica.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edgeagents.core.state import RefusalReason
    from edgeagents.sim.network import Network
    from edgeagents.sim.replica import Replica

ROUTE_CANDIDATES = 8
"""Replicas a router compares per prompt in a pruned model: on a 1,000-site region this keeps
the mean latency within 1% of the full scan at a twentieth of its cost."""
PRUNE_ABOVE = 32
"""Models with more replicas than this are pruned. A city of tens of sites has fewer, so its
routers compare every replica, as they did before pruning."""
SCAN_CANDIDATES = 128
"""A pruned prompt looks for replicas with a free batch slot among the first this many of its
ranking, then among `SPREAD_CANDIDATES` more spread evenly over the rest of it, and takes busy
ones (queue not full) to fill the limit. With the 8 nearest alone they took every prompt
until their queues were full (docs/decisions.md)."""
SPREAD_CANDIDATES = 256
"""Replicas past the first `SCAN_CANDIDATES` looked at, evenly spaced down the ranking: where
each site holds many replicas (a region sized for 10,000 prompts/s) the nearest 128 cover
only a few sites, and a busy neighbourhood must spill further."""


class Candidates:
    """The replicas that admit a prompt: reachable from its site, queue not full."""

    def __init__(
        self,
        net: Network,
        setup_h200_s: list[float],
        iterations: list[float],
        limit: int = ROUTE_CANDIDATES,
        prune_above: int = PRUNE_ABOVE,
        scan: int = SCAN_CANDIDATES,
        spread: int = SPREAD_CANDIDATES,
    ) -> None:
        self.net = net
        self.setup_h200_s = setup_h200_s
        """Per model: a typical prompt's setup on an H200, s (see `typical`)."""
        self.iterations = iterations
        """Per model: a typical prompt's decode or denoising iterations."""
        self.limit = limit
        self.prune_above = prune_above
        self.scan = scan
        self.spread = spread
        self.fleet_version = 0
        """Bumped whenever a replica enters or leaves service."""
        self.share_version = 0
        """Bumped whenever a replica's configured compute share changes."""
        self._nearest: dict[tuple[int, int], tuple[np.ndarray, int]] = {}
        self._valid_for = (-1, -1, -1)
        self._own: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._own_for = (-1, -1)

    def admitting(
        self, src: int, model: int, replicas: list[Replica], cap: int
    ) -> list[Replica] | RefusalReason:
        """The candidates, or why there are none (`no_reachable_replica`, `queue_full`)."""
        if len(replicas) <= self.prune_above:
            reachable = [r for r in replicas if self.net.reachable(src, r.site)]
            if not reachable:
                return "no_reachable_replica"
            open_ = [r for r in reachable if r.outstanding() < cap + r.max_batch]
            return open_ or "queue_full"
        ranked, reachable = self._ranking(src, model, replicas)
        if not reachable:
            return "no_reachable_replica"
        roomy: list[Replica] = []
        busy: list[Replica] = []
        for r in self._window(ranked, reachable):
            n = r.outstanding()
            if n < cap + r.max_batch:  # its queue admits the prompt
                if n < r.max_batch:
                    roomy.append(r)
                    if len(roomy) == self.limit:
                        return roomy
                elif len(busy) < self.limit:
                    busy.append(r)
        if len(roomy) + len(busy) < self.limit:  # queues full nearby: any that admit it
            seen = {id(r) for r in roomy + busy}
            for r in ranked[:reachable]:
                if id(r) not in seen and r.outstanding() < cap + r.max_batch:
                    busy.append(r)
                    if len(roomy) + len(busy) == self.limit:
                        break
        open_ = roomy + busy[: self.limit - len(roomy)]
        return open_ or "queue_full"

    def _window(self, ranked: np.ndarray, reachable: int) -> np.ndarray:
        """The reachable replicas, in ranking order, a pruned prompt looks at for a free batch
        slot: the first `scan`, then `spread` more spaced evenly over the rest."""
        if reachable <= self.scan + self.spread:
            return ranked[:reachable]
        step = (reachable - self.scan) // self.spread
        return np.concatenate((ranked[: self.scan], ranked[self.scan : reachable : step]))

    def own_s(self, model: int, r: Replica) -> float:
        """A typical prompt's service on `r` alone at its configured share: the ranking of
        candidates (the router then prices the real prompt with the live queue)."""
        own = self.setup_h200_s[model] * r.svc.compute_ratio
        return (own + self.iterations[model] * r.svc.iter_s(1)) / r.share

    def ranked(self, src: int, model: int, replicas: list[Replica]) -> list[Replica]:
        """`replicas` by their latency with empty queues from `src` (backhaul plus a typical
        prompt's service; unreachable last), kept until the fleet, a share or the network
        changes."""
        return self._ranking(src, model, replicas)[0].tolist()

    def _ranking(self, src: int, model: int, replicas: list[Replica]) -> tuple[np.ndarray, int]:
        """`ranked` as an array, and how many of its first replicas `src` reaches (all the
        others are unreachable: their infinite latency ranks them last). An array, not a list:
        a region keeps thousands of these, and the garbage collector walks every list."""
        key = (self.fleet_version, self.share_version, self.net.version)
        if key != self._valid_for:
            self._nearest.clear()
            self._valid_for = key
        hit = self._nearest.get((src, model))
        if hit is None:
            sites, own, objects = self._own_costs(model, replicas)
            latency = self.net.latency_s[src, sites]
            order = np.argsort(latency + own, kind="stable")
            reachable = int(np.count_nonzero(latency < np.inf))
            hit = self._nearest[(src, model)] = (objects[order], reachable)
        return hit

    def _own_costs(
        self, model: int, replicas: list[Replica]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The sites of a model's replicas in service (`replicas`, the fleet's list of them),
        their `own_s` and the replicas themselves, as arrays for `_ranking`; kept until a
        replica enters or leaves service or its share changes (a pruned model's replicas are
        ranked for each site its prompts come from)."""
        key = (self.fleet_version, self.share_version)
        if key != self._own_for:
            self._own.clear()
            self._own_for = key
        hit = self._own.get(model)
        if hit is None:
            sites = np.array([r.site for r in replicas], dtype=np.int64)
            own = np.array([self.own_s(model, r) for r in replicas], dtype=np.float64)
            objects = np.empty(len(replicas), dtype=object)
            objects[:] = replicas
            hit = self._own[model] = (sites, own, objects)
        return hit


def typical(values: np.ndarray, model: np.ndarray, models: int) -> list[float]:
    """The mean of a per-prompt figure over each model's prompts (0 for a model with none)."""
    out = []
    for m in range(models):
        sel = model == m
        out.append(float(np.mean(values[sel])) if np.any(sel) else 0.0)
    return out
