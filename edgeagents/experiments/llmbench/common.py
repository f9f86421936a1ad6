"""What both tasks of the LM benchmark share: the per-call limit, the shipped data files and
shares of answers."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

DEFAULT_TIMEOUT_S = 60.0
"""Per call: far above what an answer takes, so a loaded machine does not turn answers into
timeouts (the benchmark measures answers; the cost part measures time)."""


def data_path(name: str) -> Path:
    return Path(str(resources.files("edgeagents") / "data" / name))


def share(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None
