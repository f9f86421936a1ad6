"""The simulated city: a discrete-event implementation of the environment protocol.

Latency of a prompt p of model m from cell c served at site s (DESIGN.md):
`uplink + backhaul(c->s) + queue + cold start + inference + backhaul(s->c) + downlink`.
Each replica batches at iteration level in analytic form: its running prompts advance together
through a shared iteration counter whose rate is `1 / iter_s(batch)`; a prompt joining the batch
first stalls the replica for its setup (prefill, encoders). GPU memory is a hard limit; a loading
replica serves nothing until its weights are on the GPU.

This module holds `SimulatedCity`: observe, apply (deployment) and advance. The replicas and
their batcher are in `replica`, the prompts' way through the city in `dispatch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from edgeagents.core.profiles import load_s, service_model
from edgeagents.core.state import (
    ApplyReport,
    Decision,
    Deployment,
    DeploymentAction,
    RefusedAction,
    RoutingPolicy,
    Telemetry,
    in_apply_order,
)
from edgeagents.sim.dispatch import Dispatcher
from edgeagents.sim.network import Network
from edgeagents.sim.outcomes import REASON_CODE, EpisodeOutcomes
from edgeagents.sim.replica import EPS, Fleet, Replica
from edgeagents.sim.telemetry import Observer

if TYPE_CHECKING:
    from edgeagents.core.dataplane import Router
    from edgeagents.core.scenario import Scenario
    from edgeagents.sim.workload import Workload

__all__ = ["EpisodeOutcomes", "SimulatedCity"]


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
        backlog: Prompts already waiting at time 0 at each of `deployments`, in order: the
            workload's first `sum(backlog)` prompts, joined to their replica without routing
            (a what-if copy starts from the live queues, not empty ones). If a deployment
            does not fit, those prompts are routed as arrivals at time 0.
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
        backlog: Sequence[int] = (),
    ) -> None:
        self.scenario = scenario
        self.workload = workload
        self.router = router
        self.rng = np.random.default_rng(seed)
        self.net = Network(scenario)
        self.routing = RoutingPolicy()
        self.fleet = Fleet(scenario)
        self.dispatch = Dispatcher(
            scenario, workload, router, self, self.net, self.fleet, trace=trace
        )
        self.engine = self.dispatch.engine
        self.out = self.dispatch.out
        self.observer = Observer(scenario, workload, self.dispatch, self.fleet, self.net)
        self._changes = 0
        """Bumped by whatever may change the telemetry (advancing, actions, finishing)."""
        self._next_replica_id = 0
        if deployments is None:
            for site, placed in scenario.placement.items():
                for model in placed:
                    si, mi = self.fleet.site_index[site], self.fleet.model_index[model]
                    self._load(si, mi, None, 1.0, None, warm=True)
        else:
            placed: list[Replica | None] = []
            for d in deployments:
                si, mi = self.fleet.site_index[d.site], self.fleet.model_index[d.model]
                placed.append(
                    self._load(si, mi, d.gpu_index, d.compute_share, d.max_batch, warm=True)
                )
            ready = [r for r in placed if r is not None]
            if len(ready) == len(placed):
                self.dispatch.wait_at_start(list(zip(ready, backlog, strict=False)))
        self.dispatch.schedule_inputs()

    # ---- environment protocol -------------------------------------------------------------

    @property
    def now(self) -> float:
        return self.engine.now

    @property
    def unfinished(self) -> int:
        """Prompts not yet served or refused (including those not yet arrived)."""
        return self.dispatch.unfinished

    @property
    def event_trace(self) -> list[tuple[float, str]]:
        return list(self.engine.trace or [])

    def advance(self, until: float) -> None:
        """Run the city until `until` (simulated seconds)."""
        self._changes += 1
        self.engine.run(until)

    def apply(self, decision: Decision) -> ApplyReport:
        """Apply a decision now: the routing policy, then unloads, reconfigurations, loads."""
        if decision.routing is not None:
            self.routing = decision.routing
        if decision.actions:
            self._changes += 1
        applied: list[DeploymentAction] = []
        refused: list[RefusedAction] = []
        load_times: dict[int, float] = {}
        for action in in_apply_order(decision.actions):
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
        return self.observer.observe(self.now, self._changes)

    def finish(self) -> EpisodeOutcomes:
        """Refuse whatever has not ended (`episode_ended`) and return every prompt's outcome."""
        left = np.flatnonzero(np.isnan(self.out.latency_s) & (self.out.refused < 0))
        self.out.refused[left] = REASON_CODE["episode_ended"]
        self.dispatch.unfinished = 0
        self._changes += 1
        for r in self.fleet.replicas():
            r.version += 1
        return self.out

    # ---- read-only views used by routers and controllers ------------------------------------

    def replicas_of(self, model: int) -> list[Replica]:
        return self.fleet.by_model[model]

    def model_index(self, name: str) -> int:
        return self.fleet.model_index[name]

    def site_index(self, name: str) -> int:
        return self.fleet.site_index[name]

    def net_in_s(self, i: int, r: Replica) -> float:
        return self.dispatch.costs.net_in_s(i, r)

    def net_out_s(self, i: int, r: Replica) -> float:
        return self.dispatch.costs.net_out_s(i, r)

    def predict_s(self, i: int, r: Replica) -> float:
        """Predicted end-to-end latency of prompt i if sent to replica r now."""
        return self.dispatch.costs.predict_s(i, r, self.engine.now)

    def prompt_model(self, i: int) -> int:
        return self.dispatch.prompt_model(i)

    def prompt_site(self, i: int) -> int:
        """The site whose base station serves the prompt's cell."""
        return self.dispatch.prompt_site(i)

    # ---- deployment -----------------------------------------------------------------------------

    def _apply_action(
        self, a: DeploymentAction
    ) -> tuple[str | None, DeploymentAction | None, Replica | None]:
        if a.site not in self.fleet.site_index:
            return f"unknown site {a.site!r}", None, None
        if a.model not in self.fleet.model_index:
            return f"unknown model {a.model!r}", None, None
        si = self.fleet.site_index[a.site]
        mi = self.fleet.model_index[a.model]
        if not self.net.site_up(a.site):
            return f"site {a.site} is down", None, None
        if a.gpu_index is not None and a.gpu_index >= len(self.fleet.gpus[si]):
            return f"site {a.site} has no GPU {a.gpu_index}", None, None
        here = [
            r for g in self.fleet.gpus[si] for r in g.replicas
            if r.model == mi and (a.gpu_index is None or r.gpu.index == a.gpu_index)
        ]  # fmt: skip
        if a.op == "load":
            return self._load_action(a, si, mi)
        if not here:
            return f"no replica of {a.model} at {a.site}", None, None
        if a.op == "unload":
            victim = min(here, key=lambda r: (r.outstanding(), r.id))
            self.dispatch.schedule_all(self.dispatch.remove(victim))
            return None, a.model_copy(update={"gpu_index": victim.gpu.index}), None
        for r in here:
            max_batch = a.max_batch or r.max_batch
            extra = r.spec.memory_gb(max_batch) - r.memory_gb
            if extra > r.gpu.free_memory_gb() + EPS:
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
            self.dispatch.candidates.share_version += 1
            self.dispatch.rebalance(r.gpu)
            self.dispatch.schedule_all(self.dispatch.fill(r))
        return None, a, None

    def _load_action(
        self, a: DeploymentAction, si: int, mi: int
    ) -> tuple[str | None, DeploymentAction | None, Replica | None]:
        spec = self.fleet.models[mi]
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
    ) -> Replica | None:  # fmt: skip
        """Place a replica; warm at time 0 (initial placement), else after its load time."""
        spec = self.fleet.models[mi]
        gpus = self.fleet.gpus[si] if gpu_index is None else [self.fleet.gpus[si][gpu_index]]
        fits = [g for g in gpus if g.free_memory_gb() >= spec.memory_gb(1) - EPS]
        if not fits:
            return None
        gpu = max(fits, key=lambda g: (g.free_memory_gb(), -g.index))
        batch = max_batch or spec.max_batch
        while batch > 1 and spec.memory_gb(batch) > gpu.free_memory_gb() + EPS:
            batch -= 1
        site = self.scenario.sites[si]
        now = self.now
        ready_at = now if warm else now + load_s(spec, site.load_gbps)
        svc = service_model(spec, gpu.type, self.scenario.engine)
        r = Replica(self._next_replica_id, si, mi, gpu, spec, svc, batch, share, ready_at)
        r.last_t = now
        self._next_replica_id += 1
        self.dispatch.add(r)
        return r
