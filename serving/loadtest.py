"""A bounded load test of the gateway over real HTTP on 127.0.0.1.

uvicorn serves the production routes (`serving.app.create_gateway_api`) over in-process
`ModelServer`s whose fake engine takes a set time per request, so queues form and the in-flight
bound answers 429. N clients on one event loop send chat, VLM, image and transcription requests
back to back for D seconds; every request must get an answer, every error must be OpenAI-style,
and the gateway must still serve afterwards. Serve's proxy and Ray actors are not in the path.

    python -m serving.loadtest --clients 200 --duration 60 [--json PATH] [--seed S]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from pydantic import ValidationError

from serving import loadgen
from serving.app import create_gateway_api
from serving.config import GatewayConfig
from serving.fuzz.cli import OneLineParser
from serving.fuzz.contract import Category, FuzzAnswer, FuzzCase
from serving.fuzz.harness import FakeEngine, ServerHandle, fake_server, health_cases, health_problem
from serving.fuzz.values import Catalogue, catalogue
from serving.gateway import Gateway
from serving.load_report import LoadReport, LoadSettings, Tally, build_report, print_report
from serving.server import ModelServer

KINDS: dict[str, tuple[str, Category]] = {
    "chat": ("llm", "chat"),
    "vlm": ("vlm", "chat"),
    "image": ("text-to-image", "images"),
    "audio": ("speech-to-text", "transcription"),
}
"""The requests of the load: name -> (model kind, fuzz category of its endpoint)."""


def timed_engine(service_ms: float) -> type[FakeEngine]:
    """`FakeEngine` holding its thread `service_ms` per request of a batch (a batch of b takes
    b times that, as llama.cpp runs a batch one request after another): queues form."""

    class TimedEngine(FakeEngine):
        def run_batch(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
            time.sleep(service_ms / 1000 * len(requests))
            return super().run_batch(requests)

    return TimedEngine


def request_pool(cat: Catalogue, seed: int, per_kind: int = 16) -> dict[str, list[FuzzCase]]:
    """Requests of each kind as the load generator sends them (sizes drawn within its CPU
    caps), encoded once: the clients spend their time on HTTP, not on building bodies."""
    rng = np.random.default_rng(seed)
    pool: dict[str, list[FuzzCase]] = {name: [] for name in KINDS}
    for name, (kind, category) in KINDS.items():
        for _ in range(per_kind):
            p = loadgen.SentPrompt(
                cat.of(kind)[0], kind, None, 0.0, text_seed=int(rng.integers(2**31))
            )
            p.input_tokens = int(rng.integers(4, loadgen.MAX_INPUT_WORDS + 1))
            p.output_tokens = int(rng.integers(1, loadgen.MAX_OUTPUT_TOKENS + 1))
            p.images, p.audio_s = int(kind == "vlm"), float(rng.uniform(*loadgen.AUDIO_S))
            p.resolution_px, p.steps = loadgen.IMAGE_PX, loadgen.IMAGE_STEPS
            path, kwargs = loadgen.http_request(p)
            req = httpx.Request("POST", "http://gateway" + path, **kwargs)
            head = (("content-type", req.headers["content-type"]),)
            pool[name].append(
                FuzzCase(category=category, method="POST", path=path, headers=head, body=req.read())
            )
    return pool


@contextlib.contextmanager
def serve_gateway(config: GatewayConfig, service_ms: float) -> Iterator[str]:
    """The production routes under uvicorn on 127.0.0.1 (a free port), in a thread with its own
    event loop, where the servers' batch workers live too; yields the base URL."""
    import uvicorn

    engine, servers = timed_engine(service_ms), list[ModelServer]()

    def handle(app_name: str) -> ServerHandle:
        servers.append(fake_server(gateway, app_name, engine))
        return ServerHandle(servers[-1])

    gateway = Gateway(config, handle_factory=handle)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    uv_config = uvicorn.Config(create_gateway_api(gateway), log_level="warning", lifespan="off")
    server = uvicorn.Server(uv_config)
    thread = threading.Thread(target=server.run, args=([sock],), name="gateway", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start on 127.0.0.1")
            time.sleep(0.01)
        yield "http://{}:{}".format(*sock.getsockname())
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        for s in servers:
            s._executor.shutdown(wait=False, cancel_futures=True)


async def _answer(client: httpx.AsyncClient, case: FuzzCase, timeout_s: float) -> FuzzAnswer:
    t0 = time.perf_counter()
    r = await client.request(
        case.method, case.path, headers=case.headers, content=case.body, timeout=timeout_s
    )
    ctype = r.headers.get("content-type", "")
    return FuzzAnswer(
        status=r.status_code, content_type=ctype, body=r.content, seconds=time.perf_counter() - t0
    )


async def _client(
    client: httpx.AsyncClient,
    pool: dict[str, list[FuzzCase]],
    rng: random.Random,
    deadline: float,
    tally: Tally,
    timeout_s: float,
) -> None:
    """One client: a request of a random kind, the next as soon as it is answered."""
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        kind = rng.choice(list(pool))
        case = rng.choice(pool[kind])
        tally.sent[kind] += 1
        try:
            tally.add(kind, case, await _answer(client, case, timeout_s))
        except httpx.HTTPError as e:
            tally.lost(kind, e)


Show = Callable[[float, str], None]
"""Progress: seconds of load done, a line of counts."""


async def _drive(
    url: str, pool: dict[str, list[FuzzCase]], settings: LoadSettings, show: Show | None
) -> tuple[Tally, float, list[str]]:
    """The clients for `duration_s` (each its own connection pool: one shared pool's bookkeeping
    grows with its connections), then one valid request of each kind (operator notices, which
    need a token, aside); the tally, the seconds the load took, what was not served."""
    timeout_s, tally = settings.timeout_s, Tally(list(pool))
    ssl_context = httpx.create_ssl_context()  # unused on http://, but each client would build one
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=url, verify=ssl_context))
            for _ in range(settings.clients)
        ]
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        rngs = [random.Random(f"{settings.seed}:{i}") for i in range(len(clients))]
        tasks = [
            _client(c, pool, rng, t0 + settings.duration_s, tally, timeout_s)
            for c, rng in zip(clients, rngs, strict=True)
        ]
        done = asyncio.ensure_future(asyncio.gather(*tasks))
        while show is not None and not done.done():
            n, n429 = tally.by_status.total(), tally.by_status["429"]
            show(loop.time() - t0, f"{n} answers, {n429} x 429, {tally.transport.total()} lost")
            await asyncio.wait([done], timeout=0.25)
        await done
        elapsed = loop.time() - t0
        unserved = []
        for case, check in health_cases(catalogue(settings.scenario)):
            if not case.path.startswith("/v1/operator/"):
                try:
                    answer = await _answer(clients[0], case, timeout_s)
                    unserved.append(health_problem(case, answer, check))
                except httpx.HTTPError as e:
                    unserved.append(f"{case.method} {case.path}: {type(e).__name__}")
    return tally, elapsed, [p for p in unserved if p is not None]


@contextlib.contextmanager
def _progress(total_s: float, enabled: bool) -> Iterator[Show | None]:
    """A rich progress bar on stderr, or nothing."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("starting", total=total_s)
        yield lambda done_s, text: bar.update(task, completed=done_s, description=text)


def run_load(settings: LoadSettings, *, progress: bool = False) -> LoadReport:
    """Serve an in-process gateway on 127.0.0.1, load it, check that it serves afterwards."""
    config = GatewayConfig(
        scenario=settings.scenario,
        max_queue_per_server=settings.max_inflight,
        request_timeout_s=settings.timeout_s / 2,  # a stuck server: a 504, not a lost request
        seed=settings.seed,
    )
    pool = request_pool(catalogue(settings.scenario), settings.seed)
    with (
        serve_gateway(config, settings.service_ms) as url,
        _progress(settings.duration_s, progress) as show,
    ):
        tally, elapsed, unserved = asyncio.run(_drive(url, pool, settings, show))
    return build_report(settings, tally, elapsed, unserved)


_OPTIONS = {
    "clients": ("--clients", int),
    "duration_s": ("--duration", float),
    "seed": ("--seed", int),
    "service_ms": ("--service-ms", float),
    "max_inflight": ("--max-inflight", int),
    "timeout_s": ("--timeout", float),
}
"""`LoadSettings` field -> command-line option, type."""


def main(argv: list[str] | None = None) -> int:
    """`python -m serving.loadtest`: 0 when nothing was lost, no 5xx, every error OpenAI-style
    and the gateway served afterwards; 1 when not; 2 on bad arguments."""
    p = OneLineParser(prog="python -m serving.loadtest", description=__doc__.splitlines()[0])
    for field, (flag, kind) in _OPTIONS.items():
        info = LoadSettings.model_fields[field]
        p.add_argument(flag, dest=field, type=kind, default=info.default, help=info.description)
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the report")
    args = vars(p.parse_args(argv))
    path: Path | None = args.pop("json")
    try:
        settings = LoadSettings(**args)
    except ValidationError as e:
        err = e.errors()[0]
        p.error(f"{_OPTIONS[err['loc'][0]][0]}: {err['msg'].lower()}, got {err['input']!r}")
    if path is not None and not _writable(path):
        p.error(f"--json: cannot write {str(path)!r}")
    report = run_load(settings, progress=sys.stderr.isatty())
    print_report(report)
    if path is not None:
        path.write_text(report.model_dump_json(indent=2) + "\n")
    return 0 if report.ok else 1


def _writable(path: Path) -> bool:
    if path.exists():
        return path.is_file() and os.access(path, os.W_OK)
    return path.parent.is_dir() and os.access(path.parent, os.W_OK)


if __name__ == "__main__":
    sys.exit(main())
