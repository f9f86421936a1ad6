"""Request traces: `Trace`, and `load_trace`, which reads a built-in trace or a CSV file and
names the file, line and problem of a bad one.

Apart from `workload`, which replays traces among its arrival processes, because reading and
checking a file has nothing to do with drawing prompts. `frozen_column` is shared with it.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeagents.core.scenario import ScenarioError

if TYPE_CHECKING:
    import _csv

BUILTIN_TRACES = {"azure-conv": "azure-llm-2023-conv.csv"}
"""Traces shipped in `edgeagents.data`, by the name a scenario uses."""

_TRACE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
_DATETIME = re.compile(r"(\d{4}-\d{2}-\d{2})[ T](\d{2}):(\d{2}):(\d{2}(?:\.\d*)?)")
_EPOCH_DAY = date(2000, 1, 1).toordinal()
_INT32_MAX = np.iinfo(np.int32).max


def frozen_column(values: object, dtype: type[np.generic], name: str) -> np.ndarray:
    """A read-only 1-D view, so a shared workload or cached trace cannot be edited in place."""
    arr = np.asarray(values, dtype=dtype).view()
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, slots=True, eq=False)
class Trace:
    """Requests of a replayed trace.

    Attributes:
        arrival_s: float64 seconds from the first request, ascending.
        input_tokens: int32 prompt tokens (ContextTokens).
        output_tokens: int32 generated tokens (GeneratedTokens).
    """

    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "arrival_s", frozen_column(self.arrival_s, np.float64, "arrival_s")
        )
        for name in ("input_tokens", "output_tokens"):
            object.__setattr__(self, name, frozen_column(getattr(self, name), np.int32, name))

    def __len__(self) -> int:
        return len(self.arrival_s)


def load_trace(source: str | Path) -> Trace:
    """Read a request trace: a built-in name ('azure-conv') or a CSV path.

    Args:
        source: Built-in name, or a CSV with header TIMESTAMP,ContextTokens,GeneratedTokens;
            TIMESTAMP is a date-time ('2023-11-16 18:15:46.6805900') or seconds.

    Returns:
        The trace, arrivals shifted so the first request is at 0.

    Raises:
        ScenarioError: One line naming the file, the line and the problem.
    """
    if isinstance(source, str) and source in BUILTIN_TRACES:
        return _builtin_trace(source)
    label = str(source)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as e:
        raise ScenarioError(f"{label}: cannot read trace file ({e.strerror or e})") from e
    except UnicodeDecodeError as e:
        raise ScenarioError(f"{label}: not a UTF-8 text file") from e
    return _parse_trace(text, label)


@cache
def _builtin_trace(name: str) -> Trace:
    text = resources.files("edgeagents.data").joinpath(BUILTIN_TRACES[name]).read_text("utf-8")
    return _parse_trace(text, name)


def _parse_trace(text: str, label: str) -> Trace:
    rows = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    try:
        return _parse_rows(rows, label)
    except csv.Error as e:
        raise ScenarioError(f"{label}: line {rows.line_num}: not valid CSV ({e})") from None


def _parse_rows(rows: _csv.Reader, label: str) -> Trace:
    header = [h.strip() for h in next(rows, [])]
    if not any(header):
        raise ScenarioError(f"{label}: empty file (expected header {','.join(_TRACE_COLUMNS)})")
    for col in _TRACE_COLUMNS:
        if col not in header:
            raise ScenarioError(f"{label}: line 1: missing column {col} (header: {header})")
    it, ic, ig = (header.index(c) for c in _TRACE_COLUMNS)
    width = max(it, ic, ig) + 1
    times: list[float] = []
    ctx: list[int] = []
    gen: list[int] = []
    for row in rows:
        if not any(f.strip() for f in row):
            continue
        where = f"{label}: line {rows.line_num}"
        if len(row) < width:
            raise ScenarioError(f"{where}: expected {len(header)} fields, got {len(row)}")
        stamp = row[it].strip()
        t = _seconds(stamp)
        if t is None:
            raise ScenarioError(f"{where}: TIMESTAMP is not a date-time or seconds ({stamp!r:.60})")
        if times and t < times[-1]:
            raise ScenarioError(f"{where}: TIMESTAMP {stamp!r} is before the previous request's")
        times.append(t)
        ctx.append(_count(row[ic], "ContextTokens", where))
        gen.append(_count(row[ig], "GeneratedTokens", where))
    if not times:
        raise ScenarioError(f"{label}: no requests after the header")
    if times[-1] == times[0]:
        raise ScenarioError(f"{label}: all requests at one time, so the trace has no rate")
    arrival = np.asarray(times) - times[0]
    return Trace(arrival_s=arrival, input_tokens=np.asarray(ctx), output_tokens=np.asarray(gen))


def _seconds(stamp: str) -> float | None:
    """A TIMESTAMP in seconds: plain seconds, or a date-time counted from 2000-01-01."""
    m = _DATETIME.fullmatch(stamp)
    try:
        if m is None:
            t = float(stamp)
            return t if math.isfinite(t) else None
        h, mi, s = int(m[2]), int(m[3]), float(m[4])
        day = date.fromisoformat(m[1]).toordinal() - _EPOCH_DAY
        return day * 86400.0 + h * 3600 + mi * 60 + s if h < 24 and mi < 60 and s < 61 else None
    except ValueError:
        return None


def _count(field: str, column: str, where: str) -> int:
    try:
        value = int(field)
    except ValueError:
        raise ScenarioError(f"{where}: {column} is not a whole number ({field!r:.40})") from None
    if not 0 <= value <= _INT32_MAX:
        raise ScenarioError(
            f"{where}: {column} is {'negative' if value < 0 else 'too large'} ({value})"
        )
    return value
