"""Ray Serve city, end to end on a local Ray with two sites (custom resources site-a, site-b).

One module-scoped cluster serves every test: the gateway plus three model servers (the real
SmolLM2 on both sites, a tiny synthetic Whisper on a, a tiny synthetic Stable Diffusion on b).
All traffic goes to 127.0.0.1. Select with `-m serve`; skipped without the `serve` extra.
"""

from __future__ import annotations

import base64
import io
import os
import socket
import threading
import time
import wave
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ray.serve")
pytest.importorskip("diffusers")
pytestmark = [pytest.mark.serve, pytest.mark.enable_socket]

SCENARIO = """
name: two-sites
sites:
  - {name: a, gpus: [{type: H200}]}
  - {name: b, gpus: [{type: L4}]}
cells:
  - {name: a, site: a, users: 10, uplink_mbps: 40, downlink_mbps: 200, radio_rtt_ms: 20}
  - {name: b, site: b, users: 10, uplink_mbps: 40, downlink_mbps: 200, radio_rtt_ms: 20}
links:
  - {a: a, b: b, latency_ms: 40.0, bandwidth_gbps: 1}
models:
  - {name: chat, kind: llm, input_modality: [text], output_modality: text,
     profile: llama-3.1-8b, weights_gb: 16.06, kv_bytes_per_token: 131072, slo_s: 10}
  - {name: sd, kind: text-to-image, input_modality: [text], output_modality: image,
     profile: stable-diffusion-1.5, weights_gb: 2.13, max_batch: 8, slo_s: 20}
  - {name: asr, kind: speech-to-text, input_modality: [audio], output_modality: text,
     profile: whisper-large-v3, weights_gb: 3.09, max_batch: 8, slo_s: 5}
  - {name: vlm, kind: vlm, input_modality: [image, text], output_modality: text,
     profile: qwen2-7b, encoder_profile: clip-vit-l-14-336, weights_gb: 15.84, slo_s: 8}
placement:
  a: [chat, asr]
  b: [chat, sd]
workload:
  demands:
    - {model: chat, arrivals: {rate_per_s: 1.0}}
"""
MAX_QUEUE = 2
MAX_BODY = 300_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wav_bytes(seconds: float = 1.0, rate: int = 8000) -> bytes:
    """A sine tone as a 16-bit mono WAV file."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        t = np.arange(int(seconds * rate)) / rate
        w.writeframes((np.sin(2 * np.pi * 440 * t) * 12000).astype(np.int16).tobytes())
    return buf.getvalue()


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A local Ray with sites a and b, Serve on 127.0.0.1, the gateway and three servers.
    Ray is shut down at the end whatever happened."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from ray import serve

    from serving.app import deploy_city
    from serving.config import CityAppConfig

    path: Path = tmp_path_factory.mktemp("serve") / "two-sites.yaml"
    path.write_text(SCENARIO)
    port = _free_port()
    ray.init(
        address="local",
        num_cpus=8,
        resources={"site-a": 1, "site-b": 1},
        include_dashboard=False,
        log_to_driver=False,
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        config = CityAppConfig.model_validate(
            {
                "gateway": {
                    "scenario": str(path),
                    "max_queue_per_server": MAX_QUEUE,
                    "max_body_bytes": MAX_BODY,
                    "request_timeout_s": 60,
                },
                "max_batch": 2,
            }
        )
        handle = deploy_city(config)
        yield {
            "url": f"http://127.0.0.1:{port}",
            "handle": handle,
            "scenario": path,
            "config": config,
        }
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()


@pytest.fixture
def client(city: dict[str, Any]) -> Any:
    import openai

    return openai.OpenAI(base_url=city["url"] + "/v1", api_key="unused", max_retries=0)


@pytest.fixture
def http(city: dict[str, Any]) -> Any:
    import httpx

    with httpx.Client(base_url=city["url"], timeout=120) as c:
        yield c


def _route(http: Any, routes: dict[str, list[dict[str, Any]]]) -> None:
    r = http.put("/admin/routing", json={"routes": routes})
    assert r.status_code == 200, r.text


# ---- the openai client, unchanged ------------------------------------------------------------


def test_chat_completion_runs_the_real_smollm2(client: Any) -> None:
    r = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "Name a colour."}],
        max_tokens=12,
        temperature=0,
    )
    facts = r.model_extra["x_edgeagents"]
    assert r.model == "chat"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content.strip()
    assert 0 < r.usage.completion_tokens <= 12
    assert facts["backend"] == "llama-cpp"
    assert facts["synthetic_weights"] is False
    assert facts["weights"].endswith(".gguf")
    assert facts["site"] in ("a", "b")


def test_image_generation_is_a_png_from_synthetic_weights(client: Any) -> None:
    from PIL import Image

    r = client.images.generate(model="sd", prompt="a red bus on a bridge", size="32x32", n=2)
    assert len(r.data) == 2
    img = Image.open(io.BytesIO(base64.b64decode(r.data[0].b64_json)))
    assert img.format == "PNG"
    assert img.size == (32, 32)
    facts = r.model_extra["x_edgeagents"]
    assert facts["synthetic_weights"] is True
    assert facts["backend"] == "diffusers"
    assert facts["site"] == "b"  # the only site that serves sd


def test_transcription_from_synthetic_whisper(client: Any) -> None:
    r = client.audio.transcriptions.create(model="asr", file=("tone.wav", wav_bytes(), "audio/wav"))
    assert r.text.strip()
    facts = r.model_extra["x_edgeagents"]
    assert facts["synthetic_weights"] is True
    assert facts["backend"] == "whisper"
    assert facts["site"] == "a"


def test_models_lists_the_catalogue_with_sites(client: Any) -> None:
    models = {m.id: m.model_extra["x_edgeagents"] for m in client.models.list().data}
    assert set(models) == {"chat", "sd", "asr", "vlm"}
    assert sorted(models["chat"]["sites"]) == ["a", "b"]
    assert models["vlm"]["sites"] == []


# ---- bad input: OpenAI-style JSON 4xx, never a 500 -------------------------------------------

BAD = [
    ("post", "/v1/chat/completions", {"content": b"{not json"}, 400, "invalid_json"),
    ("post", "/v1/chat/completions", {"json": {"model": "chat"}}, 400, "invalid_value"),
    (
        "post",
        "/v1/chat/completions",
        {"json": {"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}},
        404,
        "model_not_found",
    ),
    (
        "post",
        "/v1/chat/completions",
        {"json": {"model": "sd", "messages": [{"role": "user", "content": "hi"}]}},
        400,
        "wrong_model_kind",
    ),
    (
        "post",
        "/v1/chat/completions",
        {"json": {"model": "chat", "messages": [{"role": "user", "content": "x" * MAX_BODY}]}},
        413,
        "payload_too_large",
    ),
    (
        "post",
        "/v1/chat/completions",
        {"json": {"model": "chat", "stream": True, "messages": [{"role": "user", "content": "x"}]}},
        400,
        "unsupported",
    ),
    (
        "post",
        "/v1/chat/completions",
        {"json": {"model": "vlm", "messages": [{"role": "user", "content": "x"}]}},
        503,
        "model_not_deployed",
    ),
    ("post", "/v1/images/generations", {"json": {"prompt": "x", "size": "32x64"}}, 400, None),
    (
        "post",
        "/v1/audio/transcriptions",
        {"files": {"file": ("a.wav", b"RIFF-not-a-wav", "audio/wav")}, "data": {"model": "asr"}},
        400,
        "invalid_audio",
    ),
    ("post", "/v1/audio/transcriptions", {"json": {"model": "asr"}}, 400, None),
    ("get", "/v1/nothing-here", {}, 404, "not_found"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "code"), BAD)
def test_bad_requests_get_openai_style_json_errors(
    http: Any, method: str, path: str, kwargs: dict[str, Any], status: int, code: str | None
) -> None:
    r = getattr(http, method)(path, **kwargs)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"] and err["type"]
    if code:
        assert err["code"] == code
    assert "Traceback" not in r.text


def test_unknown_cell_header_is_a_400(http: Any) -> None:
    r = http.post(
        "/v1/images/generations",
        json={"model": "sd", "prompt": "x", "size": "16x16"},
        headers={"x-edgeagents-cell": "atlantis"},
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "unknown_cell"


# ---- routing, emulated network, back-pressure ------------------------------------------------


def test_routing_follows_a_policy_update(client: Any, http: Any) -> None:
    def sites(n: int) -> list[str]:
        out = []
        for _ in range(n):
            r = client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=2
            )
            out.append(r.model_extra["x_edgeagents"]["site"])
        return out

    _route(http, {"chat": [{"site": "a", "weight": 0.0}, {"site": "b", "weight": 1.0}]})
    assert sites(4) == ["b"] * 4
    _route(http, {"chat": [{"site": "a", "weight": 1.0}, {"site": "b", "weight": 0.0}]})
    assert sites(4) == ["a"] * 4
    _route(http, {})
    assert http.get("/admin/routing").json() == {"routes": {}}


def test_cell_header_adds_the_scenario_network_delay(http: Any, city: dict[str, Any]) -> None:
    from edgeagents.core.scenario import load_scenario
    from edgeagents.sim.network import Network

    body = {"model": "sd", "prompt": "a bridge", "size": "16x16"}
    plain = http.post("/v1/images/generations", json=body).json()["x_edgeagents"]
    far = http.post("/v1/images/generations", json=body, headers={"x-edgeagents-cell": "a"}).json()[
        "x_edgeagents"
    ]
    assert plain["network_s"] == 0.0
    net = Network(load_scenario(city["scenario"]))
    # Cell a to site b and back: two radio half round trips and two 40 ms backhaul hops.
    floor = 2 * float(net.radio_half_rtt_s[0]) + 2 * float(net.latency_s[0, 1])
    assert floor == pytest.approx(0.1)
    assert floor <= far["network_s"] < floor + 0.05


def test_back_pressure_answers_429_with_a_reason(city: dict[str, Any], http: Any) -> None:
    import httpx

    n = 4 * MAX_QUEUE + 4  # 2 chat servers x MAX_QUEUE in flight, then 429
    statuses: list[int] = []
    codes: list[str | None] = []
    lock = threading.Lock()
    since = time.time()

    def one() -> None:
        body = {
            "model": "chat",
            "messages": [{"role": "user", "content": "Write a long story about a city."}],
            "max_tokens": 48,
        }
        r = httpx.post(city["url"] + "/v1/chat/completions", json=body, timeout=120)
        with lock:
            statuses.append(r.status_code)
            codes.append(r.json().get("error", {}).get("code") if r.status_code != 200 else None)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    counts = Counter(statuses)
    assert sum(counts.values()) == n
    assert set(counts) <= {200, 429}, counts
    assert counts[429] >= 1, counts
    assert counts[200] >= 2 * MAX_QUEUE - 1, counts
    assert all(c == "queue_full" for s, c in zip(statuses, codes, strict=True) if s == 429)
    recs = [r for r in http.get("/admin/telemetry", params={"since_s": since}).json()["requests"]]
    refused = [r for r in recs if r["model"] == "chat" and r["reason"] == "queue_full"]
    served = [r for r in recs if r["model"] == "chat" and r["outcome"] == "served"]
    assert len(refused) == counts[429]
    assert len(served) == counts[200]


def test_telemetry_reports_queue_batch_latency_memory(http: Any) -> None:
    snap = http.get("/admin/telemetry").json()
    by_app = {(s["model"], s["site"]): s for s in snap["servers"]}
    assert set(by_app) == {("chat", "a"), ("chat", "b"), ("asr", "a"), ("sd", "b")}
    assert snap["errors_by_code"]["model_not_found"] >= 1  # from the bad-request tests
    assert snap["errors_by_code"]["queue_full"] >= 1
    sd = by_app[("sd", "b")]
    assert sd["synthetic_weights"] is True
    assert sd["served"] >= 1 and sd["p50_latency_s"] > 0
    assert sd["model_memory_bytes"] > 0 and sd["rss_bytes"] > sd["model_memory_bytes"]
    assert by_app[("chat", "a")]["synthetic_weights"] is False
    for s in snap["servers"]:
        assert s["queue_len"] >= 0 and s["max_batch"] == 2


# ---- failures: a killed replica --------------------------------------------------------------


def test_killed_replica_is_restarted_and_every_request_is_accounted(
    city: dict[str, Any], http: Any
) -> None:
    from ray import serve

    server = serve.get_deployment_handle("ModelServer", app_name="asr--a")
    before = server.stats.remote().result(timeout_s=30)
    since = time.time()
    statuses: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        import httpx

        files = {"file": ("t.wav", wav_bytes(0.5), "audio/wav")}
        r = httpx.post(
            city["url"] + "/v1/audio/transcriptions", files=files, data={"model": "asr"}, timeout=90
        )
        with lock:
            statuses.append(r.status_code)
            if r.status_code != 200:
                assert r.json()["error"]["code"] in ("replica_failed", "queue_full"), r.text

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    with pytest.raises(Exception):  # noqa: B017 (the replica's process ends mid-call)
        server.crash.remote().result(timeout_s=30)
    for t in threads:
        t.join(timeout=120)
    assert len(statuses) == 4
    recs = http.get("/admin/telemetry", params={"since_s": since}).json()["requests"]
    asr = [r for r in recs if r["model"] == "asr"]
    assert len(asr) == 4
    assert Counter(r["status"] for r in asr) == Counter(statuses)

    deadline = time.time() + 90
    while True:  # Serve replaces the dead replica; a new request is then served
        files = {"file": ("t.wav", wav_bytes(0.5), "audio/wav")}
        r = http.post("/v1/audio/transcriptions", files=files, data={"model": "asr"})
        if r.status_code == 200:
            break
        assert time.time() < deadline, f"asr not back after a crash: {r.text}"
        time.sleep(1)
    after = server.stats.remote().result(timeout_s=30)
    assert after["pid"] != before["pid"]
    assert after["replica"] != before["replica"]


# ---- the Environment protocol over Serve (runs last: it changes the placement) ---------------


def _png_data_url() -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_ray_serve_city_applies_a_decision_and_routing_follows(
    city: dict[str, Any], client: Any, http: Any
) -> None:
    from edgeagents.core.env import Environment
    from edgeagents.core.state import Decision, DeploymentAction, RoutingPolicy, SiteWeight
    from serving.city import RayServeCity

    env = RayServeCity(city["config"], deploy=False)
    assert isinstance(env, Environment)
    before = env.observe()
    assert {(r.deployment.site, r.deployment.model) for r in before.replicas} == {
        ("a", "chat"),
        ("a", "asr"),
        ("b", "chat"),
        ("b", "sd"),
    }
    decision = Decision(
        time_s=env.now,
        routing=RoutingPolicy(routes={"chat": [SiteWeight(site="a", weight=1.0)]}),
        actions=[
            DeploymentAction(site="b", model="vlm", op="load"),  # the L4 already holds chat
            DeploymentAction(site="a", model="vlm", op="load"),
            DeploymentAction(site="b", model="sd", op="unload"),
            DeploymentAction(site="b", model="asr", op="unload"),  # not there
        ],
    )
    report = env.apply(decision)
    assert [(a.site, a.model, a.op) for a in report.applied] == [
        ("b", "sd", "unload"),
        ("a", "vlm", "load"),
    ]
    reasons = {(r.action.site, r.action.model): r.reason for r in report.refused}
    assert "GB" in reasons[("b", "vlm")]
    assert "no replica" in reasons[("b", "asr")]
    (loaded_s,) = report.load_s.values()
    assert 0 < loaded_s < 180

    r = client.chat.completions.create(
        model="vlm",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in the picture?"},
                    {"type": "image_url", "image_url": {"url": _png_data_url()}},
                ],
            }
        ],
        max_tokens=4,
    )
    facts = r.model_extra["x_edgeagents"]
    assert (facts["site"], facts["backend"], facts["synthetic_weights"]) == ("a", "vlm", True)
    gone = http.post("/v1/images/generations", json={"model": "sd", "prompt": "x"})
    assert gone.status_code == 503
    assert gone.json()["error"]["code"] == "model_not_deployed"
    sites = {
        client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        ).model_extra["x_edgeagents"]["site"]
        for _ in range(3)
    }
    assert sites == {"a"}

    after = env.observe()
    placed = {(r.deployment.site, r.deployment.model) for r in after.replicas}
    assert ("a", "vlm") in placed and ("b", "sd") not in placed
    chat = next(m for m in after.models if m.model == "chat")
    assert chat.served >= 3 and chat.replicas == 2 and chat.p50_latency_s > 0
    site_b = next(s for s in after.sites if s.site == "b")
    assert site_b.loaded_models == ["chat"]
    assert site_b.gpus[0].free_memory_gb > before.sites[1].gpus[0].free_memory_gb


def test_serve_command_runs_the_agents_under_load(city: dict[str, Any], http: Any) -> None:
    """`edgeagents serve`'s function on the running city: its servers are timed, the control
    graph (fallback only) steers it while the load generator sends the scenario's prompts
    through the gateway; the report has `edgeagents run`'s figures for the run as measured
    and as the simulator replays it, and the fidelity figure."""
    from serving.cli import run_serve

    placement = http.get("/admin/telemetry").json()["placement"]
    lines: list[str] = []
    report = run_serve(
        str(city["scenario"]),
        duration_s=6,
        rate_per_s=1.5,
        policy="agents",
        llm="none",
        port=int(city["url"].rsplit(":", 1)[1]),
        placement=placement,
        calibration_repeats=1,
        calibration_quiet_wait_s=2,
        start_ray=False,
        on_line=lines.append,
    )
    # Every prompt sent ended served or refused with a reason.
    assert report.prompts >= 3 and len(report.requests) == report.prompts
    assert all(r["status"] == 200 or r["code"] for r in report.requests)
    measured, simulated, run_fit, bound = report.results
    assert (measured.policy, simulated.policy) == ("agents (measured)", "agents (simulator)")
    assert measured.served + measured.refused == report.prompts >= measured.served >= 1
    chat = next(m for m in measured.per_model if m.model == "chat")
    lat = [r["latency_s"] for r in report.requests if r["model"] == "chat" and r["status"] == 200]
    assert chat.mean_latency_s == pytest.approx(float(np.mean(lat)))
    # Jain over model types of ref_k / measured mean_k (one type here: exactly 1).
    assert chat.normalized_speed == pytest.approx(chat.reference_s / chat.mean_latency_s)
    assert measured.jain == pytest.approx(1.0) and bound.policy == "lower-bound"
    # The calibration timed the chat server; the fidelity figure is finite.
    assert report.calibration.models["chat"].source == "probes"
    assert report.calibration.models["chat"].points
    fid = next(f for f in report.fidelity.models if f.model == "chat")
    assert fid.prompts >= 1 and np.isfinite(fid.error)
    assert np.isfinite(report.fidelity.overall.error)
    assert report.fidelity.run_fit is not None
    assert np.isfinite(report.fidelity.run_fit.overall.error)
    assert simulated.served + simulated.refused == report.prompts
    assert run_fit.served + run_fit.refused == report.prompts
    assert any(line.startswith("calibrated chat") for line in lines)
    assert any(line.startswith("served ") and "error" in line for line in lines)
