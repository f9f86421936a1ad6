"""The campaign: an equal share of cases from each category sent to a `GatewayHarness`,
answers tallied by category and status, and the `FuzzReport`."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from serving.fuzz.contract import (
    CATEGORIES,
    DEFAULT_TIMEOUT_S,
    Category,
    FuzzAnswer,
    FuzzCase,
    violation,
)
from serving.fuzz.endpoint_cases import (
    admin_cases,
    chat_cases,
    images_cases,
    operator_cases,
    upload_cases,
)
from serving.fuzz.harness import GatewayHarness
from serving.fuzz.malformed_cases import (
    huge_numbers_cases,
    malformed_json_cases,
    oversized_cases,
    wrong_content_type_cases,
    wrong_route_cases,
    wrong_types_cases,
)
from serving.fuzz.values import TEXT, catalogue, mostly, wav_files


def category_cases(scenario: str = "bristol") -> dict[Category, st.SearchStrategy[FuzzCase]]:
    """The generated requests of each category, against a gateway of `scenario`'s catalogue."""
    cat = catalogue(scenario)
    every = st.sampled_from(list(cat.models))
    unknown = TEXT | st.sampled_from(["gpt-4o", "LLAMA-3.1-8B", " llama-3.1-8b", ""])
    whisper = st.sampled_from(cat.of("speech-to-text"))
    return {
        "chat": chat_cases(cat, "chat", st.sampled_from(cat.of("llm", "vlm"))),
        "images": images_cases(cat, "images", st.sampled_from(cat.of("text-to-image"))),
        "transcription": upload_cases(cat, "transcription", mostly(whisper, st.just(""))),
        "truncated_upload": upload_cases(
            cat, "truncated_upload", whisper, audio=wav_files(), truncate=True
        ),
        "malformed_json": malformed_json_cases(cat),
        "wrong_types": wrong_types_cases(cat),
        "unknown_model": st.one_of(
            chat_cases(cat, "unknown_model", unknown | every),
            images_cases(cat, "unknown_model", unknown | every),
            upload_cases(cat, "unknown_model", unknown | every),
        ),
        "huge_numbers": huge_numbers_cases(cat),
        "oversized": oversized_cases(cat),
        "wrong_content_type": wrong_content_type_cases(cat),
        "wrong_route": wrong_route_cases(cat),
        "operator": operator_cases(cat),
        "admin": admin_cases(cat),
    }


def fuzz_cases(scenario: str = "bristol") -> st.SearchStrategy[FuzzCase]:
    """Requests of every category."""
    return st.one_of(*category_cases(scenario).values())


class CategoryCounts(BaseModel):
    """Answers to one category of request, by kind."""

    sent: int = 0
    success: int = 0
    client_error: int = Field(default=0, description="OpenAI-style 4xx JSON errors.")
    server_error: int = Field(default=0, description="5xx answers.")
    hang: int = 0
    nonconforming: int = Field(default=0, description="Any other answer (e.g. a bare 4xx).")


class FuzzViolation(BaseModel):
    """A request whose answer broke the contract."""

    category: Category
    request: str
    status: int | None
    reason: str
    answer: str = Field(description="The start of the answer's body.")


class FuzzReport(BaseModel):
    """What a fuzzing campaign sent, what came back, and whether the gateway still serves."""

    count: int = Field(description="Requests asked for.")
    seed: int
    timeout_s: float
    sent: int
    elapsed_s: float
    by_status: dict[str, int] = Field(description="HTTP status (or 'hang') -> answers.")
    by_category: dict[str, CategoryCounts]
    server_errors: int
    hangs: int
    nonconforming: int
    violations: list[FuzzViolation] = Field(
        description="The first violations: at most 3 of a category and reason, 20 in all."
    )
    healthy_after: bool = Field(description="Valid requests of every endpoint still succeed.")
    unhealthy: list[str] = Field(default_factory=list)
    ok: bool = Field(description="All sent, no 5xx, hang or other answer, healthy after.")


class _Tally:
    def __init__(self) -> None:
        self.by_status: Counter[str] = Counter()
        self.by_category = {c: CategoryCounts() for c in CATEGORIES if c != "health"}
        self.violations: list[FuzzViolation] = []
        self.sent = 0

    def add(self, case: FuzzCase, answer: FuzzAnswer) -> None:
        self.sent += 1
        self.by_status["hang" if answer.status is None else str(answer.status)] += 1
        counts = self.by_category[case.category]
        counts.sent += 1
        why = violation(case, answer)
        if why is None:
            if answer.status is not None and answer.status < 300:
                counts.success += 1
            else:
                counts.client_error += 1
            return
        if answer.status is None:
            counts.hang += 1
        elif answer.status >= 500:
            counts.server_error += 1
        else:
            counts.nonconforming += 1
        kind = Counter((v.category, v.reason) for v in self.violations)[(case.category, why)]
        if len(self.violations) < 20 and kind < 3:
            self.violations.append(
                FuzzViolation(
                    category=case.category,
                    request=case.describe(),
                    status=answer.status,
                    reason=why,
                    answer=answer.body[:300].decode("utf-8", "replace"),
                )
            )


def run_examples(
    strategy: st.SearchStrategy[FuzzCase],
    examples: int,
    seed: int,
    each: Callable[[FuzzCase], None],
) -> None:
    """Call `each` on `examples` cases hypothesis generates from `seed` (generation only: no
    database, no shrinking, no deadline; the same seed gives the same cases)."""

    @hypothesis_seed(seed)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=False,
        phases=(Phase.generate,),
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
    )
    @given(case=strategy)
    def campaign(case: FuzzCase) -> None:
        each(case)

    campaign()


def _fill(
    category: Category,
    strategy: st.SearchStrategy[FuzzCase],
    share: int,
    seed: int,
    harness: GatewayHarness,
    tally: _Tally,
) -> None:
    """Send `share` cases of one category. Hypothesis stops early on a space it has exhausted,
    so draw again from other seeds (ten times at most) until the share is sent."""
    counts = tally.by_category[category]

    def each(case: FuzzCase) -> None:
        if counts.sent < share:
            tally.add(case, harness.send(case))

    for attempt in range(10):
        if counts.sent >= share:
            break
        run_examples(strategy, share - counts.sent, seed + 104_729 * attempt, each)


def fuzz_gateway(
    count: int, seed: int, *, timeout_s: float = DEFAULT_TIMEOUT_S, scenario: str = "bristol"
) -> FuzzReport:
    """Send `count` generated requests to an in-process gateway, an equal share from each
    category (so a rare one is not starved), then valid ones; the report."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    tally = _Tally()
    strategies = category_cases(scenario)
    shares = {
        c: count // len(strategies) + (i < count % len(strategies))
        for i, c in enumerate(strategies)
    }
    t0 = time.perf_counter()
    with GatewayHarness(scenario=scenario, seed=seed, timeout_s=timeout_s) as harness:
        for k, (category, strategy) in enumerate(strategies.items()):
            _fill(category, strategy, shares[category], seed + 7919 * k, harness, tally)
        unhealthy = harness.unhealthy()
    server_errors = sum(n.server_error for n in tally.by_category.values())
    hangs = sum(n.hang for n in tally.by_category.values())
    nonconforming = sum(n.nonconforming for n in tally.by_category.values())
    return FuzzReport(
        count=count,
        seed=seed,
        timeout_s=timeout_s,
        sent=tally.sent,
        elapsed_s=time.perf_counter() - t0,
        by_status=dict(sorted(tally.by_status.items())),
        by_category={c: n.model_copy() for c, n in tally.by_category.items()},
        server_errors=server_errors,
        hangs=hangs,
        nonconforming=nonconforming,
        violations=tally.violations,
        healthy_after=not unhealthy,
        unhealthy=unhealthy,
        ok=tally.sent >= count and server_errors == hangs == nonconforming == 0 and not unhealthy,
    )
