"""Generated cities: valid, reproducible, three-tier, placed within memory, demand by population."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import networkx as nx
import pytest
from conftest import make_workload
from typer.testing import CliRunner

from edgeagents.cli import app
from edgeagents.core.region import (
    PROMPTS_PER_S_PER_1000_USERS,
    RegionSpec,
    generate_region,
    link_tier,
    load_base,
    parse_site,
    region_yaml,
    scaled_demands,
)
from edgeagents.core.scenario import Scenario, load_scenario


def region(sites: int, seed: int = 0) -> tuple[Scenario, str]:
    spec = RegionSpec(sites=sites, seed=seed)
    sc = generate_region(spec)
    return sc, region_yaml(sc, spec)


@pytest.mark.parametrize("sites", [1, 7, 100, 1000])
def test_generated_cities_validate_as_every_scenario(sites: int) -> None:
    sc, text = region(sites)
    again = Scenario.from_yaml(text)
    assert again.model_dump() == sc.model_dump()
    assert len(sc.sites) == sites
    assert {c.site for c in sc.cells} == set(sc.site_names)
    assert sc.model_names == load_base().model_names
    if sites > 1:
        assert nx.is_connected(sc.backhaul)


def test_the_same_seed_gives_the_same_text_another_seed_another_city() -> None:
    assert region(100, seed=4)[1] == region(100, seed=4)[1]
    a, b = region(100, seed=4)[0], region(100, seed=5)[0]
    assert [s.gpus for s in a.sites] != [s.gpus for s in b.sites]
    assert [c.users for c in a.cells] != [c.users for c in b.cells]
    assert [lk.latency_ms for lk in a.links] != [lk.latency_ms for lk in b.links]
    assert [(lk.a, lk.b) for lk in a.links] == [(lk.a, lk.b) for lk in b.links]


@pytest.mark.parametrize(
    ("sites", "counts"),
    [
        # 17 rings (15 of 6 sites, 2 of 5) in 5 groups (4, 4, 3, 3, 3): a core ring of 5 hubs.
        (100, {"access": 100, "aggregation": 17, "core": 5}),
        # 167 rings in 42 groups: a core ring of 42 hubs and 21 chords across it.
        (1000, {"access": 1000, "aggregation": 167, "core": 63}),
        # Two rings (4 and 3 sites) in one group: no core.
        (7, {"access": 7, "aggregation": 1}),
    ],
)
def test_the_backhaul_has_three_tiers_within_their_ranges(sites: int, counts: dict) -> None:
    spec = RegionSpec(sites=sites)
    sc = generate_region(spec)
    tiers = {"access": spec.access, "aggregation": spec.aggregation, "core": spec.core}
    by_tier = Counter(link_tier(lk.a, lk.b) for lk in sc.links)
    assert dict(by_tier) == counts
    for lk in sc.links:
        tier = tiers[link_tier(lk.a, lk.b)]
        assert tier.latency_ms.lo <= lk.latency_ms <= tier.latency_ms.hi
        assert tier.bandwidth_gbps.lo <= lk.bandwidth_gbps <= tier.bandwidth_gbps.hi
    for lk in sc.links:
        a, b = parse_site(lk.a), parse_site(lk.b)
        if link_tier(lk.a, lk.b) != "access":
            assert a.index == b.index == 0, "only hubs join the upper tiers"
        if link_tier(lk.a, lk.b) == "core":
            assert a.ring == b.ring == 0, "only aggregation hubs join the core"
    roles = Counter(parse_site(s).role for s in sc.site_names)
    assert roles["core"] == len({parse_site(s).group for s in sc.site_names})


def test_gpus_by_role_and_cells_by_population() -> None:
    spec = RegionSpec(sites=100)
    sc = generate_region(spec)
    for s in sc.sites:
        mix = spec.gpu_mix[parse_site(s.name).role]
        assert [g.type in mix.types for g in s.gpus] == [True]
        assert mix.min_count <= s.gpus[0].count <= mix.max_count
    assert len({g.type for s in sc.sites for g in s.gpus}) >= 5
    for c in sc.cells:
        assert spec.users_per_cell.lo <= c.users <= spec.users_per_cell.hi
        assert spec.uplink_mbps.lo <= c.uplink_mbps <= spec.uplink_mbps.hi
        assert spec.radio_rtt_ms.lo <= c.radio_rtt_ms <= spec.radio_rtt_ms.hi


def placed_replicas(sc: Scenario) -> list:
    """The replicas the simulator itself places from the scenario's placement."""
    from edgeagents.policies import ROUTERS
    from edgeagents.sim.city import SimulatedCity

    city = SimulatedCity(sc, make_workload(sc, []), ROUTERS.create("round-robin"))
    tele = city.observe()
    assert all(g.free_memory_gb >= 0 for s in tele.sites for g in s.gpus)
    return [r.deployment for r in tele.replicas]


@pytest.mark.parametrize("sites", [1, 7, 100])
def test_every_model_placed_within_gpu_memory(sites: int) -> None:
    sc = generate_region(RegionSpec(sites=sites, seed=2))
    replicas = placed_replicas(sc)
    assert len(replicas) == sum(len(m) for m in sc.placement.values())
    assert {r.model for r in replicas} == set(sc.model_names)
    for r in replicas:
        spec = sc.model(r.model)
        assert r.max_batch == spec.max_batch, f"{r.model} at {r.site} squeezed"
        gpu = next(g for g in sc.sites if g.name == r.site).gpus[0].type
        assert r.memory_gb <= sc.gpu_catalogue[gpu].memory_gb


def test_larger_regions_get_more_replicas_of_every_model() -> None:
    small = Counter(m for ms in generate_region(RegionSpec(sites=7)).placement.values() for m in ms)
    big = Counter(m for ms in generate_region(RegionSpec(sites=100)).placement.values() for m in ms)
    assert all(big[m] > 2 * small[m] for m in small)


def test_demand_is_the_stated_rate_per_1000_users_in_bristols_mix() -> None:
    sc = generate_region(RegionSpec(sites=100))
    users = sum(c.users for c in sc.cells)
    total = sum(d.arrivals.rate_per_s for d in sc.workload.demands)
    assert total == pytest.approx(PROMPTS_PER_S_PER_1000_USERS * users / 1000, abs=1e-3)
    one, two = scaled_demands(10_000, 0.7), scaled_demands(20_000, 0.7)
    for a, b in zip(one, two, strict=True):
        assert b.arrivals.rate_per_s == pytest.approx(2 * a.arrivals.rate_per_s, rel=1e-3)
    bristol = load_scenario("bristol").workload.demands
    bristol_total = sum(d.arrivals.rate_per_s for d in bristol)
    for d, ref in zip(sc.workload.demands, bristol, strict=True):
        assert d.model == ref.model and d.trace == ref.trace and d.sizes == ref.sizes
        assert d.arrivals.process == ref.arrivals.process
        assert d.arrivals.burst_factor == ref.arrivals.burst_factor
        share = ref.arrivals.rate_per_s / bristol_total
        assert d.arrivals.rate_per_s == pytest.approx(share * total, rel=1e-3)


def test_cli_prints_yaml_that_loads(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["scenario", "generate", "--sites", "7", "--seed", "3"])
    assert res.exit_code == 0, res.output
    path = tmp_path / "city.yaml"
    path.write_text(res.stdout)
    sc = load_scenario(path)
    assert sc.model_dump() == generate_region(RegionSpec(sites=7, seed=3)).model_dump()


def test_cli_writes_the_file_and_says_what(tmp_path: Path) -> None:
    out = tmp_path / "city.yaml"
    res = CliRunner().invoke(app, ["scenario", "generate", "--sites", "7", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().splitlines() == [
        f"wrote {out}: 7 sites, 10 cells, 8 links, 9 GPUs, 10.9 prompts/s"
    ]
    assert load_scenario(out).name == "region-7-seed0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["city.yaml"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--sites", "0"], "--sites 0: input should be greater than or equal to 1"),
        (["--sites", "3", "--seed", "-1"], "--seed -1: input should be greater than or equal to 0"),
        (["--sites", "3", "--out", "DIR"], "is a directory"),
        (["--sites", "3", "--out", "DIR/missing/city.yaml"], "does not exist"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_nothing_written(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    args = [a.replace("DIR", str(tmp_path)) for a in args]
    res = CliRunner().invoke(app, ["scenario", "generate", *args])
    assert res.exit_code == 2
    assert res.stderr.strip().count("\n") == 0 and expected in res.stderr
    assert "Traceback" not in res.output and res.stdout == ""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_cli_read_only_folder_is_one_line_exit_2(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    res = CliRunner().invoke(
        app, ["scenario", "generate", "--sites", "3", "--out", str(folder / "city.yaml")]
    )
    assert res.exit_code == 2 and "not writable" in res.stderr
    assert list(folder.iterdir()) == []


def test_baselines_run_on_a_generated_city() -> None:
    from edgeagents.experiments.bench import compare

    sc = generate_region(RegionSpec(sites=7))
    report, _ = compare(sc, ["round-robin", "greedy"], duration_s=60)
    assert report.prompts > 0
    for r in report.results:
        assert r.served + r.refused == report.prompts
    assert report.result("greedy").mean_latency_s < report.result("round-robin").mean_latency_s
