"""Experience memory in the control graph: at each planning epoch, store how the previous plan
went, and recall the most similar past situations for the planner's prompt."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from langchain_core.runnables import RunnableConfig

from edgeagents.metrics import jain
from edgeagents.state import ControlState, Telemetry


def _window_outcome(telemetry: Telemetry) -> tuple[float | None, float | None, int]:
    """Mean latency (weighted by prompts served), Jain over model speeds, refusals: the
    telemetry window's view of how the plan in force did."""
    served = [(m.mean_latency_s, m.served) for m in telemetry.models if m.mean_latency_s]
    n = sum(k for _, k in served)
    mean = sum(lat * k for lat, k in served) / n if n else None
    speeds = [1.0 / lat for lat, _ in served]
    return mean, jain(speeds) if speeds else None, sum(m.refused for m in telemetry.models)


def create_recall(store: Any, *, k: int = 3, name: str = "recall") -> Callable[..., dict]:
    """A node for the planner's path. `store` is a `memory.store.ExperienceStore`; when it
    fails, the run goes on without memory and a warning says why."""
    from memory.errors import MemoryStoreError
    from memory.experience import (
        Experience,
        describe_action,
        describe_outcome,
        summarize_situation,
    )

    def recall(state: ControlState, config: RunnableConfig) -> dict:
        telemetry = state["telemetry"]
        configurable = (config or {}).get("configurable", {})
        scenario = configurable.get("scenario")
        thread = str(configurable.get("thread_id", "run"))
        text, features = summarize_situation(telemetry, state.get("plan"))
        last = state.get("last_situation")
        try:
            if last:
                mean, fair, refused = _window_outcome(telemetry)
                store.add(
                    Experience(
                        id=f"{thread}-{last['epoch']}-{last['time_s']:.0f}",
                        scenario=scenario.name if scenario is not None else "unknown",
                        time_s=last["time_s"],
                        epoch=last["epoch"],
                        situation=last["situation"],
                        action=describe_action(state.get("plan"), state.get("routing")),
                        outcome=describe_outcome(mean, fair, refused),
                        mean_latency_s=mean,
                        jain=fair,
                        refused=refused,
                        features=last["features"],
                    )
                )
            query = text if store.embedding == "text" else features
            hits = store.search(query, k=k) if store.count() else []
        except MemoryStoreError as e:
            warnings.warn(f"experience memory off for this epoch: {e}", stacklevel=1)
            hits = []
        epoch = int(telemetry.time_s // scenario.control.planning_epoch_s) if scenario else 0
        return {
            "recalled": [f"- {h.action[:200]} -> {h.outcome}" for h, _ in hits],
            "last_situation": {
                "situation": text,
                "features": features,
                "epoch": epoch,
                "time_s": telemetry.time_s,
            },
        }

    recall.__name__ = name
    return recall
