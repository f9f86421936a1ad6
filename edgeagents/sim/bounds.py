"""Stand-alone latencies: the zero-queue lower bound and the per-model-type references of the
normalized Jain index. Both assume a warm model, an empty batch and a whole GPU."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgeagents.core.profiles import iterations, service_model, setup_h200_s
from edgeagents.sim.network import Network, payload_bytes

if TYPE_CHECKING:
    from collections.abc import Iterator

    from edgeagents.core.scenario import Scenario
    from edgeagents.core.state import ModelSpec
    from edgeagents.sim.workload import Workload


def prompt_work(
    scenario: Scenario, w: Workload
) -> Iterator[tuple[ModelSpec, np.ndarray, np.ndarray, np.ndarray]]:
    """Per model with prompts in `w`: the model, its prompts' indices, their setup time on an
    H200 (prefill, encoders, VAE) and their iterations (decode tokens or denoising steps)."""
    for mi, m in enumerate(scenario.models):
        sel = np.flatnonzero(w.model == mi)
        if not len(sel):
            continue
        setup = setup_h200_s(m, w.input_tokens[sel], w.images[sel], w.audio_s[sel],
                             w.resolution_px[sel])  # fmt: skip
        yield m, sel, setup, iterations(m, w.output_tokens[sel], w.steps[sel], w.resolution_px[sel])


def standalone_matrix_s(scenario: Scenario, workload: Workload) -> np.ndarray:
    """Latency of each prompt served alone at each site on that site's fastest GPU for it that
    can hold the model, with the city intact: shape (prompts, sites); inf where impossible."""
    w = workload
    net = Network(scenario)
    cells = w.cell.astype(np.int64)
    bytes_in, bytes_out = payload_bytes(scenario.payload, w)
    src = net.cell_site[cells]
    radio = net.uplink_s(cells, bytes_in) + net.downlink_s(cells, bytes_out)
    backhaul = net.transfer_matrix_s(src, bytes_in) + _transfer_back(net, src, bytes_out)
    service = np.full((len(w), len(scenario.sites)), np.inf)
    catalogue = scenario.gpu_catalogue
    for m, sel, setup, iters in prompt_work(scenario, w):
        for si, site in enumerate(scenario.sites):
            for slot in site.gpus:
                gpu = catalogue[slot.type]
                if gpu.memory_gb < m.memory_gb(1):
                    continue
                svc = service_model(m, gpu, scenario.engine)
                t = setup * svc.compute_ratio + iters * svc.iter_s(1)
                service[sel, si] = np.minimum(service[sel, si], t)
    return radio[:, None] + backhaul + service


def _transfer_back(net: Network, src: np.ndarray, nbytes: np.ndarray) -> np.ndarray:
    lat = net.latency_s.T[src]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = lat + nbytes[:, None] * 8 / net.bandwidth_bps.T[src]
    t[np.arange(len(src)), src] = 0.0
    return np.where(np.isfinite(lat), t, np.inf)


def lower_bound_s(matrix: np.ndarray) -> np.ndarray:
    """Each prompt at its best site: nothing can beat this (no queue, warm, whole GPU)."""
    return matrix.min(axis=1)


def reference_s(scenario: Scenario, workload: Workload, matrix: np.ndarray) -> dict[str, float]:
    """ref_k: mean stand-alone latency of model k's prompts at the nearest site that can hold
    it (least backhaul latency from the prompt's cell).

    DESIGN.md names the median prompt; across a city of mixed GPUs the stand-alone latencies
    are multi-modal (one mode per GPU type), and their median jumps between modes with small
    changes in where users are. The mean moves smoothly, so the index stays comparable."""
    net = Network(scenario)
    src = net.cell_site[workload.cell.astype(np.int64)]
    refs: dict[str, float] = {}
    for mi, m in enumerate(scenario.models):
        sel = np.flatnonzero(workload.model == mi)
        if not len(sel):
            continue
        sub = matrix[sel]
        capable = np.isfinite(sub)
        lat = np.where(capable, net.latency_s[src[sel]], np.inf)
        nearest = lat.argmin(axis=1)
        refs[m.name] = float(np.mean(sub[np.arange(len(sel)), nearest]))
    return refs
