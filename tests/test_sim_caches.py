"""What the simulator keeps between prompts and ticks for speed gives what computing it afresh
gives: telemetry figures handed out again, rankings from per-model arrays, the reachable prefix,
path reads and a prompt's figures as Python floats."""

from __future__ import annotations

import numpy as np
import pytest

from edgeagents.core.region import RegionSpec, generate_region
from edgeagents.core.scenario import load_scenario
from edgeagents.core.state import Decision, DeploymentAction
from edgeagents.policies import POLICIES, ROUTERS
from edgeagents.sim.city import SimulatedCity
from edgeagents.sim.telemetry import Observer
from edgeagents.sim.workload import generate_workload


def _fresh_sample(city: SimulatedCity):
    """The telemetry from an observer that has kept nothing: every figure built anew."""
    return Observer(city.scenario, city.workload, city.dispatch, city.fleet, city.net).observe(
        city.now, -1
    )


@pytest.fixture(scope="module")
def region():
    sc = generate_region(RegionSpec(sites=100, seed=0))
    return sc, generate_workload(sc, duration_s=20, seed=0)


def _changes(sc, k: int) -> list[DeploymentAction]:
    """Deployment changes at some ticks, so that kept figures of replicas, GPUs and sites
    would go stale if they were not renewed: a load, a new share and batch, a new share
    alone, an unload."""
    site, model = sc.sites[0].name, sc.models[0].name
    if k == 2:
        return [DeploymentAction(op="load", site=site, model=model)]
    if k == 4:
        return [DeploymentAction(op="configure", site=site, model=model, compute_share=0.5,
                                 max_batch=2)]  # fmt: skip
    if k == 5:
        return [DeploymentAction(op="configure", site=site, model=model, compute_share=0.25,
                                 max_batch=2)]  # fmt: skip
    if k == 6:
        return [DeploymentAction(op="unload", site=site, model=model)]
    return []


@pytest.mark.parametrize("scenario", ["bristol-events", "region"])
def test_kept_telemetry_equals_a_fresh_sample_at_every_tick(scenario: str, region) -> None:
    if scenario == "region":
        sc, w = region
        ticks = 8
    else:
        sc = load_scenario(scenario)
        w = generate_workload(sc, duration_s=300, seed=1)
        ticks = 60
    router, controller = POLICIES.create("greedy-autoscale").create()
    city = SimulatedCity(sc, w, router, seed=1)
    applied = 0
    for k in range(1, ticks + 1):
        city.advance(k * sc.control.tick_s)
        _, report = controller.step(city, sc, charge_decision_time=False)
        applied += len(report.applied)
        assert city.observe().model_dump() == _fresh_sample(city).model_dump()
        report = city.apply(Decision(time_s=city.now, actions=_changes(sc, k)))
        applied += len(report.applied)
        assert city.observe().model_dump() == _fresh_sample(city).model_dump()
    assert applied >= 3


def test_a_second_sample_is_the_first_until_the_city_changes() -> None:
    sc = load_scenario("bristol")
    w = generate_workload(sc, duration_s=60, seed=0)
    city = SimulatedCity(sc, w, ROUTERS.create("greedy"), seed=0)
    city.advance(10.0)
    first = city.observe()
    city.apply(Decision(time_s=city.now))
    assert city.observe() is first
    site = sc.sites[0].name
    model = sc.models[0].name
    report = city.apply(
        Decision(time_s=city.now, actions=[DeploymentAction(op="load", site=site, model=model)])
    )
    assert report.applied
    loaded = city.observe()
    assert loaded is not first
    assert len(loaded.replicas) == len(first.replicas) + 1
    city.advance(20.0)
    assert city.observe().time_s == 20.0


def _scalar_ranking(d, src: int, model: int, reps) -> list:
    """The ranking as it was computed before the arrays: per replica, then a stable sort."""
    cost = [d.net.latency_s[src, r.site] + d.candidates.own_s(model, r) for r in reps]
    return [reps[k] for k in np.argsort(cost, kind="stable")]


def _most_replicated(sc, w):
    d = SimulatedCity(sc, w, ROUTERS.create("greedy"), seed=0).dispatch
    many = max(range(len(sc.models)), key=lambda m: len(d.fleet.by_model[m]))
    return d, many, d.fleet.by_model[many]


def test_the_ranking_from_arrays_equals_the_scan_per_replica(region) -> None:
    sc, w = region
    d, many, reps = _most_replicated(sc, w)
    for src in range(0, len(sc.sites), 7):
        assert d.candidates.ranked(src, many, reps) == _scalar_ranking(d, src, many, reps)
    d.net.latency_s = d.net.latency_s.copy()
    d.net.latency_s[3, [r.site for r in reps[::2]]] = np.inf
    d.net.version += 1
    scan = _scalar_ranking(d, 3, many, reps)
    assert d.candidates.ranked(3, many, reps) == scan
    d.candidates.limit = 10**9
    shown = d.candidates.admitting(3, many, reps, cap=10**6)
    assert shown == [r for r in scan if d.net.reachable(3, r.site)]
    assert len(shown) == len(reps) - len(reps[::2])


def test_a_share_change_ranks_every_source_with_the_new_share(region) -> None:
    sc, w = region
    city = SimulatedCity(sc, w, ROUTERS.create("greedy"), seed=0)
    d = city.dispatch
    many = max(range(len(sc.models)), key=lambda m: len(d.fleet.by_model[m]))
    reps = d.fleet.by_model[many]
    d.candidates.ranked(0, many, reps)
    d.candidates.ranked(5, many, reps)
    slowed = [r for r in reps if d.net.latency_s[5, r.site] < 0.004][:4]
    assert slowed
    actions = [
        DeploymentAction(op="configure", site=sc.sites[r.site].name, model=sc.models[many].name,
                         gpu_index=r.gpu.index, compute_share=0.1)
        for r in slowed
    ]  # fmt: skip
    assert not city.apply(Decision(time_s=0.0, actions=actions)).refused
    assert d.candidates.ranked(5, many, reps) == _scalar_ranking(d, 5, many, reps)
    assert d.candidates.ranked(0, many, reps) == _scalar_ranking(d, 0, many, reps)


def test_path_reads_equal_the_array_arithmetic() -> None:
    sc = load_scenario("bristol-events")
    city = SimulatedCity(sc, generate_workload(sc, duration_s=10, seed=0), ROUTERS.create("greedy"))
    net = city.net
    net.set_site(sc.sites[1].name, False)
    n = len(sc.sites)
    for a in range(n):
        for b in range(n):
            for nbytes in (0.0, 1234.5, 3e6):
                with np.errstate(divide="ignore", invalid="ignore"):
                    want = 0.0 if a == b else float(
                        net.latency_s[a, b] + nbytes * 8 / net.bandwidth_bps[a, b]
                    )  # fmt: skip
                    got = net.transfer_s(a, b, nbytes)
                assert got == want or (np.isnan(got) and np.isnan(want))
            assert net.reachable(a, b) == bool(np.isfinite(net.latency_s[a, b]))
    assert not net.reachable(0, 1)


def test_a_prompts_price_equals_the_array_arithmetic() -> None:
    sc = load_scenario("bristol")
    w = generate_workload(sc, duration_s=60, seed=2)
    city = SimulatedCity(sc, w, ROUTERS.create("greedy"), seed=0)
    city.advance(30.0)
    c = city.dispatch.costs
    now = city.now
    reps = city.fleet.replicas()
    for i in [0, 5, 0, len(w) - 1, 7, 7]:
        for r in reps:
            batch = min(len(r.running) + 1, r.max_batch)
            own = c.setup_h200_s[i] * r.svc.compute_ratio / r.share_eff + c.iterations[
                i
            ] * r.iter_eff_s(batch)
            wait = max(r.ready_at - now, 0.0)
            ahead = r.outstanding() - r.max_batch + 1
            if ahead > 0:
                wait += ahead / r.max_batch * own
            src = int(c.cell_site[i])
            net_in = city.net.transfer_s(src, r.site, float(c.bytes_in[i]))
            net_out = city.net.transfer_s(r.site, src, float(c.bytes_out[i]))
            want = c.uplink_s[i] + net_in + wait + own + net_out + c.downlink_s[i]
            assert city.predict_s(i, r) == want
            assert city.net_in_s(i, r) == net_in and city.net_out_s(i, r) == net_out
