"""What the simulated city shows its controllers at a tick: `Observer` builds the `Telemetry`
of live replicas, sites and models over the telemetry window.

Apart from `city` because on a region of a thousand sites this sampling was a third of an
episode's cost. The figures of a replica, GPU or site that did not change since the last sample
are the same frozen objects as then (building thousands of validated models per tick is what
cost), a second sample with nothing changed in between is the first one, and a sample reads
the window's completions and refusals, not the whole episode's.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from edgeagents.core.state import (
    REFUSAL_REASONS,
    Deployment,
    GpuTelemetry,
    ModelTelemetry,
    ReplicaTelemetry,
    SiteTelemetry,
    Telemetry,
)
from edgeagents.sim.replica import EPS

if TYPE_CHECKING:
    from edgeagents.core.scenario import Scenario
    from edgeagents.sim.dispatch import Dispatcher
    from edgeagents.sim.network import Network
    from edgeagents.sim.replica import Fleet, Gpu, Replica
    from edgeagents.sim.workload import Workload


class Observer:
    """Samples a city's telemetry; keeps the last figures of each replica, GPU and site to
    hand out again while they stay the same.

    Args:
        scenario: The validated scenario.
        workload: The prompts of this episode.
        dispatch: The prompts' way through the city and their outcomes.
        fleet: The city's GPUs and replicas.
        net: The city's network (which sites are up, which links down).
    """

    def __init__(
        self, scenario: Scenario, workload: Workload, dispatch: Dispatcher, fleet: Fleet,
        net: Network,
    ) -> None:  # fmt: skip
        self.scenario = scenario
        self.workload = workload
        self.dispatch = dispatch
        self.fleet = fleet
        self.net = net
        self._last: tuple[tuple[float, int], Telemetry] | None = None
        self._deployments: dict[int, tuple[tuple, Deployment]] = {}
        self._replicas: dict[int, tuple[tuple, ReplicaTelemetry]] = {}
        self._gpus: dict[tuple[int, int], tuple[tuple, GpuTelemetry]] = {}
        self._sites: dict[int, tuple[tuple, SiteTelemetry]] = {}

    def observe(self, now: float, changes: int) -> Telemetry:
        """The telemetry at `now`; `changes` counts the city's changes (events fired, actions
        applied), so a sample with the same time and count is the last one."""
        key = (now, changes)
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        window = self.scenario.control.window_s
        since = max(0.0, now - window)
        d = self.dispatch
        first = bisect_left(d.done_t, since)
        replicas_t, site_busy = self._replica_figures(now, since, Counter(d.done_r[first:]))
        sites_t = [self._site(si, site_busy.get(si, [])) for si in range(len(self.fleet.gpus))]
        recent = np.asarray(d.done_i[first:], dtype=np.int64)
        ref_recent = np.asarray(d.refused_i[bisect_left(d.refused_t, since) :], dtype=np.int64)
        reasons = np.bincount(d.out.refused[ref_recent], minlength=len(REFUSAL_REASONS))
        telemetry = Telemetry(
            time_s=now,
            window_s=window,
            sites=sites_t,
            replicas=replicas_t,
            models=self._model_figures(now, since, recent, ref_recent),
            down_links=self.net.down_links,
            refusals_by_reason={
                r: int(c) for r, c in zip(REFUSAL_REASONS, reasons, strict=True) if c
            },
        )
        self._last = (key, telemetry)
        return telemetry

    # ---- replicas -------------------------------------------------------------------------------

    def _replica_figures(
        self, now: float, since: float, served: Counter[int]
    ) -> tuple[list[ReplicaTelemetry], dict[int, list[float]]]:
        """Each replica's figures, and per site its replicas' busy shares over the window."""
        out: list[ReplicaTelemetry] = []
        site_busy: dict[int, list[float]] = {}
        for r in self.fleet.replicas():
            r.advance_to(now)
            hist = r.busy_hist
            hist.append((now, r.busy_cum))
            while len(hist) > 1 and hist[1][0] <= since:
                hist.popleft()
            t0, b0 = hist[0]
            busy = (r.busy_cum - b0) / max(now - t0, EPS) if now > t0 else 0.0
            site_busy.setdefault(r.site, []).append(min(1.0, busy))
            dep = self.deployment(r, now)
            key = (dep, len(r.queue) + r.inbound, len(r.running), min(1.0, max(0.0, busy)),
                   served.get(r.id, 0))  # fmt: skip
            hit = self._replicas.get(r.id)
            if hit is None or hit[0] != key:
                tel = ReplicaTelemetry(
                    deployment=dep, queue_len=key[1], running=key[2], busy_share=key[3],
                    served=key[4],
                )  # fmt: skip
                hit = self._replicas[r.id] = (key, tel)
            out.append(hit[1])
        return out, site_busy

    def deployment(self, r: Replica, now: float) -> Deployment:
        """The replica as a `Deployment` (the last one while its state and settings hold)."""
        state = "ready" if r.ready_at <= now else "loading"
        key = (state, r.gpu.index, r.ready_at, r.share, r.max_batch, r.memory_gb)
        hit = self._deployments.get(r.id)
        if hit is None or hit[0] != key:
            dep = Deployment(
                replica_id=r.id, site=self.scenario.sites[r.site].name, model=r.spec.name,
                gpu_index=key[1], state=state, ready_at_s=key[2], compute_share=key[3],
                max_batch=key[4], memory_gb=key[5],
            )  # fmt: skip
            hit = self._deployments[r.id] = (key, dep)
        return hit[1]

    # ---- sites ----------------------------------------------------------------------------------

    def _gpu(self, g: Gpu) -> GpuTelemetry:
        key = (max(0.0, g.free_memory_gb()), max(0.0, 1.0 - sum(r.share for r in g.replicas)))
        hit = self._gpus.get((g.site, g.index))
        if hit is None or hit[0] != key:
            tel = GpuTelemetry(
                index=g.index, type=g.type.name, memory_gb=g.type.memory_gb,
                free_memory_gb=key[0], compute_share_free=key[1],
            )  # fmt: skip
            hit = self._gpus[(g.site, g.index)] = (key, tel)
        return hit[1]

    def _site(self, si: int, busy: list[float]) -> SiteTelemetry:
        gpus = self.fleet.gpus[si]
        reps = [r for g in gpus for r in g.replicas]
        name = self.scenario.sites[si].name
        key = (
            self.net.site_up(name),
            tuple(self._gpu(g) for g in gpus),
            tuple(sorted({r.spec.name for r in reps})),
            sum(len(r.queue) + r.inbound for r in reps),
            sum(len(r.running) for r in reps),
            tuple(busy),
        )
        hit = self._sites.get(si)
        if hit is None or hit[0] != key:
            tel = SiteTelemetry(
                site=name, up=key[0], gpus=list(key[1]), loaded_models=list(key[2]),
                queue_len=key[3], running=key[4],
                busy_share=float(np.mean(busy)) if busy else 0.0,
            )  # fmt: skip
            hit = self._sites[si] = (key, tel)
        return hit[1]

    # ---- models ---------------------------------------------------------------------------------

    def _model_figures(
        self, now: float, since: float, recent: np.ndarray, ref_recent: np.ndarray
    ) -> list[ModelTelemetry]:
        """Each model's demand (by cell) and service over the window."""
        d = self.dispatch
        w = self.workload
        span = max(now - since, EPS)
        lo, hi = np.searchsorted(d.arrival, [since, now], side="right")
        arr_model = d.model[lo:hi]
        arr_cell = w.cell[lo:hi]
        lat = d.out.latency_s[recent]
        rec_model = d.model[recent]
        tokens_in = w.input_tokens[lo:hi]
        tokens_out = w.output_tokens[recent]
        out = []
        for mi, m in enumerate(self.fleet.models):
            done = rec_model == mi
            ml = lat[done]
            came = arr_model == mi
            cells = np.bincount(arr_cell[came], minlength=len(w.cell_names))
            reps = [r for r in self.fleet.by_model[mi] if r.alive]
            pct = np.percentile(ml, [50, 95, 99]) if len(ml) else [None] * 3
            out.append(
                ModelTelemetry(
                    model=m.name,
                    arrivals_per_s=float(came.sum() / span),
                    arrivals_per_s_by_cell={
                        c: float(k / span) for c, k in zip(w.cell_names, cells, strict=True)
                    },
                    served=len(ml),
                    refused=int((d.model[ref_recent] == mi).sum()),
                    mean_latency_s=float(ml.mean()) if len(ml) else None,
                    p50_latency_s=None if pct[0] is None else float(pct[0]),
                    p95_latency_s=None if pct[1] is None else float(pct[1]),
                    p99_latency_s=None if pct[2] is None else float(pct[2]),
                    queue_len=sum(len(r.queue) + r.inbound for r in reps),
                    replicas=len(reps),
                    mean_input_tokens=float(tokens_in[came].mean()) if came.any() else None,
                    mean_output_tokens=float(tokens_out[done].mean()) if len(ml) else None,
                )
            )
        return out
