"""Shared fixtures: tiny scenarios whose latencies can be computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from edgeagents.core.scenario import Scenario
from edgeagents.sim.workload import Workload

TINY = """
name: tiny
engine: optimized
sites:
  - {name: a, gpus: [{type: H200}]}
  - {name: b, gpus: [{type: H200}]}
  - {name: c, gpus: [{type: L4}]}
cells:
  - {name: a, site: a, users: 10, uplink_mbps: 40, downlink_mbps: 200, radio_rtt_ms: 10}
links:
  - {a: a, b: b, latency_ms: 1.0, bandwidth_gbps: 10}
  - {a: b, b: c, latency_ms: 2.0, bandwidth_gbps: 1}
models:
  - name: llm
    kind: llm
    input_modality: [text]
    output_modality: text
    profile: llama-3.1-8b
    weights_gb: 16.06
    kv_bytes_per_token: 131072
    typical_context_tokens: 512
    max_batch: 8
    slo_s: 10
placement:
  a: [llm]
workload:
  demands:
    - model: llm
      arrivals: {rate_per_s: 1.0}
control: {tick_s: 1, drain_limit_s: 100}
duration_s: 10
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that starts Ray (marked `serve`) needs sockets; every other test runs with them
    blocked (`--disable-socket` in pyproject.toml), unless it is marked `enable_socket`."""
    for item in items:
        if item.get_closest_marker("serve"):
            item.add_marker(pytest.mark.enable_socket)


def tiny_scenario(**overrides: object) -> Scenario:
    """The tiny city, with top-level fields replaced (re-validated)."""
    import yaml

    data = yaml.safe_load(TINY)
    data.update(overrides)
    return Scenario.model_validate(data)


@pytest.fixture
def tiny() -> Scenario:
    return tiny_scenario()


def make_workload(scenario: Scenario, rows: list[dict]) -> Workload:
    """A workload from explicit prompts: dicts with arrival_s, model, cell and sizes."""
    models = tuple(scenario.model_names)
    cells = tuple(c.name for c in scenario.cells)
    rows = sorted(rows, key=lambda r: r["arrival_s"])

    def col(key: str, default: float = 0) -> np.ndarray:
        return np.array([r.get(key, default) for r in rows])

    return Workload(
        model_names=models,
        cell_names=cells,
        arrival_s=col("arrival_s"),
        model=np.array([models.index(r.get("model", models[0])) for r in rows]),
        cell=np.array([cells.index(r.get("cell", cells[0])) for r in rows]),
        input_tokens=col("input_tokens"),
        output_tokens=col("output_tokens"),
        images=col("images"),
        audio_s=col("audio_s"),
        resolution_px=col("resolution_px"),
        steps=col("steps"),
    )
