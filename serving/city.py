"""`RayServeCity`: the `edgeagents.core.env.Environment` protocol over a running Ray Serve city.

`observe()` asks the gateway for its per-request records and every model server for its
figures; `apply()` sends the routing policy to the gateway and turns deployment actions into
Serve application changes (a load runs a server app pinned to the site and waits until it is
RUNNING, measuring the real load time; an unload deletes it); `advance()` sleeps wall-clock;
`operator_notices()` hands the agents the notices operators posted to the gateway
(`POST /v1/operator/notices`), published on `now`'s clock.

A site is up while some live Ray node offers its `site-<name>` resource (the gateway watches
node liveness). When its node goes, `observe()` reports the site down (`SiteTelemetry.up`,
which makes the planner re-plan), drops its replicas (their app is deleted: Serve cannot place
them anywhere else) and loads there are refused until a node offers the site again.

GPU memory is accounted as in the simulator, from the scenario's GPUs and `ModelSpec.memory_gb`:
an action that cannot fit is refused with a reason, whether or not the machine has such GPUs.
One replica per (model, site): a second load of the same pair is refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeagents.core.notice import Notice
from edgeagents.core.scenario import Scenario, load_scenario
from edgeagents.core.state import (
    ApplyReport,
    Decision,
    Deployment,
    DeploymentAction,
    GpuTelemetry,
    ModelTelemetry,
    RefusedAction,
    ReplicaTelemetry,
    SiteTelemetry,
    Telemetry,
    in_apply_order,
)
from serving.config import (
    BACKEND_FOR_KIND,
    GATEWAY_APP,
    CityAppConfig,
    GatewayConfig,
    ModelServerConfig,
    server_app_name,
)

_EPS = 1e-9


@dataclass
class _Replica:
    id: int
    site: str
    model: str
    gpu_index: int
    max_batch: int
    compute_share: float
    memory_gb: float
    ready_at_s: float


class RayServeCity:
    """The real city the agents steer: same protocol as `SimulatedCity`, wall-clock time.

    Args:
        city: The gateway (scenario, initial placement) and server defaults.
        deploy: Run the gateway and the initial servers now (False: attach to a running city
            whose placement is `city.gateway.placement`, or the scenario's).
        load_timeout_s: A load not RUNNING by then is undone and refused.
    """

    def __init__(
        self,
        city: CityAppConfig | dict[str, Any] | None = None,
        *,
        deploy: bool = True,
        load_timeout_s: float = 180.0,
    ) -> None:
        from ray import serve

        from serving.app import deploy_city

        self.config = CityAppConfig.model_validate(city or {})
        self.scenario: Scenario = load_scenario(self.config.gateway.scenario)
        self.load_timeout_s = load_timeout_s
        self._t0 = time.monotonic()
        self._epoch0 = time.time()
        self._next_id = 0
        self._replicas: dict[tuple[str, str], _Replica] = {}
        self.down_sites: set[str] = set()
        """Sites whose Ray node is gone (as of the last `observe`)."""
        self.site_events: list[tuple[float, str, bool]] = []
        """(time on `now`'s clock, site, up) for each site that went down or came back."""
        self._gpus = {
            s.name: [
                self.scenario.gpu_catalogue[slot.type] for slot in s.gpus for _ in range(slot.count)
            ]
            for s in self.scenario.sites
        }
        placement = self.config.gateway.placement
        if placement is None:
            placement = self.scenario.placement
        for site, models in placement.items():
            for m in models:
                refusal = self._reserve(DeploymentAction(site=site, model=m, op="load"), 0.0)
                if refusal:
                    raise ValueError(f"initial placement: {refusal}")
        if deploy:
            t = time.perf_counter()
            deploy_city(self.config.model_copy(update={"gateway": self._gateway_config()}))
            self.initial_load_s = time.perf_counter() - t
        self._gateway = serve.get_app_handle(GATEWAY_APP)
        self.timeline: list[Decision] = []
        """What changed and when it took effect (seconds on `now`'s clock): each routing
        policy when the gateway had it, each unload when its server stopped taking requests,
        each load or reconfiguration when its server was RUNNING and in the placement."""
        self._t0 = time.monotonic()  # time 0 is when the city serves
        self._epoch0 = time.time()
        # The gateway stamps operator notices on the same clock as `now`.
        self._gateway.set_clock.remote(self._epoch0).result(timeout_s=30)

    # ---- Environment protocol -------------------------------------------------------------

    @property
    def now(self) -> float:
        """Wall-clock seconds since the city started serving."""
        return time.monotonic() - self._t0

    def advance(self, until: float) -> None:
        """Sleep until `until` (seconds on `now`'s clock)."""
        if until < self.now - 1.0:
            raise ValueError(f"advance(until={until:.3f}): now is already {self.now:.3f}")
        time.sleep(max(0.0, until - self.now))

    def apply(self, decision: Decision) -> ApplyReport:
        """Routing to the gateway; unloads, then loads (in parallel, timed), then configures."""
        from ray import serve

        applied: list[DeploymentAction] = []
        refused: list[RefusedAction] = []
        load_s: dict[int, float] = {}
        if decision.routing is not None:
            self._gateway.set_policy.remote(decision.routing.model_dump()).result(timeout_s=30)
            self.timeline.append(Decision(time_s=self.now, routing=decision.routing))
        loads: list[tuple[DeploymentAction, _Replica]] = []
        from serving.app import missing_sites, site_resources_hint

        for a in in_apply_order(decision.actions):
            refusal = self._check(a)
            if refusal is None and a.op == "load" and a.site in self.down_sites:
                refusal = f"site {a.site} is down (its Ray node is gone)"
            if refusal is None and a.op == "load" and missing_sites([a.site]):
                refusal = f"no Ray node for site {a.site}: " + site_resources_hint([a.site])
            if refusal:
                refused.append(RefusedAction(action=a, reason=refusal))
                continue
            if a.op == "unload":
                self._replicas.pop((a.site, a.model))
                self._push_placement()  # no new request goes there
                self.timeline.append(Decision(time_s=self.now, actions=[a]))
                serve.delete(server_app_name(a.model, a.site))
                applied.append(a)
            elif a.op == "load":
                refusal = self._reserve(a, self.now)
                if refusal:
                    refused.append(RefusedAction(action=a, reason=refusal))
                    continue
                loads.append((a, self._replicas[(a.site, a.model)]))
            else:
                r = self._replicas[(a.site, a.model)]
                spec = self.scenario.model(a.model)
                batch = a.max_batch or r.max_batch
                extra = spec.memory_gb(batch) - r.memory_gb
                if extra > self._free_gb(a.site, r.gpu_index) + _EPS:
                    refused.append(
                        RefusedAction(
                            action=a,
                            reason=f"{a.model} at batch {batch} needs {extra:.1f} GB more than "
                            f"GPU {r.gpu_index} of {a.site} has free",
                        )
                    )
                    continue
                r.max_batch, r.memory_gb, r.compute_share = (
                    batch,
                    r.memory_gb + extra,
                    (a.compute_share),
                )
                loads.append((a, r))  # redeploy with the new batch limit
        if loads:
            ready: list[DeploymentAction] = []
            done = self._run_servers([r for _, r in loads])
            for a, r in loads:
                seconds = done.get(r.id)
                if seconds is None:
                    if a.op == "load":
                        self._replicas.pop((r.site, r.model), None)
                        serve.delete(server_app_name(r.model, r.site), _blocking=False)
                    refused.append(
                        RefusedAction(action=a, reason=f"not RUNNING in {self.load_timeout_s} s")
                    )
                    continue
                applied.append(a.model_copy(update={"gpu_index": r.gpu_index}))
                ready.append(a.model_copy(update={"max_batch": r.max_batch}))
                if a.op == "load":
                    load_s[r.id] = seconds
                    r.ready_at_s = self.now
            self._push_placement()
            if ready:
                self.timeline.append(Decision(time_s=self.now, actions=ready))
        return ApplyReport(time_s=self.now, applied=applied, refused=refused, load_s=load_s)

    def observe(self) -> Telemetry:
        """Telemetry over the last `control.window_s` seconds, from the gateway's records and
        the servers' own figures."""
        window = self.scenario.control.window_s
        since = self._epoch0 + max(0.0, self.now - window)
        snap = self._gateway.snapshot.remote().result(timeout_s=60)
        self._follow_sites(set(snap.get("down_sites", [])))
        records = self._gateway.records.remote(since).result(timeout_s=60)
        span = max(min(window, self.now), 1e-6)
        stats = {(s["site"], s["model"]): s for s in snap["servers"]}
        replicas = []
        for (site, model), r in sorted(self._replicas.items()):
            st = stats.get((site, model))
            served = [x for x in records if x["site"] == site and x["model"] == model]
            busy = sum(x["infer_s"] for x in served) / span
            replicas.append(
                ReplicaTelemetry(
                    deployment=Deployment(
                        replica_id=r.id,
                        site=site,
                        model=model,
                        gpu_index=r.gpu_index,
                        state="ready" if st else "loading",
                        ready_at_s=r.ready_at_s,
                        compute_share=r.compute_share,
                        max_batch=r.max_batch,
                        memory_gb=r.memory_gb,
                    ),
                    queue_len=st["queue_len"] if st else 0,
                    running=st["running"] if st else 0,
                    busy_share=min(1.0, busy),
                    served=sum(1 for x in served if x["outcome"] == "served"),
                )
            )
        return Telemetry(
            time_s=self.now,
            window_s=window,
            sites=[self._site_telemetry(s.name, replicas) for s in self.scenario.sites],
            replicas=replicas,
            models=[
                self._model_telemetry(m.name, records, replicas, span) for m in self.scenario.models
            ],
            refusals_by_reason=_count(x["reason"] for x in records if x["outcome"] != "served"),
            replicas_per_model_site=1,
        )

    def operator_notices(self) -> list[Notice]:
        """Notices operators posted to the gateway, validated back into `Notice`s; the
        agents' graph reads them each control cycle (the simulated city has none: its
        notices come from the scenario)."""
        held = self._gateway.notices.remote().result(timeout_s=30)
        return [Notice.model_validate(n) for n in held]

    # ---- helpers --------------------------------------------------------------------------

    def _follow_sites(self, down: set[str]) -> None:
        """A site newly down loses its replicas (their apps deleted, memory freed, the gateway
        told); one back up comes back empty."""
        from ray import serve

        for site in sorted(down ^ self.down_sites):
            self.site_events.append((self.now, site, site not in down))
        gone = [key for key in self._replicas if key[0] in down - self.down_sites]
        self.down_sites = set(down)
        if not gone:
            return
        lost = [DeploymentAction(site=site, model=m, op="unload") for site, m in sorted(gone)]
        for site, m in gone:
            self._replicas.pop((site, m))
        self._push_placement()
        self.timeline.append(Decision(time_s=self.now, actions=lost))
        for a in lost:
            serve.delete(server_app_name(a.model, a.site), _blocking=False)

    @property
    def placement(self) -> dict[str, list[str]]:
        """Site -> models with a replica now."""
        out: dict[str, list[str]] = {}
        for site, model in sorted(self._replicas):
            out.setdefault(site, []).append(model)
        return out

    def _gateway_config(self) -> GatewayConfig:
        return self.config.gateway.model_copy(update={"placement": self.placement})

    def _push_placement(self) -> None:
        self._gateway.set_placement.remote(self.placement).result(timeout_s=30)

    def _free_gb(self, site: str, gpu_index: int) -> float:
        used = sum(
            r.memory_gb
            for r in self._replicas.values()
            if r.site == site and r.gpu_index == gpu_index
        )
        return self._gpus[site][gpu_index].memory_gb - used

    def _check(self, a: DeploymentAction) -> str | None:
        if a.site not in self._gpus:
            return f"unknown site {a.site!r}"
        if a.model not in self.scenario.model_names:
            return f"unknown model {a.model!r}"
        if a.gpu_index is not None and a.gpu_index >= len(self._gpus[a.site]):
            return f"site {a.site} has no GPU {a.gpu_index}"
        here = (a.site, a.model) in self._replicas
        if a.op == "load" and here:
            return f"{a.model} already has a replica at {a.site} (one per site here)"
        if a.op != "load" and not here:
            return f"no replica of {a.model} at {a.site}"
        return None

    def _reserve(self, a: DeploymentAction, now: float) -> str | None:
        """Book GPU memory for a load, as the simulator does; a reason if it cannot fit."""
        refusal = self._check(a)
        if refusal:
            return refusal
        spec = self.scenario.model(a.model)
        indices = range(len(self._gpus[a.site])) if a.gpu_index is None else [a.gpu_index]
        fits = [i for i in indices if self._free_gb(a.site, i) >= spec.memory_gb(1) - _EPS]
        if not fits:
            return (
                f"{a.model} needs {spec.memory_gb(1):.1f} GB at batch 1; no GPU at {a.site} "
                "has that free"
            )
        gpu = max(fits, key=lambda i: (self._free_gb(a.site, i), -i))
        batch = a.max_batch or self.config.max_batch
        while batch > 1 and spec.memory_gb(batch) > self._free_gb(a.site, gpu) + _EPS:
            batch -= 1
        self._replicas[(a.site, a.model)] = _Replica(
            self._next_id, a.site, a.model, gpu, batch, a.compute_share, spec.memory_gb(batch), now
        )
        self._next_id += 1
        return None

    def _server_config(self, r: _Replica) -> ModelServerConfig:
        return ModelServerConfig(
            model=r.model,
            site=r.site,
            backend=BACKEND_FOR_KIND[self.scenario.model(r.model).kind],
            weights_path=self.config.weights.get(r.model),
            max_batch=r.max_batch,
            num_cpus=self.config.num_cpus,
            num_gpus=self.config.num_gpus,
        )

    def _run_servers(self, replicas: list[_Replica]) -> dict[int, float]:
        """Start (or update) server apps together; replica id -> seconds until RUNNING."""
        from ray import serve
        from ray.serve import RunTarget

        from serving.app import build_model_server_app

        names = {server_app_name(r.model, r.site): r for r in replicas}
        targets = [
            RunTarget(
                target=build_model_server_app(self._server_config(r)), name=n, route_prefix=None
            )
            for n, r in names.items()
        ]
        t0 = time.perf_counter()
        serve.run_many(targets, wait_for_applications_running=False)
        done: dict[int, float] = {}
        while len(done) < len(names) and time.perf_counter() - t0 < self.load_timeout_s:
            apps = serve.status().applications
            for n, r in names.items():
                app = apps.get(n)
                if r.id not in done and app is not None and app.status == "RUNNING":
                    done[r.id] = time.perf_counter() - t0
                elif app is not None and app.status == "DEPLOY_FAILED":
                    names = {k: v for k, v in names.items() if k != n}
                    break
            time.sleep(0.2)
        return done

    def _site_telemetry(self, site: str, replicas: list[ReplicaTelemetry]) -> SiteTelemetry:
        here = [r for r in replicas if r.deployment.site == site]
        gpus = []
        for i, g in enumerate(self._gpus[site]):
            on = [r.deployment for r in here if r.deployment.gpu_index == i]
            gpus.append(
                GpuTelemetry(
                    index=i,
                    type=g.name,
                    memory_gb=g.memory_gb,
                    free_memory_gb=self._free_gb(site, i),
                    compute_share_free=max(0.0, 1.0 - sum(d.compute_share for d in on)),
                )
            )
        return SiteTelemetry(
            site=site,
            up=site not in self.down_sites,
            gpus=gpus,
            loaded_models=sorted({r.deployment.model for r in here}),
            queue_len=sum(r.queue_len for r in here),
            running=sum(r.running for r in here),
            busy_share=float(np.mean([r.busy_share for r in here])) if here else 0.0,
        )

    def _model_telemetry(
        self,
        model: str,
        records: list[dict[str, Any]],
        replicas: list[ReplicaTelemetry],
        span: float,
    ) -> ModelTelemetry:
        mine = [x for x in records if x["model"] == model]
        lat = np.array([x["latency_s"] for x in mine if x["outcome"] == "served"])
        by_cell = _count(x["cell"] for x in mine if x["cell"] is not None)
        reps = [r for r in replicas if r.deployment.model == model]

        def pct(q: float) -> float | None:
            return float(np.percentile(lat, q)) if lat.size else None

        return ModelTelemetry(
            model=model,
            arrivals_per_s=len(mine) / span,
            arrivals_per_s_by_cell={c: n / span for c, n in by_cell.items()},
            served=int(lat.size),
            refused=sum(1 for x in mine if x["outcome"] != "served"),
            mean_latency_s=float(lat.mean()) if lat.size else None,
            p50_latency_s=pct(50),
            p95_latency_s=pct(95),
            p99_latency_s=pct(99),
            queue_len=sum(r.queue_len for r in reps),
            replicas=len(reps),
        )


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[str(x)] = out.get(str(x), 0) + 1
    return out
