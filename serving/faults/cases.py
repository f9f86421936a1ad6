"""The Ray target's fault cases, the city they run on (the scenario's text models on a few of
its sites, one Ray node each), and the site that fails."""

from __future__ import annotations

from edgeagents.core.scenario import Scenario
from edgeagents.experiments.faults.report import CaseKind

RAY_CASES: dict[str, CaseKind] = {
    "no-fault": "reference",
    "node-removal": "city",
    "site-crash": "city",
    "replica-crash": "city",
    "overload": "city",
    "lm-down": "lm",
    "lm-slow": "lm",
    "lm-garbage-text": "lm",
    "lm-garbage-json": "lm",
    "link-cut": "city",
    "memory-unreadable": "memory",
    "kill-and-resume": "process",
}
"""Every case of the Ray target, in the order the report lists them."""

RAY_NOT_IMPLEMENTED: dict[str, tuple[str, str]] = {
    "link-cut": (
        "a backhaul link down",
        "the Ray city's backhaul is the gateway's emulated delay (a sleep per request), not a "
        "network Ray routes over: there is no link to cut, only a number to change",
    ),
    "memory-unreadable": (
        "the experience store unreadable mid-run",
        "the agents steer the Ray city without an experience store (as `edgeagents serve` runs "
        "them); the store's fault is the agents' own, measured on the simulated city",
    ),
    "kill-and-resume": (
        "SIGKILL mid-episode, resume from the checkpoint",
        "the Ray city's state is live Ray actors, not a checkpoint: a resumed controller would "
        "find a different city; the checkpointed run is the simulated city's",
    ),
}
"""Case -> (the fault, why it does not run on the Ray city). Listed as rows, never a result."""


def text_models(scenario: Scenario) -> list[str]:
    return [m.name for m in scenario.models if m.kind == "llm"]


def ray_city(scenario: Scenario, sites: int) -> Scenario:
    """The scenario cut to what a CPU machine serves for real: its text (llm) models (SmolLM2
    via llama.cpp), on its first `sites` sites that hold one (then others), with their cells,
    the links between them and those models' demands; no events, notices or regions. Raises
    ValueError (one line) for a city that cannot give that."""
    text = text_models(scenario)
    if not text:
        raise ValueError(f"scenario {scenario.name!r} has no text (llm) model to serve on Ray")
    holders = [s for s, ms in scenario.placement.items() if set(ms) & set(text)]
    order = [*holders, *(s.name for s in scenario.sites if s.name not in holders)]
    chosen = order[:sites]
    if len(chosen) < 2:
        raise ValueError(f"scenario {scenario.name!r}: the Ray target needs at least 2 sites")
    keep = set(chosen)
    data = scenario.model_dump(mode="json")
    workload = data["workload"]
    workload["demands"] = [d for d in workload["demands"] if d["model"] in text]
    data.update(
        name=f"{scenario.name}-ray",
        sites=sorted((s for s in data["sites"] if s["name"] in keep),
                     key=lambda s: chosen.index(s["name"])),
        cells=[c for c in data["cells"] if c["site"] in keep],
        links=[x for x in data["links"] if x["a"] in keep and x["b"] in keep],
        models=[m for m in data["models"] if m["name"] in text],
        placement={s: [m for m in scenario.placement.get(s, []) if m in text] for s in chosen},
        workload=workload,
        events=[],
        notices=[],
        regions=[],
    )  # fmt: skip
    try:
        return Scenario.model_validate(data)
    except ValueError as e:
        first = str(e).splitlines()
        raise ValueError(
            f"scenario {scenario.name!r} cut to sites {', '.join(chosen)} for the Ray target is "
            f"not a valid city: {first[-1] if first else e}"
        ) from e


def victim_site(city: Scenario) -> str:
    """The site that fails: not the head node's (the first), the one with most text models
    placed, then the first."""
    workers = [s.name for s in city.sites[1:]]
    return max(workers, key=lambda s: (len(city.placement.get(s, [])), -workers.index(s)))
