"""What became of each prompt of an episode: `EpisodeOutcomes`, and the codes of refusals.

A module of its own because the city writes outcomes (`dispatch`) while metrics, benchmarks
and replays read them; none of those need the simulator to do so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeagents.core.state import REFUSAL_REASONS

REASON_CODE = {r: i for i, r in enumerate(REFUSAL_REASONS)}
"""Refusal reason -> its code in `EpisodeOutcomes.refused` (-1: not refused)."""


@dataclass(frozen=True, slots=True)
class EpisodeOutcomes:
    """Per-prompt results of one episode, columnar (index = prompt index in the workload)."""

    latency_s: np.ndarray
    site: np.ndarray
    uplink_s: np.ndarray
    backhaul_s: np.ndarray
    queue_s: np.ndarray
    cold_s: np.ndarray
    infer_s: np.ndarray
    refused: np.ndarray
    done_s: np.ndarray

    def refused_by_reason(self) -> dict[str, int]:
        counts = np.bincount(self.refused[self.refused >= 0], minlength=len(REFUSAL_REASONS))
        return {r: int(c) for r, c in zip(REFUSAL_REASONS, counts, strict=True) if c}
