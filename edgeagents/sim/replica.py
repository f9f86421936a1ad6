"""Replicas and the GPUs they share: `Replica` with its analytic batcher, `Gpu`, the `Job` of
one prompt on a replica, and the `Fleet` of the city's GPUs and replicas.

Apart from `dispatch` (which moves prompts and raises the events) and `city` (the environment
protocol and deployment), so that the batching arithmetic (setup stalls, the shared iteration
counter, static batches) reads on its own; nothing here schedules an event.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgeagents.core.profiles import ServiceModel
    from edgeagents.core.scenario import Scenario
    from edgeagents.core.state import GpuType, ModelSpec

EPS = 1e-9
"""Tolerance of memory and compute-share comparisons."""


class Job:
    """One prompt's stay on a replica: when it joined and started, its cold start and
    backhaul so far, and how often it was re-dispatched."""

    __slots__ = ("backhaul_s", "cold_s", "i", "join_t", "redispatches", "start_t")

    def __init__(self, i: int) -> None:
        self.i = i
        self.join_t = 0.0
        self.start_t = 0.0
        self.cold_s = 0.0
        self.backhaul_s = 0.0
        self.redispatches = 0


class Gpu:
    """One GPU of a site and the replicas placed on it (they share its memory and compute)."""

    __slots__ = ("index", "replicas", "site", "type")

    def __init__(self, site: int, index: int, gpu_type: GpuType) -> None:
        self.site = site
        self.index = index
        self.type = gpu_type
        self.replicas: list[Replica] = []

    def used_memory_gb(self) -> float:
        return sum(r.memory_gb for r in self.replicas)

    def free_memory_gb(self) -> float:
        return self.type.memory_gb - self.used_memory_gb()


class Replica:
    """One placed model on one GPU; the analytic batcher (iteration-level or static) lives here."""

    __slots__ = (
        "alive", "batch_t", "busy_cum", "busy_hist", "gpu", "id", "inbound", "last_t",
        "max_batch", "memory_gb", "model", "parked", "queue", "ready_at", "running", "seq",
        "share", "share_eff", "site", "spec", "stall_work", "static", "svc", "v", "version",
    )  # fmt: skip

    def __init__(
        self, rid: int, site: int, model: int, gpu: Gpu, spec: ModelSpec, svc: ServiceModel,
        max_batch: int, share: float, ready_at: float,
    ) -> None:  # fmt: skip
        self.id = rid
        self.site = site
        self.model = model
        self.gpu = gpu
        self.spec = spec
        self.svc = svc
        self.max_batch = max_batch
        self.memory_gb = spec.memory_gb(max_batch)
        self.share = share
        self.share_eff = share
        self.ready_at = ready_at
        self.alive = True
        self.queue: deque[Job] = deque()
        self.running: list[tuple[float, int, Job]] = []
        self.static = spec.batching == "static"
        self.parked: list[Job] = []
        """Static batching: prompts of the running batch that are done, held until it ends."""
        self.batch_t = -1.0
        """Static batching: when the running batch started."""
        self.seq = 0
        self.v = 0.0
        self.last_t = 0.0
        self.stall_work = 0.0
        self.version = 0
        self.inbound = 0
        self.busy_cum = 0.0
        self.busy_hist: deque[tuple[float, float]] = deque()

    def outstanding(self) -> int:
        return self.inbound + len(self.queue) + len(self.running) + len(self.parked)

    def takes_new(self, now: float) -> bool:
        """Whether a waiting prompt may start now: a free batch slot, and under static batching
        no batch running (or one that starts at this very instant)."""
        if self.static and self.running and self.batch_t != now:
            return False
        return len(self.running) < self.max_batch

    def iter_eff_s(self, batch: int) -> float:
        return self.svc.iter_s(batch) / self.share_eff

    def advance_to(self, t: float) -> None:
        """Spend the GPU time since the last update: pending setups first (they stall the
        batch), then the shared iteration counter."""
        dt = t - self.last_t
        if dt > 0 and self.running:
            self.busy_cum += dt
            work = dt * self.share_eff
            if self.stall_work > 0:
                used = work if work < self.stall_work else self.stall_work
                self.stall_work -= used
                work -= used
            if work > 0:
                self.v += work / self.svc.iter_s(len(self.running))
        self.last_t = t

    def ready(self, now: float) -> bool:
        return self.ready_at <= now

    def start(self, job: Job, now: float, setup_h200_s: float, iterations: float) -> None:
        """Add a prompt to the running batch: its setup (H200 seconds, scaled to this GPU)
        stalls the batch, then it needs `iterations` of the shared counter."""
        job.start_t = now
        job.cold_s = max(0.0, min(self.ready_at, now) - job.join_t)
        self.stall_work += setup_h200_s * self.svc.compute_ratio
        if not self.running:
            self.batch_t = now
        self.seq += 1
        heapq.heappush(self.running, (self.v + iterations, self.seq, job))

    def next_done_s(self, now: float) -> float:
        """When the first running prompt finishes, if nothing joins or leaves before (the
        batch must not be empty)."""
        left = self.running[0][0] - self.v
        work = self.stall_work + (left * self.svc.iter_s(len(self.running)) if left > 0 else 0.0)
        return now + work / self.share_eff

    def pop_done(self) -> list[Job]:
        """Take the prompts whose iterations are done off the batch, in finishing order; under
        static batching they are held until the whole batch is done, then all returned."""
        done: list[Job] = []
        running = self.running
        while running and running[0][0] <= self.v + 1e-6:
            _, _, job = heapq.heappop(running)
            if self.static:
                self.parked.append(job)
            else:
                done.append(job)
        if self.static and not running:
            done.extend(self.parked)
            self.parked.clear()
        return done


class Fleet:
    """The city's GPUs (by site) and its live replicas (by model), with the index of each
    model and site name; `city` places replicas on it and `dispatch` routes over them."""

    def __init__(self, scenario: Scenario) -> None:
        self.models = list(scenario.models)
        self.model_index = {m.name: i for i, m in enumerate(self.models)}
        self.site_index = {s.name: i for i, s in enumerate(scenario.sites)}
        catalogue = scenario.gpu_catalogue
        self.gpus: list[list[Gpu]] = []
        for si, s in enumerate(scenario.sites):
            gpus = [catalogue[slot.type] for slot in s.gpus for _ in range(slot.count)]
            self.gpus.append([Gpu(si, gi, g) for gi, g in enumerate(gpus)])
        self.by_model: list[list[Replica]] = [[] for _ in self.models]

    def replicas(self) -> list[Replica]:
        """Every placed replica, site by site and GPU by GPU."""
        return [r for gpus in self.gpus for g in gpus for r in g.replicas]
