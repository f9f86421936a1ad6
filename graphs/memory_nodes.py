"""Experience memory in the control graph.

At each planning epoch the `recall` node stores how the previous epoch went and shows the
planner the most similar past situations; the best of them also joins the planner's menu as a
candidate placement. Out of cycle, when `observe` sees a sharp shift (a site lost, a surge,
demand moving; `memory.experience.detect_shifts`), `recall` looks for past shifts of the same
kind. If one is remembered, the planner re-plans now, on the demand that followed that shift
and with the placement the city settled on then as a candidate, instead of waiting for the
next epoch; the scheduler's prompt shows the same lines. Every shift is watched for
`WATCH_EPOCHS` epochs, and its experience is rewritten each epoch (while prompts arrive and
the shift is still seen, `memory.experience.shift_persists`) with the placement in force and
how it did, so the store keeps what the city settled on. A shift gone by the next epoch (a
burst taken for a surge) is never stored.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from langchain_core.runnables import RunnableConfig

from edgeagents.core.control_state import ControlState
from edgeagents.core.state import Forecast, Telemetry
from edgeagents.sim.metrics import jain

WATCH_EPOCHS = 10
log = logging.getLogger("edgeagents.memory")


def window_outcome(telemetry: Telemetry) -> tuple[float | None, float | None, int]:
    """Mean latency (weighted by prompts served), Jain over model speeds, refusals: the
    telemetry window's view of how the plan in force did."""
    served = [(m.mean_latency_s, m.served) for m in telemetry.models if m.mean_latency_s]
    n = sum(k for _, k in served)
    mean = sum(lat * k for lat, k in served) / n if n else None
    speeds = [1.0 / lat for lat, _ in served]
    return mean, jain(speeds) if speeds else None, sum(m.refused for m in telemetry.models)


class Recall:
    """The recall node (see `create_recall`): stores how the last epoch went, watches shifts,
    and finds the past situations the planner and scheduler are shown."""

    def __init__(self, store: Any, *, k: int, name: str) -> None:
        self.store = store
        self.k = k
        self.__name__ = name

    def __call__(self, state: ControlState, config: RunnableConfig) -> dict:
        from memory.errors import MemoryStoreError
        from memory.experience import summarize_situation

        telemetry = state["telemetry"]
        configurable = (config or {}).get("configurable", {})
        scenario = configurable.get("scenario")
        scenario_name = scenario.name if scenario is not None else "unknown"
        epoch_s = scenario.control.planning_epoch_s if scenario is not None else 120.0
        thread = str(configurable.get("thread_id", "run"))
        text, features = summarize_situation(telemetry, state.get("plan"))
        query = text if self.store.embedding == "text" else features
        epoch = int(telemetry.time_s // epoch_s)
        shift = state.get("shift")
        out: dict[str, Any] = {}
        try:
            if state.get("run_planner"):
                self.store_epoch(state, out, scenario_name, thread)
            hits: list = []
            if shift:
                out["shift_watch"] = {
                    "id": f"{thread}-shift-{telemetry.time_s:.0f}",
                    "shift": shift,
                    "time_s": telemetry.time_s,
                    "epoch": epoch,
                    "situation": text,
                    "features": features,
                    "until_s": telemetry.time_s + WATCH_EPOCHS * epoch_s,
                    "before": state["forecast"].model_dump() if state.get("forecast") else None,
                }
                hits = self.recall_shift(telemetry, out, shift, query)
            if not hits and state.get("run_planner"):
                hits = self.store.search(query, k=self.k)
                if hits and hits[0][0].placement:
                    out["recalled_plan"] = {"placement": hits[0][0].placement}
        except MemoryStoreError as e:
            warnings.warn(f"experience memory off for this cycle: {e}", stacklevel=1)
            hits = []
        out["recalled"] = [f"- {h.action[:200]} -> {h.outcome}" for h, _ in hits]
        if state.get("run_planner"):
            out["last_situation"] = {
                "situation": text,
                "features": features,
                "epoch": epoch,
                "time_s": telemetry.time_s,
            }
        return out

    def store_epoch(
        self, state: ControlState, out: dict[str, Any], scenario_name: str, thread: str
    ) -> None:
        """At an epoch boundary: how the last epoch's situation went, and, while a shift is
        watched and still seen, what the city settled on after it."""
        from edgeagents.agents.tools import placement_of
        from memory.experience import (
            Experience,
            describe_action,
            describe_outcome,
            shift_persists,
        )

        telemetry = state["telemetry"]
        watch = state.get("shift_watch")
        mean, fair, refused = window_outcome(telemetry)
        rates, cells = telemetry.window_demand()
        action = describe_action(state.get("plan"), state.get("routing"))
        measured = {
            "scenario": scenario_name,
            "outcome": describe_outcome(mean, fair, refused),
            "mean_latency_s": mean,
            "jain": fair,
            "refused": refused,
            "placement": placement_of(telemetry),
            "demand": rates,
            "cell_weights": cells,
        }
        last = state.get("last_situation")
        if last:
            self.store.add(
                Experience(
                    id=f"{thread}-{last['epoch']}-{last['time_s']:.0f}",
                    time_s=last["time_s"], epoch=last["epoch"],
                    situation=last["situation"], action=action,
                    features=last["features"], **measured,
                )
            )  # fmt: skip
        watching = bool(watch and telemetry.time_s <= watch["until_s"] and sum(rates.values()) > 0)
        if watching and not shift_persists(
            watch["shift"], telemetry, forecast_or_none(watch.get("before"))
        ):
            log.info("%.0f s: %s no longer seen", telemetry.time_s, watch["shift"])
            watching = False
        if watching:
            self.store.add(
                Experience(
                    id=watch["id"], time_s=watch["time_s"], epoch=watch["epoch"],
                    situation=watch["situation"], action=f"settled on {action}",
                    features=watch["features"], kind="shift", shift=watch["shift"],
                    **measured,
                )
            )  # fmt: skip
        elif watch:
            out["shift_watch"] = None

    def recall_shift(
        self, telemetry: Telemetry, out: dict[str, Any], shift: str, query: Any
    ) -> list:
        """Past shifts of the same kind; the closest one makes the planner re-plan now, on the
        demand and with the placement that followed it."""
        where = {"$and": [{"kind": "shift"}, {"shift": shift}]}
        hits = self.store.search(query, k=self.k, where=where)
        log.info(
            "%.0f s: %s; %s", telemetry.time_s, shift,
            f"recalled {hits[0][0].id} ({hits[0][1]:.3f})" if hits else "none remembered",
        )  # fmt: skip
        if hits:
            best = hits[0][0]
            out["run_planner"] = True
            out["recalled_plan"] = {
                "shift": shift,
                "placement": best.placement,
                "demand": best.demand,
                "cell_weights": best.cell_weights,
            }
        return hits


def create_recall(store: Any, *, k: int = 3, name: str = "recall") -> Recall:
    """A node before the planner. `store` is a `memory.store.ExperienceStore`; when it fails,
    the run goes on without memory and a warning says why."""
    return Recall(store, k=k, name=name)


def forecast_or_none(data: dict[str, Any] | None) -> Forecast | None:
    return Forecast.model_validate(data) if data else None
