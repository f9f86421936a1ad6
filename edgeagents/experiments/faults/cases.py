"""The fault cases of `bench faults`: their names and kinds, the fault window, and the city
variants (a site crash, a link cut, an overload) written as the scenario's own events and
demand shifts, so the simulator applies them as it applies any scenario's."""

from __future__ import annotations

import math
from typing import Any

import networkx as nx

from edgeagents.agents.lmconfig import AGENTS, AgentsLMConfig
from edgeagents.core.scenario import Scenario
from edgeagents.experiments.faults.report import CaseKind, FaultsSettings

CASES: dict[str, CaseKind] = {
    "no-fault": "reference",
    "site-crash": "city",
    "link-cut": "city",
    "overload": "city",
    "lm-down": "lm",
    "lm-slow": "lm",
    "lm-garbage-text": "lm",
    "lm-garbage-json": "lm",
    "memory-unreadable": "memory",
    "kill-and-resume": "process",
}
"""Every case, in the order the report lists them."""

LM_MODES: dict[str, str] = {
    "lm-down": "down",
    "lm-slow": "slow",
    "lm-garbage-text": "garbage-text",
    "lm-garbage-json": "garbage-json",
}
"""LM case -> how its endpoint misbehaves (`down`: nothing listens; else a `FakeLMServer` mode)."""

NOT_IMPLEMENTED: dict[str, tuple[str, str]] = {}
"""Case -> (the fault, why it cannot run yet). Listed as rows, never given a result."""


def fault_window(scenario: Scenario, duration_s: float) -> tuple[float, float]:
    """The middle third of the horizon, on control ticks: a stretch before it to compare with,
    one after it to recover in."""
    tick = scenario.control.tick_s
    start = max(tick, round(duration_s / 3 / tick) * tick)
    end = max(start + tick, round(2 * duration_s / 3 / tick) * tick)
    return float(start), float(min(end, duration_s))


def memory_window(
    scenario: Scenario, window: tuple[float, float], horizon_s: float
) -> tuple[float, float]:
    """The memory row's window: the store is used at planning epochs, so the window must hold
    one after the tick that breaks it, or the fault never bites; else it is extended to the
    first such epoch and a tick past it (within the horizon)."""
    start, end = window
    epoch, tick = scenario.control.planning_epoch_s, scenario.control.tick_s
    first = (math.floor(start / epoch) + 1) * epoch
    if first <= end:
        return window
    return start, float(min(first + tick, horizon_s))


def crash_site(scenario: Scenario) -> str:
    """The site whose loss hurts most: most models placed on it, then most GPU memory."""
    catalogue = scenario.gpu_catalogue

    def weight(site: Any) -> tuple[int, float]:
        memory = sum(catalogue[g.type].memory_gb * g.count for g in site.gpus)
        return len(scenario.placement.get(site.name, [])), memory

    return max(scenario.sites, key=weight).name


def cut_link(scenario: Scenario) -> tuple[str, str] | None:
    """A backhaul link to cut: a bridge if there is one (the cut then splits the city), else
    the first link; None for a city without links."""
    if not scenario.links:
        return None
    bridges = {frozenset(b) for b in nx.bridges(scenario.backhaul)}
    for link in scenario.links:
        if frozenset((link.a, link.b)) in bridges:
            return link.a, link.b
    return scenario.links[0].a, scenario.links[0].b


def revalidated(scenario: Scenario, **update: Any) -> Scenario:
    """The scenario with fields replaced, checked again as a scenario file would be."""
    return Scenario.model_validate({**scenario.model_dump(), **update})


def city_variant(
    scenario: Scenario,
    case: str,
    window: tuple[float, float],
    *,
    overload_factor: float,
    bounded_queue: int,
) -> tuple[Scenario, str]:
    """The scenario of a city case, and the fault in words. Raises ValueError for a city
    that cannot have it (a link cut in a city without links)."""
    start, end = window
    events = [e.model_dump() for e in scenario.events]
    if case == "site-crash":
        site = crash_site(scenario)
        events += [
            {"at_s": start, "kind": "site_down", "site": site},
            {"at_s": end, "kind": "site_up", "site": site},
        ]
        return revalidated(scenario, events=events), f"site {site} down {start:g}-{end:g} s"
    if case == "link-cut":
        link = cut_link(scenario)
        if link is None:
            raise ValueError("the city has no backhaul link to cut")
        events += [
            {"at_s": start, "kind": "link_down", "link": list(link)},
            {"at_s": end, "kind": "link_up", "link": list(link)},
        ]
        what = f"link {link[0]}-{link[1]} down {start:g}-{end:g} s"
        return revalidated(scenario, events=events), what
    if case == "overload":
        workload = scenario.workload.model_dump()
        workload["shifts"] = [
            *workload["shifts"],
            {"at_s": start, "factor": overload_factor},
            {"at_s": end, "factor": 1.0 / overload_factor},
        ]
        queue = min(bounded_queue, scenario.control.max_queue_per_replica)
        control = {**scenario.control.model_dump(), "max_queue_per_replica": queue}
        what = (
            f"every demand x{overload_factor:g} {start:g}-{end:g} s, queues bounded at "
            f"{queue} per replica"
        )
        return revalidated(scenario, workload=workload, control=control), what
    raise ValueError(f"{case!r} is not a city case")


def fake_lm(base_url: str, settings: FaultsSettings) -> AgentsLMConfig:
    """Every agent on `openai:fake` at `base_url`, with the campaign's small LM limit."""
    from edgeagents.agents.llm import LMConfig

    defaults = AgentsLMConfig()
    return AgentsLMConfig(**{
        a: LMConfig(spec="openai:fake", base_url=base_url, api_key="EMPTY",
                    timeout_s=settings.lm_timeout_s, max_tokens=getattr(defaults, a).max_tokens)
        for a in AGENTS
    })  # fmt: skip


def describe_endpoint(mode: str, url: str, settings: FaultsSettings) -> str:
    """An LM row's fault in words."""
    if mode == "down":
        return f"nothing listens at {url}"
    if mode == "slow":
        return (
            f"a local server answers after {settings.slow_delay_s:g} s, past the "
            f"{settings.lm_timeout_s:g}-s LM limit"
        )
    if mode == "garbage-text":
        return "a local server answers HTTP 200 with prose, not the schema's JSON"
    return "a local server answers HTTP 200 with a body that is not JSON"
