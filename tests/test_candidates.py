"""Candidate pruning: a router is shown at most ROUTE_CANDIDATES replicas of a model, the ones
soonest to serve with empty queues; a city with fewer replicas routes exactly as before."""

from __future__ import annotations

import numpy as np
import pytest

from edgeagents.core.region import RegionSpec, generate_region
from edgeagents.core.scenario import load_scenario
from edgeagents.policies import ROUTERS
from edgeagents.sim.candidates import PRUNE_ABOVE, ROUTE_CANDIDATES
from edgeagents.sim.city import SimulatedCity
from edgeagents.sim.workload import generate_workload


def _run(scenario, workload, router: str, *, pruned: bool) -> tuple[SimulatedCity, object]:
    """An episode with the default pruning, or with every replica shown (the full scan)."""
    city = SimulatedCity(scenario, workload, ROUTERS.create(router), seed=0)
    if not pruned:
        city.dispatch.candidates.limit = city.dispatch.candidates.prune_above = 10**9
    city.advance(float(workload.arrival_s[-1]) + 120.0)
    return city, city.finish()


@pytest.mark.parametrize("router", ["greedy", "round-robin", "least-loaded", "power-of-two"])
def test_a_small_city_routes_every_prompt_as_the_full_scan(router: str) -> None:
    sc = load_scenario("bristol")
    w = generate_workload(sc, duration_s=120, seed=3)
    _, pruned = _run(sc, w, router, pruned=True)
    _, full = _run(sc, w, router, pruned=False)
    assert np.array_equal(pruned.site, full.site)
    assert np.allclose(pruned.latency_s, full.latency_s, equal_nan=True)


@pytest.fixture(scope="module")
def region():
    sc = generate_region(RegionSpec(sites=100, seed=0))
    return sc, generate_workload(sc, duration_s=20, seed=0)


def _most_replicated(region):
    """A fresh city on the region, its dispatcher, and the model with the most replicas."""
    sc, w = region
    d = SimulatedCity(sc, w, ROUTERS.create("greedy"), seed=0).dispatch
    many = max(range(len(sc.models)), key=lambda m: len(d.fleet.by_model[m]))
    return sc, d, many, d.fleet.by_model[many]


def test_a_region_shows_the_router_at_most_the_limit(region) -> None:
    sc, d, many, reps = _most_replicated(region)
    cands = d.candidates
    assert len(reps) > PRUNE_ABOVE
    src = 0
    shown = cands.admitting(src, many, reps, sc.control.max_queue_per_replica)
    assert isinstance(shown, list) and len(shown) == ROUTE_CANDIDATES
    ranked = cands.ranked(src, many, reps)
    cost = [d.net.latency_s[src, r.site] + cands.own_s(many, r) for r in ranked]
    assert cost == sorted(cost)
    assert shown == ranked[:ROUTE_CANDIDATES]


def test_full_queues_and_cut_links_refuse_with_their_reasons(region) -> None:
    _, d, many, reps = _most_replicated(region)
    assert d.candidates.admitting(0, many, reps, cap=-(10**6)) == "queue_full"
    d.net.latency_s = np.full_like(d.net.latency_s, np.inf)
    d.net.version += 1
    assert d.candidates.admitting(0, many, reps, cap=8) == "no_reachable_replica"


def test_the_ranking_follows_the_network(region) -> None:
    _, d, many, reps = _most_replicated(region)
    before = d.candidates.ranked(0, many, reps)
    first = before[0]
    d.net.latency_s = d.net.latency_s.copy()
    d.net.latency_s[0, first.site] = np.inf
    d.net.version += 1
    after = d.candidates.ranked(0, many, reps)
    assert after[-1] is first and after[0] is not first


def test_pruning_costs_little_latency_on_a_region(region) -> None:
    sc, w = region
    _, pruned = _run(sc, w, "greedy", pruned=True)
    _, full = _run(sc, w, "greedy", pruned=False)
    for out in (pruned, full):
        assert int(np.isfinite(out.latency_s).sum() + (out.refused >= 0).sum()) == len(w)
    mean = [float(np.nanmean(o.latency_s)) for o in (pruned, full)]
    assert mean[0] <= mean[1] * 1.05


def test_a_model_under_the_pruning_bound_is_routed_over_every_replica(region) -> None:
    sc, d, many, reps = _most_replicated(region)
    reps = reps[:PRUNE_ABOVE]
    assert len(reps) > ROUTE_CANDIDATES
    shown = d.candidates.admitting(0, many, reps, sc.control.max_queue_per_replica)
    reachable = [r for r in reps if d.net.reachable(0, r.site)]
    assert shown == reachable
