"""The LangGraph state of one control cycle, and the reducers of the fields several nodes
write at once."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from edgeagents.core.state import (
    AgentRecord,
    ApplyReport,
    Decision,
    DeploymentAction,
    Forecast,
    Plan,
    RoutingPolicy,
    Telemetry,
)


def merge_by_key(current: dict | None, update: dict | None) -> dict:
    """Reducer for fields several nodes write in one step (one key each: a site, an agent).
    `None` clears the field: the observe node starts each control cycle with it."""
    if update is None:
        return {}
    return {**(current or {}), **update}


def add_items(current: list | None, update: list | None) -> list:
    """Reducer of lists that inputs extend (operator notices posted to a running graph)."""
    return [*(current or []), *(update or [])]


class ControlState(TypedDict, total=False):
    """The LangGraph state of one control cycle (observe -> planner -> deployers -> scheduler
    -> apply). Fields written by parallel deployers, or by every agent, have reducers."""

    time_s: float
    cycle: int
    started_wall_s: float
    telemetry: Telemetry
    forecast: Forecast
    run_planner: bool
    plan: Plan
    pending: Annotated[dict[str, list[DeploymentAction]], merge_by_key]
    actions: Annotated[dict[str, list[DeploymentAction]], merge_by_key]
    routing: RoutingPolicy
    records: Annotated[dict[str, AgentRecord], merge_by_key]
    decision: Decision
    report: ApplyReport
    site: str
    recalled: list[str]
    last_situation: dict[str, Any]
    shift: str | None
    shifts_seen: list[str]
    shift_watch: dict[str, Any] | None
    recalled_plan: dict[str, Any] | None
    notices: Annotated[list[Any], add_items]
    """Operator notices posted as graph input (dicts or `Notice`s), read once each."""
    unread_notices: list[Any]
    notice_errors: list[str]
    notice_errors_seen: list[str]
    intents: dict[str, Any]
    """Notice id -> the `Intent` read from it (every notice read so far, `none` included)."""
    intent_baselines: dict[str, dict[str, float]]
    outages: list[str]
    """Sites and links down at the last observation (`site S`, `link A-B`)."""
    planned_at_s: float
    """When the planner last ran: a forecast is judged on a window seen wholly since."""
    regional: bool
    """Whether the city has several regions (planned and routed region by region)."""
    region: str
    """The region a region planner plans (sent by the planner's fan-out)."""
    region_jobs: dict[str, Any] | None
    """Region -> its `RegionJob` this epoch (a city of several regions only)."""
    region_plans: Annotated[dict[str, Any], merge_by_key]
    """Region -> its `RegionPlan`, written by the region planners in parallel."""
    plan_started_wall_s: float
    routing_evaluated: dict[str, int]
    """Region -> the cycle its routes were last evaluated (a city of several regions)."""
