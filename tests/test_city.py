"""The latency model against hand-computed cases, and the city's deployment mechanics."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_workload, tiny_scenario

from edgeagents.core.profiles import cudagraph_profiles, eager_profiles
from edgeagents.core.state import Decision, DeploymentAction
from edgeagents.policies import ROUTERS
from edgeagents.sim.city import SimulatedCity

PREFILL = {r["input_tokens"]: r["median_s"] for r in eager_profiles()["llama-3.1-8b"]["prefill"]
           if r["batch"] == 1}  # fmt: skip
DECODE = {
    r["batch"]: r["median_s"]
    for r in cudagraph_profiles()["llama-3.1-8b"]["decode_step"]
    if r["context_tokens"] == 512
}
HALF_RTT = 0.005


def radio_s(bytes_in: float, bytes_out: float) -> float:
    return HALF_RTT + bytes_in * 8 / 40e6 + HALF_RTT + bytes_out * 8 / 200e6


def run_city(scenario, rows, until=200.0, router="nearest", decisions=()):
    city = SimulatedCity(scenario, make_workload(scenario, rows), ROUTERS.create(router))
    for at, decision in decisions:
        city.advance(at)
        city.apply(decision)
    city.advance(until)
    return city


def test_one_prompt_one_site_is_the_exact_sum(tiny):
    city = run_city(tiny, [{"arrival_s": 1.0, "input_tokens": 512, "output_tokens": 8}])
    expected = radio_s(512 * 4, 8 * 4) + PREFILL[512] + 8 * DECODE[1]
    out = city.out
    assert out.latency_s[0] == pytest.approx(expected, abs=1e-9)
    assert out.backhaul_s[0] == 0.0
    assert out.queue_s[0] == pytest.approx(0.0, abs=1e-12)
    assert out.infer_s[0] == pytest.approx(PREFILL[512] + 8 * DECODE[1], abs=1e-9)


def test_two_prompts_share_a_replica_by_iteration(tiny):
    rows = [
        {"arrival_s": 0.0, "input_tokens": 128, "output_tokens": 10},
        {"arrival_s": 0.0, "input_tokens": 128, "output_tokens": 30},
    ]
    city = run_city(tiny, rows)
    up = HALF_RTT + 128 * 4 * 8 / 40e6
    decode_from = up + 2 * PREFILL[128]  # both prefills stall the replica first
    first_done = decode_from + 10 * _decode(2)
    second_done = first_done + 20 * DECODE[1]
    down_a = HALF_RTT + 10 * 4 * 8 / 200e6
    down_b = HALF_RTT + 30 * 4 * 8 / 200e6
    assert city.out.latency_s[0] == pytest.approx(first_done + down_a, abs=1e-9)
    assert city.out.latency_s[1] == pytest.approx(second_done + down_b, abs=1e-9)


def test_static_batching_runs_a_batch_to_completion_and_answers_at_its_end():
    """The same two prompts, then a third arriving mid-batch, on a static-batching replica:
    the batch of two is as above but both answer when it ends; the third waits for it."""
    sc = tiny_scenario(models=[{**tiny_scenario().models[0].model_dump(), "batching": "static"}])
    rows = [
        {"arrival_s": 0.0, "input_tokens": 128, "output_tokens": 10},
        {"arrival_s": 0.0, "input_tokens": 128, "output_tokens": 30},
        {"arrival_s": 0.2, "input_tokens": 128, "output_tokens": 10},
    ]
    city = run_city(sc, rows)
    up = HALF_RTT + 128 * 4 * 8 / 40e6
    batch_done = up + 2 * PREFILL[128] + 10 * _decode(2) + 20 * DECODE[1]
    down_a = HALF_RTT + 10 * 4 * 8 / 200e6
    down_b = HALF_RTT + 30 * 4 * 8 / 200e6
    assert city.out.latency_s[0] == pytest.approx(batch_done + down_a, abs=1e-9)
    assert city.out.latency_s[1] == pytest.approx(batch_done + down_b, abs=1e-9)
    third = batch_done + PREFILL[128] + 10 * DECODE[1] + down_a - 0.2
    assert city.out.latency_s[2] == pytest.approx(third, abs=1e-9)
    assert city.out.queue_s[2] == pytest.approx(batch_done - 0.2 - up, abs=1e-9)


def _decode(batch: int) -> float:
    """Cudagraph decode at context 512, linear between measured batches 1 and 8."""
    return DECODE[1] + (DECODE[8] - DECODE[1]) * (batch - 1) / 7


def test_cold_start_delays_service_by_the_load_time():
    sc = tiny_scenario(placement={})
    load = DeploymentAction(site="a", model="llm", op="load")
    city = run_city(
        sc,
        [{"arrival_s": 0.5, "input_tokens": 512, "output_tokens": 4}],
        decisions=[(0.0, Decision(time_s=0.0, actions=[load]))],
    )
    spec = sc.model("llm")
    ready = spec.init_s + spec.weights_gb / sc.sites[0].load_gbps
    up = HALF_RTT + 512 * 4 * 8 / 40e6
    expected = ready + PREFILL[512] + 4 * DECODE[1] + HALF_RTT + 4 * 4 * 8 / 200e6 - 0.5
    assert city.out.latency_s[0] == pytest.approx(expected, abs=1e-9)
    assert city.out.cold_s[0] == pytest.approx(ready - (0.5 + up), abs=1e-9)


def test_transfer_over_two_links_uses_path_latency_and_bottleneck():
    sc = tiny_scenario(placement={"c": ["llm"]})
    city = run_city(sc, [{"arrival_s": 0.0, "input_tokens": 512, "output_tokens": 4}])
    bytes_in, bytes_out = 512 * 4, 4 * 4
    backhaul = 0.003 + bytes_in * 8 / 1e9 + 0.003 + bytes_out * 8 / 1e9
    assert city.out.backhaul_s[0] == pytest.approx(backhaul, abs=1e-12)
    assert city.out.site[0] == 2


def test_memory_is_a_hard_limit(tiny):
    city = run_city(tiny, [])
    report = city.apply(
        Decision(time_s=city.now, actions=[DeploymentAction(site="c", model="llm", op="load"),
                                           DeploymentAction(site="c", model="llm", op="load")])
    )  # fmt: skip
    assert len(report.applied) == 1
    assert len(report.refused) == 1 and "GB" in report.refused[0].reason
    gpu = city.observe().sites[2].gpus[0]
    assert gpu.free_memory_gb >= 0


def test_unload_redispatches_waiting_prompts():
    sc = tiny_scenario(placement={"a": ["llm"], "b": ["llm"]})
    rows = [{"arrival_s": 0.0, "input_tokens": 512, "output_tokens": 400} for _ in range(20)]
    unload = DeploymentAction(site="a", model="llm", op="unload")
    city = run_city(sc, rows, decisions=[(0.5, Decision(time_s=0.5, actions=[unload]))])
    assert np.all(~np.isnan(city.out.latency_s))
    assert set(city.out.site.tolist()) == {1}


def test_site_failure_reroutes_and_conserves():
    sc = tiny_scenario(
        placement={"a": ["llm"], "b": ["llm"]},
        events=[{"at_s": 2.0, "kind": "site_down", "site": "b"}],
    )
    rows = [{"arrival_s": 0.1 * k, "input_tokens": 256, "output_tokens": 100} for k in range(50)]
    city = run_city(sc, rows, router="round-robin")
    served = ~np.isnan(city.out.latency_s)
    assert served.all()
    late = city.out.done_s > 2.0
    assert not np.any(city.out.site[late & served] == 1)


def test_unreachable_site_refuses_with_reason():
    sc = tiny_scenario(
        placement={"c": ["llm"]},
        events=[{"at_s": 0.0, "kind": "link_down", "link": ["a", "b"]}],
    )
    city = run_city(sc, [{"arrival_s": 1.0, "input_tokens": 10, "output_tokens": 1}])
    assert city.out.refused_by_reason() == {"no_reachable_replica": 1}
    assert np.isnan(city.out.latency_s[0])


def test_event_trace_is_reproducible(tiny):
    rows = [{"arrival_s": 0.05 * k, "input_tokens": 200, "output_tokens": 50} for k in range(40)]
    traces = []
    for _ in range(2):
        city = SimulatedCity(tiny, make_workload(tiny, rows), ROUTERS.create("random"),
                             seed=3, trace=True)  # fmt: skip
        city.advance(100)
        traces.append(city.event_trace)
    assert traces[0] == traces[1]
    assert len(traces[0]) > 80


def test_simulated_city_implements_the_environment_protocol(tiny):
    from edgeagents.core.env import Environment

    city = run_city(tiny, [], until=1.0)
    assert isinstance(city, Environment)
    telemetry = city.observe()
    assert telemetry.time_s == 1.0
    assert [s.site for s in telemetry.sites] == ["a", "b", "c"]
    assert telemetry.sites[0].loaded_models == ["llm"]
