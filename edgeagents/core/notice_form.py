"""Intents made without an LM: the validator every intent goes through, and the strict form.

City operators announce what telemetry cannot show yet: a planned event, a maintenance
window, a service target, a priority. Reading free text is the LM's job (the planner's LM,
`extract_intent`); this module holds what surrounds it: the `Notice` and `Intent` models, the
strict form that `--llm none` reads (`parse_strict`), and the validator (`resolve_answer`) that
maps the names an LM read to the scenario's, makes relative times absolute from the publish
time and bounds every field. Operator text is data: whatever it says, an intent can only be
one of the bounded kinds below, acting through the tools.

The strict form (one line, `key=value` words, names as in the scenario)::

    surge model=whisper-large-v3 cells=filton from=700 to=900 x2
    maintenance sites=bedminster from=+120 to=+180
    target model=stable-diffusion-1.5 max=15 from=600 to=1200
    priority model=qwen2-vl-7b x2 from=0 to=1800
    none

Times are simulated seconds; `+N` counts from the notice's publish time. `to=` may be left
out (the window then lasts `DEFAULT_WINDOW_S`), and so may `from=` (the publish time).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Protocol

from edgeagents.core.notice import (
    BOUND_RANGE_S,
    DEFAULT_PRIORITY_FACTOR,
    DEFAULT_WINDOW_S,
    FACTOR_RANGE,
    MAX_AHEAD_S,
    MAX_WINDOW_S,
    PRIORITY_RANGE,
    Intent,
    IntentKind,
    IntentPath,
    Notice,
    NoticeError,
)


class CityNames(Protocol):
    """What the strict form needs of a scenario: its names (a `Scenario` is one; the scenario
    module itself checks notices with this form, so it cannot be imported here)."""

    @property
    def model_names(self) -> list[str]: ...

    @property
    def site_names(self) -> list[str]: ...

    @property
    def cell_names(self) -> list[str]: ...


# ---- the validator: every intent goes through here ---------------------------------------------


def _clip(name: str, value: float, bounds: tuple[float, float], notes: list[str]) -> float:
    lo, hi = bounds
    if not lo <= value <= hi:
        notes.append(f"{name} {value:g} clipped to [{lo:g}, {hi:g}]")
    return min(max(value, lo), hi)


def bounded_intent(
    kind: IntentKind,
    *,
    models: Sequence[str] = (),
    sites: Sequence[str] = (),
    cells: Sequence[str] = (),
    start_s: float | None,
    end_s: float | None,
    factor: float | None,
    bound_s: float | None,
    notice: Notice,
    path: IntentPath,
    notes: list[str],
) -> Intent:
    """The one place an intent is bounded: each kind keeps only its own fields, times are
    absolute, inside [publish, publish + a day] and at most `MAX_WINDOW_S` long, numbers lie
    in their ranges. What cannot be acted on becomes kind `none`, with a note why."""
    notes = list(notes)

    def nothing(why: str) -> Intent:
        return Intent(kind="none", path="repaired" if path == "lm" else path, notes=notes,
                      refusal=why, notice_id=notice.id, publish_s=notice.publish_s)  # fmt: skip

    if kind == "none":
        return Intent(kind="none", path=path, notes=notes, notice_id=notice.id,
                      publish_s=notice.publish_s)  # fmt: skip
    models, sites, cells = sorted(set(models)), sorted(set(sites)), sorted(set(cells))
    if kind in ("surge", "target", "priority") and not models:
        return nothing(f"{kind} names no known model")
    if kind == "maintenance" and not sites:
        return nothing("maintenance names no known site")
    if kind != "surge":
        cells = []
    if kind != "maintenance":
        sites = []
    else:
        models = []
    for name, v in (("start", start_s), ("end", end_s), ("factor", factor), ("bound", bound_s)):
        if v is not None and not math.isfinite(v):
            return nothing(f"{name} is not a finite number")
    t0 = notice.publish_s
    if start_s is None:
        start_s = t0
    if start_s < t0:
        if end_s is not None and end_s <= t0:
            return nothing(f"window {start_s:g}-{end_s:g} s is already past at {t0:g} s")
        notes.append(f"start {start_s:g} s is before the notice: from {t0:g} s")
        start_s = t0
    if start_s > t0 + MAX_AHEAD_S:
        return nothing(f"start {start_s:g} s is more than a day ahead")
    if end_s is None:
        end_s = start_s + DEFAULT_WINDOW_S
    if end_s <= start_s:
        return nothing(f"window {start_s:g}-{end_s:g} s ends before it starts")
    if end_s - start_s > MAX_WINDOW_S:
        notes.append(f"window cut to {MAX_WINDOW_S:g} s")
        end_s = start_s + MAX_WINDOW_S
    if kind in ("surge", "priority"):
        default, bounds = (2.0, FACTOR_RANGE) if kind == "surge" else (
            DEFAULT_PRIORITY_FACTOR, PRIORITY_RANGE)  # fmt: skip
        factor = _clip("factor", default if factor is None else factor, bounds, notes)
    else:
        factor = None
    if kind == "target":
        if bound_s is None:
            return nothing("target names no latency bound")
        bound_s = _clip("bound", bound_s, BOUND_RANGE_S, notes)
    else:
        bound_s = None
    final: IntentPath = "repaired" if path == "lm" and notes else path
    return Intent(
        kind=kind, models=models, sites=sites, cells=cells, start_s=round(start_s, 3),
        end_s=round(end_s, 3), factor=factor, bound_s=bound_s, path=final, notes=notes,
        notice_id=notice.id, publish_s=notice.publish_s,
    )  # fmt: skip


# ---- the strict form (what --llm none reads) ---------------------------------------------------

_STRICT_KINDS = {"surge", "maintenance", "target", "priority", "none"}
_STRICT_KEYS = {"model", "models", "sites", "site", "cells", "cell", "from", "to", "max"}


def looks_strict(text: str) -> bool:
    """A strict-form line starts with a kind word followed by key=value words (or nothing)."""
    words = text.strip().split()
    if not words or words[0].lower() not in _STRICT_KINDS:
        return False
    return all("=" in w or re.fullmatch(r"x\d+(\.\d+)?", w.lower()) for w in words[1:])


def _strict_time(value: str, t0: float, key: str) -> float:
    v = value.strip().lower().removesuffix("s")
    rel = v.startswith("+")
    try:
        x = float(v.removeprefix("+"))
    except ValueError:
        raise NoticeError(f"{key}={value!r}: expected seconds, e.g. 700 or +120") from None
    return t0 + x if rel else x


def parse_strict(notice: Notice, scenario: CityNames) -> Intent | None:
    """The intent of a strict-form notice; None when the text is not in the strict form (free
    text, which only an LM reads). Unknown names are dropped with a note, as for the LM."""
    if not looks_strict(notice.text):
        return None
    words = notice.text.strip().split()
    kind = words[0].lower()
    notes: list[str] = []
    models: set[str] = set()
    sites: set[str] = set()
    cells: set[str] = set()
    start = end = factor = bound = None
    for w in words[1:]:
        if "=" not in w:
            factor = float(w[1:])
            continue
        key, _, value = w.partition("=")
        key = key.lower()
        if key not in _STRICT_KEYS:
            notes.append(f"unknown key {key!r}")
            continue
        if key in ("from", "to"):
            t = _strict_time(value, notice.publish_s, key)
            start, end = (t, end) if key == "from" else (start, t)
        elif key == "max":
            try:
                bound = float(value.lower().removesuffix("s"))
            except ValueError:
                raise NoticeError(f"max={value!r}: expected seconds, e.g. 15") from None
        else:
            for name in filter(None, value.split(",")):
                if key.startswith("model"):
                    exact = name if name in scenario.model_names else None
                    if exact is None:
                        notes.append(f"unknown model {name!r}")
                    else:
                        models.add(exact)
                elif key.startswith("site"):
                    if name in scenario.site_names:
                        sites.add(name)
                    else:
                        notes.append(f"unknown site {name!r}")
                else:
                    if name in scenario.cell_names:
                        cells.add(name)
                    else:
                        notes.append(f"unknown cell {name!r}")
    return bounded_intent(
        kind, models=sorted(models), sites=sorted(sites), cells=sorted(cells), start_s=start,
        end_s=end, factor=factor, bound_s=bound, notice=notice, path="strict", notes=notes,
    )  # type: ignore[arg-type]  # fmt: skip


def expected_intents(notices: Sequence[Notice], scenario: CityNames) -> list[Intent]:
    """The intents scenario notices declare they mean (`expect`), for reporting and tests."""
    out = []
    for n in notices:
        if n.expect:
            intent = parse_strict(Notice(text=n.expect, publish_s=n.publish_s), scenario)
            if intent is not None and intent.kind != "none":
                out.append(intent)
    return out
