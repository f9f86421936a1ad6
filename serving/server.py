"""The model server: one replica of one model on one site, with its engine injected.

A plain class (no Serve decorator): `build_model_server_app` (serving/app.py) wraps it with
`serve.deployment(**ModelServer.get_deployment_options(config))`, and tests can build it with a
fake engine. Requests wait in an asyncio queue; a worker takes up to `max_batch` of them at a
time and runs them on one engine thread, so queue length and batch size are real figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from serving.config import ModelServerConfig, site_resource
from serving.engines import Engine, EngineError, create_engine, timed_load

_WINDOW = 512


class ServerStats(BaseModel):
    """What one model-server replica reports: identity, queue, batch, latency, memory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    site: str
    backend: str
    weights: str = Field(description="Weights file or directory, or `synthetic:<config>`.")
    synthetic_weights: bool = Field(description="True: random weights, outputs are noise.")
    replica: str = Field(description="Serve replica id (or pid outside Serve).")
    pid: int
    node_id: str = Field(default="", description="Ray node of the replica ('' outside Ray).")
    load_s: float = Field(description="Seconds the engine took to build or read its model.")
    queue_len: int = Field(ge=0, description="Requests waiting for a batch.")
    running: int = Field(ge=0, description="Requests in the batch now running.")
    last_batch: int = Field(ge=0, description="Size of the last batch run.")
    max_batch: int = Field(ge=1)
    served: int = Field(ge=0)
    errors: int = Field(ge=0)
    p50_latency_s: float | None = Field(description="Queue + inference, last requests.")
    p99_latency_s: float | None = None
    mean_infer_s: float | None = None
    model_memory_bytes: int = Field(ge=0, description="Parameters and buffers of the model.")
    rss_bytes: int = Field(ge=0, description="Resident memory of the replica process.")


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _replica_id() -> str:
    try:
        from ray import serve

        return serve.get_replica_context().replica_id.unique_id
    except Exception:
        return f"pid-{os.getpid()}"


def _node_id() -> str:
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
    except Exception:
        return ""


class ModelServer:
    """Serves one model on one site: batches requests onto an engine and reports figures."""

    def __init__(
        self, config: ModelServerConfig | dict[str, Any], *, engine_cls: type | None = None
    ) -> None:
        self.config = ModelServerConfig.model_validate(config)
        self.engine: Engine = engine_cls(self.config) if engine_cls else create_engine(self.config)
        self.load_s = timed_load(self.engine)
        self._queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future, float]] | None = None
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        self._running = 0
        self._last_batch = 0
        self._served = 0
        self._errors = 0
        self._latency: deque[float] = deque(maxlen=_WINDOW)
        self._infer: deque[float] = deque(maxlen=_WINDOW)

    @classmethod
    def get_deployment_options(cls, config: ModelServerConfig) -> dict[str, Any]:
        """Serve options: pinned to the site's custom resource, with a CPU (and GPU) share."""
        actor: dict[str, Any] = {
            "num_cpus": config.num_cpus,
            "resources": {site_resource(config.site): config.site_resource_share},
        }
        if config.num_gpus > 0:
            actor["num_gpus"] = config.num_gpus
        return {
            "name": "ModelServer",
            "num_replicas": 1,
            "max_ongoing_requests": config.max_ongoing_requests,
            "ray_actor_options": actor,
            "health_check_period_s": 2.0,
            "health_check_timeout_s": 30.0,
            "graceful_shutdown_timeout_s": 5.0,
        }

    def _ensure_worker(self) -> asyncio.Queue:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._batch_loop())
        return self._queue

    async def _batch_loop(self) -> None:
        queue = self._queue
        assert queue is not None  # set before the task starts
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self.config.batch_wait_ms / 1000
            while len(batch) < self.config.max_batch:
                if not queue.empty():  # take what waits now, whatever the deadline
                    batch.append(queue.get_nowait())
                    continue
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), timeout))
                except TimeoutError:
                    break
            await self._run(batch)

    async def _run(self, batch: list[tuple[dict[str, Any], asyncio.Future, float]]) -> None:
        self._running = self._last_batch = len(batch)
        t0 = time.perf_counter()
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                self._executor, self.engine.run_batch, [req for req, _, _ in batch]
            )
            error: BaseException | None = None
        except BaseException as e:  # handed to every caller of the batch
            results, error = [], e
        infer_s = time.perf_counter() - t0
        self._running = 0
        self._infer.append(infer_s)
        for i, (_, fut, queued_at) in enumerate(batch):
            if fut.done():
                continue
            if error is not None:
                self._errors += 1
                fut.set_exception(error)
            else:
                self._served += 1
                self._latency.append(time.perf_counter() - queued_at)
                fut.set_result((results[i], infer_s, len(batch)))

    async def infer(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one request; the engine's result plus where, how and how long."""
        queue = self._ensure_worker()
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        t0 = time.perf_counter()
        await queue.put((request, fut, t0))
        try:
            result, infer_s, batch = await fut
        except EngineError as e:
            return {"error": str(e), "status": 400}
        return {
            "result": result,
            "model": self.config.model,
            "site": self.config.site,
            "backend": self.engine.backend,
            "weights": self.engine.weights,
            "synthetic_weights": self.engine.synthetic_weights,
            "replica": _replica_id(),
            "queue_s": max(time.perf_counter() - t0 - infer_s, 0.0),
            "infer_s": infer_s,
            "batch": batch,
        }

    def stats(self) -> dict[str, Any]:
        """This replica's figures (a `ServerStats` as a dict)."""
        lat = np.array(self._latency) if self._latency else None
        return ServerStats(
            model=self.config.model,
            site=self.config.site,
            backend=self.engine.backend,
            weights=self.engine.weights,
            synthetic_weights=self.engine.synthetic_weights,
            replica=_replica_id(),
            pid=os.getpid(),
            node_id=_node_id(),
            load_s=self.load_s,
            queue_len=self._queue.qsize() if self._queue else 0,
            running=self._running,
            last_batch=self._last_batch,
            max_batch=self.config.max_batch,
            served=self._served,
            errors=self._errors,
            p50_latency_s=float(np.percentile(lat, 50)) if lat is not None else None,
            p99_latency_s=float(np.percentile(lat, 99)) if lat is not None else None,
            mean_infer_s=float(np.mean(self._infer)) if self._infer else None,
            model_memory_bytes=self.engine.memory_bytes(),
            rss_bytes=_rss_bytes(),
        ).model_dump()

    def crash(self) -> None:
        """Fault injection: end this replica's process at once; Serve starts a new one."""
        os._exit(1)

    def check_health(self) -> None:
        """Serve's health probe: a dead batch worker makes the replica unhealthy."""
        if self._worker is not None and self._worker.done():
            with contextlib.suppress(asyncio.CancelledError):
                exc = self._worker.exception()
                raise RuntimeError(f"batch worker stopped: {exc!r}")
