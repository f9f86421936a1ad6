"""How prompts move through the city: the choice of a replica for each prompt (admission
checks, then the router), its join, batch and completion there, its outcome, and the failures
and repairs that re-route the prompts they strand. What a prompt costs where is in `costs`.

`Dispatcher` is the event engine's world: the events below fire on it. It is apart from `city`
(the environment protocol and deployment) so that the life of a prompt reads in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from edgeagents.sim.candidates import Candidates, typical
from edgeagents.sim.costs import Pricing
from edgeagents.sim.engine import Engine
from edgeagents.sim.outcomes import REASON_CODE, EpisodeOutcomes
from edgeagents.sim.replica import EPS, Job

if TYPE_CHECKING:
    from edgeagents.core.dataplane import CityView, Router
    from edgeagents.core.scenario import CityEvent, Scenario
    from edgeagents.core.state import RefusalReason
    from edgeagents.sim.network import Network
    from edgeagents.sim.replica import Fleet, Gpu, Replica
    from edgeagents.sim.workload import Workload


class _Arrival:
    __slots__ = ("i", "time")
    priority: ClassVar[int] = 3

    def __init__(self, time: float, i: int) -> None:
        self.time = time
        self.i = i

    def fire(self, world: Dispatcher) -> list:
        return world._on_arrival(self.i)

    def __repr__(self) -> str:
        return f"arrival(prompt={self.i})"


class _Join:
    __slots__ = ("job", "replica", "time")
    priority: ClassVar[int] = 2

    def __init__(self, time: float, job: Job, replica: Replica) -> None:
        self.time = time
        self.job = job
        self.replica = replica

    def fire(self, world: Dispatcher) -> list:
        return world._on_join(self.job, self.replica)

    def __repr__(self) -> str:
        return f"join(prompt={self.job.i}, replica={self.replica.id})"


class _Completion:
    __slots__ = ("replica", "time", "version")
    priority: ClassVar[int] = 1

    def __init__(self, time: float, replica: Replica, version: int) -> None:
        self.time = time
        self.replica = replica
        self.version = version

    def fire(self, world: Dispatcher) -> list:
        if self.version != self.replica.version:
            return []
        return world._on_completion(self.replica)

    def __repr__(self) -> str:
        return f"completion(replica={self.replica.id})"


class _Ready:
    __slots__ = ("replica", "time")
    priority: ClassVar[int] = 1

    def __init__(self, time: float, replica: Replica) -> None:
        self.time = time
        self.replica = replica

    def fire(self, world: Dispatcher) -> list:
        return world._on_ready(self.replica)

    def __repr__(self) -> str:
        return f"ready(replica={self.replica.id})"


class _Failure:
    __slots__ = ("event", "time")
    priority: ClassVar[int] = 0

    def __init__(self, event: CityEvent) -> None:
        self.time = event.at_s
        self.event = event

    def fire(self, world: Dispatcher) -> list:
        return world._on_city_event(self.event)

    def __repr__(self) -> str:
        return f"{self.event.kind}({self.event.site or self.event.link})"


class Dispatcher:
    """The prompts of one episode on their way through the city, and their outcomes (`out`).

    Args:
        scenario: The validated scenario.
        workload: The prompts of this episode.
        router: Picks a replica for each prompt among those that admit it.
        view: What the router is shown of the city (the `SimulatedCity` that owns this).
        net: The city's network; failures and repairs change it.
        fleet: The city's GPUs and replicas (placed by the city, served here).
        trace: Keep a readable event trace in `engine.trace`.
    """

    def __init__(
        self,
        scenario: Scenario,
        workload: Workload,
        router: Router,
        view: CityView,
        net: Network,
        fleet: Fleet,
        *,
        trace: bool = False,
    ) -> None:
        self.scenario = scenario
        self.router = router
        self.view = view
        self.net = net
        self.fleet = fleet
        self.engine = Engine(self, trace=trace)
        n = len(workload)
        w = workload
        self.costs = Pricing(scenario, w, net, fleet.models)
        models = len(fleet.models)
        self.candidates = Candidates(
            net, typical(self.costs.setup_h200_s, w.model, models),
            typical(self.costs.iterations, w.model, models),
        )  # fmt: skip
        self.arrival = w.arrival_s
        self.model = w.model.astype(np.int64)
        self._cell_site = self.costs.cell_site
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
        self.done_t: list[float] = []
        """Completion times, ascending; `done_i` and `done_r` hold the prompt and replica."""
        self.done_i: list[int] = []
        self.done_r: list[int] = []
        self.refused_t: list[float] = []
        """Refusal times, ascending; `refused_i` holds the prompt."""
        self.refused_i: list[int] = []
        self.unfinished = n
        """Prompts not yet served or refused (including those not yet arrived)."""
        self.first_routed = 0
        """Prompts before this one wait at a replica from the start (`wait_at_start`)."""

    def wait_at_start(self, backlog: list[tuple[Replica, int]]) -> None:
        """The workload's first prompts join the given replicas at time 0, `k` at each, in
        order, without routing: a backlog carried over from the live city."""
        i = self.first_routed
        for r, k in backlog:
            for _ in range(k):
                r.inbound += 1
                self.engine.schedule(_Join(0.0, Job(i), r))
                i += 1
        self.first_routed = i

    def schedule_inputs(self) -> None:
        """Schedule the first routed arrival (each arrival schedules the next) and the
        scenario's failures and repairs."""
        if self.first_routed < len(self.arrival):
            i = self.first_routed
            self.engine.schedule(_Arrival(float(self.arrival[i]), i))
        for ev in self.scenario.events:
            self.engine.schedule(_Failure(ev))

    # ---- per-prompt figures -------------------------------------------------------------------

    def prompt_model(self, i: int) -> int:
        return int(self.model[i])

    def prompt_site(self, i: int) -> int:
        """The site whose base station serves the prompt's cell."""
        return int(self._cell_site[i])

    # ---- replicas entering and leaving service ---------------------------------------------

    def add(self, r: Replica) -> None:
        """Put a placed replica on its GPU and in service (a loading one from its ready time)."""
        r.gpu.replicas.append(r)
        self.fleet.by_model[r.model].append(r)
        self.candidates.fleet_version += 1
        self.rebalance(r.gpu)
        if r.ready_at > self.engine.now:
            self.engine.schedule(_Ready(r.ready_at, r))

    def remove(self, r: Replica) -> list:
        """Take a replica off its GPU; its waiting and running prompts are re-dispatched."""
        r.advance_to(self.engine.now)
        r.alive = False
        r.version += 1
        r.gpu.replicas.remove(r)
        self.fleet.by_model[r.model].remove(r)
        self.candidates.fleet_version += 1
        self.rebalance(r.gpu)
        jobs = r.parked + [j for _, _, j in r.running] + list(r.queue)
        r.running.clear()
        r.parked = []
        r.queue.clear()
        follow: list = []
        for job in jobs:
            follow += self._redispatch(job)
        return follow

    def rebalance(self, gpu: Gpu) -> None:
        """Work-conserving weighted sharing: busy replicas split the GPU in proportion to their
        `compute_share`; a replica alone with work gets the whole GPU."""
        busy = sum(r.share for r in gpu.replicas if r.running)
        for r in gpu.replicas:
            new = r.share / (busy if r.running else busy + r.share)
            if abs(new - r.share_eff) > EPS:
                r.advance_to(self.engine.now)
                r.share_eff = new
                self.schedule_all(self._reschedule(r))

    def schedule_all(self, events: list) -> None:
        for e in events:
            self.engine.schedule(e)

    # ---- event handlers ----------------------------------------------------------------------

    def _on_arrival(self, i: int) -> list:
        follow = self._dispatch(Job(i), first=True)
        if i + 1 < len(self.arrival):
            follow.append(_Arrival(float(self.arrival[i + 1]), i + 1))
        return follow

    def _dispatch(self, job: Job, *, first: bool) -> list:
        now = self.engine.now
        i = job.i
        mi = int(self.model[i])
        reps = self.fleet.by_model[mi]
        if not reps:
            self._refuse(job, "model_not_deployed")
            return []
        src = int(self._cell_site[i])
        if not self.net.site_up(self.scenario.sites[src].name):
            self._refuse(job, "site_failed")
            return []
        open_ = self.candidates.admitting(
            src, mi, reps, self.scenario.control.max_queue_per_replica
        )
        if isinstance(open_, str):
            self._refuse(job, open_)
            return []
        ready = [r for r in open_ if r.ready_at <= now]
        r = self.router.route(i, ready or open_, self.view)
        net = self.costs.net_in_s(i, r)
        job.backhaul_s += net
        r.inbound += 1
        delay = net + (self.costs.uplink_s[i] if first else 0.0)
        return [_Join(now + delay, job, r)]

    def _on_join(self, job: Job, r: Replica) -> list:
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
                self.rebalance(r.gpu)
            return self._reschedule(r)
        r.queue.append(job)
        return []

    def _on_ready(self, r: Replica) -> list:
        if not r.alive:
            return []
        return self.fill(r)

    def _on_completion(self, r: Replica) -> list:
        r.advance_to(self.engine.now)
        for job in r.pop_done():
            self._complete(job, r)
        return self.fill(r, was_busy=True)

    def fill(self, r: Replica, *, was_busy: bool | None = None) -> list:
        """Start waiting prompts on `r` while its batch takes them; the events that follow."""
        now = self.engine.now
        r.advance_to(now)
        if was_busy is None:
            was_busy = bool(r.running)
        if r.takes_new(now):
            while r.queue and len(r.running) < r.max_batch:
                self._start(r, r.queue.popleft())
        if was_busy != bool(r.running):
            self.rebalance(r.gpu)
        return self._reschedule(r)

    def _start(self, r: Replica, job: Job) -> None:
        i = job.i
        r.start(job, self.engine.now, self.costs.setup_h200_s[i], self.costs.iterations[i])

    def _reschedule(self, r: Replica) -> list:
        r.version += 1
        if not r.running:
            return []
        return [_Completion(r.next_done_s(self.engine.now), r, r.version)]

    def _complete(self, job: Job, r: Replica) -> None:
        now = self.engine.now
        i = job.i
        if not self.net.reachable(r.site, int(self._cell_site[i])):
            self._refuse(job, "result_unreachable")
            return
        back = self.costs.net_out_s(i, r)
        out = self.out
        job.backhaul_s += back
        out.latency_s[i] = now + back + self.costs.downlink_s[i] - self.arrival[i]
        out.site[i] = r.site
        out.uplink_s[i] = self.costs.uplink_s[i] + self.costs.downlink_s[i]
        out.backhaul_s[i] = job.backhaul_s
        out.cold_s[i] = job.cold_s
        out.queue_s[i] = job.start_t - job.join_t - job.cold_s
        out.infer_s[i] = now - job.start_t
        out.done_s[i] = now
        self.done_t.append(now)
        self.done_i.append(i)
        self.done_r.append(r.id)
        self.unfinished -= 1

    def _refuse(self, job: Job, reason: RefusalReason) -> None:
        i = job.i
        self.out.refused[i] = REASON_CODE[reason]
        self.out.done_s[i] = self.engine.now
        self.refused_t.append(self.engine.now)
        self.refused_i.append(i)
        self.unfinished -= 1

    def _redispatch(self, job: Job) -> list:
        job.redispatches += 1
        if job.redispatches > self.scenario.control.max_redispatches:
            self._refuse(job, "preempted_too_often")
            return []
        return self._dispatch(job, first=False)

    def _on_city_event(self, ev: CityEvent) -> list:
        follow: list = []
        if ev.kind in ("site_down", "site_up"):
            assert ev.site is not None
            si = self.fleet.site_index[ev.site]
            if ev.kind == "site_down":
                for gpu in self.fleet.gpus[si]:
                    for r in list(gpu.replicas):
                        follow += self.remove(r)
            self.net.set_site(ev.site, ev.kind == "site_up")
        else:
            assert ev.link is not None
            self.net.set_link(ev.link[0], ev.link[1], ev.kind == "link_up")
        return follow
