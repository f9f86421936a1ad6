"""Operator notices and the intents they ask for: the `Notice` and `Intent` models, their
bounds, notices files and how a run uses intents.

City operators announce what telemetry cannot show yet: a planned event, a maintenance
window, a service target, a priority. Operator text is data: whatever it says, an intent can
only be one of the bounded kinds below, acting through the tools. How an intent is made from a
notice without an LM is `edgeagents.core.notice_form`; with one, `edgeagents.agents.notices`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

IntentKind = Literal["surge", "maintenance", "target", "priority", "none"]
"""surge: a model's demand rises by `factor` (from `cells`, if named) in a window;
maintenance: `sites` go offline in a window; target: a model's mean latency should stay
under `bound_s`; priority: a model's fairness priority is multiplied by `factor`; none:
nothing the tools can act on."""

IntentPath = Literal["lm", "repaired", "strict", "none"]
"""Who made an intent: the LM as answered, the LM after the validator changed something, the
strict-form parser, or nobody (free text without an LM, or nothing usable)."""

NOTICE_MAX_CHARS = 2000
FACTOR_RANGE = (0.1, 20.0)
"""A surge factor outside this is not a forecast, it is a typo (or an attack)."""
PRIORITY_RANGE = (0.25, 4.0)
"""Fairness priorities, as the planner bounds its own."""
BOUND_RANGE_S = (0.5, 600.0)
DEFAULT_WINDOW_S = 600.0
"""How long an intent lasts when the notice names no end."""
MAX_WINDOW_S = 3600.0
"""No intent acts for longer: a maintenance window is bounded, whatever the text says."""
MAX_AHEAD_S = 86_400.0
"""A window starting further ahead than a day is not planned for."""
DEFAULT_PRIORITY_FACTOR = 2.0
INTENT_LEAD_S = 60.0
"""The planner re-plans this long before an intent's window opens: a load takes 5 to 15 s
(an 8B model's 16 GB at 1.4 GB/s), a decision a few more, and the twin's 120-s horizon then
holds the first minute of the window."""
DRAIN_S = 30.0
"""Routing stops sending to a site this long before its maintenance, so its queues empty."""


class NoticeError(ValueError):
    """A notice or notices file that cannot be used; the message is one line."""


class Notice(BaseModel):
    """A free-text message from a city operator, published at a simulated time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(description=f"What the operator wrote (1 to {NOTICE_MAX_CHARS} chars).")
    publish_s: float = Field(default=0.0, ge=0, description="When it was published, sim s.")
    author: str = Field(default="operator", max_length=80, description="Who wrote it.")
    expect: str | None = Field(
        default=None,
        exclude=True,
        description="Scenarios only: the intended intent in strict form, for reporting the "
        "event windows and for tests. Never shown to an agent.",
    )

    @field_validator("text", mode="before")
    @classmethod
    def _text(cls, v: Any) -> str:
        if not isinstance(v, str):
            raise ValueError(f"a notice's text is a string, got {type(v).__name__}")
        v = v.strip()
        if not v:
            raise ValueError("a notice's text is empty")
        if len(v) > NOTICE_MAX_CHARS:
            raise ValueError(f"a notice's text is {len(v)} characters, over {NOTICE_MAX_CHARS}")
        return v

    @field_validator("publish_s")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("publish_s is not a finite number")
        return v

    @property
    def id(self) -> str:
        """Stable over runs and processes: the same notice read twice is one notice."""
        key = f"{self.publish_s:.3f}\n{self.author}\n{self.text}"
        return hashlib.sha1(key.encode()).hexdigest()[:12]


class Intent(BaseModel):
    """What a notice asks of the city, typed and bounded; the tools act on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: IntentKind
    models: list[str] = Field(default_factory=list, description="Scenario model names.")
    sites: list[str] = Field(default_factory=list, description="Scenario site names.")
    cells: list[str] = Field(default_factory=list, description="Scenario cell names.")
    start_s: float | None = Field(default=None, description="Window start, simulated s.")
    end_s: float | None = Field(default=None, description="Window end, simulated s.")
    factor: float | None = Field(
        default=None, description="surge: demand multiplier; priority: priority multiplier."
    )
    bound_s: float | None = Field(default=None, description="target: mean latency bound, s.")
    path: IntentPath = "none"
    notes: list[str] = Field(default_factory=list, description="What the validator changed.")
    refusal: str | None = Field(
        default=None,
        description="Why the notice cannot act (names nothing known, a past window, ...).",
    )
    notice_id: str = ""
    publish_s: float = 0.0

    def active(self, t: float) -> bool:
        return self.kind != "none" and self.window_overlaps(t, t)

    def window_overlaps(self, lo: float, hi: float) -> bool:
        if self.start_s is None or self.end_s is None:
            return False
        return self.start_s <= hi and self.end_s > lo

    def fields(self) -> dict[str, Any]:
        """The fields that say what the intent does (not who made it), for comparisons."""
        return self.model_dump(exclude={"path", "notes", "refusal", "notice_id", "publish_s"})

    def strict(self) -> str:
        """This intent in the strict form (what `parse_strict` reads back)."""
        if self.kind == "none":
            return "none"
        words = [self.kind]
        if self.models:
            words.append("model=" + ",".join(self.models))
        if self.sites:
            words.append("sites=" + ",".join(self.sites))
        if self.cells:
            words.append("cells=" + ",".join(self.cells))
        if self.start_s is not None:
            words.append(f"from={self.start_s:g}")
        if self.end_s is not None:
            words.append(f"to={self.end_s:g}")
        if self.bound_s is not None:
            words.append(f"max={self.bound_s:g}")
        if self.factor is not None:
            words.append(f"x{self.factor:g}")
        return " ".join(words)


def same_intent(a: Intent, b: Intent, *, time_tol_s: float = 1.0) -> bool:
    """Exact-intent agreement: kind, names as sets, times within `time_tol_s`, numbers within
    1%."""
    if a.kind != b.kind:
        return False
    if a.kind == "none":
        return True
    for f in ("models", "sites", "cells"):
        if set(getattr(a, f)) != set(getattr(b, f)):
            return False
    for f in ("start_s", "end_s"):
        x, y = getattr(a, f), getattr(b, f)
        if (x is None) != (y is None) or (x is not None and abs(x - y) > time_tol_s):
            return False
    for f in ("factor", "bound_s"):
        x, y = getattr(a, f), getattr(b, f)
        if (x is None) != (y is None) or (x is not None and abs(x - y) > 0.01 * abs(y)):
            return False
    return True


# ---- in a run --------------------------------------------------------------------------------


def intents_ahead(intents: Sequence[Intent], now_s: float, horizon_s: float) -> list[Intent]:
    """The acting intents whose window overlaps [now, now + horizon]."""
    return [i for i in intents if i.kind != "none" and i.window_overlaps(now_s, now_s + horizon_s)]


def replan_due(intents: Sequence[Intent], last_s: float, now_s: float) -> bool:
    """Whether a window opens within `INTENT_LEAD_S` or closes, between two observations."""
    for i in intents:
        if i.kind == "none" or i.start_s is None or i.end_s is None:
            continue
        if any(last_s < t <= now_s for t in (i.start_s - INTENT_LEAD_S, i.end_s)):
            return True
    return False


def draining_sites(intents: Sequence[Intent], now_s: float) -> set[str]:
    """Sites whose maintenance starts within `DRAIN_S` or is under way."""
    out: set[str] = set()
    for i in intents:
        live = i.kind == "maintenance" and i.start_s is not None and i.end_s is not None
        if live and i.start_s - DRAIN_S <= now_s < i.end_s:  # type: ignore[operator]
            out.update(i.sites)
    return out


def read_notice_inputs(raw: Sequence[Any]) -> tuple[list[Notice], list[str]]:
    """Notices posted as graph input (dicts or `Notice`s): the valid ones, and one line per
    refused one."""
    good: list[Notice] = []
    bad: list[str] = []
    for k, item in enumerate(raw):
        if isinstance(item, Notice):
            good.append(item)
            continue
        if isinstance(item, str):
            item = {"text": item}
        if not isinstance(item, dict):
            bad.append(f"notice {k}: refused: a notice is an object, got {type(item).__name__}")
            continue
        try:
            good.append(notice_from(item, f"notice {k}"))
        except NoticeError as e:
            bad.append(f"{e} (refused)")
    return good, bad


# ---- files ---------------------------------------------------------------------------------------


def load_notices(path: str) -> list[Notice]:
    """A JSON-lines file of notices (`text`, `publish_s`, optional `author`); a bad line is
    one `NoticeError` naming its number."""
    from pathlib import Path

    p = Path(path)
    try:
        lines = p.read_text().splitlines()
    except OSError as e:
        raise NoticeError(f"{p}: cannot read notices file ({e.strerror or e})") from e
    except UnicodeDecodeError:
        raise NoticeError(f"{p}: not a text file") from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            raise NoticeError(f"{p}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(data, dict):
            raise NoticeError(f"{p}:{n}: a notice is a JSON object, got {type(data).__name__}")
        out.append(notice_from(data, f"{p}:{n}"))
    return out


def notice_from(data: dict[str, Any], where: str) -> Notice:
    """A `Notice` from a mapping, or a `NoticeError` of one line naming `where`."""
    from pydantic import ValidationError

    try:
        return Notice.model_validate(data)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        loc = ".".join(str(x) for x in err["loc"]) or "notice"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        raise NoticeError(f"{where}: {loc}: {msg}") from None
