"""Gateway overhead: the same request through the gateway (HTTP, routing, telemetry) and as a
direct deployment-handle call to the same model server, interleaved, on loopback.

    python -m serving.bench --local --n 200            # its own local Ray, one site
    python -m serving.bench --local --n 200 --direct-ingress   # HTTP straight to the replica
    python -m serving.bench --local --n 200 --standalone   # also the Gateway under uvicorn
    python -m serving.bench --url http://127.0.0.1:8000 --address auto   # a running city

The request goes to a text-to-image server whose tiny synthetic model at 8x8 px and one step
keeps the model's own time small. `--direct-ingress` starts the local Ray with Serve's direct
ingress (`serving.ingress`): HTTP goes to the gateway replica's own server, bound to 127.0.0.1,
with no proxy actor hop. With `RAY_SERVE_ENABLE_HA_PROXY=1` in the environment instead, HAProxy
stands in front of the replica (it binds all interfaces). `--standalone` also serves the same
`Gateway` class from plain uvicorn in this process (127.0.0.1, no Serve proxy in front, server
calls still through deployment handles) and times that path too.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

IngressMode = Literal["proxy", "direct", "haproxy"]


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
    ingress: IngressMode = Field(
        description="proxy: Serve's proxy actor; direct: the replica's own HTTP server "
        "(RAY_SERVE_ENABLE_DIRECT_INGRESS); haproxy: HAProxy in front of it (also HA_PROXY)."
    )
    gateway_url: str
    listen_addresses: list[str] = Field(
        description="Local addresses listening on the gateway URL's port (psutil), to show "
        "what the path exposes."
    )
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
    ingress: IngressMode = "proxy",
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
        ingress=ingress,
        gateway_url=url,
        listen_addresses=listening_on(urlsplit(url).port or 80),
    )


def listening_on(port: int) -> list[str]:
    """The local addresses with a listening TCP socket on `port`."""
    import psutil

    return sorted(
        {
            c.laddr.ip
            for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        }
    )


def ingress_mode() -> IngressMode:
    """The ingress a local Ray started from this process's environment gets."""
    if os.environ.get("RAY_SERVE_ENABLE_HA_PROXY") == "1":
        return "haproxy"
    return "direct" if os.environ.get("RAY_SERVE_ENABLE_DIRECT_INGRESS") == "1" else "proxy"


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
        "--direct-ingress",
        action="store_true",
        help="HTTP straight to the gateway replica's own server (Serve's direct ingress, "
        "which --local turns on; a running cluster needs it set where Ray started).",
    )
    p.add_argument(
        "--standalone",
        action="store_true",
        help="Also time the Gateway class served by uvicorn here (127.0.0.1, port + 1).",
    )
    p.add_argument("--json", dest="json_path", help="Also write the report to this file.")
    args = p.parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from serving.ingress import direct_ingress_url

    url = args.url
    ingress: IngressMode = "proxy"
    if args.local:
        from ray import serve

        from serving.app import deploy_city
        from serving.config import site_resource
        from serving.ingress import enable_direct_ingress

        if args.direct_ingress:
            enable_direct_ingress()
        ingress = ingress_mode()

        ray.init(
            address="local",
            num_cpus=8,
            resources={site_resource(args.site): 1},
            include_dashboard=False,
            log_to_driver=False,
        )
        serve.start(http_options={"host": "127.0.0.1", "port": args.port})
        deploy_city({"gateway": {"placement": {args.site: [args.model]}}})
        url = direct_ingress_url() if ingress == "direct" else f"http://127.0.0.1:{args.port}"
    else:
        ray.init(address=args.address, log_to_driver=False)
        if args.direct_ingress:
            url, ingress = direct_ingress_url(), "direct"
    server = None
    try:
        standalone_url = None
        if args.standalone:
            server, standalone_url = _standalone_gateway({args.site: [args.model]}, args.port + 1)
        report = measure_overhead(
            url, model=args.model, site=args.site, n=args.n, standalone_url=standalone_url,
            ingress=ingress,
        )  # fmt: skip
    finally:
        if server is not None:
            server.should_exit = True
        if args.local:
            from ray import serve

            serve.shutdown()
        ray.shutdown()
    out = report.model_dump()
    print(json.dumps(out, indent=2))
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(out, f, indent=2)
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
