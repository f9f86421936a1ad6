"""The control-plane baselines: the static controller, and the reactive autoscaler's decisions
on hand-built telemetry (thresholds, delays, memory, the replicas it keeps) and on the
simulated city."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from conftest import make_workload, tiny_scenario
from pydantic import ValidationError

from edgeagents.core.scenario import Scenario
from edgeagents.core.state import (
    Deployment,
    DeploymentAction,
    GpuTelemetry,
    ModelTelemetry,
    ReplicaTelemetry,
    SiteTelemetry,
    Telemetry,
)
from edgeagents.policies import ROUTERS
from edgeagents.policies.deployment import (
    CONTROLLERS,
    AutoscaleConfig,
    AutoscaleController,
    Controller,
    StaticController,
)
from edgeagents.sim.city import SimulatedCity

SC = tiny_scenario()
"""Sites a and b (an H200 each) and c (an L4); `llm` has max_batch 8, so the autoscaler's
target is 0.5 * 8 = 4 ongoing prompts per replica."""
LLM = SC.model("llm")
TWO_MODELS = tiny_scenario(models=[LLM.model_dump(), {**LLM.model_dump(), "name": "llm2"}])
NOW = AutoscaleConfig(upscale_delay_s=0.0, downscale_delay_s=0.0)
"""No delays: each decision is the thresholds' alone."""


@dataclass
class Rep:
    id: int
    site: str
    model: str = "llm"
    queue: int = 0
    running: int = 0
    state: str = "ready"
    gpu: int = 0


def telemetry(
    t: float,
    reps: list[Rep],
    scenario: Scenario = SC,
    *,
    free: dict[str, float] | None = None,
    down: tuple[str, ...] = (),
) -> Telemetry:
    """Telemetry at `t`: the replicas given (each reserving the model's memory at its default
    batch), every GPU's free memory what they leave unless `free` (site -> GB) says."""
    catalogue = scenario.gpu_catalogue
    replicas = []
    used: dict[tuple[str, int], float] = {}
    for r in reps:
        spec = scenario.model(r.model)
        mem = spec.memory_gb(spec.max_batch)
        used[(r.site, r.gpu)] = used.get((r.site, r.gpu), 0.0) + mem
        d = Deployment(
            replica_id=r.id,
            site=r.site,
            model=r.model,
            gpu_index=r.gpu,
            state=r.state,
            ready_at_s=t if r.state == "ready" else t + 10.0,
            compute_share=1.0,
            max_batch=spec.max_batch,
            memory_gb=mem,
        )
        replicas.append(
            ReplicaTelemetry(
                deployment=d, queue_len=r.queue, running=r.running, busy_share=0.5, served=0
            )
        )
    sites = []
    for s in scenario.sites:
        types = [slot.type for slot in s.gpus for _ in range(slot.count)]
        gpus = []
        for k, name in enumerate(types):
            total = catalogue[name].memory_gb
            left = (free or {}).get(s.name, total - used.get((s.name, k), 0.0))
            gpus.append(
                GpuTelemetry(
                    index=k, type=name, memory_gb=total, free_memory_gb=left, compute_share_free=0
                )
            )
        sites.append(
            SiteTelemetry(
                site=s.name,
                up=s.name not in down,
                gpus=gpus,
                loaded_models=[],
                queue_len=0,
                running=0,
                busy_share=0.0,
            )
        )
    models = [
        ModelTelemetry(
            model=m.name, arrivals_per_s=0.0, arrivals_per_s_by_cell={}, served=0, refused=0,
            queue_len=0, replicas=sum(r.model == m.name for r in reps),
        )
        for m in scenario.models
    ]  # fmt: skip
    return Telemetry(time_s=t, window_s=30.0, sites=sites, replicas=replicas, models=models)


def load(site: str, model: str = "llm", gpu: int = 0) -> DeploymentAction:
    return DeploymentAction(site=site, model=model, op="load", gpu_index=gpu)


def unload(site: str, model: str = "llm", gpu: int = 0) -> DeploymentAction:
    return DeploymentAction(site=site, model=model, op="unload", gpu_index=gpu)


# ---- the registry and the static controller ---------------------------------------------------


def test_controllers_registry() -> None:
    assert CONTROLLERS.names() == ["static", "autoscale"]
    assert type(CONTROLLERS.create("static")) is StaticController
    a, b = CONTROLLERS.create("autoscale"), CONTROLLERS.create("autoscale")
    assert type(a) is AutoscaleController and a is not b, "controllers keep per-episode history"
    assert a.config == AutoscaleConfig()


def test_static_keeps_the_placement_whatever_the_load() -> None:
    t = telemetry(42.0, [Rep(0, "a", queue=500, running=8)])
    decision = StaticController().decide(t, SC)
    assert decision.time_s == 42.0
    assert decision.actions == [] and decision.routing is None
    [record] = decision.records
    assert (record.agent, record.path, record.rationale) == ("static", "baseline", "keep placement")


def test_a_controller_without_decide_or_step_says_so() -> None:
    class Bare(Controller):
        name = "bare"

    with pytest.raises(NotImplementedError, match="Bare implements neither decide nor step"):
        Bare().decide(telemetry(0.0, []), SC)


def test_autoscale_config_is_strict() -> None:
    with pytest.raises(ValidationError):
        AutoscaleConfig(target_ongoing_share=0.0)
    with pytest.raises(ValidationError):
        AutoscaleConfig(min_replicas=-1)
    with pytest.raises(ValidationError):
        AutoscaleConfig(upscale_delay=5.0)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        NOW.min_replicas = 3  # type: ignore[misc]


# ---- scaling up ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("queue", "running", "loads"),
    [(0, 0, False), (2, 2, False), (3, 2, True), (0, 5, True), (5, 0, True)],
)
def test_autoscale_adds_a_replica_only_above_the_target(queue, running, loads) -> None:
    """Ongoing = queued + running; 4 (the target) keeps one replica, 5 wants two."""
    t = telemetry(0.0, [Rep(0, "a", queue=queue, running=running)])
    decision = AutoscaleController(NOW).decide(t, SC)
    assert decision.actions == ([load("b")] if loads else [])
    assert decision.records[0].rationale == ("+llm@b (ongoing 5)" if loads else "hold")


def test_autoscale_target_is_at_least_one_prompt() -> None:
    """A share of 0.01 of batch 8 is 0.08 prompts; the target is floored at 1, so 2 ongoing
    prompts on one replica want a second, 1 does not."""
    cfg = NOW.model_copy(update={"target_ongoing_share": 0.01})
    assert (
        AutoscaleController(cfg).decide(telemetry(0.0, [Rep(0, "a", running=1)]), SC).actions == []
    )
    two = telemetry(0.0, [Rep(0, "a", running=2)])
    assert AutoscaleController(cfg).decide(two, SC).actions == [load("b")]


def test_autoscale_counts_ongoing_prompts_over_all_replicas() -> None:
    """3 + 6 ongoing on two replicas: 9 / 4 wants three. a and b hold one tenant each (989 / 2
    TFLOP/s) and the same free memory: the first, a, takes it."""
    reps = [Rep(0, "a", queue=1, running=2), Rep(1, "b", queue=2, running=4)]
    decision = AutoscaleController(NOW).decide(telemetry(0.0, reps), SC)
    assert decision.actions == [load("a")]
    assert decision.records[0].rationale == "+llm@a (ongoing 9)"
    busy = telemetry(0.0, [Rep(0, "a", running=4), Rep(1, "b", running=4)])
    assert AutoscaleController(NOW).decide(busy, SC).actions == [], "8 / 4: two are enough"


def test_autoscale_places_on_the_most_compute_per_tenant() -> None:
    """a's H200 already has a tenant (989 / 2 TFLOP/s), b's is empty (989), c is an L4 (121)."""
    t = telemetry(0.0, [Rep(0, "a", queue=20)])
    assert AutoscaleController(NOW).decide(t, SC).actions == [load("b")]
    b_down = telemetry(0.0, [Rep(0, "a", queue=20)], down=("b",))
    assert AutoscaleController(NOW).decide(b_down, SC).actions == [load("a")]


def test_autoscale_respects_gpu_memory() -> None:
    """llm needs 17.13 GB at batch 1: b with 17 GB free is skipped for a, then c."""
    need = LLM.memory_gb(1)
    assert need == pytest.approx(16.06 + 1.0 + 131072 * 512 / 1e9)
    reps = [Rep(0, "a", queue=20)]
    tight = telemetry(0.0, reps, free={"b": need - 0.1})
    assert AutoscaleController(NOW).decide(tight, SC).actions == [load("a")]
    only_c = telemetry(0.0, reps, free={"a": 0.0, "b": need - 0.1})
    assert AutoscaleController(NOW).decide(only_c, SC).actions == [load("c")]
    exact = telemetry(0.0, reps, free={"a": 0.0, "b": need, "c": 0.0})
    assert AutoscaleController(NOW).decide(exact, SC).actions == [load("b")], "batch 1 fits"
    full = telemetry(0.0, reps, free={"a": 0.0, "b": need - 0.1, "c": 1.0})
    decision = AutoscaleController(NOW).decide(full, SC)
    assert decision.actions == [] and decision.records[0].rationale == "hold"


def test_autoscale_books_memory_and_tenants_within_one_tick() -> None:
    """Both models want a replica. b fits one (20 GB free): llm takes it; llm2 then sees b with
    2.4 GB left and goes to c, although b's H200 has more compute per tenant."""
    reps = [Rep(0, "a", queue=20), Rep(1, "a", model="llm2", queue=20)]
    t = telemetry(0.0, reps, TWO_MODELS, free={"a": 0.0, "b": 20.0})
    decision = AutoscaleController(NOW).decide(t, TWO_MODELS)
    assert decision.actions == [load("b"), load("c", "llm2")]
    roomy = telemetry(0.0, reps, TWO_MODELS, free={"a": 0.0, "b": 100.0})
    decision = AutoscaleController(NOW).decide(roomy, TWO_MODELS)
    assert decision.actions == [load("b"), load("b", "llm2")], "989 / 2 still beats 121"


def test_autoscale_adds_one_replica_per_model_per_tick() -> None:
    t = telemetry(0.0, [Rep(0, "a", queue=100)])  # wants 26 replicas
    assert AutoscaleController(NOW).decide(t, SC).actions == [load("b")]


def test_autoscale_waits_for_demand_to_stay_high() -> None:
    ctl = AutoscaleController(AutoscaleConfig(upscale_delay_s=10.0))
    high = [Rep(0, "a", queue=20)]
    assert ctl.decide(telemetry(0.0, high), SC).actions == []
    assert ctl.decide(telemetry(9.9, high), SC).actions == []
    assert ctl.decide(telemetry(10.0, high), SC).actions == [load("b")]
    again = [Rep(0, "a", queue=20), Rep(1, "b", state="loading")]
    assert ctl.decide(telemetry(15.0, again), SC).actions == [], "the delay restarts after a load"
    assert ctl.decide(telemetry(25.0, again), SC).actions == [load("a")], "a ties b, first"


def test_autoscale_forgets_a_high_spell_that_ends() -> None:
    ctl = AutoscaleController(AutoscaleConfig(upscale_delay_s=10.0))
    high, calm = [Rep(0, "a", queue=20)], [Rep(0, "a", queue=1)]
    assert ctl.decide(telemetry(0.0, high), SC).actions == []
    assert ctl.decide(telemetry(5.0, calm), SC).actions == []
    assert ctl.decide(telemetry(10.0, high), SC).actions == [], "high again only since 10 s"
    assert ctl.decide(telemetry(19.0, high), SC).actions == []
    assert ctl.decide(telemetry(20.0, high), SC).actions == [load("b")]


def test_autoscale_loads_up_to_min_replicas() -> None:
    cfg = NOW.model_copy(update={"min_replicas": 2})
    assert AutoscaleController(cfg).decide(telemetry(0.0, [Rep(0, "a")]), SC).actions == [load("b")]
    assert AutoscaleController(NOW).decide(telemetry(0.0, []), SC).actions == [load("a")], (
        "no replica at all: a, the first of the two empty H200s (ties keep the first)"
    )


# ---- scaling down ---------------------------------------------------------------------------


def test_autoscale_unloads_an_idle_surplus_replica_after_the_delay() -> None:
    ctl = AutoscaleController(AutoscaleConfig(downscale_delay_s=60.0))
    idle = [Rep(0, "a"), Rep(1, "b")]
    assert ctl.decide(telemetry(0.0, idle), SC).actions == []
    assert ctl.decide(telemetry(59.0, idle), SC).actions == []
    decision = ctl.decide(telemetry(60.0, idle), SC)
    assert decision.actions == [unload("b")], "one only, the newest (highest id) first"
    assert decision.records[0].rationale == "-llm@b"


def test_autoscale_never_unloads_the_last_replica() -> None:
    ctl = AutoscaleController(NOW)
    for t in (0.0, 100.0, 10_000.0):
        assert ctl.decide(telemetry(t, [Rep(0, "a")]), SC).actions == []


def test_autoscale_without_a_floor_unloads_the_last_idle_replica() -> None:
    ctl = AutoscaleController(NOW.model_copy(update={"min_replicas": 0}))
    assert ctl.decide(telemetry(0.0, [Rep(0, "a")]), SC).actions == [unload("a")]


def test_autoscale_keeps_replicas_the_demand_needs() -> None:
    """5 ongoing want two replicas: of three, one goes, and never the busy one."""
    reps = [Rep(0, "a"), Rep(1, "b", queue=1, running=4), Rep(2, "c")]
    decision = AutoscaleController(NOW).decide(telemetry(0.0, reps), SC)
    assert decision.actions == [unload("c")]
    reps = [Rep(0, "a"), Rep(1, "b"), Rep(2, "c", running=1)]
    decision = AutoscaleController(NOW).decide(telemetry(0.0, reps), SC)
    assert decision.actions == [unload("b"), unload("a")], "two idle of three, one needed"


def test_autoscale_restarts_the_idle_clock_when_a_replica_works() -> None:
    ctl = AutoscaleController(AutoscaleConfig(downscale_delay_s=60.0))
    idle = [Rep(0, "a"), Rep(1, "b")]
    working = [Rep(0, "a"), Rep(1, "b", running=1)]
    assert ctl.decide(telemetry(0.0, idle), SC).actions == []
    assert ctl.decide(telemetry(30.0, working), SC).actions == []
    assert ctl.decide(telemetry(40.0, idle), SC).actions == []
    decision = ctl.decide(telemetry(60.0, idle), SC)
    assert decision.actions == [unload("a")], "b idle only since 40 s; a since 0 s"


def test_autoscale_never_unloads_a_loading_replica() -> None:
    ctl = AutoscaleController(NOW)
    reps = [Rep(0, "a"), Rep(1, "b", state="loading")]
    assert unload("b") not in ctl.decide(telemetry(0.0, reps), SC).actions
    reps = [Rep(0, "a", running=1), Rep(1, "b", state="loading")]
    assert ctl.decide(telemetry(1.0, reps), SC).actions == []
    for t in (2.0, 1000.0):
        assert ctl.decide(telemetry(t, [Rep(1, "b", state="loading")]), SC).actions == []


# ---- on the simulated city --------------------------------------------------------------------


def backlog_city() -> SimulatedCity:
    rows = [{"arrival_s": 0.01 * k, "input_tokens": 512, "output_tokens": 200} for k in range(60)]
    city = SimulatedCity(SC, make_workload(SC, rows), ROUTERS.create("greedy"))
    city.advance(1.0)
    return city


def test_autoscale_step_loads_a_replica_under_a_real_backlog() -> None:
    city = backlog_city()
    before = city.observe()
    ongoing = sum(r.queue_len + r.running for r in before.replicas)
    assert ongoing > 4, "the backlog is above one replica's target"
    decision, report = AutoscaleController(NOW).step(city, SC, charge_decision_time=False)
    assert decision.actions == [load("b")]
    assert [(a.op, a.site) for a in report.applied] == [("load", "b")]
    assert report.refused == []
    after = city.observe()
    assert sorted(r.deployment.site for r in after.replicas) == ["a", "b"]
    assert next(r for r in after.replicas if r.deployment.site == "b").deployment.state == (
        "loading"
    )


def test_static_step_changes_nothing_in_the_simulated_city() -> None:
    city = backlog_city()
    decision, report = StaticController().step(city, SC, charge_decision_time=5.0)
    assert decision.actions == []
    assert report.applied == [] and report.refused == []
    assert city.now == 6.0, "a fixed charge delays every decision, however quick"
    StaticController().step(city, SC, charge_decision_time=True)
    assert city.now == 6.0, "charged its wall time: a baseline takes none"
    assert [r.deployment.site for r in city.observe().replicas] == ["a"]


def test_autoscale_over_an_episode_scales_up_then_back_down() -> None:
    """A burst of 60 prompts, then silence: the autoscaler adds replicas while the backlog
    lasts and removes the idle ones later, keeping one; every prompt is served."""
    city = backlog_city()
    ctl = AutoscaleController(AutoscaleConfig(upscale_delay_s=0.0, downscale_delay_s=20.0))
    counts = []
    while city.now < 200.0:
        ctl.step(city, SC, charge_decision_time=False)
        counts.append(len(city.observe().replicas))
        city.advance(city.now + 5.0)
    assert max(counts) >= 2
    assert counts[-1] == 1
    assert min(counts) >= 1
    assert not np.isnan(city.out.latency_s).any()
