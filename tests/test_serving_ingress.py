"""Serve's direct ingress: the gateway replica serves HTTP itself, on 127.0.0.1, without the
proxy actor hop (`serving.ingress`). Its own local Ray, shut down at the end; traffic only to
127.0.0.1. Select with `-m serve`."""

from __future__ import annotations

import base64
import os
import socket
from typing import Any

import pytest

pytest.importorskip("ray.serve")
pytest.importorskip("diffusers")
pytestmark = [pytest.mark.serve, pytest.mark.enable_socket]

SITE, MODEL = "harbourside", "stable-diffusion-1.5"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def direct_city() -> Any:
    """Bristol's gateway and one image server, on a local Ray started with direct ingress."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from ray import serve

    from serving.app import deploy_city
    from serving.config import site_resource
    from serving.ingress import DIRECT_INGRESS_ENV, enable_direct_ingress

    saved = {k: os.environ.get(k) for k in DIRECT_INGRESS_ENV}
    enable_direct_ingress()
    port = _free_port()
    ray.init(
        address="local",
        num_cpus=4,
        resources={site_resource(SITE): 1},
        include_dashboard=False,
        log_to_driver=False,
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        deploy_city({"gateway": {"placement": {SITE: [MODEL]}}})
        yield {"proxy_port": port}
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def test_gateway_replica_serves_the_openai_client_on_loopback(direct_city: dict) -> None:
    import openai

    from serving.bench import listening_on
    from serving.ingress import direct_ingress_url

    url = direct_ingress_url()
    host, port = url.removeprefix("http://").split(":")
    assert host == "127.0.0.1"
    assert int(port) != direct_city["proxy_port"]
    assert listening_on(int(port)) == ["127.0.0.1"]
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    img = client.images.generate(model=MODEL, prompt="a bridge", size="32x32")
    assert base64.b64decode(img.data[0].b64_json)[:8] == b"\x89PNG\r\n\x1a\n"
    assert MODEL in {m.id for m in client.models.list().data}


def test_overhead_bench_reports_the_direct_path(direct_city: dict) -> None:
    """Both paths are timed and the report says which ingress it measured (no timing asserted:
    the figure is `python -m serving.bench --local --direct-ingress`'s)."""
    from serving.bench import measure_overhead
    from serving.ingress import direct_ingress_url

    url = direct_ingress_url()
    report = measure_overhead(url, model=MODEL, site=SITE, n=5, warmup=2, ingress="direct")
    assert report.ingress == "direct"
    assert report.gateway_url == url
    assert report.listen_addresses == ["127.0.0.1"]
    assert report.gateway_p50_ms > report.server_p50_ms > 0
    assert report.direct_p50_ms > 0


def test_direct_ingress_asked_after_ray_started_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Turning direct ingress on once Ray runs without it cannot take effect: said, not ignored."""
    import ray

    from serving.ingress import IngressError, enable_direct_ingress

    monkeypatch.delenv("RAY_SERVE_ENABLE_DIRECT_INGRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    with pytest.raises(IngressError, match="before Ray starts"):
        enable_direct_ingress()
    assert "RAY_SERVE_ENABLE_DIRECT_INGRESS" not in os.environ
