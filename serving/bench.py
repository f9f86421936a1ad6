"""Gateway overhead: the same request through the gateway (HTTP, routing, telemetry) and as a
direct deployment-handle call to the same model server, interleaved, on loopback.

    python -m serving.bench --local --n 200            # its own local Ray, one site
    python -m serving.bench --url http://127.0.0.1:8000 --address auto   # a running city

The request goes to a text-to-image server whose tiny synthetic model at 8x8 px and one step
keeps the model's own time small. With `RAY_SERVE_ENABLE_HA_PROXY=1` and
`RAY_SERVE_ENABLE_DIRECT_INGRESS=1` in the environment of the Ray cluster (Ray 2.60 feature
flags: HAProxy in front of the ingress replica, no Python proxy hop), the gateway path saves
one actor hop.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class OverheadReport(BaseModel):
    """Latency of both paths and their difference (milliseconds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    site: str
    n: int = Field(description="Requests per path.")
    gateway_p50_ms: float
    gateway_p99_ms: float
    direct_p50_ms: float
    direct_p99_ms: float
    overhead_p50_ms: float = Field(description="gateway p50 - direct p50.")
    overhead_p99_ms: float = Field(description="gateway p99 - direct p99.")
    http_noop_p50_ms: float = Field(description="GET /healthz through proxy and gateway.")
    direct_ingress: bool = Field(description="RAY_SERVE_ENABLE_DIRECT_INGRESS and HA_PROXY.")


def measure_overhead(
    url: str, *, model: str, site: str, n: int = 200, warmup: int = 10
) -> OverheadReport:
    """Send `n` identical requests each way (alternating) and compare latencies."""
    import httpx
    from ray import serve

    from serving.config import SERVER_DEPLOYMENT, server_app_name

    handle = serve.get_deployment_handle(SERVER_DEPLOYMENT, app_name=server_app_name(model, site))
    body = {"model": model, "prompt": "a bridge", "size": "8x8", "num_inference_steps": 1}
    direct_req = {"prompt": "a bridge", "n": 1, "size_px": 8, "steps": 1}
    # Route only to `site`, as the direct call does.
    policy = {"routes": {model: [{"site": site, "weight": 1.0}]}}
    gw, direct, noop = [], [], []
    with httpx.Client(base_url=url, timeout=60) as http:
        http.put("/admin/routing", json=policy).raise_for_status()
        for _ in range(warmup + n):
            t0 = time.perf_counter()
            http.get("/healthz").raise_for_status()
            noop.append((time.perf_counter() - t0) * 1e3)
        for i in range(warmup + n):
            t0 = time.perf_counter()
            r = http.post("/v1/images/generations", json=body)
            t1 = time.perf_counter()
            r.raise_for_status()
            handle.infer.remote(direct_req).result(timeout_s=60)
            t2 = time.perf_counter()
            if i >= warmup:
                gw.append((t1 - t0) * 1e3)
                direct.append((t2 - t1) * 1e3)
        http.put("/admin/routing", json={"routes": {}}).raise_for_status()
    g, d = np.array(gw), np.array(direct)
    return OverheadReport(
        model=model,
        site=site,
        n=n,
        gateway_p50_ms=float(np.percentile(g, 50)),
        gateway_p99_ms=float(np.percentile(g, 99)),
        direct_p50_ms=float(np.percentile(d, 50)),
        direct_p99_ms=float(np.percentile(d, 99)),
        overhead_p50_ms=float(np.percentile(g, 50) - np.percentile(d, 50)),
        overhead_p99_ms=float(np.percentile(g, 99) - np.percentile(d, 99)),
        http_noop_p50_ms=float(np.percentile(noop[warmup:], 50)),
        direct_ingress=all(
            os.environ.get(v) == "1"
            for v in ("RAY_SERVE_ENABLE_DIRECT_INGRESS", "RAY_SERVE_ENABLE_HA_PROXY")
        ),
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--address", default="auto", help="Ray address of the running cluster.")
    p.add_argument("--model", default="stable-diffusion-1.5")
    p.add_argument("--site", default="harbourside")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--local", action="store_true", help="Start a local Ray and the city here.")
    p.add_argument("--port", type=int, default=8000, help="Serve's HTTP port with --local.")
    args = p.parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    url = args.url
    if args.local:
        from ray import serve

        from serving.app import deploy_city
        from serving.config import site_resource

        ray.init(
            address="local",
            num_cpus=8,
            resources={site_resource(args.site): 1},
            include_dashboard=False,
            log_to_driver=False,
        )
        serve.start(http_options={"host": "127.0.0.1", "port": args.port})
        deploy_city({"gateway": {"placement": {args.site: [args.model]}}})
        url = f"http://127.0.0.1:{args.port}"
    else:
        ray.init(address=args.address, log_to_driver=False)
    try:
        report = measure_overhead(url, model=args.model, site=args.site, n=args.n)
    finally:
        if args.local:
            from ray import serve

            serve.shutdown()
        ray.shutdown()
    out = report.model_dump()
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
