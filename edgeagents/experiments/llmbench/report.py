"""One LM's row of the benchmark (both tasks and what their calls cost) and the report that
`edgeagents bench llm --json` writes."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from edgeagents.experiments.llmbench.choice import (
    SHUFFLE_SEED,
    MenuAnswer,
    MenuPart,
    ask_menu,
    menu_part,
)
from edgeagents.experiments.llmbench.common import DEFAULT_TIMEOUT_S
from edgeagents.experiments.llmbench.menus import Menu
from edgeagents.experiments.llmbench.notices import (
    NOTICES_SCENARIO,
    LabelledNotice,
    NoticeAnswer,
    NoticeScores,
    ask_notice,
    notice_scores,
)

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from edgeagents.agents.notices import KindReader
    from edgeagents.core.scenario import Scenario


class CallCost(BaseModel):
    """What the LM calls of one part cost."""

    model_config = ConfigDict(extra="forbid")

    calls: int
    mean_s: float | None
    p95_s: float | None
    mean_tokens: float | None = Field(description="Prompt plus completion tokens per call.")


def call_cost(items: Sequence[MenuAnswer | NoticeAnswer]) -> CallCost:
    """Mean and p95 wall seconds and mean tokens over the items that made an LM call."""
    calls = [a for a in items if a.lm_calls > 0]
    if not calls:
        return CallCost(calls=0, mean_s=None, p95_s=None, mean_tokens=None)
    walls = sorted(a.wall_s for a in calls)
    return CallCost(
        calls=len(calls),
        mean_s=sum(walls) / len(walls),
        p95_s=_percentile(walls, 95.0),
        mean_tokens=sum(a.tokens for a in calls) / len(calls),
    )


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    n = len(sorted_values)
    pos = (n - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


class LMRow(BaseModel):
    """Every figure of one LM."""

    model_config = ConfigDict(extra="forbid")

    llm: str
    kind_reader: str = Field("auto", description="Who read the notices' kind (notices.KindReader).")
    menus: MenuPart
    notices: NoticeScores
    menu_cost: CallCost
    notice_cost: CallCost
    wall_s: float = Field(description="Wall time of the whole row, s (indicative).")
    menu_answers: list[MenuAnswer]
    notice_answers: list[NoticeAnswer]


class LLMBenchReport(BaseModel):
    """What `edgeagents bench llm --json` writes."""

    model_config = ConfigDict(extra="forbid")

    menus_file: str
    menus_sha1: str
    notices_file: str
    notices_sha1: str
    menus: int
    menus_by_agent: dict[str, int]
    notices: int
    scenario: str = NOTICES_SCENARIO
    shuffle_seed: int
    timeout_s: float
    rows: list[LMRow]


def file_sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


Progress = Callable[[], None]


def bench_row(
    llm: str,
    model: BaseChatModel | None,
    menus: Sequence[Menu],
    notices: Sequence[LabelledNotice],
    scenario: Scenario,
    *,
    seed: int = SHUFFLE_SEED,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    kind_reader: KindReader = "auto",
    on_item: Progress | None = None,
    clock: Callable[[], float] | None = None,
) -> LMRow:
    """One LM's row: every menu as shown and shuffled, every notice, and what it cost."""
    import time

    now = clock or time.perf_counter
    t0 = now()
    answers: list[MenuAnswer] = []
    for shuffled in (False, True):
        for m in menus:
            answers.append(ask_menu(model, m, shuffled=shuffled, seed=seed, timeout_s=timeout_s))
            if on_item is not None:
                on_item()
    readings: list[NoticeAnswer] = []
    for k, item in enumerate(notices):
        readings.append(
            ask_notice(model, item, k, scenario, timeout_s=timeout_s, kind_reader=kind_reader)
        )
        if on_item is not None:
            on_item()
    return LMRow(
        llm=llm, kind_reader=kind_reader, menus=menu_part(answers, menus),
        notices=notice_scores(readings),
        menu_cost=call_cost(answers), notice_cost=call_cost(readings), wall_s=now() - t0,
        menu_answers=answers, notice_answers=readings,
    )  # fmt: skip
