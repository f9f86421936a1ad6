"""What one policy's episode under a fault shows: where every prompt went, latency around the
fault window, when latency came back, and which path each agent decision took."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeagents.core.state import Decision
from edgeagents.experiments.driver import EpisodeRun
from edgeagents.sim.workload import Workload

RECOVERY_TOLERANCE = 0.10
"""Latency is back when a sliding window's mean is at most this share above the mean before."""

Recovery = float | Literal["never"] | None
"""Seconds after the fault ends until latency is back; "never"; None where it cannot be
judged (the fault lasts the whole run, or nothing was served before it)."""


class DecisionPaths(BaseModel):
    """Which path the agents' decisions took: an LM fault must show as fallbacks, never as a
    stopped control loop."""

    model_config = ConfigDict(extra="forbid")

    decisions: int = Field(description="Agent decision records (planner, scheduler, deployers).")
    by_path: dict[str, int] = Field(description="Records per path: lm, repaired, fallback, tools.")
    lm_calls: int = Field(description="LM calls the decisions made.")
    lm_failed: int = Field(description="Decisions that called the LM and took the fallback.")
    lm_answered: int = Field(description="Decisions whose LM call answered (lm or repaired).")
    fallback: int = Field(description="Decisions that took the fallback (the menu's first option).")


class PolicyFigures(BaseModel):
    """One policy's episode in one fault case."""

    model_config = ConfigDict(extra="forbid")

    policy: str
    offered: int = Field(description="Prompts in the workload.")
    served: int
    refused: int
    refused_by_reason: dict[str, int]
    lost: int = Field(description="offered - served - refused: must be 0.")
    mean_before_s: float | None = Field(description="Prompts arriving before the fault window.")
    mean_during_s: float | None = Field(description="Prompts arriving inside it.")
    mean_after_s: float | None = Field(description="Prompts arriving after it.")
    recovery_s: Recovery = Field(
        description="Seconds from the fault's end to the start of the first sliding window "
        "(by arrival) whose mean latency is within 10% of the mean before; 'never'; None "
        "where it cannot be judged."
    )
    ticks: int = Field(description="Control ticks the loop ran.")
    last_tick_s: float = Field(description="Simulated time of the last control tick.")
    reached_end: bool = Field(description="The control loop ran to the arrival horizon.")
    paths: DecisionPaths | None = Field(default=None, description="The agents only.")
    wall_s: float


def mean_of(lat: np.ndarray, mask: np.ndarray) -> float | None:
    sel = mask & ~np.isnan(lat)
    return float(lat[sel].mean()) if sel.any() else None


def recovery_s(
    arrival: np.ndarray,
    lat: np.ndarray,
    *,
    before_s: float | None,
    end_s: float,
    horizon_s: float,
    window_s: float,
    step_s: float,
    tolerance: float = RECOVERY_TOLERANCE,
) -> Recovery:
    """The first window [t, t + window_s) from the fault's end on (stepped by `step_s`, inside
    the horizon) whose served prompts' mean latency is at most (1 + tolerance) x `before_s`:
    t - end_s; "never" if none is; None without a mean before or room after."""
    if before_s is None or end_s + window_s > horizon_s + 1e-9:
        return None
    served = ~np.isnan(lat)
    limit = (1.0 + tolerance) * before_s
    t = end_s
    while t + window_s <= horizon_s + 1e-9:
        sel = served & (arrival >= t) & (arrival < t + window_s)
        if sel.any() and float(lat[sel].mean()) <= limit:
            return round(t - end_s, 3)
        t += step_s
    return "never"


def decision_paths(run: EpisodeRun | Sequence[Decision]) -> DecisionPaths:
    """Every agent record of an episode (or of its decisions), by path, and what became of
    its LM calls."""
    decisions = run.decisions if isinstance(run, EpisodeRun) else run
    records = [r for d in decisions for r in d.records]
    by_path = dict(sorted(Counter(r.path for r in records).items()))
    return DecisionPaths(
        decisions=len(records),
        by_path=by_path,
        fallback=by_path.get("fallback", 0),
        lm_calls=sum(r.lm_calls for r in records),
        lm_failed=sum(1 for r in records if r.lm_calls and r.path == "fallback"),
        lm_answered=sum(1 for r in records if r.lm_calls and r.path in ("lm", "repaired")),
    )


def policy_figures(
    run: EpisodeRun,
    workload: Workload,
    *,
    window: tuple[float, float],
    horizon_s: float,
    recovery_window_s: float,
    step_s: float,
    agents: bool,
) -> PolicyFigures:
    """The figures of one simulated episode around the fault window (start, end), by
    arrival time."""
    out = run.outcomes
    last = run.ticks[-1].time_s if run.ticks else 0.0
    return outcome_figures(
        run.policy, workload.arrival_s, out.latency_s,
        refused=int((out.refused >= 0).sum()), refused_by_reason=out.refused_by_reason(),
        window=window, horizon_s=horizon_s, recovery_window_s=recovery_window_s,
        step_s=step_s, ticks=len(run.ticks), last_tick_s=last,
        paths=decision_paths(run) if agents else None, wall_s=run.wall_s,
    )  # fmt: skip


def outcome_figures(
    policy: str,
    arrival_s: np.ndarray,
    latency_s: np.ndarray,
    *,
    refused: int,
    refused_by_reason: dict[str, int],
    window: tuple[float, float],
    horizon_s: float,
    recovery_window_s: float,
    step_s: float,
    ticks: int,
    last_tick_s: float,
    paths: DecisionPaths | None,
    wall_s: float,
) -> PolicyFigures:
    """A row's figures from every offered prompt's arrival and latency (NaN: not served),
    whatever city ran them: lost = offered - served - refused."""
    lat, arrival = latency_s, arrival_s
    start, end = window
    offered = len(arrival)
    served = int((~np.isnan(lat)).sum())
    before = mean_of(lat, arrival < start)
    back = recovery_s(
        arrival, lat, before_s=before, end_s=end, horizon_s=horizon_s,
        window_s=recovery_window_s, step_s=step_s,
    )  # fmt: skip
    return PolicyFigures(
        policy=policy,
        offered=offered,
        served=served,
        refused=refused,
        refused_by_reason=refused_by_reason,
        lost=offered - served - refused,
        mean_before_s=before,
        mean_during_s=mean_of(lat, (arrival >= start) & (arrival < end)),
        mean_after_s=mean_of(lat, arrival >= end),
        recovery_s=back,
        ticks=ticks,
        last_tick_s=last_tick_s,
        reached_end=last_tick_s >= horizon_s - 1e-9,
        paths=paths,
        wall_s=wall_s,
    )
