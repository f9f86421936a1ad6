"""A stated offered load: `scenario generate --prompts-per-s R` and `bench scale --prompts-per-s`
(demand split by population, GPUs scaled with it), the region twin's prompt cap, and the
pruned candidates spilling over from busy replicas."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeagents.cli import app
from edgeagents.core.region import RegionSpec, demand_scale, generate_region, region_yaml
from edgeagents.core.scenario import Scenario
from edgeagents.experiments.driver import run_episode
from edgeagents.experiments.scale import region_scale
from edgeagents.policies import ROUTERS
from edgeagents.sim.candidates import ROUTE_CANDIDATES
from edgeagents.sim.city import SimulatedCity
from edgeagents.sim.workload import generate_workload


def offered(sc: Scenario) -> float:
    return sum(d.arrivals.rate_per_s for d in sc.workload.demands)


def test_a_stated_rate_is_offered_split_as_the_native_city_and_reproducible() -> None:
    native = generate_region(RegionSpec(sites=100, seed=2))
    spec = RegionSpec(sites=100, seed=2, prompts_per_s=1000)
    sc = generate_region(spec)
    assert offered(sc) == pytest.approx(1000, abs=0.05)
    assert region_yaml(sc, spec) == region_yaml(generate_region(spec), spec)
    assert "--prompts-per-s 1000" in region_yaml(sc, spec).splitlines()[0]
    assert Scenario.from_yaml(region_yaml(sc, spec)).model_dump() == sc.model_dump()
    # the same draws: cells, links and GPU types; the demand mix by model as the native city's
    assert sc.cells == native.cells and sc.links == native.links
    for d, ref in zip(sc.workload.demands, native.workload.demands, strict=True):
        share = ref.arrivals.rate_per_s / offered(native)
        assert d.arrivals.rate_per_s == pytest.approx(share * 1000, rel=1e-3)
    factor = demand_scale(spec, sum(c.users for c in sc.cells))
    assert factor == pytest.approx(1000 / offered(native), rel=1e-3) and factor > 5
    for s, ref in zip(sc.sites, native.sites, strict=True):
        assert [g.type for g in s.gpus] == [g.type for g in ref.gpus]
        assert s.gpus[0].count == math.ceil(ref.gpus[0].count * factor)


def test_capacity_follows_the_load_so_it_is_served() -> None:
    native = generate_region(RegionSpec(sites=100, seed=2))
    sc = generate_region(RegionSpec(sites=100, seed=2, prompts_per_s=1000))
    replicas = [sum(len(v) for v in c.placement.values()) for c in (native, sc)]
    assert replicas[1] > 5 * replicas[0]
    means = []
    for city in (native, sc):
        w = generate_workload(city, duration_s=8, seed=0)
        out = run_episode(city, w, "greedy", seed=0, duration_s=8).outcomes
        assert (out.refused >= 0).sum() == 0 and np.isfinite(out.latency_s).all()
        means.append(float(out.latency_s.mean()))
    assert means[1] < 1.5 * means[0], "the scaled city serves its load about as fast"


@pytest.mark.parametrize(
    ("rate", "expected"),
    [
        ("0", "--prompts-per-s 0.0: input should be greater than 0"),
        ("-5", "--prompts-per-s -5.0: input should be greater than 0"),
        ("nan", "--prompts-per-s nan: input should be a finite number"),
        ("1e9", "at most 64"),
    ],
)
def test_generate_bad_rate_is_one_line_exit_2(tmp_path: Path, rate: str, expected: str) -> None:
    out = tmp_path / "city.yaml"
    res = CliRunner().invoke(
        app, ["scenario", "generate", "--sites", "7", "--prompts-per-s", rate, "--out", str(out)]
    )
    assert res.exit_code == 2
    assert res.stderr.strip().count("\n") == 0 and expected in res.stderr, res.stderr
    assert res.stdout == "" and not out.exists()


def test_generate_cli_offers_the_rate() -> None:
    res = CliRunner().invoke(app, ["scenario", "generate", "--sites", "7", "--prompts-per-s", "70"])
    assert res.exit_code == 0, res.output
    assert offered(Scenario.from_yaml(res.stdout)) == pytest.approx(70, abs=0.01)


def test_bench_scale_offers_the_rate_per_site_at_every_size() -> None:
    r = region_scale([7, 14], prompts_per_s=140, agents=False, target_prompts=300)
    assert [row.rate_per_s for row in r.rows] == [pytest.approx(70, abs=0.01),
                                                  pytest.approx(140, abs=0.01)]  # fmt: skip
    assert r.prompts_per_s == 140
    for row in r.rows:
        assert row.served + row.refused == row.prompts and row.refused == 0
        assert row.gpus > 7 * row.sites / 7 and row.mean_latency_s is not None


def test_bench_scale_cli_default_is_10_per_site(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    res = CliRunner().invoke(
        app, ["bench", "scale", "--sites", "7", "--prompts", "300", "--no-agents",
              "--json", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["prompts_per_s"] == 70 and data["rows"][0]["rate_per_s"] == pytest.approx(70, 0.01)


@pytest.mark.parametrize("rate", ["0", "-1", "nan"])
def test_bench_scale_bad_rate_is_one_line_exit_2(rate: str) -> None:
    res = CliRunner().invoke(app, ["bench", "scale", "--prompts-per-s", rate, "--no-agents"])
    assert res.exit_code == 2
    assert len(res.output.strip().splitlines()) == 1 and "--prompts-per-s" in res.output


def test_a_busy_regions_twin_looks_less_far_ahead() -> None:
    pytest.importorskip("langgraph", reason="needs the `agents` extra")
    from edgeagents.agents.regions import (
        MIN_REGION_HORIZON_S,
        REGION_TWIN_PROMPTS,
        region_horizon_s,
        region_views,
        region_whatif,
    )
    from edgeagents.agents.twin import forecast_demand

    assert region_horizon_s(120.0, 0.0) == 120.0
    assert region_horizon_s(120.0, REGION_TWIN_PROMPTS / 200) == 120.0
    assert region_horizon_s(120.0, REGION_TWIN_PROMPTS / 40) == 40.0
    assert region_horizon_s(120.0, 1e6) == MIN_REGION_HORIZON_S
    sc = generate_region(RegionSpec(sites=30, seed=0, prompts_per_s=400))
    city = SimulatedCity(sc, generate_workload(sc, duration_s=10, seed=0), ROUTERS.create("greedy"))
    city.advance(10.0)
    telemetry = city.observe()
    views = region_views(sc, telemetry, forecast_demand(telemetry))
    assert len(views) == 2
    for view in views:
        whatif = region_whatif(view, [], None, horizon_s=120.0, seed=0)
        assert whatif.horizon_s < 120.0
        assert 0.7 * REGION_TWIN_PROMPTS < len(whatif.workload) < 1.3 * REGION_TWIN_PROMPTS


def busiest_model_replicas():
    """The 100-site region's dispatcher at t=0, its model with the most replicas, and those."""
    sc = generate_region(RegionSpec(sites=100, seed=0))
    d = SimulatedCity(sc, generate_workload(sc, duration_s=5, seed=0), ROUTERS.create("greedy"))
    d = d.dispatch
    many = max(range(len(sc.models)), key=lambda m: len(d.fleet.by_model[m]))
    return sc, d, many, d.fleet.by_model[many]


def test_pruned_candidates_skip_busy_replicas_for_ones_with_a_free_slot() -> None:
    sc, d, many, reps = busiest_model_replicas()
    ranked = d.candidates.ranked(0, many, reps)
    cap = sc.control.max_queue_per_replica
    for r in ranked[:3]:
        r.inbound = r.max_batch  # a full batch on its way: busy, yet its queue admits more
    shown = d.candidates.admitting(0, many, reps, cap)
    assert isinstance(shown, list) and len(shown) == ROUTE_CANDIDATES
    assert shown == ranked[3 : 3 + ROUTE_CANDIDATES], "the next ones with a free slot"
    for r in ranked:
        r.inbound = r.max_batch
    shown = d.candidates.admitting(0, many, reps, cap)
    assert shown == ranked[:ROUTE_CANDIDATES], "all busy: the nearest whose queues admit it"


def test_the_region_scheduler_builds_no_twin_past_its_budget(monkeypatch) -> None:
    pytest.importorskip("langgraph", reason="needs the `agents` extra")
    from edgeagents.agents import region_scheduler
    from graphs.control import create_control_graph

    sc = generate_region(RegionSpec(sites=49, seed=0))  # 9 rings: groups of 4, 4 and 1
    assert len(sc.region_sites) == 3
    built: list[str] = []
    inner = region_scheduler.region_whatif

    def counted(view, *args, **kwargs):
        built.append(view.name)
        return inner(view, *args, **kwargs)

    monkeypatch.setattr(region_scheduler, "region_whatif", counted)
    monkeypatch.setattr(region_scheduler, "TICK_PROMPT_BUDGET", 1)
    env = SimulatedCity(sc, generate_workload(sc, duration_s=5, seed=0), ROUTERS.create("greedy"))
    env.advance(5.0)
    config = {"configurable": {"env": env, "scenario": sc, "charge_decision_time": False},
              "recursion_limit": 50}  # fmt: skip
    state = create_control_graph(None).compile().invoke({}, config=config)
    routed = [r.agent for r in state["decision"].records if r.agent.startswith("scheduler:")]
    assert len(routed) == 1, "the budget lets the first region in line through"
    assert len(built) == 2, "the next one is priced and stops the line; the third is not built"
    assert {w.site for ws in state["routing"].routes.values() for w in ws}, "routes in force"


def test_past_the_nearest_a_pruned_prompt_looks_at_replicas_spread_down_the_ranking() -> None:
    sc, d, many, reps = busiest_model_replicas()
    cands, cap = d.candidates, sc.control.max_queue_per_replica
    cands.scan, cands.spread = 4, 4  # the window: 4 nearest, then 4 spaced evenly
    ranked = cands.ranked(0, many, reps)
    step = (len(ranked) - 4) // 4
    assert step > 1
    for r in ranked:
        r.inbound = r.max_batch
    far = ranked[4 + 2 * step]  # in the window
    far.inbound = 0
    shown = cands.admitting(0, many, reps, cap)
    assert shown[0] is far and len(shown) == ROUTE_CANDIDATES
    far.inbound = far.max_batch
    ranked[5].inbound = 0  # outside the window: not looked at while the window fills the limit
    shown = cands.admitting(0, many, reps, cap)
    assert ranked[5] not in shown and shown[:4] == ranked[:4]
