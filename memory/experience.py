"""An experience: what the city looked like, what the agents did, and how it went.

The situation is a natural-language summary (embedded as text) and a fixed-length numeric
state-feature vector (embedded as features); both come from `summarize_situation`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edgeagents.core.state import Forecast, Plan, RoutingPolicy, Telemetry
from edgeagents.sim.metrics import jain

FEATURES_PER_MODEL = ("arrivals_per_s", "replicas", "queue_len", "mean_latency_s")
FEATURES_PER_SITE = ("up", "busy_share")


class Experience(BaseModel):
    """One stored experience (one planning epoch of one run)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, description="Unique id; storing the same id again replaces it.")
    scenario: str = Field(description="Scenario name the experience comes from.")
    time_s: float = Field(ge=0, description="Simulated time at which the situation was seen, s.")
    epoch: int = Field(default=0, ge=0, description="Planning epoch.")
    situation: str = Field(
        min_length=1,
        description="Natural-language summary: demand per model and area, load, failures, "
        "fairness (what `summarize_situation` writes).",
    )
    action: str = Field(default="", description="The plan and routing guidance taken, as text.")
    outcome: str = Field(default="", description="How it went over the following epoch, as text.")
    mean_latency_s: float | None = Field(
        default=None, ge=0, description="Mean end-to-end latency over the following epoch, s."
    )
    jain: float | None = Field(
        default=None, ge=0, le=1, description="Jain fairness index over the following epoch."
    )
    refused: int = Field(default=0, ge=0, description="Prompts refused over the following epoch.")
    features: list[float] = Field(
        default_factory=list,
        description="State-feature vector: per model (scenario order) demand/s, replicas, "
        "queue, mean latency s; then per site up (0/1), busy share.",
    )
    kind: Literal["epoch", "shift"] = Field(
        default="epoch",
        description="epoch: one planning epoch; shift: a sharp shift and the response that "
        "the city settled on after it.",
    )
    shift: str = Field(default="", description="The shift's signature (see `detect_shifts`).")
    placement: dict[str, list[str]] = Field(
        default_factory=dict, description="Site -> models placed while the outcome was measured."
    )
    demand: dict[str, float] = Field(
        default_factory=dict, description="Model -> prompts/s measured with the outcome."
    )
    cell_weights: dict[str, float] = Field(
        default_factory=dict, description="Cell -> share of prompts measured with the outcome."
    )


def feature_names(telemetry: Telemetry) -> list[str]:
    """Names of the entries of the feature vector, in order."""
    names = [f"{m.model}.{f}" for m in telemetry.models for f in FEATURES_PER_MODEL]
    names += [f"{s.site}.{f}" for s in telemetry.sites for f in FEATURES_PER_SITE]
    return names


def _areas(by_cell: dict[str, float], top: int = 3) -> str:
    total = sum(by_cell.values())
    if total <= 0:
        return ""
    parts = sorted(by_cell.items(), key=lambda kv: -kv[1])[:top]
    return " from " + ", ".join(f"{c} {v / total:.0%}" for c, v in parts if v > 0)


def _level(x: float, calm: float, busy: float) -> str:
    return "low" if x < calm else ("high" if x >= busy else "moderate")


def summarize_situation(telemetry: Telemetry, plan: Plan | None = None) -> tuple[str, list[float]]:
    """The situation as text (demand per model and area, load, failures, fairness, the current
    placement if a plan is given) and as a fixed-length feature vector (see `feature_names`)."""
    t = telemetry
    features: list[float] = []
    demand_parts = []
    for m in t.models:
        lat = m.mean_latency_s or 0.0
        features += [m.arrivals_per_s, float(m.replicas), float(m.queue_len), lat]
        line = f"{m.model} {m.arrivals_per_s:.2f}/s{_areas(m.arrivals_per_s_by_cell)}"
        line += f", {m.replicas} replicas, queue {m.queue_len}"
        if m.mean_latency_s is not None:
            line += f", mean latency {m.mean_latency_s:.1f} s"
        if m.refused:
            line += f", {m.refused} refused"
        demand_parts.append(line)
    site_parts, down = [], []
    for s in t.sites:
        features += [1.0 if s.up else 0.0, s.busy_share]
        if s.up:
            site_parts.append(f"{s.site} {_level(s.busy_share, 0.3, 0.8)} load {s.busy_share:.0%}")
        else:
            down.append(s.site)
    total_rate = sum(m.arrivals_per_s for m in t.models)
    busy = [s.busy_share for s in t.sites if s.up]
    mean_busy = sum(busy) / len(busy) if busy else 0.0
    head = (
        f"At {t.time_s:.0f} s: total demand {total_rate:.2f} prompts/s, "
        f"city load {_level(mean_busy, 0.3, 0.8)} ({mean_busy:.0%} busy)."
    )
    # Most telling first: the embedding model reads the first 256 word pieces only.
    text = [head]
    failures = [f"site {d} down" for d in down] + [f"link {a}-{b} down" for a, b in t.down_links]
    text.append(("Failures: " + ", ".join(failures) + ".") if failures else "No failures.")
    backlog = [f"{m.model} ({m.queue_len} waiting)" for m in t.models if m.queue_len > 4]
    slow = [
        f"{m.model} ({m.mean_latency_s:.0f} s)"
        for m in t.models
        if m.mean_latency_s is not None and m.mean_latency_s > 10
    ]
    if backlog or slow:
        pressure = "Pressure: " + "; ".join(
            ([f"long queues for {', '.join(backlog)}"] if backlog else [])
            + ([f"slow {', '.join(slow)}"] if slow else [])
        )
    else:
        pressure = "No pressure: short queues, fast responses"
    if total_rate > 0:
        top = max(t.models, key=lambda m: m.arrivals_per_s)
        pressure += f". Most demand for {top.model} ({top.arrivals_per_s / total_rate:.0%})"
    text.append(pressure + ".")
    refused = sum(t.refusals_by_reason.values())
    if refused:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(t.refusals_by_reason.items()))
        text.append(f"Refused {refused} ({reasons}).")
    lats = [m.mean_latency_s for m in t.models if m.mean_latency_s is not None]
    fair = jain([float(x) for x in lats]) if lats and sum(lats) > 0 else None
    if fair is not None:
        slowest = max(
            (m for m in t.models if m.mean_latency_s is not None),
            key=lambda m: m.mean_latency_s or 0.0,
        )
        text.append(f"Fairness: Jain {fair:.2f} over model latencies, slowest {slowest.model}.")
    text.append("Sites: " + ", ".join(site_parts) + "." if site_parts else "No site up.")
    text.append("Demand: " + "; ".join(demand_parts) + "." if demand_parts else "No demand.")
    if plan is not None and plan.placement:
        placed = "; ".join(f"{s}: {', '.join(ms) or 'none'}" for s, ms in plan.placement.items())
        text.append(f"Placement: {placed}.")
    return " ".join(text), features


def describe_action(plan: Plan | None, routing: RoutingPolicy | None = None) -> str:
    """The plan and routing guidance taken, as text for `Experience.action`."""
    parts = []
    if plan is not None:
        if plan.placement:
            parts.append(
                "placement "
                + "; ".join(f"{s}: {', '.join(ms) or 'none'}" for s, ms in plan.placement.items())
            )
        if plan.priorities:
            parts.append(
                "priorities " + ", ".join(f"{m} {p:g}" for m, p in plan.priorities.items())
            )
        if plan.actions:
            parts.append("moves " + ", ".join(f"{a.op} {a.model}@{a.site}" for a in plan.actions))
        if plan.notes:
            parts.append(plan.notes)
    if routing is not None and routing.routes:
        parts.append(
            "routing "
            + "; ".join(
                f"{m} -> " + ", ".join(f"{w.site} {w.weight:.2f}" for w in ws)
                for m, ws in routing.routes.items()
            )
        )
    return ". ".join(parts) if parts else "no change"


def describe_outcome(mean_latency_s: float | None, jain: float | None, refused: int) -> str:
    """The measured outcome as text for `Experience.outcome`."""
    lat = f"mean latency {mean_latency_s:.2f} s" if mean_latency_s is not None else "no latency"
    fair = f"Jain {jain:.3f}" if jain is not None else "Jain n/a"
    return f"{lat}, {fair}, {refused} refused"


SURGE_RATIO = 1.4
SURGE_MIN_PER_S = 0.3
SURGE_OVER_PEAK = 1.2
MOVE_DISTANCE = 0.25
SURGE_CONFIRM = 1.2
"""A surge is confirmed while the model's windowed rate stays this many times its forecast from
before the shift. Not SURGE_RATIO: the detector fires late, on a forecast the surge has partly
raised, so a real surge can be under SURGE_RATIO times that forecast an epoch later, while
bursts (a VLM's run at 2 to 3x its rate for minutes) are over it (docs/decisions.md)."""


def shift_persists(shift: str, telemetry: Telemetry, before: Forecast | None) -> bool:
    """Whether the shift `detect_shifts` reported is still visible in this telemetry window,
    judged against the forecast from before it: a lost site is still down, a surged model
    still runs at SURGE_CONFIRM x its old rate, moved demand is still MOVE_DISTANCE / 2 away
    (in total variation) from the old cell shares. Only confirmed shifts are remembered as
    shifts: a false alarm stored as one raises a later forecast for nothing."""
    if shift.startswith("site ") and shift.endswith(" down"):
        site = shift.removeprefix("site ").removesuffix(" down")
        return any(s.site == site and not s.up for s in telemetry.sites)
    if before is None:
        return False
    rates, cells = telemetry.window_demand()
    if shift.startswith("surge "):
        m = shift.removeprefix("surge ")
        old = before.rates_per_s.get(m)
        return old is not None and rates.get(m, 0.0) >= SURGE_CONFIRM * old
    if shift.startswith("demand moved") and cells and before.cell_weights:
        gain = _share_gain(cells, before.cell_weights)
        return 0.5 * sum(abs(g) for g in gain.values()) >= MOVE_DISTANCE / 2
    return False


def _share_gain(cells: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """Per cell, its share of prompts now minus its share before (missing cells count 0)."""
    return {c: cells.get(c, 0.0) - before.get(c, 0.0) for c in set(cells) | set(before)}


def detect_shifts(telemetry: Telemetry, forecast: Forecast | None) -> list[str]:
    """Sharp shifts visible now, as signatures: `site S down`; `surge M` (windowed rate at
    least SURGE_RATIO x the planner's forecast, SURGE_MIN_PER_S above it, and SURGE_OVER_PEAK x
    the model's recent peak, so that a bursty model's ordinary bursts do not count; none
    before that peak is known); `demand moved to C` (the cell shares moved by at least
    MOVE_DISTANCE in total variation; C gained most). Demand shifts are judged on full
    telemetry windows only."""
    found = [f"site {s.site} down" for s in telemetry.sites if not s.up]
    if forecast is None or telemetry.time_s < telemetry.window_s:
        return found
    rates, cells = telemetry.window_demand()
    for m, r in rates.items():
        f = forecast.rates_per_s.get(m)
        peak = forecast.peak_rates_per_s.get(m)
        if (
            f is not None
            and peak is not None
            and r >= SURGE_RATIO * f
            and r - f >= SURGE_MIN_PER_S
            and r >= SURGE_OVER_PEAK * peak
        ):
            found.append(f"surge {m}")
    if cells and forecast.cell_weights:
        gain = _share_gain(cells, forecast.cell_weights)
        if 0.5 * sum(abs(g) for g in gain.values()) >= MOVE_DISTANCE:
            found.append(f"demand moved to {max(gain, key=lambda c: gain[c])}")
    return found
