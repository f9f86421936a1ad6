"""Generated cities: a region of N edge sites on a hierarchical backhaul, drawn from a seed.

`generate_region(RegionSpec(sites=100, seed=3))` returns a validated `Scenario`, so a study can
ask how a policy scales from seven sites to a thousand without anyone writing the city by hand.
The region is laid out in three tiers, as metro networks are built:

- **access**: rings of `ring_size` sites (short links); the first site of each ring is its hub;
- **aggregation**: the hubs of `rings_per_group` rings joined in a ring; the first ring's hub
  is the group's aggregation hub;
- **core**: the aggregation hubs of all groups joined in a ring, with a chord across it from
  each hub once there are six or more, which halves the longest path around the core.

Site names carry their place (`g{group}-r{ring}-s{index}`), so `link_tier` reads a link's tier
from its ends. The models, their per-model arrival settings and the replica mix come from the
built-in `bristol`; demand scales with the region's population (`PROMPTS_PER_S_PER_1000_USERS`).
Each aspect draws from its own stream of the seed, so changing one range leaves the others'
draws as they were.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Literal, NamedTuple

import numpy as np
import yaml

from edgeagents.core.profiles import BUILTIN_GPU_TYPES
from edgeagents.core.region_spec import (
    CPU_CORES_PER_GPU,
    DEFAULT_GPU_MIX,
    PROMPTS_PER_S_PER_1000_USERS,
    GpuMix,
    RegionSpec,
    Role,
    Span,
    TierSpec,
)
from edgeagents.core.scenario import ModelDemand, Scenario, load_scenario
from edgeagents.core.state import GpuType, ModelSpec

BASE_SCENARIO = "bristol"
"""Where the model catalogue, the arrival settings, mobility and control come from."""

Tier = Literal["access", "aggregation", "core"]

_STREAMS = {"layout": 0, "links": 1, "gpus": 2, "cells": 3}

__all__ = [
    "BASE_SCENARIO",
    "CPU_CORES_PER_GPU",
    "DEFAULT_GPU_MIX",
    "PROMPTS_PER_S_PER_1000_USERS",
    "GpuMix",
    "RegionSpec",
    "Role",
    "SitePlace",
    "Span",
    "Tier",
    "TierSpec",
    "backhaul_pairs",
    "demand_scale",
    "generate_region",
    "link_tier",
    "load_base",
    "parse_site",
    "plan_placement",
    "planning_regions",
    "region_layout",
    "region_summary",
    "region_yaml",
    "replica_shares",
    "scale_gpus",
    "scaled_demands",
]  # fmt: skip


class SitePlace(NamedTuple):
    """Where a site sits in the hierarchy."""

    group: int
    ring: int
    index: int

    @property
    def name(self) -> str:
        return f"g{self.group}-r{self.ring}-s{self.index}"

    @property
    def role(self) -> Role:
        if self.index > 0:
            return "edge"
        return "core" if self.ring == 0 else "hub"


def parse_site(name: str) -> SitePlace:
    """The place a generated site's name states; ValueError for any other name."""
    try:
        g, r, s = (int(part[1:]) for part in name.split("-"))
    except ValueError:
        raise ValueError(f"{name!r} is not a generated site name (g<n>-r<n>-s<n>)") from None
    return SitePlace(g, r, s)


def link_tier(a: str, b: str) -> Tier:
    """The backhaul tier of a link between two generated sites."""
    pa, pb = parse_site(a), parse_site(b)
    if pa.group != pb.group:
        return "core"
    return "access" if pa.ring == pb.ring else "aggregation"


def _split(total: int, most: int) -> list[int]:
    """`total` items in as few parts of at most `most` as possible, sized as evenly."""
    parts = math.ceil(total / most)
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def region_layout(spec: RegionSpec) -> list[list[list[SitePlace]]]:
    """Sites by group, then by access ring; each ring's hub first."""
    rings = _split(spec.sites, spec.ring_size)
    groups = _split(len(rings), spec.rings_per_group)
    out: list[list[list[SitePlace]]] = []
    k = 0
    for g, n_rings in enumerate(groups):
        sizes = rings[k : k + n_rings]
        k += n_rings
        out.append([[SitePlace(g, r, i) for i in range(size)] for r, size in enumerate(sizes)])
    return out


def _ring_pairs(nodes: list[str]) -> list[tuple[str, str]]:
    if len(nodes) < 2:
        return []
    if len(nodes) == 2:
        return [(nodes[0], nodes[1])]
    return [(nodes[i], nodes[(i + 1) % len(nodes)]) for i in range(len(nodes))]


def backhaul_pairs(layout: list[list[list[SitePlace]]]) -> list[tuple[str, str]]:
    """Every link of the region (access rings, then aggregation rings, then the core)."""
    pairs = [p for group in layout for ring in group for p in _ring_pairs([s.name for s in ring])]
    for group in layout:
        pairs += _ring_pairs([ring[0].name for ring in group])
    hubs = [group[0][0].name for group in layout]
    pairs += _ring_pairs(hubs)
    if len(hubs) >= 6:
        half = len(hubs) // 2
        pairs += [(hubs[i], hubs[i + half]) for i in range(half)]
    return pairs


def _rng(spec: RegionSpec, stream: str) -> np.random.Generator:
    return np.random.default_rng([spec.seed, _STREAMS[stream]])


def _links(spec: RegionSpec, pairs: list[tuple[str, str]]) -> list[dict]:
    rng = _rng(spec, "links")
    tiers = {"access": spec.access, "aggregation": spec.aggregation, "core": spec.core}
    out = []
    for a, b in pairs:
        tier = tiers[link_tier(a, b)]
        out.append(
            {"a": a, "b": b, "latency_ms": tier.latency_ms.draw(rng, 2),
             "bandwidth_gbps": tier.bandwidth_gbps.draw(rng, 1)}
        )  # fmt: skip
    return out


def _coordinates(layout: list[list[list[SitePlace]]], spec: RegionSpec) -> dict[str, tuple]:
    """Groups on a 30-km grid, rings 8 km around their group's hub ring, sites 2 km around
    their ring's hub, jittered: for plots and for reading a map, not for latency."""
    rng = _rng(spec, "layout")
    cols = math.ceil(math.sqrt(len(layout)))
    out: dict[str, tuple] = {}
    for g, group in enumerate(layout):
        gx, gy = 30.0 * (g % cols), 30.0 * (g // cols)
        for r, ring in enumerate(group):
            angle = 2 * math.pi * r / max(1, len(group) - 1)
            rx, ry = (gx, gy) if r == 0 else (gx + 8 * math.cos(angle), gy + 8 * math.sin(angle))
            for i, place in enumerate(ring):
                a = 2 * math.pi * i / max(1, len(ring) - 1)
                x, y = (rx, ry) if i == 0 else (rx + 2 * math.cos(a), ry + 2 * math.sin(a))
                dx, dy = rng.uniform(-0.3, 0.3, 2)
                out[place.name] = (round(x + float(dx), 2), round(y + float(dy), 2))
    return out


def _sites_and_cells(
    spec: RegionSpec, layout: list[list[list[SitePlace]]]
) -> tuple[list[dict], list[dict]]:
    gpu_rng, cell_rng = _rng(spec, "gpus"), _rng(spec, "cells")
    coords = _coordinates(layout, spec)
    sites, cells = [], []
    for place in (s for group in layout for ring in group for s in ring):
        mix = spec.gpu_mix[place.role]
        names = list(mix.types)
        weights = np.array([mix.types[n] for n in names])
        gpu = names[int(gpu_rng.choice(len(names), p=weights / weights.sum()))]
        count = int(gpu_rng.integers(mix.min_count, mix.max_count + 1))
        x, y = coords[place.name]
        sites.append(
            {"name": place.name, "x_km": x, "y_km": y, "gpus": [{"type": gpu, "count": count}],
             "cpu_cores": CPU_CORES_PER_GPU.get(gpu, 16) * count}
        )  # fmt: skip
        for c in range(spec.cells_per_site[place.role]):
            quality = float(cell_rng.uniform())
            users = int(round(cell_rng.uniform(spec.users_per_cell.lo, spec.users_per_cell.hi), -1))
            cells.append(
                {"name": f"{place.name}-c{c}", "site": place.name, "users": users,
                 "uplink_mbps": _at(spec.uplink_mbps, quality, 0),
                 "downlink_mbps": _at(spec.downlink_mbps, quality, 0),
                 "radio_rtt_ms": _at(spec.radio_rtt_ms, 1.0 - quality, 1)}
            )  # fmt: skip
    return sites, cells


def _at(span: Span, share: float, decimals: int) -> float:
    """The point `share` of the way along a span: one draw of a cell's radio quality sets its
    uplink, downlink and round trip together, as a good cell is good at all three."""
    return round(span.lo + share * (span.hi - span.lo), decimals)


def scaled_demands(users: int, rate_per_1000_users: float) -> list[ModelDemand]:
    """Bristol's demands (models, arrival processes, sizes, traces) at a total rate of
    `rate_per_1000_users` per 1,000 `users`, shared between models as in bristol."""
    base = load_base()
    total = sum(d.arrivals.rate_per_s for d in base.workload.demands)
    rate = rate_per_1000_users * users / 1000.0
    return [
        d.model_copy(
            update={"arrivals": d.arrivals.model_copy(
                update={"rate_per_s": round(rate * d.arrivals.rate_per_s / total, 4)}
            )}
        )
        for d in base.workload.demands
    ]  # fmt: skip


def replica_shares(base: Scenario) -> dict[str, float]:
    """Each model's share of the base city's initial replicas: the mix a region repeats."""
    counts = {m: 0 for m in base.model_names}
    for placed in base.placement.values():
        for m in placed:
            counts[m] += 1
    total = sum(counts.values())
    return {m: (c / total if total else 1 / len(counts)) for m, c in counts.items()}


def plan_placement(
    sites: list[tuple[str, list[GpuType]]],
    models: list[ModelSpec],
    shares: dict[str, float],
    max_per_gpu: int,
    *,
    copies_per_site: int = 1,
) -> dict[str, list[str]]:
    """An initial placement that fits every GPU at each model's full batch limit.

    Site by site, the next replica goes on the GPU with the most free memory (the simulator's
    own rule, so it lands there too) and is the model furthest below its share of the replicas
    placed so far that fits there and has fewer than `copies_per_site` replicas at the site
    (a site of many GPUs, in a region sized for a stated load, holds several). Every site is
    filled up to
    `max_per_gpu` replicas per GPU, so a larger region gets more replicas of each model.
    Raises ValueError if some model fits on no GPU of the region.
    """
    counts = {m.name: 0 for m in models}
    order = {m.name: i for i, m in enumerate(models)}
    placement: dict[str, list[str]] = {}
    for site, gpus in sites:
        held: list[list[float]] = [[] for _ in gpus]
        placed: list[str] = []
        while len(placed) < max_per_gpu * len(gpus):
            free = [g.memory_gb - sum(used) for g, used in zip(gpus, held, strict=True)]
            gi = max(range(len(gpus)), key=lambda i: (free[i], -i))
            if len(held[gi]) >= max_per_gpu:
                break
            n = sum(counts.values()) + 1
            fits = [
                m for m in models
                if placed.count(m.name) < copies_per_site and m.memory_gb(m.max_batch) <= free[gi]
            ]  # fmt: skip
            if not fits:
                break
            pick = max(fits, key=lambda m: (shares[m.name] * n - counts[m.name], -order[m.name]))
            held[gi].append(pick.memory_gb(pick.max_batch))
            placed.append(pick.name)
            counts[pick.name] += 1
        if placed:
            placement[site] = placed
    missing = [m for m, c in counts.items() if c == 0]
    if missing:
        raise ValueError(f"placement: {', '.join(missing)} fits on no GPU of the region")
    return placement


@cache
def load_base() -> Scenario:
    """The built-in scenario a region takes its models and workload settings from."""
    return load_scenario(BASE_SCENARIO)


def demand_scale(spec: RegionSpec, users: int) -> float:
    """How many times its population's demand the region offers: `prompts_per_s` over
    `rate_per_1000_users` per 1,000 users (1 when no rate is stated)."""
    if spec.prompts_per_s is None:
        return 1.0
    return spec.prompts_per_s / (spec.rate_per_1000_users * users / 1000.0)


def scale_gpus(sites: list[dict], factor: float) -> list[dict]:
    """Every site's GPU count times `factor` (rounded up, so capacity keeps up with a stated
    load) and its host cores with it; ValueError past a site's 64 GPUs."""
    if factor == 1.0:
        return sites
    out = []
    for s in sites:
        gpus = [{**g, "count": math.ceil(g["count"] * factor - 1e-9)} for g in s["gpus"]]
        most = max(g["count"] for g in gpus)
        if most > 64:
            raise ValueError(
                f"--prompts-per-s: site {s['name']} would need {most} GPUs of one type (at "
                f"most 64); state a lower rate or more --sites"
            )
        cores = sum(CPU_CORES_PER_GPU.get(g["type"], 16) * g["count"] for g in gpus)
        out.append({**s, "gpus": gpus, "cpu_cores": cores})
    return out


def generate_region(spec: RegionSpec) -> Scenario:
    """The region `spec` describes, validated as every scenario is. With `prompts_per_s`
    stated, the same draws with demand and every site's GPUs scaled by `demand_scale`, each
    site holding up to that many (rounded up) replicas of a model."""
    base = load_base()
    layout = region_layout(spec)
    sites, cells = _sites_and_cells(spec, layout)
    users = sum(c["users"] for c in cells)
    factor = demand_scale(spec, users)
    sites = scale_gpus(sites, factor)
    rate_per_1000 = spec.rate_per_1000_users * factor
    links = _links(spec, backhaul_pairs(layout))
    gpus = [
        (s["name"], [BUILTIN_GPU_TYPES[g["type"]] for g in s["gpus"] for _ in range(g["count"])])
        for s in sites
    ]
    placement = plan_placement(
        gpus, list(base.models), replica_shares(base), spec.max_replicas_per_gpu,
        copies_per_site=max(1, math.ceil(factor)),
    )  # fmt: skip
    workload = base.workload.model_dump(mode="json", exclude_unset=True)
    workload["demands"] = [
        d.model_dump(mode="json", exclude_unset=True) for d in scaled_demands(users, rate_per_1000)
    ]
    data = {
        "name": f"region-{spec.sites}-seed{spec.seed}"
        + ("" if spec.prompts_per_s is None else f"-{spec.prompts_per_s:g}pps"),
        "description": f"{_n(spec.sites, 'generated edge site')} in "
        f"{_n(sum(len(g) for g in layout), 'access ring')} and "
        f"{_n(len(layout), 'aggregation group')} (each group's hub on the core); "
        f"{_n(users, 'user')}; the models and workload mix of {BASE_SCENARIO}"
        + ("." if factor == 1.0 else f"; demand and GPUs x{factor:.3g} for the stated load."),
        "engine": base.engine,
        "duration_s": base.duration_s,
        "sites": sites,
        "cells": cells,
        "links": links,
        "models": [m.model_dump(mode="json", exclude_unset=True) for m in base.models],
        "placement": placement,
        "workload": workload,
        "regions": planning_regions(layout),
        "control": base.control.model_dump(mode="json", exclude_unset=True),
    }
    return Scenario.model_validate(data)


def planning_regions(layout: list[list[list[SitePlace]]]) -> list[dict]:
    """One planning region per aggregation group (at most `rings_per_group` x `ring_size`
    sites): inside a group the links are access and aggregation tier, so a region's twin
    that keeps its prompts at home leaves out only the core links between groups. A city of
    one group is one region, as a city without regions is."""
    return [
        {"name": f"g{g}", "sites": [s.name for ring in group for s in ring]}
        for g, group in enumerate(layout)
    ]


def _n(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def region_yaml(scenario: Scenario, spec: RegionSpec) -> str:
    """The scenario as YAML (one line per cell and link), the same text for the same spec."""
    rate = "" if spec.prompts_per_s is None else f" --prompts-per-s {spec.prompts_per_s:g}"
    stated = RegionSpec(sites=spec.sites, seed=spec.seed, prompts_per_s=spec.prompts_per_s)
    demand = (
        f"{spec.rate_per_1000_users:g} prompts/s per 1,000 users"
        if spec.prompts_per_s is None
        else f"{spec.prompts_per_s:g} prompts/s in all, GPUs scaled with it"
    )
    head = (
        f"# Generated by `edgeagents scenario generate --sites {spec.sites} --seed {spec.seed}"
        f"{rate}`{'' if spec == stated else ' (other settings)'}"
        f".\n# Models and workload mix from {BASE_SCENARIO}; demand {demand}.\n"
    )
    data = scenario.model_dump(mode="json", exclude_unset=True)
    body = yaml.dump(
        data, Dumper=yaml.SafeDumper, sort_keys=False, default_flow_style=None, width=1000
    )
    return head + body


def region_summary(scenario: Scenario) -> str:
    """Sites, cells, links, GPUs and total demand in one phrase."""
    gpus = sum(g.count for s in scenario.sites for g in s.gpus)
    rate = sum(d.arrivals.rate_per_s for d in scenario.workload.demands)
    return (
        f"{len(scenario.sites):,} sites, {len(scenario.cells):,} cells, "
        f"{len(scenario.links):,} links, {gpus:,} GPUs, {rate:,.1f} prompts/s"
    )
