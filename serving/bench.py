"""Gateway overhead: the same request through the gateway (HTTP, routing, telemetry) and as a
direct deployment-handle call to the same model server, interleaved, on loopback.

    python -m serving.bench --local --n 200            # its own local Ray, one site
    python -m serving.bench --local --n 200 --standalone   # also the Gateway under uvicorn
    python -m serving.bench --url http://127.0.0.1:8000 --address auto   # a running city

The request goes to a text-to-image server whose tiny synthetic model at 8x8 px and one step
keeps the model's own time small. With `RAY_SERVE_ENABLE_HA_PROXY=1` and
`RAY_SERVE_ENABLE_DIRECT_INGRESS=1` in the environment of the Ray cluster (Ray 2.60 feature
flags: HAProxy in front of the ingress replica, no Python proxy hop), the gateway path saves
one actor hop. `--standalone` also serves the same `Gateway` class from plain uvicorn in this
process (127.0.0.1, no Serve proxy in front, server calls still through deployment handles)
and times that path too.
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
    server_p50_ms: float = Field(description="The server's own queue + inference time.")
    direct_call_p50_ms: float = Field(
        description="direct - server time: the bare handle call from the driver and back."
    )
    gateway_inside_p50_ms: float = Field(
        description="The gateway's own record (arrival to answer) - server time: parsing, "
        "routing, telemetry, rendering and the handle call to the server."
    )
    proxy_http_p50_ms: float = Field(
        description="Client latency - the gateway's own record: HTTP and Serve's proxy hop."
    )
    direct_ingress: bool = Field(description="RAY_SERVE_ENABLE_DIRECT_INGRESS and HA_PROXY.")
    standalone_p50_ms: float | None = Field(
        default=None, description="The same Gateway class under uvicorn, no Serve proxy."
    )
    standalone_overhead_p50_ms: float | None = Field(
        default=None, description="standalone p50 - direct p50."
    )


def measure_overhead(
    url: str,
    *,
    model: str,
    site: str,
    n: int = 200,
    warmup: int = 10,
    standalone_url: str | None = None,
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
    gw, direct, noop, server, direct_call, alone = [], [], [], [], [], []
    since = time.time()
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
            reply = handle.infer.remote(direct_req).result(timeout_s=60)
            t2 = time.perf_counter()
            if standalone_url is not None:
                http.post(standalone_url + "/v1/images/generations", json=body).raise_for_status()
                if i >= warmup:
                    alone.append((time.perf_counter() - t2) * 1e3)
            if i >= warmup:
                gw.append((t1 - t0) * 1e3)
                direct.append((t2 - t1) * 1e3)
                own = (reply["queue_s"] + reply["infer_s"]) * 1e3
                server.append(own)
                direct_call.append((t2 - t1) * 1e3 - own)
        http.put("/admin/routing", json={"routes": {}}).raise_for_status()
        records = http.get("/admin/telemetry", params={"since_s": since}).json()["requests"]
    served = [r for r in records if r["model"] == model and r["status"] == 200][warmup:]
    inside = [(r["latency_s"] - r["queue_s"] - r["infer_s"]) * 1e3 for r in served]
    record_ms = [r["latency_s"] * 1e3 for r in served]
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
        server_p50_ms=float(np.percentile(server, 50)),
        direct_call_p50_ms=float(np.percentile(direct_call, 50)),
        gateway_inside_p50_ms=float(np.percentile(inside, 50)) if inside else float("nan"),
        proxy_http_p50_ms=float(np.percentile(g, 50) - np.percentile(record_ms, 50))
        if record_ms
        else float("nan"),
        standalone_p50_ms=float(np.percentile(alone, 50)) if alone else None,
        standalone_overhead_p50_ms=float(np.percentile(alone, 50) - np.percentile(d, 50))
        if alone
        else None,
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
    p.add_argument(
        "--standalone",
        action="store_true",
        help="Also time the Gateway class served by uvicorn here (127.0.0.1, port + 1).",
    )
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
    server = None
    try:
        standalone_url = None
        if args.standalone:
            server, standalone_url = _standalone_gateway({args.site: [args.model]}, args.port + 1)
        report = measure_overhead(
            url, model=args.model, site=args.site, n=args.n, standalone_url=standalone_url
        )
    finally:
        if server is not None:
            server.should_exit = True
        if args.local:
            from ray import serve

            serve.shutdown()
        ray.shutdown()
    out = report.model_dump()
    print(json.dumps(out, indent=2))
    return out


def _standalone_gateway(placement: dict[str, list[str]], port: int) -> tuple[Any, str]:
    """The `Gateway` class behind plain uvicorn on 127.0.0.1:`port`, in a thread of this
    process (image route only: what the benchmark sends)."""
    import threading

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from serving.gateway import Gateway
    from serving.protocol import OpenAIError

    gateway = Gateway({"placement": placement})

    async def images(request: Request) -> Response:
        try:
            return await gateway.images_generations(request)
        except OpenAIError as e:
            return e.response()

    app = Starlette(routes=[Route("/v1/images/generations", images, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True, name="standalone-gateway").start()
    deadline = time.perf_counter() + 30
    while not server.started:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port} in 30 s")
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


if __name__ == "__main__":
    main()
