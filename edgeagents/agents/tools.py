"""The agents' tools: facts and ranked candidate actions computed from telemetry.

The LM never does arithmetic. These functions compute demand, slowdowns, memory fit and the
twin's predictions, and hand the agents short ranked menus; the deterministic fallback takes
the first entry of each menu.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from functools import cache
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from edgeagents.agents.twin import Prediction, WhatIf
from edgeagents.core.profiles import service_model
from edgeagents.core.scenario import Scenario
from edgeagents.core.state import (
    Deployment,
    DeploymentAction,
    EngineRegime,
    GpuType,
    ModelSpec,
    Plan,
    Prompt,
    ReplicaTelemetry,
    RoutingPolicy,
    SiteTelemetry,
    SiteWeight,
    Telemetry,
)
from edgeagents.sim.workload import typical_prompt


class _Tool(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelFact(_Tool):
    """One model's situation, as an agent's prompt shows it."""

    model: str
    demand_per_s: float
    replicas: int
    queue_len: int
    mean_latency_s: float | None
    reference_s: float = Field(description="Stand-alone latency at the nearest capable site.")
    slowdown: float | None = Field(description="Mean latency / reference; 1 = no slowdown.")


class PlanCandidate(_Tool):
    name: str
    actions: list[DeploymentAction]
    prediction: Prediction


class RoutingCandidate(_Tool):
    name: str
    routing: RoutingPolicy
    prediction: Prediction


class ActionSet(_Tool):
    name: str
    actions: list[DeploymentAction]
    note: str = ""


# ---- per-model facts ---------------------------------------------------------------------------


def typical_standalone_s(scenario: Scenario, model: ModelSpec, gpu: GpuType) -> float:
    """Stand-alone service time of a typical prompt of `model` on a whole `gpu`."""
    return _standalone_s(model, gpu, scenario.engine, typical_prompt(scenario, model.name))


@cache
def _standalone_s(model: ModelSpec, gpu: GpuType, regime: EngineRegime, p: Prompt) -> float:
    svc = service_model(model, gpu, regime)
    t = svc.standalone_s(
        p.input_tokens, p.output_tokens, p.images, p.audio_s, p.resolution_px, p.steps
    )
    return float(t)


def model_facts(telemetry: Telemetry, references: dict[str, float]) -> list[ModelFact]:
    """Demand, replicas, latency and slowdown per model, from the telemetry window."""
    facts = []
    for m in telemetry.models:
        ref = references.get(m.model, 0.0)
        slow = m.mean_latency_s / ref if m.mean_latency_s is not None and ref > 0 else None
        facts.append(
            ModelFact(
                model=m.model,
                demand_per_s=m.arrivals_per_s,
                replicas=m.replicas,
                queue_len=m.queue_len,
                mean_latency_s=m.mean_latency_s,
                reference_s=ref,
                slowdown=slow,
            )
        )
    return facts


# ---- the layout: replicas on GPUs, for tentative moves ----------------------------------------


class Layout:
    """Replicas per GPU with free memory, updated by tentative actions (no simulation)."""

    def __init__(self, telemetry: Telemetry, scenario: Scenario) -> None:
        self.scenario = scenario
        self.catalogue = scenario.gpu_catalogue
        self.gpus: dict[tuple[str, int], GpuType] = {}
        self.free: dict[tuple[str, int], float] = {}
        self.up = {s.site for s in telemetry.sites if s.up}
        self.per_site_limit = telemetry.replicas_per_model_site
        for s in telemetry.sites:
            for g in s.gpus:
                self.gpus[(s.site, g.index)] = self.catalogue[g.type]
                self.free[(s.site, g.index)] = g.free_memory_gb
        self.replicas: list[Deployment] = [r.deployment for r in telemetry.replicas]

    def tenants(self, key: tuple[str, int]) -> int:
        return sum(1 for d in self.replicas if (d.site, d.gpu_index) == key)

    def count(self, model: str) -> int:
        return sum(1 for d in self.replicas if d.model == model)

    def at_limit(self, model: str, site: str) -> bool:
        """Whether the city takes no more replicas of `model` at `site` (the Ray Serve city
        holds one per pair)."""
        if self.per_site_limit is None:
            return False
        held = sum(1 for d in self.replicas if (d.site, d.model) == (site, model))
        return held >= self.per_site_limit

    def fits(self, model: ModelSpec, key: tuple[str, int]) -> bool:
        return (
            key[0] in self.up
            and self.free[key] >= model.memory_gb(1)
            and not self.at_limit(model.name, key[0])
        )

    def apply(self, action: DeploymentAction) -> bool:
        """Apply a load or unload tentatively; False if it cannot be done."""
        spec = self.scenario.model(action.model)
        if action.op == "load":
            key = (action.site, action.gpu_index or 0)
            if key not in self.free or not self.fits(spec, key):
                return False
            batch = spec.max_batch
            while batch > 1 and spec.memory_gb(batch) > self.free[key]:
                batch -= 1
            mem = spec.memory_gb(batch)
            self.free[key] -= mem
            self.replicas.append(
                Deployment(
                    replica_id=-1 - len(self.replicas),
                    site=action.site,
                    model=action.model,
                    gpu_index=key[1],
                    state="loading",
                    ready_at_s=0.0,
                    compute_share=action.compute_share,
                    max_batch=batch,
                    memory_gb=mem,
                )
            )
            return True
        if action.op == "unload":
            for d in self.replicas:
                if (d.site, d.model) == (action.site, action.model) and (
                    action.gpu_index is None or d.gpu_index == action.gpu_index
                ):
                    self.replicas.remove(d)
                    self.free[(d.site, d.gpu_index)] += d.memory_gb
                    return True
            return False
        return True


def speed_at(layout: Layout, spec: ModelSpec, key: tuple[str, int]) -> float:
    """Typical prompts per second of service on that GPU, shared with its tenants."""
    t = typical_standalone_s(layout.scenario, spec, layout.gpus[key])
    return 1.0 / (t * (1 + layout.tenants(key)))


def placement_of(telemetry: Telemetry) -> dict[str, list[str]]:
    """Site -> models of its replicas (one entry per replica), as running now."""
    out: dict[str, list[str]] = {s.site: [] for s in telemetry.sites}
    for r in telemetry.replicas:
        out.setdefault(r.deployment.site, []).append(r.deployment.model)
    return {s: sorted(ms) for s, ms in out.items()}


def describe_moves(actions: Sequence[DeploymentAction]) -> str:
    """Moves as a short line, e.g. `load llm@a/gpu0; unload asr@b/gpu1`."""
    return "; ".join(f"{a.op} {a.model}@{a.site}/gpu{a.gpu_index}" for a in actions) or "hold"


# ---- routing --------------------------------------------------------------------------------


def routing_strategies(telemetry: Telemetry, scenario: Scenario) -> dict[str, RoutingPolicy]:
    """Candidate routing policies: every replica alike (the router then picks by predicted
    latency), fast GPUs preferred, and only GPUs within twice the fastest's time."""
    catalogue = scenario.gpu_catalogue
    gpu_type = {(s.site, g.index): g.type for s in telemetry.sites for g in s.gpus}
    up = {s.site for s in telemetry.sites if s.up}
    speed: dict[str, dict[str, float]] = defaultdict(dict)
    for r in telemetry.replicas:
        d = r.deployment
        if d.site not in up:
            continue
        spec = scenario.model(d.model)
        t = typical_standalone_s(scenario, spec, catalogue[gpu_type[(d.site, d.gpu_index)]])
        speed[d.model][d.site] = max(speed[d.model].get(d.site, 0.0), 1.0 / t)
    even = {m: [SiteWeight(site=s, weight=1.0) for s in sorted(v)] for m, v in speed.items()}
    fast = {
        m: [SiteWeight(site=s, weight=(v[s] / max(v.values())) ** 2) for s in sorted(v)]
        for m, v in speed.items()
    }
    near_best = {
        m: [
            SiteWeight(site=s, weight=1.0 if v[s] >= 0.5 * max(v.values()) else 0.0)
            for s in sorted(v)
        ]
        for m, v in speed.items()
    }
    return {
        "even": RoutingPolicy(routes=even),
        "fast-preferred": RoutingPolicy(routes=fast),
        "fast-only": RoutingPolicy(routes=near_best),
    }


def rank_routing(
    whatif: WhatIf,
    telemetry: Telemetry,
    scenario: Scenario,
    router: str = "weighted",
    *,
    tolerance: float = 0.02,
) -> list[RoutingCandidate]:
    """Each routing strategy run through the twin; best first; near-ties merged."""
    current = [r.deployment for r in telemetry.replicas]
    out = [
        RoutingCandidate(
            name=name,
            routing=policy,
            prediction=whatif.evaluate(current, router=router, routing=policy),
        )
        for name, policy in routing_strategies(telemetry, scenario).items()
    ]
    return _distinct(sorted(out, key=lambda c: c.prediction.score()), tolerance)


def _distinct(menu: list[RoutingCandidate], tolerance: float = 0.02) -> list[RoutingCandidate]:
    """Options the twin cannot tell apart are one option: a score within `tolerance` of one
    already kept is below what a one-minute forecast workload resolves."""
    out: list[RoutingCandidate] = []
    for c in menu:
        score = c.prediction.score()
        if all(abs(score - k.prediction.score()) > tolerance * k.prediction.score() for k in out):
            out.append(c)
    return out


# ---- deployment at one site -----------------------------------------------------------------


class SiteIndex(NamedTuple):
    """Telemetry by site, made once per telemetry: each of a thousand deployers reads its own
    site's part without a pass over the whole city."""

    sites: dict[str, SiteTelemetry]
    replicas: dict[str, list[ReplicaTelemetry]]
    placed: frozenset[str]
    """Models with at least one replica in the city."""


_indexed: list[tuple[Telemetry, SiteIndex]] = []


def site_index(telemetry: Telemetry) -> SiteIndex:
    """The `SiteIndex` of `telemetry` (kept for the latest telemetry only)."""
    if _indexed and _indexed[0][0] is telemetry:
        return _indexed[0][1]
    replicas: dict[str, list[ReplicaTelemetry]] = defaultdict(list)
    for r in telemetry.replicas:
        replicas[r.deployment.site].append(r)
    index = SiteIndex(
        sites={s.site: s for s in telemetry.sites},
        replicas=dict(replicas),
        placed=frozenset(r.deployment.model for r in telemetry.replicas),
    )
    _indexed[:] = [(telemetry, index)]
    return index


def share_actions(
    site: str, telemetry: Telemetry, plan: Plan | None, skip_gpus: set[int] | None = None
) -> list[DeploymentAction]:
    """Compute shares for co-located replicas at `site`, in proportion to their model's demand
    times its fairness priority; only where the share would move by more than 0.1, and not on
    GPUs that planned moves are about to change."""
    demand = {m.model: m.arrivals_per_s for m in telemetry.models}
    priority = plan.priorities if plan is not None else {}
    by_gpu: dict[int, list[Deployment]] = defaultdict(list)
    for r in site_index(telemetry).replicas.get(site, []):
        by_gpu[r.deployment.gpu_index].append(r.deployment)
    actions = []
    for gpu, reps in sorted(by_gpu.items()):
        if len(reps) < 2 or gpu in (skip_gpus or set()):
            continue
        want = {d.model: demand.get(d.model, 0.0) * priority.get(d.model, 1.0) + 1e-3 for d in reps}
        total = sum(want.values())
        for d in reps:
            share = round(max(0.1, min(1.0, want[d.model] / total)), 2)
            if abs(share - d.compute_share) > 0.1:
                actions.append(
                    DeploymentAction(
                        site=site, model=d.model, op="configure", gpu_index=gpu, compute_share=share
                    )
                )
    return actions


def recovery_actions(site: str, telemetry: Telemetry, scenario: Scenario) -> list[DeploymentAction]:
    """If a model has no replica anywhere, load it here when this site is the fastest live
    site with room (every deployer computes the same answer, so exactly one acts)."""
    placed = site_index(telemetry).placed
    if all(m in placed for m in scenario.model_names):
        return []
    layout = Layout(telemetry, scenario)
    actions = []
    for spec in scenario.models:
        if layout.count(spec.name) > 0:
            continue
        room = [k for k in layout.gpus if layout.fits(spec, k)]
        if not room:
            continue
        best = max(room, key=lambda k: (speed_at(layout, spec, k), layout.free[k], k))
        if best[0] == site:
            action = DeploymentAction(site=site, model=spec.name, op="load", gpu_index=best[1])
            layout.apply(action)
            actions.append(action)
    return actions


def deployer_menu(
    site: str,
    telemetry: Telemetry,
    scenario: Scenario,
    plan: Plan | None,
    pending: Sequence[DeploymentAction],
    *,
    retune: bool = True,
) -> list[ActionSet]:
    """What the deployer of `site` may do now, best first. Empty sets are dropped, so a menu
    of one entry means there is nothing to decide. Compute shares are retuned only when asked
    (the graph asks when a new plan arrives), so demand noise does not churn them."""
    recover = recovery_actions(site, telemetry, scenario)
    touched = {a.gpu_index for a in pending if a.gpu_index is not None}
    shares = share_actions(site, telemetry, plan, touched) if retune and not recover else []
    full = ActionSet(
        name="plan+shares+recovery",
        actions=[*pending, *recover, *shares],
        note=f"{len(pending)} planned, {len(recover)} recovery, {len(shares)} share changes",
    )
    menu = [full]
    if shares and (pending or recover):
        menu.append(ActionSet(name="plan+recovery", actions=[*pending, *recover]))
    menu.append(ActionSet(name="hold", actions=[], note="change nothing this tick"))
    return [m for k, m in enumerate(menu) if m.actions or k == len(menu) - 1]
