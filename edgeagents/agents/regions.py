"""A region as its own city: the sites of one planning region, the cells homed there, the
links among them and the share of the demand forecast those cells make. The per-region
planners and the scheduler run their twin on this view, so a decision's cost grows with the
region, not the city. A city of one region is its own view, unchanged."""

from __future__ import annotations

from typing import NamedTuple

from edgeagents.agents.twin import WhatIf
from edgeagents.core.notice import Intent
from edgeagents.core.scenario import Scenario
from edgeagents.core.state import Forecast, Telemetry

REGION_TWIN_PROMPTS = 4_000
"""Prompts one evaluation of a region's twin simulates at most: a busier region looks less
far ahead (`region_horizon_s`), so a hold, a plan or a routing option costs about the same
whatever the load offered and the epoch's and tick's prompt budgets buy the same searches
(docs/decisions.md)."""
MIN_REGION_HORIZON_S = 15.0
"""The shortest a region's twin looks ahead, s: three ticks, and past the slowest cold load
of the built-in models (llama-3.1-8b: 3 s start plus 16 GB at 1.4 GB/s, 14.5 s), so a
load's replica is in service before the twin's arrivals end (and through its drain)."""


class RegionView(NamedTuple):
    """One region's scenario, telemetry and forecast."""

    name: str
    sites: frozenset[str]
    scenario: Scenario
    telemetry: Telemetry
    forecast: Forecast
    share: float
    """The region's share of the city's demand."""

    @property
    def rate_per_s(self) -> float:
        return sum(self.forecast.rates_per_s.values())


_made: dict[int, tuple[Scenario, dict[str, Scenario]]] = {}
"""The last cities' region scenarios, by the city's identity (validated once per city)."""


def region_scenario(scenario: Scenario, name: str) -> Scenario:
    """The region `name` of `scenario` as a scenario of its own (no regions, no notices, its
    events and initial placement only). Not validated again: the city was, and a region may
    lack a GPU for some model the city has."""
    kept = _made.get(id(scenario))
    if kept is None or kept[0] is not scenario:
        if len(_made) > 4:
            _made.clear()
        kept = _made[id(scenario)] = (scenario, {})
    if name not in kept[1]:
        sites = set(scenario.region_sites[name])
        cells = [c for c in scenario.cells if c.site in sites]
        if not any(c.users for c in cells):  # no demand of its own: where none would start
            cells = [c.model_copy(update={"users": 1}) for c in cells]
        sub = scenario.model_copy(
            update={
                "name": f"{scenario.name}/{name}",
                "sites": [s for s in scenario.sites if s.name in sites],
                "cells": cells,
                "links": [lk for lk in scenario.links if lk.a in sites and lk.b in sites],
                "placement": {s: ms for s, ms in scenario.placement.items() if s in sites},
                "events": [e for e in scenario.events if in_region(e.site, e.link, sites)],
                "notices": [],
                "regions": [],
            }
        )
        sub.__dict__.pop("backhaul", None)  # the city's, if it was computed before the copy
        kept[1][name] = sub
    return kept[1][name]


def in_region(site: str | None, link: tuple[str, str] | None, sites: set[str]) -> bool:
    if site is not None:
        return site in sites
    return link is not None and link[0] in sites and link[1] in sites


def region_telemetry(telemetry: Telemetry, sites: frozenset[str], cells: set[str]) -> Telemetry:
    """The region's sites and replicas; each model's arrivals from the region's cells and its
    replicas and queues there. Latency and refusals stay the city's (not kept per site)."""
    replicas = [r for r in telemetry.replicas if r.deployment.site in sites]
    models = []
    for m in telemetry.models:
        mine = [r for r in replicas if r.deployment.model == m.model]
        by_cell = {c: v for c, v in m.arrivals_per_s_by_cell.items() if c in cells}
        models.append(
            m.model_copy(
                update={
                    "arrivals_per_s": sum(by_cell.values()),
                    "arrivals_per_s_by_cell": by_cell,
                    "replicas": len(mine),
                    "queue_len": sum(r.queue_len for r in mine),
                }
            )
        )
    return telemetry.model_copy(
        update={
            "sites": [s for s in telemetry.sites if s.site in sites],
            "replicas": replicas,
            "models": models,
            "down_links": [lk for lk in telemetry.down_links if in_region(None, lk, set(sites))],
        }
    )


def region_share(forecast: Forecast, scenario: Scenario, cells: set[str]) -> float:
    """The share of the city's prompts from `cells`: by the forecast's cell weights, or by
    users when it has none."""
    weights = forecast.cell_weights
    if not weights or sum(weights.values()) <= 0:
        weights = {c.name: float(c.users) for c in scenario.cells}
    return sum(w for c, w in weights.items() if c in cells) / (sum(weights.values()) or 1.0)


def region_forecast(forecast: Forecast, scenario: Scenario, cells: set[str]) -> Forecast:
    """The forecast's share from the region's cells (`region_share`): each model's rate and
    peak times that share."""
    weights = forecast.cell_weights
    if not weights or sum(weights.values()) <= 0:
        weights = {c.name: float(c.users) for c in scenario.cells}
    total = sum(weights.values()) or 1.0
    mine = {c: w for c, w in weights.items() if c in cells}
    share = sum(mine.values()) / total
    within = sum(mine.values())
    return forecast.model_copy(
        update={
            "rates_per_s": {m: r * share for m, r in forecast.rates_per_s.items()},
            "cell_weights": {c: w / within for c, w in mine.items()} if within > 0 else {},
            "peak_rates_per_s": {m: r * share for m, r in forecast.peak_rates_per_s.items()},
        }
    )


def region_view(
    scenario: Scenario, telemetry: Telemetry, forecast: Forecast, name: str
) -> RegionView:
    """Region `name` as its own view; in a city of one region, the city itself (the same
    objects, so its decisions are the city's)."""
    regions = scenario.region_sites
    if len(regions) == 1:
        return RegionView(name, frozenset(regions[name]), scenario, telemetry, forecast, 1.0)
    sub = region_scenario(scenario, name)
    cells = set(sub.cell_names)
    sites = frozenset(regions[name])
    return RegionView(
        name, sites, sub, region_telemetry(telemetry, sites, cells),
        region_forecast(forecast, scenario, cells), region_share(forecast, scenario, cells),
    )  # fmt: skip


def region_views(scenario: Scenario, telemetry: Telemetry, forecast: Forecast) -> list[RegionView]:
    """Every region of the city as its own view, in the scenario's order."""
    return [region_view(scenario, telemetry, forecast, r) for r in scenario.region_sites]


def home_regions(scenario: Scenario) -> dict[str, str]:
    """Site -> the name of its region."""
    return {s: name for name, sites in scenario.region_sites.items() for s in sites}


def region_whatif(
    view: RegionView,
    intents: list[Intent],
    baselines: dict[str, dict[str, float]] | None,
    *,
    horizon_s: float,
    seed: int,
) -> WhatIf:
    """The twin of one region: its sites, its cells' demand, the intents inside the horizon
    (`horizon_s`, shortened by `region_horizon_s` for a busy region); a surge's baseline
    scaled to the region's share, as the forecast is."""
    mine = {n: {m: r * view.share for m, r in b.items()} for n, b in (baselines or {}).items()}
    return WhatIf(
        view.scenario, view.forecast, view.telemetry,
        horizon_s=region_horizon_s(horizon_s, view.rate_per_s), seed=seed, intents=intents,
        baselines=mine,
    )  # fmt: skip


def region_horizon_s(horizon_s: float, rate_per_s: float) -> float:
    """How far a region's twin looks ahead: `horizon_s`, or as far as `REGION_TWIN_PROMPTS`
    forecast prompts reach when that is shorter, never below `MIN_REGION_HORIZON_S`."""
    if rate_per_s <= 0:
        return horizon_s
    reach = REGION_TWIN_PROMPTS / rate_per_s
    return min(horizon_s, max(MIN_REGION_HORIZON_S, reach))
