"""The data-plane routers, on hand-built city views whose answers are known, and on the
simulated city."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from conftest import make_workload, tiny_scenario

from edgeagents.core.scenario import Scenario
from edgeagents.core.state import RoutingPolicy, SiteWeight
from edgeagents.policies.routing import (
    ROUTERS,
    GreedyRouter,
    LeastLoadedRouter,
    NearestRouter,
    PowerOfTwoRouter,
    RandomRouter,
    RoundRobinRouter,
    WeightedRouter,
)
from edgeagents.sim.city import SimulatedCity

SC = tiny_scenario()
"""Sites a (0), b (1), c (2); one model, `llm` (0)."""


@dataclass
class Replica:
    """A `ReplicaView`: what a router may read of a replica."""

    id: int
    site: int = 0
    max_batch: int = 8
    load: int = 0

    def outstanding(self) -> int:
        return self.load


@dataclass
class City:
    """A `CityView` with fixed answers: per-replica-id network and predicted latencies, and the
    model of each prompt (model 0 unless listed)."""

    scenario: Scenario = SC
    net: dict[int, float] = field(default_factory=dict)
    pred: dict[int, float] = field(default_factory=dict)
    models: dict[int, int] = field(default_factory=dict)
    routing: RoutingPolicy = field(default_factory=RoutingPolicy)
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    def prompt_model(self, i: int) -> int:
        return self.models.get(i, 0)

    def net_in_s(self, i: int, r: Replica) -> float:
        return self.net.get(r.id, 0.0)

    def predict_s(self, i: int, r: Replica) -> float:
        return self.pred.get(r.id, 1.0)


def weighted(**weights: float) -> RoutingPolicy:
    return RoutingPolicy(routes={"llm": [SiteWeight(site=s, weight=w) for s, w in weights.items()]})


# ---- the registry -------------------------------------------------------------------------------


def test_every_router_is_registered_under_its_name() -> None:
    classes = [
        RandomRouter,
        RoundRobinRouter,
        NearestRouter,
        LeastLoadedRouter,
        PowerOfTwoRouter,
        GreedyRouter,
        WeightedRouter,
    ]
    assert ROUTERS.names() == [c.name for c in classes]
    for cls in classes:
        router = ROUTERS.create(cls.name)
        assert type(router) is cls
        assert router.name == cls.name


def test_each_episode_gets_a_fresh_router() -> None:
    """Round-robin keeps per-episode state: two created routers must not share it."""
    first, second = ROUTERS.create("round-robin"), ROUTERS.create("round-robin")
    assert first is not second
    reps = [Replica(0), Replica(1)]
    city = City()
    assert first.route(0, reps, city) is reps[0]
    assert first.route(1, reps, city) is reps[1]
    assert second.route(2, reps, city) is reps[0], "a new router starts at the first replica"


# ---- random and round-robin -------------------------------------------------------------------


def test_random_draws_the_index_from_the_city_generator() -> None:
    reps = [Replica(k) for k in range(5)]
    city = City(rng=np.random.default_rng(7))
    twin = np.random.default_rng(7)
    router = RandomRouter()
    picks = [router.route(i, reps, city) for i in range(200)]
    assert [r.id for r in picks] == [int(twin.integers(5)) for _ in range(200)]
    assert {r.id for r in picks} == set(range(5)), "every candidate is reachable"


def test_random_is_reproducible_from_the_seed() -> None:
    reps = [Replica(k) for k in range(4)]

    def run(seed: int) -> list[int]:
        city = City(rng=np.random.default_rng(seed))
        return [RandomRouter().route(i, reps, city).id for i in range(50)]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_round_robin_cycles_in_placement_order() -> None:
    reps = [Replica(5), Replica(2), Replica(9)]
    router = RoundRobinRouter()
    city = City()
    assert [router.route(i, reps, city).id for i in range(7)] == [5, 2, 9, 5, 2, 9, 5]


def test_round_robin_keeps_one_cycle_per_model() -> None:
    reps = [Replica(0), Replica(1), Replica(2)]
    router = RoundRobinRouter()
    city = City(models={0: 0, 1: 1, 2: 0, 3: 1, 4: 0, 5: 0})
    picks = [router.route(i, reps, city).id for i in range(6)]
    # model 0 (prompts 0, 2, 4, 5): 0, 1, 2, 0; model 1 (prompts 1, 3): 0, 1
    assert picks == [0, 0, 1, 1, 2, 0]


def test_round_robin_wraps_when_the_candidates_shrink() -> None:
    router = RoundRobinRouter()
    city = City()
    three = [Replica(0), Replica(1), Replica(2)]
    for i in range(4):
        router.route(i, three, city)
    two = [Replica(0), Replica(1)]
    assert router.route(4, two, city).id == 0, "the fifth pick: 4 % 2"
    assert router.route(5, two, city).id == 1


# ---- nearest and least-loaded ----------------------------------------------------------------


def test_nearest_picks_the_least_network_time() -> None:
    reps = [Replica(0), Replica(1), Replica(2)]
    city = City(net={0: 0.004, 1: 0.001, 2: 0.003})
    assert NearestRouter().route(0, reps, city).id == 1


def test_nearest_breaks_ties_by_replica_id() -> None:
    reps = [Replica(7), Replica(3), Replica(5)]
    city = City(net={7: 0.002, 3: 0.002, 5: 0.009})
    assert NearestRouter().route(0, reps, city).id == 3


def test_nearest_ignores_load() -> None:
    reps = [Replica(0, load=100), Replica(1, load=0)]
    city = City(net={0: 0.001, 1: 0.002})
    assert NearestRouter().route(0, reps, city).id == 0


def test_least_loaded_counts_outstanding_per_batch_slot() -> None:
    """4 of 8 slots (0.5) beats 3 of 4 (0.75), though it has more prompts outstanding."""
    reps = [Replica(0, max_batch=4, load=3), Replica(1, max_batch=8, load=4)]
    assert LeastLoadedRouter().route(0, reps, City()).id == 1


def test_least_loaded_breaks_ties_by_distance() -> None:
    reps = [Replica(0, max_batch=4, load=2), Replica(1, max_batch=8, load=4), Replica(2, load=7)]
    city = City(net={0: 0.003, 1: 0.001, 2: 0.0})
    assert LeastLoadedRouter().route(0, reps, city).id == 1


# ---- power of two choices ---------------------------------------------------------------------


def test_power_of_two_with_one_candidate_returns_it_without_drawing() -> None:
    only = Replica(4, load=50)
    city = City(rng=np.random.default_rng(11))
    before = city.rng.bit_generator.state
    assert PowerOfTwoRouter().route(0, [only], city) is only
    assert city.rng.bit_generator.state == before, "no random number consumed"


def test_power_of_two_with_two_candidates_takes_the_less_loaded() -> None:
    reps = [Replica(0, max_batch=8, load=6), Replica(1, max_batch=4, load=2)]
    for seed in range(20):
        city = City(rng=np.random.default_rng(seed))
        assert PowerOfTwoRouter().route(0, reps, city).id == 1


@pytest.mark.parametrize("seed", range(8))
def test_power_of_two_picks_the_less_loaded_of_the_two_drawn(seed: int) -> None:
    loads = [5, 1, 3, 0, 7]
    reps = [Replica(k, max_batch=8, load=n) for k, n in enumerate(loads)]
    a, b = np.random.default_rng(seed).choice(len(reps), size=2, replace=False)
    expected = int(a) if loads[int(a)] <= loads[int(b)] else int(b)
    city = City(rng=np.random.default_rng(seed))
    assert PowerOfTwoRouter().route(0, reps, city).id == expected


def test_power_of_two_never_picks_the_most_loaded() -> None:
    reps = [Replica(0, load=1), Replica(1, load=9), Replica(2, load=2)]
    city = City(rng=np.random.default_rng(5))
    router = PowerOfTwoRouter()
    picks = {router.route(i, reps, city).id for i in range(200)}
    assert picks == {0, 2}


# ---- greedy --------------------------------------------------------------------------------


def test_greedy_minimises_the_predicted_latency() -> None:
    reps = [Replica(0), Replica(1), Replica(2)]
    city = City(pred={0: 2.0, 1: 0.7, 2: 1.5}, net={1: 10.0})
    assert GreedyRouter().route(0, reps, city).id == 1, "network time is in the prediction"


def test_greedy_breaks_ties_by_replica_id() -> None:
    reps = [Replica(8), Replica(2), Replica(4)]
    city = City(pred={8: 1.0, 2: 1.0, 4: 3.0})
    assert GreedyRouter().route(0, reps, city).id == 2


# ---- weighted ------------------------------------------------------------------------------


def test_weighted_never_picks_a_site_of_weight_zero() -> None:
    reps = [Replica(0, site=0), Replica(1, site=1)]
    city = City(pred={0: 0.1, 1: 50.0}, routing=weighted(a=0.0, b=1.0))
    assert WeightedRouter().route(0, reps, city).id == 1


def test_weighted_prefers_the_heavier_site_at_equal_predictions() -> None:
    reps = [Replica(0, site=0), Replica(1, site=1)]
    city = City(pred={0: 2.0, 1: 2.0}, routing=weighted(a=0.3, b=0.9))
    assert WeightedRouter().route(0, reps, city).id == 1
    city = City(pred={0: 2.0, 1: 2.0}, routing=weighted(a=0.9, b=0.3))
    assert WeightedRouter().route(0, reps, city).id == 0


def test_weighted_scales_predictions_by_the_weight_ratio_to_the_strength() -> None:
    """Weights 1 and 0.25 at strength 0.5: b's prediction counts twice. b at 1.9 s scores
    3.8 < 4.0 and wins; b at 2.1 s scores 4.2 > 4.0 and loses."""
    assert WeightedRouter.strength == 0.5
    reps = [Replica(0, site=0), Replica(1, site=1)]
    policy = weighted(a=1.0, b=0.25)
    assert WeightedRouter().route(0, reps, City(pred={0: 4.0, 1: 1.9}, routing=policy)).id == 1
    assert WeightedRouter().route(0, reps, City(pred={0: 4.0, 1: 2.1}, routing=policy)).id == 0


def test_weighted_discounts_a_backlogged_replica_by_its_queue_per_batch_slot() -> None:
    """A backlog of 3 batches scales a prediction by (1 + 3) ** 0.5 = 2: a backlogged replica
    needs under half the idle one's prediction to win."""
    assert WeightedRouter.backlog_power == 0.5
    reps = [Replica(0, site=0, max_batch=4, load=12), Replica(1, site=1, max_batch=4)]
    policy = weighted(a=1.0, b=1.0)
    assert WeightedRouter().route(0, reps, City(pred={0: 1.9, 1: 4.0}, routing=policy)).id == 0
    assert WeightedRouter().route(0, reps, City(pred={0: 2.1, 1: 4.0}, routing=policy)).id == 1


def test_weighted_counts_unlisted_sites_at_full_weight() -> None:
    """c is not in the policy (a replica loaded since): it counts at the top weight, 1.
    Scores: a 3.0, b 2.0 * sqrt(2) = 2.83, c 2.5."""
    reps = [Replica(0, site=0), Replica(1, site=1), Replica(2, site=2)]
    city = City(pred={0: 3.0, 1: 2.0, 2: 2.5}, routing=weighted(a=1.0, b=0.5))
    assert WeightedRouter().route(0, reps, city).id == 2


def test_weighted_routes_a_model_without_a_route_greedily() -> None:
    reps = [Replica(3, site=0), Replica(1, site=1), Replica(2, site=2)]
    other = RoutingPolicy(routes={"other-model": [SiteWeight(site="c", weight=1.0)]})
    city = City(pred={3: 1.0, 1: 1.0, 2: 5.0}, routing=other)
    assert WeightedRouter().route(0, reps, city).id == 1, "greedy: least prediction, then id"
    empty = City(pred={3: 1.0, 1: 1.0, 2: 5.0}, routing=weighted())
    assert WeightedRouter().route(0, reps, empty).id == 1, "an empty route list is no route"


def test_weighted_with_all_weights_zero_falls_back_to_greedy() -> None:
    reps = [Replica(4, site=0), Replica(2, site=1), Replica(3, site=2)]
    city = City(pred={4: 0.5, 2: 0.5, 3: 0.9}, routing=weighted(a=0.0, b=0.0))
    assert WeightedRouter().route(0, reps, city).id == 2


def test_weighted_falls_back_to_greedy_when_only_zero_weight_sites_have_candidates() -> None:
    reps = [Replica(0, site=1), Replica(1, site=1)]
    city = City(pred={0: 3.0, 1: 2.0}, routing=weighted(a=1.0, b=0.0))
    assert WeightedRouter().route(0, reps, city).id == 1


# ---- on the simulated city --------------------------------------------------------------------


def run_tiny(router: str, n: int = 6) -> np.ndarray:
    sc = tiny_scenario(placement={"a": ["llm"], "b": ["llm"], "c": ["llm"]})
    rows = [{"arrival_s": 1.0 + k, "input_tokens": 64, "output_tokens": 4} for k in range(n)]
    city = SimulatedCity(sc, make_workload(sc, rows), ROUTERS.create(router))
    city.advance(100.0)
    assert not np.isnan(city.out.latency_s).any(), "every prompt served"
    return city.out.site.tolist()


def test_round_robin_alternates_sites_in_the_simulated_city() -> None:
    assert run_tiny("round-robin") == [0, 1, 2, 0, 1, 2]


def test_nearest_keeps_prompts_at_the_cells_site_in_the_simulated_city() -> None:
    assert run_tiny("nearest") == [0] * 6


def test_greedy_avoids_the_slow_remote_gpu_in_the_simulated_city() -> None:
    """Spaced prompts find every replica idle: the local H200 wins over b (same GPU, farther)
    and c (an L4, farther still)."""
    assert run_tiny("greedy") == [0] * 6


@pytest.mark.parametrize("name", ROUTERS.names())
def test_every_router_serves_everything_in_the_simulated_city(name: str) -> None:
    sites = run_tiny(name, n=9)
    assert len(sites) == 9 and all(0 <= s <= 2 for s in sites)
