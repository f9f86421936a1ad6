"""The Ray Serve city on a 3-node Ray cluster, one node per edge site (`ray.cluster_utils`),
and one `bench faults --target ray` row on the same cluster.

The head node is site a (and carries the gateway, Serve's controller and proxy); two worker
nodes are sites b and c, each offering only its `site-<name>` resource. The real SmolLM2
serves `chat`. One module-scoped cluster runs, in order: a fault row (a replica killed under
load), then, with the city deployed, the placement across nodes, a move
from a to b that routing follows, and the removal of c's node mid-run (its in-flight prompts
retried on another site, the site reported down, loads there refused, the agents
re-planning). Ray is shut down at the end whatever happened. Select with `-m serve`.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray.serve")
pytest.importorskip("llama_cpp")
pytestmark = [pytest.mark.serve, pytest.mark.enable_socket]

SCENARIO = """
name: three-nodes
sites:
  - {name: a, gpus: [{type: H200}]}
  - {name: b, gpus: [{type: H200}]}
  - {name: c, gpus: [{type: H200}]}
cells:
  - {name: a, site: a, users: 10, uplink_mbps: 40, downlink_mbps: 200, radio_rtt_ms: 10}
  - {name: b, site: b, users: 10, uplink_mbps: 40, downlink_mbps: 200, radio_rtt_ms: 10}
  - {name: c, site: c, users: 10, uplink_mbps: 40, downlink_mbps: 200, radio_rtt_ms: 10}
links:
  - {a: a, b: b, latency_ms: 1.0, bandwidth_gbps: 10}
  - {a: b, b: c, latency_ms: 1.0, bandwidth_gbps: 10}
models:
  - {name: chat, kind: llm, input_modality: [text], output_modality: text,
     profile: llama-3.1-8b, weights_gb: 16.06, kv_bytes_per_token: 131072, slo_s: 10}
placement:
  a: [chat]
  c: [chat]
workload:
  demands:
    - {model: chat, arrivals: {rate_per_s: 1.0}}
control: {tick_s: 5, planning_epoch_s: 600, window_s: 30}
"""


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Head = site a, workers = sites b and c, the driver connected; everything is shut down
    at the end."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from ray.cluster_utils import Cluster

    from serving.faults.cluster import SiteCluster

    c = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "resources": {"site-a": 1}, "include_dashboard": False},
    )
    try:
        sites = SiteCluster(c, {"a": c.head_node}, owned=True)
        sites.add("b")
        sites.add("c")
        ray.init(address=c.address, log_to_driver=False)
        path: Path = tmp_path_factory.mktemp("nodes") / "three-nodes.yaml"
        path.write_text(SCENARIO)
        yield sites, path
    finally:
        try:
            ray.shutdown()
        finally:
            c.shutdown()


@pytest.fixture(scope="module")
def cluster(nodes: Any) -> Any:
    """Serve on 127.0.0.1 (proxy on the head only) and the city deployed on the cluster."""
    from ray import serve

    from edgeagents.experiments.faults.lm_server import free_port
    from serving.city import RayServeCity

    sites, path = nodes
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port}, proxy_location="HeadOnly")
    try:
        city = RayServeCity(
            {"gateway": {"scenario": str(path), "request_timeout_s": 60}, "max_batch": 2}
        )
        yield {"cluster": sites, "city": city, "url": f"http://127.0.0.1:{port}"}
    finally:
        serve.shutdown()


def test_a_ray_fault_row_end_to_end(nodes: Any) -> None:
    """`bench faults --target ray`'s replica-crash row on a 15-s run: the replica at c killed
    under load, every prompt served or refused with a reason, the agents' loop to the end.
    It runs first, on the same cluster, and leaves it whole with Serve shut down."""
    from edgeagents.core.scenario import load_scenario
    from edgeagents.experiments.faults import FaultsSettings, RayFaultsSettings, fault_window
    from serving.faults import RAY_TARGET

    sites, path = nodes
    sc = load_scenario(str(path))
    start, end = fault_window(sc, 15.0)
    settings = FaultsSettings(
        target="ray", scenario=str(path), duration_s=15.0, fault_start_s=start,
        fault_end_s=end, recovery_window_s=5.0, recovery_step_s=1.0,
        ray=RayFaultsSettings(rate_per_s=1.0),
    )  # fmt: skip
    report = RAY_TARGET.run(sc, settings, ["replica-crash", "link-cut"], cluster=sites)
    row, skipped = report.rows
    assert (row.status, row.problems) == ("ok", []), row
    fig = row.agents
    assert fig.offered == report.prompts > 5
    assert fig.lost == 0 and fig.served + fig.refused == fig.offered
    assert fig.reached_end and fig.ticks == 3
    assert row.ray.fault_at_s and row.ray.fault_at_s[0] >= start
    assert "killed (ray.kill)" in row.fault and "chat at c" in row.fault
    assert skipped.status == "not implemented" and "emulated delay" in skipped.reason
    assert sorted(sites.nodes) == ["a", "b", "c"]


def _chat(url: str, tokens: int = 4) -> dict[str, Any]:
    import httpx

    body = {"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": tokens}
    r = httpx.post(url + "/v1/chat/completions", json=body, timeout=120)
    out = r.json()
    out["status"] = r.status_code
    return out


def _servers(city: Any) -> dict[str, str]:
    """site -> Ray node id of its chat server."""
    snap = city._gateway.snapshot.remote().result(timeout_s=60)
    return {s["site"]: s["node_id"] for s in snap["servers"]}


def _route(city: Any, weights: dict[str, float]) -> None:
    from edgeagents.core.state import Decision, RoutingPolicy

    routes = {"chat": [{"site": s, "weight": w} for s, w in weights.items()]}
    city.apply(Decision(time_s=city.now, routing=RoutingPolicy.model_validate({"routes": routes})))


def test_placement_across_nodes(cluster: dict[str, Any]) -> None:
    city, nodes = cluster["city"], cluster["cluster"]
    assert _servers(city) == {"a": nodes.node_id("a"), "c": nodes.node_id("c")}
    t = city.observe()
    assert [s.up for s in t.sites] == [True, True, True]
    assert {s.site: s.loaded_models for s in t.sites} == {"a": ["chat"], "b": [], "c": ["chat"]}


def test_a_move_between_nodes_and_routing_follows(cluster: dict[str, Any]) -> None:
    from edgeagents.core.state import Decision, DeploymentAction

    city, nodes, url = cluster["city"], cluster["cluster"], cluster["url"]
    move = [
        DeploymentAction(site="b", model="chat", op="load"),
        DeploymentAction(site="a", model="chat", op="unload"),
    ]
    report = city.apply(Decision(time_s=city.now, actions=move))
    assert not report.refused, report.refused
    assert city.placement == {"b": ["chat"], "c": ["chat"]}
    assert _servers(city) == {"b": nodes.node_id("b"), "c": nodes.node_id("c")}
    _route(city, {"b": 1.0})
    answers = [_chat(url) for _ in range(3)]
    assert [(r["status"], r["x_edgeagents"]["site"]) for r in answers] == [(200, "b")] * 3


def test_node_removed_mid_run(cluster: dict[str, Any]) -> None:
    """c's node goes while prompts run there: each is served (retried on another site) or
    refused with a reason; c is reported down, the agents re-plan without it, and loads
    there are refused."""
    from edgeagents.core.state import Decision, DeploymentAction
    from graphs.controller import AgentsController

    city, url = cluster["city"], cluster["url"]
    controller = AgentsController(None)
    first, _ = controller.step(city, city.scenario, charge_decision_time=False)
    assert first.plan is not None  # the first cycle always plans
    _route(city, {"c": 1.0})
    answers: list[dict[str, Any]] = []
    threads = [
        threading.Thread(target=lambda: answers.append(_chat(url, tokens=24))) for _ in range(6)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while not city._gateway.snapshot.remote().result(timeout_s=30)["inflight"]:
        assert time.monotonic() < deadline, "no prompt reached c"
        time.sleep(0.05)
    cluster["cluster"].remove("c")
    for t in threads:
        t.join(timeout=120)
    assert len(answers) == 6  # none lost
    for r in answers:
        assert r["status"] == 200 or r["error"]["code"] in ("site_down", "replica_failed"), r
    served = [r["x_edgeagents"] for r in answers if r["status"] == 200]
    assert any(f["site"] != "c" and f["retries"] == 1 for f in served), answers  # retried

    t = city.observe()
    assert {s.site: s.up for s in t.sites} == {"a": True, "b": True, "c": False}
    assert "c" not in city.placement and city.placement["b"] == ["chat"]
    assert (city.site_events[-1][1], city.site_events[-1][2]) == ("c", False)
    assert _chat(url)["x_edgeagents"]["site"] != "c"
    refused = city.apply(
        Decision(time_s=city.now, actions=[DeploymentAction(site="c", model="chat", op="load")])
    ).refused
    assert [r.reason for r in refused] == ["site c is down (its Ray node is gone)"]

    decision, _ = controller.step(city, city.scenario, charge_decision_time=False)
    assert decision.plan is not None  # re-planned within the epoch: the outage changed
    assert "c" not in decision.plan.placement or not decision.plan.placement["c"]
    routed = {w.site for ws in decision.routing.routes.values() for w in ws if w.weight > 0}
    assert "c" not in routed
