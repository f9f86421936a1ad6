"""What a load run (`serving.loadtest`) saw: its tally as it runs, then the `LoadReport` and
its table."""

from __future__ import annotations

import json
from collections import Counter

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from serving.config import GatewayConfig
from serving.fuzz.contract import FuzzAnswer, FuzzCase, violation

OUTCOMES = ("200", "429", "4xx", "5xx", "other")
"""Answers by class ("other": 1xx to 3xx, a 2xx that is not 200)."""
DEFAULT_MAX_INFLIGHT: int = GatewayConfig.model_fields["max_queue_per_server"].default


class LoadSettings(BaseModel):
    """What a load run does: how many clients, how long, how slow the servers are."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    clients: int = Field(default=200, ge=1, description="concurrent clients")
    duration_s: float = Field(default=60.0, gt=0, description="seconds each client sends")
    seed: int = Field(default=0, description="seed of the request mix and the site choice")
    service_ms: float = Field(default=20.0, ge=0, description="engine ms per request of a batch")
    max_inflight: int = Field(default=DEFAULT_MAX_INFLIGHT, ge=1, description="per server: 429")
    timeout_s: float = Field(default=30.0, gt=0, description="client seconds for one answer")
    scenario: str = "bristol"


class LatencyStats(BaseModel):
    """Client-side latency of one class of answers, ms (None: no such answer)."""

    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None


class Counts(BaseModel):
    """Requests of one kind (or of all): sent, answered by class, lost, latencies."""

    sent: int
    answers: dict[str, int] = Field(description="HTTP answers by class (`OUTCOMES`).")
    lost: int = Field(description="Sent without an HTTP answer: timeouts, transport errors.")
    timeouts: int
    latency_200: LatencyStats
    latency_429: LatencyStats


class LoadReport(BaseModel):
    """A load run: what was sent and answered, latencies, and health afterwards."""

    settings: LoadSettings
    elapsed_s: float = Field(description="From the first request to the last answer.")
    total: Counts
    by_kind: dict[str, Counts]
    by_status: dict[str, int]
    error_codes: dict[str, int] = Field(description="'status code' -> OpenAI-style errors.")
    transport_errors: dict[str, int] = Field(description="httpx exception -> count.")
    nonconforming: list[str] = Field(description="Error answers that are not OpenAI-style JSON.")
    requests_per_s: float = Field(description="Answers per second of `elapsed_s`.")
    share_429: float = Field(description="429s / answers.")
    unserved_after: list[str] = Field(description="Valid requests not served after the load.")
    ok: bool = Field(description="Nothing lost, no 5xx, every error OpenAI-style, served after.")


def latency_stats(seconds: list[float]) -> LatencyStats:
    """p50/p95/p99 in ms of client-side seconds."""
    if not seconds:
        return LatencyStats()
    p50, p95, p99 = (float(x) for x in np.percentile(np.array(seconds) * 1000, [50, 95, 99]))
    return LatencyStats(p50_ms=p50, p95_ms=p95, p99_ms=p99)


class Tally:
    """What the clients saw, request by request: sent, answered (by kind and class, with
    client-side seconds), the error codes, what broke the contract, what was lost."""

    def __init__(self, kinds: list[str]) -> None:
        self.sent: Counter[str] = Counter(dict.fromkeys(kinds, 0))
        self.seconds: dict[tuple[str, str], list[float]] = {}
        self.by_status: Counter[str] = Counter()
        self.codes: Counter[str] = Counter()
        self.transport: Counter[str] = Counter()
        self.timeouts: Counter[str] = Counter()
        self.nonconforming: list[str] = []

    def add(self, kind: str, case: FuzzCase, answer: FuzzAnswer) -> None:
        status = answer.status or 0  # never None: an answer that came back
        self.by_status[str(status)] += 1
        outcome = {200: "200", 429: "429"}.get(status)
        outcome = outcome or ("5xx" if status >= 500 else "4xx" if status >= 400 else "other")
        self.seconds.setdefault((kind, outcome), []).append(answer.seconds)
        why = None if status == 200 or status >= 500 else violation(case, answer)
        if why is not None:
            self.nonconforming.append(f"{kind} {status}: {why}")
        elif 400 <= status < 500:
            self.codes[f"{status} {json.loads(answer.body)['error']['code']}"] += 1

    def lost(self, kind: str, error: httpx.HTTPError) -> None:
        self.transport[type(error).__name__] += 1
        self.timeouts[kind] += isinstance(error, httpx.TimeoutException)


def _counts(t: Tally, kinds: list[str]) -> Counts:
    seconds = {o: [x for k in kinds for x in t.seconds.get((k, o), [])] for o in OUTCOMES}
    answers = {o: len(xs) for o, xs in seconds.items()}
    sent = sum(t.sent[k] for k in kinds)
    return Counts(
        sent=sent,
        answers=answers,
        lost=sent - sum(answers.values()),
        timeouts=sum(t.timeouts[k] for k in kinds),
        latency_200=latency_stats(seconds["200"]),
        latency_429=latency_stats(seconds["429"]),
    )


def build_report(
    settings: LoadSettings, t: Tally, elapsed: float, unserved: list[str]
) -> LoadReport:
    """The run's figures from its tally: totals and by kind; `ok` when nothing was lost, no
    5xx, every error was OpenAI-style and the gateway served afterwards."""
    total = _counts(t, list(t.sent))
    answered = sum(total.answers.values())
    return LoadReport(
        settings=settings,
        elapsed_s=elapsed,
        total=total,
        by_kind={k: _counts(t, [k]) for k in t.sent},
        by_status=dict(sorted(t.by_status.items())),
        error_codes=dict(sorted(t.codes.items())),
        transport_errors=dict(t.transport),
        nonconforming=t.nonconforming[:20],
        requests_per_s=answered / elapsed,
        share_429=total.answers["429"] / answered if answered else 0.0,
        unserved_after=unserved,
        ok=not (total.lost or total.answers["5xx"] or t.nonconforming or unserved),
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_report(report: LoadReport) -> None:
    """A table by kind of request, one summary line, then the first problems."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    s, total = report.settings, report.total
    title = f"gateway load: {s.clients} clients, {s.duration_s:g} s, seed {s.seed} (latency ms)"
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for col in ("kind", "sent", *OUTCOMES[:4], "lost", "200 p50", "200 p99", "429 p50", "429 p99"):
        table.add_column(col, justify="left" if col == "kind" else "right")
    for kind, c in [*report.by_kind.items(), ("all", total)]:
        if kind == "all":
            table.add_section()
        counts = [c.sent, *(c.answers[o] for o in OUTCOMES[:4]), c.lost]
        ms = [getattr(x, f) for x in (c.latency_200, c.latency_429) for f in ("p50_ms", "p99_ms")]
        table.add_row(kind, *map(str, counts), *map(_ms, ms))
    console = Console()
    console.print(table)
    ok, refused = total.latency_200, total.latency_429
    line = (
        f"{sum(total.answers.values())} answers in {report.elapsed_s:.1f} s"
        f" ({report.requests_per_s:.0f}/s); 200: p50 {_ms(ok.p50_ms)} p99 {_ms(ok.p99_ms)} ms;"
        f" 429: {report.share_429:.1%}, p50 {_ms(refused.p50_ms)} p99 {_ms(refused.p99_ms)} ms;"
        f" lost {total.lost}, 5xx {total.answers['5xx']}, not OpenAI-style"
        f" {len(report.nonconforming)}; afterwards"
        f" {'NOT served' if report.unserved_after else 'served'}"
    )
    console.print(line, soft_wrap=True, markup=False, highlight=False)
    for problem in (*report.nonconforming[:5], *report.unserved_after):
        console.print(f"  {problem}", soft_wrap=True, markup=False)
