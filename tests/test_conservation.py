"""Every prompt that enters the city ends served or refused with a reason, under random
cities, placements, failures and routers; no served prompt beats the zero-queue bound."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeagents.core.scenario import Scenario
from edgeagents.core.state import REFUSAL_REASONS
from edgeagents.experiments.driver import run_episode
from edgeagents.policies import POLICIES
from edgeagents.sim.bounds import lower_bound_s, standalone_matrix_s
from edgeagents.sim.workload import generate_workload

GPUS = ["H200", "A100-80GB", "L40S", "L4", "RTX-4090"]
MODELS = [
    {"name": "llm", "kind": "llm", "input_modality": ["text"], "output_modality": "text",
     "profile": "llama-3.1-8b", "weights_gb": 16.06, "kv_bytes_per_token": 131072,
     "typical_context_tokens": 1024, "max_batch": 16, "slo_s": 10},
    {"name": "img", "kind": "text-to-image", "input_modality": ["text"],
     "output_modality": "image", "profile": "stable-diffusion-1.5", "weights_gb": 2.13,
     "activation_gb_per_item": 0.28, "max_batch": 4, "slo_s": 20},
    {"name": "asr", "kind": "speech-to-text", "input_modality": ["audio"],
     "output_modality": "text", "profile": "whisper-large-v3", "weights_gb": 3.09,
     "activation_gb_per_item": 0.43, "max_batch": 8, "slo_s": 5},
    {"name": "vlm", "kind": "vlm", "input_modality": ["image", "text"],
     "output_modality": "text", "profile": "qwen2-7b", "encoder_profile": "clip-vit-l-14-336",
     "weights_gb": 15.84, "kv_bytes_per_token": 57344, "max_batch": 16, "slo_s": 8},
]  # fmt: skip


@st.composite
def cities(draw: st.DrawFn) -> tuple[Scenario, str, int]:
    n = draw(st.integers(1, 4))
    sites = [
        {"name": f"s{i}", "gpus": [{"type": draw(st.sampled_from(GPUS)),
                                    "count": draw(st.integers(1, 2))}]}
        for i in range(n)
    ]  # fmt: skip
    cells = [
        {"name": f"c{i}", "site": f"s{i}", "users": draw(st.integers(1, 100)),
         "uplink_mbps": draw(st.floats(5, 100)), "downlink_mbps": 100}
        for i in range(n)
    ]  # fmt: skip
    links = [
        {"a": f"s{i}", "b": f"s{i + 1}", "latency_ms": draw(st.floats(0, 5)),
         "bandwidth_gbps": draw(st.floats(0.1, 10))}
        for i in range(n - 1)
    ]  # fmt: skip
    models = draw(
        st.lists(st.sampled_from(MODELS), min_size=1, max_size=4, unique_by=lambda m: m["name"])
    )
    placement = {
        f"s{i}": draw(st.lists(st.sampled_from([m["name"] for m in models]), max_size=2))
        for i in range(n)
    }
    events = []
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.floats(0, 40))
        if n > 1 and draw(st.booleans()):
            i = draw(st.integers(0, n - 2))
            kind = draw(st.sampled_from(["link_down", "link_up"]))
            events.append({"at_s": at, "kind": kind, "link": [f"s{i}", f"s{i + 1}"]})
        else:
            kind = draw(st.sampled_from(["site_down", "site_up"]))
            events.append({"at_s": at, "kind": kind, "site": f"s{draw(st.integers(0, n - 1))}"})
    demands = [
        {"model": m["name"], "arrivals": {
            "process": draw(st.sampled_from(["poisson", "mmpp"])),
            "rate_per_s": draw(st.floats(0.1, 6))}}
        for m in models
    ]  # fmt: skip
    scenario = Scenario.model_validate(
        {
            "name": "random", "engine": draw(st.sampled_from(["optimized", "hf-eager"])),
            "sites": sites, "cells": cells, "links": links, "models": models,
            "placement": placement, "events": events,
            "workload": {"demands": demands},
            "control": {"tick_s": 2, "max_queue_per_replica": draw(st.integers(1, 64)),
                        "drain_limit_s": draw(st.floats(0, 60))},
            "duration_s": 40,
        }
    )  # fmt: skip
    return scenario, draw(st.sampled_from(POLICIES.names())), draw(st.integers(0, 2**16))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cities())
def test_every_prompt_ends_served_or_refused(case: tuple[Scenario, str, int]) -> None:
    scenario, policy, seed = case
    warnings.simplefilter("error", RuntimeWarning)
    workload = generate_workload(scenario, seed=seed)
    run = run_episode(scenario, workload, policy, seed=seed)
    out = run.outcomes
    served = ~np.isnan(out.latency_s)
    refused = out.refused >= 0
    assert np.all(served ^ refused)
    assert np.all(np.isfinite(out.latency_s[served]))
    assert np.all(out.refused[refused] < len(REFUSAL_REASONS))
    assert sum(out.refused_by_reason().values()) == int(refused.sum())
    bound = lower_bound_s(standalone_matrix_s(scenario, workload))
    # The shared iteration counter accumulates float error of about 1e-7 s.
    assert np.all(out.latency_s[served] >= bound[served] * (1 - 1e-6) - 1e-9)
    assert np.all(out.queue_s[served] >= -1e-9) and np.all(out.cold_s[served] >= -1e-9)
