"""Control-plane baselines: what to load and unload at each tick, from telemetry alone."""

from __future__ import annotations

import math
from abc import ABC
from collections import defaultdict
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from edgeagents.core.env import DecisionCharge, Environment, decision_delay_s
from edgeagents.core.scenario import Scenario
from edgeagents.core.state import AgentRecord, ApplyReport, Decision, DeploymentAction, Telemetry
from edgeagents.policies.registry import Registry


class Controller(ABC):
    """Decides at each control tick. One instance per episode (it may keep history).

    Baselines implement `decide` (telemetry in, decision out); `step` observes, decides and
    applies. Controllers that drive the environment themselves (the agents' graph) override
    `step` instead.
    """

    name: ClassVar[str]

    def decide(self, telemetry: Telemetry, scenario: Scenario) -> Decision:
        raise NotImplementedError(f"{type(self).__name__} implements neither decide nor step")

    def step(
        self, env: Environment, scenario: Scenario, *, charge_decision_time: DecisionCharge = True
    ) -> tuple[Decision, ApplyReport]:
        """One control cycle on `env`: observe, decide, apply (after the decision's charged
        time, see `DecisionCharge`)."""
        decision = self.decide(env.observe(), scenario)
        wall = sum(r.wall_s for r in decision.records)
        delay = decision_delay_s(charge_decision_time, wall) if decision.records else 0.0
        if delay > 0:
            env.advance(env.now + delay)
        return decision, env.apply(decision)


class StaticController(Controller):
    """Keeps the scenario's initial placement for the whole episode."""

    name = "static"

    def decide(self, telemetry: Telemetry, scenario: Scenario) -> Decision:
        return Decision(
            time_s=telemetry.time_s,
            records=[AgentRecord(agent=self.name, path="baseline", rationale="keep placement")],
        )


class AutoscaleConfig(BaseModel):
    """Knobs of the reactive autoscaler, named after Ray Serve's autoscaling config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target_ongoing_share: float = Field(
        default=0.5, gt=0, description="Target ongoing prompts per replica, as a share of batch."
    )
    upscale_delay_s: float = Field(default=10.0, ge=0, description="Demand high this long.")
    downscale_delay_s: float = Field(default=60.0, ge=0, description="Replica idle this long.")
    min_replicas: int = Field(default=1, ge=0, description="Per model.")


class AutoscaleController(Controller):
    """Ray-Serve-style reactive autoscaling: add a replica where a model's ongoing prompts pass
    the target (on the GPU with room and the most compute per tenant), remove replicas that
    stay idle."""

    name = "autoscale"

    def __init__(self, config: AutoscaleConfig | None = None) -> None:
        self.config = config or AutoscaleConfig()
        self._high_since: dict[str, float] = {}
        self._idle_since: dict[int, float] = {}

    def decide(self, telemetry: Telemetry, scenario: Scenario) -> Decision:
        cfg = self.config
        now = telemetry.time_s
        actions: list[DeploymentAction] = []
        by_model = defaultdict(list)
        for rt in telemetry.replicas:
            by_model[rt.deployment.model].append(rt)
        free = {
            (s.site, g.index): g.free_memory_gb for s in telemetry.sites if s.up for g in s.gpus
        }
        gpu_type = {(s.site, g.index): g.type for s in telemetry.sites for g in s.gpus}
        tenants: defaultdict[tuple[str, int], int] = defaultdict(int)
        for rt in telemetry.replicas:
            tenants[(rt.deployment.site, rt.deployment.gpu_index)] += 1
        catalogue = scenario.gpu_catalogue
        notes = []
        for spec in scenario.models:
            reps = by_model.get(spec.name, [])
            ongoing = sum(r.queue_len + r.running for r in reps)
            target = max(1.0, cfg.target_ongoing_share * spec.max_batch)
            desired = max(cfg.min_replicas, math.ceil(ongoing / target))
            if desired > len(reps):
                since = self._high_since.setdefault(spec.name, now)
                if now - since >= cfg.upscale_delay_s:
                    need = spec.memory_gb(1)
                    room = [k for k, f in free.items() if f >= need]
                    if room:
                        best = max(
                            room,
                            key=lambda k: (
                                catalogue[gpu_type[k]].bf16_tflops / (1 + tenants[k]),
                                free[k],
                            ),
                        )
                        tenants[best] += 1
                        free[best] -= spec.memory_gb(spec.max_batch)
                        actions.append(
                            DeploymentAction(
                                site=best[0], model=spec.name, op="load", gpu_index=best[1]
                            )
                        )
                        notes.append(f"+{spec.name}@{best[0]} (ongoing {ongoing})")
                        self._high_since.pop(spec.name, None)
            else:
                self._high_since.pop(spec.name, None)
            removable = len(reps) - max(cfg.min_replicas, desired)
            for r in sorted(reps, key=lambda r: r.deployment.replica_id, reverse=True):
                rid = r.deployment.replica_id
                if r.queue_len or r.running or r.deployment.state != "ready":
                    self._idle_since.pop(rid, None)
                    continue
                since = self._idle_since.setdefault(rid, now)
                if removable > 0 and now - since >= cfg.downscale_delay_s:
                    actions.append(
                        DeploymentAction(
                            site=r.deployment.site,
                            model=spec.name,
                            op="unload",
                            gpu_index=r.deployment.gpu_index,
                        )
                    )
                    notes.append(f"-{spec.name}@{r.deployment.site}")
                    removable -= 1
                    self._idle_since.pop(rid, None)
        return Decision(
            time_s=now,
            actions=actions,
            records=[
                AgentRecord(agent=self.name, path="baseline", rationale="; ".join(notes) or "hold")
            ],
        )


CONTROLLERS: Registry[Controller] = Registry("controller")
CONTROLLERS.register(StaticController.name, StaticController)
CONTROLLERS.register(AutoscaleController.name, AutoscaleController)
