"""The Ray rows' load: the cut city's workload thinned to the row's rate (x3 inside the
overload window, as the simulated overload's demand shifts), sizes capped for CPU, sent through
the gateway from a thread pool at the prompts' times; and where each prompt went."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from edgeagents.experiments.faults.cases import city_variant
from edgeagents.sim.workload import generate_workload
from serving.loadgen import SentPrompt, send, sent_prompt

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Future

    import httpx

    from edgeagents.core.scenario import Scenario
    from edgeagents.experiments.faults.report import FaultsSettings

NO_ANSWER = 599
"""`serving.loadgen.send`'s status when the gateway never answered (a transport error)."""


def row_prompts(city: Scenario, settings: FaultsSettings, *, overload: bool) -> list[SentPrompt]:
    """The prompts of one row, arrival times from its start (s). Every row keeps the same
    share of the city's workload (`rate_per_s` of the plain one); the overload row's workload
    has its demand x`overload_factor` inside the fault window."""
    ray = settings.ray
    if ray is None:
        raise ValueError("the Ray target's settings are missing (FaultsSettings.ray)")
    horizon = settings.duration_s
    plain = generate_workload(city, duration_s=horizon, seed=settings.seed)
    keep = min(1.0, ray.rate_per_s * horizon / max(len(plain), 1))
    w = plain
    if overload:
        window = (settings.fault_start_s, settings.fault_end_s)
        loaded, _ = city_variant(
            city, "overload", window, overload_factor=settings.overload_factor,
            bounded_queue=ray.max_queue_per_server,
        )  # fmt: skip
        w = generate_workload(loaded, duration_s=horizon, seed=settings.seed)
    rng = np.random.default_rng(settings.seed)
    out = []
    for i in range(len(w)):
        if rng.random() < keep:
            p = sent_prompt(city, w, i)
            p.input_tokens = min(p.input_tokens, ray.input_words)
            p.output_tokens = min(p.output_tokens, ray.output_tokens)
            out.append(p)
    return out


class LoadRun:
    """Sends prompts at `start_s + arrival_s` on `clock` (seconds), each on its own worker
    thread of a pool, until `wait()`."""

    def __init__(
        self, client: httpx.Client, prompts: list[SentPrompt], clock: Callable[[], float]
    ) -> None:
        self.prompts = prompts
        self._client, self._clock = client, clock
        self._start = clock()
        self._lock = threading.Lock()
        self.sent = 0
        self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="faults-load")
        self._futures: list[Future] = [self._pool.submit(self._go, p) for p in prompts]

    def _go(self, p: SentPrompt) -> None:
        delay = self._start + p.arrival_s - self._clock()
        if delay > 0:
            time.sleep(delay)
        p.sent_s = self._clock() - self._start
        send(self._client, p)
        with self._lock:
            self.sent += 1

    def wait(self, timeout_s: float = 300.0) -> None:
        """Every prompt answered (or its send failed: then it is counted as lost)."""
        for f in self._futures:
            f.result(timeout=timeout_s)
        self._pool.shutdown()


def outcomes(prompts: list[SentPrompt]) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """(arrival s, latency s or NaN if not served, refusals by the gateway's error code). A
    prompt with no answer from the gateway (a transport error, or never sent) is neither
    served nor refused: lost."""
    arrival = np.array([p.arrival_s for p in prompts], dtype=float)
    lat = np.array([p.latency_s if p.served else np.nan for p in prompts], dtype=float)
    refused: dict[str, int] = {}
    for p in prompts:
        if p.status is not None and p.status not in (200, NO_ANSWER):
            code = p.code or f"http_{p.status}"
            refused[code] = refused.get(code, 0) + 1
    return arrival, lat, dict(sorted(refused.items()))
