"""The simulated city: a discrete-event implementation of the environment protocol.

Latency of a prompt p of model m from cell c served at site s (DESIGN.md):
`uplink + backhaul(c->s) + queue + cold start + inference + backhaul(s->c) + downlink`.
Each replica batches at iteration level in analytic form: its running prompts advance together
through a shared iteration counter whose rate is `1 / iter_s(batch)`; a prompt joining the batch
first stalls the replica for its setup (prefill, encoders). GPU memory is a hard limit; a loading
replica serves nothing until its weights are on the GPU.
"""

from __future__ import annotations

import heapq
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from edgeagents.core.profiles import ServiceModel, iterations, load_s, service_model, setup_h200_s
from edgeagents.core.state import (
    REFUSAL_REASONS,
    ApplyReport,
    Decision,
    Deployment,
    DeploymentAction,
    GpuTelemetry,
    GpuType,
    ModelSpec,
    ModelTelemetry,
    RefusalReason,
    RefusedAction,
    ReplicaTelemetry,
    RoutingPolicy,
    SiteTelemetry,
    Telemetry,
)
from edgeagents.sim.engine import Engine
from edgeagents.sim.network import Network, payload_bytes

if TYPE_CHECKING:
    from edgeagents.core.dataplane import Router
    from edgeagents.core.scenario import CityEvent, Scenario
    from edgeagents.sim.workload import Workload

_REASON_CODE = {r: i for i, r in enumerate(REFUSAL_REASONS)}
_EPS = 1e-9


class _Job:
    __slots__ = ("backhaul_s", "cold_s", "i", "join_t", "redispatches", "start_t")

    def __init__(self, i: int) -> None:
        self.i = i
        self.join_t = 0.0
        self.start_t = 0.0
        self.cold_s = 0.0
        self.backhaul_s = 0.0
        self.redispatches = 0


class _Gpu:
    __slots__ = ("index", "replicas", "site", "type")

    def __init__(self, site: int, index: int, gpu_type: GpuType) -> None:
        self.site = site
        self.index = index
        self.type = gpu_type
        self.replicas: list[_Replica] = []

    def used_memory_gb(self) -> float:
        return sum(r.memory_gb for r in self.replicas)

    def free_memory_gb(self) -> float:
        return self.type.memory_gb - self.used_memory_gb()


class _Replica:
    """One placed model on one GPU; the analytic batcher (iteration-level or static) lives here."""

    __slots__ = (
        "alive", "batch_t", "busy_cum", "busy_hist", "gpu", "id", "inbound", "last_t",
        "max_batch", "memory_gb", "model", "parked", "queue", "ready_at", "running", "seq",
        "share", "share_eff", "site", "spec", "stall_work", "static", "svc", "v", "version",
    )  # fmt: skip

    def __init__(
        self, rid: int, site: int, model: int, gpu: _Gpu, spec: ModelSpec, svc: ServiceModel,
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
        self.queue: deque[_Job] = deque()
        self.running: list[tuple[float, int, _Job]] = []
        self.static = spec.batching == "static"
        self.parked: list[_Job] = []
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


@dataclass(frozen=True, slots=True)
class EpisodeOutcomes:
    """Per-prompt results of one episode, columnar (index = prompt index in the workload)."""

    latency_s: np.ndarray
    site: np.ndarray
    uplink_s: np.ndarray
    backhaul_s: np.ndarray
    queue_s: np.ndarray
    cold_s: np.ndarray
    infer_s: np.ndarray
    refused: np.ndarray
    done_s: np.ndarray

    def refused_by_reason(self) -> dict[str, int]:
        counts = np.bincount(self.refused[self.refused >= 0], minlength=len(REFUSAL_REASONS))
        return {r: int(c) for r, c in zip(REFUSAL_REASONS, counts, strict=True) if c}


class _Arrival:
    __slots__ = ("i", "time")
    priority: ClassVar[int] = 3

    def __init__(self, time: float, i: int) -> None:
        self.time = time
        self.i = i

    def fire(self, city: SimulatedCity) -> list:
        return city._on_arrival(self.i)

    def __repr__(self) -> str:
        return f"arrival(prompt={self.i})"


class _Join:
    __slots__ = ("job", "replica", "time")
    priority: ClassVar[int] = 2

    def __init__(self, time: float, job: _Job, replica: _Replica) -> None:
        self.time = time
        self.job = job
        self.replica = replica

    def fire(self, city: SimulatedCity) -> list:
        return city._on_join(self.job, self.replica)

    def __repr__(self) -> str:
        return f"join(prompt={self.job.i}, replica={self.replica.id})"


class _Completion:
    __slots__ = ("replica", "time", "version")
    priority: ClassVar[int] = 1

    def __init__(self, time: float, replica: _Replica, version: int) -> None:
        self.time = time
        self.replica = replica
        self.version = version

    def fire(self, city: SimulatedCity) -> list:
        if self.version != self.replica.version:
            return []
        return city._on_completion(self.replica)

    def __repr__(self) -> str:
        return f"completion(replica={self.replica.id})"


class _Ready:
    __slots__ = ("replica", "time")
    priority: ClassVar[int] = 1

    def __init__(self, time: float, replica: _Replica) -> None:
        self.time = time
        self.replica = replica

    def fire(self, city: SimulatedCity) -> list:
        return city._on_ready(self.replica)

    def __repr__(self) -> str:
        return f"ready(replica={self.replica.id})"


class _Failure:
    __slots__ = ("event", "time")
    priority: ClassVar[int] = 0

    def __init__(self, event: CityEvent) -> None:
        self.time = event.at_s
        self.event = event

    def fire(self, city: SimulatedCity) -> list:
        return city._on_city_event(self.event)

    def __repr__(self) -> str:
        return f"{self.event.kind}({self.event.site or self.event.link})"


class SimulatedCity:
    """The city as a discrete-event simulation. Implements `observe`, `apply`, `advance`.

    Args:
        scenario: The validated scenario.
        workload: The prompts of this episode (all are generated up front; each enters the city
            at its arrival time).
        router: The data-plane rule that picks a replica for each prompt.
        seed: Seeds the router's random choices.
        trace: Keep a readable event trace (`event_trace`), for debugging and tests.
        deployments: Start from these warm replicas (GPU, share and batch as given) instead of
            the scenario's placement; a what-if copy of a running city uses it.
    """

    def __init__(
        self,
        scenario: Scenario,
        workload: Workload,
        router: Router,
        *,
        seed: int = 0,
        trace: bool = False,
        deployments: Sequence[Deployment] | None = None,
    ) -> None:
        self.scenario = scenario
        self.workload = workload
        self.router = router
        self.rng = np.random.default_rng(seed)
        self.engine = Engine(self, trace=trace)
        self.net = Network(scenario)
        self.routing = RoutingPolicy()
        self._models = list(scenario.models)
        self._model_index = {m.name: i for i, m in enumerate(self._models)}
        self._site_index = {s.name: i for i, s in enumerate(scenario.sites)}
        catalogue = scenario.gpu_catalogue
        self._gpus: list[list[_Gpu]] = []
        for si, s in enumerate(scenario.sites):
            gpus = [catalogue[slot.type] for slot in s.gpus for _ in range(slot.count)]
            self._gpus.append([_Gpu(si, gi, g) for gi, g in enumerate(gpus)])
        self._replicas_by_model: list[list[_Replica]] = [[] for _ in self._models]
        self._next_replica_id = 0
        n = len(workload)
        w = workload
        bytes_in, bytes_out = payload_bytes(scenario.payload, w)
        self._bytes_out = bytes_out
        self._uplink = self.net.uplink_s(w.cell.astype(np.int64), bytes_in)
        self._downlink = self.net.downlink_s(w.cell.astype(np.int64), bytes_out)
        self._bytes_in = bytes_in
        self._setup_h200 = np.zeros(n)
        self._iters = np.zeros(n)
        for mi, m in enumerate(self._models):
            sel = w.model == mi
            self._setup_h200[sel] = setup_h200_s(
                m, w.input_tokens[sel], w.images[sel], w.audio_s[sel], w.resolution_px[sel]
            )
            self._iters[sel] = iterations(
                m, w.output_tokens[sel], w.steps[sel], w.resolution_px[sel]
            )
        self._arrival = w.arrival_s
        self._model = w.model.astype(np.int64)
        self._cell_site = self.net.cell_site[w.cell.astype(np.int64)]
        self.out = EpisodeOutcomes(
            latency_s=np.full(n, np.nan),
            site=np.full(n, -1, dtype=np.int16),
            uplink_s=np.zeros(n),
            backhaul_s=np.zeros(n),
            queue_s=np.zeros(n),
            cold_s=np.zeros(n),
            infer_s=np.zeros(n),
            refused=np.full(n, -1, dtype=np.int8),
            done_s=np.full(n, np.nan),
        )
        self._done_t: list[float] = []
        self._done_i: list[int] = []
        self._done_r: list[int] = []
        self._refused_t: list[float] = []
        self._refused_i: list[int] = []
        self._unfinished = n
        if deployments is None:
            for site, placed in scenario.placement.items():
                for model in placed:
                    si, mi = self._site_index[site], self._model_index[model]
                    self._load(si, mi, None, 1.0, None, warm=True)
        else:
            for d in deployments:
                si, mi = self._site_index[d.site], self._model_index[d.model]
                self._load(si, mi, d.gpu_index, d.compute_share, d.max_batch, warm=True)
        if n:
            self.engine.schedule(_Arrival(float(self._arrival[0]), 0))
        for ev in scenario.events:
            self.engine.schedule(_Failure(ev))

    # ---- environment protocol -------------------------------------------------------------

    @property
    def now(self) -> float:
        return self.engine.now

    @property
    def unfinished(self) -> int:
        """Prompts not yet served or refused (including those not yet arrived)."""
        return self._unfinished

    @property
    def event_trace(self) -> list[tuple[float, str]]:
        return list(self.engine.trace or [])

    def advance(self, until: float) -> None:
        """Run the city until `until` (simulated seconds)."""
        self.engine.run(until)

    def apply(self, decision: Decision) -> ApplyReport:
        """Apply a decision now: the routing policy, then unloads, reconfigurations, loads."""
        if decision.routing is not None:
            self.routing = decision.routing
        order = {"unload": 0, "configure": 1, "load": 2}
        applied: list[DeploymentAction] = []
        refused: list[RefusedAction] = []
        load_times: dict[int, float] = {}
        for action in sorted(decision.actions, key=lambda a: order[a.op]):
            reason, done, replica = self._apply_action(action)
            if reason is not None:
                refused.append(RefusedAction(action=action, reason=reason))
                continue
            applied.append(done or action)
            if replica is not None:
                load_times[replica.id] = replica.ready_at - self.now
        return ApplyReport(time_s=self.now, applied=applied, refused=refused, load_s=load_times)

    def observe(self) -> Telemetry:
        """Live state and windowed aggregates at the current time."""
        now = self.now
        window = self.scenario.control.window_s
        since = max(0.0, now - window)
        span = max(now - since, _EPS)
        replicas_t: list[ReplicaTelemetry] = []
        site_busy: dict[int, list[float]] = {}
        done_t = np.asarray(self._done_t)
        done_i = np.asarray(self._done_i, dtype=np.int64)
        first = int(np.searchsorted(done_t, since, side="left")) if len(done_t) else 0
        recent = done_i[first:]
        served_by_replica = Counter(self._done_r[first:])
        for r in self._all_replicas():
            r.advance_to(now)
            r.busy_hist.append((now, r.busy_cum))
            while len(r.busy_hist) > 1 and r.busy_hist[1][0] <= since:
                r.busy_hist.popleft()
            t0, b0 = r.busy_hist[0]
            busy = (r.busy_cum - b0) / max(now - t0, _EPS) if now > t0 else 0.0
            site_busy.setdefault(r.site, []).append(min(1.0, busy))
            replicas_t.append(
                ReplicaTelemetry(
                    deployment=self._deployment(r),
                    queue_len=len(r.queue) + r.inbound,
                    running=len(r.running),
                    busy_share=min(1.0, max(0.0, busy)),
                    served=served_by_replica.get(r.id, 0),
                )
            )
        sites_t = [self._site_telemetry(si, site_busy.get(si, [])) for si in range(len(self._gpus))]
        lo, hi = np.searchsorted(self._arrival, [since, now], side="right")
        arr_model = self._model[lo:hi]
        arr_cell = self.workload.cell[lo:hi]
        lat = self.out.latency_s[recent]
        rec_model = self._model[recent]
        ref_t = np.asarray(self._refused_t)
        ref_i = np.asarray(self._refused_i, dtype=np.int64)
        ref_recent = ref_i[np.searchsorted(ref_t, since, side="left") :] if len(ref_t) else ref_i
        models_t = []
        for mi, m in enumerate(self._models):
            ml = lat[rec_model == mi]
            cells = np.bincount(arr_cell[arr_model == mi], minlength=len(self.workload.cell_names))
            reps = [r for r in self._replicas_by_model[mi] if r.alive]
            pct = np.percentile(ml, [50, 95, 99]) if len(ml) else [None] * 3
            models_t.append(
                ModelTelemetry(
                    model=m.name,
                    arrivals_per_s=float((arr_model == mi).sum() / span),
                    arrivals_per_s_by_cell={
                        c: float(k / span)
                        for c, k in zip(self.workload.cell_names, cells, strict=True)
                    },
                    served=len(ml),
                    refused=int((self._model[ref_recent] == mi).sum()),
                    mean_latency_s=float(ml.mean()) if len(ml) else None,
                    p50_latency_s=None if pct[0] is None else float(pct[0]),
                    p95_latency_s=None if pct[1] is None else float(pct[1]),
                    p99_latency_s=None if pct[2] is None else float(pct[2]),
                    queue_len=sum(len(r.queue) + r.inbound for r in reps),
                    replicas=len(reps),
                )
            )
        reasons = np.bincount(self.out.refused[ref_recent], minlength=len(REFUSAL_REASONS))
        return Telemetry(
            time_s=now,
            window_s=window,
            sites=sites_t,
            replicas=replicas_t,
            models=models_t,
            down_links=self.net.down_links,
            refusals_by_reason={
                r: int(c) for r, c in zip(REFUSAL_REASONS, reasons, strict=True) if c
            },
        )

    def finish(self) -> EpisodeOutcomes:
        """Refuse whatever has not ended (`episode_ended`) and return every prompt's outcome."""
        left = np.flatnonzero(np.isnan(self.out.latency_s) & (self.out.refused < 0))
        self.out.refused[left] = _REASON_CODE["episode_ended"]
        self._unfinished = 0
        for r in self._all_replicas():
            r.version += 1
        return self.out

    # ---- read-only views used by routers and controllers ------------------------------------

    def replicas_of(self, model: int) -> list[_Replica]:
        return self._replicas_by_model[model]

    def model_index(self, name: str) -> int:
        return self._model_index[name]

    def site_index(self, name: str) -> int:
        return self._site_index[name]

    def net_in_s(self, i: int, r: _Replica) -> float:
        return self.net.transfer_s(int(self._cell_site[i]), r.site, float(self._bytes_in[i]))

    def net_out_s(self, i: int, r: _Replica) -> float:
        return self.net.transfer_s(r.site, int(self._cell_site[i]), float(self._bytes_out[i]))

    def predict_s(self, i: int, r: _Replica) -> float:
        """Predicted end-to-end latency of prompt i if sent to replica r now."""
        now = self.engine.now
        batch = len(r.running) + 1
        if batch > r.max_batch:
            batch = r.max_batch
        own = self._setup_h200[i] * r.svc.compute_ratio / r.share_eff + self._iters[
            i
        ] * r.iter_eff_s(batch)
        wait = r.ready_at - now if r.ready_at > now else 0.0
        ahead = r.outstanding() - r.max_batch + 1
        if ahead > 0:
            wait += ahead / r.max_batch * own
        return (
            self._uplink[i] + self.net_in_s(i, r) + wait + own + self.net_out_s(i, r)
            + self._downlink[i]
        )  # fmt: skip

    def prompt_model(self, i: int) -> int:
        return int(self._model[i])

    def prompt_site(self, i: int) -> int:
        """The site whose base station serves the prompt's cell."""
        return int(self._cell_site[i])

    # ---- event handlers ----------------------------------------------------------------------

    def _on_arrival(self, i: int) -> list:
        follow = self._dispatch(_Job(i), first=True)
        if i + 1 < len(self._arrival):
            follow.append(_Arrival(float(self._arrival[i + 1]), i + 1))
        return follow

    def _dispatch(self, job: _Job, *, first: bool) -> list:
        now = self.engine.now
        i = job.i
        mi = int(self._model[i])
        reps = self._replicas_by_model[mi]
        if not reps:
            self._refuse(job, "model_not_deployed")
            return []
        src = int(self._cell_site[i])
        if not self.net.site_up(self.scenario.sites[src].name):
            self._refuse(job, "site_failed")
            return []
        reachable = [r for r in reps if self.net.reachable(src, r.site)]
        if not reachable:
            self._refuse(job, "no_reachable_replica")
            return []
        cap = self.scenario.control.max_queue_per_replica
        open_ = [r for r in reachable if r.outstanding() < cap + r.max_batch]
        if not open_:
            self._refuse(job, "queue_full")
            return []
        ready = [r for r in open_ if r.ready_at <= now]
        r = self.router.route(i, ready or open_, self)
        net = self.net_in_s(i, r)
        job.backhaul_s += net
        r.inbound += 1
        delay = net + (self._uplink[i] if first else 0.0)
        return [_Join(now + delay, job, r)]

    def _on_join(self, job: _Job, r: _Replica) -> list:
        r.inbound -= 1
        if not r.alive:
            return self._redispatch(job)
        now = self.engine.now
        job.join_t = now
        if r.ready_at <= now and r.takes_new(now) and not r.queue:
            r.advance_to(now)
            was_busy = bool(r.running)
            self._start(r, job)
            if not was_busy:
                self._rebalance(r.gpu)
            return self._reschedule(r)
        r.queue.append(job)
        return []

    def _on_ready(self, r: _Replica) -> list:
        if not r.alive:
            return []
        return self._fill(r)

    def _on_completion(self, r: _Replica) -> list:
        now = self.engine.now
        r.advance_to(now)
        running = r.running
        while running and running[0][0] <= r.v + 1e-6:
            _, _, job = heapq.heappop(running)
            if r.static:
                r.parked.append(job)
            else:
                self._complete(job, r)
        if r.static and not running:
            for job in r.parked:
                self._complete(job, r)
            r.parked.clear()
        return self._fill(r, was_busy=True)

    def _fill(self, r: _Replica, *, was_busy: bool | None = None) -> list:
        now = self.engine.now
        r.advance_to(now)
        if was_busy is None:
            was_busy = bool(r.running)
        if r.takes_new(now):
            while r.queue and len(r.running) < r.max_batch:
                self._start(r, r.queue.popleft())
        if was_busy != bool(r.running):
            self._rebalance(r.gpu)
        return self._reschedule(r)

    def _start(self, r: _Replica, job: _Job) -> None:
        now = self.engine.now
        i = job.i
        job.start_t = now
        job.cold_s = max(0.0, min(r.ready_at, now) - job.join_t)
        r.stall_work += self._setup_h200[i] * r.svc.compute_ratio
        if not r.running:
            r.batch_t = now
        r.seq += 1
        heapq.heappush(r.running, (r.v + self._iters[i], r.seq, job))

    def _reschedule(self, r: _Replica) -> list:
        r.version += 1
        if not r.running:
            return []
        left = r.running[0][0] - r.v
        work = r.stall_work + (left * r.svc.iter_s(len(r.running)) if left > 0 else 0.0)
        return [_Completion(self.engine.now + work / r.share_eff, r, r.version)]

    def _complete(self, job: _Job, r: _Replica) -> None:
        now = self.engine.now
        i = job.i
        if not self.net.reachable(r.site, int(self._cell_site[i])):
            self._refuse(job, "result_unreachable")
            return
        back = self.net_out_s(i, r)
        out = self.out
        job.backhaul_s += back
        out.latency_s[i] = now + back + self._downlink[i] - self._arrival[i]
        out.site[i] = r.site
        out.uplink_s[i] = self._uplink[i] + self._downlink[i]
        out.backhaul_s[i] = job.backhaul_s
        out.cold_s[i] = job.cold_s
        out.queue_s[i] = job.start_t - job.join_t - job.cold_s
        out.infer_s[i] = now - job.start_t
        out.done_s[i] = now
        self._done_t.append(now)
        self._done_i.append(i)
        self._done_r.append(r.id)
        self._unfinished -= 1

    def _refuse(self, job: _Job, reason: RefusalReason) -> None:
        i = job.i
        self.out.refused[i] = _REASON_CODE[reason]
        self.out.done_s[i] = self.engine.now
        self._refused_t.append(self.engine.now)
        self._refused_i.append(i)
        self._unfinished -= 1

    def _redispatch(self, job: _Job) -> list:
        job.redispatches += 1
        if job.redispatches > self.scenario.control.max_redispatches:
            self._refuse(job, "preempted_too_often")
            return []
        return self._dispatch(job, first=False)

    def _on_city_event(self, ev: CityEvent) -> list:
        follow: list = []
        if ev.kind in ("site_down", "site_up"):
            assert ev.site is not None
            si = self._site_index[ev.site]
            if ev.kind == "site_down":
                for gpu in self._gpus[si]:
                    for r in list(gpu.replicas):
                        follow += self._remove(r)
            self.net.set_site(ev.site, ev.kind == "site_up")
        else:
            assert ev.link is not None
            self.net.set_link(ev.link[0], ev.link[1], ev.kind == "link_up")
        return follow

    # ---- deployment -----------------------------------------------------------------------------

    def _apply_action(
        self, a: DeploymentAction
    ) -> tuple[str | None, DeploymentAction | None, _Replica | None]:
        if a.site not in self._site_index:
            return f"unknown site {a.site!r}", None, None
        if a.model not in self._model_index:
            return f"unknown model {a.model!r}", None, None
        si = self._site_index[a.site]
        mi = self._model_index[a.model]
        if not self.net.site_up(a.site):
            return f"site {a.site} is down", None, None
        if a.gpu_index is not None and a.gpu_index >= len(self._gpus[si]):
            return f"site {a.site} has no GPU {a.gpu_index}", None, None
        here = [
            r for g in self._gpus[si] for r in g.replicas
            if r.model == mi and (a.gpu_index is None or r.gpu.index == a.gpu_index)
        ]  # fmt: skip
        if a.op == "load":
            return self._load_action(a, si, mi)
        if not here:
            return f"no replica of {a.model} at {a.site}", None, None
        if a.op == "unload":
            victim = min(here, key=lambda r: (r.outstanding(), r.id))
            self._schedule_all(self._remove(victim))
            return None, a.model_copy(update={"gpu_index": victim.gpu.index}), None
        for r in here:
            max_batch = a.max_batch or r.max_batch
            extra = r.spec.memory_gb(max_batch) - r.memory_gb
            if extra > r.gpu.free_memory_gb() + _EPS:
                return (
                    f"{a.model} at batch {max_batch} needs {extra:.1f} GB more than GPU "
                    f"{r.gpu.index} of {a.site} has free",
                    None,
                    None,
                )
        for r in here:
            r.advance_to(self.now)
            r.max_batch = a.max_batch or r.max_batch
            r.memory_gb = r.spec.memory_gb(r.max_batch)
            r.share = a.compute_share
            self._rebalance(r.gpu)
            self._schedule_all(self._fill(r))
        return None, a, None

    def _load_action(
        self, a: DeploymentAction, si: int, mi: int
    ) -> tuple[str | None, DeploymentAction | None, _Replica | None]:
        spec = self._models[mi]
        r = self._load(si, mi, a.gpu_index, a.compute_share, a.max_batch)
        if r is None:
            return (
                f"{spec.name} needs {spec.memory_gb(1):.1f} GB at batch 1; no GPU at "
                f"{a.site} has that free",
                None,
                None,
            )
        done = a.model_copy(update={"gpu_index": r.gpu.index, "max_batch": r.max_batch})
        return None, done, r

    def _load(
        self, si: int, mi: int, gpu_index: int | None, share: float, max_batch: int | None,
        *, warm: bool = False,
    ) -> _Replica | None:  # fmt: skip
        """Place a replica; warm at time 0 (initial placement), else after its load time."""
        spec = self._models[mi]
        gpus = self._gpus[si] if gpu_index is None else [self._gpus[si][gpu_index]]
        fits = [g for g in gpus if g.free_memory_gb() >= spec.memory_gb(1) - _EPS]
        if not fits:
            return None
        gpu = max(fits, key=lambda g: (g.free_memory_gb(), -g.index))
        batch = max_batch or spec.max_batch
        while batch > 1 and spec.memory_gb(batch) > gpu.free_memory_gb() + _EPS:
            batch -= 1
        site = self.scenario.sites[si]
        now = self.now
        ready_at = now if warm else now + load_s(spec, site.load_gbps)
        svc = service_model(spec, gpu.type, self.scenario.engine)
        r = _Replica(self._next_replica_id, si, mi, gpu, spec, svc, batch, share, ready_at)
        r.last_t = now
        self._next_replica_id += 1
        gpu.replicas.append(r)
        self._replicas_by_model[mi].append(r)
        self._rebalance(gpu)
        if ready_at > now:
            self.engine.schedule(_Ready(ready_at, r))
        return r

    def _remove(self, r: _Replica) -> list:
        """Take a replica off its GPU; its waiting and running prompts are re-dispatched."""
        r.advance_to(self.now)
        r.alive = False
        r.version += 1
        r.gpu.replicas.remove(r)
        self._replicas_by_model[r.model].remove(r)
        self._rebalance(r.gpu)
        jobs = r.parked + [j for _, _, j in r.running] + list(r.queue)
        r.running.clear()
        r.parked = []
        r.queue.clear()
        follow: list = []
        for job in jobs:
            follow += self._redispatch(job)
        return follow

    def _rebalance(self, gpu: _Gpu) -> None:
        """Work-conserving weighted sharing: busy replicas split the GPU in proportion to their
        `compute_share`; a replica alone with work gets the whole GPU."""
        busy = sum(r.share for r in gpu.replicas if r.running)
        for r in gpu.replicas:
            new = r.share / (busy if r.running else busy + r.share)
            if abs(new - r.share_eff) > _EPS:
                r.advance_to(self.now)
                r.share_eff = new
                self._schedule_all(self._reschedule(r))

    def _schedule_all(self, events: list) -> None:
        for e in events:
            self.engine.schedule(e)

    def _all_replicas(self) -> list[_Replica]:
        return [r for gpus in self._gpus for g in gpus for r in g.replicas]

    def _deployment(self, r: _Replica) -> Deployment:
        return Deployment(
            replica_id=r.id,
            site=self.scenario.sites[r.site].name,
            model=r.spec.name,
            gpu_index=r.gpu.index,
            state="ready" if r.ready_at <= self.now else "loading",
            ready_at_s=r.ready_at,
            compute_share=r.share,
            max_batch=r.max_batch,
            memory_gb=r.memory_gb,
        )

    def _site_telemetry(self, si: int, busy: list[float]) -> SiteTelemetry:
        gpus = self._gpus[si]
        reps = [r for g in gpus for r in g.replicas]
        return SiteTelemetry(
            site=self.scenario.sites[si].name,
            up=self.net.site_up(self.scenario.sites[si].name),
            gpus=[
                GpuTelemetry(
                    index=g.index,
                    type=g.type.name,
                    memory_gb=g.type.memory_gb,
                    free_memory_gb=max(0.0, g.free_memory_gb()),
                    compute_share_free=max(0.0, 1.0 - sum(r.share for r in g.replicas)),
                )
                for g in gpus
            ],
            loaded_models=sorted({r.spec.name for r in reps}),
            queue_len=sum(len(r.queue) + r.inbound for r in reps),
            running=sum(len(r.running) for r in reps),
            busy_share=float(np.mean(busy)) if busy else 0.0,
        )
