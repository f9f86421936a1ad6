"""The notice extraction task: a labelled set of operator notices read as the planner reads
them, each reading compared field by field with its label, and the scores over the set."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from edgeagents.experiments.llmbench.common import DEFAULT_TIMEOUT_S, data_path, share

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from edgeagents.agents.notices import KindReader
    from edgeagents.core.notice import Intent
    from edgeagents.core.scenario import Scenario

NOTICES_FILE = "notices-bristol.jsonl"
NOTICES_SCENARIO = "bristol"
TIME_TOL_S = 1.0
REL_TOL = 0.01


def default_notices_path() -> Path:
    return data_path(NOTICES_FILE)


class LabelledNotice(BaseModel):
    """One line of the labelled notices set: free text and its intent in strict form."""

    model_config = ConfigDict(extra="ignore")

    text: str
    publish_s: float = 0.0
    expect: str = Field(description="The intended intent in strict form.")
    tags: list[str] = Field(default_factory=list)


def load_labelled_notices(
    path: Path | None = None, limit: int | None = None
) -> list[LabelledNotice]:
    """The labelled set (the shipped file by default); the first `limit` if given."""
    p = path or default_notices_path()
    out: list[LabelledNotice] = []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(LabelledNotice.model_validate_json(line))
        except ValueError as e:
            raise ValueError(f"{p}:{n}: not a labelled notice ({str(e).splitlines()[0]})") from None
    return out if limit is None else out[:limit]


def gold_intent(item: LabelledNotice, scenario: Scenario) -> Intent:
    """The label as an intent: its strict form read by `parse_strict`, as `--llm none` would."""
    from edgeagents.core.notice import Notice
    from edgeagents.core.notice_form import parse_strict

    gold = parse_strict(Notice(text=item.expect, publish_s=item.publish_s), scenario)
    if gold is None:
        raise ValueError(f"label {item.expect!r} is not in the strict form")
    return gold


SET_FIELDS = ("models", "sites", "cells")
NUMBER_FIELDS = ("start_s", "end_s", "factor", "bound_s")


class FieldCounts(BaseModel):
    """Counts behind a field's precision and recall."""

    model_config = ConfigDict(extra="forbid")

    predicted: int = 0
    gold: int = 0
    correct: int = 0

    @property
    def precision(self) -> float | None:
        return self.correct / self.predicted if self.predicted else None

    @property
    def recall(self) -> float | None:
        return self.correct / self.gold if self.gold else None


def _close(field: str, x: float, y: float) -> bool:
    if field in ("start_s", "end_s"):
        return abs(x - y) <= TIME_TOL_S
    return abs(x - y) <= REL_TOL * abs(y)


def field_counts(pred: Intent, gold: Intent) -> dict[str, FieldCounts]:
    """Per field, for one notice: names are set elements; a number counts as predicted when
    not None on a non-none intent, and correct within 1 s (times) or 1% (factor, bound)."""
    out: dict[str, FieldCounts] = {}
    for f in SET_FIELDS:
        p = set(getattr(pred, f)) if pred.kind != "none" else set()
        g = set(getattr(gold, f)) if gold.kind != "none" else set()
        out[f] = FieldCounts(predicted=len(p), gold=len(g), correct=len(p & g))
    for f in NUMBER_FIELDS:
        x = getattr(pred, f) if pred.kind != "none" else None
        y = getattr(gold, f) if gold.kind != "none" else None
        ok = x is not None and y is not None and _close(f, x, y)
        out[f] = FieldCounts(predicted=int(x is not None), gold=int(y is not None), correct=int(ok))
    return out


class NoticeAnswer(BaseModel):
    """One LM reading of one labelled notice."""

    model_config = ConfigDict(extra="forbid")

    index: int
    gold_kind: str
    kind: str
    exact: bool
    predicted: str = Field(description="The intent read, in strict form.")
    gold: str = Field(description="The label's intent, in strict form.")
    path: str
    error: str | None = None
    lm_calls: int = 0
    wall_s: float = 0.0
    tokens: int = 0
    fields: dict[str, FieldCounts]


def ask_notice(
    model: BaseChatModel | None,
    item: LabelledNotice,
    index: int,
    scenario: Scenario,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    kind_reader: KindReader = "auto",
) -> NoticeAnswer:
    """Read one notice as the planner does (`extract_intent`) and compare it with its label."""
    from edgeagents.agents.notices import extract_intent
    from edgeagents.core.notice import Notice, same_intent

    gold = gold_intent(item, scenario)
    notice = Notice(text=item.text, publish_s=item.publish_s)
    pred, cost = extract_intent(
        model, notice, scenario, timeout_s=timeout_s, kind_reader=kind_reader
    )
    return NoticeAnswer(
        index=index, gold_kind=gold.kind, kind=pred.kind, exact=same_intent(pred, gold),
        predicted=pred.strict(), gold=gold.strict(), path=pred.path, error=cost["error"],
        lm_calls=int(cost["lm_calls"]), wall_s=float(cost["wall_s"]), tokens=int(cost["tokens"]),
        fields=field_counts(pred, gold),
    )  # fmt: skip


class NoticeField(BaseModel):
    """A field's counts, precision and recall over all notices."""

    model_config = ConfigDict(extra="forbid")

    predicted: int
    gold: int
    correct: int
    precision: float | None = Field(description="correct / predicted.")
    recall: float | None = Field(description="correct / gold-present.")


class NoticeScores(BaseModel):
    """Notice extraction figures of one LM."""

    model_config = ConfigDict(extra="forbid")

    notices: int
    accuracy: float | None = Field(description="Share read as exactly the label's intent.")
    kind_accuracy: float | None = Field(description="Share read as the label's kind.")
    by_kind: dict[str, float | None] = Field(description="Exact accuracy per label kind.")
    by_kind_count: dict[str, int] = Field(description="Labelled notices per kind.")
    failed_share: float | None = Field(description="Share where the LM gave no valid answer.")
    fields: dict[str, NoticeField]


def notice_scores(answers: Sequence[NoticeAnswer]) -> NoticeScores:
    """Accuracy (overall, per label kind, of the kind alone) and per-field precision/recall."""
    kinds = sorted({a.gold_kind for a in answers})
    fields: dict[str, NoticeField] = {}
    for f in (*SET_FIELDS, *NUMBER_FIELDS):
        c = FieldCounts(
            predicted=sum(a.fields[f].predicted for a in answers),
            gold=sum(a.fields[f].gold for a in answers),
            correct=sum(a.fields[f].correct for a in answers),
        )
        fields[f] = NoticeField(
            predicted=c.predicted, gold=c.gold, correct=c.correct,
            precision=c.precision, recall=c.recall,
        )  # fmt: skip
    return NoticeScores(
        notices=len(answers),
        accuracy=share([a.exact for a in answers]),
        kind_accuracy=share([a.kind == a.gold_kind for a in answers]),
        by_kind={k: share([a.exact for a in answers if a.gold_kind == k]) for k in kinds},
        by_kind_count={k: sum(a.gold_kind == k for a in answers) for k in kinds},
        failed_share=share([a.lm_calls > 0 and a.error is not None for a in answers]),
        fields=fields,
    )
