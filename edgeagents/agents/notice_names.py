"""What an LM read from a notice, mapped to the scenario: the names operators use for models,
sites and cells (`NameIndex`), and the time phrases they write (`phrase_times`)."""

from __future__ import annotations

import difflib
import re
from functools import cached_property
from typing import TYPE_CHECKING, Any

from edgeagents.core.state import ModelKind

if TYPE_CHECKING:
    from edgeagents.core.scenario import Scenario

SPAN_WORDS = 4
"""The longest phrase an answer may copy from a notice."""

# ---- names: the scenario's, and the words operators use for them ------------------------------

KIND_WORDS: dict[ModelKind, tuple[str, ...]] = {
    "llm": (
        "llm", "llms", "text", "text generation", "text model", "language model", "chat",
        "chatbot", "chat assistant", "assistant", "text assistant", "completions", "text llm",
        "large language model", "code assistant", "writing assistant", "text requests",
    ),
    "vlm": (
        "vlm", "vision language", "vision-language", "visual questions", "visual question",
        "visual question answering", "vqa", "picture questions", "image questions",
        "photo questions", "questions about photos", "questions about images", "vision",
        "image understanding", "multimodal chat", "vision model", "visual assistant",
    ),
    "text-to-image": (
        "text to image", "text-to-image", "image generation", "picture generation",
        "generated images", "image generator", "images", "image", "pictures", "diffusion",
        "drawing", "art generation", "image synthesis", "image requests", "illustrations",
    ),
    "speech-to-text": (
        "speech", "speech to text", "speech-to-text", "speech recognition", "transcription",
        "transcriptions", "transcripts", "audio", "voice", "dictation", "asr", "captions",
        "captioning", "subtitles", "voice notes", "speech requests",
    ),
}  # fmt: skip
"""Words operators use for a kind of model; each names every model of that kind."""


def normalize(text: str) -> str:
    """Lower case, hyphens and underscores as spaces, other punctuation dropped."""
    s = text.lower().replace("-", " ").replace("_", " ")
    s = re.sub(r"[^a-z0-9. ]+", " ", s)
    s = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", s)
    return " ".join(s.split())


class NameIndex:
    """Maps the names an operator (or an LM reading one) uses to the scenario's names: models
    by name, name parts, declared aliases and kind words; sites and cells by name and alias."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario

    @cached_property
    def models(self) -> dict[str, set[str]]:
        table: dict[str, set[str]] = {}

        def add(alias: str, model: str) -> None:
            key = normalize(alias)
            if key:
                table.setdefault(key, set()).add(model)

        for m in self.scenario.models:
            add(m.name, m.name)
            add(m.profile, m.name)
            for alias in m.aliases:
                add(alias, m.name)
            parts = normalize(m.name).split()
            for k in range(1, len(parts)):
                if not parts[k - 1].replace(".", "").isdigit():
                    add(" ".join(parts[:k]), m.name)
            for word in KIND_WORDS[m.kind]:
                add(word, m.name)
        return table

    @cached_property
    def places(self) -> dict[str, tuple[set[str], set[str]]]:
        """Alias -> (sites, cells)."""
        table: dict[str, tuple[set[str], set[str]]] = {}

        def add(alias: str, sites: set[str], cells: set[str]) -> None:
            key = normalize(alias)
            if key:
                s, c = table.setdefault(key, (set(), set()))
                s |= sites
                c |= cells

        cells_of: dict[str, set[str]] = {}
        for c in self.scenario.cells:
            cells_of.setdefault(c.site, set()).add(c.name)
        for s in self.scenario.sites:
            for alias in (s.name, *s.aliases):
                add(alias, {s.name}, cells_of.get(s.name, set()))
        for c in self.scenario.cells:
            add(c.name, {c.site}, {c.name})
        return table

    def _lookup(self, text: str, table: dict[str, Any]) -> Any | None:
        key = normalize(text)
        if not key:
            return None
        if key in table:
            return table[key]
        padded = f" {key} "
        inside = [a for a in table if f" {a} " in padded]
        if inside:
            return table[max(inside, key=len)]
        if len(key) >= 4:
            close = difflib.get_close_matches(key, list(table), n=1, cutoff=0.85)
            if close:
                return table[close[0]]
        return None

    def named_in(self, text: str) -> tuple[set[str], set[str], set[str]]:
        """(models, sites, cells) the notice names outright: phrases that are a known name
        exactly, longest first, never overlapping; a phrase meaning several models names
        none of them."""
        words = normalize(text).split()
        taken = [False] * len(words)
        models: set[str] = set()
        sites: set[str] = set()
        cells: set[str] = set()
        for k in range(SPAN_WORDS, 0, -1):
            for i in range(len(words) - k + 1):
                if any(taken[i : i + k]):
                    continue
                key = " ".join(words[i : i + k])
                hit_m, hit_p = self.models.get(key), self.places.get(key)
                if hit_m and len(hit_m) == 1:
                    models |= hit_m
                elif hit_p:
                    sites |= hit_p[0]
                    cells |= hit_p[1]
                elif not hit_m:
                    continue
                taken[i : i + k] = [True] * k
        return models, sites, cells

    def model(self, text: str) -> set[str]:
        """Scenario models a name means (empty: unknown)."""
        return set(self._lookup(text, self.models) or ())

    def place(self, text: str) -> tuple[set[str], set[str]]:
        """(sites, cells) a place name means (both empty: unknown)."""
        hit = self._lookup(text, self.places)
        return (set(hit[0]), set(hit[1])) if hit else (set(), set())


# ---- times ------------------------------------------------------------------------------------

UNITS_S = {
    "ms": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "day": 86400.0, "days": 86400.0,
}  # fmt: skip
NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15,
    "twenty": 20, "thirty": 30, "forty": 40, "forty five": 45, "fifty": 50, "sixty": 60,
    "ninety": 90, "half an": 0.5, "half a": 0.5, "half": 0.5, "a quarter of an": 0.25,
    "a couple of": 2, "a few": 3, "couple of": 2,
}  # fmt: skip
_RELATIVE = re.compile(r"\b(in|from now|after|later|within|ahead|time|hence)\b")
_DURATION = re.compile(r"\b(for|lasting|lasts|long|duration|over the next|next)\b")
_AMOUNT = re.compile(
    r"(?P<num>\d+(?:\.\d+)?|" + "|".join(sorted(map(re.escape, NUMBER_WORDS), key=len)[::-1])
    + r")\s*(?P<unit>" + "|".join(sorted(UNITS_S, key=len)[::-1]) + r")?\b"
)  # fmt: skip


def amounts_s(phrase: str) -> list[float]:
    """Every 'number unit' in a phrase, in seconds. A bare number takes the unit of the next
    number that has one ('5 to 15 minutes'), else seconds."""
    found: list[tuple[float, str | None]] = []
    for m in _AMOUNT.finditer(re.sub(r"(?<=\d),(?=\d{3}\b)", "", phrase)):
        raw, unit = m.group("num"), m.group("unit")
        if not raw[0].isdigit() and unit is None:
            continue  # 'a' or 'one' alone is not a time
        found.append((float(raw) if raw[0].isdigit() else float(NUMBER_WORDS[raw]), unit))
    out = []
    for k, (value, unit) in enumerate(found):
        if unit is None:
            unit = next((u for _, u in found[k + 1 :] if u is not None), "s")
        out.append(value * UNITS_S[unit])
    return out


def phrase_times(
    start: str, end: str, publish_s: float
) -> tuple[float | None, float | None, list[str]]:
    """(start_s, end_s, notes) from the LM's time phrases as the notice wrote them: 'in 3
    minutes', 'from 700 s', 'for 2 minutes', 'until 900 s', '700-900 s'. Relative phrases count
    from the publish time; a duration counts from the start."""
    notes: list[str] = []
    s_text, e_text = normalize(start), normalize(end)
    s_amounts, e_amounts = amounts_s(s_text), amounts_s(e_text)
    start_s: float | None = None
    end_s: float | None = None
    if s_amounts:
        start_s = s_amounts[0] + (publish_s if _RELATIVE.search(s_text) else 0.0)
        if len(s_amounts) > 1 and not e_amounts:  # a range in one phrase: '700 to 900 s'
            e_amounts, e_text = s_amounts[1:2], s_text
    if e_amounts:
        x = e_amounts[-1]
        if _DURATION.search(e_text) and not re.search(r"\b(until|till|to|by)\b", e_text):
            end_s = (start_s if start_s is not None else publish_s) + x
        elif _RELATIVE.search(e_text):
            end_s = publish_s + x
        else:
            end_s = x
    if start and start_s is None:
        notes.append(f"start {start!r} not a time")
    if end and end_s is None:
        notes.append(f"end {end!r} not a time")
    return start_s, end_s, notes
