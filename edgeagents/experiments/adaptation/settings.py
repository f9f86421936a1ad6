"""What an adaptation run is set by: its settings, the memory modes it compares and the
shifted variants of the base scenario (the package's docstring says what each shift does)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edgeagents.core.scenario import CityEvent, DemandShift, Scenario

MemoryMode = Literal["off", "cold", "warm"]
SHIFTS = ("surge", "site-failure", "demand-move")


class AdaptationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    duration_s: float = Field(default=720.0, gt=0, description="Arrival horizon of an episode.")
    shift_at_s: float = Field(
        default=255.0, gt=0, description="When the shift happens (mid-epoch: not at a boundary)."
    )
    planning_epoch_s: float = Field(default=30.0, gt=0)
    window_epochs: int = Field(
        default=6, ge=1, description="Epochs after the shift that the post-shift mean covers."
    )
    surge_factor: float = Field(default=1.8, gt=1)
    decision_s: float | None = Field(
        default=1.0,
        ge=0,
        description="Every control decision applies this many seconds after its tick, so that "
        "an episode does not depend on how loaded the machine is (a second's difference in "
        "when a load starts after a site failure can triple that epoch's mean latency). None: "
        "after the wall time its agents really took, as `edgeagents run` charges. With a "
        "fixed charge the planner's plan search also runs to its end (its step limit) instead "
        "of stopping at its wall-time budget, and each LM call may take the time it needs "
        "instead of falling back at its agent's limit.",
    )
    seed: int = 0


def shift_scenario(base: Scenario, shift: str, settings: AdaptationSettings) -> Scenario:
    """The base scenario with the adaptation's control period and one shift."""
    if shift not in SHIFTS:
        raise ValueError(f"shift {shift!r}: expected one of {', '.join(SHIFTS)}")
    at = settings.shift_at_s
    workload = base.workload
    events = list(base.events)
    if shift == "surge":
        top = max(workload.demands, key=lambda d: d.arrivals.rate_per_s)
        extra = DemandShift(at_s=at, model=top.model, factor=settings.surge_factor)
        workload = workload.model_copy(update={"shifts": [*workload.shifts, extra]})
    elif shift == "site-failure":
        site = max(base.sites, key=lambda s: sum(g.count * _memory(base, g.type) for g in s.gpus))
        events.append(CityEvent(at_s=at, kind="site_down", site=site.name))
    else:
        cells = sorted(base.cells, key=lambda c: c.users)
        moves = [DemandShift(at_s=at, cell=c.name, factor=6.0) for c in cells[:2]]
        moves.append(DemandShift(at_s=at, cell=cells[-1].name, factor=0.3))
        workload = workload.model_copy(update={"shifts": [*workload.shifts, *moves]})
    control = base.control.model_copy(update={"planning_epoch_s": settings.planning_epoch_s})
    return base.model_copy(
        update={
            "name": f"{base.name}-{shift}",
            "workload": workload,
            "events": events,
            "control": control,
            "duration_s": settings.duration_s,
        }
    )


def _memory(scenario: Scenario, gpu_type: str) -> float:
    return scenario.gpu_catalogue[gpu_type].memory_gb


def describe_shift(scenario: Scenario, shift: str, settings: AdaptationSettings) -> str:
    sc = shift_scenario(scenario, shift, settings)
    if shift == "site-failure":
        return f"site {sc.events[-1].site} down at {settings.shift_at_s:g} s"
    moved = sc.workload.shifts[-1] if shift == "surge" else sc.workload.shifts[-3:]
    if shift == "surge":
        return f"{moved.model} demand x{moved.factor:g} at {settings.shift_at_s:g} s"
    return "users move: " + ", ".join(f"{m.cell} x{m.factor:g}" for m in moved)
